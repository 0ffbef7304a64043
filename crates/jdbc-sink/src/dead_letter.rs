//! Dead-lettering before the commit: the hook through which a batch's
//! failed records reach a dead-letter queue *before* the transaction that
//! stores offsets past them commits.
//!
//! ```text
//! careful path: BEGIN … rows (bisection isolates failing records) …
//!               DeadLetterSink::deliver(failed)  ── Ok ──▶ offsets upsert + COMMIT
//!                                                └─ Err ─▶ ROLLBACK, SinkError::DeadLetter
//! ```
//!
//! With exactly-once the offsets stored in that transaction cover the failed
//! records; committing first and dead-lettering afterwards would lose a
//! record to a crash in between (not in the target, not in the DLQ, offset
//! already past it). Through [`JdbcSink::write_with`](crate::JdbcSink::write_with)
//! / [`SinkPool::write_with`](crate::SinkPool::write_with) the order is:
//! DLQ acknowledged, then COMMIT.
//!
//! Delivery into the DLQ is at-least-once: a crash (or a lost connection
//! whose COMMIT never happened) after [`DeadLetterSink::deliver`] returned
//! and before the COMMIT redoes the batch, and a restarted process delivers
//! the failed record again. Within one call, a record the hook already
//! acknowledged is not handed to it again when a transient error makes the
//! sink retry the transaction.
//!
//! The pipelined fast path never commits a failed record (any failure rolls
//! it back and the careful path redoes the batch), so the hook runs only on
//! the careful path, and only when the transaction has failed records.

use std::future::Future;
use std::pin::Pin;

use crate::record::FailedRecord;

/// A boxed error from a [`DeadLetterSink`].
pub type DeadLetterError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future returned by [`DeadLetterSink::deliver`].
pub type DeadLetterFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), DeadLetterError>> + Send + 'a>>;

/// Receives the failed records of a transaction before its `COMMIT`.
///
/// `deliver` must return `Ok` only once every record is durable downstream
/// (for Kafka: the producer's delivery acknowledged). An `Err` rolls the
/// transaction back: no row of it and none of its offsets are stored, and
/// the write fails with [`SinkError::DeadLetter`](crate::SinkError::DeadLetter).
///
/// [`FailedRecord::index`] is the record's position in the records given to
/// the outermost `write_with` call (the pool maps its writers' positions
/// back). Several pool writers may call `deliver` concurrently.
pub trait DeadLetterSink: Send + Sync {
    /// Delivers `failed` (non-empty, in record order) durably.
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a>;
}

impl<T: DeadLetterSink + ?Sized> DeadLetterSink for std::sync::Arc<T> {
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
        (**self).deliver(failed)
    }
}

impl<T: DeadLetterSink + ?Sized> DeadLetterSink for &T {
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
        (**self).deliver(failed)
    }
}

/// Maps a pool writer's record positions back to the caller's.
pub(crate) struct Reindexed<D: ?Sized> {
    /// Writer position → caller position.
    pub(crate) index: std::sync::Arc<Vec<usize>>,
    pub(crate) inner: std::sync::Arc<D>,
}

impl<D: DeadLetterSink + ?Sized> DeadLetterSink for Reindexed<D> {
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
        Box::pin(async move {
            let mapped: Vec<FailedRecord> = failed
                .iter()
                .map(|f| FailedRecord {
                    index: self.index.get(f.index).copied().unwrap_or(f.index),
                    ..f.clone()
                })
                .collect();
            self.inner.deliver(&mapped).await
        })
    }
}
