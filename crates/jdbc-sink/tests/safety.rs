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
