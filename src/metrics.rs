//! Prometheus metrics of a running pipeline.
//!
//! One [`Metrics`] per process, shared by the connectors; rendered in the
//! Prometheus text format by [`Metrics::render`] and served on `/metrics` by
//! [`crate::rest`].

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-table event counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableOpLabels {
    /// Connector name.
    pub connector: String,
    /// `schema.table`.
    pub table: String,
    /// Debezium op code (`c`, `u`, `d`, `r`, `t`, `m`).
    pub op: String,
}

/// Labels carrying only the connector name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    /// Connector name.
    pub connector: String,
}

/// Labels of per-partition gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Connector name.
    pub connector: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

/// Labels of dead-letter counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlqLabels {
    /// Connector name.
    pub connector: String,
    /// Kafka Connect stage (`KEY_CONVERTER`, `VALUE_CONVERTER`, `TASK_PUT`, …).
    pub stage: String,
}

/// Labels of snapshot progress gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SnapshotLabels {
    /// Connector name.
    pub connector: String,
    /// `schema.table`.
    pub table: String,
}

/// Every metric the pipeline exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Change events emitted by a source or applied by a sink, per table and op.
    pub events: Family<TableOpLabels, Counter>,
    /// Bytes of WAL between the server's current position and the last acknowledged LSN.
    pub replication_lag_bytes: Family<ConnectorLabels, Gauge>,
    /// Milliseconds between a transaction's commit on the source and its acknowledgement.
    pub replication_lag_ms: Family<ConnectorLabels, Gauge>,
    /// Time from handing a record to the producer until the broker acknowledged it.
    pub produce_latency_seconds: Family<ConnectorLabels, Histogram>,
    /// Records between a sink's committed position and the partition's end.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Duration of one sink batch (database transaction).
    pub sink_batch_seconds: Family<ConnectorLabels, Histogram>,
    /// Records per sink batch.
    pub sink_batch_records: Family<ConnectorLabels, Histogram>,
    /// Records sent to a dead-letter queue.
    pub dlq_records: Family<DlqLabels, Counter>,
    /// Rows read so far by the initial snapshot, per table.
    pub snapshot_rows: Family<SnapshotLabels, Gauge>,
    /// Estimated rows to read by the initial snapshot, per table (`pg_class.reltuples`).
    pub snapshot_rows_total: Family<SnapshotLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn size_histogram() -> Histogram {
    // 1 … 32768 records.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    /// A registry with every metric registered under the `pgcdc_` prefix.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("pgcdc");
        let events = Family::<TableOpLabels, Counter>::default();
        let replication_lag_bytes = Family::<ConnectorLabels, Gauge>::default();
        let replication_lag_ms = Family::<ConnectorLabels, Gauge>::default();
        let produce_latency_seconds = Family::<ConnectorLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        let sink_batch_seconds = Family::<ConnectorLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let sink_batch_records = Family::<ConnectorLabels, Histogram>::new_with_constructor(
            size_histogram as fn() -> Histogram,
        );
        let dlq_records = Family::<DlqLabels, Counter>::default();
        let snapshot_rows = Family::<SnapshotLabels, Gauge>::default();
        let snapshot_rows_total = Family::<SnapshotLabels, Gauge>::default();

        registry.register("events", "Change events per table and op", events.clone());
        registry.register(
            "replication_lag_bytes",
            "WAL bytes between the server's flush position and the last acknowledged LSN",
            replication_lag_bytes.clone(),
        );
        registry.register(
            "replication_lag_milliseconds",
            "Milliseconds from source commit to acknowledgement",
            replication_lag_ms.clone(),
        );
        registry.register(
            "kafka_produce_latency_seconds",
            "Time from produce to broker acknowledgement",
            produce_latency_seconds.clone(),
        );
        registry.register(
            "consumer_lag_records",
            "Records not yet applied by a sink",
            consumer_lag.clone(),
        );
        registry.register(
            "sink_batch_seconds",
            "Duration of one sink batch",
            sink_batch_seconds.clone(),
        );
        registry.register(
            "sink_batch_records",
            "Records per sink batch",
            sink_batch_records.clone(),
        );
        registry.register(
            "dlq_records",
            "Records sent to a dead-letter queue",
            dlq_records.clone(),
        );
        registry.register(
            "snapshot_rows",
            "Rows read by the initial snapshot",
            snapshot_rows.clone(),
        );
        registry.register(
            "snapshot_rows_estimated",
            "Estimated rows the initial snapshot will read",
            snapshot_rows_total.clone(),
        );
        Arc::new(Self {
            registry,
            events,
            replication_lag_bytes,
            replication_lag_ms,
            produce_latency_seconds,
            consumer_lag,
            sink_batch_seconds,
            sink_batch_records,
            dlq_records,
            snapshot_rows,
            snapshot_rows_total,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one event.
    pub fn event(&self, connector: &str, table: &str, op: &str) {
        self.events
            .get_or_create(&TableOpLabels {
                connector: connector.into(),
                table: table.into(),
                op: op.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_labels() {
        let m = Metrics::new();
        m.event("src", "public.employees", "c");
        m.event("src", "public.employees", "c");
        m.dlq_records
            .get_or_create(&DlqLabels {
                connector: "sink".into(),
                stage: "TASK_PUT".into(),
            })
            .inc();
        m.sink_batch_records
            .get_or_create(&ConnectorLabels {
                connector: "sink".into(),
            })
            .observe(3.0);
        let text = m.render();
        assert!(
            text.contains(
                r#"pgcdc_events_total{connector="src",table="public.employees",op="c"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pgcdc_dlq_records_total{connector="sink",stage="TASK_PUT"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("pgcdc_sink_batch_records_count{connector=\"sink\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
