//! The decoders' allocation-saving paths: strings handed out as slices of
//! the record when it comes as `Bytes` (copies only for JSON strings with
//! escapes), `source` strings shared across events, plans found by schema
//! identity, and that all of them decode exactly what the copying paths do.

use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::{
    AvroDecoder, AvroEncoder, ChangeEvent, Column, Date, Decimal, JsonDecoder, JsonEncoder,
    Numeric, Op, Options, PgType, SnapshotMarker, SourceInfo, Str, TableId, TableSchema, Value,
};

fn table() -> Arc<TableSchema> {
    let varchar = |n: i32| PgType::base(1043, "varchar").with_modifier(n + 4);
    Arc::new(TableSchema {
        id: TableId::new("public", "employees"),
        relation_oid: 16_385,
        columns: vec![
            Column {
                is_key: true,
                optional: false,
                ..Column::new("emp_id", PgType::base(23, "int4"))
            },
            Column {
                optional: false,
                ..Column::new("name", varchar(100))
            },
            Column::new("email", varchar(100)),
            Column::new(
                "salary",
                PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4),
            ),
            Column::new("hire_date", PgType::base(1082, "date")),
        ],
        version: 1,
    })
}

fn event(id: i32, name: &str, email: Option<&str>, salary: Numeric) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: Some(table()),
        before: None,
        after: Some(vec![
            Value::Int32(id),
            Value::Text(Str::from(name)),
            email.map_or(Value::Null, |e| Value::Text(Str::from(e))),
            Value::Numeric(salary),
            Value::Date(Date::Days(19_737)),
        ]),
        source: SourceInfo {
            version: "3.6.3.Final".into(),
            connector: "postgresql".into(),
            name: "pgsource".into(),
            ts_us: 1_795_492_115_246_373,
            snapshot: SnapshotMarker::False,
            db: "bf_source".into(),
            sequence: Some(format!("[null,\"{id}\"]").into()),
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

fn options() -> Options {
    Options::from_properties([
        ("topic.prefix", "pgsource"),
        ("decimal.handling.mode", "string"),
        ("time.precision.mode", "connect"),
        // Carries `numeric` to the decoder: decimals come back as numbers.
        ("column.propagate.source.type", ".*\\.salary"),
    ])
    .expect("options")
}

fn decimal(s: &str) -> Numeric {
    Numeric::Finite(Decimal::parse(s).expect("decimal"))
}

/// True when `s` points into `buf`.
fn within(s: &Str, buf: &Bytes) -> bool {
    let (p, b) = (s.as_ptr() as usize, buf.as_ptr() as usize);
    p >= b && p + s.len() <= b + buf.len()
}

fn text(v: &Value) -> &Str {
    match v {
        Value::Text(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn json_strings_are_slices_of_the_record_unless_escaped() {
    let mut enc = JsonEncoder::new(options());
    let mut dec = JsonDecoder::new(options());
    let mut copying = JsonDecoder::new(options());
    for (name, escaped) in [
        ("John Doe", false),
        ("John \"JD\" Doe", true),
        ("Zoë \\ tab\there", true),
        ("emoji \u{1F600} snowman \u{2603}", false),
    ] {
        let ev = event(3, name, Some("john@example.com"), decimal("75000.00"));
        let rec = enc.encode(&ev).expect("encodes");
        let value = Bytes::from(rec.value.expect("value"));
        let out = dec
            .decode_bytes(rec.key.as_deref(), Some(&value))
            .expect("decodes");
        assert_eq!(
            out,
            copying
                .decode(rec.key.as_deref(), Some(&value))
                .expect("decodes")
        );
        let back = out.event.expect("event");
        assert_eq!(back.after, ev.after, "{name}");
        let row = back.after.as_ref().expect("row");
        assert_eq!(text(&row[1]), name);
        assert_eq!(within(text(&row[1]), &value), !escaped, "{name}");
        assert!(within(text(&row[2]), &value), "plain email is a slice");
        match &row[3] {
            Value::Numeric(Numeric::Finite(d)) => {
                assert_eq!(d.as_str(), "75000.00");
                let p = d.as_bytes().as_ptr() as usize;
                assert!(p >= value.as_ptr() as usize && p < value.as_ptr() as usize + value.len());
            }
            other => panic!("salary: {other:?}"),
        }
        // `sequence` has escaped quotes in JSON: a copy, but equal.
        assert_eq!(back.source.sequence, ev.source.sequence);
        assert_eq!(back.source, ev.source);
    }
}

#[test]
fn json_source_strings_are_shared_across_events() {
    let mut enc = JsonEncoder::new(options());
    let mut dec = JsonDecoder::new(options());
    let mut decode = |id: i32| {
        let rec = enc
            .encode(&event(id, "x", None, decimal("1.00")))
            .expect("encodes");
        dec.decode(rec.key.as_deref(), rec.value.as_deref())
            .expect("decodes")
            .event
            .expect("event")
    };
    let (a, b) = (decode(1), decode(2));
    for (x, y) in [
        (&a.source.version, &b.source.version),
        (&a.source.connector, &b.source.connector),
        (&a.source.name, &b.source.name),
        (&a.source.db, &b.source.db),
        (&a.source.schema, &b.source.schema),
        (&a.source.table, &b.source.table),
    ] {
        assert_eq!(x, y);
        assert_eq!(x.as_ptr(), y.as_ptr(), "{x} is shared, not re-allocated");
    }
    assert_ne!(a.source.sequence, b.source.sequence);
}

#[test]
fn json_decimal_specials_and_placeholders_take_the_generic_path() {
    let mut enc = JsonEncoder::new(options());
    let mut dec = JsonDecoder::new(options());
    for salary in [Numeric::NaN, Numeric::PosInfinity, Numeric::NegInfinity] {
        let ev = event(1, "n", None, salary.clone());
        let rec = enc.encode(&ev).expect("encodes");
        let value = Bytes::from(rec.value.expect("value"));
        let back = dec
            .decode_bytes(rec.key.as_deref(), Some(&value))
            .expect("decodes")
            .event
            .expect("event");
        assert_eq!(back.after.expect("row")[3], Value::Numeric(salary));
    }
    // A text column holding the unavailable-value placeholder.
    let mut ev = event(1, "n", None, decimal("1.00"));
    if let Some(row) = ev.after.as_mut() {
        row[2] = Value::Unavailable;
    }
    let rec = enc.encode(&ev).expect("encodes");
    let value = Bytes::from(rec.value.expect("value"));
    let back = dec
        .decode_bytes(rec.key.as_deref(), Some(&value))
        .expect("decodes")
        .event
        .expect("event");
    assert_eq!(back.after.expect("row")[2], Value::Unavailable);
}

#[test]
fn json_integers_at_the_edges() {
    // ts_ns / txId / lsn go through the integer fast path; values beyond
    // i64 are rejected as before.
    let mut enc = JsonEncoder::new(options());
    let mut dec = JsonDecoder::new(options());
    for v in [
        0,
        1,
        -1,
        9,
        10,
        i64::MAX,
        i64::MIN,
        1_000_000_000_000_000_000,
    ] {
        let mut ev = event(1, "n", None, decimal("1.00"));
        ev.source.lsn = Some(v);
        ev.source.tx_id = Some(v.wrapping_neg());
        let rec = enc.encode(&ev).expect("encodes");
        let back = dec
            .decode(rec.key.as_deref(), rec.value.as_deref())
            .expect("decodes")
            .event
            .expect("event");
        assert_eq!(back.source.lsn, Some(v));
        assert_eq!(back.source.tx_id, Some(v.wrapping_neg()));
    }
    let rec = enc
        .encode(&event(1, "n", None, decimal("1.00")))
        .expect("encodes");
    let value = String::from_utf8(rec.value.expect("value")).expect("utf8");
    for bad in [
        "9223372036854775808",
        "-9223372036854775809",
        "12345678901234567890",
    ] {
        let v = value.replace("\"lsn\":588651920", &format!("\"lsn\":{bad}"));
        assert_ne!(v, value);
        assert!(
            dec.decode(rec.key.as_deref(), Some(v.as_bytes())).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn avro_shared_path_is_zero_copy_and_identical() {
    let opts = options();
    let mut enc = AvroEncoder::new(opts.clone());
    let mut copying = AvroDecoder::new(opts.clone());
    let mut dec = AvroDecoder::new(opts.clone());
    let mut prev: Option<ChangeEvent> = None;
    for (i, name) in ["John Doe", "Zoë \"quoted\"", ""].into_iter().enumerate() {
        let ev = event(i as i32, name, Some("a@b.c"), decimal("-12.50"));
        let (key_schema, value_schema) = enc.schemas(&ev).expect("schemas");
        let mut d = Vec::new();
        enc.encode_value_into(&ev, &mut d).expect("encodes");
        let datum = Bytes::from(d);
        let a = copying
            .decode_value(&value_schema, key_schema.as_deref(), &datum)
            .expect("decodes");
        let b = dec
            .decode_value_shared(&value_schema, key_schema.as_ref(), &datum)
            .expect("decodes");
        assert_eq!(a, b);
        assert_eq!(b.after, ev.after);
        assert_eq!(b.source, ev.source);
        let row = b.after.as_ref().expect("row");
        if !name.is_empty() {
            assert!(
                within(text(&row[1]), &datum),
                "Avro strings never need unescaping"
            );
        }
        assert!(within(text(&row[2]), &datum));
        assert!(within(
            b.source.sequence.as_ref().expect("sequence"),
            &datum
        ));
        if let Some(p) = &prev {
            // Same schema Arc: same plan, same reconstructed table.
            assert!(Arc::ptr_eq(
                p.table.as_ref().expect("table"),
                b.table.as_ref().expect("table")
            ));
            assert_eq!(p.source.connector.as_ptr(), b.source.connector.as_ptr());
        }
        prev = Some(b);
    }
}

#[test]
fn avro_shared_plan_follows_schema_changes() {
    // A different schema Arc (even with equal text) or a different key
    // schema must not reuse a plan by mistake.
    let opts = options();
    let mut enc = AvroEncoder::new(opts.clone());
    let mut dec = AvroDecoder::new(opts.clone());
    let ev = event(7, "n", None, decimal("1.00"));
    let (key_schema, value_schema) = enc.schemas(&ev).expect("schemas");
    let mut d = Vec::new();
    enc.encode_value_into(&ev, &mut d).expect("encodes");
    let datum = Bytes::from(d);
    let copy: Arc<str> = Arc::from(value_schema.as_ref());
    let with_key = dec
        .decode_value_shared(&value_schema, key_schema.as_ref(), &datum)
        .expect("decodes");
    let without_key = dec
        .decode_value_shared(&copy, None, &datum)
        .expect("decodes");
    let again = dec
        .decode_value_shared(&value_schema, key_schema.as_ref(), &datum)
        .expect("decodes");
    let key_cols = |e: &ChangeEvent| -> Vec<bool> {
        e.table
            .as_ref()
            .expect("table")
            .columns
            .iter()
            .map(|c| c.is_key)
            .collect()
    };
    assert!(key_cols(&with_key)[0]);
    assert!(key_cols(&without_key).iter().all(|k| !k));
    assert!(key_cols(&again)[0]);
    assert_eq!(with_key.after, without_key.after);
    // Garbage after a cached plan is still a typed error, never a panic.
    for cut in 0..datum.len() {
        let _ = dec.decode_value_shared(&value_schema, None, &datum.slice(..cut));
    }
    let mut longer = datum.to_vec();
    longer.push(0);
    assert!(dec
        .decode_value_shared(&value_schema, None, &Bytes::from(longer))
        .is_err());
}

#[test]
fn json_keys_out_of_order_escaped_or_odd_still_decode() {
    let mut enc = JsonEncoder::new(options());
    let ev = event(5, "Ann", Some("ann@example.com"), decimal("10.50"));
    let rec = enc.encode(&ev).expect("encodes");
    let value = String::from_utf8(rec.value.expect("value")).expect("utf8");
    let variants = [
        // An escaped key equal to a column name, and one in `source`.
        value
            .replace("\"name\":\"Ann\"", "\"n\\u0061me\":\"Ann\"")
            .replace("\"db\":", "\"\\u0064b\":"),
        // Row fields and envelope fields in another order.
        value.replace(
            "\"emp_id\":5,\"name\":\"Ann\"",
            "\"name\":\"Ann\",\"emp_id\":5",
        ),
        value.replace(
            "\"version\":\"3.6.3.Final\",\"connector\":\"postgresql\"",
            "\"connector\":\"postgresql\",\"version\":\"3.6.3.Final\"",
        ),
        // Whitespace between tokens.
        value.replace("\"email\":", " \"email\" : "),
    ];
    for v in &variants {
        assert_ne!(v, &value);
        for shared in [false, true] {
            let mut dec = JsonDecoder::new(options());
            // Twice: schema parse, then the cached fast path.
            for _ in 0..2 {
                let out = if shared {
                    dec.decode_bytes(None, Some(&Bytes::copy_from_slice(v.as_bytes())))
                } else {
                    dec.decode(None, Some(v.as_bytes()))
                }
                .unwrap_or_else(|e| panic!("{v}: {e}"))
                .event
                .expect("event");
                assert_eq!(out.after, ev.after, "{v}");
                assert_eq!(out.source, ev.source, "{v}");
            }
        }
    }
    // Truncated anywhere: a typed error, never a panic.
    let mut dec = JsonDecoder::new(options());
    dec.decode(None, Some(value.as_bytes())).expect("decodes");
    for cut in 0..value.len() {
        let _ = dec.decode_bytes(
            None,
            Some(&Bytes::copy_from_slice(&value.as_bytes()[..cut])),
        );
    }
}

#[test]
fn json_columns_whose_names_need_escapes() {
    let table = Arc::new(TableSchema {
        id: TableId::new("public", "odd"),
        relation_oid: 1,
        columns: vec![
            Column {
                is_key: true,
                optional: false,
                ..Column::new("id", PgType::base(23, "int4"))
            },
            Column::new("we\"ird", PgType::base(25, "text")),
            Column::new("back\\slash", PgType::base(25, "text")),
            Column::new("tab\there", PgType::base(23, "int4")),
        ],
        version: 1,
    });
    let ev = ChangeEvent {
        op: Op::Create,
        table: Some(table),
        before: None,
        after: Some(vec![
            Value::Int32(1),
            Value::Text(Str::from("a\"b")),
            Value::Text(Str::from("c\\d")),
            Value::Int32(-7),
        ]),
        source: SourceInfo {
            name: "pgsource".into(),
            schema: "public".into(),
            table: "odd".into(),
            ..Default::default()
        },
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Default::default(),
        key_change: None,
    };
    let mut enc = JsonEncoder::new(options());
    let mut dec = JsonDecoder::new(options());
    let rec = enc.encode(&ev).expect("encodes");
    let value = Bytes::from(rec.value.expect("value"));
    for _ in 0..2 {
        let back = dec
            .decode_bytes(rec.key.as_deref(), Some(&value))
            .expect("decodes")
            .event
            .expect("event");
        assert_eq!(back.after, ev.after);
    }
}
