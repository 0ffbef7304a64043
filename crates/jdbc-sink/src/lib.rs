//! # jdbc-sink
//!
//! The upsert sink of pg-cdc: applies Debezium change events to PostgreSQL
//! with the Debezium JDBC sink's property names and modes, schema evolution,
//! TOAST-aware updates and exactly-once offsets stored in the target.
//!
//! ```text
//! kafka-io consumer ─▶ cdc-envelope decoder ─▶ SinkRecord{topic, partition, offset, key, value}
//!                                                   │
//!             SinkPool (tasks.max writers, one per partition hash, order per key kept)
//!                                                   │
//!   JdbcSink::write ── per batch.size records, one transaction ─────────────────────────────┐
//!     reduce   : key per primary.key.mode, final state per key, TOAST-aware merge           │
//!                (use.reduction.buffer=false: record order, a repeated key → new segment)   │
//!     ddl      : catalog cache, CREATE TABLE / ADD COLUMN (schema.evolution=basic)          │
//!     write    : INSERT … SELECT … FROM UNNEST($1::pg_temp.row_t[]) [ON CONFLICT … UPDATE] │
//!                UPDATE … FROM / DELETE … USING; or binary COPY into a staging table        │
//!     offsets  : __pgcdc_sink_offsets upsert ─ same transaction ─ COMMIT ◀──────────────────┘
//!   fast path: no savepoint; slices planned + encoded while the server runs the previous
//!              slice's statement (pipelined), offsets + COMMIT queued behind them
//!   failing record → whole transaction rolled back, redone with savepoint + bisection
//!                  → BatchOutcome.failed (for the DLQ)
//!   transient error (08xxx, 40001, 40P01, 55P03, 57P0x) → rollback, backoff, reconnect, retry
//!   TLS (sslmode, sslrootcert, sslcert/sslkey): rustls, see [`tls`]
//! ```
//!
//! Modules: [`config`] (properties), [`ident`] (the one quoting helper),
//! [`naming`] (`table.name.format`), [`reduce`] (batch reduction), [`ddl`]
//! (schema evolution), [`encode`] (binary values), [`write`](mod@write) (SQL),
//! [`offsets`] (exactly-once), [`sink`] (one connection), [`pool`] (many),
//! [`tls`] (rustls for `sslmode`),
//! [`record`] (input / output), [`error`].
//!
//! ```no_run
//! # async fn demo(events: Vec<cdc_envelope::ChangeEvent>) -> Result<(), jdbc_sink::SinkError> {
//! use jdbc_sink::{JdbcSink, SinkConfig, SinkRecord};
//!
//! let config = SinkConfig::from_pairs([
//!     ("connection.url", "jdbc:postgresql://127.0.0.1:55433/bf_target"),
//!     ("connection.username", "cdc"),
//!     ("connection.password", "cdc"),
//!     ("insert.mode", "upsert"),
//!     ("primary.key.mode", "record_key"),
//!     ("delete.enabled", "true"),
//!     ("schema.evolution", "basic"),
//!     ("table.name.format", "${source.table}"),
//!     ("errors.tolerance", "all"),
//! ])?;
//! let mut sink = JdbcSink::connect(config).await?;
//! let seek_to = sink.load_offsets().await?; // consumer seeks here at start
//! # let _ = seek_to;
//! let records: Vec<SinkRecord> = events
//!     .into_iter()
//!     .enumerate()
//!     .map(|(i, ev)| SinkRecord::from_event("pgsource.public.employees", 0, i as i64, ev))
//!     .collect();
//! let outcome = sink.write(&records).await?;
//! for failed in &outcome.failed {
//!     // produce records[failed.index] to the DLQ with failed.error
//! #   let _ = failed;
//! }
//! # Ok(()) }
//! ```

pub mod config;
pub mod ddl;
pub mod encode;
pub mod error;
pub mod ident;
pub mod naming;
pub mod offsets;
pub mod pool;
pub mod record;
pub mod reduce;
pub mod sink;
pub mod tls;
pub mod write;

pub use config::{ErrorTolerance, InsertMode, PrimaryKeyMode, SinkConfig, WritePath};
pub use error::{RecordError, SinkError};
pub use ident::{quote_ident, QualifiedName};
pub use offsets::OffsetStore;
pub use pool::SinkPool;
pub use record::{BatchOutcome, FailedRecord, RecordKey, SinkRecord, TopicPartition};
pub use sink::JdbcSink;
