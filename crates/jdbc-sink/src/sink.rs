//! One writer on one connection: batches in, one transaction per batch,
//! failing records isolated by bisection, transient errors retried.
//!
//! A batch first takes the pipelined fast path (no savepoint; `BEGIN`, its
//! slices' statements, the offsets upsert and the `COMMIT` queued back to
//! back, so the client plans and encodes slice *k+1* while the server
//! executes slice *k*). Anything but a clean run rolls the whole transaction
//! back and the careful path redoes the batch with a savepoint, bisecting to
//! isolate failing records; those go to the [`DeadLetterSink`] (if any)
//! before that transaction's `COMMIT`. A transient error (connection lost,
//! serialization failure, deadlock, lock timeout, server shutting down)
//! rolls back, waits `flush.retry.delay.ms` doubled per attempt (at most
//! 16×), reconnects if needed, re-reads the stored offsets and retries, up to
//! `flush.max.retries` times.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::config::{ErrorTolerance, InsertMode, SinkConfig, WritePath};
use crate::ddl::{evolve, Catalog};
use crate::dead_letter::DeadLetterSink;
use crate::error::{RecordError, SinkError};
use crate::ident::quote_ident;
use crate::offsets::{split, OffsetStore};
use crate::record::{BatchOutcome, FailedRecord, SinkRecord, TopicPartition};
use crate::reduce::{plan, Plan, TopicMemory};
use crate::write::{resolve_path, unnest_statements, write_table, WriteError, WriteState};

/// A single-connection sink writer.
///
/// Not `Clone`; use [`crate::pool::SinkPool`] for several connections.
#[derive(Debug)]
pub struct JdbcSink {
    config: Arc<SinkConfig>,
    client: Option<Client>,
    connection: Option<JoinHandle<()>>,
    catalog: Catalog,
    state: WriteState,
    memory: TopicMemory,
    offsets: Option<OffsetStore>,
    /// Next offset per partition already stored in the target.
    stored: HashMap<TopicPartition, i64>,
    /// Transient-error retries since connect.
    retries: u64,
    /// SQLSTATE of the last transient error retried (`None` for errors
    /// without one, such as a closed socket).
    last_retry_code: Option<String>,
}

/// How one attempt at a chunk ended.
enum Attempt {
    Done(BatchOutcome),
    Transient(SinkError),
}

impl JdbcSink {
    /// Connects, and creates the offsets table when `pgcdc.exactly.once=true`.
    pub async fn connect(config: SinkConfig) -> Result<Self, SinkError> {
        Self::connect_shared(Arc::new(config)).await
    }

    /// Like [`JdbcSink::connect`] with a shared configuration.
    pub async fn connect_shared(config: Arc<SinkConfig>) -> Result<Self, SinkError> {
        let offsets = config
            .exactly_once
            .then(|| OffsetStore::new(&config.offsets_table, &config.name));
        let mut sink = JdbcSink {
            config,
            client: None,
            connection: None,
            catalog: Catalog::default(),
            state: WriteState::default(),
            memory: TopicMemory::default(),
            offsets,
            stored: HashMap::new(),
            retries: 0,
            last_retry_code: None,
        };
        sink.ensure_connected().await?;
        if let (Some(store), Some(client)) = (&sink.offsets, &sink.client) {
            store.ensure(client).await?;
        }
        Ok(sink)
    }

    /// The configuration.
    pub fn config(&self) -> &SinkConfig {
        &self.config
    }

    /// How many times a batch was rolled back and retried after a transient
    /// database error (lost connection, serialization failure, deadlock,
    /// lock timeout, server shutting down) since this writer connected.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The SQLSTATE of the last transient error that caused a retry
    /// (`40P01` deadlock, `40001` serialization failure, `57P01` terminated
    /// backend, …), `None` if none carried one or nothing was retried.
    pub fn last_retry_sqlstate(&self) -> Option<&str> {
        self.last_retry_code.as_deref()
    }

    /// The offsets to seek to at start (empty with at-least-once, or for a
    /// connector that never committed).
    pub async fn load_offsets(&mut self) -> Result<BTreeMap<TopicPartition, i64>, SinkError> {
        let Some(store) = self.offsets.clone() else {
            return Ok(BTreeMap::new());
        };
        let client = self.ensure_connected().await?;
        let all = store.load(client, None).await?;
        self.stored.extend(all.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(all)
    }

    async fn ensure_connected(&mut self) -> Result<&Client, SinkError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let pg = self.config.connection.to_pg_config();
            let connect_err = |e: tokio_postgres::Error| {
                match crate::tls::tls_cause(&e) {
                Some(reason) => SinkError::Tls {
                    reason,
                    hint: "check sslmode and sslrootcert in connection.url (the server's certificate must be signed by that CA and, for verify-full, name the host)".into(),
                },
                None => SinkError::db("connecting to the target", &e),
            }
            };
            let (client, task) =
                match crate::tls::RustlsConnect::from_config(&self.config.connection)? {
                    None => {
                        let (client, connection) = pg.connect(NoTls).await.map_err(connect_err)?;
                        (
                            client,
                            tokio::spawn(async move {
                                if let Err(e) = connection.await {
                                    tracing::warn!(error = %e, "target connection ended");
                                }
                            }),
                        )
                    }
                    Some(tls) => {
                        let (client, connection) = pg.connect(tls).await.map_err(connect_err)?;
                        (
                            client,
                            tokio::spawn(async move {
                                if let Err(e) = connection.await {
                                    tracing::warn!(error = %e, "target connection ended");
                                }
                            }),
                        )
                    }
                };
            if let Some(old) = self.connection.take() {
                old.abort();
            }
            self.connection = Some(task);
            let mut setup = "SET standard_conforming_strings = on".to_owned();
            if let Some(schema) = &self.config.connection.current_schema {
                setup.push_str(&format!("; SET search_path TO {}", quote_ident(schema)));
            }
            client
                .batch_execute(&setup)
                .await
                .map_err(|e| SinkError::db("setting up the session", &e))?;
            self.state.clear();
            self.catalog.clear();
            // A transaction whose COMMIT was in flight when the old
            // connection died may have committed: re-read the stored offsets
            // rather than trust what this process last saw.
            self.stored.clear();
            self.client = Some(client);
        }
        self.client
            .as_ref()
            .ok_or_else(|| SinkError::Closed("no connection".into()))
    }

    /// Writes records: one transaction per `batch.size` records. Failing
    /// records are returned (with `errors.tolerance=all`) or fail the call
    /// (`none`); transient database errors are retried `flush.max.retries`
    /// times with reconnects.
    ///
    /// The failed records are returned *after* their transaction committed
    /// (with exactly-once, together with offsets past them): a caller that
    /// dead-letters them must use [`JdbcSink::write_with`] instead, or a
    /// crash between the commit and its DLQ write loses them.
    pub async fn write(&mut self, records: &[SinkRecord]) -> Result<BatchOutcome, SinkError> {
        self.write_inner(records, None).await
    }

    /// Like [`JdbcSink::write`], and every transaction with failed records
    /// hands them to `dead_letters` before its `COMMIT`: the commit (and the
    /// offsets stored with it) happens only after
    /// [`DeadLetterSink::deliver`] returned `Ok`. If it fails, the
    /// transaction is rolled back and the call fails with
    /// [`SinkError::DeadLetter`]; transactions of earlier `batch.size`
    /// chunks of the same call stay committed. See [`crate::dead_letter`].
    pub async fn write_with(
        &mut self,
        records: &[SinkRecord],
        dead_letters: &dyn DeadLetterSink,
    ) -> Result<BatchOutcome, SinkError> {
        self.write_inner(records, Some(dead_letters)).await
    }

    async fn write_inner(
        &mut self,
        records: &[SinkRecord],
        dead_letters: Option<&dyn DeadLetterSink>,
    ) -> Result<BatchOutcome, SinkError> {
        let mut total = BatchOutcome::default();
        let n = records.len();
        let mut start = 0;
        while start < n {
            let end = (start + self.config.batch_size).min(n);
            let idx: Vec<usize> = (start..end).collect();
            let out = self
                .write_chunk_retrying(records, &idx, dead_letters)
                .await?;
            total.merge(out);
            start = end;
        }
        Ok(total)
    }

    /// Rolls the open transaction back and forgets what it may have
    /// created (cached catalog, staging objects). Returns false when even
    /// the `ROLLBACK` failed (the connection is then unusable).
    async fn roll_back(&mut self) -> bool {
        let rolled_back = match &self.client {
            Some(c) => c.batch_execute("ROLLBACK").await.is_ok(),
            None => false,
        };
        self.state.forget_staging();
        self.catalog.clear();
        rolled_back
    }

    async fn write_chunk_retrying(
        &mut self,
        records: &[SinkRecord],
        idx: &[usize],
        dead_letters: Option<&dyn DeadLetterSink>,
    ) -> Result<BatchOutcome, SinkError> {
        let mut attempt = 0u32;
        // Failed records the hook acknowledged in an attempt whose COMMIT
        // then failed: durable in the DLQ already, not handed over again.
        let mut delivered: HashSet<usize> = HashSet::new();
        loop {
            let result = match self.ensure_connected().await {
                Ok(_) => {
                    self.write_chunk(records, idx, dead_letters, &mut delivered)
                        .await
                }
                Err(e) if e.is_retriable() => Ok(Attempt::Transient(e)),
                Err(e) => Err(e),
            };
            match result? {
                Attempt::Done(o) => return Ok(o),
                Attempt::Transient(e) => {
                    // The transaction is gone: forget what it may have created.
                    self.catalog.clear();
                    self.state.clear();
                    if let Some(c) = &self.client {
                        if c.batch_execute("ROLLBACK").await.is_err() {
                            self.client = None;
                        }
                    }
                    if attempt >= self.config.max_retries {
                        return Err(SinkError::RetriesExhausted {
                            attempts: attempt + 1,
                            last: Box::new(e),
                        });
                    }
                    let delay = backoff(self.config.retry_delay, attempt);
                    tracing::warn!(error = %e, attempt, ?delay, "transient error, retrying the batch");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    self.retries += 1;
                    self.last_retry_code = match &e {
                        SinkError::Database { code, .. } => code.clone(),
                        _ => None,
                    };
                }
            }
        }
    }

    async fn write_chunk(
        &mut self,
        records: &[SinkRecord],
        idx: &[usize],
        dead_letters: Option<&dyn DeadLetterSink>,
        delivered: &mut HashSet<usize>,
    ) -> Result<Attempt, SinkError> {
        let mut out = BatchOutcome::default();
        // Partitions of the chunk, found without allocating per record.
        let mut parts = PartIndex::default();
        let mut part_of: Vec<u32> = Vec::with_capacity(idx.len());
        let mut next: Vec<i64> = Vec::new();
        for &i in idx {
            let r = &records[i];
            let p = parts.find(r);
            if p == next.len() {
                next.push(r.offset + 1);
            }
            next[p] = next[p].max(r.offset + 1);
            part_of.push(p as u32);
        }
        out.next_offsets = parts
            .list
            .iter()
            .zip(&next)
            .map(|(&(t, p), &o)| (TopicPartition::new(t, p), o))
            .collect();
        // Exactly-once: skip what an earlier transaction already applied.
        let mut live: Vec<usize> = idx.to_vec();
        if let Some(store) = self.offsets.clone() {
            let unknown: Vec<TopicPartition> = out
                .next_offsets
                .keys()
                .filter(|tp| !self.stored.contains_key(*tp))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| SinkError::Closed("no connection".into()))?;
                match store.load(client, Some(&unknown)).await {
                    Ok(found) => {
                        for tp in unknown {
                            let v = found.get(&tp).copied().unwrap_or(0);
                            self.stored.insert(tp, v);
                        }
                    }
                    Err(e) if e.is_retriable() => return Ok(Attempt::Transient(e)),
                    Err(e) => return Err(e),
                }
            }
            let floor: Vec<i64> = out
                .next_offsets
                .keys()
                .map(|tp| self.stored.get(tp).copied().unwrap_or(0))
                .collect();
            // `next_offsets` is ordered by partition; map list positions to it.
            let order: Vec<usize> = parts
                .list
                .iter()
                .map(|&(t, p)| {
                    out.next_offsets
                        .keys()
                        .position(|tp| tp.topic == t && tp.partition == p)
                        .unwrap_or(0)
                })
                .collect();
            live = idx
                .iter()
                .zip(&part_of)
                .filter(|(&i, &p)| records[i].offset >= floor[order[p as usize]])
                .map(|(&i, _)| i)
                .collect();
            out.replayed = idx.len() - live.len();
        }
        match self.write_fast(records, &live, &out.next_offsets).await {
            Fast::Done { written, skipped } => {
                self.after_commit(&out.next_offsets);
                out.written = written;
                out.skipped += skipped;
                out.transactions = 1;
                return Ok(Attempt::Done(out));
            }
            Fast::Transient(e) => return Ok(Attempt::Transient(e)),
            Fast::Fallback => {}
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| SinkError::Closed("no connection".into()))?;
        let tolerant = self.config.errors_tolerance == ErrorTolerance::All;
        let default_schema = self.config.connection.current_schema.clone();
        let full = plan(
            &self.config,
            default_schema.as_deref(),
            &mut self.memory,
            records,
            &live,
        );
        if let Err(e) = client
            .batch_execute(if tolerant {
                "BEGIN; SAVEPOINT pgcdc_b"
            } else {
                "BEGIN"
            })
            .await
        {
            return classify(SinkError::db("starting the transaction", &e));
        }
        out.skipped += full.skipped.len();
        let mut failed: Vec<(usize, RecordError)> = full.failed.clone();
        // Schema evolution per table; a table that cannot be fixed fails its records.
        let mut broken_tables = HashSet::new();
        let mut ddl_ran = false;
        let needs_unique = self.config.insert_mode != InsertMode::Insert;
        for t in &full.tables {
            let r = evolve(
                client,
                &mut self.catalog,
                t,
                self.config.auto_create,
                self.config.auto_evolve,
                self.config.primary_key_mode,
                needs_unique,
                tolerant,
            )
            .await;
            match r {
                Ok(ev) => ddl_ran |= ev.created || ev.added > 0,
                Err(e) if e.is_retriable() => return Ok(Attempt::Transient(e)),
                Err(e) => {
                    if !tolerant {
                        self.roll_back().await;
                        return Err(e);
                    }
                    let re = RecordError::from_sink(&e);
                    tracing::warn!(table = %t.target, error = %e, "schema evolution failed; failing the table's records");
                    failed.extend(t.records.iter().map(|&i| (i, re.clone())));
                    broken_tables.insert(t.target.clone());
                }
            }
        }
        if !failed.is_empty() && !tolerant {
            self.roll_back().await;
            let (i, e) = &failed[0];
            return Err(record_failure(&records[*i], e));
        }
        if tolerant && ddl_ran {
            // The savepoint taken at BEGIN predates the DDL; bisection must not undo it.
            if let Err(e) = client.batch_execute("SAVEPOINT pgcdc_b").await {
                return classify(SinkError::db("creating a savepoint", &e));
            }
        }
        let todo: Vec<usize> = if failed.is_empty() && full.skipped.is_empty() {
            live.clone()
        } else {
            let bad: HashSet<usize> = failed.iter().map(|(i, _)| *i).collect();
            let skipped: HashSet<usize> = full.skipped.iter().copied().collect();
            live.iter()
                .copied()
                .filter(|i| !bad.contains(i) && !skipped.contains(i))
                .collect()
        };
        let bad_is_empty = failed.is_empty();
        let first = if broken_tables.is_empty() && bad_is_empty {
            Some(full)
        } else {
            None
        };
        let mut ctx = ApplyCtx {
            sink: self,
            records,
            failed: Vec::new(),
            written: 0,
            tolerant,
        };
        match ctx.apply(&todo, first).await {
            Ok(()) => {}
            Err(ApplyError::Transient(e)) => return Ok(Attempt::Transient(e)),
            Err(ApplyError::Fatal(e)) => {
                ctx.sink.roll_back().await;
                return Err(e);
            }
        }
        let written = ctx.written;
        failed.extend(ctx.failed);
        out.failed = failed
            .into_iter()
            .map(|(i, error)| {
                let r = &records[i];
                FailedRecord {
                    index: i,
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    error,
                }
            })
            .collect();
        out.failed.sort_by_key(|f| f.index);
        out.failed.dedup_by_key(|f| f.index);
        // The failed records reach the DLQ before the COMMIT that stores
        // offsets past them (nothing of the transaction is visible yet).
        if let Some(hook) = dead_letters {
            let pending: Vec<FailedRecord> = out
                .failed
                .iter()
                .filter(|f| !delivered.contains(&f.index))
                .cloned()
                .collect();
            if !pending.is_empty() {
                if let Err(source) = hook.deliver(&pending).await {
                    if !self.roll_back().await {
                        self.client = None;
                    }
                    let first = &pending[0];
                    return Err(SinkError::DeadLetter {
                        topic: first.topic.clone(),
                        partition: first.partition,
                        offset: first.offset,
                        count: pending.len(),
                        source,
                    });
                }
                delivered.extend(pending.iter().map(|f| f.index));
            }
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| SinkError::Closed("no connection".into()))?;
        let state = &mut self.state;
        let commit = async {
            if let Some(store) = &self.offsets {
                let (topics, parts, offs) = split(&out.next_offsets);
                let connector = store.connector();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&connector, &topics, &parts, &offs];
                // Prepared first, so that the pipelined Bind/Execute of the
                // offsets reaches the server before the COMMIT (same transaction).
                let stmt = state.prepare(client, &store.store_sql()).await?;
                let (a, b) = tokio::join!(
                    client.execute(&stmt, &params),
                    client.batch_execute("COMMIT")
                );
                a.map(|_| ()).and(b)
            } else {
                client.batch_execute("COMMIT").await
            }
        };
        if let Err(e) = commit.await {
            return classify(SinkError::db("committing", &e));
        }
        self.after_commit(&out.next_offsets);
        out.written = written;
        out.transactions = 1;
        Ok(Attempt::Done(out))
    }
}

/// How the pipelined fast path ended.
enum Fast {
    /// Committed.
    Done {
        /// Records written.
        written: usize,
        /// Records skipped on purpose.
        skipped: usize,
    },
    /// A transient error: the retry loop rolls back and retries.
    Transient(SinkError),
    /// Not applicable, or a record / statement failed: nothing was
    /// committed; the careful path (savepoints, bisection) takes over.
    Fallback,
}

/// Records in the first statement of the pipelined fast path; each next
/// statement takes twice as many, up to [`FAST_MAX_ROWS`].
const FAST_FIRST_ROWS: usize = 512;
/// Largest statement of the pipelined fast path.
const FAST_MAX_ROWS: usize = 2048;
/// Statements in flight at once on the fast path.
const FAST_MAX_INFLIGHT: usize = 8;

type Inflight<'c> =
    VecDeque<Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'c>>>;

/// Awaits every queued statement in order; the first error wins (later
/// ones only report the aborted transaction).
async fn settle(inflight: &mut Inflight<'_>) -> Option<tokio_postgres::Error> {
    let mut first = None;
    while let Some(f) = inflight.pop_front() {
        if let Err(e) = f.await {
            first.get_or_insert(e);
        }
    }
    first
}

/// Queues a statement: polled once, which sends it, then left in flight.
async fn submit<'c>(
    inflight: &mut Inflight<'c>,
    fut: Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'c>>,
) -> Option<tokio_postgres::Error> {
    let mut fut = fut;
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(Ok(_)) => {}
        Poll::Ready(Err(e)) => {
            let earlier = settle(inflight).await;
            return Some(earlier.unwrap_or(e));
        }
        Poll::Pending => inflight.push_back(fut),
    }
    if inflight.len() > FAST_MAX_INFLIGHT {
        if let Some(f) = inflight.pop_front() {
            if let Err(e) = f.await {
                let _ = settle(inflight).await;
                return Some(e);
            }
        }
    }
    None
}

impl JdbcSink {
    /// Marks a committed transaction: staging tables are empty again and the
    /// stored offsets moved.
    fn after_commit(&mut self, next_offsets: &BTreeMap<TopicPartition, i64>) {
        self.state.committed();
        if self.offsets.is_some() {
            for (tp, o) in next_offsets {
                let e = self.stored.entry(tp.clone()).or_insert(*o);
                *e = (*e).max(*o);
            }
        }
    }

    /// The fast path for a chunk that writes cleanly: no savepoint, the
    /// records planned in growing slices whose UNNEST statements are
    /// pipelined (planning and encoding slice *k+1* overlaps the server
    /// executing slice *k*), then the offsets upsert and `COMMIT` queued
    /// behind them. Any failure rolls the whole transaction back
    /// ([`Fast::Fallback`]) and the careful path redoes the chunk with
    /// savepoints and bisection.
    ///
    /// Slices are reduced separately; their statements run in record order
    /// in one transaction, so the final state is the same as one reduction
    /// of the chunk. `insert.mode=insert` uses one slice (a key repeated in
    /// two slices would collide), and tables needing the COPY path or a
    /// truncate take the careful path.
    async fn write_fast(
        &mut self,
        records: &[SinkRecord],
        live: &[usize],
        next_offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Fast {
        if self.config.write_path == WritePath::Copy {
            return Fast::Fallback;
        }
        let JdbcSink {
            config,
            client,
            catalog,
            state,
            memory,
            offsets,
            ..
        } = self;
        let Some(client) = client.as_ref() else {
            return Fast::Transient(SinkError::Closed("no connection".into()));
        };
        let mut inflight: Inflight<'_> = VecDeque::new();
        let mut failure: Option<Option<tokio_postgres::Error>> = None;
        // BEGIN is queued like the statements (no round trip of its own):
        // the first slice is planned while it travels.
        let begin = Box::pin(async move { client.batch_execute("BEGIN").await.map(|_| 0) });
        if let Some(e) = submit(&mut inflight, begin).await {
            return match classify(SinkError::db("starting the transaction", &e)) {
                Ok(Attempt::Transient(e)) | Err(e) => Fast::Transient(e),
                Ok(Attempt::Done(_)) => Fast::Fallback,
            };
        }
        let default_schema = config.connection.current_schema.clone();
        let mode = config.insert_mode;
        let needs_unique = mode != InsertMode::Insert;
        let (mut written, mut skipped) = (0usize, 0usize);
        let mut pos = 0;
        let mut size = if mode == InsertMode::Insert {
            live.len()
        } else {
            FAST_FIRST_ROWS
        };
        'slices: while pos < live.len() {
            let end = (pos + size.max(1)).min(live.len());
            size = (size * 2).min(FAST_MAX_ROWS.max(size));
            let p = plan(
                config,
                default_schema.as_deref(),
                memory,
                records,
                &live[pos..end],
            );
            pos = end;
            if !p.failed.is_empty() {
                failure = Some(None);
                break;
            }
            skipped += p.skipped.len();
            for t in &p.tables {
                if t.truncate || resolve_path(t, config.write_path) == WritePath::Copy {
                    failure = Some(None);
                    break 'slices;
                }
                // Usually answered from the catalog cache; DDL, when needed,
                // runs after the statements already queued.
                let evolved = evolve(
                    client,
                    catalog,
                    t,
                    config.auto_create,
                    config.auto_evolve,
                    config.primary_key_mode,
                    needs_unique,
                    false,
                )
                .await;
                let target = match evolved {
                    Ok(_) => match catalog.get(client, &t.target).await {
                        Ok(Some(tt)) => tt.clone(),
                        Ok(None) if t.columns.is_empty() => continue,
                        _ => {
                            failure = Some(None);
                            break 'slices;
                        }
                    },
                    Err(e) if e.is_retriable() && inflight.is_empty() => {
                        return Fast::Transient(e);
                    }
                    Err(_) => {
                        failure = Some(None);
                        break 'slices;
                    }
                };
                if let Err(e) = state.ensure_row_types(client, t).await {
                    failure = Some(Some(e));
                    break 'slices;
                }
                let statements = match unnest_statements(t, &target, mode, state) {
                    Ok(s) => s,
                    Err(_) => {
                        failure = Some(None);
                        break 'slices;
                    }
                };
                for st in statements {
                    let stmt = match state.prepare(client, &st.sql).await {
                        Ok(s) => s,
                        Err(e) => {
                            failure = Some(Some(e));
                            break 'slices;
                        }
                    };
                    let fut =
                        Box::pin(async move { client.execute_raw(&stmt, st.into_params()).await });
                    if let Some(e) = submit(&mut inflight, fut).await {
                        failure = Some(Some(e));
                        break 'slices;
                    }
                }
                written += t.records.len();
            }
        }
        if failure.is_none() {
            // Offsets and COMMIT queued behind the rows: if any statement
            // failed, the server turns the COMMIT into a rollback, and the
            // failure is seen below.
            if let Some(store) = offsets.as_ref() {
                let sql = store.store_sql();
                match state.prepare(client, &sql).await {
                    Ok(stmt) => {
                        let (topics, parts, offs) = split(next_offsets);
                        let connector = store.connector().to_owned();
                        let (topics, parts, offs): (Vec<String>, Vec<i32>, Vec<i64>) =
                            (topics.into_iter().map(str::to_owned).collect(), parts, offs);
                        let fut = Box::pin(async move {
                            client
                                .execute(&stmt, &[&connector, &topics, &parts, &offs])
                                .await
                        });
                        if let Some(e) = submit(&mut inflight, fut).await {
                            failure = Some(Some(e));
                        }
                    }
                    Err(e) => failure = Some(Some(e)),
                }
            }
        }
        if failure.is_none() {
            let commit = Box::pin(async move { client.batch_execute("COMMIT").await.map(|_| 0) });
            if let Some(e) = submit(&mut inflight, commit).await {
                failure = Some(Some(e));
            }
        }
        let first = settle(&mut inflight).await;
        let failure = match (failure, first) {
            (None, None) => return Fast::Done { written, skipped },
            (Some(f), None) => f,
            (_, Some(e)) => Some(e),
        };
        if let Some(e) = &failure {
            if crate::error::is_transient(e) {
                return Fast::Transient(SinkError::db("writing rows", e));
            }
        }
        // Nothing committed: roll back (a no-op after a COMMIT that became a
        // rollback) and let the careful path redo the chunk.
        if let Err(e) = client.batch_execute("ROLLBACK").await {
            return Fast::Transient(SinkError::db("rolling back", &e));
        }
        catalog.clear();
        state.forget_staging();
        if let Some(e) = failure {
            tracing::debug!(error = %e, "fast path failed; redoing the chunk with savepoints");
        }
        Fast::Fallback
    }
}

/// The distinct partitions of a chunk, looked up without allocating per
/// record (records of one partition usually come in runs).
#[derive(Default)]
struct PartIndex<'r> {
    list: Vec<(&'r str, i32)>,
    map: HashMap<(&'r str, i32), usize>,
    last: usize,
}

impl<'r> PartIndex<'r> {
    /// The position of the record's partition in `list` (appended when new).
    fn find(&mut self, r: &'r SinkRecord) -> usize {
        if let Some(&(t, p)) = self.list.get(self.last) {
            if p == r.partition && t == r.topic {
                return self.last;
            }
        }
        let n = self.list.len();
        let at = *self.map.entry((r.topic.as_str(), r.partition)).or_insert(n);
        if at == n {
            self.list.push((r.topic.as_str(), r.partition));
        }
        self.last = at;
        at
    }
}

/// The pause before retry number `attempt + 1`: `flush.retry.delay.ms`
/// doubled per attempt, at most 16 times the base.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.min(4)))
}

fn classify(e: SinkError) -> Result<Attempt, SinkError> {
    if e.is_retriable() {
        Ok(Attempt::Transient(e))
    } else {
        Err(e)
    }
}

fn record_failure(r: &SinkRecord, e: &RecordError) -> SinkError {
    SinkError::Record {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        error: e.clone(),
    }
}

enum ApplyError {
    Transient(SinkError),
    Fatal(SinkError),
}

struct ApplyCtx<'a> {
    sink: &'a mut JdbcSink,
    records: &'a [SinkRecord],
    failed: Vec<(usize, RecordError)>,
    written: usize,
    tolerant: bool,
}

impl<'a> ApplyCtx<'a> {
    /// Applies records in order; on a record-level failure, rolls back to the
    /// savepoint and bisects (only with `errors.tolerance=all`).
    async fn apply(&mut self, idx: &[usize], first: Option<Plan<'a>>) -> Result<(), ApplyError> {
        // Iterative bisection with an explicit stack keeps the order of the
        // record ranges (left before right).
        let mut stack: Vec<(Vec<usize>, Option<Plan<'a>>, bool)> =
            vec![(idx.to_vec(), first, true)];
        while let Some((ids, pre, top)) = stack.pop() {
            if ids.is_empty() {
                continue;
            }
            let default_schema = self.sink.config.connection.current_schema.clone();
            let p = match pre {
                Some(p) => p,
                None => plan(
                    &self.sink.config,
                    default_schema.as_deref(),
                    &mut self.sink.memory,
                    self.records,
                    &ids,
                ),
            };
            // Records that plan differently alone than in the whole batch
            // (rare: e.g. key columns changing mid-batch) fail here, never vanish.
            self.failed.extend(p.failed.iter().cloned());
            let client =
                self.sink.client.as_ref().ok_or_else(|| {
                    ApplyError::Transient(SinkError::Closed("no connection".into()))
                })?;
            if self.tolerant && !top {
                client
                    .batch_execute("SAVEPOINT pgcdc_b")
                    .await
                    .map_err(|e| db_apply("creating a savepoint", &e))?;
            }
            match self.try_plan(&p).await {
                Ok(()) => {
                    self.written += p.tables.iter().map(|t| t.records.len()).sum::<usize>();
                    continue;
                }
                Err(WriteError::Db(e)) if crate::error::is_transient(&e) => {
                    return Err(ApplyError::Transient(SinkError::db("writing rows", &e)));
                }
                Err(WriteError::Sink(e)) if e.is_retriable() => {
                    return Err(ApplyError::Transient(e))
                }
                Err(WriteError::Sink(e)) => return Err(ApplyError::Fatal(e)),
                Err(err) => {
                    let re = match &err {
                        WriteError::Db(e) => RecordError::from_db(e),
                        WriteError::Data(d) => d.clone(),
                        WriteError::Sink(e) => RecordError::from_sink(e),
                    };
                    if !self.tolerant {
                        return Err(ApplyError::Fatal(record_failure(
                            &self.records[ids[0]],
                            &re,
                        )));
                    }
                    let client = self.sink.client.as_ref().ok_or_else(|| {
                        ApplyError::Transient(SinkError::Closed("no connection".into()))
                    })?;
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT pgcdc_b")
                        .await
                        .map_err(|e| db_apply("rolling back to a savepoint", &e))?;
                    // Anything created since the savepoint is gone; re-read the
                    // catalog of the tables involved in case it changed.
                    self.sink.state.forget_staging();
                    for t in &p.tables {
                        self.sink.catalog.invalidate(&t.target);
                    }
                    if ids.len() == 1 {
                        tracing::warn!(record = ids[0], error = %re, "record failed");
                        self.failed.push((ids[0], re));
                        continue;
                    }
                    let mid = ids.len() / 2;
                    // Push right first so the left half runs first.
                    stack.push((ids[mid..].to_vec(), None, false));
                    stack.push((ids[..mid].to_vec(), None, false));
                }
            }
        }
        Ok(())
    }

    async fn try_plan(&mut self, p: &Plan<'_>) -> Result<(), WriteError> {
        let sink = &mut *self.sink;
        let client = sink
            .client
            .as_ref()
            .ok_or_else(|| WriteError::Sink(SinkError::Closed("no connection".into())))?;
        for t in &p.tables {
            let target = match sink.catalog.get(client, &t.target).await {
                Ok(Some(tt)) => tt.clone(),
                Ok(None) if t.columns.is_empty() => continue,
                Ok(None) => {
                    return Err(WriteError::Data(RecordError::connect(format!(
                        "table {} does not exist",
                        t.target
                    ))));
                }
                Err(e) => return Err(WriteError::Sink(e)),
            };
            write_table(
                client,
                &mut sink.state,
                t,
                &target,
                sink.config.insert_mode,
                sink.config.write_path,
            )
            .await?;
        }
        Ok(())
    }
}

fn db_apply(ctx: &str, e: &tokio_postgres::Error) -> ApplyError {
    let err = SinkError::db(ctx, e);
    if err.is_retriable() {
        ApplyError::Transient(err)
    } else {
        ApplyError::Fatal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_sixteen_times_the_base() {
        let base = Duration::from_millis(100);
        let delays: Vec<u64> = (0..7)
            .map(|a| backoff(base, a).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 1600, 1600]);
        assert_eq!(backoff(Duration::MAX, 3), Duration::MAX);
    }
}
