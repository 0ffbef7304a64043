//! Identifiers that need quoting, and injection attempts in table names,
//! column names and values.

mod common;

use std::sync::Arc;

use cdc_envelope::{Column, Op, PgType, TableId, TableSchema, Value};
use common::*;
use jdbc_sink::JdbcSink;

fn schema(table: &str, key: &str, other: &[&str]) -> Arc<TableSchema> {
    let mut columns = vec![Column {
        is_key: true,
        optional: false,
        ..Column::new(key, PgType::base(23, "int4"))
    }];
    columns.extend(
        other
            .iter()
            .map(|c| Column::new(*c, PgType::base(25, "text"))),
    );
    Arc::new(TableSchema {
        id: TableId::new("Weird Schema", table),
        relation_oid: 0,
        columns,
        version: 1,
    })
}

#[tokio::test]
async fn identifiers_needing_quotes_are_preserved_with_quote_identifiers() -> TestResult {
    let db = target_db("sink_idents").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("quote.identifiers", "true")])).await?;
    let s = schema(
        "Mixed Case \"Table\"",
        "Order",
        &["select", "with space", "quo\"te", "MiXeD"],
    );
    let mut st = Stream::new("t");
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(vec![
            Value::Int32(1),
            text("a"),
            text("b"),
            text("c"),
            text("d"),
        ]),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(vec![
            Value::Int32(1),
            text("a2"),
            text("b2"),
            Value::Unavailable,
            text("d2"),
        ]),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(vec![
            Value::Int32(2),
            text("x"),
            text("y"),
            text("z"),
            text("w"),
        ]),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let st2 = {
        let mut st = Stream::new("t");
        st.next = 10;
        let mut k = vec![Value::Null; 5];
        k[0] = Value::Int32(2);
        st.push(event(&s, Op::Delete, Some(k), None));
        st.take()
    };
    sink.write(&st2).await?;
    let r = client
        .query_one(r#"SELECT "Order", "select", "with space", "quo""te", "MiXeD" FROM "Mixed Case ""Table""""#, &[])
        .await?;
    let got: Vec<String> = (1..5).map(|i| r.get::<_, String>(i)).collect();
    assert_eq!(r.get::<_, i32>(0), 1);
    assert_eq!(got, vec!["a2", "b2", "c", "d2"]);
    assert_eq!(
        count(&client, r#"SELECT count(*) FROM "Mixed Case ""Table""""#).await,
        1
    );
    Ok(())
}

#[tokio::test]
async fn unquoted_mode_folds_case_like_postgres() -> TestResult {
    let db = target_db("sink_fold").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let s = schema("Employees", "EmpId", &["FullName"]);
    let mut st = Stream::new("t");
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(vec![Value::Int32(1), text("A")]),
    ));
    sink.write(&st.take()).await?;
    // Reachable without quotes, as with Debezium's default quote.identifiers=false.
    let name: String = client
        .query_one("SELECT fullname FROM employees WHERE empid = 1", &[])
        .await?
        .get(0);
    assert_eq!(name, "A");
    Ok(())
}

#[tokio::test]
async fn injection_attempts_do_nothing_harmful() -> TestResult {
    let db = target_db("sink_inject").await?;
    let client = db.connect().await?;
    client
        .batch_execute("CREATE TABLE canary (id int); INSERT INTO canary VALUES (1);")
        .await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("quote.identifiers", "true")])).await?;
    let evil_table = r#"x"; DROP TABLE canary; --"#;
    let evil_col = r#"c" text); DROP TABLE canary; CREATE TABLE "y"#;
    let evil_key = "id') OR 1=1; --";
    let s = schema(evil_table, evil_key, &[evil_col, "v"]);
    let evil_value = "'); DROP TABLE canary; -- \\ $$ \" ";
    let mut st = Stream::new("t");
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(vec![Value::Int32(1), text(evil_value), text("$1")]),
    ));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(vec![Value::Int32(1), text(evil_value), text("'';")]),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    // Type names and defaults from the source cannot inject either.
    let mut bad_type = (*schema("typed", "id", &[])).clone();
    bad_type.columns.push(Column {
        name: "d".into(),
        pg_type: PgType::base(0, "int); DROP TABLE canary; --"),
        optional: false,
        default_expr: Some("'x'); DROP TABLE canary; --".into()),
        is_key: false,
    });
    let bad_type = Arc::new(bad_type);
    st.push(event(
        &bad_type,
        Op::Create,
        None,
        Some(vec![Value::Int32(1), text("v")]),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    // A `${source.table}` value with a dot stays one identifier.
    let dotted = schema("public.canary", "id", &[]);
    st.push(event(
        &dotted,
        Op::Create,
        None,
        Some(vec![Value::Int32(5)]),
    ));
    sink.write(&st.take()).await?;

    assert_eq!(
        count(&client, "SELECT count(*) FROM canary").await,
        1,
        "canary must survive"
    );
    let q = format!(
        r#"SELECT {}, v FROM {}"#,
        jdbc_sink::quote_ident(evil_col),
        jdbc_sink::quote_ident(evil_table)
    );
    let r = client.query_one(&q, &[]).await?;
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        (evil_value.to_owned(), "'';".to_owned())
    );
    assert_eq!(
        count(&client, r#"SELECT count(*) FROM "public.canary""#).await,
        1
    );
    let t: String = client.query_one(r#"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"typed"'::regclass AND attname = 'd'"#, &[]).await?.get(0);
    assert_eq!(t, "text");
    Ok(())
}

/// Column defaults are the one place a value reaches DDL text. Malicious
/// defaults are dropped; defaults that are plain literals are re-quoted from
/// their content, so quotes, backslashes, `$$` and semicolons inside them stay
/// data, whatever the session's `standard_conforming_strings`.
#[tokio::test]
async fn malicious_column_defaults_do_nothing() -> TestResult {
    let db = target_db("sink_inject_default").await?;
    let client = db.connect().await?;
    client
        .batch_execute("CREATE TABLE canary (id int); INSERT INTO canary VALUES (1);")
        .await?;
    // Sessions that read backslashes as escapes (the sink sets the setting
    // on for itself; this checks the literal does not depend on it).
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET standard_conforming_strings = off",
            jdbc_sink::quote_ident(db.name())
        ))
        .await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let v1 = schema("t", "id", &["v"]);
    let mut st = Stream::new("t");
    st.push(event(
        &v1,
        Op::Create,
        None,
        Some(vec![Value::Int32(1), text("a")]),
    ));
    sink.write(&st.take()).await?;
    // Version 2 adds NOT NULL columns with defaults: the existing row gets them.
    let kept = r"it''s; DROP TABLE canary; -- \; $$ \\ end";
    let kept_value = r"it's; DROP TABLE canary; -- \; $$ \\ end";
    let mut v2 = (*v1).clone();
    let mut add = |name: &str, default: &str| {
        v2.columns.push(Column {
            optional: false,
            default_expr: Some(default.to_owned()),
            ..Column::new(name, PgType::base(25, "text"))
        });
    };
    add("kept", &format!("'{kept}'::text"));
    add("inj1", "'x'); DROP TABLE canary; --");
    add("inj2", "'x'::text; DROP TABLE canary");
    add("inj3", "E'\\x27); DROP TABLE canary; --'");
    add("inj4", "$$x$$); DROP TABLE canary; --");
    add("inj5", "1; DROP TABLE canary");
    v2.version = 2;
    let v2 = Arc::new(v2);
    st.push(event(
        &v2,
        Op::Create,
        None,
        Some(vec![
            Value::Int32(2),
            text("b"),
            text("k"),
            text("1"),
            text("2"),
            text("3"),
            text("4"),
            text("5"),
        ]),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(
        count(&client, "SELECT count(*) FROM canary").await,
        1,
        "canary must survive"
    );
    let row = client
        .query_one(
            "SELECT kept, inj1, inj2, inj3, inj4, inj5 FROM t WHERE id = 1",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(kept_value));
    for i in 1..=5 {
        assert_eq!(
            row.get::<_, Option<String>>(i),
            None,
            "a rejected default leaves the column without one (NULL in old rows)"
        );
    }
    // The rendered literal reads back the same under both settings.
    let literal = jdbc_sink::ident::quote_literal(kept_value);
    for scs in ["on", "off"] {
        client
            .batch_execute(&format!("SET standard_conforming_strings = {scs}"))
            .await?;
        let back: String = client
            .query_one(&format!("SELECT {literal}::text"), &[])
            .await?
            .get(0);
        assert_eq!(back, kept_value, "standard_conforming_strings={scs}");
    }
    Ok(())
}
