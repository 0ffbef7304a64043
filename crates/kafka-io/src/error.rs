//! The crate's error type: one enum with structured fields and a
//! retriable / non-retriable classification.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kafka-io.
///
/// Secret configuration values never appear in this type: invalid values of
/// sensitive keys are replaced by `[redacted]` before they get here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration property has a value that is not allowed.
    #[error("invalid value {value:?} for configuration property `{key}`: expected {expected}")]
    InvalidConfig {
        /// The property name, e.g. `errors.tolerance`.
        key: String,
        /// The offending value (`[redacted]` for secrets).
        value: String,
        /// What is allowed, e.g. `one of: none, all`.
        expected: String,
    },
    /// A property that Kafka Connect accepts but librdkafka cannot honour.
    #[error("configuration property `{key}` is not supported: {hint}")]
    UnsupportedConfig {
        /// The property name.
        key: String,
        /// What to use instead.
        hint: String,
    },
    /// A client operation failed in librdkafka or on the broker.
    #[error("kafka {operation} failed: {source}{}", reachability_hint(*.code))]
    Kafka {
        /// What we were doing (`create producer`, `commit offsets`, …).
        operation: &'static str,
        /// librdkafka's error code, when there is one.
        code: Option<RDKafkaErrorCode>,
        /// The underlying error.
        #[source]
        source: KafkaError,
    },
    /// The broker or client rejected a produced record for good.
    #[error("delivery of record seq {seq} to {topic} failed ({code:?}): {message}")]
    Delivery {
        /// Caller-assigned sequence number of the record.
        seq: u64,
        /// Destination topic.
        topic: String,
        /// librdkafka / broker error code.
        code: RDKafkaErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// Creating or describing a topic failed.
    #[error("topic {topic}: {operation} failed ({code:?}): {message}")]
    Topic {
        /// The topic.
        topic: String,
        /// `create`, `describe configs`, `metadata`.
        operation: &'static str,
        /// Error code from the admin API.
        code: Option<RDKafkaErrorCode>,
        /// Details.
        message: String,
    },
    /// A Kafka transaction failed; see `requires_abort` / `fatal`.
    #[error(
        "transaction {operation} failed (abortable: {requires_abort}, fatal: {fatal}): {source}"
    )]
    Transaction {
        /// `init`, `begin`, `send`, `commit`, `abort`.
        operation: &'static str,
        /// The transaction must be aborted before the producer can continue.
        requires_abort: bool,
        /// The producer is unusable (fenced, …) and must be recreated.
        fatal: bool,
        /// The underlying error.
        #[source]
        source: KafkaError,
    },
    /// A transaction of the native producer (`producer.engine`) failed;
    /// see `requires_abort` / `fatal`.
    #[error(
        "transaction {operation} failed (abortable: {requires_abort}, fatal: {fatal}): {code:?}{detail}"
    )]
    NativeTransaction {
        /// `init`, `send`, `commit`, `abort`.
        operation: &'static str,
        /// The transaction must be aborted before the producer can continue.
        requires_abort: bool,
        /// The producer is unusable (fenced, …) and must be recreated.
        fatal: bool,
        /// The broker's error code.
        code: RDKafkaErrorCode,
        /// What the broker said and what was being done (empty, or
        /// starting with "; ").
        detail: String,
    },
    /// A request of the native producer failed on the wire: the
    /// connection broke, or an answer could not be decoded. Retriable (a
    /// new connection may succeed).
    #[error("kafka {operation} failed: {detail}")]
    Protocol {
        /// The request or step (`connect`, `Metadata`, `Produce`, …).
        operation: &'static str,
        /// What happened, with the broker's address where known.
        detail: String,
    },
    /// A caller-assigned sequence number was not strictly increasing.
    #[error("sequence {seq} registered after {last}: sequence numbers must strictly increase")]
    SequenceOutOfOrder {
        /// The rejected sequence number.
        seq: u64,
        /// The last accepted one.
        last: u64,
    },
    /// An operation did not finish in time.
    #[error("{operation} did not complete within {after:?}")]
    Timeout {
        /// What timed out.
        operation: &'static str,
        /// The time limit.
        after: Duration,
    },
    /// `errors.tolerance=none` and a record failed: the pipeline must stop.
    #[error(
        "record from {topic}[{partition}]@{offset} failed in stage {stage} and \
         errors.tolerance=none: {reason}"
    )]
    ToleranceExceeded {
        /// Topic of the failed record (empty when it was never in Kafka).
        topic: String,
        /// Partition (-1 when unknown).
        partition: i32,
        /// Offset (-1 when unknown).
        offset: i64,
        /// Kafka Connect stage name (`KAFKA_PRODUCE`, `VALUE_CONVERTER`, …).
        stage: String,
        /// The error that made the record fail.
        reason: String,
    },
    /// The component was closed or its background task ended.
    #[error("{component} is closed")]
    Closed {
        /// Which component.
        component: &'static str,
    },
}

impl Error {
    /// True when trying the same operation again may succeed (network
    /// trouble, leader elections, timeouts, full queues). False for errors
    /// that will fail again: oversized or invalid records, authorization,
    /// bad configuration, fenced producers.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, source, .. } => match code {
                Some(c) => code_is_retriable(*c),
                None => !matches!(
                    source,
                    KafkaError::ClientConfig(..)
                        | KafkaError::ClientCreation(_)
                        | KafkaError::Nul(_)
                        | KafkaError::Subscription(_)
                ),
            },
            Error::Delivery { code, .. } => code_is_retriable(*code),
            Error::Topic { code, .. } => code.is_none_or(code_is_retriable),
            Error::Transaction {
                fatal,
                requires_abort,
                ..
            }
            | Error::NativeTransaction {
                fatal,
                requires_abort,
                ..
            } => !fatal && !requires_abort,
            Error::Timeout { .. } | Error::Protocol { .. } => true,
            Error::InvalidConfig { .. }
            | Error::UnsupportedConfig { .. }
            | Error::SequenceOutOfOrder { .. }
            | Error::ToleranceExceeded { .. }
            | Error::Closed { .. } => false,
        }
    }

    /// The librdkafka / broker error code, if any.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Error::Kafka { code, .. } | Error::Topic { code, .. } => *code,
            Error::Delivery { code, .. } => Some(*code),
            Error::Transaction { source, .. } => source.rdkafka_error_code(),
            Error::NativeTransaction { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A Java-style exception class name for this error, used in the
    /// `__connect.errors.exception.class.name` DLQ header.
    pub fn class_name(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "kafka_io::Error::InvalidConfig",
            Error::UnsupportedConfig { .. } => "kafka_io::Error::UnsupportedConfig",
            Error::Kafka { .. } => "kafka_io::Error::Kafka",
            Error::Delivery { .. } => "kafka_io::Error::Delivery",
            Error::Topic { .. } => "kafka_io::Error::Topic",
            Error::Transaction { .. } => "kafka_io::Error::Transaction",
            Error::NativeTransaction { .. } => "kafka_io::Error::NativeTransaction",
            Error::SequenceOutOfOrder { .. } => "kafka_io::Error::SequenceOutOfOrder",
            Error::Timeout { .. } => "kafka_io::Error::Timeout",
            Error::Protocol { .. } => "kafka_io::Error::Protocol",
            Error::ToleranceExceeded { .. } => "kafka_io::Error::ToleranceExceeded",
            Error::Closed { .. } => "kafka_io::Error::Closed",
        }
    }

    pub(crate) fn kafka(operation: &'static str) -> impl FnOnce(KafkaError) -> Error {
        move |source| Error::Kafka {
            operation,
            // rdkafka reports no code for a failed admin operation; its
            // variant carries one (a timeout, an authorization failure, …).
            code: match &source {
                KafkaError::AdminOp(code) => Some(*code),
                other => other.rdkafka_error_code(),
            },
            source: redact(source),
        }
    }

    pub(crate) fn transaction(operation: &'static str) -> impl FnOnce(KafkaError) -> Error {
        move |source| {
            let (requires_abort, fatal) = match &source {
                KafkaError::Transaction(e) => (e.txn_requires_abort(), e.is_fatal()),
                _ => (false, false),
            };
            Error::Transaction {
                operation,
                requires_abort,
                fatal,
                source,
            }
        }
    }
}

/// What to check when librdkafka could not reach or hear from a broker
/// (appended to the message; empty for other errors).
fn reachability_hint(code: Option<RDKafkaErrorCode>) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        Some(
            C::OperationTimedOut
            | C::RequestTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut,
        ) => {
            " (no broker answered: check that `bootstrap.servers` names running brokers \
             reachable from here, and that `security.protocol` and the SASL/TLS settings \
             match their listeners)"
        }
        _ => "",
    }
}

/// librdkafka's config errors quote the rejected value: hide secrets.
fn redact(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(res, desc, key, value) if crate::config::is_sensitive(&key) => {
            let desc = if value.is_empty() {
                desc
            } else {
                desc.replace(&value, crate::config::REDACTED)
            };
            KafkaError::ClientConfig(res, desc, key, crate::config::REDACTED.to_string())
        }
        other => other,
    }
}

/// Whether a librdkafka / broker error code is worth retrying.
///
/// Non-retriable: the record or request itself is wrong (too large, invalid,
/// unknown topic with auto-creation off), the principal is not authorized,
/// the configuration is invalid, or the producer was fenced.
pub fn code_is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    !matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidMessage
            | C::BadMessage
            | C::InvalidTimestamp
            | C::UnknownTopic
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            | C::UnsupportedVersion
            | C::UnsupportedForMessageFormat
            | C::UnsupportedCompressionType
            | C::InvalidRequiredAcks
            | C::InvalidConfig
            | C::InvalidArgument
            | C::InvalidRequest
            | C::PolicyViolation
            | C::Fatal
            | C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::TransactionCoordinatorFenced
            | C::FencedInstanceId
            | C::InvalidTransactionalState
            | C::OffsetMetadataTooLarge
            | C::NotImplemented
            | C::UnsupportedFeature
            | C::ValueSerialization
            | C::KeySerialization
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_errors_hide_secrets() {
        let e = Error::kafka("create producer")(KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"pw-123\" for sasl.password".into(),
            "sasl.password".into(),
            "pw-123".into(),
        ));
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("pw-123"), "{shown}");
    }

    #[test]
    fn unreachable_brokers_say_what_to_check() {
        let timed_out =
            Error::kafka("create topics")(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut));
        let shown = timed_out.to_string();
        assert!(shown.starts_with("kafka create topics failed: "), "{shown}");
        assert!(shown.contains("`bootstrap.servers`"), "{shown}");
        let refused = Error::kafka("create topics")(KafkaError::AdminOp(
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ));
        assert!(
            !refused.to_string().contains("bootstrap.servers"),
            "{refused}"
        );
        // The admin operation's own code classifies it.
        assert!(timed_out.is_retriable());
        assert!(!refused.is_retriable());
    }

    #[test]
    fn classification() {
        assert!(!code_is_retriable(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!code_is_retriable(
            RDKafkaErrorCode::TopicAuthorizationFailed
        ));
        assert!(code_is_retriable(RDKafkaErrorCode::NotLeaderForPartition));
        assert!(code_is_retriable(RDKafkaErrorCode::QueueFull));
        assert!(code_is_retriable(RDKafkaErrorCode::MessageTimedOut));
        let e = Error::Delivery {
            seq: 1,
            topic: "t".into(),
            code: RDKafkaErrorCode::InvalidRecord,
            message: "x".into(),
        };
        assert!(!e.is_retriable());
        let e = Error::InvalidConfig {
            key: "errors.tolerance".into(),
            value: "some".into(),
            expected: "one of: none, all".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid value \"some\" for configuration property `errors.tolerance`: expected one of: none, all"
        );
    }
}
