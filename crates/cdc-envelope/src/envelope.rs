//! Debezium's envelope: the key / value / envelope Connect schemas of a
//! table, the `source` and `transaction` blocks, logical-message records,
//! topic names and tombstones. Shared by the JSON and Avro converters.

use std::borrow::Cow;
use std::sync::Arc;

use crate::connect::{self, Codec, ConnectSchema, ConnectType, Field, Prim};
use crate::error::{Error, Result};
use crate::event::{ChangeEvent, Op};
use crate::options::Options;
use crate::schema::TableSchema;
use crate::value::Value;

/// `io.debezium.connector.postgresql.Source`.
pub const SOURCE_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.Source";
/// The transaction block schema name.
pub const TRANSACTION_SCHEMA_NAME: &str = "event.block";
/// Key schema of logical-message records.
pub const MESSAGE_KEY_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.MessageKey";
/// Value schema of logical-message records.
pub const MESSAGE_VALUE_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.MessageValue";
/// The `message` block schema name.
pub const MESSAGE_BLOCK_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.Message";
/// `version` of the table envelope schema (2 since `ts_us`/`ts_ns` were added).
pub const ENVELOPE_VERSION: i32 = 2;
/// Allowed values of `source.snapshot`.
pub const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

fn prim(ty: ConnectType, optional: bool) -> ConnectSchema {
    ConnectSchema::new(ty).optional(optional)
}

/// The `source` block schema, fields in Debezium 3.x order.
pub fn source_schema() -> ConnectSchema {
    use ConnectType as T;
    let mut snapshot = prim(T::String, true)
        .named(connect::names::ENUM, Some(1))
        .param("allowed", SNAPSHOT_ALLOWED);
    snapshot.default = Some(connect::Datum::String("false".to_owned()));
    ConnectSchema::structure(
        SOURCE_SCHEMA_NAME,
        vec![
            Field::new("version", prim(T::String, false)),
            Field::new("connector", prim(T::String, false)),
            Field::new("name", prim(T::String, false)),
            Field::new("ts_ms", prim(T::Int64, false)),
            Field::new("snapshot", snapshot),
            Field::new("db", prim(T::String, false)),
            Field::new("sequence", prim(T::String, true)),
            Field::new("ts_us", prim(T::Int64, true)),
            Field::new("ts_ns", prim(T::Int64, true)),
            Field::new("schema", prim(T::String, false)),
            Field::new("table", prim(T::String, false)),
            Field::new("txId", prim(T::Int64, true)),
            Field::new("lsn", prim(T::Int64, true)),
            Field::new("xmin", prim(T::Int64, true)),
            Field::new("origin", prim(T::String, true)),
            Field::new("origin_lsn", prim(T::Int64, true)),
        ],
    )
    .named(SOURCE_SCHEMA_NAME, Some(1))
}

/// The `transaction` block schema (optional).
pub fn transaction_schema() -> ConnectSchema {
    use ConnectType as T;
    ConnectSchema::structure(
        TRANSACTION_SCHEMA_NAME,
        vec![
            Field::new("id", prim(T::String, false)),
            Field::new("total_order", prim(T::Int64, false)),
            Field::new("data_collection_order", prim(T::Int64, false)),
        ],
    )
    .named(TRANSACTION_SCHEMA_NAME, Some(1))
    .optional(true)
}

/// Key schema of logical-message records.
pub fn message_key_schema() -> ConnectSchema {
    ConnectSchema::structure(
        MESSAGE_KEY_SCHEMA_NAME,
        vec![Field::new("prefix", prim(ConnectType::String, true))],
    )
    .named(MESSAGE_KEY_SCHEMA_NAME, Some(1))
}

/// Value schema of logical-message records (`op`, `ts_ms`, `source`, `transaction`, `message`).
pub fn message_value_schema() -> ConnectSchema {
    use ConnectType as T;
    let block = ConnectSchema::structure(
        MESSAGE_BLOCK_SCHEMA_NAME,
        vec![
            Field::new("prefix", prim(T::String, true)),
            Field::new("content", prim(T::Bytes, true)),
        ],
    )
    .named(MESSAGE_BLOCK_SCHEMA_NAME, Some(1));
    ConnectSchema::structure(
        MESSAGE_VALUE_SCHEMA_NAME,
        vec![
            Field::new("op", prim(T::String, false)),
            Field::new("ts_ms", prim(T::Int64, true)),
            Field::new("source", source_schema()),
            Field::new("transaction", transaction_schema()),
            Field::new("message", block),
        ],
    )
    .named(MESSAGE_VALUE_SCHEMA_NAME, Some(1))
}

/// One column of a [`TablePlan`].
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// Column name.
    pub name: String,
    /// Its Connect schema (with optional, default, parameters).
    pub schema: ConnectSchema,
    /// How values map to the schema.
    pub codec: Codec,
    pub(crate) default: Option<Prim<'static>>,
}

/// Everything needed to encode a table's events: the Connect schemas of key,
/// row and envelope, and per-column codecs. Built once per (table, schema
/// version, options) and cached by the converters.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table.
    pub table: Arc<TableSchema>,
    /// Columns in table order.
    pub columns: Vec<ColumnPlan>,
    /// Indices of the key columns.
    pub key_indices: Vec<usize>,
    /// `<prefix>.<schema>.<table>.Key`, `None` when the table has no key.
    pub key_schema: Option<ConnectSchema>,
    /// `<prefix>.<schema>.<table>.Value` (optional struct).
    pub row_schema: ConnectSchema,
    /// `<prefix>.<schema>.<table>.Envelope`.
    pub envelope_schema: ConnectSchema,
}

/// The topic name Debezium uses for an event: `<prefix>.<schema>.<table>`,
/// or `<prefix>.message` for logical messages.
pub fn topic_name(event: &ChangeEvent, options: &Options) -> Option<String> {
    if event.op == Op::Message {
        return Some(format!("{}.message", options.topic_prefix));
    }
    let t = event.table.as_ref()?;
    Some(format!(
        "{}.{}.{}",
        options.topic_prefix, t.id.schema, t.id.table
    ))
}

/// True when Debezium follows this event with a tombstone (a record with the
/// same key and a null value): deletes, when `tombstones.on.delete` is on.
pub fn tombstone_follows(event: &ChangeEvent, options: &Options) -> bool {
    event.op == Op::Delete && options.tombstones_on_delete
}

impl TablePlan {
    /// Builds the plan for a table under the given options.
    pub fn new(table: Arc<TableSchema>, options: &Options) -> Self {
        let base = format!(
            "{}.{}.{}",
            options.topic_prefix, table.id.schema, table.id.table
        );
        let columns: Vec<ColumnPlan> = table
            .columns
            .iter()
            .map(|c| {
                let (schema, codec) =
                    connect::column_schema(&table.id.schema, &table.id.table, c, options);
                let default = schema.default.as_ref().map(Prim::from_datum);
                ColumnPlan {
                    name: c.name.clone(),
                    schema,
                    codec,
                    default,
                }
            })
            .collect();
        let key_indices: Vec<usize> = table.key_indices().collect();
        let key_schema = (!key_indices.is_empty()).then(|| {
            ConnectSchema::structure(
                format!("{base}.Key"),
                key_indices
                    .iter()
                    .filter_map(|i| columns.get(*i))
                    .map(|c| Field::new(c.name.clone(), c.schema.clone()))
                    .collect(),
            )
        });
        let row_schema = ConnectSchema::structure(
            format!("{base}.Value"),
            columns
                .iter()
                .map(|c| Field::new(c.name.clone(), c.schema.clone()))
                .collect(),
        )
        .optional(true);
        use ConnectType as T;
        let envelope_schema = ConnectSchema::structure(
            format!("{base}.Envelope"),
            vec![
                Field::new("before", row_schema.clone()),
                Field::new("after", row_schema.clone()),
                Field::new("source", source_schema()),
                Field::new("transaction", transaction_schema()),
                Field::new("op", prim(T::String, false)),
                Field::new("ts_ms", prim(T::Int64, true)),
                Field::new("ts_us", prim(T::Int64, true)),
                Field::new("ts_ns", prim(T::Int64, true)),
            ],
        );
        let envelope_schema = ConnectSchema {
            version: Some(ENVELOPE_VERSION),
            ..envelope_schema
        };
        Self {
            table,
            columns,
            key_indices,
            key_schema,
            row_schema,
            envelope_schema,
        }
    }

    /// The Connect primitive written for column `i` holding `v`: NULLs of
    /// columns with a default become the default (Connect's
    /// `replace.null.with.default`), NULLs of required columns without
    /// default become Debezium's type fallback (`""`, `0`, ...).
    pub(crate) fn cell<'a>(
        &'a self,
        i: usize,
        v: &'a Value,
        options: &Options,
    ) -> Result<Prim<'a>> {
        let col = self.columns.get(i).ok_or_else(|| Error::RowMismatch {
            table: self.table.id.to_string(),
            reason: format!("no column #{i}"),
        })?;
        let p = col.codec.lower(v, &col.name, options)?;
        if !matches!(p, Prim::Null) {
            return Ok(p);
        }
        let optional = col.schema.optional;
        if let Some(d) = &col.default {
            if options.replace_null_with_default || !optional {
                return Ok(match d {
                    Prim::Str(s) => Prim::Str(Cow::Borrowed(s.as_ref())),
                    Prim::Bytes(b) => Prim::Bytes(Cow::Borrowed(b.as_ref())),
                    other => other.clone(),
                });
            }
        }
        if optional {
            Ok(Prim::Null)
        } else {
            Ok(connect::fallback(&col.codec))
        }
    }

    /// Checks that a row has one value per column.
    pub(crate) fn check_row(&self, row: &[Value]) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(Error::RowMismatch {
                table: self.table.id.to_string(),
                reason: format!("{} values for {} columns", row.len(), self.columns.len()),
            });
        }
        Ok(())
    }

    /// The key values of an event (key columns of `after`, else `before`).
    pub(crate) fn key_row<'a>(&self, ev: &'a ChangeEvent) -> Option<&'a [Value]> {
        ev.after.as_deref().or(ev.before.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, PgType, TableId};

    #[test]
    fn tombstones_and_topics() {
        let table = Arc::new(TableSchema {
            id: TableId::new("public", "t"),
            relation_oid: 1,
            columns: vec![Column {
                is_key: true,
                optional: false,
                ..Column::new("id", PgType::base(23, "int4"))
            }],
            version: 1,
        });
        let ev = ChangeEvent {
            op: Op::Delete,
            table: Some(table),
            before: Some(vec![Value::Int32(1)]),
            after: None,
            source: Default::default(),
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Default::default(),
            key_change: None,
        };
        let on = Options::with_prefix("p");
        let off = Options {
            tombstones_on_delete: false,
            ..Options::with_prefix("p")
        };
        assert!(tombstone_follows(&ev, &on));
        assert!(!tombstone_follows(&ev, &off));
        assert_eq!(topic_name(&ev, &on).as_deref(), Some("p.public.t"));
    }
}

/// An encoder's per-table cache of plans (one per schema version), with a
/// fast path for the table of the previous event (the common case: runs of
/// events for one table). Shared by the JSON and Avro encoders.
#[derive(Debug)]
pub(crate) struct PlanCache<P> {
    plans: std::collections::HashMap<crate::schema::TableId, Vec<Arc<P>>>,
    last: Option<Arc<P>>,
}

impl<P> Default for PlanCache<P> {
    fn default() -> Self {
        Self {
            plans: std::collections::HashMap::new(),
            last: None,
        }
    }
}

/// A cached encoder plan: exposes the [`TablePlan`] it was built from.
pub(crate) trait CachedPlan {
    /// The table plan.
    fn table_plan(&self) -> &TablePlan;
}

impl<P: CachedPlan> PlanCache<P> {
    /// The plan for `table`, built with `build` on first use of this
    /// (table, version, columns).
    pub(crate) fn get_or_build(
        &mut self,
        table: &Arc<TableSchema>,
        build: impl FnOnce(TablePlan) -> P,
        options: &Options,
    ) -> Arc<P> {
        if let Some(p) = &self.last {
            if Arc::ptr_eq(&p.table_plan().table, table) {
                return Arc::clone(p);
            }
        }
        if let Some(p) = self.plans.get(&table.id).and_then(|v| {
            v.iter()
                .find(|p| p.table_plan().table.version == table.version)
        }) {
            let cached = &p.table_plan().table;
            if cached.columns == table.columns && cached.id == table.id {
                let p = Arc::clone(p);
                self.last = Some(Arc::clone(&p));
                return p;
            }
        }
        let p = Arc::new(build(TablePlan::new(Arc::clone(table), options)));
        let versions = self.plans.entry(table.id.clone()).or_default();
        versions.retain(|v| v.table_plan().table.version != table.version);
        versions.push(Arc::clone(&p));
        self.last = Some(Arc::clone(&p));
        p
    }
}
