//! The crate's error type.
//!
//! Every failure carries enough structure to build a Kafka Connect
//! dead-letter-queue record: [`Error::kind`] plays the role of
//! `__connect.errors.exception.class.name` and the `Display` text the role of
//! `__connect.errors.exception.message`. Nothing in this crate panics on bad
//! input; it returns one of these.

use std::fmt;

/// Where in a document an error was found: a dotted path such as
/// `payload.after.salary` or `schema.fields[3].type`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(pub String);

impl Path {
    /// The root path (empty).
    pub fn root() -> Self {
        Self(String::new())
    }

    /// This path with `segment` appended.
    pub fn join(&self, segment: &str) -> Self {
        if self.0.is_empty() {
            Self(segment.to_owned())
        } else {
            Self(format!("{}.{}", self.0, segment))
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<root>")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl From<&str> for Path {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Path {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Errors of the cdc-envelope crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connector property has a value Debezium would reject.
    #[error("invalid value {value:?} for configuration {key}: expected {allowed}")]
    InvalidOption {
        /// Property name, e.g. `decimal.handling.mode`.
        key: String,
        /// The value found.
        value: String,
        /// What is allowed (e.g. `one of precise, double, string`).
        allowed: String,
    },

    /// The input is not well-formed JSON.
    #[error("invalid JSON at byte {offset}: {reason}")]
    InvalidJson {
        /// Byte offset of the problem.
        offset: usize,
        /// What went wrong.
        reason: String,
    },

    /// The input is not a well-formed Avro datum or Confluent frame.
    #[error("invalid Avro data at byte {offset}: {reason}")]
    InvalidAvro {
        /// Byte offset of the problem.
        offset: usize,
        /// What went wrong.
        reason: String,
    },

    /// A schema (Connect JSON schema or Avro schema) is malformed.
    #[error("invalid schema at {path}: expected {expected}, found {found}")]
    InvalidSchema {
        /// Where in the schema.
        path: Path,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },

    /// A payload value does not match its schema.
    #[error("value at {path} does not match its schema: expected {expected}, found {found}")]
    SchemaMismatch {
        /// Where in the payload.
        path: Path,
        /// What the schema asks for.
        expected: String,
        /// What was found.
        found: String,
    },

    /// A required field is missing.
    #[error("missing required field {path}")]
    MissingField {
        /// The field.
        path: Path,
    },

    /// A schema uses a semantic type (`name`) this crate does not know how to
    /// map back to PostgreSQL.
    #[error("unknown semantic type {name:?} at {path} (connect type {connect_type})")]
    UnknownSemanticType {
        /// Where in the schema.
        path: Path,
        /// The semantic name, e.g. `io.debezium.data.Geometry`.
        name: String,
        /// Its Connect type.
        connect_type: String,
    },

    /// A value cannot be represented in the configured output mode (for
    /// example `NaN` with `decimal.handling.mode=precise`, which Debezium
    /// rejects as well).
    #[error("cannot encode column {column}: {reason}")]
    Unrepresentable {
        /// Column name.
        column: String,
        /// Why.
        reason: String,
    },

    /// A row does not fit the table schema it is said to belong to.
    #[error("row for table {table} does not match its schema: {reason}")]
    RowMismatch {
        /// Table name.
        table: String,
        /// Why.
        reason: String,
    },

    /// The event lacks something the requested conversion needs.
    #[error("event cannot be converted: {reason}")]
    InvalidEvent {
        /// Why.
        reason: String,
    },

    /// The schema registry answered with an error or could not be reached.
    #[error("schema registry error (HTTP {status:?}, code {code:?}) for {subject}: {message}")]
    Registry {
        /// Subject or resource concerned.
        subject: String,
        /// HTTP status if any.
        status: Option<u16>,
        /// Confluent error code if any (e.g. 409 for incompatible schemas).
        code: Option<i64>,
        /// Message.
        message: String,
        /// True for transport failures and 5xx answers.
        retriable: bool,
    },
}

impl Error {
    /// True when retrying the same operation may succeed (only transport
    /// failures talking to a schema registry). Conversion errors are
    /// deterministic: retrying cannot help; send the record to the DLQ.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Registry {
                retriable: true,
                ..
            }
        )
    }

    /// A stable, class-name-like identifier of the error kind, for the
    /// `__connect.errors.exception.class.name` DLQ header.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "cdc_envelope::InvalidOption",
            Error::InvalidJson { .. } => "cdc_envelope::InvalidJson",
            Error::InvalidAvro { .. } => "cdc_envelope::InvalidAvro",
            Error::InvalidSchema { .. } => "cdc_envelope::InvalidSchema",
            Error::SchemaMismatch { .. } => "cdc_envelope::SchemaMismatch",
            Error::MissingField { .. } => "cdc_envelope::MissingField",
            Error::UnknownSemanticType { .. } => "cdc_envelope::UnknownSemanticType",
            Error::Unrepresentable { .. } => "cdc_envelope::Unrepresentable",
            Error::RowMismatch { .. } => "cdc_envelope::RowMismatch",
            Error::InvalidEvent { .. } => "cdc_envelope::InvalidEvent",
            Error::Registry { .. } => "cdc_envelope::Registry",
        }
    }

    /// The same error, located one level deeper (`path.field`).
    pub(crate) fn within(self, field: &str) -> Self {
        match self {
            Error::InvalidSchema {
                path,
                expected,
                found,
            } => Error::InvalidSchema {
                path: path.join(field),
                expected,
                found,
            },
            Error::SchemaMismatch {
                path,
                expected,
                found,
            } => Error::SchemaMismatch {
                path: path.join(field),
                expected,
                found,
            },
            Error::MissingField { path } => Error::MissingField {
                path: path.join(field),
            },
            Error::UnknownSemanticType {
                path,
                name,
                connect_type,
            } => Error::UnknownSemanticType {
                path: path.join(field),
                name,
                connect_type,
            },
            other => other,
        }
    }

    pub(crate) fn mismatch(
        path: &Path,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Error::SchemaMismatch {
            path: path.clone(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn schema(
        path: &Path,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Error::InvalidSchema {
            path: path.clone(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retriable() {
        let e = Error::InvalidOption {
            key: "k".into(),
            value: "v".into(),
            allowed: "a".into(),
        };
        assert_eq!(e.kind(), "cdc_envelope::InvalidOption");
        assert!(!e.is_retriable());
        let r = Error::Registry {
            subject: "t-value".into(),
            status: Some(503),
            code: None,
            message: "down".into(),
            retriable: true,
        };
        assert!(r.is_retriable());
        assert_eq!(
            Path::root().join("payload").join("after").to_string(),
            "payload.after"
        );
    }
}
