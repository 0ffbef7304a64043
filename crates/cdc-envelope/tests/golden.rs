//! Golden files: one row holding every supported type (plus a row of NULLs
//! and one of unavailable TOAST values), encoded under each
//! `decimal.handling.mode` / `time.precision.mode` / `binary.handling.mode` /
//! `interval.handling.mode` / `hstore.handling.mode` value, as Kafka Connect
//! JSON and as Avro (schema + datum). Both directions are checked: our
//! encoding equals the file, and decoding the file then encoding again
//! gives the file back.
//!
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p cdc-envelope --test golden`
//! and review the diff.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::temporal::{days_from_civil, parse_local_timestamp, parse_zoned_timestamp};
use cdc_envelope::{
    Array, AvroDecoder, AvroEncoder, Bits, ChangeEvent, Column, Date, Decimal, Interval,
    JsonDecoder, JsonEncoder, Numeric, Op, Options, PgType, SnapshotMarker, SourceInfo, Str,
    TableId, TableSchema, Timestamp, TypeKind, Value,
};

fn table() -> Arc<TableSchema> {
    let b = PgType::base;
    let arr = |oid: u32, e: PgType| PgType {
        oid,
        name: format!("_{}", e.name),
        modifier: -1,
        kind: TypeKind::Array(Box::new(e)),
    };
    let col = |name: &str, t: PgType| Column::new(name, t);
    let columns = vec![
        Column {
            is_key: true,
            optional: false,
            default_expr: Some("nextval('s'::regclass)".into()),
            ..col("id", b(23, "int4"))
        },
        col("c_bool", b(16, "bool")),
        col("c_int2", b(21, "int2")),
        Column {
            default_expr: Some("42".into()),
            ..col("c_int4", b(23, "int4"))
        },
        col("c_int8", b(20, "int8")),
        col("c_float4", b(700, "float4")),
        col("c_float8", b(701, "float8")),
        Column {
            default_expr: Some("1.5".into()),
            ..col(
                "c_numeric",
                b(1700, "numeric").with_modifier(((12 << 16) | 3) + 4),
            )
        },
        col("c_numeric_free", b(1700, "numeric")),
        col("c_money", b(790, "money")),
        Column {
            optional: false,
            default_expr: Some("'it''s'::text".into()),
            ..col("c_text", b(25, "text"))
        },
        col("c_varchar", b(1043, "varchar").with_modifier(34)),
        col("c_bytea", b(17, "bytea")),
        Column {
            default_expr: Some("CURRENT_DATE".into()),
            ..col("c_date", b(1082, "date"))
        },
        col("c_time", b(1083, "time")),
        col("c_time3", b(1083, "time").with_modifier(3)),
        col("c_timetz", b(1266, "timetz")),
        col("c_ts", b(1114, "timestamp")),
        col("c_ts3", b(1114, "timestamp").with_modifier(3)),
        Column {
            default_expr: Some("now()".into()),
            ..col("c_tstz", b(1184, "timestamptz"))
        },
        col("c_tstz3", b(1184, "timestamptz").with_modifier(3)),
        col("c_interval", b(1186, "interval")),
        col("c_uuid", b(2950, "uuid")),
        col("c_json", b(114, "json")),
        col("c_jsonb", b(3802, "jsonb")),
        col("c_xml", b(142, "xml")),
        col("c_inet", b(869, "inet")),
        col("c_bit1", b(1560, "bit").with_modifier(1)),
        col("c_bit", b(1560, "bit").with_modifier(10)),
        col("c_varbit", b(1562, "varbit").with_modifier(16)),
        col("c_int_arr", arr(1007, b(23, "int4"))),
        col("c_text_arr", arr(1009, b(25, "text"))),
        col("c_date_arr", arr(1182, b(1082, "date"))),
        col(
            "c_enum",
            PgType {
                oid: 0,
                name: "color".into(),
                modifier: -1,
                kind: TypeKind::Enum(vec!["red".into(), "green".into()]),
            },
        ),
        col("c_hstore", b(0, "hstore")),
        col("c_range", b(3904, "int4range")),
        col("c_ltree", b(0, "ltree")),
    ];
    Arc::new(TableSchema {
        id: TableId::new("public", "all_types"),
        relation_oid: 1,
        columns,
        version: 1,
    })
}

fn full_row() -> Vec<Value> {
    let t = |s: &str| Value::Text(Str::from(s));
    let n = |s: &str| Value::Numeric(Numeric::Finite(Decimal::parse(s).expect("decimal")));
    let tod = |h: i64, m: i64, s: i64, us: i64| ((h * 60 + m) * 60 + s) * 1_000_000 + us;
    vec![
        Value::Int32(1),
        Value::Bool(true),
        Value::Int16(-12),
        Value::Int32(1234),
        Value::Int64(-1_234_567_890_123),
        Value::Float32(1.1),
        Value::Float64(1e-7),
        n("-123.450"),
        n("98765.43210"),
        Value::Money(Numeric::Finite(Decimal::parse("-12.34").expect("d"))),
        t("tab\there \"quoted\" \\ é 😀 \u{1}"),
        t("world"),
        Value::Bytes(Bytes::from_static(&[0, 1, 2, 0xfb, 0xff])),
        Value::Date(Date::Days(days_from_civil(-44, 3, 15) as i32)),
        Value::Time(tod(23, 59, 59, 999_999)),
        Value::Time(tod(7, 8, 9, 120_000)),
        Value::TimeTz {
            micros: tod(1, 2, 3, 400_000),
            offset_seconds: -5 * 3600,
        },
        Value::Timestamp(parse_local_timestamp("1969-12-31 23:59:59.999999").expect("ts")),
        Value::Timestamp(Timestamp::PosInfinity),
        Value::TimestampTz(parse_zoned_timestamp("12024-05-06 07:08:09.5+05:30").expect("ts")),
        Value::TimestampTz(Timestamp::NegInfinity),
        Value::Interval(Interval {
            months: 14,
            days: -3,
            micros: -(tod(4, 5, 6, 700_000)),
        }),
        Value::Uuid([
            0xf4, 0x7a, 0xc1, 0x0b, 0x58, 0xcc, 0x43, 0x72, 0xa5, 0x67, 0x0e, 0x02, 0xb2, 0xc3,
            0xd4, 0x79,
        ]),
        Value::Json(Str::from("{\"a\": [1, 2.5, null]}")),
        Value::Json(Str::from("{\"a\": [1, 2.5, null]}")),
        Value::Xml(Str::from("<a>x</a>")),
        t("192.168.0.1/24"),
        Value::Bits(Bits {
            len: 1,
            data: Bytes::from_static(&[0x80]),
        }),
        Value::Bits(Bits {
            len: 10,
            data: Bytes::from_static(&[0b1000_0000, 0b0100_0000]),
        }),
        Value::Bits(Bits {
            len: 16,
            data: Bytes::from_static(&[0xf0, 0x0f]),
        }),
        Value::Array(Array::one_dim(vec![
            Value::Int32(1),
            Value::Null,
            Value::Int32(-3),
        ])),
        Value::Array(Array::one_dim(vec![t("a"), t(""), Value::Null])),
        Value::Array(Array::one_dim(vec![
            Value::Date(Date::Days(0)),
            Value::Date(Date::PosInfinity),
        ])),
        Value::Enum(Str::from("green")),
        t("\"a\"=>\"1\", \"b\"=>NULL"),
        t("[1,10)"),
        t("top.science.astronomy"),
    ]
}

fn null_row() -> Vec<Value> {
    let mut r = vec![Value::Null; 37];
    r[0] = Value::Int32(2);
    r
}

fn toast_row() -> Vec<Value> {
    let mut r = vec![Value::Null; 37];
    r[0] = Value::Int32(3);
    for i in [10, 11, 12, 23, 24, 25, 30, 31, 34] {
        r[i] = Value::Unavailable;
    }
    r
}

fn event(row: Vec<Value>, op: Op) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(table()),
        before: if op == Op::Delete {
            Some(row.clone())
        } else {
            None
        },
        after: if op == Op::Delete { None } else { Some(row) },
        source: SourceInfo {
            version: "3.6.3.Final".into(),
            connector: "postgresql".into(),
            name: "golden".into(),
            ts_us: 1_700_000_000_123_456,
            snapshot: SnapshotMarker::False,
            db: "db".into(),
            sequence: Some("[\"1\",\"2\"]".into()),
            schema: "public".into(),
            table: "all_types".into(),
            tx_id: Some(7),
            lsn: Some(2),
            ..Default::default()
        },
        ts_ns: 1_700_000_000_987_654_321,
        transaction: Some(cdc_envelope::TransactionBlock {
            id: "7:2".into(),
            total_order: 1,
            data_collection_order: 1,
        }),
        message: None,
        position: Default::default(),
        key_change: None,
    }
}

const MODES: &[(&str, &[(&str, &str)])] = &[
    ("defaults", &[]),
    ("decimal_double", &[("decimal.handling.mode", "double")]),
    ("decimal_string", &[("decimal.handling.mode", "string")]),
    (
        "time_adaptive_time_microseconds",
        &[("time.precision.mode", "adaptive_time_microseconds")],
    ),
    ("time_connect", &[("time.precision.mode", "connect")]),
    (
        "time_microseconds",
        &[("time.precision.mode", "microseconds")],
    ),
    (
        "time_nanoseconds",
        &[("time.precision.mode", "nanoseconds")],
    ),
    ("time_isostring", &[("time.precision.mode", "isostring")]),
    ("binary_base64", &[("binary.handling.mode", "base64")]),
    (
        "binary_base64_url_safe",
        &[("binary.handling.mode", "base64-url-safe")],
    ),
    ("binary_hex", &[("binary.handling.mode", "hex")]),
    ("interval_string", &[("interval.handling.mode", "string")]),
    ("hstore_map", &[("hstore.handling.mode", "map")]),
    (
        "no_replace_null_with_default",
        &[("value.converter.replace.null.with.default", "false")],
    ),
    (
        "propagate_source_type",
        &[(
            "column.propagate.source.type",
            ".*\\.c_(numeric|varchar|bit)",
        )],
    ),
    (
        "custom_placeholder",
        &[("unavailable.value.placeholder", "~toast~")],
    ),
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check_file(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from the golden file; if intended, rerun with UPDATE_GOLDEN=1 and review the diff\n ours: {}",
        String::from_utf8_lossy(actual)
    );
}

#[test]
fn json_golden_both_directions() {
    for (mode, props) in MODES {
        let mut all = vec![("topic.prefix", "golden")];
        all.extend_from_slice(props);
        let opts = Options::from_properties(all).expect("options");
        let mut enc = JsonEncoder::new(opts.clone());
        let mut lines = Vec::new();
        for (row, op) in [
            (full_row(), Op::Create),
            (null_row(), Op::Update),
            (toast_row(), Op::Update),
            (null_row(), Op::Delete),
        ] {
            let rec = enc.encode(&event(row, op)).expect("encodes");
            lines.push(rec.key.expect("key"));
            lines.push(rec.value.expect("value"));
        }
        let mut file = Vec::new();
        for l in &lines {
            file.extend_from_slice(l);
            file.push(b'\n');
        }
        check_file(&format!("{mode}.jsonl"), &file);
        // Decode the golden records and encode again: same bytes.
        let mut dec = JsonDecoder::new(opts.clone());
        let mut shared = JsonDecoder::new(opts.clone());
        for pair in lines.chunks(2) {
            let back = dec
                .decode(Some(&pair[0]), Some(&pair[1]))
                .expect("golden decodes")
                .event
                .expect("event");
            // The zero-copy path decodes exactly the same event.
            let zero_copy = shared
                .decode_bytes(Some(&pair[0]), Some(&Bytes::copy_from_slice(&pair[1])))
                .expect("golden decodes")
                .event
                .expect("event");
            assert_eq!(format!("{zero_copy:?}"), format!("{back:?}"), "{mode}");
            let again = JsonEncoder::new(opts.clone())
                .encode(&back)
                .expect("encodes");
            assert_eq!(
                again.key.as_deref(),
                Some(pair[0].as_slice()),
                "{mode}: key"
            );
            assert!(
                again.value.as_deref() == Some(pair[1].as_slice()),
                "{mode}: decode→encode differs\n ours: {}\n file: {}",
                String::from_utf8_lossy(again.value.as_deref().unwrap_or_default()),
                String::from_utf8_lossy(&pair[1])
            );
        }
    }
}

#[test]
fn avro_golden_both_directions() {
    for (mode, props) in MODES {
        let mut all = vec![("topic.prefix", "golden")];
        all.extend_from_slice(props);
        let opts = Options::from_properties(all).expect("options");
        let mut enc = AvroEncoder::new(opts.clone());
        let ev = event(full_row(), Op::Create);
        let (key_schema, value_schema) = enc.schemas(&ev).expect("schemas");
        let mut file = Vec::new();
        file.extend_from_slice(key_schema.as_deref().unwrap_or("null").as_bytes());
        file.push(b'\n');
        file.extend_from_slice(value_schema.as_bytes());
        file.push(b'\n');
        let mut datums = Vec::new();
        for (row, op) in [
            (full_row(), Op::Create),
            (null_row(), Op::Update),
            (toast_row(), Op::Update),
        ] {
            let e = event(row, op);
            let mut d = Vec::new();
            enc.encode_value_into(&e, &mut d).expect("encodes");
            file.extend(d.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
            file.push(b'\n');
            datums.push((e, d));
        }
        check_file(&format!("{mode}.avro.txt"), &file);
        let mut dec = AvroDecoder::new(opts.clone());
        let mut shared = AvroDecoder::new(opts.clone());
        let mut jenc = JsonEncoder::new(opts.clone());
        for (e, d) in &datums {
            let back = dec
                .decode_value(&value_schema, key_schema.as_deref(), d)
                .expect("decodes");
            // The zero-copy path decodes exactly the same event.
            let zero_copy = shared
                .decode_value_shared(
                    &value_schema,
                    key_schema.as_ref(),
                    &Bytes::copy_from_slice(d),
                )
                .expect("decodes");
            assert_eq!(format!("{zero_copy:?}"), format!("{back:?}"), "{mode}");
            // Same JSON as the original event: Avro carries exactly the Connect values.
            assert_eq!(
                jenc.encode(&back).expect("json"),
                jenc.encode(e).expect("json"),
                "{mode}"
            );
        }
    }
}
