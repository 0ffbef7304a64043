//! Decoding into a previous event: what the decoders' `*_into` entry points
//! ([`crate::JsonDecoder::decode_bytes_into`],
//! [`crate::AvroDecoder::decode_value_shared_into`]) use to overwrite an
//! event in place instead of building a new one.
//!
//! * Row `Vec`s are cleared and refilled (their capacity kept); a row that
//!   the next record does not have (an insert after an update has no
//!   `before`) goes to a small per-decoder pool ([`Spare`]) and comes back
//!   for the next record that has one.
//! * The `source` block's repeating strings (`version`, `connector`,
//!   `name`, `db`, `schema`, `table`) are compared with the target's
//!   current value first and left alone when equal: no reference count is
//!   touched. Fields a record does not carry are reset, so nothing of the
//!   previous event survives.
//! * The table `Arc` is kept when it is the same plan's table.
//!
//! A decode that fails leaves its target empty (`None`); the event's
//! allocations go to the pool, scrubbed of everything that points into a
//! record (row values, `sequence`, `origin`, transaction, message).

use std::sync::Arc;

use crate::event::{ChangeEvent, Op, Position, Row, SnapshotMarker, SourceField, SourceInfo};
use crate::intern::StrCache;
use crate::schema::TableSchema;
use crate::value::{Str, Value};

/// Rows kept for reuse per decoder (two row images and a key).
const MAX_SPARE_ROWS: usize = 4;

/// A new event with nothing decoded into it yet.
pub(crate) fn blank_event() -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: None,
        before: None,
        after: None,
        source: SourceInfo::default(),
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Position::default(),
        key_change: None,
    }
}

/// Allocations of events and rows a decoder keeps between `*_into` calls.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    event: Option<ChangeEvent>,
    rows: Vec<Row>,
}

impl Spare {
    /// The event in `slot`, creating it (from the pool, else new) when
    /// the slot is empty.
    pub(crate) fn event_in<'e>(
        &mut self,
        slot: &'e mut Option<ChangeEvent>,
    ) -> &'e mut ChangeEvent {
        slot.get_or_insert_with(|| self.event.take().unwrap_or_else(blank_event))
    }

    /// The row in `slot`, cleared (capacity kept), or a pooled / new one
    /// with room for `columns` values.
    pub(crate) fn row_in<'r>(&mut self, slot: &'r mut Option<Row>, columns: usize) -> &'r mut Row {
        let row = slot.get_or_insert_with(|| match self.rows.pop() {
            Some(r) => r,
            None => Vec::with_capacity(columns),
        });
        row.clear();
        row
    }

    /// Empties `slot`, keeping its row (cleared) for later.
    pub(crate) fn drop_row(&mut self, slot: &mut Option<Row>) {
        if let Some(mut row) = slot.take() {
            if self.rows.len() < MAX_SPARE_ROWS {
                row.clear();
                self.rows.push(row);
            }
        }
    }

    /// Empties `slot`, keeping its allocations for the next event: rows go
    /// to the pool, and nothing that points into a record is kept.
    pub(crate) fn discard(&mut self, slot: &mut Option<ChangeEvent>) {
        let Some(mut ev) = slot.take() else {
            return;
        };
        self.drop_row(&mut ev.before);
        self.drop_row(&mut ev.after);
        ev.source.sequence = None;
        ev.source.origin = None;
        ev.transaction = None;
        ev.message = None;
        ev.key_change = None;
        if self.event.is_none() {
            self.event = Some(ev);
        }
    }

    /// Replaces `target` with a freshly decoded event, keeping the old
    /// event's rows for later.
    pub(crate) fn replace(&mut self, target: &mut ChangeEvent, new: ChangeEvent) {
        let mut old = std::mem::replace(target, new);
        self.drop_row(&mut old.before);
        self.drop_row(&mut old.after);
    }
}

/// Stores `v` in `slot`, which holds [`Value::Null`] (a row pre-filled by
/// the decoder): nothing to drop, so no drop call that `v` would have to be
/// kept in memory across; values are written straight into the row instead
/// of being built on the stack and copied.
#[inline(always)]
pub(crate) fn fill(slot: &mut Value, v: Value) {
    debug_assert!(slot.is_null());
    std::mem::forget(std::mem::replace(slot, v));
}

/// Points `slot` at `table`, leaving it alone when it already does.
pub(crate) fn set_table(slot: &mut Option<Arc<TableSchema>>, table: Option<&Arc<TableSchema>>) {
    match (slot.as_ref(), table) {
        (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {}
        (None, None) => {}
        _ => *slot = table.cloned(),
    }
}

/// Sets `slot` to the string `raw` (a repeating `source` value): left alone
/// when equal, else shared through `cache`.
#[inline]
pub(crate) fn set_interned(
    slot: &mut Str,
    raw: &[u8],
    cache: &mut StrCache,
    hint: usize,
) -> Result<(), std::str::Utf8Error> {
    if !same_bytes(slot.as_bytes(), raw) {
        *slot = cache.get_or_insert_at(hint, raw)?;
    }
    Ok(())
}

/// `a == b`, without a `memcmp` call for short strings (field names,
/// `source` values; up to 16 bytes: two overlapping word compares).
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> Option<u64> {
        s.get(at..)?
            .first_chunk::<8>()
            .map(|w| u64::from_le_bytes(*w))
    }
    fn half(s: &[u8], at: usize) -> Option<u32> {
        s.get(at..)?
            .first_chunk::<4>()
            .map(|w| u32::from_le_bytes(*w))
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.first() == b.first() && a.get(n / 2) == b.get(n / 2) && a.last() == b.last(),
        _ => a == b,
    }
}

/// Sets `slot` to `Some(text)` (or `None`) unless it already holds that
/// value: for values that usually repeat from event to event.
pub(crate) fn set_opt_str(slot: &mut Option<Str>, text: Option<&Str>) {
    if slot.as_ref().map(Str::as_bytes) != text.map(Str::as_bytes) {
        *slot = text.cloned();
    }
}

/// The bit of a `source` field in a set of fields read.
#[inline]
pub(crate) fn bit(field: SourceField) -> u32 {
    1 << field as u32
}

/// Resets the fields of `s` a record is about to overwrite, before its
/// `source` block is read: every field except the repeating strings, which
/// are compared in place and reset by [`reset_unread`] when absent.
#[inline]
pub(crate) fn reset_source(s: &mut SourceInfo) {
    s.ts_us = 0;
    s.snapshot = SnapshotMarker::default();
    s.sequence = None;
    s.tx_id = None;
    s.lsn = None;
    s.xmin = None;
    s.origin = None;
    s.origin_lsn = None;
}

/// After a `source` block: empties the repeating strings the record did not
/// carry (`read` is the set of [`bit`]s of the fields read).
#[inline]
pub(crate) fn reset_unread(s: &mut SourceInfo, read: u32) {
    for (field, slot) in [
        (SourceField::Version, &mut s.version),
        (SourceField::Connector, &mut s.connector),
        (SourceField::Name, &mut s.name),
        (SourceField::Db, &mut s.db),
        (SourceField::Schema, &mut s.schema),
        (SourceField::Table, &mut s.table),
    ] {
        if read & bit(field) == 0 && !slot.is_empty() {
            *slot = Str::default();
        }
    }
}

/// True for the `source` fields whose values usually repeat from event to
/// event of one table (names of the connector, server, database, schema
/// and table, the snapshot marker, and the fields that are normally null).
pub(crate) fn repeats(field: SourceField) -> bool {
    matches!(
        field,
        SourceField::Version
            | SourceField::Connector
            | SourceField::Name
            | SourceField::Snapshot
            | SourceField::Db
            | SourceField::Schema
            | SourceField::Table
            | SourceField::Xmin
            | SourceField::Origin
            | SourceField::OriginLsn
    )
}

/// Copies the value of one [`repeats`] field from `from` to `to` (strings
/// left alone when `to` already shares them).
#[inline]
pub(crate) fn copy_field(field: SourceField, from: &SourceInfo, to: &mut SourceInfo) {
    fn share(from: &Str, to: &mut Str) {
        if from.as_ptr() != to.as_ptr() || from.len() != to.len() {
            *to = from.clone();
        }
    }
    match field {
        SourceField::Version => share(&from.version, &mut to.version),
        SourceField::Connector => share(&from.connector, &mut to.connector),
        SourceField::Name => share(&from.name, &mut to.name),
        SourceField::Db => share(&from.db, &mut to.db),
        SourceField::Schema => share(&from.schema, &mut to.schema),
        SourceField::Table => share(&from.table, &mut to.table),
        SourceField::Snapshot => to.snapshot = from.snapshot,
        SourceField::Xmin => to.xmin = from.xmin,
        SourceField::OriginLsn => to.origin_lsn = from.origin_lsn,
        SourceField::Origin => set_opt_str(&mut to.origin, from.origin.as_ref()),
        _ => {}
    }
}

/// The bytes of the previous record's runs of [`repeats`] `source` fields
/// (per decoding plan) and the values they decoded to.
#[derive(Debug, Default)]
pub(crate) struct SourceMemo {
    /// The plan the runs belong to (0: none).
    plan: u64,
    /// Bytes of each run, by run number (empty: not known yet).
    runs: Vec<Vec<u8>>,
    /// The decoded values of the fields of every run.
    values: SourceInfo,
}

impl SourceMemo {
    /// Longest run kept: longer runs are simply decoded every time.
    const MAX_RUN: usize = 512;

    /// Forgets everything when the plan is not the memo's.
    #[inline]
    pub(crate) fn follow(&mut self, plan: u64) {
        if self.plan != plan {
            self.plan = plan;
            self.runs.clear();
            self.values = SourceInfo::default();
        }
    }

    /// The bytes of run `run` (empty when unknown).
    #[inline]
    pub(crate) fn run(&self, run: usize) -> &[u8] {
        self.runs.get(run).map_or(&[], Vec::as_slice)
    }

    /// The memo's values.
    #[inline]
    pub(crate) fn values(&self) -> &SourceInfo {
        &self.values
    }

    /// Records that run `run` was `bytes`, decoding the `fields` to their
    /// values in `decoded`.
    pub(crate) fn remember(
        &mut self,
        run: usize,
        bytes: &[u8],
        fields: impl Iterator<Item = SourceField>,
        decoded: &SourceInfo,
    ) {
        if self.runs.len() <= run {
            self.runs.resize_with(run + 1, Vec::new);
        }
        let Some(slot) = self.runs.get_mut(run) else {
            return;
        };
        slot.clear();
        if bytes.len() > Self::MAX_RUN {
            return;
        }
        slot.extend_from_slice(bytes);
        for f in fields {
            copy_field(f, decoded, &mut self.values);
        }
    }
}

/// The [`StrCache`] hint of a repeating `source` string field.
#[inline]
pub(crate) fn hint(field: SourceField) -> usize {
    match field {
        SourceField::Version => 0,
        SourceField::Connector => 1,
        SourceField::Name => 2,
        SourceField::Db => 3,
        SourceField::Schema => 4,
        _ => 5,
    }
}

/// The slot of a repeating `source` string field (`None` for the others).
#[inline]
pub(crate) fn interned_slot(s: &mut SourceInfo, field: SourceField) -> Option<&mut Str> {
    Some(match field {
        SourceField::Version => &mut s.version,
        SourceField::Connector => &mut s.connector,
        SourceField::Name => &mut s.name,
        SourceField::Db => &mut s.db,
        SourceField::Schema => &mut s.schema,
        SourceField::Table => &mut s.table,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_from_the_pool() {
        let mut spare = Spare::default();
        let mut slot = Some(vec![Value::Int32(1), Value::Text("x".into())]);
        let ptr = slot.as_ref().map(|r| r.as_ptr());
        spare.drop_row(&mut slot);
        assert!(slot.is_none());
        let row = spare.row_in(&mut slot, 7);
        assert!(row.is_empty());
        assert_eq!(Some(row.as_ptr()), ptr);
        // A full pool drops the extra rows.
        for _ in 0..MAX_SPARE_ROWS + 2 {
            let mut r = Some(Vec::with_capacity(3));
            spare.drop_row(&mut r);
        }
        assert_eq!(spare.rows.len(), MAX_SPARE_ROWS);
    }

    #[test]
    fn discarded_events_are_scrubbed_and_reused() {
        let mut spare = Spare::default();
        let mut ev = blank_event();
        ev.after = Some(vec![Value::Int32(1)]);
        ev.source.sequence = Some("[1,2]".into());
        ev.source.db = "db".into();
        let mut slot = Some(ev);
        spare.discard(&mut slot);
        assert!(slot.is_none());
        let again = spare.event_in(&mut slot);
        assert_eq!(again.after, None);
        assert_eq!(again.source.sequence, None);
        assert_eq!(spare.rows.len(), 1);
        spare.discard(&mut None);
    }

    #[test]
    fn short_compares_match_slice_equality() {
        let words: Vec<Vec<u8>> = (0..40)
            .map(|n| (0..n).map(|i| b'a' + (i % 7) as u8).collect())
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(same_bytes(a, b), a == b);
                for i in 0..b.len() {
                    let mut c = b.clone();
                    c[i] ^= 1;
                    assert_eq!(same_bytes(a, &c), *a == c, "{a:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn source_resets_cover_every_field() {
        let mut s = SourceInfo {
            version: "v".into(),
            connector: "c".into(),
            name: "n".into(),
            ts_us: 1,
            snapshot: SnapshotMarker::True,
            db: "d".into(),
            sequence: Some("s".into()),
            schema: "s".into(),
            table: "t".into(),
            tx_id: Some(1),
            lsn: Some(2),
            xmin: Some(3),
            origin: Some("o".into()),
            origin_lsn: Some(4),
        };
        reset_source(&mut s);
        reset_unread(&mut s, 0);
        assert_eq!(s, SourceInfo::default());
        let mut t = SourceInfo {
            table: "t".into(),
            ..Default::default()
        };
        reset_unread(&mut t, bit(SourceField::Table));
        assert_eq!(t.table, "t");
        let mut cache = StrCache::default();
        let mut slot = Str::from("a");
        let before = slot.as_ptr();
        set_interned(&mut slot, b"a", &mut cache, 0).expect("utf8");
        assert_eq!(slot.as_ptr(), before, "equal: untouched");
        set_interned(&mut slot, b"b", &mut cache, 0).expect("utf8");
        assert_eq!(slot, "b");
        assert!(set_interned(&mut slot, b"\xff", &mut cache, 0).is_err());
        let mut o = None;
        set_opt_str(&mut o, Some(&Str::from("p")));
        assert_eq!(o.as_deref(), Some("p"));
        set_opt_str(&mut o, None);
        assert_eq!(o, None);
        let mut tbl = None;
        let a = Arc::new(TableSchema {
            id: crate::schema::TableId::new("s", "t"),
            relation_oid: 0,
            columns: Vec::new(),
            version: 0,
        });
        set_table(&mut tbl, Some(&a));
        assert!(tbl.as_ref().is_some_and(|t| Arc::ptr_eq(t, &a)));
        set_table(&mut tbl, None);
        assert!(tbl.is_none());
    }
}
