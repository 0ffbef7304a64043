//! Avro: every captured Debezium event survives JSON → event → Avro →
//! event → JSON unchanged, and an independent implementation (fastavro)
//! reads our datums as the same values and writes the same bytes.

mod common;

use cdc_envelope::avro::{avro_schema_json, decode_key, split_confluent};
use cdc_envelope::{AvroDecoder, AvroEncoder, JsonDecoder, JsonEncoder, Op, Options};
use common::{captures, diff, options_for, FILES};

#[test]
fn captured_events_round_trip_through_avro() {
    for file in FILES {
        let opts = options_for(file);
        let mut jdec = JsonDecoder::new(opts.clone());
        let mut jenc = JsonEncoder::new(opts.clone());
        let mut aenc = AvroEncoder::new(opts.clone());
        let mut adec = AvroDecoder::new(opts.clone());
        for cap in captures(file) {
            let Some(ev) = jdec
                .decode(cap.key.as_deref(), cap.value.as_deref())
                .expect("decodes")
                .event
            else {
                continue;
            };
            let (key_schema, value_schema) = aenc.schemas(&ev).expect("schemas");
            let mut framed = Vec::new();
            aenc.encode_value_framed(&ev, 7, &mut framed)
                .expect("avro encodes");
            let (id, back) = adec
                .decode_value_framed(&value_schema, key_schema.as_deref(), &framed)
                .expect("avro decodes");
            assert_eq!(id, 7);
            let again = jenc.encode(&back).expect("json encodes");
            let (a, b) = (
                again.value.expect("value"),
                cap.value.clone().expect("value"),
            );
            assert!(
                a == b,
                "{}:{} value after Avro\n{}",
                cap.file,
                cap.line,
                diff(&a, &b)
            );
            // Keys.
            let mut key = Vec::new();
            let has_key = aenc.encode_key_into(&ev, &mut key).expect("key encodes");
            assert_eq!(has_key, cap.key.is_some(), "{}:{}", cap.file, cap.line);
            if let (true, Some(ks)) = (has_key, key_schema.as_deref()) {
                let values = decode_key(ks, &key, &opts).expect("key decodes");
                if ev.op != Op::Message {
                    assert_eq!(Some(values), ev.key(), "{}:{}", cap.file, cap.line);
                }
            }
        }
    }
}

#[test]
fn fastavro_reads_our_datums_and_writes_the_same_bytes() {
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let mut events = Vec::new();
    for file in FILES {
        let opts = options_for(file);
        let schemaless = Options {
            value_schemas_enable: false,
            key_schemas_enable: false,
            ..opts.clone()
        };
        let mut jdec = JsonDecoder::new(opts.clone());
        let mut jenc = JsonEncoder::new(schemaless);
        let mut aenc = AvroEncoder::new(opts.clone());
        for cap in captures(file) {
            let Some(ev) = jdec
                .decode(cap.key.as_deref(), cap.value.as_deref())
                .expect("decodes")
                .event
            else {
                continue;
            };
            let (_, schema) = aenc.schemas(&ev).expect("schemas");
            let mut datum = Vec::new();
            aenc.encode_value_into(&ev, &mut datum).expect("encodes");
            let payload: serde_json::Value =
                serde_json::from_slice(&jenc.encode(&ev).expect("json").value.expect("value"))
                    .expect("valid json");
            cases.push((schema.to_string(), datum));
            expected.push((cap.file, cap.line, payload));
            events.push((opts.clone(), ev));
        }
    }
    let results = common::fastavro(&cases);
    for (((decoded, reencoded), (schema, datum)), ((file, line, payload), (opts, ev))) in
        results.iter().zip(&cases).zip(expected.iter().zip(&events))
    {
        assert_eq!(
            decoded, payload,
            "{file}:{line}: fastavro decodes our datum to the same values"
        );
        assert_eq!(
            reencoded, datum,
            "{file}:{line}: fastavro writes the same bytes"
        );
        // And ours reads fastavro's bytes back to the same event.
        let back = AvroDecoder::new(opts.clone())
            .decode_value(schema, None, reencoded)
            .expect("decodes fastavro bytes");
        // Debug text: NaN != NaN under PartialEq.
        assert_eq!(
            format!("{:?}", back.before),
            format!("{:?}", ev.before),
            "{file}:{line}"
        );
        assert_eq!(
            format!("{:?}", back.after),
            format!("{:?}", ev.after),
            "{file}:{line}"
        );
        assert_eq!(back.source, ev.source, "{file}:{line}");
        assert_eq!(
            back.ts_ns / 1_000_000,
            ev.ts_ns / 1_000_000,
            "{file}:{line}"
        );
    }
}

#[test]
fn avro_schema_follows_avrodata_conventions() {
    let mut jdec = JsonDecoder::new(options_for("types_default.jsonl"));
    let cap = &captures("types_default.jsonl")[0];
    let ev = jdec
        .decode(cap.key.as_deref(), cap.value.as_deref())
        .expect("decodes")
        .event
        .expect("event");
    let mut enc = AvroEncoder::new(options_for("types_default.jsonl"));
    let (key, value) = enc.schemas(&ev).expect("schemas");
    let v: serde_json::Value = serde_json::from_str(&value).expect("json");
    assert_eq!(v["type"], "record");
    assert_eq!(v["name"], "Envelope");
    assert_eq!(v["namespace"], "pgsource.public.common_types");
    assert_eq!(v["connect.version"], 2);
    assert_eq!(v["connect.name"], "pgsource.public.common_types.Envelope");
    let before = &v["fields"][0];
    assert_eq!(before["default"], serde_json::Value::Null);
    assert_eq!(before["type"][0], "null");
    assert_eq!(before["type"][1]["name"], "Value");
    assert_eq!(
        v["fields"][1]["type"][1], "pgsource.public.common_types.Value",
        "second use by name"
    );
    let fields = &before["type"][1]["fields"];
    let field = |name: &str| {
        fields
            .as_array()
            .and_then(|a| a.iter().find(|f| f["name"] == name))
            .cloned()
            .expect("field exists")
    };
    let numeric = field("c_numeric");
    assert_eq!(numeric["type"][1]["logicalType"], "decimal");
    assert_eq!(numeric["type"][1]["precision"], 12);
    assert_eq!(numeric["type"][1]["scale"], 3);
    let int2 = field("c_int2");
    assert_eq!(int2["type"][1]["connect.type"], "int16");
    let date = field("c_date");
    assert_eq!(date["type"][1]["connect.name"], "io.debezium.time.Date");
    let source = &v["fields"][2]["type"];
    assert_eq!(source["namespace"], "io.debezium.connector.postgresql");
    let snapshot = &source["fields"][4];
    assert_eq!(
        snapshot["type"][1], "null",
        "optional with default: [T, null]"
    );
    assert_eq!(snapshot["default"], "false");
    assert!(key.is_some());
    // Schemas are cached and identical across calls.
    let (_, again) = enc.schemas(&ev).expect("schemas");
    assert!(std::sync::Arc::ptr_eq(&value, &again));
    // The key schema of the employees table carries its default.
    let mut jdec = JsonDecoder::new(options_for("emp_seed.jsonl"));
    let cap = &captures("emp_seed.jsonl")[0];
    let ev = jdec
        .decode(cap.key.as_deref(), cap.value.as_deref())
        .expect("decodes")
        .event
        .expect("event");
    let plan =
        JsonEncoder::new(options_for("emp_seed.jsonl")).plan(ev.table.as_ref().expect("table"));
    let k: serde_json::Value =
        serde_json::from_str(&avro_schema_json(plan.key_schema.as_ref().expect("key")))
            .expect("json");
    assert_eq!(k["fields"][0]["default"], 0);
    assert_eq!(k["fields"][0]["type"]["connect.default"], 0);
}

#[test]
fn bad_avro_input_is_a_typed_error() {
    let mut jdec = JsonDecoder::new(options_for("emp_seed.jsonl"));
    let cap = &captures("emp_seed.jsonl")[2];
    let ev = jdec
        .decode(cap.key.as_deref(), cap.value.as_deref())
        .expect("decodes")
        .event
        .expect("event");
    let mut enc = AvroEncoder::new(options_for("emp_seed.jsonl"));
    let (_, schema) = enc.schemas(&ev).expect("schemas");
    let mut datum = Vec::new();
    enc.encode_value_into(&ev, &mut datum).expect("encodes");
    let mut dec = AvroDecoder::new(Options::default());
    for cut in [0, 1, datum.len() / 2, datum.len() - 1] {
        let err = dec
            .decode_value(&schema, None, &datum[..cut])
            .expect_err("truncated");
        assert_eq!(err.kind(), "cdc_envelope::InvalidAvro", "{err}");
    }
    let mut trailing = datum.clone();
    trailing.push(0);
    assert!(dec.decode_value(&schema, None, &trailing).is_err());
    let err = dec
        .decode_value("{\"type\":\"nope\"}", None, &datum)
        .expect_err("bad schema");
    assert_eq!(err.kind(), "cdc_envelope::InvalidSchema");
    let err = dec
        .decode_value("{not json", None, &datum)
        .expect_err("bad schema json");
    assert_eq!(err.kind(), "cdc_envelope::InvalidJson");
    assert!(split_confluent(&[9, 0, 0, 0, 1, 2]).is_err());
}
