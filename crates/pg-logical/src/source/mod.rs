//! The async replication source: PostgreSQL → typed [`ChangeEvent`]s.
//!
//! ```text
//!  PgSource::start(config, offset_store)
//!    ├─ checks: wal_level, REPLICATION, replica identities, slot state (typed errors)
//!    ├─ publication per publication.autocreate.mode
//!    ├─ slot: CREATE_REPLICATION_SLOT … (SNAPSHOT 'export') when a snapshot is needed
//!    └─ spawns the driver ───────────────────────────────────────────────┐
//!                                                                        ▼
//!   snapshot (op r, parallel chunked COPY in the exported snapshot) ─▶ bounded channel ─▶ PgSource::recv()
//!   stream from the consistent point (pgoutput v1, c/u/d/t/m)       ─▶                      │
//!        ▲ update_applied_lsn(commit end) only for fully acked txns ◀── PgSource::ack(position)
//! ```
//!
//! ## Positions and acknowledgement
//!
//! Every [`ChangeEvent`] carries a [`Position`]: `commit_lsn` is the LSN of
//! its transaction's commit record (`Begin.final_lsn`, known before the
//! first change, so nothing is buffered) and `seq` its 0-based index among
//! the transaction's changes. Snapshot rows use `consistent point − 1` and a
//! running row counter, so they order strictly before every streamed change
//! (a transaction may commit exactly at the consistent point).
//!
//! [`PgSource::ack`] says "everything up to and including this position is
//! durable downstream". The server is told a transaction is flushed only
//! when its last change is acknowledged (its commit's end LSN is then sent
//! as flushed); while nothing is in flight, keepalive `wal_end`s are
//! acknowledged so idle slots do not pin WAL. Acknowledged positions and
//! snapshot progress are written to the [`OffsetStore`] *before* the slot
//! is advanced. After a restart, streaming resumes from the slot's
//! `confirmed_flush_lsn` and every change `<=` the stored position is
//! skipped, so a partially acknowledged transaction is not duplicated and
//! only the unacknowledged tail is delivered again.
//!
//! ## Replica identity
//!
//! As in Debezium: `DEFAULT` gives `before = None` for updates and a
//! key-only `before` (other columns [`Value::Null`](cdc_envelope::Value))
//! for deletes; `FULL` gives the whole old row for both; `USING INDEX` like
//! `DEFAULT` with the index columns; `NOTHING` publishes no UPDATE/DELETE
//! (PostgreSQL rejects them), which [`PgSource::start`] refuses up front for
//! tables without primary key ([`Error::NoReplicaIdentity`]). An update that
//! changes the key is emitted as a delete of the old row followed by a
//! create of the new one; each carries the other's key in
//! [`ChangeEvent::key_change`] (Debezium's `__debezium.newkey` /
//! `__debezium.oldkey` headers, see `cdc_envelope::headers`).
//!
//! ## Partitioned tables
//!
//! Captured partitioned tables are read from their root (each row once).
//! With `publish.via.partition.root=true` the publications this source
//! creates publish their partitions' changes as changes of the root table,
//! so snapshot and stream use the root's name and topic.
//!
//! ## TLS and authentication
//!
//! `database.sslmode` `require` / `verify-ca` / `verify-full` (with
//! `database.sslrootcert`) encrypt both the replication and the SQL
//! connections (rustls); passwords are checked with SCRAM-SHA-256 where the
//! server asks for it (as the test servers do). Failures are [`Error::Tls`] / [`Error::Authentication`],
//! which say what to change and never contain the password.

pub mod catalog;
pub mod config;
pub mod offset;
mod persist;
pub mod publication;
pub mod slot;
pub mod snapshot;
pub mod stats;
mod stream;
pub mod tls;

use std::sync::Arc;

use cdc_envelope::{ChangeEvent, Lsn, Position, TableId};
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{
    PublicationAutocreateMode, Secret, SkippedOperations, SnapshotMode, SourceConfig, SslMode,
};
pub use offset::{
    FileOffsetStore, MemoryOffsetStore, OffsetStore, SnapshotProgress, SourceOffset, TableProgress,
};

use crate::error::{Error, Result};
use slot::SlotInfo;
pub use stats::{SourceStats, TableSnapshot};

/// What the source delivers.
// `Change` is by far the most frequent variant: boxing it would cost an
// allocation per row for the rare small variants' sake.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceEvent {
    /// A row read by the snapshot (`r`) or a streamed change (`c` `u` `d`
    /// `t` `m`). Acknowledge its position with [`PgSource::ack`].
    Change(ChangeEvent),
    /// Start of a transaction (only with `provide.transaction.metadata`),
    /// before its first change.
    TransactionBegin(TransactionMarker),
    /// End of a transaction (only with `provide.transaction.metadata`),
    /// after its last change.
    TransactionEnd(TransactionMarker),
    /// A heartbeat (`heartbeat.interval.ms`), for `__debezium-heartbeat.<prefix>`.
    Heartbeat(Heartbeat),
}

/// Debezium's transaction BEGIN/END record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMarker {
    /// `"<txId>:<lsn>"`.
    pub id: String,
    /// Transaction id.
    pub xid: u32,
    /// Commit time, µs since the Unix epoch.
    pub ts_us: i64,
    /// Number of change events (END only).
    pub event_count: u64,
    /// Events per table (END only).
    pub data_collections: Vec<(TableId, u64)>,
    /// Position of the first (BEGIN) or last (END) change of the transaction.
    pub position: Position,
}

/// A heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Wall-clock time, ms since the Unix epoch.
    pub ts_ms: i64,
    /// The LSN last confirmed to the server as flushed.
    pub flushed_lsn: Lsn,
}

/// What happened at start, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    /// The captured tables (after include/exclude lists).
    pub tables: Vec<TableId>,
    /// How the source starts.
    pub plan: StartPlan,
    /// The slot's consistent point when it was created now.
    pub consistent_point: Option<Lsn>,
}

/// How the source starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPlan {
    /// Create the slot with an exported snapshot, snapshot everything, stream.
    Snapshot,
    /// Continue an unfinished snapshot (remaining chunks), then stream.
    ResumeSnapshot,
    /// Stream only.
    Stream,
    /// Nothing to do (`initial_only` with a finished snapshot).
    Done,
}

/// Decides how to start from `snapshot.mode`, the stored offsets and the
/// slot. Returns the plan and whether an existing slot must be dropped (and
/// re-created with a fresh exported snapshot) first.
pub fn decide_plan(
    mode: SnapshotMode,
    offsets: Option<&SourceOffset>,
    slot: Option<&SlotInfo>,
    slot_name: &str,
) -> Result<(StartPlan, bool)> {
    let lost = slot.is_some_and(|s| s.wal_status.as_deref() == Some("lost"));
    let usable = slot.is_some() && !lost;
    let fresh = (StartPlan::Snapshot, slot.is_some());
    let snapshot_state = offsets.and_then(|o| o.snapshot.as_ref());
    let streamed = offsets.is_some_and(|o| o.acked.is_some());
    match mode {
        SnapshotMode::Always => Ok(fresh),
        SnapshotMode::NoData => {
            if lost {
                Err(Error::SlotInvalidated {
                    slot: slot_name.to_owned(),
                    wal_status: "lost".into(),
                })
            } else {
                Ok((StartPlan::Stream, false))
            }
        }
        SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
            match snapshot_state {
                None if !streamed => return Ok(fresh),
                Some(s) if !s.completed && !streamed => {
                    let at_cp = slot
                        .and_then(|i| i.confirmed_flush_lsn)
                        .is_some_and(|l| l <= s.consistent_point);
                    return Ok(if usable && at_cp {
                        (StartPlan::ResumeSnapshot, false)
                    } else {
                        fresh
                    });
                }
                _ => {}
            }
            if mode == SnapshotMode::InitialOnly {
                return Ok((StartPlan::Done, false));
            }
            if usable {
                return Ok((StartPlan::Stream, false));
            }
            if mode == SnapshotMode::WhenNeeded {
                return Ok(fresh);
            }
            if lost {
                Err(Error::SlotInvalidated {
                    slot: slot_name.to_owned(),
                    wal_status: "lost".into(),
                })
            } else {
                Err(Error::SlotUnusable {
                    slot: slot_name.to_owned(),
                    detail: "does not exist although offsets say this connector streamed from it: changes since \
                             then are lost; use snapshot.mode=when_needed to re-snapshot, or delete the offsets"
                        .into(),
                })
            }
        }
    }
}

/// A running replication source.
///
/// ```no_run
/// # async fn demo() -> pg_logical::Result<()> {
/// use std::collections::BTreeMap;
/// use pg_logical::source::{MemoryOffsetStore, PgSource, SourceConfig, SourceEvent};
///
/// let props: BTreeMap<String, String> = BTreeMap::new(); // the connector's "config" map
/// let config = SourceConfig::from_properties(&props)?;
/// let mut source = PgSource::start(config, MemoryOffsetStore::new()).await?;
/// while let Some(event) = source.recv().await? {
///     if let SourceEvent::Change(change) = event {
///         // … produce to Kafka; once Kafka acknowledged it:
///         source.ack(change.position);
///     }
/// }
/// source.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PgSource {
    events: mpsc::Receiver<Result<SourceEvent>>,
    acks: watch::Sender<Option<Position>>,
    stop: watch::Sender<bool>,
    done: Option<oneshot::Receiver<Result<()>>>,
    info: StartInfo,
    stats: Arc<SourceStats>,
    raw: Vec<Result<SourceEvent>>,
    pending_error: Option<Error>,
}

impl PgSource {
    /// Checks the server, prepares publication and slot, and starts the
    /// snapshot and/or streaming. Configuration and setup errors (no
    /// REPLICATION, slot in use, wal_level…) are returned here; later errors
    /// arrive through [`PgSource::recv`].
    ///
    /// The source runs on a thread of its own with a single-threaded tokio
    /// runtime (replication connection, SQL connections, snapshot readers,
    /// decoding): events cross threads once, in batches with
    /// [`PgSource::recv_many`], instead of hopping between worker threads
    /// (measured: ~3× less CPU than on a shared multi-thread runtime).
    pub async fn start<S: OffsetStore>(config: SourceConfig, store: S) -> Result<Self> {
        let (events_tx, events) = mpsc::channel(config.max_queue_size);
        let (acks, acks_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel::<Result<StartInfo>>();
        let (done_tx, done_rx) = oneshot::channel::<Result<()>>();
        let stats = Arc::new(SourceStats::default());
        let driver_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("pg-cdc-source".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let detail = format!("cannot build the source runtime: {e}");
                        let _ = ready_tx.send(Err(Error::Stopped { detail }));
                        return;
                    }
                };
                rt.block_on(async move {
                    match stream::Driver::prepare(config, store, driver_stats).await {
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                        Ok((driver, info)) => {
                            let _ = ready_tx.send(Ok(info));
                            let res = driver.run(events_tx, acks_rx, stop_rx).await;
                            let _ = done_tx.send(res);
                        }
                    }
                });
            });
        if let Err(e) = thread {
            return Err(Error::Stopped {
                detail: format!("cannot start the source thread: {e}"),
            });
        }
        let info = ready_rx.await.map_err(|_| Error::Stopped {
            detail: "the source thread ended during start".into(),
        })??;
        Ok(Self {
            events,
            acks,
            stop,
            done: Some(done_rx),
            info,
            stats,
            raw: Vec::new(),
            pending_error: None,
        })
    }

    /// What [`PgSource::start`] found and decided.
    pub fn info(&self) -> &StartInfo {
        &self.info
    }

    /// Live progress (replication lag, snapshot sizes), shareable with a
    /// metrics task.
    pub fn stats(&self) -> Arc<SourceStats> {
        self.stats.clone()
    }

    /// The next event; `Ok(None)` once the source ended (after
    /// `initial_only`, or after [`PgSource::stop`]). A permanent error is
    /// returned once, then `Ok(None)`.
    pub async fn recv(&mut self) -> Result<Option<SourceEvent>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        match self.events.recv().await {
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// Receives up to `limit` events at once into `buf` (appending); waits
    /// only when none is ready. Returns the number received, 0 once the
    /// source ended. Cheaper than [`PgSource::recv`] per event.
    pub async fn recv_many(&mut self, buf: &mut Vec<SourceEvent>, limit: usize) -> Result<usize> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        self.raw.clear();
        self.events.recv_many(&mut self.raw, limit.max(1)).await;
        let mut n = 0;
        for r in self.raw.drain(..) {
            match r {
                Ok(e) => {
                    buf.push(e);
                    n += 1;
                }
                Err(e) => self.pending_error = self.pending_error.take().or(Some(e)),
            }
        }
        match self.pending_error.take() {
            Some(e) if n == 0 => Err(e),
            e => {
                self.pending_error = e;
                Ok(n)
            }
        }
    }

    /// Acknowledges every event up to and including `position` as durable
    /// downstream. Cheap; call it as often as convenient. Positions lower
    /// than an earlier acknowledgement are ignored.
    pub fn ack(&self, position: Position) {
        self.acks.send_if_modified(|cur| {
            if cur.is_none_or(|c| position > c) {
                *cur = Some(position);
                true
            } else {
                false
            }
        });
    }

    /// Stops: stores the offsets, confirms the last fully acknowledged
    /// commit to the server, closes the replication connection and (with
    /// `slot.drop.on.stop`) drops the slot.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        self.events.close();
        while self.events.recv().await.is_some() {}
        match self.done.take() {
            // The driver already reported its error through the events.
            Some(done) => match done.await {
                Ok(Err(e)) if !matches!(e, Error::Stopped { .. }) => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for PgSource {
    /// Dropping without [`PgSource::stop`] asks the source thread to stop
    /// (offsets were already stored at each acknowledgement) and returns
    /// at once.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Shared by the driver and tests: source-block constants.
pub(crate) const CONNECTOR: &str = "postgresql";

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn slot(confirmed: u64, status: &str) -> SlotInfo {
        SlotInfo {
            name: "s".into(),
            plugin: Some("pgoutput".into()),
            slot_type: "logical".into(),
            database: Some("db".into()),
            active_pid: None,
            confirmed_flush_lsn: Some(Lsn(confirmed)),
            restart_lsn: Some(Lsn(confirmed)),
            wal_status: Some(status.into()),
        }
    }

    #[test]
    fn plans() {
        use SnapshotMode::*;
        let s = slot(100, "reserved");
        assert_eq!(
            decide_plan(Initial, None, None, "s").unwrap(),
            (StartPlan::Snapshot, false)
        );
        assert_eq!(
            decide_plan(Initial, None, Some(&s), "s").unwrap(),
            (StartPlan::Snapshot, true)
        );
        assert_eq!(
            decide_plan(NoData, None, None, "s").unwrap(),
            (StartPlan::Stream, false)
        );
        let unfinished = SourceOffset {
            snapshot: Some(SnapshotProgress {
                consistent_point: Lsn(100),
                completed: false,
                tables: BTreeMap::new(),
                next_seq: 5,
            }),
            acked: None,
        };
        assert_eq!(
            decide_plan(Initial, Some(&unfinished), Some(&s), "s").unwrap(),
            (StartPlan::ResumeSnapshot, false)
        );
        assert_eq!(
            decide_plan(Initial, Some(&unfinished), None, "s").unwrap(),
            (StartPlan::Snapshot, false)
        );
        let streamed = SourceOffset {
            snapshot: None,
            acked: Some(Position {
                commit_lsn: Lsn(200),
                seq: 0,
            }),
        };
        assert_eq!(
            decide_plan(Initial, Some(&streamed), Some(&s), "s").unwrap(),
            (StartPlan::Stream, false)
        );
        assert_eq!(
            decide_plan(InitialOnly, Some(&streamed), Some(&s), "s").unwrap(),
            (StartPlan::Done, false)
        );
        assert!(matches!(
            decide_plan(Initial, Some(&streamed), None, "s"),
            Err(Error::SlotUnusable { .. })
        ));
        assert!(matches!(
            decide_plan(Initial, Some(&streamed), Some(&slot(1, "lost")), "s"),
            Err(Error::SlotInvalidated { .. })
        ));
        assert_eq!(
            decide_plan(WhenNeeded, Some(&streamed), Some(&slot(1, "lost")), "s").unwrap(),
            (StartPlan::Snapshot, true)
        );
        assert_eq!(
            decide_plan(Always, Some(&streamed), Some(&s), "s").unwrap(),
            (StartPlan::Snapshot, true)
        );
    }
}
