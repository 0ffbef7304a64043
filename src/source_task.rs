//! The source connector: PostgreSQL → Debezium JSON → Kafka.
//!
//! ```text
//! PgSource::recv_many ──ChangeEvent──▶ JsonEncoder ──▶ Producer::send(seq) ──▶ topic
//!        ▲                                                      │ acks (any order)
//!        └── PgSource::ack(position) ◀── pending (seq → position) ◀── in-order watermark
//! ```
//!
//! A position is acknowledged to the slot only when every record produced
//! for it and before it is acknowledged by Kafka (DESIGN.md rule 1), so a
//! crash replays at most the unacknowledged tail (at-least-once).

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cdc_envelope::{tombstone_follows, topic_name, ChangeEvent, JsonEncoder, Options, Position};
use kafka_io::{
    ErrorContext, ErrorReporter, FailedRecord, KafkaConfig, Producer, ProducerOptions, Record,
    Stage, TopicAdmin,
};
use pg_logical::source::{FileOffsetStore, PgSource, SourceConfig, SourceEvent};
use tokio::sync::watch;

use crate::connector::ConnectorConfig;
use crate::error::{Error, Result};
use crate::metrics::{DlqLabels, EventCounters, Metrics};
use crate::status::{ConnectorState, StatusBoard};

/// The class name Kafka Connect would report for errors in this task.
const TASK_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnectorTask";

/// What a connector task shares with the rest of the process.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Connector states.
    pub board: StatusBoard,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Directory for local offset files.
    pub data_dir: PathBuf,
    /// The connector's pause switch (`true` = paused), from the REST endpoint.
    pub pause: watch::Receiver<bool>,
}

impl TaskContext {
    /// Waits while the connector is paused. Returns true if shutdown was
    /// requested meanwhile.
    pub async fn wait_while_paused(
        &mut self,
        name: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if !*self.pause.borrow() {
            return false;
        }
        self.board.set(name, ConnectorState::Paused);
        tracing::info!(connector = %name, "paused");
        while *self.pause.borrow() {
            tokio::select! {
                changed = self.pause.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => if *shutdown.borrow() { return true },
            }
        }
        self.board.set(name, ConnectorState::Running);
        tracing::info!(connector = %name, "resumed");
        *shutdown.borrow()
    }
}

/// Records produced and not yet acknowledged, with the source position each
/// one completes.
#[derive(Debug, Default)]
struct Pending {
    queue: VecDeque<(u64, Position)>,
}

impl Pending {
    fn push(&mut self, last_seq: u64, position: Position) {
        self.queue.push_back((last_seq, position));
    }

    /// The newest position whose records are all acknowledged.
    fn durable(&mut self, watermark: Option<u64>) -> Option<Position> {
        let wm = watermark?;
        let mut last = None;
        while let Some(&(seq, pos)) = self.queue.front() {
            if seq > wm {
                break;
            }
            last = Some(pos);
            self.queue.pop_front();
        }
        last
    }
}

/// Runs the source connector until `shutdown` turns true or it fails.
pub async fn run_source(
    config: ConnectorConfig,
    mut ctx: TaskContext,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let name = config.name.clone();
    let source_config = SourceConfig::from_properties(&config.props)?;
    let options = Options::from_map(&config.props)?;
    let kafka = KafkaConfig::from_properties(&config.props)?;
    let admin = TopicAdmin::new(&kafka)?;
    let reporter = Arc::new(ErrorReporter::new(&kafka, &name, 0).await?);
    let producer = Producer::new(
        &kafka,
        ProducerOptions {
            reporter: Some(reporter.clone()),
            executing_class: TASK_CLASS.into(),
            ..ProducerOptions::default()
        },
    )?;
    std::fs::create_dir_all(&ctx.data_dir).map_err(|source| Error::Io {
        context: format!("creating data directory {}", ctx.data_dir.display()),
        source,
    })?;
    let store = FileOffsetStore::new(ctx.data_dir.join(format!("{name}.source-offsets")));
    let mut source = PgSource::start(source_config, store).await?;
    ctx.board.set(&name, ConnectorState::Running);
    tracing::info!(connector = %name, tables = ?source.info().tables, plan = ?source.info().plan, "source started");

    let mut encoder = JsonEncoder::new(options.clone());
    let mut ensured: HashSet<String> = HashSet::new();
    let mut pending = Pending::default();
    let mut seq: u64 = 0;
    let mut buf: Vec<SourceEvent> = Vec::with_capacity(2048);
    let mut watermark = producer.subscribe_watermark();
    let mut counters = EventCounters::new(ctx.metrics.clone(), &name);

    loop {
        if ctx.wait_while_paused(&name, &mut shutdown).await {
            break;
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            _ = ctx.pause.changed() => {}
            _ = watermark.changed() => {}
            got = source.recv_many(&mut buf, 2048) => {
                if got? == 0 {
                    tracing::info!(connector = %name, "source finished (nothing more to stream)");
                    break;
                }
                for event in buf.drain(..) {
                    let SourceEvent::Change(ev) = event else { continue };
                    let Some(topic) = topic_name(&ev, &options) else { continue };
                    if ensured.insert(topic.clone()) {
                        admin.ensure_topic(&kafka.topic_creation.spec_for(&topic)).await?;
                    }
                    match encoder.encode(&ev) {
                        Ok(rec) => {
                            seq += 1;
                            let mut record = Record::to(&topic);
                            if let Some(k) = rec.key.as_deref() { record = record.key(k); }
                            if let Some(v) = rec.value.as_deref() { record = record.value(v); }
                            producer.send(seq, &record).await?;
                            if tombstone_follows(&ev, &options) {
                                seq += 1;
                                let mut tomb = Record::to(&topic);
                                if let Some(k) = rec.key.as_deref() { tomb = tomb.key(k); }
                                producer.send(seq, &tomb).await?;
                            }
                        }
                        Err(e) => {
                            report_unconvertible(&reporter, &ctx.metrics, &name, &topic, &ev, &e).await?;
                        }
                    }
                    counters.count(&ev);
                    // A dead-lettered event completes with the records before it.
                    pending.push(seq, ev.position);
                }
            }
        }
        if let Some(position) = pending.durable(producer.watermark()) {
            source.ack(position);
        }
        if let Some(e) = producer.failure() {
            return Err(e.into());
        }
    }

    // Clean stop: wait for Kafka, acknowledge what is durable, release the slot.
    let wm = producer.flush(Duration::from_secs(30)).await?;
    if let Some(position) = pending.durable(wm) {
        source.ack(position);
    }
    source.stop().await?;
    Ok(())
}

async fn report_unconvertible(
    reporter: &ErrorReporter,
    metrics: &Metrics,
    connector: &str,
    topic: &str,
    ev: &ChangeEvent,
    error: &cdc_envelope::Error,
) -> Result<()> {
    // Nothing reached Kafka yet: the DLQ record carries the event's
    // identity in its headers and no original bytes.
    let record = FailedRecord {
        topic: topic.to_string(),
        partition: -1,
        offset: -1,
        key: None,
        value: Some(format!("{ev:?}").into_bytes()),
        headers: Vec::new(),
        timestamp: None,
    };
    let ctx = ErrorContext {
        stage: Stage::ValueConverter,
        executing_class: "org.apache.kafka.connect.json.JsonConverter",
        error,
        exception_class: error.kind(),
    };
    reporter.report(&record, &ctx).await?;
    metrics
        .dlq_records
        .get_or_create(&DlqLabels {
            connector: connector.into(),
            stage: "VALUE_CONVERTER".into(),
        })
        .inc();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_envelope::Lsn;

    fn pos(lsn: u64, seq: u64) -> Position {
        Position {
            commit_lsn: Lsn(lsn),
            seq,
        }
    }

    #[test]
    fn pending_acks_only_fully_acknowledged_positions() {
        let mut p = Pending::default();
        p.push(1, pos(100, 0));
        p.push(3, pos(100, 1)); // a delete + tombstone: seqs 2 and 3
        p.push(3, pos(100, 2)); // dead-lettered: completes with seq 3
        p.push(4, pos(200, 0));
        assert_eq!(p.durable(None), None);
        assert_eq!(p.durable(Some(2)), Some(pos(100, 0)));
        assert_eq!(p.durable(Some(3)), Some(pos(100, 2)));
        assert_eq!(p.durable(Some(3)), None);
        assert_eq!(p.durable(Some(10)), Some(pos(200, 0)));
    }
}
