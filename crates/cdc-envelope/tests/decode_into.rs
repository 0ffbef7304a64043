//! The decoders' reusing entry points (`JsonDecoder::decode_bytes_into`,
//! `AvroDecoder::decode_value_shared_into`) decode exactly what the
//! allocating ones do, record after record into one target: every golden
//! and captured record, sequences of very different events (no field of a
//! previous event survives), `source` blocks whose repeating fields change,
//! and bad input (typed errors, never a panic, the target left empty).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::{
    AvroDecoder, AvroEncoder, ChangeEvent, Column, DecodedRecord, Error, JsonDecoder, JsonEncoder,
    KeyChange, Op, Options, PgType, SnapshotMarker, SourceInfo, Str, TableId, TableSchema,
    TransactionBlock, Value,
};

/// Debug text: rows may hold NaN, which `PartialEq` never finds equal.
fn dbg<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

fn golden(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The golden modes: `(file stem, options)`.
fn golden_modes() -> Vec<(String, Options)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".jsonl").map(str::to_owned)
        })
        .collect();
    stems.sort();
    assert!(stems.len() >= 10, "golden files found: {stems:?}");
    stems
        .into_iter()
        .map(|stem| {
            let props: &[(&str, &str)] = match stem.as_str() {
                "decimal_double" => &[("decimal.handling.mode", "double")],
                "decimal_string" => &[("decimal.handling.mode", "string")],
                "time_adaptive_time_microseconds" => {
                    &[("time.precision.mode", "adaptive_time_microseconds")]
                }
                "time_connect" => &[("time.precision.mode", "connect")],
                "time_microseconds" => &[("time.precision.mode", "microseconds")],
                "time_nanoseconds" => &[("time.precision.mode", "nanoseconds")],
                "time_isostring" => &[("time.precision.mode", "isostring")],
                "binary_base64" => &[("binary.handling.mode", "base64")],
                "binary_base64_url_safe" => &[("binary.handling.mode", "base64-url-safe")],
                "binary_hex" => &[("binary.handling.mode", "hex")],
                "interval_string" => &[("interval.handling.mode", "string")],
                "hstore_map" => &[("hstore.handling.mode", "map")],
                "no_replace_null_with_default" => {
                    &[("value.converter.replace.null.with.default", "false")]
                }
                "propagate_source_type" => &[(
                    "column.propagate.source.type",
                    ".*\\.c_(numeric|varchar|bit)",
                )],
                "custom_placeholder" => &[("unavailable.value.placeholder", "~toast~")],
                _ => &[],
            };
            let mut all = vec![("topic.prefix", "golden")];
            all.extend_from_slice(props);
            (stem, Options::from_properties(all).expect("options"))
        })
        .collect()
}

/// An allocating and a reusing decoder with the same history: each record
/// goes through both, and they must agree (results and errors alike).
struct Both<D> {
    fresh: D,
    reusing: D,
}

impl<D> Both<D> {
    fn new(fresh: D, reusing: D) -> Self {
        Self { fresh, reusing }
    }
}

impl Both<JsonDecoder> {
    /// Decodes `key`/`value` both ways, the reusing way into `out`.
    fn json(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        out: &mut DecodedRecord,
        what: &str,
    ) -> Result<(), Error> {
        let value = value.map(Bytes::copy_from_slice);
        let expected = self.fresh.decode_bytes(key, value.as_ref());
        match (
            expected,
            self.reusing.decode_bytes_into(key, value.as_ref(), out),
        ) {
            (Ok(e), Ok(())) => {
                assert_eq!(dbg(out), dbg(&e), "{what}");
                Ok(())
            }
            (Err(e), Err(g)) => {
                assert_eq!(e, g, "{what}: same error");
                assert_eq!(
                    *out,
                    DecodedRecord::default(),
                    "{what}: empty after an error"
                );
                Err(g)
            }
            (e, g) => panic!("{what}: allocating path {e:?}, reusing path {g:?}"),
        }
    }
}

impl Both<AvroDecoder> {
    /// Decodes `datum` both ways, the reusing way into `slot`.
    fn avro(
        &mut self,
        schemas: (&Arc<str>, Option<&Arc<str>>),
        datum: &Bytes,
        slot: &mut Option<ChangeEvent>,
        what: &str,
    ) -> Result<(), Error> {
        let expected = self.fresh.decode_value_shared(schemas.0, schemas.1, datum);
        let got = self
            .reusing
            .decode_value_shared_into(schemas.0, schemas.1, datum, slot);
        match (expected, got) {
            (Ok(e), Ok(())) => {
                assert_eq!(dbg(slot.as_ref().expect("decoded")), dbg(&e), "{what}");
                Ok(())
            }
            (Err(e), Err(g)) => {
                assert_eq!(e, g, "{what}: same error");
                assert!(slot.is_none(), "{what}: empty after an error");
                Err(g)
            }
            (e, g) => panic!("{what}: allocating path {e:?}, reusing path {g:?}"),
        }
    }
}

#[test]
fn json_goldens_and_captures_into_one_record() {
    // One record for everything: modes, tables, ops and tombstones follow
    // each other in it.
    let mut out = DecodedRecord::default();
    let mut n = 0;
    for (stem, opts) in golden_modes() {
        let file = golden(&format!("{stem}.jsonl"));
        let lines: Vec<&[u8]> = file
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut dec = Both::new(JsonDecoder::new(opts.clone()), JsonDecoder::new(opts));
        for (i, pair) in lines.chunks(2).enumerate() {
            let what = format!("{stem}.jsonl record {i}");
            dec.json(Some(pair[0]), pair.get(1).copied(), &mut out, &what)
                .expect("golden decodes");
            n += 1;
        }
    }
    for file in common::FILES {
        let opts = common::options_for(file);
        let mut dec = Both::new(JsonDecoder::new(opts.clone()), JsonDecoder::new(opts));
        // Twice: the second pass takes the cached-schema path throughout.
        for pass in 0..2 {
            for c in common::captures(file) {
                let what = format!("{}:{} pass {pass}", c.file, c.line);
                dec.json(c.key.as_deref(), c.value.as_deref(), &mut out, &what)
                    .expect("capture decodes");
                n += 1;
            }
        }
    }
    assert!(n > 100, "{n} records");
}

/// Golden Avro files: key schema, value schema, then hex datums.
fn avro_golden(stem: &str) -> (Option<Arc<str>>, Arc<str>, Vec<Bytes>) {
    let text = String::from_utf8(golden(&format!("{stem}.avro.txt"))).expect("utf-8");
    let mut lines = text.lines();
    let key = lines.next().expect("key schema");
    let value = lines.next().expect("value schema");
    let datums = lines
        .map(|l| {
            Bytes::from(
                (0..l.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    (
        (key != "null").then(|| Arc::from(key)),
        Arc::from(value),
        datums,
    )
}

#[test]
fn avro_goldens_and_captures_into_one_event() {
    let mut slot = None;
    let mut n = 0;
    for (stem, opts) in golden_modes() {
        let (key, value, datums) = avro_golden(&stem);
        let mut dec = Both::new(AvroDecoder::new(opts.clone()), AvroDecoder::new(opts));
        for (i, d) in datums.iter().enumerate() {
            let what = format!("{stem}.avro.txt datum {i}");
            dec.avro((&value, key.as_ref()), d, &mut slot, &what)
                .expect("golden decodes");
            n += 1;
        }
    }
    // The captured Debezium events, as Avro: several tables, every op.
    for file in common::FILES {
        let opts = common::options_for(file);
        let mut json = JsonDecoder::new(opts.clone());
        let mut enc = AvroEncoder::new(opts.clone());
        let mut dec = Both::new(AvroDecoder::new(opts.clone()), AvroDecoder::new(opts));
        for c in common::captures(file) {
            let Some(ev) = json
                .decode(c.key.as_deref(), c.value.as_deref())
                .expect("capture decodes")
                .event
            else {
                continue;
            };
            let (key, value) = enc.schemas(&ev).expect("schemas");
            let mut d = Vec::new();
            enc.encode_value_into(&ev, &mut d).expect("encodes");
            let what = format!("{}:{}", c.file, c.line);
            dec.avro((&value, key.as_ref()), &Bytes::from(d), &mut slot, &what)
                .expect("decodes");
            n += 1;
        }
    }
    assert!(n > 40, "{n} datums");
}

fn table(name: &str, extra: bool) -> Arc<TableSchema> {
    let mut columns = vec![
        Column {
            is_key: true,
            optional: false,
            ..Column::new("id", PgType::base(23, "int4"))
        },
        Column::new("name", PgType::base(1043, "varchar").with_modifier(104)),
        Column::new("ts", PgType::base(1114, "timestamp")),
    ];
    if extra {
        columns.push(Column::new("n", PgType::base(20, "int8")));
        columns.push(Column::new("flag", PgType::base(16, "bool")));
    }
    Arc::new(TableSchema {
        id: TableId::new("public", name),
        relation_oid: 1,
        columns,
        version: 1,
    })
}

fn row(t: &TableSchema, id: i32, name: Option<&str>) -> Vec<Value> {
    let mut r = vec![
        Value::Int32(id),
        name.map_or(Value::Null, |n| Value::Text(Str::from(n))),
        Value::Timestamp(cdc_envelope::Timestamp::PgMicros(
            i64::from(id) * 1_000_000_000,
        )),
    ];
    if t.columns.len() > 3 {
        r.push(Value::Int64(i64::from(id) << 40));
        r.push(Value::Bool(id % 2 == 0));
    }
    r
}

fn full_source(table: &str) -> SourceInfo {
    SourceInfo {
        version: "3.6.3.Final".into(),
        connector: "postgresql".into(),
        name: "pgsource".into(),
        ts_us: 1_795_492_115_246_373,
        snapshot: SnapshotMarker::Last,
        db: "bf_source".into(),
        sequence: Some("[\"1\",\"2\"]".into()),
        schema: "public".into(),
        table: table.into(),
        tx_id: Some(848),
        lsn: Some(588_651_920),
        xmin: Some(77),
        origin: Some("replica".into()),
        origin_lsn: Some(99),
    }
}

/// Events that differ in every field the decoders set, in an order where
/// each one follows a very different one.
fn varied_events() -> Vec<ChangeEvent> {
    let (a, b) = (table("alpha", true), table("beta", false));
    let base = |t: &Arc<TableSchema>, op: Op| ChangeEvent {
        op,
        table: Some(Arc::clone(t)),
        before: None,
        after: None,
        source: SourceInfo {
            name: "pgsource".into(),
            connector: "postgresql".into(),
            schema: "public".into(),
            table: t.id.table.clone().into(),
            ..Default::default()
        },
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Default::default(),
        key_change: None,
    };
    vec![
        // Everything set.
        ChangeEvent {
            before: Some(row(&a, 1, Some("old"))),
            after: Some(row(&a, 1, Some("new"))),
            source: full_source("alpha"),
            ts_ns: 1_795_492_115_317_437_453,
            transaction: Some(TransactionBlock {
                id: "848:588651920".into(),
                total_order: 3,
                data_collection_order: 2,
            }),
            ..base(&a, Op::Update)
        },
        // Almost nothing: no before, NULL text, other table and op.
        ChangeEvent {
            after: Some(row(&b, 2, None)),
            ..base(&b, Op::Create)
        },
        // A delete: no after.
        ChangeEvent {
            before: Some(row(&a, 3, Some("gone"))),
            source: full_source("alpha"),
            ..base(&a, Op::Delete)
        },
        // Snapshot read with a different marker and no transaction.
        ChangeEvent {
            after: Some(row(&a, 4, Some("snap"))),
            source: SourceInfo {
                snapshot: SnapshotMarker::First,
                sequence: None,
                xmin: None,
                origin: None,
                ..full_source("alpha")
            },
            ts_ns: 5,
            ..base(&a, Op::Read)
        },
        // Same table again, fully set.
        ChangeEvent {
            before: Some(row(&b, 5, Some("x"))),
            after: Some(row(&b, 5, Some("y"))),
            source: full_source("beta"),
            ..base(&b, Op::Update)
        },
    ]
}

/// `back` carries exactly the payload of `ev` (the fields on the wire).
fn assert_payload(back: &ChangeEvent, ev: &ChangeEvent, what: &str) {
    assert_eq!(back.op, ev.op, "{what}");
    assert_eq!(back.before, ev.before, "{what}");
    assert_eq!(back.after, ev.after, "{what}");
    assert_eq!(back.source, ev.source, "{what}");
    assert_eq!(back.transaction, ev.transaction, "{what}");
    assert_eq!(back.ts_ns, ev.ts_ns, "{what}");
    assert_eq!(
        back.table.as_ref().map(|t| &t.id.table),
        ev.table.as_ref().map(|t| &t.id.table),
        "{what}"
    );
}

#[test]
fn json_varied_events_leave_nothing_behind() {
    let opts = Options::with_prefix("pgsource");
    let mut enc = JsonEncoder::new(opts.clone());
    let mut dec = Both::new(
        JsonDecoder::new(opts.clone()),
        JsonDecoder::new(opts.clone()),
    );
    let mut out = DecodedRecord::default();
    let events = varied_events();
    // Every order of two events, then a tombstone, then all again.
    for round in 0..2 {
        for (i, first) in events.iter().enumerate() {
            for (j, second) in events.iter().enumerate() {
                for ev in [first, second] {
                    let rec = enc.encode(ev).expect("encodes");
                    let what = format!("round {round}: {i} then {j}");
                    dec.json(rec.key.as_deref(), rec.value.as_deref(), &mut out, &what)
                        .expect("decodes");
                    assert_payload(out.event.as_ref().expect("event"), ev, &what);
                    assert_eq!(out.key, ev.key(), "{what}");
                }
                // A tombstone: no event, the key only.
                let rec = enc.encode(first).expect("encodes");
                dec.json(rec.key.as_deref(), None, &mut out, "tombstone")
                    .expect("decodes");
                assert!(out.event.is_none());
                assert!(out.key.is_some());
            }
        }
    }
    // Reuse: the same shape twice keeps the row allocations.
    let ev = &events[0];
    let rec = enc.encode(ev).expect("encodes");
    let value = Bytes::from(rec.value.expect("value"));
    dec.reusing
        .decode_bytes_into(rec.key.as_deref(), Some(&value), &mut out)
        .expect("decodes");
    let ptrs = |out: &DecodedRecord| {
        let e = out.event.as_ref().expect("event");
        (
            e.after.as_ref().map(|r| r.as_ptr()),
            e.before.as_ref().map(|r| r.as_ptr()),
            out.key.as_ref().map(|r| r.as_ptr()),
            e.source.version.as_ptr(),
        )
    };
    let before = ptrs(&out);
    dec.reusing
        .decode_bytes_into(rec.key.as_deref(), Some(&value), &mut out)
        .expect("decodes");
    assert_eq!(ptrs(&out), before, "rows, key and source strings reused");
}

#[test]
fn avro_varied_events_leave_nothing_behind() {
    let opts = Options::with_prefix("pgsource");
    let mut enc = AvroEncoder::new(opts.clone());
    let mut dec = Both::new(
        AvroDecoder::new(opts.clone()),
        AvroDecoder::new(opts.clone()),
    );
    let mut slot = None;
    let events = varied_events();
    let encoded: Vec<(Option<Arc<str>>, Arc<str>, Bytes)> = events
        .iter()
        .map(|ev| {
            let (k, v) = enc.schemas(ev).expect("schemas");
            let mut d = Vec::new();
            enc.encode_value_into(ev, &mut d).expect("encodes");
            (k, v, Bytes::from(d))
        })
        .collect();
    for round in 0..2 {
        for (i, a) in encoded.iter().enumerate() {
            for (j, b) in encoded.iter().enumerate() {
                for (n, (k, v, d)) in [(i, a), (j, b)] {
                    let what = format!("round {round}: {i} then {j}");
                    dec.avro((v, k.as_ref()), d, &mut slot, &what)
                        .expect("decodes");
                    assert_payload(slot.as_ref().expect("event"), &events[n], &what);
                }
            }
        }
    }
    let (k, v, d) = &encoded[0];
    dec.reusing
        .decode_value_shared_into(v, k.as_ref(), d, &mut slot)
        .expect("decodes");
    let ptrs = |s: &Option<ChangeEvent>| {
        let e = s.as_ref().expect("event");
        (
            e.after.as_ref().map(|r| r.as_ptr()),
            e.before.as_ref().map(|r| r.as_ptr()),
            e.source.db.as_ptr(),
            e.table.as_ref().map(Arc::as_ptr),
        )
    };
    let before = ptrs(&slot);
    dec.reusing
        .decode_value_shared_into(v, k.as_ref(), d, &mut slot)
        .expect("decodes");
    assert_eq!(ptrs(&slot), before, "rows, source strings and table reused");
}

#[test]
fn json_source_fields_a_record_leaves_out_are_reset() {
    // A record whose `source` block lacks fields the previous one had (other
    // producers, hand-written records): nothing of the previous one stays.
    let opts = Options::with_prefix("pgsource");
    let mut enc = JsonEncoder::new(opts.clone());
    let mut dec = Both::new(JsonDecoder::new(opts.clone()), JsonDecoder::new(opts));
    let mut out = DecodedRecord::default();
    let ev = &varied_events()[0];
    let rec = enc.encode(ev).expect("encodes");
    let key = rec.key.expect("key");
    let full = String::from_utf8(rec.value.expect("value")).expect("utf-8");
    let mut stripped = full.clone();
    for field in [
        "\"version\":\"3.6.3.Final\",",
        "\"connector\":\"postgresql\",",
        "\"name\":\"pgsource\",",
        "\"ts_ms\":1795492115246,",
        "\"snapshot\":\"last\",",
        "\"db\":\"bf_source\",",
        "\"sequence\":\"[\\\"1\\\",\\\"2\\\"]\",",
        "\"ts_us\":1795492115246373,",
        "\"schema\":\"public\",",
        "\"table\":\"alpha\",",
        "\"txId\":848,",
        "\"lsn\":588651920,",
        "\"xmin\":77,",
        ",\"origin_lsn\":99",
    ] {
        assert!(stripped.contains(field), "{field} in {stripped}");
        stripped = stripped.replacen(field, "", 1);
        for v in [&full, &stripped, &full] {
            dec.json(Some(&key), Some(v.as_bytes()), &mut out, field)
                .expect("decodes");
        }
        let back = out.event.as_ref().expect("event");
        assert_eq!(back.source, ev.source);
    }
    dec.json(Some(&key), Some(stripped.as_bytes()), &mut out, "all")
        .expect("decodes");
    let source = &out.event.as_ref().expect("event").source;
    assert_eq!(
        source,
        &SourceInfo {
            origin: Some("replica".into()),
            ..Default::default()
        }
    );
}

#[test]
fn avro_repeating_source_fields_that_change() {
    // The runs of repeating `source` fields are matched against the previous
    // record's bytes: every change in them must be decoded, not remembered.
    let opts = Options::with_prefix("pgsource");
    let t = table("alpha", false);
    let mut enc = AvroEncoder::new(opts.clone());
    let mut dec = Both::new(
        AvroDecoder::new(opts.clone()),
        AvroDecoder::new(opts.clone()),
    );
    let mut slot = None;
    let base = full_source("alpha");
    let variants = [
        base.clone(),
        base.clone(),
        SourceInfo {
            db: "other_db".into(),
            ..base.clone()
        },
        SourceInfo {
            snapshot: SnapshotMarker::True,
            ..base.clone()
        },
        SourceInfo {
            xmin: None,
            origin: None,
            origin_lsn: None,
            ..base.clone()
        },
        SourceInfo {
            version: "3.7.0.Final".into(),
            name: "".into(),
            ..base.clone()
        },
        SourceInfo {
            schema: "s2".into(),
            table: "t2".into(),
            ..base.clone()
        },
        SourceInfo::default(),
        base.clone(),
    ];
    for (i, source) in variants.iter().cycle().take(variants.len() * 3).enumerate() {
        let ev = ChangeEvent {
            op: Op::Create,
            table: Some(Arc::clone(&t)),
            before: None,
            after: Some(row(&t, i as i32, Some("n"))),
            source: source.clone(),
            ts_ns: 1,
            transaction: None,
            message: None,
            position: Default::default(),
            key_change: Some(KeyChange::OldKey(vec![Value::Int32(0)])),
        };
        let (k, v) = enc.schemas(&ev).expect("schemas");
        let mut d = Vec::new();
        enc.encode_value_into(&ev, &mut d).expect("encodes");
        let what = format!("variant {}", i % variants.len());
        dec.avro((&v, k.as_ref()), &Bytes::from(d), &mut slot, &what)
            .expect("decodes");
        let back = slot.as_ref().expect("event");
        assert_eq!(&back.source, source, "{what}");
        assert_eq!(back.key_change, None, "not part of the payload");
    }
}

/// Decodes each of `bad` right after `good` with `decode(bytes, what)`,
/// then `good` once more (a target emptied by an error takes a new record
/// as before); returns how many of `bad` failed.
fn good_bad_good(
    good: &[u8],
    bad: &[Vec<u8>],
    mut decode: impl FnMut(&[u8], &str) -> Result<(), Error>,
) -> usize {
    let mut errors = 0;
    for b in bad {
        decode(good, "good").expect("decodes");
        if decode(b, "bad").is_err() {
            errors += 1;
        }
    }
    decode(good, "good again").expect("decodes");
    errors
}

#[test]
fn bad_input_gives_the_same_errors_and_empties_the_target() {
    let opts = Options::with_prefix("pgsource");
    let events = varied_events();
    // JSON: every truncation and some corruptions of a record, each after a
    // good record in the same target.
    let mut enc = JsonEncoder::new(opts.clone());
    let mut dec = Both::new(
        JsonDecoder::new(opts.clone()),
        JsonDecoder::new(opts.clone()),
    );
    let mut out = DecodedRecord::default();
    let rec = enc.encode(&events[0]).expect("encodes");
    let (key, value) = (rec.key.expect("key"), rec.value.expect("value"));
    let mut bad: Vec<Vec<u8>> = (0..value.len()).map(|n| value[..n].to_vec()).collect();
    for (from, to) in [
        ("\"op\":\"u\"", "\"op\":\"x\""),
        ("\"id\":1", "\"id\":\"1\""),
        ("\"lsn\":588651920", "\"lsn\":1e3"),
        ("\"name\":\"new\"", "\"name\":\"\\ud800\""),
    ] {
        let text = String::from_utf8(value.clone()).expect("utf-8");
        assert!(text.contains(from), "{from}");
        bad.push(text.replacen(from, to, 1).into_bytes());
    }
    let errors = good_bad_good(&value, &bad, |v, what| {
        dec.json(Some(&key), Some(v), &mut out, what)
    });
    assert!(errors >= value.len(), "{errors} errors");

    // Avro: every truncation, trailing bytes, bad union branches.
    let mut enc = AvroEncoder::new(opts.clone());
    let mut dec = Both::new(AvroDecoder::new(opts.clone()), AvroDecoder::new(opts));
    let mut slot = None;
    let (k, v) = enc.schemas(&events[0]).expect("schemas");
    let mut d = Vec::new();
    enc.encode_value_into(&events[0], &mut d).expect("encodes");
    let good = Bytes::from(d.clone());
    let mut bad: Vec<Vec<u8>> = (0..d.len()).map(|n| d[..n].to_vec()).collect();
    bad.push([d.as_slice(), &[0]].concat());
    for i in 0..d.len() {
        let mut c = d.clone();
        c[i] = 0x7f;
        bad.push(c);
    }
    let errors = good_bad_good(&d, &bad, |datum, what| {
        let datum = Bytes::copy_from_slice(datum);
        dec.avro((&v, k.as_ref()), &datum, &mut slot, what)
    });
    assert!(errors >= d.len(), "{errors} errors");
    // An unparsable schema: an error, the target emptied.
    let broken: Arc<str> = Arc::from("{not json");
    assert!(dec
        .reusing
        .decode_value_shared_into(&broken, None, &good, &mut slot)
        .is_err());
    assert!(slot.is_none());
}
