//! Live progress of a running source, readable from any thread: the
//! server's WAL end and the position confirmed to the slot (replication lag
//! in bytes), and the rows each table's snapshot is expected to read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cdc_envelope::{Lsn, TableId};

/// Shared by the source's driver (writer) and [`crate::source::PgSource::stats`]
/// readers. Cheap to read; updated as the stream goes.
#[derive(Debug, Default)]
pub struct SourceStats {
    server_wal_end: AtomicU64,
    confirmed_flush: AtomicU64,
    snapshot: Mutex<Vec<TableSnapshot>>,
}

/// What one table's snapshot reads in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSnapshot {
    /// The table.
    pub table: TableId,
    /// Rows it holds in the snapshot (exact for tables with a primary key
    /// or replica identity, counted while the chunks are planned; the
    /// planner's estimate `pg_class.reltuples` otherwise, `None` if the
    /// table was never analyzed). After a resumed snapshot: the rows still
    /// to read.
    pub expected_rows: Option<u64>,
}

impl SourceStats {
    /// The server's end of WAL, as last reported by the walsender (keepalives
    /// and data messages); `None` before the stream started.
    pub fn server_wal_end(&self) -> Option<Lsn> {
        non_zero(self.server_wal_end.load(Ordering::Relaxed))
    }

    /// The position confirmed to the slot (everything before it is durable
    /// downstream); `None` before the stream started.
    pub fn confirmed_flush(&self) -> Option<Lsn> {
        non_zero(self.confirmed_flush.load(Ordering::Relaxed))
    }

    /// WAL bytes the server holds for this slot beyond what was confirmed:
    /// how far the pipeline is behind the source. `None` before streaming.
    pub fn lag_bytes(&self) -> Option<u64> {
        let end = self.server_wal_end()?;
        let flushed = self.confirmed_flush()?;
        Some(end.0.saturating_sub(flushed.0))
    }

    /// The tables of the snapshot of this run (empty without a snapshot).
    pub fn snapshot_tables(&self) -> Vec<TableSnapshot> {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn saw_wal_end(&self, lsn: Lsn) {
        if lsn.0 != 0 {
            self.server_wal_end.fetch_max(lsn.0, Ordering::Relaxed);
        }
    }

    pub(crate) fn confirmed(&self, lsn: Lsn) {
        self.confirmed_flush.fetch_max(lsn.0, Ordering::Relaxed);
        // The server's end is at least what it confirmed.
        self.saw_wal_end(lsn);
    }

    pub(crate) fn set_snapshot(&self, tables: Vec<TableSnapshot>) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = tables;
        }
    }
}

fn non_zero(v: u64) -> Option<Lsn> {
    (v != 0).then_some(Lsn(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_distance_from_confirmed_to_server_end() {
        let s = SourceStats::default();
        assert_eq!(s.lag_bytes(), None);
        s.saw_wal_end(Lsn(1_000));
        assert_eq!(s.lag_bytes(), None, "nothing confirmed yet");
        s.confirmed(Lsn(400));
        assert_eq!(s.lag_bytes(), Some(600));
        // Positions only move forward, whatever order updates come in.
        s.saw_wal_end(Lsn(900));
        s.confirmed(Lsn(300));
        assert_eq!(s.lag_bytes(), Some(600));
        s.confirmed(Lsn(1_200));
        assert_eq!(s.server_wal_end(), Some(Lsn(1_200)));
        assert_eq!(s.lag_bytes(), Some(0));
    }
}
