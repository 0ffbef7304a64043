//! # jdbc-sink
//!
//! The upsert sink of pg-cdc: applies Debezium change events to PostgreSQL
//! with the Debezium JDBC sink's modes and property names, schema evolution,
//! TOAST-aware updates and exactly-once offsets stored in the target.
//!
//! Work in progress: see the jdbc-sink issue.
