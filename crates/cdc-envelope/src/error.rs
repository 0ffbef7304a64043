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

    /// The schema registry refused to register a schema because it is not
    /// compatible with the versions already registered under the subject
    /// (HTTP 409; Confluent error code 409).
    #[error(
        "schema registry: the new schema for subject {subject} is incompatible with the versions \
         registered under it ({message}). Make the table change compatible with the subject's \
         compatibility level (for BACKWARD: give a new column a default or make it nullable), or \
         change the subject's compatibility level in the registry (PUT /config/{subject})"
    )]
    RegistryIncompatibleSchema {
        /// The subject, e.g. `pgsource.public.employees-value`.
        subject: String,
        /// The registry's explanation.
        message: String,
    },

    /// The registry has no such subject or version (Confluent error codes
    /// 40401 subject not found, 40402 version not found).
    #[error(
        "schema registry: subject {subject} not found (error code {code:?}: {message}); \
         with auto.register.schemas=false the schemas must be registered before records are written"
    )]
    RegistrySubjectNotFound {
        /// The subject.
        subject: String,
        /// Confluent error code, when given.
        code: Option<i64>,
        /// The registry's message.
        message: String,
    },

    /// The schema is not registered under the subject (lookup with
    /// `auto.register.schemas=false`; Confluent error code 40403).
    #[error(
        "schema registry: this schema is not registered under subject {subject} ({message}); \
         register it, or set auto.register.schemas=true"
    )]
    RegistrySchemaNotRegistered {
        /// The subject.
        subject: String,
        /// The registry's message.
        message: String,
    },

    /// No schema has this id (Confluent error code 40403): the record was
    /// written against another registry, or the schema was deleted.
    #[error(
        "schema registry: no schema with id {id} ({message}); the record names a schema this \
         registry does not have: point schema.registry.url at the registry the producer used"
    )]
    RegistrySchemaNotFound {
        /// The schema id read from the record's Confluent header.
        id: u32,
        /// The registry's message.
        message: String,
    },

    /// The registry refused the credentials (HTTP 401: missing or wrong) or
    /// the user (HTTP 403: authenticated, not allowed to do this).
    #[error(
        "schema registry at {url} refused the request (HTTP {status}): {}",
        unauthorized_hint(*status)
    )]
    RegistryUnauthorized {
        /// The registry URL (without credentials).
        url: String,
        /// 401 or 403.
        status: u16,
    },

    /// The registry could not be reached (connection refused, DNS, TLS,
    /// timeout). Retriable.
    #[error(
        "schema registry at {url} is unreachable ({reason}); check schema.registry.url and that \
         the registry is running — retrying may succeed"
    )]
    RegistryUnreachable {
        /// The registry URL tried last (without credentials).
        url: String,
        /// What failed.
        reason: String,
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
            } | Error::RegistryUnreachable { .. }
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
            Error::RegistryIncompatibleSchema { .. } => "cdc_envelope::RegistryIncompatibleSchema",
            Error::RegistrySubjectNotFound { .. } => "cdc_envelope::RegistrySubjectNotFound",
            Error::RegistrySchemaNotRegistered { .. } => {
                "cdc_envelope::RegistrySchemaNotRegistered"
            }
            Error::RegistrySchemaNotFound { .. } => "cdc_envelope::RegistrySchemaNotFound",
            Error::RegistryUnauthorized { .. } => "cdc_envelope::RegistryUnauthorized",
            Error::RegistryUnreachable { .. } => "cdc_envelope::RegistryUnreachable",
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

/// What to do about a 401 (who are you?) or a 403 (you may not).
fn unauthorized_hint(status: u16) -> &'static str {
    if status == 403 {
        "the credentials were accepted but this user may not perform this request; grant the \
         user the registry role it needs (read for the sink, write to register schemas) or \
         configure another user in basic.auth.user.info"
    } else {
        "the credentials are missing or wrong; check basic.auth.credentials.source and \
         basic.auth.user.info (or the credentials in schema.registry.url)"
    }
}

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
