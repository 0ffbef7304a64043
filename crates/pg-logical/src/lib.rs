//! # pg-logical
//!
//! A pure, synchronous decoder for PostgreSQL's `pgoutput` logical
//! replication protocol (versions 1–4), and the typing of its column data
//! into [`cdc_envelope::Value`]s. The async replication source (slots,
//! snapshots, streaming) is built on top of it and feeds it the payload of
//! each `XLogData` message.
//!
//! ```text
//!  XLogData payload (Bytes)
//!        │
//!        ▼
//!  Decoder::decode ──▶ PgOutputMessage ──┬─ Relation / Type ──▶ RelationCache::apply
//!  (tracks Stream       (zero-copy:       │                        (+ TypeRegistry from the catalog)
//!   Start/Stop)          Str, TupleData)  │                               │
//!                                         └─ Insert / Update / Delete ──▶ RelationCache::row_change
//!                                                                          │
//!                                                                          ▼
//!                                          RowChange { schema: Arc<TableSchema>, before, after: Vec<Value> }
//! ```
//!
//! * [`message`]: the messages and [`Decoder`] / [`decode_message`].
//! * [`tuple`](mod@tuple): [`TupleData`], a validated zero-copy view of a row's columns.
//! * [`relation`]: [`RelationCache`], [`TypeRegistry`] (catalog hook), [`RowChange`].
//! * [`pgtype`]: type OIDs and [`ValueDecoder`] (text and binary formats).
//! * [`error`]: [`Error`], which names the message tag and byte offset.
//!
//! Nothing here panics on malformed input: every read is checked.
//!
//! Feeding it from the replication stream: pass each `XLogData` payload to
//! [`Decoder::decode`] (one decoder per replication connection; call
//! [`Decoder::reset`] after reconnecting), hand Relation and Type messages to
//! [`RelationCache::apply`], and type Insert/Update/Delete with
//! [`RelationCache::row_change`]. pgwire-replication 0.5 decodes Begin, Commit
//! and logical Message itself; its events carry the same fields as
//! [`Begin`], [`Commit`] and [`LogicalMessage`]. Fill the cache's
//! [`TypeRegistry`] from the catalog (enum labels, domains, arrays, NOT NULL,
//! defaults, primary keys) and call [`RelationCache::refresh`] for relations
//! already cached. Decoding pins nothing: the replication session must use
//! `DateStyle=ISO`, `IntervalStyle=postgres`, `lc_monetary=C` and a UTF-8
//! client encoding for text values to parse (any `TimeZone`: offsets are
//! applied); values in other formats are typed errors, never misread.
//!
//! ```
//! use bytes::Bytes;
//! use cdc_envelope::Value;
//! use pg_logical::{ChangeKind, Decoder, RelationCache};
//!
//! // A Relation message for public.t (OID 16384): id int4 (key), name text.
//! let mut rel = b"R\x00\x00\x40\x00public\x00t\x00d\x00\x02".to_vec();
//! rel.extend_from_slice(b"\x01id\x00\x00\x00\x00\x17\xff\xff\xff\xff");
//! rel.extend_from_slice(b"\x00name\x00\x00\x00\x00\x19\xff\xff\xff\xff");
//! // An Insert into it: (42, NULL).
//! let ins = b"I\x00\x00\x40\x00N\x00\x02t\x00\x00\x00\x0242n".to_vec();
//!
//! let mut decoder = Decoder::new();
//! let mut cache = RelationCache::new();
//! cache.apply(&decoder.decode(Bytes::from(rel))?);
//! let change = cache.row_change(&decoder.decode(Bytes::from(ins))?)?.expect("a row change");
//! assert_eq!(change.kind, ChangeKind::Insert);
//! assert_eq!(change.schema.id.to_string(), "public.t");
//! assert_eq!(change.after, Some(vec![Value::Int32(42), Value::Null]));
//! # Ok::<(), pg_logical::Error>(())
//! ```

mod array;
mod binary;
mod datetime;
pub mod error;
pub mod message;
pub mod pgtype;
mod protocol;
pub mod relation;
pub mod source;
pub mod tuple;

pub use error::{Error, Result, Tag};
pub use message::{
    decode_message, Begin, BeginPrepare, Commit, CommitPrepared, Decoder, Delete, Insert,
    LogicalMessage, OldTuple, OldTupleKind, Origin, PgOutputMessage, Prepare, Relation,
    RelationColumn, ReplicaIdentity, RollbackPrepared, StreamAbort, StreamCommit, StreamStart,
    Truncate, TypeMessage, Update,
};
pub use pgtype::{builtin_pg_type, builtin_type_name, builtin_type_oid, ValueDecoder, ValueError};
pub use protocol::{pg_to_unix_micros, unix_to_pg_micros, PG_EPOCH_OFFSET_MICROS};
pub use relation::{
    CachedRelation, ChangeKind, ColumnInfo, RelationCache, RowChange, TableInfo, TypeInfo,
    TypeInfoKind, TypeRegistry,
};
pub use tuple::{TupleData, TupleValue};
