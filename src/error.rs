//! The pipeline's error type: one variant per layer, each keeping the
//! layer's typed error.

use crate::connector::ConfigError;

/// Why a connector stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connector configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PostgreSQL source failed.
    #[error("source: {0}")]
    Source(#[from] pg_logical::Error),
    /// Converting an event failed (and errors.tolerance=none).
    #[error("converter: {0}")]
    Envelope(#[from] cdc_envelope::Error),
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(#[from] kafka_io::Error),
    /// The PostgreSQL sink failed.
    #[error("sink: {0}")]
    Sink(#[from] jdbc_sink::SinkError),
    /// A local file (offsets, data dir) could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when restarting the connector may succeed without a change of
    /// configuration (connection lost, broker unavailable, …).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Config(_) => false,
            Error::Source(e) => e.is_retriable(),
            Error::Envelope(e) => e.is_retriable(),
            Error::Kafka(e) => e.is_retriable(),
            Error::Sink(e) => e.is_retriable(),
            Error::Io { .. } => false,
        }
    }
}

/// Result with the pipeline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
