//! The change event: Debezium's envelope as a Rust value.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;

use crate::schema::TableSchema;
use crate::value::{Str, Value};

/// A PostgreSQL log sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid / zero LSN.
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    /// PostgreSQL's `XXX/XXX` notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for Lsn {
    type Err = String;
    /// Parses `XXX/XXX`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid LSN {s:?}: expected X/X"))?;
        let hi = u32::from_str_radix(hi, 16).map_err(|e| format!("invalid LSN {s:?}: {e}"))?;
        let lo = u32::from_str_radix(lo, 16).map_err(|e| format!("invalid LSN {s:?}: {e}"))?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// Where an event sits in the source's commit order: the LSN of its
/// transaction's commit and its index within that transaction. Totally
/// ordered; resuming after `p` means skipping every event `<= p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    /// LSN of the commit record of the event's transaction (pgoutput
    /// `Begin.final_lsn`, known before the first change). Snapshot rows use
    /// the slot's consistent point − 1, so they order strictly before every
    /// streamed change, even one committed exactly at the consistent point.
    pub commit_lsn: Lsn,
    /// 0-based index of the event within its transaction.
    pub seq: u64,
}

/// Debezium's `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: insert.
    Create,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `r`: row read by a snapshot.
    Read,
    /// `t`: truncate.
    Truncate,
    /// `m`: logical decoding message.
    Message,
}

impl Op {
    /// The one-letter code used on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }

    /// Parses the one-letter code.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }
}

/// Debezium's `source.snapshot` string enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SnapshotMarker {
    /// `"true"`: a snapshot row in the middle.
    True,
    /// `"first"`: the first row of the snapshot.
    First,
    /// `"first_in_data_collection"`.
    FirstInDataCollection,
    /// `"last_in_data_collection"`.
    LastInDataCollection,
    /// `"last"`: the last row of the snapshot.
    Last,
    /// `"false"`: a streamed change.
    #[default]
    False,
    /// `"incremental"`: a row of an incremental snapshot.
    Incremental,
}

impl SnapshotMarker {
    /// The string Debezium writes.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::FirstInDataCollection => "first_in_data_collection",
            SnapshotMarker::LastInDataCollection => "last_in_data_collection",
            SnapshotMarker::Last => "last",
            SnapshotMarker::False => "false",
            SnapshotMarker::Incremental => "incremental",
        }
    }

    /// Parses the Debezium string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "true" => SnapshotMarker::True,
            "first" => SnapshotMarker::First,
            "first_in_data_collection" => SnapshotMarker::FirstInDataCollection,
            "last_in_data_collection" => SnapshotMarker::LastInDataCollection,
            "last" => SnapshotMarker::Last,
            "false" => SnapshotMarker::False,
            "incremental" => SnapshotMarker::Incremental,
            _ => return None,
        })
    }
}

/// The fields of Debezium's PostgreSQL `source` block the decoders read,
/// one role per field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceField {
    Version,
    Connector,
    Name,
    TsMs,
    Snapshot,
    Db,
    Sequence,
    TsUs,
    Schema,
    Table,
    TxId,
    Lsn,
    Xmin,
    Origin,
    OriginLsn,
    /// `ts_ns` (derived from `ts_us`) and fields of other connectors.
    Other,
}

/// `source` field names in the order Debezium writes them (decoders check
/// the expected next name first, so a name is usually compared once).
pub(crate) const SOURCE_FIELDS: [(&str, SourceField); 16] = [
    ("version", SourceField::Version),
    ("connector", SourceField::Connector),
    ("name", SourceField::Name),
    ("ts_ms", SourceField::TsMs),
    ("snapshot", SourceField::Snapshot),
    ("db", SourceField::Db),
    ("sequence", SourceField::Sequence),
    ("ts_us", SourceField::TsUs),
    ("ts_ns", SourceField::Other),
    ("schema", SourceField::Schema),
    ("table", SourceField::Table),
    ("txId", SourceField::TxId),
    ("lsn", SourceField::Lsn),
    ("xmin", SourceField::Xmin),
    ("origin", SourceField::Origin),
    ("origin_lsn", SourceField::OriginLsn),
];

impl SourceField {
    /// The role of the field called `name`.
    pub(crate) fn of(name: &[u8]) -> Self {
        SOURCE_FIELDS
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map_or(Self::Other, |(_, f)| *f)
    }
}

/// Debezium's PostgreSQL `source` block (`io.debezium.connector.postgresql.Source`).
///
/// Text fields are [`Str`]s: cheap to clone and, when decoded, either shared
/// with a decoder's cache (the values that repeat from event to event:
/// `version`, `connector`, `name`, `db`, `schema`, `table`) or zero-copy
/// slices of the record's bytes. Build them from `&str` / `String` with
/// `.into()`, or [`Str::from_static`] for literals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceInfo {
    /// Connector version string.
    pub version: Str,
    /// Always `postgresql` for this source.
    pub connector: Str,
    /// Logical server name (`topic.prefix`).
    pub name: Str,
    /// Commit time of the transaction (snapshot: read time), microseconds since the epoch.
    pub ts_us: i64,
    /// Snapshot marker.
    pub snapshot: SnapshotMarker,
    /// Database name.
    pub db: Str,
    /// `sequence`: `["<last committed lsn>","<current lsn>"]` as a JSON string.
    pub sequence: Option<Str>,
    /// Schema name.
    pub schema: Str,
    /// Table name.
    pub table: Str,
    /// Transaction id.
    pub tx_id: Option<i64>,
    /// LSN of the change.
    pub lsn: Option<i64>,
    /// `xmin` (only with `xmin.fetch.interval.ms`).
    pub xmin: Option<i64>,
    /// Replication origin name, if the change came from one.
    pub origin: Option<Str>,
    /// Replication origin LSN.
    pub origin_lsn: Option<i64>,
}

/// Debezium's `transaction` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionBlock {
    /// `"<txId>:<lsn>"`.
    pub id: String,
    /// Position of the event among all events of the transaction (1-based).
    pub total_order: i64,
    /// Position among the transaction's events for the same table (1-based).
    pub data_collection_order: i64,
}

/// Payload of a logical decoding message (`pg_logical_emit_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Message prefix.
    pub prefix: String,
    /// Message content (arbitrary bytes).
    pub content: Bytes,
    /// True when the message was emitted inside a transaction.
    pub transactional: bool,
}

/// A row image: one [`Value`] per column of [`ChangeEvent::table`], in
/// table order.
pub type Row = Vec<Value>;

/// One change, ready to be converted to Debezium's wire formats.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// What happened.
    pub op: Op,
    /// The table's schema when the change was made (`None` for messages and
    /// events not tied to one table).
    pub table: Option<Arc<TableSchema>>,
    /// Row before the change (update/delete), as much of it as the replica
    /// identity provides; key-only columns are filled and others are `Null`
    /// under `REPLICA IDENTITY DEFAULT`.
    pub before: Option<Row>,
    /// Row after the change (create/update/read).
    pub after: Option<Row>,
    /// The `source` block.
    pub source: SourceInfo,
    /// When the event was processed, nanoseconds since the epoch (`ts_ms`,
    /// `ts_us`, `ts_ns` derive from it).
    pub ts_ns: i64,
    /// Transaction metadata, when `provide.transaction.metadata` is on.
    pub transaction: Option<TransactionBlock>,
    /// Logical message for `op = m`.
    pub message: Option<LogicalMessage>,
    /// Source position (not part of the Debezium payload).
    pub position: Position,
    /// Set on the delete and the create an UPDATE of the primary key turns
    /// into: the other event's key (not part of the payload; Debezium puts
    /// it in a Kafka header, see [`crate::headers::key_change_header`]).
    pub key_change: Option<KeyChange>,
}

/// The other half of a primary-key change. An UPDATE that changes a row's
/// key is emitted as a delete of the old key followed by a create of the new
/// key; each carries the other's key, as Debezium's
/// `RelationalChangeRecordEmitter` does with the headers
/// `__debezium.newkey` / `__debezium.oldkey`.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// On the delete of the old key: the row's new key (header
    /// `__debezium.newkey`), key columns in key order.
    NewKey(Row),
    /// On the create of the new key: the row's old key (header
    /// `__debezium.oldkey`), key columns in key order.
    OldKey(Row),
}

impl ChangeEvent {
    /// The key values (key columns of `after`, or of `before` for deletes),
    /// `None` if the table has no key or the event has no row.
    pub fn key(&self) -> Option<Row> {
        let table = self.table.as_ref()?;
        if !table.has_key() {
            return None;
        }
        let row = self.after.as_ref().or(self.before.as_ref())?;
        Some(
            table
                .key_indices()
                .filter_map(|i| row.get(i).cloned())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        let lsn: Lsn = "16/B374D848".parse().expect("valid");
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("nope".parse::<Lsn>().is_err());
    }

    #[test]
    fn positions_order_by_commit_then_seq() {
        let a = Position {
            commit_lsn: Lsn(10),
            seq: 5,
        };
        let b = Position {
            commit_lsn: Lsn(11),
            seq: 0,
        };
        assert!(a < b);
        assert!(
            Position {
                commit_lsn: Lsn(10),
                seq: 6
            } > a
        );
    }

    #[test]
    fn op_codes_round_trip() {
        for op in [
            Op::Create,
            Op::Update,
            Op::Delete,
            Op::Read,
            Op::Truncate,
            Op::Message,
        ] {
            assert_eq!(Op::from_code(op.code()), Some(op));
        }
    }
}
