//! Encode / decode cost of one change event of the seed's `employees` table
//! (emp_id int4 PK, name varchar(100) not null, email varchar(100),
//! department varchar(50), salary numeric(10,2), hire_date date,
//! created_at timestamp default current_timestamp), with the seed's
//! connector settings, compared with naive `serde_json::Value` and
//! `apache_avro::types::Value` paths.
//!
//! `cargo bench -p cdc-envelope --bench envelope`

use std::hint::black_box;
use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use cdc_envelope::temporal::{days_from_civil, parse_local_timestamp};
use cdc_envelope::{
    AvroDecoder, AvroEncoder, ChangeEvent, Column, Date, Decimal, DecodedRecord, JsonDecoder,
    JsonEncoder, Numeric, Op, Options, PgType, SnapshotMarker, SourceInfo, Str, TableId,
    TableSchema, Value,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn employees() -> Arc<TableSchema> {
    let col = |name: &str, t: PgType, optional: bool| Column {
        optional,
        ..Column::new(name, t)
    };
    let varchar = |n: i32| PgType::base(1043, "varchar").with_modifier(n + 4);
    Arc::new(TableSchema {
        id: TableId::new("public", "employees"),
        relation_oid: 16_385,
        columns: vec![
            Column {
                is_key: true,
                default_expr: Some("nextval('employees_emp_id_seq'::regclass)".into()),
                ..col("emp_id", PgType::base(23, "int4"), false)
            },
            col("name", varchar(100), false),
            col("email", varchar(100), true),
            col("department", varchar(50), true),
            col(
                "salary",
                PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4),
                true,
            ),
            col("hire_date", PgType::base(1082, "date"), true),
            Column {
                default_expr: Some("CURRENT_TIMESTAMP".into()),
                ..col("created_at", PgType::base(1114, "timestamp"), true)
            },
        ],
        version: 1,
    })
}

fn event() -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: Some(employees()),
        before: None,
        after: Some(vec![
            Value::Int32(3),
            Value::Text(Str::from("John Doe")),
            Value::Text(Str::from("john@example.com")),
            Value::Text(Str::from("Engineering")),
            Value::Numeric(Numeric::Finite(
                Decimal::parse("75000.00").expect("decimal"),
            )),
            Value::Date(Date::Days(days_from_civil(2024, 1, 15) as i32)),
            Value::Timestamp(parse_local_timestamp("2024-01-15 10:30:00").expect("ts")),
        ]),
        source: SourceInfo {
            version: "3.6.3.Final".into(),
            connector: "postgresql".into(),
            name: "pgsource".into(),
            ts_us: 1_795_492_115_246_373,
            snapshot: SnapshotMarker::False,
            db: "bf_source".into(),
            sequence: Some("[null,\"588651920\"]".into()),
            schema: "public".into(),
            table: "employees".into(),
            tx_id: Some(848),
            lsn: Some(588_651_920),
            ..Default::default()
        },
        ts_ns: 1_795_492_115_317_437_453,
        transaction: None,
        message: None,
        position: Default::default(),
        key_change: None,
    }
}

fn seed_options() -> Options {
    Options::from_properties([
        ("topic.prefix", "pgsource"),
        ("decimal.handling.mode", "string"),
        ("time.precision.mode", "connect"),
        ("tombstones.on.delete", "false"),
    ])
    .expect("seed options")
}

/// What a straightforward implementation does: build a `serde_json::Value`
/// tree (schema and payload) per event and serialize it.
fn naive_json(ev: &ChangeEvent, schema: &serde_json::Value) -> Vec<u8> {
    use serde_json::json;
    let after = ev.after.as_ref().expect("row");
    let text = |v: &Value| match v {
        Value::Text(s) => json!(s.as_str()),
        _ => serde_json::Value::Null,
    };
    let payload = json!({
        "before": null,
        "after": {
            "emp_id": match after[0] { Value::Int32(i) => i, _ => 0 },
            "name": text(&after[1]),
            "email": text(&after[2]),
            "department": text(&after[3]),
            "salary": match &after[4] { Value::Numeric(Numeric::Finite(d)) => json!(d.as_str()), _ => json!(null) },
            "hire_date": match after[5] { Value::Date(Date::Days(d)) => d, _ => 0 },
            "created_at": match after[6] { Value::Timestamp(t) => t.micros_since_unix().unwrap_or(0) / 1000, _ => 0 },
        },
        "source": {
            "version": ev.source.version, "connector": ev.source.connector, "name": ev.source.name,
            "ts_ms": ev.source.ts_us / 1000, "snapshot": ev.source.snapshot.as_str(), "db": ev.source.db,
            "sequence": ev.source.sequence, "ts_us": ev.source.ts_us, "ts_ns": ev.source.ts_us * 1000,
            "schema": ev.source.schema, "table": ev.source.table, "txId": ev.source.tx_id, "lsn": ev.source.lsn,
            "xmin": null, "origin": null, "origin_lsn": null,
        },
        "transaction": null,
        "op": ev.op.code(),
        "ts_ms": ev.ts_ns / 1_000_000,
        "ts_us": ev.ts_ns / 1000,
        "ts_ns": ev.ts_ns,
    });
    serde_json::to_vec(&json!({"schema": schema, "payload": payload})).expect("serializes")
}

/// The same with apache-avro's `types::Value`.
fn naive_avro(
    ev: &ChangeEvent,
    writer: &apache_avro::writer::datum::GenericDatumWriter<'_>,
) -> Vec<u8> {
    let after = ev.after.as_ref().expect("row");
    let s = |v: &Value| match v {
        Value::Text(t) => AvroValue::Union(1, Box::new(AvroValue::String(t.as_str().to_owned()))),
        _ => AvroValue::Union(0, Box::new(AvroValue::Null)),
    };
    let opt_long = |v: Option<i64>| match v {
        Some(v) => AvroValue::Union(1, Box::new(AvroValue::Long(v))),
        None => AvroValue::Union(0, Box::new(AvroValue::Null)),
    };
    let row = AvroValue::Record(vec![
        (
            "emp_id".into(),
            AvroValue::Int(match after[0] {
                Value::Int32(i) => i,
                _ => 0,
            }),
        ),
        (
            "name".into(),
            AvroValue::String(match &after[1] {
                Value::Text(t) => t.as_str().to_owned(),
                _ => String::new(),
            }),
        ),
        ("email".into(), s(&after[2])),
        ("department".into(), s(&after[3])),
        (
            "salary".into(),
            match &after[4] {
                Value::Numeric(Numeric::Finite(d)) => {
                    AvroValue::Union(1, Box::new(AvroValue::String(d.as_str().to_owned())))
                }
                _ => AvroValue::Union(0, Box::new(AvroValue::Null)),
            },
        ),
        (
            "hire_date".into(),
            AvroValue::Union(
                1,
                Box::new(AvroValue::Date(match after[5] {
                    Value::Date(Date::Days(d)) => d,
                    _ => 0,
                })),
            ),
        ),
        (
            "created_at".into(),
            AvroValue::Union(
                0,
                Box::new(AvroValue::TimestampMillis(match after[6] {
                    Value::Timestamp(t) => t.micros_since_unix().unwrap_or(0) / 1000,
                    _ => 0,
                })),
            ),
        ),
    ]);
    let src = &ev.source;
    let source = AvroValue::Record(vec![
        ("version".into(), AvroValue::String(src.version.to_string())),
        (
            "connector".into(),
            AvroValue::String(src.connector.to_string()),
        ),
        ("name".into(), AvroValue::String(src.name.to_string())),
        ("ts_ms".into(), AvroValue::Long(src.ts_us / 1000)),
        (
            "snapshot".into(),
            AvroValue::Union(0, Box::new(AvroValue::String(src.snapshot.as_str().into()))),
        ),
        ("db".into(), AvroValue::String(src.db.to_string())),
        (
            "sequence".into(),
            match &src.sequence {
                Some(s) => AvroValue::Union(1, Box::new(AvroValue::String(s.to_string()))),
                None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            },
        ),
        ("ts_us".into(), opt_long(Some(src.ts_us))),
        ("ts_ns".into(), opt_long(Some(src.ts_us * 1000))),
        ("schema".into(), AvroValue::String(src.schema.to_string())),
        ("table".into(), AvroValue::String(src.table.to_string())),
        ("txId".into(), opt_long(src.tx_id)),
        ("lsn".into(), opt_long(src.lsn)),
        ("xmin".into(), opt_long(None)),
        (
            "origin".into(),
            AvroValue::Union(0, Box::new(AvroValue::Null)),
        ),
        ("origin_lsn".into(), opt_long(None)),
    ]);
    let value = AvroValue::Record(vec![
        (
            "before".into(),
            AvroValue::Union(0, Box::new(AvroValue::Null)),
        ),
        ("after".into(), AvroValue::Union(1, Box::new(row))),
        ("source".into(), source),
        (
            "transaction".into(),
            AvroValue::Union(0, Box::new(AvroValue::Null)),
        ),
        ("op".into(), AvroValue::String(ev.op.code().into())),
        ("ts_ms".into(), opt_long(Some(ev.ts_ns / 1_000_000))),
        ("ts_us".into(), opt_long(Some(ev.ts_ns / 1000))),
        ("ts_ns".into(), opt_long(Some(ev.ts_ns))),
    ]);
    writer
        .write_value_to_vec(value)
        .expect("apache-avro encodes")
}

/// Runs `f` `iters` times and returns the wall-clock time it took.
fn timed<R>(iters: u64, mut f: impl FnMut() -> R) -> std::time::Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let ev = event();
    let opts = seed_options();
    let mut json = JsonEncoder::new(opts.clone());
    let mut avro = AvroEncoder::new(opts.clone());
    let mut buf = Vec::with_capacity(8192);

    let mut g = c.benchmark_group("employees");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_encode_with_schema", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                buf.clear();
                json.encode_value_into(black_box(&ev), &mut buf)
                    .expect("encodes");
                black_box(buf.len())
            })
        })
    });
    let mut json_default = JsonEncoder::new(Options::with_prefix("pgsource"));
    g.bench_function("json_encode_with_schema_default_modes", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                buf.clear();
                json_default
                    .encode_value_into(black_box(&ev), &mut buf)
                    .expect("encodes");
                black_box(buf.len())
            })
        })
    });
    let mut json_noschema = JsonEncoder::new(Options {
        value_schemas_enable: false,
        ..opts.clone()
    });
    g.bench_function("json_encode_without_schema", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                buf.clear();
                json_noschema
                    .encode_value_into(black_box(&ev), &mut buf)
                    .expect("encodes");
                black_box(buf.len())
            })
        })
    });
    g.bench_function("avro_encode_framed", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                buf.clear();
                avro.encode_value_framed(black_box(&ev), 1, &mut buf)
                    .expect("encodes");
                black_box(buf.len())
            })
        })
    });

    let mut encoded = Vec::new();
    json.encode_value_into(&ev, &mut encoded).expect("encodes");
    let mut key = Vec::new();
    json.encode_key_into(&ev, &mut key).expect("encodes");
    let mut jdec = JsonDecoder::new(opts.clone());
    g.bench_function("json_decode_with_schema", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    jdec.decode(Some(black_box(&key)), Some(black_box(&encoded)))
                        .expect("decodes"),
                )
            })
        })
    });
    // The same from shared bytes: strings are slices of the record.
    let encoded_bytes = bytes::Bytes::from(encoded.clone());
    let mut jdec_bytes = JsonDecoder::new(opts.clone());
    g.bench_function("json_decode_with_schema_bytes", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    jdec_bytes
                        .decode_bytes(Some(black_box(&key)), Some(black_box(&encoded_bytes)))
                        .expect("decodes"),
                )
            })
        })
    });
    // The same into one reused record: no per-event allocation.
    let mut jdec_into = JsonDecoder::new(opts.clone());
    let mut record = DecodedRecord::default();
    g.bench_function("json_decode_with_schema_into", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                jdec_into
                    .decode_bytes_into(
                        Some(black_box(&key)),
                        Some(black_box(&encoded_bytes)),
                        &mut record,
                    )
                    .expect("decodes");
                black_box(&record);
            })
        })
    });
    let (_, value_schema) = avro.schemas(&ev).expect("schemas");
    let mut datum = Vec::new();
    avro.encode_value_into(&ev, &mut datum).expect("encodes");
    let mut adec = AvroDecoder::new(opts.clone());
    g.bench_function("avro_decode", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    adec.decode_value(&value_schema, None, black_box(&datum))
                        .expect("decodes"),
                )
            })
        })
    });

    // Schema `Arc` as a registry cache hands it out, datum as `Bytes`.
    let datum_bytes = bytes::Bytes::from(datum.clone());
    let mut adec_shared = AvroDecoder::new(opts.clone());
    g.bench_function("avro_decode_shared", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    adec_shared
                        .decode_value_shared(&value_schema, None, black_box(&datum_bytes))
                        .expect("decodes"),
                )
            })
        })
    });

    // The same into one reused event.
    let mut adec_into = AvroDecoder::new(opts.clone());
    let mut slot = None;
    g.bench_function("avro_decode_shared_into", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                adec_into
                    .decode_value_shared_into(
                        &value_schema,
                        None,
                        black_box(&datum_bytes),
                        &mut slot,
                    )
                    .expect("decodes");
                black_box(&slot);
            })
        })
    });

    // Naive paths, for the ratio.
    let schema_json: serde_json::Value = serde_json::from_slice(&encoded)
        .map(|v: serde_json::Value| v["schema"].clone())
        .expect("schema json");
    g.bench_function("naive_serde_json_value_encode", |b| {
        b.iter_custom(|n| timed(n, || naive_json(black_box(&ev), &schema_json)))
    });
    let avro_schema =
        apache_avro::Schema::parse_str(&value_schema).expect("apache-avro parses our schema");
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&avro_schema)
        .build()
        .expect("writer");
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&avro_schema)
        .build()
        .expect("reader");
    assert_eq!(naive_avro(&ev, &writer), datum, "naive and fast Avro agree");
    g.bench_function("naive_apache_avro_value_encode", |b| {
        b.iter_custom(|n| timed(n, || naive_avro(black_box(&ev), &writer)))
    });
    g.bench_function("naive_serde_json_value_decode", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    serde_json::from_slice::<serde_json::Value>(black_box(&encoded))
                        .expect("parses"),
                )
            })
        })
    });
    g.bench_function("naive_apache_avro_value_decode", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                black_box(
                    reader
                        .read_value(&mut black_box(&datum[..]))
                        .expect("decodes"),
                )
            })
        })
    });
    g.finish();
}

criterion_group!(envelope, benches);
criterion_main!(envelope);
