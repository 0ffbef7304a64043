//! Offsets stored in the background, so the stream keeps decoding while an
//! [`OffsetStore`] makes them durable (for the exactly-once pipeline that is
//! a whole Kafka transaction commit).
//!
//! The driver hands each new offset to [`Persister::request`] and keeps
//! going; a background task stores the newest requested offset (older ones
//! it has not started yet are superseded: the newest covers them) and
//! publishes the generation it made durable. The slot is confirmed only for
//! positions whose offsets are durable: the driver queues each flush LSN with
//! the generation that must be durable first ([`Persister::confirm_after`])
//! and takes the confirmable ones with [`Persister::durable_flush`].

use std::collections::VecDeque;

use cdc_envelope::Lsn;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::source::offset::{OffsetStore, SourceOffset};

/// What the store task last finished.
#[derive(Debug, Clone)]
struct Durable {
    /// The newest generation made durable (0: nothing requested yet).
    generation: u64,
    /// The error that stopped the task, if any.
    error: Option<Error>,
}

/// The background store and the flush positions waiting for it.
pub(crate) struct Persister {
    requests: watch::Sender<(u64, Option<SourceOffset>)>,
    durable: watch::Receiver<Durable>,
    /// The newest generation requested.
    requested: u64,
    /// Flush LSNs to confirm once their generation is durable, in order.
    waiting: VecDeque<(u64, Lsn)>,
    task: JoinHandle<()>,
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Persister {
    /// Starts the store task.
    pub(crate) fn spawn<S: OffsetStore>(store: S) -> Self {
        let (requests, mut rx) = watch::channel((0u64, None::<SourceOffset>));
        let (done, durable) = watch::channel(Durable {
            generation: 0,
            error: None,
        });
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let (generation, offset) = rx.borrow_and_update().clone();
                let Some(offset) = offset else { continue };
                let error = store.store(&offset).await.err();
                let failed = error.is_some();
                done.send_replace(Durable { generation, error });
                if failed {
                    // Nothing later may be stored (or confirmed) after a failure.
                    return;
                }
            }
        });
        Self {
            requests,
            durable,
            requested: 0,
            waiting: VecDeque::new(),
            task,
        }
    }

    /// Asks for `offset` to be stored; returns at once.
    pub(crate) fn request(&mut self, offset: &SourceOffset) {
        self.requested += 1;
        self.requests
            .send_replace((self.requested, Some(offset.clone())));
    }

    /// Confirm `lsn` to the slot once everything requested so far is durable.
    pub(crate) fn confirm_after(&mut self, lsn: Lsn) {
        match self.waiting.back_mut() {
            Some((g, l)) if *g == self.requested => *l = (*l).max(lsn),
            _ => self.waiting.push_back((self.requested, lsn)),
        }
    }

    /// The newest flush LSN whose offsets are durable now (taken out of the
    /// queue), or the store's error.
    pub(crate) fn durable_flush(&mut self) -> Result<Option<Lsn>> {
        let d = self.durable.borrow_and_update().clone();
        if let Some(e) = d.error {
            return Err(e);
        }
        let mut lsn = None;
        while let Some(&(g, l)) = self.waiting.front() {
            if g > d.generation {
                break;
            }
            lsn = lsn.max(Some(l));
            self.waiting.pop_front();
        }
        Ok(lsn)
    }

    /// True when every offset requested is durable and every flush position
    /// queued was handed out.
    pub(crate) fn settled(&self) -> bool {
        self.caught_up() && self.waiting.is_empty()
    }

    /// True when everything requested is durable.
    fn caught_up(&self) -> bool {
        self.durable.borrow().generation >= self.requested
    }

    /// Resolves when the store task finished a store (or failed). Never
    /// resolves if the task is gone without a word (it was aborted).
    pub(crate) async fn changed(&mut self) {
        if self.durable.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until everything requested is durable (or the store failed).
    pub(crate) async fn wait_durable(&mut self) -> Result<()> {
        loop {
            if let Some(e) = self.durable.borrow().error.clone() {
                return Err(e);
            }
            if self.caught_up() {
                return Ok(());
            }
            // A task that ended after an error left it to read above; one
            // that ended without a word was aborted.
            if self.durable.changed().await.is_err() && self.durable.borrow().error.is_none() {
                return Err(Error::OffsetStore {
                    detail: "the offset store task ended before storing the last offset".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// A store that blocks each call until released, and counts calls.
    #[derive(Clone, Default)]
    struct Gated {
        release: Arc<Notify>,
        calls: Arc<AtomicUsize>,
        fail: bool,
        last: Arc<std::sync::Mutex<Option<SourceOffset>>>,
    }

    impl OffsetStore for Gated {
        async fn load(&self) -> Result<Option<SourceOffset>> {
            Ok(None)
        }
        async fn store(&self, offset: &SourceOffset) -> Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            if self.fail {
                return Err(Error::OffsetStore {
                    detail: "disk full".into(),
                });
            }
            *self.last.lock().unwrap() = Some(offset.clone());
            Ok(())
        }
    }

    fn offset(acked_lsn: u64) -> SourceOffset {
        SourceOffset {
            acked: Some(cdc_envelope::Position {
                commit_lsn: Lsn(acked_lsn),
                seq: 0,
            }),
            ..Default::default()
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn confirms_only_what_is_durable_and_coalesces_superseded_offsets() {
        let store = Gated::default();
        let mut p = Persister::spawn(store.clone());
        // Nothing requested: a flush is confirmable at once.
        p.confirm_after(Lsn(5));
        assert_eq!(p.durable_flush().unwrap(), Some(Lsn(5)));

        p.request(&offset(10));
        p.confirm_after(Lsn(10));
        settle().await;
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        // Stored but not durable yet: nothing to confirm.
        assert_eq!(p.durable_flush().unwrap(), None);
        // Two more while the first is in flight: only the newest is stored.
        p.request(&offset(20));
        p.confirm_after(Lsn(20));
        p.request(&offset(30));
        p.confirm_after(Lsn(30));
        store.release.notify_one();
        p.changed().await;
        assert_eq!(p.durable_flush().unwrap(), Some(Lsn(10)));
        settle().await;
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            2,
            "offset 20 superseded"
        );
        store.release.notify_one();
        tokio::time::timeout(Duration::from_secs(5), p.wait_durable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.durable_flush().unwrap(), Some(Lsn(30)));
        assert_eq!(*store.last.lock().unwrap(), Some(offset(30)));
        assert_eq!(p.durable_flush().unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_store_is_reported_and_nothing_is_confirmed() {
        let store = Gated {
            fail: true,
            ..Default::default()
        };
        let mut p = Persister::spawn(store.clone());
        p.request(&offset(10));
        p.confirm_after(Lsn(10));
        settle().await;
        store.release.notify_one();
        let err = tokio::time::timeout(Duration::from_secs(5), p.wait_durable())
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        let err = p.durable_flush().unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        // Later requests are never stored.
        p.request(&offset(20));
        settle().await;
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        assert!(p.wait_durable().await.is_err());
    }
}
