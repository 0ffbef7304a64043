//! Transactional produce: committed batches are visible together with their
//! position; aborted ones are invisible to `read_committed` consumers; the
//! last committed position survives a restart.

mod common;

use std::time::Duration;

use common::*;
use kafka_io::{Record, TransactionalProducer};

/// Each test below runs on both transactional engines (`producer.engine`).
macro_rules! on_both_engines {
    ($($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native() -> super::TestResult {
                super::$name("native").await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn librdkafka() -> super::TestResult {
                super::$name("librdkafka").await
            }
        }
    )*};
}

on_both_engines!(
    aborted_transactions_are_invisible_and_positions_resume,
    aborts_right_after_commits_keep_the_producer_usable,
    a_restarted_instance_fences_the_old_one,
    positions_are_found_behind_other_connectors_records,
    keyless_records_for_compacted_topics_are_refused_alone
);

async fn aborted_transactions_are_invisible_and_positions_resume(engine: &str) -> TestResult {
    init_tracing();
    let cfg = config(&[("producer.engine", engine)]);
    let topic = cdc_testkit::unique_name("txn_data");
    let positions = cdc_testkit::unique_name("txn_positions");
    let txn_id = cdc_testkit::unique_name("pg_source_txn");
    create_topic(&cfg, &topic, 3).await;

    let mut p = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    assert_eq!(p.engine_name(), engine);
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

    let got = consume_n_and_settle(&cfg, &topic, 11, Duration::from_secs(30)).await;
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

/// An abort issued right after the previous commit — while the
/// coordinator may still be writing that commit's markers and answering
/// `CONCURRENT_TRANSACTIONS` to the new transaction's partitions — leaves
/// the producer usable (CI once saw librdkafka send `EndTxn` for a
/// transaction the coordinator never opened: a fatal `INVALID_TXN_STATE`).
/// Repeated to give the race many chances; the committed records are all
/// there and nothing aborted is.
async fn aborts_right_after_commits_keep_the_producer_usable(engine: &str) -> TestResult {
    init_tracing();
    let cfg = config(&[("producer.engine", engine)]);
    let topic = cdc_testkit::unique_name("txn_abort_race");
    let positions = cdc_testkit::unique_name("txn_abort_race_pos");
    let txn_id = cdc_testkit::unique_name("abort_race");
    create_topic(&cfg, &topic, 6).await;

    const ROUNDS: usize = 40;
    let mut p = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    for round in 0..ROUNDS {
        let mut t = p.begin()?;
        for i in 0..6 {
            t.send(
                &Record::to(&topic)
                    .key(format!("c{round}-{i}").as_bytes())
                    .value(b"committed"),
            )
            .await?;
        }
        t.commit(format!("round={round}").as_bytes()).await?;
        let mut t = p.begin()?;
        for i in 0..6 {
            t.send(
                &Record::to(&topic)
                    .key(format!("a{round}-{i}").as_bytes())
                    .value(b"aborted"),
            )
            .await?;
        }
        t.abort()
            .await
            .map_err(|e| format!("abort after commit {round}: {e}"))?;
    }
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(format!("round={}", ROUNDS - 1).as_bytes())
    );

    let got = consume_n_and_settle(&cfg, &topic, ROUNDS * 6, Duration::from_secs(30)).await;
    let aborted = got
        .iter()
        .filter(|r| r.value.as_deref() != Some(&b"committed"[..]))
        .count();
    assert_eq!((got.len(), aborted), (ROUNDS * 6, 0));
    Ok(())
}

async fn a_restarted_instance_fences_the_old_one(engine: &str) -> TestResult {
    init_tracing();
    let cfg = config(&[("producer.engine", engine)]);
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

/// The position topic is shared by every connector: a connector's last
/// committed position is found however many records of others follow it
/// (the reader starts at the tail and widens its window back to the start),
/// and the latest of several of its own records wins.
async fn positions_are_found_behind_other_connectors_records(engine: &str) -> TestResult {
    use kafka_io::{Producer, ProducerOptions, POSITION_TAIL};
    init_tracing();
    let cfg = config(&[("producer.engine", engine)]);
    let positions = cdc_testkit::unique_name("txn_shared_positions");
    let early = cdc_testkit::unique_name("pg_source_early");
    let late = cdc_testkit::unique_name("pg_source_late");

    let mut p = TransactionalProducer::new(&cfg, &early, &positions).await?;
    p.begin()?.commit(b"lsn=0/1").await?;
    p.begin()?.commit(b"lsn=0/2").await?;
    drop(p);

    // Another connector's records, several tail windows of them.
    let filler = Producer::new(&cfg, ProducerOptions::default())?;
    let n = (POSITION_TAIL * 10) as u64;
    for seq in 0..n {
        filler
            .send(
                seq,
                &Record::to(&positions)
                    .key(b"someone-else")
                    .value(seq.to_string().as_bytes())
                    .partition(0),
            )
            .await?;
    }
    assert_eq!(filler.flush(Duration::from_secs(60)).await?, Some(n - 1));

    let mut p = TransactionalProducer::new(&cfg, &late, &positions).await?;
    p.begin()?.commit(b"lsn=0/3").await?;
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"lsn=0/3"[..])
    );
    let p = TransactionalProducer::new(&cfg, &early, &positions).await?;
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"lsn=0/2"[..]),
        "found {} records back",
        n + 1
    );
    let nobody = cdc_testkit::unique_name("pg_source_nobody");
    let p = TransactionalProducer::new(&cfg, &nobody, &positions).await?;
    assert_eq!(p.last_committed_position().await?, None);
    Ok(())
}

/// A keyless record for a compacted topic would make the broker refuse its
/// whole batch and so fail the transaction: the transactional producer
/// refuses that record alone (non-retriable `InvalidRecord`), and the rest
/// of the transaction commits.
async fn keyless_records_for_compacted_topics_are_refused_alone(engine: &str) -> TestResult {
    use kafka_io::Error;
    init_tracing();
    let cfg = config(&[("producer.engine", engine)]);
    let topic = cdc_testkit::unique_name("txn_compacted");
    create_topic_with(&cfg, &topic, 1, &[("cleanup.policy", "compact,delete")]).await;
    let positions = cdc_testkit::unique_name("txn_compacted_positions");
    let txn_id = cdc_testkit::unique_name("pg_source_compacted");
    let mut p = TransactionalProducer::new(&cfg, &txn_id, &positions).await?;
    let mut t = p.begin()?;
    t.send(&Record::to(&topic).key(b"k1").value(b"before"))
        .await?;
    let refused = t.send(&Record::to(&topic).value(b"keyless")).await;
    match &refused {
        Err(e @ Error::Delivery { message, .. }) => {
            assert!(!e.is_retriable(), "{e}");
            assert!(message.contains("compacted"), "{message}");
        }
        other => panic!("expected a refused delivery, got {other:?}"),
    }
    t.send(&Record::to(&topic).key(b"k2").value(b"after"))
        .await?;
    t.commit(b"lsn=0/9").await?;

    let got = consume_n(&cfg, &topic, 2, Duration::from_secs(60)).await;
    let values: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, ["before", "after"]);
    Ok(())
}

/// Each transaction adds a record and a commit marker to the position
/// topic: it is created so that the broker compacts it within hours (a
/// segment per hour, markers of cleaned transactions kept an hour), not
/// after the broker's 7-day / 1 GiB segment roll, and a connector's first
/// start does not read weeks of other connectors' transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_position_topic_is_created_to_be_compacted_within_hours() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let positions = cdc_testkit::unique_name("txn_compacting_positions");
    let id = cdc_testkit::unique_name("pg_source_compacting");
    let mut p = TransactionalProducer::new(&cfg, &id, &positions).await?;
    p.begin()?.commit(b"lsn=0/1").await?;
    let d = kafka_io::TopicAdmin::new(&cfg)?
        .describe(&positions)
        .await?;
    assert_eq!(d.partitions, 1);
    for (key, value) in [
        ("cleanup.policy", "compact"),
        ("segment.ms", "3600000"),
        ("delete.retention.ms", "3600000"),
    ] {
        assert_eq!(
            d.configs.get(key).map(String::as_str),
            Some(value),
            "{key} of {positions}: {:?}",
            d.configs
        );
    }
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"lsn=0/1"[..])
    );
    Ok(())
}
