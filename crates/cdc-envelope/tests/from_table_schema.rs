//! Events built the way pg-logical builds them (a `TableSchema` from the
//! catalog + native row values) must encode to exactly what Debezium wrote,
//! apart from run-specific fields (timestamps, txId, lsn, sequence), which are
//! copied from the captured event.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cdc_envelope::temporal::{days_from_civil, parse_local_timestamp, parse_zoned_timestamp};
use cdc_envelope::{
    Array, Bits, ChangeEvent, Column, Date, Decimal, Interval, JsonDecoder, JsonEncoder, Numeric,
    Op, PgType, Str, TableId, TableSchema, Timestamp, TypeKind, Value,
};
use common::{captures, diff, options_for};

fn col(name: &str, t: PgType, optional: bool) -> Column {
    Column {
        optional,
        ..Column::new(name, t)
    }
}

fn varchar(n: i32) -> PgType {
    PgType::base(1043, "varchar").with_modifier(n + 4)
}

fn numeric(p: i32, s: i32) -> PgType {
    PgType::base(1700, "numeric").with_modifier(((p << 16) | s) + 4)
}

fn employees(with_nickname: bool) -> Arc<TableSchema> {
    let mut columns = vec![
        Column {
            is_key: true,
            default_expr: Some("nextval('employees_emp_id_seq'::regclass)".into()),
            ..col("emp_id", PgType::base(23, "int4"), false)
        },
        col("name", varchar(100), false),
        col("email", varchar(100), true),
        col("department", varchar(50), true),
        col("salary", numeric(10, 2), true),
        col("hire_date", PgType::base(1082, "date"), true),
        Column {
            default_expr: Some("CURRENT_TIMESTAMP".into()),
            ..col("created_at", PgType::base(1114, "timestamp"), true)
        },
    ];
    if with_nickname {
        columns.push(Column {
            default_expr: Some("'none'::text".into()),
            ..col("nickname", PgType::base(25, "text"), true)
        });
    }
    Arc::new(TableSchema {
        id: TableId::new("public", "employees"),
        relation_oid: 16_385,
        columns,
        version: u64::from(with_nickname) + 1,
    })
}

fn text(s: &str) -> Value {
    Value::Text(Str::from(s))
}

fn num(s: &str) -> Value {
    Value::Numeric(Numeric::Finite(Decimal::parse(s).expect("decimal")))
}

fn date(y: i64, m: u32, d: u32) -> Value {
    Value::Date(Date::Days(days_from_civil(y, m, d) as i32))
}

fn ts(s: &str) -> Value {
    Value::Timestamp(parse_local_timestamp(s).expect("timestamp"))
}

fn event(
    op: Op,
    table: &Arc<TableSchema>,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(Arc::clone(table)),
        before,
        after,
        source: Default::default(),
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Default::default(),
        key_change: None,
    }
}

/// Encodes `ours` with run-specific fields taken from the capture and
/// compares bytes.
fn check(file: &'static str, line: usize, mut ours: ChangeEvent) {
    let caps = captures(file);
    let cap = &caps[line - 1];
    let opts = options_for(file);
    let captured = JsonDecoder::new(opts.clone())
        .decode(cap.key.as_deref(), cap.value.as_deref())
        .expect("capture decodes")
        .event
        .expect("not a tombstone");
    ours.source = captured.source.clone();
    ours.ts_ns = captured.ts_ns;
    ours.transaction = captured.transaction.clone();
    let out = JsonEncoder::new(opts).encode(&ours).expect("encodes");
    match (&out.key, &cap.key) {
        (Some(a), Some(b)) => assert!(a == b, "{file}:{line} key\n{}", diff(a, b)),
        (None, None) => {}
        _ => panic!("{file}:{line}: key presence differs"),
    }
    let (a, b) = (out.value.expect("value"), cap.value.clone().expect("value"));
    assert!(a == b, "{file}:{line} value\n{}", diff(&a, &b));
}

#[test]
fn employees_events_match_debezium() {
    let t1 = employees(false);
    let t2 = employees(true);
    let f = "emp_seed.jsonl";
    let alice = vec![
        Value::Int32(1),
        text("Alice Snapshot"),
        text("alice@example.com"),
        text("Engineering"),
        num("91000.50"),
        date(2021, 3, 1),
        ts("2021-03-01 09:00:00"),
    ];
    check(f, 1, event(Op::Read, &t1, None, Some(alice.clone())));
    let bob = vec![
        Value::Int32(2),
        text("Bob Snapshot"),
        Value::Null,
        text("Sales"),
        Value::Null,
        Value::Null,
        ts("2022-07-15 17:45:30.123456"),
    ];
    check(f, 2, event(Op::Read, &t1, None, Some(bob)));
    let john = |dept: &str, salary: &str| {
        vec![
            Value::Int32(3),
            text("John Doe"),
            text("john@example.com"),
            text(dept),
            num(salary),
            date(2024, 1, 15),
            ts("2024-01-15 10:30:00"),
        ]
    };
    check(
        f,
        3,
        event(Op::Create, &t1, None, Some(john("Engineering", "75000.00"))),
    );
    check(
        f,
        4,
        event(Op::Update, &t1, None, Some(john("Platform", "80000.25"))),
    );
    // REPLICA IDENTITY DEFAULT: only the key in the old tuple.
    let key_only = |id: i32| {
        let mut r = vec![Value::Null; 7];
        r[0] = Value::Int32(id);
        r
    };
    check(f, 5, event(Op::Delete, &t1, Some(key_only(2)), None));
    check(f, 6, event(Op::Delete, &t1, Some(key_only(1)), None));
    let mut alice100 = alice;
    alice100[0] = Value::Int32(100);
    check(f, 7, event(Op::Create, &t1, None, Some(alice100)));
    let after_alter = vec![
        Value::Int32(6),
        text("After Alter"),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Timestamp(Timestamp::from_unix_micros(1_795_492_115_253_000).expect("ts")),
        text("aa"),
    ];
    check(f, 14, event(Op::Create, &t2, None, Some(after_alter)));
    check(f, 15, event(Op::Truncate, &t2, None, None));
    let mut msg = event(Op::Message, &t1, None, None);
    msg.table = None;
    msg.message = Some(cdc_envelope::LogicalMessage {
        prefix: "audit".into(),
        content: Bytes::from_static(b"hello from a transaction"),
        transactional: true,
    });
    check(f, 10, msg);
}

fn common_types() -> Arc<TableSchema> {
    let b = |oid: u32, name: &str| PgType::base(oid, name);
    let arr = |oid: u32, elem: PgType| PgType {
        oid,
        name: format!("_{}", elem.name),
        modifier: -1,
        kind: TypeKind::Array(Box::new(elem)),
    };
    let color = PgType {
        oid: 16_390,
        name: "color".into(),
        modifier: -1,
        kind: TypeKind::Enum(vec!["red".into(), "green".into(), "blue".into()]),
    };
    let columns = vec![
        Column {
            is_key: true,
            ..col("id", b(23, "int4"), false)
        },
        col("c_bool", b(16, "bool"), true),
        col("c_int2", b(21, "int2"), true),
        col("c_int4", b(23, "int4"), true),
        col("c_int8", b(20, "int8"), true),
        col("c_float4", b(700, "float4"), true),
        col("c_float8", b(701, "float8"), true),
        col("c_numeric", numeric(12, 3), true),
        col("c_numeric_free", b(1700, "numeric"), true),
        col("c_money", b(790, "money"), true),
        col("c_text", b(25, "text"), true),
        col("c_varchar", varchar(30), true),
        col("c_char", b(1042, "bpchar").with_modifier(8), true),
        col("c_bytea", b(17, "bytea"), true),
        col("c_date", b(1082, "date"), true),
        col("c_time", b(1083, "time"), true),
        col("c_time3", b(1083, "time").with_modifier(3), true),
        col("c_timetz", b(1266, "timetz"), true),
        col("c_ts", b(1114, "timestamp"), true),
        col("c_ts3", b(1114, "timestamp").with_modifier(3), true),
        col("c_tstz", b(1184, "timestamptz"), true),
        col("c_interval", b(1186, "interval"), true),
        col("c_uuid", b(2950, "uuid"), true),
        col("c_json", b(114, "json"), true),
        col("c_jsonb", b(3802, "jsonb"), true),
        col("c_xml", b(142, "xml"), true),
        col("c_inet", b(869, "inet"), true),
        col("c_cidr", b(650, "cidr"), true),
        col("c_macaddr", b(829, "macaddr"), true),
        col("c_bit", b(1560, "bit").with_modifier(4), true),
        col("c_varbit", b(1562, "varbit").with_modifier(8), true),
        col("c_int_arr", arr(1007, b(23, "int4")), true),
        col("c_text_arr", arr(1009, b(25, "text")), true),
        col("c_enum", color, true),
        col("c_int4range", b(3904, "int4range"), true),
        col("c_tsrange", b(3908, "tsrange"), true),
    ];
    Arc::new(TableSchema {
        id: TableId::new("public", "common_types"),
        relation_oid: 16_400,
        columns,
        version: 1,
    })
}

fn row1(c_text: &str) -> Vec<Value> {
    let tod = |h: i64, m: i64, s: i64, us: i64| ((h * 60 + m) * 60 + s) * 1_000_000 + us;
    vec![
        Value::Int32(1),
        Value::Bool(true),
        Value::Int16(12),
        Value::Int32(1234),
        Value::Int64(1_234_567_890_123),
        Value::Float32(1.5),
        Value::Float64(2.25),
        num("123.456"),
        num("98765.4321"),
        Value::Money(Numeric::Finite(Decimal::parse("12.34").expect("d"))),
        text(c_text),
        text("world"),
        text("ab  "),
        Value::Bytes(Bytes::from_static(&[1, 2, 255])),
        date(2024, 5, 6),
        Value::Time(tod(7, 8, 9, 123_456)),
        Value::Time(tod(7, 8, 9, 123_000)),
        Value::TimeTz {
            micros: tod(7, 8, 9, 0),
            offset_seconds: 7200,
        },
        ts("2024-05-06 07:08:09.123456"),
        ts("2024-05-06 07:08:09.123"),
        Value::TimestampTz(parse_zoned_timestamp("2024-05-06 07:08:09.123456+02").expect("tz")),
        Value::Interval(Interval {
            months: 0,
            days: 1,
            micros: tod(2, 3, 4, 500_000),
        }),
        Value::Uuid([
            0xf4, 0x7a, 0xc1, 0x0b, 0x58, 0xcc, 0x43, 0x72, 0xa5, 0x67, 0x0e, 0x02, 0xb2, 0xc3,
            0xd4, 0x79,
        ]),
        Value::Json(Str::from("{\"k\": [1, 2]}")),
        Value::Json(Str::from("{\"k\": {\"n\": 1}}")),
        Value::Xml(Str::from("<x>1</x>")),
        text("10.1.2.3"),
        text("10.1.0.0/16"),
        text("01:23:45:67:89:ab"),
        Value::Bits(Bits {
            len: 4,
            data: Bytes::from_static(&[0b1010_0000]),
        }),
        Value::Bits(Bits {
            len: 3,
            data: Bytes::from_static(&[0b1100_0000]),
        }),
        Value::Array(Array::one_dim(vec![
            Value::Int32(1),
            Value::Int32(2),
            Value::Int32(3),
        ])),
        Value::Array(Array::one_dim(vec![text("a"), text("b")])),
        Value::Enum(Str::from("green")),
        text("[1,10)"),
        text("[\"2024-01-01 00:00:00\",\"2024-02-01 00:00:00\")"),
    ]
}

fn row2() -> Vec<Value> {
    let mut r = vec![Value::Null; 36];
    r[0] = Value::Int32(2);
    r
}

fn row3() -> Vec<Value> {
    let mut r = vec![Value::Null; 36];
    r[0] = Value::Int32(3);
    r[6] = Value::Float64(f64::NAN);
    r[7] = num("-0.001");
    r[8] = num("0.00000000000000000001");
    r[10] = text("multi\nline");
    r[14] = Value::Date(Date::Days(0));
    r[18] = ts("1999-12-31 23:59:59");
    r[20] = Value::TimestampTz(parse_zoned_timestamp("1999-12-31 23:59:59-08").expect("tz"));
    r
}

#[test]
fn common_types_match_debezium_in_both_modes() {
    let t = common_types();
    for f in ["types_default.jsonl", "types_seed.jsonl"] {
        check(f, 1, event(Op::Read, &t, None, Some(row1("hello"))));
        check(f, 2, event(Op::Read, &t, None, Some(row2())));
        check(f, 3, event(Op::Create, &t, None, Some(row3())));
        check(f, 4, event(Op::Update, &t, None, Some(row1("changed"))));
        let mut key_only = vec![Value::Null; 36];
        key_only[0] = Value::Int32(2);
        check(f, 5, event(Op::Delete, &t, Some(key_only), None));
    }
}

#[test]
fn schema_cache_notices_changed_columns_even_without_a_version_bump() {
    let mut enc = JsonEncoder::new(options_for("emp_seed.jsonl"));
    let t1 = employees(false);
    let mut row = vec![
        Value::Int32(1),
        text("a"),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let a = enc
        .encode(&event(Op::Create, &t1, None, Some(row.clone())))
        .expect("encodes");
    assert!(!String::from_utf8_lossy(a.value.as_deref().unwrap_or_default()).contains("nickname"));
    // Same id and version, one more column (a source that forgot to bump the version).
    let mut t2 = (*employees(true)).clone();
    t2.version = t1.version;
    row.push(text("nick"));
    let b = enc
        .encode(&event(Op::Create, &Arc::new(t2), None, Some(row)))
        .expect("encodes");
    assert!(
        String::from_utf8_lossy(b.value.as_deref().unwrap_or_default())
            .contains("\"nickname\":\"nick\"")
    );
}
