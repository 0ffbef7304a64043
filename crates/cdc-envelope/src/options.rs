//! Debezium connector options that change how events are encoded.
//!
//! Parsed from the connector's properties with Debezium's exact names,
//! defaults and (case-insensitive, trimmed) value spellings. Properties this
//! crate does not use are ignored, so a whole connector config can be passed.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cdc_envelope::options::{DecimalMode, Options, TimePrecisionMode};
//!
//! let mut props = BTreeMap::new();
//! props.insert("decimal.handling.mode".to_owned(), "string".to_owned());
//! props.insert("time.precision.mode".to_owned(), "connect".to_owned());
//! let opts = Options::from_map(&props).expect("valid options");
//! assert_eq!(opts.decimal_handling, DecimalMode::String);
//! assert_eq!(opts.time_precision, TimePrecisionMode::Connect);
//! assert!(opts.tombstones_on_delete);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DecimalMode {
    /// `precise` (default): `org.apache.kafka.connect.data.Decimal` bytes, or
    /// `io.debezium.data.VariableScaleDecimal` for `numeric` without scale.
    #[default]
    Precise,
    /// `double`: FLOAT64.
    Double,
    /// `string`: the plain decimal string (`NAN`, `POSITIVE_INFINITY`, `NEGATIVE_INFINITY` for specials).
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimePrecisionMode {
    /// `adaptive` (default): the column's precision picks ms / µs / ns.
    #[default]
    Adaptive,
    /// `adaptive_time_microseconds`: like adaptive, but `time` is always µs.
    AdaptiveTimeMicroseconds,
    /// `connect`: Kafka Connect's `Date`, `Time`, `Timestamp` (milliseconds).
    Connect,
    /// `microseconds`: µs for every time and timestamp.
    Microseconds,
    /// `isostring`: ISO-8601 strings.
    IsoString,
    /// `nanoseconds`: ns for every time and timestamp.
    Nanoseconds,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BinaryMode {
    /// `bytes` (default).
    #[default]
    Bytes,
    /// `base64`: a STRING with standard base64.
    Base64,
    /// `base64-url-safe`: a STRING with URL-safe base64.
    Base64UrlSafe,
    /// `hex`: a STRING of lowercase hex digits.
    Hex,
}

/// `interval.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IntervalMode {
    /// `numeric` (default): `io.debezium.time.MicroDuration` INT64.
    #[default]
    Numeric,
    /// `string`: `io.debezium.time.Interval` ISO-8601 string `PnYnMnDTnHnMnS`.
    String,
}

/// `hstore.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HstoreMode {
    /// `json` (default): `io.debezium.data.Json` string.
    #[default]
    Json,
    /// `map`: a Connect MAP of strings.
    Map,
}

/// The default of `unavailable.value.placeholder`.
pub const DEFAULT_UNAVAILABLE_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Encoding options, as Debezium and Kafka Connect's JsonConverter read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `topic.prefix` (logical server name). Empty when not configured.
    pub topic_prefix: String,
    /// `decimal.handling.mode`.
    pub decimal_handling: DecimalMode,
    /// `time.precision.mode`.
    pub time_precision: TimePrecisionMode,
    /// `binary.handling.mode`.
    pub binary_handling: BinaryMode,
    /// `interval.handling.mode`.
    pub interval_handling: IntervalMode,
    /// `hstore.handling.mode`.
    pub hstore_handling: HstoreMode,
    /// `unavailable.value.placeholder`.
    pub unavailable_value_placeholder: String,
    /// `tombstones.on.delete`.
    pub tombstones_on_delete: bool,
    /// `money.fraction.digits` (default 2).
    pub money_fraction_digits: u32,
    /// `column.propagate.source.type`: regular expressions matched
    /// (case-insensitively, whole string) against `<schema>.<table>.<column>`.
    pub propagate_source_type: Vec<String>,
    /// `key.converter.schemas.enable` (JsonConverter, default true).
    pub key_schemas_enable: bool,
    /// `value.converter.schemas.enable` (JsonConverter, default true).
    pub value_schemas_enable: bool,
    /// `value.converter.replace.null.with.default` (JsonConverter, default
    /// true): a null value of a field with a schema default is written as
    /// the default, as Kafka Connect does.
    pub replace_null_with_default: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            topic_prefix: String::new(),
            decimal_handling: DecimalMode::default(),
            time_precision: TimePrecisionMode::default(),
            binary_handling: BinaryMode::default(),
            interval_handling: IntervalMode::default(),
            hstore_handling: HstoreMode::default(),
            unavailable_value_placeholder: DEFAULT_UNAVAILABLE_PLACEHOLDER.to_owned(),
            tombstones_on_delete: true,
            money_fraction_digits: 2,
            propagate_source_type: Vec::new(),
            key_schemas_enable: true,
            value_schemas_enable: true,
            replace_null_with_default: true,
        }
    }
}

fn invalid(key: &str, value: &str, allowed: impl fmt::Display) -> Error {
    Error::InvalidOption {
        key: key.to_owned(),
        value: value.to_owned(),
        allowed: allowed.to_string(),
    }
}

fn pick<T: Copy>(key: &str, value: &str, choices: &[(&str, T)]) -> Result<T> {
    let v = value.trim();
    for (name, t) in choices {
        if name.eq_ignore_ascii_case(v) {
            return Ok(*t);
        }
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    Err(invalid(
        key,
        value,
        format_args!("one of {}", names.join(", ")),
    ))
}

fn compile(pattern: &str) -> std::result::Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::Regex::new(&format!("(?i)^(?:{pattern})$"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    pick(key, value, &[("true", true), ("false", false)])
}

impl Options {
    /// Options with a topic prefix and every other option at its default.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            topic_prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Parses the options from connector properties.
    pub fn from_map(props: &BTreeMap<String, String>) -> Result<Self> {
        Self::from_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Parses the options from `(key, value)` pairs. Unknown keys are ignored;
    /// a known key with a bad value is an [`Error::InvalidOption`] naming the
    /// key, the value and what is allowed.
    pub fn from_properties<'a, I>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut o = Self::default();
        for (key, value) in props {
            match key {
                "topic.prefix" => o.topic_prefix = value.trim().to_owned(),
                "decimal.handling.mode" => {
                    o.decimal_handling = pick(
                        key,
                        value,
                        &[
                            ("precise", DecimalMode::Precise),
                            ("double", DecimalMode::Double),
                            ("string", DecimalMode::String),
                        ],
                    )?
                }
                "time.precision.mode" => {
                    o.time_precision = pick(
                        key,
                        value,
                        &[
                            ("adaptive", TimePrecisionMode::Adaptive),
                            (
                                "adaptive_time_microseconds",
                                TimePrecisionMode::AdaptiveTimeMicroseconds,
                            ),
                            ("connect", TimePrecisionMode::Connect),
                            ("microseconds", TimePrecisionMode::Microseconds),
                            ("isostring", TimePrecisionMode::IsoString),
                            ("nanoseconds", TimePrecisionMode::Nanoseconds),
                        ],
                    )?
                }
                "binary.handling.mode" => {
                    o.binary_handling = pick(
                        key,
                        value,
                        &[
                            ("bytes", BinaryMode::Bytes),
                            ("base64", BinaryMode::Base64),
                            ("base64-url-safe", BinaryMode::Base64UrlSafe),
                            ("hex", BinaryMode::Hex),
                        ],
                    )?
                }
                "interval.handling.mode" => {
                    o.interval_handling = pick(
                        key,
                        value,
                        &[
                            ("numeric", IntervalMode::Numeric),
                            ("string", IntervalMode::String),
                        ],
                    )?
                }
                "hstore.handling.mode" => {
                    o.hstore_handling = pick(
                        key,
                        value,
                        &[("json", HstoreMode::Json), ("map", HstoreMode::Map)],
                    )?
                }
                "unavailable.value.placeholder" => {
                    o.unavailable_value_placeholder = value.to_owned()
                }
                "tombstones.on.delete" => o.tombstones_on_delete = parse_bool(key, value)?,
                "money.fraction.digits" => {
                    o.money_fraction_digits = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|d| *d <= 1000)
                        .ok_or_else(|| invalid(key, value, "a non-negative integer"))?
                }
                "column.propagate.source.type" => {
                    o.propagate_source_type = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    for p in &o.propagate_source_type {
                        compile(p).map_err(|e| {
                            invalid(
                                key,
                                value,
                                format_args!("a comma-separated list of regular expressions ({e})"),
                            )
                        })?;
                    }
                }
                "key.converter.schemas.enable" => o.key_schemas_enable = parse_bool(key, value)?,
                "value.converter.schemas.enable" => {
                    o.value_schemas_enable = parse_bool(key, value)?
                }
                "value.converter.replace.null.with.default" => {
                    o.replace_null_with_default = parse_bool(key, value)?
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// True when `column.propagate.source.type` selects this column
    /// (`<schema>.<table>.<column>`).
    pub fn propagates_source_type(&self, schema: &str, table: &str, column: &str) -> bool {
        if self.propagate_source_type.is_empty() {
            return false;
        }
        let fq = format!("{schema}.{table}.{column}");
        self.propagate_source_type
            .iter()
            .filter_map(|p| compile(p).ok())
            .any(|r| r.is_match(&fq))
    }

    /// A stable fingerprint of everything that influences the generated
    /// schemas, for caches keyed by options.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.topic_prefix.hash(&mut h);
        self.decimal_handling.hash(&mut h);
        self.time_precision.hash(&mut h);
        self.binary_handling.hash(&mut h);
        self.interval_handling.hash(&mut h);
        self.hstore_handling.hash(&mut h);
        self.unavailable_value_placeholder.hash(&mut h);
        self.money_fraction_digits.hash(&mut h);
        self.propagate_source_type.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_debezium() {
        let o = Options::from_properties([]).expect("empty is valid");
        assert_eq!(o.decimal_handling, DecimalMode::Precise);
        assert_eq!(o.time_precision, TimePrecisionMode::Adaptive);
        assert_eq!(o.binary_handling, BinaryMode::Bytes);
        assert_eq!(o.interval_handling, IntervalMode::Numeric);
        assert_eq!(o.hstore_handling, HstoreMode::Json);
        assert_eq!(
            o.unavailable_value_placeholder,
            "__debezium_unavailable_value"
        );
        assert!(o.tombstones_on_delete && o.key_schemas_enable && o.value_schemas_enable);
    }

    #[test]
    fn bad_values_name_key_value_and_choices() {
        let err =
            Options::from_properties([("decimal.handling.mode", "exact")]).expect_err("invalid");
        match &err {
            Error::InvalidOption {
                key,
                value,
                allowed,
            } => {
                assert_eq!(key, "decimal.handling.mode");
                assert_eq!(value, "exact");
                assert_eq!(allowed, "one of precise, double, string");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Options::from_properties([("tombstones.on.delete", "yes")]).is_err());
        assert!(Options::from_properties([("time.precision.mode", "seconds")]).is_err());
        assert!(Options::from_properties([("binary.handling.mode", "base32")]).is_err());
        assert!(Options::from_properties([("interval.handling.mode", "iso")]).is_err());
        assert!(Options::from_properties([("hstore.handling.mode", "list")]).is_err());
        assert!(Options::from_properties([("column.propagate.source.type", "a(")]).is_err());
        assert!(Options::from_properties([("money.fraction.digits", "-1")]).is_err());
    }

    #[test]
    fn case_insensitive_and_trimmed() {
        let o = Options::from_properties([
            ("time.precision.mode", " CONNECT "),
            ("tombstones.on.delete", "False"),
        ])
        .expect("valid");
        assert_eq!(o.time_precision, TimePrecisionMode::Connect);
        assert!(!o.tombstones_on_delete);
    }

    #[test]
    fn propagate_source_type_matches_whole_name() {
        let o = Options::from_properties([(
            "column.propagate.source.type",
            "public\\.employees\\..*, .*\\.c_x",
        )])
        .expect("valid");
        assert!(o.propagates_source_type("public", "employees", "salary"));
        assert!(o.propagates_source_type("s", "t", "C_X"));
        assert!(!o.propagates_source_type("public", "other", "salary"));
    }
}
