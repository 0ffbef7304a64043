//! Kafka record headers Debezium attaches to change events.
//!
//! When an UPDATE changes a row's primary key, Debezium emits a delete of the
//! old key and a create of the new key (`RelationalChangeRecordEmitter`) and
//! links them with one header each:
//!
//! | record | header | value |
//! |---|---|---|
//! | delete (old key), and its tombstone | `__debezium.newkey` | the new key |
//! | create (new key) | `__debezium.oldkey` | the old key |
//!
//! The header holds the key `Struct`; on the wire it is what Kafka Connect's
//! default `header.converter`, `SimpleHeaderConverter`, makes of it:
//! `Values.convertToString`, UTF-8. That is a JSON-looking but not JSON text:
//!
//! * struct: `{"field":value,…}` in key-field order;
//! * strings (and everything Debezium carries as a string: uuid, json,
//!   ZonedTimestamp, `decimal.handling.mode=string` …) in double quotes with
//!   only `\` and `"` escaped (control characters stay raw);
//! * integers in decimal; floats as Java's `Float/Double.toString` (`1.0E10`,
//!   `NaN` unquoted);
//! * `Decimal` as `BigDecimal.toString` (`75000.00`, `1E-8`, `0E-8`);
//!   `VariableScaleDecimal` as `{"scale":3,"value":"MDk="}`;
//! * bytes in standard base64, quoted;
//! * Connect `Date` / `Time` / `Timestamp` (`time.precision.mode=connect`) as
//!   `java.util.Date` through `Values.dateFormatFor`, unquoted: instants
//!   before 1970-01-02 as a time of day `HH:mm:ss.SSSZ` (yes, also dates),
//!   whole days as `yyyy-MM-dd`, others as `yyyy-MM-ddTHH:mm:ss.SSSZ`, in
//!   UTC (Connect formats in the worker JVM's zone; its images run in UTC).
//!
//! These rules and the tests' expected bytes come from running Debezium
//! 3.6.3 with Kafka Connect 4.3's `SimpleHeaderConverter`
//! (`crates/pg-logical/tests/fixtures/debezium_key_headers`).
//!
//! ```
//! use std::sync::Arc;
//! use cdc_envelope::*;
//! use cdc_envelope::headers::{key_change_header, NEW_KEY_HEADER};
//!
//! let table = Arc::new(TableSchema {
//!     id: TableId::new("public", "t"),
//!     relation_oid: 1,
//!     columns: vec![Column { is_key: true, optional: false, ..Column::new("id", PgType::base(23, "int4")) }],
//!     version: 1,
//! });
//! let delete = ChangeEvent {
//!     op: Op::Delete,
//!     table: Some(table),
//!     before: Some(vec![Value::Int32(1)]),
//!     after: None,
//!     source: SourceInfo::default(),
//!     ts_ns: 0,
//!     transaction: None,
//!     message: None,
//!     position: Position::default(),
//!     key_change: Some(KeyChange::NewKey(vec![Value::Int32(100)])),
//! };
//! let header = key_change_header(&delete, &Options::default())?;
//! assert_eq!(header, Some((NEW_KEY_HEADER, br#"{"id":100}"#.to_vec())));
//! # Ok::<(), cdc_envelope::Error>(())
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use crate::connect::{names, Codec, Prim};
use crate::envelope::TablePlan;
use crate::error::{Error, Result};
use crate::event::{ChangeEvent, KeyChange};
use crate::options::Options;
use crate::value::Decimal;

/// Header on the delete half of a primary-key change: the new key.
pub const NEW_KEY_HEADER: &str = "__debezium.newkey";
/// Header on the create half of a primary-key change: the old key.
pub const OLD_KEY_HEADER: &str = "__debezium.oldkey";

/// The primary-key-change header of `event` — `(name, value bytes)` exactly
/// as Debezium + Kafka Connect's default `SimpleHeaderConverter` put it on
/// the Kafka record — or `None` when the event is not half of a key change.
///
/// Attach it to the event's record, and for a delete also to the tombstone
/// that follows it (Debezium copies the delete's headers onto the
/// tombstone). Builds the table's [`TablePlan`]; callers that already hold
/// one can use [`key_change_header_with_plan`].
pub fn key_change_header(
    event: &ChangeEvent,
    options: &Options,
) -> Result<Option<(&'static str, Vec<u8>)>> {
    if event.key_change.is_none() {
        return Ok(None);
    }
    let table = event.table.as_ref().ok_or_else(|| Error::InvalidEvent {
        reason: "key change without table".into(),
    })?;
    let plan = TablePlan::new(Arc::clone(table), options);
    key_change_header_with_plan(event, &plan, options)
}

/// [`key_change_header`] with the event's table plan supplied by the caller.
pub fn key_change_header_with_plan(
    event: &ChangeEvent,
    plan: &TablePlan,
    options: &Options,
) -> Result<Option<(&'static str, Vec<u8>)>> {
    let (name, key) = match &event.key_change {
        None => return Ok(None),
        Some(KeyChange::NewKey(k)) => (NEW_KEY_HEADER, k),
        Some(KeyChange::OldKey(k)) => (OLD_KEY_HEADER, k),
    };
    if key.len() != plan.key_indices.len() {
        return Err(Error::RowMismatch {
            table: plan.table.id.to_string(),
            reason: format!(
                "{name} holds {} values for {} key columns",
                key.len(),
                plan.key_indices.len()
            ),
        });
    }
    let mut out = String::with_capacity(16 * key.len() + 2);
    out.push('{');
    for (n, (&i, v)) in plan.key_indices.iter().zip(key).enumerate() {
        let col = plan.columns.get(i).ok_or_else(|| Error::RowMismatch {
            table: plan.table.id.to_string(),
            reason: format!("no column #{i}"),
        })?;
        if n > 0 {
            out.push(',');
        }
        append_string(&mut out, &col.name);
        out.push(':');
        let p = plan.cell(i, v, options)?;
        append(
            &mut out,
            &p,
            &col.codec,
            col.schema.name_str(),
            &col.name,
            options,
        )?;
    }
    out.push('}');
    Ok(Some((name, out.into_bytes())))
}

/// `Values.append(sb, value, embedded = true)` for one Connect value.
fn append(
    out: &mut String,
    p: &Prim<'_>,
    codec: &Codec,
    schema_name: &str,
    column: &str,
    options: &Options,
) -> Result<()> {
    match p {
        Prim::Null => out.push_str("null"),
        Prim::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Prim::Int(i) => match schema_name {
            names::CONNECT_DATE => append_java_date(out, i.saturating_mul(MILLIS_PER_DAY)),
            names::CONNECT_TIME | names::CONNECT_TIMESTAMP => append_java_date(out, *i),
            _ => {
                let _ = write!(out, "{i}");
            }
        },
        // `{:e}` of the f32 itself: the shortest digits for an f32, as
        // Float.toString.
        Prim::F32(f) => out.push_str(&java_float_string(f64::from(*f), format!("{f:e}"))),
        Prim::F64(f) => out.push_str(&java_float_string(*f, format!("{f:e}"))),
        Prim::Str(s) => append_string(out, s),
        Prim::Bytes(b) => match codec {
            Codec::Decimal { scale } => out.push_str(&java_big_decimal(b, *scale)),
            _ => {
                out.push('"');
                out.push_str(&crate::base64::encode(b));
                out.push('"');
            }
        },
        Prim::VarDecimal { scale, unscaled } => {
            let _ = write!(
                out,
                "{{\"scale\":{scale},\"value\":\"{}\"}}",
                crate::base64::encode(unscaled)
            );
        }
        Prim::Array(values) => {
            let elem = match codec {
                Codec::Array(e) => e.as_ref(),
                other => other,
            };
            out.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let ep = elem.lower(v, column, options)?;
                append(out, &ep, elem, "", column, options)?;
            }
            out.push(']');
        }
        Prim::Owned(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append(out, it, codec, "", column, options)?;
            }
            out.push(']');
        }
        Prim::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_string(out, k);
                out.push(':');
                match v {
                    Some(v) => append_string(out, v),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// An embedded string: quoted, with only `\` and `"` escaped (`Values.escape`).
fn append_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// `Values.dateFormatFor(date).format(date)` in UTC for epoch millis `ms`.
fn append_java_date(out: &mut String, ms: i64) {
    let day = ms.div_euclid(MILLIS_PER_DAY);
    let tod = ms.rem_euclid(MILLIS_PER_DAY);
    let time = |out: &mut String| {
        let _ = write!(
            out,
            "{:02}:{:02}:{:02}.{:03}Z",
            tod / 3_600_000,
            tod / 60_000 % 60,
            tod / 1000 % 60,
            tod % 1000
        );
    };
    if ms < MILLIS_PER_DAY {
        time(out);
        return;
    }
    let (y, m, d) = crate::temporal::civil_from_days(day);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
    if tod != 0 {
        out.push('T');
        time(out);
    }
}

/// Java's `Float.toString` / `Double.toString` (shortest round-trip digits,
/// plain between 10^-3 and 10^7, `d.dddEn` outside; `NaN`, `Infinity`).
fn java_float_string(v: f64, sci: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    crate::json::java_float_text(&sci, v.abs())
}

/// `BigDecimal.toString()` of the unscaled big-endian two's-complement
/// `bytes` at `scale`: plain notation when `scale >= 0` and the adjusted
/// exponent is at least -6, scientific (`1E-8`, `1.5E+3`) otherwise.
fn java_big_decimal(bytes: &[u8], scale: i32) -> String {
    // Canonical digits of the unscaled integer.
    let unscaled = Decimal::from_unscaled_be_bytes(bytes, 0);
    let text = unscaled.as_str();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let sign = if neg { "-" } else { "" };
    let adjusted = -i64::from(scale) + (digits.len() as i64 - 1);
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            return format!("{sign}{int}.{frac}");
        }
        return format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()));
    }
    let (first, rest) = digits.split_at(1);
    let mut s = format!("{sign}{first}");
    if !rest.is_empty() {
        s.push('.');
        s.push_str(rest);
    }
    s.push('E');
    if adjusted >= 0 {
        s.push('+');
    }
    let _ = write!(s, "{adjusted}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Op, Position, SourceInfo};
    use crate::schema::{Column, PgType, TableId, TableSchema};
    use crate::value::{Date, Numeric, Timestamp, Value};

    fn key_col(name: &str, t: PgType) -> Column {
        Column {
            is_key: true,
            optional: false,
            ..Column::new(name, t)
        }
    }

    fn event(columns: Vec<Column>, change: KeyChange) -> ChangeEvent {
        let n = columns.len();
        ChangeEvent {
            op: Op::Delete,
            table: Some(Arc::new(TableSchema {
                id: TableId::new("public", "k"),
                relation_oid: 1,
                columns,
                version: 1,
            })),
            before: Some(vec![Value::Null; n]),
            after: None,
            source: SourceInfo::default(),
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Position::default(),
            key_change: Some(change),
        }
    }

    fn header(ev: &ChangeEvent, props: &[(&str, &str)]) -> String {
        let options = Options::from_properties(props.iter().copied()).expect("options");
        let (_, bytes) = key_change_header(ev, &options)
            .expect("encodes")
            .expect("a key change");
        String::from_utf8(bytes).expect("utf-8")
    }

    fn num(s: &str) -> Value {
        Value::Numeric(Numeric::Finite(Decimal::parse(s).expect("decimal")))
    }

    // Expected texts: Debezium 3.6.3 + SimpleHeaderConverter (Kafka Connect
    // 4.3) on PostgreSQL 15, see tests/fixtures/debezium_key_headers in
    // pg-logical (the same values are checked end to end there).
    #[test]
    fn matches_simple_header_converter() {
        let numeric =
            |p: i32, s: i32| PgType::base(1700, "numeric").with_modifier(((p << 16) | s) + 4);
        let ev = event(
            vec![
                key_col("a", PgType::base(23, "int4")),
                key_col("b", PgType::base(25, "text")),
            ],
            KeyChange::NewKey(vec![Value::Int32(2), Value::Text("q\"uo\\te ü\nx".into())]),
        );
        assert_eq!(header(&ev, &[]), "{\"a\":2,\"b\":\"q\\\"uo\\\\te ü\nx\"}");

        let ev = event(
            vec![key_col("id", numeric(12, 8))],
            KeyChange::OldKey(vec![num("0.00000001")]),
        );
        assert_eq!(header(&ev, &[]), r#"{"id":1E-8}"#);
        assert_eq!(
            header(&ev, &[("decimal.handling.mode", "string")]),
            r#"{"id":"0.00000001"}"#
        );
        let ev = event(
            vec![key_col("id", numeric(12, 8))],
            KeyChange::NewKey(vec![num("0.00000000")]),
        );
        assert_eq!(header(&ev, &[]), r#"{"id":0E-8}"#);
        let ev = event(
            vec![key_col("id", numeric(10, 2))],
            KeyChange::OldKey(vec![num("75000.00")]),
        );
        assert_eq!(header(&ev, &[]), r#"{"id":75000.00}"#);
        let ev = event(
            vec![key_col("id", PgType::base(1700, "numeric"))],
            KeyChange::OldKey(vec![num("12.345")]),
        );
        assert_eq!(header(&ev, &[]), r#"{"id":{"scale":3,"value":"MDk="}}"#);

        let ev = event(
            vec![
                key_col("f", PgType::base(701, "float8")),
                key_col("r", PgType::base(700, "float4")),
                key_col("b", PgType::base(17, "bytea")),
            ],
            KeyChange::OldKey(vec![
                Value::Float64(1e10),
                Value::Float32(f32::NAN),
                Value::Bytes(bytes::Bytes::from_static(&[0x00, 0xff, 0x10])),
            ]),
        );
        assert_eq!(header(&ev, &[]), r#"{"f":1.0E10,"r":NaN,"b":"AP8Q"}"#);
        assert_eq!(
            header(&ev, &[("binary.handling.mode", "hex")]),
            r#"{"f":1.0E10,"r":NaN,"b":"00ff10"}"#
        );

        let ts = |unix_us: i64| Timestamp::from_unix_micros(unix_us).expect("in range");
        let ev = event(
            vec![
                key_col("d", PgType::base(1082, "date")),
                key_col("ts", PgType::base(1114, "timestamp")),
                key_col("t", PgType::base(1083, "time")),
            ],
            KeyChange::OldKey(vec![
                Value::Date(Date::Days(-1)),
                Value::Timestamp(ts(1_705_314_600_123_456)),
                Value::Time(37_800_250_000),
            ]),
        );
        assert_eq!(
            header(&ev, &[]),
            r#"{"d":-1,"ts":1705314600123456,"t":37800250000}"#
        );
        assert_eq!(
            header(&ev, &[("time.precision.mode", "connect")]),
            r#"{"d":00:00:00.000Z,"ts":2024-01-15T10:30:00.123Z,"t":10:30:00.250Z}"#
        );
        let ev = event(
            vec![
                key_col("d", PgType::base(1082, "date")),
                key_col("ts", PgType::base(1114, "timestamp")),
            ],
            KeyChange::NewKey(vec![
                Value::Date(Date::Days(19_782)),
                Value::Timestamp(ts(-1000)),
            ]),
        );
        assert_eq!(
            header(&ev, &[("time.precision.mode", "connect")]),
            r#"{"d":2024-02-29,"ts":23:59:59.999Z}"#
        );
    }

    #[test]
    fn no_header_without_key_change_and_typed_error_on_bad_key() {
        let mut ev = event(
            vec![key_col("id", PgType::base(23, "int4"))],
            KeyChange::NewKey(vec![]),
        );
        assert!(matches!(
            key_change_header(&ev, &Options::default()),
            Err(Error::RowMismatch { .. })
        ));
        ev.key_change = None;
        assert_eq!(key_change_header(&ev, &Options::default()), Ok(None));
    }

    #[test]
    fn big_decimal_text() {
        let bd = |s: &str, scale: i32| {
            java_big_decimal(&Decimal::parse(s).expect("d").to_unscaled_be_bytes(), scale)
        };
        assert_eq!(bd("0", 0), "0");
        assert_eq!(bd("-1", 0), "-1");
        assert_eq!(bd("1", 6), "0.000001");
        assert_eq!(bd("1", 7), "1E-7");
        assert_eq!(bd("-15", 8), "-1.5E-7");
        assert_eq!(bd("15", -2), "1.5E+3");
        assert_eq!(bd("12345", 2), "123.45");
    }
}
