//! Transient database errors provoked for real against the target
//! PostgreSQL: a deadlock (40P01), a serialization failure (40001), a lock
//! timeout (55P03) and a terminated backend (57P01, connection lost) in the
//! middle of a batch. Each time the batch is rolled back, retried after a
//! backoff, the final rows are right and the offsets are stored once.
//! Non-retriable errors are not retried.

mod common;

use std::time::Duration;

use cdc_envelope::Op;
use common::*;
use jdbc_sink::{JdbcSink, SinkError, SinkRecord};
use tokio_postgres::Client;

/// The pid of the sink's backend once it waits for a row lock (polls
/// `pg_stat_activity`; gives up after 60 s).
async fn sink_waiting_on_lock(client: &Client) -> Result<i32, Box<dyn std::error::Error>> {
    for _ in 0..1200 {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'pg-cdc-sink' AND wait_event_type = 'Lock'",
                &[],
            )
            .await?;
        if let Some(r) = row {
            return Ok(r.get(0));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the sink never waited for the lock".into())
}

/// Rows 1..=n created through a first sink, then `n` updates (ids in order)
/// setting `department` to `dept`.
async fn seeded(
    db: &cdc_testkit::TestDatabase,
    n: i32,
    dept: &str,
) -> Result<(Stream, Vec<SinkRecord>), Box<dyn std::error::Error>> {
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for id in 1..=n {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "seed", "1")),
        ));
    }
    let mut seed = JdbcSink::connect(seed_config(db, &[])).await?;
    let out = seed.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    for id in 1..=n {
        st.push(event(
            &s,
            Op::Update,
            None,
            Some(emp_row(id, "E", dept, "2")),
        ));
    }
    let batch = st.take();
    Ok((st, batch))
}

async fn departments(client: &Client) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(client
        .query("SELECT department FROM employees ORDER BY emp_id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The stored offsets of the connector: exactly one row per partition.
async fn stored_offsets(
    client: &Client,
) -> Result<Vec<(String, i32, i64)>, Box<dyn std::error::Error>> {
    Ok(client
        .query(
            "SELECT topic, partition, next_offset FROM __pgcdc_sink_offsets ORDER BY topic, partition",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[tokio::test]
async fn deadlock_victim_batch_is_retried_and_commits_once() -> TestResult {
    let db = target_db("sink_deadlock").await?;
    let admin = db.connect().await?;
    let (_st, batch) = seeded(&db, 2, "sink").await?;
    // The sink's sessions detect the deadlock quickly; the blocker's session
    // waits long, so the sink is always the victim.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET deadlock_timeout = '100ms'",
            jdbc_sink::quote_ident(db.name())
        ))
        .await?;
    let blocker = db.connect().await?;
    blocker
        .batch_execute(
            "SET deadlock_timeout = '60s'; BEGIN; UPDATE employees SET department = 'blocker' WHERE emp_id = 2",
        )
        .await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("flush.retry.delay.ms", "20")])).await?;
    // The sink locks row 1, then waits for row 2 (held by the blocker)...
    let writer = tokio::spawn(async move {
        let r = sink.write(&batch).await;
        (sink, r)
    });
    sink_waiting_on_lock(&admin).await?;
    // ...and the blocker now waits for row 1: a deadlock; the sink's
    // transaction is aborted (40P01), which releases row 1.
    blocker
        .batch_execute("UPDATE employees SET department = 'blocker' WHERE emp_id = 1")
        .await?;
    blocker.batch_execute("COMMIT").await?;
    let (sink, out) = writer.await?;
    let out = out?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.transactions, 1);
    assert!(sink.retries() >= 1, "the deadlock must have been retried");
    assert_eq!(sink.last_retry_sqlstate(), Some("40P01"));
    // The retry ran after the blocker committed: the sink's values win.
    assert_eq!(departments(&admin).await?, vec!["sink", "sink"]);
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 4)],
        "offsets stored once, for the whole batch"
    );
    Ok(())
}

#[tokio::test]
async fn serialization_failure_is_retried_with_a_new_snapshot() -> TestResult {
    let db = target_db("sink_serial").await?;
    let admin = db.connect().await?;
    let (_st, batch) = seeded(&db, 3, "sink").await?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_isolation = 'serializable'",
            jdbc_sink::quote_ident(db.name())
        ))
        .await?;
    let blocker = db.connect().await?;
    blocker
        .batch_execute("BEGIN; UPDATE employees SET department = 'blocker' WHERE emp_id = 2")
        .await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("flush.retry.delay.ms", "20")])).await?;
    let isolation: String = db
        .connect()
        .await?
        .query_one("SHOW default_transaction_isolation", &[])
        .await?
        .get(0);
    assert_eq!(isolation, "serializable");
    let writer = tokio::spawn(async move {
        let r = sink.write(&batch).await;
        (sink, r)
    });
    sink_waiting_on_lock(&admin).await?;
    // The row the sink waits for changes under its snapshot: 40001.
    blocker.batch_execute("COMMIT").await?;
    let (sink, out) = writer.await?;
    let out = out?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert!(
        sink.retries() >= 1,
        "the serialization failure must have been retried"
    );
    assert_eq!(sink.last_retry_sqlstate(), Some("40001"));
    assert_eq!(departments(&admin).await?, vec!["sink", "sink", "sink"]);
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 6)]
    );
    Ok(())
}

#[tokio::test]
async fn terminated_backend_mid_batch_reconnects_and_writes_once() -> TestResult {
    let db = target_db("sink_kill").await?;
    let admin = db.connect().await?;
    // insert.mode=insert: applying a record twice would fail on the key.
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for id in 1..=5 {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "first", "1")),
        ));
    }
    let cfg = |db| {
        seed_config(
            db,
            &[
                ("insert.mode", "insert"),
                ("errors.tolerance", "none"),
                ("flush.retry.delay.ms", "20"),
            ],
        )
    };
    let mut sink = JdbcSink::connect(cfg(&db)).await?;
    sink.write(&st.take()).await?;
    for id in 6..=10 {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "second", "1")),
        ));
    }
    let batch = st.take();
    // Hold the key the batch inserts last, so the sink blocks mid-batch.
    let blocker = db.connect().await?;
    blocker
        .batch_execute("BEGIN; INSERT INTO employees (emp_id, name) VALUES (10, 'uncommitted')")
        .await?;
    let writer = tokio::spawn(async move {
        let r = sink.write(&batch).await;
        (sink, r)
    });
    let pid = sink_waiting_on_lock(&admin).await?;
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await?
        .get(0);
    assert!(killed);
    blocker.batch_execute("ROLLBACK").await?;
    let (sink, out) = writer.await?;
    let out = out?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert!(
        sink.retries() >= 1,
        "the lost connection must have been retried"
    );
    // Terminated (57P01), or the blocker's lock again after reconnecting is
    // not an error: the last retry is the lost connection itself.
    assert!(
        matches!(sink.last_retry_sqlstate(), Some("57P01") | None)
            || sink
                .last_retry_sqlstate()
                .is_some_and(|c| c.starts_with("08")),
        "{:?}",
        sink.last_retry_sqlstate()
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM employees").await, 10);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM employees WHERE department = 'second'"
        )
        .await,
        5
    );
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 10)]
    );
    let pids = count(
        &admin,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-cdc-sink' AND pid <> {pid}"
        ),
    )
    .await;
    assert!(pids >= 1, "the sink reconnected");
    Ok(())
}

#[tokio::test]
async fn persistent_transient_error_gives_up_after_max_retries() -> TestResult {
    let db = target_db("sink_giveup").await?;
    let admin = db.connect().await?;
    let (_st, batch) = seeded(&db, 2, "sink").await?;
    // Every attempt waits for the blocker's row lock and times out (55P03).
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET lock_timeout = '50ms'",
            jdbc_sink::quote_ident(db.name())
        ))
        .await?;
    let blocker = db.connect().await?;
    blocker
        .batch_execute("BEGIN; UPDATE employees SET department = 'blocker' WHERE emp_id = 2")
        .await?;
    let mut sink = JdbcSink::connect(seed_config(
        &db,
        &[("flush.max.retries", "2"), ("flush.retry.delay.ms", "10")],
    ))
    .await?;
    let err = sink.write(&batch).await.expect_err("must give up");
    match &err {
        SinkError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(
                matches!(&**last, SinkError::Database { code: Some(c), .. } if c == "55P03"),
                "{last}"
            );
        }
        other => panic!("expected RetriesExhausted, got {other}"),
    }
    assert_eq!(sink.retries(), 2);
    assert_eq!(sink.last_retry_sqlstate(), Some("55P03"));
    blocker.batch_execute("ROLLBACK").await?;
    // Nothing of the batch, and no offsets for it.
    assert_eq!(departments(&admin).await?, vec!["seed", "seed"]);
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 2)]
    );
    // The same writer recovers once the lock is gone.
    let out = sink.write(&batch).await?;
    assert!(out.failed.is_empty());
    assert_eq!(departments(&admin).await?, vec!["sink", "sink"]);
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 4)]
    );
    Ok(())
}

#[tokio::test]
async fn non_retriable_errors_are_not_retried() -> TestResult {
    let db = target_db("sink_noretry").await?;
    let admin = db.connect().await?;
    let (mut st, _) = seeded(&db, 1, "unused").await?;
    let s = employees_schema();
    let mut row = emp_row(2, "E", "Eng", "1");
    row[4] = num("123456789.00"); // numeric(10,2) overflow: 22003
    st.push(event(&s, Op::Create, None, Some(row)));
    // A long backoff: a retry would show in retries() (never in timing).
    let mut sink = JdbcSink::connect(seed_config(
        &db,
        &[
            ("errors.tolerance", "none"),
            ("flush.retry.delay.ms", "60000"),
        ],
    ))
    .await?;
    let err = sink.write(&st.take()).await.expect_err("overflow");
    assert!(matches!(err, SinkError::Record { .. }), "{err}");
    assert!(!err.is_retriable());
    assert_eq!(sink.retries(), 0);
    // Schema errors are not retried either.
    admin
        .batch_execute("ALTER TABLE employees DROP CONSTRAINT employees_pkey")
        .await?;
    st.push(event(
        &s,
        Op::Update,
        None,
        Some(emp_row(1, "E", "Eng", "1")),
    ));
    let err = sink.write(&st.take()).await.expect_err("no unique key");
    assert!(matches!(err, SinkError::Schema { .. }), "{err}");
    assert_eq!(sink.retries(), 0);
    assert_eq!(
        stored_offsets(&admin).await?,
        vec![(TOPIC.to_owned(), 0, 1)],
        "nothing stored for failed batches"
    );
    Ok(())
}
