//! The error type of pg-logical.

use std::fmt;

/// Result alias for pg-logical.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The pgoutput message a decode error happened in, printed as its tag byte
/// (`'I'`, `'U'`, …) or `?` when the message was empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub u8);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// Everything that can go wrong in pg-logical.
///
/// Decode errors name the message tag and the byte offset inside the message
/// where decoding failed, so a bad record can be reported precisely (and
/// routed to a dead-letter queue) instead of stopping the pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message ended before a field could be read.
    #[error("message {tag}: truncated at byte {offset}: need {needed} more byte(s) for {what}")]
    Truncated {
        /// Message tag.
        tag: Tag,
        /// Offset of the field that could not be read.
        offset: usize,
        /// Bytes missing.
        needed: usize,
        /// The field being read.
        what: &'static str,
    },
    /// Bytes left over after the last field of a message.
    #[error("message {tag}: {extra} trailing byte(s) at byte {offset}")]
    TrailingBytes {
        /// Message tag.
        tag: Tag,
        /// Offset of the first unread byte.
        offset: usize,
        /// Number of unread bytes.
        extra: usize,
    },
    /// The message tag is not a pgoutput message.
    #[error("unknown pgoutput message tag {tag} at byte 0")]
    UnknownTag {
        /// The tag byte.
        tag: Tag,
    },
    /// The message is empty.
    #[error("empty pgoutput message")]
    Empty,
    /// A field had a value outside its domain (bad tuple kind, bad
    /// submessage byte, negative length…).
    #[error("message {tag}: invalid {what} at byte {offset}: {detail}")]
    InvalidField {
        /// Message tag.
        tag: Tag,
        /// Offset of the field.
        offset: usize,
        /// The field.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A string field was not valid UTF-8.
    #[error("message {tag}: invalid UTF-8 in {what} at byte {offset}")]
    InvalidUtf8 {
        /// Message tag.
        tag: Tag,
        /// Offset of the string.
        offset: usize,
        /// The field.
        what: &'static str,
    },
    /// A message that only exists inside a streamed transaction (or outside
    /// of one) arrived in the wrong state, e.g. a Stream Stop without Start.
    #[error("message {tag}: unexpected {detail}")]
    UnexpectedStreamState {
        /// Message tag.
        tag: Tag,
        /// What was unexpected.
        detail: &'static str,
    },
    /// A tuple referenced a relation no Relation message described.
    #[error("tuple for unknown relation OID {relation_oid}")]
    UnknownRelation {
        /// The relation OID.
        relation_oid: u32,
    },
    /// A tuple had a different number of columns than its relation.
    #[error("relation {relation}: tuple has {got} column(s), relation has {expected}")]
    ColumnCountMismatch {
        /// Qualified relation name.
        relation: String,
        /// Columns in the Relation message.
        expected: usize,
        /// Columns in the tuple.
        got: usize,
    },
    /// A column value could not be converted to its type.
    #[error("column {column} ({type_name}): cannot parse {format} value: {detail}")]
    InvalidValue {
        /// Column name (or `[]` for an array element).
        column: String,
        /// Type name.
        type_name: String,
        /// `text` or `binary`.
        format: &'static str,
        /// Why.
        detail: String,
    },
    /// A binary-format (`b`) value of a type this crate cannot decode in
    /// binary form.
    #[error("column {column}: binary format not supported for type {type_name} (OID {type_oid})")]
    UnsupportedBinaryType {
        /// Column name.
        column: String,
        /// Type name.
        type_name: String,
        /// Type OID.
        type_oid: u32,
    },

    // ---- replication source (src/source/) ----
    /// A connector property has a value outside its domain.
    #[error("invalid value {value:?} for property `{key}`: expected {expected}")]
    InvalidConfig {
        /// Property name, e.g. `snapshot.mode`.
        key: String,
        /// The rejected value (never the password: that one is `<redacted>`).
        value: String,
        /// The allowed values or the expected shape.
        expected: String,
    },
    /// A required connector property is missing.
    #[error("missing required property `{key}`")]
    MissingConfig {
        /// Property name.
        key: String,
    },
    /// The source server is not configured for logical decoding.
    #[error("wal_level is `{actual}` on the source server, logical replication needs `logical`: set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")]
    WalLevelNotLogical {
        /// The current `wal_level`.
        actual: String,
    },
    /// The connector's database user may not open replication connections.
    #[error("user `{user}` has neither the REPLICATION attribute nor superuser: run `ALTER ROLE \"{user}\" WITH REPLICATION` as a superuser")]
    MissingReplicationPrivilege {
        /// The database user.
        user: String,
    },
    /// Another session is streaming from the replication slot.
    #[error("replication slot `{slot}` is active for PID {pid} ({holder}): another consumer is using it; stop that consumer, give this connector its own `slot.name`, or terminate the other walsender with SELECT pg_terminate_backend({pid})")]
    SlotInUse {
        /// Slot name.
        slot: String,
        /// PID of the walsender holding it (0 when the server did not say).
        pid: i32,
        /// Who holds it (application name, client address), as far as known.
        holder: String,
    },
    /// The replication slot can no longer stream: PostgreSQL removed WAL it needed.
    #[error("replication slot `{slot}` is invalidated (wal_status = {wal_status}): the WAL it needed was removed (max_slot_wal_keep_size?) and changes since its position are lost; drop the slot and restart with snapshot.mode=initial or when_needed to re-snapshot")]
    SlotInvalidated {
        /// Slot name.
        slot: String,
        /// `pg_replication_slots.wal_status`.
        wal_status: String,
    },
    /// The replication slot exists but cannot be used by this connector.
    #[error("replication slot `{slot}` cannot be used: {detail}")]
    SlotUnusable {
        /// Slot name.
        slot: String,
        /// Why (other plugin, other database, physical slot…).
        detail: String,
    },
    /// Captured tables whose UPDATEs and DELETEs PostgreSQL could not publish.
    #[error("table(s) {} have no primary key and no usable replica identity: PostgreSQL would reject their UPDATE/DELETE once published; run ALTER TABLE … REPLICA IDENTITY FULL (or add a primary key, or REPLICA IDENTITY USING INDEX on a unique NOT NULL index), or exclude them with table.exclude.list", tables.join(", "))]
    NoReplicaIdentity {
        /// Qualified table names.
        tables: Vec<String>,
    },
    /// The publication could not be used, created or altered.
    #[error("publication `{publication}`: {detail}")]
    Publication {
        /// Publication name.
        publication: String,
        /// What went wrong and what to do.
        detail: String,
    },
    /// An SQL statement on the source failed.
    #[error("{context}: {detail}{}", sqlstate.as_deref().map(|s| format!(" (SQLSTATE {s})")).unwrap_or_default())]
    Sql {
        /// What the source was doing.
        context: String,
        /// SQLSTATE, when the server sent one.
        sqlstate: Option<String>,
        /// Server message.
        detail: String,
        /// True for connection-level failures worth retrying.
        retriable: bool,
    },
    /// The TLS handshake with the source failed or TLS is misconfigured
    /// (`database.sslmode`, `database.sslrootcert`, certificates).
    #[error("TLS to the source failed ({connection} connection): {detail}; {hint}")]
    Tls {
        /// `SQL` or `replication`.
        connection: &'static str,
        /// What the TLS layer said.
        detail: String,
        /// What to do about it.
        hint: String,
    },
    /// The source rejected the connector's credentials. Never contains the
    /// password.
    #[error("authentication to the source failed ({connection} connection): {detail}; check database.user and database.password (and the server's pg_hba.conf)")]
    Authentication {
        /// `SQL` or `replication`.
        connection: &'static str,
        /// The server's message (it names the user, never the password).
        detail: String,
    },
    /// The replication stream failed.
    #[error("replication stream: {detail}")]
    Replication {
        /// What went wrong.
        detail: String,
        /// True for failures worth reconnecting for (I/O, server restart).
        retriable: bool,
    },
    /// The caller-supplied offset store failed, or held unreadable data.
    #[error("offset store: {detail}")]
    OffsetStore {
        /// What went wrong.
        detail: String,
    },
    /// The source was stopped or its consumer went away.
    #[error("replication source stopped: {detail}")]
    Stopped {
        /// Why.
        detail: String,
    },
}

impl Error {
    /// True if retrying the same operation may succeed. Decoding is
    /// deterministic, so no decode error is retriable; the replication source
    /// built on top adds its own retriable I/O errors.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Sql { retriable, .. } | Error::Replication { retriable, .. } => *retriable,
            Error::SlotInUse { .. } => true,
            _ => false,
        }
    }

    /// The tag of the message the error happened in, when it is a decode error.
    pub fn tag(&self) -> Option<u8> {
        match self {
            Error::Truncated { tag, .. }
            | Error::TrailingBytes { tag, .. }
            | Error::UnknownTag { tag }
            | Error::InvalidField { tag, .. }
            | Error::InvalidUtf8 { tag, .. }
            | Error::UnexpectedStreamState { tag, .. } => Some(tag.0),
            _ => None,
        }
    }

    /// The byte offset inside the message, when it is a decode error.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Error::Truncated { offset, .. }
            | Error::TrailingBytes { offset, .. }
            | Error::InvalidField { offset, .. }
            | Error::InvalidUtf8 { offset, .. } => Some(*offset),
            Error::UnknownTag { .. } => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_names_tag_and_offset() {
        let e = Error::Truncated {
            tag: Tag(b'I'),
            offset: 5,
            needed: 4,
            what: "relation OID",
        };
        assert_eq!(
            e.to_string(),
            "message 'I': truncated at byte 5: need 4 more byte(s) for relation OID"
        );
        assert_eq!(e.tag(), Some(b'I'));
        assert_eq!(e.offset(), Some(5));
        assert!(!e.is_retriable());
        assert_eq!(Tag(0).to_string(), "0x00");
    }
}
