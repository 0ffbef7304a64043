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
    /// Rows the initial snapshot reads per table: exact for tables with a key
    /// (counted while planning chunks), `pg_class.reltuples` otherwise.
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
            "WAL bytes between the server's end of WAL and the position confirmed to the slot",
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
            "Rows the initial snapshot reads (exact for keyed tables, the planner estimate otherwise)",
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

/// A task's handles on its per-table event counters, so counting an event
/// on the hot path is a map lookup by table id, not three label strings
/// allocated and hashed per event.
#[derive(Debug)]
pub struct EventCounters {
    metrics: Arc<Metrics>,
    connector: String,
    by_table: std::collections::HashMap<cdc_envelope::TableId, Vec<(cdc_envelope::Op, Counter)>>,
    /// The counter of the last event's table and op: a run of one table's
    /// changes skips hashing the table id.
    last: Option<(cdc_envelope::TableId, cdc_envelope::Op, Counter)>,
}

impl EventCounters {
    /// Counters of `connector` in `metrics`.
    pub fn new(metrics: Arc<Metrics>, connector: &str) -> Self {
        Self {
            metrics,
            connector: connector.to_string(),
            by_table: Default::default(),
            last: None,
        }
    }

    /// Counts one event (events without a table count under table `""`).
    pub fn count(&mut self, event: &cdc_envelope::ChangeEvent) {
        static NO_TABLE: std::sync::OnceLock<cdc_envelope::TableId> = std::sync::OnceLock::new();
        let table = match &event.table {
            Some(t) => &t.id,
            None => NO_TABLE.get_or_init(|| cdc_envelope::TableId::new("", "")),
        };
        if let Some((id, op, counter)) = &self.last {
            if *op == event.op && id == table {
                counter.inc();
                return;
            }
        }
        let ops = match self.by_table.get_mut(table) {
            Some(ops) => ops,
            None => self.by_table.entry(table.clone()).or_default(),
        };
        if let Some((_, counter)) = ops.iter().find(|(op, _)| *op == event.op) {
            counter.inc();
            self.last = Some((table.clone(), event.op, counter.clone()));
            return;
        }
        let name = if table.schema.is_empty() {
            String::new()
        } else {
            table.to_string()
        };
        let counter = self
            .metrics
            .events
            .get_or_create(&TableOpLabels {
                connector: self.connector.clone(),
                table: name,
                op: event.op.code().into(),
            })
            .clone();
        counter.inc();
        ops.push((event.op, counter.clone()));
        self.last = Some((table.clone(), event.op, counter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_counters_count_per_table_and_op() {
        use cdc_envelope::{ChangeEvent, Op, Position, SourceInfo, TableId, TableSchema};
        let m = Metrics::new();
        let table = Arc::new(TableSchema {
            id: TableId::new("public", "employees"),
            relation_oid: 0,
            columns: Vec::new(),
            version: 1,
        });
        let ev = |op, table: Option<Arc<TableSchema>>| ChangeEvent {
            op,
            table,
            before: None,
            after: None,
            source: SourceInfo::default(),
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Position::default(),
            key_change: None,
        };
        let mut counters = EventCounters::new(m.clone(), "src");
        let other = Arc::new(TableSchema {
            id: TableId::new("public", "other"),
            relation_oid: 0,
            columns: Vec::new(),
            version: 1,
        });
        // Runs of one table and op, and switches between tables and ops.
        counters.count(&ev(Op::Create, Some(table.clone())));
        counters.count(&ev(Op::Create, Some(table.clone())));
        counters.count(&ev(Op::Delete, Some(table.clone())));
        counters.count(&ev(Op::Create, Some(table.clone())));
        counters.count(&ev(Op::Create, Some(other)));
        counters.count(&ev(Op::Create, Some(table)));
        counters.count(&ev(Op::Message, None));
        let text = m.render();
        for line in [
            r#"pgcdc_events_total{connector="src",table="public.employees",op="c"} 4"#,
            r#"pgcdc_events_total{connector="src",table="public.other",op="c"} 1"#,
            r#"pgcdc_events_total{connector="src",table="public.employees",op="d"} 1"#,
            r#"pgcdc_events_total{connector="src",table="",op="m"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

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
