//! From records to per-table write plans: key extraction per
//! `primary.key.mode`, target name resolution, and reduction of all events
//! for one key in a batch to their final state.
//!
//! Reduction rules (per target table, per key, in record order):
//!
//! * a write (create / update / snapshot read) replaces the pending state;
//!   columns it carries as [`Value::Unavailable`] (unchanged TOAST) keep the
//!   value of an earlier write of the batch, else stay absent (untouched);
//! * a delete replaces the pending state with "delete";
//! * a write after a delete becomes "delete, then write" (so `insert.mode=insert`
//!   does not collide with the old row);
//! * a truncate drops everything pending for the table and truncates first.
//!
//! Everything happens in one transaction, so the final state is all the
//! target ever shows: reduction is on by default (`use.reduction.buffer=true`,
//! unlike Debezium's default `false`). With `use.reduction.buffer=false`
//! every event is applied in record order, as the Debezium JDBC sink does
//! without its reduction buffer: a key that repeats within the batch starts
//! a new segment of the table (a new set of statements, run after the
//! previous ones), so a secondary unique constraint that the events satisfy
//! one by one is never violated by the collapsed order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use bytes::BytesMut;
use cdc_envelope::{Op, PgType, TableSchema, Value};

use crate::config::{PrimaryKeyMode, SinkConfig};
use crate::encode::{encode_field, WireKind};
use crate::error::RecordError;
use crate::ident::{normalise, QualifiedName};
use crate::record::SinkRecord;

/// A column of a target table as the batch sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkColumn {
    /// Normalised column name.
    pub name: String,
    /// Source type.
    pub pg_type: PgType,
    /// Wire kind of the values.
    pub wire: WireKind,
    /// Nullable in the source.
    pub optional: bool,
    /// Default expression from the source schema.
    pub default_expr: Option<String>,
}

/// A cell: borrowed from the record when possible (no copy of the value).
pub type Cell<'a> = Cow<'a, Value>;

fn unavailable<'a>() -> Cell<'a> {
    Cow::Owned(Value::Unavailable)
}

/// One row to write: values aligned with [`TablePlan::columns`]
/// (`Value::Unavailable` = leave the column alone).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow<'a> {
    /// Cell values.
    pub cells: Vec<Cell<'a>>,
    /// Delete the key before writing (a delete preceded this write in the batch).
    pub delete_first: bool,
}

/// Everything a batch does to one target table.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan<'a> {
    /// Target table.
    pub target: QualifiedName,
    /// Columns (union over the batch's schema versions, first-seen order).
    pub columns: Vec<SinkColumn>,
    /// Indices of key columns in `columns` (empty: no key).
    pub key: Vec<usize>,
    /// Truncate before anything else.
    pub truncate: bool,
    /// Keys to delete (values aligned with `key`).
    pub deletes: Vec<Vec<Cell<'a>>>,
    /// Rows to write.
    pub writes: Vec<PlannedRow<'a>>,
    /// Records that contributed.
    pub records: Vec<usize>,
}

/// What one record asks for, before reduction.
#[derive(Debug)]
enum Change<'a> {
    Skip,
    Truncate(Arc<QualifiedName>),
    Write {
        target: Arc<QualifiedName>,
        columns: Arc<Vec<SinkColumn>>,
        cells: Vec<Cell<'a>>,
        key: Arc<[usize]>,
    },
    Delete {
        target: Arc<QualifiedName>,
        columns: Vec<SinkColumn>,
        key_values: Vec<Cell<'a>>,
    },
}

/// Memory of what the sink learnt about topics, for tombstones (which carry
/// neither schema nor source block).
#[derive(Debug, Default, Clone)]
pub struct TopicMemory {
    tables: HashMap<String, (Arc<QualifiedName>, Vec<SinkColumn>)>,
    /// Resolved target and columns per (schema `Arc`, topic): events of one
    /// schema version share the `Arc`, so this is computed once per version.
    shapes: HashMap<usize, Arc<Shape>>,
}

#[derive(Debug, Clone)]
struct Shape {
    /// Keeps the schema alive so its address stays unique.
    schema: Arc<TableSchema>,
    topic: String,
    target: Arc<QualifiedName>,
    columns: Arc<Vec<SinkColumn>>,
    /// `record_key` mode: the key names the key indices were computed for.
    key_names: Option<Vec<String>>,
    key: Arc<[usize]>,
    /// For each key column, the position of its value in the record key.
    key_src: Vec<Option<usize>>,
}

/// Result of planning a set of records.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Per-table plans, in first-seen order.
    pub tables: Vec<TablePlan<'a>>,
    /// Records ignored on purpose.
    pub skipped: Vec<usize>,
    /// Records that cannot be written (bad key, bad value).
    pub failed: Vec<(usize, RecordError)>,
}

fn sink_column(
    name: &str,
    pg_type: &PgType,
    optional: bool,
    default_expr: Option<String>,
    quote: bool,
) -> SinkColumn {
    SinkColumn {
        name: normalise(name, quote),
        pg_type: pg_type.clone(),
        wire: WireKind::for_type(pg_type),
        optional,
        default_expr,
    }
}

/// A type for a value whose column type is unknown (key fields that are not
/// in the value, headers).
fn type_of_value(v: &Value) -> PgType {
    match v {
        Value::Bool(_) => PgType::base(16, "bool"),
        Value::Int16(_) => PgType::base(21, "int2"),
        Value::Int32(_) => PgType::base(23, "int4"),
        Value::Int64(_) => PgType::base(20, "int8"),
        Value::Float32(_) => PgType::base(700, "float4"),
        Value::Float64(_) => PgType::base(701, "float8"),
        Value::Numeric(_) | Value::Money(_) => PgType::base(1700, "numeric"),
        Value::Bytes(_) => PgType::base(17, "bytea"),
        Value::Uuid(_) => PgType::base(2950, "uuid"),
        Value::Date(_) => PgType::base(1082, "date"),
        Value::Timestamp(_) => PgType::base(1114, "timestamp"),
        Value::TimestampTz(_) => PgType::base(1184, "timestamptz"),
        Value::Json(_) => PgType::base(3802, "jsonb"),
        _ => PgType::base(25, "text"),
    }
}

/// A reduction key: the key values in binary wire form, inline when short
/// (a single `int4`/`int8`/`uuid` key never allocates).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyBytes {
    Inline {
        len: u8,
        bytes: [u8; KeyBytes::INLINE],
    },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    const INLINE: usize = 30;

    fn new(b: &[u8]) -> Self {
        if b.len() <= Self::INLINE {
            let mut bytes = [0u8; Self::INLINE];
            bytes[..b.len()].copy_from_slice(b);
            KeyBytes::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            KeyBytes::Heap(b.into())
        }
    }
}

/// Encodes key values into `scratch` (cleared first).
fn key_bytes<'v>(
    scratch: &mut BytesMut,
    pairs: impl Iterator<Item = (&'v Value, &'v WireKind)>,
) -> Result<KeyBytes, RecordError> {
    scratch.clear();
    for (v, k) in pairs {
        if v.is_unavailable() {
            return Err(RecordError::data("key column value is unavailable"));
        }
        encode_field(scratch, v, k).map_err(|e| RecordError::data(format!("key: {}", e.0)))?;
    }
    Ok(KeyBytes::new(scratch))
}

struct Extractor<'a> {
    config: &'a SinkConfig,
    default_schema: Option<&'a str>,
    memory: &'a mut TopicMemory,
    /// The shape whose (topic → target, key) was last recorded for
    /// tombstones: records of the same shape need not record it again.
    registered: Option<Arc<Shape>>,
}

impl Extractor<'_> {
    fn target(&self, rec: &SinkRecord, table: &TableSchema) -> Arc<QualifiedName> {
        Arc::new(self.config.table_name_format.resolve(
            &rec.topic,
            &table.id.schema,
            &table.id.table,
            self.config.quote_identifiers,
            self.default_schema,
        ))
    }

    fn extract<'r>(&mut self, rec: &'r SinkRecord) -> Result<Change<'r>, RecordError> {
        let q = self.config.quote_identifiers;
        let Some(ev) = &rec.value else {
            return self.tombstone(rec);
        };
        match ev.op {
            Op::Message => return Ok(Change::Skip),
            Op::Truncate => {
                if !self.config.truncate_enabled {
                    return Ok(Change::Skip);
                }
                let target = match &ev.table {
                    Some(t) => self.target(rec, t),
                    None => Arc::new(self.config.table_name_format.resolve(
                        &rec.topic,
                        &ev.source.schema,
                        &ev.source.table,
                        q,
                        self.default_schema,
                    )),
                };
                return Ok(Change::Truncate(target));
            }
            _ => {}
        }
        let table = ev
            .table
            .as_ref()
            .ok_or_else(|| RecordError::data("change event without a table schema"))?;
        let shape_key = Arc::as_ptr(table) as usize;
        let cached: Option<Arc<Shape>> = self
            .memory
            .shapes
            .get(&shape_key)
            .filter(|s| Arc::ptr_eq(&s.schema, table) && s.topic == rec.topic)
            .cloned();
        let ncols = cached
            .as_ref()
            .map_or(table.columns.len(), |s| s.columns.len());
        let is_delete = ev.op == Op::Delete;
        let row = if is_delete {
            ev.before.as_ref()
        } else {
            ev.after.as_ref()
        };
        let mut cells: Vec<Cell<'r>> = match row {
            Some(r) => {
                let mut v = Vec::with_capacity(ncols.max(r.len()));
                v.extend(r.iter().map(Cow::Borrowed));
                v
            }
            None if is_delete => vec![unavailable(); ncols],
            None => {
                return Err(RecordError::data(format!(
                    "op {} without an after image",
                    ev.op.code()
                )))
            }
        };
        let fast = cached
            .as_ref()
            .filter(|s| self.fast_key(rec, s, &mut cells));
        let shape: Arc<Shape> = match fast {
            Some(s) => Arc::clone(s),
            None => {
                let (target, mut columns) = match &cached {
                    Some(s) => (Arc::clone(&s.target), Arc::clone(&s.columns)),
                    None => {
                        let cols: Vec<SinkColumn> = table
                            .columns
                            .iter()
                            .map(|c| {
                                sink_column(
                                    &c.name,
                                    &c.pg_type,
                                    c.optional,
                                    c.default_expr.clone(),
                                    q,
                                )
                            })
                            .collect();
                        (self.target(rec, table), Arc::new(cols))
                    }
                };
                cells.resize(columns.len(), unavailable());
                let key = self.key_columns(rec, table, &mut columns, &mut cells)?;
                if self.memory.shapes.len() > 1024 {
                    self.memory.shapes.clear();
                }
                let key_names = rec.key.as_ref().and_then(|k| k.names.clone());
                let key_src: Vec<Option<usize>> = key
                    .iter()
                    .map(|&i| {
                        key_names.as_ref().and_then(|n| {
                            n.iter().position(|n| {
                                normalise(n, self.config.quote_identifiers) == columns[i].name
                            })
                        })
                    })
                    .collect();
                let shape = Arc::new(Shape {
                    schema: Arc::clone(table),
                    topic: rec.topic.clone(),
                    target,
                    columns,
                    key_names,
                    key: key.into(),
                    key_src,
                });
                self.memory.shapes.insert(shape_key, Arc::clone(&shape));
                shape
            }
        };
        cells.resize(shape.columns.len(), unavailable());
        let (target, columns, key) = (&shape.target, &shape.columns, &shape.key);
        let same = self
            .registered
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, &shape));
        if !same {
            let known = self.memory.tables.get(&rec.topic).is_some_and(|(t, k)| {
                **t == **target
                    && k.len() == key.len()
                    && k.iter()
                        .zip(key.iter())
                        .all(|(a, &b)| a.name == columns[b].name)
            });
            if !known {
                self.memory.tables.insert(
                    rec.topic.clone(),
                    (
                        Arc::clone(target),
                        key.iter().map(|&i| columns[i].clone()).collect(),
                    ),
                );
            }
            self.registered = Some(Arc::clone(&shape));
        }
        if is_delete {
            if !self.config.delete_enabled {
                return Ok(Change::Skip);
            }
            let key_values: Vec<Cell<'r>> = key.iter().map(|&i| cells[i].clone()).collect();
            let key_cols = key.iter().map(|&i| columns[i].clone()).collect();
            return Ok(Change::Delete {
                target: Arc::clone(target),
                columns: key_cols,
                key_values,
            });
        }
        Ok(Change::Write {
            target: Arc::clone(target),
            columns: Arc::clone(columns),
            cells,
            key: Arc::clone(key),
        })
    }

    /// Fills the key cells from the shape cache, for the modes whose key
    /// columns depend only on the schema (and on the record key's field
    /// names). False when the slow path must compute the key.
    fn fast_key<'r>(&self, rec: &'r SinkRecord, s: &Shape, cells: &mut Vec<Cell<'r>>) -> bool {
        match self.config.primary_key_mode {
            PrimaryKeyMode::None | PrimaryKeyMode::RecordValue => true,
            PrimaryKeyMode::RecordKey => {
                let Some(k) = rec.key.as_ref() else {
                    return false;
                };
                if k.names.is_none() || k.names.as_ref() != s.key_names.as_ref() {
                    return false;
                }
                // All sources first (a record key shorter than expected falls back).
                if s.key_src
                    .iter()
                    .any(|src| src.is_none_or(|i| i >= k.values.len()))
                {
                    return false;
                }
                cells.resize(s.columns.len(), unavailable());
                for (&ci, src) in s.key.iter().zip(&s.key_src) {
                    let Some(i) = *src else { return false };
                    let v = &k.values[i];
                    if !v.is_null() || cells[ci].is_unavailable() {
                        cells[ci] = Cow::Borrowed(v);
                    }
                }
                true
            }
            PrimaryKeyMode::Kafka | PrimaryKeyMode::RecordHeader => false,
        }
    }

    fn tombstone<'r>(&mut self, rec: &'r SinkRecord) -> Result<Change<'r>, RecordError> {
        if !self.config.delete_enabled {
            return Ok(Change::Skip);
        }
        let Some(key) = &rec.key else {
            return Ok(Change::Skip);
        };
        let Some((target, key_cols)) = self.memory.tables.get(&rec.topic).cloned() else {
            // Debezium sends the delete event before the tombstone; a tombstone
            // for a topic this sink has not seen has nothing to delete by name.
            return Ok(Change::Skip);
        };
        if key_cols.len() != key.values.len() {
            return Ok(Change::Skip);
        }
        let values = match &key.names {
            Some(names) => key_cols
                .iter()
                .map(|c| {
                    names
                        .iter()
                        .position(|n| normalise(n, self.config.quote_identifiers) == c.name)
                        .map(|i| Cow::Borrowed(&key.values[i]))
                        .ok_or_else(|| {
                            RecordError::data(format!("tombstone key lacks field {:?}", c.name))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => key.values.iter().map(Cow::Borrowed).collect(),
        };
        Ok(Change::Delete {
            target,
            columns: key_cols,
            key_values: values,
        })
    }

    /// Finds (or appends) the key columns for the configured key mode.
    fn key_columns<'r>(
        &self,
        rec: &'r SinkRecord,
        table: &TableSchema,
        columns: &mut Arc<Vec<SinkColumn>>,
        cells: &mut Vec<Cell<'r>>,
    ) -> Result<Vec<usize>, RecordError> {
        let q = self.config.quote_identifiers;
        let fields: Vec<String> = self
            .config
            .primary_key_fields
            .iter()
            .map(|f| normalise(f, q))
            .collect();
        let find = |columns: &[SinkColumn], n: &str| columns.iter().position(|c| c.name == n);
        match self.config.primary_key_mode {
            PrimaryKeyMode::None => Ok(Vec::new()),
            PrimaryKeyMode::Kafka => {
                let extra = [
                    (
                        "__connect_topic",
                        PgType::base(25, "text"),
                        Value::Text(rec.topic.as_str().into()),
                    ),
                    (
                        "__connect_partition",
                        PgType::base(23, "int4"),
                        Value::Int32(rec.partition),
                    ),
                    (
                        "__connect_offset",
                        PgType::base(20, "int8"),
                        Value::Int64(rec.offset),
                    ),
                ];
                let mut key = Vec::new();
                for (n, t, v) in extra {
                    let i = match find(columns.as_slice(), n) {
                        Some(i) => i,
                        None => {
                            Arc::make_mut(columns).push(sink_column(n, &t, false, None, true));
                            cells.push(Cow::Owned(Value::Null));
                            columns.len() - 1
                        }
                    };
                    cells[i] = Cow::Owned(v);
                    key.push(i);
                }
                Ok(key)
            }
            PrimaryKeyMode::RecordValue => {
                if fields.is_empty() {
                    return Ok((0..table.columns.len()).collect());
                }
                fields
                    .iter()
                    .map(|f| {
                        find(columns.as_slice(), f).ok_or_else(|| {
                            RecordError::data(format!(
                                "primary.key.fields names {f:?}, which the value lacks"
                            ))
                        })
                    })
                    .collect()
            }
            PrimaryKeyMode::RecordHeader => {
                let mut key = Vec::new();
                for f in &self.config.primary_key_fields {
                    let raw = rec
                        .headers
                        .iter()
                        .find(|(n, _)| n == f)
                        .and_then(|(_, v)| v.as_ref())
                        .ok_or_else(|| {
                            RecordError::data(format!(
                                "record has no header {f:?} (primary.key.mode=record_header)"
                            ))
                        })?;
                    let text = std::str::from_utf8(raw)
                        .map_err(|_| RecordError::data(format!("header {f:?} is not UTF-8")))?;
                    let n = normalise(f, q);
                    let i = match find(columns.as_slice(), &n) {
                        Some(i) => i,
                        None => {
                            Arc::make_mut(columns).push(sink_column(
                                &n,
                                &PgType::base(25, "text"),
                                false,
                                None,
                                true,
                            ));
                            cells.push(Cow::Owned(Value::Null));
                            columns.len() - 1
                        }
                    };
                    cells[i] = Cow::Owned(Value::Text(text.into()));
                    key.push(i);
                }
                Ok(key)
            }
            PrimaryKeyMode::RecordKey => {
                let (names, values): (Vec<String>, Vec<Value>) = match &rec.key {
                    Some(k) => match &k.names {
                        Some(n) => (
                            n.iter().map(|n| normalise(n, q)).collect(),
                            k.values.clone(),
                        ),
                        None => {
                            let n: Vec<String> = table
                                .key_indices()
                                .map(|i| columns[i].name.clone())
                                .collect();
                            if n.len() != k.values.len() {
                                return Err(RecordError::data("record key has no field names and does not match the table's key columns"));
                            }
                            (n, k.values.clone())
                        }
                    },
                    None => {
                        let idx: Vec<usize> = table.key_indices().collect();
                        if idx.is_empty() {
                            return Err(RecordError::data(
                                "primary.key.mode=record_key but the record has a null key (table without primary key?)",
                            ));
                        }
                        (
                            idx.iter().map(|&i| columns[i].name.clone()).collect(),
                            idx.iter().map(|&i| cells[i].clone().into_owned()).collect(),
                        )
                    }
                };
                let wanted: Vec<String> = if fields.is_empty() {
                    names.clone()
                } else {
                    fields
                };
                let mut key = Vec::new();
                for w in wanted {
                    let kv = names
                        .iter()
                        .position(|n| *n == w)
                        .map(|i| values[i].clone());
                    let i = match find(columns.as_slice(), &w) {
                        Some(i) => i,
                        None => {
                            let v = kv.clone().ok_or_else(|| {
                                RecordError::data(format!("record key lacks field {w:?}"))
                            })?;
                            Arc::make_mut(columns).push(sink_column(
                                &w,
                                &type_of_value(&v),
                                false,
                                None,
                                true,
                            ));
                            cells.push(Cow::Owned(Value::Null));
                            columns.len() - 1
                        }
                    };
                    if let Some(v) = kv {
                        if !v.is_null() || cells[i].is_unavailable() {
                            cells[i] = Cow::Owned(v);
                        }
                    }
                    key.push(i);
                }
                Ok(key)
            }
        }
    }
}

/// A small multiply-rotate hasher for the per-batch maps (keys are short
/// encoded keys and table names; the maps live for one batch).
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        // splitmix64 finaliser: spreads high input bits into the low bits
        // hashbrown uses for bucket selection.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// How a record's columns map to plan column indices.
struct ColMap {
    /// Plan column index per record column.
    map: Vec<usize>,
    /// True when the record's columns are exactly the plan's columns.
    identity: bool,
}

/// A shared column list and its mapping to plan column indices.
type LastMapping = (Arc<Vec<SinkColumn>>, Arc<ColMap>);

struct TableAcc<'a> {
    plan: TablePlan<'a>,
    col_index: HashMap<String, usize>,
    /// key bytes → index in `writes` or delete marker
    pending: FastMap<KeyBytes, Pending>,
    /// Column mapping of the last shared column list seen.
    last: Option<LastMapping>,
    /// Reused buffer for encoding keys.
    scratch: BytesMut,
}

#[derive(Clone, Copy)]
enum Pending {
    Write(usize),
    Delete(usize),
}

impl TableAcc<'_> {
    fn new(target: QualifiedName) -> Self {
        TableAcc {
            plan: TablePlan {
                target,
                columns: Vec::new(),
                key: Vec::new(),
                truncate: false,
                deletes: Vec::new(),
                writes: Vec::new(),
                records: Vec::new(),
            },
            col_index: HashMap::new(),
            pending: FastMap::default(),
            last: None,
            scratch: BytesMut::with_capacity(64),
        }
    }

    fn map_shared(&mut self, cols: &Arc<Vec<SinkColumn>>) -> Arc<ColMap> {
        if let Some((a, m)) = &self.last {
            if Arc::ptr_eq(a, cols) {
                return Arc::clone(m);
            }
        }
        let map = self.map_columns(cols);
        let identity =
            map.len() == self.plan.columns.len() && map.iter().enumerate().all(|(i, &m)| i == m);
        let m = Arc::new(ColMap { map, identity });
        // (`identity` is re-checked against the current column count on use.)
        self.last = Some((Arc::clone(cols), Arc::clone(&m)));
        m
    }

    fn map_columns(&mut self, cols: &[SinkColumn]) -> Vec<usize> {
        cols.iter()
            .map(|c| match self.col_index.get(&c.name) {
                Some(&i) => {
                    // A newer schema version wins for the column's type.
                    self.plan.columns[i] = c.clone();
                    i
                }
                None => {
                    self.plan.columns.push(c.clone());
                    self.col_index
                        .insert(c.name.clone(), self.plan.columns.len() - 1);
                    self.plan.columns.len() - 1
                }
            })
            .collect()
    }
}

/// Plans `records[i]` for every `i` in `indices`.
pub fn plan<'r>(
    config: &SinkConfig,
    default_schema: Option<&str>,
    memory: &mut TopicMemory,
    records: &'r [SinkRecord],
    indices: &[usize],
) -> Plan<'r> {
    let mut out = Plan::default();
    let mut accs: Vec<TableAcc<'_>> = Vec::new();
    let mut by_name: FastMap<QualifiedName, usize> = FastMap::default();
    let mut last_target: Option<(Arc<QualifiedName>, usize)> = None;
    let mut ex = Extractor {
        config,
        default_schema,
        memory,
        registered: None,
    };
    for &ri in indices {
        let rec = &records[ri];
        let change = match ex.extract(rec) {
            Ok(c) => c,
            Err(e) => {
                out.failed.push((ri, e));
                continue;
            }
        };
        let target = match &change {
            Change::Skip => {
                out.skipped.push(ri);
                continue;
            }
            Change::Truncate(t)
            | Change::Write { target: t, .. }
            | Change::Delete { target: t, .. } => t,
        };
        let ai = match &last_target {
            Some((t, ai)) if Arc::ptr_eq(t, target) => *ai,
            _ => {
                let ai = match by_name.get(&**target) {
                    Some(&ai) => ai,
                    None => *by_name.entry((**target).clone()).or_insert_with(|| {
                        accs.push(TableAcc::new((**target).clone()));
                        accs.len() - 1
                    }),
                };
                last_target = Some((Arc::clone(target), ai));
                ai
            }
        };
        let target = Arc::clone(target);
        let applied = match apply(&mut accs[ai], change, config.use_reduction_buffer) {
            Ok(Some(change)) => {
                // use.reduction.buffer=false and the key is already in this
                // segment: a new segment of the table, written after it.
                accs.push(TableAcc::new((*target).clone()));
                let ai = accs.len() - 1;
                by_name.insert((*target).clone(), ai);
                last_target = Some((target, ai));
                apply(&mut accs[ai], change, false).map(|_| ai)
            }
            Ok(None) => Ok(ai),
            Err(e) => Err(e),
        };
        match applied {
            Ok(ai) => accs[ai].plan.records.push(ri),
            Err(e) => out.failed.push((ri, e)),
        }
    }
    for mut acc in accs {
        let n = acc.plan.columns.len();
        // Drop placeholder entries left by deletes that a later write absorbed
        // and by writes that a later delete replaced (before padding rows).
        acc.plan.deletes.retain(|d| !d.is_empty());
        acc.plan.writes.retain(|w| !w.cells.is_empty());
        for w in &mut acc.plan.writes {
            w.cells.resize(n, unavailable());
        }
        out.tables.push(acc.plan);
    }
    out
}

/// Applies one change to a table's pending state. Without reduction
/// (`reduce == false`), a change for a key already pending is handed back
/// untouched: the caller starts a new segment for it.
fn apply<'r>(
    acc: &mut TableAcc<'r>,
    change: Change<'r>,
    reduce: bool,
) -> Result<Option<Change<'r>>, RecordError> {
    if !reduce && !acc.pending.is_empty() {
        let kb = match &change {
            Change::Write {
                columns,
                cells,
                key,
                ..
            } if !key.is_empty() => Some(key_bytes(
                &mut acc.scratch,
                key.iter().map(|&i| (cells[i].as_ref(), &columns[i].wire)),
            )?),
            Change::Delete {
                columns,
                key_values,
                ..
            } => Some(key_bytes(
                &mut acc.scratch,
                key_values
                    .iter()
                    .map(|v| v.as_ref())
                    .zip(columns.iter().map(|c| &c.wire)),
            )?),
            _ => None,
        };
        if kb.is_some_and(|kb| acc.pending.contains_key(&kb)) {
            return Ok(Some(change));
        }
    }
    apply_reduced(acc, change).map(|()| None)
}

fn apply_reduced<'r>(acc: &mut TableAcc<'r>, change: Change<'r>) -> Result<(), RecordError> {
    match change {
        Change::Skip => Ok(()),
        Change::Truncate(_) => {
            acc.plan.truncate = true;
            acc.plan.deletes.clear();
            acc.plan.writes.clear();
            acc.pending.clear();
            Ok(())
        }
        Change::Delete {
            columns,
            key_values,
            ..
        } => {
            let map = acc.map_columns(&columns);
            set_key(acc, &map)?;
            let kb = key_bytes(
                &mut acc.scratch,
                key_values
                    .iter()
                    .map(|v| v.as_ref())
                    .zip(columns.iter().map(|c| &c.wire)),
            )?;
            if key_values.iter().any(|v| v.is_null()) {
                return Err(RecordError::data("delete without key values"));
            }
            match acc.pending.get(&kb).copied() {
                Some(Pending::Delete(_)) => {}
                Some(Pending::Write(wi)) => {
                    // Drop the write; keep a delete (the row may exist in the target).
                    acc.plan.writes[wi].cells.clear();
                    acc.plan.deletes.push(key_values);
                    acc.pending
                        .insert(kb, Pending::Delete(acc.plan.deletes.len() - 1));
                }
                None => {
                    acc.plan.deletes.push(key_values);
                    acc.pending
                        .insert(kb, Pending::Delete(acc.plan.deletes.len() - 1));
                }
            }
            Ok(())
        }
        Change::Write {
            columns,
            cells,
            key,
            ..
        } => {
            let cm = acc.map_shared(&columns);
            if !key.is_empty() {
                let same = acc.plan.key.len() == key.len()
                    && acc
                        .plan
                        .key
                        .iter()
                        .zip(key.iter())
                        .all(|(&a, &b)| a == cm.map[b]);
                if !same {
                    let key_map: Vec<usize> = key.iter().map(|&i| cm.map[i]).collect();
                    set_key(acc, &key_map)?;
                }
            }
            // The plan's column list only grows: an identity mapping stays one
            // while no other column list added columns.
            let mut row = if cm.identity && cm.map.len() == acc.plan.columns.len() {
                cells
            } else {
                let mut row = vec![unavailable(); acc.plan.columns.len()];
                for (ci, v) in cm.map.iter().zip(cells) {
                    row[*ci] = v;
                }
                row
            };
            if acc.plan.key.is_empty() {
                acc.plan.writes.push(PlannedRow {
                    cells: row,
                    delete_first: false,
                });
                return Ok(());
            }
            let kb = key_bytes(
                &mut acc.scratch,
                acc.plan
                    .key
                    .iter()
                    .map(|&i| (row[i].as_ref(), &acc.plan.columns[i].wire)),
            )?;
            match acc.pending.get(&kb).copied() {
                Some(Pending::Write(wi)) => {
                    let prev = &mut acc.plan.writes[wi];
                    prev.cells.resize(row.len(), unavailable());
                    for (new, old) in row.iter_mut().zip(prev.cells.iter()) {
                        if new.is_unavailable() {
                            *new = old.clone();
                        }
                    }
                    prev.cells = row;
                }
                Some(Pending::Delete(di)) => {
                    acc.plan.deletes[di].clear();
                    acc.plan.writes.push(PlannedRow {
                        cells: row,
                        delete_first: true,
                    });
                    acc.pending
                        .insert(kb, Pending::Write(acc.plan.writes.len() - 1));
                }
                None => {
                    acc.plan.writes.push(PlannedRow {
                        cells: row,
                        delete_first: false,
                    });
                    acc.pending
                        .insert(kb, Pending::Write(acc.plan.writes.len() - 1));
                }
            }
            Ok(())
        }
    }
}

fn set_key(acc: &mut TableAcc<'_>, key: &[usize]) -> Result<(), RecordError> {
    if acc.plan.key.is_empty() {
        acc.plan.key = key.to_vec();
        return Ok(());
    }
    if acc.plan.key != key {
        return Err(RecordError::connect(format!(
            "the key columns of {} changed within the batch",
            acc.plan.target
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_envelope::{ChangeEvent, Column, Position, SourceInfo, TableId};

    fn cfg() -> SinkConfig {
        SinkConfig::from_pairs([
            ("connection.url", "jdbc:postgresql://h:1/d"),
            ("connection.username", "u"),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("delete.enabled", "true"),
            ("truncate.enabled", "true"),
        ])
        .expect("config")
    }

    fn schema() -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId::new("public", "t"),
            relation_oid: 0,
            columns: vec![
                Column {
                    is_key: true,
                    optional: false,
                    ..Column::new("id", PgType::base(23, "int4"))
                },
                Column::new("a", PgType::base(25, "text")),
                Column::new("b", PgType::base(25, "text")),
            ],
            version: 1,
        })
    }

    fn rec(
        op: Op,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        offset: i64,
    ) -> SinkRecord {
        let ev = ChangeEvent {
            op,
            table: Some(schema()),
            before,
            after,
            source: SourceInfo {
                schema: "public".into(),
                table: "t".into(),
                ..SourceInfo::default()
            },
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Position::default(),
            key_change: None,
        };
        SinkRecord::from_event("topic", 0, offset, ev)
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn without_reduction_a_repeated_key_starts_a_new_segment() {
        let mut c = cfg();
        c.use_reduction_buffer = false;
        let r = [
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(1), t("a"), t("b")]),
                0,
            ),
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(2), t("a"), t("b")]),
                1,
            ),
            rec(
                Op::Update,
                None,
                Some(vec![Value::Int32(1), t("a2"), Value::Unavailable]),
                2,
            ),
            rec(
                Op::Delete,
                Some(vec![Value::Int32(2), Value::Null, Value::Null]),
                None,
                3,
            ),
            rec(
                Op::Update,
                None,
                Some(vec![Value::Int32(3), t("c"), t("d")]),
                4,
            ),
        ];
        let all: Vec<usize> = (0..r.len()).collect();
        let p = plan(&c, None, &mut TopicMemory::default(), &r, &all);
        assert!(p.failed.is_empty());
        // [1, 2] then [1', delete 2, 3]: record order is kept.
        assert_eq!(p.tables.len(), 2);
        assert_eq!(p.tables[0].records, vec![0, 1]);
        assert_eq!(p.tables[1].records, vec![2, 3, 4]);
        assert_eq!(p.tables[1].writes.len(), 2);
        assert_eq!(p.tables[1].writes[0].cells[2].as_ref(), &Value::Unavailable);
        assert_eq!(p.tables[1].deletes.len(), 1);
        // With reduction: one segment, key 1 merged, key 2 only deleted.
        let p = run(&r);
        assert_eq!(p.tables.len(), 1);
        assert_eq!(p.tables[0].writes.len(), 2);
        assert_eq!(p.tables[0].writes[0].cells[2].as_ref(), &t("b"));
    }

    fn run(records: &[SinkRecord]) -> Plan<'_> {
        let all: Vec<usize> = (0..records.len()).collect();
        plan(&cfg(), None, &mut TopicMemory::default(), records, &all)
    }

    #[test]
    fn toast_merge_keeps_earlier_values_and_leaves_unknown_ones_unavailable() {
        let r = [
            rec(
                Op::Update,
                None,
                Some(vec![Value::Int32(1), t("a1"), Value::Unavailable]),
                0,
            ),
            rec(
                Op::Update,
                None,
                Some(vec![
                    Value::Int32(1),
                    Value::Unavailable,
                    Value::Unavailable,
                ]),
                1,
            ),
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(2), t("x"), t("y")]),
                2,
            ),
            rec(
                Op::Update,
                None,
                Some(vec![Value::Int32(2), t("x2"), Value::Unavailable]),
                3,
            ),
        ];
        let p = run(&r);
        assert!(p.failed.is_empty());
        let w = &p.tables[0].writes;
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[0].cells
                .iter()
                .map(|c| c.as_ref().clone())
                .collect::<Vec<_>>(),
            vec![Value::Int32(1), t("a1"), Value::Unavailable]
        );
        assert_eq!(
            w[1].cells
                .iter()
                .map(|c| c.as_ref().clone())
                .collect::<Vec<_>>(),
            vec![Value::Int32(2), t("x2"), t("y")]
        );
    }

    #[test]
    fn delete_then_write_deletes_first_and_write_then_delete_only_deletes() {
        let key = |id| Some(vec![Value::Int32(id), Value::Null, Value::Null]);
        let r = [
            rec(Op::Delete, key(1), None, 0),
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(1), t("a"), t("b")]),
                1,
            ),
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(2), t("a"), t("b")]),
                2,
            ),
            rec(Op::Delete, key(2), None, 3),
        ];
        let p = run(&r);
        let tp = &p.tables[0];
        assert_eq!(tp.writes.len(), 1);
        assert!(tp.writes[0].delete_first);
        assert_eq!(tp.deletes.len(), 1);
        assert_eq!(tp.deletes[0][0].as_ref(), &Value::Int32(2));
    }

    #[test]
    fn truncate_drops_what_came_before_it() {
        let mut tr = rec(Op::Truncate, None, None, 1);
        if let Some(ev) = tr.value.as_mut() {
            ev.table = None;
        }
        let r = [
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(1), t("a"), t("b")]),
                0,
            ),
            tr,
            rec(
                Op::Create,
                None,
                Some(vec![Value::Int32(2), t("a"), t("b")]),
                2,
            ),
        ];
        let p = run(&r);
        let tp = &p.tables[0];
        assert!(tp.truncate);
        assert_eq!(tp.writes.len(), 1);
        assert_eq!(tp.writes[0].cells[0].as_ref(), &Value::Int32(2));
    }

    #[test]
    fn messages_are_skipped_and_missing_after_fails() {
        let r = [
            rec(Op::Message, None, None, 0),
            rec(Op::Create, None, None, 1),
        ];
        let p = run(&r);
        assert_eq!(p.skipped, vec![0]);
        assert_eq!(p.failed.len(), 1);
        assert_eq!(p.failed[0].0, 1);
    }
}
