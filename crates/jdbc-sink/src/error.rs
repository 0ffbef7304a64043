//! Errors: the crate's error enum and the per-record failure description
//! handed to the dead-letter queue.

use std::fmt;

/// Errors that stop a batch (as opposed to [`RecordError`]s, which fail one
/// record and let the rest of the batch commit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A configuration property is missing, malformed or conflicts with another.
    #[error("invalid sink configuration `{key}`: {reason}; {hint}")]
    Config {
        /// The property name, e.g. `delete.enabled`.
        key: String,
        /// What is wrong.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// The database returned an error, or the connection failed.
    #[error("database error while {context}: {message}")]
    Database {
        /// What the sink was doing.
        context: String,
        /// The server's (or driver's) message, with SQLSTATE when known.
        message: String,
        /// SQLSTATE code, when the server sent one.
        code: Option<String>,
        /// True when retrying (after reconnecting) may succeed.
        retriable: bool,
    },
    /// The target schema does not allow the write and evolution cannot fix it.
    #[error("schema error on table {table}: {reason}")]
    Schema {
        /// The target table (quoted form).
        table: String,
        /// Why.
        reason: String,
    },
    /// Transient errors persisted beyond `flush.max.retries`.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<SinkError>,
    },
    /// A record failed and `errors.tolerance=none`: nothing of the batch was committed.
    #[error("record {topic}/{partition}@{offset} failed (errors.tolerance=none): {error}")]
    Record {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Why.
        error: RecordError,
    },
    /// The TLS handshake with the target failed (certificate not trusted,
    /// wrong host name, server without TLS while `sslmode` requires it).
    /// Not retried: retrying cannot fix it.
    #[error("TLS connection to the target failed: {reason}; {hint}")]
    Tls {
        /// What failed (the TLS library's reason).
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// The sink was shut down or a writer task ended.
    #[error("sink closed: {0}")]
    Closed(String),
    /// The [`DeadLetterSink`](crate::DeadLetterSink) could not deliver the
    /// failed records of a transaction: the transaction was rolled back
    /// before its `COMMIT`, so none of its rows and none of its offsets are
    /// stored. Not retried by the sink (the hook retries as it sees fit);
    /// the caller redoes the batch or stops.
    #[error(
        "dead-letter delivery of {count} failed record(s) (first {topic}/{partition}@{offset}) failed; \
         the batch's transaction was rolled back: {source}"
    )]
    DeadLetter {
        /// Topic of the first record handed to the hook.
        topic: String,
        /// Partition of the first record handed to the hook.
        partition: i32,
        /// Offset of the first record handed to the hook.
        offset: i64,
        /// Failed records handed to the hook.
        count: usize,
        /// The hook's error.
        #[source]
        source: crate::dead_letter::DeadLetterError,
    },
}

impl SinkError {
    /// True when the same operation may succeed if retried later (lost
    /// connection, serialization failure, deadlock, server shutting down).
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Database { retriable, .. } => *retriable,
            SinkError::Closed(_) => true,
            _ => false,
        }
    }

    pub(crate) fn config(key: &str, reason: impl Into<String>, hint: impl Into<String>) -> Self {
        SinkError::Config {
            key: key.to_owned(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn db(context: impl Into<String>, e: &tokio_postgres::Error) -> Self {
        let code = e.code().map(|c| c.code().to_owned());
        SinkError::Database {
            context: context.into(),
            message: describe_db_error(e),
            retriable: is_transient(e),
            code,
        }
    }
}

/// SQLSTATEs worth retrying: connection exceptions (class 08), serialization
/// failure, deadlock, operator intervention (admin/crash shutdown, cannot
/// connect now), too many connections.
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "55P03"
        )
}

/// True for errors worth retrying after a backoff (and a reconnect).
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c) => is_transient_sqlstate(c.code()),
        // No SQLSTATE: I/O error, closed connection, protocol trouble.
        None => e.is_closed() || e.as_db_error().is_none(),
    }
}

/// The server's message with detail, hint and SQLSTATE, in the style of the
/// PostgreSQL JDBC driver (`ERROR: … Detail: …`).
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str("\n  Detail: ");
                s.push_str(d);
            }
            if let Some(h) = db.hint() {
                s.push_str("\n  Hint: ");
                s.push_str(h);
            }
            s.push_str(&format!(" [SQLSTATE {}]", db.code().code()));
            s
        }
        None => e.to_string(),
    }
}

/// Why one record could not be written, as Kafka Connect reports it in the
/// dead-letter queue headers `__connect.errors.exception.class.name` and
/// `__connect.errors.exception.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Exception-class-like name: `org.postgresql.util.PSQLException` for
    /// database errors (what the Debezium JDBC sink reports),
    /// `org.apache.kafka.connect.errors.DataException` for values that cannot
    /// be converted, `org.apache.kafka.connect.errors.ConnectException` for
    /// schema / configuration problems.
    pub class_name: String,
    /// Human-readable message.
    pub message: String,
    /// SQLSTATE for database errors.
    pub sqlstate: Option<String>,
}

/// Exception class name used for database errors.
pub const PSQL_EXCEPTION: &str = "org.postgresql.util.PSQLException";
/// Exception class name used for values that cannot be converted.
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";
/// Exception class name used for schema and configuration problems.
pub const CONNECT_EXCEPTION: &str = "org.apache.kafka.connect.errors.ConnectException";

impl RecordError {
    /// A data (conversion) error.
    pub fn data(message: impl Into<String>) -> Self {
        Self {
            class_name: DATA_EXCEPTION.into(),
            message: message.into(),
            sqlstate: None,
        }
    }

    /// A schema / configuration error.
    pub fn connect(message: impl Into<String>) -> Self {
        Self {
            class_name: CONNECT_EXCEPTION.into(),
            message: message.into(),
            sqlstate: None,
        }
    }

    /// From a database error.
    pub fn from_db(e: &tokio_postgres::Error) -> Self {
        Self {
            class_name: PSQL_EXCEPTION.into(),
            message: describe_db_error(e),
            sqlstate: e.code().map(|c| c.code().to_owned()),
        }
    }

    /// From a sink error.
    pub fn from_sink(e: &SinkError) -> Self {
        match e {
            SinkError::Database { message, code, .. } => Self {
                class_name: PSQL_EXCEPTION.into(),
                message: message.clone(),
                sqlstate: code.clone(),
            },
            other => Self::connect(other.to_string()),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class_name, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for c in ["40001", "40P01", "57P01", "08006", "08003"] {
            assert!(is_transient_sqlstate(c), "{c}");
        }
        for c in ["23505", "22003", "42P01", "23502"] {
            assert!(!is_transient_sqlstate(c), "{c}");
        }
    }

    #[test]
    fn retriable_flag() {
        let e = SinkError::Database {
            context: "x".into(),
            message: "m".into(),
            code: None,
            retriable: true,
        };
        assert!(e.is_retriable());
        assert!(!SinkError::config("k", "r", "h").is_retriable());
    }
}
