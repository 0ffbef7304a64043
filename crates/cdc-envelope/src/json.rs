//! Kafka Connect JSON (JsonConverter) encoding and decoding of change events.
//!
//! The encoder writes bytes directly (no intermediate `serde_json::Value`)
//! in exactly the field order, number format (Jackson: `1.5`, `1.0E10`,
//! `"NaN"`) and string escaping Kafka Connect produces, with
//! `schemas.enable` on (`{"schema":…,"payload":…}`) or off (payload only).
//! The schema part is serialized once per table plan and cached.
//!
//! The decoder reads Debezium's output back into [`ChangeEvent`]s and a
//! reconstructed [`TableSchema`] (cached per distinct schema text, so the
//! schema is parsed once and the same `Arc<TableSchema>` is returned for
//! every event that carries it).
//!
//! Without schemas (`schemas.enable=false`) the decoder infers a schema from
//! the payload: JSON integers → `int8`, other numbers → `float8`, strings →
//! `text`, booleans → `bool`, `{"scale","value"}` objects → `numeric`, other
//! objects → `jsonb`, arrays → arrays of the first element's type. Temporal
//! values, decimals in `precise` mode (base64), bytes and UUIDs cannot be told
//! apart from plain numbers / strings and arrive as such; key columns are
//! those of the key payload when one is given.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;

use crate::connect::{
    self, Codec, ConnectSchema, ConnectType, Datum, Field, IntFast, Prim, TextFast,
};
use crate::envelope::{self, CachedPlan, PlanCache, TablePlan};
use crate::error::{Error, Path, Result};
use crate::event::{
    ChangeEvent, LogicalMessage, Op, Position, Row, SnapshotMarker, SourceField, SourceInfo,
    TransactionBlock, SOURCE_FIELDS,
};
use crate::intern::StrCache;
use crate::options::Options;
use crate::recycle::{self, Spare};
use crate::schema::{Column, PgType, TableId, TableSchema, TypeKind};
use crate::value::{Array, Str, Value};

const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------- writing

/// Bytes that need escaping in a JSON string (Jackson: `"`, `\\`, controls).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` as a JSON string with Jackson's escaping.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_str_bytes(out, s.as_bytes());
}

/// [`write_str`] over the bytes of a valid UTF-8 string. Clean runs are
/// skipped eight bytes at a time ([`word_needs_escape`]); the byte loop
/// only runs around the bytes that need escaping.
pub(crate) fn write_str_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i - 1]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `w` is one [`NEEDS_ESCAPE`] marks: a
/// control (< 0x20), a quote or a backslash (the "has less than" and "has
/// zero byte" word tricks: exact for "any byte", which is all this asks).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends a decimal integer.
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    while n >= 100 {
        let pair = ((n % 100) * 2) as usize;
        n /= 100;
        i -= 2;
        buf[i] = DIGIT_PAIRS[pair];
        buf[i + 1] = DIGIT_PAIRS[pair + 1];
    }
    if n >= 10 {
        let pair = (n * 2) as usize;
        i -= 2;
        buf[i] = DIGIT_PAIRS[pair];
        buf[i + 1] = DIGIT_PAIRS[pair + 1];
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Java's `Double.toString` / `Float.toString` layout from Rust's shortest
/// round-trip digits: plain for 1e-3 <= |v| < 1e7, else `d.dddE±n`.
pub(crate) fn java_float_text(sci: &str, abs: f64) -> String {
    // `sci` is Rust's `{:e}`: [-]d[.ddd]e[-]n
    let (neg, body) = match sci.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, sci),
    };
    let (mant, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut s = String::with_capacity(digits.len() + 8);
    if neg {
        s.push('-');
    }
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        } else {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        s.push('.');
        if digits.len() > 1 {
            s.push_str(&digits[1..]);
        } else {
            s.push('0');
        }
        s.push('E');
        s.push_str(&exp.to_string());
    }
    s
}

fn write_nonfinite(out: &mut Vec<u8>, v: f64) -> bool {
    if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        return false;
    }
    true
}

/// Appends a double as Jackson writes it.
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if write_nonfinite(out, v) {
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    out.extend_from_slice(java_float_text(&format!("{v:e}"), v.abs()).as_bytes());
}

/// Appends a float as Jackson writes it.
pub(crate) fn write_f32(out: &mut Vec<u8>, v: f32) {
    if write_nonfinite(out, f64::from(v)) {
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    out.extend_from_slice(java_float_text(&format!("{v:e}"), f64::from(v.abs())).as_bytes());
}

/// The common (codec, value) pairs written without going through
/// [`Prim`]; returns `false` when the general path must handle the value.
#[inline]
fn fast_json(out: &mut Vec<u8>, codec: &Codec, v: &Value) -> bool {
    use crate::value::{Date, Numeric, Timestamp};
    match (codec, v) {
        (Codec::Int, Value::Int32(i)) => write_i64(out, i64::from(*i)),
        (Codec::Int, Value::Int64(i)) => write_i64(out, *i),
        (Codec::Int, Value::Int16(i)) => write_i64(out, i64::from(*i)),
        (Codec::Boolean, Value::Bool(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        (Codec::String, Value::Text(s)) => write_str_bytes(out, s.as_bytes()),
        (Codec::String, Value::Numeric(Numeric::Finite(d))) => write_str_bytes(out, d.as_bytes()),
        (Codec::DateDays, Value::Date(Date::Days(d))) => write_i64(out, i64::from(*d)),
        // Values outside i64 µs since 1970 take the general path, which
        // reports them as unrepresentable.
        (Codec::TimestampMillis, Value::Timestamp(t @ Timestamp::PgMicros(_))) => {
            match t.micros_since_unix() {
                Some(m) => write_i64(out, m.div_euclid(1000)),
                None => return false,
            }
        }
        (Codec::TimestampMicros, Value::Timestamp(t @ Timestamp::PgMicros(_))) => {
            match t.micros_since_unix() {
                Some(m) => write_i64(out, m),
                None => return false,
            }
        }
        _ => return false,
    }
    true
}

/// Serializes a Connect schema as JsonConverter's `asJsonSchema` does.
pub fn write_schema(out: &mut Vec<u8>, s: &ConnectSchema) {
    write_schema_field(out, s, None);
}

fn write_schema_field(out: &mut Vec<u8>, s: &ConnectSchema, field: Option<&str>) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(s.ty.as_str().as_bytes());
    out.push(b'"');
    match s.ty {
        ConnectType::Struct => {
            out.extend_from_slice(b",\"fields\":[");
            for (i, f) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_schema_field(out, &f.schema, Some(&f.name));
            }
            out.push(b']');
        }
        ConnectType::Array => {
            out.extend_from_slice(b",\"items\":");
            if let Some(items) = &s.items {
                write_schema(out, items);
            } else {
                out.extend_from_slice(b"null");
            }
        }
        ConnectType::Map => {
            out.extend_from_slice(b",\"keys\":");
            match &s.keys {
                Some(k) => write_schema(out, k),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"values\":");
            match &s.items {
                Some(v) => write_schema(out, v),
                None => out.extend_from_slice(b"null"),
            }
        }
        _ => {}
    }
    out.extend_from_slice(if s.optional {
        b",\"optional\":true"
    } else {
        b",\"optional\":false"
    });
    if let Some(n) = &s.name {
        out.extend_from_slice(b",\"name\":");
        write_str(out, n);
    }
    if let Some(v) = s.version {
        out.extend_from_slice(b",\"version\":");
        write_i64(out, i64::from(v));
    }
    if let Some(d) = &s.doc {
        out.extend_from_slice(b",\"doc\":");
        write_str(out, d);
    }
    if !s.parameters.is_empty() {
        out.extend_from_slice(b",\"parameters\":{");
        for (i, (k, v)) in s.parameters.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_str(out, v);
        }
        out.push(b'}');
    }
    if let Some(d) = &s.default {
        out.extend_from_slice(b",\"default\":");
        write_datum(out, s, d);
    }
    if let Some(f) = field {
        out.extend_from_slice(b",\"field\":");
        write_str(out, f);
    }
    out.push(b'}');
}

/// Writes a datum under its schema (bytes as base64, floats Jackson-style).
pub fn write_datum(out: &mut Vec<u8>, s: &ConnectSchema, d: &Datum) {
    match d {
        Datum::Null => out.extend_from_slice(b"null"),
        Datum::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Datum::Int(i) => write_i64(out, *i),
        Datum::Float(f) if s.ty == ConnectType::Float32 => write_f32(out, *f as f32),
        Datum::Float(f) => write_f64(out, *f),
        Datum::String(t) => write_str(out, t),
        Datum::Bytes(b) => {
            out.push(b'"');
            crate::base64::encode_into(b, out);
            out.push(b'"');
        }
        Datum::Array(items) => {
            out.push(b'[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match &s.items {
                    Some(is) => write_datum(out, is, it),
                    None => write_datum(out, &ConnectSchema::new(ConnectType::String), it),
                }
            }
            out.push(b']');
        }
        Datum::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Datum::String(k) => write_str(out, k),
                    other => {
                        let mut tmp = Vec::new();
                        write_datum(&mut tmp, &ConnectSchema::new(ConnectType::String), other);
                        write_str(out, &String::from_utf8_lossy(&tmp));
                    }
                }
                out.push(b':');
                match &s.items {
                    Some(vs) => write_datum(out, vs, v),
                    None => write_datum(out, &ConnectSchema::new(ConnectType::String), v),
                }
            }
            out.push(b'}');
        }
        Datum::Struct(values) => {
            out.push(b'{');
            for (i, (f, v)) in s.fields.iter().zip(values.iter()).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, &f.name);
                out.push(b':');
                write_datum(out, &f.schema, v);
            }
            out.push(b'}');
        }
    }
}

fn write_prim(
    out: &mut Vec<u8>,
    p: &Prim<'_>,
    codec: &Codec,
    column: &str,
    options: &Options,
) -> Result<()> {
    match p {
        Prim::Null => out.extend_from_slice(b"null"),
        Prim::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Prim::Int(i) => write_i64(out, *i),
        Prim::F32(f) => write_f32(out, *f),
        Prim::F64(f) => write_f64(out, *f),
        Prim::Str(s) => write_str(out, s),
        Prim::Bytes(b) => {
            out.push(b'"');
            crate::base64::encode_into(b, out);
            out.push(b'"');
        }
        Prim::VarDecimal { scale, unscaled } => {
            out.extend_from_slice(b"{\"scale\":");
            write_i64(out, i64::from(*scale));
            out.extend_from_slice(b",\"value\":\"");
            crate::base64::encode_into(unscaled, out);
            out.extend_from_slice(b"\"}");
        }
        Prim::Array(values) => {
            let elem = match codec {
                Codec::Array(e) => e.as_ref(),
                other => other,
            };
            out.push(b'[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let ep = elem.lower(v, column, options)?;
                write_prim(out, &ep, elem, column, options)?;
            }
            out.push(b']');
        }
        Prim::Owned(items) => {
            out.push(b'[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_prim(out, it, codec, column, options)?;
            }
            out.push(b']');
        }
        Prim::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                match v {
                    Some(v) => write_str(out, v),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => write_i64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

pub(crate) fn write_source(out: &mut Vec<u8>, s: &SourceInfo) {
    out.extend_from_slice(b"{\"version\":");
    write_str(out, &s.version);
    out.extend_from_slice(b",\"connector\":");
    write_str(out, &s.connector);
    out.extend_from_slice(b",\"name\":");
    write_str(out, &s.name);
    out.extend_from_slice(b",\"ts_ms\":");
    write_i64(out, s.ts_us.div_euclid(1000));
    out.extend_from_slice(b",\"snapshot\":");
    write_str(out, s.snapshot.as_str());
    out.extend_from_slice(b",\"db\":");
    write_str(out, &s.db);
    out.extend_from_slice(b",\"sequence\":");
    write_opt_str(out, s.sequence.as_deref());
    out.extend_from_slice(b",\"ts_us\":");
    write_i64(out, s.ts_us);
    out.extend_from_slice(b",\"ts_ns\":");
    write_i64(out, s.ts_us.saturating_mul(1000));
    out.extend_from_slice(b",\"schema\":");
    write_str(out, &s.schema);
    out.extend_from_slice(b",\"table\":");
    write_str(out, &s.table);
    out.extend_from_slice(b",\"txId\":");
    write_opt_i64(out, s.tx_id);
    out.extend_from_slice(b",\"lsn\":");
    write_opt_i64(out, s.lsn);
    out.extend_from_slice(b",\"xmin\":");
    write_opt_i64(out, s.xmin);
    out.extend_from_slice(b",\"origin\":");
    write_opt_str(out, s.origin.as_deref());
    out.extend_from_slice(b",\"origin_lsn\":");
    write_opt_i64(out, s.origin_lsn);
    out.push(b'}');
}

fn write_transaction(out: &mut Vec<u8>, t: Option<&TransactionBlock>) {
    match t {
        None => out.extend_from_slice(b"null"),
        Some(t) => {
            out.extend_from_slice(b"{\"id\":");
            write_str(out, &t.id);
            out.extend_from_slice(b",\"total_order\":");
            write_i64(out, t.total_order);
            out.extend_from_slice(b",\"data_collection_order\":");
            write_i64(out, t.data_collection_order);
            out.push(b'}');
        }
    }
}

/// A table plan with its serialized schemas.
#[derive(Debug)]
struct JsonPlan {
    plan: TablePlan,
    key_schema_json: Vec<u8>,
    envelope_schema_json: Vec<u8>,
    /// `"name":` prefixes, JSON-escaped, per column.
    field_prefixes: Vec<Vec<u8>>,
}

impl CachedPlan for JsonPlan {
    fn table_plan(&self) -> &TablePlan {
        &self.plan
    }
}

/// The key and value bytes of one record. A `None` key is a null Kafka key
/// (truncate, tables without key); a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
}

/// Encodes [`ChangeEvent`]s to Kafka Connect JSON, caching serialized
/// schemas per (table id, schema version).
#[derive(Debug)]
pub struct JsonEncoder {
    options: Options,
    plans: PlanCache<JsonPlan>,
    message_key_schema: Vec<u8>,
    message_value_schema: Vec<u8>,
    /// Key and value lengths of the last record [`JsonEncoder::encode`]
    /// built: the next buffers are allocated at about that size instead of
    /// growing by doubling (which copies each record several times and
    /// leaves up to half of every buffer unused while records wait for
    /// Kafka).
    last_sizes: (usize, usize),
}

impl JsonEncoder {
    /// An encoder for these options (topic prefix, modes, `schemas.enable`).
    pub fn new(options: Options) -> Self {
        let mut message_key_schema = Vec::new();
        write_schema(&mut message_key_schema, &envelope::message_key_schema());
        let mut message_value_schema = Vec::new();
        write_schema(&mut message_value_schema, &envelope::message_value_schema());
        Self {
            options,
            plans: PlanCache::default(),
            message_key_schema,
            message_value_schema,
            last_sizes: (64, 512),
        }
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The table plan (Connect schemas) for a table, built and cached on first use.
    pub fn plan(&mut self, table: &Arc<TableSchema>) -> TablePlan {
        self.json_plan(table).plan.clone()
    }

    fn json_plan(&mut self, table: &Arc<TableSchema>) -> Arc<JsonPlan> {
        let build = |plan: TablePlan| {
            let mut key_schema_json = Vec::new();
            if let Some(k) = &plan.key_schema {
                write_schema(&mut key_schema_json, k);
            }
            let mut envelope_schema_json = Vec::new();
            write_schema(&mut envelope_schema_json, &plan.envelope_schema);
            let field_prefixes = plan
                .columns
                .iter()
                .map(|c| {
                    let mut v = Vec::new();
                    write_str(&mut v, &c.name);
                    v.push(b':');
                    v
                })
                .collect();
            JsonPlan {
                plan,
                key_schema_json,
                envelope_schema_json,
                field_prefixes,
            }
        };
        self.plans.get_or_build(table, build, &self.options)
    }

    /// Encodes the record key into `out`. Returns `false` (and writes
    /// nothing) when the key is null: truncates and tables without a key.
    pub fn encode_key_into(&mut self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<bool> {
        let schemas = self.options.key_schemas_enable;
        if ev.op == Op::Message {
            let msg = ev.message.as_ref().ok_or_else(|| Error::InvalidEvent {
                reason: "op m without message".into(),
            })?;
            if schemas {
                out.extend_from_slice(b"{\"schema\":");
                out.extend_from_slice(&self.message_key_schema);
                out.extend_from_slice(b",\"payload\":");
            }
            out.extend_from_slice(b"{\"prefix\":");
            write_str(out, &msg.prefix);
            out.push(b'}');
            if schemas {
                out.push(b'}');
            }
            return Ok(true);
        }
        if ev.op == Op::Truncate {
            return Ok(false);
        }
        let table = ev.table.as_ref().ok_or_else(|| Error::InvalidEvent {
            reason: "event without table".into(),
        })?;
        let jp = self.json_plan(table);
        let plan = &jp.plan;
        if plan.key_indices.is_empty() {
            return Ok(false);
        }
        let row = plan.key_row(ev).ok_or_else(|| Error::InvalidEvent {
            reason: "event without row".into(),
        })?;
        plan.check_row(row)?;
        if schemas {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(&jp.key_schema_json);
            out.extend_from_slice(b",\"payload\":");
        }
        out.push(b'{');
        for (n, &i) in plan.key_indices.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let (Some(prefix), Some(v), Some(col)) =
                (jp.field_prefixes.get(i), row.get(i), plan.columns.get(i))
            else {
                continue;
            };
            out.extend_from_slice(prefix);
            let p = plan.cell(i, v, &self.options)?;
            write_prim(out, &p, &col.codec, &col.name, &self.options)?;
        }
        out.push(b'}');
        if schemas {
            out.push(b'}');
        }
        Ok(true)
    }

    fn write_row(&self, jp: &JsonPlan, row: Option<&Row>, out: &mut Vec<u8>) -> Result<()> {
        let Some(row) = row else {
            out.extend_from_slice(b"null");
            return Ok(());
        };
        let plan = &jp.plan;
        plan.check_row(row)?;
        out.push(b'{');
        for (i, ((v, prefix), col)) in row
            .iter()
            .zip(&jp.field_prefixes)
            .zip(&plan.columns)
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(prefix);
            if fast_json(out, &col.codec, v) {
                continue;
            }
            let p = plan.cell(i, v, &self.options)?;
            write_prim(out, &p, &col.codec, &col.name, &self.options)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Encodes the record value (the envelope) into `out`.
    pub fn encode_value_into(&mut self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<()> {
        let schemas = self.options.value_schemas_enable;
        if ev.op == Op::Message {
            let msg = ev.message.as_ref().ok_or_else(|| Error::InvalidEvent {
                reason: "op m without message".into(),
            })?;
            if schemas {
                out.extend_from_slice(b"{\"schema\":");
                out.extend_from_slice(&self.message_value_schema);
                out.extend_from_slice(b",\"payload\":");
            }
            out.extend_from_slice(b"{\"op\":\"m\",\"ts_ms\":");
            write_i64(out, ev.ts_ns.div_euclid(1_000_000));
            out.extend_from_slice(b",\"source\":");
            write_source(out, &ev.source);
            out.extend_from_slice(b",\"transaction\":");
            write_transaction(out, ev.transaction.as_ref());
            out.extend_from_slice(b",\"message\":{\"prefix\":");
            write_str(out, &msg.prefix);
            out.extend_from_slice(b",\"content\":\"");
            crate::base64::encode_into(&msg.content, out);
            out.extend_from_slice(b"\"}}");
            if schemas {
                out.push(b'}');
            }
            return Ok(());
        }
        let table = ev.table.as_ref().ok_or_else(|| Error::InvalidEvent {
            reason: "event without table".into(),
        })?;
        let jp = self.json_plan(table);
        if schemas {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(&jp.envelope_schema_json);
            out.extend_from_slice(b",\"payload\":");
        }
        out.extend_from_slice(b"{\"before\":");
        self.write_row(&jp, ev.before.as_ref(), out)?;
        out.extend_from_slice(b",\"after\":");
        self.write_row(&jp, ev.after.as_ref(), out)?;
        out.extend_from_slice(b",\"source\":");
        write_source(out, &ev.source);
        out.extend_from_slice(b",\"transaction\":");
        write_transaction(out, ev.transaction.as_ref());
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(ev.op.code().as_bytes());
        out.extend_from_slice(b"\",\"ts_ms\":");
        write_i64(out, ev.ts_ns.div_euclid(1_000_000));
        out.extend_from_slice(b",\"ts_us\":");
        write_i64(out, ev.ts_ns.div_euclid(1_000));
        out.extend_from_slice(b",\"ts_ns\":");
        write_i64(out, ev.ts_ns);
        out.push(b'}');
        if schemas {
            out.push(b'}');
        }
        Ok(())
    }

    /// Encodes key and value. Use [`envelope::tombstone_follows`] to know
    /// whether a tombstone (same key, null value) must follow.
    pub fn encode(&mut self, ev: &ChangeEvent) -> Result<EncodedRecord> {
        // Room for a few more bytes than last time (variable-length
        // columns), so a slightly longer record does not double.
        let (key_len, value_len) = self.last_sizes;
        let mut key = Vec::with_capacity(key_len + 16);
        let has_key = self.encode_key_into(ev, &mut key)?;
        let mut value = Vec::with_capacity(value_len + value_len / 8 + 16);
        self.encode_value_into(ev, &mut value)?;
        self.last_sizes = (key.len(), value.len());
        Ok(EncodedRecord {
            key: has_key.then_some(key),
            value: Some(value),
        })
    }
}

// ---------------------------------------------------------------- reading

/// True when `name` appears in JSON exactly as its bytes (no escapes).
fn is_plain(name: &[u8]) -> bool {
    !name.iter().any(|&c| NEEDS_ESCAPE[c as usize])
}

/// Index of the first byte at or after `i` that ends the plain part of a
/// JSON string (`"`, `\\` or a control character), or `b.len()`. (A
/// byte loop: word-at-a-time scanning measured slower on these short
/// strings.)
#[inline]
fn scan_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if NEEDS_ESCAPE[c as usize] {
            break;
        }
        i += 1;
    }
    i
}

/// The value of eight ASCII digits loaded little-endian (first digit in the
/// lowest byte): pairs, then quads, then the eight combined by three
/// multiply-shift steps.
#[inline(always)]
fn eight_digits(w: u64) -> u64 {
    let w = ((w & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(2561)) >> 8;
    let w = ((w & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601)) >> 16;
    ((w & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001)) >> 32
}

/// A byte-level JSON pull reader with checked reads and a depth limit.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// The buffer `b` is, when it is shared: strings are then handed out as
    /// zero-copy slices of it.
    src: Option<&'a Bytes>,
}

/// A JSON number as read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num<'a> {
    Int(i64),
    Float(f64, &'a str),
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            pos: 0,
            depth: 0,
            src: None,
        }
    }

    /// A reader over shared bytes: [`Reader::text`] returns slices of them.
    pub(crate) fn shared(src: &'a Bytes) -> Self {
        Self {
            b: src.as_ref(),
            pos: 0,
            depth: 0,
            src: Some(src),
        }
    }

    /// Scans a string without escapes: its content's byte range, with the
    /// reader on the closing quote; `None` (reader unmoved past the opening
    /// quote) when it has an escape.
    #[inline]
    fn plain_span(&mut self) -> Result<Option<(usize, usize)>> {
        let start = self.pos;
        let end = scan_plain(self.b, start);
        match self.b.get(end) {
            Some(b'"') => {
                self.pos = end;
                Ok(Some((start, end)))
            }
            Some(0..=0x1f) => {
                self.pos = end;
                Err(self.err("control character in string"))
            }
            _ => Ok(None),
        }
    }

    /// A string value as a [`Str`]: a zero-copy slice of the input when the
    /// reader is [`Reader::shared`] and the string has no escapes, else a
    /// copy (unescaped).
    #[inline]
    pub(crate) fn text(&mut self) -> Result<Str> {
        self.expect(b'"')?;
        if let Some((a, b)) = self.plain_span()? {
            let s = match self.src {
                Some(src) => Str::from_utf8(src.slice(a..b)).ok(),
                None => self
                    .b
                    .get(a..b)
                    .and_then(|raw| std::str::from_utf8(raw).ok())
                    .map(Str::from),
            }
            .ok_or_else(|| self.err("invalid UTF-8"))?;
            self.pos += 1;
            return Ok(s);
        }
        self.pos -= 1;
        self.string().map(|s| Str::from(s.into_owned()))
    }

    /// A string value that repeats from record to record (or `null`:
    /// empty) into `slot`: left alone when equal, else shared through
    /// `cache`.
    #[inline]
    fn interned_into(&mut self, cache: &mut StrCache, hint: usize, slot: &mut Str) -> Result<()> {
        if self.null()? {
            *slot = Str::default();
            return Ok(());
        }
        self.expect(b'"')?;
        if let Some((a, b)) = self.plain_span()? {
            recycle::set_interned(slot, self.b.get(a..b).unwrap_or_default(), cache, hint)
                .map_err(|_| self.err("invalid UTF-8"))?;
            self.pos += 1;
            return Ok(());
        }
        self.pos -= 1;
        let s = self.string()?;
        recycle::set_interned(slot, s.as_bytes(), cache, hint)
            .map_err(|_| self.err("invalid UTF-8"))
    }

    #[inline]
    fn opt_text(&mut self) -> Result<Option<Str>> {
        if self.null()? {
            return Ok(None);
        }
        self.text().map(Some)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::InvalidJson {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected '{}'", c as char)))
        }
    }

    pub(crate) fn end(&mut self) -> Result<()> {
        if self.peek().is_some() {
            return Err(self.err("trailing characters"));
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Consumes `null` if it is next.
    #[inline]
    pub(crate) fn null(&mut self) -> Result<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn boolean(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|_| true),
            Some(b'f') => self.literal(b"false").map(|_| false),
            _ => Err(self.err("expected a boolean")),
        }
    }

    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        // Fast path: no escapes.
        self.pos = scan_plain(self.b, start);
        match self.b.get(self.pos) {
            Some(b'"') => {
                let s = std::str::from_utf8(self.b.get(start..self.pos).unwrap_or_default())
                    .map_err(|_| self.err("invalid UTF-8"))?;
                self.pos += 1;
                return Ok(Cow::Borrowed(s));
            }
            Some(0..=0x1f) => return Err(self.err("control character in string")),
            _ => {}
        }
        // Room for the rest too (short strings with escapes, such as
        // `source.sequence`, then need no reallocation).
        let plain = self.b.get(start..self.pos).unwrap_or_default();
        let mut out: Vec<u8> = Vec::with_capacity(plain.len() + 32);
        out.extend_from_slice(plain);
        loop {
            let Some(&c) = self.b.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.pos) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid low surrogate"));
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            let ch =
                                char::from_u32(cp).ok_or_else(|| self.err("invalid code point"))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0..=0x1f => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| self.err("invalid UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let h = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let s = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    pub(crate) fn number(&mut self) -> Result<Num<'a>> {
        self.ws();
        let start = self.pos;
        // Single pass for plain integers of up to 19 digits (no u64
        // overflow possible) that fit an i64.
        {
            let mut i = self.pos;
            let neg = self.b.get(i) == Some(&b'-');
            if neg {
                i += 1;
            }
            let digits_start = i;
            let mut v: u64 = 0;
            // Eight digits at a time while there are eight (timestamps and
            // LSNs have 9 to 19), then byte by byte.
            while let Some(w) = self.b.get(i..).and_then(|r| r.first_chunk::<8>()) {
                let w = u64::from_le_bytes(*w);
                let nibbles = (w & 0xf0f0_f0f0_f0f0_f0f0)
                    | ((w.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0) >> 4);
                if nibbles != 0x3333_3333_3333_3333 {
                    break;
                }
                v = v.wrapping_mul(100_000_000).wrapping_add(eight_digits(w));
                i += 8;
            }
            while let Some(&c) = self.b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                v = v.wrapping_mul(10).wrapping_add(u64::from(d));
                i += 1;
            }
            let n = i - digits_start;
            let done = !matches!(self.b.get(i), Some(b'.' | b'e' | b'E' | b'+' | b'-'));
            if n > 0 && n <= 19 && done {
                if !neg && v <= i64::MAX as u64 {
                    self.pos = i;
                    return Ok(Num::Int(v as i64));
                }
                if neg && v <= 1u64 << 63 {
                    self.pos = i;
                    return Ok(Num::Int((v as i64).wrapping_neg()));
                }
            }
        }
        let mut is_float = false;
        while let Some(&c) = self.b.get(self.pos) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => is_float = true,
                _ => break,
            }
            self.pos += 1;
        }
        let raw = &self.b[start..self.pos];
        if raw.is_empty() {
            return Err(self.err("expected a number"));
        }
        if !is_float {
            // Fast path: plain integers without going through `str`.
            let (neg, digits) = match raw {
                [b'-', rest @ ..] => (true, rest),
                _ => (false, raw),
            };
            if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
                let mut v: i64 = 0;
                for d in digits {
                    v = v * 10 + i64::from(d - b'0');
                }
                return Ok(Num::Int(if neg { -v } else { v }));
            }
        }
        let text = std::str::from_utf8(raw).map_err(|_| self.err("invalid number"))?;
        if !is_float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Num::Int(i));
            }
        }
        let f = text.parse::<f64>().map_err(|_| Error::InvalidJson {
            offset: start,
            reason: "invalid number".into(),
        })?;
        Ok(Num::Float(f, text))
    }

    /// Skips one value; returns its byte span.
    pub(crate) fn skip(&mut self) -> Result<(usize, usize)> {
        self.ws();
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip().map(|_| ()))?,
            Some(b'[') => self.array(|r| r.skip().map(|_| ()))?,
            Some(b'"') => {
                self.string()?;
            }
            Some(b't' | b'f') => {
                self.boolean()?;
            }
            Some(b'n') => {
                self.null()?;
            }
            Some(_) => {
                self.number()?;
            }
            None => return Err(self.err("unexpected end of input")),
        }
        Ok((start, self.pos))
    }

    pub(crate) fn object(
        &mut self,
        mut f: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.expect(b'{')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            let k = self.string()?;
            self.expect(b':')?;
            f(self, k)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// An object key as raw bytes (borrowed unless it has escapes).
    #[inline]
    fn key(&mut self) -> Result<Cow<'a, [u8]>> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = scan_plain(self.b, start);
        match self.b.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                return Ok(Cow::Borrowed(self.b.get(start..end).unwrap_or_default()));
            }
            Some(0..=0x1f) => {
                self.pos = end;
                return Err(self.err("control character in string"));
            }
            _ => {}
        }
        self.pos = start - 1;
        let s = self.string()?;
        Ok(Cow::Owned(s.into_owned().into_bytes()))
    }

    /// Consumes the key `"name"` if it is next, byte for byte. `name` must
    /// be plain (no `"`, `\\` or control characters: see [`is_plain`]), so
    /// the raw bytes are the key itself.
    #[inline]
    fn key_is(&mut self, name: &[u8]) -> bool {
        self.ws();
        let start = self.pos;
        let Some(end) = start.checked_add(name.len() + 2) else {
            return false;
        };
        match self.b.get(start..end) {
            Some([b'"', middle @ .., b'"']) if recycle::same_bytes(middle, name) => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }

    /// Like [`Reader::object`] with keys as raw bytes (no UTF-8 check: keys
    /// are only compared with known ASCII names), for objects whose keys
    /// usually come in a known order: `expected()` names the likely next key
    /// (a plain name, or `None`); when it is there it is matched without
    /// scanning and `f` is told so (`true`).
    pub(crate) fn object_hinted<'n>(
        &mut self,
        expected: impl Fn() -> Option<&'n [u8]>,
        mut f: impl FnMut(&mut Self, &[u8], bool) -> Result<()>,
    ) -> Result<()> {
        self.expect(b'{')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            match expected() {
                Some(name) if self.key_is(name) => {
                    self.expect(b':')?;
                    f(self, name, true)?;
                }
                _ => {
                    let k = self.key()?;
                    self.expect(b':')?;
                    f(self, &k, false)?;
                }
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    pub(crate) fn array(&mut self, mut f: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.expect(b'[')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    #[inline]
    fn i64_value(&mut self, path: &Path) -> Result<i64> {
        match self.number()? {
            Num::Int(i) => Ok(i),
            Num::Float(_, t) => Err(Error::mismatch(path, "an integer", t.to_owned())),
        }
    }

    #[inline]
    fn opt_i64(&mut self, path: &Path) -> Result<Option<i64>> {
        if self.null()? {
            return Ok(None);
        }
        self.i64_value(path).map(Some)
    }

    fn opt_string(&mut self) -> Result<Option<String>> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(|s| Some(s.into_owned()))
    }

    fn found(&mut self) -> String {
        match self.peek() {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b't' | b'f') => "boolean",
            Some(b'n') => "null",
            Some(_) => "number",
            None => "end of input",
        }
        .to_owned()
    }
}

/// Parses a JsonConverter schema.
pub fn parse_schema(json: &[u8]) -> Result<ConnectSchema> {
    let mut r = Reader::new(json);
    let s = read_schema(&mut r, &Path::from("schema"))?.0;
    r.end()?;
    Ok(s)
}

fn read_schema<'a>(r: &mut Reader<'a>, path: &Path) -> Result<(ConnectSchema, Option<String>)> {
    let mut ty: Option<ConnectType> = None;
    let mut s = ConnectSchema::new(ConnectType::String);
    let mut field_name = None;
    let mut default_span: Option<(usize, usize)> = None;
    let bytes = r.b;
    r.object(|r, key| {
        match key.as_ref() {
            "type" => {
                let t = r.string()?;
                ty = Some(ConnectType::parse(&t).ok_or_else(|| {
                    Error::schema(&path.join("type"), "a Connect type name", t.as_ref())
                })?);
            }
            "optional" => s.optional = r.boolean()?,
            "name" => s.name = r.opt_string()?,
            "version" => {
                s.version = r
                    .opt_i64(&path.join("version"))?
                    .map(|v| {
                        i32::try_from(v).map_err(|_| {
                            Error::schema(&path.join("version"), "an int32", v.to_string())
                        })
                    })
                    .transpose()?
            }
            "doc" => s.doc = r.opt_string()?,
            "field" => field_name = r.opt_string()?,
            "parameters" => {
                if !r.null()? {
                    r.object(|r, k| {
                        let v = r.string()?;
                        s.parameters.push((k.into_owned(), v.into_owned()));
                        Ok(())
                    })?;
                }
            }
            "fields" => {
                let fp = path.join("fields");
                r.array(|r| {
                    let (fs, name) = read_schema(r, &fp)?;
                    let name =
                        name.ok_or_else(|| Error::schema(&fp, "a \"field\" name", "none"))?;
                    s.fields.push(Field::new(name, fs));
                    Ok(())
                })?;
            }
            "items" | "values" => s.items = Some(Box::new(read_schema(r, &path.join(&key))?.0)),
            "keys" => s.keys = Some(Box::new(read_schema(r, &path.join("keys"))?.0)),
            "default" => default_span = Some(r.skip()?),
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    s.ty = ty.ok_or_else(|| Error::schema(path, "a \"type\"", "none"))?;
    if let Some((a, b)) = default_span {
        let mut dr = Reader::new(bytes.get(a..b).unwrap_or_default());
        let d = read_datum(&mut dr, &s, &path.join("default"))?;
        if d != Datum::Null {
            s.default = Some(d);
        }
    }
    Ok((s, field_name))
}

fn read_datum(r: &mut Reader<'_>, s: &ConnectSchema, path: &Path) -> Result<Datum> {
    if r.null()? {
        return Ok(Datum::Null);
    }
    use ConnectType as T;
    Ok(match s.ty {
        T::Boolean => Datum::Bool(r.boolean()?),
        T::Int8 | T::Int16 | T::Int32 | T::Int64 => Datum::Int(r.i64_value(path)?),
        T::Float32 | T::Float64 => match r.peek() {
            Some(b'"') => Datum::Float(special_float(&r.string()?, path)?),
            _ => Datum::Float(match r.number()? {
                Num::Int(i) => i as f64,
                Num::Float(f, _) => f,
            }),
        },
        T::String => Datum::String(r.string()?.into_owned()),
        T::Bytes => {
            let s = r.string()?;
            Datum::Bytes(
                crate::base64::decode(s.as_bytes())
                    .map_err(|_| Error::mismatch(path, "base64 bytes", s.as_ref()))?,
            )
        }
        T::Array => {
            let mut items = Vec::new();
            let is = s
                .items
                .as_deref()
                .cloned()
                .unwrap_or_else(|| ConnectSchema::new(T::String));
            r.array(|r| {
                items.push(read_datum(r, &is, path)?);
                Ok(())
            })?;
            Datum::Array(items)
        }
        T::Map => {
            let mut entries = Vec::new();
            let vs = s
                .items
                .as_deref()
                .cloned()
                .unwrap_or_else(|| ConnectSchema::new(T::String));
            r.object(|r, k| {
                entries.push((Datum::String(k.into_owned()), read_datum(r, &vs, path)?));
                Ok(())
            })?;
            Datum::Map(entries)
        }
        T::Struct => {
            let mut values = vec![Datum::Null; s.fields.len()];
            r.object(|r, k| {
                match s.fields.iter().position(|f| f.name == k) {
                    Some(i) => {
                        let v = read_datum(r, &s.fields[i].schema, &path.join(&k))?;
                        if let Some(slot) = values.get_mut(i) {
                            *slot = v;
                        }
                    }
                    None => {
                        r.skip()?;
                    }
                }
                Ok(())
            })?;
            Datum::Struct(values)
        }
    })
}

fn special_float(s: &str, path: &Path) -> Result<f64> {
    match s {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(Error::mismatch(
            path,
            "a number, \"NaN\" or \"Infinity\"",
            other.to_owned(),
        )),
    }
}

/// Reads one value per `codec` into a primitive.
fn read_prim<'a>(r: &mut Reader<'a>, codec: &Codec, path: &Path) -> Result<Prim<'a>> {
    if r.null()? {
        return Ok(Prim::Null);
    }
    let mismatch = |r: &mut Reader<'a>, what: &str| {
        let f = r.found();
        Error::mismatch(path, what, f)
    };
    Ok(match codec {
        Codec::Boolean => match r.peek() {
            Some(b't' | b'f') => Prim::Bool(r.boolean()?),
            _ => return Err(mismatch(r, "a boolean")),
        },
        Codec::Int
        | Codec::DateDays
        | Codec::TimeMillis
        | Codec::TimeMicros
        | Codec::TimeNanos
        | Codec::TimestampMillis
        | Codec::TimestampMicros
        | Codec::TimestampNanos
        | Codec::IntervalMicros => match r.peek() {
            Some(b'-' | b'0'..=b'9') => Prim::Int(r.i64_value(path)?),
            _ => return Err(mismatch(r, "an integer")),
        },
        Codec::Float32 | Codec::Float64 => {
            let f = match r.peek() {
                Some(b'"') => special_float(&r.string()?, path)?,
                Some(b'-' | b'0'..=b'9') => match r.number()? {
                    Num::Int(i) => i as f64,
                    Num::Float(f, _) => f,
                },
                _ => return Err(mismatch(r, "a number")),
            };
            if matches!(codec, Codec::Float32) {
                Prim::F32(f as f32)
            } else {
                Prim::F64(f)
            }
        }
        Codec::Bytes | Codec::Bits { .. } => match r.peek() {
            Some(b'"') => {
                let s = r.string()?;
                Prim::Bytes(Cow::Owned(
                    crate::base64::decode(s.as_bytes())
                        .map_err(|_| Error::mismatch(path, "base64 bytes", s.as_ref()))?,
                ))
            }
            _ => return Err(mismatch(r, "a base64 string")),
        },
        Codec::Decimal { scale } => match r.peek() {
            Some(b'"') => {
                let s = r.string()?;
                Prim::Bytes(Cow::Owned(
                    crate::base64::decode(s.as_bytes())
                        .map_err(|_| Error::mismatch(path, "base64 bytes", s.as_ref()))?,
                ))
            }
            // decimal.format=NUMERIC
            Some(b'-' | b'0'..=b'9') => {
                let text = match r.number()? {
                    Num::Int(i) => i.to_string(),
                    Num::Float(_, t) => t.to_owned(),
                };
                let d = crate::value::Decimal::parse(&text)
                    .and_then(|d| connect::rescale(&d, *scale))
                    .ok_or_else(|| Error::mismatch(path, "a plain decimal number", text.clone()))?;
                Prim::Bytes(Cow::Owned(d.to_unscaled_be_bytes()))
            }
            _ => return Err(mismatch(r, "a base64 string")),
        },
        Codec::VariableScaleDecimal => {
            if r.peek() != Some(b'{') {
                return Err(mismatch(r, "a {\"scale\",\"value\"} object"));
            }
            let mut scale = None;
            let mut unscaled = None;
            r.object(|r, k| {
                match k.as_ref() {
                    "scale" => scale = Some(r.i64_value(&path.join("scale"))?),
                    "value" => {
                        let s = r.string()?;
                        unscaled = Some(crate::base64::decode(s.as_bytes()).map_err(|_| {
                            Error::mismatch(&path.join("value"), "base64 bytes", s.as_ref())
                        })?);
                    }
                    _ => {
                        r.skip()?;
                    }
                }
                Ok(())
            })?;
            let scale = scale.ok_or_else(|| Error::MissingField {
                path: path.join("scale"),
            })?;
            let unscaled = unscaled.ok_or_else(|| Error::MissingField {
                path: path.join("value"),
            })?;
            Prim::VarDecimal {
                scale: i32::try_from(scale)
                    .map_err(|_| Error::mismatch(path, "an int32 scale", scale.to_string()))?,
                unscaled,
            }
        }
        Codec::HstoreMap => {
            if r.peek() != Some(b'{') {
                return Err(mismatch(r, "an object"));
            }
            let mut m = Vec::new();
            r.object(|r, k| {
                let v = r.opt_string()?;
                m.push((k.into_owned(), v));
                Ok(())
            })?;
            Prim::Map(m)
        }
        Codec::Array(elem) => {
            if r.peek() != Some(b'[') {
                return Err(mismatch(r, "an array"));
            }
            let mut items = Vec::new();
            r.array(|r| {
                items.push(read_prim(r, elem, path)?.to_static());
                Ok(())
            })?;
            Prim::Owned(items)
        }
        Codec::String
        | Codec::BinaryString(_)
        | Codec::HstoreJson
        | Codec::DateIso
        | Codec::TimeIso
        | Codec::TimestampIso
        | Codec::ZonedTimestamp { .. }
        | Codec::ZonedTime
        | Codec::IntervalString => match r.peek() {
            Some(b'"') => Prim::Str(r.string()?),
            _ => return Err(mismatch(r, "a string")),
        },
    })
}

/// Lifts a primitive into a value, recursing into arrays.
pub(crate) fn lift(
    codec: &Codec,
    p: Prim<'_>,
    pg: &PgType,
    path: &Path,
    options: &Options,
) -> Result<Value> {
    if let (Codec::Array(elem), Prim::Owned(items)) = (codec, &p) {
        if codec.is_placeholder(&p, options) {
            return Ok(Value::Unavailable);
        }
        let elem_pg = match &pg.kind {
            TypeKind::Array(e) => e.as_ref().clone(),
            _ => PgType::base(25, "text"),
        };
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            out.push(lift(elem, it.clone(), &elem_pg, path, options)?);
        }
        return Ok(Value::Array(Array::one_dim(out)));
    }
    codec.lift(p, pg, path, options)
}

/// A decoded column: how to read it.
#[derive(Debug)]
struct DecodeColumn {
    codec: Codec,
    /// The direct path for string values, decided once per plan.
    fast: TextFast,
    /// The direct path for integer values.
    int: IntFast,
    /// The column name needs no JSON escapes (it can be matched raw).
    plain_name: bool,
}

impl DecodeColumn {
    fn new(codec: Codec, pg: &PgType, name: &str) -> Self {
        let fast = TextFast::of(&codec, pg);
        let int = IntFast::of(&codec, pg);
        Self {
            codec,
            fast,
            int,
            plain_name: is_plain(name.as_bytes()),
        }
    }
}

/// A reconstructed table with its decoding rules.
#[derive(Debug)]
struct DecodePlan {
    table: Arc<TableSchema>,
    columns: Vec<DecodeColumn>,
    message: bool,
}

/// One decoded Kafka record. The default is an empty record (no event, no
/// key), the starting point of [`JsonDecoder::decode_bytes_into`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedRecord {
    /// The event; `None` for a tombstone.
    pub event: Option<ChangeEvent>,
    /// The key values in key-column order (`None` for a null key).
    pub key: Option<Row>,
    /// The topic prefix (`source.name`), when known.
    pub topic_prefix: Option<Str>,
}

/// Decodes Debezium JSON (with or without schemas) into [`ChangeEvent`]s.
///
/// Strings of the decoded event are zero-copy slices of the record when it
/// is given as [`Bytes`] ([`JsonDecoder::decode_bytes`]); from a `&[u8]`
/// ([`JsonDecoder::decode`]) the payload is copied once into one shared
/// buffer and sliced from there. The `source` block's repeating strings
/// (`version`, `connector`, `name`, `db`, `schema`, `table`) come from a
/// small bounded cache shared by all events.
#[derive(Debug)]
pub struct JsonDecoder {
    options: Options,
    cache: HashMap<(u64, u64), Arc<DecodePlan>>,
    recent: Vec<Cached>,
    strings: StrCache,
    spare: Spare,
    source_memo: JsonSourceMemo,
    payload_path: Path,
}

/// Schema bytes seen recently and their plan.
#[derive(Debug)]
struct Cached {
    value_schema: Vec<u8>,
    key_schema: Option<Vec<u8>>,
    schemaless_key: bool,
    plan: Arc<DecodePlan>,
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// The payload of a record as shared bytes: a slice of `shared` when the
/// record came as [`Bytes`], else one copy of `range` of `value`.
fn payload_bytes(value: &[u8], shared: Option<&Bytes>, range: std::ops::Range<usize>) -> Bytes {
    match shared {
        Some(b) if range.end <= b.len() && range.start <= range.end => b.slice(range),
        _ => Bytes::copy_from_slice(value.get(range).unwrap_or_default()),
    }
}

impl JsonDecoder {
    /// A decoder. Only `unavailable.value.placeholder` matters here: values
    /// equal to it become [`Value::Unavailable`].
    pub fn new(options: Options) -> Self {
        Self {
            options,
            cache: HashMap::new(),
            recent: Vec::new(),
            strings: StrCache::default(),
            spare: Spare::default(),
            source_memo: JsonSourceMemo::default(),
            payload_path: Path::from("payload"),
        }
    }

    /// The fast path: the record carries schemas already seen, byte for
    /// byte (Kafka Connect writes them identically for every event).
    fn cached(
        &self,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Option<(Arc<DecodePlan>, std::ops::Range<usize>)> {
        const HEAD: &[u8] = b"{\"schema\":";
        const MID: &[u8] = b",\"payload\":";
        let rest = value.strip_prefix(HEAD)?;
        if value.last() != Some(&b'}') {
            return None;
        }
        for c in self.recent.iter().rev() {
            let Some(after) = rest.strip_prefix(c.value_schema.as_slice()) else {
                continue;
            };
            if !after.starts_with(MID) {
                continue;
            }
            let key_ok = match (key, &c.key_schema) {
                (None, _) => true,
                (Some(k), Some(ks)) => k
                    .strip_prefix(HEAD)
                    .and_then(|r| r.strip_prefix(ks.as_slice()))
                    .is_some_and(|r| r.starts_with(MID)),
                // A key without schema: the plan's key columns came from
                // such a key's field names.
                (Some(k), None) => c.schemaless_key && !k.starts_with(HEAD),
            };
            if !key_ok {
                continue;
            }
            let start = HEAD.len() + c.value_schema.len() + MID.len();
            return Some((Arc::clone(&c.plan), start..value.len() - 1));
        }
        None
    }

    /// Decodes one record from its key and value bytes (`None` = null).
    /// The payload is copied once; prefer [`JsonDecoder::decode_bytes`]
    /// when the record is already in [`Bytes`].
    pub fn decode(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<DecodedRecord> {
        let mut out = DecodedRecord::default();
        self.decode_inner(key, value, None, &mut out)?;
        Ok(out)
    }

    /// Like [`JsonDecoder::decode`], with the value as shared bytes: the
    /// event's strings (text columns, decimals, `source.sequence`, ...) are
    /// zero-copy slices of `value` unless they contain JSON escapes.
    pub fn decode_bytes(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&Bytes>,
    ) -> Result<DecodedRecord> {
        let mut out = DecodedRecord::default();
        self.decode_inner(key, value.map(|b| b.as_ref()), value, &mut out)?;
        Ok(out)
    }

    /// Like [`JsonDecoder::decode_bytes`], decoding into `out` and reusing
    /// what it holds from a previous call instead of allocating: the
    /// event's row `Vec`s and the key `Vec` are refilled, the `source`
    /// block's repeating strings, the topic prefix and the table `Arc` are
    /// kept when unchanged, and rows (or a whole event, for a tombstone)
    /// the record does not have go to a small pool in the decoder for the
    /// next record that has them. The result is exactly the record
    /// [`JsonDecoder::decode_bytes`] returns; nothing of the previous record
    /// survives. Start from [`DecodedRecord::default`].
    ///
    /// On error `out` is empty (`event`, `key` and `topic_prefix` are
    /// `None`; its allocations are kept by the decoder for the next call)
    /// and the error is the one [`JsonDecoder::decode_bytes`] returns. An
    /// empty `out` after an error is not a tombstone: the call failed.
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
    /// let record = JsonEncoder::new(Options::with_prefix("pgsource")).encode(&ev)?;
    /// let value = bytes::Bytes::from(record.value.expect("value"));
    ///
    /// let mut dec = JsonDecoder::new(Options::with_prefix("pgsource"));
    /// let mut out = DecodedRecord::default(); // reused for every record
    /// for _ in 0..3 {
    ///     dec.decode_bytes_into(record.key.as_deref(), Some(&value), &mut out)?;
    ///     assert_eq!(out.event.as_ref().expect("not a tombstone").after, ev.after);
    ///     assert_eq!(out.key, Some(vec![Value::Int32(1)]));
    /// }
    /// # Ok::<(), cdc_envelope::Error>(())
    /// ```
    pub fn decode_bytes_into(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&Bytes>,
        out: &mut DecodedRecord,
    ) -> Result<()> {
        let res = self.decode_inner(key, value.map(|b| b.as_ref()), value, out);
        if let Err(e) = res {
            self.spare.discard(&mut out.event);
            self.spare.drop_row(&mut out.key);
            out.topic_prefix = None;
            return Err(e);
        }
        Ok(())
    }

    /// Decodes the payload at `range` of `value` with `plan` into `out`.
    fn decode_record(
        &mut self,
        plan: &DecodePlan,
        value: &[u8],
        shared: Option<&Bytes>,
        range: std::ops::Range<usize>,
        out: &mut DecodedRecord,
    ) -> Result<()> {
        let payload = payload_bytes(value, shared, range);
        let ev = self.spare.event_in(&mut out.event);
        self.decode_payload(plan, &payload, ev)?;
        key_into(ev, &mut out.key, &mut self.spare);
        let name = Some(&ev.source.name).filter(|s| !s.is_empty());
        recycle::set_opt_str(&mut out.topic_prefix, name);
        Ok(())
    }

    fn decode_inner(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        shared: Option<&Bytes>,
        out: &mut DecodedRecord,
    ) -> Result<()> {
        if let Some(v) = value {
            if let Some((plan, range)) = self.cached(key, v) {
                return self.decode_record(&plan, v, shared, range, out);
            }
        }
        // Key first: it tells which columns are key columns.
        let key_parts = match key {
            Some(k) => Some(split_envelope(k)?),
            None => None,
        };
        let key_schema = match &key_parts {
            Some(Parts {
                schema: Some((a, b)),
                ..
            }) => key.and_then(|k| k.get(*a..*b)),
            _ => None,
        };
        let key_names: Option<Vec<String>> = match (key_schema, &key_parts, key) {
            (Some(ks), _, _) => Some(
                parse_schema(ks)?
                    .fields
                    .into_iter()
                    .map(|f| f.name)
                    .collect(),
            ),
            (
                None,
                Some(Parts {
                    payload: Some((a, b)),
                    ..
                }),
                Some(k),
            ) => {
                let mut names = Vec::new();
                let mut r = Reader::new(k.get(*a..*b).unwrap_or_default());
                if r.peek() == Some(b'{') {
                    r.object(|r, name| {
                        names.push(name.into_owned());
                        r.skip().map(|_| ())
                    })?;
                }
                Some(names)
            }
            _ => None,
        };
        let Some(value) = value else {
            // Tombstone.
            let key_row = match (&key_parts, key) {
                (
                    Some(Parts {
                        payload: Some((a, b)),
                        ..
                    }),
                    Some(k),
                ) => Some(self.schemaless_row(k.get(*a..*b).unwrap_or_default())?),
                _ => None,
            };
            self.spare.discard(&mut out.event);
            out.key = key_row;
            out.topic_prefix = None;
            return Ok(());
        };
        let parts = split_envelope(value)?;
        let (pa, pb) = parts.payload.ok_or_else(|| Error::MissingField {
            path: Path::from("payload"),
        })?;
        let payload = value.get(pa..pb).unwrap_or_default();
        let plan = match parts.schema {
            Some((a, b)) => {
                let schema_bytes = value.get(a..b).unwrap_or_default();
                let kh = key_schema.map_or(0, hash_bytes);
                let cache_key = (hash_bytes(schema_bytes), kh);
                let plan = match self.cache.get(&cache_key) {
                    Some(p) => Arc::clone(p),
                    None => {
                        let schema = parse_schema(schema_bytes)?;
                        let plan = Arc::new(build_plan(&schema, key_names.as_deref(), payload)?);
                        if self.cache.len() > 4096 {
                            self.cache.clear();
                        }
                        self.cache.insert(cache_key, Arc::clone(&plan));
                        plan
                    }
                };
                if self.recent.len() >= 16 {
                    self.recent.remove(0);
                }
                self.recent.push(Cached {
                    value_schema: schema_bytes.to_vec(),
                    key_schema: key_schema.map(<[u8]>::to_vec),
                    schemaless_key: key.is_some() && key_schema.is_none(),
                    plan: Arc::clone(&plan),
                });
                Some(plan)
            }
            None => None,
        };
        let plan = match plan {
            Some(p) => p,
            None => Arc::new(infer_plan(payload, key_names.as_deref())?),
        };
        self.decode_record(&plan, value, shared, pa..pb, out)
    }

    /// Decodes a value alone (keys unknown: no column is marked as key).
    pub fn decode_value(&mut self, value: &[u8]) -> Result<ChangeEvent> {
        self.decode(None, Some(value))?
            .event
            .ok_or_else(|| Error::InvalidEvent {
                reason: "no value".into(),
            })
    }

    fn schemaless_row(&self, payload: &[u8]) -> Result<Row> {
        let mut r = Reader::new(payload);
        if r.null()? {
            return Ok(Vec::new());
        }
        let mut row = Vec::new();
        let path = Path::from("key");
        r.object(|r, k| {
            let (pg, codec) = infer_type(r.clone_at())?;
            let p = read_prim(r, &codec, &path.join(&k))?;
            row.push(lift(&codec, p, &pg, &path, &self.options)?);
            Ok(())
        })?;
        Ok(row)
    }

    /// Decodes a payload into `ev`, overwriting all of it (rows refilled,
    /// unchanged `source` strings and table kept).
    fn decode_payload(
        &mut self,
        plan: &DecodePlan,
        payload: &Bytes,
        ev: &mut ChangeEvent,
    ) -> Result<()> {
        let Self {
            options,
            strings,
            spare,
            source_memo,
            payload_path: p,
            ..
        } = self;
        let options = &*options;
        let p = &*p;
        let mut r = Reader::shared(payload);
        let mut op = None;
        let (mut has_before, mut has_after, mut has_source) = (false, false, false);
        let mut transaction = None;
        let mut ts_ms = None;
        let mut ts_us = None;
        let mut ts_ns = None;
        let mut message = None;
        // Debezium's field order: each key is usually matched without a scan.
        const ORDER: [&[u8]; 8] = [
            b"before",
            b"after",
            b"source",
            b"transaction",
            b"op",
            b"ts_ms",
            b"ts_us",
            b"ts_ns",
        ];
        let seen = std::cell::Cell::new(0usize);
        let expected = || ORDER.get(seen.get()).copied();
        r.object_hinted(expected, |r, k, _| {
            seen.set(seen.get() + 1);
            match k {
                b"op" => {
                    let code = r.string()?;
                    op = Some(Op::from_code(&code).ok_or_else(|| {
                        Error::mismatch(&p.join("op"), "one of c u d r t m", code.as_ref())
                    })?);
                }
                b"before" => {
                    has_before = true;
                    read_row(r, plan, options, p, "before", spare, &mut ev.before)?
                }
                b"after" => {
                    has_after = true;
                    read_row(r, plan, options, p, "after", spare, &mut ev.after)?
                }
                b"source" => {
                    has_source = true;
                    read_source_memo(r, p, strings, source_memo, &mut ev.source)
                        .map_err(|e| e.within("source"))?
                }
                b"transaction" => {
                    transaction = read_transaction(r, p).map_err(|e| e.within("transaction"))?
                }
                b"ts_ms" => ts_ms = r.opt_i64(p).map_err(|e| e.within("ts_ms"))?,
                b"ts_us" => ts_us = r.opt_i64(p).map_err(|e| e.within("ts_us"))?,
                b"ts_ns" => ts_ns = r.opt_i64(p).map_err(|e| e.within("ts_ns"))?,
                b"message" => {
                    if !r.null()? {
                        let mut prefix = String::new();
                        let mut content = Vec::new();
                        let mp = p.join("message");
                        r.object(|r, k| {
                            match k.as_ref() {
                                "prefix" => prefix = r.opt_string()?.unwrap_or_default(),
                                "content" => {
                                    if let Some(s) = r.opt_string()? {
                                        content =
                                            crate::base64::decode(s.as_bytes()).map_err(|_| {
                                                Error::mismatch(
                                                    &mp.join("content"),
                                                    "base64 bytes",
                                                    s,
                                                )
                                            })?;
                                    }
                                }
                                _ => {
                                    r.skip()?;
                                }
                            }
                            Ok(())
                        })?;
                        message = Some((prefix, content));
                    }
                }
                _ => {
                    r.skip()?;
                }
            }
            Ok(())
        })?;
        r.end()?;
        let op = op.ok_or_else(|| Error::MissingField { path: p.join("op") })?;
        let ts_ns = ts_ns
            .or_else(|| ts_us.map(|u| u.saturating_mul(1000)))
            .or_else(|| ts_ms.map(|m| m.saturating_mul(1_000_000)))
            .unwrap_or(0);
        if op == Op::Message && message.is_none() {
            return Err(Error::MissingField {
                path: p.join("message"),
            });
        }
        if !has_before {
            spare.drop_row(&mut ev.before);
        }
        if !has_after {
            spare.drop_row(&mut ev.after);
        }
        if !has_source {
            ev.source = SourceInfo::default();
        }
        ev.message = message.map(|(prefix, content)| LogicalMessage {
            prefix,
            content: Bytes::from(content),
            transactional: ev.source.tx_id.is_some(),
        });
        ev.op = op;
        recycle::set_table(&mut ev.table, (!plan.message).then_some(&plan.table));
        ev.ts_ns = ts_ns;
        ev.transaction = transaction;
        ev.position = Position::default();
        ev.key_change = None;
        Ok(())
    }
}

/// [`ChangeEvent::key`] into `slot`, refilling the row it holds.
fn key_into(ev: &ChangeEvent, slot: &mut Option<Row>, spare: &mut Spare) {
    let row = ev.after.as_ref().or(ev.before.as_ref());
    match (&ev.table, row) {
        (Some(table), Some(row)) if table.has_key() => {
            let key = spare.row_in(slot, 1);
            for i in table.key_indices() {
                if let Some(v) = row.get(i) {
                    key.push(v.clone());
                }
            }
        }
        _ => spare.drop_row(slot),
    }
}

/// Reads one row image (`before` / `after`) per the plan into `slot`
/// (refilling the row it holds).
fn read_row(
    r: &mut Reader<'_>,
    plan: &DecodePlan,
    options: &Options,
    parent: &Path,
    name: &str,
    spare: &mut Spare,
    slot: &mut Option<Row>,
) -> Result<()> {
    if r.null()? {
        spare.drop_row(slot);
        return Ok(());
    }
    if r.peek() != Some(b'{') {
        let f = r.found();
        return Err(Error::mismatch(&parent.join(name), "an object", f));
    }
    let path = parent;
    let cols = &plan.table.columns;
    // Pre-filled with NULLs (columns the record leaves out stay NULL); each
    // value is built straight into its slot (see `recycle::fill`).
    let row = spare.row_in(slot, cols.len());
    row.resize_with(cols.len(), || Value::Null);
    // Fields normally come in schema order: the next column's name is
    // matched first, without scanning.
    let next = std::cell::Cell::new(0usize);
    let expected = || {
        let i = next.get();
        match (cols.get(i), plan.columns.get(i)) {
            (Some(c), Some(dc)) if dc.plain_name => Some(c.name.as_bytes()),
            _ => None,
        }
    };
    r.object_hinted(expected, |r, k, matched| {
        let n = next.get();
        let idx = if matched || cols.get(n).is_some_and(|c| c.name.as_bytes() == k) {
            Some(n)
        } else {
            cols.iter().position(|c| c.name.as_bytes() == k)
        };
        let at = |e: Error| e.within(name).within(&String::from_utf8_lossy(k));
        let Some(i) = idx else {
            return Err(at(Error::mismatch(
                path,
                "a field of the schema",
                "an unknown field",
            )));
        };
        let (Some(col), Some(dc), Some(slot)) = (cols.get(i), plan.columns.get(i), row.get_mut(i))
        else {
            return Ok(());
        };
        next.set(i + 1);
        if !slot.is_null() {
            // The same column twice: the last value wins.
            *slot = Value::Null;
        }
        // Strings straight to values (zero-copy when the input is shared).
        match r.peek() {
            Some(b'n') => {
                r.null().map_err(at)?;
                return Ok(());
            }
            Some(b'"') if dc.fast != TextFast::Generic => {
                let mark = r.pos;
                let s = r.text().map_err(at)?;
                if dc
                    .fast
                    .emit(s, options, |v| recycle::fill(slot, v))
                    .is_some()
                {
                    return Ok(());
                }
                r.pos = mark;
            }
            Some(b'-' | b'0'..=b'9') if dc.int != IntFast::Generic => {
                let mark = r.pos;
                if let Num::Int(i) = r.number().map_err(at)? {
                    if dc.int.emit(i, |v| recycle::fill(slot, v)).is_some() {
                        return Ok(());
                    }
                }
                r.pos = mark;
            }
            _ => {}
        }
        let p = read_prim(r, &dc.codec, path).map_err(at)?;
        recycle::fill(
            slot,
            lift(&dc.codec, p, &col.pg_type, path, options).map_err(at)?,
        );
        Ok(())
    })?;
    Ok(())
}

impl<'a> Reader<'a> {
    fn clone_at(&self) -> Reader<'a> {
        Reader {
            b: self.b,
            pos: self.pos,
            depth: self.depth,
            src: self.src,
        }
    }
}

/// Reads the `source` block; its repeating strings come from `strings`.
fn read_source(r: &mut Reader<'_>, path: &Path, strings: &mut StrCache) -> Result<SourceInfo> {
    let mut s = SourceInfo::default();
    read_source_into(r, path, strings, &mut s)?;
    Ok(s)
}

/// [`read_source`] into an existing block, overwriting every field (the
/// repeating strings are compared in place and kept when unchanged).
fn read_source_into(
    r: &mut Reader<'_>,
    path: &Path,
    strings: &mut StrCache,
    s: &mut SourceInfo,
) -> Result<()> {
    read_source_spans(r, path, strings, s, None).map(|_| ())
}

/// The previous `source` block, for [`read_source_memo`]: its bytes, where
/// the values that change from event to event were (the rest, keys
/// included, usually repeats byte for byte), and what the repeating
/// fields decoded to.
#[derive(Debug, Default)]
struct JsonSourceMemo {
    /// The block, `{` to `}`; empty: nothing remembered.
    bytes: Vec<u8>,
    /// The changing values: role and byte range within `bytes`, in order.
    vars: Vec<(SourceField, usize, usize)>,
    /// The roles of the repeating fields.
    repeating: Vec<SourceField>,
    /// The values of the repeating fields.
    values: SourceInfo,
    /// The fields the block has ([`recycle::bit`]s).
    read: u32,
}

impl JsonSourceMemo {
    /// Longest block remembered.
    const MAX: usize = 4096;
}

/// [`read_source_into`], first trying the previous block (`memo`): when the
/// record's block has the same bytes around the changing values, only those
/// values are decoded and the others are taken from the memo (they are the
/// same bytes, so they decode to the same values). Any difference (or a
/// value that does not decode) falls back to reading the block in full,
/// which then becomes the memo.
fn read_source_memo(
    r: &mut Reader<'_>,
    path: &Path,
    strings: &mut StrCache,
    memo: &mut JsonSourceMemo,
    s: &mut SourceInfo,
) -> Result<()> {
    r.ws();
    let start = r.pos;
    if !memo.bytes.is_empty() && source_from_memo(r, path, strings, memo, s) {
        return Ok(());
    }
    r.pos = start;
    let mut spans = Vec::new();
    read_source_spans(r, path, strings, s, Some(&mut spans))?;
    memo.bytes.clear();
    memo.vars.clear();
    memo.repeating.clear();
    let Some(block) =
        r.b.get(start..r.pos)
            .filter(|b| b.len() <= JsonSourceMemo::MAX)
    else {
        return Ok(());
    };
    memo.bytes.extend_from_slice(block);
    for (role, a, b) in spans {
        if recycle::repeats(role) {
            memo.repeating.push(role);
            recycle::copy_field(role, s, &mut memo.values);
        } else {
            memo.vars.push((role, a - start, b - start));
        }
    }
    memo.read = memo
        .repeating
        .iter()
        .chain(memo.vars.iter().map(|(role, ..)| role))
        .fold(0, |m, role| m | recycle::bit(*role));
    Ok(())
}

/// The memo's path of [`read_source_memo`]: `false` (with `s` partly
/// written) when the record's block differs from the memo.
fn source_from_memo(
    r: &mut Reader<'_>,
    path: &Path,
    strings: &mut StrCache,
    memo: &JsonSourceMemo,
    s: &mut SourceInfo,
) -> bool {
    recycle::reset_source(s);
    let mut from = 0;
    let same = |r: &mut Reader<'_>, piece: Option<&[u8]>| -> bool {
        let Some(piece) = piece else { return false };
        let end = r.pos.saturating_add(piece.len());
        if r.b.get(r.pos..end) != Some(piece) {
            return false;
        }
        r.pos = end;
        true
    };
    // Values are read one object deeper, as inside the block.
    r.depth += 1;
    for &(role, a, b) in &memo.vars {
        if !same(r, memo.bytes.get(from..a))
            || read_source_field(r, s, path, role, strings).is_err()
        {
            r.depth -= 1;
            return false;
        }
        from = b;
    }
    r.depth -= 1;
    if !same(r, memo.bytes.get(from..)) {
        return false;
    }
    for &role in &memo.repeating {
        recycle::copy_field(role, &memo.values, s);
    }
    recycle::reset_unread(s, memo.read);
    true
}

/// Reads the `source` block into `s`; with `spans`, also where each field's
/// value was (role, start, end).
fn read_source_spans(
    r: &mut Reader<'_>,
    path: &Path,
    strings: &mut StrCache,
    s: &mut SourceInfo,
    mut spans: Option<&mut Vec<(SourceField, usize, usize)>>,
) -> Result<()> {
    recycle::reset_source(s);
    let mut read = 0u32;
    let next = std::cell::Cell::new(0usize);
    let expected = || {
        SOURCE_FIELDS
            .get(next.get())
            .map(|(name, _)| name.as_bytes())
    };
    r.object_hinted(expected, |r, k, matched| {
        let n = next.get();
        let key = match SOURCE_FIELDS.get(n) {
            Some((name, key)) if matched || name.as_bytes() == k => {
                next.set(n + 1);
                *key
            }
            _ => match SOURCE_FIELDS
                .iter()
                .position(|(name, _)| name.as_bytes() == k)
            {
                Some(i) => {
                    next.set(i + 1);
                    SOURCE_FIELDS[i].1
                }
                None => SourceField::Other,
            },
        };
        read |= recycle::bit(key);
        r.ws();
        let from = r.pos;
        read_source_field(r, s, path, key, strings)
            .map_err(|e| e.within(&String::from_utf8_lossy(k)))?;
        if let Some(spans) = spans.as_deref_mut() {
            spans.push((key, from, r.pos));
        }
        Ok(())
    })?;
    recycle::reset_unread(s, read);
    Ok(())
}

fn read_source_field(
    r: &mut Reader<'_>,
    s: &mut SourceInfo,
    fp: &Path,
    key: SourceField,
    strings: &mut StrCache,
) -> Result<()> {
    if let Some(slot) = recycle::interned_slot(s, key) {
        return r.interned_into(strings, recycle::hint(key), slot);
    }
    match key {
        SourceField::TsUs => {
            if let Some(v) = r.opt_i64(fp)? {
                s.ts_us = v;
            }
        }
        SourceField::TsMs => {
            if let Some(v) = r.opt_i64(fp)? {
                if s.ts_us == 0 {
                    s.ts_us = v.saturating_mul(1000);
                }
            }
        }
        SourceField::Snapshot => {
            if !r.null()? {
                let v = r.string()?;
                s.snapshot = SnapshotMarker::parse(&v)
                    .ok_or_else(|| Error::mismatch(fp, "a snapshot marker", v.as_ref()))?;
            }
        }
        SourceField::Sequence => s.sequence = r.opt_text()?,
        SourceField::TxId => s.tx_id = r.opt_i64(fp)?,
        SourceField::Lsn => s.lsn = r.opt_i64(fp)?,
        SourceField::Xmin => s.xmin = r.opt_i64(fp)?,
        SourceField::Origin => s.origin = r.opt_text()?,
        SourceField::OriginLsn => s.origin_lsn = r.opt_i64(fp)?,
        _ => {
            r.skip()?;
        }
    }
    Ok(())
}

fn read_transaction(r: &mut Reader<'_>, path: &Path) -> Result<Option<TransactionBlock>> {
    if r.null()? {
        return Ok(None);
    }
    let mut t = TransactionBlock {
        id: String::new(),
        total_order: 0,
        data_collection_order: 0,
    };
    r.object(|r, k| {
        match k.as_ref() {
            "id" => t.id = r.string()?.into_owned(),
            "total_order" => t.total_order = r.i64_value(&path.join("total_order"))?,
            "data_collection_order" => {
                t.data_collection_order = r.i64_value(&path.join("data_collection_order"))?
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(Some(t))
}

/// Byte spans of `schema` and `payload` in a Connect JSON record, or the
/// whole document as payload when it has no `schema`/`payload` wrapper.
struct Parts {
    schema: Option<(usize, usize)>,
    payload: Option<(usize, usize)>,
}

fn split_envelope(doc: &[u8]) -> Result<Parts> {
    let mut r = Reader::new(doc);
    if r.peek() != Some(b'{') {
        let f = r.found();
        return Err(Error::InvalidJson {
            offset: r.pos,
            reason: format!("expected an object, found {f}"),
        });
    }
    let mut schema = None;
    let mut payload = None;
    let mut other = false;
    r.object(|r, k| {
        match k.as_ref() {
            "schema" => {
                if r.peek() == Some(b'n') {
                    r.null()?;
                } else {
                    schema = Some(r.skip()?);
                }
            }
            "payload" => payload = Some(r.skip()?),
            _ => {
                other = true;
                r.skip()?;
            }
        }
        Ok(())
    })?;
    r.end()?;
    if other || (schema.is_none() && payload.is_none()) {
        // schemas.enable=false: the document is the payload.
        return Ok(Parts {
            schema: None,
            payload: Some((0, doc.len())),
        });
    }
    Ok(Parts { schema, payload })
}

/// Builds the decode plan from an envelope (or message) value schema.
fn build_plan(
    schema: &ConnectSchema,
    key_names: Option<&[String]>,
    payload: &[u8],
) -> Result<DecodePlan> {
    let path = Path::from("schema");
    if schema.ty != ConnectType::Struct {
        return Err(Error::schema(
            &path,
            "a struct envelope schema",
            schema.ty.as_str(),
        ));
    }
    let is_message = schema.name_str() == envelope::MESSAGE_VALUE_SCHEMA_NAME
        || schema.field("message").is_some() && schema.field("before").is_none();
    if is_message {
        return Ok(DecodePlan {
            table: Arc::new(TableSchema {
                id: TableId::new("", ""),
                relation_oid: 0,
                columns: Vec::new(),
                version: 0,
            }),
            columns: Vec::new(),
            message: true,
        });
    }
    let row = schema
        .field("after")
        .or_else(|| schema.field("before"))
        .ok_or_else(|| Error::schema(&path, "an envelope with \"before\"/\"after\"", "neither"))?;
    if row.schema.ty != ConnectType::Struct {
        return Err(Error::schema(
            &path.join("fields.after"),
            "a struct",
            row.schema.ty.as_str(),
        ));
    }
    // Table id: from the source block of the payload, else from the schema name.
    let (ts, tt) = table_id_of(schema, payload);
    let mut columns = Vec::with_capacity(row.schema.fields.len());
    let mut decode = Vec::with_capacity(row.schema.fields.len());
    for f in &row.schema.fields {
        let fp = path.join("after").join(&f.name);
        let codec = Codec::from_schema(&f.schema, &fp)?;
        let pg_type = connect::pg_type_from_schema(&f.schema);
        let mut default_expr = None;
        if let Some(d) = &f.schema.default {
            let v = lift(
                &codec,
                Prim::from_datum(d),
                &pg_type,
                &fp,
                &Options::default(),
            )?;
            default_expr = crate::default_value::default_expr_for(&pg_type, &v);
        }
        let is_key = key_names.is_some_and(|k| k.iter().any(|n| n == &f.name));
        decode.push(DecodeColumn::new(codec, &pg_type, &f.name));
        columns.push(Column {
            name: f.name.clone(),
            pg_type,
            optional: f.schema.optional,
            default_expr,
            is_key,
        });
    }
    let version = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut buf = Vec::new();
        write_schema(&mut buf, &row.schema);
        buf.hash(&mut h);
        key_names.hash(&mut h);
        h.finish()
    };
    Ok(DecodePlan {
        table: Arc::new(TableSchema {
            id: TableId::new(ts, tt),
            relation_oid: 0,
            columns,
            version,
        }),
        columns: decode,
        message: false,
    })
}

fn table_id_of(schema: &ConnectSchema, payload: &[u8]) -> (String, String) {
    let mut r = Reader::new(payload);
    let mut found = None;
    let _ = r.object(|r, k| {
        if k == "source" {
            let mut strings = StrCache::default();
            if let Ok(s) = read_source(r, &Path::from("payload.source"), &mut strings) {
                if !s.table.is_empty() {
                    found = Some((s.schema.to_string(), s.table.to_string()));
                }
            }
        } else {
            r.skip()?;
        }
        Ok(())
    });
    if let Some(f) = found {
        return f;
    }
    // `<prefix>.<schema>.<table>.Envelope`
    let parts: Vec<&str> = schema.name_str().rsplitn(4, '.').collect();
    match parts.as_slice() {
        [_, table, schema, ..] => ((*schema).to_owned(), (*table).to_owned()),
        _ => (String::new(), String::new()),
    }
}

/// Infers the type of the JSON value at the reader's position.
fn infer_type(mut r: Reader<'_>) -> Result<(PgType, Codec)> {
    Ok(match r.peek() {
        Some(b't' | b'f') => (PgType::base(16, "bool"), Codec::Boolean),
        Some(b'"') | Some(b'n') | None => (PgType::base(25, "text"), Codec::String),
        Some(b'{') => {
            let mut keys = Vec::new();
            r.object(|r, k| {
                keys.push(k.into_owned());
                r.skip().map(|_| ())
            })?;
            if keys == ["scale", "value"] {
                (PgType::base(1700, "numeric"), Codec::VariableScaleDecimal)
            } else {
                (PgType::base(3802, "jsonb"), Codec::String)
            }
        }
        Some(b'[') => {
            let mut elem = None;
            r.array(|r| {
                if elem.is_none() && r.peek() != Some(b'n') {
                    elem = Some(infer_type(r.clone_at())?);
                }
                r.skip().map(|_| ())
            })?;
            let (e, c) = elem.unwrap_or((PgType::base(25, "text"), Codec::String));
            (
                PgType {
                    oid: 0,
                    name: format!("_{}", e.name),
                    modifier: -1,
                    kind: TypeKind::Array(Box::new(e)),
                },
                Codec::Array(Box::new(c)),
            )
        }
        Some(_) => match r.number()? {
            Num::Int(_) => (PgType::base(20, "int8"), Codec::Int),
            Num::Float(..) => (PgType::base(701, "float8"), Codec::Float64),
        },
    })
}

/// Infers a plan from a schemaless payload (`schemas.enable=false`).
fn infer_plan(payload: &[u8], key_names: Option<&[String]>) -> Result<DecodePlan> {
    let mut r = Reader::new(payload);
    let mut fields: Vec<(String, PgType, Codec)> = Vec::new();
    let mut schema_name = String::new();
    let mut table = String::new();
    let mut is_message = false;
    r.object(|r, k| {
        match k.as_ref() {
            "before" | "after" if r.peek() == Some(b'{') => {
                r.object(|r, name| {
                    let inferred = infer_type(r.clone_at())?;
                    match fields.iter_mut().find(|(n, ..)| n.as_str() == name) {
                        Some(slot) => {
                            if slot.1.name == "text" && r.peek() != Some(b'n') {
                                slot.1 = inferred.0;
                                slot.2 = inferred.1;
                            }
                        }
                        None => fields.push((name.into_owned(), inferred.0, inferred.1)),
                    }
                    r.skip().map(|_| ())
                })?;
            }
            "source" => {
                let mut strings = StrCache::default();
                let s = read_source(r, &Path::from("payload.source"), &mut strings)?;
                schema_name = s.schema.to_string();
                table = s.table.to_string();
            }
            "message" => {
                is_message = true;
                r.skip()?;
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    let columns = fields
        .iter()
        .map(|(n, t, _)| Column {
            name: n.clone(),
            pg_type: t.clone(),
            optional: true,
            default_expr: None,
            is_key: key_names.is_some_and(|k| k.iter().any(|x| x == n)),
        })
        .collect();
    Ok(DecodePlan {
        table: Arc::new(TableSchema {
            id: TableId::new(schema_name, table),
            relation_oid: 0,
            columns,
            version: 0,
        }),
        columns: fields
            .into_iter()
            .map(|(name, pg, codec)| DecodeColumn::new(codec, &pg, &name))
            .collect(),
        message: is_message,
    })
}

/// Converts an `Str`-holding value to text (helper for tests and sinks).
pub fn value_as_text(v: &Value) -> Option<&Str> {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Xml(s) | Value::Enum(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time escaping `write_str_bytes` must equal.
    fn escaped_bytewise(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\t' => o.push_str("\\t"),
                '\u{8}' => o.push_str("\\b"),
                '\u{c}' => o.push_str("\\f"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }

    #[test]
    fn word_check_agrees_with_the_escape_table() {
        // Every byte value at every position of an otherwise clean word.
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut w = [b'a'; 8];
                w[pos] = b;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(w)),
                    NEEDS_ESCAPE[b as usize],
                    "byte {b:#04x} at {pos}"
                );
            }
        }
        // Words mixing high (UTF-8) bytes with one byte to escape.
        for b in [0u8, 0x1f, b'"', b'\\', b'\n'] {
            let mut w = [0xC3u8, 0xA9, 0xE2, 0x82, 0xAC, 0xFF, 0x80, 0x7F];
            w[3] = b;
            assert!(word_needs_escape(u64::from_le_bytes(w)), "{b:#04x}");
        }
        assert!(!word_needs_escape(u64::from_le_bytes([
            0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0x20, 0x7F, 0x21
        ])));
    }

    #[test]
    fn strings_escape_like_byte_at_a_time() {
        let cases = [
            "",
            "plain ascii longer than eight bytes",
            "quote \" in the middle of a long run",
            "\\ backslash first",
            "ends with a backslash \\",
            "tab\tnew\nline\rcarriage",
            "\u{1}\u{1f}\u{8}\u{c}\u{0}controls",
            "héllo wörld € 𝄞 and \"quotes\" past the 8-byte words",
            "12345678\"2345678\\",
        ];
        for s in cases {
            let mut o = Vec::new();
            write_str_bytes(&mut o, s.as_bytes());
            assert_eq!(
                String::from_utf8(o).unwrap_or_default(),
                escaped_bytewise(s),
                "{s:?}"
            );
        }
        // Every char class at every offset of a long run.
        for special in ['"', '\\', '\n', '\u{1}', 'é', '€'] {
            for at in 0..20 {
                let mut s: String = "abcdefghijklmnopqrst".into();
                s.insert(at, special);
                let mut o = Vec::new();
                write_str_bytes(&mut o, s.as_bytes());
                assert_eq!(
                    String::from_utf8(o).unwrap_or_default(),
                    escaped_bytewise(&s),
                    "{s:?}"
                );
            }
        }
    }

    fn f64s(v: f64) -> String {
        let mut o = Vec::new();
        write_f64(&mut o, v);
        String::from_utf8(o).unwrap_or_default()
    }

    #[test]
    fn integers() {
        for v in [
            0i64,
            7,
            10,
            99,
            100,
            101,
            -1,
            -10,
            1_795_492_115_317_437_453,
            i64::MIN,
            i64::MAX,
        ] {
            let mut o = Vec::new();
            write_i64(&mut o, v);
            assert_eq!(String::from_utf8(o).unwrap_or_default(), v.to_string());
        }
    }

    #[test]
    fn word_scans_match_byte_scans() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"abcdefg\"".to_vec(),
            b"abcdefgh\"".to_vec(),
            b"abcdefghi".to_vec(),
            b"\\".to_vec(),
            b"x\x1fy".to_vec(),
            "é😀\"z".as_bytes().to_vec(),
            b"0123456789012345678901234567890\\".to_vec(),
        ];
        // Every special byte at every position of a 20-byte string.
        for pos in 0..20 {
            for special in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                let mut v = vec![b'q'; 20];
                v[pos] = special;
                cases.push(v);
            }
        }
        for c in &cases {
            for start in 0..=c.len() {
                let want = (start..c.len())
                    .find(|&i| NEEDS_ESCAPE[c[i] as usize])
                    .unwrap_or(c.len());
                assert_eq!(scan_plain(c, start), want, "{c:?} from {start}");
            }
        }
    }

    #[test]
    fn integer_fast_path_edges() {
        for (text, want) in [
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("-0", Some(0)),
            ("00012", Some(12)),
            ("123]", Some(123)),
        ] {
            match Reader::new(text.as_bytes()).number() {
                Ok(Num::Int(i)) => assert_eq!(Some(i), want, "{text}"),
                other => assert!(want.is_none(), "{text}: {other:?}"),
            }
        }
        for text in [
            "9223372036854775808",
            "-9223372036854775809",
            "12345678901234567890",
        ] {
            assert!(
                matches!(Reader::new(text.as_bytes()).number(), Ok(Num::Float(..))),
                "{text}"
            );
        }
    }

    #[test]
    fn eight_digit_chunks_match_std_parse() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut texts = Vec::new();
        for len in 1..=24 {
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let digits: String = (0..len)
                    .map(|i| char::from(b'0' + ((x >> (i % 60)) % 10) as u8))
                    .collect();
                for suffix in ["", ",", "}", "]", " ", ".5", "e3", "x", "/", ":"] {
                    texts.push(format!("{digits}{suffix}"));
                    texts.push(format!("-{digits}{suffix}"));
                }
            }
        }
        for text in &texts {
            let mut r = Reader::new(text.as_bytes());
            let got = r.number();
            let end = text
                .bytes()
                .position(|b| !(b.is_ascii_digit() || b == b'-'))
                .unwrap_or(text.len());
            let plain = !matches!(text.as_bytes().get(end), Some(b'.' | b'e'));
            match got {
                Ok(Num::Int(i)) => {
                    assert!(plain, "{text}");
                    assert_eq!(Some(i), text[..end].parse::<i64>().ok(), "{text}");
                    assert_eq!(r.pos, end, "{text}");
                }
                Ok(Num::Float(f, _)) => {
                    assert!(!plain || text[..end].parse::<i64>().is_err(), "{text}");
                    assert!(f.is_finite(), "{text}");
                }
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    #[test]
    fn java_double_format() {
        assert_eq!(f64s(1.5), "1.5");
        assert_eq!(f64s(2.25), "2.25");
        assert_eq!(f64s(100.0), "100.0");
        assert_eq!(f64s(1e7), "1.0E7");
        assert_eq!(f64s(1.234e-5), "1.234E-5");
        assert_eq!(f64s(0.001), "0.001");
        assert_eq!(f64s(-0.0), "-0.0");
        assert_eq!(f64s(f64::NAN), "\"NaN\"");
        assert_eq!(f64s(123456.789), "123456.789");
        let mut o = Vec::new();
        write_f32(&mut o, 1.1f32);
        assert_eq!(o, b"1.1");
    }

    #[test]
    fn string_escaping_matches_jackson() {
        let mut o = Vec::new();
        write_str(&mut o, "a\"b\\c\nd\u{1}é/");
        assert_eq!(
            String::from_utf8(o).unwrap_or_default(),
            "\"a\\\"b\\\\c\\nd\\u0001é/\""
        );
        let mut r = Reader::new(b"\"a\\\"b\\\\c\\nd\\u0001\\u00e9\\ud83d\\ude00\"");
        assert_eq!(r.string().ok().as_deref(), Some("a\"b\\c\nd\u{1}é😀"));
    }

    #[test]
    fn reader_rejects_garbage() {
        for bad in [
            &b"{"[..],
            b"{\"a\":}",
            b"[1,",
            b"\"\\x\"",
            b"{\"a\" 1}",
            b"nul",
            b"\"\\ud800\"",
        ] {
            let mut r = Reader::new(bad);
            assert!(r.skip().is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = vec![b'['; 1000];
        assert!(Reader::new(&deep).skip().is_err());
    }
}
