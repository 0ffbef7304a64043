//! Typing column data: PostgreSQL type OIDs, the built-in type table, and
//! the conversion of text (`t`) and binary (`b`) tuple values to
//! [`cdc_envelope::Value`].
//!
//! [`ValueDecoder`] is resolved once per column from its [`PgType`] (see
//! [`crate::TypeRegistry`]) and then converts values without looking
//! anything up.

use bytes::Bytes;
use cdc_envelope::{
    Bits, Date, Decimal, Interval, Numeric, PgType, Str, Timestamp, TypeKind, Value,
};

use crate::array::parse_array;
use crate::binary;
use crate::datetime;

/// OIDs of the built-in types this crate types specially.
pub mod oid {
    /// `bool`.
    pub const BOOL: u32 = 16;
    /// `bytea`.
    pub const BYTEA: u32 = 17;
    /// `"char"`.
    pub const CHAR: u32 = 18;
    /// `name`.
    pub const NAME: u32 = 19;
    /// `int8`.
    pub const INT8: u32 = 20;
    /// `int2`.
    pub const INT2: u32 = 21;
    /// `int4`.
    pub const INT4: u32 = 23;
    /// `text`.
    pub const TEXT: u32 = 25;
    /// `oid`.
    pub const OID: u32 = 26;
    /// `xid`.
    pub const XID: u32 = 28;
    /// `cid`.
    pub const CID: u32 = 29;
    /// `json`.
    pub const JSON: u32 = 114;
    /// `xml`.
    pub const XML: u32 = 142;
    /// `box`.
    pub const BOX: u32 = 603;
    /// `float4`.
    pub const FLOAT4: u32 = 700;
    /// `float8`.
    pub const FLOAT8: u32 = 701;
    /// `money`.
    pub const MONEY: u32 = 790;
    /// `bpchar`.
    pub const BPCHAR: u32 = 1042;
    /// `varchar`.
    pub const VARCHAR: u32 = 1043;
    /// `date`.
    pub const DATE: u32 = 1082;
    /// `time`.
    pub const TIME: u32 = 1083;
    /// `timestamp`.
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`.
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `interval`.
    pub const INTERVAL: u32 = 1186;
    /// `timetz`.
    pub const TIMETZ: u32 = 1266;
    /// `bit`.
    pub const BIT: u32 = 1560;
    /// `varbit`.
    pub const VARBIT: u32 = 1562;
    /// `numeric`.
    pub const NUMERIC: u32 = 1700;
    /// `uuid`.
    pub const UUID: u32 = 2950;
    /// `jsonb`.
    pub const JSONB: u32 = 3802;
    /// `inet`.
    pub const INET: u32 = 869;
    /// `cidr`.
    pub const CIDR: u32 = 650;
    /// `macaddr`.
    pub const MACADDR: u32 = 829;
    /// `macaddr8`.
    pub const MACADDR8: u32 = 774;
}

/// The built-in types of PostgreSQL 14–18 with stable OIDs:
/// `(oid, name, array element OID or 0, range subtype OID or 0)`.
const BUILTIN: &[(u32, &str, u32, u32)] = &[
    (16, "bool", 0, 0),
    (17, "bytea", 0, 0),
    (18, "char", 0, 0),
    (19, "name", 0, 0),
    (20, "int8", 0, 0),
    (21, "int2", 0, 0),
    (22, "int2vector", 0, 0),
    (23, "int4", 0, 0),
    (24, "regproc", 0, 0),
    (25, "text", 0, 0),
    (26, "oid", 0, 0),
    (27, "tid", 0, 0),
    (28, "xid", 0, 0),
    (29, "cid", 0, 0),
    (30, "oidvector", 0, 0),
    (114, "json", 0, 0),
    (142, "xml", 0, 0),
    (194, "pg_node_tree", 0, 0),
    (600, "point", 0, 0),
    (601, "lseg", 0, 0),
    (602, "path", 0, 0),
    (603, "box", 0, 0),
    (604, "polygon", 0, 0),
    (628, "line", 0, 0),
    (650, "cidr", 0, 0),
    (700, "float4", 0, 0),
    (701, "float8", 0, 0),
    (718, "circle", 0, 0),
    (774, "macaddr8", 0, 0),
    (790, "money", 0, 0),
    (829, "macaddr", 0, 0),
    (869, "inet", 0, 0),
    (1033, "aclitem", 0, 0),
    (1042, "bpchar", 0, 0),
    (1043, "varchar", 0, 0),
    (1082, "date", 0, 0),
    (1083, "time", 0, 0),
    (1114, "timestamp", 0, 0),
    (1184, "timestamptz", 0, 0),
    (1186, "interval", 0, 0),
    (1266, "timetz", 0, 0),
    (1560, "bit", 0, 0),
    (1562, "varbit", 0, 0),
    (1700, "numeric", 0, 0),
    (1790, "refcursor", 0, 0),
    (2202, "regprocedure", 0, 0),
    (2203, "regoper", 0, 0),
    (2204, "regoperator", 0, 0),
    (2205, "regclass", 0, 0),
    (2206, "regtype", 0, 0),
    (2950, "uuid", 0, 0),
    (2970, "txid_snapshot", 0, 0),
    (3220, "pg_lsn", 0, 0),
    (3614, "tsvector", 0, 0),
    (3615, "tsquery", 0, 0),
    (3734, "regconfig", 0, 0),
    (3769, "regdictionary", 0, 0),
    (3802, "jsonb", 0, 0),
    (4072, "jsonpath", 0, 0),
    (4089, "regnamespace", 0, 0),
    (4096, "regrole", 0, 0),
    (4191, "regcollation", 0, 0),
    (5038, "pg_snapshot", 0, 0),
    (5069, "xid8", 0, 0),
    (3904, "int4range", 0, 23),
    (3906, "numrange", 0, 1700),
    (3908, "tsrange", 0, 1114),
    (3910, "tstzrange", 0, 1184),
    (3912, "daterange", 0, 1082),
    (3926, "int8range", 0, 20),
    (4451, "int4multirange", 0, 0),
    (4532, "nummultirange", 0, 0),
    (4533, "tsmultirange", 0, 0),
    (4534, "tstzmultirange", 0, 0),
    (4535, "datemultirange", 0, 0),
    (4536, "int8multirange", 0, 0),
    // Arrays.
    (1000, "_bool", 16, 0),
    (1001, "_bytea", 17, 0),
    (1002, "_char", 18, 0),
    (1003, "_name", 19, 0),
    (1016, "_int8", 20, 0),
    (1005, "_int2", 21, 0),
    (1006, "_int2vector", 22, 0),
    (1007, "_int4", 23, 0),
    (1008, "_regproc", 24, 0),
    (1009, "_text", 25, 0),
    (1028, "_oid", 26, 0),
    (1010, "_tid", 27, 0),
    (1011, "_xid", 28, 0),
    (1012, "_cid", 29, 0),
    (1013, "_oidvector", 30, 0),
    (199, "_json", 114, 0),
    (143, "_xml", 142, 0),
    (1017, "_point", 600, 0),
    (1018, "_lseg", 601, 0),
    (1019, "_path", 602, 0),
    (1020, "_box", 603, 0),
    (1027, "_polygon", 604, 0),
    (629, "_line", 628, 0),
    (651, "_cidr", 650, 0),
    (1021, "_float4", 700, 0),
    (1022, "_float8", 701, 0),
    (719, "_circle", 718, 0),
    (775, "_macaddr8", 774, 0),
    (791, "_money", 790, 0),
    (1040, "_macaddr", 829, 0),
    (1041, "_inet", 869, 0),
    (1034, "_aclitem", 1033, 0),
    (1014, "_bpchar", 1042, 0),
    (1015, "_varchar", 1043, 0),
    (1182, "_date", 1082, 0),
    (1183, "_time", 1083, 0),
    (1115, "_timestamp", 1114, 0),
    (1185, "_timestamptz", 1184, 0),
    (1187, "_interval", 1186, 0),
    (1270, "_timetz", 1266, 0),
    (1561, "_bit", 1560, 0),
    (1563, "_varbit", 1562, 0),
    (1231, "_numeric", 1700, 0),
    (2201, "_refcursor", 1790, 0),
    (2207, "_regprocedure", 2202, 0),
    (2208, "_regoper", 2203, 0),
    (2209, "_regoperator", 2204, 0),
    (2210, "_regclass", 2205, 0),
    (2211, "_regtype", 2206, 0),
    (2951, "_uuid", 2950, 0),
    (2949, "_txid_snapshot", 2970, 0),
    (3221, "_pg_lsn", 3220, 0),
    (3643, "_tsvector", 3614, 0),
    (3645, "_tsquery", 3615, 0),
    (3735, "_regconfig", 3734, 0),
    (3770, "_regdictionary", 3769, 0),
    (3807, "_jsonb", 3802, 0),
    (4073, "_jsonpath", 4072, 0),
    (4090, "_regnamespace", 4089, 0),
    (4097, "_regrole", 4096, 0),
    (4192, "_regcollation", 4191, 0),
    (5039, "_pg_snapshot", 5038, 0),
    (271, "_xid8", 5069, 0),
    (3905, "_int4range", 3904, 0),
    (3907, "_numrange", 3906, 0),
    (3909, "_tsrange", 3908, 0),
    (3911, "_tstzrange", 3910, 0),
    (3913, "_daterange", 3912, 0),
    (3927, "_int8range", 3926, 0),
    (6150, "_int4multirange", 4451, 0),
    (6151, "_nummultirange", 4532, 0),
    (6152, "_tsmultirange", 4533, 0),
    (6153, "_tstzmultirange", 4534, 0),
    (6155, "_datemultirange", 4535, 0),
    (6157, "_int8multirange", 4536, 0),
];

/// The name of a built-in type, if `oid` is one.
pub fn builtin_type_name(oid: u32) -> Option<&'static str> {
    BUILTIN.iter().find(|t| t.0 == oid).map(|t| t.1)
}

/// The OID of a built-in type by name (`int4`, `_text`).
pub fn builtin_type_oid(name: &str) -> Option<u32> {
    BUILTIN.iter().find(|t| t.1 == name).map(|t| t.0)
}

/// The [`PgType`] of a built-in type OID (arrays and ranges with their
/// element / subtype), or `None` for user-defined types.
pub fn builtin_pg_type(oid: u32, modifier: i32) -> Option<PgType> {
    let &(oid, name, elem, subtype) = BUILTIN.iter().find(|t| t.0 == oid)?;
    let kind = if elem != 0 {
        // Arrays carry the column's modifier on the element too (varchar(10)[]).
        TypeKind::Array(Box::new(builtin_pg_type(elem, modifier)?))
    } else if subtype != 0 {
        TypeKind::Range(Box::new(builtin_pg_type(subtype, -1)?))
    } else {
        TypeKind::Base
    };
    Some(PgType {
        oid,
        name: name.to_owned(),
        modifier,
        kind,
    })
}

/// How values of one type are converted. Resolved once per column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Conv {
    Bool,
    Int2,
    Int4,
    Int8,
    /// Unsigned 32-bit (`oid`, `xid`, `cid`) widened to `Int64`.
    Oid,
    Float4,
    Float8,
    Numeric,
    Money,
    /// `text`, `varchar`, `bpchar`, `name`, and everything passed through.
    Text,
    /// The one-byte `"char"` type.
    Char,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Xml,
    Bits,
    Enum,
    /// `inet` / `cidr`: text in both formats ([`Value::Text`]).
    Inet,
    /// `macaddr`: text.
    MacAddr,
    /// `macaddr8`: text.
    MacAddr8,
    /// A range type: its text (`[1,10)`); the subtype's conversion renders
    /// the bounds of binary values.
    Range(Box<Conv>),
    Array {
        elem: Box<Conv>,
        delim: u8,
    },
}

/// Converts the values of one column type to [`Value`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueDecoder {
    conv: Conv,
    oid: u32,
}

/// Why a value could not be converted (the caller adds the column name;
/// [`crate::RelationCache`] turns it into [`crate::Error::InvalidValue`] or
/// [`crate::Error::UnsupportedBinaryType`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value does not parse as its type.
    #[error("{0}")]
    Invalid(String),
    /// Binary format is not supported for this type.
    #[error("binary format not supported for this type")]
    UnsupportedBinary,
}

impl From<String> for ValueError {
    fn from(s: String) -> Self {
        ValueError::Invalid(s)
    }
}

impl From<&str> for ValueError {
    fn from(s: &str) -> Self {
        ValueError::Invalid(s.to_owned())
    }
}

type VResult = Result<Value, ValueError>;

impl ValueDecoder {
    /// The decoder for a column of type `ty`: enums give [`Value::Enum`],
    /// domains decode as their base type, arrays element-wise; types that are
    /// neither built in nor resolved pass through as [`Value::Text`].
    pub fn for_type(ty: &PgType) -> Self {
        Self {
            conv: conv_for(ty),
            oid: ty.oid,
        }
    }

    /// True if values pass through as text because the type is not known.
    pub fn is_passthrough(&self) -> bool {
        self.conv == Conv::Text
    }

    /// Converts a text-format (`t`) value.
    #[inline]
    pub fn decode_text(&self, data: &Bytes) -> Result<Value, ValueError> {
        text_value(&self.conv, data, 0, data.len())
    }

    /// Converts the text value at `parent[start..end]`, slicing `parent`
    /// only for values that keep the bytes (strings, JSON…).
    #[inline]
    pub(crate) fn decode_text_range(&self, parent: &Bytes, start: usize, end: usize) -> VResult {
        text_value(&self.conv, parent, start, end)
    }

    /// Converts a binary-format (`b`) value.
    pub fn decode_binary(&self, data: &Bytes) -> Result<Value, ValueError> {
        binary_value(&self.conv, self.oid, data)
    }
}

fn conv_for(ty: &PgType) -> Conv {
    match &ty.kind {
        TypeKind::Enum(_) => return Conv::Enum,
        TypeKind::Domain(base) => return conv_for(base),
        TypeKind::Array(elem) => {
            let delim = if elem.oid == oid::BOX { b';' } else { b',' };
            return Conv::Array {
                elem: Box::new(conv_for(elem)),
                delim,
            };
        }
        TypeKind::Range(sub) => return Conv::Range(Box::new(conv_for(sub))),
        TypeKind::Composite | TypeKind::Unknown => return Conv::Text,
        _ => {}
    }
    match ty.oid {
        oid::BOOL => Conv::Bool,
        oid::INT2 => Conv::Int2,
        oid::INT4 => Conv::Int4,
        oid::INT8 => Conv::Int8,
        oid::OID | oid::XID | oid::CID => Conv::Oid,
        oid::FLOAT4 => Conv::Float4,
        oid::FLOAT8 => Conv::Float8,
        oid::NUMERIC => Conv::Numeric,
        oid::MONEY => Conv::Money,
        oid::CHAR => Conv::Char,
        oid::BYTEA => Conv::Bytea,
        oid::DATE => Conv::Date,
        oid::TIME => Conv::Time,
        oid::TIMETZ => Conv::TimeTz,
        oid::TIMESTAMP => Conv::Timestamp,
        oid::TIMESTAMPTZ => Conv::TimestampTz,
        oid::INTERVAL => Conv::Interval,
        oid::UUID => Conv::Uuid,
        oid::JSON => Conv::Json,
        oid::JSONB => Conv::Jsonb,
        oid::XML => Conv::Xml,
        oid::BIT | oid::VARBIT => Conv::Bits,
        oid::INET | oid::CIDR => Conv::Inet,
        oid::MACADDR => Conv::MacAddr,
        oid::MACADDR8 => Conv::MacAddr8,
        _ => match builtin_pg_type(ty.oid, ty.modifier) {
            Some(PgType {
                kind: TypeKind::Array(elem),
                ..
            }) => conv_for(&PgType {
                oid: ty.oid,
                name: ty.name.clone(),
                modifier: ty.modifier,
                kind: TypeKind::Array(elem),
            }),
            Some(PgType {
                kind: TypeKind::Range(sub),
                ..
            }) => Conv::Range(Box::new(conv_for(&sub))),
            _ => Conv::Text,
        },
    }
}

fn utf8(data: &Bytes) -> Result<Str, ValueError> {
    Str::from_utf8(data.clone()).map_err(|e| ValueError::Invalid(format!("invalid UTF-8: {e}")))
}

fn ascii(data: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(data).map_err(|_| ValueError::Invalid("invalid UTF-8".into()))
}

/// Fast signed decimal integer parse with overflow checks.
#[inline]
pub(crate) fn parse_int(s: &[u8]) -> Result<i64, ValueError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(bad_int(s));
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(bad_int(s));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(i64::from(d))
                } else {
                    v.checked_add(i64::from(d))
                }
            })
            .ok_or_else(|| bad_int(s))?;
    }
    Ok(v)
}

#[cold]
fn bad_int(s: &[u8]) -> ValueError {
    ValueError::Invalid(format!("invalid integer {:?}", String::from_utf8_lossy(s)))
}

fn text_value(conv: &Conv, parent: &Bytes, start: usize, end: usize) -> VResult {
    let Some(s) = parent.get(start..end) else {
        return Err("value out of range".into());
    };
    // Zero-copy slice, only taken by the types that keep their bytes.
    let slice = || parent.slice(start..end);
    Ok(match conv {
        Conv::Bool => match s {
            b"t" | b"true" => Value::Bool(true),
            b"f" | b"false" => Value::Bool(false),
            _ => return Err("invalid boolean".into()),
        },
        Conv::Int2 => {
            Value::Int16(i16::try_from(parse_int(s)?).map_err(|_| "smallint out of range")?)
        }
        Conv::Int4 => {
            Value::Int32(i32::try_from(parse_int(s)?).map_err(|_| "integer out of range")?)
        }
        Conv::Int8 => Value::Int64(parse_int(s)?),
        Conv::Oid => {
            let v = parse_int(s)?;
            if !(0..=i64::from(u32::MAX)).contains(&v) {
                return Err("oid out of range".into());
            }
            Value::Int64(v)
        }
        Conv::Float4 => Value::Float32(ascii(s)?.parse().map_err(|_| "invalid real")?),
        Conv::Float8 => Value::Float64(ascii(s)?.parse().map_err(|_| "invalid double precision")?),
        Conv::Numeric => Value::Numeric(parse_numeric(s, slice)?),
        Conv::Money => Value::Money(parse_money(s)?),
        Conv::Text | Conv::Char | Conv::Inet | Conv::MacAddr | Conv::MacAddr8 | Conv::Range(_) => {
            Value::Text(utf8(&slice())?)
        }
        Conv::Bytea => Value::Bytes(parse_bytea(s)?),
        Conv::Date => Value::Date(datetime::parse_date(s)?),
        Conv::Time => Value::Time(datetime::parse_time(s)?),
        Conv::TimeTz => {
            let (micros, offset_seconds) = datetime::parse_timetz(s)?;
            Value::TimeTz {
                micros,
                offset_seconds,
            }
        }
        Conv::Timestamp => Value::Timestamp(datetime::parse_timestamp(s, false)?),
        Conv::TimestampTz => Value::TimestampTz(datetime::parse_timestamp(s, true)?),
        Conv::Interval => Value::Interval(datetime::parse_interval(s)?),
        Conv::Uuid => Value::Uuid(parse_uuid(s)?),
        Conv::Json | Conv::Jsonb => Value::Json(utf8(&slice())?),
        Conv::Xml => Value::Xml(utf8(&slice())?),
        Conv::Bits => Value::Bits(parse_bits(s)?),
        Conv::Enum => Value::Enum(utf8(&slice())?),
        Conv::Array { elem, delim } => Value::Array(parse_array(&slice(), *delim, |e| {
            text_value(elem, e, 0, e.len())
        })?),
    })
}

fn parse_numeric(data: &[u8], slice: impl FnOnce() -> Bytes) -> Result<Numeric, ValueError> {
    match data {
        b"NaN" => Ok(Numeric::NaN),
        b"Infinity" => Ok(Numeric::PosInfinity),
        b"-Infinity" => Ok(Numeric::NegInfinity),
        _ => Decimal::from_str_checked(utf8(&slice())?)
            .map(Numeric::Finite)
            .ok_or_else(|| {
                ValueError::Invalid(format!(
                    "invalid numeric {:?}",
                    String::from_utf8_lossy(data)
                ))
            }),
    }
}

/// `money` text as the C / `en_US` `lc_monetary` prints it: `$1,234.56`,
/// `-$5.00` or `($5.00)`. Anything else (other currency symbols, decimal
/// commas) is an error rather than a silently misread amount: the source
/// pins `lc_monetary=C`.
fn parse_money(s: &[u8]) -> Result<Numeric, ValueError> {
    let bad = || ValueError::Invalid(format!("invalid money {:?}", String::from_utf8_lossy(s)));
    let (neg, body) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'(', rest @ .., b')'] => (true, rest),
        _ => (false, s),
    };
    let body = body.strip_prefix(b"$").unwrap_or(body);
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(i) => (body.get(..i).unwrap_or_default(), body.get(i + 1..)),
        None => (body, None),
    };
    let mut out = String::with_capacity(s.len());
    if neg {
        out.push('-');
    }
    // Integer digits with optional thousands separators: 1,234,567.
    for (i, group) in int.split(|&b| b == b',').enumerate() {
        let ok = !group.is_empty()
            && group.iter().all(u8::is_ascii_digit)
            && (i == 0 || group.len() == 3)
            && (i > 0 || group.len() <= 3 || !int.contains(&b','));
        if !ok {
            return Err(bad());
        }
        group.iter().for_each(|&b| out.push(b as char));
    }
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        out.push('.');
        frac.iter().for_each(|&b| out.push(b as char));
    }
    Decimal::parse(&out).map(Numeric::Finite).ok_or_else(bad)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `bytea` text: hex (`\x0102`) or escape format (`a\\b\001`).
pub(crate) fn parse_bytea(s: &[u8]) -> Result<Bytes, ValueError> {
    if let Some(hex) = s.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err("odd number of hex digits in bytea".into());
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks_exact(2) {
            match (
                pair.first().copied().and_then(hex_val),
                pair.get(1).copied().and_then(hex_val),
            ) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err("invalid hex digit in bytea".into()),
            }
        }
        return Ok(Bytes::from(out));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match s.get(i + 1..i + 4) {
            _ if s.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(&[a, b2, c])
                if (b'0'..=b'3').contains(&a)
                    && (b'0'..=b'7').contains(&b2)
                    && (b'0'..=b'7').contains(&c) =>
            {
                out.push(((a - b'0') << 6) | ((b2 - b'0') << 3) | (c - b'0'));
                i += 4;
            }
            _ => return Err("invalid escape in bytea".into()),
        }
    }
    Ok(Bytes::from(out))
}

fn parse_uuid(s: &[u8]) -> Result<[u8; 16], ValueError> {
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    for (i, &b) in s.iter().enumerate() {
        if b == b'-' && matches!(i, 8 | 13 | 18 | 23) && s.len() == 36 {
            continue;
        }
        let v = hex_val(b).ok_or("invalid uuid")?;
        match hi.take() {
            None => hi = Some(v),
            Some(h) => {
                *out.get_mut(n).ok_or("invalid uuid")? = h << 4 | v;
                n += 1;
            }
        }
    }
    if n != 16 || hi.is_some() {
        return Err("invalid uuid".into());
    }
    Ok(out)
}

fn parse_bits(s: &[u8]) -> Result<Bits, ValueError> {
    let len = u32::try_from(s.len()).map_err(|_| "bit string too long")?;
    let mut data = vec![0u8; s.len().div_ceil(8)];
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'0' => {}
            b'1' => {
                if let Some(byte) = data.get_mut(i / 8) {
                    *byte |= 0x80 >> (i % 8);
                }
            }
            _ => return Err("invalid bit string".into()),
        }
    }
    Ok(Bits {
        len,
        data: Bytes::from(data),
    })
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N], ValueError> {
    data.try_into()
        .map_err(|_| ValueError::Invalid(format!("expected {N} bytes, got {}", data.len())))
}

const PG_EPOCH_DAYS: i64 = 10_957;

fn binary_value(conv: &Conv, oid: u32, data: &Bytes) -> VResult {
    let d: &[u8] = data;
    Ok(match conv {
        Conv::Bool => Value::Bool(fixed::<1>(d)?[0] != 0),
        Conv::Int2 => Value::Int16(i16::from_be_bytes(fixed(d)?)),
        Conv::Int4 => Value::Int32(i32::from_be_bytes(fixed(d)?)),
        Conv::Int8 => Value::Int64(i64::from_be_bytes(fixed(d)?)),
        Conv::Oid => Value::Int64(i64::from(u32::from_be_bytes(fixed(d)?))),
        Conv::Float4 => Value::Float32(f32::from_be_bytes(fixed(d)?)),
        Conv::Float8 => Value::Float64(f64::from_be_bytes(fixed(d)?)),
        Conv::Numeric => Value::Numeric(binary_numeric(d)?),
        Conv::Money => {
            let cents = i64::from_be_bytes(fixed(d)?);
            Value::Money(Numeric::Finite(Decimal::from_unscaled_be_bytes(
                &cents.to_be_bytes(),
                2,
            )))
        }
        Conv::Text | Conv::Char | Conv::Enum if oid_is_textual(oid, conv) => {
            let s = utf8(data)?;
            if *conv == Conv::Enum {
                Value::Enum(s)
            } else {
                Value::Text(s)
            }
        }
        Conv::Bytea => Value::Bytes(data.clone()),
        Conv::Date => Value::Date(match i32::from_be_bytes(fixed(d)?) {
            i32::MAX => Date::PosInfinity,
            i32::MIN => Date::NegInfinity,
            days => Date::Days(
                i32::try_from(i64::from(days) + PG_EPOCH_DAYS).map_err(|_| "date out of range")?,
            ),
        }),
        Conv::Time => Value::Time(i64::from_be_bytes(fixed(d)?)),
        Conv::TimeTz => {
            let b: [u8; 12] = fixed(d)?;
            let (t, z) = b.split_at(8);
            let micros = i64::from_be_bytes(fixed(t)?);
            // PostgreSQL stores the zone as seconds west of UTC.
            let zone = i32::from_be_bytes(fixed(z)?);
            Value::TimeTz {
                micros,
                offset_seconds: zone.checked_neg().ok_or("invalid zone")?,
            }
        }
        Conv::Timestamp => Value::Timestamp(binary_timestamp(d)?),
        Conv::TimestampTz => Value::TimestampTz(binary_timestamp(d)?),
        Conv::Interval => {
            let b: [u8; 16] = fixed(d)?;
            let (m, rest) = b.split_at(8);
            let (days, months) = rest.split_at(4);
            Value::Interval(Interval {
                micros: i64::from_be_bytes(fixed(m)?),
                days: i32::from_be_bytes(fixed(days)?),
                months: i32::from_be_bytes(fixed(months)?),
            })
        }
        Conv::Uuid => Value::Uuid(fixed(d)?),
        Conv::Json => Value::Json(utf8(data)?),
        Conv::Jsonb => match d.split_first() {
            Some((1, _)) => Value::Json(utf8(&data.slice(1..))?),
            _ => return Err("unsupported jsonb binary version".into()),
        },
        Conv::Xml => Value::Xml(utf8(data)?),
        Conv::Bits => {
            let (len, bits) = d.split_at_checked(4).ok_or("bit string too short")?;
            let len = u32::try_from(i32::from_be_bytes(fixed(len)?))
                .map_err(|_| "negative bit string length")?;
            if bits.len() != len.div_ceil(8) as usize {
                return Err("bit string length does not match its data".into());
            }
            Value::Bits(Bits {
                len,
                data: data.slice(4..),
            })
        }
        Conv::Inet => Value::Text(Str::from(binary::inet_text(data)?)),
        Conv::MacAddr => Value::Text(Str::from(binary::macaddr_text(data, 6)?)),
        Conv::MacAddr8 => Value::Text(Str::from(binary::macaddr_text(data, 8)?)),
        Conv::Range(sub) => {
            let sub = sub.as_ref();
            if !range_bound_supported(sub) {
                return Err(ValueError::UnsupportedBinary);
            }
            Value::Text(Str::from(binary::range_text(data, |b| {
                range_bound_text(sub, b)
            })?))
        }
        Conv::Array { elem, .. } => Value::Array(binary::array(data, |elem_oid, b| {
            binary_value(elem, elem_oid, b)
        })?),
        _ => return Err(ValueError::UnsupportedBinary),
    })
}

/// Range subtypes whose bounds this crate can print as PostgreSQL does.
fn range_bound_supported(sub: &Conv) -> bool {
    matches!(
        sub,
        Conv::Int2
            | Conv::Int4
            | Conv::Int8
            | Conv::Numeric
            | Conv::Date
            | Conv::Timestamp
            | Conv::TimestampTz
    )
}

/// One binary range bound as the subtype's text output.
fn range_bound_text(sub: &Conv, b: &Bytes) -> Result<String, ValueError> {
    let d: &[u8] = b;
    Ok(match sub {
        Conv::Int2 => i16::from_be_bytes(fixed(d)?).to_string(),
        Conv::Int4 => i32::from_be_bytes(fixed(d)?).to_string(),
        Conv::Int8 => i64::from_be_bytes(fixed(d)?).to_string(),
        Conv::Numeric => match binary_numeric(d)? {
            Numeric::NaN => "NaN".into(),
            Numeric::PosInfinity => "Infinity".into(),
            Numeric::NegInfinity => "-Infinity".into(),
            Numeric::Finite(n) => n.as_str().to_owned(),
        },
        Conv::Date => binary::date_text(i32::from_be_bytes(fixed(d)?)),
        Conv::Timestamp => binary::timestamp_text(i64::from_be_bytes(fixed(d)?), false),
        Conv::TimestampTz => binary::timestamp_text(i64::from_be_bytes(fixed(d)?), true),
        _ => return Err(ValueError::UnsupportedBinary),
    })
}

/// Text-like types whose binary send format is their UTF-8 text.
fn oid_is_textual(oid: u32, conv: &Conv) -> bool {
    match conv {
        Conv::Enum => true,
        Conv::Char => oid == oid::CHAR,
        _ => {
            matches!(oid, oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME)
                || builtin_type_name(oid).is_none()
        }
    }
}

fn binary_timestamp(d: &[u8]) -> Result<Timestamp, ValueError> {
    Ok(Timestamp::from_pg_binary(i64::from_be_bytes(fixed(d)?)))
}

/// `numeric` binary: ndigits, weight, sign, dscale, then base-10000 digits.
fn binary_numeric(d: &[u8]) -> Result<Numeric, ValueError> {
    let head: [u8; 8] = d
        .get(..8)
        .ok_or("numeric too short")?
        .try_into()
        .map_err(|_| "numeric too short")?;
    let ndigits = i16::from_be_bytes([head[0], head[1]]);
    let weight = i64::from(i16::from_be_bytes([head[2], head[3]]));
    let sign = u16::from_be_bytes([head[4], head[5]]);
    let dscale = u16::from_be_bytes([head[6], head[7]]);
    match sign {
        0xC000 => return Ok(Numeric::NaN),
        0xD000 => return Ok(Numeric::PosInfinity),
        0xF000 => return Ok(Numeric::NegInfinity),
        0x0000 | 0x4000 => {}
        _ => return Err("invalid numeric sign".into()),
    }
    let ndigits = usize::try_from(ndigits).map_err(|_| "negative numeric digit count")?;
    let body = d.get(8..).unwrap_or_default();
    if body.len() != ndigits * 2 || dscale > 0x3FFF {
        return Err("invalid numeric length".into());
    }
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| body.get(i * 2..i * 2 + 2))
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_be_bytes)
    };
    if (0..ndigits as i64).any(|i| digit(i) > 9999) {
        return Err("invalid numeric digit".into());
    }
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let g = digit(i);
            if i == 0 {
                out.push_str(&g.to_string());
            } else {
                out.push_str(&format!("{g:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let groups = i64::from(dscale.div_ceil(4));
        for k in 1..=groups {
            frac.push_str(&format!("{:04}", digit(weight + k)));
        }
        frac.truncate(usize::from(dscale));
        out.push_str(&frac);
    }
    if out == "-0"
        || (out.starts_with("-0.") && out.bytes().skip(1).all(|b| b == b'0' || b == b'.'))
    {
        out.remove(0);
    }
    Decimal::parse(&out)
        .map(Numeric::Finite)
        .ok_or_else(|| ValueError::Invalid("invalid numeric".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(ty: &PgType, s: &str) -> VResult {
        ValueDecoder::for_type(ty).decode_text(&Bytes::copy_from_slice(s.as_bytes()))
    }

    fn b(oid: u32) -> PgType {
        builtin_pg_type(oid, -1).expect("builtin")
    }

    #[test]
    fn scalars() {
        assert_eq!(t(&b(16), "t"), Ok(Value::Bool(true)));
        assert_eq!(t(&b(21), "-32768"), Ok(Value::Int16(-32768)));
        assert!(t(&b(21), "32768").is_err());
        assert_eq!(t(&b(23), "2147483647"), Ok(Value::Int32(i32::MAX)));
        assert_eq!(
            t(&b(20), "-9223372036854775808"),
            Ok(Value::Int64(i64::MIN))
        );
        assert!(t(&b(20), "9223372036854775808").is_err());
        assert_eq!(t(&b(26), "4294967295"), Ok(Value::Int64(4_294_967_295)));
        assert!(matches!(t(&b(701), "NaN"), Ok(Value::Float64(f)) if f.is_nan()));
        assert_eq!(
            t(&b(701), "-Infinity"),
            Ok(Value::Float64(f64::NEG_INFINITY))
        );
        assert_eq!(t(&b(700), "1.10000002"), Ok(Value::Float32(1.1)));
        assert_eq!(t(&b(1700), "NaN"), Ok(Value::Numeric(Numeric::NaN)));
        assert_eq!(
            t(&b(1700), "-Infinity"),
            Ok(Value::Numeric(Numeric::NegInfinity))
        );
        let big = "9".repeat(1000);
        assert_eq!(
            t(&b(1700), &big),
            Ok(Value::Numeric(Numeric::Finite(
                Decimal::parse(&big).expect("d")
            )))
        );
        assert_eq!(
            t(&b(790), "$1,234.56"),
            Ok(Value::Money(Numeric::Finite(
                Decimal::parse("1234.56").expect("d")
            )))
        );
        assert_eq!(
            t(&b(790), "-$5.00"),
            Ok(Value::Money(Numeric::Finite(
                Decimal::parse("-5.00").expect("d")
            )))
        );
        assert_eq!(
            t(&b(17), "\\x00ff"),
            Ok(Value::Bytes(Bytes::from_static(&[0, 255])))
        );
        assert_eq!(
            t(&b(17), "a\\\\b\\001"),
            Ok(Value::Bytes(Bytes::from_static(b"a\\b\x01")))
        );
        assert!(t(&b(17), "\\x0").is_err());
        assert_eq!(
            t(&b(2950), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Ok(Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ]))
        );
        assert_eq!(
            t(&b(1560), "101"),
            Ok(Value::Bits(Bits {
                len: 3,
                data: Bytes::from_static(&[0b1010_0000])
            }))
        );
        assert_eq!(
            t(&b(869), "10.0.0.1/8"),
            Ok(Value::Text(Str::from("10.0.0.1/8")))
        );
        assert_eq!(
            t(&b(3802), "{\"a\": 1}"),
            Ok(Value::Json(Str::from("{\"a\": 1}")))
        );
    }

    #[test]
    fn unknown_and_user_types() {
        let unknown = PgType {
            oid: 99_999,
            name: "hstore".into(),
            modifier: -1,
            kind: TypeKind::Unknown,
        };
        assert_eq!(
            t(&unknown, "\"a\"=>\"1\""),
            Ok(Value::Text(Str::from("\"a\"=>\"1\"")))
        );
        let mood = PgType {
            oid: 70_000,
            name: "mood".into(),
            modifier: -1,
            kind: TypeKind::Enum(vec!["ok".into()]),
        };
        assert_eq!(t(&mood, "ok"), Ok(Value::Enum(Str::from("ok"))));
        let domain = PgType {
            oid: 70_001,
            name: "posint".into(),
            modifier: -1,
            kind: TypeKind::Domain(Box::new(b(23))),
        };
        assert_eq!(t(&domain, "5"), Ok(Value::Int32(5)));
    }

    #[test]
    fn binary_numeric_values() {
        // 1234.5600: ndigits 3, weight 0, dscale 4: [1234, 5600]
        let enc = |nd: i16, w: i16, sign: u16, dscale: u16, digits: &[u16]| {
            let mut v = Vec::new();
            v.extend_from_slice(&nd.to_be_bytes());
            v.extend_from_slice(&w.to_be_bytes());
            v.extend_from_slice(&sign.to_be_bytes());
            v.extend_from_slice(&dscale.to_be_bytes());
            for d in digits {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v
        };
        let num = |s: &str| Numeric::Finite(Decimal::parse(s).expect("d"));
        assert_eq!(
            binary_numeric(&enc(2, 0, 0, 4, &[1234, 5600])),
            Ok(num("1234.5600"))
        );
        assert_eq!(
            binary_numeric(&enc(1, -1, 0x4000, 2, &[500])),
            Ok(num("-0.05"))
        );
        assert_eq!(binary_numeric(&enc(1, 1, 0, 0, &[7])), Ok(num("70000")));
        assert_eq!(binary_numeric(&enc(0, 0, 0, 2, &[])), Ok(num("0.00")));
        assert_eq!(binary_numeric(&enc(0, 0, 0xC000, 0, &[])), Ok(Numeric::NaN));
        assert!(binary_numeric(&enc(1, 0, 0, 0, &[])).is_err());
    }
}
