//! The initial snapshot: chunked, parallel, bounded, resumable.
//!
//! ```text
//!  planner (main SQL connection, in the snapshot)      readers ×snapshot.max.threads
//!  chunk boundaries by key ──▶ dispatcher ──jobs──▶  BEGIN REPEATABLE READ; SET TRANSACTION SNAPSHOT
//!                                 │                   COPY (SELECT … WHERE key > lo AND key <= hi) TO STDOUT
//!                                 │                   parse text rows → Vec<Value> batches
//!                                 ▼                                   │
//!            ordered queue of per-chunk channels ◀────────────────────┘
//!                                 │  (chunk i is emitted completely before chunk i+1)
//!                                 ▼
//!                     the source's event stream (op r)
//! ```
//!
//! * Every reader imports the same snapshot, so all chunks see one
//!   consistent state: exactly the transactions committed before the slot's
//!   consistent point. The stream then starts at that point: every row once.
//! * Chunks are ranges of the primary key (else the replica-identity index;
//!   tables with neither are one chunk), computed in the snapshot.
//! * Memory is bounded: each chunk channel holds at most two batches of
//!   `snapshot.fetch.size` rows, and at most `snapshot.max.threads + 1`
//!   chunks are read ahead of the one being emitted.
//! * Key bounds reach SQL as bound parameters (`set_config`), then
//!   `current_setting(…)::"schema"."type"` inside the COPY query.
//!
//! ## Resume semantics
//!
//! Progress (per table, the key of the last chunk whose rows were all
//! acknowledged) is stored through the [`OffsetStore`](super::OffsetStore).
//! The exported snapshot dies with the connection that created the slot, so
//! a snapshot resumed after a crash reads the remaining chunks in a *new*
//! snapshot, while the slot still sits at the original consistent point
//! (it is not advanced before every snapshot row is acknowledged). Rows of
//! finished chunks were read at the consistent point; rows of resumed chunks
//! are read later, so a change committed in between may appear both in a
//! resumed chunk (as `r`, already applied) and in the stream (as `c`/`u`/`d`,
//! replayed from the consistent point). Applying events in order converges
//! to the source state (upsert semantics); only rows of resumed chunks can be
//! delivered twice, nothing is lost.

use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::{TableId, TableSchema, Value};
use futures_util::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pgtype::{ValueDecoder, ValueError};
use crate::source::catalog::{self, quote_ident, quote_table, sql_error, TableMeta};
use crate::source::config::SourceConfig;

/// A row of values in table column order.
pub type Row = Vec<Value>;

/// One table to snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    /// Catalog facts.
    pub meta: TableMeta,
    /// The schema events carry (same as the stream's for the same columns).
    pub schema: Arc<TableSchema>,
    /// One decoder per column.
    pub decoders: Arc<Vec<ValueDecoder>>,
    /// Resume after this key (already acknowledged), if any.
    pub resume_after: Option<Vec<String>>,
}

/// A key range of one table: `lower < key <= upper` (open ends when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index into the snapshot's table list.
    pub table: usize,
    /// Exclusive lower bound (key columns' text values).
    pub lower: Option<Vec<String>>,
    /// Inclusive upper bound.
    pub upper: Option<Vec<String>>,
    /// True for the table's last chunk.
    pub last_of_table: bool,
}

/// Key column types for casts: (`nspname`, `typname`) per key column.
type KeyTypes = Vec<(String, String)>;

async fn key_types(client: &Client, meta: &TableMeta) -> Result<KeyTypes> {
    let mut out = Vec::new();
    for k in meta.chunk_key() {
        let col = meta
            .columns
            .iter()
            .find(|c| &c.name == k)
            .ok_or_else(|| Error::Sql {
                context: format!("planning snapshot of {}", meta.id),
                sqlstate: None,
                detail: format!("key column {k} is not a published column"),
                retriable: false,
            })?;
        let row = client
            .query_one(
                "SELECT n.nspname::text, t.typname::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
                &[&col.type_oid],
            )
            .await
            .map_err(sql_error("reading key column type"))?;
        out.push((row.get(0), row.get(1)));
    }
    Ok(out)
}

/// Binds bounds with `set_config` (local to the transaction) and returns the
/// `WHERE` clause comparing the key to them.
async fn bind_bounds(
    client: &Client,
    meta: &TableMeta,
    types: &KeyTypes,
    lower: Option<&Vec<String>>,
    upper: Option<&Vec<String>>,
) -> Result<String> {
    let key = meta.chunk_key();
    let cols = key
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let mut conds = Vec::new();
    for (name, op, bound) in [("lo", ">", lower), ("hi", "<=", upper)] {
        let Some(values) = bound else { continue };
        let mut exprs = Vec::new();
        for (i, (v, (ns, ty))) in values.iter().zip(types).enumerate() {
            let setting = format!("pgcdc.{name}{i}");
            client
                .query_one("SELECT set_config($1, $2, true)", &[&setting, v])
                .await
                .map_err(sql_error("binding snapshot chunk bound"))?;
            exprs.push(format!(
                "current_setting('{setting}')::{}.{}",
                quote_ident(ns),
                quote_ident(ty)
            ));
        }
        conds.push(format!("({cols}) {op} ({})", exprs.join(", ")));
    }
    Ok(if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    })
}

/// Chunks of a snapshot and the rows each table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Key-range chunks, table by table, in reading order.
    pub chunks: Vec<Chunk>,
    /// Per table (same order as the planner's input): rows in the snapshot
    /// (after `resume_after`), exact for chunked tables — the planner reads
    /// every key anyway — and `pg_class.reltuples` for the others (`None`
    /// when the table was never analyzed).
    pub rows: Vec<Option<u64>>,
}

/// Splits the tables into key-range chunks of about `chunk_size` rows,
/// inside the snapshot `client` has imported, counting their rows.
pub async fn plan_chunks(
    client: &Client,
    tables: &[SnapshotTable],
    chunk_size: u64,
) -> Result<ChunkPlan> {
    let mut chunks = Vec::new();
    let mut rows = Vec::with_capacity(tables.len());
    for (ti, t) in tables.iter().enumerate() {
        let key = t.meta.chunk_key();
        if key.is_empty() {
            chunks.push(Chunk {
                table: ti,
                lower: None,
                upper: None,
                last_of_table: true,
            });
            rows.push(estimated_rows(client, &t.meta.id).await);
            continue;
        }
        let types = key_types(client, &t.meta).await?;
        let filter = bind_bounds(client, &t.meta, &types, t.resume_after.as_ref(), None).await?;
        let cols = key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        // Every `chunk_size`-th key is a boundary; the last row (no next
        // row: `lead` looks one row ahead, nothing is buffered) gives the
        // count. Its two extra columns follow the key.
        let sql = format!(
            "COPY (SELECT {cols}, pgcdc_rn, pgcdc_last FROM (SELECT {cols}, \
             row_number() OVER w AS pgcdc_rn, (lead(1) OVER w) IS NULL AS pgcdc_last \
             FROM {}{filter} WINDOW w AS (ORDER BY {cols})) q \
             WHERE pgcdc_rn % {chunk_size} = 0 OR pgcdc_last ORDER BY pgcdc_rn) TO STDOUT",
            quote_table(&t.meta.id)
        );
        let context = || format!("planning snapshot of {}", t.meta.id);
        let stream = client
            .copy_out(sql.as_str())
            .await
            .map_err(sql_error(context()))?;
        futures_util::pin_mut!(stream);
        let mut lower = t.resume_after.clone();
        let mut count = 0u64;
        while let Some(line) = stream.next().await {
            let line = line.map_err(sql_error(context()))?;
            let mut fields: Vec<String> = split_copy_line(&line)
                .into_iter()
                .map(|f| {
                    f.map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                })
                .collect();
            let unexpected = |detail: String| Error::Sql {
                context: context(),
                sqlstate: None,
                detail,
                retriable: false,
            };
            let (Some(last), Some(rn)) = (fields.pop(), fields.pop()) else {
                return Err(unexpected("the chunk planner returned a short row".into()));
            };
            let rn: u64 = rn
                .parse()
                .map_err(|_| unexpected(format!("row number `{rn}` is not a number")))?;
            count = rn;
            if !rn.is_multiple_of(chunk_size) {
                // Only the last row (`pgcdc_last` = `t`), not a boundary.
                if last != "t" {
                    return Err(unexpected(format!(
                        "row {rn} is neither a boundary nor the last"
                    )));
                }
                continue;
            }
            chunks.push(Chunk {
                table: ti,
                lower: lower.take(),
                upper: Some(fields.clone()),
                last_of_table: false,
            });
            lower = Some(fields);
        }
        chunks.push(Chunk {
            table: ti,
            lower,
            upper: None,
            last_of_table: true,
        });
        rows.push(Some(count));
    }
    Ok(ChunkPlan { chunks, rows })
}

/// The planner's row estimate of `table` (`None` if never analyzed).
async fn estimated_rows(client: &Client, table: &TableId) -> Option<u64> {
    let row = client
        .query_one(
            "SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&table.schema, &table.table],
        )
        .await
        .ok()?;
    let n: f64 = row.get(0);
    (n >= 0.0).then_some(n.round() as u64)
}

/// Splits one COPY text line into fields (`None` for `\N`), unescaping.
pub fn split_copy_line(line: &Bytes) -> Vec<Option<Bytes>> {
    let mut end = line.len();
    if end > 0 && line[end - 1] == b'\n' {
        end -= 1;
    }
    let mut out = Vec::new();
    let mut start = 0;
    let data = &line[..end];
    loop {
        let stop = memchr_tab(&data[start..]).map_or(end, |p| start + p);
        let field = &data[start..stop];
        out.push(if field == b"\\N" {
            None
        } else if field.contains(&b'\\') {
            Some(Bytes::from(unescape(field)))
        } else {
            Some(line.slice(start..stop))
        });
        if stop >= end {
            break;
        }
        start = stop + 1;
    }
    out
}

#[inline]
fn memchr_tab(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\t')
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 >= field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    out
}

fn parse_row(t: &SnapshotTable, line: &Bytes) -> Result<Row> {
    let fields = split_copy_line(line);
    if fields.len() != t.decoders.len() {
        return Err(Error::ColumnCountMismatch {
            relation: t.meta.id.to_string(),
            expected: t.decoders.len(),
            got: fields.len(),
        });
    }
    let mut row = Vec::with_capacity(fields.len());
    for (i, (f, d)) in fields.into_iter().zip(t.decoders.iter()).enumerate() {
        row.push(match f {
            None => Value::Null,
            Some(b) => d.decode_text(&b).map_err(|e| {
                let col = &t.schema.columns[i];
                match e {
                    ValueError::Invalid(detail) => Error::InvalidValue {
                        column: col.name.clone(),
                        type_name: col.pg_type.name.clone(),
                        format: "text",
                        detail,
                    },
                    ValueError::UnsupportedBinary => Error::UnsupportedBinaryType {
                        column: col.name.clone(),
                        type_name: col.pg_type.name.clone(),
                        type_oid: col.pg_type.oid,
                    },
                }
            })?,
        });
    }
    Ok(row)
}

/// Rows of one chunk, in batches.
pub type ChunkRows = mpsc::Receiver<Result<Vec<Row>>>;

type Job = (Chunk, mpsc::Sender<Result<Vec<Row>>>);

/// A running snapshot: chunk row channels in chunk order.
#[derive(Debug)]
pub struct SnapshotRun {
    /// `(chunk index, its rows)` in chunk order.
    pub chunks: mpsc::Receiver<(usize, ChunkRows)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SnapshotRun {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn valid_snapshot_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Opens a reader connection inside snapshot `snapshot_name`, holding
/// `ACCESS SHARE` locks on `tables` (no DDL on them until it commits).
pub async fn open_reader(
    cfg: &SourceConfig,
    snapshot_name: &str,
    tables: &[TableId],
) -> Result<Client> {
    if !valid_snapshot_name(snapshot_name) {
        return Err(Error::Sql {
            context: "importing snapshot".into(),
            sqlstate: None,
            detail: format!("unexpected snapshot name {snapshot_name:?}"),
            retriable: false,
        });
    }
    let client = catalog::connect(cfg, "pg-cdc snapshot").await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot_name}'"
        ))
        .await
        .map_err(sql_error("importing the exported snapshot"))?;
    if !tables.is_empty() {
        let list = tables
            .iter()
            .map(quote_table)
            .collect::<Vec<_>>()
            .join(", ");
        client
            .batch_execute(&format!("LOCK TABLE {list} IN ACCESS SHARE MODE"))
            .await
            .map_err(sql_error("locking the captured tables for the snapshot"))?;
    }
    Ok(client)
}

/// Opens `n` readers (see [`open_reader`]).
pub async fn open_readers(
    cfg: &SourceConfig,
    snapshot_name: &str,
    n: usize,
    tables: &[TableId],
) -> Result<Vec<Client>> {
    let mut readers = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        readers.push(open_reader(cfg, snapshot_name, tables).await?);
    }
    Ok(readers)
}

/// Starts the readers (already inside the snapshot) and the dispatcher for
/// `chunks`.
pub fn start(
    readers: Vec<Client>,
    fetch: usize,
    tables: Arc<Vec<SnapshotTable>>,
    chunks: Vec<Chunk>,
) -> SnapshotRun {
    let threads = readers.len().max(1);
    let (job_tx, job_rx) = mpsc::channel::<Job>(threads);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (ordered_tx, ordered_rx) = mpsc::channel(threads + 1);
    let mut tasks = Vec::new();
    for client in readers {
        let job_rx = job_rx.clone();
        let tables = tables.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let job = job_rx.lock().await.recv().await;
                let Some((chunk, tx)) = job else { break };
                if let Err(e) = read_chunk(&client, &tables, &chunk, fetch, &tx).await {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
            let _ = client.batch_execute("COMMIT").await;
        }));
    }
    tasks.push(tokio::spawn(async move {
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(2);
            if ordered_tx.send((i, rx)).await.is_err() || job_tx.send((chunk, tx)).await.is_err() {
                break;
            }
        }
    }));
    SnapshotRun {
        chunks: ordered_rx,
        tasks,
    }
}

async fn read_chunk(
    client: &Client,
    tables: &[SnapshotTable],
    chunk: &Chunk,
    fetch: usize,
    tx: &mpsc::Sender<Result<Vec<Row>>>,
) -> Result<()> {
    let t = &tables[chunk.table];
    let filter = if t.meta.chunk_key().is_empty() {
        String::new()
    } else {
        let types = key_types(client, &t.meta).await?;
        bind_bounds(
            client,
            &t.meta,
            &types,
            chunk.lower.as_ref(),
            chunk.upper.as_ref(),
        )
        .await?
    };
    let cols = t
        .meta
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "COPY (SELECT {cols} FROM {}{filter}) TO STDOUT",
        quote_table(&t.meta.id)
    );
    let ctx = || format!("snapshot of {}", t.meta.id);
    let stream = client
        .copy_out(sql.as_str())
        .await
        .map_err(sql_error(ctx()))?;
    futures_util::pin_mut!(stream);
    let mut batch = Vec::with_capacity(fetch.min(4096));
    while let Some(line) = stream.next().await {
        let line = line.map_err(sql_error(ctx()))?;
        batch.push(parse_row(t, &line)?);
        if batch.len() >= fetch {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(fetch.min(4096)));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_split_and_unescape() {
        let line = Bytes::from_static(b"1\t\\N\ta\\tb\\\\c\\nd\t\\101\\x41\t\n");
        let f = split_copy_line(&line);
        assert_eq!(f.len(), 5);
        assert_eq!(f[0].as_deref(), Some(&b"1"[..]));
        assert_eq!(f[1], None);
        assert_eq!(f[2].as_deref(), Some(&b"a\tb\\c\nd"[..]));
        assert_eq!(f[3].as_deref(), Some(&b"AA"[..]));
        assert_eq!(f[4].as_deref(), Some(&b""[..]));
        assert!(valid_snapshot_name("00000003-00000002-1"));
        assert!(!valid_snapshot_name("x'; DROP"));
    }
}
