//! The testkit's error type.

/// Why a fixture could not provide a service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No services configured and none could be started.
    #[error(
        "no test services: {reason}.\n\
         Start the real services with `cargo xtask services up` (then `cargo test` finds them \
         through target/services/env), or run everything with `cargo xtask test`, or set \
         CDC_TEST_PG_SOURCE_URL, CDC_TEST_PG_TARGET_URL and CDC_TEST_KAFKA_BROKERS to servers you \
         run (PostgreSQL with wal_level=logical, Kafka 3.x/4.x)."
    )]
    NotConfigured {
        /// What was looked for.
        reason: String,
    },
    /// A configured URL is not valid.
    #[error("{var} is not a valid PostgreSQL URL ({reason}); expected postgres://user:password@host:port/db")]
    BadUrl {
        /// The environment variable.
        var: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A PostgreSQL operation failed.
    #[error("PostgreSQL ({context}): {source}")]
    Postgres {
        /// What the fixture was doing.
        context: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A private Kafka broker ([`crate::KafkaBroker`]) could not be started or stopped.
    #[error("kafka broker fixture: {0}")]
    Broker(String),
    /// A private schema registry ([`crate::SchemaRegistryServer`]) could not be started.
    #[error("schema registry fixture: {0}")]
    Registry(String),
    /// Starting containers failed.
    #[error("docker: {0}")]
    Docker(String),
    /// Restarting a server failed.
    #[error("restart: {0}")]
    Restart(String),
}

impl Error {
    pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Postgres { context, source }
    }
}
