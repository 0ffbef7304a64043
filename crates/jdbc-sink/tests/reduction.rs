//! `use.reduction.buffer`: `true` (the default here) collapses the events of
//! one key in a batch to its final state; `false` applies every event in
//! record order, as the Debezium JDBC sink does without its reduction
//! buffer, which a secondary unique constraint can require.

mod common;

use cdc_envelope::Op;
use common::*;
use jdbc_sink::{JdbcSink, SinkError};

/// Key 1's email moves x → y → z while key 2's moves z → x: fine one event
/// at a time, but collapsed (key 1 straight to z while key 2 still holds z)
/// it violates `UNIQUE (email)`.
async fn swap_emails(reduce: &str) -> Result<Result<(), SinkError>, Box<dyn std::error::Error>> {
    let db = target_db("sink_reduce").await?;
    let client = db.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE employees (emp_id int PRIMARY KEY, name varchar(100) NOT NULL, \
             email varchar(100) UNIQUE, department varchar(50), salary numeric(10,2), \
             hire_date date, created_at timestamp)",
        )
        .await?;
    let cfg = |db| {
        seed_config(
            db,
            &[
                ("errors.tolerance", "none"),
                ("use.reduction.buffer", reduce),
            ],
        )
    };
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    st.push(event(&s, Op::Create, None, Some(emp_row(1, "X", "d", "1"))));
    st.push(event(&s, Op::Create, None, Some(emp_row(2, "Z", "d", "1"))));
    let mut sink = JdbcSink::connect(cfg(&db)).await?;
    sink.write(&st.take()).await?;
    st.push(event(&s, Op::Update, None, Some(emp_row(1, "Y", "d", "1"))));
    st.push(event(&s, Op::Update, None, Some(emp_row(2, "X", "d", "1"))));
    st.push(event(&s, Op::Update, None, Some(emp_row(1, "Z", "d", "1"))));
    let r = sink.write(&st.take()).await.map(|_| ());
    if r.is_ok() {
        let emails: Vec<String> = client
            .query("SELECT email FROM employees ORDER BY emp_id", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(emails, vec!["z@example.com", "x@example.com"]);
        let stored = count(&client, "SELECT max(next_offset) FROM __pgcdc_sink_offsets").await;
        assert_eq!(stored, 5);
    }
    Ok(r)
}

#[tokio::test]
async fn without_reduction_buffer_events_apply_in_record_order() -> TestResult {
    swap_emails("false").await??;
    Ok(())
}

#[tokio::test]
async fn with_reduction_buffer_only_final_states_are_written() -> TestResult {
    // The collapsed order breaks the secondary unique constraint, as the
    // Debezium documentation warns for its reduction buffer.
    match swap_emails("true").await? {
        Err(SinkError::Record { error, .. }) => {
            assert_eq!(error.sqlstate.as_deref(), Some("23505"), "{error}");
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    Ok(())
}
