//! The source connector: PostgreSQL → Debezium JSON → Kafka, exactly-once
//! by default.
//!
//! ```text
//!                     exactly-once (default)
//! PgSource::recv_many ──▶ Router (encode, DLQ) ──▶ Kafka transaction: records + offsets record
//!        ▲                                                           │ commit
//!        └── slot flushed ◀── OffsetStore::store returns ◀───────────┘
//!
//!                     at-least-once (exactly.once.source.support=disabled)
//! PgSource::recv_many ──▶ Router ──▶ Producer::send(seq) ──▶ in-order watermark ──▶ PgSource::ack
//! ```
//!
//! **Exactly-once** follows Kafka Connect's exactly-once source support
//! (KIP-618): a batch of records and the source offset that covers them
//! are committed in one Kafka transaction (`transactional.id`
//! `pg-cdc-<connector>-<topic.prefix>-0`, offsets on `offsets.storage.topic`). The offset
//! to commit is the one the replication source computes when it is
//! acknowledged: [`TxnOffsetStore::store`] hands it to this task and waits
//! until the transaction carrying it committed, so the slot is advanced
//! only after the records are durable and visible to `read_committed`
//! consumers. After a crash the open transaction is aborted (fenced) and
//! streaming resumes exactly after the last committed offset.
//!
//! A crash during the initial snapshot resumes at the last finished chunk
//! (as recorded in the committed offset); rows of chunks that were only
//! partly committed are read again (`op: r`), which a sink applies
//! idempotently.
//!
//! **At-least-once** acknowledges a position to the slot when every record
//! produced for it and before it is acknowledged by Kafka (DESIGN.md rule
//! 1); a crash replays at most the unacknowledged tail.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use cdc_envelope::metadata::{
    heartbeat_record, heartbeat_topic, transaction_record, transaction_topic, TransactionStatus,
};
use cdc_envelope::{
    key_change_header, tombstone_follows, topic_name, ChangeEvent, EncodedRecord, Op, Options,
    Position, TableId, TableSchema,
};
use kafka_io::{
    ErrorReporter, FailedRecord, Header, KafkaConfig, Producer, ProducerOptions, Record, Stage,
    TopicAdmin, TopicStatus, TransactionalProducer,
};
use pg_logical::source::{
    FileOffsetStore, OffsetStore, PgSource, SourceConfig, SourceEvent, SourceOffset,
    TransactionMarker,
};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot, watch};

use crate::connector::{ConfigError, ConnectorConfig};
use crate::converter::{Converter, Spare};
use crate::dead_letter::DeadLetters;
use crate::error::{Error, Result};
use crate::metrics::{ConnectorLabels, EventCounters, Metrics, SnapshotLabels};
use crate::runtime::AbortOnDrop;
use crate::status::{ConnectorState, StatusBoard};

/// The class name Kafka Connect would report for errors in this task.
const TASK_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnectorTask";

/// Default of `offsets.storage.topic` for exactly-once sources.
pub const DEFAULT_OFFSETS_TOPIC: &str = "pg-cdc-offsets";

/// How long an acknowledgement may take to come back as an offset to
/// commit before the transaction is committed without it (never expected;
/// committing without it can only cause a duplicate after a crash).
const OFFSET_WAIT: Duration = Duration::from_secs(30);

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
    /// Topics created by this process's sources, announced to its sinks.
    pub new_topics: NewTopics,
}

/// Announces topics a source of this process created, so a sink of the same
/// process subscribed by `topics.regex` picks them up at once instead of at
/// its next metadata refresh (seconds later): the demo and an end-to-end
/// pipeline start delivering as soon as the first transaction commits.
#[derive(Debug, Clone, Default)]
pub struct NewTopics(Arc<watch::Sender<u64>>);

impl NewTopics {
    /// Tells every subscriber that a topic was created.
    pub fn announce(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes with every announcement from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
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

/// Where transaction boundaries fall in exactly-once mode
/// (`transaction.boundary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// `poll` (default): one transaction per batch received from the
    /// source (up to `max.batch.size` events).
    Poll,
    /// `interval`: one transaction per `transaction.boundary.interval.ms`.
    Interval(Duration),
}

/// The source's delivery guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDelivery {
    /// `exactly.once.source.support=disabled`: slot acknowledged after Kafka
    /// acknowledged every record; a crash may duplicate the unacknowledged tail.
    AtLeastOnce,
    /// Records and offsets committed together in Kafka transactions.
    ExactlyOnce {
        /// `transactional.id` (`pg-cdc-<connector>-<topic.prefix>-0`).
        transactional_id: String,
        /// `offsets.storage.topic`.
        offsets_topic: String,
        /// `transaction.boundary`.
        boundary: Boundary,
    },
}

impl SourceDelivery {
    /// Reads Kafka Connect's exactly-once source settings:
    /// `exactly.once.source.support` (`enabled` default, `disabled`),
    /// `exactly.once.support` (`requested` / `required`),
    /// `transaction.boundary` (`poll` / `interval`),
    /// `transaction.boundary.interval.ms`, `offsets.storage.topic`.
    pub fn from_config(config: &ConnectorConfig) -> Result<Self, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Property {
            connector: config.name.clone(),
            key: key.into(),
            reason,
        };
        let get = |key: &str| config.props.get(key).map(|v| v.trim().to_ascii_lowercase());
        let enabled = match get("exactly.once.source.support").as_deref() {
            None | Some("enabled") => true,
            Some("disabled") => false,
            Some(other) => {
                return Err(bad(
                    "exactly.once.source.support",
                    format!("`{other}` is not one of enabled, disabled"),
                ))
            }
        };
        match get("exactly.once.support").as_deref() {
            None | Some("requested") => {}
            Some("required") if !enabled => {
                return Err(bad(
                    "exactly.once.support",
                    "`required`, but exactly.once.source.support=disabled; enable it or request \
                     at-least-once with exactly.once.support=requested"
                        .into(),
                ))
            }
            Some("required") => {}
            Some(other) => {
                return Err(bad(
                    "exactly.once.support",
                    format!("`{other}` is not one of requested, required"),
                ))
            }
        }
        if !enabled {
            return Ok(Self::AtLeastOnce);
        }
        let boundary = match get("transaction.boundary").as_deref() {
            None | Some("poll") => Boundary::Poll,
            Some("interval") => {
                let raw = config
                    .props
                    .get("transaction.boundary.interval.ms")
                    .map(String::as_str)
                    .unwrap_or("60000");
                let ms: u64 = raw
                    .trim()
                    .parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        bad(
                            "transaction.boundary.interval.ms",
                            format!("`{raw}` is not a positive number of milliseconds"),
                        )
                    })?;
                Boundary::Interval(Duration::from_millis(ms))
            }
            Some("connector") => {
                return Err(bad(
                    "transaction.boundary",
                    "`connector`: the PostgreSQL source does not define its own transaction \
                     boundaries (neither does Debezium's); use poll or interval"
                        .into(),
                ))
            }
            Some(other) => {
                return Err(bad(
                    "transaction.boundary",
                    format!("`{other}` is not one of poll, interval"),
                ))
            }
        };
        Ok(Self::ExactlyOnce {
            // Like Kafka Connect's offset key (connector name + Debezium's
            // server name), so a connector re-created under the same name
            // for another database / prefix does not inherit its offsets.
            transactional_id: format!(
                "pg-cdc-{}-{}-0",
                config.name,
                config
                    .props
                    .get("topic.prefix")
                    .map(String::as_str)
                    .unwrap_or("")
            ),
            offsets_topic: config
                .props
                .get("offsets.storage.topic")
                .cloned()
                .unwrap_or_else(|| DEFAULT_OFFSETS_TOPIC.into()),
            boundary,
        })
    }
}

/// One record ready for Kafka.
#[derive(Debug, Clone)]
struct Outgoing {
    topic: Arc<str>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// `__debezium.newkey` / `__debezium.oldkey` on primary-key changes.
    headers: Vec<Header>,
}

impl Outgoing {
    /// Key and value bytes.
    fn len(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }

    fn record(&self) -> Record<'_> {
        let mut record = Record::to(&self.topic);
        if let Some(k) = self.key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = self.value.as_deref() {
            record = record.value(v);
        }
        if !self.headers.is_empty() {
            record = record.headers(&self.headers);
        }
        record
    }
}

/// The last change event of a batch: its position and source commit time.
#[derive(Debug, Clone, Copy)]
struct Progress {
    position: Position,
    source_ts_ms: i64,
}

/// Turns source events into Kafka records: topic naming and creation,
/// encoding, dead-lettering what cannot be encoded, heartbeats,
/// transaction metadata and metrics. Shared by both delivery modes.
struct Router {
    name: String,
    options: Options,
    kafka: KafkaConfig,
    converter: Converter,
    /// Buffers of sent records, reused for the next ones.
    spare: Spare,
    admin: TopicAdmin,
    /// Topics created or checked this run.
    ensured: HashSet<String>,
    /// The last change event's table and its topic (created or checked):
    /// consecutive events of one table skip naming and looking up the
    /// topic again.
    last_topic: Option<(Arc<TableSchema>, Arc<str>)>,
    dlq: DeadLetters,
    metrics: Arc<Metrics>,
    counters: EventCounters,
    snapshot_rows: HashMap<TableId, Gauge>,
    heartbeat_topic: Arc<str>,
    transaction_topic: Arc<str>,
    new_topics: NewTopics,
}

impl Router {
    /// Creates `topic` if needed (once per run). Records the broker would
    /// refuse for the topic's configs (no key on a compacted topic) are
    /// refused one by one by kafka-io's producers, and dead-lettered.
    async fn topic(&mut self, topic: &str) -> Result<()> {
        if self.ensured.contains(topic) {
            return Ok(());
        }
        let status = self
            .admin
            .ensure_topic(&self.kafka.topic_creation.spec_for(topic))
            .await?;
        if matches!(status, TopicStatus::Created) {
            self.new_topics.announce();
        }
        self.ensured.insert(topic.to_string());
        Ok(())
    }

    /// Appends the records of `event` to `out`; returns the progress a
    /// change event makes.
    async fn route(
        &mut self,
        event: SourceEvent,
        out: &mut Vec<Outgoing>,
    ) -> Result<Option<Progress>> {
        match event {
            SourceEvent::Change(ev) => self.change(ev, out).await,
            SourceEvent::Heartbeat(h) => {
                let rec = heartbeat_record(&self.options, h.ts_ms);
                let topic = self.heartbeat_topic.clone();
                self.metadata_record(topic, rec, out).await
            }
            SourceEvent::TransactionBegin(m) => {
                self.marker(TransactionStatus::Begin, &m, out).await
            }
            SourceEvent::TransactionEnd(m) => self.marker(TransactionStatus::End, &m, out).await,
            _ => Ok(None),
        }
    }

    async fn marker(
        &mut self,
        status: TransactionStatus,
        m: &TransactionMarker,
        out: &mut Vec<Outgoing>,
    ) -> Result<Option<Progress>> {
        let collections: Vec<(String, u64)> = m
            .data_collections
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .collect();
        let rec = transaction_record(
            &self.options,
            status,
            &m.id,
            m.event_count,
            &collections,
            m.ts_us / 1000,
        );
        let topic = self.transaction_topic.clone();
        self.metadata_record(topic, rec, out).await
    }

    /// Queues a heartbeat or transaction-metadata record (no source progress).
    async fn metadata_record(
        &mut self,
        topic: Arc<str>,
        rec: EncodedRecord,
        out: &mut Vec<Outgoing>,
    ) -> Result<Option<Progress>> {
        self.topic(&topic).await?;
        out.push(Outgoing {
            topic,
            key: rec.key,
            value: rec.value,
            headers: Vec::new(),
        });
        Ok(None)
    }

    async fn change(
        &mut self,
        ev: ChangeEvent,
        out: &mut Vec<Outgoing>,
    ) -> Result<Option<Progress>> {
        let progress = Progress {
            position: ev.position,
            source_ts_ms: ev.source.ts_us / 1000,
        };
        let topic = match (&ev.table, &self.last_topic) {
            (Some(t), Some((last, topic))) if ev.op != Op::Message && Arc::ptr_eq(t, last) => {
                topic.clone()
            }
            _ => {
                let Some(name) = topic_name(&ev, &self.options) else {
                    return Ok(Some(progress));
                };
                self.topic(&name).await?;
                let topic: Arc<str> = name.into();
                if let Some(t) = ev.table.as_ref().filter(|_| ev.op != Op::Message) {
                    self.last_topic = Some((t.clone(), topic.clone()));
                }
                topic
            }
        };
        let encoded = match self
            .converter
            .encode_reusing(&topic, &ev, &mut self.spare)
            .await
        {
            Ok(rec) => key_change_header(&ev, &self.options).map(|header| {
                let headers = match header {
                    Some((name, value)) => vec![Header::new(name, value)],
                    None => Vec::new(),
                };
                (rec, headers)
            }),
            Err(e) => Err(e),
        };
        match encoded {
            Ok((rec, headers)) => {
                let tombstone = tombstone_follows(&ev, &self.options).then(|| Outgoing {
                    topic: topic.clone(),
                    key: rec.key.clone(),
                    value: None,
                    // Debezium copies the delete's headers onto its tombstone.
                    headers: headers.clone(),
                });
                out.push(Outgoing {
                    topic,
                    key: rec.key,
                    value: rec.value,
                    headers,
                });
                out.extend(tombstone);
            }
            Err(e) => self.unconvertible(&topic, &ev, &e).await?,
        }
        self.counters.count(&ev);
        if ev.op == Op::Read {
            if let Some(table) = &ev.table {
                let gauge = match self.snapshot_rows.get(&table.id) {
                    Some(g) => g,
                    None => {
                        let g = self
                            .metrics
                            .snapshot_rows
                            .get_or_create(&SnapshotLabels {
                                connector: self.name.clone(),
                                table: table.id.to_string(),
                            })
                            .clone();
                        self.snapshot_rows.entry(table.id.clone()).or_insert(g)
                    }
                };
                gauge.inc();
            }
        }
        Ok(Some(progress))
    }

    /// Keeps a sent record's buffers for the next records.
    fn recycle(&mut self, rec: Outgoing) {
        self.spare.give(rec.key, rec.value);
    }

    /// An event the converter refused goes to `dlq_source` (nothing reached
    /// Kafka yet: the DLQ record carries the event's identity in its headers
    /// and its debug rendering as value).
    async fn unconvertible(
        &self,
        topic: &str,
        ev: &ChangeEvent,
        error: &cdc_envelope::Error,
    ) -> Result<()> {
        let record = FailedRecord {
            topic: topic.to_string(),
            partition: -1,
            offset: -1,
            key: None,
            value: Some(format!("{ev:?}").into_bytes()),
            headers: Vec::new(),
            timestamp: None,
        };
        self.dlq
            .send(
                &record,
                Stage::ValueConverter,
                self.converter.format().class_name(),
                error,
                error.kind(),
            )
            .await
    }

    /// A record Kafka refused for good (too large, invalid …) goes to the
    /// DLQ with its bytes; retriable errors are returned.
    async fn refused(&self, rec: &Outgoing, error: kafka_io::Error) -> Result<()> {
        if error.is_retriable() {
            return Err(error.into());
        }
        let record = FailedRecord {
            topic: rec.topic.to_string(),
            partition: -1,
            offset: -1,
            key: rec.key.clone(),
            value: rec.value.clone(),
            headers: rec.headers.clone(),
            timestamp: None,
        };
        self.dlq
            .send(
                &record,
                Stage::KafkaProduce,
                TASK_CLASS,
                &error,
                error.class_name(),
            )
            .await
    }
}

/// Records produced and not yet acknowledged (at-least-once), with the
/// source position each batch completes.
#[derive(Debug, Default)]
struct Pending {
    queue: VecDeque<(u64, Progress, Instant)>,
}

impl Pending {
    fn push(&mut self, last_seq: u64, progress: Progress, sent: Instant) {
        self.queue.push_back((last_seq, progress, sent));
    }

    /// The newest batch whose records are all acknowledged, and when the
    /// oldest of those batches was sent.
    fn durable(&mut self, watermark: Option<u64>) -> Option<(Progress, Instant)> {
        let wm = watermark?;
        let mut last: Option<(Progress, Instant)> = None;
        while let Some(&(seq, progress, sent)) = self.queue.front() {
            if seq > wm {
                break;
            }
            last = Some((progress, last.map_or(sent, |(_, s)| s)));
            self.queue.pop_front();
        }
        last
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Publishes the source's live progress — replication lag in bytes and
/// the rows each table's snapshot reads — once a second while the task runs.
struct SourceGauges {
    /// Held for its `Drop`: the task stops with the gauges.
    _task: AbortOnDrop,
}

impl SourceGauges {
    fn start(metrics: &Arc<Metrics>, name: &str, source: &PgSource) -> Self {
        let stats = source.stats();
        let labels = ConnectorLabels {
            connector: name.to_string(),
        };
        let lag_bytes = metrics.replication_lag_bytes.get_or_create(&labels).clone();
        let metrics = metrics.clone();
        let name = name.to_string();
        let task = AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(GAUGE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut published = 0;
            loop {
                tick.tick().await;
                if let Some(lag) = stats.lag_bytes() {
                    lag_bytes.set(i64::try_from(lag).unwrap_or(i64::MAX));
                }
                let tables = stats.snapshot_tables();
                if tables.len() != published {
                    for t in &tables {
                        let Some(rows) = t.expected_rows else {
                            continue;
                        };
                        metrics
                            .snapshot_rows_total
                            .get_or_create(&SnapshotLabels {
                                connector: name.clone(),
                                table: t.table.to_string(),
                            })
                            .set(i64::try_from(rows).unwrap_or(i64::MAX));
                    }
                    published = tables.len();
                }
            }
        }));
        Self { _task: task }
    }
}

/// How often [`SourceGauges`] publishes.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Key and value bytes of one exactly-once transaction, unless
/// `max.queue.size.in.bytes` says otherwise. Records are sent as they are
/// routed, so librdkafka holds this much at most (its copies, until
/// acknowledged), plus the quarter of it routed while the previous
/// transaction commits. 12 MiB: 300k rows end to end at 27–30k rows/s in
/// 58 MiB peak RSS, against 22–25k rows/s in 49 MiB at 6 MiB
/// (`tools/bench/e2e.sh 300000 --source-set max.queue.size.in.bytes=N`).
pub const DEFAULT_GROUP_BYTES: usize = 12 << 20;

/// `max.queue.size.in.bytes`: Debezium's byte bound on buffered change
/// events; 0 (Debezium's default, "no byte bound") means
/// [`DEFAULT_GROUP_BYTES`].
fn group_bytes(config: &ConnectorConfig) -> Result<usize> {
    let Some(v) = config.props.get("max.queue.size.in.bytes") else {
        return Ok(DEFAULT_GROUP_BYTES);
    };
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(DEFAULT_GROUP_BYTES),
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(_) => Err(ConfigError::Property {
            connector: config.name.clone(),
            key: "max.queue.size.in.bytes".into(),
            reason: format!("`{v}` is not a number of bytes (0 or a positive integer)"),
        }
        .into()),
    }
}

/// `producer.override.queue.buffering.max.kbytes` unless set: what
/// librdkafka may hold of produced, unacknowledged messages.
///
/// librdkafka's own default is 1 GB (the Java producer's `buffer.memory` is
/// 32 MB). An at-least-once source sends as fast as it reads, so that queue
/// is its only bound: 300k Debezium JSON events peaked at 119 MiB RSS with
/// the default queue; with 16 MiB at 60 MiB, at the same rate (75k rows/s;
/// 6 MiB slowed it to 59k; `tools/bench/source.sh 300000 --source-set
/// exactly.once.source.support=disabled`). An exactly-once source holds at
/// most one transaction there, so the bound is never below its group.
///
/// `producer.override.linger.ms` unless set: [`SOURCE_LINGER_MS`].
fn producer_defaults(
    props: &BTreeMap<String, String>,
    group_bytes: usize,
) -> BTreeMap<String, String> {
    const KEY: &str = "producer.override.queue.buffering.max.kbytes";
    let mut props = props.clone();
    let kbytes = (16 * 1024).max(group_bytes.div_ceil(1024) + 1024);
    props
        .entry(KEY.into())
        .or_insert_with(|| kbytes.to_string());
    props
        .entry("producer.override.linger.ms".into())
        .or_insert_with(|| SOURCE_LINGER_MS.to_string());
    props
}

/// The source's producer `linger.ms` (kafka-io's default is 5, as in
/// librdkafka and the Java producer). Every exactly-once commit waits for
/// its last, partly filled batches, so at low rates each transaction pays
/// the linger, and the events that arrive meanwhile wait for that commit.
/// Measured with `cargo xtask bench --no-build --skip-debezium --rows
/// 200000 --source-set producer.override.linger.ms=N`, four alternating
/// runs each (docs/benchmarks.md): at 1k rows/s, 5 ms gave p50 26–30 ms
/// and p99 73–93 ms, 2 ms p50 19–23 ms and p99 59–75 ms, with the same
/// throughput, CPU and end-to-end rate, and a 10k rows/s tail no longer
/// than before (p99 96–241 against 94–369 ms). 0 ms was worse at 10k
/// rows/s (p99 649 and 917 ms): without lingering the batches are too
/// small for the five requests a partition may have in flight.
pub const SOURCE_LINGER_MS: u32 = 2;

/// Latency and lag gauges of one connector.
struct Observed {
    produce_latency: prometheus_client::metrics::histogram::Histogram,
    lag_ms: Gauge,
}

impl Observed {
    fn new(metrics: &Metrics, name: &str) -> Self {
        let labels = ConnectorLabels {
            connector: name.to_string(),
        };
        Self {
            produce_latency: metrics
                .produce_latency_seconds
                .get_or_create(&labels)
                .clone(),
            lag_ms: metrics.replication_lag_ms.get_or_create(&labels).clone(),
        }
    }

    fn durable(&self, progress: Progress, sent: Instant) {
        self.produce_latency.observe(sent.elapsed().as_secs_f64());
        self.lag_ms.set((now_ms() - progress.source_ts_ms).max(0));
    }
}

/// Runs the source connector until `shutdown` turns true or it fails.
pub async fn run_source(
    config: ConnectorConfig,
    ctx: TaskContext,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let name = config.name.clone();
    let source_config = SourceConfig::from_properties(&config.props)?;
    let delivery = SourceDelivery::from_config(&config)?;
    let options = Options::from_map(&config.props)?;
    let group_bytes = group_bytes(&config)?;
    let kafka = KafkaConfig::from_properties(&producer_defaults(&config.props, group_bytes))?;
    // The DLQ writer (its topic ensured, its producer created) is set up
    // while the exactly-once producer starts: ≈ 110 ms of startup each.
    let reporter = ErrorReporter::new(&kafka, &name, 0);
    let batch = config
        .props
        .get("max.batch.size")
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Property {
                    connector: name.clone(),
                    key: "max.batch.size".into(),
                    reason: format!("`{v}` is not a positive number of events"),
                })
        })
        .transpose()?
        .unwrap_or(2048);
    std::fs::create_dir_all(&ctx.data_dir).map_err(|source| Error::Io {
        context: format!("creating data directory {}", ctx.data_dir.display()),
        source,
    })?;
    let file_store = FileOffsetStore::new(ctx.data_dir.join(format!("{name}.source-offsets")));
    let converter = Converter::from_config(&config, &options)?;
    let admin = TopicAdmin::new(&kafka)?;
    let router = |reporter: Arc<ErrorReporter>| Router {
        name: name.clone(),
        heartbeat_topic: heartbeat_topic(
            &options,
            config
                .props
                .get("topic.heartbeat.prefix")
                .map(String::as_str),
        )
        .into(),
        transaction_topic: transaction_topic(
            &options,
            config.props.get("topic.transaction").map(String::as_str),
        )
        .into(),
        converter,
        spare: Spare::new(2 * SEND_STEP),
        admin,
        options,
        kafka: kafka.clone(),
        ensured: HashSet::new(),
        last_topic: None,
        dlq: DeadLetters::new(reporter.clone(), ctx.metrics.clone(), &name),
        counters: EventCounters::new(ctx.metrics.clone(), &name),
        metrics: ctx.metrics.clone(),
        snapshot_rows: HashMap::new(),
        new_topics: ctx.new_topics.clone(),
    };
    match delivery {
        SourceDelivery::AtLeastOnce => {
            let reporter = Arc::new(reporter.await?);
            let router = router(reporter.clone());
            let source = PgSource::start(source_config, file_store).await?;
            let _gauges = started(&ctx, &name, &source, "at-least-once");
            at_least_once(router, source, &kafka, reporter, ctx, shutdown, batch).await
        }
        SourceDelivery::ExactlyOnce {
            transactional_id,
            offsets_topic,
            boundary,
        } => {
            // Fences an older instance (aborting its open transaction)
            // before the committed offset is read.
            let start = async {
                let t = Instant::now();
                let producer =
                    TransactionalProducer::new(&kafka, &transactional_id, &offsets_topic).await?;
                let init_ms = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let committed = producer.last_committed_position().await?;
                let read_ms = t.elapsed().as_secs_f64() * 1e3;
                Ok::<_, kafka_io::Error>((producer, committed, init_ms, read_ms))
            };
            let (reporter, (producer, committed, init_ms, read_ms)) =
                tokio::try_join!(reporter, start)?;
            let router = router(Arc::new(reporter));
            let initial = match committed {
                Some(bytes) => parse_offset(&bytes)?,
                // First exactly-once start: continue from what an
                // at-least-once run of this connector stored, if any.
                None => file_store.load().await?,
            };
            tracing::info!(
                connector = %name, %transactional_id, %offsets_topic,
                offsets = ?initial, init_ms, read_ms,
                "exactly-once source: committed offsets read"
            );
            let (store, requests) = TxnOffsetStore::new(initial.clone());
            // Up to a queue's worth of events gathered while a transaction
            // commits goes into the next one.
            let group = GroupLimit {
                events: source_config.max_queue_size.max(batch),
                step: batch,
                bytes: group_bytes,
            };
            let source = PgSource::start(source_config, store).await?;
            let _gauges = started(&ctx, &name, &source, "exactly-once");
            let eos = ExactlyOnce {
                producer,
                requests,
                committed: initial.map(|o| o.to_text()),
                boundary,
                batch,
                group,
                typical: 0,
            };
            eos.run(router, source, ctx, shutdown).await
        }
    }
}

fn started(ctx: &TaskContext, name: &str, source: &PgSource, mode: &str) -> SourceGauges {
    ctx.board.set(name, ConnectorState::Running);
    let gauges = SourceGauges::start(&ctx.metrics, name, source);
    tracing::info!(
        connector = %name, delivery = mode, tables = ?source.info().tables,
        plan = ?source.info().plan, "source started"
    );
    gauges
}

fn parse_offset(bytes: &[u8]) -> Result<Option<SourceOffset>> {
    let text = std::str::from_utf8(bytes).map_err(|_| pg_logical::Error::OffsetStore {
        detail: "the committed offset record is not UTF-8 text".into(),
    })?;
    let offset = SourceOffset::from_text(text)?;
    Ok((offset != SourceOffset::default()).then_some(offset))
}

async fn at_least_once(
    mut router: Router,
    mut source: PgSource,
    kafka: &KafkaConfig,
    reporter: Arc<ErrorReporter>,
    mut ctx: TaskContext,
    mut shutdown: watch::Receiver<bool>,
    batch: usize,
) -> Result<()> {
    let name = router.name.clone();
    let producer = Producer::new(
        kafka,
        ProducerOptions {
            reporter: Some(reporter),
            executing_class: TASK_CLASS.into(),
            ..ProducerOptions::default()
        },
    )?;
    let observed = Observed::new(&ctx.metrics, &name);
    let mut pending = Pending::default();
    let mut seq: u64 = 0;
    let mut buf: Vec<SourceEvent> = Vec::with_capacity(batch);
    let mut out: Vec<Outgoing> = Vec::with_capacity(batch);
    let mut watermark = producer.subscribe_watermark();
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
            got = source.recv_many(&mut buf, batch) => {
                if got? == 0 {
                    tracing::info!(connector = %name, "source finished (nothing more to stream)");
                    break;
                }
                let sent = Instant::now();
                let mut last = None;
                for event in buf.drain(..) {
                    if let Some(p) = router.route(event, &mut out).await? {
                        last = Some(p);
                    }
                }
                for rec in out.drain(..) {
                    seq += 1;
                    producer.send(seq, &rec.record()).await?;
                    router.recycle(rec);
                }
                // A dead-lettered event completes with the records before it.
                if let Some(p) = last {
                    pending.push(seq, p, sent);
                }
            }
        }
        if let Some((progress, sent)) = pending.durable(producer.watermark()) {
            observed.durable(progress, sent);
            source.ack(progress.position);
        }
        if let Some(e) = producer.failure() {
            return Err(e.into());
        }
    }

    // Clean stop: wait for Kafka, acknowledge what is durable, release the slot.
    let wm = producer.flush(Duration::from_secs(30)).await?;
    if let Some((progress, sent)) = pending.durable(wm) {
        observed.durable(progress, sent);
        source.ack(progress.position);
    }
    source.stop().await?;
    Ok(())
}

/// An offset the replication source wants stored, and where to say it is.
type StoreRequest = (
    SourceOffset,
    oneshot::Sender<std::result::Result<(), String>>,
);

/// The exactly-once source's [`OffsetStore`]: `load` returns the offset the
/// last committed Kafka transaction carried; `store` hands the offset to the
/// task and returns once a Kafka transaction carrying it committed (the
/// source advances the slot only after that).
#[derive(Debug, Clone)]
pub struct TxnOffsetStore {
    initial: Option<SourceOffset>,
    requests: mpsc::Sender<StoreRequest>,
}

impl TxnOffsetStore {
    fn new(initial: Option<SourceOffset>) -> (Self, mpsc::Receiver<StoreRequest>) {
        let (requests, rx) = mpsc::channel(4);
        (Self { initial, requests }, rx)
    }
}

impl OffsetStore for TxnOffsetStore {
    async fn load(&self) -> pg_logical::Result<Option<SourceOffset>> {
        Ok(self.initial.clone())
    }

    async fn store(&self, offset: &SourceOffset) -> pg_logical::Result<()> {
        let gone = || pg_logical::Error::OffsetStore {
            detail: "the Kafka transaction writer stopped before the offset was committed".into(),
        };
        let (reply, committed) = oneshot::channel();
        self.requests
            .send((offset.clone(), reply))
            .await
            .map_err(|_| gone())?;
        committed
            .await
            .map_err(|_| gone())?
            .map_err(|detail| pg_logical::Error::OffsetStore { detail })
    }
}

/// The exactly-once loop's state.
struct ExactlyOnce {
    producer: TransactionalProducer,
    requests: mpsc::Receiver<StoreRequest>,
    /// The offset text of the last committed transaction.
    committed: Option<String>,
    boundary: Boundary,
    batch: usize,
    /// How large one transaction grows (a [`COMMIT_SHARE`] of it is
    /// routed while the previous one commits).
    group: GroupLimit,
    /// Average key and value bytes of the last transaction's records.
    typical: usize,
}

/// The bound on one exactly-once transaction.
#[derive(Debug, Clone, Copy)]
struct GroupLimit {
    /// At most this many events (`max.queue.size`) ...
    events: usize,
    /// ... received this many at a time (`max.batch.size`) ...
    step: usize,
    /// ... while under this many key and value bytes.
    bytes: usize,
}

impl GroupLimit {
    /// How many more events to take now into a group that holds `records`
    /// records of `bytes` key and value bytes: what the byte budget has
    /// room for at the records' average size so far — `typical` bytes
    /// (0: unknown) for an empty group — so one step does not overshoot it
    /// by a whole `max.batch.size`; at least one; 0 when the group is full.
    fn room(self, records: usize, bytes: usize, typical: usize) -> usize {
        if bytes >= self.bytes {
            return 0;
        }
        let average = match records {
            0 => typical,
            n => bytes.div_ceil(n),
        };
        let by_bytes = match average {
            0 => usize::MAX,
            a => ((self.bytes - bytes) / a).max(1),
        };
        self.events
            .saturating_sub(records)
            .min(self.step)
            .min(by_bytes)
    }
}

impl ExactlyOnce {
    /// The loop: route the source's events and send them into one
    /// transaction while the source has them ready (up to the group limit),
    /// hand the source the position, commit with the offset it returns —
    /// and, while the broker commits, route the first events of the next
    /// transaction (the commit is mostly waiting: for the last produce
    /// acknowledgements and the coordinator's `EndTxn`).
    async fn run(
        mut self,
        mut router: Router,
        mut source: PgSource,
        mut ctx: TaskContext,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let name = router.name.clone();
        let observed = Observed::new(&ctx.metrics, &name);
        let mut buf: Vec<SourceEvent> = Vec::with_capacity(self.batch);
        let mut poll = Poll {
            out: Vec::with_capacity(self.batch),
            last: None,
            started: Instant::now(),
            bytes: 0,
        };
        let result = 'run: loop {
            if ctx.wait_while_paused(&name, &mut shutdown).await {
                break Ok(());
            }
            if poll.is_empty() {
                // Wait for the first events of the next transaction.
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() { break Ok(()); }
                        continue;
                    }
                    _ = ctx.pause.changed() => continue,
                    Some((_, reply)) = self.requests.recv() => {
                        // Not after one of our acknowledgements: everything
                        // acknowledged is already committed.
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    got = source.recv_many(&mut buf, self.batch) => {
                        match got {
                            Ok(0) => {
                                tracing::info!(connector = %name, "source finished (nothing more to stream)");
                                break Ok(());
                            }
                            Ok(_) => {}
                            Err(e) => break Err(e.into()),
                        }
                    }
                }
                if let Err(e) = poll.route(&mut router, &mut buf).await {
                    break Err(e);
                }
            }
            if let Boundary::Interval(every) = self.boundary {
                // Keep adding polls to this transaction until the interval ends.
                let deadline = tokio::time::Instant::from_std(poll.started + every);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = shutdown.changed() => break,
                        got = source.recv_many(&mut buf, self.batch) => {
                            match got {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) => break 'run Err(e.into()),
                            }
                            if let Err(e) = poll.route(&mut router, &mut buf).await {
                                break 'run Err(e);
                            }
                        }
                    }
                }
            }
            if poll.is_empty() {
                continue;
            }
            let started = poll.started;
            match self
                .transaction(&mut router, &mut source, &mut buf, &mut poll)
                .await
            {
                Ok(Some(p)) => observed.durable(p, started),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        // Stop the source; it stores its final offset, which needs no new
        // transaction (everything it covers was committed).
        let stop = source.stop();
        tokio::pin!(stop);
        let stopped = loop {
            tokio::select! {
                r = &mut stop => break r,
                Some((_, reply)) = self.requests.recv() => {
                    // After a clean stop everything acknowledged was committed.
                    // After an error an acknowledged position may not have
                    // been: the source must not confirm it to the slot.
                    let answer = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(format!("the source task failed before committing: {e}")),
                    };
                    let _ = reply.send(answer);
                }
            }
        };
        result?;
        stopped?;
        Ok(())
    }

    /// Sends `poll`'s records in one transaction — and, with
    /// `transaction.boundary=poll`, whatever else the source has ready, routed
    /// and sent as it comes, up to the group limit — then commits it with the
    /// offset the source computes for the last change (acknowledged here).
    /// While the commit runs, the next events are routed into `poll` (up to
    /// the group limit); they go into the next transaction. Returns the
    /// progress of the last change committed.
    async fn transaction(
        &mut self,
        router: &mut Router,
        source: &mut PgSource,
        buf: &mut Vec<SourceEvent>,
        poll: &mut Poll,
    ) -> Result<Option<Progress>> {
        let t0 = Instant::now();
        let limit = self.group;
        let mut txn = self.producer.begin()?;
        // Sending as the events are routed lets librdkafka compress and ship
        // them meanwhile, so the commit only waits for the tail: the commit
        // used to wait 16 ms (median) for a group's deliveries, with the
        // task idle once the next group was routed.
        let mut sent = Sent::default();
        let mut last = None;
        loop {
            last = poll.last.take().or(last);
            sent.records += poll.out.len();
            sent.bytes += std::mem::take(&mut poll.bytes);
            for rec in poll.out.drain(..) {
                if let Err(e) = txn.send(&rec.record()).await {
                    router.refused(&rec, e).await?;
                }
                router.recycle(rec);
            }
            if !matches!(self.boundary, Boundary::Poll) {
                break;
            }
            let room = limit
                .room(sent.records, sent.bytes, self.typical)
                .min(SEND_STEP);
            if room == 0 {
                break;
            }
            // Only what is ready now: an idle source commits at once. A
            // source error or end is left for the next receive (the stream
            // repeats it).
            match source.recv_many(buf, room).now_or_never() {
                Some(Ok(n)) if n > 0 => {
                    if let Err(e) = poll.route(router, buf).await {
                        txn.abort().await?;
                        return Err(e);
                    }
                }
                _ => break,
            }
        }
        if sent.records > 0 {
            self.typical = sent.bytes.div_ceil(sent.records);
        }
        let t1 = Instant::now();
        let (text, reply) = match last {
            // Heartbeats / transaction markers only: nothing moves the offset.
            None => match self.committed.clone() {
                Some(text) => (text, None),
                // No offset yet to commit them with; they carry no data.
                None => {
                    txn.abort().await?;
                    return Ok(None);
                }
            },
            Some(progress) => {
                // Acknowledged only now, after the sends: the source's offset
                // store blocks its stream until the commit, and acknowledging
                // before sending (measured) starves the next poll: 175 → 888
                // transactions for 300k rows, half the throughput.
                source.ack(progress.position);
                match tokio::time::timeout(OFFSET_WAIT, self.requests.recv()).await {
                    Ok(Some((offset, reply))) => (offset.to_text(), Some(reply)),
                    // The source stopped (its error comes with the next receive).
                    Ok(None) => {
                        txn.abort().await?;
                        return Ok(None);
                    }
                    Err(_) => {
                        tracing::warn!(
                            connector = %router.name, position = ?progress.position,
                            "no offset came back for an acknowledged position within \
                             {OFFSET_WAIT:?}; committing the transaction with the previous \
                             offset (a crash now may duplicate these records)"
                        );
                        (self.committed.clone().unwrap_or_default(), None)
                    }
                }
            }
        };
        let t2 = Instant::now();
        let position = text.clone().into_bytes();
        let commit = txn.commit(&position);
        tokio::pin!(commit);
        // Route what arrives while the broker commits. A source error or end
        // is left for the next receive (the stream repeats it).
        let mut routing = true;
        let mut route_error = None;
        let meanwhile = GroupLimit {
            bytes: limit.bytes / COMMIT_SHARE,
            ..limit
        };
        let committed = loop {
            let room = meanwhile.room(poll.out.len(), poll.bytes, self.typical);
            tokio::select! {
                biased;
                r = &mut commit => break r,
                got = source.recv_many(buf, room), if routing && room > 0 => {
                    match got {
                        Ok(n) if n > 0 => {
                            if let Err(e) = poll.route(router, buf).await {
                                route_error = Some(e);
                                routing = false;
                            }
                        }
                        _ => routing = false,
                    }
                }
            }
        };
        match committed {
            Ok(()) => {
                tracing::debug!(
                    records = sent.records,
                    bytes = sent.bytes,
                    send_ms = (t1 - t0).as_secs_f64() * 1e3,
                    offset_ms = (t2 - t1).as_secs_f64() * 1e3,
                    commit_ms = t2.elapsed().as_secs_f64() * 1e3,
                    routed_meanwhile = poll.out.len(),
                    "transaction committed"
                );
                self.committed = Some(text);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                route_error.map_or(Ok(last), Err)
            }
            Err(e) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(format!("the Kafka transaction failed: {e}")));
                }
                Err(e.into())
            }
        }
    }
}

/// Of a group's byte budget, the share routed while the previous
/// transaction commits (1/`COMMIT_SHARE`); the rest is routed and sent
/// into the open transaction.
const COMMIT_SHARE: usize = 4;

/// Events routed at a time into an open transaction before their records
/// are sent: few enough that the records' buffers come back to
/// [`Spare`] (which keeps as many) before the next step needs them.
const SEND_STEP: usize = 256;

/// Records and key/value bytes sent in the open transaction.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    records: usize,
    bytes: usize,
}

/// The events of one poll, routed and waiting for their transaction.
struct Poll {
    out: Vec<Outgoing>,
    /// The progress of the last change event among them.
    last: Option<Progress>,
    /// When the first of them was received.
    started: Instant,
    /// Key and value bytes of `out`.
    bytes: usize,
}

impl Poll {
    fn is_empty(&self) -> bool {
        self.out.is_empty() && self.last.is_none()
    }

    /// Routes `buf`'s events into this poll (starting its clock if it was
    /// empty).
    async fn route(&mut self, router: &mut Router, buf: &mut Vec<SourceEvent>) -> Result<()> {
        if self.is_empty() {
            self.started = Instant::now();
        }
        let before = self.out.len();
        for event in buf.drain(..) {
            if let Some(p) = router.route(event, &mut self.out).await? {
                self.last = Some(p);
            }
        }
        self.bytes += self.out[before..].iter().map(Outgoing::len).sum::<usize>();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_envelope::Lsn;

    fn progress(lsn: u64, seq: u64) -> Progress {
        Progress {
            position: Position {
                commit_lsn: Lsn(lsn),
                seq,
            },
            source_ts_ms: 0,
        }
    }

    #[test]
    fn pending_acks_only_fully_acknowledged_positions() {
        let t = Instant::now();
        let mut p = Pending::default();
        p.push(1, progress(100, 0), t);
        p.push(3, progress(100, 1), t); // a delete + tombstone: seqs 2 and 3
        p.push(3, progress(100, 2), t); // dead-lettered: completes with seq 3
        p.push(4, progress(200, 0), t);
        let pos = |d: Option<(Progress, Instant)>| d.map(|(p, _)| p.position);
        assert_eq!(pos(p.durable(None)), None);
        assert_eq!(pos(p.durable(Some(2))), Some(progress(100, 0).position));
        assert_eq!(pos(p.durable(Some(3))), Some(progress(100, 2).position));
        assert_eq!(pos(p.durable(Some(3))), None);
        assert_eq!(pos(p.durable(Some(10))), Some(progress(200, 0).position));
    }

    fn config(pairs: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "src".into(),
            kind: crate::status::ConnectorKind::Source,
            props: std::iter::once(("topic.prefix", "srv"))
                .chain(pairs.iter().copied())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn next_transaction_gathers_up_to_the_queue_size_and_byte_budget() {
        assert_eq!(group_bytes(&config(&[])).ok(), Some(DEFAULT_GROUP_BYTES));
        let zero = config(&[("max.queue.size.in.bytes", "0")]);
        assert_eq!(group_bytes(&zero).ok(), Some(DEFAULT_GROUP_BYTES));
        let set = config(&[("max.queue.size.in.bytes", "1000")]);
        assert_eq!(group_bytes(&set).ok(), Some(1000));
        let bad = config(&[("max.queue.size.in.bytes", "-1")]);
        let err = group_bytes(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("max.queue.size.in.bytes"), "{err}");

        let limit = GroupLimit {
            events: 10,
            step: 4,
            bytes: 1000,
        };
        assert_eq!(limit.room(0, 0, 0), 4, "one step at a time");
        assert_eq!(limit.room(0, 0, 400), 2, "the last group's record size");
        let rec = Outgoing {
            topic: "t".into(),
            key: Some(vec![0; 5]),
            value: Some(vec![0; 15]),
            headers: Vec::new(),
        };
        assert_eq!(limit.room(8, 8 * rec.len(), 0), 2, "the event bound");
        assert_eq!(limit.room(4, 1000, 0), 0, "the byte budget is spent");
        // 4 records of 200 bytes: room for one more in the last 200 bytes.
        assert_eq!(limit.room(4, 800, 0), 1, "the budget at the average size");
        assert_eq!(limit.room(4, 990, 0), 1, "at least one while under budget");
        assert_eq!(limit.room(10, 10, 0), 0, "the event bound is reached");
    }

    #[test]
    fn delivery_defaults_to_exactly_once_per_poll() {
        let d = SourceDelivery::from_config(&config(&[])).unwrap_or(SourceDelivery::AtLeastOnce);
        assert_eq!(
            d,
            SourceDelivery::ExactlyOnce {
                transactional_id: "pg-cdc-src-srv-0".into(),
                offsets_topic: DEFAULT_OFFSETS_TOPIC.into(),
                boundary: Boundary::Poll,
            }
        );
        let d = SourceDelivery::from_config(&config(&[
            ("transaction.boundary", "interval"),
            ("transaction.boundary.interval.ms", "250"),
            ("offsets.storage.topic", "offs"),
        ]))
        .ok();
        assert!(matches!(
            d,
            Some(SourceDelivery::ExactlyOnce { boundary: Boundary::Interval(i), ref offsets_topic, .. })
                if i == Duration::from_millis(250) && offsets_topic == "offs"
        ));
    }

    #[test]
    fn delivery_settings_are_checked_by_key() {
        let d =
            SourceDelivery::from_config(&config(&[("exactly.once.source.support", "disabled")]));
        assert!(matches!(d, Ok(SourceDelivery::AtLeastOnce)));
        for (key, value) in [
            ("exactly.once.source.support", "sometimes"),
            ("transaction.boundary", "connector"),
            ("transaction.boundary.interval.ms", "-1"),
        ] {
            let mut pairs = vec![(key, value)];
            if key == "transaction.boundary.interval.ms" {
                pairs.push(("transaction.boundary", "interval"));
            }
            match SourceDelivery::from_config(&config(&pairs)) {
                Err(ConfigError::Property { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}={value}: expected an error naming the key, got {other:?}"),
            }
        }
        let both = SourceDelivery::from_config(&config(&[
            ("exactly.once.source.support", "disabled"),
            ("exactly.once.support", "required"),
        ]));
        assert!(
            matches!(both, Err(ConfigError::Property { ref key, .. }) if key == "exactly.once.support")
        );
    }

    #[test]
    fn producer_queue_is_bounded_unless_the_user_bounds_it() {
        let none = BTreeMap::new();
        let key = "producer.override.queue.buffering.max.kbytes";
        assert_eq!(producer_defaults(&none, DEFAULT_GROUP_BYTES)[key], "16384");
        // Never below an exactly-once group (plus room for its markers).
        assert_eq!(producer_defaults(&none, 64 << 20)[key], "66560");
        let user: BTreeMap<String, String> = [(key.to_string(), "2048".to_string())].into();
        assert_eq!(producer_defaults(&user, DEFAULT_GROUP_BYTES)[key], "2048");
        let kafka = KafkaConfig::from_properties(&producer_defaults(
            &[("bootstrap.servers".to_string(), "127.0.0.1:9".to_string())].into(),
            DEFAULT_GROUP_BYTES,
        ))
        .expect("valid");
        let pc = kafka.producer_config().expect("producer");
        assert_eq!(pc.get("queue.buffering.max.kbytes"), Some("16384"));
        assert_eq!(pc.get("linger.ms"), Some("2"));
    }

    #[test]
    fn source_linger_is_short_unless_the_user_sets_one() {
        let key = "producer.override.linger.ms";
        let none = BTreeMap::new();
        assert_eq!(
            producer_defaults(&none, DEFAULT_GROUP_BYTES)[key],
            SOURCE_LINGER_MS.to_string()
        );
        let user: BTreeMap<String, String> = [
            ("bootstrap.servers".to_string(), "127.0.0.1:9".to_string()),
            (key.to_string(), "20".to_string()),
        ]
        .into();
        let props = producer_defaults(&user, DEFAULT_GROUP_BYTES);
        assert_eq!(props[key], "20");
        let pc = KafkaConfig::from_properties(&props)
            .expect("valid")
            .producer_config()
            .expect("producer");
        assert_eq!(pc.get("linger.ms"), Some("20"));
    }

    #[tokio::test]
    async fn new_topics_wake_every_subscriber_once_per_batch_of_announcements() {
        let topics = NewTopics::default();
        let mut a = topics.subscribe();
        let mut b = topics.clone().subscribe();
        assert!(!a.has_changed().expect("sender alive"));
        topics.announce();
        topics.clone().announce();
        for rx in [&mut a, &mut b] {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .expect("woken")
                .expect("sender alive");
            assert_eq!(*rx.borrow_and_update(), 2);
            assert!(!rx.has_changed().expect("sender alive"));
        }
        // Subscribed later: only announcements from then on.
        let late = topics.subscribe();
        assert!(!late.has_changed().expect("sender alive"));
    }

    #[test]
    fn empty_committed_offsets_mean_no_offsets() {
        assert_eq!(parse_offset(b"pg-cdc-offset\t1\n").ok(), Some(None));
        let text = SourceOffset {
            snapshot: None,
            acked: Some(Position {
                commit_lsn: Lsn(42),
                seq: 3,
            }),
        }
        .to_text();
        assert!(matches!(parse_offset(text.as_bytes()), Ok(Some(o)) if o.acked.is_some()));
        assert!(parse_offset(b"\xff").is_err());
    }
}
