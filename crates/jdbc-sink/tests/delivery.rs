//! Exactly-once offsets, failing-record isolation, transient-error retries
//! and parallel writers.

mod common;

use cdc_envelope::{Op, Value};
use common::*;
use jdbc_sink::{JdbcSink, SinkError, SinkPool, TopicPartition};

#[tokio::test]
async fn crash_between_db_commit_and_offset_commit_replays_as_a_no_op() -> TestResult {
    let db = target_db("sink_eos").await?;
    let client = db.connect().await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for id in 1..=10 {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "Eng", "1")),
        ));
    }
    // Updates that would be visible if replayed on top of later changes.
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "E", "Replayed?", "1")),
    ));
    let batch1 = st.take();
    {
        let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
        assert!(sink.load_offsets().await?.is_empty());
        let out = sink.write(&batch1).await?;
        assert_eq!(
            out.next_offsets.get(&TopicPartition::new(TOPIC, 0)),
            Some(&11)
        );
        // "Crash": the Kafka offset commit never happens; the sink is dropped.
    }
    // A later change applied directly by a newer batch.
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let stored = sink.load_offsets().await?;
    assert_eq!(stored.get(&TopicPartition::new(TOPIC, 0)), Some(&11));
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "E", "Final", "1")),
    ));
    sink.write(&st.take()).await?;
    // Kafka redelivers everything from offset 0 (the consumer did not seek).
    let mut replay = JdbcSink::connect(seed_config(&db, &[])).await?;
    let out = replay.write(&batch1).await?;
    assert_eq!(out.replayed, 11);
    assert_eq!(out.written, 0);
    let dept: String = client
        .query_one("SELECT department FROM employees WHERE emp_id = 1", &[])
        .await?
        .get(0);
    assert_eq!(dept, "Final", "the replay must not overwrite newer state");
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 10);
    let stored: i64 = client
        .query_one("SELECT next_offset FROM __pgcdc_sink_offsets WHERE connector = 'pg-cdc-sink' AND topic = $1 AND partition = 0", &[&TOPIC])
        .await?
        .get(0);
    assert_eq!(stored, 12);
    Ok(())
}

#[tokio::test]
async fn at_least_once_without_offsets_table() -> TestResult {
    let db = target_db("sink_alo").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("pgcdc.exactly.once", "false")])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "E", "Eng", "1")),
    ));
    let batch = st.take();
    sink.write(&batch).await?;
    let out = sink.write(&batch).await?; // redelivery: idempotent upsert
    assert_eq!(
        out.next_offsets.get(&TopicPartition::new(TOPIC, 0)),
        Some(&1)
    );
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 1);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = '__pgcdc_sink_offsets'"
        )
        .await,
        0
    );
    Ok(())
}

#[tokio::test]
async fn failing_records_are_isolated_and_the_rest_commits() -> TestResult {
    let db = target_db("sink_isolate").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for id in 1..=40 {
        let mut row = emp_row(id, "E", "Eng", "1.00");
        match id {
            7 => row[4] = num("123456789.00"), // numeric(10,2) overflow → 22003
            19 => row[1] = Value::Null,        // NOT NULL name → 23502
            23 => row[3] = text(&"d".repeat(51)), // varchar(50) too long → 22001
            31 => row[0] = Value::Text("not-an-int".into()), // wrong type for int4 → data error
            _ => {}
        }
        st.push(event(&s, Op::Create, None, Some(row)));
    }
    let out = sink.write(&st.take()).await?;
    let failed: Vec<(i64, Option<String>, String)> = out
        .failed
        .iter()
        .map(|f| {
            (
                f.offset,
                f.error.sqlstate.clone(),
                f.error.class_name.clone(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                6,
                Some("22003".into()),
                "org.postgresql.util.PSQLException".into()
            ),
            (
                18,
                Some("23502".into()),
                "org.postgresql.util.PSQLException".into()
            ),
            (
                22,
                Some("22001".into()),
                "org.postgresql.util.PSQLException".into()
            ),
            (
                30,
                None,
                "org.apache.kafka.connect.errors.DataException".into()
            ),
        ]
    );
    assert!(
        out.failed[0]
            .error
            .message
            .contains("numeric field overflow"),
        "{}",
        out.failed[0].error.message
    );
    assert_eq!(out.written, 36);
    assert_eq!(out.transactions, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 36);
    // Offsets cover the failed records too (they go to the DLQ).
    assert_eq!(
        out.next_offsets.get(&TopicPartition::new(TOPIC, 0)),
        Some(&40)
    );
    Ok(())
}

#[tokio::test]
async fn errors_tolerance_none_fails_the_batch_and_commits_nothing() -> TestResult {
    let db = target_db("sink_tolnone").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("errors.tolerance", "none")])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "E", "Eng", "1")),
    ));
    sink.write(&st.take()).await?;
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "E", "Eng", "1")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(3, "E", "Eng", "99999999999")),
    ));
    let err = sink.write(&st.take()).await.expect_err("must fail");
    assert!(matches!(err, SinkError::Record { .. }), "{err}");
    assert!(!err.is_retriable());
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 1);
    Ok(())
}

#[tokio::test]
async fn lost_connection_is_retried_with_reconnect() -> TestResult {
    let db = target_db("sink_retry").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "E", "Eng", "1")),
    ));
    sink.write(&st.take()).await?;
    // Kill the sink's backend (admin shutdown of the session, SQLSTATE 57P01).
    let killed = count(
        &client,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'pg-cdc-sink'",
    )
    .await;
    assert_eq!(killed, 1);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "E", "Eng", "1")),
    ));
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty());
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 2);
    Ok(())
}

#[tokio::test]
async fn pool_writes_partitions_in_parallel_preserving_order_per_key() -> TestResult {
    let db = target_db("sink_pool").await?;
    let client = db.connect().await?;
    let pool = SinkPool::with_writers(seed_config(&db, &[("batch.size", "7")]), 3).await?;
    assert_eq!(pool.writers(), 3);
    let s = employees_schema();
    let mut records = Vec::new();
    // 4 partitions; key k always on partition k % 4; 5 successive versions per key.
    let mut offsets = [0i64; 4];
    for version in 0..5 {
        for id in 0..40 {
            let p = (id % 4) as usize;
            let mut r = jdbc_sink::SinkRecord::from_event(
                TOPIC,
                p as i32,
                offsets[p],
                event(
                    &s,
                    if version == 0 { Op::Create } else { Op::Update },
                    None,
                    Some(emp_row(id, "E", &format!("v{version}"), "1")),
                ),
            );
            r.offset = offsets[p];
            offsets[p] += 1;
            records.push(r);
        }
    }
    let out = pool.write(records).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.next_offsets.len(), 4);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM employees WHERE department = 'v4'"
        )
        .await,
        40
    );
    let stored = pool.load_offsets().await?;
    assert_eq!(
        stored.values().copied().collect::<Vec<_>>(),
        vec![50, 50, 50, 50]
    );
    Ok(())
}

#[tokio::test]
async fn copy_path_isolates_failures_and_reuses_staging_across_batches() -> TestResult {
    let db = target_db("sink_copy").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(
        &db,
        &[("pgcdc.write.path", "copy"), ("batch.size", "10")],
    ))
    .await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for round in 0..3 {
        for id in 1..=25 {
            let mut row = emp_row(id, "E", &format!("r{round}"), "1.00");
            if round == 1 && id == 13 {
                row[4] = num("123456789.00"); // numeric overflow
            }
            if round == 2 && id % 2 == 0 {
                row[2] = cdc_envelope::Value::Unavailable; // TOAST-style partial rows: second group
            }
            st.push(event(&s, Op::Update, None, Some(row)));
        }
    }
    let out = sink.write(&st.take()).await?;
    assert_eq!(out.transactions, 8);
    assert_eq!(
        out.failed.iter().map(|f| f.offset).collect::<Vec<_>>(),
        vec![37]
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM employees WHERE department = 'r2'"
        )
        .await,
        25
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM employees WHERE email IS NULL"
        )
        .await,
        0
    );
    Ok(())
}

#[tokio::test]
async fn offsets_are_written_in_the_same_transaction_as_the_rows() -> TestResult {
    let db = target_db("sink_eos_tx").await?;
    let client = db.connect().await?;
    // errors.tolerance=none: no savepoint, so rows and offsets share one xmin.
    let mut sink = JdbcSink::connect(seed_config(&db, &[("errors.tolerance", "none")])).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(1, "E", "Eng", "1")),
    ));
    st.push(event(
        &s,
        Op::Create,
        None,
        Some(emp_row(2, "E", "Eng", "1")),
    ));
    sink.write(&st.take()).await?;
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(2, "E", "Ops", "1")),
    ));
    sink.write(&st.take()).await?;
    let rows: String = client
        .query_one("SELECT xmin::text FROM employees WHERE emp_id = 2", &[])
        .await?
        .get(0);
    let offs: String = client
        .query_one("SELECT xmin::text FROM __pgcdc_sink_offsets", &[])
        .await?
        .get(0);
    assert_eq!(rows, offs, "offsets must commit in the rows' transaction");
    Ok(())
}

/// A batch larger than one pipelined slice (512, then 1024, 2048 … records)
/// with every key repeated in every slice: the slices' statements run in
/// record order in one transaction, so the final state is the last version
/// of each key, and an unchanged-TOAST column keeps the last value written.
#[tokio::test]
async fn pipelined_slices_keep_the_order_per_key() -> TestResult {
    for reduce in ["true", "false"] {
        let db = target_db("sink_slices").await?;
        let client = db.connect().await?;
        let mut sink = JdbcSink::connect(seed_config(
            &db,
            &[("batch.size", "5000"), ("use.reduction.buffer", reduce)],
        ))
        .await?;
        let s = employees_schema();
        let mut st = Stream::new(TOPIC);
        for version in 0..30 {
            for id in 0..100 {
                let mut row = emp_row(id, &format!("N{version}"), &format!("v{version}"), "1");
                if version >= 20 {
                    row[2] = Value::Unavailable; // email unchanged (TOAST-style)
                }
                st.push(event(
                    &s,
                    if version == 0 { Op::Create } else { Op::Update },
                    None,
                    Some(row),
                ));
            }
        }
        let out = sink.write(&st.take()).await?;
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        assert_eq!(out.transactions, 1);
        assert_eq!(out.written, 3000);
        let rows = client
            .query(
                "SELECT count(*) FILTER (WHERE department = 'v29'), \
                 count(*) FILTER (WHERE email = 'n19@example.com'), count(*) FROM employees",
                &[],
            )
            .await?;
        let r = &rows[0];
        assert_eq!(
            (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)),
            (100, 100, 100),
            "use.reduction.buffer={reduce}"
        );
        let stored: i64 = client
            .query_one("SELECT next_offset FROM __pgcdc_sink_offsets", &[])
            .await?
            .get(0);
        assert_eq!(stored, 3000);
    }
    Ok(())
}

/// The UNNEST path sends rows as an array of a `pg_temp` row type; a role
/// without the `TEMP` privilege on the database still writes (one array per
/// column instead), after one rolled-back attempt.
#[tokio::test]
async fn role_without_temp_privilege_still_writes() -> TestResult {
    let db = target_db("sink_notemp").await?;
    let admin = db.connect().await?;
    let role = format!("{}_writer", db.name());
    let role_q = jdbc_sink::quote_ident(&role);
    let db_q = jdbc_sink::quote_ident(db.name());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role_q} LOGIN PASSWORD 'w-secret' NOSUPERUSER; \
             REVOKE TEMPORARY ON DATABASE {db_q} FROM PUBLIC; \
             GRANT CONNECT ON DATABASE {db_q} TO {role_q}; \
             GRANT CREATE, USAGE ON SCHEMA public TO {role_q};"
        ))
        .await?;
    let result = async {
        let mut p = props(
            &db,
            &[
                ("insert.mode", "upsert"),
                ("primary.key.mode", "record_key"),
                ("schema.evolution", "basic"),
                ("table.name.format", "${source.table}"),
                ("errors.tolerance", "all"),
            ],
        );
        p.insert("connection.username".into(), role.clone());
        p.insert("connection.password".into(), "w-secret".into());
        let mut sink = JdbcSink::connect(jdbc_sink::SinkConfig::from_properties(&p)?).await?;
        let s = employees_schema();
        let mut st = Stream::new(TOPIC);
        for id in 1..=3 {
            st.push(event(
                &s,
                Op::Create,
                None,
                Some(emp_row(id, "E", "Eng", "1")),
            ));
        }
        let out = sink.write(&st.take()).await?;
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        st.push(event(
            &s,
            Op::Update,
            None,
            Some(emp_row(2, "E", "Ops", "1")),
        ));
        let out = sink.write(&st.take()).await?;
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let rows = count(&admin, "SELECT count(*) FROM employees").await;
    let ops = count(
        &admin,
        "SELECT count(*) FROM employees WHERE department = 'Ops'",
    )
    .await;
    admin
        .batch_execute(&format!(
            "DROP OWNED BY {role_q} CASCADE; DROP ROLE {role_q}"
        ))
        .await
        .ok();
    result?;
    assert_eq!((rows, ops), (3, 1));
    Ok(())
}
