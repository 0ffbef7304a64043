//! Debezium's non-row records: heartbeats and transaction metadata.
//!
//! - **Heartbeats** go to `<topic.heartbeat.prefix>.<topic.prefix>`
//!   (`__debezium-heartbeat.<prefix>` by default) with key
//!   `io.debezium.connector.common.ServerNameKey {serverName}` and value
//!   `io.debezium.connector.common.Heartbeat {ts_ms}`.
//! - **Transaction metadata** (`provide.transaction.metadata=true`) goes to
//!   `<topic.prefix>.<topic.transaction>` (`<prefix>.transaction`) with key
//!   `io.debezium.connector.common.TransactionMetadataKey {id}` and value
//!   `io.debezium.connector.common.TransactionMetadataValue {status, id,
//!   event_count, data_collections, ts_ms}`; `event_count` and
//!   `data_collections` are null on `BEGIN`.
//!
//! Both are written as Kafka Connect's JsonConverter writes them, with or
//! without the schema envelope per `key/value.converter.schemas.enable`.
//!
//! ```
//! use cdc_envelope::metadata::{heartbeat_record, heartbeat_topic};
//! use cdc_envelope::Options;
//!
//! let options = Options::from_properties([("topic.prefix", "pgsource")])?;
//! assert_eq!(heartbeat_topic(&options, None), "__debezium-heartbeat.pgsource");
//! let record = heartbeat_record(&options, 1_700_000_000_000);
//! let value = record.value.expect("heartbeats have a value");
//! assert!(value.ends_with(br#""payload":{"ts_ms":1700000000000}}"#));
//! # Ok::<(), cdc_envelope::Error>(())
//! ```

use std::sync::OnceLock;

use crate::connect::{ConnectSchema, ConnectType, Datum, Field};
use crate::json::{write_datum, write_schema, EncodedRecord};
use crate::options::Options;

/// Default of `topic.heartbeat.prefix`.
pub const DEFAULT_HEARTBEAT_PREFIX: &str = "__debezium-heartbeat";
/// Default of `topic.transaction`.
pub const DEFAULT_TRANSACTION_TOPIC: &str = "transaction";

/// The heartbeat topic: `<heartbeat prefix>.<topic.prefix>`; `prefix` is
/// `topic.heartbeat.prefix` (default [`DEFAULT_HEARTBEAT_PREFIX`]).
pub fn heartbeat_topic(options: &Options, prefix: Option<&str>) -> String {
    format!(
        "{}.{}",
        prefix.unwrap_or(DEFAULT_HEARTBEAT_PREFIX),
        options.topic_prefix
    )
}

/// The transaction metadata topic: `<topic.prefix>.<topic.transaction>`.
pub fn transaction_topic(options: &Options, name: Option<&str>) -> String {
    format!(
        "{}.{}",
        options.topic_prefix,
        name.unwrap_or(DEFAULT_TRANSACTION_TOPIC)
    )
}

fn string() -> ConnectSchema {
    ConnectSchema::new(ConnectType::String)
}

fn int64() -> ConnectSchema {
    ConnectSchema::new(ConnectType::Int64)
}

struct Schemas {
    heartbeat_key: ConnectSchema,
    heartbeat_value: ConnectSchema,
    txn_key: ConnectSchema,
    txn_value: ConnectSchema,
}

fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let collection = ConnectSchema::structure(
            "event.collection",
            vec![
                Field::new("data_collection", string()),
                Field::new("event_count", int64()),
            ],
        )
        .named("event.collection", Some(1))
        .optional(true);
        Schemas {
            heartbeat_key: ConnectSchema::structure(
                "io.debezium.connector.common.ServerNameKey",
                vec![Field::new("serverName", string())],
            )
            .named("io.debezium.connector.common.ServerNameKey", Some(1)),
            heartbeat_value: ConnectSchema::structure(
                "io.debezium.connector.common.Heartbeat",
                vec![Field::new("ts_ms", int64())],
            )
            .named("io.debezium.connector.common.Heartbeat", Some(1)),
            txn_key: ConnectSchema::structure(
                "io.debezium.connector.common.TransactionMetadataKey",
                vec![Field::new("id", string())],
            )
            .named(
                "io.debezium.connector.common.TransactionMetadataKey",
                Some(1),
            ),
            txn_value: ConnectSchema::structure(
                "io.debezium.connector.common.TransactionMetadataValue",
                vec![
                    Field::new("status", string()),
                    Field::new("id", string()),
                    Field::new("event_count", int64().optional(true)),
                    Field::new(
                        "data_collections",
                        ConnectSchema::array(collection).optional(true),
                    ),
                    Field::new("ts_ms", int64()),
                ],
            )
            .named(
                "io.debezium.connector.common.TransactionMetadataValue",
                Some(1),
            ),
        }
    })
}

/// `{"schema":…,"payload":…}` or the bare payload.
fn envelope(with_schema: bool, schema: &ConnectSchema, datum: &Datum) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    if with_schema {
        out.extend_from_slice(b"{\"schema\":");
        write_schema(&mut out, schema);
        out.extend_from_slice(b",\"payload\":");
        write_datum(&mut out, schema, datum);
        out.push(b'}');
    } else {
        write_datum(&mut out, schema, datum);
    }
    out
}

/// A heartbeat record for `topic.prefix` at `ts_ms` (ms since the epoch).
pub fn heartbeat_record(options: &Options, ts_ms: i64) -> EncodedRecord {
    let s = schemas();
    EncodedRecord {
        key: Some(envelope(
            options.key_schemas_enable,
            &s.heartbeat_key,
            &Datum::Struct(vec![Datum::String(options.topic_prefix.clone())]),
        )),
        value: Some(envelope(
            options.value_schemas_enable,
            &s.heartbeat_value,
            &Datum::Struct(vec![Datum::Int(ts_ms)]),
        )),
    }
}

/// Status of a transaction metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Before the transaction's first change.
    Begin,
    /// After its last change.
    End,
}

impl TransactionStatus {
    /// `BEGIN` / `END`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "BEGIN",
            Self::End => "END",
        }
    }
}

/// A transaction metadata record. `id` is Debezium's `"<txId>:<lsn>"`;
/// `collections` (`schema.table`, events) and the total are written only
/// for [`TransactionStatus::End`].
pub fn transaction_record(
    options: &Options,
    status: TransactionStatus,
    id: &str,
    event_count: u64,
    collections: &[(String, u64)],
    ts_ms: i64,
) -> EncodedRecord {
    let s = schemas();
    let count = |n: u64| Datum::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let (total, per_table) = match status {
        TransactionStatus::Begin => (Datum::Null, Datum::Null),
        TransactionStatus::End => (
            count(event_count),
            Datum::Array(
                collections
                    .iter()
                    .map(|(name, n)| Datum::Struct(vec![Datum::String(name.clone()), count(*n)]))
                    .collect(),
            ),
        ),
    };
    EncodedRecord {
        key: Some(envelope(
            options.key_schemas_enable,
            &s.txn_key,
            &Datum::Struct(vec![Datum::String(id.to_owned())]),
        )),
        value: Some(envelope(
            options.value_schemas_enable,
            &s.txn_value,
            &Datum::Struct(vec![
                Datum::String(status.as_str().to_owned()),
                Datum::String(id.to_owned()),
                total,
                per_table,
                Datum::Int(ts_ms),
            ]),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(schemas: bool) -> Options {
        let s = if schemas { "true" } else { "false" };
        Options::from_properties([
            ("topic.prefix", "srv"),
            ("key.converter.schemas.enable", s),
            ("value.converter.schemas.enable", s),
        ])
        .unwrap()
    }

    #[test]
    fn heartbeat_matches_debezium_json() {
        let r = heartbeat_record(&opts(true), 42);
        assert_eq!(
            std::str::from_utf8(&r.key.unwrap()).unwrap(),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":{"serverName":"srv"}}"#
        );
        assert_eq!(
            std::str::from_utf8(&r.value.unwrap()).unwrap(),
            r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1},"payload":{"ts_ms":42}}"#
        );
        let bare = heartbeat_record(&opts(false), 7);
        assert_eq!(bare.key.unwrap(), br#"{"serverName":"srv"}"#);
        assert_eq!(bare.value.unwrap(), br#"{"ts_ms":7}"#);
    }

    #[test]
    fn transaction_records_leave_counts_null_on_begin() {
        let o = opts(false);
        let begin = transaction_record(&o, TransactionStatus::Begin, "571:22", 0, &[], 5);
        assert_eq!(begin.key.unwrap(), br#"{"id":"571:22"}"#);
        assert_eq!(
            begin.value.unwrap(),
            br#"{"status":"BEGIN","id":"571:22","event_count":null,"data_collections":null,"ts_ms":5}"#
        );
        let end = transaction_record(
            &o,
            TransactionStatus::End,
            "571:22",
            3,
            &[("public.a".into(), 2), ("public.b".into(), 1)],
            6,
        );
        assert_eq!(
            std::str::from_utf8(&end.value.unwrap()).unwrap(),
            r#"{"status":"END","id":"571:22","event_count":3,"data_collections":[{"data_collection":"public.a","event_count":2},{"data_collection":"public.b","event_count":1}],"ts_ms":6}"#
        );
        assert_eq!(transaction_topic(&o, None), "srv.transaction");
        assert_eq!(heartbeat_topic(&o, Some("hb")), "hb.srv");
    }
}
