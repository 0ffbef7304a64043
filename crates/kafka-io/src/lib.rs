//! # kafka-io
//!
//! Kafka transport for pg-cdc on rdkafka: topic admin from Debezium's
//! `topic.creation.*` settings, a delivery-tracked producer whose in-order
//! acknowledgement watermark drives source LSN acks, a batching consumer with
//! manual offsets, and dead-letter queues with Kafka Connect's error headers.
//!
//! Work in progress: see the kafka-io issue.
