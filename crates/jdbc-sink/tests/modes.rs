//! Insert and primary-key modes, deletes, tombstones and truncates against
//! the real target PostgreSQL, with events shaped like the seed's employees.

mod common;

use cdc_envelope::Op;
use common::*;
use jdbc_sink::{JdbcSink, RecordKey, SinkConfig, SinkRecord};

#[tokio::test]
async fn upsert_record_key_creates_table_with_real_types_and_applies_changes() -> TestResult {
    let db = target_db("sink_upsert").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Read,
        None,
        Some(emp_row(1, "Alice", "Eng", "75000.00")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "Bob", "Ops", "50000.50")),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "Alice", "Mgmt", "80000.00")),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.written, 3);
    assert_eq!(out.transactions, 1);

    let types: Vec<(String, String, bool)> = client
        .query(
            "SELECT column_name::text, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM information_schema.columns c \
             JOIN pg_attribute a ON a.attrelid = 'employees'::regclass AND a.attname = c.column_name \
             WHERE c.table_name = 'employees' ORDER BY c.ordinal_position",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expect = [
        ("emp_id", "integer", true),
        ("name", "character varying(100)", true),
        ("email", "character varying(100)", false),
        ("department", "character varying(50)", false),
        ("salary", "numeric(10,2)", false),
        ("hire_date", "date", false),
        ("created_at", "timestamp without time zone", false),
    ];
    let got: Vec<(&str, &str, bool)> = types
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
        .collect();
    assert_eq!(got, expect);
    let pk: String = client
        .query_one("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'employees'::regclass AND contype = 'p'", &[])
        .await?
        .get(0);
    assert_eq!(pk, "PRIMARY KEY (emp_id)");
    let row = client
        .query_one("SELECT department, salary::text, hire_date::text, created_at::text FROM employees WHERE emp_id = 1", &[])
        .await?;
    assert_eq!(row.get::<_, String>(0), "Mgmt");
    assert_eq!(row.get::<_, String>(1), "80000.00");
    assert_eq!(row.get::<_, String>(2), "2022-01-09");
    assert_eq!(row.get::<_, String>(3), "2023-11-14 22:13:20.000001");
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 2);
    Ok(())
}

#[tokio::test]
async fn insert_mode_fails_duplicates_and_update_mode_never_creates_rows() -> TestResult {
    let db = target_db("sink_insmode").await?;
    let client = db.connect().await?;
    let s = employees_schema();
    let mut ins = JdbcSink::connect(seed_config(
        &db,
        &[("insert.mode", "insert"), ("pgcdc.exactly.once", "false")],
    ))
    .await?;
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "Alice", "Eng", "1.00")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "Bob", "Eng", "2.00")),
    ));
    let out = ins.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    // A second insert of id 1 in a later batch is a duplicate key: that record fails, id 3 lands.
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "Alice2", "Eng", "1.00")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(3, "Carol", "Eng", "3.00")),
    ));
    let out = ins.write(&st.take()).await?;
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].offset, 2);
    assert_eq!(out.failed[0].error.sqlstate.as_deref(), Some("23505"));
    assert_eq!(
        out.failed[0].error.class_name,
        "org.postgresql.util.PSQLException"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 3);

    let mut upd = JdbcSink::connect(seed_config(
        &db,
        &[("insert.mode", "update"), ("pgcdc.exactly.once", "false")],
    ))
    .await?;
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(2, "Bob", "Sales", "9.99")),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(99, "Ghost", "None", "0")),
    ));
    let out = upd.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(
        count(&client, "SELECT count(*) FROM employees").await,
        3,
        "update mode must not insert id 99"
    );
    let dept: String = client
        .query_one("SELECT department FROM employees WHERE emp_id = 2", &[])
        .await?
        .get(0);
    assert_eq!(dept, "Sales");
    Ok(())
}

#[tokio::test]
async fn record_value_kafka_none_and_header_key_modes() -> TestResult {
    let db = target_db("sink_pkmodes").await?;
    let client = db.connect().await?;
    let s = employees_schema();

    // record_value with primary.key.fields=email
    let cfg = seed_config(
        &db,
        &[
            ("primary.key.mode", "record_value"),
            ("primary.key.fields", "email"),
            ("delete.enabled", "false"),
            ("table.name.format", "by_email"),
        ],
    );
    let mut sink = JdbcSink::connect(cfg).await?;
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "Alice", "Eng", "1")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "Alice", "Ops", "2")),
    ));
    sink.write(&st.take()).await?;
    let pk: String = client
        .query_one("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'by_email'::regclass AND contype = 'p'", &[])
        .await?
        .get(0);
    assert_eq!(pk, "PRIMARY KEY (email)");
    let (n, dept): (i64, String) = {
        let r = client
            .query_one("SELECT count(*) OVER (), department FROM by_email", &[])
            .await?;
        (r.get(0), r.get(1))
    };
    assert_eq!((n, dept.as_str()), (1, "Ops"));

    // kafka: every record is its own row keyed by topic/partition/offset
    let cfg = seed_config(
        &db,
        &[
            ("primary.key.mode", "kafka"),
            ("delete.enabled", "false"),
            ("table.name.format", "by_kafka"),
        ],
    );
    let mut sink = JdbcSink::connect(cfg).await?;
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "Alice", "Eng", "1")),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "Alice", "Ops", "1")),
    ));
    sink.write(&st.take()).await?;
    let rows = client.query("SELECT __connect_topic, __connect_partition, __connect_offset, department FROM by_kafka ORDER BY 3", &[]).await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), TOPIC);
    assert_eq!(rows[1].get::<_, i64>(2), 3);
    assert_eq!(rows[1].get::<_, String>(3), "Ops");

    // none: plain appends, no primary key
    let cfg = seed_config(
        &db,
        &[
            ("primary.key.mode", "none"),
            ("insert.mode", "insert"),
            ("delete.enabled", "false"),
            ("table.name.format", "no_key"),
        ],
    );
    let mut sink = JdbcSink::connect(cfg).await?;
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "Alice", "Eng", "1")),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "Alice", "Ops", "1")),
    ));
    sink.write(&st.take()).await?;
    assert_eq!(count(&client, "SELECT count(*) FROM no_key").await, 2);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'no_key'::regclass"
        )
        .await,
        0
    );

    // record_header: the key comes from a header
    let cfg = seed_config(
        &db,
        &[
            ("primary.key.mode", "record_header"),
            ("primary.key.fields", "tenant"),
            ("delete.enabled", "false"),
            ("table.name.format", "by_header"),
        ],
    );
    let mut sink = JdbcSink::connect(cfg).await?;
    for (tenant, dept) in [("t1", "Eng"), ("t2", "Ops"), ("t1", "Sales")] {
        let mut r = SinkRecord::from_event(
            TOPIC,
            0,
            0,
            event(&s, Op::Create, None, Some(emp_row(1, "A", dept, "1"))),
        );
        r.headers
            .push(("tenant".into(), Some(bytes::Bytes::from(tenant))));
        st.push_record(r);
    }
    sink.write(&st.take()).await?;
    let rows = client
        .query("SELECT tenant, department FROM by_header ORDER BY 1", &[])
        .await?;
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![("t1".into(), "Sales".into()), ("t2".into(), "Ops".into())]
    );
    Ok(())
}

#[tokio::test]
async fn deletes_tombstones_and_truncate() -> TestResult {
    let db = target_db("sink_delete").await?;
    let client = db.connect().await?;
    let s = employees_schema();
    let mut sink = JdbcSink::connect(seed_config(&db, &[("truncate.enabled", "true")])).await?;
    let mut st = Stream::new(TOPIC);
    for id in 1..=5 {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "Eng", "1")),
        ));
    }
    sink.write(&st.take()).await?;
    // Debezium DEFAULT replica identity: delete's before has only the key filled.
    let key_only = |id: i32| {
        let mut r = vec![cdc_envelope::Value::Null; 7];
        r[0] = cdc_envelope::Value::Int32(id);
        r
    };
    st.push(event(&s, Op::Delete, Some(key_only(1)), None));
    st.push_record(SinkRecord::tombstone(
        TOPIC,
        0,
        0,
        Some(RecordKey {
            names: Some(vec!["emp_id".into()]),
            values: vec![cdc_envelope::Value::Int32(1)],
        }),
    ));
    // A tombstone alone (key without names, as the JSON decoder gives it) deletes too.
    st.push_record(SinkRecord::tombstone(
        TOPIC,
        0,
        0,
        Some(RecordKey {
            names: None,
            values: vec![cdc_envelope::Value::Int32(2)],
        }),
    ));
    // Delete then re-create in the same batch: the row exists with the new values.
    st.push(event(&s, Op::Delete, Some(key_only(3)), None));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(3, "Again", "Ops", "3")),
    ));
    // Create then delete in the same batch: gone.
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(6, "Brief", "Ops", "6")),
    ));
    st.push(event(&s, Op::Delete, Some(key_only(6)), None));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let ids: Vec<i32> = client
        .query("SELECT emp_id FROM employees ORDER BY 1", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3, 4, 5]);
    let name: String = client
        .query_one("SELECT name FROM employees WHERE emp_id = 3", &[])
        .await?
        .get(0);
    assert_eq!(name, "Again");

    // Truncate wipes the table, later events of the batch apply after it.
    let mut t = event(&s, Op::Truncate, None, None);
    t.table = None;
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(10, "Gone", "Ops", "1")),
    ));
    st.push(t);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(11, "Kept", "Ops", "1")),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let ids: Vec<i32> = client
        .query("SELECT emp_id FROM employees ORDER BY 1", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![11]);

    // With delete.enabled=false / truncate.enabled=false they are skipped.
    let mut keep = JdbcSink::connect(seed_config(
        &db,
        &[
            ("delete.enabled", "false"),
            ("primary.key.mode", "record_key"),
        ],
    ))
    .await?;
    st.push(event(&s, Op::Delete, Some(key_only(11)), None));
    let mut t = event(&s, Op::Truncate, None, None);
    t.table = None;
    st.push(t);
    let out = keep.write(&st.take()).await?;
    assert_eq!(out.skipped, 2);
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 1);
    Ok(())
}

#[tokio::test]
async fn config_rejects_delete_without_record_key() {
    let mut p = std::collections::BTreeMap::new();
    p.insert(
        "connection.url".to_owned(),
        "jdbc:postgresql://127.0.0.1:1/x".to_owned(),
    );
    p.insert("connection.username".to_owned(), "u".to_owned());
    p.insert("delete.enabled".to_owned(), "true".to_owned());
    p.insert("primary.key.mode".to_owned(), "kafka".to_owned());
    let err = SinkConfig::from_properties(&p).expect_err("must be rejected");
    assert!(err.to_string().contains("delete.enabled"), "{err}");
}
