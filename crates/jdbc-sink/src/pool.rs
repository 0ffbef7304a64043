//! Several writers on several connections, keyed by partition.
//!
//! Records of one Kafka partition always go to the same writer, and each
//! writer applies its batches in order, so the order of changes per key
//! (Kafka partitions by key) is preserved while partitions proceed in
//! parallel.
//!
//! With [`SinkPool::write_with`], every writer hands its transaction's
//! failed records to the [`DeadLetterSink`] before that transaction's
//! `COMMIT` (writers may call it concurrently), with
//! [`FailedRecord::index`](crate::FailedRecord::index) already mapped back
//! to the caller's positions.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::SinkConfig;
use crate::dead_letter::{DeadLetterSink, Reindexed};
use crate::error::SinkError;
use crate::record::{BatchOutcome, SinkRecord, TopicPartition};
use crate::sink::JdbcSink;

type Job = (
    Vec<SinkRecord>,
    Option<Reindexed<dyn DeadLetterSink>>,
    oneshot::Sender<Result<BatchOutcome, SinkError>>,
);

/// A pool of `tasks.max` writers.
#[derive(Debug)]
pub struct SinkPool {
    writers: Vec<mpsc::Sender<Job>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    config: Arc<SinkConfig>,
}

impl SinkPool {
    /// Connects `config.tasks_max` writers.
    pub async fn connect(config: SinkConfig) -> Result<Self, SinkError> {
        let n = config.tasks_max.max(1);
        Self::with_writers(config, n).await
    }

    /// Connects `n` writers (overrides `tasks.max`).
    pub async fn with_writers(config: SinkConfig, n: usize) -> Result<Self, SinkError> {
        let config = Arc::new(config);
        let mut writers = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..n.max(1) {
            let mut sink = JdbcSink::connect_shared(Arc::clone(&config)).await?;
            let (tx, mut rx) = mpsc::channel::<Job>(4);
            tasks.push(tokio::spawn(async move {
                while let Some((records, dead_letters, reply)) = rx.recv().await {
                    let r = match &dead_letters {
                        Some(d) => sink.write_with(&records, d).await,
                        None => sink.write(&records).await,
                    };
                    let _ = reply.send(r);
                }
            }));
            writers.push(tx);
        }
        Ok(Self {
            writers,
            tasks,
            config,
        })
    }

    /// Number of writers.
    pub fn writers(&self) -> usize {
        self.writers.len()
    }

    /// Stored offsets (see [`JdbcSink::load_offsets`]).
    pub async fn load_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>, SinkError> {
        let mut sink = JdbcSink::connect_shared(Arc::clone(&self.config)).await?;
        sink.load_offsets().await
    }

    fn writer_for(&self, topic: &str, partition: i32) -> usize {
        let mut h = DefaultHasher::new();
        topic.hash(&mut h);
        partition.hash(&mut h);
        (h.finish() % self.writers.len() as u64) as usize
    }

    /// Writes records, split by partition over the writers, concurrently.
    /// `FailedRecord::index` refers to positions in `records`.
    ///
    /// Failed records are returned after their transactions committed; to
    /// dead-letter them before, use [`SinkPool::write_with`].
    pub async fn write(&self, records: Vec<SinkRecord>) -> Result<BatchOutcome, SinkError> {
        self.write_inner(records, None).await
    }

    /// Like [`SinkPool::write`], with every writer delivering its
    /// transaction's failed records to `dead_letters` before that
    /// transaction's `COMMIT` (see [`JdbcSink::write_with`]). On an error
    /// other writers' transactions of the same call may have committed
    /// (their offsets are stored with them).
    pub async fn write_with(
        &self,
        records: Vec<SinkRecord>,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Result<BatchOutcome, SinkError> {
        self.write_inner(records, Some(dead_letters)).await
    }

    async fn write_inner(
        &self,
        records: Vec<SinkRecord>,
        dead_letters: Option<Arc<dyn DeadLetterSink>>,
    ) -> Result<BatchOutcome, SinkError> {
        let mut parts: Vec<(Vec<SinkRecord>, Vec<usize>)> =
            vec![(Vec::new(), Vec::new()); self.writers.len()];
        for (i, r) in records.into_iter().enumerate() {
            let w = self.writer_for(&r.topic, r.partition);
            parts[w].0.push(r);
            parts[w].1.push(i);
        }
        let mut waits = Vec::new();
        for (w, (recs, idx)) in parts.into_iter().enumerate() {
            if recs.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let idx = Arc::new(idx);
            let hook = dead_letters.as_ref().map(|d| Reindexed {
                index: Arc::clone(&idx),
                inner: Arc::clone(d),
            });
            self.writers[w]
                .send((recs, hook, tx))
                .await
                .map_err(|_| SinkError::Closed("writer task ended".into()))?;
            waits.push((rx, idx));
        }
        let mut total = BatchOutcome::default();
        let mut first_err = None;
        for (rx, idx) in waits {
            match rx.await {
                Ok(Ok(mut o)) => {
                    for f in &mut o.failed {
                        f.index = idx[f.index];
                    }
                    total.merge(o);
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(SinkError::Closed("writer task ended".into()));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

impl Drop for SinkPool {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
