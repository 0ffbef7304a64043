//! Schema evolution (`schema.evolution=basic`): read the target catalog,
//! create missing tables with real PostgreSQL types, add missing columns.
//! Never drops or retypes a column: a value whose type differs from the
//! target column's is cast on write, and fails that record if it cannot be.

use std::collections::HashMap;

use cdc_envelope::{PgType, TypeKind};
use tokio_postgres::Client;

use crate::config::PrimaryKeyMode;
use crate::error::SinkError;
use crate::ident::{quote_ident, safe_default, QualifiedName};
use crate::reduce::{SinkColumn, TablePlan};

/// A column of an existing target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    /// Type OID.
    pub type_oid: u32,
    /// The type as a quoted, schema-qualified name (for casts).
    pub type_ref: String,
}

/// What the sink knows about an existing target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    /// Columns by name.
    pub columns: HashMap<String, TargetColumn>,
    /// Column sets of unique indexes (the primary key included).
    pub unique_keys: Vec<Vec<String>>,
}

/// Per-connection cache of target tables (`None`: known not to exist).
#[derive(Debug, Default)]
pub struct Catalog {
    tables: HashMap<QualifiedName, Option<TargetTable>>,
}

impl Catalog {
    /// Forgets a table (after DDL was rolled back, or to re-read it).
    pub fn invalidate(&mut self, t: &QualifiedName) {
        self.tables.remove(t);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// The table, from cache or from the catalog.
    pub async fn get(
        &mut self,
        client: &Client,
        t: &QualifiedName,
    ) -> Result<Option<&TargetTable>, SinkError> {
        // Only existing tables are cached: a missing one is looked up again
        // (someone may have created it).
        if !matches!(self.tables.get(t), Some(Some(_))) {
            let loaded = load(client, t).await?;
            self.tables.insert(t.clone(), loaded);
        }
        Ok(self.tables.get(t).and_then(Option::as_ref))
    }
}

async fn load(client: &Client, t: &QualifiedName) -> Result<Option<TargetTable>, SinkError> {
    let ctx = || format!("reading the catalog for {t}");
    let rel = client
        .query_opt(
            "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2::text AND c.relkind IN ('r', 'p')",
            &[&t.schema, &t.name],
        )
        .await
        .map_err(|e| SinkError::db(ctx(), &e))?;
    let Some(rel) = rel else { return Ok(None) };
    let oid: u32 = rel.get(0);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, tn.nspname::text, ty.typname::text \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid \
             JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| SinkError::db(ctx(), &e))?;
    let columns = rows
        .iter()
        .map(|r| {
            let (name, type_oid, nsp, typ): (String, u32, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            (
                name,
                TargetColumn {
                    type_oid,
                    type_ref: format!("{}.{}", quote_ident(&nsp), quote_ident(&typ)),
                },
            )
        })
        .collect();
    let idx = client
        .query(
            "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) k JOIN pg_catalog.pg_attribute a \
               ON a.attrelid = i.indrelid AND a.attnum = k) \
             FROM pg_catalog.pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL",
            &[&oid],
        )
        .await
        .map_err(|e| SinkError::db(ctx(), &e))?;
    let unique_keys = idx.iter().map(|r| r.get::<_, Vec<String>>(0)).collect();
    Ok(Some(TargetTable {
        columns,
        unique_keys,
    }))
}

/// The SQL type used when creating a column for a source type: the source's
/// own type with its parameters where PostgreSQL has it built in, `text` for
/// enums and types that may not exist in the target (extensions). Built from
/// fixed strings and numbers only.
pub fn ddl_type(t: &PgType) -> String {
    match &t.kind {
        TypeKind::Array(elem) => return format!("{}[]", ddl_type(elem)),
        TypeKind::Domain(base) => return ddl_type(base),
        TypeKind::Enum(_) => return "text".into(),
        _ => {}
    }
    if let Some(elem) = t.name.strip_prefix('_') {
        let mut e = PgType::base(0, elem);
        e.modifier = t.modifier;
        return format!("{}[]", ddl_type(&e));
    }
    let with_len = |base: &str| match t.length() {
        Some(n) if n > 0 && n <= 10_485_760 => format!("{base}({n})"),
        _ => base.to_owned(),
    };
    let with_prec = |base: &str| match t.time_precision() {
        Some(p) if p <= 6 => format!("{base}({p})"),
        _ => base.to_owned(),
    };
    match t.name.as_str() {
        "bool" => "boolean".into(),
        "int2" => "smallint".into(),
        "int4" => "integer".into(),
        "int8" => "bigint".into(),
        "oid" => "bigint".into(),
        "float4" => "real".into(),
        "float8" => "double precision".into(),
        "numeric" => match (t.numeric_precision(), t.numeric_scale()) {
            (Some(p), Some(s)) if (1..=1000).contains(&p) && (-1000..=1000).contains(&s) => {
                format!("numeric({p},{s})")
            }
            _ => "numeric".into(),
        },
        "money" => "money".into(),
        "varchar" => with_len("varchar"),
        "bpchar" => with_len("char"),
        "bit" => with_len("bit"),
        "varbit" => with_len("varbit"),
        "text" | "name" | "citext" => "text".into(),
        "bytea" => "bytea".into(),
        "date" => "date".into(),
        "time" => with_prec("time"),
        "timetz" => with_prec("timetz"),
        "timestamp" => with_prec("timestamp"),
        "timestamptz" => with_prec("timestamptz"),
        "interval" => "interval".into(),
        "uuid" => "uuid".into(),
        "json" => "json".into(),
        "jsonb" => "jsonb".into(),
        "xml" => "xml".into(),
        "inet" => "inet".into(),
        "cidr" => "cidr".into(),
        "macaddr" => "macaddr".into(),
        "macaddr8" => "macaddr8".into(),
        "tsvector" => "tsvector".into(),
        "tsquery" => "tsquery".into(),
        "point" => "point".into(),
        "int4range" => "int4range".into(),
        "int8range" => "int8range".into(),
        "numrange" => "numrange".into(),
        "daterange" => "daterange".into(),
        "tsrange" => "tsrange".into(),
        "tstzrange" => "tstzrange".into(),
        _ => "text".into(),
    }
}

fn column_ddl(c: &SinkColumn, is_key: bool, adding: bool) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), ddl_type(&c.pg_type));
    let default = c.default_expr.as_deref().and_then(safe_default);
    if let Some(d) = &default {
        s.push_str(" DEFAULT ");
        s.push_str(d);
    }
    // Added columns are NOT NULL only when a default fills existing rows.
    let not_null = is_key || (!c.optional && (!adding || default.is_some()));
    if not_null {
        s.push_str(" NOT NULL");
    }
    s
}

/// What [`evolve`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evolution {
    /// The table was created.
    pub created: bool,
    /// Columns added.
    pub added: usize,
}

/// Makes the target table fit `plan`: creates it (`auto_create`), adds
/// missing columns (`auto_evolve`), checks that an upsert/update has a
/// unique key to work with. Returns what changed.
#[allow(clippy::too_many_arguments)]
pub async fn evolve(
    client: &Client,
    catalog: &mut Catalog,
    plan: &TablePlan<'_>,
    auto_create: bool,
    auto_evolve: bool,
    key_mode: PrimaryKeyMode,
    needs_unique_key: bool,
    savepoint: bool,
) -> Result<Evolution, SinkError> {
    let r = evolve_inner(
        client,
        catalog,
        plan,
        auto_create,
        auto_evolve,
        key_mode,
        needs_unique_key,
        savepoint,
    )
    .await;
    if r.is_err() {
        // Re-read the catalog next time: the table may be fixed by hand meanwhile.
        catalog.invalidate(&plan.target);
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn evolve_inner(
    client: &Client,
    catalog: &mut Catalog,
    plan: &TablePlan<'_>,
    auto_create: bool,
    auto_evolve: bool,
    key_mode: PrimaryKeyMode,
    needs_unique_key: bool,
    savepoint: bool,
) -> Result<Evolution, SinkError> {
    let t = &plan.target;
    let schema_err = |reason: String| SinkError::Schema {
        table: t.quoted(),
        reason,
    };
    let mut ev = Evolution::default();
    let existing = catalog.get(client, t).await?.cloned();
    let Some(existing) = existing else {
        if plan.columns.is_empty() {
            // Only a truncate or delete for a table that does not exist: nothing to do.
            return Ok(ev);
        }
        if !auto_create {
            return Err(schema_err(
                "the table does not exist and schema.evolution=none; create it, or set schema.evolution=basic".into(),
            ));
        }
        let mut parts: Vec<String> = plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| column_ddl(c, plan.key.contains(&i), false))
            .collect();
        if !plan.key.is_empty() && key_mode != PrimaryKeyMode::None {
            let keys: Vec<String> = plan
                .key
                .iter()
                .map(|&i| quote_ident(&plan.columns[i].name))
                .collect();
            parts.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            t.quoted(),
            parts.join(", ")
        );
        tracing::info!(table = %t, "creating target table");
        run_ddl(client, &sql, savepoint)
            .await
            .map_err(|e| ddl_error(&format!("creating table {t}"), &e))?;
        catalog.invalidate(t);
        ev.created = true;
        return Ok(ev);
    };
    let missing: Vec<(usize, &SinkColumn)> = plan
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !existing.columns.contains_key(&c.name))
        .collect();
    if !missing.is_empty() {
        if !auto_evolve {
            let names: Vec<String> = missing.iter().map(|(_, c)| quote_ident(&c.name)).collect();
            return Err(schema_err(format!(
                "columns {} are missing and schema.evolution=none; add them, or set schema.evolution=basic",
                names.join(", ")
            )));
        }
        let adds: Vec<String> = missing
            .iter()
            .map(|(i, c)| {
                format!(
                    "ADD COLUMN IF NOT EXISTS {}",
                    column_ddl(c, plan.key.contains(i), true)
                )
            })
            .collect();
        let sql = format!("ALTER TABLE {} {}", t.quoted(), adds.join(", "));
        tracing::info!(table = %t, added = missing.len(), "adding columns to target table");
        run_ddl(client, &sql, savepoint)
            .await
            .map_err(|e| ddl_error(&format!("adding columns to {t}"), &e))?;
        catalog.invalidate(t);
        ev.added = missing.len();
    }
    if needs_unique_key && !plan.key.is_empty() {
        let mut want: Vec<&str> = plan
            .key
            .iter()
            .map(|&i| plan.columns[i].name.as_str())
            .collect();
        want.sort_unstable();
        let ok = existing.unique_keys.iter().any(|k| {
            let mut k: Vec<&str> = k.iter().map(String::as_str).collect();
            k.sort_unstable();
            k == want
        });
        if !ok {
            return Err(schema_err(format!(
                "no primary key or unique index on ({}) for the upsert/update; add one, or use insert.mode=insert",
                want.join(", ")
            )));
        }
    }
    Ok(ev)
}

/// Runs DDL, under a savepoint when asked so that a failure leaves the
/// transaction usable.
async fn run_ddl(client: &Client, sql: &str, savepoint: bool) -> Result<(), tokio_postgres::Error> {
    if !savepoint {
        return client.batch_execute(sql).await;
    }
    match client
        .batch_execute(&format!("SAVEPOINT pgcdc_ddl; {sql}"))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            // Best effort: if this fails too the transaction is aborted and the
            // caller's next statement reports it.
            let _ = client
                .batch_execute("ROLLBACK TO SAVEPOINT pgcdc_ddl")
                .await;
            Err(e)
        }
    }
}

/// DDL races between writers (two connections creating the same table or
/// column) are retriable: the retry sees the other writer's result.
fn ddl_error(context: &str, e: &tokio_postgres::Error) -> SinkError {
    let mut err = SinkError::db(context, e);
    if let SinkError::Database {
        code: Some(c),
        retriable,
        ..
    } = &mut err
    {
        if matches!(c.as_str(), "42P07" | "42701" | "23505" | "XX000") {
            *retriable = true;
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_keep_parameters() {
        let numeric = PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4);
        assert_eq!(ddl_type(&numeric), "numeric(10,2)");
        assert_eq!(
            ddl_type(&PgType::base(1043, "varchar").with_modifier(104)),
            "varchar(100)"
        );
        assert_eq!(
            ddl_type(&PgType::base(1114, "timestamp").with_modifier(3)),
            "timestamp(3)"
        );
        assert_eq!(ddl_type(&PgType::base(1184, "timestamptz")), "timestamptz");
        assert_eq!(
            ddl_type(&PgType::base(0, "evil\"); DROP TABLE x; --")),
            "text"
        );
        let e = PgType {
            oid: 0,
            name: "mood".into(),
            modifier: -1,
            kind: TypeKind::Enum(vec!["a".into()]),
        };
        assert_eq!(ddl_type(&e), "text");
        let a = PgType {
            oid: 0,
            name: "_uuid".into(),
            modifier: -1,
            kind: TypeKind::Array(Box::new(PgType::base(2950, "uuid"))),
        };
        assert_eq!(ddl_type(&a), "uuid[]");
    }
}
