//! Schema evolution, TOAST handling and real PostgreSQL types.

mod common;

use std::sync::Arc;

use cdc_envelope::{
    Array, Column, Date, Interval, Op, PgType, TableId, TableSchema, Timestamp, TypeKind, Value,
};
use common::*;
use jdbc_sink::JdbcSink;

#[tokio::test]
async fn column_added_upstream_mid_stream_is_added_to_the_target() -> TestResult {
    let db = target_db("sink_evolve").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let v1 = employees_schema();
    let mut v2 = (*v1).clone();
    v2.version = 2;
    v2.columns.push(Column {
        name: "level".into(),
        pg_type: PgType::base(23, "int4"),
        optional: false,
        default_expr: Some("1".into()),
        is_key: false,
    });
    v2.columns
        .push(Column::new("notes", PgType::base(25, "text")));
    let v2 = Arc::new(v2);
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &v1,
        Op::Create,
        None,
        Some(emp_row(1, "Alice", "Eng", "1")),
    ));
    sink.write(&st.take()).await?;
    // Same batch: an old-version event, then new-version ones.
    st.push(event(
        &v1,
        Op::Create,
        None,
        Some(emp_row(2, "Bob", "Eng", "2")),
    ));
    let mut row = emp_row(3, "Carol", "Ops", "3");
    row.push(Value::Int32(7));
    row.push(text("hello"));
    st.push(event(&v2, Op::Create, None, Some(row)));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let cols: Vec<(String, String, bool, Option<String>)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = 'employees'::regclass AND a.attnum > 7 ORDER BY a.attnum",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("level".into(), "integer".into(), true, Some("1".into())),
            ("notes".into(), "text".into(), false, None)
        ]
    );
    let rows = client
        .query("SELECT emp_id, level, notes FROM employees ORDER BY 1", &[])
        .await?;
    let got: Vec<(i32, i32, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![(1, 1, None), (2, 1, None), (3, 7, Some("hello".into()))]
    );
    Ok(())
}

#[tokio::test]
async fn evolution_none_reports_missing_table_and_columns_clearly() -> TestResult {
    let db = target_db("sink_noevo").await?;
    let client = db.connect().await?;
    let cfg = seed_config(
        &db,
        &[
            ("schema.evolution", "none"),
            ("auto.create", "false"),
            ("auto.evolve", "false"),
        ],
    );
    let mut sink = JdbcSink::connect(cfg).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "A", "Eng", "1")),
    ));
    let out = sink.write(&st.take()).await?;
    assert_eq!(out.failed.len(), 1);
    assert!(
        out.failed[0].error.message.contains("does not exist"),
        "{}",
        out.failed[0].error
    );
    assert!(
        out.failed[0]
            .error
            .message
            .contains("schema.evolution=basic"),
        "{}",
        out.failed[0].error
    );
    client
        .batch_execute("CREATE TABLE employees (emp_id int PRIMARY KEY, name text)")
        .await?;
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "A", "Eng", "1")),
    ));
    let out = sink.write(&st.take()).await?;
    assert_eq!(out.failed.len(), 1);
    assert!(
        out.failed[0].error.message.contains("missing"),
        "{}",
        out.failed[0].error
    );
    // Nothing was dropped or retyped.
    assert_eq!(count(&client, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'employees'::regclass AND attnum > 0").await, 2);
    Ok(())
}

#[tokio::test]
async fn existing_target_types_differ_values_are_cast_not_retyped() -> TestResult {
    let db = target_db("sink_cast").await?;
    let client = db.connect().await?;
    // decimal.handling.mode=string delivers salary as text; the target has numeric.
    client
        .batch_execute("CREATE TABLE employees (emp_id bigint PRIMARY KEY, name text, email text, department text, salary numeric(12,3), hire_date date, created_at timestamptz)")
        .await?;
    let mut s = (*employees_schema()).clone();
    s.columns[4].pg_type = PgType::base(25, "text");
    let s = Arc::new(s);
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let mut st = Stream::new(TOPIC);
    let mut row = emp_row(1, "A", "Eng", "0");
    row[4] = text("1234.5");
    st.push(event(&s, Op::Create, None, Some(row)));
    let mut bad = emp_row(2, "B", "Eng", "0");
    bad[4] = text("not a number");
    st.push(event(&s, Op::Create, None, Some(bad)));
    let out = sink.write(&st.take()).await?;
    assert_eq!(out.failed.len(), 1, "{:?}", out.failed);
    assert_eq!(out.failed[0].offset, 1);
    assert_eq!(out.failed[0].error.sqlstate.as_deref(), Some("22P02"));
    let salary: String = client
        .query_one("SELECT salary::text FROM employees", &[])
        .await?
        .get(0);
    assert_eq!(salary, "1234.500");
    let t: String = client.query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'employees'::regclass AND attname = 'salary'", &[]).await?.get(0);
    assert_eq!(t, "numeric(12,3)");
    Ok(())
}

#[tokio::test]
async fn unchanged_toast_columns_are_left_untouched() -> TestResult {
    let db = target_db("sink_toast").await?;
    let client = db.connect().await?;
    let schema = Arc::new(TableSchema {
        id: TableId::new("public", "docs"),
        relation_oid: 0,
        columns: vec![
            Column {
                is_key: true,
                optional: false,
                ..Column::new("id", PgType::base(23, "int4"))
            },
            Column::new("title", PgType::base(25, "text")),
            Column::new("body", PgType::base(25, "text")),
        ],
        version: 1,
    });
    let big: String = "x".repeat(100_000);
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let mut st = Stream::new("pgsource.public.docs");
    st.push(event(
        &schema,
        Op::Create,
        None,
        Some(vec![Value::Int32(1), text("v1"), text(&big)]),
    ));
    st.push(event(
        &schema,
        Op::Create,
        None,
        Some(vec![Value::Int32(2), text("v1"), text(&big)]),
    ));
    sink.write(&st.take()).await?;
    // Later batch: updates without the TOASTed body (Unavailable).
    st.push(event(
        &schema,
        Op::Update,
        None,
        Some(vec![Value::Int32(1), text("v2"), Value::Unavailable]),
    ));
    // Same batch, same key twice: the merge keeps "unavailable" → untouched.
    st.push(event(
        &schema,
        Op::Update,
        None,
        Some(vec![Value::Int32(2), text("v2"), Value::Unavailable]),
    ));
    st.push(event(
        &schema,
        Op::Update,
        None,
        Some(vec![Value::Int32(2), text("v3"), Value::Unavailable]),
    ));
    // Mixed group: a full update of another row in the same batch.
    st.push(event(
        &schema,
        Op::Create,
        None,
        Some(vec![Value::Int32(3), text("new"), text("small")]),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let rows = client
        .query(
            "SELECT id, title, length(body), body = repeat('x', 100000) FROM docs ORDER BY id",
            &[],
        )
        .await?;
    let got: Vec<(i32, String, i32, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "v2".into(), 100_000, true),
            (2, "v3".into(), 100_000, true),
            (3, "new".into(), 5, false)
        ]
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM docs WHERE body LIKE '%__debezium_unavailable_value%'"
        )
        .await,
        0
    );
    // Within one batch: insert with the body, then an update without it → body from the insert.
    st.push(event(
        &schema,
        Op::Create,
        None,
        Some(vec![Value::Int32(4), text("a"), text("kept body")]),
    ));
    st.push(event(
        &schema,
        Op::Update,
        None,
        Some(vec![Value::Int32(4), text("b"), Value::Unavailable]),
    ));
    sink.write(&st.take()).await?;
    let r = client
        .query_one("SELECT title, body FROM docs WHERE id = 4", &[])
        .await?;
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        ("b".into(), "kept body".into())
    );
    Ok(())
}

#[tokio::test]
async fn real_types_round_trip() -> TestResult {
    let db = target_db("sink_types").await?;
    let client = db.connect().await?;
    let arr = |e: PgType| PgType {
        oid: 0,
        name: format!("_{}", e.name),
        modifier: -1,
        kind: TypeKind::Array(Box::new(e)),
    };
    let cols = vec![
        Column {
            is_key: true,
            optional: false,
            ..Column::new("id", PgType::base(20, "int8"))
        },
        Column::new("u", PgType::base(2950, "uuid")),
        Column::new("j", PgType::base(3802, "jsonb")),
        Column::new("tz", PgType::base(1184, "timestamptz")),
        Column::new("d", PgType::base(1082, "date")),
        Column::new("t", PgType::base(1083, "time")),
        Column::new("iv", PgType::base(1186, "interval")),
        Column::new("b", PgType::base(17, "bytea")),
        Column::new("tags", arr(PgType::base(25, "text"))),
        Column::new("nums", arr(PgType::base(23, "int4"))),
        Column::new(
            "mood",
            PgType {
                oid: 0,
                name: "mood".into(),
                modifier: -1,
                kind: TypeKind::Enum(vec!["ok".into(), "sad".into()]),
            },
        ),
        Column::new("n", PgType::base(1700, "numeric")),
        Column::new("f", PgType::base(701, "float8")),
        Column::new("flag", PgType::base(16, "bool")),
    ];
    let schema = Arc::new(TableSchema {
        id: TableId::new("public", "typed"),
        relation_oid: 0,
        columns: cols,
        version: 1,
    });
    let row = vec![
        Value::Int64(1),
        Value::Uuid([0x12; 16]),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::TimestampTz(Timestamp::from_unix_micros(0).expect("epoch")),
        Value::Date(Date::Days(-1)),
        Value::Time(3_600_000_001),
        Value::Interval(Interval {
            months: 14,
            days: 3,
            micros: 4_000_000,
        }),
        Value::Bytes(bytes::Bytes::from_static(b"\x00\x01'")),
        Value::Array(Array::one_dim(vec![text("a"), Value::Null, text("c,d")])),
        Value::Array(Array::one_dim(vec![Value::Int32(1), Value::Int32(2)])),
        Value::Enum("sad".into()),
        num("-12345678901234567890.000123"),
        Value::Float64(f64::NAN),
        Value::Bool(true),
    ];
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let mut st = Stream::new("pgsource.public.typed");
    st.push(event(&schema, Op::Create, None, Some(row)));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let r = client
        .query_one(
            "SELECT u::text, j::text, tz AT TIME ZONE 'UTC', d::text, t::text, iv::text, encode(b, 'hex'), tags::text, nums::text, mood, n::text, f::text, flag, \
             pg_typeof(u)::text, pg_typeof(j)::text, pg_typeof(tz)::text, pg_typeof(tags)::text FROM typed",
            &[],
        )
        .await?;
    assert_eq!(
        r.get::<_, String>(0),
        "12121212-1212-1212-1212-121212121212"
    );
    assert_eq!(r.get::<_, String>(1), r#"{"a": [1, 2]}"#);
    assert_eq!(r.get::<_, String>(3), "1969-12-31");
    assert_eq!(r.get::<_, String>(4), "01:00:00.000001");
    assert_eq!(r.get::<_, String>(5), "1 year 2 mons 3 days 00:00:04");
    assert_eq!(r.get::<_, String>(6), "000127");
    assert_eq!(r.get::<_, String>(7), r#"{a,NULL,"c,d"}"#);
    assert_eq!(r.get::<_, String>(8), "{1,2}");
    assert_eq!(r.get::<_, String>(9), "sad");
    assert_eq!(r.get::<_, String>(10), "-12345678901234567890.000123");
    assert_eq!(r.get::<_, String>(11), "NaN");
    assert!(r.get::<_, bool>(12));
    let types: Vec<String> = (13..17).map(|i| r.get::<_, String>(i)).collect();
    assert_eq!(
        types,
        vec!["uuid", "jsonb", "timestamp with time zone", "text[]"]
    );
    Ok(())
}
