//! Row writes: one table plan → SQL, values bound in binary.
//!
//! Two bulk paths share the same SQL shape (`INSERT … SELECT … ON CONFLICT`,
//! `UPDATE … FROM`, `DELETE … USING`) and differ in where the rows come from:
//!
//! * **unnest** — each column is one binary array parameter:
//!   `SELECT … FROM UNNEST($1::integer[], $2::text[], …) AS u("c0","c1",…)`.
//!   One round trip per group, no temporary objects, prepared once.
//! * **copy** — rows are sent with `COPY pg_temp.stage FROM STDIN (FORMAT
//!   binary)` into a temporary staging table, then `… SELECT … FROM stage`.
//!   Needed for array columns (UNNEST flattens multi-dimensional arrays).
//!
//! Measured on the `employees` shape (see `docs/benchmarks.md`, `## jdbc-sink`):
//! unnest is clearly faster at the default `batch.size=500` (one round trip
//! less per batch, no staging table) and as fast as copy at 5000, so
//! `pgcdc.write.path=auto` picks unnest unless a column is an array.
//!
//! Rows of one table are grouped by the set of columns they carry: an update
//! whose TOASTed columns were unchanged ([`cdc_envelope::Value::Unavailable`]) only sets the
//! columns it has, so the target keeps the stored value.
//!
//! When a value's wire type differs from the target column's type (a `text`
//! value for a `numeric` column created by hand), the SELECT casts it to the
//! target type named from the catalog; identifiers always go through
//! [`quote_ident`].

use std::collections::{HashMap, HashSet};
use std::pin::pin;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

use crate::config::{InsertMode, WritePath};
use crate::ddl::TargetTable;
use crate::encode::{encode_field, write_array_header, WireKind};
use crate::error::{RecordError, SinkError};
use crate::ident::quote_ident;
use crate::reduce::{Cell, TablePlan};

const STAGE_PREFIX: &str = "__pgcdc_stage_";

/// Why a table write failed.
#[derive(Debug)]
pub enum WriteError {
    /// The database rejected the statement (isolate by bisecting).
    Db(tokio_postgres::Error),
    /// A value could not be encoded (fails the records of this write).
    Data(RecordError),
    /// Other sink error.
    Sink(SinkError),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Db(e)
    }
}

/// A pre-encoded binary parameter.
#[derive(Debug)]
struct RawParam(BytesMut);

impl ToSql for RawParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Per-connection state of the write paths: prepared statements and
/// staging tables.
#[derive(Debug, Default)]
pub struct WriteState {
    statements: HashMap<String, Statement>,
    /// Staging table name per column-kind signature.
    staging: HashMap<String, String>,
    /// Staging tables created in this session (or the open transaction).
    exists: HashSet<String>,
    /// Staging tables known to be empty right now.
    fresh: HashSet<String>,
}

impl WriteState {
    /// Forgets everything (after a reconnect).
    pub fn clear(&mut self) {
        self.statements.clear();
        self.forget_staging();
    }

    /// After a rollback: staging tables may be gone or hold rows.
    pub fn forget_staging(&mut self) {
        self.exists.clear();
        self.fresh.clear();
        // Statements naming a staging table that may be gone.
        self.statements.retain(|sql, _| !sql.contains(STAGE_PREFIX));
    }

    /// After a commit: `ON COMMIT DELETE ROWS` emptied every staging table.
    pub fn committed(&mut self) {
        self.fresh = self.exists.clone();
    }

    /// A prepared statement, from the cache when possible.
    pub async fn prepare(
        &mut self,
        client: &Client,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).await?;
        if self.statements.len() > 1024 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// Columns of one statement: plan column indices, with their target casts.
struct Cols<'a> {
    plan: &'a TablePlan<'a>,
    idx: Vec<usize>,
    target: &'a TargetTable,
}

impl Cols<'_> {
    /// `CAST(u."cN" AS type) AS "name"` for each column.
    fn select_list(&self) -> String {
        self.idx
            .iter()
            .enumerate()
            .map(|(pos, &ci)| {
                let c = &self.plan.columns[ci];
                let src = format!("u.{}", quote_ident(&format!("c{pos}")));
                let expr = match self.target.columns.get(&c.name) {
                    Some(t) if t.type_oid != c.wire.oid() => {
                        format!("CAST({src} AS {})", t.type_ref)
                    }
                    _ => src,
                };
                format!("{expr} AS {}", quote_ident(&c.name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn names(&self) -> Vec<String> {
        self.idx
            .iter()
            .map(|&ci| quote_ident(&self.plan.columns[ci].name))
            .collect()
    }

    fn aliases(&self) -> String {
        (0..self.idx.len())
            .map(|p| quote_ident(&format!("c{p}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn kinds(&self) -> Vec<&WireKind> {
        self.idx
            .iter()
            .map(|&ci| &self.plan.columns[ci].wire)
            .collect()
    }
}

/// Writes one table plan. The caller holds the transaction.
pub async fn write_table(
    client: &Client,
    state: &mut WriteState,
    plan: &TablePlan<'_>,
    target: &TargetTable,
    mode: InsertMode,
    path: WritePath,
) -> Result<(), WriteError> {
    let has_arrays = plan.columns.iter().any(|c| c.wire.is_array());
    // Measured (docs/benchmarks.md, `## jdbc-sink`): UNNEST is as fast as
    // COPY at 5000-row batches and clearly faster at 500, so it is the
    // default; COPY only where UNNEST cannot carry the values (arrays).
    let path = match path {
        WritePath::Auto if has_arrays => WritePath::Copy,
        WritePath::Auto => WritePath::Unnest,
        p => p,
    };
    let t = plan.target.quoted();
    if plan.truncate {
        client.batch_execute(&format!("TRUNCATE TABLE {t}")).await?;
    }
    // Deletes: explicit ones, and keys rewritten after a delete in the batch.
    let mut deletes: Vec<Vec<Cell<'_>>> = plan.deletes.clone();
    deletes.extend(
        plan.writes
            .iter()
            .filter(|w| w.delete_first)
            .map(|w| plan.key.iter().map(|&k| w.cells[k].clone()).collect()),
    );
    if !deletes.is_empty() && !plan.key.is_empty() {
        let cols = Cols {
            plan,
            idx: plan.key.clone(),
            target,
        };
        let on: Vec<String> = cols
            .names()
            .iter()
            .map(|n| format!("t.{n} = s.{n}"))
            .collect();
        let rows: Vec<&[Cell<'_>]> = deletes.iter().map(Vec::as_slice).collect();
        let positions: Vec<usize> = (0..plan.key.len()).collect();
        let source = source_rows(client, state, &cols, &rows, &positions, path).await?;
        let sql = format!(
            "DELETE FROM {t} AS t USING (SELECT {} FROM {}) AS s WHERE {}",
            cols.select_list(),
            source.from,
            on.join(" AND ")
        );
        exec(client, state, &sql, source.params).await?;
    }
    if plan.writes.is_empty() {
        return Ok(());
    }
    // Group rows by the set of columns they carry (rows without
    // unavailable values all share the full set; no per-row allocation).
    let ncols = plan.columns.len();
    let mut groups: Vec<(Vec<usize>, Vec<&[Cell<'_>]>)> = Vec::new();
    let mut group_of: HashMap<Vec<usize>, usize> = HashMap::new();
    let mut full_group: Option<usize> = None;
    for w in &plan.writes {
        let gi = if w.cells.iter().any(|c| c.is_unavailable()) {
            let present: Vec<usize> = (0..ncols)
                .filter(|&i| !w.cells[i].is_unavailable())
                .collect();
            *group_of.entry(present.clone()).or_insert_with(|| {
                groups.push((present, Vec::new()));
                groups.len() - 1
            })
        } else {
            *full_group.get_or_insert_with(|| {
                groups.push(((0..ncols).collect(), Vec::new()));
                groups.len() - 1
            })
        };
        groups[gi].1.push(&w.cells);
    }
    for (present, rows) in groups {
        for &k in &plan.key {
            if !present.contains(&k) {
                return Err(WriteError::Data(RecordError::data(
                    "a key column value is missing (unavailable)",
                )));
            }
        }
        let cols = Cols {
            plan,
            idx: present.clone(),
            target,
        };
        let names = cols.names();
        let key_names: Vec<String> = plan
            .key
            .iter()
            .map(|&k| quote_ident(&plan.columns[k].name))
            .collect();
        let non_key: Vec<&String> = present
            .iter()
            .zip(&names)
            .filter(|(ci, _)| !plan.key.contains(ci))
            .map(|(_, n)| n)
            .collect();
        let sql_for = |from: &str| -> Option<String> {
            let select = format!("SELECT {} FROM {from}", cols.select_list());
            Some(match mode {
                InsertMode::Insert => format!("INSERT INTO {t} ({}) {select}", names.join(", ")),
                InsertMode::Upsert if key_names.is_empty() => {
                    format!("INSERT INTO {t} ({}) {select}", names.join(", "))
                }
                InsertMode::Upsert => {
                    let action = if non_key.is_empty() {
                        "DO NOTHING".to_owned()
                    } else {
                        let sets: Vec<String> = non_key
                            .iter()
                            .map(|n| format!("{n} = EXCLUDED.{n}"))
                            .collect();
                        format!("DO UPDATE SET {}", sets.join(", "))
                    };
                    format!(
                        "INSERT INTO {t} ({}) {select} ON CONFLICT ({}) {action}",
                        names.join(", "),
                        key_names.join(", ")
                    )
                }
                InsertMode::Update => {
                    if non_key.is_empty() {
                        return None;
                    }
                    let sets: Vec<String> =
                        non_key.iter().map(|n| format!("{n} = s.{n}")).collect();
                    let on: Vec<String> =
                        key_names.iter().map(|n| format!("t.{n} = s.{n}")).collect();
                    format!(
                        "UPDATE {t} AS t SET {} FROM ({select}) AS s WHERE {}",
                        sets.join(", "),
                        on.join(" AND ")
                    )
                }
            })
        };
        let source = source_rows(client, state, &cols, &rows, &present, path).await?;
        if let Some(sql) = sql_for(&source.from) {
            exec(client, state, &sql, source.params).await?;
        }
    }
    Ok(())
}

struct Source {
    from: String,
    params: Vec<RawParam>,
}

async fn exec(
    client: &Client,
    state: &mut WriteState,
    sql: &str,
    params: Vec<RawParam>,
) -> Result<u64, WriteError> {
    if params.is_empty() {
        // Reading a staging table: plan it for its current contents (a
        // prepared generic plan would be made for an empty table).
        client.batch_execute(sql).await?;
        return Ok(0);
    }
    let stmt = state.prepare(client, sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    Ok(client.execute(&stmt, &refs).await?)
}

/// Makes the rows available to a SELECT: as UNNEST parameters, or copied
/// into a staging table.
async fn source_rows(
    client: &Client,
    state: &mut WriteState,
    cols: &Cols<'_>,
    rows: &[&[Cell<'_>]],
    positions: &[usize],
    path: WritePath,
) -> Result<Source, WriteError> {
    let kinds = cols.kinds();
    match path {
        WritePath::Copy => {
            let key = kinds
                .iter()
                .map(|k| k.sql_type())
                .collect::<Vec<_>>()
                .join(",");
            let n = state.staging.len();
            let stage = state
                .staging
                .entry(key)
                .or_insert_with(|| format!("{STAGE_PREFIX}{n}"))
                .clone();
            let stage_q = format!("pg_temp.{}", quote_ident(&stage));
            if !state.fresh.remove(&stage) {
                let defs: Vec<String> = kinds
                    .iter()
                    .enumerate()
                    .map(|(p, k)| format!("{} {}", quote_ident(&format!("c{p}")), k.sql_type()))
                    .collect();
                client
                    .batch_execute(&format!(
                        "CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS; TRUNCATE {stage_q}",
                        quote_ident(&stage),
                        defs.join(", ")
                    ))
                    .await?;
                state.exists.insert(stage.clone());
            }
            let mut buf = BytesMut::with_capacity(64 + rows.len() * 64);
            buf.put_slice(b"PGCOPY\n\xff\r\n\0");
            buf.put_i32(0);
            buf.put_i32(0);
            for r in rows {
                buf.put_i16(i16::try_from(positions.len()).unwrap_or(i16::MAX));
                for (&p, k) in positions.iter().zip(&kinds) {
                    encode_field(&mut buf, &r[p], k)
                        .map_err(|e| WriteError::Data(RecordError::data(e.0)))?;
                }
            }
            buf.put_i16(-1);
            let copy = state
                .prepare(
                    client,
                    &format!(
                        "COPY {stage_q} ({}) FROM STDIN (FORMAT binary)",
                        cols.aliases()
                    ),
                )
                .await?;
            let sink = client.copy_in(&copy).await?;
            let mut sink = pin!(sink);
            sink.send(buf.freeze()).await?;
            sink.finish().await?;
            Ok(Source {
                from: format!("{stage_q} AS u"),
                params: Vec::new(),
            })
        }
        WritePath::Unnest | WritePath::Auto => {
            let mut params = Vec::with_capacity(kinds.len());
            for (&p, k) in positions.iter().zip(&kinds) {
                let has_null = rows.iter().any(|r| r[p].is_null());
                let mut arr = BytesMut::with_capacity(rows.len() * 16 + 20);
                write_array_header(&mut arr, k, rows.len(), has_null);
                for r in rows {
                    encode_field(&mut arr, &r[p], k)
                        .map_err(|e| WriteError::Data(RecordError::data(e.0)))?;
                }
                params.push(RawParam(arr));
            }
            let args: Vec<String> = kinds
                .iter()
                .enumerate()
                .map(|(p, k)| format!("${}::{}[]", p + 1, k.sql_type()))
                .collect();
            Ok(Source {
                from: format!("UNNEST({}) AS u({})", args.join(", "), cols.aliases()),
                params,
            })
        }
    }
}
