//! # kafka-io
//!
//! Kafka transport for pg-cdc: topic admin from Debezium's
//! `topic.creation.*` settings, a delivery-tracked producer whose in-order
//! acknowledgement watermark drives the source's LSN acks, a transactional
//! producer that commits records together with the source position, a
//! batching consumer with manual offsets and rebalance safety, and
//! dead-letter queues with Kafka Connect's error headers.
//!
//! Everything runs on rdkafka (librdkafka) except, by default, the
//! transactional producer: over PLAINTEXT with LZ4 or no compression it
//! speaks Kafka's protocol itself (`producer.engine`, see
//! [`ProducerEngine`]): each record is written once into its partition's
//! record batch and each batch compressed once, for about half of
//! librdkafka's CPU per record; with TLS, SASL or another codec it is
//! librdkafka.
//!
//! ```text
//!  connector properties (BTreeMap) ──▶ config::KafkaConfig
//!        │                                 │
//!        │        ┌────────────────────────┼─────────────────────────────┐
//!        ▼        ▼                        ▼                             ▼
//!  admin::TopicAdmin          producer::Producer ──ack──▶ delivery::DeliveryTracker ──watermark──▶ source acks LSN
//!  create / drift              │  non-retriable rejects                           (everything ≤ seq durable)
//!                              ▼
//!                        dlq::ErrorReporter ──▶ dlq_source / dlq_sink (+ __connect.errors.* headers)
//!                              ▲
//!  consumer::BatchConsumer ──Batch──▶ sink ──durable──▶ commit(&batch)   (revoked partitions skipped)
//!  producer::TransactionalProducer: records + position record in one Kafka transaction
//!                                   (native protocol client or librdkafka: `producer.engine`)
//!  delivery::PositionMap: watermark (sequence numbers) → durable source position (LSN)
//! ```
//!
//! Modules: [`config`] (properties → typed config, secrets redacted),
//! [`admin`] (topics, drift), [`producer`], [`delivery`] (watermark),
//! [`consumer`], [`dlq`] (errors.tolerance, logging, retries, DLQ),
//! [`error`] (one error enum with `is_retriable()`); private: `native`
//! (the native transactional producer: connections, accumulator, sender)
//! and `wire` (Kafka's request/answer formats and record batches, pure
//! decoders over `Bytes`, fuzzed by `crates/kafka-io/fuzz`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_io::Error> {
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use kafka_io::{KafkaConfig, Producer, ProducerOptions, Record, TopicAdmin, ErrorReporter};
//!
//! let props: BTreeMap<String, String> = [
//!     ("bootstrap.servers", "127.0.0.1:9092"),
//!     ("topic.creation.default.partitions", "3"),
//!     ("topic.creation.default.replication.factor", "1"),
//!     ("errors.tolerance", "all"),
//!     ("errors.deadletterqueue.topic.name", "dlq_source"),
//!     ("errors.deadletterqueue.context.headers.enable", "true"),
//! ]
//! .into_iter()
//! .map(|(k, v)| (k.to_string(), v.to_string()))
//! .collect();
//! let config = KafkaConfig::from_properties(&props)?;
//!
//! let topic = "pgsource.public.employees";
//! TopicAdmin::new(&config)?
//!     .ensure_topic(&config.topic_creation.spec_for(topic))
//!     .await?;
//!
//! let reporter = Arc::new(ErrorReporter::new(&config, "pg-source-connector", 0).await?);
//! let producer = Producer::new(
//!     &config,
//!     ProducerOptions { reporter: Some(reporter), ..ProducerOptions::default() },
//! )?;
//! producer.send(1, &Record::to(topic).key(b"{\"id\":1}").value(b"{...}")).await?;
//! let durable_up_to = producer.flush(std::time::Duration::from_secs(30)).await?;
//! assert_eq!(durable_up_to, Some(1));
//! # Ok(()) }
//! ```

pub mod admin;
mod client;
pub mod config;
pub mod consumer;
pub mod delivery;
pub mod dlq;
pub mod error;
mod native;
pub mod producer;
mod wire;

/// Entry points for the fuzz targets (`crates/kafka-io/fuzz`); not a
/// stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs every decoder of the native producer's broker answers over
    /// `data` (a response frame without its size): each returns a value
    /// or a typed error, never panics.
    pub fn decode_answers(data: &[u8]) {
        crate::wire::decode_all(bytes::Bytes::copy_from_slice(data));
    }
}

pub use admin::{Drift, TopicAdmin, TopicDescription, TopicStatus};
pub use config::{ErrorHandling, KafkaConfig, ProducerEngine, Tolerance, TopicCreation, TopicSpec};
pub use consumer::{
    Batch, BatchConsumer, BatchOptions, CommitOutcome, ConsumedRecord, RebalanceListener,
    SubscriptionRefresher, TopicPartition,
};
pub use delivery::{DeliveryTracker, PositionMap};
pub use dlq::{
    DeadLetterQueue, ErrorContext, ErrorReporter, FailedRecord, Handled, RetryPolicy, Stage,
};
pub use error::{Error, Result};
pub use producer::{
    read_position, Header, Producer, ProducerOptions, Record, Transaction, TransactionalProducer,
    ABORT_DRAIN, POSITION_TAIL, POSITION_TOPIC_CONFIGS,
};
