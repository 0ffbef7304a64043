//! Column defaults, as Debezium's `PostgresDefaultValueConverter` turns
//! `pg_get_expr(adbin)` text into a schema `default`.
//!
//! The rule, for the types Debezium knows (`bool`, integer types, `serial`s,
//! `float4/8`, `numeric`, `bpchar`/`varchar`/`text`, `json(b)`, `xml`,
//! `uuid`, `date`, `time`, `timestamp(tz)`, `interval`, `bit`/`varbit`, enums):
//!
//! * an expression that is a function call (`nextval('s'::regclass)`,
//!   `now()`) or `CURRENT_TIMESTAMP`/`CURRENT_DATE`/`CURRENT_TIME`/
//!   `LOCALTIME`/`LOCALTIMESTAMP` gets a type placeholder: `0`, `0.0`, `""`,
//!   `false`, `{}`, the epoch, the nil UUID — this is why `emp_id SERIAL`
//!   and `created_at ... DEFAULT CURRENT_TIMESTAMP` have `"default":0`;
//! * a literal is taken from inside the first `'…'` (or raw when unquoted);
//! * `NULL::type` means no default; anything unparsable means no default;
//! * other types (bytea, arrays, ranges, ...) never get a default.
//!
//! The default then goes through the column's converter, so it is written in
//! the same form as values (ms/µs, base64 decimal bytes, ...).

use bytes::Bytes;

use crate::schema::{PgType, TypeKind};
use crate::temporal;
use crate::value::{Bits, Date, Decimal, Interval, Numeric, Str, Timestamp, Value};

const CURRENT_DATE_TIMES: [&str; 5] = [
    "current_timestamp",
    "current_time",
    "current_date",
    "localtime",
    "localtimestamp",
];

/// `^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)` (Debezium's function pattern).
fn is_function_call(expr: &str) -> bool {
    let s = expr.strip_prefix('(').unwrap_or(expr);
    let ident_len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        .count();
    if ident_len == 0 {
        return false;
    }
    let rest = &s[ident_len..];
    rest.starts_with('(') && rest[1..].contains(')')
}

fn is_generated(expr: &str) -> bool {
    is_function_call(expr) || CURRENT_DATE_TIMES.contains(&expr.to_lowercase().as_str())
}

/// The literal inside the first quotes (`''` unescaped), or the raw text.
fn extract(expr: &str) -> Option<String> {
    if !expr.contains('\'') {
        return (!expr.starts_with("NULL::")).then(|| expr.to_owned());
    }
    let start = expr.find('\'')? + 1;
    let b = expr.as_bytes();
    let mut i = start;
    let mut out = String::new();
    loop {
        match b.get(i)? {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                out.push('\'');
                i += 2;
            }
            b'\'' => break,
            _ => {
                let ch = expr[i..].chars().next()?;
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Some(out)
}

fn extract_or(expr: &str, placeholder: &str) -> Option<String> {
    if is_generated(expr) {
        Some(placeholder.to_owned())
    } else {
        extract(expr)
    }
}

/// The default [`Value`] Debezium would derive from a default expression,
/// or `None` when it would not emit one.
pub fn parse_default(t: &PgType, expr: &str) -> Option<Value> {
    if let TypeKind::Domain(b) = &t.kind {
        return parse_default(b, expr);
    }
    if let TypeKind::Enum(_) = &t.kind {
        // `'red'::color`
        let cast = expr.rfind("::")?;
        let lit = expr.get(..cast)?;
        let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
        return Some(Value::Enum(Str::from(inner)));
    }
    if !matches!(t.kind, TypeKind::Base) {
        return None;
    }
    let trimmed = expr.trim();
    let null_guard = |e: &str| !e.starts_with("NULL::");
    Some(match t.name.as_str() {
        "bool" if null_guard(trimmed) => {
            Value::Bool(extract_or(trimmed, "false")?.eq_ignore_ascii_case("true"))
        }
        "int2" | "smallserial" if null_guard(trimmed) => {
            Value::Int16(extract_or(trimmed, "0")?.trim().parse().ok()?)
        }
        "int4" | "serial" if null_guard(trimmed) => {
            Value::Int32(extract_or(trimmed, "0")?.trim().parse().ok()?)
        }
        "int8" | "bigserial" if null_guard(trimmed) => {
            Value::Int64(extract_or(trimmed, "0")?.trim().parse().ok()?)
        }
        "float4" if null_guard(trimmed) => {
            Value::Float32(java_parse_float(&extract_or(trimmed, "0.0")?)? as f32)
        }
        "float8" if null_guard(trimmed) => {
            Value::Float64(java_parse_float(&extract_or(trimmed, "0.0")?)?)
        }
        "numeric" if null_guard(trimmed) => {
            let text = extract_or(trimmed, "0.0")?;
            let d = Decimal::parse(text.trim())?;
            let d = match t.numeric_scale() {
                Some(s) if s > d.scale() as i32 => crate::connect::rescale(&d, s)?,
                _ => d,
            };
            Value::Numeric(Numeric::Finite(d))
        }
        "bpchar" | "varchar" | "text" => Value::Text(Str::from(extract_or(expr, "")?)),
        "json" | "jsonb" => Value::Json(Str::from(extract_or(expr, "{}")?)),
        "xml" => Value::Xml(Str::from(extract_or(expr, "")?)),
        "uuid" => Value::Uuid(crate::connect::parse_uuid(&extract_or(
            trimmed,
            "00000000-0000-0000-0000-000000000000",
        )?)?),
        "date" => {
            let s = extract_or(trimmed, "1970-01-01")?;
            let micros = temporal::parse_local_timestamp(&s)?.micros_since_unix_i128()?;
            Value::Date(Date::Days(
                i32::try_from(micros.div_euclid(i128::from(temporal::MICROS_PER_DAY))).ok()?,
            ))
        }
        "time" => Value::Time(temporal::parse_time(&extract_or(trimmed, "00:00")?)?),
        "timestamp" => {
            let s = extract_or(trimmed, "1970-01-01")?;
            Value::Timestamp(
                temporal::parse_local_timestamp(&s)
                    .or_else(|| temporal::parse_zoned_timestamp(&s))?,
            )
        }
        "timestamptz" => {
            let s = extract_or(trimmed, "1970-01-01")?;
            Value::TimestampTz(
                temporal::parse_zoned_timestamp(&s)
                    .or_else(|| temporal::parse_local_timestamp(&s))?,
            )
        }
        "interval" => {
            if is_generated(trimmed) {
                Value::Interval(Interval::default())
            } else {
                let (months, days, micros) = temporal::parse_pg_interval(&extract(trimmed)?)?;
                Value::Interval(Interval {
                    months,
                    days,
                    micros,
                })
            }
        }
        "bit" | "varbit" => {
            let s = extract_or(trimmed, if t.name == "bit" { "00" } else { "0" })?;
            if s.is_empty() || !s.bytes().all(|b| b == b'0' || b == b'1') {
                return None;
            }
            let mut data = vec![0u8; s.len().div_ceil(8)];
            for (i, c) in s.bytes().enumerate() {
                if c == b'1' {
                    if let Some(d) = data.get_mut(i / 8) {
                        *d |= 0x80 >> (i % 8);
                    }
                }
            }
            Value::Bits(Bits {
                len: s.len() as u32,
                data: Bytes::from(data),
            })
        }
        _ => return None,
    })
}

fn java_parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

/// An SQL default expression that [`parse_default`] maps back to `v` (used
/// when reconstructing a [`crate::TableSchema`] from a Connect schema, so
/// that a sink can also create the column with this default).
pub fn default_expr_for(t: &PgType, v: &Value) -> Option<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let ty = t.name.as_str();
    Some(match v {
        Value::Bool(b) => b.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => format!("{}", f),
        Value::Float64(f) => format!("{}", f),
        Value::Numeric(Numeric::Finite(d)) => d.as_str().to_owned(),
        Value::Text(s) | Value::Json(s) | Value::Xml(s) => format!("{}::{ty}", quote(s)),
        Value::Enum(s) => format!("{}::{ty}", quote(s)),
        Value::Uuid(u) => format!("{}::uuid", quote(&uuid_text(u))),
        Value::Date(Date::Days(d)) => {
            let mut s = String::new();
            temporal::format_date(&mut s, i64::from(*d));
            format!("{}::date", quote(&s))
        }
        Value::Time(m) => {
            let mut s = String::new();
            temporal::format_time_of_day(&mut s, *m, None);
            format!("{}::time without time zone", quote(&s))
        }
        Value::Timestamp(t @ Timestamp::PgMicros(_)) => {
            let mut s = String::new();
            temporal::format_local_timestamp(&mut s, t.micros_since_unix_i128()?);
            format!(
                "{}::timestamp without time zone",
                quote(&s.replace('T', " "))
            )
        }
        Value::TimestampTz(t @ Timestamp::PgMicros(_)) => {
            let mut s = String::new();
            temporal::format_zoned_timestamp(&mut s, t.micros_since_unix_i128()?, None);
            format!("{}::timestamp with time zone", quote(&s))
        }
        Value::Interval(i) => {
            let micros = i.micros;
            let h = micros / 3_600_000_000;
            let m = (micros / 60_000_000 % 60).abs();
            let s = (micros % 60_000_000).abs();
            format!(
                "'{} mons {} days {}:{:02}:{:02}.{:06}'::interval",
                i.months,
                i.days,
                h,
                m,
                s / 1_000_000,
                s % 1_000_000
            )
        }
        Value::Bits(b) => {
            let bits: String = (0..b.len as usize)
                .map(|i| {
                    if b.data
                        .get(i / 8)
                        .is_some_and(|x| x & (0x80 >> (i % 8)) != 0)
                    {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            format!("B'{bits}'::{ty}")
        }
        _ => return None,
    })
}

fn uuid_text(u: &[u8; 16]) -> String {
    let mut out = Vec::new();
    crate::base64::hex_into(u, &mut out);
    let h = String::from_utf8(out).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> PgType {
        PgType::base(0, name)
    }

    #[test]
    fn debezium_rules() {
        assert_eq!(
            parse_default(&t("int4"), "nextval('employees_emp_id_seq'::regclass)"),
            Some(Value::Int32(0))
        );
        assert_eq!(
            parse_default(&t("timestamp"), "CURRENT_TIMESTAMP"),
            Some(Value::Timestamp(
                Timestamp::from_unix_micros(0).expect("epoch")
            ))
        );
        assert_eq!(
            parse_default(&t("text"), "'none'::text"),
            Some(Value::Text(Str::from("none")))
        );
        assert_eq!(
            parse_default(&t("text"), "'it''s'::text"),
            Some(Value::Text(Str::from("it's")))
        );
        assert_eq!(parse_default(&t("int4"), "42"), Some(Value::Int32(42)));
        assert_eq!(
            parse_default(&t("int8"), "'-9'::bigint"),
            Some(Value::Int64(-9))
        );
        assert_eq!(parse_default(&t("int4"), "NULL::integer"), None);
        assert_eq!(parse_default(&t("bytea"), "'\\x00'::bytea"), None);
        assert_eq!(parse_default(&t("bool"), "true"), Some(Value::Bool(true)));
        let num = PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4);
        assert_eq!(
            parse_default(&num, "0"),
            Some(Value::Numeric(Numeric::Finite(
                Decimal::parse("0.00").expect("d")
            )))
        );
        assert!(parse_default(&t("int4"), "(1 + 2)").is_none());
    }

    #[test]
    fn rendered_defaults_parse_back() {
        let cases = [
            (t("int4"), Value::Int32(7)),
            (t("text"), Value::Text(Str::from("a'b"))),
            (
                t("timestamp"),
                Value::Timestamp(Timestamp::PgMicros(
                    1_614_589_200_123_000 - Timestamp::PG_EPOCH_UNIX_MICROS,
                )),
            ),
            (
                t("timestamptz"),
                Value::TimestampTz(Timestamp::from_unix_micros(-5).expect("in range")),
            ),
            (t("date"), Value::Date(Date::Days(-3))),
            (t("time"), Value::Time(3_600_000_001)),
            (
                t("interval"),
                Value::Interval(Interval {
                    months: 3,
                    days: -2,
                    micros: 5_000_001,
                }),
            ),
            (t("bool"), Value::Bool(false)),
        ];
        for (ty, v) in cases {
            let expr = default_expr_for(&ty, &v).expect("renderable");
            assert_eq!(parse_default(&ty, &expr), Some(v), "{expr}");
        }
    }
}
