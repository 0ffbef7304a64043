//! Transactional produce: committed batches are visible together with their
//! position; aborted ones are invisible to `read_committed` consumers; the
//! last committed position survives a restart.

mod common;

use std::time::Duration;

use common::*;
use kafka_io::{BatchConsumer, BatchOptions, Record, TransactionalProducer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_are_invisible_and_positions_resume() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("txn_data");
    let positions = cdc_testkit::unique_name("txn_positions");
    let txn_id = cdc_testkit::unique_name("pg_source_txn");
    create_topic(&cfg, &topic, 3).await;

    let mut p = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    assert_eq!(p.last_committed_position().await?, None);

    let mut t = p.begin()?;
    for i in 0..10 {
        t.send(
            &Record::to(&topic)
                .key(format!("c{i}").as_bytes())
                .value(b"committed-1"),
        )
        .await?;
    }
    t.commit(b"lsn=0/100").await?;

    let mut t = p.begin()?;
    for i in 0..10 {
        t.send(
            &Record::to(&topic)
                .key(format!("a{i}").as_bytes())
                .value(b"aborted"),
        )
        .await?;
    }
    t.abort().await?;

    let mut t = p.begin()?;
    t.send(&Record::to(&topic).key(b"c10").value(b"committed-2"))
        .await?;
    t.commit(b"lsn=0/200").await?;

    // A dropped, never-finished transaction of a crashed instance …
    let mut t = p.begin()?;
    t.send(&Record::to(&topic).key(b"zombie").value(b"aborted"))
        .await?;
    std::mem::forget(t);
    drop(p);

    // … is aborted by the restarted instance (same transactional.id).
    let p2 = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    assert_eq!(
        p2.last_committed_position().await?.as_deref(),
        Some(&b"lsn=0/200"[..])
    );

    let c = BatchConsumer::new(
        &cfg,
        &cdc_testkit::unique_name("rc"),
        None,
        BatchOptions {
            max_records: 1000,
            max_wait: Duration::from_millis(500),
            ..BatchOptions::default()
        },
    )?;
    c.subscribe(&[&topic])?;
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < end {
        got.extend(c.next_batch().await?.records);
        if got.len() >= 11 {
            // Keep reading a little: nothing aborted may show up later.
            for _ in 0..4 {
                got.extend(c.next_batch().await?.records);
            }
            break;
        }
    }
    let values: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(got.len(), 11, "{values:?}");
    assert!(
        values.iter().all(|v| v.starts_with("committed")),
        "{values:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_fences_the_old_one() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("txn_fence");
    let positions = cdc_testkit::unique_name("txn_fence_pos");
    let txn_id = cdc_testkit::unique_name("fence");
    create_topic(&cfg, &topic, 1).await;

    let mut old = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    let mut t = old.begin()?;
    t.send(&Record::to(&topic).key(b"k").value(b"zombie"))
        .await?;

    // The new instance fences the old one (and aborts its open transaction).
    let new = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    let err = t
        .commit(b"lsn=zombie")
        .await
        .expect_err("a fenced producer cannot commit");
    assert!(!err.is_retriable(), "{err}");
    assert_eq!(new.last_committed_position().await?, None);
    Ok(())
}
