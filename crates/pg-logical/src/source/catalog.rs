//! The SQL side: connections, identifier quoting and catalog queries.
//!
//! Everything the source learns about captured tables comes from here:
//! columns in table order with type OID and modifier, NOT NULL, defaults
//! (`pg_get_expr`), the primary key, the replica identity and its index
//! columns, and the user-defined types the columns use (enum labels, domain
//! base types, array element types, range subtypes). [`TableMeta`] turns
//! into the decoder's [`TableInfo`] (for [`TypeRegistry::insert_table`]) and
//! into a synthetic [`Relation`] so snapshot rows are typed by exactly the
//! same code, and get exactly the same [`cdc_envelope::TableSchema`], as
//! streamed rows.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cdc_envelope::{Str, TableId};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::message::{Relation, RelationColumn, ReplicaIdentity};
use crate::pgtype::builtin_pg_type;
use crate::relation::{ColumnInfo, TableInfo, TypeInfo, TypeInfoKind, TypeRegistry};
use crate::source::config::{SourceConfig, TableFilter};
use crate::source::tls;

/// The workspace's one identifier-quoting helper (re-exported for the source's SQL).
pub use cdc_envelope::ident::{quote_ident, quote_table};

/// Converts a driver error into [`Error::Sql`], marking connection-level
/// failures (closed connection, SQLSTATE class 08, admin shutdown, crash
/// recovery, too many connections) as retriable.
pub fn sql_error(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    move |e| {
        let sqlstate = e.code().map(|c| c.code().to_owned());
        let retriable = match sqlstate.as_deref() {
            None => e.is_closed() || e.as_db_error().is_none(),
            Some(s) => s.starts_with("08") || matches!(s, "57P01" | "57P02" | "57P03" | "53300"),
        };
        let detail = match e.as_db_error() {
            Some(db) => match db.hint() {
                Some(h) => format!("{} (hint: {h})", db.message()),
                None => db.message().to_owned(),
            },
            None => e.to_string(),
        };
        Error::Sql {
            context,
            sqlstate,
            detail,
            retriable,
        }
    }
}

/// Opens a regular SQL connection with the pinned session settings (ISO
/// dates, UTC, full float precision) so text values parse like pgoutput's.
pub async fn connect(cfg: &SourceConfig, application_name: &str) -> Result<Client> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.hostname)
        .port(cfg.port)
        .user(&cfg.user)
        .password(cfg.password.expose())
        .dbname(&cfg.dbname)
        .application_name(application_name)
        .options(SourceConfig::session_options())
        .connect_timeout(std::time::Duration::from_secs(30));
    let context = format!(
        "connecting to {}:{}/{} as {}",
        cfg.hostname, cfg.port, cfg.dbname, cfg.user
    );
    if cfg.sslmode.attempts_tls() {
        return tls::connect_sql(pg, cfg, context).await;
    }
    pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, conn) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| tls::auth_or_sql_error("SQL", sql_error(context)(e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("source SQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// One column of a captured table, from `pg_attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Column name.
    pub name: String,
    /// `atttypid`.
    pub type_oid: u32,
    /// `atttypmod`.
    pub type_modifier: i32,
    /// `attnotnull`.
    pub not_null: bool,
    /// `pg_get_expr(adbin, adrelid)`.
    pub default_expr: Option<String>,
    /// Part of the replica identity key (what pgoutput flags as key).
    pub replica_key: bool,
}

/// A captured table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// Relation OID.
    pub oid: u32,
    /// Qualified name.
    pub id: TableId,
    /// `relreplident`.
    pub replica_identity: ReplicaIdentity,
    /// Published columns in table order (no dropped or generated columns).
    pub columns: Vec<ColumnMeta>,
    /// Primary-key columns in key order (empty when none).
    pub primary_key: Vec<String>,
    /// Columns of the replica identity index (`REPLICA IDENTITY USING INDEX`).
    pub replica_index: Vec<String>,
    /// A partitioned table (`relkind = 'p'`): its rows live in its
    /// partitions; see `publish.via.partition.root`.
    pub partitioned: bool,
}

impl TableMeta {
    /// True when PostgreSQL can publish UPDATE and DELETE for the table.
    pub fn has_usable_replica_identity(&self) -> bool {
        match self.replica_identity {
            ReplicaIdentity::Default => !self.primary_key.is_empty(),
            ReplicaIdentity::Full => true,
            ReplicaIdentity::Index => !self.replica_index.is_empty(),
            ReplicaIdentity::Nothing | ReplicaIdentity::Other(_) => false,
        }
    }

    /// The columns snapshot chunks are ordered and split by: the primary
    /// key, else the replica identity index; empty means one chunk.
    pub fn chunk_key(&self) -> &[String] {
        if self.primary_key.is_empty() {
            &self.replica_index
        } else {
            &self.primary_key
        }
    }

    /// The decoder's catalog facts for this table.
    pub fn table_info(&self) -> TableInfo {
        TableInfo {
            columns: self
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        ColumnInfo {
                            not_null: c.not_null,
                            default_expr: c.default_expr.clone(),
                        },
                    )
                })
                .collect(),
            primary_key: self.primary_key.clone(),
        }
    }

    /// The Relation message pgoutput would send for the table now.
    pub fn relation(&self) -> Relation {
        Relation {
            xid: None,
            oid: self.oid,
            namespace: Str::from(self.id.schema.as_str()),
            name: Str::from(self.id.table.as_str()),
            replica_identity: self.replica_identity,
            columns: self
                .columns
                .iter()
                .map(|c| RelationColumn {
                    flags: u8::from(c.replica_key),
                    name: Str::from(c.name.as_str()),
                    type_oid: c.type_oid,
                    type_modifier: c.type_modifier,
                })
                .collect(),
        }
    }
}

/// Whether transaction `$1` (a 32-bit xid, widened with the epoch of the
/// snapshot's xmax: the nearer of the two candidates) was completed before
/// a snapshot taken now. `txid_*` rather than the `pg_*`/`xid8` forms, which
/// need PostgreSQL 13.
const VISIBLE_SQL: &str = "
SELECT CASE WHEN f < 0 THEN true ELSE txid_visible_in_snapshot(f, s) END
FROM (SELECT s, CASE WHEN c > x + 2147483648 THEN c - 4294967296
                     WHEN c < x - 2147483648 THEN c + 4294967296
                     ELSE c END AS f
      FROM (SELECT s, x, ((x >> 32) << 32) | $1::int8 AS c
            FROM (SELECT s, txid_snapshot_xmax(s) AS x
                  FROM (SELECT txid_current_snapshot() AS s) a) b) c) d";

/// Waits until transaction `xid` is visible to a new snapshot on `client`'s
/// server (polling, at most `limit`); returns whether it became visible.
///
/// The walsender decodes a transaction as soon as its commit record is
/// flushed, which is before the committing backend makes it visible to
/// other sessions. A catalog read on behalf of a Relation message in that
/// window sees the table as it was before the transaction's DDL: an
/// `ALTER TABLE … ADD COLUMN … DEFAULT` committed together with the first
/// insert then looked like a column without its default.
pub async fn wait_until_visible(client: &Client, xid: u32, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        let visible: bool = client
            .query_one(VISIBLE_SQL, &[&i64::from(xid)])
            .await
            .map_err(sql_error(
                "checking that the decoded transaction is visible",
            ))?
            .get(0);
        if visible {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

const TABLES_SQL: &str = "
SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS pk,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisreplident), '{}') AS ri,
       c.relkind = 'p' AS partitioned
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname, c.relname";

// `pg_get_expr(adbin, 0)`, not `(adbin, adrelid)`: with a relation the
// function opens it (ACCESS SHARE), and while the snapshot readers hold
// their lock a queued `ALTER TABLE` makes that wait forever (the readers
// wait for this driver, the driver for the ALTER, the ALTER for the
// readers: a deadlock PostgreSQL cannot see). A column default never refers
// to columns, so it deparses the same without the relation.
const COLUMNS_SQL: &str = "
SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod, a.attnotnull,
       pg_get_expr(d.adbin, 0)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attrelid, a.attnum";

/// The captured tables: every ordinary or partitioned (root) table the filter
/// includes, with columns, keys and replica identity.
pub async fn load_tables(client: &Client, filter: &TableFilter) -> Result<Vec<TableMeta>> {
    let rows = client
        .query(TABLES_SQL, &[])
        .await
        .map_err(sql_error("listing tables"))?;
    let mut tables = Vec::new();
    for row in rows {
        let id = TableId::new(row.get::<_, String>(1), row.get::<_, String>(2));
        if !filter.includes(&id) {
            continue;
        }
        let ident: String = row.get(3);
        tables.push(TableMeta {
            oid: row.get(0),
            id,
            replica_identity: ReplicaIdentity::from_byte(ident.bytes().next().unwrap_or(b'd')),
            columns: Vec::new(),
            primary_key: row.get(4),
            replica_index: row.get(5),
            partitioned: row.get(6),
        });
    }
    // Snapshot order: include-list order, then name (Debezium's).
    tables.sort_by_cached_key(|t| {
        (
            filter.snapshot_rank(&t.id),
            t.id.schema.clone(),
            t.id.table.clone(),
        )
    });
    fill_columns(client, &mut tables).await?;
    Ok(tables)
}

/// Re-reads one table by OID (after a Relation message announced a change);
/// `None` if it no longer exists.
pub async fn load_table(client: &Client, oid: u32) -> Result<Option<TableMeta>> {
    let sql = TABLES_SQL.replace("WHERE c.relkind", "WHERE c.oid = $1 AND c.relkind");
    let rows = client
        .query(sql.as_str(), &[&oid])
        .await
        .map_err(sql_error("reading table"))?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let ident: String = row.get(3);
    let mut tables = vec![TableMeta {
        oid: row.get(0),
        id: TableId::new(row.get::<_, String>(1), row.get::<_, String>(2)),
        replica_identity: ReplicaIdentity::from_byte(ident.bytes().next().unwrap_or(b'd')),
        columns: Vec::new(),
        primary_key: row.get(4),
        replica_index: row.get(5),
        partitioned: row.get(6),
    }];
    fill_columns(client, &mut tables).await?;
    Ok(tables.pop())
}

async fn fill_columns(client: &Client, tables: &mut [TableMeta]) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = client
        .query(COLUMNS_SQL, &[&oids])
        .await
        .map_err(sql_error("reading columns"))?;
    let mut by_oid: HashMap<u32, Vec<ColumnMeta>> = HashMap::new();
    for row in rows {
        by_oid.entry(row.get(0)).or_default().push(ColumnMeta {
            name: row.get(1),
            type_oid: row.get(2),
            type_modifier: row.get(3),
            not_null: row.get(4),
            default_expr: row.get(5),
            replica_key: false,
        });
    }
    for t in tables.iter_mut() {
        t.columns = by_oid.remove(&t.oid).unwrap_or_default();
        let key: Vec<String> = match t.replica_identity {
            ReplicaIdentity::Default => t.primary_key.clone(),
            ReplicaIdentity::Index => t.replica_index.clone(),
            ReplicaIdentity::Full => t.columns.iter().map(|c| c.name.clone()).collect(),
            _ => Vec::new(),
        };
        for c in &mut t.columns {
            c.replica_key = key.contains(&c.name);
        }
    }
    Ok(())
}

const TYPES_SQL: &str = "
SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text, t.typbasetype, t.typtypmod,
       t.typelem, t.typcategory::text, r.rngsubtype,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_range r ON r.rngtypid = t.oid
WHERE t.oid = ANY($1)";

/// Loads the non-built-in types `oids` refer to, following domains, arrays
/// and ranges down to built-in types, into `registry`.
pub async fn load_types(
    client: &Client,
    registry: &mut TypeRegistry,
    oids: Vec<u32>,
) -> Result<()> {
    let mut wanted: BTreeSet<u32> = oids
        .into_iter()
        .filter(|o| {
            builtin_pg_type(*o, -1).is_none()
                && registry
                    .get_type(*o)
                    .is_none_or(|t| t.kind == TypeInfoKind::Unknown)
        })
        .collect();
    for _ in 0..8 {
        if wanted.is_empty() {
            break;
        }
        let list: Vec<u32> = wanted.iter().copied().collect();
        let rows = client
            .query(TYPES_SQL, &[&list])
            .await
            .map_err(sql_error("reading types"))?;
        wanted.clear();
        for row in rows {
            let oid: u32 = row.get(0);
            let typtype: String = row.get(3);
            let category: String = row.get(7);
            let elem: u32 = row.get(6);
            let base: u32 = row.get(4);
            let subtype: Option<u32> = row.get(8);
            let kind = match typtype.as_str() {
                "e" => TypeInfoKind::Enum { labels: row.get(9) },
                "d" => TypeInfoKind::Domain {
                    base_oid: base,
                    base_modifier: row.get(5),
                },
                "r" => TypeInfoKind::Range {
                    subtype_oid: subtype.unwrap_or(0),
                },
                "c" => TypeInfoKind::Composite,
                _ if category == "A" && elem != 0 => TypeInfoKind::Array { element_oid: elem },
                _ => TypeInfoKind::Base,
            };
            for next in [base, elem, subtype.unwrap_or(0)] {
                if next != 0
                    && builtin_pg_type(next, -1).is_none()
                    && registry.get_type(next).is_none()
                {
                    wanted.insert(next);
                }
            }
            registry.insert_type(TypeInfo {
                oid,
                namespace: row.get(1),
                name: row.get(2),
                kind,
            });
        }
    }
    Ok(())
}

/// Registers tables and their types in the decoder's registry.
pub async fn register_tables(
    client: &Client,
    registry: &mut TypeRegistry,
    tables: &[TableMeta],
) -> Result<()> {
    let oids: Vec<u32> = tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| c.type_oid))
        .collect();
    load_types(client, registry, oids).await?;
    for t in tables {
        registry.insert_table(t.oid, t.table_info());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            quote_table(&TableId::new("public", "Emp")),
            "\"public\".\"Emp\""
        );
    }
}
