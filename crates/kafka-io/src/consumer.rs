//! Batching group consumer with manual offsets and rebalance safety.
//!
//! ```text
//! next_batch() ──▶ Batch { records, generation, assigned, revoked }
//!      process records ─▶ make them durable (DB commit)
//! commit(&batch) ──▶ offsets of partitions owned without interruption since
//!                    the batch was fetched; revoked ones are skipped
//! ```
//!
//! * Offsets are committed only by [`BatchConsumer::commit`] (auto commit
//!   and auto offset store are off): nothing is committed before the caller
//!   says the data is durable.
//! * A partition revoked after a batch was fetched is never committed from
//!   that batch (its new owner reads it again from the last commit), and
//!   records of a partition revoked while a batch is being assembled are
//!   dropped from it. Every batch says which partitions were revoked /
//!   assigned since the previous one.
//! * A [`RebalanceListener`] can supply the starting offsets of newly
//!   assigned partitions (offsets stored in the target database for
//!   exactly-once sinks); they are applied in the assignment itself.
//!
//! ## Static membership (`group.instance.id`)
//!
//! A member that dies without leaving the group (crash, `SIGKILL`, OOM)
//! keeps its partitions until the broker's session timeout expires
//! (`session.timeout.ms`, 45 s by default): nobody consumes them meanwhile.
//! With static membership (KIP-345) the restarted process rejoins under the
//! same `group.instance.id`, replaces its dead predecessor at once and gets
//! the same partitions back, from the last committed offsets, without a
//! rebalance of the other members. Use [`BatchConsumer::new_static`] (or
//! set `consumer.override.group.instance.id` in the connector properties);
//! the id must be unique per live member (a second live member with the same
//! id fences the first). A static member does not leave the group on
//! [`BatchConsumer::close`] either: its partitions move to other members only
//! after `session.timeout.ms` (set with `consumer.override.session.timeout.ms`,
//! bounded by the broker's `group.min/max.session.timeout.ms`, 6 s – 30 min
//! by default).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::dlq::FailedRecord;
use crate::error::{Error, Result};
use crate::producer::Header;

/// A topic partition (the workspace's shared type).
pub use cdc_envelope::TopicPartition;

/// Told about assignments; runs on the thread that polls the consumer (a
/// Tokio blocking thread: `Handle::block_on` is allowed there). Keep it quick.
pub trait RebalanceListener: Send + Sync + 'static {
    /// Partitions were assigned. Return the next offset to read for the
    /// partitions whose position is stored outside Kafka; the others start
    /// from the group's committed offset (or `auto.offset.reset`).
    fn on_assigned(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let _ = partitions;
        Vec::new()
    }

    /// Partitions are being revoked (or were lost). Return next-offsets that
    /// are durable but not yet committed: they are committed synchronously
    /// before the partitions are released (skipped when the assignment was
    /// lost). Everything else uncommitted is redelivered to the new owner.
    fn on_revoked(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let _ = partitions;
        Vec::new()
    }
}

/// A consumed record (bytes copied out of librdkafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value (`None` = tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Timestamp in ms.
    pub timestamp: Option<i64>,
}

impl ConsumedRecord {
    /// The record as a [`FailedRecord`] for the error reporter / DLQ.
    pub fn to_failed(&self) -> FailedRecord {
        FailedRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
            timestamp: self.timestamp,
        }
    }

    fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// Limits of one batch: whichever is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Records per batch.
    pub max_records: usize,
    /// Key + value bytes per batch.
    pub max_bytes: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_bytes: 16 * 1024 * 1024,
            max_wait: Duration::from_millis(500),
        }
    }
}

/// Records fetched together, with the rebalances that happened since the
/// previous batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Records in fetch order (per partition in offset order).
    pub records: Vec<ConsumedRecord>,
    /// Key + value bytes.
    pub bytes: usize,
    /// Assignment generation when the batch was completed.
    pub generation: u64,
    /// Partitions revoked since the previous batch.
    pub revoked: Vec<TopicPartition>,
    /// Partitions assigned since the previous batch.
    pub assigned: Vec<TopicPartition>,
}

impl Batch {
    /// Next offset to read per partition (last offset + 1).
    pub fn next_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            let e = m
                .entry(TopicPartition::new(r.topic.clone(), r.partition))
                .or_insert(r.offset + 1);
            *e = (*e).max(r.offset + 1);
        }
        m
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What [`BatchConsumer::commit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Committed next offsets.
    pub committed: BTreeMap<TopicPartition, i64>,
    /// Partitions not committed: revoked since the batch was fetched, or
    /// refused by the coordinator because the group was rebalancing (see
    /// `rejected_by_rebalance`). Not committing is always safe: the
    /// partition's next owner — possibly this consumer again — resumes from
    /// the last successful commit (records are redelivered, never skipped),
    /// and a later commit of this consumer covers them if it keeps them.
    pub skipped: Vec<TopicPartition>,
    /// Set when the coordinator refused the commit because a rebalance was
    /// under way (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`,
    /// `UNKNOWN_MEMBER_ID`, `STALE_MEMBER_EPOCH`): nothing was committed.
    pub rejected_by_rebalance: Option<RDKafkaErrorCode>,
}

/// Commit errors that mean "the group is rebalancing / this member's
/// generation is stale", not "the commit is broken".
fn is_rebalance_rejection(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::AssignmentLost
    )
}

#[derive(Debug, Default)]
struct GroupState {
    generation: u64,
    /// Partition → generation at which it was (last) assigned.
    assigned: BTreeMap<TopicPartition, u64>,
    revoked_events: Vec<TopicPartition>,
    assigned_events: Vec<TopicPartition>,
    rebalance_error: Option<String>,
}

/// Consumer context: applies assignments, asks the listener for offsets.
pub struct GroupContext {
    state: Arc<Mutex<GroupState>>,
    /// Mirror of `GroupState::generation`, read after every poll without the lock.
    generation: Arc<AtomicU64>,
    listener: Option<Arc<dyn RebalanceListener>>,
}

impl GroupContext {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        lock(&self.state)
    }
}

fn lock(m: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts = partitions_of(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(l) = &self.listener {
                    for (tp, off) in l.on_assigned(&parts) {
                        if let Err(e) =
                            tpl.set_partition_offset(&tp.topic, tp.partition, Offset::Offset(off))
                        {
                            tracing::error!(partition = %tp, error = %e, "cannot apply stored offset");
                        }
                    }
                }
                {
                    let mut s = self.lock();
                    s.generation += 1;
                    let g = s.generation;
                    self.generation.store(g, Ordering::Release);
                    for p in &parts {
                        s.assigned.insert(p.clone(), g);
                    }
                    s.assigned_events.extend(parts.iter().cloned());
                }
                tracing::info!(partitions = ?parts, "partitions assigned");
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "assign failed");
                    self.lock().rebalance_error = Some(e.to_string());
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Some(l) = &self.listener {
                    let durable = l.on_revoked(&parts);
                    if !durable.is_empty() && !consumer.assignment_lost() {
                        let mut commit = TopicPartitionList::new();
                        for (tp, off) in durable.iter().filter(|(tp, _)| parts.contains(tp)) {
                            let _ = commit.add_partition_offset(
                                &tp.topic,
                                tp.partition,
                                Offset::Offset(*off),
                            );
                        }
                        if commit.count() > 0 {
                            match consumer.commit(&commit, CommitMode::Sync) {
                                Ok(()) => {
                                    tracing::info!(offsets = ?durable, "committed durable offsets of revoked partitions")
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "commit on revoke failed; the new owner will redeliver")
                                }
                            }
                        }
                    }
                }
                {
                    let mut s = self.lock();
                    s.generation += 1;
                    self.generation.store(s.generation, Ordering::Release);
                    for p in &parts {
                        s.assigned.remove(p);
                    }
                    s.revoked_events.extend(parts.iter().cloned());
                }
                tracing::info!(partitions = ?parts, lost = consumer.assignment_lost(), "partitions revoked");
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                {
                    let mut s = self.lock();
                    s.generation += 1;
                    self.generation.store(s.generation, Ordering::Release);
                    let all: Vec<_> = s.assigned.keys().cloned().collect();
                    s.assigned.clear();
                    s.revoked_events.extend(all);
                }
                let _ = consumer.unassign();
            }
        }
    }
}

/// Makes a [`BatchConsumer`] with a regular-expression subscription see
/// topics created since its last metadata refresh, without waiting for
/// `topic.metadata.refresh.interval.ms` (5 minutes by default, like the Java
/// client's `metadata.max.age.ms`). Usable while a batch is being fetched.
#[derive(Clone)]
pub struct SubscriptionRefresher {
    consumer: Arc<BaseConsumer<GroupContext>>,
}

impl std::fmt::Debug for SubscriptionRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRefresher")
            .finish_non_exhaustive()
    }
}

impl SubscriptionRefresher {
    /// Requests the metadata of every topic: librdkafka matches the
    /// subscription against a full topic list when it arrives and joins the
    /// group again if the matching topics changed (a partial list never
    /// updates the subscription).
    pub async fn refresh(&self) -> Result<()> {
        let consumer = self.consumer.clone();
        blocking(move || {
            consumer
                .fetch_metadata(None, Duration::from_secs(30))
                .map(drop)
                .map_err(Error::kafka("refresh subscription metadata"))
        })
        .await
    }
}

/// A group consumer that hands out batches and commits only on request.
pub struct BatchConsumer {
    consumer: Arc<BaseConsumer<GroupContext>>,
    state: Arc<Mutex<GroupState>>,
    generation: Arc<AtomicU64>,
    options: BatchOptions,
}

impl std::fmt::Debug for BatchConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConsumer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Closed {
            component: "consumer task",
        })?
}

impl BatchConsumer {
    /// A consumer in `group_id` ([`KafkaConfig::consumer_config`]:
    /// `read_committed`, no auto commit).
    pub fn new(
        config: &KafkaConfig,
        group_id: &str,
        listener: Option<Arc<dyn RebalanceListener>>,
        options: BatchOptions,
    ) -> Result<Self> {
        Self::with_client_config(config.consumer_config(group_id)?, listener, options)
    }

    /// A static member of `group_id` with `group.instance.id = instance_id`
    /// (see the [module docs](self#static-membership-groupinstanceid)): after a
    /// crash, a consumer created with the same `instance_id` takes over the
    /// dead member's partitions immediately instead of after the session
    /// timeout.
    pub fn new_static(
        config: &KafkaConfig,
        group_id: &str,
        instance_id: &str,
        listener: Option<Arc<dyn RebalanceListener>>,
        options: BatchOptions,
    ) -> Result<Self> {
        if instance_id.trim().is_empty() {
            return Err(Error::InvalidConfig {
                key: "group.instance.id".into(),
                value: instance_id.into(),
                expected: "a non-empty id, unique per live member of the group".into(),
            });
        }
        let mut cc = config.consumer_config(group_id)?;
        cc.set("group.instance.id", instance_id);
        Self::with_client_config(cc, listener, options)
    }

    fn with_client_config(
        cc: rdkafka::ClientConfig,
        listener: Option<Arc<dyn RebalanceListener>>,
        options: BatchOptions,
    ) -> Result<Self> {
        let state = Arc::new(Mutex::new(GroupState::default()));
        let generation = Arc::new(AtomicU64::new(0));
        let ctx = GroupContext {
            state: state.clone(),
            generation: generation.clone(),
            listener,
        };
        let consumer: BaseConsumer<GroupContext> = cc
            .create_with_context(ctx)
            .map_err(Error::kafka("create consumer"))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            state,
            generation,
            options,
        })
    }

    /// Subscribes to `topics`.
    pub fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.consumer
            .subscribe(topics)
            .map_err(Error::kafka("subscribe"))
    }

    /// A handle that makes this consumer look for new topics matching its
    /// subscription now (see [`SubscriptionRefresher`]).
    pub fn subscription_refresher(&self) -> SubscriptionRefresher {
        SubscriptionRefresher {
            consumer: self.consumer.clone(),
        }
    }

    /// Currently assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        lock(&self.state).assigned.keys().cloned().collect()
    }

    /// The next batch: up to `max_records` / `max_bytes`, waiting at most
    /// `max_wait` (it may be empty, e.g. when only a rebalance happened).
    pub async fn next_batch(&self) -> Result<Batch> {
        let consumer = self.consumer.clone();
        let state = self.state.clone();
        let generation = self.generation.clone();
        let opts = self.options;
        blocking(move || fill_batch(&consumer, &state, &generation, opts)).await
    }

    /// Commits the batch's offsets for partitions owned without interruption
    /// since it was fetched; call it once the batch's data is durable. A
    /// commit the coordinator refuses because the group is rebalancing is
    /// not an error: see [`CommitOutcome::rejected_by_rebalance`].
    pub async fn commit(&self, batch: &Batch) -> Result<CommitOutcome> {
        self.commit_offsets(&batch.next_offsets(), batch.generation)
            .await
    }

    /// Commits next-offsets fetched at assignment `generation` (see [`Batch::generation`]).
    pub async fn commit_offsets(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        generation: u64,
    ) -> Result<CommitOutcome> {
        let mut out = CommitOutcome::default();
        let mut tpl = TopicPartitionList::new();
        {
            let s = lock(&self.state);
            for (tp, off) in offsets {
                match s.assigned.get(tp) {
                    Some(&g) if g <= generation => {
                        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*off))
                            .map_err(Error::kafka("build commit list"))?;
                        out.committed.insert(tp.clone(), *off);
                    }
                    _ => out.skipped.push(tp.clone()),
                }
            }
        }
        if !out.skipped.is_empty() {
            tracing::info!(skipped = ?out.skipped, "not committing revoked partitions");
        }
        if tpl.count() == 0 {
            return Ok(out);
        }
        let consumer = self.consumer.clone();
        let result = blocking(move || {
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(Error::kafka("commit offsets"))
        })
        .await;
        match result {
            Ok(()) => Ok(out),
            Err(Error::Kafka {
                code: Some(code), ..
            }) if is_rebalance_rejection(code) => {
                tracing::warn!(
                    ?code,
                    offsets = ?out.committed,
                    "commit refused during a rebalance; not committed (redelivered or covered by a later commit)"
                );
                let refused = std::mem::take(&mut out.committed);
                out.skipped.extend(refused.into_keys());
                out.rejected_by_rebalance = Some(code);
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// Moves the read position of an assigned partition (e.g. to an offset
    /// stored in the target database).
    pub async fn seek(&self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let consumer = self.consumer.clone();
        let tp = tp.clone();
        blocking(move || {
            consumer
                .seek(
                    &tp.topic,
                    tp.partition,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                )
                .map_err(Error::kafka("seek"))
        })
        .await
    }

    /// The group's committed next offsets for the current assignment.
    pub async fn committed(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        let consumer = self.consumer.clone();
        blocking(move || {
            let tpl = consumer
                .committed(Duration::from_secs(10))
                .map_err(Error::kafka("fetch committed offsets"))?;
            Ok(tpl
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                    _ => None,
                })
                .collect())
        })
        .await
    }

    /// Consumer lag per assigned partition: the partition's high watermark
    /// (last stable offset under `read_committed`) minus this consumer's
    /// position (the next offset it will fetch). Asks the broker for the
    /// watermarks; partitions without a position yet are left out.
    pub async fn lag(&self, timeout: Duration) -> Result<Vec<(TopicPartition, i64)>> {
        let consumer = self.consumer.clone();
        blocking(move || {
            let positions = consumer
                .position()
                .map_err(Error::kafka("read consumer positions"))?;
            let mut out = Vec::new();
            for e in positions.elements() {
                let Offset::Offset(pos) = e.offset() else {
                    continue;
                };
                let (_, high) = consumer
                    .fetch_watermarks(e.topic(), e.partition(), timeout)
                    .map_err(Error::kafka("fetch watermarks"))?;
                out.push((
                    TopicPartition::new(e.topic(), e.partition()),
                    (high - pos).max(0),
                ));
            }
            Ok(out)
        })
        .await
    }

    /// Leaves the group (revoking the assignment) without committing.
    pub async fn close(self) -> Result<()> {
        let consumer = self.consumer.clone();
        blocking(move || {
            consumer.unsubscribe();
            // Serve the revoke callback.
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end
                && !consumer
                    .assignment()
                    .map(|a| a.count() == 0)
                    .unwrap_or(true)
            {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            Ok(())
        })
        .await
    }
}

/// Copies a message out of librdkafka.
fn record_of(m: &rdkafka::message::BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = match m.headers() {
        Some(h) if h.count() > 0 => h
            .iter()
            .map(|x| Header {
                key: x.key.to_string(),
                value: x.value.map(<[u8]>::to_vec),
            })
            .collect(),
        _ => Vec::new(),
    };
    ConsumedRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: m.timestamp().to_millis(),
    }
}

/// Records taken between two reads of the clock while librdkafka has
/// records ready (the deadline is checked at least this often).
const CLOCK_EVERY: usize = 128;

/// How long a batch that already has records waits for more once none is ready.
const LINGER: Duration = Duration::from_millis(5);

fn fill_batch(
    consumer: &BaseConsumer<GroupContext>,
    state: &Mutex<GroupState>,
    generation: &AtomicU64,
    opts: BatchOptions,
) -> Result<Batch> {
    let deadline = Instant::now() + opts.max_wait;
    let mut batch = Batch {
        generation: lock(state).generation,
        records: Vec::with_capacity(opts.max_records.min(4096)),
        ..Batch::default()
    };
    // While librdkafka has records ready they are taken with non-blocking
    // polls and the clock is read only every CLOCK_EVERY records; a blocking
    // poll (bounded by the deadline) happens only when it has none.
    let mut block = false;
    let mut taken = 0usize;
    loop {
        if batch.records.len() >= opts.max_records || batch.bytes >= opts.max_bytes {
            break;
        }
        let wait = if block {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if batch.records.is_empty() {
                deadline - now
            } else {
                // Records in hand and none ready: linger briefly for the
                // next fetch, then hand the batch over (a partial batch now
                // beats a full one `max_wait` later for end-to-end latency;
                // under load records stay ready and batches still fill).
                (deadline - now).min(LINGER)
            }
        } else {
            Duration::ZERO
        };
        let polled = consumer.poll(wait);
        let current = generation.load(Ordering::Acquire);
        if current != batch.generation {
            // A rebalance ran inside poll(): keep only records of partitions
            // owned since before it.
            let s = lock(state);
            let before = batch.records.len();
            batch.records.retain(|r| {
                s.assigned
                    .get(&TopicPartition::new(r.topic.clone(), r.partition))
                    .is_some_and(|g| *g <= batch.generation)
            });
            if batch.records.len() != before {
                tracing::info!(
                    dropped = before - batch.records.len(),
                    "dropped records of revoked partitions from the batch"
                );
            }
            batch.bytes = batch.records.iter().map(ConsumedRecord::size).sum();
            batch.generation = s.generation;
        }
        match polled {
            // Nothing ready after lingering with records in hand: done.
            None if block && !batch.records.is_empty() => break,
            // Nothing ready (or only an event was served): block next time.
            None => block = true,
            Some(Ok(m)) => {
                block = false;
                let r = record_of(&m);
                drop(m);
                batch.bytes += r.size();
                batch.records.push(r);
                taken += 1;
                if taken.is_multiple_of(CLOCK_EVERY) && Instant::now() >= deadline {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                let err = Error::kafka("consume")(e);
                if err.is_retriable() {
                    tracing::warn!(error = %err, "transient consumer error");
                    block = true;
                } else {
                    return Err(err);
                }
            }
        }
    }
    let mut s = lock(state);
    batch.revoked = std::mem::take(&mut s.revoked_events);
    batch.assigned = std::mem::take(&mut s.assigned_events);
    if let Some(e) = s.rebalance_error.take() {
        return Err(Error::Kafka {
            operation: "assign partitions",
            code: None,
            source: KafkaError::Subscription(e),
        });
    }
    // Drop duplicates across revoked/assigned lists for readability.
    let dedup = |v: &mut Vec<TopicPartition>| {
        let set: BTreeSet<_> = v.drain(..).collect();
        v.extend(set);
    };
    dedup(&mut batch.revoked);
    dedup(&mut batch.assigned);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_membership_needs_an_instance_id() {
        let props = [("bootstrap.servers".to_string(), "127.0.0.1:1".to_string())]
            .into_iter()
            .collect();
        let cfg = KafkaConfig::from_properties(&props).expect("valid");
        match BatchConsumer::new_static(&cfg, "g", " ", None, BatchOptions::default()) {
            Err(Error::InvalidConfig { key, .. }) => assert_eq!(key, "group.instance.id"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            BatchConsumer::new_static(&cfg, "g", "member-1", None, BatchOptions::default()).is_ok()
        );
    }

    #[test]
    fn rebalance_rejections() {
        assert!(is_rebalance_rejection(
            RDKafkaErrorCode::RebalanceInProgress
        ));
        assert!(is_rebalance_rejection(RDKafkaErrorCode::IllegalGeneration));
        assert!(!is_rebalance_rejection(
            RDKafkaErrorCode::GroupAuthorizationFailed
        ));
    }
}
