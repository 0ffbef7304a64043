//! Every event captured from real Debezium 3.6.3 is decoded by our decoder
//! and re-encoded by our encoder with the same connector settings; the bytes
//! (schema and payload, field order included) must be identical.

mod common;

use cdc_envelope::{tombstone_follows, JsonDecoder, JsonEncoder, Op};
use common::{captures, diff, options_for, FILES};

#[test]
fn decode_then_encode_reproduces_every_captured_record() {
    let mut checked = 0;
    for file in FILES {
        let opts = options_for(file);
        let mut dec = JsonDecoder::new(opts.clone());
        let mut shared = JsonDecoder::new(opts.clone());
        let mut enc = JsonEncoder::new(opts.clone());
        let caps = captures(file);
        let mut expect_tombstone = false;
        for cap in &caps {
            let rec = dec
                .decode(cap.key.as_deref(), cap.value.as_deref())
                .unwrap_or_else(|e| panic!("{}:{}: decode failed: {e}", cap.file, cap.line));
            // From shared bytes (zero-copy strings): the same record.
            let value = cap.value.as_deref().map(bytes::Bytes::copy_from_slice);
            let rec_shared = shared
                .decode_bytes(cap.key.as_deref(), value.as_ref())
                .unwrap_or_else(|e| panic!("{}:{}: decode_bytes failed: {e}", cap.file, cap.line));
            // (Debug form: NaN floats are not `==` to themselves.)
            assert_eq!(
                format!("{rec_shared:?}"),
                format!("{rec:?}"),
                "{}:{}",
                cap.file,
                cap.line
            );
            let Some(ev) = rec.event else {
                assert!(
                    expect_tombstone,
                    "{}:{}: unexpected tombstone",
                    cap.file, cap.line
                );
                expect_tombstone = false;
                continue;
            };
            assert!(
                !expect_tombstone,
                "{}:{}: tombstone expected before this record",
                cap.file, cap.line
            );
            let out = enc
                .encode(&ev)
                .unwrap_or_else(|e| panic!("{}:{}: encode failed: {e}", cap.file, cap.line));
            match (&out.key, &cap.key) {
                (Some(a), Some(b)) => {
                    assert!(a == b, "{}:{} key\n{}", cap.file, cap.line, diff(a, b))
                }
                (None, None) => {}
                (a, b) => panic!(
                    "{}:{}: key presence differs: ours {:?} captured {:?}",
                    cap.file,
                    cap.line,
                    a.is_some(),
                    b.is_some()
                ),
            }
            let (Some(a), Some(b)) = (&out.value, &cap.value) else {
                panic!("{}:{}: missing value", cap.file, cap.line);
            };
            assert!(a == b, "{}:{} value\n{}", cap.file, cap.line, diff(a, b));
            expect_tombstone = tombstone_follows(&ev, &opts);
            if ev.op == Op::Delete && file == "types_default.jsonl" {
                assert!(expect_tombstone, "defaults emit tombstones");
            }
            checked += 1;
        }
        assert!(!expect_tombstone, "{file}: missing trailing tombstone");
    }
    assert_eq!(checked, 15 + 5 + 5 + 4);
}

#[test]
fn decoded_schema_is_cached_and_shared() {
    let file = "emp_seed.jsonl";
    let mut dec = JsonDecoder::new(options_for(file));
    let caps = captures(file);
    let a = dec
        .decode(caps[0].key.as_deref(), caps[0].value.as_deref())
        .expect("decodes");
    let b = dec
        .decode(caps[1].key.as_deref(), caps[1].value.as_deref())
        .expect("decodes");
    let (ta, tb) = (
        a.event.and_then(|e| e.table).expect("table"),
        b.event.and_then(|e| e.table).expect("table"),
    );
    assert!(std::sync::Arc::ptr_eq(&ta, &tb));
    assert_eq!(ta.id.to_string(), "public.employees");
    let key: Vec<&str> = ta
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(key, ["emp_id"]);
    let salary = &ta.columns[4];
    assert_eq!(salary.name, "salary");
    let created = &ta.columns[6];
    assert_eq!(created.pg_type.name, "timestamp");
    assert!(created.default_expr.is_some());
}

#[test]
fn keys_without_schema_and_values_with_schema_decode_the_same() {
    // key.converter.schemas.enable=false, value.converter.schemas.enable=true.
    let file = "emp_seed.jsonl";
    let opts = cdc_envelope::Options {
        key_schemas_enable: false,
        ..options_for(file)
    };
    let mut enc = JsonEncoder::new(opts.clone());
    let mut dec = JsonDecoder::new(opts);
    let mut full = JsonDecoder::new(options_for(file));
    for cap in captures(file).iter().take(4) {
        let ev = full
            .decode(cap.key.as_deref(), cap.value.as_deref())
            .expect("decodes")
            .event
            .expect("event");
        let out = enc.encode(&ev).expect("encodes");
        let key = out.key.expect("key");
        assert!(
            key.starts_with(b"{\"emp_id\":"),
            "{}",
            String::from_utf8_lossy(&key)
        );
        for _ in 0..2 {
            let rec = dec
                .decode(Some(&key), out.value.as_deref())
                .expect("decodes");
            assert_eq!(rec.key, ev.key());
            assert_eq!(rec.event.expect("event").after, ev.after);
        }
    }
}
