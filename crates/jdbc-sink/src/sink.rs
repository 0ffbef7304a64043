//! One writer on one connection: batches in, one transaction per batch,
//! failing records isolated by bisection, transient errors retried.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::config::{ErrorTolerance, InsertMode, SinkConfig};
use crate::ddl::{evolve, Catalog};
use crate::error::{RecordError, SinkError};
use crate::ident::quote_ident;
use crate::offsets::{split, OffsetStore};
use crate::record::{BatchOutcome, FailedRecord, SinkRecord, TopicPartition};
use crate::reduce::{plan, Plan, TopicMemory};
use crate::write::{write_table, WriteError, WriteState};

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
            let (client, connection) = pg
                .connect(NoTls)
                .await
                .map_err(|e| SinkError::db("connecting to the target", &e))?;
            if let Some(old) = self.connection.take() {
                old.abort();
            }
            self.connection = Some(tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "target connection ended");
                }
            }));
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
    pub async fn write(&mut self, records: &[SinkRecord]) -> Result<BatchOutcome, SinkError> {
        let mut total = BatchOutcome::default();
        let n = records.len();
        let mut start = 0;
        while start < n {
            let end = (start + self.config.batch_size).min(n);
            let idx: Vec<usize> = (start..end).collect();
            let out = self.write_chunk_retrying(records, &idx).await?;
            total.merge(out);
            start = end;
        }
        Ok(total)
    }

    async fn write_chunk_retrying(
        &mut self,
        records: &[SinkRecord],
        idx: &[usize],
    ) -> Result<BatchOutcome, SinkError> {
        let mut attempt = 0u32;
        loop {
            let result = match self.ensure_connected().await {
                Ok(_) => self.write_chunk(records, idx).await,
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
                    let delay = self.config.retry_delay * 2u32.saturating_pow(attempt.min(4));
                    tracing::warn!(error = %e, attempt, ?delay, "transient error, retrying the batch");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn write_chunk(
        &mut self,
        records: &[SinkRecord],
        idx: &[usize],
    ) -> Result<Attempt, SinkError> {
        let mut out = BatchOutcome::default();
        for &i in idx {
            let r = &records[i];
            let e = out
                .next_offsets
                .entry(r.topic_partition())
                .or_insert(r.offset + 1);
            *e = (*e).max(r.offset + 1);
        }
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
            live.retain(|&i| {
                let r = &records[i];
                r.offset >= self.stored.get(&r.topic_partition()).copied().unwrap_or(0)
            });
            out.replayed = idx.len() - live.len();
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
                        let _ = client.batch_execute("ROLLBACK").await;
                        self.state.forget_staging();
                        self.catalog.clear();
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
            let _ = client.batch_execute("ROLLBACK").await;
            self.state.forget_staging();
            self.catalog.clear();
            let (i, e) = &failed[0];
            return Err(record_failure(&records[*i], e));
        }
        if tolerant && ddl_ran {
            // The savepoint taken at BEGIN predates the DDL; bisection must not undo it.
            if let Err(e) = client.batch_execute("SAVEPOINT pgcdc_b").await {
                return classify(SinkError::db("creating a savepoint", &e));
            }
        }
        let bad: HashSet<usize> = failed.iter().map(|(i, _)| *i).collect();
        let skipped: HashSet<usize> = full.skipped.iter().copied().collect();
        let todo: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| !bad.contains(i) && !skipped.contains(i))
            .collect();
        let first = if broken_tables.is_empty() && bad.is_empty() {
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
                if let Some(c) = &ctx.sink.client {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                ctx.sink.catalog.clear();
                ctx.sink.state.forget_staging();
                return Err(e);
            }
        }
        let written = ctx.written;
        failed.extend(ctx.failed);
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
        self.state.committed();
        if self.offsets.is_some() {
            for (tp, o) in &out.next_offsets {
                let e = self.stored.entry(tp.clone()).or_insert(*o);
                *e = (*e).max(*o);
            }
        }
        out.written = written;
        out.transactions = 1;
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
        Ok(Attempt::Done(out))
    }
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
