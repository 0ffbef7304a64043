//! In-order acknowledgement watermark over caller-assigned sequence numbers.
//!
//! The source registers every record with a strictly increasing sequence
//! number before it is produced; Kafka acknowledges records in any order
//! (different partitions, retries). [`DeliveryTracker::watermark`] is the
//! highest sequence number `s` such that **every** registered record `<= s`
//! is acknowledged — the only position that may be acknowledged to
//! PostgreSQL.
//!
//! ```text
//! registered: 1  2  3  4  5
//! acked:      ✓  ✓     ✓  ✓      watermark = 2 (3 is still in flight)
//! ack(3)   →  ✓  ✓  ✓  ✓  ✓      watermark = 5
//! ```
//!
//! A record that failed for good ([`DeliveryTracker::fail`]) blocks the
//! watermark forever: the pipeline must stop and restart from the watermark.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Acked,
    Failed,
    /// Unregistered: skipped by the watermark as if never registered.
    Cancelled,
}

/// Registered records in sequence order; the front is the oldest record not
/// yet below the watermark. `base` is the registration index of the front
/// slot, so a record whose registration index is known (the producer keeps
/// it as librdkafka's per-message opaque) is found in O(1); acks by sequence
/// number alone find their slot by binary search.
#[derive(Debug, Default)]
struct State {
    last_registered: Option<u64>,
    base: u64,
    slots: VecDeque<(u64, Slot)>,
    in_flight: usize,
    watermark: Option<u64>,
    failed: Option<u64>,
}

impl State {
    fn advance(&mut self) -> Option<u64> {
        while let Some(&(seq, slot)) = self.slots.front() {
            match slot {
                Slot::Acked => self.watermark = Some(seq),
                Slot::Cancelled => {}
                Slot::Pending | Slot::Failed => break,
            }
            self.slots.pop_front();
            self.base += 1;
        }
        self.watermark
    }

    fn find(&self, seq: u64) -> Option<usize> {
        self.slots.binary_search_by_key(&seq, |(s, _)| *s).ok()
    }

    /// Slot position of registration index `index` if it is still pending.
    fn pending_at(&self, index: u64) -> Option<usize> {
        let i = usize::try_from(index.checked_sub(self.base)?).ok()?;
        (self.slots.get(i)?.1 == Slot::Pending).then_some(i)
    }

    /// Marks the pending slot `i` acked; returns the new watermark and
    /// whether it moved.
    fn ack_slot(&mut self, i: usize) -> (Option<u64>, bool) {
        self.slots[i].1 = Slot::Acked;
        self.in_flight -= 1;
        if i != 0 {
            return (self.watermark, false);
        }
        (self.advance(), true)
    }

    fn fail_slot(&mut self, i: usize) {
        let seq = self.slots[i].0;
        self.slots[i].1 = Slot::Failed;
        self.in_flight -= 1;
        self.failed = Some(self.failed.map_or(seq, |f| f.min(seq)));
    }
}

/// Tracks in-flight records and publishes the in-order acknowledged watermark.
#[derive(Debug)]
pub struct DeliveryTracker {
    state: Mutex<State>,
    tx: watch::Sender<Option<u64>>,
}

impl Default for DeliveryTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliveryTracker {
    /// An empty tracker (watermark `None`).
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            tx: watch::channel(None).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `seq` as in flight. Sequence numbers must strictly increase
    /// (gaps are fine, e.g. LSNs).
    pub fn register(&self, seq: u64) -> Result<()> {
        self.register_indexed(seq).map(|_| ())
    }

    /// Like [`register`](Self::register), returning the record's
    /// registration index for [`ack_indexed`](Self::ack_indexed) and
    /// [`seq_at`](Self::seq_at) (O(1) instead of a search).
    pub(crate) fn register_indexed(&self, seq: u64) -> Result<u64> {
        let mut s = self.lock();
        if let Some(last) = s.last_registered {
            if seq <= last {
                return Err(Error::SequenceOutOfOrder { seq, last });
            }
        }
        s.last_registered = Some(seq);
        s.slots.push_back((seq, Slot::Pending));
        s.in_flight += 1;
        Ok(s.base + s.slots.len() as u64 - 1)
    }

    /// Marks `seq` durable. Returns the new watermark. Unknown or repeated
    /// acknowledgements are ignored.
    pub fn ack(&self, seq: u64) -> Option<u64> {
        let mut s = self.lock();
        let Some(i) = s.find(seq).filter(|&i| s.slots[i].1 == Slot::Pending) else {
            return s.watermark;
        };
        let (wm, moved) = s.ack_slot(i);
        if moved {
            // Published under the lock so that receivers never see it go back.
            self.publish(wm);
        }
        wm
    }

    /// Acks the record registered at `index` (see
    /// [`register_indexed`](Self::register_indexed)); returns its sequence
    /// number, `None` when that registration is not pending.
    pub(crate) fn ack_indexed(&self, index: u64) -> Option<u64> {
        let mut s = self.lock();
        let i = s.pending_at(index)?;
        let seq = s.slots[i].0;
        let (wm, moved) = s.ack_slot(i);
        if moved {
            self.publish(wm);
        }
        Some(seq)
    }

    /// The sequence number of the pending registration `index`.
    pub(crate) fn seq_at(&self, index: u64) -> Option<u64> {
        let s = self.lock();
        let i = s.pending_at(index)?;
        Some(s.slots[i].0)
    }

    /// Marks `seq` as failed for good: the watermark never passes below it.
    pub fn fail(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(i) = s.find(seq).filter(|&i| s.slots[i].1 == Slot::Pending) {
            s.fail_slot(i);
        }
    }

    /// Forgets a registration whose record was never handed to Kafka (the
    /// send failed synchronously), as if it had not been registered.
    pub fn unregister(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(i) = s.find(seq).filter(|&i| s.slots[i].1 == Slot::Pending) {
            // Kept in place (registration indexes stay valid) and skipped.
            s.slots[i].1 = Slot::Cancelled;
            s.in_flight -= 1;
        }
        let wm = s.advance();
        self.publish(wm);
    }

    fn publish(&self, wm: Option<u64>) {
        self.tx.send_if_modified(|cur| {
            let changed = wm > *cur;
            if changed {
                *cur = wm;
            }
            changed
        });
    }

    /// Highest sequence number with everything up to it acknowledged.
    pub fn watermark(&self) -> Option<u64> {
        self.lock().watermark
    }

    /// The lowest sequence number that failed for good, if any.
    pub fn first_failure(&self) -> Option<u64> {
        self.lock().failed
    }

    /// Records registered and not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Last registered sequence number.
    pub fn last_registered(&self) -> Option<u64> {
        self.lock().last_registered
    }

    /// A receiver that changes whenever the watermark advances.
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.tx.subscribe()
    }
}

/// Maps the delivery watermark to source positions (e.g. PostgreSQL commit
/// LSNs): at each transaction's commit, [`PositionMap::mark`] the last
/// sequence number registered for it together with the position; the
/// durable position is the highest one whose sequence number is at or below
/// the watermark.
///
/// ```
/// use kafka_io::delivery::{DeliveryTracker, PositionMap};
/// let tracker = DeliveryTracker::new();
/// let mut lsns = PositionMap::new();
/// tracker.register(1).unwrap();
/// tracker.register(2).unwrap();
/// lsns.mark(tracker.last_registered(), 0x100); // txn 1 = records 1, 2
/// tracker.register(3).unwrap();
/// lsns.mark(tracker.last_registered(), 0x200); // txn 2 = record 3
/// tracker.ack(3);
/// assert_eq!(lsns.durable(tracker.watermark()), None);
/// tracker.ack(1);
/// tracker.ack(2);
/// assert_eq!(lsns.durable(tracker.watermark()), Some(0x200));
/// ```
#[derive(Debug, Default, Clone)]
pub struct PositionMap {
    marks: std::collections::VecDeque<(Option<u64>, u64)>,
    durable: Option<u64>,
}

impl PositionMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// `position` becomes durable once every record up to `last_seq` is
    /// (`None`: no record was ever registered — durable at once).
    /// Positions must not decrease.
    pub fn mark(&mut self, last_seq: Option<u64>, position: u64) {
        self.marks.push_back((last_seq, position));
    }

    /// The highest durable position for `watermark`, consuming the marks it covers.
    pub fn durable(&mut self, watermark: Option<u64>) -> Option<u64> {
        while let Some(&(seq, pos)) = self.marks.front() {
            let covered = match (seq, watermark) {
                (None, _) => true,
                (Some(s), Some(w)) => s <= w,
                (Some(_), None) => false,
            };
            if !covered {
                break;
            }
            self.marks.pop_front();
            self.durable = Some(self.durable.map_or(pos, |d| d.max(pos)));
        }
        self.durable
    }

    /// Positions marked and not yet durable.
    pub fn pending(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks() {
        let t = DeliveryTracker::new();
        for s in [10, 20, 30, 40, 50] {
            t.register(s).expect("increasing");
        }
        assert_eq!(t.ack(30), None);
        assert_eq!(t.ack(50), None);
        assert_eq!(t.ack(10), Some(10));
        assert_eq!(t.ack(40), Some(10));
        assert_eq!(t.ack(20), Some(50));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.ack(20), Some(50), "duplicate ack is ignored");
    }

    #[test]
    fn positions_follow_the_watermark() {
        let t = DeliveryTracker::new();
        let mut m = PositionMap::new();
        m.mark(None, 5); // empty txn before anything was sent
        assert_eq!(m.durable(t.watermark()), Some(5));
        for s in 1..=4 {
            t.register(s).expect("increasing");
        }
        m.mark(Some(2), 10);
        m.mark(Some(4), 20);
        m.mark(Some(4), 30); // a txn with no records of its own
        t.ack(4);
        t.ack(2);
        assert_eq!(m.durable(t.watermark()), Some(5));
        t.ack(1);
        assert_eq!(m.durable(t.watermark()), Some(10));
        t.ack(3);
        assert_eq!(m.durable(t.watermark()), Some(30));
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn rejects_non_increasing() {
        let t = DeliveryTracker::new();
        t.register(5).expect("first");
        assert!(matches!(
            t.register(5),
            Err(Error::SequenceOutOfOrder { seq: 5, last: 5 })
        ));
        assert!(t.register(4).is_err());
    }

    #[test]
    fn failure_blocks_the_watermark() {
        let t = DeliveryTracker::new();
        for s in 1..=4 {
            t.register(s).expect("increasing");
        }
        t.ack(1);
        t.fail(2);
        assert_eq!(t.ack(3), Some(1));
        assert_eq!(t.ack(4), Some(1));
        assert_eq!(t.first_failure(), Some(2));
    }

    #[test]
    fn unregister_unblocks() {
        let t = DeliveryTracker::new();
        for s in 1..=3 {
            t.register(s).expect("increasing");
        }
        t.ack(1);
        t.ack(3);
        t.unregister(2);
        assert_eq!(t.watermark(), Some(3));
    }

    #[test]
    fn indexed_acks_match_sequence_acks() {
        let t = DeliveryTracker::new();
        let idx: Vec<u64> = [5, 7, 9, 11]
            .iter()
            .map(|&s| t.register_indexed(s).expect("increasing"))
            .collect();
        assert_eq!(idx, vec![0, 1, 2, 3]);
        assert_eq!(t.seq_at(2), Some(9));
        assert_eq!(t.ack_indexed(2), Some(9));
        assert_eq!(t.ack_indexed(2), None, "repeated ack");
        t.unregister(7);
        assert_eq!(t.seq_at(1), None, "cancelled");
        assert_eq!(t.watermark(), None);
        assert_eq!(t.ack_indexed(0), Some(5));
        // 5 acked, 7 cancelled (skipped without becoming the watermark), 9 acked.
        assert_eq!(t.watermark(), Some(9));
        assert_eq!(t.in_flight(), 1);
        // Indexes stay valid after the front was popped.
        assert_eq!(t.register_indexed(12).expect("increasing"), 4);
        assert_eq!(t.ack(12), Some(9));
        assert_eq!(t.ack_indexed(3), Some(11));
        assert_eq!(t.watermark(), Some(12));
        assert_eq!(t.ack_indexed(99), None, "unknown index");
    }

    #[test]
    fn unregistered_front_does_not_become_the_watermark() {
        let t = DeliveryTracker::new();
        t.register(1).expect("first");
        t.register(2).expect("second");
        t.ack(1);
        t.unregister(2);
        assert_eq!(t.watermark(), Some(1));
        assert_eq!(t.in_flight(), 0);
    }

    /// Random permutations of acks: the watermark is always the largest
    /// prefix of fully acknowledged sequence numbers.
    #[test]
    fn random_permutations() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..200 {
            let n = 1 + (next() % 64) as usize;
            let seqs: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            let t = DeliveryTracker::new();
            for &s in &seqs {
                t.register(s).expect("increasing");
            }
            let mut order = seqs.clone();
            for i in (1..order.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let mut acked = vec![false; n];
            for s in order {
                let wm = t.ack(s);
                acked[((s - 1) / 3) as usize] = true;
                let prefix = acked.iter().take_while(|a| **a).count();
                let expect = (prefix > 0).then(|| seqs[prefix - 1]);
                assert_eq!(wm, expect);
            }
        }
    }
}
