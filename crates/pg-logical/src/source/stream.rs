//! The driver task: setup, snapshot emission, streaming, acknowledgements,
//! heartbeats and reconnects.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cdc_envelope::{
    ChangeEvent, KeyChange, LogicalMessage, Lsn, Op, Position, SnapshotMarker, SourceInfo, Str,
    TableId, TableSchema, TransactionBlock, Value,
};
use pgwire_replication::{ReplicationClient, ReplicationEvent};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::message::PgOutputMessage;
use crate::pgtype::ValueDecoder;
use crate::protocol::pg_to_unix_micros;
use crate::relation::{ChangeKind, RelationCache, RowChange, TypeRegistry};
use crate::source::catalog::{self, sql_error, TableMeta};
use crate::source::config::{SnapshotMode, SourceConfig};
use crate::source::offset::{OffsetStore, SnapshotProgress, SourceOffset, TableProgress};
use crate::source::persist::Persister;
use crate::source::slot::{self, CreatedSlot};
use crate::source::snapshot::{self, Chunk, Row, SnapshotTable};
use crate::source::stats::{SourceStats, TableSnapshot};
use crate::source::{
    decide_plan, now_ns, Heartbeat, SourceEvent, StartInfo, StartPlan, TransactionMarker, CONNECTOR,
};
use crate::Decoder;

type EventTx = mpsc::Sender<Result<SourceEvent>>;

/// How long a catalog read waits for the decoded transaction to become
/// visible (normally a few milliseconds at most).
const VISIBILITY_WAIT: Duration = Duration::from_secs(10);

/// Why a streaming session ended without error.
enum SessionEnd {
    Stopped,
}

/// A transaction being received.
struct Txn {
    final_lsn: Lsn,
    xid: u32,
    ts_us: i64,
    /// Next seq to assign.
    seq: u64,
    /// Last position the consumer has received (now or before a reconnect).
    last_delivered: Option<Position>,
    begin_sent: bool,
    emitted: u64,
    per_table: HashMap<TableId, u64>,
    origin: Option<String>,
}

/// A received transaction (or non-transactional message) whose commit is
/// not yet confirmed to the server.
struct Inflight {
    last: Option<Position>,
    end_lsn: Lsn,
}

/// A snapshot chunk fully emitted, waiting for its acknowledgement.
struct EmittedChunk {
    table: TableId,
    upper: Option<Vec<String>>,
    last_of_table: bool,
    last_seq: Option<u64>,
}

struct SnapTrack {
    /// `consistent point - 1`: the commit_lsn of snapshot positions.
    lsn: Lsn,
    chunks: VecDeque<EmittedChunk>,
    emission_done: bool,
}

pub(crate) struct Driver<S> {
    cfg: Arc<SourceConfig>,
    /// The offset store until `run` hands it to the [`Persister`].
    store: Option<S>,
    persister: Option<Persister>,
    stats: Arc<SourceStats>,
    /// `source.name` and `source.db` of every event (shared, not copied).
    source_name: Str,
    source_db: Str,
    sql: Client,
    cache: RelationCache,
    decoder: Decoder,
    info: StartInfo,
    tables: Vec<TableMeta>,
    created: Option<CreatedSlot>,
    offset: SourceOffset,
    /// The last offset handed to the persister.
    stored: SourceOffset,
    snap: Option<SnapTrack>,
    snap_next_seq: u64,
    acked: Option<Position>,
    last_delivered: Option<Position>,
    skip_through: Option<Position>,
    inflight: VecDeque<Inflight>,
    flushed: Lsn,
    last_commit_lsn: Option<Lsn>,
    txn: Option<Txn>,
    events: EventTx,
    acks: watch::Receiver<Option<Position>>,
    stop: watch::Receiver<bool>,
    client: Option<ReplicationClient>,
    /// `table filter` verdict per relation OID (regex matching is not free).
    captured: HashMap<u32, bool>,
    /// `source.schema` / `source.table` of the table the last event was
    /// built for: a run of one table's changes shares them.
    names: Option<(Arc<TableSchema>, Str, Str)>,
    /// Where each change's `source.sequence` is written: split off one
    /// shared buffer, a string costs a reference count, not an allocation.
    text: BytesMut,
}

async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl<S: OffsetStore> Driver<S> {
    /// Everything before the background task: checks, publication, slot.
    pub(crate) async fn prepare(
        cfg: SourceConfig,
        store: S,
        stats: Arc<SourceStats>,
    ) -> Result<(Self, StartInfo)> {
        let cfg = Arc::new(cfg);
        let sql = catalog::connect(&cfg, &format!("pg-cdc {}", cfg.topic_prefix)).await?;
        slot::check_server(&sql, &cfg).await?;
        let tables = catalog::load_tables(&sql, &cfg.tables).await?;
        let bad: Vec<String> = tables
            .iter()
            .filter(|t| !t.has_usable_replica_identity())
            .map(|t| t.id.to_string())
            .collect();
        if !bad.is_empty() {
            return Err(Error::NoReplicaIdentity { tables: bad });
        }
        crate::source::publication::ensure_publication(&sql, &cfg, &tables).await?;
        let offsets = store.load().await?;
        let slot_info = slot::wait_until_free(&sql, &cfg).await?;
        if let Some(s) = &slot_info {
            if s.wal_status.as_deref() != Some("lost") {
                slot::check_slot(s, &cfg)?;
            }
        }
        let (plan, drop_existing) = decide_plan(
            cfg.snapshot_mode,
            offsets.as_ref(),
            slot_info.as_ref(),
            &cfg.slot_name,
        )?;
        if drop_existing {
            tracing::warn!(slot = %cfg.slot_name, "dropping the existing slot to take a fresh consistent snapshot");
            slot::drop_slot(&sql, &cfg.slot_name).await?;
        }
        let mut created = None;
        let slot_missing = slot_info.is_none() || drop_existing;
        match plan {
            StartPlan::Snapshot => created = Some(slot::create_slot(&cfg, true).await?),
            StartPlan::Stream if slot_missing => {
                created = Some(slot::create_slot(&cfg, false).await?)
            }
            _ => {}
        }
        let mut registry = TypeRegistry::new();
        catalog::register_tables(&sql, &mut registry, &tables).await?;
        let offset = match plan {
            StartPlan::Snapshot => SourceOffset::default(),
            _ => offsets.clone().unwrap_or_default(),
        };
        let info = StartInfo {
            tables: tables.iter().map(|t| t.id.clone()).collect(),
            plan,
            consistent_point: created.as_ref().map(|c| c.consistent_point),
        };
        let acked = offset.acked;
        let snap_next_seq = offset.snapshot.as_ref().map_or(0, |s| s.next_seq);
        let flushed = slot_info
            .as_ref()
            .filter(|_| !drop_existing)
            .and_then(|s| s.confirmed_flush_lsn)
            .or(created.as_ref().map(|c| c.consistent_point))
            .unwrap_or(Lsn::ZERO);
        if flushed.0 != 0 {
            stats.confirmed(flushed);
        }
        let driver = Self {
            source_name: cfg.topic_prefix.as_str().into(),
            source_db: cfg.dbname.as_str().into(),
            cfg,
            store: Some(store),
            persister: None,
            stats,
            sql,
            cache: RelationCache::with_registry(registry),
            decoder: Decoder::new(),
            info: info.clone(),
            tables,
            created,
            stored: offset.clone(),
            offset,
            snap: None,
            snap_next_seq,
            acked,
            last_delivered: acked,
            skip_through: acked,
            inflight: VecDeque::new(),
            flushed,
            last_commit_lsn: None,
            txn: None,
            events: mpsc::channel(1).0,
            acks: watch::channel(None).1,
            stop: watch::channel(false).1,
            client: None,
            captured: HashMap::new(),
            names: None,
            text: BytesMut::new(),
        };
        Ok((driver, info))
    }

    pub(crate) async fn run(
        mut self,
        events: EventTx,
        acks: watch::Receiver<Option<Position>>,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        self.events = events;
        self.acks = acks;
        self.stop = stop;
        if let Some(store) = self.store.take() {
            self.persister = Some(Persister::spawn(store));
        }
        let mut res = self.run_inner().await;
        if let Err(Error::Stopped { .. }) = res {
            // The consumer stopped or went away: still store offsets,
            // confirm what was acknowledged, drop the slot if asked.
            res = match self.process_acks().await {
                Ok(()) => self.finish().await,
                Err(e) => Err(e),
            };
        }
        if let Err(e) = &res {
            tracing::error!("replication source stopped: {e}");
            let _ = self.events.send(Err(e.clone())).await;
        }
        res
    }

    async fn run_inner(&mut self) -> Result<()> {
        match self.info.plan {
            StartPlan::Done => return self.finish().await,
            StartPlan::Snapshot | StartPlan::ResumeSnapshot => {
                if !self.snapshot().await? {
                    return self.finish().await;
                }
                if self.cfg.snapshot_mode == SnapshotMode::InitialOnly {
                    // No more events; keep recording acknowledgements until
                    // every row is acknowledged.
                    self.events = mpsc::channel(1).0;
                    while self.snap.is_some() {
                        tokio::select! {
                            _ = wait_stop(&mut self.stop) => break,
                            r = Self::woken(&mut self.acks, &mut self.persister) => {
                                if !r { break; }
                                self.process_acks().await?;
                            }
                        }
                    }
                    return self.finish().await;
                }
            }
            StartPlan::Stream => {}
        }
        let mut attempt: u32 = 0;
        loop {
            let created = self.created.take();
            let delivered_before = self.last_delivered;
            match self.session(created).await {
                Ok(SessionEnd::Stopped) => {
                    self.process_acks().await?;
                    return self.finish().await;
                }
                Err(e @ Error::SlotInUse { .. }) if attempt >= self.cfg.slot_max_retries => {
                    return Err(e)
                }
                Err(e) if e.is_retriable() => {
                    if let Some(mut c) = self.client.take() {
                        c.abort();
                    }
                    attempt = if self.last_delivered > delivered_before {
                        1
                    } else {
                        attempt + 1
                    };
                    let delay = if matches!(e, Error::SlotInUse { .. }) {
                        self.cfg.slot_retry_delay
                    } else {
                        Duration::from_millis(100u64.saturating_mul(1 << attempt.min(9)))
                            .min(Duration::from_secs(30))
                    };
                    tracing::warn!(
                        attempt,
                        ?delay,
                        "replication connection lost, reconnecting: {e}"
                    );
                    self.txn = None;
                    self.decoder.reset();
                    self.skip_through = self.skip_through.max(self.last_delivered);
                    tokio::select! {
                        _ = wait_stop(&mut self.stop) => return self.finish().await,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    if self.sql.is_closed() {
                        match catalog::connect(
                            &self.cfg,
                            &format!("pg-cdc {}", self.cfg.topic_prefix),
                        )
                        .await
                        {
                            Ok(c) => self.sql = c,
                            Err(e) if e.is_retriable() => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stores offsets, confirms the flushed LSN, closes the stream, drops the
    /// slot if asked.
    async fn finish(&mut self) -> Result<()> {
        self.persist_durably().await?;
        if let Some(mut c) = self.client.take() {
            c.update_applied_lsn(pgwire_replication::Lsn(self.flushed.0));
            let _ = tokio::time::timeout(Duration::from_secs(10), c.shutdown()).await;
            // The stream ends without a last status update: confirm the
            // final position on the slot directly once the walsender let go.
            if self.flushed.0 != 0 && !self.cfg.slot_drop_on_stop {
                slot::advance_slot(&self.sql, &self.cfg.slot_name, self.flushed).await;
            }
        }
        if let Some(created) = self.created.take() {
            drop(created);
        }
        if self.cfg.slot_drop_on_stop {
            slot::drop_slot(&self.sql, &self.cfg.slot_name).await?;
        }
        Ok(())
    }

    /// Hands the offset to the persister if it changed; returns at once.
    fn persist(&mut self) -> Result<&mut Persister> {
        let persister = self.persister.as_mut().ok_or_else(|| Error::Stopped {
            detail: "the source is not running".into(),
        })?;
        if self.offset != self.stored {
            persister.request(&self.offset);
            self.stored = self.offset.clone();
        }
        Ok(persister)
    }

    /// Stores the offset and waits until it is durable, then confirms what
    /// that allows.
    async fn persist_durably(&mut self) -> Result<()> {
        self.persist()?.wait_durable().await?;
        self.confirm_durable()
    }

    /// Confirms to the slot the newest flush position whose offsets are
    /// durable (the stream does not wait for the store: it keeps decoding
    /// and confirms when the store finishes).
    fn confirm_durable(&mut self) -> Result<()> {
        let Some(persister) = self.persister.as_mut() else {
            return Ok(());
        };
        if let Some(lsn) = persister.durable_flush()? {
            if lsn > self.flushed {
                self.flushed = lsn;
                self.stats.confirmed(lsn);
                if let Some(c) = self.client.as_ref() {
                    c.update_applied_lsn(pgwire_replication::Lsn(lsn.0));
                }
            }
        }
        Ok(())
    }

    /// Resolves when the consumer acknowledged more (`true`) or went away
    /// (`false`), or when an offset store finished (`true`).
    async fn woken(
        acks: &mut watch::Receiver<Option<Position>>,
        persister: &mut Option<Persister>,
    ) -> bool {
        tokio::select! {
            r = acks.changed() => r.is_ok(),
            _ = async {
                match persister.as_mut() {
                    Some(p) => p.changed().await,
                    None => std::future::pending::<()>().await,
                }
            } => true,
        }
    }

    // ---------------------------------------------------------------- acks

    async fn process_acks(&mut self) -> Result<()> {
        let latest = *self.acks.borrow_and_update();
        if latest > self.acked {
            self.acked = latest;
        }
        let Some(acked) = self.acked else {
            return Ok(());
        };
        let mut snapshot_completed = false;
        if let Some(snap) = &mut self.snap {
            let progress = self
                .offset
                .snapshot
                .get_or_insert_with(|| SnapshotProgress {
                    consistent_point: Lsn(snap.lsn.0 + 1),
                    completed: false,
                    tables: Default::default(),
                    next_seq: 0,
                });
            if acked.commit_lsn == snap.lsn {
                progress.next_seq = progress.next_seq.max(acked.seq + 1);
            }
            while let Some(front) = snap.chunks.front() {
                let done = match front.last_seq {
                    None => true,
                    Some(s) => {
                        acked
                            >= Position {
                                commit_lsn: snap.lsn,
                                seq: s,
                            }
                    }
                };
                if !done {
                    break;
                }
                let Some(c) = snap.chunks.pop_front() else {
                    break;
                };
                if let Some(s) = c.last_seq {
                    progress.next_seq = progress.next_seq.max(s + 1);
                }
                let p = if c.last_of_table {
                    TableProgress::Done
                } else {
                    TableProgress::After(c.upper.unwrap_or_default())
                };
                progress.tables.insert(c.table, p);
            }
            if snap.emission_done && snap.chunks.is_empty() {
                progress.completed = true;
                snapshot_completed = true;
            }
        }
        if snapshot_completed {
            self.snap = None;
        }
        let snapshot_pending =
            self.snap.is_some() || self.offset.snapshot.as_ref().is_some_and(|s| !s.completed);
        if self.snap.is_none()
            && self
                .offset
                .snapshot
                .as_ref()
                .is_none_or(|s| acked.commit_lsn >= s.consistent_point)
            && self.offset.acked < Some(acked)
            && acked.commit_lsn.0 != 0
            && !self.is_snapshot_position(acked)
        {
            self.offset.acked = Some(acked);
        }
        let mut flush = None;
        if !snapshot_pending {
            while let Some(front) = self.inflight.front() {
                if front.last.is_some_and(|l| l > acked) {
                    break;
                }
                flush = Some(front.end_lsn);
                self.inflight.pop_front();
            }
        }
        let persister = self.persist()?;
        if let Some(lsn) = flush {
            persister.confirm_after(lsn);
        }
        self.confirm_durable()
    }

    fn is_snapshot_position(&self, p: Position) -> bool {
        self.offset
            .snapshot
            .as_ref()
            .is_some_and(|s| p.commit_lsn.0 + 1 == s.consistent_point.0)
    }

    /// True when everything delivered is acknowledged and nothing is open.
    fn idle(&self) -> bool {
        self.txn.is_none()
            && self.inflight.is_empty()
            && self.snap.is_none()
            && self.offset.snapshot.as_ref().is_none_or(|s| s.completed)
            && (self.last_delivered.is_none() || self.last_delivered <= self.acked)
            // Acknowledged is not enough: the offsets must be durable too.
            && self.persister.as_ref().is_none_or(Persister::settled)
    }

    // ------------------------------------------------------------ snapshot

    /// Runs (or resumes) the snapshot. Returns false when stopped.
    async fn snapshot(&mut self) -> Result<bool> {
        let resume = self.info.plan == StartPlan::ResumeSnapshot;
        // The exporting session must stay open until every reader imported.
        let mut exporter: Option<Client> = None;
        let (cp, snapshot_name) = if resume {
            let cp = self
                .offset
                .snapshot
                .as_ref()
                .map(|s| s.consistent_point)
                .unwrap_or_default();
            let c = catalog::connect(&self.cfg, "pg-cdc snapshot export").await?;
            c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(sql_error("starting the resumed snapshot"))?;
            let row = c
                .query_one("SELECT pg_export_snapshot()", &[])
                .await
                .map_err(sql_error("exporting the resumed snapshot"))?;
            exporter = Some(c);
            (cp, row.get::<_, String>(0))
        } else {
            let created = self.created.as_ref().ok_or_else(|| Error::Stopped {
                detail: "no slot was created".into(),
            })?;
            let cp = created.consistent_point;
            let name = created
                .snapshot_name
                .clone()
                .ok_or_else(|| Error::Replication {
                    detail: "CREATE_REPLICATION_SLOT exported no snapshot".into(),
                    retriable: false,
                })?;
            self.offset.snapshot = Some(SnapshotProgress {
                consistent_point: cp,
                completed: false,
                tables: Default::default(),
                next_seq: 0,
            });
            self.persist_durably().await?;
            (cp, name)
        };
        let snap_lsn = Lsn(cp.0.saturating_sub(1));
        self.snap = Some(SnapTrack {
            lsn: snap_lsn,
            chunks: VecDeque::new(),
            emission_done: false,
        });

        // Tables still to read.
        let progress = self.offset.snapshot.clone();
        let mut todo: Vec<(TableMeta, Option<Vec<String>>)> = Vec::new();
        for meta in &self.tables {
            match progress.as_ref().and_then(|p| p.tables.get(&meta.id)) {
                Some(TableProgress::Done) => {}
                Some(TableProgress::After(k)) => todo.push((meta.clone(), Some(k.clone()))),
                None => todo.push((meta.clone(), None)),
            }
        }
        // Readers import the snapshot and lock the tables (ACCESS SHARE, as
        // Debezium does) so no DDL changes them while they are read.
        let ids: Vec<TableId> = todo.iter().map(|(m, _)| m.id.clone()).collect();
        let threads = self.cfg.snapshot_max_threads.max(1);
        let readers = snapshot::open_readers(&self.cfg, &snapshot_name, threads, &ids).await?;
        drop(exporter.take());
        // With the locks held, the current catalog is what COPY resolves
        // names against: reload it (DDL may have run since start).
        let mut stables = Vec::new();
        for (meta, resume_after) in todo {
            let Some(meta) = catalog::load_table(&self.sql, meta.oid).await? else {
                continue;
            };
            self.register_meta(&meta).await?;
            let cached = self.cache.insert_relation(&meta.relation());
            let schema = cached.schema.clone();
            let decoders = schema
                .columns
                .iter()
                .map(|c| ValueDecoder::for_type(&c.pg_type))
                .collect();
            stables.push(SnapshotTable {
                meta,
                schema,
                decoders: Arc::new(decoders),
                resume_after,
            });
        }
        let planner = &readers[0];
        let xmin: Option<i64> = planner
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                &[],
            )
            .await
            .ok()
            .map(|r| r.get(0));
        let plan = snapshot::plan_chunks(planner, &stables, self.cfg.snapshot_chunk_size).await?;
        self.stats.set_snapshot(
            stables
                .iter()
                .zip(&plan.rows)
                .map(|(t, rows)| TableSnapshot {
                    table: t.meta.id.clone(),
                    expected_rows: *rows,
                })
                .collect(),
        );
        let chunks: Vec<Chunk> = plan.chunks;
        let chunk_meta: Vec<(usize, Option<Vec<String>>, bool)> = chunks
            .iter()
            .map(|c| (c.table, c.upper.clone(), c.last_of_table))
            .collect();
        let stables = Arc::new(stables);
        let mut run = snapshot::start(
            readers,
            self.cfg.snapshot_fetch_size,
            stables.clone(),
            chunks,
        );
        tracing::info!(tables = stables.len(), chunks = chunk_meta.len(), consistent_point = %cp, resume, "snapshot started");

        let ts_us = now_ns() / 1000;
        let mut pending: Option<(ChangeEvent, usize, bool)> = None; // (event, table, first in table)
        let mut first_overall = true;
        let mut last_table: Option<usize> = None;
        loop {
            let next = tokio::select! {
                biased;
                _ = wait_stop(&mut self.stop) => return Ok(false),
                r = Self::woken(&mut self.acks, &mut self.persister) => { if r { self.process_acks().await?; } continue; }
                c = run.chunks.recv() => c,
            };
            let Some((ci, mut rows)) = next else { break };
            let table_idx = chunk_meta[ci].0;
            let mut last_seq = None;
            loop {
                let batch = tokio::select! {
                    biased;
                    _ = wait_stop(&mut self.stop) => return Ok(false),
                    r = Self::woken(&mut self.acks, &mut self.persister) => { if r { self.process_acks().await?; } continue; }
                    b = rows.recv() => b,
                };
                let Some(batch) = batch else { break };
                let batch: Vec<Row> = batch?;
                let t = &stables[table_idx];
                for row in batch {
                    let seq = self.snap_next_seq;
                    self.snap_next_seq += 1;
                    last_seq = Some(seq);
                    let ev = self.snapshot_event(&t.schema, row, cp, snap_lsn, seq, ts_us, xmin);
                    let first_in_table = last_table != Some(table_idx);
                    last_table = Some(table_idx);
                    if let Some((mut prev, prev_table, prev_first)) = pending.take() {
                        prev.source.snapshot = if first_overall {
                            first_overall = false;
                            SnapshotMarker::First
                        } else if prev_first {
                            SnapshotMarker::FirstInDataCollection
                        } else if prev_table != table_idx {
                            SnapshotMarker::LastInDataCollection
                        } else {
                            SnapshotMarker::True
                        };
                        self.deliver(SourceEvent::Change(prev)).await?;
                    }
                    pending = Some((ev, table_idx, first_in_table));
                }
            }
            let (table, upper, last_of_table) = chunk_meta[ci].clone();
            let table = stables[table].meta.id.clone();
            if let Some(snap) = &mut self.snap {
                snap.chunks.push_back(EmittedChunk {
                    table,
                    upper,
                    last_of_table,
                    last_seq,
                });
            }
        }
        if let Some((mut prev, _, _)) = pending.take() {
            prev.source.snapshot = if first_overall {
                SnapshotMarker::First
            } else {
                SnapshotMarker::Last
            };
            self.deliver(SourceEvent::Change(prev)).await?;
        }
        if let Some(snap) = &mut self.snap {
            snap.emission_done = true;
        }
        drop(run);
        self.process_acks().await?;
        tracing::info!(rows = self.snap_next_seq, "snapshot emitted");
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn snapshot_event(
        &mut self,
        schema: &Arc<TableSchema>,
        row: Row,
        cp: Lsn,
        snap_lsn: Lsn,
        seq: u64,
        ts_us: i64,
        xmin: Option<i64>,
    ) -> ChangeEvent {
        ChangeEvent {
            op: Op::Read,
            table: Some(schema.clone()),
            before: None,
            after: Some(row),
            source: SourceInfo {
                snapshot: SnapshotMarker::True,
                sequence: Some(sequence(&mut self.text, None, cp)),
                tx_id: xmin,
                lsn: i64::try_from(cp.0).ok(),
                ..self.source_info(Some(schema), ts_us)
            },
            ts_ns: now_ns(),
            transaction: None,
            message: None,
            position: Position {
                commit_lsn: snap_lsn,
                seq,
            },
            key_change: None,
        }
    }

    fn source_info(&mut self, table: Option<&Arc<TableSchema>>, ts_us: i64) -> SourceInfo {
        let (schema, table) = match table {
            Some(t) => self.table_names(t),
            None => (Str::default(), Str::default()),
        };
        SourceInfo {
            version: Str::from_static(env!("CARGO_PKG_VERSION")),
            connector: Str::from_static(CONNECTOR),
            name: self.source_name.clone(),
            ts_us,
            snapshot: SnapshotMarker::False,
            db: self.source_db.clone(),
            sequence: None,
            schema,
            table,
            tx_id: None,
            lsn: None,
            xmin: None,
            origin: None,
            origin_lsn: None,
        }
    }

    /// `source.schema` and `source.table` for `table`'s events.
    fn table_names(&mut self, table: &Arc<TableSchema>) -> (Str, Str) {
        match &self.names {
            Some((last, schema, name)) if Arc::ptr_eq(last, table) => {
                (schema.clone(), name.clone())
            }
            _ => {
                let schema = Str::from(table.id.schema.as_str());
                let name = Str::from(table.id.table.as_str());
                self.names = Some((table.clone(), schema.clone(), name.clone()));
                (schema, name)
            }
        }
    }

    /// Sends an event, processing acknowledgements while the queue is full.
    async fn send(&mut self, ev: SourceEvent) -> Result<()> {
        // Fast path: room in the queue.
        let ev = match self.events.try_reserve() {
            Ok(permit) => {
                permit.send(Ok(ev));
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                return Err(Error::Stopped {
                    detail: "the consumer went away".into(),
                })
            }
            Err(mpsc::error::TrySendError::Full(())) => ev,
        };
        let events = self.events.clone();
        loop {
            tokio::select! {
                biased;
                permit = events.reserve() => {
                    let permit = permit.map_err(|_| Error::Stopped { detail: "the consumer went away".into() })?;
                    permit.send(Ok(ev));
                    return Ok(());
                }
                r = Self::woken(&mut self.acks, &mut self.persister) => {
                    if !r {
                        return Err(Error::Stopped { detail: "the consumer went away".into() });
                    }
                    self.process_acks().await?;
                }
            }
        }
    }

    async fn deliver(&mut self, ev: SourceEvent) -> Result<()> {
        if let SourceEvent::Change(c) = &ev {
            self.last_delivered = self.last_delivered.max(Some(c.position));
        }
        self.send(ev).await
    }

    // ----------------------------------------------------------- streaming

    async fn session(&mut self, created: Option<CreatedSlot>) -> Result<SessionEnd> {
        let name = self.cfg.slot_name.clone();
        let client = match created {
            Some(c) => {
                let mut client = c.client;
                client
                    .start()
                    .await
                    .map_err(|e| slot::wire_connect_error(e, &self.cfg))?;
                client
            }
            None => {
                ReplicationClient::connect(slot::replication_config(&self.cfg, Some(self.flushed)))
                    .await
                    .map_err(|e| slot::wire_connect_error(e, &self.cfg))?
            }
        };
        let client = self.client.insert(client);
        client
            .wait_started()
            .await
            .map_err(|e| slot::wire_connect_error(e, &self.cfg))?;
        tracing::info!(slot = %name, flushed = %self.flushed, "streaming started");
        let mut heartbeat = self.cfg.heartbeat_interval.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            // Acknowledgements first: cheap, and they release WAL.
            if self.acks.has_changed().unwrap_or(false) {
                self.process_acks().await?;
            }
            let Some(client) = self.client.as_mut() else {
                return Err(Error::Replication {
                    detail: "no replication connection".into(),
                    retriable: true,
                });
            };
            let ev = tokio::select! {
                biased;
                _ = wait_stop(&mut self.stop) => return Ok(SessionEnd::Stopped),
                r = Self::woken(&mut self.acks, &mut self.persister) => {
                    if !r { return Ok(SessionEnd::Stopped); }
                    self.process_acks().await?;
                    continue;
                }
                _ = async { match heartbeat.as_mut() { Some(h) => { h.tick().await; } None => std::future::pending::<()>().await } } => {
                    self.heartbeat().await?;
                    continue;
                }
                ev = client.recv() => ev,
            };
            match ev {
                Ok(Some(ev)) => self.handle(ev).await?,
                Ok(None) => {
                    return Err(Error::Replication {
                        detail: "the server ended the replication stream".into(),
                        retriable: true,
                    })
                }
                Err(e) => return Err(slot::wire_error(e, &name)),
            }
        }
    }

    async fn heartbeat(&mut self) -> Result<()> {
        if let Some(q) = self.cfg.heartbeat_action_query.clone() {
            if let Err(e) = self.sql.batch_execute(&q).await {
                tracing::warn!("heartbeat.action.query failed: {e}");
                if self.sql.is_closed() {
                    return Err(sql_error("running heartbeat.action.query")(e));
                }
            }
        }
        let hb = Heartbeat {
            ts_ms: now_ns() / 1_000_000,
            flushed_lsn: self.flushed,
        };
        self.send(SourceEvent::Heartbeat(hb)).await
    }

    async fn handle(&mut self, ev: ReplicationEvent) -> Result<()> {
        match ev {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                self.txn = Some(Txn {
                    final_lsn: Lsn(final_lsn.0),
                    xid,
                    ts_us: pg_to_unix_micros(commit_time_micros),
                    seq: 0,
                    last_delivered: None,
                    begin_sent: false,
                    emitted: 0,
                    per_table: HashMap::new(),
                    origin: None,
                });
            }
            ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                if let Some(txn) = self.txn.take() {
                    if self.cfg.provide_transaction_metadata && txn.begin_sent {
                        let marker = TransactionMarker {
                            id: format!("{}:{}", txn.xid, txn.final_lsn.0),
                            xid: txn.xid,
                            ts_us: txn.ts_us,
                            event_count: txn.emitted,
                            data_collections: txn
                                .per_table
                                .iter()
                                .map(|(k, v)| (k.clone(), *v))
                                .collect(),
                            position: txn.last_delivered.unwrap_or_default(),
                        };
                        self.send(SourceEvent::TransactionEnd(marker)).await?;
                    }
                    self.inflight.push_back(Inflight {
                        last: txn.last_delivered,
                        end_lsn: Lsn(end_lsn.0),
                    });
                }
                self.last_commit_lsn = Some(Lsn(lsn.0));
                if self
                    .inflight
                    .front()
                    .is_some_and(|f| f.last.is_none() || f.last <= self.acked)
                {
                    self.process_acks().await?;
                }
            }
            ReplicationEvent::XLogData {
                wal_start,
                wal_end,
                data,
                ..
            } => {
                self.stats.saw_wal_end(Lsn(wal_end.0));
                self.handle_pgoutput(Lsn(wal_start.0), data).await?;
            }
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                let lsn = Lsn(lsn.0);
                let in_txn = transactional && self.txn.is_some();
                self.emit_message(transactional, lsn, prefix, content)
                    .await?;
                if !in_txn {
                    let last = Some(Position {
                        commit_lsn: lsn,
                        seq: 0,
                    });
                    self.inflight.push_back(Inflight { last, end_lsn: lsn });
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                let wal_end = Lsn(wal_end.0);
                self.stats.saw_wal_end(wal_end);
                if self.idle() && wal_end > self.flushed {
                    self.flushed = wal_end;
                    self.stats.confirmed(wal_end);
                    if let Some(c) = self.client.as_ref() {
                        c.update_applied_lsn(pgwire_replication::Lsn(wal_end.0));
                    }
                }
            }
            ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    /// Next position in the current transaction, and whether it must be
    /// delivered (false when it was delivered before a restart/reconnect).
    fn next_position(&mut self) -> Option<(Position, bool)> {
        let txn = self.txn.as_mut()?;
        let pos = Position {
            commit_lsn: txn.final_lsn,
            seq: txn.seq,
        };
        txn.seq += 1;
        Some((pos, self.skip_through.is_none_or(|s| pos > s)))
    }

    async fn emit_change(&mut self, mut ev: ChangeEvent, deliver: bool) -> Result<()> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        txn.last_delivered = txn.last_delivered.max(Some(ev.position));
        if !deliver {
            return Ok(());
        }
        ev.source.origin = txn.origin.as_deref().map(Into::into);
        if self.cfg.provide_transaction_metadata {
            let begin = if txn.begin_sent {
                None
            } else {
                txn.begin_sent = true;
                Some(TransactionMarker {
                    id: format!("{}:{}", txn.xid, txn.final_lsn.0),
                    xid: txn.xid,
                    ts_us: txn.ts_us,
                    event_count: 0,
                    data_collections: Vec::new(),
                    position: ev.position,
                })
            };
            txn.emitted += 1;
            let table_order = match &ev.table {
                // Looked up before inserting: the id is cloned once per table.
                Some(t) => match txn.per_table.get_mut(&t.id) {
                    Some(n) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        txn.per_table.insert(t.id.clone(), 1);
                        1
                    }
                },
                None => 0,
            };
            ev.transaction = Some(TransactionBlock {
                id: format!("{}:{}", txn.xid, txn.final_lsn.0),
                total_order: i64::try_from(txn.emitted).unwrap_or(i64::MAX),
                data_collection_order: i64::try_from(table_order).unwrap_or(i64::MAX),
            });
            if let Some(b) = begin {
                self.send(SourceEvent::TransactionBegin(b)).await?;
            }
        }
        self.deliver(SourceEvent::Change(ev)).await
    }

    fn stream_event(
        &mut self,
        op: Op,
        schema: Option<Arc<TableSchema>>,
        lsn: Lsn,
        pos: Position,
    ) -> ChangeEvent {
        let (xid, ts_us) = self.txn.as_ref().map_or((None, now_ns() / 1000), |t| {
            (Some(i64::from(t.xid)), t.ts_us)
        });
        let source = SourceInfo {
            sequence: Some(sequence(&mut self.text, self.last_commit_lsn, lsn)),
            tx_id: xid,
            lsn: i64::try_from(lsn.0).ok(),
            ..self.source_info(schema.as_ref(), ts_us)
        };
        ChangeEvent {
            op,
            table: schema,
            before: None,
            after: None,
            source,
            ts_ns: now_ns(),
            transaction: None,
            message: None,
            position: pos,
            key_change: None,
        }
    }

    async fn emit_message(
        &mut self,
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    ) -> Result<()> {
        let message = LogicalMessage {
            prefix,
            content,
            transactional,
        };
        if transactional && self.txn.is_some() {
            let Some((pos, deliver)) = self.next_position() else {
                return Ok(());
            };
            let mut ev = self.stream_event(Op::Message, None, lsn, pos);
            ev.message = Some(message);
            return self.emit_change(ev, deliver).await;
        }
        let pos = Position {
            commit_lsn: lsn,
            seq: 0,
        };
        if self.skip_through.is_some_and(|s| pos <= s) {
            return Ok(());
        }
        let mut ev = self.stream_event(Op::Message, None, lsn, pos);
        ev.source.tx_id = None;
        ev.message = Some(message);
        self.deliver(SourceEvent::Change(ev)).await
    }

    fn captured(&mut self, schema: &TableSchema) -> bool {
        if let Some(c) = self.captured.get(&schema.relation_oid) {
            return *c;
        }
        let c = self.cfg.tables.includes(&schema.id);
        self.captured.insert(schema.relation_oid, c);
        c
    }

    async fn handle_pgoutput(&mut self, lsn: Lsn, data: Bytes) -> Result<()> {
        let msg = self.decoder.decode(data)?;
        match &msg {
            PgOutputMessage::Relation(rel) => {
                let id = TableId::new(
                    if rel.namespace.as_str().is_empty() {
                        "pg_catalog"
                    } else {
                        rel.namespace.as_str()
                    },
                    rel.name.as_str(),
                );
                if self.cfg.tables.includes(&id) {
                    self.refresh_catalog(rel.oid, rel.columns.iter().map(|c| c.type_oid).collect())
                        .await?;
                }
                self.captured.remove(&rel.oid);
                self.cache.insert_relation(rel);
            }
            PgOutputMessage::Type(_) => {
                self.cache.apply(&msg);
            }
            PgOutputMessage::Origin(o) => {
                if let Some(t) = self.txn.as_mut() {
                    t.origin = Some(o.name.as_str().to_owned());
                }
            }
            PgOutputMessage::Insert(_)
            | PgOutputMessage::Update(_)
            | PgOutputMessage::Delete(_) => {
                let Some(change) = self.cache.row_change(&msg)? else {
                    return Ok(());
                };
                self.emit_row_change(lsn, change).await?;
            }
            PgOutputMessage::Truncate(t) => {
                for oid in &t.relation_oids {
                    let Some((pos, deliver)) = self.next_position() else {
                        return Ok(());
                    };
                    let Some(schema) = self.cache.get(*oid).map(|r| r.schema.clone()) else {
                        continue;
                    };
                    if !self.captured(&schema) || self.cfg.skipped_operations.truncate {
                        continue;
                    }
                    let ev = self.stream_event(Op::Truncate, Some(schema), lsn, pos);
                    self.emit_change(ev, deliver).await?;
                }
            }
            PgOutputMessage::Message(m) => {
                let (transactional, lsn, prefix, content) = (
                    m.transactional(),
                    m.lsn,
                    m.prefix.as_str().to_owned(),
                    m.content.clone(),
                );
                self.emit_message(transactional, lsn, prefix, content)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn refresh_catalog(&mut self, oid: u32, type_oids: Vec<u32>) -> Result<()> {
        // The catalog must show at least what this transaction did (see
        // `catalog::wait_until_visible`).
        if let Some(xid) = self.txn.as_ref().map(|t| t.xid) {
            if !catalog::wait_until_visible(&self.sql, xid, VISIBILITY_WAIT).await? {
                tracing::warn!(
                    xid,
                    relation_oid = oid,
                    "the decoded transaction was still not visible to a new snapshot after \
                     {VISIBILITY_WAIT:?}; reading the catalog anyway (column defaults and \
                     NOT NULL of columns it added may be missing from the schema)"
                );
            }
        }
        catalog::load_types(&self.sql, self.cache.registry_mut(), type_oids).await?;
        if let Some(meta) = catalog::load_table(&self.sql, oid).await? {
            self.register_meta(&meta).await?;
        }
        Ok(())
    }

    /// Registers a table's catalog facts. The catalog is read now, while a
    /// Relation message may describe the table as it was earlier: what was
    /// known about columns the catalog no longer has (dropped since) is kept.
    async fn register_meta(&mut self, meta: &TableMeta) -> Result<()> {
        let oids = meta.columns.iter().map(|c| c.type_oid).collect();
        catalog::load_types(&self.sql, self.cache.registry_mut(), oids).await?;
        let mut info = meta.table_info();
        if let Some(old) = self.cache.registry().get_table(meta.oid) {
            for (name, col) in &old.columns {
                info.columns
                    .entry(name.clone())
                    .or_insert_with(|| col.clone());
            }
            if info.primary_key.is_empty() {
                info.primary_key = old.primary_key.clone();
            }
        }
        self.cache.registry_mut().insert_table(meta.oid, info);
        Ok(())
    }

    async fn emit_row_change(&mut self, lsn: Lsn, change: RowChange) -> Result<()> {
        let skipped = self.cfg.skipped_operations;
        let captured = self.captured(&change.schema);
        let RowChange {
            kind,
            schema,
            before,
            after,
            ..
        } = change;
        let key_changed = kind == ChangeKind::Update
            && schema.has_key()
            && match (&before, &after) {
                (Some(b), Some(a)) => schema
                    .key_indices()
                    .any(|i| !same_key_value(b.get(i), a.get(i))),
                _ => false,
            };
        if key_changed {
            // Debezium: a delete of the old key, then a create of the new one.
            let Some((pos_d, deliver_d)) = self.next_position() else {
                return Ok(());
            };
            let Some((pos_c, deliver_c)) = self.next_position() else {
                return Ok(());
            };
            if !captured || skipped.update {
                return Ok(());
            }
            // Each half carries the other's key (Debezium's
            // `__debezium.newkey` / `__debezium.oldkey` headers).
            let key_of = |row: &Option<Row>| -> Row {
                row.as_ref().map_or_else(Vec::new, |r| {
                    schema
                        .key_indices()
                        .map(|i| r.get(i).cloned().unwrap_or(Value::Null))
                        .collect()
                })
            };
            let (old_key, new_key) = (key_of(&before), key_of(&after));
            let mut d = self.stream_event(Op::Delete, Some(schema.clone()), lsn, pos_d);
            d.before = before;
            d.key_change = Some(KeyChange::NewKey(new_key));
            self.emit_change(d, deliver_d).await?;
            let mut c = self.stream_event(Op::Create, Some(schema), lsn, pos_c);
            c.after = after;
            c.key_change = Some(KeyChange::OldKey(old_key));
            return self.emit_change(c, deliver_c).await;
        }
        let Some((pos, deliver)) = self.next_position() else {
            return Ok(());
        };
        let (op, skip) = match kind {
            ChangeKind::Insert => (Op::Create, skipped.create),
            ChangeKind::Update => (Op::Update, skipped.update),
            ChangeKind::Delete => (Op::Delete, skipped.delete),
        };
        if !captured || skip {
            return Ok(());
        }
        let mut ev = self.stream_event(op, Some(schema), lsn, pos);
        ev.before = before;
        ev.after = after;
        self.emit_change(ev, deliver).await
    }
}

/// Key equality as Debezium's `Objects.equals` on key structs: like `==`,
/// except that floats compare by bits (`Float.equals`), so a NaN key equals
/// itself and an update of a row with a NaN key is not a key change; and an
/// unchanged TOASTed value (absent from the WAL record) counts as unchanged.
fn same_key_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn bits32(f: f32) -> u32 {
        if f.is_nan() {
            f32::NAN.to_bits()
        } else {
            f.to_bits()
        }
    }
    fn bits64(f: f64) -> u64 {
        if f.is_nan() {
            f64::NAN.to_bits()
        } else {
            f.to_bits()
        }
    }
    match (a, b) {
        // An unchanged TOASTed key value (not in the new tuple) did not change.
        (_, Some(Value::Unavailable)) | (Some(Value::Unavailable), _) => true,
        (Some(Value::Float32(x)), Some(Value::Float32(y))) => bits32(*x) == bits32(*y),
        (Some(Value::Float64(x)), Some(Value::Float64(y))) => bits64(*x) == bits64(*y),
        _ => a == b,
    }
}

/// Debezium's `source.sequence`, `["<last commit lsn>","<lsn>"]` (`null`
/// before the first commit), written without `format!` (the formatting
/// machinery with its reallocations was ~30 % of the replication reader's
/// CPU) and split off `arena` (one allocation per few hundred changes
/// instead of one per change).
fn sequence(arena: &mut BytesMut, last_commit: Option<Lsn>, lsn: Lsn) -> Str {
    const MAX: usize = 2 * 20 + 7;
    if arena.capacity() - arena.len() < MAX {
        *arena = BytesMut::with_capacity(16 * 1024);
    }
    arena.put_u8(b'[');
    match last_commit {
        Some(l) => {
            arena.put_u8(b'"');
            push_u64(arena, l.0);
            arena.put_u8(b'"');
        }
        None => arena.put_slice(b"null"),
    }
    arena.put_slice(b",\"");
    push_u64(arena, lsn.0);
    arena.put_slice(b"\"]");
    // ASCII only: always valid UTF-8.
    Str::from_utf8(arena.split().freeze()).unwrap_or_default()
}

/// Appends `v` in decimal.
fn push_u64(s: &mut BytesMut, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    s.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_debeziums_json_pair() {
        let mut arena = BytesMut::new();
        let mut sequence = |last, lsn| sequence(&mut arena, last, lsn).as_str().to_owned();
        assert_eq!(sequence(None, Lsn(0)), r#"[null,"0"]"#);
        assert_eq!(sequence(Some(Lsn(9)), Lsn(10)), r#"["9","10"]"#);
        // Hundreds of strings cross the arena's refills unharmed.
        for (last, lsn) in [(1u64, 22_817_216u64), (u64::MAX, u64::MAX - 1), (10, 100)]
            .into_iter()
            .cycle()
            .take(3000)
        {
            assert_eq!(
                sequence(Some(Lsn(last)), Lsn(lsn)),
                format!("[\"{last}\",\"{lsn}\"]")
            );
        }
    }

    #[test]
    fn key_equality_like_debezium() {
        let v = |x: Value| Some(x);
        assert!(same_key_value(
            v(Value::Float64(f64::NAN)).as_ref(),
            v(Value::Float64(f64::NAN)).as_ref()
        ));
        assert!(same_key_value(
            v(Value::Float32(f32::NAN)).as_ref(),
            v(Value::Float32(-f32::NAN)).as_ref()
        ));
        assert!(!same_key_value(
            v(Value::Float64(1.0)).as_ref(),
            v(Value::Float64(2.0)).as_ref()
        ));
        assert!(same_key_value(
            v(Value::Text("k".into())).as_ref(),
            v(Value::Unavailable).as_ref()
        ));
        assert!(!same_key_value(
            v(Value::Int32(1)).as_ref(),
            v(Value::Int32(2)).as_ref()
        ));
        assert!(same_key_value(None, None));
    }
}
