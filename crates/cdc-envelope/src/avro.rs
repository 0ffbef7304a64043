//! Avro: schemas as Confluent's `AvroData` derives them from Debezium's
//! Connect schemas, datum encoding straight to bytes, the Confluent wire
//! format, and decoding back to [`ChangeEvent`]s.
//!
//! Schema rules (AvroData with `connect.meta.data=true`):
//! * struct → `record`, name/namespace split at the last `.` of the Connect
//!   name (`pgsource.public.employees.Value` → namespace
//!   `pgsource.public.employees`, name `Value`); a named type used twice is
//!   referenced by its full name the second time;
//! * optional → union `["null", T]` with field default `null`, or
//!   `[T, "null"]` with the Connect default when there is one;
//! * `int8`/`int16` → `int` + `"connect.type"`; Connect `Decimal` → `bytes`
//!   with `logicalType: decimal`, `precision` (`connect.decimal.precision`,
//!   64 when absent) and `scale`; Connect `Date`/`Time`/`Timestamp` → `date`,
//!   `time-millis`, `timestamp-millis`; Debezium's own semantic types keep
//!   only `connect.name`;
//! * metadata props `connect.doc`, `connect.version`, `connect.parameters`,
//!   `connect.default`, `connect.name`.
//!
//! Names that are not valid Avro names get invalid characters replaced by
//! `_` (Debezium's `avro` name adjustment).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;

use crate::connect::{
    self, Codec, ConnectSchema, ConnectType, Datum, Field, IntFast, Prim, TextFast,
};
use crate::envelope::{self, CachedPlan, PlanCache, TablePlan};
use crate::error::{Error, Path, Result};
use crate::event::{
    ChangeEvent, LogicalMessage, Op, Position, Row, SnapshotMarker, SourceField, SourceInfo,
    TransactionBlock,
};
use crate::intern::StrCache;
use crate::json::lift;
use crate::options::Options;
use crate::recycle::{self, SourceMemo, Spare};
use crate::schema::{Column, TableId, TableSchema};
use crate::value::{Str, Value};

/// The Confluent wire-format magic byte.
pub const MAGIC_BYTE: u8 = 0;

/// Appends the Confluent header: magic byte 0 and the 4-byte big-endian schema id.
pub fn write_confluent_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a Confluent-framed message into schema id and Avro datum.
pub fn split_confluent(bytes: &[u8]) -> Result<(u32, &[u8])> {
    match bytes {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != MAGIC_BYTE => Err(Error::InvalidAvro {
            offset: 0,
            reason: format!("unknown magic byte {m} (expected 0)"),
        }),
        _ => Err(Error::InvalidAvro {
            offset: 0,
            reason: "shorter than the 5-byte Confluent header".into(),
        }),
    }
}

// ------------------------------------------------------------- schema out

fn avro_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric() || c == '_';
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if ok { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn split_name(full: &str) -> (Option<String>, String) {
    match full.rsplit_once('.') {
        Some((ns, n)) => {
            let ns: Vec<String> = ns.split('.').map(avro_name).collect();
            (Some(ns.join(".")), avro_name(n))
        }
        None => (None, avro_name(full)),
    }
}

fn full_name(full: &str) -> String {
    match split_name(full) {
        (Some(ns), n) => format!("{ns}.{n}"),
        (None, n) => n,
    }
}

/// The Avro JSON default of a Connect datum (bytes as ISO-8859-1 strings).
fn avro_default(s: &ConnectSchema, d: &Datum) -> Json {
    match d {
        Datum::Null => Json::Null,
        Datum::Bool(b) => Json::Bool(*b),
        Datum::Int(i) => Json::from(*i),
        Datum::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Datum::String(t) => Json::String(t.clone()),
        Datum::Bytes(b) => Json::String(b.iter().map(|c| char::from(*c)).collect()),
        Datum::Array(items) => {
            let is = s
                .items
                .as_deref()
                .cloned()
                .unwrap_or_else(|| ConnectSchema::new(ConnectType::String));
            Json::Array(items.iter().map(|i| avro_default(&is, i)).collect())
        }
        Datum::Map(entries) => {
            let vs = s
                .items
                .as_deref()
                .cloned()
                .unwrap_or_else(|| ConnectSchema::new(ConnectType::String));
            Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let k = match k {
                            Datum::String(k) => k.clone(),
                            other => format!("{other:?}"),
                        };
                        (k, avro_default(&vs, v))
                    })
                    .collect(),
            )
        }
        Datum::Struct(values) => Json::Object(
            s.fields
                .iter()
                .zip(values)
                .map(|(f, v)| (f.name.clone(), avro_default(&f.schema, v)))
                .collect(),
        ),
    }
}

struct SchemaWriter {
    defined: HashSet<String>,
}

impl SchemaWriter {
    /// The Avro schema of a Connect schema, ignoring optionality.
    fn base(&mut self, s: &ConnectSchema) -> Json {
        use ConnectType as T;
        let mut o = serde_json::Map::new();
        let name = s.name.as_deref();
        let mut connect_type = None;
        match s.ty {
            T::Struct => {
                let full = name.map_or_else(
                    || "io.confluent.connect.avro.ConnectDefault".to_owned(),
                    full_name,
                );
                if self.defined.contains(&full) {
                    return Json::String(full);
                }
                self.defined.insert(full.clone());
                let (ns, n) =
                    split_name(name.unwrap_or("io.confluent.connect.avro.ConnectDefault"));
                o.insert("type".into(), "record".into());
                o.insert("name".into(), n.into());
                if let Some(ns) = ns {
                    o.insert("namespace".into(), ns.into());
                }
                let fields: Vec<Json> = s.fields.iter().map(|f| self.field(f)).collect();
                o.insert("fields".into(), Json::Array(fields));
            }
            T::Array => {
                let items = s
                    .items
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| ConnectSchema::new(T::String));
                o.insert("type".into(), "array".into());
                o.insert("items".into(), self.schema(&items));
            }
            T::Map => {
                let values = s
                    .items
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| ConnectSchema::new(T::String));
                o.insert("type".into(), "map".into());
                o.insert("values".into(), self.schema(&values));
            }
            T::Int8 | T::Int16 => {
                o.insert("type".into(), "int".into());
                connect_type = Some(if s.ty == T::Int8 { "int8" } else { "int16" });
            }
            T::Int32 => {
                o.insert("type".into(), "int".into());
            }
            T::Int64 => {
                o.insert("type".into(), "long".into());
            }
            T::Float32 => {
                o.insert("type".into(), "float".into());
            }
            T::Float64 => {
                o.insert("type".into(), "double".into());
            }
            T::Boolean => {
                o.insert("type".into(), "boolean".into());
            }
            T::String => {
                o.insert("type".into(), "string".into());
            }
            T::Bytes => {
                o.insert("type".into(), "bytes".into());
                if name == Some(connect::names::DECIMAL) {
                    let scale = s
                        .parameter("scale")
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0);
                    let precision = s
                        .parameter("connect.decimal.precision")
                        .and_then(|v| v.parse::<i64>().ok())
                        .filter(|p| *p > 0)
                        .unwrap_or(64);
                    o.insert("scale".into(), scale.into());
                    o.insert("precision".into(), precision.into());
                }
            }
        }
        if let Some(d) = &s.doc {
            o.insert("connect.doc".into(), d.clone().into());
        }
        if let Some(v) = s.version {
            o.insert("connect.version".into(), v.into());
        }
        if !s.parameters.is_empty() {
            let params: serde_json::Map<String, Json> = s
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect();
            o.insert("connect.parameters".into(), Json::Object(params));
        }
        if let Some(d) = &s.default {
            o.insert("connect.default".into(), avro_default(s, d));
        }
        if let Some(n) = name {
            o.insert("connect.name".into(), n.into());
        }
        if let Some(ct) = connect_type {
            o.insert("connect.type".into(), ct.into());
        }
        match name {
            Some(connect::names::DECIMAL) => {
                o.insert("logicalType".into(), "decimal".into());
            }
            Some(connect::names::CONNECT_DATE) => {
                o.insert("logicalType".into(), "date".into());
            }
            Some(connect::names::CONNECT_TIME) => {
                o.insert("logicalType".into(), "time-millis".into());
            }
            Some(connect::names::CONNECT_TIMESTAMP) => {
                o.insert("logicalType".into(), "timestamp-millis".into());
            }
            _ => {}
        }
        Json::Object(o)
    }

    fn schema(&mut self, s: &ConnectSchema) -> Json {
        let base = self.base(s);
        if !s.optional {
            return base;
        }
        if s.default.is_some() {
            Json::Array(vec![base, "null".into()])
        } else {
            Json::Array(vec!["null".into(), base])
        }
    }

    fn field(&mut self, f: &Field) -> Json {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), avro_name(&f.name).into());
        o.insert("type".into(), self.schema(&f.schema));
        if let Some(d) = &f.schema.default {
            o.insert("default".into(), avro_default(&f.schema, d));
        } else if f.schema.optional {
            o.insert("default".into(), Json::Null);
        }
        Json::Object(o)
    }
}

/// The Avro schema (JSON text) AvroData derives from a Connect schema.
pub fn avro_schema_json(s: &ConnectSchema) -> String {
    let mut w = SchemaWriter {
        defined: HashSet::new(),
    };
    w.schema(s).to_string()
}

// ------------------------------------------------------------- datum out

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    zigzag(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Union branch indices of an optional schema: (null, value).
fn union_layout(s: &ConnectSchema) -> Option<(i64, i64)> {
    if !s.optional {
        None
    } else if s.default.is_some() {
        Some((1, 0))
    } else {
        Some((0, 1))
    }
}

fn write_prim(
    out: &mut Vec<u8>,
    s: &ConnectSchema,
    codec: &Codec,
    p: &Prim<'_>,
    column: &str,
    options: &Options,
) -> Result<()> {
    if let Some((null_idx, val_idx)) = union_layout(s) {
        if matches!(p, Prim::Null) {
            zigzag(out, null_idx);
            return Ok(());
        }
        zigzag(out, val_idx);
    } else if matches!(p, Prim::Null) {
        return Err(Error::Unrepresentable {
            column: column.to_owned(),
            reason: "null in a required field".into(),
        });
    }
    let bad = |p: &Prim<'_>| Error::Unrepresentable {
        column: column.to_owned(),
        reason: format!(
            "a {} cannot be written as Avro {}",
            p.kind_name(),
            s.ty.as_str()
        ),
    };
    use ConnectType as T;
    match (s.ty, p) {
        (T::Boolean, Prim::Bool(b)) => out.push(u8::from(*b)),
        (T::Int8 | T::Int16 | T::Int32 | T::Int64, Prim::Int(i)) => zigzag(out, *i),
        (T::Float32, Prim::F32(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (T::Float32, Prim::F64(f)) => out.extend_from_slice(&(*f as f32).to_le_bytes()),
        (T::Float64, Prim::F64(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (T::Float64, Prim::F32(f)) => out.extend_from_slice(&f64::from(*f).to_le_bytes()),
        (T::String, Prim::Str(v)) => write_bytes(out, v.as_bytes()),
        (T::Bytes, Prim::Bytes(b)) => write_bytes(out, b),
        (T::Struct, Prim::VarDecimal { scale, unscaled }) => {
            zigzag(out, i64::from(*scale));
            write_bytes(out, unscaled);
        }
        (T::Array, Prim::Array(values)) => {
            let is = s.items.as_deref().ok_or_else(|| bad(p))?;
            let ec = match codec {
                Codec::Array(e) => e.as_ref(),
                other => other,
            };
            if !values.is_empty() {
                zigzag(out, values.len() as i64);
                for v in values.iter() {
                    let ep = ec.lower(v, column, options)?;
                    write_prim(out, is, ec, &ep, column, options)?;
                }
            }
            out.push(0);
        }
        (T::Array, Prim::Owned(items)) => {
            let is = s.items.as_deref().ok_or_else(|| bad(p))?;
            let ec = match codec {
                Codec::Array(e) => e.as_ref(),
                other => other,
            };
            if !items.is_empty() {
                zigzag(out, items.len() as i64);
                for it in items {
                    write_prim(out, is, ec, it, column, options)?;
                }
            }
            out.push(0);
        }
        (T::Map, Prim::Map(entries)) => {
            if !entries.is_empty() {
                zigzag(out, entries.len() as i64);
                for (k, v) in entries {
                    write_bytes(out, k.as_bytes());
                    match v {
                        Some(v) => {
                            zigzag(out, 1);
                            write_bytes(out, v.as_bytes());
                        }
                        None => zigzag(out, 0),
                    }
                }
            }
            out.push(0);
        }
        _ => return Err(bad(p)),
    }
    Ok(())
}

/// The common (codec, value) pairs written directly; `false` when the
/// general path must handle the value (nulls, defaults, placeholders...).
#[inline]
fn fast_avro(out: &mut Vec<u8>, col: &crate::envelope::ColumnPlan, v: &Value) -> bool {
    use crate::value::{Date, Numeric, Timestamp};
    let branch = |out: &mut Vec<u8>| {
        if let Some((_, value_idx)) = union_layout(&col.schema) {
            zigzag(out, value_idx);
        }
    };
    match (&col.codec, v) {
        (Codec::Int, Value::Int32(i)) => {
            branch(out);
            zigzag(out, i64::from(*i));
        }
        (Codec::Int, Value::Int64(i)) => {
            branch(out);
            zigzag(out, *i);
        }
        (Codec::String, Value::Text(s)) => {
            branch(out);
            write_bytes(out, s.as_bytes());
        }
        (Codec::String, Value::Numeric(Numeric::Finite(d))) => {
            branch(out);
            write_bytes(out, d.as_bytes());
        }
        (Codec::DateDays, Value::Date(Date::Days(d))) => {
            branch(out);
            zigzag(out, i64::from(*d));
        }
        // Values outside i64 µs since 1970 take the general path, which
        // reports them as unrepresentable.
        (Codec::TimestampMillis, Value::Timestamp(t @ Timestamp::PgMicros(_))) => {
            let Some(m) = t.micros_since_unix() else {
                return false;
            };
            branch(out);
            zigzag(out, m.div_euclid(1000));
        }
        (Codec::TimestampMicros, Value::Timestamp(t @ Timestamp::PgMicros(_))) => {
            let Some(m) = t.micros_since_unix() else {
                return false;
            };
            branch(out);
            zigzag(out, m);
        }
        _ => return false,
    }
    true
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

fn write_opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            zigzag(out, 1);
            write_string(out, s);
        }
        None => zigzag(out, 0),
    }
}

fn write_opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            zigzag(out, 1);
            zigzag(out, v);
        }
        None => zigzag(out, 0),
    }
}

fn write_source(out: &mut Vec<u8>, s: &SourceInfo) {
    write_string(out, &s.version);
    write_string(out, &s.connector);
    write_string(out, &s.name);
    zigzag(out, s.ts_us.div_euclid(1000));
    // snapshot: ["string","null"] (has a default) → branch 0.
    zigzag(out, 0);
    write_string(out, s.snapshot.as_str());
    write_string(out, &s.db);
    write_opt_string(out, s.sequence.as_deref());
    write_opt_long(out, Some(s.ts_us));
    write_opt_long(out, Some(s.ts_us.saturating_mul(1000)));
    write_string(out, &s.schema);
    write_string(out, &s.table);
    write_opt_long(out, s.tx_id);
    write_opt_long(out, s.lsn);
    write_opt_long(out, s.xmin);
    write_opt_string(out, s.origin.as_deref());
    write_opt_long(out, s.origin_lsn);
}

fn write_transaction(out: &mut Vec<u8>, t: Option<&TransactionBlock>) {
    match t {
        None => zigzag(out, 0),
        Some(t) => {
            zigzag(out, 1);
            write_string(out, &t.id);
            zigzag(out, t.total_order);
            zigzag(out, t.data_collection_order);
        }
    }
}

#[derive(Debug)]
struct AvroPlan {
    plan: TablePlan,
    key_schema: Option<Arc<str>>,
    value_schema: Arc<str>,
}

impl CachedPlan for AvroPlan {
    fn table_plan(&self) -> &TablePlan {
        &self.plan
    }
}

/// Encodes [`ChangeEvent`]s as Avro datums (optionally Confluent-framed),
/// caching the Avro schemas per (table id, schema version).
#[derive(Debug)]
pub struct AvroEncoder {
    options: Options,
    plans: PlanCache<AvroPlan>,
    message_key_schema: Arc<str>,
    message_value_schema: Arc<str>,
}

impl AvroEncoder {
    /// An encoder for these options.
    pub fn new(options: Options) -> Self {
        Self {
            options,
            plans: PlanCache::default(),
            message_key_schema: avro_schema_json(&envelope::message_key_schema()).into(),
            message_value_schema: avro_schema_json(&envelope::message_value_schema()).into(),
        }
    }

    fn avro_plan(&mut self, table: &Arc<TableSchema>) -> Arc<AvroPlan> {
        let build = |plan: TablePlan| {
            let key_schema = plan
                .key_schema
                .as_ref()
                .map(|k| Arc::from(avro_schema_json(k)));
            let value_schema = Arc::from(avro_schema_json(&plan.envelope_schema));
            AvroPlan {
                plan,
                key_schema,
                value_schema,
            }
        };
        self.plans.get_or_build(table, build, &self.options)
    }

    /// The Avro schemas (key, value) of the records of this event, to
    /// register under `<topic>-key` / `<topic>-value`. The key schema is
    /// `None` when the key is null.
    pub fn schemas(&mut self, ev: &ChangeEvent) -> Result<(Option<Arc<str>>, Arc<str>)> {
        if ev.op == Op::Message {
            return Ok((
                Some(Arc::clone(&self.message_key_schema)),
                Arc::clone(&self.message_value_schema),
            ));
        }
        let table = ev.table.as_ref().ok_or_else(|| Error::InvalidEvent {
            reason: "event without table".into(),
        })?;
        let p = self.avro_plan(table);
        let key = if ev.op == Op::Truncate {
            None
        } else {
            p.key_schema.clone()
        };
        Ok((key, Arc::clone(&p.value_schema)))
    }

    /// Writes the key datum. Returns `false` (nothing written) for a null key.
    pub fn encode_key_into(&mut self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<bool> {
        if ev.op == Op::Message {
            let msg = ev.message.as_ref().ok_or_else(|| Error::InvalidEvent {
                reason: "op m without message".into(),
            })?;
            write_opt_string(out, Some(&msg.prefix));
            return Ok(true);
        }
        if ev.op == Op::Truncate {
            return Ok(false);
        }
        let table = ev.table.as_ref().ok_or_else(|| Error::InvalidEvent {
            reason: "event without table".into(),
        })?;
        let p = self.avro_plan(table);
        let plan = &p.plan;
        if plan.key_indices.is_empty() {
            return Ok(false);
        }
        let row = plan.key_row(ev).ok_or_else(|| Error::InvalidEvent {
            reason: "event without row".into(),
        })?;
        plan.check_row(row)?;
        for &i in &plan.key_indices {
            let (Some(v), Some(col)) = (row.get(i), plan.columns.get(i)) else {
                continue;
            };
            let prim = plan.cell(i, v, &self.options)?;
            write_prim(
                out,
                &col.schema,
                &col.codec,
                &prim,
                &col.name,
                &self.options,
            )?;
        }
        Ok(true)
    }

    /// Writes the value datum (the envelope).
    pub fn encode_value_into(&mut self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<()> {
        if ev.op == Op::Message {
            let msg = ev.message.as_ref().ok_or_else(|| Error::InvalidEvent {
                reason: "op m without message".into(),
            })?;
            write_string(out, "m");
            write_opt_long(out, Some(ev.ts_ns.div_euclid(1_000_000)));
            write_source(out, &ev.source);
            write_transaction(out, ev.transaction.as_ref());
            write_opt_string(out, Some(&msg.prefix));
            zigzag(out, 1);
            write_bytes(out, &msg.content);
            return Ok(());
        }
        let table = ev.table.as_ref().ok_or_else(|| Error::InvalidEvent {
            reason: "event without table".into(),
        })?;
        let p = self.avro_plan(table);
        let plan = &p.plan;
        for row in [ev.before.as_ref(), ev.after.as_ref()] {
            match row {
                None => zigzag(out, 0),
                Some(row) => {
                    plan.check_row(row)?;
                    zigzag(out, 1);
                    for (i, (v, col)) in row.iter().zip(&plan.columns).enumerate() {
                        if fast_avro(out, col, v) {
                            continue;
                        }
                        let prim = plan.cell(i, v, &self.options)?;
                        write_prim(
                            out,
                            &col.schema,
                            &col.codec,
                            &prim,
                            &col.name,
                            &self.options,
                        )?;
                    }
                }
            }
        }
        write_source(out, &ev.source);
        write_transaction(out, ev.transaction.as_ref());
        write_string(out, ev.op.code());
        write_opt_long(out, Some(ev.ts_ns.div_euclid(1_000_000)));
        write_opt_long(out, Some(ev.ts_ns.div_euclid(1_000)));
        write_opt_long(out, Some(ev.ts_ns));
        Ok(())
    }

    /// Writes a Confluent-framed value: header with `schema_id`, then the datum.
    pub fn encode_value_framed(
        &mut self,
        ev: &ChangeEvent,
        schema_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        write_confluent_header(schema_id, out);
        self.encode_value_into(ev, out)
    }

    /// Writes a Confluent-framed key; `false` (nothing written) for a null key.
    pub fn encode_key_framed(
        &mut self,
        ev: &ChangeEvent,
        schema_id: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let start = out.len();
        write_confluent_header(schema_id, out);
        if self.encode_key_into(ev, out)? {
            Ok(true)
        } else {
            out.truncate(start);
            Ok(false)
        }
    }
}

// ------------------------------------------------------------- schema in

/// A parsed Avro schema node.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<String>),
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Record(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct RecordDef {
    full_name: String,
    fields: Vec<(String, Node, Option<Json>)>,
    props: serde_json::Map<String, Json>,
}

#[derive(Default)]
struct Parsed {
    records: Vec<RecordDef>,
    names: HashMap<String, Node>,
}

fn schema_err(path: &Path, expected: &str, found: &Json) -> Error {
    let mut f = found.to_string();
    f.truncate(80);
    Error::schema(path, expected, f)
}

impl Parsed {
    fn node(&mut self, j: &Json, ns: Option<&str>, path: &Path, depth: usize) -> Result<Node> {
        if depth > 64 {
            return Err(Error::schema(
                path,
                "a schema nested at most 64 deep",
                "deeper",
            ));
        }
        match j {
            Json::String(s) => self.named(s, ns, path),
            Json::Array(branches) => {
                let mut out = Vec::with_capacity(branches.len());
                for (i, b) in branches.iter().enumerate() {
                    out.push(self.node(b, ns, &path.join(&i.to_string()), depth + 1)?);
                }
                Ok(Node::Union(out))
            }
            Json::Object(o) => {
                let ty = o
                    .get("type")
                    .ok_or_else(|| schema_err(path, "a \"type\"", j))?;
                let ty_s = match ty {
                    Json::String(s) => s.as_str(),
                    other => return self.node(other, ns, path, depth + 1),
                };
                match ty_s {
                    "record" | "error" => {
                        let name = o
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or_else(|| schema_err(path, "a record name", j))?;
                        let own_ns = o.get("namespace").and_then(Json::as_str).or(ns);
                        let full = if name.contains('.') {
                            name.to_owned()
                        } else {
                            match own_ns {
                                Some(n) if !n.is_empty() => format!("{n}.{name}"),
                                _ => name.to_owned(),
                            }
                        };
                        let idx = self.records.len();
                        self.records.push(RecordDef {
                            full_name: full.clone(),
                            fields: Vec::new(),
                            props: o.clone(),
                        });
                        self.names.insert(full.clone(), Node::Record(idx));
                        let child_ns = full.rsplit_once('.').map(|(n, _)| n.to_owned());
                        let fields = o
                            .get("fields")
                            .and_then(Json::as_array)
                            .ok_or_else(|| schema_err(path, "record fields", j))?;
                        let mut out = Vec::with_capacity(fields.len());
                        for f in fields {
                            let fname = f
                                .get("name")
                                .and_then(Json::as_str)
                                .ok_or_else(|| schema_err(path, "a field name", f))?;
                            let ft = f
                                .get("type")
                                .ok_or_else(|| schema_err(path, "a field type", f))?;
                            let node =
                                self.node(ft, child_ns.as_deref(), &path.join(fname), depth + 1)?;
                            out.push((fname.to_owned(), node, f.get("default").cloned()));
                        }
                        if let Some(r) = self.records.get_mut(idx) {
                            r.fields = out;
                        }
                        Ok(Node::Record(idx))
                    }
                    "array" => {
                        let items = o
                            .get("items")
                            .ok_or_else(|| schema_err(path, "array items", j))?;
                        Ok(Node::Array(Box::new(self.node(
                            items,
                            ns,
                            &path.join("items"),
                            depth + 1,
                        )?)))
                    }
                    "map" => {
                        let values = o
                            .get("values")
                            .ok_or_else(|| schema_err(path, "map values", j))?;
                        Ok(Node::Map(Box::new(self.node(
                            values,
                            ns,
                            &path.join("values"),
                            depth + 1,
                        )?)))
                    }
                    "enum" => {
                        let symbols = o
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or_else(|| schema_err(path, "enum symbols", j))?
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect();
                        if let Some(n) = o.get("name").and_then(Json::as_str) {
                            self.names.insert(n.to_owned(), Node::Enum(Vec::new()));
                        }
                        Ok(Node::Enum(symbols))
                    }
                    "fixed" => {
                        let size = o
                            .get("size")
                            .and_then(Json::as_u64)
                            .ok_or_else(|| schema_err(path, "fixed size", j))?;
                        Ok(Node::Fixed(usize::try_from(size).unwrap_or(usize::MAX)))
                    }
                    prim => self.named(prim, ns, path),
                }
            }
            other => Err(schema_err(path, "an Avro schema", other)),
        }
    }

    fn named(&mut self, s: &str, ns: Option<&str>, path: &Path) -> Result<Node> {
        Ok(match s {
            "null" => Node::Null,
            "boolean" => Node::Boolean,
            "int" => Node::Int,
            "long" => Node::Long,
            "float" => Node::Float,
            "double" => Node::Double,
            "bytes" => Node::Bytes,
            "string" => Node::String,
            name => {
                let qualified = ns.map(|n| format!("{n}.{name}"));
                match qualified
                    .as_ref()
                    .and_then(|q| self.names.get(q))
                    .or_else(|| self.names.get(name))
                {
                    Some(n) => n.clone(),
                    None => return Err(Error::schema(path, "a known type name", name)),
                }
            }
        })
    }
}

fn props_of(j: &Json) -> Option<&serde_json::Map<String, Json>> {
    match j {
        Json::Object(o) => Some(o),
        _ => None,
    }
}

/// Reconstructs the Connect schema of an Avro node (AvroData's `toConnectSchema`).
fn connect_of(
    p: &Parsed,
    node: &Node,
    json: &Json,
    path: &Path,
    depth: usize,
) -> Result<ConnectSchema> {
    if depth > 64 {
        return Err(Error::schema(
            path,
            "a schema nested at most 64 deep",
            "deeper",
        ));
    }
    use ConnectType as T;
    let props = props_of(json);
    let mut s = match node {
        Node::Union(branches) => {
            let non_null: Vec<(usize, &Node)> = branches
                .iter()
                .enumerate()
                .filter(|(_, b)| **b != Node::Null)
                .collect();
            let [(i, inner)] = non_null.as_slice() else {
                return Err(Error::schema(
                    path,
                    "a union of null and one type",
                    format!("{} branches", branches.len()),
                ));
            };
            let inner_json = json
                .as_array()
                .and_then(|a| a.get(*i))
                .cloned()
                .unwrap_or(Json::Null);
            let mut s = connect_of(p, inner, &inner_json, path, depth + 1)?;
            s.optional = branches.len() > 1;
            return Ok(s);
        }
        Node::Null => return Err(Error::schema(path, "a non-null type", "null")),
        Node::Boolean => ConnectSchema::new(T::Boolean),
        Node::Int => match props
            .and_then(|o| o.get("connect.type"))
            .and_then(Json::as_str)
        {
            Some("int8") => ConnectSchema::new(T::Int8),
            Some("int16") => ConnectSchema::new(T::Int16),
            _ => ConnectSchema::new(T::Int32),
        },
        Node::Long => ConnectSchema::new(T::Int64),
        Node::Float => ConnectSchema::new(T::Float32),
        Node::Double => ConnectSchema::new(T::Float64),
        Node::Bytes | Node::Fixed(_) => ConnectSchema::new(T::Bytes),
        Node::String | Node::Enum(_) => ConnectSchema::new(T::String),
        Node::Array(items) => {
            let ij = props
                .and_then(|o| o.get("items"))
                .cloned()
                .unwrap_or(Json::Null);
            ConnectSchema::array(connect_of(p, items, &ij, &path.join("items"), depth + 1)?)
        }
        Node::Map(values) => {
            let vj = props
                .and_then(|o| o.get("values"))
                .cloned()
                .unwrap_or(Json::Null);
            let mut m = ConnectSchema::new(T::Map);
            m.keys = Some(Box::new(ConnectSchema::new(T::String)));
            m.items = Some(Box::new(connect_of(
                p,
                values,
                &vj,
                &path.join("values"),
                depth + 1,
            )?));
            m
        }
        Node::Record(idx) => {
            let rec = p
                .records
                .get(*idx)
                .ok_or_else(|| Error::schema(path, "a defined record", "a dangling reference"))?;
            let fields_json = rec.props.get("fields").and_then(Json::as_array);
            let mut fields = Vec::with_capacity(rec.fields.len());
            for (i, (name, n, _)) in rec.fields.iter().enumerate() {
                let fj = fields_json
                    .and_then(|a| a.get(i))
                    .and_then(|f| f.get("type"))
                    .cloned()
                    .unwrap_or(Json::Null);
                // A by-name reference carries no props: use the record's own.
                let fj = match (&fj, n) {
                    (Json::String(_), Node::Record(r)) => p
                        .records
                        .get(*r)
                        .map_or(Json::Null, |d| Json::Object(d.props.clone())),
                    (Json::Array(a), _) => Json::Array(
                        a.iter()
                            .zip(match n {
                                Node::Union(b) => b.clone(),
                                _ => Vec::new(),
                            })
                            .map(|(j, bn)| match (j, bn) {
                                (Json::String(_), Node::Record(r)) => p
                                    .records
                                    .get(r)
                                    .map_or(Json::Null, |d| Json::Object(d.props.clone())),
                                (j, _) => j.clone(),
                            })
                            .collect(),
                    ),
                    _ => fj,
                };
                fields.push(Field::new(
                    name.clone(),
                    connect_of(p, n, &fj, &path.join(name), depth + 1)?,
                ));
            }
            let name = rec
                .props
                .get("connect.name")
                .and_then(Json::as_str)
                .unwrap_or(&rec.full_name);
            ConnectSchema::structure(name, fields)
        }
    };
    let props = match node {
        Node::Record(idx) => p.records.get(*idx).map(|r| &r.props),
        _ => props,
    };
    if let Some(o) = props {
        if let Some(n) = o.get("connect.name").and_then(Json::as_str) {
            s.name = Some(n.to_owned());
        }
        if let Some(v) = o.get("connect.version").and_then(Json::as_i64) {
            s.version = i32::try_from(v).ok();
        }
        if let Some(d) = o.get("connect.doc").and_then(Json::as_str) {
            s.doc = Some(d.to_owned());
        }
        if let Some(params) = o.get("connect.parameters").and_then(Json::as_object) {
            s.parameters = params
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
        }
        if s.name.is_none() && o.get("logicalType").and_then(Json::as_str) == Some("decimal") {
            s.name = Some(connect::names::DECIMAL.to_owned());
            let scale = o.get("scale").and_then(Json::as_i64).unwrap_or(0);
            s.parameters.push(("scale".into(), scale.to_string()));
            if let Some(pr) = o.get("precision").and_then(Json::as_i64) {
                s.parameters
                    .push(("connect.decimal.precision".into(), pr.to_string()));
            }
        }
        if let Some(d) = o.get("connect.default") {
            s.default = datum_from_avro_json(&s, d);
        }
    }
    Ok(s)
}

fn datum_from_avro_json(s: &ConnectSchema, j: &Json) -> Option<Datum> {
    use ConnectType as T;
    Some(match (s.ty, j) {
        (_, Json::Null) => return None,
        (T::Boolean, Json::Bool(b)) => Datum::Bool(*b),
        (T::Int8 | T::Int16 | T::Int32 | T::Int64, Json::Number(n)) => Datum::Int(n.as_i64()?),
        (T::Float32 | T::Float64, Json::Number(n)) => Datum::Float(n.as_f64()?),
        (T::String, Json::String(v)) => Datum::String(v.clone()),
        (T::Bytes, Json::String(v)) => Datum::Bytes(v.chars().map(|c| c as u32 as u8).collect()),
        _ => return None,
    })
}

// ------------------------------------------------------------- datum in

struct In<'a> {
    b: &'a [u8],
    pos: usize,
    /// The buffer `b` is, when shared: strings become zero-copy slices.
    src: Option<&'a Bytes>,
}

impl<'a> In<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            pos: 0,
            src: None,
        }
    }
    fn shared(src: &'a Bytes) -> Self {
        Self {
            b: src.as_ref(),
            pos: 0,
            src: Some(src),
        }
    }
    /// A string as a [`Str`]: a slice of the shared input, else a copy.
    #[inline(always)]
    fn text(&mut self) -> Result<Str> {
        let n = self.len()?;
        let start = self.pos;
        let raw = self.take(n)?;
        match self.src {
            Some(src) => Str::from_utf8(src.slice(start..self.pos)).ok(),
            None => std::str::from_utf8(raw).ok().map(Str::from),
        }
        .ok_or_else(|| self.err("invalid UTF-8 in string"))
    }
    fn err(&self, reason: impl Into<String>) -> Error {
        Error::InvalidAvro {
            offset: self.pos,
            reason: reason.into(),
        }
    }
    #[inline(always)]
    fn long(&mut self) -> Result<i64> {
        // One-byte varints (small ints, union branches, short lengths).
        if let Some(&b) = self.b.get(self.pos) {
            if b & 0x80 == 0 {
                self.pos += 1;
                let v = u64::from(b);
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        match self.long_multi() {
            Some(v) => Ok(v),
            None => self.long_slow(),
        }
    }
    /// A well-formed varint of any length (`None`, reader unmoved, when
    /// truncated or longer than ten bytes: [`In::long_slow`] says which).
    /// Returns a small type: no `Error` travels through memory.
    #[inline]
    fn long_multi(&mut self) -> Option<i64> {
        let rest = self.b.get(self.pos..)?;
        let (v, n) = match rest.first_chunk::<8>() {
            Some(w) => varint_word(u64::from_le_bytes(*w), rest)?,
            None => {
                // Near the end of the input: byte by byte.
                let mut v: u64 = 0;
                let mut n = None;
                for (i, &b) in rest.iter().take(10).enumerate() {
                    v |= u64::from(b & 0x7f) << (7 * i);
                    if b & 0x80 == 0 {
                        n = Some(i + 1);
                        break;
                    }
                }
                (v, n?)
            }
        };
        self.pos += n;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    /// The reference varint reader (and the errors of malformed ones).
    #[inline(never)]
    #[cold]
    fn long_slow(&mut self) -> Result<i64> {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self
                .b
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            if shift >= 64 {
                return Err(self.err("varint too long"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("length overflow"))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| self.err(format!("needs {n} bytes")))?;
        self.pos = end;
        Ok(s)
    }
    #[inline(always)]
    fn len(&mut self) -> Result<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| self.err(format!("negative length {n}")))
    }
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    #[inline(always)]
    fn string(&mut self) -> Result<&'a str> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8 in string"))
    }
}

/// Decodes the (unsigned) varint starting with the eight bytes `word`
/// (little-endian) of `rest`: its value and length, `None` when it is
/// longer than ten bytes or `rest` ends inside it. A word at a time: the
/// first byte without a continuation bit ends it, the 7-bit groups are
/// packed with three shift-and-mask steps.
#[inline]
fn varint_word(word: u64, rest: &[u8]) -> Option<(u64, usize)> {
    /// The 7-bit groups of `x` (one per byte, high bits clear) packed.
    #[inline(always)]
    fn pack(x: u64) -> u64 {
        let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
        let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
        (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
    }
    let stops = !word & 0x8080_8080_8080_8080;
    if stops != 0 {
        // Bits up to and including the first stop bit: the varint's bytes.
        let mask = stops ^ (stops - 1);
        let n = (stops.trailing_zeros() / 8 + 1) as usize;
        return Some((pack(word & mask & 0x7f7f_7f7f_7f7f_7f7f), n));
    }
    let low = pack(word & 0x7f7f_7f7f_7f7f_7f7f);
    let b8 = *rest.get(8)?;
    if b8 & 0x80 == 0 {
        return Some((low | (u64::from(b8) << 56), 9));
    }
    let b9 = *rest.get(9)?;
    if b9 & 0x80 != 0 {
        return None;
    }
    Some((
        low | (u64::from(b8 & 0x7f) << 56) | (u64::from(b9) << 63),
        10,
    ))
}

fn read_datum(p: &Parsed, node: &Node, input: &mut In<'_>, depth: usize) -> Result<Datum> {
    if depth > 64 {
        return Err(input.err("nesting too deep"));
    }
    Ok(match node {
        Node::Null => Datum::Null,
        Node::Boolean => match input.take(1)? {
            [0] => Datum::Bool(false),
            [1] => Datum::Bool(true),
            _ => return Err(input.err("invalid boolean")),
        },
        Node::Int => {
            let v = input.long()?;
            i32::try_from(v).map_err(|_| input.err("int out of range"))?;
            Datum::Int(v)
        }
        Node::Long => Datum::Int(input.long()?),
        Node::Float => {
            let b = input.take(4)?;
            Datum::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }
        Node::Double => {
            let b = input.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Datum::Float(f64::from_le_bytes(a))
        }
        Node::Bytes => Datum::Bytes(input.bytes()?.to_vec()),
        Node::Fixed(n) => Datum::Bytes(input.take(*n)?.to_vec()),
        Node::String => Datum::String(input.string()?.to_owned()),
        Node::Enum(symbols) => {
            let i = input.long()?;
            let s = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| input.err("enum index out of range"))?;
            Datum::String(s.clone())
        }
        Node::Union(branches) => {
            let i = input.long()?;
            let b = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| input.err(format!("union index {i} out of range")))?;
            read_datum(p, b, input, depth + 1)?
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            loop {
                let mut n = input.long()?;
                if n == 0 {
                    break;
                }
                if n < 0 {
                    n = n
                        .checked_neg()
                        .ok_or_else(|| input.err("bad block count"))?;
                    input.long()?; // block size in bytes
                }
                if n as u64 > (input.b.len() - input.pos) as u64 + 1 {
                    return Err(input.err("array block longer than the input"));
                }
                for _ in 0..n {
                    out.push(read_datum(p, items, input, depth + 1)?);
                }
            }
            Datum::Array(out)
        }
        Node::Map(values) => {
            let mut out = Vec::new();
            loop {
                let mut n = input.long()?;
                if n == 0 {
                    break;
                }
                if n < 0 {
                    n = n
                        .checked_neg()
                        .ok_or_else(|| input.err("bad block count"))?;
                    input.long()?;
                }
                if n as u64 > (input.b.len() - input.pos) as u64 + 1 {
                    return Err(input.err("map block longer than the input"));
                }
                for _ in 0..n {
                    let k = input.string()?.to_owned();
                    out.push((Datum::String(k), read_datum(p, values, input, depth + 1)?));
                }
            }
            Datum::Map(out)
        }
        Node::Record(idx) => {
            let rec = p
                .records
                .get(*idx)
                .ok_or_else(|| input.err("dangling record reference"))?;
            let mut values = Vec::with_capacity(rec.fields.len());
            for (_, n, _) in &rec.fields {
                values.push(read_datum(p, n, input, depth + 1)?);
            }
            Datum::Struct(values)
        }
    })
}

/// Reads one value as a Connect primitive, borrowing strings and bytes.
fn read_prim<'a>(p: &Parsed, node: &Node, input: &mut In<'a>, depth: usize) -> Result<Prim<'a>> {
    if depth > 64 {
        return Err(input.err("nesting too deep"));
    }
    Ok(match node {
        Node::Null => Prim::Null,
        Node::Boolean => match input.take(1)? {
            [0] => Prim::Bool(false),
            [1] => Prim::Bool(true),
            _ => return Err(input.err("invalid boolean")),
        },
        Node::Int => {
            let v = input.long()?;
            i32::try_from(v).map_err(|_| input.err("int out of range"))?;
            Prim::Int(v)
        }
        Node::Long => Prim::Int(input.long()?),
        Node::Float => {
            let b = input.take(4)?;
            Prim::F32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Node::Double => {
            let b = input.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Prim::F64(f64::from_le_bytes(a))
        }
        Node::Bytes => Prim::Bytes(std::borrow::Cow::Borrowed(input.bytes()?)),
        Node::Fixed(n) => Prim::Bytes(std::borrow::Cow::Borrowed(input.take(*n)?)),
        Node::String => Prim::Str(std::borrow::Cow::Borrowed(input.string()?)),
        Node::Union(branches) => {
            let i = input.long()?;
            let b = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| input.err(format!("union index {i} out of range")))?;
            read_prim(p, b, input, depth + 1)?
        }
        other => Prim::from_datum(&read_datum(p, other, input, depth + 1)?),
    })
}

/// What a top-level field of a table envelope record is, for direct decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvField {
    Before,
    After,
    /// The `source` record (its record index).
    Source(usize),
    Op,
    TsMs,
    TsUs,
    TsNs,
    Transaction,
    Other,
}

/// Which row image of an envelope is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Before,
    After,
}

/// Field roles of a table envelope, resolved once per writer schema so
/// that no name is looked up per record.
#[derive(Debug)]
struct DirectPlan {
    /// One per field of the root record.
    fields: Vec<EnvField>,
    /// One per field of the `source` record.
    source: Vec<SourceField>,
    /// How the `source` record is read: its fields, runs of repeating ones
    /// grouped.
    source_steps: Vec<SourceStep>,
}

/// A step of reading the `source` record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceStep {
    /// One field (by index).
    Field(usize),
    /// Consecutive fields whose values usually repeat from record to record
    /// ([`recycle::repeats`]), compared as one byte string with the
    /// previous record's.
    Run(std::ops::Range<usize>),
}

/// The steps for `source` fields with these roles: maximal runs of
/// repeating fields, every other field on its own. No runs when a role
/// repeats (a memo value must stand for one field).
fn source_steps(roles: &[SourceField]) -> Vec<SourceStep> {
    let unique = roles
        .iter()
        .enumerate()
        .all(|(i, r)| *r == SourceField::Other || !roles[..i].contains(r));
    let mut steps = Vec::new();
    let mut i = 0;
    while i < roles.len() {
        let mut j = i;
        while unique && roles.get(j).is_some_and(|r| recycle::repeats(*r)) {
            j += 1;
        }
        if j > i {
            steps.push(SourceStep::Run(i..j));
            i = j;
        } else {
            steps.push(SourceStep::Field(i));
            i += 1;
        }
    }
    steps
}

/// A writer schema parsed once, with the derived event decoding plan.
#[derive(Debug)]
struct ReaderPlan {
    /// Unique per plan built in this process (memos are tied to it).
    id: u64,
    parsed: Parsed,
    root: Node,
    connect: ConnectSchema,
    table: Option<Arc<TableSchema>>,
    codecs: Vec<Codec>,
    /// Direct string paths, one per column.
    fast: Vec<TextFast>,
    /// Direct integer paths, one per column.
    ints: Vec<IntFast>,
    /// Present for table envelopes of the usual shape.
    direct: Option<DirectPlan>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("records", &self.records.len())
            .finish()
    }
}

/// A plan for one key schema.
type KeyedPlan = (Option<Box<str>>, Arc<ReaderPlan>);

/// The most recently used (value schema, key schema, plan).
type LastPlan = (Box<str>, Option<Box<str>>, Arc<ReaderPlan>);

/// The most recently used shared (value schema, key schema, plan): held
/// `Arc`s keep their addresses unique, so pointer equality means identity.
type LastShared = (Arc<str>, Option<Arc<str>>, Arc<ReaderPlan>);

/// Decodes Avro datums written with a given writer schema (as fetched from
/// a schema registry by id) back into [`ChangeEvent`]s.
///
/// The plan derived from a writer schema (field roles, column codecs) is
/// cached, so nothing schema-related is resolved per record. With
/// [`AvroDecoder::decode_value_shared`] the schema is recognised by
/// pointer and the event's strings are zero-copy slices of the datum; the
/// `source` block's repeating strings come from a small bounded cache.
#[derive(Debug)]
pub struct AvroDecoder {
    plans: HashMap<Box<str>, Vec<KeyedPlan>>,
    last: Option<LastPlan>,
    last_shared: Option<LastShared>,
    reader: EventReader,
}

/// What decoding a datum with a plan needs besides the plan (a separate
/// struct, so that a plan held by the decoder can be borrowed while this
/// is borrowed mutably).
#[derive(Debug)]
struct EventReader {
    options: Options,
    strings: StrCache,
    spare: Spare,
    memo: SourceMemo,
    before_path: Path,
    after_path: Path,
}

fn field_index(s: &ConnectSchema, name: &str) -> Option<usize> {
    s.fields.iter().position(|f| f.name == name)
}

/// The direct plan of a table envelope, `None` for unusual shapes (they
/// take the generic path).
fn direct_plan(parsed: &Parsed, root: &Node) -> Option<DirectPlan> {
    let Node::Record(idx) = root else {
        return None;
    };
    let rec = parsed.records.get(*idx)?;
    let mut source = None;
    let mut fields = Vec::with_capacity(rec.fields.len());
    for (name, node, _) in &rec.fields {
        fields.push(match name.as_str() {
            "before" => EnvField::Before,
            "after" => EnvField::After,
            "source" => match node {
                Node::Record(si) => {
                    let srec = parsed.records.get(*si)?;
                    source = Some(
                        srec.fields
                            .iter()
                            .map(|(n, ..)| SourceField::of(n.as_bytes()))
                            .collect(),
                    );
                    EnvField::Source(*si)
                }
                _ => return None,
            },
            "op" => match node {
                Node::String => EnvField::Op,
                _ => return None,
            },
            "ts_ms" => EnvField::TsMs,
            "ts_us" => EnvField::TsUs,
            "ts_ns" => EnvField::TsNs,
            "transaction" => EnvField::Transaction,
            _ => EnvField::Other,
        });
    }
    let source: Vec<SourceField> = source.unwrap_or_default();
    Some(DirectPlan {
        fields,
        source_steps: source_steps(&source),
        source,
    })
}

/// The branch a union selects (other nodes as they are).
#[inline(always)]
fn resolve<'n>(node: &'n Node, input: &mut In<'_>) -> Result<&'n Node> {
    match node {
        Node::Union(branches) => {
            let i = input.long()?;
            usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| input.err(format!("union index {i} out of range")))
        }
        other => Ok(other),
    }
}

/// An optional integer field (`None` for null or a non-integer).
#[inline(always)]
fn read_opt_int(p: &Parsed, node: &Node, input: &mut In<'_>) -> Result<Option<i64>> {
    let branch = resolve(node, input)?;
    Ok(match branch {
        Node::Long => Some(input.long()?),
        Node::Int => {
            let v = input.long()?;
            i32::try_from(v).map_err(|_| input.err("int out of range"))?;
            Some(v)
        }
        Node::Null => None,
        other => match read_prim(p, other, input, 1)? {
            Prim::Int(i) => Some(i),
            _ => None,
        },
    })
}

/// An optional string field (`None` for null or a non-string): a slice of
/// the shared input, else a copy.
#[inline(always)]
fn read_opt_text(p: &Parsed, node: &Node, input: &mut In<'_>) -> Result<Option<Str>> {
    let branch = resolve(node, input)?;
    Ok(match branch {
        Node::String => Some(input.text()?),
        Node::Null => None,
        other => match read_prim(p, other, input, 1)? {
            Prim::Str(t) => Some(Str::from(t.as_ref())),
            _ => None,
        },
    })
}

/// A repeating string field (null or a non-string: empty) into `slot`:
/// left alone when equal, else shared through `cache`.
#[inline(always)]
fn read_interned_into(
    p: &Parsed,
    node: &Node,
    input: &mut In<'_>,
    cache: &mut StrCache,
    hint: usize,
    slot: &mut Str,
) -> Result<()> {
    match resolve(node, input)? {
        Node::String => {
            let raw = input.bytes()?;
            recycle::set_interned(slot, raw, cache, hint)
                .map_err(|_| input.err("invalid UTF-8 in string"))?;
        }
        Node::Null => *slot = Str::default(),
        other => match read_prim(p, other, input, 1)? {
            Prim::Str(t) => recycle::set_interned(slot, t.as_bytes(), cache, hint)
                .map_err(|_| input.err("invalid UTF-8 in string"))?,
            _ => *slot = Str::default(),
        },
    }
    Ok(())
}

/// Skips one value (checked like [`read_prim`] reads it).
#[inline(always)]
fn skip_value(p: &Parsed, node: &Node, input: &mut In<'_>) -> Result<()> {
    match resolve(node, input)? {
        Node::Null => {}
        Node::Long => {
            input.long()?;
        }
        Node::Int => {
            let v = input.long()?;
            i32::try_from(v).map_err(|_| input.err("int out of range"))?;
        }
        other => {
            read_prim(p, other, input, 1)?;
        }
    }
    Ok(())
}

/// Transaction block from its generic datum.
fn transaction_from(d: &Datum) -> Option<TransactionBlock> {
    match d {
        Datum::Struct(f) => match f.as_slice() {
            [Datum::String(id), Datum::Int(t), Datum::Int(d)] => Some(TransactionBlock {
                id: id.clone(),
                total_order: *t,
                data_collection_order: *d,
            }),
            _ => None,
        },
        _ => None,
    }
}

impl AvroDecoder {
    /// A decoder (`unavailable.value.placeholder` is taken from `options`).
    pub fn new(options: Options) -> Self {
        Self {
            plans: HashMap::new(),
            last: None,
            last_shared: None,
            reader: EventReader {
                options,
                strings: StrCache::default(),
                spare: Spare::default(),
                memo: SourceMemo::default(),
                before_path: Path::from("before"),
                after_path: Path::from("after"),
            },
        }
    }

    fn plan(&mut self, value_schema: &str, key_schema: Option<&str>) -> Result<Arc<ReaderPlan>> {
        if let Some((v, k, p)) = &self.last {
            if v.as_ref() == value_schema && k.as_deref() == key_schema {
                return Ok(Arc::clone(p));
            }
        }
        if let Some(p) = self
            .plans
            .get(value_schema)
            .and_then(|v| v.iter().find(|(k, _)| k.as_deref() == key_schema))
        {
            let p = Arc::clone(&p.1);
            self.last = Some((
                value_schema.into(),
                key_schema.map(Into::into),
                Arc::clone(&p),
            ));
            return Ok(p);
        }
        let json: Json = serde_json::from_str(value_schema).map_err(|e| Error::InvalidJson {
            offset: e.column(),
            reason: format!("Avro schema: {e}"),
        })?;
        let mut parsed = Parsed::default();
        let path = Path::from("avro");
        let root = parsed.node(&json, None, &path, 0)?;
        let connect = connect_of(&parsed, &root, &json, &path, 0)?;
        let key_names: Option<Vec<String>> = match key_schema {
            Some(ks) => {
                let kj: Json = serde_json::from_str(ks).map_err(|e| Error::InvalidJson {
                    offset: e.column(),
                    reason: format!("Avro key schema: {e}"),
                })?;
                let names = kj.get("fields").and_then(Json::as_array).map(|a| {
                    a.iter()
                        .filter_map(|f| f.get("name").and_then(Json::as_str).map(str::to_owned))
                        .collect()
                });
                names
            }
            None => None,
        };
        let (table, codecs) = match connect.field("after").or_else(|| connect.field("before")) {
            Some(row) if connect.field("message").is_none() => {
                let name = connect.name_str();
                let parts: Vec<&str> = name.rsplitn(4, '.').collect();
                let (ts, tt) = match parts.as_slice() {
                    [_, t, s, ..] => ((*s).to_owned(), (*t).to_owned()),
                    _ => (String::new(), String::new()),
                };
                let mut columns = Vec::new();
                let mut codecs = Vec::new();
                for f in &row.schema.fields {
                    let fp = path.join(&f.name);
                    let codec = Codec::from_schema(&f.schema, &fp)?;
                    let pg_type = connect::pg_type_from_schema(&f.schema);
                    let default_expr = match &f.schema.default {
                        Some(d) => crate::default_value::default_expr_for(
                            &pg_type,
                            &lift(
                                &codec,
                                Prim::from_datum(d),
                                &pg_type,
                                &fp,
                                &self.reader.options,
                            )?,
                        ),
                        None => None,
                    };
                    let is_key = key_names
                        .as_ref()
                        .is_some_and(|k| k.iter().any(|n| n == &f.name));
                    columns.push(Column {
                        name: f.name.clone(),
                        pg_type,
                        optional: f.schema.optional,
                        default_expr,
                        is_key,
                    });
                    codecs.push(codec);
                }
                let version = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    value_schema.hash(&mut h);
                    key_names.hash(&mut h);
                    h.finish()
                };
                (
                    Some(Arc::new(TableSchema {
                        id: TableId::new(ts, tt),
                        relation_oid: 0,
                        columns,
                        version,
                    })),
                    codecs,
                )
            }
            _ => (None, Vec::new()),
        };
        let fast = match &table {
            Some(t) => codecs
                .iter()
                .zip(&t.columns)
                .map(|(c, col)| TextFast::of(c, &col.pg_type))
                .collect(),
            None => Vec::new(),
        };
        let ints = match &table {
            Some(t) => codecs
                .iter()
                .zip(&t.columns)
                .map(|(c, col)| IntFast::of(c, &col.pg_type))
                .collect(),
            None => Vec::new(),
        };
        let direct = table.as_ref().and_then(|_| direct_plan(&parsed, &root));
        static PLAN_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let plan = Arc::new(ReaderPlan {
            id: PLAN_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            parsed,
            root,
            connect,
            table,
            codecs,
            fast,
            ints,
            direct,
        });
        if self.plans.len() > 1024 {
            self.plans.clear();
        }
        self.plans
            .entry(value_schema.into())
            .or_default()
            .push((key_schema.map(Into::into), Arc::clone(&plan)));
        self.last = Some((
            value_schema.into(),
            key_schema.map(Into::into),
            Arc::clone(&plan),
        ));
        Ok(plan)
    }

    /// Makes `last_shared` hold the plan for shared schema texts:
    /// recognised by pointer while the same `Arc`s keep coming (a registry
    /// client's cache hands out one `Arc<str>` per schema id), else by
    /// content.
    fn select_shared(
        &mut self,
        value_schema: &Arc<str>,
        key_schema: Option<&Arc<str>>,
    ) -> Result<()> {
        if let Some((v, k, _)) = &self.last_shared {
            let key_same = match (k, key_schema) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            if key_same && Arc::ptr_eq(v, value_schema) {
                return Ok(());
            }
        }
        let plan = self.plan(value_schema, key_schema.map(|k| &**k))?;
        self.last_shared = Some((Arc::clone(value_schema), key_schema.cloned(), plan));
        Ok(())
    }

    /// Decodes `datum` into `ev` with the plan [`AvroDecoder::select_shared`]
    /// selected (borrowed, not cloned: no reference count per record).
    fn decode_selected(&mut self, datum: &Bytes, ev: &mut ChangeEvent) -> Result<()> {
        match &self.last_shared {
            Some((_, _, plan)) => self.reader.decode_with(plan, datum, ev),
            None => Err(Error::InvalidEvent {
                reason: "no Avro plan selected".into(),
            }),
        }
    }

    /// Decodes a value datum written with `value_schema` (Avro schema JSON).
    /// `key_schema`, when given, marks the key columns of the reconstructed table.
    ///
    /// The datum is copied once into a shared buffer that the event's
    /// strings slice; prefer [`AvroDecoder::decode_value_shared`] when the
    /// datum is already in [`Bytes`] and the schemas in `Arc`s.
    pub fn decode_value(
        &mut self,
        value_schema: &str,
        key_schema: Option<&str>,
        datum: &[u8],
    ) -> Result<ChangeEvent> {
        let plan = self.plan(value_schema, key_schema)?;
        let mut ev = recycle::blank_event();
        self.reader
            .decode_with(&plan, &Bytes::copy_from_slice(datum), &mut ev)?;
        Ok(ev)
    }

    /// Like [`AvroDecoder::decode_value`] without copies: the plan is found
    /// by the schemas' `Arc` identity (falling back to their text), and
    /// text columns, decimals and `source.sequence` are zero-copy slices of
    /// `datum`.
    pub fn decode_value_shared(
        &mut self,
        value_schema: &Arc<str>,
        key_schema: Option<&Arc<str>>,
        datum: &Bytes,
    ) -> Result<ChangeEvent> {
        self.select_shared(value_schema, key_schema)?;
        let mut ev = recycle::blank_event();
        self.decode_selected(datum, &mut ev)?;
        Ok(ev)
    }

    /// Like [`AvroDecoder::decode_value_shared`], decoding into `target`
    /// and reusing what it holds from a previous call instead of
    /// allocating: its row `Vec`s are refilled, the `source` block's
    /// repeating strings and the table `Arc` are kept when unchanged, and
    /// rows a record does not have go to a small pool in the decoder for
    /// the next record that has them. The result is exactly the event
    /// [`AvroDecoder::decode_value_shared`] returns; nothing of the previous
    /// event survives. An empty `target` (`None`) gets a new event.
    ///
    /// On error `target` is `None` (its allocations are kept by the decoder
    /// for the next call) and the error is the one
    /// [`AvroDecoder::decode_value_shared`] returns.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use cdc_envelope::*;
    /// # let table = Arc::new(TableSchema {
    /// #     id: TableId::new("public", "t"),
    /// #     relation_oid: 1,
    /// #     columns: vec![Column { is_key: true, optional: false, ..Column::new("id", PgType::base(23, "int4")) }],
    /// #     version: 1,
    /// # });
    /// # let ev = ChangeEvent {
    /// #     op: Op::Create, table: Some(table), before: None, after: Some(vec![Value::Int32(1)]),
    /// #     source: SourceInfo::default(), ts_ns: 0, transaction: None, message: None,
    /// #     position: Position::default(), key_change: None,
    /// # };
    /// let mut enc = AvroEncoder::new(Options::with_prefix("pgsource"));
    /// let (_, schema) = enc.schemas(&ev)?;
    /// let mut datum = Vec::new();
    /// enc.encode_value_into(&ev, &mut datum)?;
    /// let datum = bytes::Bytes::from(datum);
    ///
    /// let mut dec = AvroDecoder::new(Options::with_prefix("pgsource"));
    /// let mut slot = None; // reused for every record
    /// for _ in 0..3 {
    ///     dec.decode_value_shared_into(&schema, None, &datum, &mut slot)?;
    ///     let event = slot.as_ref().expect("decoded");
    ///     assert_eq!(event.after, ev.after);
    /// }
    /// # Ok::<(), cdc_envelope::Error>(())
    /// ```
    pub fn decode_value_shared_into(
        &mut self,
        value_schema: &Arc<str>,
        key_schema: Option<&Arc<str>>,
        datum: &Bytes,
        target: &mut Option<ChangeEvent>,
    ) -> Result<()> {
        let res = match self.select_shared(value_schema, key_schema) {
            Ok(()) => {
                let ev = self.reader.spare.event_in(target);
                self.decode_selected(datum, ev)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            self.reader.spare.discard(target);
            return Err(e);
        }
        Ok(())
    }

    /// Decodes a Confluent-framed value: returns the schema id read from
    /// the header and the event decoded with `value_schema`, which must be
    /// the schema registered under that id.
    pub fn decode_value_framed(
        &mut self,
        value_schema: &str,
        key_schema: Option<&str>,
        bytes: &[u8],
    ) -> Result<(u32, ChangeEvent)> {
        let (id, datum) = split_confluent(bytes)?;
        Ok((id, self.decode_value(value_schema, key_schema, datum)?))
    }
}

impl EventReader {
    /// Decodes `datum` into `ev`, overwriting all of it.
    fn decode_with(
        &mut self,
        plan: &ReaderPlan,
        datum: &Bytes,
        ev: &mut ChangeEvent,
    ) -> Result<()> {
        match (&plan.direct, &plan.table, &plan.root) {
            (Some(direct), Some(table), Node::Record(idx)) => {
                self.decode_direct(plan, direct, table, *idx, datum, ev)
            }
            _ => {
                let new = self.decode_generic(plan, datum)?;
                self.spare.replace(ev, new);
                Ok(())
            }
        }
    }

    /// The common case: a table envelope, every field read straight into
    /// the event (which is overwritten in place: see
    /// [`AvroDecoder::decode_value_shared_into`]).
    fn decode_direct(
        &mut self,
        plan: &ReaderPlan,
        direct: &DirectPlan,
        table: &Arc<TableSchema>,
        idx: usize,
        datum: &Bytes,
        ev: &mut ChangeEvent,
    ) -> Result<()> {
        let mut input = In::shared(datum);
        let rec = plan
            .parsed
            .records
            .get(idx)
            .ok_or_else(|| input.err("dangling record"))?;
        let mut op = None;
        let (mut has_before, mut has_after, mut has_source) = (false, false, false);
        let mut transaction = None;
        let (mut ts_ms, mut ts_us, mut ts_ns) = (None, None, None);
        for ((_, node, _), role) in rec.fields.iter().zip(&direct.fields) {
            match *role {
                EnvField::Before => {
                    has_before = true;
                    self.read_row(plan, table, node, &mut input, Side::Before, &mut ev.before)?
                }
                EnvField::After => {
                    has_after = true;
                    self.read_row(plan, table, node, &mut input, Side::After, &mut ev.after)?
                }
                EnvField::Source(si) => {
                    has_source = true;
                    read_source_into(
                        &plan.parsed,
                        si,
                        direct,
                        plan.id,
                        &mut input,
                        &mut self.strings,
                        &mut self.memo,
                        &mut ev.source,
                    )?
                }
                EnvField::Op => {
                    let code = input.string()?;
                    op = Some(Op::from_code(code).ok_or_else(|| {
                        Error::mismatch(&Path::from("op"), "one of c u d r t m", code.to_owned())
                    })?);
                }
                EnvField::TsMs => ts_ms = read_opt_int(&plan.parsed, node, &mut input)?,
                EnvField::TsUs => ts_us = read_opt_int(&plan.parsed, node, &mut input)?,
                EnvField::TsNs => ts_ns = read_opt_int(&plan.parsed, node, &mut input)?,
                EnvField::Transaction => {
                    transaction = match resolve(node, &mut input)? {
                        Node::Null => None,
                        branch => {
                            transaction_from(&read_datum(&plan.parsed, branch, &mut input, 1)?)
                        }
                    }
                }
                EnvField::Other => {
                    read_datum(&plan.parsed, node, &mut input, 1)?;
                }
            }
        }
        if input.pos != datum.len() {
            return Err(input.err(format!("{} trailing bytes", datum.len() - input.pos)));
        }
        let op = op.ok_or_else(|| Error::MissingField {
            path: Path::from("op"),
        })?;
        if !has_before {
            self.spare.drop_row(&mut ev.before);
        }
        if !has_after {
            self.spare.drop_row(&mut ev.after);
        }
        if !has_source {
            ev.source = SourceInfo::default();
        }
        ev.op = op;
        recycle::set_table(&mut ev.table, (op != Op::Message).then_some(table));
        ev.ts_ns = ts_ns
            .or_else(|| ts_us.map(|u: i64| u.saturating_mul(1000)))
            .or_else(|| ts_ms.map(|m: i64| m.saturating_mul(1_000_000)))
            .unwrap_or(0);
        ev.transaction = transaction;
        ev.message = None;
        ev.position = Position::default();
        ev.key_change = None;
        Ok(())
    }

    /// Any other shape (logical messages, unusual envelopes): the datum is
    /// read generically, then mapped.
    fn decode_generic(&mut self, plan: &ReaderPlan, datum: &Bytes) -> Result<ChangeEvent> {
        let mut input = In::shared(datum);
        let d = read_datum(&plan.parsed, &plan.root, &mut input, 0)?;
        if input.pos != datum.len() {
            return Err(input.err(format!("{} trailing bytes", datum.len() - input.pos)));
        }
        let Datum::Struct(values) = d else {
            return Err(Error::InvalidEvent {
                reason: "value is not a record".into(),
            });
        };
        let s = &plan.connect;
        let get = |name: &str| field_index(s, name).and_then(|i| values.get(i));
        let op_code = match get("op") {
            Some(Datum::String(o)) => o.clone(),
            _ => {
                return Err(Error::MissingField {
                    path: Path::from("op"),
                })
            }
        };
        let op = Op::from_code(&op_code).ok_or_else(|| {
            Error::mismatch(&Path::from("op"), "one of c u d r t m", op_code.clone())
        })?;
        let source = match get("source") {
            Some(Datum::Struct(f)) => source_from(s.field("source").map(|f| &f.schema), f),
            _ => SourceInfo::default(),
        };
        let transaction = get("transaction").and_then(transaction_from);
        let int = |n: &str| match get(n) {
            Some(Datum::Int(i)) => Some(*i),
            _ => None,
        };
        let ts_ns = int("ts_ns")
            .or_else(|| int("ts_us").map(|u| u.saturating_mul(1000)))
            .or_else(|| int("ts_ms").map(|m| m.saturating_mul(1_000_000)))
            .unwrap_or(0);
        let message = match get("message") {
            Some(Datum::Struct(f)) => {
                let prefix = match f.first() {
                    Some(Datum::String(p)) => p.clone(),
                    _ => String::new(),
                };
                let content = match f.get(1) {
                    Some(Datum::Bytes(b)) => Bytes::from(b.clone()),
                    _ => Bytes::new(),
                };
                Some(LogicalMessage {
                    prefix,
                    content,
                    transactional: source.tx_id.is_some(),
                })
            }
            _ => None,
        };
        let mut rows = [None, None];
        if let Some(table) = &plan.table {
            for (slot, name) in rows.iter_mut().zip(["before", "after"]) {
                if let Some(Datum::Struct(cells)) = get(name) {
                    let mut row = Vec::with_capacity(cells.len());
                    for ((cell, col), codec) in cells.iter().zip(&table.columns).zip(&plan.codecs) {
                        let fp = Path::from(name);
                        row.push(
                            lift(
                                codec,
                                Prim::from_datum(cell),
                                &col.pg_type,
                                &fp,
                                &self.options,
                            )
                            .map_err(|e| e.within(&col.name))?,
                        );
                    }
                    *slot = Some(row);
                }
            }
        }
        let [before, after] = rows;
        Ok(ChangeEvent {
            op,
            table: if op == Op::Message {
                None
            } else {
                plan.table.clone()
            },
            before,
            after,
            source,
            ts_ns,
            transaction,
            message,
            position: Position::default(),
            key_change: None,
        })
    }

    /// Reads one row image into `slot` (refilling the row it holds).
    fn read_row(
        &mut self,
        plan: &ReaderPlan,
        table: &TableSchema,
        node: &Node,
        input: &mut In<'_>,
        side: Side,
        slot: &mut Option<Row>,
    ) -> Result<()> {
        let Self {
            options,
            spare,
            before_path,
            after_path,
            ..
        } = self;
        let options = &*options;
        let parent = match side {
            Side::Before => &*before_path,
            Side::After => &*after_path,
        };
        let node = resolve(node, input)?;
        let idx = match node {
            Node::Null => {
                spare.drop_row(slot);
                return Ok(());
            }
            Node::Record(idx) => *idx,
            _ => return Err(input.err("row is not a record")),
        };
        let rec = plan
            .parsed
            .records
            .get(idx)
            .ok_or_else(|| input.err("dangling record"))?;
        let row = spare.row_in(slot, rec.fields.len());
        // Pre-filled with NULLs: each value is then built straight into its
        // slot (see `recycle::fill`), and NULL columns need no store.
        row.resize_with(rec.fields.len(), || Value::Null);
        let cols = table
            .columns
            .iter()
            .zip(&plan.codecs)
            .zip(plan.fast.iter().zip(&plan.ints));
        let mut filled = 0;
        for ((slot, (_, n, _)), ((col, codec), (fast, int))) in
            row.iter_mut().zip(&rec.fields).zip(cols)
        {
            filled += 1;
            let mark = input.pos;
            let p = match resolve(n, input)? {
                // Strings straight to values (slices of the shared input).
                Node::String if *fast != TextFast::Generic => {
                    if fast
                        .emit(input.text()?, options, |v| recycle::fill(slot, v))
                        .is_some()
                    {
                        continue;
                    }
                    input.pos = mark;
                    read_prim(&plan.parsed, n, input, 0)?
                }
                Node::Null => continue,
                Node::Long => {
                    let v = input.long()?;
                    if int.emit(v, |v| recycle::fill(slot, v)).is_some() {
                        continue;
                    }
                    Prim::Int(v)
                }
                Node::Int => {
                    let v = input.long()?;
                    i32::try_from(v).map_err(|_| input.err("int out of range"))?;
                    if int.emit(v, |v| recycle::fill(slot, v)).is_some() {
                        continue;
                    }
                    Prim::Int(v)
                }
                _ => {
                    input.pos = mark;
                    read_prim(&plan.parsed, n, input, 0)?
                }
            };
            let v =
                lift(codec, p, &col.pg_type, parent, options).map_err(|e| e.within(&col.name))?;
            recycle::fill(slot, v);
        }
        row.truncate(filled);
        Ok(())
    }
}

/// Reads the `source` record straight into `s`, overwriting every field
/// (field roles from the plan; repeating strings compared in place, else
/// shared through `strings`). Runs of fields whose values usually repeat
/// ([`SourceStep::Run`]) are first compared, as bytes, with the same run of
/// the previous record (`memo`): when equal they decode to the same values,
/// which are taken from the memo instead of being decoded again.
#[allow(clippy::too_many_arguments)]
fn read_source_into(
    p: &Parsed,
    idx: usize,
    direct: &DirectPlan,
    plan_id: u64,
    input: &mut In<'_>,
    strings: &mut StrCache,
    memo: &mut SourceMemo,
    s: &mut SourceInfo,
) -> Result<()> {
    let rec = p
        .records
        .get(idx)
        .ok_or_else(|| input.err("dangling record"))?;
    let roles = &direct.source;
    let field = |i: usize| rec.fields.get(i).zip(roles.get(i));
    recycle::reset_source(s);
    memo.follow(plan_id);
    let mut read = 0u32;
    let mut run_no = 0;
    for step in &direct.source_steps {
        match step {
            SourceStep::Field(i) => {
                let ((_, node, _), &role) = field(*i).ok_or_else(|| input.err("dangling field"))?;
                read |= recycle::bit(role);
                read_source_field(p, node, role, input, strings, s)?;
            }
            SourceStep::Run(range) => {
                let run = run_no;
                run_no += 1;
                let known = memo.run(run);
                let start = input.pos;
                let rest = input.b.get(start..).unwrap_or_default();
                if !known.is_empty() && rest.starts_with(known) {
                    input.pos += known.len();
                    for i in range.clone() {
                        let (_, &role) = field(i).ok_or_else(|| input.err("dangling field"))?;
                        read |= recycle::bit(role);
                        recycle::copy_field(role, memo.values(), s);
                    }
                    continue;
                }
                for i in range.clone() {
                    let ((_, node, _), &role) =
                        field(i).ok_or_else(|| input.err("dangling field"))?;
                    read |= recycle::bit(role);
                    read_source_field(p, node, role, input, strings, s)?;
                }
                let bytes = input.b.get(start..input.pos).unwrap_or_default();
                memo.remember(
                    run,
                    bytes,
                    range.clone().filter_map(|i| roles.get(i).copied()),
                    s,
                );
            }
        }
    }
    recycle::reset_unread(s, read);
    Ok(())
}

/// Reads one field of the `source` record into `s`.
#[inline(always)]
fn read_source_field(
    p: &Parsed,
    node: &Node,
    role: SourceField,
    input: &mut In<'_>,
    strings: &mut StrCache,
    s: &mut SourceInfo,
) -> Result<()> {
    if let Some(slot) = recycle::interned_slot(s, role) {
        return read_interned_into(p, node, input, strings, recycle::hint(role), slot);
    }
    match role {
        SourceField::Sequence => s.sequence = read_opt_text(p, node, input)?,
        SourceField::Origin => s.origin = read_opt_text(p, node, input)?,
        SourceField::Snapshot => {
            s.snapshot = match resolve(node, input)? {
                Node::String => SnapshotMarker::parse(input.string()?).unwrap_or_default(),
                Node::Null => SnapshotMarker::default(),
                other => match read_prim(p, other, input, 1)? {
                    Prim::Str(t) => SnapshotMarker::parse(&t).unwrap_or_default(),
                    _ => SnapshotMarker::default(),
                },
            }
        }
        SourceField::TsUs => s.ts_us = read_opt_int(p, node, input)?.unwrap_or(s.ts_us),
        SourceField::TsMs => {
            let v = read_opt_int(p, node, input)?;
            if s.ts_us == 0 {
                s.ts_us = v.unwrap_or(0).saturating_mul(1000);
            }
        }
        SourceField::TxId => s.tx_id = read_opt_int(p, node, input)?,
        SourceField::Lsn => s.lsn = read_opt_int(p, node, input)?,
        SourceField::Xmin => s.xmin = read_opt_int(p, node, input)?,
        SourceField::OriginLsn => s.origin_lsn = read_opt_int(p, node, input)?,
        _ => skip_value(p, node, input)?,
    }
    Ok(())
}

fn source_from(schema: Option<&ConnectSchema>, f: &[Datum]) -> SourceInfo {
    let mut s = SourceInfo::default();
    let Some(schema) = schema else { return s };
    for (field, v) in schema.fields.iter().zip(f) {
        let text = || match v {
            Datum::String(t) => Some(Str::from(t.as_str())),
            _ => None,
        };
        let int = || match v {
            Datum::Int(i) => Some(*i),
            _ => None,
        };
        match SourceField::of(field.name.as_bytes()) {
            SourceField::Version => s.version = text().unwrap_or_default(),
            SourceField::Connector => s.connector = text().unwrap_or_default(),
            SourceField::Name => s.name = text().unwrap_or_default(),
            SourceField::TsUs => s.ts_us = int().unwrap_or(s.ts_us),
            SourceField::TsMs if s.ts_us == 0 => s.ts_us = int().unwrap_or(0).saturating_mul(1000),
            SourceField::Snapshot => {
                s.snapshot = text()
                    .and_then(|t| SnapshotMarker::parse(&t))
                    .unwrap_or_default()
            }
            SourceField::Db => s.db = text().unwrap_or_default(),
            SourceField::Sequence => s.sequence = text(),
            SourceField::Schema => s.schema = text().unwrap_or_default(),
            SourceField::Table => s.table = text().unwrap_or_default(),
            SourceField::TxId => s.tx_id = int(),
            SourceField::Lsn => s.lsn = int(),
            SourceField::Xmin => s.xmin = int(),
            SourceField::Origin => s.origin = text(),
            SourceField::OriginLsn => s.origin_lsn = int(),
            SourceField::TsMs | SourceField::Other => {}
        }
    }
    s
}

/// Decodes a key datum (written with `key_schema`) into its values, typed
/// by the key schema.
pub fn decode_key(key_schema: &str, datum: &[u8], options: &Options) -> Result<Vec<Value>> {
    let json: Json = serde_json::from_str(key_schema).map_err(|e| Error::InvalidJson {
        offset: e.column(),
        reason: format!("Avro schema: {e}"),
    })?;
    let mut parsed = Parsed::default();
    let path = Path::from("key");
    let root = parsed.node(&json, None, &path, 0)?;
    let connect = connect_of(&parsed, &root, &json, &path, 0)?;
    let mut input = In::new(datum);
    let Datum::Struct(values) = read_datum(&parsed, &root, &mut input, 0)? else {
        return Err(Error::InvalidEvent {
            reason: "key is not a record".into(),
        });
    };
    connect
        .fields
        .iter()
        .zip(values)
        .map(|(f, d)| {
            let fp = path.join(&f.name);
            let codec = Codec::from_schema(&f.schema, &fp)?;
            let pg = connect::pg_type_from_schema(&f.schema);
            lift(&codec, Prim::from_datum(&d), &pg, &fp, options)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time varint reader the word-at-a-time one must match.
    fn reference_long(b: &[u8]) -> Option<(i64, usize)> {
        let (mut v, mut shift, mut i) = (0u64, 0u32, 0usize);
        loop {
            let byte = *b.get(i)?;
            i += 1;
            if shift >= 64 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((((v >> 1) as i64) ^ -((v & 1) as i64), i));
            }
            shift += 7;
        }
    }

    #[test]
    fn varints_match_the_reference_reader() {
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -65,
            300,
            588_651_920,
            1_795_492_115_246_373,
            1_795_492_115_317_437_453,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            zigzag(&mut out, v);
            for pad in 0..10 {
                let mut o = out.clone();
                o.extend(std::iter::repeat_n(0x81u8, pad));
                inputs.push(o);
            }
        }
        // Over-long, truncated and continuation-only inputs.
        for n in 0..14 {
            inputs.push(vec![0xff; n]);
            let mut o = vec![0x80; n];
            o.push(0);
            inputs.push(o);
        }
        // Every length and bit pattern of the word-at-a-time reader.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let shift = (x % 64) as u32;
            let mut out = Vec::new();
            zigzag(&mut out, (x >> shift) as i64);
            out.extend_from_slice(&x.to_le_bytes()[..(x % 9) as usize]);
            inputs.push(out);
        }
        for b in &inputs {
            for start in 0..b.len().min(3) {
                let mut r = In::new(&b[start..]);
                let got = r.long().ok().map(|v| (v, r.pos));
                assert_eq!(got, reference_long(&b[start..]), "{b:02x?} from {start}");
            }
        }
    }

    #[test]
    fn source_runs_group_repeating_fields() {
        use SourceField as F;
        let debezium: Vec<SourceField> = SOURCE_FIELDS_FOR_TEST.to_vec();
        assert_eq!(
            source_steps(&debezium),
            vec![
                SourceStep::Run(0..3),
                SourceStep::Field(3),
                SourceStep::Run(4..6),
                SourceStep::Field(6),
                SourceStep::Field(7),
                SourceStep::Field(8),
                SourceStep::Run(9..11),
                SourceStep::Field(11),
                SourceStep::Field(12),
                SourceStep::Run(13..16),
            ]
        );
        // A role twice: no runs.
        assert!(source_steps(&[F::Db, F::Db])
            .iter()
            .all(|s| matches!(s, SourceStep::Field(_))));
        assert!(source_steps(&[]).is_empty());
    }

    const SOURCE_FIELDS_FOR_TEST: [SourceField; 16] = [
        SourceField::Version,
        SourceField::Connector,
        SourceField::Name,
        SourceField::TsMs,
        SourceField::Snapshot,
        SourceField::Db,
        SourceField::Sequence,
        SourceField::TsUs,
        SourceField::Other,
        SourceField::Schema,
        SourceField::Table,
        SourceField::TxId,
        SourceField::Lsn,
        SourceField::Xmin,
        SourceField::Origin,
        SourceField::OriginLsn,
    ];

    #[test]
    fn zigzag_matches_spec() {
        for (v, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            zigzag(&mut out, v);
            assert_eq!(out, bytes);
            assert_eq!(In::new(&out).long().ok(), Some(v));
        }
        for v in [i64::MIN, i64::MAX, 123_456_789] {
            let mut out = Vec::new();
            zigzag(&mut out, v);
            assert_eq!(In::new(&out).long().ok(), Some(v));
        }
    }

    #[test]
    fn confluent_frame() {
        let mut out = Vec::new();
        write_confluent_header(258, &mut out);
        out.push(42);
        assert_eq!(out, [0, 0, 0, 1, 2, 42]);
        assert_eq!(split_confluent(&out).ok(), Some((258, &[42u8][..])));
        assert!(split_confluent(&[1, 0, 0, 0, 0]).is_err());
        assert!(split_confluent(&[0, 0]).is_err());
    }
}
