//! Property tests: event → JSON → event and event → Avro → event give back
//! the same rows, op, source and timestamps, for random tables and values of
//! the types whose Debezium encoding is lossless.

use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::{
    Array, AvroDecoder, AvroEncoder, Bits, ChangeEvent, Column, Date, Decimal, Interval,
    JsonDecoder, JsonEncoder, Numeric, Op, Options, PgType, SnapshotMarker, SourceInfo, Str,
    TableId, TableSchema, Timestamp, TypeKind, Value,
};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    NumericFree,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    TimeTz,
    Interval,
    Uuid,
    Jsonb,
    Enum,
    Bit,
    IntArray,
    TextArray,
}

const KINDS: [Kind; 22] = [
    Kind::Bool,
    Kind::Int2,
    Kind::Int4,
    Kind::Int8,
    Kind::Float4,
    Kind::Float8,
    Kind::Numeric,
    Kind::NumericFree,
    Kind::Text,
    Kind::Bytea,
    Kind::Date,
    Kind::Time,
    Kind::Timestamp,
    Kind::TimestampTz,
    Kind::TimeTz,
    Kind::Interval,
    Kind::Uuid,
    Kind::Jsonb,
    Kind::Enum,
    Kind::Bit,
    Kind::IntArray,
    Kind::TextArray,
];

fn pg_type(k: Kind) -> PgType {
    let b = PgType::base;
    match k {
        Kind::Bool => b(16, "bool"),
        Kind::Int2 => b(21, "int2"),
        Kind::Int4 => b(23, "int4"),
        Kind::Int8 => b(20, "int8"),
        Kind::Float4 => b(700, "float4"),
        Kind::Float8 => b(701, "float8"),
        Kind::Numeric => b(1700, "numeric").with_modifier(((18 << 16) | 4) + 4),
        Kind::NumericFree => b(1700, "numeric"),
        Kind::Text => b(25, "text"),
        Kind::Bytea => b(17, "bytea"),
        Kind::Date => b(1082, "date"),
        Kind::Time => b(1083, "time"),
        Kind::Timestamp => b(1114, "timestamp"),
        Kind::TimestampTz => b(1184, "timestamptz"),
        Kind::TimeTz => b(1266, "timetz"),
        Kind::Interval => b(1186, "interval"),
        Kind::Uuid => b(2950, "uuid"),
        Kind::Jsonb => b(3802, "jsonb"),
        Kind::Enum => PgType {
            oid: 0,
            name: "mood".into(),
            modifier: -1,
            kind: TypeKind::Enum(vec!["sad".into(), "ok".into(), "happy".into()]),
        },
        Kind::Bit => b(1560, "bit").with_modifier(12),
        Kind::IntArray => PgType {
            oid: 1007,
            name: "_int4".into(),
            modifier: -1,
            kind: TypeKind::Array(Box::new(b(23, "int4"))),
        },
        Kind::TextArray => PgType {
            oid: 1009,
            name: "_text".into(),
            modifier: -1,
            kind: TypeKind::Array(Box::new(b(25, "text"))),
        },
    }
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}|[\\x00-\\x1f\"\\\\]{0,4}"
}

fn decimal(max_scale: u32, strip: bool) -> impl Strategy<Value = Value> {
    (any::<i64>(), 0..=max_scale).prop_map(move |(n, scale)| {
        let digits = n.unsigned_abs().to_string();
        let scale = scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
        } else {
            digits
        };
        let split = padded.len() - scale;
        let mut s = String::new();
        if n < 0 && n != 0 {
            s.push('-');
        }
        s.push_str(&padded[..split]);
        if scale > 0 {
            s.push('.');
            s.push_str(&padded[split..]);
        }
        let mut d = Decimal::parse(&s).expect("valid decimal");
        if strip && d.as_str().contains('.') {
            let t = d
                .as_str()
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned();
            d = Decimal::parse(&t).expect("valid");
        }
        if !d.is_negative() && d.as_str().starts_with('-') {
            d = Decimal::parse(d.as_str().trim_start_matches('-')).expect("valid");
        }
        Value::Numeric(Numeric::Finite(d))
    })
}

fn value(k: Kind) -> BoxedStrategy<Value> {
    const DAY: i64 = 86_400_000_000;
    match k {
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Int2 => any::<i16>().prop_map(Value::Int16).boxed(),
        Kind::Int4 => any::<i32>().prop_map(Value::Int32).boxed(),
        Kind::Int8 => any::<i64>().prop_map(Value::Int64).boxed(),
        Kind::Float4 => any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float32)
            .boxed(),
        Kind::Float8 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float64)
            .boxed(),
        Kind::Numeric => decimal(4, false)
            .prop_map(|v| match v {
                Value::Numeric(Numeric::Finite(d)) => {
                    // numeric(18,4): exactly 4 fraction digits.
                    let t = if d.scale() == 4 {
                        d.as_str().to_owned()
                    } else {
                        let mut t = d.as_str().to_owned();
                        if !t.contains('.') {
                            t.push('.');
                        }
                        t.push_str(&"0".repeat(4 - d.scale() as usize));
                        t
                    };
                    let int_digits = t
                        .trim_start_matches('-')
                        .split('.')
                        .next()
                        .map_or(0, str::len);
                    let t = if int_digits > 14 {
                        "1.0000".to_owned()
                    } else {
                        t
                    };
                    Value::Numeric(Numeric::Finite(Decimal::parse(&t).expect("valid")))
                }
                other => other,
            })
            .boxed(),
        Kind::NumericFree => decimal(30, true).boxed(),
        Kind::Text => text().prop_map(|s| Value::Text(Str::from(s))).boxed(),
        Kind::Bytea => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|v| Value::Bytes(Bytes::from(v)))
            .boxed(),
        Kind::Date => (-2_000_000i32..2_000_000)
            .prop_map(|d| Value::Date(Date::Days(d)))
            .boxed(),
        Kind::Time => (0..DAY).prop_map(Value::Time).boxed(),
        Kind::Timestamp => (-(DAY * 700_000)..DAY * 2_900_000)
            .prop_map(|m| Value::Timestamp(Timestamp::PgMicros(m)))
            .boxed(),
        Kind::TimestampTz => (-(DAY * 700_000)..DAY * 2_900_000)
            .prop_map(|m| Value::TimestampTz(Timestamp::PgMicros(m)))
            .boxed(),
        Kind::TimeTz => (0..DAY)
            .prop_map(|m| Value::TimeTz {
                micros: m,
                offset_seconds: 0,
            })
            .boxed(),
        Kind::Interval => (any::<i16>(), any::<i16>(), -(DAY * 1000)..DAY * 1000)
            .prop_map(|(m, d, us)| {
                Value::Interval(Interval {
                    months: i32::from(m),
                    days: i32::from(d),
                    micros: us,
                })
            })
            .boxed(),
        Kind::Uuid => any::<[u8; 16]>().prop_map(Value::Uuid).boxed(),
        Kind::Jsonb => text()
            .prop_map(|s| Value::Json(Str::from(format!("{{\"k\":{s:?}}}"))))
            .boxed(),
        Kind::Enum => prop_oneof![Just("sad"), Just("ok"), Just("happy")]
            .prop_map(|s| Value::Enum(Str::from(s)))
            .boxed(),
        Kind::Bit => any::<u16>()
            .prop_map(|v| {
                let v = v & 0xfff0;
                Value::Bits(Bits {
                    len: 12,
                    data: Bytes::from(v.to_be_bytes().to_vec()),
                })
            })
            .boxed(),
        Kind::IntArray => proptest::collection::vec(
            prop_oneof![any::<i32>().prop_map(Value::Int32), Just(Value::Null)],
            1..5,
        )
        .prop_map(|v| Value::Array(Array::one_dim(v)))
        .boxed(),
        Kind::TextArray => {
            proptest::collection::vec(text().prop_map(|s| Value::Text(Str::from(s))), 1..4)
                .prop_map(|v| Value::Array(Array::one_dim(v)))
                .boxed()
        }
    }
}

fn cell(k: Kind) -> BoxedStrategy<Value> {
    let unavailable = matches!(
        k,
        Kind::Text | Kind::Bytea | Kind::Jsonb | Kind::TextArray | Kind::IntArray
    );
    if unavailable {
        prop_oneof![6 => value(k), 1 => Just(Value::Null), 1 => Just(Value::Unavailable)].boxed()
    } else {
        prop_oneof![6 => value(k), 1 => Just(Value::Null)].boxed()
    }
}

fn event_strategy() -> impl Strategy<Value = ChangeEvent> {
    proptest::collection::vec(proptest::sample::select(KINDS.to_vec()), 0..8)
        .prop_flat_map(|kinds| {
            let cells: Vec<BoxedStrategy<Value>> = kinds.iter().map(|k| cell(*k)).collect();
            (
                Just(kinds),
                any::<i32>(),
                cells,
                prop_oneof![Just(Op::Create), Just(Op::Update), Just(Op::Read)],
                0i64..4_000_000_000_000_000,
                proptest::option::of(1i64..1_000_000),
                "[a-z_]{1,10}",
            )
        })
        .prop_map(|(kinds, id, mut cells, op, ts, tx, db)| {
            let mut columns = vec![Column {
                is_key: true,
                optional: false,
                ..Column::new("id", PgType::base(23, "int4"))
            }];
            for (i, k) in kinds.iter().enumerate() {
                columns.push(Column::new(format!("c{i}"), pg_type(*k)));
            }
            let table = Arc::new(TableSchema {
                id: TableId::new("public", "t"),
                relation_oid: 1,
                columns,
                version: 1,
            });
            cells.insert(0, Value::Int32(id));
            ChangeEvent {
                op,
                table: Some(table),
                before: None,
                after: Some(cells),
                source: SourceInfo {
                    version: "3.6.3.Final".into(),
                    connector: "postgresql".into(),
                    name: "pgsource".into(),
                    ts_us: ts / 1000,
                    snapshot: if op == Op::Read {
                        SnapshotMarker::True
                    } else {
                        SnapshotMarker::False
                    },
                    db: db.into(),
                    sequence: Some("[null,\"1\"]".into()),
                    schema: "public".into(),
                    table: "t".into(),
                    tx_id: tx,
                    lsn: tx,
                    ..Default::default()
                },
                ts_ns: ts,
                transaction: None,
                message: None,
                position: Default::default(),
                key_change: None,
            }
        })
}

fn options() -> Options {
    // interval.handling.mode=string keeps months/days/micros exactly.
    Options::from_properties([
        ("topic.prefix", "pgsource"),
        ("interval.handling.mode", "string"),
    ])
    .expect("options")
}

fn same(a: &ChangeEvent, b: &ChangeEvent) -> std::result::Result<(), TestCaseError> {
    prop_assert_eq!(a.op, b.op);
    prop_assert_eq!(&a.after, &b.after);
    prop_assert_eq!(&a.before, &b.before);
    prop_assert_eq!(&a.source, &b.source);
    prop_assert_eq!(a.ts_ns, b.ts_ns);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn json_round_trip(ev in event_strategy()) {
        let opts = options();
        let out = JsonEncoder::new(opts.clone()).encode(&ev).expect("encodes");
        let rec = JsonDecoder::new(opts.clone()).decode(out.key.as_deref(), out.value.as_deref()).expect("decodes");
        let back = rec.event.expect("event");
        same(&ev, &back)?;
        prop_assert_eq!(rec.key, ev.key());
        // Canonical: re-encoding the decoded event gives the same bytes.
        let again = JsonEncoder::new(opts).encode(&back).expect("encodes");
        prop_assert_eq!(again, out);
    }

    #[test]
    fn json_without_schemas_keeps_the_payload(ev in event_strategy()) {
        let opts = Options { value_schemas_enable: false, key_schemas_enable: false, ..options() };
        let out = JsonEncoder::new(opts.clone()).encode(&ev).expect("encodes");
        let rec = JsonDecoder::new(opts).decode(out.key.as_deref(), out.value.as_deref()).expect("decodes");
        let back = rec.event.expect("event");
        prop_assert_eq!(back.op, ev.op);
        prop_assert_eq!(&back.source, &ev.source);
        prop_assert_eq!(back.ts_ns, ev.ts_ns);
        prop_assert_eq!(back.after.as_ref().map(Vec::len), ev.after.as_ref().map(Vec::len));
    }

    #[test]
    fn avro_round_trip(ev in event_strategy()) {
        let opts = options();
        let mut enc = AvroEncoder::new(opts.clone());
        let (key_schema, value_schema) = enc.schemas(&ev).expect("schemas");
        let mut datum = Vec::new();
        enc.encode_value_framed(&ev, 42, &mut datum).expect("encodes");
        let (id, back) = AvroDecoder::new(opts).decode_value_framed(&value_schema, key_schema.as_deref(), &datum).expect("decodes");
        prop_assert_eq!(id, 42);
        same(&ev, &back)?;
        prop_assert_eq!(back.key(), ev.key());
    }

    #[test]
    fn json_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = JsonDecoder::new(Options::default()).decode(Some(&bytes), Some(&bytes));
    }
}
