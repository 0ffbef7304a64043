//! # cdc-envelope
//!
//! The common language of pg-cdc: the change-event model ([`ChangeEvent`],
//! [`Value`], [`TableSchema`]) and the converters between it and Debezium's
//! wire formats — Kafka Connect JSON (with or without schemas) and Avro with
//! the Confluent wire format — byte-compatible with what Debezium 3.x and
//! Kafka Connect's `JsonConverter` / Confluent's `AvroConverter` produce. The
//! source (`pg-logical`) produces events, the sink (`jdbc-sink`) consumes
//! them, `kafka-io` moves their bytes. This crate does no I/O, except the
//! schema-registry client behind the `registry` feature.
//!
//! ```text
//!                      Options (decimal/time/binary/interval/hstore modes, topic.prefix, ...)
//!                                              │
//! pg-logical ──ChangeEvent──▶ JsonEncoder / AvroEncoder ──key, value bytes──▶ Kafka
//!   (TableSchema +               │  TablePlan per (table, version):              │
//!    rows of Value)              │  Connect schemas, codecs, cached schema text  │
//!                                ▼                                               ▼
//! jdbc-sink ◀──ChangeEvent + Arc<TableSchema>── JsonDecoder / AvroDecoder ◀──bytes
//!               (schema reconstructed from the Connect / Avro schema, cached)
//! ```
//!
//! Modules:
//! * [`value`], [`schema`], [`event`]: the model;
//! * [`options`]: Debezium / JsonConverter options, with Debezium's names;
//! * [`connect`]: Connect schema model, PostgreSQL → Connect type mapping,
//!   per-column codecs;
//! * [`envelope`]: key / value / envelope schemas, `source` block, topic
//!   names, tombstones;
//! * [`json`]: Kafka Connect JSON encoder and decoder (decoding from
//!   [`bytes::Bytes`] with [`JsonDecoder::decode_bytes`] hands out text
//!   as zero-copy slices of the record);
//! * [`avro`]: Avro schemas (AvroData rules), datums, Confluent framing
//!   ([`AvroDecoder::decode_value_shared`]: zero-copy, plan found by the
//!   schema's `Arc`);
//! * [`headers`]: Kafka headers Debezium adds (primary-key change);
//! * [`default_value`]: column defaults as Debezium derives them;
//! * [`temporal`], [`base64`]: text forms;
//! * [`error`]: the crate's [`Error`].
//! * `registry` (feature `registry`, the crate's only I/O): a Confluent
//!   schema-registry client and the registry-backed Avro converter.
//!
//! ```
//! use std::sync::Arc;
//! use cdc_envelope::*;
//!
//! // What pg-logical builds from a Relation message and a tuple.
//! let table = Arc::new(TableSchema {
//!     id: TableId::new("public", "employees"),
//!     relation_oid: 16385,
//!     columns: vec![
//!         Column { is_key: true, optional: false, ..Column::new("emp_id", PgType::base(23, "int4")) },
//!         Column::new("salary", PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4)),
//!     ],
//!     version: 1,
//! });
//! let event = ChangeEvent {
//!     op: Op::Create,
//!     table: Some(Arc::clone(&table)),
//!     before: None,
//!     after: Some(vec![
//!         Value::Int32(1),
//!         Value::Numeric(Numeric::Finite(Decimal::parse("75000.00").expect("decimal"))),
//!     ]),
//!     source: SourceInfo { name: "pgsource".into(), connector: "postgresql".into(), ..Default::default() },
//!     ts_ns: 1_700_000_000_000_000_000,
//!     transaction: None,
//!     message: None,
//!     position: Position::default(),
//!     key_change: None,
//! };
//!
//! // Connector properties, Debezium names (here `decimal.handling.mode=precise`,
//! // the default: with `string` the sink would get the salary back as text
//! // unless `column.propagate.source.type` carries the source type).
//! let options = Options::from_properties([("topic.prefix", "pgsource")])?;
//! assert_eq!(topic_name(&event, &options).as_deref(), Some("pgsource.public.employees"));
//! let record = JsonEncoder::new(options.clone()).encode(&event)?;
//! let key = record.key.expect("the table has a primary key");
//! assert!(key.ends_with(br#""payload":{"emp_id":1}}"#));
//!
//! // The sink side: bytes back to an event and a reconstructed schema.
//! let decoded = JsonDecoder::new(options).decode(Some(&key), record.value.as_deref())?;
//! let back = decoded.event.expect("not a tombstone");
//! assert_eq!(back.after, event.after);
//! assert_eq!(back.table.expect("table").columns[1].pg_type.name, "numeric");
//! # Ok::<(), cdc_envelope::Error>(())
//! ```

pub mod avro;
pub mod base64;
pub mod connect;
pub mod default_value;
pub mod envelope;
pub mod error;
pub mod event;
pub mod headers;
pub mod ident;
mod intern;
pub mod json;
pub mod metadata;
pub mod options;
mod recycle;
#[cfg(feature = "registry")]
pub mod registry;
pub mod schema;
pub mod secret;
pub mod temporal;
pub mod topic;
pub mod value;

pub use avro::{AvroDecoder, AvroEncoder};
pub use envelope::{tombstone_follows, topic_name, TablePlan};
pub use error::{Error, Result};
pub use event::{
    ChangeEvent, KeyChange, LogicalMessage, Lsn, Op, Position, Row, SnapshotMarker, SourceInfo,
    TransactionBlock,
};
pub use headers::key_change_header;
pub use json::{DecodedRecord, EncodedRecord, JsonDecoder, JsonEncoder};
pub use options::Options;
pub use schema::{Column, PgType, TableId, TableSchema, TypeKind};
pub use secret::Secret;
pub use topic::TopicPartition;
pub use value::{Array, ArrayDim, Bits, Date, Decimal, Interval, Numeric, Str, Timestamp, Value};
