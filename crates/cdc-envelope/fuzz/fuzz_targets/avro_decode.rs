//! Fuzzes the Avro decoder with the schema of a real table and arbitrary
//! datums (Confluent framing included), and arbitrary writer schemas.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use cdc_envelope::{
    AvroDecoder, AvroEncoder, ChangeEvent, Column, Op, Options, PgType, TableId, TableSchema, Value,
};
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static (Option<Arc<str>>, Arc<str>) {
    static S: OnceLock<(Option<Arc<str>>, Arc<str>)> = OnceLock::new();
    S.get_or_init(|| {
        let b = PgType::base;
        let table = Arc::new(TableSchema {
            id: TableId::new("public", "t"),
            relation_oid: 1,
            columns: vec![
                Column {
                    is_key: true,
                    optional: false,
                    ..Column::new("id", b(23, "int4"))
                },
                Column::new("n", b(1700, "numeric")),
                Column::new("m", b(1700, "numeric").with_modifier(((10 << 16) | 2) + 4)),
                Column::new("t", b(25, "text")),
                Column::new("ts", b(1184, "timestamptz")),
                Column::new("bits", b(1560, "bit").with_modifier(12)),
                Column::new(
                    "a",
                    PgType {
                        oid: 1007,
                        name: "_int4".into(),
                        modifier: -1,
                        kind: cdc_envelope::TypeKind::Array(Box::new(b(23, "int4"))),
                    },
                ),
            ],
            version: 1,
        });
        let ev = ChangeEvent {
            op: Op::Create,
            table: Some(table),
            before: None,
            after: Some(vec![
                Value::Int32(1),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ]),
            source: Default::default(),
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Default::default(),
            key_change: None,
        };
        AvroEncoder::new(Options::default())
            .schemas(&ev)
            .expect("schemas")
    })
}

fn decoder() -> &'static Mutex<AvroDecoder> {
    static D: OnceLock<Mutex<AvroDecoder>> = OnceLock::new();
    D.get_or_init(|| Mutex::new(AvroDecoder::new(Options::default())))
}

/// Two decoders with the same history and the event slot the reusing one
/// decodes into, kept across runs.
fn reused() -> &'static Mutex<(AvroDecoder, AvroDecoder, Option<ChangeEvent>)> {
    static R: OnceLock<Mutex<(AvroDecoder, AvroDecoder, Option<ChangeEvent>)>> = OnceLock::new();
    R.get_or_init(|| {
        Mutex::new((
            AvroDecoder::new(Options::default()),
            AvroDecoder::new(Options::default()),
            None,
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, value) = schema();
    // One decoder for all runs, so its schema cache is exercised too.
    let Ok(mut dec) = decoder().lock() else {
        return;
    };
    let _ = dec.decode_value(value, key.as_deref(), data);
    let _ = dec.decode_value_framed(value, None, data);
    // Zero-copy path, plan found by the schema `Arc`.
    let _ = dec.decode_value_shared(value, key.as_ref(), &bytes::Bytes::copy_from_slice(data));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dec.decode_value(text, None, &[2, 0, 0]);
    }
    drop(dec);
    // Into a reused event: exactly what the allocating path decodes, or the
    // same error with the slot emptied.
    let Ok(mut guard) = reused().lock() else {
        return;
    };
    let (fresh, reusing, slot) = &mut *guard;
    let datum = bytes::Bytes::copy_from_slice(data);
    let expected = fresh.decode_value_shared(value, key.as_ref(), &datum);
    match (
        expected,
        reusing.decode_value_shared_into(value, key.as_ref(), &datum, slot),
    ) {
        (Ok(e), Ok(())) => assert_eq!(
            Some(format!("{e:?}")),
            slot.as_ref().map(|s| format!("{s:?}"))
        ),
        (Err(e), Err(g)) => {
            assert_eq!(e, g);
            assert!(slot.is_none());
        }
        (e, g) => panic!("allocating path {e:?}, reusing path {g:?}"),
    }
});
