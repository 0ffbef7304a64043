//! Bad input gives a typed error of the right kind, with enough context
//! (path, expected, found) for a dead-letter-queue record; never a panic.

mod common;

use std::sync::Arc;

use cdc_envelope::{
    ChangeEvent, Column, Error, JsonDecoder, JsonEncoder, Numeric, Op, Options, PgType, TableId,
    TableSchema, Value,
};
use common::{captures, options_for};

fn decode(value: &str) -> Error {
    JsonDecoder::new(Options::default())
        .decode(None, Some(value.as_bytes()))
        .expect_err("must fail")
}

fn employees_value() -> String {
    String::from_utf8(captures("emp_seed.jsonl")[2].value.clone().expect("value")).expect("utf-8")
}

#[test]
fn invalid_json() {
    for bad in [
        "",
        "{",
        "{\"schema\":",
        "[1,2",
        "{\"payload\":{\"op\":\"c\"} trailing",
        "\"\\u12\"",
    ] {
        let e = decode(bad);
        assert!(matches!(e, Error::InvalidJson { .. }), "{bad:?}: {e:?}");
        assert_eq!(e.kind(), "cdc_envelope::InvalidJson");
        assert!(!e.is_retriable());
    }
}

#[test]
fn invalid_schema() {
    let e = decode(r#"{"schema":{"type":"nonsense"},"payload":{}}"#);
    match &e {
        Error::InvalidSchema {
            path,
            expected,
            found,
        } => {
            assert_eq!(path.to_string(), "schema.type");
            assert!(expected.contains("Connect type"));
            assert_eq!(found, "nonsense");
        }
        other => panic!("{other:?}"),
    }
    let e = decode(r#"{"schema":{"type":"struct","fields":[{"type":"int32"}]},"payload":{}}"#);
    assert!(matches!(e, Error::InvalidSchema { .. }), "{e:?}");
    let e = decode(r#"{"schema":{"type":"int32"},"payload":1}"#);
    assert!(matches!(e, Error::InvalidSchema { .. }), "{e:?}");
}

#[test]
fn payload_not_matching_schema() {
    let v = employees_value().replacen("\"emp_id\":3", "\"emp_id\":\"three\"", 1);
    let e = JsonDecoder::new(options_for("emp_seed.jsonl"))
        .decode(None, Some(v.as_bytes()))
        .expect_err("mismatch");
    match &e {
        Error::SchemaMismatch {
            path,
            expected,
            found,
        } => {
            assert_eq!(path.to_string(), "payload.after.emp_id");
            assert_eq!(expected, "an integer");
            assert_eq!(found, "string");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("payload.after.emp_id"), "{e}");
    // int32 out of range.
    let v = employees_value().replacen("\"emp_id\":3", "\"emp_id\":99999999999", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("range");
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    // Unknown field.
    let v = employees_value().replacen("\"emp_id\":3", "\"nope\":3", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("unknown field");
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    // Bad base64 in a Decimal.
    let v = String::from_utf8(captures("types_default.jsonl")[0].value.clone().expect("v"))
        .expect("utf-8")
        .replacen("\"AeJA\"", "\"!!\"", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("bad base64");
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    // Bad timestamp text.
    let v = String::from_utf8(captures("types_default.jsonl")[0].value.clone().expect("v"))
        .expect("utf-8")
        .replacen("2024-05-06T05:08:09.123456Z", "yesterday", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("bad ts");
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
    // Bad op.
    let v = employees_value().replacen("\"op\":\"c\"", "\"op\":\"x\"", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("bad op");
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{e:?}");
}

#[test]
fn missing_field() {
    let v = employees_value().replacen("\"op\":\"c\",", "", 1);
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("no op");
    assert!(
        matches!(&e, Error::MissingField { path } if path.to_string() == "payload.op"),
        "{e:?}"
    );
    let e = decode(r#"{"schema":{"type":"struct","fields":[],"optional":false}}"#);
    assert!(matches!(e, Error::MissingField { .. }), "{e:?}");
}

#[test]
fn unknown_semantic_type() {
    let v = employees_value().replacen(
        "{\"type\":\"string\",\"optional\":true,\"field\":\"email\"}",
        "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.geometry.Point\",\"field\":\"email\"}",
        2,
    );
    let e = JsonDecoder::new(Options::default())
        .decode(None, Some(v.as_bytes()))
        .expect_err("unknown type");
    match &e {
        Error::UnknownSemanticType {
            name, connect_type, ..
        } => {
            assert_eq!(name, "io.debezium.data.geometry.Point");
            assert_eq!(connect_type, "string");
        }
        other => panic!("{other:?}"),
    }
}

fn table(t: PgType) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("public", "t"),
        relation_oid: 1,
        columns: vec![
            Column {
                is_key: true,
                optional: false,
                ..Column::new("id", PgType::base(23, "int4"))
            },
            Column::new("v", t),
        ],
        version: 1,
    })
}

fn ev(t: Arc<TableSchema>, row: Vec<Value>) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: Some(t),
        before: None,
        after: Some(row),
        source: Default::default(),
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Default::default(),
        key_change: None,
    }
}

#[test]
fn unrepresentable_values() {
    // NaN under decimal.handling.mode=precise: Debezium refuses too.
    let t = table(PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4));
    let e = JsonEncoder::new(Options::default()).encode(&ev(
        Arc::clone(&t),
        vec![Value::Int32(1), Value::Numeric(Numeric::NaN)],
    ));
    match e {
        Err(Error::Unrepresentable { column, reason }) => {
            assert_eq!(column, "v");
            assert!(reason.contains("decimal.handling.mode"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // ...but fine in string mode, as NAN.
    let opts = Options::from_properties([("decimal.handling.mode", "string")]).expect("opts");
    let out = JsonEncoder::new(opts)
        .encode(&ev(t, vec![Value::Int32(1), Value::Numeric(Numeric::NaN)]))
        .expect("string mode");
    assert!(String::from_utf8_lossy(&out.value.expect("v")).contains("\"v\":\"NAN\""));
    // A value of the wrong variant for the column type.
    let t = table(PgType::base(1082, "date"));
    let e = JsonEncoder::new(Options::default())
        .encode(&ev(t, vec![Value::Int32(1), Value::Bool(true)]))
        .expect_err("bad variant");
    assert!(matches!(e, Error::Unrepresentable { .. }), "{e:?}");
}

#[test]
fn row_and_event_mismatch() {
    let t = table(PgType::base(25, "text"));
    let e = JsonEncoder::new(Options::default())
        .encode(&ev(t, vec![Value::Int32(1)]))
        .expect_err("short row");
    assert!(matches!(e, Error::RowMismatch { .. }), "{e:?}");
    let mut no_table = ev(table(PgType::base(25, "text")), vec![]);
    no_table.table = None;
    let e = JsonEncoder::new(Options::default())
        .encode(&no_table)
        .expect_err("no table");
    assert!(matches!(e, Error::InvalidEvent { .. }), "{e:?}");
    let mut msg = no_table;
    msg.op = Op::Message;
    let e = JsonEncoder::new(Options::default())
        .encode(&msg)
        .expect_err("no message");
    assert!(matches!(e, Error::InvalidEvent { .. }), "{e:?}");
}

#[test]
fn invalid_options() {
    let e = Options::from_properties([("time.precision.mode", "seconds")]).expect_err("bad");
    assert_eq!(e.kind(), "cdc_envelope::InvalidOption");
    assert!(e.to_string().contains("time.precision.mode"));
    assert!(e.to_string().contains("seconds"));
    assert!(e.to_string().contains("adaptive"));
}

#[test]
fn every_prefix_of_a_valid_record_fails_cleanly() {
    for cap in captures("types_default.jsonl").iter().take(2) {
        let v = cap.value.as_deref().expect("value");
        for cut in (0..v.len()).step_by(7) {
            let r =
                JsonDecoder::new(Options::default()).decode(cap.key.as_deref(), Some(&v[..cut]));
            assert!(r.is_err(), "prefix of {cut} bytes accepted");
        }
    }
}

/// PostgreSQL's last timestamps (after 294247-01-10) have no int64 µs / ns
/// count since 1970: MicroTimestamp / NanoTimestamp refuse them (typed, for
/// the DLQ) instead of wrapping, in JSON and Avro; ms and the string forms
/// carry them. (µs since 2000 from PostgreSQL 15's timestamp_send.)
#[test]
fn far_future_timestamps_are_refused_not_wrapped() {
    use cdc_envelope::{AvroEncoder, Timestamp};
    let last = Timestamp::PgMicros(9_223_371_331_199_999_999); // 294276-12-31 23:59:59.999999
    let row = |v: Value| vec![Value::Int32(1), v];
    let ts = table(PgType::base(1114, "timestamp"));
    let tstz = table(PgType::base(1184, "timestamptz"));
    for mode in [
        "adaptive",
        "adaptive_time_microseconds",
        "nanoseconds",
        "microseconds",
    ] {
        let opts = Options::from_properties([("time.precision.mode", mode)]).expect("opts");
        let event = ev(Arc::clone(&ts), row(Value::Timestamp(last)));
        let e = JsonEncoder::new(opts.clone()).encode(&event);
        assert!(
            matches!(&e, Err(Error::Unrepresentable { column, .. }) if column == "v"),
            "{mode}: {e:?}"
        );
        let mut out = Vec::new();
        let e = AvroEncoder::new(opts).encode_value_into(&event, &mut out);
        assert!(
            matches!(&e, Err(Error::Unrepresentable { column, .. }) if column == "v"),
            "{mode} avro: {e:?}"
        );
    }
    // connect (ms) holds it; isostring and ZonedTimestamp carry it exactly.
    for (mode, t, want) in [
        ("connect", &ts, "\"v\":9224318015999999"),
        ("isostring", &ts, "\"v\":\"+294276-12-31T23:59:59.999999Z\""),
        (
            "adaptive",
            &tstz,
            "\"v\":\"+294276-12-31T23:59:59.999999Z\"",
        ),
    ] {
        let opts = Options::from_properties([("time.precision.mode", mode)]).expect("opts");
        let v = if t.columns[1].pg_type.name == "timestamptz" {
            Value::TimestampTz(last)
        } else {
            Value::Timestamp(last)
        };
        let rec = JsonEncoder::new(opts)
            .encode(&ev(Arc::clone(t), row(v)))
            .expect("encodes");
        let text = String::from_utf8(rec.value.expect("value")).expect("utf-8");
        assert!(text.contains(want), "{mode}: {text}");
    }
}
