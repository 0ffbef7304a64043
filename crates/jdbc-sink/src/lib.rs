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
//!                  → DeadLetterSink::deliver(failed) acknowledged → offsets + COMMIT
//!                    (write_with; an Err rolls back) → BatchOutcome.failed
//!   transient error (08xxx, 40001, 40P01, 55P03, 57P0x) → rollback, backoff, reconnect, retry
//!   TLS (sslmode, sslrootcert, sslcert/sslkey): rustls, see [`tls`]
//! ```
//!
//! Modules: [`config`] (properties), [`ident`] (the one quoting helper),
//! [`naming`] (`table.name.format`), [`reduce`] (batch reduction), [`ddl`]
//! (schema evolution), [`encode`] (binary values), [`write`](mod@write) (SQL),
//! [`offsets`] (exactly-once), [`dead_letter`] (failed records durable
//! before the commit), [`sink`] (one connection), [`pool`] (many),
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
//!     // already committed past: log it (to dead-letter it, use write_with)
//! #   let _ = failed;
//! }
//! # Ok(()) }
//! ```
//!
//! ## Dead letters before the commit
//!
//! With exactly-once the transaction that applies a batch also stores the
//! offsets past its failed records, so those records must be durable in the
//! dead-letter queue *before* it commits. [`JdbcSink::write_with`] and
//! [`SinkPool::write_with`] take a [`DeadLetterSink`] whose
//! [`deliver`](DeadLetterSink::deliver) is awaited before the `COMMIT`; an
//! error rolls the transaction back ([`SinkError::DeadLetter`]). A crash
//! after the DLQ acknowledged and before the `COMMIT` redoes the batch and
//! delivers the record again: the DLQ is at-least-once, the target
//! exactly-once.
//!
//! ```no_run
//! # async fn demo(sink: &mut jdbc_sink::JdbcSink, records: Vec<jdbc_sink::SinkRecord>) -> Result<(), jdbc_sink::SinkError> {
//! use jdbc_sink::{DeadLetterFuture, DeadLetterSink, FailedRecord};
//!
//! struct Dlq; // e.g. a Kafka producer awaiting each delivery report
//! impl DeadLetterSink for Dlq {
//!     fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
//!         Box::pin(async move {
//!             for f in failed {
//!                 // produce the original record at f.topic/f.partition/f.offset, await the ack
//! #               let _ = f;
//!             }
//!             Ok(())
//!         })
//!     }
//! }
//! let outcome = sink.write_with(&records, &Dlq).await?; // failed ones are in the DLQ
//! # let _ = outcome;
//! # Ok(()) }
//! ```

pub mod config;
pub mod ddl;
pub mod dead_letter;
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
pub use dead_letter::{DeadLetterError, DeadLetterFuture, DeadLetterSink};
pub use error::{RecordError, SinkError};
pub use ident::{quote_ident, QualifiedName};
pub use offsets::OffsetStore;
pub use pool::SinkPool;
pub use record::{BatchOutcome, FailedRecord, RecordKey, SinkRecord, TopicPartition};
pub use sink::JdbcSink;
