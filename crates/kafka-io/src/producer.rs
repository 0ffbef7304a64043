//! Producers: the delivery-tracked [`Producer`] (idempotent, at-least-once
//! with an in-order watermark) and the [`TransactionalProducer`] that commits
//! a batch of records together with a source position (exactly-once).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, DeliveryResult, Producer as _, ProducerContext,
    ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Notify};

use crate::admin::TopicAdmin;
use crate::config::{KafkaConfig, ProducerEngine, TopicSpec};
use crate::delivery::DeliveryTracker;
use crate::dlq::{ErrorContext, ErrorReporter, FailedRecord, Stage};
use crate::error::{code_is_retriable, Error, Result};
use crate::native::{NativeTxn, Settings as NativeSettings};

/// A record header (value bytes kept exactly; `None` is a null header value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// A record to produce, borrowing its bytes (librdkafka copies them).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Key (partitioned with murmur2 like the Java client when set).
    pub key: Option<&'a [u8]>,
    /// Value (`None` = tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [Header],
    /// Explicit partition (else the partitioner decides).
    pub partition: Option<i32>,
    /// Timestamp in ms (else the producer's clock).
    pub timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    /// A record to `topic` with no key, value or headers.
    pub fn to(topic: &'a str) -> Self {
        Self {
            topic,
            key: None,
            value: None,
            headers: &[],
            partition: None,
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: &'a [u8]) -> Self {
        self.value = Some(value);
        self
    }

    /// Sets the headers.
    pub fn headers(mut self, headers: &'a [Header]) -> Self {
        self.headers = headers;
        self
    }

    /// Sets an explicit partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }

    fn to_failed(self) -> FailedRecord {
        FailedRecord {
            topic: self.topic.to_string(),
            partition: self.partition.unwrap_or(-1),
            offset: -1,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers.to_vec(),
            timestamp: self.timestamp,
        }
    }
}

fn rd_headers(headers: &[Header]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new_with_capacity(headers.len());
    for x in headers {
        h = h.insert(RdHeader {
            key: &x.key,
            value: x.value.as_deref(),
        });
    }
    Some(h)
}

fn base_record<'a, D: rdkafka::util::IntoOpaque>(
    r: &Record<'a>,
    opaque: D,
) -> BaseRecord<'a, [u8], [u8], D> {
    let mut b = BaseRecord::with_opaque_to(r.topic, opaque);
    if let Some(k) = r.key {
        b = b.key(k);
    }
    if let Some(v) = r.value {
        b = b.payload(v);
    }
    if let Some(p) = r.partition {
        b = b.partition(p);
    }
    if let Some(ts) = r.timestamp {
        b = b.timestamp(ts);
    }
    if let Some(h) = rd_headers(r.headers) {
        b = b.headers(h);
    }
    b
}

/// Options of a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Records sent and not yet acknowledged before [`Producer::send`] waits
    /// (backpressure). Default 200 000.
    pub max_in_flight: usize,
    /// Where records rejected for good go (`errors.tolerance`, DLQ). Without
    /// one, any record rejected for good stops the producer.
    pub reporter: Option<Arc<ErrorReporter>>,
    /// Longest pause between attempts when librdkafka's queue is full.
    pub queue_full_backoff_max: Duration,
    /// `executing_class` in DLQ headers.
    pub executing_class: String,
    /// Read each destination topic's configs once (`DescribeConfigs`) and
    /// reject, before batching, records the broker would refuse: a record
    /// without a key to a compacted topic. The broker refuses a whole batch
    /// for one such record, failing its valid batch-mates too (see
    /// [`Producer`]); checked here, only the culprit is dead-lettered.
    /// Without permission to describe a topic the check is skipped (with a
    /// warning). Default true.
    pub check_topic_configs: bool,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 200_000,
            reporter: None,
            queue_full_backoff_max: Duration::from_millis(100),
            executing_class: "kafka_io::producer::Producer".into(),
            check_topic_configs: true,
        }
    }
}

#[derive(Debug)]
struct FailedDelivery {
    seq: u64,
    code: RDKafkaErrorCode,
    message: String,
    record: FailedRecord,
    /// Reported by the broker for the record's batch (delivery report), as
    /// opposed to refused by the client before it was queued.
    from_broker: bool,
}

/// Broker errors that reject a whole produce batch (one partition's records
/// of one request) for what may be a single record in it: librdkafka fails
/// every record of the batch with the same code and does not say which one
/// was the culprit (the broker's per-record `RecordErrors` are not exposed).
fn rejects_whole_batch(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::InvalidMessage
    )
}

/// What the producer checks per topic before batching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TopicRules {
    /// `cleanup.policy` contains `compact`: the broker refuses null keys.
    requires_key: bool,
}

impl TopicRules {
    fn from_configs(configs: &std::collections::BTreeMap<String, String>) -> Self {
        Self {
            requires_key: configs
                .get("cleanup.policy")
                .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact")),
        }
    }

    /// Why the broker would refuse `record`, if it would.
    fn violation(&self, record: &Record<'_>) -> Option<String> {
        (self.requires_key && record.key.is_none()).then(|| {
            format!(
                "topic {} is compacted (cleanup.policy contains compact): the broker refuses \
                 records without a key (InvalidRecord) together with their whole batch; \
                 refused before batching",
                record.topic
            )
        })
    }
}

/// Per-topic [`TopicRules`], described once per topic and cached (also when
/// describing fails: then nothing is checked). Shared by [`Producer`] and
/// [`TransactionalProducer`].
struct TopicChecks {
    enabled: bool,
    config: KafkaConfig,
    /// Created on the first topic lookup.
    admin: tokio::sync::OnceCell<Option<TopicAdmin>>,
    rules: std::sync::RwLock<std::collections::HashMap<String, TopicRules>>,
}

impl TopicChecks {
    fn new(config: &KafkaConfig, enabled: bool) -> Self {
        Self {
            enabled,
            config: config.clone(),
            admin: tokio::sync::OnceCell::new(),
            rules: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }

    /// Why the broker would refuse `record`, if it would (see [`TopicRules`]).
    async fn violation(&self, record: &Record<'_>) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.rules(record.topic).await.violation(record)
    }

    async fn rules(&self, topic: &str) -> TopicRules {
        if let Some(r) = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
        {
            return *r;
        }
        let admin = self
            .admin
            .get_or_init(|| async {
                TopicAdmin::new(&self.config)
                    .map_err(|e| tracing::warn!(error = %e, "no admin client: topic configs are not checked before producing"))
                    .ok()
            })
            .await;
        let rules = match admin {
            Some(a) => match a.configs_within(topic, Duration::from_secs(10)).await {
                Ok(configs) => TopicRules::from_configs(&configs),
                Err(e) => {
                    tracing::warn!(topic, error = %e, "cannot read the topic's configs: records the broker may refuse are not caught before batching");
                    TopicRules::default()
                }
            },
            None => TopicRules::default(),
        };
        self.rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(topic.to_string(), rules);
        rules
    }
}

/// Bound on records handed to librdkafka and not yet resolved: an atomic
/// counter, with a [`Notify`] touched only while a sender waits (a
/// semaphore would take a lock on every release, i.e. every delivery).
#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    max: usize,
    waiting: AtomicBool,
    space: Notify,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            max: max.max(1),
            waiting: AtomicBool::new(false),
            space: Notify::new(),
        }
    }

    /// Takes one slot, waiting while `max` are taken.
    async fn acquire(&self) {
        loop {
            let n = self.count.load(Ordering::SeqCst);
            if n < self.max {
                if self
                    .count
                    .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Registered before the flag is raised and the count re-read, so
            // a release in between either is seen here or wakes us.
            notified.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if self.count.load(Ordering::SeqCst) < self.max {
                continue;
            }
            notified.await;
        }
    }

    /// Gives one slot back.
    fn release(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) && self.waiting.swap(false, Ordering::SeqCst) {
            self.space.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct Shared {
    tracker: Arc<DeliveryTracker>,
    in_flight: InFlight,
    outstanding_failures: AtomicUsize,
    /// Set once `fatal` is (checked on every send without taking the lock).
    has_fatal: AtomicBool,
    fatal: Mutex<Option<(u64, String, RDKafkaErrorCode, String)>>,
    reporter: Option<Arc<ErrorReporter>>,
    executing_class: String,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
}

impl Shared {
    fn fatal_error(&self) -> Option<Error> {
        if !self.has_fatal.load(Ordering::Acquire) {
            return None;
        }
        let f = self
            .fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.as_ref()
            .map(|(seq, topic, code, message)| Error::Delivery {
                seq: *seq,
                topic: topic.clone(),
                code: *code,
                message: message.clone(),
            })
    }

    /// Decides what happens to a record Kafka rejected: DLQ + ack, or fail.
    async fn resolve(&self, mut f: FailedDelivery) -> Result<()> {
        // A batch-level rejection fails valid batch-mates of the culprit
        // too, with the same code: dead-lettering them would drop good
        // records from the topic. Stop instead (the watermark stays before
        // the batch; nothing after it is acknowledged to the source).
        let whole_batch = f.from_broker && rejects_whole_batch(f.code);
        if whole_batch {
            f.message = format!(
                "{}; the broker rejected the record's whole batch and librdkafka fails every \
                 record of it, so the culprit cannot be told from valid batch-mates: not \
                 dead-lettered, the producer stops before it",
                f.message
            );
        }
        let err = Error::Delivery {
            seq: f.seq,
            topic: f.record.topic.clone(),
            code: f.code,
            message: f.message.clone(),
        };
        let outcome = match (&self.reporter, code_is_retriable(f.code) || whole_batch) {
            (Some(reporter), false) => {
                let ctx = ErrorContext {
                    stage: Stage::KafkaProduce,
                    executing_class: &self.executing_class,
                    error: &err,
                    exception_class: err.class_name(),
                };
                reporter.report(&f.record, &ctx).await.map(|_| ())
            }
            // Retriable errors reaching us mean librdkafka gave up
            // (message.timeout.ms): re-sending would break ordering, so stop.
            _ => Err(err),
        };
        match outcome {
            Ok(()) => {
                self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.tracker.ack(f.seq);
                Ok(())
            }
            Err(e) => {
                tracing::error!(seq = f.seq, topic = %f.record.topic, code = ?f.code, error = %e, "record failed for good; the watermark stops before it");
                self.tracker.fail(f.seq);
                let mut fatal = self
                    .fatal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if fatal.is_none() {
                    *fatal = Some((f.seq, f.record.topic, f.code, f.message));
                    self.has_fatal.store(true, Ordering::Release);
                }
                Err(e)
            }
        }
    }
}

/// Delivery callbacks: ack the tracker or queue the failure for resolution.
struct DeliveryContext {
    shared: Arc<Shared>,
    failures: mpsc::UnboundedSender<FailedDelivery>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    /// The record's registration index in the tracker (O(1) lookup).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let index = index as u64;
        match result {
            Ok(_) => {
                self.shared.tracker.ack_indexed(index);
                self.shared.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, msg)) => {
                let Some(seq) = self.shared.tracker.seq_at(index) else {
                    tracing::error!(index, "delivery report for an unknown registration");
                    self.shared.in_flight.release();
                    return;
                };
                let headers = msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| Header {
                                key: x.key.to_string(),
                                value: x.value.map(<[u8]>::to_vec),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let record = FailedRecord {
                    topic: msg.topic().to_string(),
                    partition: msg.partition(),
                    offset: -1,
                    key: msg.key().map(<[u8]>::to_vec),
                    value: msg.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp: msg.timestamp().to_millis(),
                };
                self.shared
                    .outstanding_failures
                    .fetch_add(1, Ordering::SeqCst);
                let f = FailedDelivery {
                    seq,
                    code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                    message: e.to_string(),
                    record,
                    from_broker: true,
                };
                if let Err(mpsc::error::SendError(f)) = self.failures.send(f) {
                    self.shared.tracker.fail(f.seq);
                    self.shared
                        .outstanding_failures
                        .fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        self.shared.in_flight.release();
    }
}

/// Idempotent producer with an in-order delivery watermark.
///
/// Every record carries a caller-assigned, strictly increasing sequence
/// number; [`Producer::watermark`] is the highest one with every record up
/// to it durable in Kafka (or dead-lettered). Keyed records land in the same
/// partition as with the Java client (murmur2). Needs a Tokio runtime.
///
/// Records Kafka refuses for good are dead-lettered through the
/// [`ErrorReporter`] (`errors.tolerance`) when the culprit is known: refused
/// by the client (larger than `message.max.bytes`; no key for a compacted
/// topic, checked against the topic's configs, see
/// [`ProducerOptions::check_topic_configs`]) or refused by the broker for
/// reasons that hold for every record (authorization, unknown topic). A
/// broker rejection of a whole batch (`InvalidRecord`, `MessageSizeTooLarge`,
/// `InvalidTimestamp`, `CorruptMessage`, `RecordListTooLarge`) fails every
/// record of the batch alike, valid ones included: those stop the producer
/// (the watermark stays before the batch) rather than dead-letter valid
/// records. Retriable errors are retried by librdkafka (idempotence keeps
/// the order) until `message.timeout.ms`; one that still reaches us stops
/// the producer too.
pub struct Producer {
    inner: ThreadedProducer<DeliveryContext>,
    shared: Arc<Shared>,
    backoff_max: Duration,
    checks: TopicChecks,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("watermark", &self.watermark())
            .field("in_flight", &self.shared.tracker.in_flight())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer from `config` ([`KafkaConfig::producer_config`]).
    pub fn new(config: &KafkaConfig, options: ProducerOptions) -> Result<Self> {
        let cc = config.producer_config()?;
        let shared = Arc::new(Shared {
            tracker: Arc::new(DeliveryTracker::new()),
            in_flight: InFlight::new(options.max_in_flight),
            outstanding_failures: AtomicUsize::new(0),
            has_fatal: AtomicBool::new(false),
            fatal: Mutex::new(None),
            reporter: options.reporter,
            executing_class: options.executing_class,
            acked: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<FailedDelivery>();
        let ctx = DeliveryContext {
            shared: shared.clone(),
            failures: tx,
        };
        let inner: ThreadedProducer<DeliveryContext> = cc
            .create_with_context(ctx)
            .map_err(Error::kafka("create producer"))?;
        let s = shared.clone();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                let _ = s.resolve(f).await;
                s.outstanding_failures.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Ok(Self {
            inner,
            shared,
            backoff_max: options.queue_full_backoff_max,
            checks: TopicChecks::new(config, options.check_topic_configs),
        })
    }

    /// Queues `record` with sequence number `seq` (strictly increasing).
    ///
    /// Waits while `max_in_flight` records are unacknowledged and while
    /// librdkafka's queue is full (never drops). A record rejected at once
    /// (e.g. larger than `message.max.bytes`) goes through the error
    /// reporter like a failed delivery. Fails after a record failed for good
    /// without being dead-lettered.
    pub async fn send(&self, seq: u64, record: &Record<'_>) -> Result<()> {
        if let Some(e) = self.shared.fatal_error() {
            return Err(e);
        }
        let violation = self.checks.violation(record).await;
        self.shared.in_flight.acquire().await;
        let index = match self.shared.tracker.register_indexed(seq) {
            Ok(i) => i,
            Err(e) => {
                self.shared.in_flight.release();
                return Err(e);
            }
        };
        if let Some(message) = violation {
            self.shared.in_flight.release();
            return self
                .shared
                .resolve(FailedDelivery {
                    seq,
                    code: RDKafkaErrorCode::InvalidRecord,
                    message,
                    record: record.to_failed(),
                    from_broker: false,
                })
                .await;
        }
        let Ok(opaque) = usize::try_from(index) else {
            // Unreachable on 64-bit targets; keeps 32-bit ones honest.
            self.shared.tracker.unregister(seq);
            self.shared.in_flight.release();
            return Err(Error::Closed {
                component: "producer (registration index overflow)",
            });
        };
        let mut backoff = Duration::from_micros(500);
        let mut br = base_record(record, opaque);
        loop {
            match self.inner.send(br) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    br = back;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.backoff_max);
                }
                Err((e, _)) => {
                    self.shared.in_flight.release();
                    let f = FailedDelivery {
                        seq,
                        code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                        message: e.to_string(),
                        record: record.to_failed(),
                        from_broker: false,
                    };
                    return self.shared.resolve(f).await;
                }
            }
        }
    }

    /// Highest sequence number with every record up to it acknowledged.
    pub fn watermark(&self) -> Option<u64> {
        self.shared.tracker.watermark()
    }

    /// A receiver woken whenever the watermark advances.
    pub fn subscribe_watermark(&self) -> watch::Receiver<Option<u64>> {
        self.shared.tracker.subscribe()
    }

    /// The tracker (for inspection).
    pub fn tracker(&self) -> &Arc<DeliveryTracker> {
        &self.shared.tracker
    }

    /// Records acknowledged by Kafka so far.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Relaxed)
    }

    /// Records dead-lettered (or skipped under `errors.tolerance=all`) so far.
    pub fn dead_lettered(&self) -> u64 {
        self.shared.dead_lettered.load(Ordering::Relaxed)
    }

    /// The first error that stopped the producer, if any.
    pub fn failure(&self) -> Option<Error> {
        self.shared.fatal_error()
    }

    /// Waits until every queued record is acknowledged (or resolved) and
    /// returns the watermark.
    pub async fn flush(&self, timeout: Duration) -> Result<Option<u64>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(timeout))
            .await
            .map_err(|_| Error::Closed {
                component: "producer flush task",
            })?
            .map_err(Error::kafka("flush"))?;
        while self.shared.outstanding_failures.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    operation: "producer flush",
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(e) = self.shared.fatal_error() {
            return Err(e);
        }
        Ok(self.watermark())
    }
}

/// Producer with `transactional.id`: each [`Transaction`] commits its records
/// and a source position (a record keyed by the transactional id on a
/// compacted position topic) atomically.
///
/// On restart, create it with the same `transactional.id` (this fences the
/// old instance and aborts its open transaction) and read
/// [`TransactionalProducer::last_committed_position`].
pub struct TransactionalProducer {
    engine: Engine,
    config: KafkaConfig,
    checks: TopicChecks,
    transactional_id: String,
    position_topic: String,
    timeout: Duration,
}

/// The client under a [`TransactionalProducer`] (`producer.engine`).
enum Engine {
    Librdkafka(ThreadedProducer<DefaultProducerContext>),
    Native {
        producer: NativeTxn,
        /// A transaction was dropped open: the next one aborts it first.
        abort_pending: bool,
    },
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("transactional_id", &self.transactional_id)
            .field("position_topic", &self.position_topic)
            .field("engine", &self.engine_name())
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Closed {
            component: "blocking kafka task",
        })?
}

/// Topic configs of a position topic [`TransactionalProducer::new`]
/// creates, besides one partition.
///
/// Every transaction adds a record and a commit marker to it, and the
/// broker compacts only rolled segments: with its defaults (a segment
/// rolls at 1 GiB or after 7 days, markers of cleaned transactions stay
/// 24 h) a busy connector's week of transactions stays in the active
/// segment, and a connector starting for the first time reads all of it
/// ([`read_position`]: 0.3–0.45 s per 100k offsets on the bench machine). An hour
/// per segment and an hour for markers bound that read to about two hours
/// of transactions; every connector's latest position survives compaction.
pub const POSITION_TOPIC_CONFIGS: [(&str, &str); 3] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "3600000"),
    ("delete.retention.ms", "3600000"),
];

impl TransactionalProducer {
    /// Creates the position topic if needed (1 partition,
    /// [`POSITION_TOPIC_CONFIGS`]; an existing topic is used as it is, with a
    /// warning naming each config that differs), then the producer, and
    /// initialises transactions (fencing older instances).
    pub async fn new(
        config: &KafkaConfig,
        transactional_id: &str,
        position_topic: &str,
    ) -> Result<Self> {
        let timeout = Duration::from_secs(30);
        let admin = TopicAdmin::new(config)?;
        let spec = POSITION_TOPIC_CONFIGS.iter().fold(
            TopicSpec::new(position_topic).partitions(1),
            |spec, (k, v)| spec.config(*k, *v),
        );
        admin.ensure_topic(&spec).await?;
        crate::client::dispose("admin", admin);
        let mut cc = config.producer_config()?;
        cc.set("transactional.id", transactional_id);
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        if config
            .producer_overrides
            .get("message.timeout.ms")
            .is_none()
        {
            let txn_timeout = cc
                .get("transaction.timeout.ms")
                .unwrap_or("60000")
                .to_string();
            cc.set("message.timeout.ms", txn_timeout);
        }
        let native = match config.producer_engine {
            ProducerEngine::Librdkafka => None,
            engine => match NativeSettings::from_config(&cc) {
                Ok(settings) => Some(settings),
                Err(why) if engine == ProducerEngine::Native => {
                    return Err(Error::UnsupportedConfig {
                        key: "producer.engine".into(),
                        hint: format!(
                            "the native producer does not support {why}; \
                             set producer.engine=auto (or librdkafka) to use librdkafka"
                        ),
                    })
                }
                Err(why) => {
                    tracing::info!(
                        transactional_id,
                        "transactional producer on librdkafka: the native producer does not support {why}"
                    );
                    None
                }
            },
        };
        let engine = match native {
            Some(settings) => {
                let producer =
                    NativeTxn::new(settings, transactional_id, Some((position_topic, 0))).await?;
                tracing::debug!(transactional_id, "transactional producer: native");
                Engine::Native {
                    producer,
                    abort_pending: false,
                }
            }
            None => {
                let inner: ThreadedProducer<DefaultProducerContext> = cc
                    .create()
                    .map_err(Error::kafka("create transactional producer"))?;
                let p = inner.clone();
                let topic = position_topic.to_string();
                blocking(move || {
                    // Connect first: librdkafka looks for the transaction
                    // coordinator through a broker that is up, and when none is it
                    // retries only after a fixed 500 ms. A first metadata request
                    // goes to the bootstrap address, whose connection librdkafka
                    // drops once it learns the broker's node id; the second one
                    // leaves a connection to a real broker up. Measured: init took
                    // ≈ 505 ms in 2 of 4 starts without these requests, in 8 of 20
                    // after one, in none of 16 after two. A failure ends these
                    // requests (5 s at most each, so an unreachable cluster is
                    // reported about as soon as before) and is left to
                    // `init_transactions`, which reports it.
                    for _ in 0..2 {
                        if p.client()
                            .fetch_metadata(Some(&topic), Duration::from_secs(5))
                            .is_err()
                        {
                            break;
                        }
                    }
                    p.init_transactions(timeout)
                        .map_err(Error::transaction("init"))
                })
                .await?;
                Engine::Librdkafka(inner)
            }
        };
        Ok(Self {
            engine,
            config: config.clone(),
            checks: TopicChecks::new(config, true),
            transactional_id: transactional_id.to_string(),
            position_topic: position_topic.to_string(),
            timeout,
        })
    }

    /// The `transactional.id`.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// `native` or `librdkafka`: the client this producer runs on
    /// (`producer.engine`).
    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Librdkafka(_) => "librdkafka",
            Engine::Native { .. } => "native",
        }
    }

    /// Starts a transaction.
    pub fn begin(&mut self) -> Result<Transaction<'_>> {
        if let Engine::Librdkafka(inner) = &self.engine {
            inner
                .begin_transaction()
                .map_err(Error::transaction("begin"))?;
        }
        Ok(Transaction {
            producer: self,
            open: true,
        })
    }

    /// The position stored by the last committed transaction of this
    /// `transactional.id` (aborted ones are invisible: `read_committed`).
    pub async fn last_committed_position(&self) -> Result<Option<Vec<u8>>> {
        read_position(&self.config, &self.position_topic, &self.transactional_id).await
    }
}

/// Reads the last committed position of `transactional_id` from
/// `position_topic` (`read_committed`, up to the end of the partition).
///
/// The topic is shared by every connector and grows by one record per
/// transaction until compaction catches up, so the partition is read from
/// its tail: the last [`POSITION_TAIL`] offsets first, then the offsets
/// before those, reaching eight times as far back from the end each time,
/// until a stretch holds a record of this `transactional_id` (its latest
/// one there is the latest committed position) or the beginning is read.
/// Every offset is read at most once: a connector's first start, which
/// finds nothing, reads the partition once, where re-reading each widened
/// window from the end read it up to twice. An empty partition answers at
/// once from its watermarks.
pub async fn read_position(
    config: &KafkaConfig,
    position_topic: &str,
    transactional_id: &str,
) -> Result<Option<Vec<u8>>> {
    let mut cc = config.admin_config()?;
    cc.set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        // An idle partition answers a fetch after this long: with the
        // default (500 ms) reaching the end of the topic took a second.
        .set("fetch.wait.max.ms", "10")
        .set("group.id", format!("{transactional_id}-position-reader"));
    let consumer: BaseConsumer = cc
        .create()
        .map_err(Error::kafka("create position reader"))?;
    let topic = position_topic.to_string();
    let id = transactional_id.as_bytes().to_vec();
    blocking(move || {
        let read = || {
            let limit = Duration::from_secs(60);
            let deadline = std::time::Instant::now() + limit;
            let timed_out = || Error::Timeout {
                operation: "reading the position topic",
                after: limit,
            };
            let (low, high) = consumer
                .fetch_watermarks(&topic, 0, limit)
                .map_err(Error::kafka("read position topic watermarks"))?;
            if high <= low {
                return Ok(None);
            }
            let mut window = POSITION_TAIL;
            // The stretch being read is `start..end`; `end..high` was read.
            let mut end = high;
            loop {
                let start = high.saturating_sub(window).max(low);
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, 0, Offset::Offset(start))
                    .map_err(Error::kafka("assign position topic"))?;
                consumer
                    .assign(&tpl)
                    .map_err(Error::kafka("assign position topic"))?;
                let mut last = None;
                // `read_committed` stops at the last stable offset: a
                // transaction that committed before the watermarks were
                // taken stays invisible until the coordinator has written
                // its markers, which it does after answering EndTxn. Read
                // up to the high watermark, so that the position a commit
                // that already returned wrote is the one found (seen as
                // the previous position, under load, right after a commit).
                let caught_up = || {
                    consumer.position().ok().is_some_and(|tpl| {
                        tpl.find_partition(&topic, 0)
                            .and_then(|p| p.offset().to_raw())
                            .is_some_and(|o| o >= high)
                    })
                };
                let mut at_end = false;
                loop {
                    if std::time::Instant::now() > deadline {
                        return Err(timed_out());
                    }
                    match consumer.poll(Duration::from_millis(100)) {
                        // Read already (or committed after the watermarks
                        // were taken, by another connector).
                        Some(Ok(m)) if m.offset() >= end => break,
                        Some(Ok(m)) if m.key() == Some(&id[..]) => {
                            last = m.payload().map(<[u8]>::to_vec);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(KafkaError::PartitionEOF(_))) => {
                            if end < high || caught_up() {
                                break;
                            }
                            at_end = true;
                        }
                        Some(Err(e)) => return Err(Error::kafka("read position topic")(e)),
                        None if at_end && caught_up() => break,
                        None => {}
                    }
                }
                if last.is_some() || start == low {
                    return Ok(last);
                }
                end = start;
                window = window.saturating_mul(8);
            }
        };
        let position = read();
        // Closing the consumer took 100 ms in most starts measured.
        crate::client::dispose("position reader", consumer);
        position
    })
    .await
}

/// Offsets read first from the end of the position topic (see
/// [`read_position`]).
pub const POSITION_TAIL: i64 = 1024;

/// An open transaction; dropped without commit → aborted on the next use
/// of the producer (call [`Transaction::abort`] to abort explicitly).
pub struct Transaction<'p> {
    producer: &'p mut TransactionalProducer,
    open: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Transaction<'_> {
    /// Queues a record in this transaction (waits while the queue is full).
    ///
    /// A record the broker would refuse together with its whole batch —
    /// and so fail the transaction — is refused here instead, with a
    /// non-retriable [`Error::Delivery`] (`InvalidRecord`): no key for a
    /// compacted topic (checked against the topic's configs, described
    /// once per topic). The transaction stays usable.
    pub async fn send(&mut self, record: &Record<'_>) -> Result<()> {
        if let Some(message) = self.producer.checks.violation(record).await {
            return Err(Error::Delivery {
                seq: 0,
                topic: record.topic.to_string(),
                code: RDKafkaErrorCode::InvalidRecord,
                message,
            });
        }
        let inner = match &mut self.producer.engine {
            Engine::Native {
                producer,
                abort_pending,
            } => {
                if std::mem::take(abort_pending) {
                    producer.end(false).await?;
                }
                return producer.send(record).await;
            }
            Engine::Librdkafka(inner) => inner,
        };
        let mut br = base_record(record, ());
        let mut backoff = Duration::from_micros(500);
        loop {
            match inner.send(br) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    br = back;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                Err((e, _)) => {
                    return Err(Error::Delivery {
                        seq: 0,
                        topic: record.topic.to_string(),
                        code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                        message: e.to_string(),
                    })
                }
            }
        }
    }

    /// Writes `position` to the position topic and commits everything sent
    /// in this transaction atomically. On an abortable error the
    /// transaction is aborted and the error returned.
    pub async fn commit(mut self, position: &[u8]) -> Result<()> {
        let topic = self.producer.position_topic.clone();
        let id = self.producer.transactional_id.clone();
        self.send(
            &Record::to(&topic)
                .key(id.as_bytes())
                .value(position)
                .partition(0),
        )
        .await?;
        let p = match &mut self.producer.engine {
            Engine::Native { producer, .. } => {
                // The sender aborts instead when a record of the
                // transaction failed, and returns that failure.
                self.open = false;
                return producer.end(true).await;
            }
            Engine::Librdkafka(p) => p.clone(),
        };
        let timeout = self.producer.timeout;
        let tid = id.clone();
        let p_abort = p.clone();
        let result = blocking(move || {
            // rust-rdkafka's commit_transaction flushes first, and its flush
            // polls in 100 ms steps (busy-waiting below 1 ms): every commit
            // would take ≥ 100 ms. Wait here for the threaded producer's own
            // poll thread to see every delivery, so the flush inside commit
            // finds nothing outstanding.
            let started = Instant::now();
            await_deliveries(&p, started + timeout);
            let delivered = Instant::now();
            let result = p
                .commit_transaction(timeout)
                .map_err(Error::transaction("commit"));
            tracing::debug!(
                transactional_id = %tid,
                deliveries_ms = (delivered - started).as_secs_f64() * 1e3,
                end_txn_ms = delivered.elapsed().as_secs_f64() * 1e3,
                "transaction commit"
            );
            result
        })
        .await;
        self.open = false;
        if let Err(Error::Transaction {
            requires_abort: true,
            ..
        }) = &result
        {
            let p = p_abort;
            let aborted = blocking(move || {
                p.abort_transaction(timeout)
                    .map_err(Error::transaction("abort"))
            })
            .await;
            // The commit's error is the one to report (it says why); a
            // failed abort only means the producer is unusable, which the
            // commit error already implies.
            if let Err(e) = aborted {
                tracing::warn!(transactional_id = %id, "aborting after a failed commit also failed: {e}");
            }
        }
        result
    }

    /// Aborts the transaction: nothing sent in it becomes visible to
    /// `read_committed` consumers.
    ///
    /// Records still in flight are first let through (for at most
    /// [`ABORT_DRAIN`]; they are aborted with the rest): librdkafka
    /// counts a partition as part of the transaction once it has *asked*
    /// the coordinator to add it, so an abort racing that request — which
    /// the coordinator refuses with `CONCURRENT_TRANSACTIONS` while the
    /// previous transaction's markers are still being written — sends
    /// `EndTxn` for a transaction the coordinator never opened, and the
    /// coordinator's `INVALID_TXN_STATE` answer is fatal to the producer
    /// (librdkafka issue 4849). A delivered record proves its partition
    /// was added.
    pub async fn abort(mut self) -> Result<()> {
        self.open = false;
        let p = match &mut self.producer.engine {
            Engine::Native {
                producer,
                abort_pending,
            } => {
                *abort_pending = false;
                return producer.end(false).await;
            }
            Engine::Librdkafka(p) => p.clone(),
        };
        let timeout = self.producer.timeout;
        blocking(move || {
            await_deliveries(&p, Instant::now() + ABORT_DRAIN);
            p.abort_transaction(timeout)
                .map_err(Error::transaction("abort"))
        })
        .await
    }
}

/// How long an abort lets in-flight records through first. The race it
/// closes lasts as long as the coordinator takes to write the previous
/// commit's markers (milliseconds); records still undelivered after this
/// point to a broker in trouble, where waiting longer only delays the
/// abort's own error.
pub const ABORT_DRAIN: Duration = Duration::from_secs(5);

/// Waits until the producer has no record in flight (every delivery seen
/// by its poll thread) or `deadline` passes, sleeping in short steps.
fn await_deliveries(producer: &ThreadedProducer<DefaultProducerContext>, deadline: Instant) {
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(500));
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            tracing::warn!(
                transactional_id = %self.producer.transactional_id,
                "transaction dropped without commit or abort; aborting"
            );
            match &mut self.producer.engine {
                // Aborted by the next transaction's first operation.
                Engine::Native { abort_pending, .. } => *abort_pending = true,
                Engine::Librdkafka(inner) => {
                    // As in `abort`: let in-flight records prove their
                    // partitions were added before `EndTxn` goes out.
                    await_deliveries(inner, Instant::now() + ABORT_DRAIN);
                    let _ = inner.abort_transaction(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_topics_require_keys() {
        let configs = |policy: &str| {
            [("cleanup.policy".to_string(), policy.to_string())]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let keyless = Record::to("t").value(b"v");
        let keyed = Record::to("t").key(b"k");
        for policy in ["compact", "delete, compact", "compact,delete"] {
            let rules = TopicRules::from_configs(&configs(policy));
            assert!(rules.requires_key, "{policy}");
            let why = rules.violation(&keyless).expect("refused");
            assert!(why.contains("compacted"), "{why}");
            assert_eq!(
                rules.violation(&keyed),
                None,
                "tombstones with a key are fine"
            );
        }
        let rules = TopicRules::from_configs(&configs("delete"));
        assert_eq!(rules.violation(&keyless), None);
        assert_eq!(
            TopicRules::from_configs(&Default::default()),
            TopicRules::default()
        );
    }

    #[test]
    fn whole_batch_codes() {
        assert!(rejects_whole_batch(RDKafkaErrorCode::InvalidRecord));
        assert!(rejects_whole_batch(RDKafkaErrorCode::InvalidTimestamp));
        assert!(!rejects_whole_batch(
            RDKafkaErrorCode::TopicAuthorizationFailed
        ));
    }

    #[tokio::test]
    async fn in_flight_waits_for_a_release() {
        let f = Arc::new(InFlight::new(2));
        f.acquire().await;
        f.acquire().await;
        let waiter = {
            let f = f.clone();
            tokio::spawn(async move { f.acquire().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a third slot must wait");
        f.release();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the release")
            .expect("task");
        assert_eq!(f.count.load(Ordering::SeqCst), 2);
        assert!(!f.waiting.load(Ordering::SeqCst));
    }

    /// Many senders and releasers racing: every acquire completes and the
    /// bound is never exceeded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_under_contention() {
        let f = Arc::new(InFlight::new(3));
        let held = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (f, held) = (f.clone(), held.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    f.acquire().await;
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 3, "bound exceeded: {now}");
                    tokio::task::yield_now().await;
                    held.fetch_sub(1, Ordering::SeqCst);
                    f.release();
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("no lost wake-up")
                .expect("task");
        }
        assert_eq!(f.count.load(Ordering::SeqCst), 0);
    }
}
