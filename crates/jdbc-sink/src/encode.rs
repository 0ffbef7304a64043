//! Binary encoding of [`Value`]s in PostgreSQL's binary wire format, shared
//! by the `COPY … (FORMAT binary)` and `UNNEST($n::t[])` write paths.
//!
//! Each column gets a [`WireKind`] from its source type: the type the
//! values are sent as. When the target column has another type (say a
//! `text` value into a pre-existing `numeric` column), the write casts in SQL.

use bytes::{BufMut, BytesMut};
use cdc_envelope::{Array, Date, Decimal, Numeric, PgType, Timestamp, TypeKind, Value};

/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// How a column's values travel on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`.
    Numeric,
    /// `text` (also varchar, enums, inet, … cast on the server).
    Text,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`.
    TimeTz,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `varbit` (bit(n) is cast on the server).
    Varbit,
    /// An array of the boxed kind.
    Array(Box<WireKind>),
}

impl WireKind {
    /// The wire kind for a source column type.
    pub fn for_type(t: &PgType) -> WireKind {
        if let TypeKind::Array(elem) = &t.kind {
            return WireKind::Array(Box::new(WireKind::for_type(elem)));
        }
        if let TypeKind::Domain(base) = &t.kind {
            return WireKind::for_type(base);
        }
        if matches!(t.kind, TypeKind::Enum(_)) {
            return WireKind::Text;
        }
        if let Some(elem) = t.name.strip_prefix('_') {
            return WireKind::Array(Box::new(WireKind::for_type(&PgType::base(0, elem))));
        }
        match t.name.as_str() {
            "bool" => WireKind::Bool,
            "int2" => WireKind::Int2,
            "int4" => WireKind::Int4,
            "int8" | "oid" => WireKind::Int8,
            "float4" => WireKind::Float4,
            "float8" => WireKind::Float8,
            "numeric" | "money" => WireKind::Numeric,
            "bytea" => WireKind::Bytea,
            "date" => WireKind::Date,
            "time" => WireKind::Time,
            "timetz" => WireKind::TimeTz,
            "timestamp" => WireKind::Timestamp,
            "timestamptz" => WireKind::TimestampTz,
            "interval" => WireKind::Interval,
            "uuid" => WireKind::Uuid,
            "json" => WireKind::Json,
            "jsonb" => WireKind::Jsonb,
            "bit" | "varbit" => WireKind::Varbit,
            _ => WireKind::Text,
        }
    }

    /// The built-in type OID of the kind.
    pub fn oid(&self) -> u32 {
        match self {
            WireKind::Bool => 16,
            WireKind::Int2 => 21,
            WireKind::Int4 => 23,
            WireKind::Int8 => 20,
            WireKind::Float4 => 700,
            WireKind::Float8 => 701,
            WireKind::Numeric => 1700,
            WireKind::Text => 25,
            WireKind::Bytea => 17,
            WireKind::Date => 1082,
            WireKind::Time => 1083,
            WireKind::TimeTz => 1266,
            WireKind::Timestamp => 1114,
            WireKind::TimestampTz => 1184,
            WireKind::Interval => 1186,
            WireKind::Uuid => 2950,
            WireKind::Json => 114,
            WireKind::Jsonb => 3802,
            WireKind::Varbit => 1562,
            WireKind::Array(e) => e.array_oid(),
        }
    }

    fn array_oid(&self) -> u32 {
        match self {
            WireKind::Bool => 1000,
            WireKind::Int2 => 1005,
            WireKind::Int4 => 1007,
            WireKind::Int8 => 1016,
            WireKind::Float4 => 1021,
            WireKind::Float8 => 1022,
            WireKind::Numeric => 1231,
            WireKind::Text => 1009,
            WireKind::Bytea => 1001,
            WireKind::Date => 1182,
            WireKind::Time => 1183,
            WireKind::TimeTz => 1270,
            WireKind::Timestamp => 1115,
            WireKind::TimestampTz => 1185,
            WireKind::Interval => 1187,
            WireKind::Uuid => 2951,
            WireKind::Json => 199,
            WireKind::Jsonb => 3807,
            WireKind::Varbit => 1563,
            // Nested arrays are flattened into one multi-dimensional array.
            WireKind::Array(e) => e.array_oid(),
        }
    }

    /// The SQL name of the kind (fixed strings, never user input).
    pub fn sql_type(&self) -> String {
        let base = match self {
            WireKind::Bool => "boolean",
            WireKind::Int2 => "smallint",
            WireKind::Int4 => "integer",
            WireKind::Int8 => "bigint",
            WireKind::Float4 => "real",
            WireKind::Float8 => "double precision",
            WireKind::Numeric => "numeric",
            WireKind::Text => "text",
            WireKind::Bytea => "bytea",
            WireKind::Date => "date",
            WireKind::Time => "time",
            WireKind::TimeTz => "timetz",
            WireKind::Timestamp => "timestamp",
            WireKind::TimestampTz => "timestamptz",
            WireKind::Interval => "interval",
            WireKind::Uuid => "uuid",
            WireKind::Json => "json",
            WireKind::Jsonb => "jsonb",
            WireKind::Varbit => "varbit",
            WireKind::Array(e) => return format!("{}[]", e.element_sql()),
        };
        base.to_owned()
    }

    fn element_sql(&self) -> String {
        match self {
            WireKind::Array(e) => e.element_sql(),
            other => other.sql_type(),
        }
    }

    fn leaf(&self) -> &WireKind {
        match self {
            WireKind::Array(e) => e.leaf(),
            other => other,
        }
    }

    /// A guess of the encoded size of one value with its length prefix
    /// (for buffer capacity only).
    pub fn size_hint(&self) -> usize {
        match self {
            WireKind::Bool => 5,
            WireKind::Int2 => 6,
            WireKind::Int4 | WireKind::Float4 | WireKind::Date => 8,
            WireKind::Int8
            | WireKind::Float8
            | WireKind::Time
            | WireKind::Timestamp
            | WireKind::TimestampTz => 12,
            WireKind::TimeTz | WireKind::Interval => 20,
            WireKind::Uuid => 20,
            WireKind::Numeric => 18,
            _ => 32,
        }
    }

    /// True for array kinds.
    pub fn is_array(&self) -> bool {
        matches!(self, WireKind::Array(_))
    }
}

/// A value that does not fit its column's wire kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

fn mismatch(v: &Value, k: &WireKind) -> EncodeError {
    let shown = format!("{v:?}");
    let shown: String = shown.chars().take(80).collect();
    EncodeError(format!(
        "value {shown} cannot be written as {}",
        k.sql_type()
    ))
}

/// Appends one field (length prefix + data, or -1 for NULL) to `out`.
/// `Value::Unavailable` must have been filtered out before.
pub fn encode_field(out: &mut BytesMut, v: &Value, k: &WireKind) -> Result<(), EncodeError> {
    if v.is_null() {
        out.put_i32(-1);
        return Ok(());
    }
    let len_at = out.len();
    out.put_i32(0);
    encode_body(out, v, k)?;
    let len = i32::try_from(out.len() - len_at - 4)
        .map_err(|_| EncodeError("value larger than 2 GiB".into()))?;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int16(i) => Some(i64::from(*i)),
        Value::Int32(i) => Some(i64::from(*i)),
        Value::Int64(i) => Some(*i),
        _ => None,
    }
}

fn encode_body(out: &mut BytesMut, v: &Value, k: &WireKind) -> Result<(), EncodeError> {
    let range = || EncodeError(format!("value {v:?} out of range for {}", k.sql_type()));
    match (k, v) {
        (WireKind::Bool, Value::Bool(b)) => out.put_u8(u8::from(*b)),
        (WireKind::Int2, _) if int_of(v).is_some() => {
            out.put_i16(i16::try_from(int_of(v).unwrap_or_default()).map_err(|_| range())?)
        }
        (WireKind::Int4, _) if int_of(v).is_some() => {
            out.put_i32(i32::try_from(int_of(v).unwrap_or_default()).map_err(|_| range())?)
        }
        (WireKind::Int8, _) if int_of(v).is_some() => out.put_i64(int_of(v).unwrap_or_default()),
        (WireKind::Float4, Value::Float32(f)) => out.put_f32(*f),
        (WireKind::Float8, Value::Float64(f)) => out.put_f64(*f),
        (WireKind::Float8, Value::Float32(f)) => out.put_f64(f64::from(*f)),
        (WireKind::Numeric, Value::Numeric(n) | Value::Money(n)) => encode_numeric(out, n),
        (WireKind::Numeric, _) if int_of(v).is_some() => {
            let d = Decimal::parse(&int_of(v).unwrap_or_default().to_string()).ok_or_else(range)?;
            encode_numeric(out, &Numeric::Finite(d))
        }
        (
            WireKind::Text | WireKind::Json,
            Value::Text(s) | Value::Json(s) | Value::Xml(s) | Value::Enum(s),
        ) => out.put_slice(s.as_bytes()),
        (WireKind::Jsonb, Value::Json(s) | Value::Text(s)) => {
            out.put_u8(1);
            out.put_slice(s.as_bytes());
        }
        (WireKind::Bytea, Value::Bytes(b)) => out.put_slice(b),
        (WireKind::Date, Value::Date(d)) => out.put_i32(match d {
            Date::NegInfinity => i32::MIN,
            Date::PosInfinity => i32::MAX,
            Date::Days(d) => d.checked_sub(PG_EPOCH_DAYS).ok_or_else(range)?,
        }),
        (WireKind::Time, Value::Time(us)) => out.put_i64(*us),
        (
            WireKind::TimeTz,
            Value::TimeTz {
                micros,
                offset_seconds,
            },
        ) => {
            out.put_i64(*micros);
            // PostgreSQL stores the zone as seconds WEST of UTC.
            out.put_i32(-offset_seconds);
        }
        (WireKind::Timestamp, Value::Timestamp(t) | Value::TimestampTz(t))
        | (WireKind::TimestampTz, Value::TimestampTz(t) | Value::Timestamp(t)) => {
            out.put_i64(match t {
                // i64::MIN / i64::MAX are PostgreSQL's ±infinity.
                Timestamp::PgMicros(us) if *us == i64::MIN || *us == i64::MAX => {
                    return Err(range())
                }
                t => t.to_pg_binary(),
            })
        }
        (WireKind::Interval, Value::Interval(i)) => {
            out.put_i64(i.micros);
            out.put_i32(i.days);
            out.put_i32(i.months);
        }
        (WireKind::Uuid, Value::Uuid(u)) => out.put_slice(u),
        (WireKind::Varbit, Value::Bits(b)) => {
            out.put_i32(i32::try_from(b.len).map_err(|_| range())?);
            out.put_slice(&b.data);
        }
        (WireKind::Array(_), Value::Array(a)) => encode_array(out, a, k)?,
        _ => return Err(mismatch(v, k)),
    }
    Ok(())
}

fn encode_array(out: &mut BytesMut, a: &Array, k: &WireKind) -> Result<(), EncodeError> {
    let leaf = k.leaf();
    out.put_i32(
        i32::try_from(a.dims.len()).map_err(|_| EncodeError("too many dimensions".into()))?,
    );
    out.put_i32(i32::from(a.elements.iter().any(Value::is_null)));
    out.put_u32(leaf.oid());
    for d in &a.dims {
        out.put_i32(i32::try_from(d.len).map_err(|_| EncodeError("array too long".into()))?);
        out.put_i32(d.lower_bound);
    }
    for e in &a.elements {
        if e.is_unavailable() {
            return Err(EncodeError("unavailable value inside an array".into()));
        }
        encode_field(out, e, leaf)?;
    }
    Ok(())
}

/// Writes a one-dimensional array (lower bound 1) of already-encoded
/// fields (`fields` holds `count` length-prefixed fields) with element type `elem`.
pub fn write_array_header(out: &mut BytesMut, elem: &WireKind, count: usize, has_null: bool) {
    out.put_i32(if count == 0 { 0 } else { 1 });
    out.put_i32(i32::from(has_null));
    out.put_u32(elem.oid());
    if count > 0 {
        out.put_i32(i32::try_from(count).unwrap_or(i32::MAX));
        out.put_i32(1);
    }
}

/// Sets the "has nulls" flag of an array written by [`write_array_header`]
/// at the start of `out`.
pub fn set_array_has_null(out: &mut BytesMut, has_null: bool) {
    if out.len() >= 8 {
        out[4..8].copy_from_slice(&i32::from(has_null).to_be_bytes());
    }
}

/// PostgreSQL binary `numeric`: ndigits, weight, sign, dscale, base-10000
/// digits. Reads the decimal's text once per pass, without allocating.
fn encode_numeric(out: &mut BytesMut, n: &Numeric) {
    let special = |out: &mut BytesMut, sign: u16| {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_i16(0);
    };
    let d = match n {
        Numeric::NaN => return special(out, 0xC000),
        Numeric::PosInfinity => return special(out, 0xD000),
        Numeric::NegInfinity => return special(out, 0xF000),
        Numeric::Finite(d) => d,
    };
    let s = d.as_str();
    let neg = s.starts_with('-');
    let body = s.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0').as_bytes();
    let frac = frac.as_bytes();
    let dscale = frac.len();
    // The integer part is left-padded and the fraction right-padded with
    // zeros to whole groups of 4 decimal digits.
    let int_groups = int.len().div_ceil(4);
    let groups = int_groups + frac.len().div_ceil(4);
    let int_pad = int_groups * 4 - int.len();
    let digit = |pos: usize| -> i16 {
        let b = if pos < int_groups * 4 {
            pos.checked_sub(int_pad).map_or(b'0', |i| int[i])
        } else {
            frac.get(pos - int_groups * 4).copied().unwrap_or(b'0')
        };
        i16::from(b.wrapping_sub(b'0').min(9))
    };
    let group = |g: usize| -> i16 { (0..4).fold(0i16, |v, k| v * 10 + digit(g * 4 + k)) };
    // Leading zero groups lower the weight; trailing ones are dropped.
    let first = (0..groups).find(|&g| group(g) != 0);
    let (first, last) = match first {
        Some(f) => (f, (f..groups).rev().find(|&g| group(g) != 0).unwrap_or(f)),
        None => {
            out.put_i16(0);
            out.put_i16(0);
            out.put_u16(0);
            out.put_i16(i16::try_from(dscale).unwrap_or(i16::MAX));
            return;
        }
    };
    let weight = int_groups as i64 - 1 - first as i64;
    out.put_i16(i16::try_from(last + 1 - first).unwrap_or(i16::MAX));
    out.put_i16(i16::try_from(weight).unwrap_or(i16::MAX));
    out.put_u16(if neg { 0x4000 } else { 0 });
    out.put_i16(i16::try_from(dscale).unwrap_or(i16::MAX));
    for g in first..=last {
        out.put_i16(group(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_numeric(
            &mut b,
            &Numeric::Finite(Decimal::parse(s).expect("decimal")),
        );
        b.to_vec()
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // 75000.00: digits [7, 5000], weight 1, dscale 2.
        assert_eq!(
            num("75000.00"),
            vec![0, 2, 0, 1, 0, 0, 0, 2, 0, 7, 0x13, 0x88]
        );
        // 0.01: digits [100], weight -1, dscale 2.
        assert_eq!(num("0.01"), vec![0, 1, 0xff, 0xff, 0, 0, 0, 2, 0, 100]);
        // -1: digits [1], weight 0, negative.
        assert_eq!(num("-1"), vec![0, 1, 0, 0, 0x40, 0, 0, 0, 0, 1]);
        assert_eq!(num("0"), vec![0, 0, 0, 0, 0, 0, 0, 0]);
        // 0.00: no digits, dscale kept.
        assert_eq!(num("0.00"), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        // 10000.5: digits [1, 0, 5000], weight 1, dscale 1.
        assert_eq!(
            num("10000.5"),
            vec![0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0x13, 0x88]
        );
        // -12345678.9: digits [1234, 5678, 9000], weight 1.
        assert_eq!(
            num("-12345678.9"),
            vec![0, 3, 0, 1, 0x40, 0, 0, 1, 0x04, 0xd2, 0x16, 0x2e, 0x23, 0x28]
        );
        // 0.00001: digits [0, 1000] → leading zero group dropped, weight -2.
        assert_eq!(
            num("0.00001"),
            vec![0, 1, 0xff, 0xfe, 0, 0, 0, 5, 0x03, 0xe8]
        );
    }

    #[test]
    fn kinds_from_types() {
        assert_eq!(
            WireKind::for_type(&PgType::base(1043, "varchar")),
            WireKind::Text
        );
        let arr = PgType {
            oid: 1007,
            name: "_int4".into(),
            modifier: -1,
            kind: TypeKind::Array(Box::new(PgType::base(23, "int4"))),
        };
        assert_eq!(WireKind::for_type(&arr).oid(), 1007);
        assert_eq!(WireKind::for_type(&arr).sql_type(), "integer[]");
    }

    #[test]
    fn range_checked() {
        let mut b = BytesMut::new();
        assert!(encode_field(&mut b, &Value::Int64(1 << 40), &WireKind::Int4).is_err());
        assert!(encode_field(&mut b, &Value::Text("x".into()), &WireKind::Int4).is_err());
        assert!(encode_field(&mut b, &Value::Int16(7), &WireKind::Int8).is_ok());
    }
}
