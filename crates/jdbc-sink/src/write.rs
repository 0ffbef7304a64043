//! Row writes: one table plan → SQL, values bound in binary.
//!
//! Two bulk paths share the same SQL shape (`INSERT … SELECT … ON CONFLICT`,
//! `UPDATE … FROM`, `DELETE … USING`) and differ in where the rows come from:
//!
//! * **unnest** — the rows are one binary parameter, an array of a session
//!   row type (`CREATE TYPE pg_temp."__pgcdc_stage_rowN" AS ("c0" integer,
//!   "c1" text, …)`, once per column-kind signature and session):
//!   `SELECT … FROM UNNEST($1::pg_temp."__pgcdc_stage_rowN"[]) AS u`.
//!   One statement per group, prepared once, pipelined by the sink's fast
//!   path. (One array per column, `UNNEST($1::integer[], $2::text[], …)`,
//!   made the server materialise one tuplestore per column: ≈ 10 % more
//!   server CPU than the COPY baseline at 5000-row batches; the row type
//!   brings it to parity — `docs/benchmarks.md`.) A role without the
//!   `TEMP` privilege on the database falls back to one array per column.
//! * **copy** — rows are sent with `COPY pg_temp.stage FROM STDIN (FORMAT
//!   binary)` into a temporary staging table, then `… SELECT … FROM stage`.
//!   Needed for array columns (UNNEST flattens multi-dimensional arrays).
//!
//! Measured on the `employees` shape (see `docs/benchmarks.md`, `## jdbc-sink`):
//! unnest is faster than copy at both `batch.size=500` and 5000 (fewer round
//! trips, no staging table, pipelined), so `pgcdc.write.path=auto` picks
//! unnest unless a column is an array.
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
use crate::encode::{encode_field, set_array_has_null, write_array_header, WireKind};
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
    /// Row types of the UNNEST path (`pg_temp`) per column-kind signature.
    row_types: HashMap<String, RowType>,
    /// Row types named so far (names are never reused in a session).
    row_type_count: usize,
    /// The session may not create temporary objects (no `TEMP` privilege):
    /// UNNEST takes one array per column instead of a row-typed array.
    no_temp_types: bool,
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
        // A row type created in a rolled-back transaction is gone too:
        // look each up again before use.
        for t in self.row_types.values_mut() {
            t.confirmed = false;
        }
        // Statements naming a staging table that may be gone.
        self.statements.retain(|sql, _| !sql.contains(STAGE_PREFIX));
    }

    /// After a commit: `ON COMMIT DELETE ROWS` emptied every staging table.
    pub fn committed(&mut self) {
        self.fresh = self.exists.clone();
    }

    /// Makes sure the row types the UNNEST statements of `plan` need exist
    /// (one `pg_temp` composite type per column-kind signature, created
    /// once per session).
    pub async fn ensure_row_types(
        &mut self,
        client: &Client,
        plan: &TablePlan<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if self.no_temp_types {
            return Ok(());
        }
        let mut sigs: Vec<Vec<WireKind>> = Vec::new();
        let has_deletes = !plan.deletes.is_empty() || plan.writes.iter().any(|w| w.delete_first);
        if has_deletes && !plan.key.is_empty() {
            sigs.push(
                plan.key
                    .iter()
                    .map(|&k| plan.columns[k].wire.clone())
                    .collect(),
            );
        }
        if let Ok(groups) = groups(plan) {
            for (present, _) in groups {
                sigs.push(
                    present
                        .iter()
                        .map(|&c| plan.columns[c].wire.clone())
                        .collect(),
                );
            }
        }
        for kinds in sigs {
            let sig = signature(kinds.iter());
            if self.row_types.get(&sig).is_some_and(|t| t.confirmed) {
                continue;
            }
            let name = match self.row_types.get(&sig) {
                Some(t) => t.name.clone(),
                None => {
                    self.row_type_count += 1;
                    format!("{STAGE_PREFIX}row{}", self.row_type_count)
                }
            };
            let lookup = "SELECT t.oid FROM pg_catalog.pg_type t \
                 WHERE t.typname = $1 AND t.typnamespace = pg_catalog.pg_my_temp_schema()";
            let oid: u32 = match client.query_opt(lookup, &[&name]).await? {
                Some(r) => r.get(0),
                None => {
                    let defs: Vec<String> = kinds
                        .iter()
                        .enumerate()
                        .map(|(p, k)| format!("{} {}", quote_ident(&format!("c{p}")), k.sql_type()))
                        .collect();
                    let created = client
                        .batch_execute(&format!(
                            "CREATE TYPE pg_temp.{} AS ({})",
                            quote_ident(&name),
                            defs.join(", ")
                        ))
                        .await;
                    if let Err(e) = created {
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
                        {
                            // The transaction is aborted; its retry uses one
                            // array per column.
                            tracing::warn!(error = %e, "no TEMP privilege on the target database: writing without a row type");
                            self.no_temp_types = true;
                        }
                        return Err(e);
                    }
                    client.query_one(lookup, &[&name]).await?.get(0)
                }
            };
            let quoted = format!("pg_temp.{}", quote_ident(&name));
            self.row_types.insert(
                sig,
                RowType {
                    name,
                    quoted,
                    oid,
                    confirmed: true,
                },
            );
        }
        Ok(())
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

/// A `pg_temp` composite type carrying one UNNEST row.
#[derive(Debug, Clone)]
struct RowType {
    name: String,
    quoted: String,
    oid: u32,
    /// Known to exist in the session (false after a rollback until checked).
    confirmed: bool,
}

/// The key of a row type: the SQL names of the column kinds.
fn signature<'k>(kinds: impl Iterator<Item = &'k WireKind>) -> String {
    kinds.map(WireKind::sql_type).collect::<Vec<_>>().join(",")
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

/// The write path a table plan takes (`pgcdc.write.path=auto` resolved).
pub fn resolve_path(plan: &TablePlan<'_>, path: WritePath) -> WritePath {
    // Measured (docs/benchmarks.md, `## jdbc-sink`): UNNEST is faster than
    // COPY at 500- and 5000-row batches, so it is the default; COPY only
    // for array columns.
    match path {
        WritePath::Auto if plan.columns.iter().any(|c| c.wire.is_array()) => WritePath::Copy,
        WritePath::Auto => WritePath::Unnest,
        p => p,
    }
}

/// One statement of the UNNEST path: SQL text and its encoded array
/// parameters.
#[derive(Debug)]
pub struct UnnestStatement {
    /// The SQL (identifiers quoted, values only as `$n` parameters).
    pub sql: String,
    params: Vec<RawParam>,
}

impl UnnestStatement {
    /// The parameters, in `$n` order, for `Client::execute_raw`.
    pub fn into_params(self) -> impl ExactSizeIterator<Item = impl ToSql + Send + Sync> {
        self.params.into_iter()
    }
}

/// The statements of one table plan on the UNNEST path (no truncate):
/// the deletes, then one write per group of present columns. Rows of one
/// statement have distinct keys (the plan is reduced), so statements run
/// in order give the same result as running them one by one.
pub fn unnest_statements(
    plan: &TablePlan<'_>,
    target: &TargetTable,
    mode: InsertMode,
    state: &WriteState,
) -> Result<Vec<UnnestStatement>, WriteError> {
    let mut out = Vec::new();
    let t = plan.target.quoted();
    // Deletes: explicit ones, and keys rewritten after a delete in the batch.
    let mut deletes: Vec<&[Cell<'_>]> = plan.deletes.iter().map(Vec::as_slice).collect();
    let rewritten: Vec<Vec<Cell<'_>>> = plan
        .writes
        .iter()
        .filter(|w| w.delete_first)
        .map(|w| plan.key.iter().map(|&k| w.cells[k].clone()).collect())
        .collect();
    deletes.extend(rewritten.iter().map(Vec::as_slice));
    if !deletes.is_empty() && !plan.key.is_empty() {
        let cols = Cols {
            plan,
            idx: plan.key.clone(),
            target,
        };
        let positions: Vec<usize> = (0..plan.key.len()).collect();
        let source = unnest_source(state, &cols, &deletes, &positions)?;
        out.push(UnnestStatement {
            sql: delete_sql(&t, &cols, &source.from),
            params: source.params,
        });
    }
    for (present, rows) in groups(plan)? {
        let cols = Cols {
            plan,
            idx: present.clone(),
            target,
        };
        let source = unnest_source(state, &cols, &rows, &present)?;
        if let Some(sql) = write_sql(&t, &cols, mode, &source.from) {
            out.push(UnnestStatement {
                sql,
                params: source.params,
            });
        }
    }
    Ok(out)
}

fn delete_sql(t: &str, cols: &Cols<'_>, from: &str) -> String {
    let on: Vec<String> = cols
        .names()
        .iter()
        .map(|n| format!("t.{n} = s.{n}"))
        .collect();
    format!(
        "DELETE FROM {t} AS t USING (SELECT {} FROM {from}) AS s WHERE {}",
        cols.select_list(),
        on.join(" AND ")
    )
}

/// Rows grouped by the set of columns they carry (rows without unavailable
/// values all share the full set; no per-row allocation).
type Groups<'p, 'a> = Vec<(Vec<usize>, Vec<&'p [Cell<'a>]>)>;

fn groups<'p, 'a>(plan: &'p TablePlan<'a>) -> Result<Groups<'p, 'a>, WriteError> {
    let ncols = plan.columns.len();
    let mut groups: Groups<'p, 'a> = Vec::new();
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
    for (present, _) in &groups {
        if plan.key.iter().any(|k| !present.contains(k)) {
            return Err(WriteError::Data(RecordError::data(
                "a key column value is missing (unavailable)",
            )));
        }
    }
    Ok(groups)
}

/// The write statement for one group (`None`: nothing to do, e.g. an
/// update of key columns only).
fn write_sql(t: &str, cols: &Cols<'_>, mode: InsertMode, from: &str) -> Option<String> {
    let plan = cols.plan;
    let names = cols.names();
    let key_names: Vec<String> = plan
        .key
        .iter()
        .map(|&k| quote_ident(&plan.columns[k].name))
        .collect();
    let non_key: Vec<&String> = cols
        .idx
        .iter()
        .zip(&names)
        .filter(|(ci, _)| !plan.key.contains(ci))
        .map(|(_, n)| n)
        .collect();
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
            let sets: Vec<String> = non_key.iter().map(|n| format!("{n} = s.{n}")).collect();
            let on: Vec<String> = key_names.iter().map(|n| format!("t.{n} = s.{n}")).collect();
            format!(
                "UPDATE {t} AS t SET {} FROM ({select}) AS s WHERE {}",
                sets.join(", "),
                on.join(" AND ")
            )
        }
    })
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
    let path = resolve_path(plan, path);
    let t = plan.target.quoted();
    if plan.truncate {
        client.batch_execute(&format!("TRUNCATE TABLE {t}")).await?;
    }
    if path != WritePath::Copy {
        state.ensure_row_types(client, plan).await?;
        for st in unnest_statements(plan, target, mode, state)? {
            exec(client, state, &st.sql, st.params).await?;
        }
        return Ok(());
    }
    // COPY path: deletes, then each group, through the staging tables.
    let mut deletes: Vec<&[Cell<'_>]> = plan.deletes.iter().map(Vec::as_slice).collect();
    let rewritten: Vec<Vec<Cell<'_>>> = plan
        .writes
        .iter()
        .filter(|w| w.delete_first)
        .map(|w| plan.key.iter().map(|&k| w.cells[k].clone()).collect())
        .collect();
    deletes.extend(rewritten.iter().map(Vec::as_slice));
    if !deletes.is_empty() && !plan.key.is_empty() {
        let cols = Cols {
            plan,
            idx: plan.key.clone(),
            target,
        };
        let positions: Vec<usize> = (0..plan.key.len()).collect();
        let source = copy_source(client, state, &cols, &deletes, &positions).await?;
        exec(
            client,
            state,
            &delete_sql(&t, &cols, &source.from),
            source.params,
        )
        .await?;
    }
    for (present, rows) in groups(plan)? {
        let cols = Cols {
            plan,
            idx: present.clone(),
            target,
        };
        let source = copy_source(client, state, &cols, &rows, &present).await?;
        if let Some(sql) = write_sql(&t, &cols, mode, &source.from) {
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

/// Copies the rows into a staging table for a SELECT.
async fn copy_source(
    client: &Client,
    state: &mut WriteState,
    cols: &Cols<'_>,
    rows: &[&[Cell<'_>]],
    positions: &[usize],
) -> Result<Source, WriteError> {
    let kinds = cols.kinds();
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

/// Makes the rows available to a SELECT as one UNNEST parameter: an array
/// of the signature's `pg_temp` row type (one function scan, one
/// tuplestore on the server, where an UNNEST of one array per column
/// materialises one per column).
fn unnest_source(
    state: &WriteState,
    cols: &Cols<'_>,
    rows: &[&[Cell<'_>]],
    positions: &[usize],
) -> Result<Source, WriteError> {
    if state.no_temp_types {
        return unnest_columns_source(cols, rows, positions);
    }
    let kinds = cols.kinds();
    let (type_name, type_oid) = state
        .row_types
        .get(&signature(kinds.iter().copied()))
        .filter(|t| t.confirmed)
        .map(|t| (t.quoted.clone(), t.oid))
        .ok_or_else(|| {
            WriteError::Sink(SinkError::Closed(
                "internal: row type missing (ensure_row_types not called)".into(),
            ))
        })?;
    let ncols = i32::try_from(kinds.len()).unwrap_or(i32::MAX);
    let per_row: usize = 4 + kinds.iter().map(|k| 4 + k.size_hint()).sum::<usize>();
    let mut arr = BytesMut::with_capacity(20 + rows.len() * (4 + per_row));
    // One-dimensional array, no NULL elements, of the row type.
    arr.put_i32(i32::from(!rows.is_empty()));
    arr.put_i32(0);
    arr.put_u32(type_oid);
    if !rows.is_empty() {
        arr.put_i32(i32::try_from(rows.len()).unwrap_or(i32::MAX));
        arr.put_i32(1);
    }
    for r in rows {
        // Each element is a binary record: column count, then per column
        // its type OID and the field (length + data, or -1 for NULL).
        let len_at = arr.len();
        arr.put_i32(0);
        arr.put_i32(ncols);
        for (&p, k) in positions.iter().zip(&kinds) {
            arr.put_u32(k.oid());
            encode_field(&mut arr, &r[p], k)
                .map_err(|e| WriteError::Data(RecordError::data(e.0)))?;
        }
        let len = i32::try_from(arr.len() - len_at - 4)
            .map_err(|_| WriteError::Data(RecordError::data("row larger than 2 GiB")))?;
        arr[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(Source {
        from: format!("UNNEST($1::{type_name}[]) AS u"),
        params: vec![RawParam(arr)],
    })
}

/// The rows as one UNNEST array parameter per column (for sessions that
/// may not create temporary objects).
fn unnest_columns_source(
    cols: &Cols<'_>,
    rows: &[&[Cell<'_>]],
    positions: &[usize],
) -> Result<Source, WriteError> {
    let kinds = cols.kinds();
    // One row-major pass (each record's values are read once, while
    // they are in cache), filling one array per column.
    let mut arrays: Vec<BytesMut> = kinds
        .iter()
        .map(|k| {
            let mut a = BytesMut::with_capacity(20 + rows.len() * k.size_hint());
            write_array_header(&mut a, k, rows.len(), false);
            a
        })
        .collect();
    let mut has_null = vec![false; kinds.len()];
    for r in rows {
        for (((&p, k), arr), null) in positions
            .iter()
            .zip(&kinds)
            .zip(arrays.iter_mut())
            .zip(has_null.iter_mut())
        {
            let v = &r[p];
            *null |= v.is_null();
            encode_field(arr, v, k).map_err(|e| WriteError::Data(RecordError::data(e.0)))?;
        }
    }
    let params = arrays
        .into_iter()
        .zip(has_null)
        .map(|(mut a, null)| {
            set_array_has_null(&mut a, null);
            RawParam(a)
        })
        .collect();
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
