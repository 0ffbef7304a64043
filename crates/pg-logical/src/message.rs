//! pgoutput messages (protocol versions 1–4) and their decoder.
//!
//! [`Decoder`] decodes one message (the payload of one `XLogData`, or one
//! row of `pg_logical_slot_get_binary_changes`) into a [`PgOutputMessage`].
//! It tracks whether it is between Stream Start and Stream Stop, because
//! only there do data messages carry a transaction id. [`decode_message`] is
//! the stateless form with that flag passed explicitly.
//!
//! Strings and column data are zero-copy slices of the input [`Bytes`].

use bytes::Bytes;
use cdc_envelope::{Lsn, Str};

use crate::error::{Error, Result, Tag};
use crate::protocol::Reader;
#[cfg(test)]
use crate::tuple::TupleValue;
use crate::tuple::{self, TupleData};

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PgOutputMessage {
    /// `B`: start of a transaction.
    Begin(Begin),
    /// `C`: end of a transaction.
    Commit(Commit),
    /// `O`: the transaction came from another replication origin.
    Origin(Origin),
    /// `R`: description of a table (sent before its first change, and again
    /// after each schema change).
    Relation(Relation),
    /// `Y`: description of a non-built-in type used by a column.
    Type(TypeMessage),
    /// `I`: inserted row.
    Insert(Insert),
    /// `U`: updated row.
    Update(Update),
    /// `D`: deleted row.
    Delete(Delete),
    /// `T`: truncated tables.
    Truncate(Truncate),
    /// `M`: logical decoding message (`pg_logical_emit_message`).
    Message(LogicalMessage),
    /// `S`: start of a block of a streamed in-progress transaction (v2+).
    StreamStart(StreamStart),
    /// `E`: end of a streamed block (v2+).
    StreamStop,
    /// `c`: a streamed transaction committed (v2+).
    StreamCommit(StreamCommit),
    /// `A`: a streamed (sub)transaction aborted (v2+; abort LSN and time with
    /// parallel streaming, v4+).
    StreamAbort(StreamAbort),
    /// `b`: start of a prepared transaction (v3+).
    BeginPrepare(BeginPrepare),
    /// `P`: a transaction was prepared (v3+).
    Prepare(Prepare),
    /// `K`: a prepared transaction committed (v3+).
    CommitPrepared(CommitPrepared),
    /// `r`: a prepared transaction rolled back (v3+).
    RollbackPrepared(RollbackPrepared),
    /// `p`: a streamed transaction was prepared (v3+).
    StreamPrepare(Prepare),
}

impl PgOutputMessage {
    /// The message tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            PgOutputMessage::Begin(_) => b'B',
            PgOutputMessage::Commit(_) => b'C',
            PgOutputMessage::Origin(_) => b'O',
            PgOutputMessage::Relation(_) => b'R',
            PgOutputMessage::Type(_) => b'Y',
            PgOutputMessage::Insert(_) => b'I',
            PgOutputMessage::Update(_) => b'U',
            PgOutputMessage::Delete(_) => b'D',
            PgOutputMessage::Truncate(_) => b'T',
            PgOutputMessage::Message(_) => b'M',
            PgOutputMessage::StreamStart(_) => b'S',
            PgOutputMessage::StreamStop => b'E',
            PgOutputMessage::StreamCommit(_) => b'c',
            PgOutputMessage::StreamAbort(_) => b'A',
            PgOutputMessage::BeginPrepare(_) => b'b',
            PgOutputMessage::Prepare(_) => b'P',
            PgOutputMessage::CommitPrepared(_) => b'K',
            PgOutputMessage::RollbackPrepared(_) => b'r',
            PgOutputMessage::StreamPrepare(_) => b'p',
        }
    }
}

/// `B`: Begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    /// Commit time, µs since the Unix epoch.
    pub commit_time: i64,
    /// Transaction id.
    pub xid: u32,
}

/// `C`: Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Flags (currently unused, 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the transaction: acknowledge this one.
    pub end_lsn: Lsn,
    /// Commit time, µs since the Unix epoch.
    pub commit_time: i64,
}

/// `O`: Origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Commit LSN on the origin server.
    pub commit_lsn: Lsn,
    /// Origin name.
    pub name: Str,
}

/// Replica identity setting of a relation (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: all columns.
    Full,
    /// `i`: a chosen unique index.
    Index,
    /// Any other byte (future servers).
    Other(u8),
}

impl ReplicaIdentity {
    /// From the wire byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            b'd' => Self::Default,
            b'n' => Self::Nothing,
            b'f' => Self::Full,
            b'i' => Self::Index,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Default => b'd',
            Self::Nothing => b'n',
            Self::Full => b'f',
            Self::Index => b'i',
            Self::Other(b) => b,
        }
    }
}

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Flags: bit 0 set when the column is part of the replica identity key.
    pub flags: u8,
    /// Column name.
    pub name: Str,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
}

impl RelationColumn {
    /// True if the column is part of the key.
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// `R`: Relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Relation OID.
    pub oid: u32,
    /// Namespace (schema); pgoutput sends an empty string for `pg_catalog`.
    pub namespace: Str,
    /// Relation name.
    pub name: Str,
    /// Replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Published columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// `Y`: Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMessage {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Type OID.
    pub oid: u32,
    /// Namespace; empty for `pg_catalog`.
    pub namespace: Str,
    /// Type name.
    pub name: Str,
}

/// `I`: Insert.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Relation OID.
    pub relation_oid: u32,
    /// The new row.
    pub new: TupleData,
}

/// Which old-row image an Update or Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldTupleKind {
    /// `K`: key columns only (other columns are NULL).
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// An old-row image.
#[derive(Debug, Clone, PartialEq)]
pub struct OldTuple {
    /// Key or full row.
    pub kind: OldTupleKind,
    /// The columns.
    pub data: TupleData,
}

/// `U`: Update.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Relation OID.
    pub relation_oid: u32,
    /// Old row: present when the key changed (`K`) or with replica identity
    /// FULL (`O`).
    pub old: Option<OldTuple>,
    /// The new row; unchanged TOASTed columns are
    /// [`crate::TupleValue::UnchangedToast`].
    pub new: TupleData,
}

/// `D`: Delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Relation OID.
    pub relation_oid: u32,
    /// The old row (key or full).
    pub old: OldTuple,
}

/// `T`: Truncate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Option bits: 1 = `CASCADE`, 2 = `RESTART IDENTITY`.
    pub options: u8,
    /// The truncated relations.
    pub relation_oids: Vec<u32>,
}

impl Truncate {
    /// `TRUNCATE … CASCADE`.
    pub fn cascade(&self) -> bool {
        self.options & 1 != 0
    }

    /// `TRUNCATE … RESTART IDENTITY`.
    pub fn restart_identity(&self) -> bool {
        self.options & 2 != 0
    }
}

/// `M`: logical decoding message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Transaction id, only inside a streamed block.
    pub xid: Option<u32>,
    /// Flags: bit 0 set for a transactional message.
    pub flags: u8,
    /// LSN of the message.
    pub lsn: Lsn,
    /// Prefix given to `pg_logical_emit_message`.
    pub prefix: Str,
    /// Content (arbitrary bytes).
    pub content: Bytes,
}

impl LogicalMessage {
    /// True if the message was emitted transactionally.
    pub fn transactional(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// `S`: Stream Start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    /// The streamed transaction.
    pub xid: u32,
    /// True for the first block of this transaction.
    pub first_segment: bool,
}

/// `c`: Stream Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCommit {
    /// The streamed transaction.
    pub xid: u32,
    /// Flags (unused, 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the transaction.
    pub end_lsn: Lsn,
    /// Commit time, µs since the Unix epoch.
    pub commit_time: i64,
}

/// `A`: Stream Abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAbort {
    /// The top-level transaction.
    pub xid: u32,
    /// The aborted subtransaction (equal to `xid` for the top level).
    pub subxid: u32,
    /// Abort LSN: protocol v4 with `streaming = parallel` only.
    pub abort_lsn: Option<Lsn>,
    /// Abort time (µs since the Unix epoch): protocol v4 with
    /// `streaming = parallel` only.
    pub abort_time: Option<i64>,
}

/// `b`: Begin Prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginPrepare {
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// End LSN of the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare time, µs since the Unix epoch.
    pub prepare_time: i64,
    /// Transaction id.
    pub xid: u32,
    /// Global transaction identifier.
    pub gid: Str,
}

/// `P` Prepare and `p` Stream Prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// Flags (unused, 0).
    pub flags: u8,
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// End LSN of the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare time, µs since the Unix epoch.
    pub prepare_time: i64,
    /// Transaction id.
    pub xid: u32,
    /// Global transaction identifier.
    pub gid: Str,
}

/// `K`: Commit Prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPrepared {
    /// Flags (unused, 0).
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// End LSN of the commit.
    pub end_lsn: Lsn,
    /// Commit time, µs since the Unix epoch.
    pub commit_time: i64,
    /// Transaction id.
    pub xid: u32,
    /// Global transaction identifier.
    pub gid: Str,
}

/// `r`: Rollback Prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPrepared {
    /// Flags (unused, 0).
    pub flags: u8,
    /// End LSN of the prepared transaction.
    pub prepare_end_lsn: Lsn,
    /// End LSN of the rollback.
    pub rollback_end_lsn: Lsn,
    /// Prepare time, µs since the Unix epoch.
    pub prepare_time: i64,
    /// Rollback time, µs since the Unix epoch.
    pub rollback_time: i64,
    /// Transaction id.
    pub xid: u32,
    /// Global transaction identifier.
    pub gid: Str,
}

/// Stateful pgoutput decoder: remembers whether it is inside a streamed
/// block (between Stream Start and Stream Stop), where data messages carry
/// the transaction id.
///
/// ```
/// use bytes::Bytes;
/// use pg_logical::{Decoder, PgOutputMessage};
///
/// let mut decoder = Decoder::new();
/// // Stream Start for xid 7, first segment.
/// let msg = decoder.decode(Bytes::from_static(b"S\x00\x00\x00\x07\x01")).unwrap();
/// assert!(matches!(msg, PgOutputMessage::StreamStart(s) if s.xid == 7));
/// assert_eq!(decoder.streaming_xid(), Some(7));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    streaming_xid: Option<u32>,
}

impl Decoder {
    /// A decoder outside of any streamed block.
    pub fn new() -> Self {
        Self::default()
    }

    /// The xid of the streamed block being decoded, if inside one.
    pub fn streaming_xid(&self) -> Option<u32> {
        self.streaming_xid
    }

    /// True between Stream Start and Stream Stop.
    pub fn in_streamed_block(&self) -> bool {
        self.streaming_xid.is_some()
    }

    /// Forgets the streaming state (after a reconnect).
    pub fn reset(&mut self) {
        self.streaming_xid = None;
    }

    /// Decodes one message and updates the streaming state.
    ///
    /// A Stream Start inside a block or a Stream Stop outside one is an
    /// [`Error::UnexpectedStreamState`]; the state is unchanged on error.
    pub fn decode(&mut self, msg: Bytes) -> Result<PgOutputMessage> {
        let decoded = decode_message(msg, self.in_streamed_block())?;
        match &decoded {
            PgOutputMessage::StreamStart(s) => {
                if self.streaming_xid.is_some() {
                    return Err(Error::UnexpectedStreamState {
                        tag: Tag(b'S'),
                        detail: "Stream Start inside a streamed block",
                    });
                }
                self.streaming_xid = Some(s.xid);
            }
            PgOutputMessage::StreamStop => {
                let open = self.streaming_xid.take();
                if open.is_none() {
                    return Err(Error::UnexpectedStreamState {
                        tag: Tag(b'E'),
                        detail: "Stream Stop outside a streamed block",
                    });
                }
            }
            _ => {}
        }
        Ok(decoded)
    }
}

/// Decodes one pgoutput message without state. `in_streamed_block` says
/// whether the message sits between Stream Start and Stream Stop (then
/// Relation, Type, Insert, Update, Delete, Truncate and Message carry an xid).
pub fn decode_message(msg: Bytes, in_streamed_block: bool) -> Result<PgOutputMessage> {
    let Some(&tag) = msg.first() else {
        return Err(Error::Empty);
    };
    let mut r = Reader::new(&msg, tag, 1);
    let streamed_xid = |r: &mut Reader<'_>| -> Result<Option<u32>> {
        if in_streamed_block {
            r.u32("xid").map(Some)
        } else {
            Ok(None)
        }
    };
    let out = match tag {
        b'B' => PgOutputMessage::Begin(Begin {
            final_lsn: r.lsn("final LSN")?,
            commit_time: r.timestamp("commit timestamp")?,
            xid: r.u32("xid")?,
        }),
        b'C' => PgOutputMessage::Commit(Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_time: r.timestamp("commit timestamp")?,
        }),
        b'O' => PgOutputMessage::Origin(Origin {
            commit_lsn: r.lsn("origin commit LSN")?,
            name: r.cstr("origin name")?,
        }),
        b'R' => {
            let xid = streamed_xid(&mut r)?;
            let oid = r.u32("relation OID")?;
            let namespace = r.cstr("namespace")?;
            let name = r.cstr("relation name")?;
            let replica_identity = ReplicaIdentity::from_byte(r.u8("replica identity")?);
            let at = r.pos();
            let n = r.i16("column count")?;
            let n = usize::try_from(n)
                .map_err(|_| r.invalid(at, "column count", format!("negative: {n}")))?;
            // Each column needs at least 10 bytes: cap the allocation by the input.
            let mut columns = Vec::with_capacity(n.min(r.remaining() / 10));
            for _ in 0..n {
                columns.push(RelationColumn {
                    flags: r.u8("column flags")?,
                    name: r.cstr("column name")?,
                    type_oid: r.u32("column type OID")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            PgOutputMessage::Relation(Relation {
                xid,
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => PgOutputMessage::Type(TypeMessage {
            xid: streamed_xid(&mut r)?,
            oid: r.u32("type OID")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => {
            let xid = streamed_xid(&mut r)?;
            let relation_oid = r.u32("relation OID")?;
            let at = r.pos();
            match r.u8("tuple marker")? {
                b'N' => {}
                other => {
                    return Err(r.invalid(
                        at,
                        "tuple marker",
                        format!("expected 'N', got 0x{other:02x}"),
                    ))
                }
            }
            let new = tuple::read_tuple(&mut r, &msg)?;
            PgOutputMessage::Insert(Insert {
                xid,
                relation_oid,
                new,
            })
        }
        b'U' => {
            let xid = streamed_xid(&mut r)?;
            let relation_oid = r.u32("relation OID")?;
            let at = r.pos();
            let mut marker = r.u8("tuple marker")?;
            let mut old = None;
            if let Some(kind) = old_kind(marker) {
                old = Some(OldTuple {
                    kind,
                    data: tuple::read_tuple(&mut r, &msg)?,
                });
                let at = r.pos();
                marker = r.u8("new tuple marker")?;
                if marker != b'N' {
                    return Err(r.invalid(
                        at,
                        "new tuple marker",
                        format!("expected 'N', got 0x{marker:02x}"),
                    ));
                }
            } else if marker != b'N' {
                return Err(r.invalid(
                    at,
                    "tuple marker",
                    format!("expected 'K', 'O' or 'N', got 0x{marker:02x}"),
                ));
            }
            let new = tuple::read_tuple(&mut r, &msg)?;
            PgOutputMessage::Update(Update {
                xid,
                relation_oid,
                old,
                new,
            })
        }
        b'D' => {
            let xid = streamed_xid(&mut r)?;
            let relation_oid = r.u32("relation OID")?;
            let at = r.pos();
            let marker = r.u8("tuple marker")?;
            let Some(kind) = old_kind(marker) else {
                return Err(r.invalid(
                    at,
                    "tuple marker",
                    format!("expected 'K' or 'O', got 0x{marker:02x}"),
                ));
            };
            let data = tuple::read_tuple(&mut r, &msg)?;
            PgOutputMessage::Delete(Delete {
                xid,
                relation_oid,
                old: OldTuple { kind, data },
            })
        }
        b'T' => {
            let xid = streamed_xid(&mut r)?;
            let at = r.pos();
            let n = r.i32("relation count")?;
            let n = usize::try_from(n)
                .map_err(|_| r.invalid(at, "relation count", format!("negative: {n}")))?;
            let options = r.u8("truncate options")?;
            let mut relation_oids = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                relation_oids.push(r.u32("relation OID")?);
            }
            PgOutputMessage::Truncate(Truncate {
                xid,
                options,
                relation_oids,
            })
        }
        b'M' => {
            let xid = streamed_xid(&mut r)?;
            let flags = r.u8("flags")?;
            let lsn = r.lsn("message LSN")?;
            let prefix = r.cstr("prefix")?;
            let at = r.pos();
            let len = r.i32("content length")?;
            let len = usize::try_from(len)
                .map_err(|_| r.invalid(at, "content length", format!("negative: {len}")))?;
            let content = r.bytes(len, "content")?;
            PgOutputMessage::Message(LogicalMessage {
                xid,
                flags,
                lsn,
                prefix,
                content,
            })
        }
        b'S' => PgOutputMessage::StreamStart(StreamStart {
            xid: r.u32("xid")?,
            first_segment: r.u8("first segment flag")? == 1,
        }),
        b'E' => PgOutputMessage::StreamStop,
        b'c' => PgOutputMessage::StreamCommit(StreamCommit {
            xid: r.u32("xid")?,
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_time: r.timestamp("commit timestamp")?,
        }),
        b'A' => {
            let xid = r.u32("xid")?;
            let subxid = r.u32("subtransaction xid")?;
            // Protocol v4 with parallel streaming appends the abort LSN and
            // time; their presence is known from the length alone.
            let (abort_lsn, abort_time) = if r.remaining() == 0 {
                (None, None)
            } else {
                (
                    Some(r.lsn("abort LSN")?),
                    Some(r.timestamp("abort timestamp")?),
                )
            };
            PgOutputMessage::StreamAbort(StreamAbort {
                xid,
                subxid,
                abort_lsn,
                abort_time,
            })
        }
        b'b' => PgOutputMessage::BeginPrepare(BeginPrepare {
            prepare_lsn: r.lsn("prepare LSN")?,
            end_lsn: r.lsn("end LSN")?,
            prepare_time: r.timestamp("prepare timestamp")?,
            xid: r.u32("xid")?,
            gid: r.cstr("gid")?,
        }),
        b'P' | b'p' => {
            let p = Prepare {
                flags: r.u8("flags")?,
                prepare_lsn: r.lsn("prepare LSN")?,
                end_lsn: r.lsn("end LSN")?,
                prepare_time: r.timestamp("prepare timestamp")?,
                xid: r.u32("xid")?,
                gid: r.cstr("gid")?,
            };
            if tag == b'P' {
                PgOutputMessage::Prepare(p)
            } else {
                PgOutputMessage::StreamPrepare(p)
            }
        }
        b'K' => PgOutputMessage::CommitPrepared(CommitPrepared {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_time: r.timestamp("commit timestamp")?,
            xid: r.u32("xid")?,
            gid: r.cstr("gid")?,
        }),
        b'r' => PgOutputMessage::RollbackPrepared(RollbackPrepared {
            flags: r.u8("flags")?,
            prepare_end_lsn: r.lsn("prepare end LSN")?,
            rollback_end_lsn: r.lsn("rollback end LSN")?,
            prepare_time: r.timestamp("prepare timestamp")?,
            rollback_time: r.timestamp("rollback timestamp")?,
            xid: r.u32("xid")?,
            gid: r.cstr("gid")?,
        }),
        other => return Err(Error::UnknownTag { tag: Tag(other) }),
    };
    r.finish()?;
    Ok(out)
}

fn old_kind(marker: u8) -> Option<OldTupleKind> {
    match marker {
        b'K' => Some(OldTupleKind::Key),
        b'O' => Some(OldTupleKind::Full),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Big-endian message builder.
    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn tag(t: u8) -> Self {
            B(vec![t])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &str) -> Self {
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(0);
            self
        }
        fn raw(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
        fn done(self) -> Bytes {
            Bytes::from(self.0)
        }
    }

    fn dec(b: Bytes) -> PgOutputMessage {
        decode_message(b, false).expect("decodes")
    }

    const TS_2000: u64 = 0; // 2000-01-01 in pgoutput's epoch

    #[test]
    fn begin_commit_origin() {
        let m = dec(B::tag(b'B').u64(0x16B3748).u64(TS_2000).u32(7).done());
        assert_eq!(
            m,
            PgOutputMessage::Begin(Begin {
                final_lsn: Lsn(0x16B3748),
                commit_time: 946_684_800_000_000,
                xid: 7
            })
        );
        let m = dec(B::tag(b'C').u8(0).u64(1).u64(2).u64(1_000_000).done());
        assert_eq!(
            m,
            PgOutputMessage::Commit(Commit {
                flags: 0,
                commit_lsn: Lsn(1),
                end_lsn: Lsn(2),
                commit_time: 946_684_801_000_000
            })
        );
        let m = dec(B::tag(b'O').u64(9).s("node_a").done());
        assert!(
            matches!(m, PgOutputMessage::Origin(o) if o.name == "node_a" && o.commit_lsn == Lsn(9))
        );
    }

    #[test]
    fn relation_and_type() {
        let b = B::tag(b'R')
            .u32(16384)
            .s("")
            .s("pg_thing")
            .u8(b'f')
            .i16(1)
            .u8(1)
            .s("id")
            .u32(23)
            .i32(-1)
            .done();
        let PgOutputMessage::Relation(r) = dec(b) else {
            panic!("relation")
        };
        assert_eq!(
            (r.oid, r.namespace.as_str(), r.name.as_str()),
            (16384, "", "pg_thing")
        );
        assert_eq!(r.replica_identity, ReplicaIdentity::Full);
        assert!(r.columns[0].is_key());
        let m = dec(B::tag(b'Y').u32(70000).s("public").s("mood").done());
        assert!(
            matches!(m, PgOutputMessage::Type(t) if t.oid == 70000 && t.name == "mood" && t.xid.is_none())
        );
    }

    fn tuple(b: B) -> B {
        // (NULL, unchanged toast, text "ab", binary 0x01)
        b.i16(4)
            .u8(b'n')
            .u8(b'u')
            .u8(b't')
            .u32(2)
            .raw(b"ab")
            .u8(b'b')
            .u32(1)
            .u8(1)
    }

    #[test]
    fn insert_update_delete() {
        let PgOutputMessage::Insert(i) = dec(tuple(B::tag(b'I').u32(5).u8(b'N')).done()) else {
            panic!("insert")
        };
        assert_eq!(
            i.new.iter().collect::<Vec<_>>(),
            vec![
                TupleValue::Null,
                TupleValue::UnchangedToast,
                TupleValue::Text(Bytes::from_static(b"ab")),
                TupleValue::Binary(Bytes::from_static(&[1]))
            ]
        );
        // Update without old tuple, with K, with O.
        let PgOutputMessage::Update(u) = dec(tuple(B::tag(b'U').u32(5).u8(b'N')).done()) else {
            panic!("update")
        };
        assert!(u.old.is_none() && u.new.len() == 4);
        for (marker, kind) in [(b'K', OldTupleKind::Key), (b'O', OldTupleKind::Full)] {
            let b = tuple(tuple(B::tag(b'U').u32(5).u8(marker)).u8(b'N')).done();
            let PgOutputMessage::Update(u) = dec(b) else {
                panic!("update")
            };
            assert_eq!(u.old.map(|o| o.kind), Some(kind));
            let PgOutputMessage::Delete(d) = dec(tuple(B::tag(b'D').u32(5).u8(marker)).done())
            else {
                panic!("delete")
            };
            assert_eq!(d.old.kind, kind);
        }
        // A delete needs an old tuple.
        assert!(decode_message(tuple(B::tag(b'D').u32(5).u8(b'N')).done(), false).is_err());
    }

    #[test]
    fn truncate_and_message() {
        let PgOutputMessage::Truncate(t) = dec(B::tag(b'T').i32(2).u8(3).u32(1).u32(2).done())
        else {
            panic!("truncate")
        };
        assert!(t.cascade() && t.restart_identity() && t.relation_oids == vec![1, 2]);
        let b = B::tag(b'M')
            .u8(1)
            .u64(42)
            .s("pfx")
            .i32(3)
            .raw(b"abc")
            .done();
        let PgOutputMessage::Message(m) = dec(b) else {
            panic!("message")
        };
        assert!(m.transactional() && m.prefix == "pfx" && m.content == Bytes::from_static(b"abc"));
        assert_eq!(m.lsn, Lsn(42));
    }

    #[test]
    fn streaming_v2_and_abort_v4() {
        let mut d = Decoder::new();
        assert!(matches!(
            d.decode(B::tag(b'S').u32(9).u8(1).done()),
            Ok(PgOutputMessage::StreamStart(StreamStart {
                xid: 9,
                first_segment: true
            }))
        ));
        // Inside the block data messages carry the xid first.
        let PgOutputMessage::Insert(i) = d
            .decode(tuple(B::tag(b'I').u32(10).u32(5).u8(b'N')).done())
            .expect("insert")
        else {
            panic!("insert")
        };
        assert_eq!((i.xid, i.relation_oid), (Some(10), 5));
        let PgOutputMessage::Message(m) = d
            .decode(B::tag(b'M').u32(10).u8(0).u64(1).s("p").i32(0).done())
            .expect("message")
        else {
            panic!("message")
        };
        assert_eq!(m.xid, Some(10));
        // Nested start is an error and leaves the state alone.
        assert!(matches!(
            d.decode(B::tag(b'S').u32(9).u8(0).done()),
            Err(Error::UnexpectedStreamState { .. })
        ));
        assert_eq!(d.streaming_xid(), Some(9));
        assert_eq!(
            d.decode(B::tag(b'E').done()),
            Ok(PgOutputMessage::StreamStop)
        );
        assert!(!d.in_streamed_block());
        assert!(matches!(
            d.decode(B::tag(b'E').done()),
            Err(Error::UnexpectedStreamState { .. })
        ));
        let m = dec(B::tag(b'c').u32(9).u8(0).u64(1).u64(2).u64(0).done());
        assert!(matches!(m, PgOutputMessage::StreamCommit(c) if c.xid == 9 && c.end_lsn == Lsn(2)));
        // v2 abort, then v4 parallel abort with LSN and time.
        let m = dec(B::tag(b'A').u32(9).u32(11).done());
        assert_eq!(
            m,
            PgOutputMessage::StreamAbort(StreamAbort {
                xid: 9,
                subxid: 11,
                abort_lsn: None,
                abort_time: None
            })
        );
        let m = dec(B::tag(b'A').u32(9).u32(9).u64(77).u64(0).done());
        assert_eq!(
            m,
            PgOutputMessage::StreamAbort(StreamAbort {
                xid: 9,
                subxid: 9,
                abort_lsn: Some(Lsn(77)),
                abort_time: Some(946_684_800_000_000)
            })
        );
        // Half of the v4 fields is an error.
        assert!(decode_message(B::tag(b'A').u32(9).u32(9).u64(77).done(), false).is_err());
    }

    #[test]
    fn two_phase_v3() {
        let m = dec(B::tag(b'b').u64(1).u64(2).u64(0).u32(5).s("g1").done());
        assert!(matches!(m, PgOutputMessage::BeginPrepare(p) if p.gid == "g1" && p.xid == 5));
        let m = dec(B::tag(b'P')
            .u8(0)
            .u64(1)
            .u64(2)
            .u64(0)
            .u32(5)
            .s("g1")
            .done());
        assert!(matches!(m, PgOutputMessage::Prepare(p) if p.prepare_lsn == Lsn(1)));
        let m = dec(B::tag(b'p')
            .u8(0)
            .u64(1)
            .u64(2)
            .u64(0)
            .u32(5)
            .s("g1")
            .done());
        assert!(matches!(m, PgOutputMessage::StreamPrepare(p) if p.end_lsn == Lsn(2)));
        let m = dec(B::tag(b'K')
            .u8(0)
            .u64(3)
            .u64(4)
            .u64(0)
            .u32(5)
            .s("g1")
            .done());
        assert!(matches!(m, PgOutputMessage::CommitPrepared(p) if p.commit_lsn == Lsn(3)));
        let m = dec(B::tag(b'r')
            .u8(0)
            .u64(3)
            .u64(4)
            .u64(0)
            .u64(0)
            .u32(5)
            .s("g1")
            .done());
        assert!(matches!(m, PgOutputMessage::RollbackPrepared(p) if p.rollback_end_lsn == Lsn(4)));
    }

    #[test]
    fn errors_name_tag_and_offset() {
        assert_eq!(decode_message(Bytes::new(), false), Err(Error::Empty));
        assert_eq!(
            decode_message(Bytes::from_static(b"Z"), false),
            Err(Error::UnknownTag { tag: Tag(b'Z') })
        );
        // Truncated relation OID of an insert.
        assert_eq!(
            decode_message(Bytes::from_static(b"I\x00\x00"), false),
            Err(Error::Truncated {
                tag: Tag(b'I'),
                offset: 1,
                needed: 2,
                what: "relation OID"
            })
        );
        // Trailing bytes after a Stream Stop.
        assert_eq!(
            decode_message(Bytes::from_static(b"E\x00"), false),
            Err(Error::TrailingBytes {
                tag: Tag(b'E'),
                offset: 1,
                extra: 1
            })
        );
        // Invalid UTF-8 in an origin name.
        let e = decode_message(B::tag(b'O').u64(0).raw(b"\xff\x00").done(), false).unwrap_err();
        assert_eq!(
            e,
            Error::InvalidUtf8 {
                tag: Tag(b'O'),
                offset: 9,
                what: "origin name"
            }
        );
        // Unterminated string.
        assert!(matches!(
            decode_message(B::tag(b'O').u64(0).raw(b"abc").done(), false),
            Err(Error::Truncated { offset: 9, .. })
        ));
        // Bad tuple kind, negative and overlong lengths.
        let e =
            decode_message(B::tag(b'I').u32(1).u8(b'N').i16(1).u8(b'x').done(), false).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidField {
                    offset: 8,
                    what: "tuple column kind",
                    ..
                }
            ),
            "{e}"
        );
        let e = decode_message(
            B::tag(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-1).done(),
            false,
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidField { offset: 9, .. }), "{e}");
        let e = decode_message(
            B::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(1)
                .u8(b't')
                .i32(5)
                .raw(b"ab")
                .done(),
            false,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    offset: 13,
                    needed: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = decode_message(B::tag(b'I').u32(1).u8(b'X').done(), false).unwrap_err();
        assert!(matches!(e, Error::InvalidField { offset: 5, .. }), "{e}");
        // A streamed-block message decoded as if outside: the xid shifts everything.
        assert!(decode_message(tuple(B::tag(b'I').u32(10).u32(5).u8(b'N')).done(), false).is_err());
    }
}
