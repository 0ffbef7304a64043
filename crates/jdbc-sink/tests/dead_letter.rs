//! Failed records reach the dead-letter hook before the transaction that
//! stores offsets past them commits; a failing hook rolls the transaction
//! back. Observed through a second connection to the real target.

mod common;

use std::sync::Mutex;

use cdc_envelope::Op;
use common::*;
use jdbc_sink::{
    DeadLetterFuture, DeadLetterSink, FailedRecord, JdbcSink, SinkError, SinkPool, SinkRecord,
    TopicPartition,
};
use tokio_postgres::Client;

/// What the database looked like, from another session, when the hook ran.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// (topic, partition, offset, index) of the records handed over.
    failed: Vec<(String, i32, i64, usize)>,
    /// Stored next offsets of the records' partitions (None: no row).
    stored: Vec<Option<i64>>,
    /// Rows in `employees` visible to another session.
    rows: i64,
}

/// A hook that looks at the target from a second connection, then succeeds
/// or fails as told.
struct Observer {
    client: Client,
    exactly_once: bool,
    fail: bool,
    /// Terminates the sink's session (idle in transaction) once, after
    /// acknowledging: its COMMIT is then lost.
    kill_sink_once: Mutex<bool>,
    seen: Mutex<Vec<Seen>>,
}

impl Observer {
    async fn new(db: &cdc_testkit::TestDatabase, exactly_once: bool) -> Self {
        Self {
            client: db.connect().await.expect("second connection"),
            exactly_once,
            fail: false,
            kill_sink_once: Mutex::new(false),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    async fn stored(&self, tp: &TopicPartition) -> Option<i64> {
        if !self.exactly_once {
            return None;
        }
        self.client
            .query_opt(
                "SELECT next_offset FROM __pgcdc_sink_offsets WHERE connector = 'pg-cdc-sink' AND topic = $1 AND partition = $2",
                &[&tp.topic, &tp.partition],
            )
            .await
            .expect("offsets query")
            .map(|r| r.get(0))
    }
}

impl DeadLetterSink for Observer {
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
        Box::pin(async move {
            let mut stored = Vec::new();
            for f in failed {
                stored.push(
                    self.stored(&TopicPartition::new(f.topic.clone(), f.partition))
                        .await,
                );
            }
            let rows = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'employees'",
                    &[],
                )
                .await?
                .get::<_, i64>(0);
            let rows = if rows == 0 {
                0
            } else {
                count(&self.client, "SELECT count(*) FROM employees").await
            };
            self.seen.lock().expect("lock").push(Seen {
                failed: failed
                    .iter()
                    .map(|f| (f.topic.clone(), f.partition, f.offset, f.index))
                    .collect(),
                stored,
                rows,
            });
            if self.fail {
                return Err("the DLQ is unreachable".into());
            }
            let kill = std::mem::take(&mut *self.kill_sink_once.lock().expect("lock"));
            if kill {
                let n: i64 = self
                    .client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid() \
                         AND state = 'idle in transaction'",
                        &[],
                    )
                    .await?
                    .get(0);
                assert_eq!(n, 1, "exactly the sink's session is in a transaction");
            }
            Ok(())
        })
    }
}

/// Ten `employees` inserts at offsets `from..from+10` on partition 0; the
/// ids in `bad` overflow `numeric(10,2)`.
fn batch(st: &mut Stream, ids: std::ops::Range<i32>, bad: &[i32]) -> Vec<SinkRecord> {
    let s = employees_schema();
    for id in ids {
        let salary = if bad.contains(&id) {
            "123456789.00"
        } else {
            "1.00"
        };
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "Eng", salary)),
        ));
    }
    st.take()
}

async fn stored_offset(client: &Client) -> Option<i64> {
    client
        .query_opt(
            "SELECT next_offset FROM __pgcdc_sink_offsets WHERE connector = 'pg-cdc-sink' AND topic = $1 AND partition = 0",
            &[&TOPIC],
        )
        .await
        .expect("offsets query")
        .map(|r| r.get(0))
}

#[tokio::test]
async fn dead_letters_are_delivered_before_the_offsets_past_them_commit() -> TestResult {
    let db = target_db("sink_dlq_order").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let hook = Observer::new(&db, true).await;
    let mut st = Stream::new(TOPIC);
    // Offsets 0..5 clean (fast path, no hook call).
    let first = batch(&mut st, 1..6, &[]);
    let out = sink.write_with(&first, &hook).await?;
    assert!(out.failed.is_empty());
    assert!(hook.seen().is_empty(), "no failed record, no hook call");
    assert_eq!(stored_offset(&client).await, Some(5));
    // Offsets 5..15; ids 8 and 12 (offsets 7 and 11) fail.
    let second = batch(&mut st, 6..16, &[8, 12]);
    let out = sink.write_with(&second, &hook).await?;
    let seen = hook.seen();
    assert_eq!(
        seen,
        vec![Seen {
            failed: vec![(TOPIC.to_owned(), 0, 7, 2), (TOPIC.to_owned(), 0, 11, 6)],
            // The offsets row had not moved past the failed records, and no
            // row of the batch was visible: the COMMIT had not happened.
            stored: vec![Some(5), Some(5)],
            rows: 5,
        }]
    );
    assert_eq!(
        out.failed
            .iter()
            .map(|f| (f.offset, f.index))
            .collect::<Vec<_>>(),
        vec![(7, 2), (11, 6)]
    );
    assert_eq!(out.written, 8);
    assert_eq!(stored_offset(&client).await, Some(15));
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 13);
    Ok(())
}

#[tokio::test]
async fn at_least_once_dead_letters_before_the_rows_commit() -> TestResult {
    let db = target_db("sink_dlq_alo").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("pgcdc.exactly.once", "false")])).await?;
    let hook = Observer::new(&db, false).await;
    let mut st = Stream::new(TOPIC);
    sink.write_with(&batch(&mut st, 1..4, &[]), &hook).await?;
    let out = sink.write_with(&batch(&mut st, 4..8, &[5]), &hook).await?;
    let seen = hook.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].failed, vec![(TOPIC.to_owned(), 0, 4, 1)]);
    assert_eq!(seen[0].rows, 3, "the batch's rows were not committed yet");
    assert_eq!(out.failed.len(), 1);
    // The caller commits these to Kafka only now, after the DLQ and the rows.
    assert_eq!(
        out.next_offsets.get(&TopicPartition::new(TOPIC, 0)),
        Some(&7)
    );
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 6);
    Ok(())
}

#[tokio::test]
async fn failing_dead_letter_hook_rolls_the_batch_back() -> TestResult {
    let db = target_db("sink_dlq_fail").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let mut hook = Observer::new(&db, true).await;
    let mut st = Stream::new(TOPIC);
    sink.write_with(&batch(&mut st, 1..4, &[]), &hook).await?;
    assert_eq!(stored_offset(&client).await, Some(3));
    let bad = batch(&mut st, 4..10, &[6]);
    hook.fail = true;
    let err = sink
        .write_with(&bad, &hook)
        .await
        .expect_err("the hook failed");
    match &err {
        SinkError::DeadLetter {
            topic,
            partition,
            offset,
            count,
            ..
        } => {
            assert_eq!(
                (topic.as_str(), *partition, *offset, *count),
                (TOPIC, 0, 5, 1)
            );
        }
        other => panic!("expected SinkError::DeadLetter, got {other}"),
    }
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("the DLQ is unreachable"), "{err}");
    // Rolled back: offsets unchanged, no row of the batch written.
    assert_eq!(stored_offset(&client).await, Some(3));
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 3);
    assert_eq!(
        count(&client, "SELECT count(*) FROM employees WHERE emp_id >= 4").await,
        0
    );
    // The same batch again (the task restarted) once the DLQ is back.
    hook.fail = false;
    let out = sink.write_with(&bad, &hook).await?;
    assert_eq!(out.failed.len(), 1);
    assert_eq!(hook.seen().len(), 2, "delivered again on the redo");
    assert_eq!(stored_offset(&client).await, Some(9));
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 8);
    Ok(())
}

#[tokio::test]
async fn errors_tolerance_none_never_calls_the_hook() -> TestResult {
    let db = target_db("sink_dlq_none").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[("errors.tolerance", "none")])).await?;
    let hook = Observer::new(&db, true).await;
    let mut st = Stream::new(TOPIC);
    let err = sink
        .write_with(&batch(&mut st, 1..5, &[2]), &hook)
        .await
        .expect_err("tolerance none");
    assert!(matches!(err, SinkError::Record { .. }), "{err}");
    assert!(hook.seen().is_empty());
    assert_eq!(stored_offset(&client).await, None);
    Ok(())
}

#[tokio::test]
async fn acknowledged_dead_letters_are_not_redelivered_when_the_commit_is_lost() -> TestResult {
    let db = target_db("sink_dlq_lost").await?;
    let client = db.connect().await?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let hook = Observer::new(&db, true).await;
    *hook.kill_sink_once.lock().expect("lock") = true;
    let mut st = Stream::new(TOPIC);
    let out = sink.write_with(&batch(&mut st, 1..7, &[3]), &hook).await?;
    // The session died after the DLQ acknowledged; the retry redid the
    // batch without handing the record over a second time.
    assert_eq!(sink.retries(), 1);
    assert_eq!(hook.seen().len(), 1);
    assert_eq!(
        out.failed.iter().map(|f| f.offset).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(stored_offset(&client).await, Some(6));
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 5);
    Ok(())
}

#[tokio::test]
async fn pool_writers_dead_letter_before_their_commits_with_caller_indices() -> TestResult {
    let db = target_db("sink_dlq_pool").await?;
    let client = db.connect().await?;
    let pool = SinkPool::with_writers(seed_config(&db, &[("batch.size", "6")]), 2).await?;
    let hook = std::sync::Arc::new(Observer::new(&db, true).await);
    let s = employees_schema();
    let mut records = Vec::new();
    let mut offsets = [0i64; 4];
    for id in 0..40 {
        let p = (id % 4) as usize;
        let salary = if id % 9 == 4 { "123456789.00" } else { "1.00" };
        records.push(SinkRecord::from_event(
            TOPIC,
            p as i32,
            offsets[p],
            event(&s, Op::Create, None, Some(emp_row(id, "E", "Eng", salary))),
        ));
        offsets[p] += 1;
    }
    let expected: Vec<(i32, i64, usize)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.value
                .as_ref()
                .and_then(|v| v.after.as_ref())
                .is_some_and(|row| matches!(row[0], cdc_envelope::Value::Int32(id) if id % 9 == 4))
        })
        .map(|(i, r)| (r.partition, r.offset, i))
        .collect();
    assert_eq!(expected.len(), 4);
    let out = pool.write_with(records.clone(), hook.clone()).await?;
    let mut handed: Vec<(i32, i64, usize)> = Vec::new();
    for seen in hook.seen() {
        for ((_, partition, offset, index), stored) in seen.failed.iter().zip(&seen.stored) {
            // The index is the caller's position in `records`.
            assert_eq!(
                (records[*index].partition, records[*index].offset),
                (*partition, *offset)
            );
            // The partition's stored offset had not passed the record yet.
            assert!(
                stored.unwrap_or(0) <= *offset,
                "offset {offset} of partition {partition} already committed past ({stored:?})"
            );
            handed.push((*partition, *offset, *index));
        }
    }
    handed.sort_by_key(|h| h.2);
    assert_eq!(handed, expected);
    let mut got: Vec<(i32, i64, usize)> = out
        .failed
        .iter()
        .map(|f| (f.partition, f.offset, f.index))
        .collect();
    got.sort_by_key(|h| h.2);
    assert_eq!(got, expected);
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 36);
    assert_eq!(
        pool.load_offsets()
            .await?
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![10, 10, 10, 10]
    );
    Ok(())
}
