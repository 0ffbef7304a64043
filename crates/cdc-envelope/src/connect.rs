//! The Kafka Connect schema model and the PostgreSQL → Connect type mapping.
//!
//! [`ConnectSchema`] mirrors `org.apache.kafka.connect.data.Schema` (type,
//! optional, name, version, doc, parameters, default, fields / items / keys).
//! [`column_schema`] gives the schema Debezium's `PostgresValueConverter`
//! builds for a column under the given [`Options`]; [`Codec`] is the matching
//! rule that turns a [`Value`] into the Connect representation and back.
//!
//! Deviations from Debezium, by design (Debezium drops these columns unless
//! `include.unknown.datatypes` is set): geometric types, composite types,
//! arrays of `money`/`interval`/`xml`/`varbit`/`name` and unresolved types are
//! carried as STRING (arrays of STRING). Multi-dimensional arrays are
//! flattened in row-major order (Debezium cannot express them either).

use std::borrow::Cow;

use bytes::Bytes;

use crate::error::{Error, Path, Result};
use crate::options::{
    BinaryMode, DecimalMode, HstoreMode, IntervalMode, Options, TimePrecisionMode,
};
use crate::schema::{Column, PgType, TypeKind};
use crate::temporal;
use crate::value::{Bits, Date, Decimal, Interval, Numeric, Str, Timestamp, Value};

/// Semantic schema names used by Debezium and Kafka Connect.
pub mod names {
    /// `org.apache.kafka.connect.data.Decimal`.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// `org.apache.kafka.connect.data.Date`.
    pub const CONNECT_DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `org.apache.kafka.connect.data.Time`.
    pub const CONNECT_TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `org.apache.kafka.connect.data.Timestamp`.
    pub const CONNECT_TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    /// `io.debezium.data.VariableScaleDecimal`.
    pub const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
    /// `io.debezium.time.Date`.
    pub const DATE: &str = "io.debezium.time.Date";
    /// `io.debezium.time.Time`.
    pub const TIME: &str = "io.debezium.time.Time";
    /// `io.debezium.time.MicroTime`.
    pub const MICRO_TIME: &str = "io.debezium.time.MicroTime";
    /// `io.debezium.time.NanoTime`.
    pub const NANO_TIME: &str = "io.debezium.time.NanoTime";
    /// `io.debezium.time.Timestamp`.
    pub const TIMESTAMP: &str = "io.debezium.time.Timestamp";
    /// `io.debezium.time.MicroTimestamp`.
    pub const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
    /// `io.debezium.time.NanoTimestamp`.
    pub const NANO_TIMESTAMP: &str = "io.debezium.time.NanoTimestamp";
    /// `io.debezium.time.IsoDate`.
    pub const ISO_DATE: &str = "io.debezium.time.IsoDate";
    /// `io.debezium.time.IsoTime`.
    pub const ISO_TIME: &str = "io.debezium.time.IsoTime";
    /// `io.debezium.time.IsoTimestamp`.
    pub const ISO_TIMESTAMP: &str = "io.debezium.time.IsoTimestamp";
    /// `io.debezium.time.ZonedTimestamp`.
    pub const ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
    /// `io.debezium.time.ZonedTime`.
    pub const ZONED_TIME: &str = "io.debezium.time.ZonedTime";
    /// `io.debezium.time.MicroDuration`.
    pub const MICRO_DURATION: &str = "io.debezium.time.MicroDuration";
    /// `io.debezium.time.Interval`.
    pub const INTERVAL: &str = "io.debezium.time.Interval";
    /// `io.debezium.data.Uuid`.
    pub const UUID: &str = "io.debezium.data.Uuid";
    /// `io.debezium.data.Json`.
    pub const JSON: &str = "io.debezium.data.Json";
    /// `io.debezium.data.Xml`.
    pub const XML: &str = "io.debezium.data.Xml";
    /// `io.debezium.data.Enum`.
    pub const ENUM: &str = "io.debezium.data.Enum";
    /// `io.debezium.data.Bits`.
    pub const BITS: &str = "io.debezium.data.Bits";
    /// `io.debezium.data.Ltree`.
    pub const LTREE: &str = "io.debezium.data.Ltree";
    /// `io.debezium.data.Tsvector`.
    pub const TSVECTOR: &str = "io.debezium.data.Tsvector";
    /// Schema parameter carrying the source column type (`column.propagate.source.type`).
    pub const SOURCE_COLUMN_TYPE: &str = "__debezium.source.column.type";
    /// Schema parameter carrying the source column length.
    pub const SOURCE_COLUMN_LENGTH: &str = "__debezium.source.column.length";
    /// Schema parameter carrying the source column scale.
    pub const SOURCE_COLUMN_SCALE: &str = "__debezium.source.column.scale";
}

/// A Kafka Connect schema type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectType {
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `float` (FLOAT32).
    Float32,
    /// `double` (FLOAT64).
    Float64,
    /// `boolean`.
    Boolean,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `array`.
    Array,
    /// `map`.
    Map,
    /// `struct`.
    Struct,
}

impl ConnectType {
    /// The name JsonConverter writes in `"type"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectType::Int8 => "int8",
            ConnectType::Int16 => "int16",
            ConnectType::Int32 => "int32",
            ConnectType::Int64 => "int64",
            ConnectType::Float32 => "float",
            ConnectType::Float64 => "double",
            ConnectType::Boolean => "boolean",
            ConnectType::String => "string",
            ConnectType::Bytes => "bytes",
            ConnectType::Array => "array",
            ConnectType::Map => "map",
            ConnectType::Struct => "struct",
        }
    }

    /// Parses a JsonConverter type name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "int8" => ConnectType::Int8,
            "int16" => ConnectType::Int16,
            "int32" => ConnectType::Int32,
            "int64" => ConnectType::Int64,
            "float" => ConnectType::Float32,
            "double" => ConnectType::Float64,
            "boolean" => ConnectType::Boolean,
            "string" => ConnectType::String,
            "bytes" => ConnectType::Bytes,
            "array" => ConnectType::Array,
            "map" => ConnectType::Map,
            "struct" => ConnectType::Struct,
            _ => return None,
        })
    }
}

/// A value in Kafka Connect's generic representation (used for schema
/// defaults and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// null.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// FLOAT32 / FLOAT64.
    Float(f64),
    /// STRING.
    String(String),
    /// BYTES.
    Bytes(Vec<u8>),
    /// ARRAY.
    Array(Vec<Datum>),
    /// MAP entries in order.
    Map(Vec<(Datum, Datum)>),
    /// STRUCT field values in schema order.
    Struct(Vec<Datum>),
}

/// A named field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field schema.
    pub schema: ConnectSchema,
}

/// A Kafka Connect schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSchema {
    /// Type.
    pub ty: ConnectType,
    /// True when null is allowed.
    pub optional: bool,
    /// Semantic / record name.
    pub name: Option<String>,
    /// Schema version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters in insertion order.
    pub parameters: Vec<(String, String)>,
    /// Default value.
    pub default: Option<Datum>,
    /// Fields of a struct.
    pub fields: Vec<Field>,
    /// Element schema of an array, value schema of a map.
    pub items: Option<Box<ConnectSchema>>,
    /// Key schema of a map.
    pub keys: Option<Box<ConnectSchema>>,
}

impl ConnectSchema {
    /// A schema of a primitive type.
    pub fn new(ty: ConnectType) -> Self {
        Self {
            ty,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            fields: Vec::new(),
            items: None,
            keys: None,
        }
    }

    /// A struct schema.
    pub fn structure(name: impl Into<String>, fields: Vec<Field>) -> Self {
        Self {
            name: Some(name.into()),
            fields,
            ..Self::new(ConnectType::Struct)
        }
    }

    /// An array schema.
    pub fn array(items: ConnectSchema) -> Self {
        Self {
            items: Some(Box::new(items)),
            ..Self::new(ConnectType::Array)
        }
    }

    /// Sets `optional`.
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Sets the name and version.
    pub fn named(mut self, name: &str, version: Option<i32>) -> Self {
        self.name = Some(name.to_owned());
        self.version = version;
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.parameters.push((key.to_owned(), value.into()));
        self
    }

    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The semantic name or `""`.
    pub fn name_str(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// A struct field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, schema: ConnectSchema) -> Self {
        Self {
            name: name.into(),
            schema,
        }
    }
}

/// How one column's [`Value`] maps to its Connect representation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Codec {
    /// BOOLEAN (also `bit(1)`).
    Boolean,
    /// INT8/16/32/64.
    Int,
    /// FLOAT32.
    Float32,
    /// FLOAT64 (also numerics under `decimal.handling.mode=double`).
    Float64,
    /// STRING (text-likes, json, uuid, enum, numerics in string mode...).
    String,
    /// STRING with bytes in base64 / base64-url-safe / hex.
    BinaryString(BinaryMode),
    /// BYTES.
    Bytes,
    /// `Decimal` BYTES with a fixed scale.
    Decimal {
        /// Scale.
        scale: i32,
    },
    /// `VariableScaleDecimal` struct.
    VariableScaleDecimal,
    /// INT32 days.
    DateDays,
    /// IsoDate string.
    DateIso,
    /// INT32 milliseconds past midnight.
    TimeMillis,
    /// INT64 microseconds past midnight.
    TimeMicros,
    /// INT64 nanoseconds past midnight.
    TimeNanos,
    /// IsoTime string.
    TimeIso,
    /// INT64 epoch milliseconds.
    TimestampMillis,
    /// INT64 epoch microseconds.
    TimestampMicros,
    /// INT64 epoch nanoseconds.
    TimestampNanos,
    /// IsoTimestamp string.
    TimestampIso,
    /// ZonedTimestamp string with this many fraction digits (None = minimal).
    ZonedTimestamp {
        /// Fraction digits.
        width: Option<u32>,
    },
    /// ZonedTime string.
    ZonedTime,
    /// MicroDuration INT64.
    IntervalMicros,
    /// Interval string.
    IntervalString,
    /// `Bits` BYTES (little-endian, as Debezium).
    Bits {
        /// Declared length in bits.
        length: u32,
    },
    /// hstore as a JSON string.
    HstoreJson,
    /// hstore as a map.
    HstoreMap,
    /// An array of the element codec.
    Array(Box<Codec>),
}

/// A Connect-level primitive produced from a [`Value`] by a [`Codec`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prim<'a> {
    Null,
    Bool(bool),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    VarDecimal {
        scale: i32,
        unscaled: Vec<u8>,
    },
    Array(&'a [Value]),
    Map(Vec<(String, Option<String>)>),
    /// An array made up on the fly (TOAST placeholders).
    Owned(Vec<Prim<'static>>),
}

fn time_precision(t: &PgType) -> u32 {
    t.time_precision().unwrap_or(6)
}

fn decimal_scale_of(t: &PgType) -> i32 {
    t.numeric_scale().unwrap_or(0)
}

fn is_variable_scale(t: &PgType) -> bool {
    t.numeric_precision().is_none()
}

/// The element type name of an array type (`_int4` → `int4`).
fn base_name(t: &PgType) -> &str {
    match &t.kind {
        TypeKind::Domain(b) => base_name(b),
        _ => t.name.as_str(),
    }
}

/// The Connect schema and codec Debezium uses for a PostgreSQL type
/// (without optional/default/parameters, which depend on the column).
pub fn type_schema(t: &PgType, options: &Options) -> (ConnectSchema, Codec) {
    use ConnectType as T;
    let s = ConnectSchema::new;
    if let TypeKind::Array(elem) = &t.kind {
        // Element schemas are optional.
        let (mut es, ec) = type_schema(&elem.as_ref().clone().with_modifier(t.modifier), options);
        if matches!(ec, Codec::Array(_)) {
            return (
                ConnectSchema::array(s(T::String).optional(true)),
                Codec::Array(Box::new(Codec::String)),
            );
        }
        es.optional = true;
        return (ConnectSchema::array(es), Codec::Array(Box::new(ec)));
    }
    if let TypeKind::Enum(labels) = &t.kind {
        return (
            s(T::String)
                .named(names::ENUM, Some(1))
                .param("allowed", labels.join(",")),
            Codec::String,
        );
    }
    if let TypeKind::Domain(b) = &t.kind {
        let mut inner = b.as_ref().clone();
        if inner.modifier < 0 {
            inner.modifier = t.modifier;
        }
        return type_schema(&inner, options);
    }
    let mode = options.time_precision;
    match base_name(t) {
        "bool" => (s(T::Boolean), Codec::Boolean),
        "int2" | "smallserial" => (s(T::Int16), Codec::Int),
        "int4" | "serial" => (s(T::Int32), Codec::Int),
        "int8" | "bigserial" | "oid" => (s(T::Int64), Codec::Int),
        "float4" => (s(T::Float32), Codec::Float32),
        "float8" => (s(T::Float64), Codec::Float64),
        "numeric" => match options.decimal_handling {
            DecimalMode::Precise if is_variable_scale(t) => (
                ConnectSchema {
                    doc: Some("Variable scaled decimal".to_owned()),
                    ..ConnectSchema::structure(
                        names::VARIABLE_SCALE_DECIMAL,
                        vec![
                            Field::new("scale", s(T::Int32)),
                            Field::new("value", s(T::Bytes)),
                        ],
                    )
                }
                .named(names::VARIABLE_SCALE_DECIMAL, Some(1)),
                Codec::VariableScaleDecimal,
            ),
            DecimalMode::Precise => {
                let scale = decimal_scale_of(t);
                (
                    s(T::Bytes)
                        .named(names::DECIMAL, Some(1))
                        .param("scale", scale.to_string())
                        .param(
                            "connect.decimal.precision",
                            t.numeric_precision().unwrap_or(0).to_string(),
                        ),
                    Codec::Decimal { scale },
                )
            }
            DecimalMode::Double => (s(T::Float64), Codec::Float64),
            DecimalMode::String => (s(T::String), Codec::String),
        },
        "money" => match options.decimal_handling {
            DecimalMode::Precise => {
                let scale = options.money_fraction_digits as i32;
                (
                    s(T::Bytes)
                        .named(names::DECIMAL, Some(1))
                        .param("scale", scale.to_string()),
                    Codec::Decimal { scale },
                )
            }
            DecimalMode::Double => (s(T::Float64), Codec::Float64),
            DecimalMode::String => (s(T::String), Codec::String),
        },
        "bytea" => match options.binary_handling {
            BinaryMode::Bytes => (s(T::Bytes), Codec::Bytes),
            m => (s(T::String), Codec::BinaryString(m)),
        },
        "date" => match mode {
            TimePrecisionMode::Connect => (
                s(T::Int32).named(names::CONNECT_DATE, Some(1)),
                Codec::DateDays,
            ),
            TimePrecisionMode::IsoString => {
                (s(T::String).named(names::ISO_DATE, Some(1)), Codec::DateIso)
            }
            _ => (s(T::Int32).named(names::DATE, Some(1)), Codec::DateDays),
        },
        "time" => {
            let p = time_precision(t);
            match mode {
                TimePrecisionMode::Adaptive if p <= 3 => {
                    (s(T::Int32).named(names::TIME, Some(1)), Codec::TimeMillis)
                }
                TimePrecisionMode::Adaptive
                | TimePrecisionMode::AdaptiveTimeMicroseconds
                | TimePrecisionMode::Microseconds => (
                    s(T::Int64).named(names::MICRO_TIME, Some(1)),
                    Codec::TimeMicros,
                ),
                TimePrecisionMode::Connect => (
                    s(T::Int32).named(names::CONNECT_TIME, Some(1)),
                    Codec::TimeMillis,
                ),
                TimePrecisionMode::Nanoseconds => (
                    s(T::Int64).named(names::NANO_TIME, Some(1)),
                    Codec::TimeNanos,
                ),
                TimePrecisionMode::IsoString => {
                    (s(T::String).named(names::ISO_TIME, Some(1)), Codec::TimeIso)
                }
            }
        }
        "timestamp" => {
            let p = time_precision(t);
            match mode {
                TimePrecisionMode::Adaptive | TimePrecisionMode::AdaptiveTimeMicroseconds
                    if p <= 3 =>
                {
                    (
                        s(T::Int64).named(names::TIMESTAMP, Some(1)),
                        Codec::TimestampMillis,
                    )
                }
                TimePrecisionMode::Adaptive
                | TimePrecisionMode::AdaptiveTimeMicroseconds
                | TimePrecisionMode::Microseconds => (
                    s(T::Int64).named(names::MICRO_TIMESTAMP, Some(1)),
                    Codec::TimestampMicros,
                ),
                TimePrecisionMode::Connect => (
                    s(T::Int64).named(names::CONNECT_TIMESTAMP, Some(1)),
                    Codec::TimestampMillis,
                ),
                TimePrecisionMode::Nanoseconds => (
                    s(T::Int64).named(names::NANO_TIMESTAMP, Some(1)),
                    Codec::TimestampNanos,
                ),
                TimePrecisionMode::IsoString => (
                    s(T::String).named(names::ISO_TIMESTAMP, Some(1)),
                    Codec::TimestampIso,
                ),
            }
        }
        "timestamptz" => (
            s(T::String).named(names::ZONED_TIMESTAMP, Some(1)),
            Codec::ZonedTimestamp {
                width: Some(t.time_precision().unwrap_or(6)).filter(|w| *w > 0),
            },
        ),
        "timetz" => (
            s(T::String).named(names::ZONED_TIME, Some(1)),
            Codec::ZonedTime,
        ),
        "interval" => match options.interval_handling {
            IntervalMode::Numeric => (
                s(T::Int64).named(names::MICRO_DURATION, Some(1)),
                Codec::IntervalMicros,
            ),
            IntervalMode::String => (
                s(T::String).named(names::INTERVAL, Some(1)),
                Codec::IntervalString,
            ),
        },
        "uuid" => (s(T::String).named(names::UUID, Some(1)), Codec::String),
        "json" | "jsonb" => (s(T::String).named(names::JSON, Some(1)), Codec::String),
        "xml" => (s(T::String).named(names::XML, Some(1)), Codec::String),
        "ltree" => (s(T::String).named(names::LTREE, Some(1)), Codec::String),
        "tsvector" => (s(T::String).named(names::TSVECTOR, Some(1)), Codec::String),
        "bit" | "varbit" => {
            let len = match t.length() {
                Some(l) => l,
                None if t.name == "bit" => 1,
                None => i32::MAX as u32,
            };
            if len > 1 {
                (
                    s(T::Bytes)
                        .named(names::BITS, Some(1))
                        .param("length", len.to_string()),
                    Codec::Bits { length: len },
                )
            } else {
                (s(T::Boolean), Codec::Boolean)
            }
        }
        "hstore" => match options.hstore_handling {
            HstoreMode::Json => (s(T::String).named(names::JSON, Some(1)), Codec::HstoreJson),
            HstoreMode::Map => (
                ConnectSchema {
                    keys: Some(Box::new(s(T::String))),
                    ..ConnectSchema::new(T::Map)
                }
                .items_schema(s(T::String).optional(true)),
                Codec::HstoreMap,
            ),
        },
        _ => (s(T::String), Codec::String),
    }
}

impl ConnectSchema {
    fn items_schema(mut self, items: ConnectSchema) -> Self {
        self.items = Some(Box::new(items));
        self
    }
}

/// The full schema of a column (type schema + optional + default +
/// propagated source-type parameters) and its codec.
pub fn column_schema(
    table_schema: &str,
    table: &str,
    column: &Column,
    options: &Options,
) -> (ConnectSchema, Codec) {
    let (mut schema, codec) = type_schema(&column.pg_type, options);
    schema.optional = column.optional;
    if options.propagates_source_type(table_schema, table, &column.name) {
        let t = &column.pg_type;
        schema
            .parameters
            .push((names::SOURCE_COLUMN_TYPE.to_owned(), t.name.to_uppercase()));
        let length = t.length().or_else(|| t.numeric_precision()).or_else(|| {
            matches!(
                t.name.as_str(),
                "time" | "timetz" | "timestamp" | "timestamptz"
            )
            .then(|| time_precision(t))
        });
        if let Some(l) = length {
            schema
                .parameters
                .push((names::SOURCE_COLUMN_LENGTH.to_owned(), l.to_string()));
        }
        if let Some(sc) = t.numeric_scale() {
            schema
                .parameters
                .push((names::SOURCE_COLUMN_SCALE.to_owned(), sc.to_string()));
        }
    }
    if let Some(expr) = &column.default_expr {
        if let Some(v) = crate::default_value::parse_default(&column.pg_type, expr) {
            if let Ok(p) = codec.lower(&v, &column.name, options) {
                if !matches!(p, Prim::VarDecimal { .. }) {
                    schema.default = Some(p.to_datum());
                }
            }
        }
    }
    (schema, codec)
}

/// The value Debezium substitutes for a NULL in a non-optional column
/// without default (`JdbcValueConverters` fallbacks).
pub(crate) fn fallback(codec: &Codec) -> Prim<'static> {
    match codec {
        Codec::Boolean => Prim::Bool(false),
        Codec::Int
        | Codec::DateDays
        | Codec::TimeMillis
        | Codec::TimeMicros
        | Codec::TimeNanos
        | Codec::TimestampMillis
        | Codec::TimestampMicros
        | Codec::TimestampNanos
        | Codec::IntervalMicros => Prim::Int(0),
        Codec::Float32 => Prim::F32(0.0),
        Codec::Float64 => Prim::F64(0.0),
        Codec::ZonedTimestamp { .. } => Prim::Str(Cow::Borrowed("1970-01-01T00:00:00Z")),
        Codec::ZonedTime => Prim::Str(Cow::Borrowed("00:00:00Z")),
        Codec::IntervalString => Prim::Str(Cow::Borrowed("P0Y0M0DT0H0M0S")),
        Codec::DateIso => Prim::Str(Cow::Borrowed("1970-01-01Z")),
        Codec::TimeIso => Prim::Str(Cow::Borrowed("00:00:00Z")),
        Codec::TimestampIso => Prim::Str(Cow::Borrowed("1970-01-01T00:00:00Z")),
        Codec::String | Codec::BinaryString(_) | Codec::HstoreJson => Prim::Str(Cow::Borrowed("")),
        Codec::Bytes | Codec::Bits { .. } => Prim::Bytes(Cow::Borrowed(&[])),
        Codec::Decimal { .. } => Prim::Bytes(Cow::Borrowed(&[0])),
        Codec::VariableScaleDecimal => Prim::VarDecimal {
            scale: 0,
            unscaled: vec![0],
        },
        Codec::HstoreMap => Prim::Map(Vec::new()),
        Codec::Array(_) => Prim::Owned(Vec::new()),
    }
}

fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    s
}

/// Parses a hyphenated (or plain) hex UUID.
pub(crate) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let v = crate::base64::hex_decode(&hex)?;
    v.try_into().ok()
}

/// Rescales a finite decimal to `scale` digits (half-up rounding when digits
/// are dropped), as `BigDecimal.setScale` does.
pub(crate) fn rescale(d: &Decimal, scale: i32) -> Option<Decimal> {
    let cur = d.scale() as i32;
    if cur == scale || scale < 0 {
        return Some(d.clone());
    }
    let s = d.as_str();
    if cur < scale {
        let mut t = String::with_capacity(s.len() + (scale - cur) as usize + 1);
        t.push_str(s);
        if cur == 0 {
            t.push('.');
        }
        for _ in cur..scale {
            t.push('0');
        }
        return Decimal::parse(&t);
    }
    // Drop digits with half-up rounding.
    let neg = s.starts_with('-');
    let body = s.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let keep = scale as usize;
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().take(keep)).collect();
    let round_up = frac.as_bytes().get(keep).is_some_and(|b| *b >= b'5');
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                if *d == b'9' {
                    *d = b'0';
                } else {
                    *d += 1;
                    break;
                }
            }
        }
    }
    let split = digits.len() - keep;
    let mut t = String::new();
    if neg {
        t.push('-');
    }
    t.push_str(std::str::from_utf8(digits.get(..split)?).ok()?);
    if keep > 0 {
        t.push('.');
        t.push_str(std::str::from_utf8(digits.get(split..)?).ok()?);
    }
    let out = Decimal::parse(&t)?;
    // Normalise "-0.00" to "0.00".
    if neg && !out.is_negative() {
        return Decimal::parse(t.trim_start_matches('-'));
    }
    Some(out)
}

/// Strips trailing fraction zeros (`stripTrailingZeros`, scale never below 0).
fn strip_trailing_zeros(d: &Decimal) -> (String, i32) {
    let s = d.as_str();
    match s.split_once('.') {
        Some((i, f)) => {
            let f = f.trim_end_matches('0');
            if f.is_empty() {
                (i.to_owned(), 0)
            } else {
                (format!("{i}.{f}"), f.len() as i32)
            }
        }
        None => (s.to_owned(), 0),
    }
}

/// Bits as Debezium writes them: the bit string read as an integer
/// (rightmost bit = bit 0), little-endian, as few bytes as the highest set bit needs.
fn bits_to_le(b: &Bits) -> Vec<u8> {
    let len = b.len as usize;
    let mut out: Vec<u8> = Vec::new();
    let mut highest: Option<usize> = None;
    for i in 0..len {
        let byte = b.data.get(i / 8).copied().unwrap_or(0);
        if byte & (0x80 >> (i % 8)) != 0 {
            let k = len - 1 - i; // bit index in the integer
            if out.len() <= k / 8 {
                out.resize(k / 8 + 1, 0);
            }
            if let Some(o) = out.get_mut(k / 8) {
                *o |= 1 << (k % 8);
            }
            highest = Some(highest.map_or(k, |h: usize| h.max(k)));
        }
    }
    out.truncate(highest.map_or(0, |h| h / 8 + 1));
    out
}

/// Inverse of [`bits_to_le`] for a declared length.
fn bits_from_le(bytes: &[u8], length: u32) -> Bits {
    let len = length as usize;
    let mut data = vec![0u8; len.div_ceil(8)];
    for i in 0..len {
        let k = len - 1 - i;
        let set = bytes.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0);
        if set {
            if let Some(d) = data.get_mut(i / 8) {
                *d |= 0x80 >> (i % 8);
            }
        }
    }
    Bits {
        len: length,
        data: Bytes::from(data),
    }
}

fn numeric_special_string(n: &Numeric) -> Option<&'static str> {
    match n {
        Numeric::NaN => Some("NAN"),
        Numeric::PosInfinity => Some("POSITIVE_INFINITY"),
        Numeric::NegInfinity => Some("NEGATIVE_INFINITY"),
        Numeric::Finite(_) => None,
    }
}

fn numeric_f64(n: &Numeric) -> f64 {
    match n {
        Numeric::NaN => f64::NAN,
        Numeric::PosInfinity => f64::INFINITY,
        Numeric::NegInfinity => f64::NEG_INFINITY,
        Numeric::Finite(d) => d.as_str().parse().unwrap_or(f64::NAN),
    }
}

/// Parses PostgreSQL hstore text (`"a"=>"1", "b"=>NULL`).
pub(crate) fn parse_hstore(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    let read = |i: &mut usize| -> Option<Option<String>> {
        if b.get(*i) == Some(&b'"') {
            *i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(*i)? {
                    b'"' => {
                        *i += 1;
                        break;
                    }
                    b'\\' => {
                        v.push(*b.get(*i + 1)?);
                        *i += 2;
                    }
                    c => {
                        v.push(*c);
                        *i += 1;
                    }
                }
            }
            Some(Some(String::from_utf8(v).ok()?))
        } else {
            let start = *i;
            while b
                .get(*i)
                .is_some_and(|c| !c.is_ascii_whitespace() && *c != b',' && *c != b'=')
            {
                *i += 1;
            }
            let w = std::str::from_utf8(b.get(start..*i)?).ok()?;
            if w.eq_ignore_ascii_case("NULL") {
                Some(None)
            } else if w.is_empty() {
                None
            } else {
                Some(Some(w.to_owned()))
            }
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let k = read(&mut i)??;
        skip_ws(&mut i);
        if b.get(i..i + 2) != Some(b"=>") {
            return None;
        }
        i += 2;
        skip_ws(&mut i);
        let v = read(&mut i)?;
        out.push((k, v));
        skip_ws(&mut i);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
    Some(out)
}

fn hstore_to_json(entries: &[(String, Option<String>)]) -> String {
    let mut out = Vec::new();
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::json::write_str(&mut out, k);
        out.push(b':');
        match v {
            Some(v) => crate::json::write_str(&mut out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

fn hstore_text(entries: &[(String, Option<String>)]) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    entries
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("\"{}\"=>\"{}\"", esc(k), esc(v)),
            None => format!("\"{}\"=>NULL", esc(k)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Codec {
    /// The codec matching a Connect schema (used when decoding).
    pub fn from_schema(schema: &ConnectSchema, path: &Path) -> Result<Codec> {
        use ConnectType as T;
        let name = schema.name_str();
        Ok(match (schema.ty, name) {
            (T::Bytes, names::DECIMAL) => {
                let scale = schema
                    .parameter("scale")
                    .and_then(|s| s.parse::<i32>().ok())
                    .ok_or_else(|| {
                        Error::schema(
                            path,
                            "a Decimal with an integer \"scale\" parameter",
                            "none",
                        )
                    })?;
                Codec::Decimal { scale }
            }
            (T::Struct, names::VARIABLE_SCALE_DECIMAL) => Codec::VariableScaleDecimal,
            (T::Int32, names::DATE | names::CONNECT_DATE) => Codec::DateDays,
            (T::String, names::ISO_DATE) => Codec::DateIso,
            (T::Int32, names::TIME | names::CONNECT_TIME) => Codec::TimeMillis,
            (T::Int64, names::MICRO_TIME) => Codec::TimeMicros,
            (T::Int64, names::NANO_TIME) => Codec::TimeNanos,
            (T::String, names::ISO_TIME) => Codec::TimeIso,
            (T::Int64, names::TIMESTAMP | names::CONNECT_TIMESTAMP) => Codec::TimestampMillis,
            (T::Int64, names::MICRO_TIMESTAMP) => Codec::TimestampMicros,
            (T::Int64, names::NANO_TIMESTAMP) => Codec::TimestampNanos,
            (T::String, names::ISO_TIMESTAMP) => Codec::TimestampIso,
            (T::String, names::ZONED_TIMESTAMP) => Codec::ZonedTimestamp { width: None },
            (T::String, names::ZONED_TIME) => Codec::ZonedTime,
            (T::Int64, names::MICRO_DURATION) => Codec::IntervalMicros,
            (T::String, names::INTERVAL) => Codec::IntervalString,
            (T::Bytes, names::BITS) => {
                let length = schema
                    .parameter("length")
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| {
                        Error::schema(path, "a Bits with an integer \"length\" parameter", "none")
                    })?;
                Codec::Bits { length }
            }
            (T::Boolean, "") => Codec::Boolean,
            (T::Int8 | T::Int16 | T::Int32 | T::Int64, "") => Codec::Int,
            (T::Float32, "") => Codec::Float32,
            (T::Float64, "") => Codec::Float64,
            (
                T::String,
                ""
                | names::UUID
                | names::JSON
                | names::XML
                | names::ENUM
                | names::LTREE
                | names::TSVECTOR,
            ) => Codec::String,
            (T::Bytes, "") => Codec::Bytes,
            (T::Array, "") => {
                let items = schema
                    .items
                    .as_ref()
                    .ok_or_else(|| Error::schema(path, "an array with \"items\"", "none"))?;
                Codec::Array(Box::new(Codec::from_schema(items, &path.join("items"))?))
            }
            (T::Map, "") => Codec::HstoreMap,
            (ty, n) => {
                return Err(Error::UnknownSemanticType {
                    path: path.clone(),
                    name: n.to_owned(),
                    connect_type: ty.as_str().to_owned(),
                })
            }
        })
    }

    /// Converts a value to its Connect primitive. `Unavailable` becomes the
    /// placeholder in the schema's form.
    pub(crate) fn lower<'a>(
        &self,
        v: &'a Value,
        column: &str,
        options: &Options,
    ) -> Result<Prim<'a>> {
        let bad = |what: &str| Error::Unrepresentable {
            column: column.to_owned(),
            reason: format!("a {what} value cannot be written with codec {self:?}"),
        };
        if let Value::Null = v {
            return Ok(Prim::Null);
        }
        if let Value::Unavailable = v {
            return Ok(self.placeholder(options));
        }
        Ok(match self {
            Codec::Boolean => match v {
                Value::Bool(b) => Prim::Bool(*b),
                Value::Bits(b) => Prim::Bool(b.data.first().is_some_and(|x| x & 0x80 != 0)),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Int => match v {
                Value::Int16(i) => Prim::Int(i64::from(*i)),
                Value::Int32(i) => Prim::Int(i64::from(*i)),
                Value::Int64(i) => Prim::Int(*i),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Float32 => match v {
                Value::Float32(f) => Prim::F32(*f),
                Value::Float64(f) => Prim::F32(*f as f32),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Float64 => match v {
                Value::Float64(f) => Prim::F64(*f),
                Value::Float32(f) => Prim::F64(f64::from(*f)),
                Value::Numeric(n) | Value::Money(n) => Prim::F64(numeric_f64(n)),
                Value::Int64(i) => Prim::F64(*i as f64),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::String | Codec::HstoreJson => match v {
                Value::Text(s) | Value::Json(s) | Value::Xml(s) | Value::Enum(s) => {
                    if matches!(self, Codec::HstoreJson) {
                        match parse_hstore(s) {
                            Some(e) => Prim::Str(Cow::Owned(hstore_to_json(&e))),
                            None => Prim::Str(Cow::Borrowed(s.as_str())),
                        }
                    } else {
                        Prim::Str(Cow::Borrowed(s.as_str()))
                    }
                }
                Value::Numeric(n) | Value::Money(n) => match n {
                    Numeric::Finite(d) => Prim::Str(Cow::Borrowed(d.as_str())),
                    other => Prim::Str(Cow::Borrowed(
                        numeric_special_string(other).unwrap_or("NAN"),
                    )),
                },
                Value::Uuid(u) => Prim::Str(Cow::Owned(uuid_string(u))),
                Value::Bool(b) => Prim::Str(Cow::Borrowed(if *b { "true" } else { "false" })),
                Value::Int16(i) => Prim::Str(Cow::Owned(i.to_string())),
                Value::Int32(i) => Prim::Str(Cow::Owned(i.to_string())),
                Value::Int64(i) => Prim::Str(Cow::Owned(i.to_string())),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::BinaryString(mode) => match v {
                Value::Bytes(b) => {
                    let mut out = Vec::new();
                    match mode {
                        BinaryMode::Base64 | BinaryMode::Bytes => {
                            crate::base64::encode_into(b, &mut out)
                        }
                        BinaryMode::Base64UrlSafe => {
                            crate::base64::encode_url_safe_into(b, &mut out)
                        }
                        BinaryMode::Hex => crate::base64::hex_into(b, &mut out),
                    }
                    Prim::Str(Cow::Owned(String::from_utf8(out).unwrap_or_default()))
                }
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Bytes => match v {
                Value::Bytes(b) => Prim::Bytes(Cow::Borrowed(b.as_ref())),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Decimal { scale } => match v {
                Value::Numeric(Numeric::Finite(d)) | Value::Money(Numeric::Finite(d)) => {
                    let d = rescale(d, *scale).ok_or_else(|| bad("decimal"))?;
                    Prim::Bytes(Cow::Owned(d.to_unscaled_be_bytes()))
                }
                Value::Numeric(_) | Value::Money(_) => return Err(Error::Unrepresentable {
                    column: column.to_owned(),
                    reason:
                        "NaN/Infinity cannot be represented with decimal.handling.mode=precise; \
                                 set decimal.handling.mode to string or double"
                            .to_owned(),
                }),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::VariableScaleDecimal => match v {
                Value::Numeric(Numeric::Finite(d)) => {
                    let (text, scale) = strip_trailing_zeros(d);
                    let d = Decimal::parse(&text).ok_or_else(|| bad("decimal"))?;
                    Prim::VarDecimal {
                        scale,
                        unscaled: d.to_unscaled_be_bytes(),
                    }
                }
                Value::Numeric(_) => return Err(Error::Unrepresentable {
                    column: column.to_owned(),
                    reason:
                        "NaN/Infinity cannot be represented with decimal.handling.mode=precise; \
                                 set decimal.handling.mode to string or double"
                            .to_owned(),
                }),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::DateDays => match v {
                Value::Date(Date::Days(d)) => Prim::Int(i64::from(*d)),
                Value::Date(Date::PosInfinity) => Prim::Int(i64::from(i32::MAX)),
                Value::Date(Date::NegInfinity) => Prim::Int(i64::from(i32::MIN)),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::DateIso => match v {
                Value::Date(Date::Days(d)) => {
                    // IsoDate: ISO_OFFSET_DATE at UTC.
                    let mut s = String::new();
                    temporal::format_date(&mut s, i64::from(*d));
                    s.push('Z');
                    Prim::Str(Cow::Owned(s))
                }
                Value::Date(Date::PosInfinity) => Prim::Str(Cow::Borrowed("infinity")),
                Value::Date(Date::NegInfinity) => Prim::Str(Cow::Borrowed("-infinity")),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::TimeMillis | Codec::TimeMicros | Codec::TimeNanos | Codec::TimeIso => {
                let micros = match v {
                    Value::Time(m) => *m,
                    _ => return Err(bad(variant_name(v))),
                };
                match self {
                    Codec::TimeMillis => Prim::Int(micros.div_euclid(1000)),
                    Codec::TimeMicros => Prim::Int(micros),
                    Codec::TimeNanos => Prim::Int(micros.saturating_mul(1000)),
                    _ => {
                        // IsoTime: ISO_OFFSET_TIME at UTC.
                        let mut s = String::new();
                        temporal::format_time_of_day(&mut s, micros, None);
                        s.push('Z');
                        Prim::Str(Cow::Owned(s))
                    }
                }
            }
            Codec::TimestampMillis
            | Codec::TimestampMicros
            | Codec::TimestampNanos
            | Codec::TimestampIso => {
                let ts = match v {
                    Value::Timestamp(t) | Value::TimestampTz(t) => *t,
                    _ => return Err(bad(variant_name(v))),
                };
                // Debezium's int64 encodings count from 1970; PostgreSQL's last
                // 29 years have no i64 µs (or ns) value there: refuse them
                // rather than wrap (the record goes to the DLQ).
                let out_of_range = |unit: &str| Error::Unrepresentable {
                    column: column.to_owned(),
                    reason: format!(
                        "timestamp {ts:?} does not fit an int64 count of {unit} since \
                         1970-01-01 (codec {self:?}); use time.precision.mode=isostring \
                         or a string encoding to carry it"
                    ),
                };
                let unix_i128 =
                    |m: i64| i128::from(m) + i128::from(Timestamp::PG_EPOCH_UNIX_MICROS);
                match (self, ts) {
                    (Codec::TimestampMillis, Timestamp::PgMicros(m)) => Prim::Int(
                        i64::try_from(unix_i128(m).div_euclid(1000))
                            .map_err(|_| out_of_range("milliseconds"))?,
                    ),
                    (Codec::TimestampMillis, Timestamp::PosInfinity) => {
                        Prim::Int(temporal::PG_INFINITY_MICROS.div_euclid(1000))
                    }
                    (Codec::TimestampMillis, Timestamp::NegInfinity) => {
                        Prim::Int(temporal::PG_NEG_INFINITY_MICROS.div_euclid(1000))
                    }
                    (Codec::TimestampMicros, Timestamp::PgMicros(_)) => Prim::Int(
                        ts.micros_since_unix()
                            .ok_or_else(|| out_of_range("microseconds"))?,
                    ),
                    (Codec::TimestampMicros, Timestamp::PosInfinity) => {
                        Prim::Int(temporal::PG_INFINITY_MICROS)
                    }
                    (Codec::TimestampMicros, Timestamp::NegInfinity) => {
                        Prim::Int(temporal::PG_NEG_INFINITY_MICROS)
                    }
                    (Codec::TimestampNanos, Timestamp::PgMicros(m)) => Prim::Int(
                        i64::try_from(unix_i128(m) * 1000)
                            .map_err(|_| out_of_range("nanoseconds"))?,
                    ),
                    (Codec::TimestampNanos, Timestamp::PosInfinity) => Prim::Int(i64::MAX),
                    (Codec::TimestampNanos, Timestamp::NegInfinity) => Prim::Int(i64::MIN),
                    (_, Timestamp::PosInfinity) => Prim::Str(Cow::Borrowed("infinity")),
                    (_, Timestamp::NegInfinity) => Prim::Str(Cow::Borrowed("-infinity")),
                    (_, Timestamp::PgMicros(m)) => {
                        // IsoTimestamp: ISO_OFFSET_DATE_TIME at UTC.
                        let mut s = String::new();
                        temporal::format_local_timestamp(&mut s, unix_i128(m));
                        s.push('Z');
                        Prim::Str(Cow::Owned(s))
                    }
                }
            }
            Codec::ZonedTimestamp { width } => match v {
                Value::TimestampTz(t @ Timestamp::PgMicros(_))
                | Value::Timestamp(t @ Timestamp::PgMicros(_)) => {
                    let mut s = String::with_capacity(32);
                    let unix = t.micros_since_unix_i128().unwrap_or_default();
                    temporal::format_zoned_timestamp(&mut s, unix, *width);
                    Prim::Str(Cow::Owned(s))
                }
                Value::TimestampTz(Timestamp::PosInfinity) => Prim::Str(Cow::Borrowed("infinity")),
                Value::TimestampTz(Timestamp::NegInfinity) => Prim::Str(Cow::Borrowed("-infinity")),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::ZonedTime => match v {
                Value::TimeTz {
                    micros,
                    offset_seconds,
                } => {
                    let utc = micros - i64::from(*offset_seconds) * 1_000_000;
                    let mut s = String::with_capacity(20);
                    if utc == temporal::MICROS_PER_DAY {
                        s.push_str("24:00:00");
                    } else {
                        temporal::format_time_of_day(&mut s, utc, None);
                    }
                    s.push('Z');
                    Prim::Str(Cow::Owned(s))
                }
                _ => return Err(bad(variant_name(v))),
            },
            Codec::IntervalMicros => match v {
                Value::Interval(Interval {
                    months,
                    days,
                    micros,
                }) => Prim::Int(temporal::interval_micro_duration(*months, *days, *micros)),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::IntervalString => match v {
                Value::Interval(Interval {
                    months,
                    days,
                    micros,
                }) => {
                    let mut s = String::new();
                    temporal::format_interval_iso(&mut s, *months, *days, *micros);
                    Prim::Str(Cow::Owned(s))
                }
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Bits { .. } => match v {
                Value::Bits(b) => Prim::Bytes(Cow::Owned(bits_to_le(b))),
                _ => return Err(bad(variant_name(v))),
            },
            Codec::HstoreMap => match v {
                Value::Text(s) => {
                    Prim::Map(parse_hstore(s).ok_or_else(|| bad("malformed hstore"))?)
                }
                _ => return Err(bad(variant_name(v))),
            },
            Codec::Array(_) => match v {
                Value::Array(a) => Prim::Array(&a.elements),
                _ => return Err(bad(variant_name(v))),
            },
        })
    }

    /// The unavailable-value placeholder in this codec's form (Debezium's
    /// `UnchangedToastedPlaceholder`).
    pub(crate) fn placeholder(&self, options: &Options) -> Prim<'static> {
        let p = options.unavailable_value_placeholder.as_bytes();
        match self {
            Codec::Bytes | Codec::Decimal { .. } | Codec::Bits { .. } => {
                Prim::Bytes(Cow::Owned(p.to_vec()))
            }
            Codec::Array(elem) => match elem.as_ref() {
                Codec::Int => {
                    Prim::Owned(p.iter().map(|b| Prim::Int(i64::from(*b as i8))).collect())
                }
                Codec::Bytes => Prim::Owned(vec![Prim::Bytes(Cow::Owned(p.to_vec()))]),
                _ => Prim::Owned(vec![Prim::Str(Cow::Owned(
                    options.unavailable_value_placeholder.clone(),
                ))]),
            },
            Codec::HstoreMap => Prim::Map(vec![(
                options.unavailable_value_placeholder.clone(),
                Some(options.unavailable_value_placeholder.clone()),
            )]),
            Codec::HstoreJson => Prim::Str(Cow::Owned(hstore_to_json(&[(
                options.unavailable_value_placeholder.clone(),
                Some(options.unavailable_value_placeholder.clone()),
            )]))),
            Codec::String
            | Codec::BinaryString(_)
            | Codec::ZonedTimestamp { .. }
            | Codec::ZonedTime
            | Codec::IntervalString
            | Codec::DateIso
            | Codec::TimeIso
            | Codec::TimestampIso => {
                Prim::Str(Cow::Owned(options.unavailable_value_placeholder.clone()))
            }
            _ => Prim::Null,
        }
    }

    /// True when `p` is this codec's unavailable-value placeholder.
    pub(crate) fn is_placeholder(&self, p: &Prim<'_>, options: &Options) -> bool {
        let ph = options.unavailable_value_placeholder.as_str();
        match (self, p) {
            (Codec::Array(_), Prim::Owned(items)) => {
                self.placeholder(options)
                    == Prim::Owned(items.iter().map(Prim::to_static).collect())
            }
            (_, Prim::Str(s)) => s == ph,
            (Codec::Bytes | Codec::Decimal { .. } | Codec::Bits { .. }, Prim::Bytes(b)) => {
                b.as_ref() == ph.as_bytes()
            }
            (Codec::HstoreMap, Prim::Map(m)) => {
                m.len() == 1
                    && m.first()
                        .is_some_and(|(k, v)| k == ph && v.as_deref() == Some(ph))
            }
            _ => false,
        }
    }

    /// Builds a [`Value`] from a decoded primitive. `pg` refines the variant
    /// (a STRING under a `numeric` source type becomes [`Value::Numeric`]).
    pub(crate) fn lift(
        &self,
        p: Prim<'_>,
        pg: &PgType,
        path: &Path,
        options: &Options,
    ) -> Result<Value> {
        if matches!(p, Prim::Null) {
            return Ok(Value::Null);
        }
        if self.is_placeholder(&p, options) {
            return Ok(Value::Unavailable);
        }
        let found = |p: &Prim<'_>| p.kind_name().to_owned();
        let want = |what: &str, p: &Prim<'_>| Error::mismatch(path, what, found(p));
        Ok(match self {
            Codec::Boolean => match p {
                Prim::Bool(b) if matches!(pg.name.as_str(), "bit" | "varbit") => {
                    Value::Bits(Bits {
                        len: 1,
                        data: Bytes::from(vec![if b { 0x80 } else { 0 }]),
                    })
                }
                Prim::Bool(b) => Value::Bool(b),
                p => return Err(want("boolean", &p)),
            },
            Codec::Int => match p {
                Prim::Int(i) => match pg.name.as_str() {
                    "int2" => {
                        Value::Int16(i16::try_from(i).map_err(|_| want("int16", &Prim::Int(i)))?)
                    }
                    "int4" => {
                        Value::Int32(i32::try_from(i).map_err(|_| want("int32", &Prim::Int(i)))?)
                    }
                    _ => Value::Int64(i),
                },
                p => return Err(want("integer", &p)),
            },
            Codec::Float32 => match p {
                Prim::F32(f) => Value::Float32(f),
                Prim::F64(f) => Value::Float32(f as f32),
                Prim::Int(i) => Value::Float32(i as f32),
                p => return Err(want("float", &p)),
            },
            Codec::Float64 => match p {
                Prim::F64(f) => Value::Float64(f),
                Prim::F32(f) => Value::Float64(f64::from(f)),
                Prim::Int(i) => Value::Float64(i as f64),
                p => return Err(want("double", &p)),
            },
            Codec::String | Codec::HstoreJson => {
                let s = match p {
                    Prim::Str(s) => s,
                    p => return Err(want("string", &p)),
                };
                text_value(pg, s.into_owned(), path)?
            }
            Codec::BinaryString(mode) => {
                let s = match p {
                    Prim::Str(s) => s,
                    p => return Err(want("string", &p)),
                };
                let bytes = match mode {
                    BinaryMode::Hex => crate::base64::hex_decode(s.as_bytes()),
                    _ => crate::base64::decode(s.as_bytes()).ok(),
                }
                .ok_or_else(|| Error::mismatch(path, format!("{mode:?} text"), "malformed text"))?;
                Value::Bytes(Bytes::from(bytes))
            }
            Codec::Bytes => match p {
                Prim::Bytes(b) => Value::Bytes(Bytes::from(b.into_owned())),
                p => return Err(want("bytes", &p)),
            },
            Codec::Decimal { scale } => match p {
                Prim::Bytes(b) => {
                    if *scale < 0 {
                        return Err(Error::mismatch(
                            path,
                            "a non-negative decimal scale",
                            scale.to_string(),
                        ));
                    }
                    let d = Numeric::Finite(Decimal::from_unscaled_be_bytes(&b, *scale as u32));
                    if pg.name == "money" {
                        Value::Money(d)
                    } else {
                        Value::Numeric(d)
                    }
                }
                p => return Err(want("decimal bytes", &p)),
            },
            Codec::VariableScaleDecimal => match p {
                Prim::VarDecimal { scale, unscaled } => {
                    if !(0..=1000).contains(&scale) {
                        return Err(Error::mismatch(
                            path,
                            "a scale between 0 and 1000",
                            scale.to_string(),
                        ));
                    }
                    Value::Numeric(Numeric::Finite(Decimal::from_unscaled_be_bytes(
                        &unscaled,
                        scale as u32,
                    )))
                }
                p => return Err(want("VariableScaleDecimal struct", &p)),
            },
            Codec::DateDays => match p {
                Prim::Int(i) if i == i64::from(i32::MAX) => Value::Date(Date::PosInfinity),
                Prim::Int(i) if i == i64::from(i32::MIN) => Value::Date(Date::NegInfinity),
                Prim::Int(i) => Value::Date(Date::Days(
                    i32::try_from(i).map_err(|_| want("int32 days", &Prim::Int(i)))?,
                )),
                p => return Err(want("int32 days", &p)),
            },
            Codec::DateIso => match p {
                Prim::Str(s) => match s.as_ref() {
                    "infinity" => Value::Date(Date::PosInfinity),
                    "-infinity" => Value::Date(Date::NegInfinity),
                    t => Value::Date(Date::Days(
                        temporal::parse_date(t.trim_end_matches('Z'))
                            .and_then(|d| i32::try_from(d).ok())
                            .ok_or_else(|| Error::mismatch(path, "an ISO date", t.to_owned()))?,
                    )),
                },
                p => return Err(want("string", &p)),
            },
            Codec::TimeMillis | Codec::TimeMicros | Codec::TimeNanos => match p {
                Prim::Int(i) => Value::Time(match self {
                    Codec::TimeMillis => i.saturating_mul(1000),
                    Codec::TimeMicros => i,
                    _ => i / 1000,
                }),
                p => return Err(want("integer time", &p)),
            },
            Codec::TimeIso => match p {
                Prim::Str(s) => Value::Time(
                    temporal::parse_time(s.trim_end_matches('Z'))
                        .ok_or_else(|| Error::mismatch(path, "an ISO time", s.as_ref()))?,
                ),
                p => return Err(want("string", &p)),
            },
            Codec::TimestampMillis | Codec::TimestampMicros | Codec::TimestampNanos => {
                let i = match p {
                    Prim::Int(i) => i,
                    p => return Err(want("integer timestamp", &p)),
                };
                let unit = match self {
                    Codec::TimestampMillis => TsUnit::Millis,
                    Codec::TimestampMicros => TsUnit::Micros,
                    _ => TsUnit::Nanos,
                };
                let ts = unit.timestamp(i).ok_or_else(|| {
                    Error::mismatch(path, "a timestamp within PostgreSQL's range", i.to_string())
                })?;
                if pg.name == "timestamptz" {
                    Value::TimestampTz(ts)
                } else {
                    Value::Timestamp(ts)
                }
            }
            Codec::TimestampIso => match p {
                Prim::Str(s) => Value::Timestamp(match s.as_ref() {
                    "infinity" => Timestamp::PosInfinity,
                    "-infinity" => Timestamp::NegInfinity,
                    t => temporal::parse_local_timestamp(t.trim_end_matches('Z'))
                        .ok_or_else(|| Error::mismatch(path, "an ISO timestamp", t.to_owned()))?,
                }),
                p => return Err(want("string", &p)),
            },
            Codec::ZonedTimestamp { .. } => match p {
                Prim::Str(s) => Value::TimestampTz(match s.as_ref() {
                    "infinity" => Timestamp::PosInfinity,
                    "-infinity" => Timestamp::NegInfinity,
                    t => temporal::parse_zoned_timestamp(t).ok_or_else(|| {
                        Error::mismatch(path, "an ISO-8601 timestamp with offset", t.to_owned())
                    })?,
                }),
                p => return Err(want("string", &p)),
            },
            Codec::ZonedTime => match p {
                Prim::Str(s) => {
                    let (micros, off) = temporal::parse_time_tz(&s).ok_or_else(|| {
                        Error::mismatch(path, "an ISO-8601 time with offset", s.as_ref())
                    })?;
                    Value::TimeTz {
                        micros: micros - i64::from(off) * 1_000_000,
                        offset_seconds: 0,
                    }
                }
                p => return Err(want("string", &p)),
            },
            Codec::IntervalMicros => match p {
                Prim::Int(i) => Value::Interval(Interval {
                    months: 0,
                    days: 0,
                    micros: i,
                }),
                p => return Err(want("int64 duration", &p)),
            },
            Codec::IntervalString => match p {
                Prim::Str(s) => {
                    let (months, days, micros) = temporal::parse_interval_iso(&s)
                        .ok_or_else(|| Error::mismatch(path, "an ISO-8601 interval", s.as_ref()))?;
                    Value::Interval(Interval {
                        months,
                        days,
                        micros,
                    })
                }
                p => return Err(want("string", &p)),
            },
            Codec::Bits { length } => match p {
                Prim::Bytes(b) => Value::Bits(bits_from_le(&b, (*length).min(1 << 20))),
                p => return Err(want("bytes", &p)),
            },
            Codec::HstoreMap => match p {
                Prim::Map(m) => Value::Text(Str::from(hstore_text(&m))),
                p => return Err(want("map", &p)),
            },
            Codec::Array(_) => {
                return Err(Error::mismatch(
                    path,
                    "array elements",
                    "a non-array decoder call",
                ))
            }
        })
    }
}

/// How a decoder turns a column's string values into [`Value`]s without
/// the generic primitive path: decided once per column when the decode plan
/// is built (the same rules as [`Codec::lift`] for STRING values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFast {
    /// Plain text: the string itself becomes [`Value::Text`].
    Text,
    /// `numeric` as a decimal string (`decimal.handling.mode=string`).
    Decimal,
    /// Anything else: use [`Codec::lift`].
    Generic,
}

impl TextFast {
    /// The fast kind of a column with this codec and source type.
    pub(crate) fn of(codec: &Codec, pg: &PgType) -> Self {
        if !matches!(codec, Codec::String) || matches!(pg.kind, TypeKind::Enum(_)) {
            return Self::Generic;
        }
        match pg.name.as_str() {
            "numeric" => Self::Decimal,
            "money" | "uuid" | "json" | "jsonb" | "xml" => Self::Generic,
            _ => Self::Text,
        }
    }

    /// The value of a decoded (non-null) string, handed to `f` where it is
    /// built (so that a decoder stores it straight into a row instead of
    /// moving it through a temporary), or `None` when the generic path must
    /// decide (special decimals, malformed text: its errors).
    #[inline(always)]
    pub(crate) fn emit<R>(
        self,
        s: Str,
        options: &Options,
        f: impl FnOnce(Value) -> R,
    ) -> Option<R> {
        if s.as_bytes().as_ref() == options.unavailable_value_placeholder.as_bytes() {
            return Some(f(Value::Unavailable));
        }
        match self {
            Self::Text => Some(f(Value::Text(s))),
            Self::Decimal => {
                Decimal::from_str_checked(s).map(|d| f(Value::Numeric(Numeric::Finite(d))))
            }
            Self::Generic => None,
        }
    }
}

/// How a decoder turns a column's integer values into [`Value`]s without
/// the generic primitive path (the same rules as [`Codec::lift`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntFast {
    /// `int2`.
    Int16,
    /// `int4`.
    Int32,
    /// Other integers.
    Int64,
    /// `date` as days since the epoch.
    DateDays,
    /// `timestamp` (`tz`: `timestamptz`) as an integer count since the epoch.
    Timestamp(TsUnit, bool),
    /// Anything else: use [`Codec::lift`].
    Generic,
}

impl IntFast {
    /// The fast kind of a column with this codec and source type.
    pub(crate) fn of(codec: &Codec, pg: &PgType) -> Self {
        match codec {
            Codec::Int => match pg.name.as_str() {
                "int2" => Self::Int16,
                "int4" => Self::Int32,
                _ => Self::Int64,
            },
            Codec::DateDays => Self::DateDays,
            Codec::TimestampMillis => Self::Timestamp(TsUnit::Millis, pg.name == "timestamptz"),
            Codec::TimestampMicros => Self::Timestamp(TsUnit::Micros, pg.name == "timestamptz"),
            Codec::TimestampNanos => Self::Timestamp(TsUnit::Nanos, pg.name == "timestamptz"),
            _ => Self::Generic,
        }
    }

    /// The value of a decoded integer, handed to `f` where it is built
    /// (see [`TextFast::emit`]), or `None` when the generic path must decide
    /// (out of range: its error).
    #[inline(always)]
    pub(crate) fn emit<R>(self, i: i64, f: impl FnOnce(Value) -> R) -> Option<R> {
        Some(f(match self {
            Self::Int16 => Value::Int16(i16::try_from(i).ok()?),
            Self::Int32 => Value::Int32(i32::try_from(i).ok()?),
            Self::Int64 => Value::Int64(i),
            Self::DateDays if i == i64::from(i32::MAX) => Value::Date(Date::PosInfinity),
            Self::DateDays if i == i64::from(i32::MIN) => Value::Date(Date::NegInfinity),
            Self::DateDays => Value::Date(Date::Days(i32::try_from(i).ok()?)),
            Self::Timestamp(unit, false) => Value::Timestamp(unit.timestamp(i)?),
            Self::Timestamp(unit, true) => Value::TimestampTz(unit.timestamp(i)?),
            Self::Generic => return None,
        }))
    }
}

/// The unit of an integer timestamp codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsUnit {
    /// `Codec::TimestampMillis`.
    Millis,
    /// `Codec::TimestampMicros`.
    Micros,
    /// `Codec::TimestampNanos`.
    Nanos,
}

impl TsUnit {
    /// The timestamp `i` units since the epoch (the sentinels are the
    /// infinities), `None` when out of PostgreSQL's range.
    #[inline]
    pub(crate) fn timestamp(self, i: i64) -> Option<Timestamp> {
        Some(match self {
            Self::Millis if i == temporal::PG_INFINITY_MICROS.div_euclid(1000) => {
                Timestamp::PosInfinity
            }
            Self::Millis if i == temporal::PG_NEG_INFINITY_MICROS.div_euclid(1000) => {
                Timestamp::NegInfinity
            }
            Self::Millis => Timestamp::from_unix_micros_i128(i128::from(i) * 1000)?,
            Self::Micros if i == temporal::PG_INFINITY_MICROS => Timestamp::PosInfinity,
            Self::Micros if i == temporal::PG_NEG_INFINITY_MICROS => Timestamp::NegInfinity,
            Self::Micros => Timestamp::from_unix_micros(i)?,
            Self::Nanos if i == i64::MAX => Timestamp::PosInfinity,
            Self::Nanos if i == i64::MIN => Timestamp::NegInfinity,
            Self::Nanos => Timestamp::from_unix_micros(i.div_euclid(1000))?,
        })
    }
}

/// A STRING value typed by the source column type.
fn text_value(pg: &PgType, s: String, path: &Path) -> Result<Value> {
    if let TypeKind::Enum(_) = pg.kind {
        return Ok(Value::Enum(Str::from(s)));
    }
    Ok(match pg.name.as_str() {
        "numeric" | "money" => {
            let n = match s.as_str() {
                "NAN" | "NaN" => Numeric::NaN,
                "POSITIVE_INFINITY" | "Infinity" => Numeric::PosInfinity,
                "NEGATIVE_INFINITY" | "-Infinity" => Numeric::NegInfinity,
                t => Numeric::Finite(
                    Decimal::parse(t)
                        .ok_or_else(|| Error::mismatch(path, "a decimal string", t.to_owned()))?,
                ),
            };
            if pg.name == "money" {
                Value::Money(n)
            } else {
                Value::Numeric(n)
            }
        }
        "uuid" => {
            Value::Uuid(parse_uuid(&s).ok_or_else(|| Error::mismatch(path, "a UUID", s.clone()))?)
        }
        "json" | "jsonb" => Value::Json(Str::from(s)),
        "xml" => Value::Xml(Str::from(s)),
        _ => Value::Text(Str::from(s)),
    })
}

fn variant_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Unavailable => "unavailable",
        Value::Bool(_) => "bool",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::Numeric(_) => "numeric",
        Value::Money(_) => "money",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::TimeTz { .. } => "timetz",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
        Value::Interval(_) => "interval",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "json",
        Value::Xml(_) => "xml",
        Value::Bits(_) => "bits",
        Value::Enum(_) => "enum",
        Value::Array(_) => "array",
    }
}

impl Prim<'_> {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Prim::Null => "null",
            Prim::Bool(_) => "boolean",
            Prim::Int(_) => "integer",
            Prim::F32(_) | Prim::F64(_) => "number",
            Prim::Str(_) => "string",
            Prim::Bytes(_) => "bytes",
            Prim::VarDecimal { .. } => "struct",
            Prim::Array(_) | Prim::Owned(_) => "array",
            Prim::Map(_) => "map",
        }
    }

    pub(crate) fn to_static(&self) -> Prim<'static> {
        match self {
            Prim::Null => Prim::Null,
            Prim::Bool(b) => Prim::Bool(*b),
            Prim::Int(i) => Prim::Int(*i),
            Prim::F32(f) => Prim::F32(*f),
            Prim::F64(f) => Prim::F64(*f),
            Prim::Str(s) => Prim::Str(Cow::Owned(s.to_string())),
            Prim::Bytes(b) => Prim::Bytes(Cow::Owned(b.to_vec())),
            Prim::VarDecimal { scale, unscaled } => Prim::VarDecimal {
                scale: *scale,
                unscaled: unscaled.clone(),
            },
            Prim::Array(_) => Prim::Owned(Vec::new()),
            Prim::Map(m) => Prim::Map(m.clone()),
            Prim::Owned(v) => Prim::Owned(v.iter().map(Prim::to_static).collect()),
        }
    }

    /// The generic Connect datum (for schema defaults).
    pub(crate) fn to_datum(&self) -> Datum {
        match self {
            Prim::Null => Datum::Null,
            Prim::Bool(b) => Datum::Bool(*b),
            Prim::Int(i) => Datum::Int(*i),
            Prim::F32(f) => Datum::Float(f64::from(*f)),
            Prim::F64(f) => Datum::Float(*f),
            Prim::Str(s) => Datum::String(s.to_string()),
            Prim::Bytes(b) => Datum::Bytes(b.to_vec()),
            Prim::VarDecimal { scale, unscaled } => Datum::Struct(vec![
                Datum::Int(i64::from(*scale)),
                Datum::Bytes(unscaled.clone()),
            ]),
            Prim::Array(_) => Datum::Array(Vec::new()),
            Prim::Owned(v) => Datum::Array(v.iter().map(Prim::to_datum).collect()),
            Prim::Map(m) => Datum::Map(
                m.iter()
                    .map(|(k, v)| {
                        (
                            Datum::String(k.clone()),
                            v.clone().map_or(Datum::Null, Datum::String),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// A primitive from a datum (defaults read back from a schema).
    pub(crate) fn from_datum(d: &Datum) -> Prim<'static> {
        match d {
            Datum::Null => Prim::Null,
            Datum::Bool(b) => Prim::Bool(*b),
            Datum::Int(i) => Prim::Int(*i),
            Datum::Float(f) => Prim::F64(*f),
            Datum::String(s) => Prim::Str(Cow::Owned(s.clone())),
            Datum::Bytes(b) => Prim::Bytes(Cow::Owned(b.clone())),
            Datum::Array(v) => Prim::Owned(v.iter().map(Prim::from_datum).collect()),
            Datum::Map(m) => Prim::Map(
                m.iter()
                    .map(|(k, v)| {
                        let k = match k {
                            Datum::String(s) => s.clone(),
                            _ => String::new(),
                        };
                        let v = match v {
                            Datum::String(s) => Some(s.clone()),
                            _ => None,
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            Datum::Struct(f) => match f.as_slice() {
                [Datum::Int(s), Datum::Bytes(b)] => Prim::VarDecimal {
                    scale: *s as i32,
                    unscaled: b.clone(),
                },
                _ => Prim::Null,
            },
        }
    }
}

/// Reconstructs the PostgreSQL type of a column from its Connect schema
/// (semantic name, parameters, and `__debezium.source.column.*` when present).
pub fn pg_type_from_schema(schema: &ConnectSchema) -> PgType {
    use ConnectType as T;
    let source_type = schema
        .parameter(names::SOURCE_COLUMN_TYPE)
        .map(str::to_lowercase);
    let source_len = schema
        .parameter(names::SOURCE_COLUMN_LENGTH)
        .and_then(|s| s.parse::<i32>().ok());
    let source_scale = schema
        .parameter(names::SOURCE_COLUMN_SCALE)
        .and_then(|s| s.parse::<i32>().ok());
    if let Some(st) = source_type {
        let (name, oid) = canonical_type_name(&st);
        let mut t = PgType::base(oid, name);
        t.modifier = match t.name.as_str() {
            "varchar" | "bpchar" => source_len
                .filter(|l| *l > 0 && *l < 10_485_760)
                .map_or(-1, |l| l + 4),
            "numeric" => match (source_len, source_scale) {
                (Some(p), Some(s)) if p > 0 && p <= 1000 => ((p << 16) | (s & 0x7ff)) + 4,
                _ => -1,
            },
            "bit" | "varbit" => source_len.filter(|l| *l > 0).unwrap_or(-1),
            "time" | "timetz" | "timestamp" | "timestamptz" => {
                source_len.filter(|l| (0..=6).contains(l)).unwrap_or(-1)
            }
            _ => -1,
        };
        if let (T::Array, Some(items)) = (schema.ty, schema.items.as_ref()) {
            let elem = pg_type_from_schema(items);
            return PgType {
                oid: 0,
                name: format!("_{}", elem.name),
                modifier: -1,
                kind: TypeKind::Array(Box::new(elem)),
            };
        }
        if schema.name_str() == names::ENUM {
            t.kind = TypeKind::Enum(enum_labels(schema));
        }
        return t;
    }
    let name = schema.name_str();
    match (schema.ty, name) {
        (T::Bytes, names::DECIMAL) => {
            let scale = schema
                .parameter("scale")
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0);
            match schema
                .parameter("connect.decimal.precision")
                .and_then(|s| s.parse::<i32>().ok())
            {
                Some(p) if p > 0 && p <= 1000 => {
                    PgType::base(1700, "numeric").with_modifier(((p << 16) | (scale & 0x7ff)) + 4)
                }
                _ => PgType::base(790, "money"),
            }
        }
        (T::Struct, names::VARIABLE_SCALE_DECIMAL) => PgType::base(1700, "numeric"),
        (_, names::DATE | names::CONNECT_DATE | names::ISO_DATE) => PgType::base(1082, "date"),
        (_, names::TIME) => PgType::base(1083, "time").with_modifier(3),
        (_, names::MICRO_TIME | names::NANO_TIME | names::CONNECT_TIME | names::ISO_TIME) => {
            PgType::base(1083, "time")
        }
        (_, names::TIMESTAMP) => PgType::base(1114, "timestamp").with_modifier(3),
        (
            _,
            names::MICRO_TIMESTAMP
            | names::NANO_TIMESTAMP
            | names::CONNECT_TIMESTAMP
            | names::ISO_TIMESTAMP,
        ) => PgType::base(1114, "timestamp"),
        (_, names::ZONED_TIMESTAMP) => PgType::base(1184, "timestamptz"),
        (_, names::ZONED_TIME) => PgType::base(1266, "timetz"),
        (_, names::MICRO_DURATION | names::INTERVAL) => PgType::base(1186, "interval"),
        (_, names::UUID) => PgType::base(2950, "uuid"),
        (_, names::JSON) => PgType::base(3802, "jsonb"),
        (_, names::XML) => PgType::base(142, "xml"),
        (_, names::LTREE) => PgType::base(0, "ltree"),
        (_, names::TSVECTOR) => PgType::base(3614, "tsvector"),
        (_, names::ENUM) => PgType {
            oid: 0,
            name: "enum".to_owned(),
            modifier: -1,
            kind: TypeKind::Enum(enum_labels(schema)),
        },
        (_, names::BITS) => {
            let len = schema
                .parameter("length")
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(-1);
            PgType::base(1562, "varbit").with_modifier(if len == i32::MAX { -1 } else { len })
        }
        (T::Boolean, _) => PgType::base(16, "bool"),
        (T::Int8 | T::Int16, _) => PgType::base(21, "int2"),
        (T::Int32, _) => PgType::base(23, "int4"),
        (T::Int64, _) => PgType::base(20, "int8"),
        (T::Float32, _) => PgType::base(700, "float4"),
        (T::Float64, _) => PgType::base(701, "float8"),
        (T::Bytes, _) => PgType::base(17, "bytea"),
        (T::Map, _) => PgType::base(0, "hstore"),
        (T::Array, _) => {
            let elem = schema
                .items
                .as_ref()
                .map_or_else(|| PgType::base(25, "text"), |i| pg_type_from_schema(i));
            PgType {
                oid: array_oid(&elem.name),
                name: format!("_{}", elem.name),
                modifier: -1,
                kind: TypeKind::Array(Box::new(elem)),
            }
        }
        _ => PgType::base(25, "text"),
    }
}

fn enum_labels(schema: &ConnectSchema) -> Vec<String> {
    schema
        .parameter("allowed")
        .map(|a| {
            if a.is_empty() {
                Vec::new()
            } else {
                a.split(',').map(str::to_owned).collect()
            }
        })
        .unwrap_or_default()
}

fn array_oid(elem: &str) -> u32 {
    match elem {
        "bool" => 1000,
        "int2" => 1005,
        "int4" => 1007,
        "int8" => 1016,
        "text" => 1009,
        "float4" => 1021,
        "float8" => 1022,
        "numeric" => 1231,
        "uuid" => 2951,
        "date" => 1182,
        "timestamp" => 1115,
        "timestamptz" => 1185,
        "jsonb" => 3807,
        "bytea" => 1001,
        _ => 0,
    }
}

/// Canonical PostgreSQL type name and OID of a type name as Debezium writes
/// it in `__debezium.source.column.type` (`VARCHAR`, `INT4`, `SERIAL`, ...).
pub fn canonical_type_name(name: &str) -> (&'static str, u32) {
    match name.trim_matches('"') {
        "bool" | "boolean" => ("bool", 16),
        "int2" | "smallint" | "smallserial" => ("int2", 21),
        "int4" | "integer" | "int" | "serial" => ("int4", 23),
        "int8" | "bigint" | "bigserial" => ("int8", 20),
        "float4" | "real" => ("float4", 700),
        "float8" | "double precision" => ("float8", 701),
        "numeric" | "decimal" => ("numeric", 1700),
        "money" => ("money", 790),
        "varchar" | "character varying" => ("varchar", 1043),
        "bpchar" | "char" | "character" => ("bpchar", 1042),
        "bytea" => ("bytea", 17),
        "date" => ("date", 1082),
        "time" => ("time", 1083),
        "timetz" => ("timetz", 1266),
        "timestamp" => ("timestamp", 1114),
        "timestamptz" => ("timestamptz", 1184),
        "interval" => ("interval", 1186),
        "uuid" => ("uuid", 2950),
        "json" => ("json", 114),
        "jsonb" => ("jsonb", 3802),
        "xml" => ("xml", 142),
        "inet" => ("inet", 869),
        "cidr" => ("cidr", 650),
        "macaddr" => ("macaddr", 829),
        "bit" => ("bit", 1560),
        "varbit" => ("varbit", 1562),
        "oid" => ("oid", 26),
        "hstore" => ("hstore", 0),
        "name" => ("name", 19),
        _ => ("text", 25),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_debezium() {
        // B'1010' -> 0x0a ("Cg=="), B'110' in varbit(8) -> 0x06 ("Bg==").
        let b = Bits {
            len: 4,
            data: Bytes::from_static(&[0b1010_0000]),
        };
        assert_eq!(bits_to_le(&b), vec![0x0a]);
        assert_eq!(bits_from_le(&[0x0a], 4), b);
        let v = Bits {
            len: 3,
            data: Bytes::from_static(&[0b1100_0000]),
        };
        assert_eq!(bits_to_le(&v), vec![0x06]);
        let zero = Bits {
            len: 9,
            data: Bytes::from_static(&[0, 0]),
        };
        assert!(bits_to_le(&zero).is_empty());
        let wide = Bits {
            len: 12,
            data: Bytes::from_static(&[0b1000_0000, 0b0001_0000]),
        };
        assert_eq!(bits_from_le(&bits_to_le(&wide), 12), wide);
    }

    #[test]
    fn rescale_rounds_half_up() {
        let d = |s: &str| Decimal::parse(s).expect("decimal");
        assert_eq!(
            rescale(&d("1.005"), 2).map(|x| x.as_str().to_owned()),
            Some("1.01".into())
        );
        assert_eq!(
            rescale(&d("12"), 2).map(|x| x.as_str().to_owned()),
            Some("12.00".into())
        );
        assert_eq!(
            rescale(&d("-9.999"), 2).map(|x| x.as_str().to_owned()),
            Some("-10.00".into())
        );
        assert_eq!(
            rescale(&d("-0.001"), 2).map(|x| x.as_str().to_owned()),
            Some("0.00".into())
        );
    }

    #[test]
    fn hstore_parses() {
        let h = parse_hstore(r#""a"=>"1", "b"=>NULL, c=>d"#).expect("hstore");
        assert_eq!(h.len(), 3);
        assert_eq!(hstore_to_json(&h), r#"{"a":"1","b":null,"c":"d"}"#);
        assert!(parse_hstore("\"a\"").is_none());
    }
}
