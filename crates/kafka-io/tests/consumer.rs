//! The batching consumer against the real broker: redelivery after a crash
//! before commit, no skipped records across rebalances, offsets supplied by
//! the caller (stored in the target database) applied on assignment.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kafka_io::{
    BatchConsumer, BatchOptions, KafkaConfig, Producer, ProducerOptions, RebalanceListener, Record,
    TopicPartition,
};

async fn produce(cfg: &KafkaConfig, topic: &str, range: std::ops::Range<u64>) {
    let p = Producer::new(cfg, ProducerOptions::default()).expect("producer");
    for i in range.clone() {
        p.send(
            i + 1,
            &Record::to(topic)
                .key(format!("k{i}").as_bytes())
                .value(i.to_string().as_bytes()),
        )
        .await
        .expect("send");
    }
    assert_eq!(
        p.flush(Duration::from_secs(60)).await.expect("flush"),
        Some(range.end)
    );
}

fn opts(max_records: usize) -> BatchOptions {
    BatchOptions {
        max_records,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_before_commit_gets_the_records_again() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("redeliver");
    let group = cdc_testkit::unique_name("g");
    create_topic(&cfg, &topic, 1).await;
    produce(&cfg, &topic, 0..100).await;

    let a = BatchConsumer::new(&cfg, &group, None, opts(50))?;
    a.subscribe(&[&topic])?;
    let mut first = a.next_batch().await?;
    while first.is_empty() {
        first = a.next_batch().await?;
    }
    assert_eq!(first.records[0].offset, 0);
    let committed_upto = first.records.last().map_or(0, |r| r.offset + 1);
    let outcome = a.commit(&first).await?;
    assert!(outcome.skipped.is_empty());
    assert_eq!(
        a.committed().await?[&TopicPartition::new(&topic, 0)],
        committed_upto
    );
    // Processed but never made durable: no commit, then the process dies.
    let second = a.next_batch().await?;
    assert!(!second.is_empty());
    drop(a);

    let b = BatchConsumer::new(&cfg, &group, None, opts(1000))?;
    b.subscribe(&[&topic])?;
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while got.len() < 100 - committed_upto as usize && Instant::now() < end {
        got.extend(b.next_batch().await?.records);
    }
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (committed_upto..100).collect::<Vec<_>>(),
        "redelivered from the last commit"
    );
    Ok(())
}

/// Consumes and commits every batch, recording what it saw, until `stop`.
async fn run_member(
    cfg: KafkaConfig,
    group: String,
    topic: String,
    seen: Arc<Mutex<Vec<u64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    events: Arc<Mutex<Vec<String>>>,
) -> kafka_io::Result<()> {
    let c = BatchConsumer::new(&cfg, &group, None, opts(37))?;
    c.subscribe(&[&topic])?;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let b = c.next_batch().await?;
        if !b.revoked.is_empty() || !b.assigned.is_empty() {
            events
                .lock()
                .expect("lock")
                .push(format!("revoked {:?} assigned {:?}", b.revoked, b.assigned));
        }
        // "Process" the batch, then commit.
        seen.lock().expect("lock").extend(b.records.iter().map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                .parse::<u64>()
                .unwrap_or(u64::MAX)
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.commit(&b).await?;
    }
    c.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_rebalancing_skip_nothing() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("rebalance");
    let group = cdc_testkit::unique_name("g");
    create_topic(&cfg, &topic, 4).await;
    let total = 6_000u64;

    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let stop_a = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_b = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));

    let a = tokio::spawn(run_member(
        cfg.clone(),
        group.clone(),
        topic.clone(),
        seen_a.clone(),
        stop_a.clone(),
        events.clone(),
    ));
    // Produce in the background while members come and go.
    let producer = {
        let (cfg, topic) = (cfg.clone(), topic.clone());
        tokio::spawn(async move {
            for chunk in 0..6 {
                produce(&cfg, &topic, chunk * 1000..(chunk + 1) * 1000).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = tokio::spawn(run_member(
        cfg.clone(),
        group.clone(),
        topic.clone(),
        seen_b.clone(),
        stop_b.clone(),
        events.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A leaves mid-stream: B takes over its partitions.
    stop_a.store(true, std::sync::atomic::Ordering::SeqCst);
    a.await??;
    producer.await?;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let all: BTreeSet<u64> = seen_a
            .lock()
            .expect("lock")
            .iter()
            .chain(seen_b.lock().expect("lock").iter())
            .copied()
            .collect();
        if all.len() as u64 >= total || Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_b.store(true, std::sync::atomic::Ordering::SeqCst);
    b.await??;

    let a_seen = seen_a.lock().expect("lock").clone();
    let b_seen = seen_b.lock().expect("lock").clone();
    let all: BTreeSet<u64> = a_seen.iter().chain(b_seen.iter()).copied().collect();
    let missing: Vec<u64> = (0..total).filter(|i| !all.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "skipped records: {:?} (events: {:?})",
        &missing[..missing.len().min(20)],
        events.lock().expect("lock")
    );
    assert!(
        !a_seen.is_empty() && !b_seen.is_empty(),
        "both members consumed"
    );
    assert!(
        events.lock().expect("lock").len() >= 3,
        "rebalances happened: {:?}",
        events.lock().expect("lock")
    );
    Ok(())
}

struct StoredOffsets {
    offsets: Vec<(TopicPartition, i64)>,
    calls: Mutex<Vec<Vec<TopicPartition>>>,
}

impl RebalanceListener for StoredOffsets {
    fn on_assigned(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        self.calls.lock().expect("lock").push(partitions.to_vec());
        self.offsets
            .iter()
            .filter(|(tp, _)| partitions.contains(tp))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_starts_from_offsets_stored_by_the_caller() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("external_offsets");
    create_topic(&cfg, &topic, 2).await;
    let p = Producer::new(&cfg, ProducerOptions::default())?;
    for i in 0..40u64 {
        let part = (i % 2) as i32;
        p.send(
            i + 1,
            &Record::to(&topic)
                .partition(part)
                .value(i.to_string().as_bytes()),
        )
        .await?;
    }
    p.flush(Duration::from_secs(30)).await?;
    // Partition 0 was applied up to offset 15 (next = 15) in the target DB;
    // partition 1 has no stored offset: group offset / earliest.
    let listener = Arc::new(StoredOffsets {
        offsets: vec![(TopicPartition::new(&topic, 0), 15)],
        calls: Mutex::new(Vec::new()),
    });
    let c = BatchConsumer::new(
        &cfg,
        &cdc_testkit::unique_name("g"),
        Some(listener.clone()),
        opts(1000),
    )?;
    c.subscribe(&[&topic])?;
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while got.len() < 25 && Instant::now() < end {
        let b = c.next_batch().await?;
        got.extend(b.records);
    }
    let p0: Vec<i64> = got
        .iter()
        .filter(|r| r.partition == 0)
        .map(|r| r.offset)
        .collect();
    let p1: Vec<i64> = got
        .iter()
        .filter(|r| r.partition == 1)
        .map(|r| r.offset)
        .collect();
    assert_eq!(p0, (15..20).collect::<Vec<_>>());
    assert_eq!(p1, (0..20).collect::<Vec<_>>());
    assert_eq!(listener.calls.lock().expect("lock").len(), 1);
    Ok(())
}

/// The caller made offset 30 of partition 0 durable but had not committed
/// it when the partition was revoked: it is committed on the way out.
struct CommitOnRevoke {
    durable: Vec<(TopicPartition, i64)>,
}

impl RebalanceListener for CommitOnRevoke {
    fn on_revoked(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        self.durable
            .iter()
            .filter(|(tp, _)| partitions.contains(tp))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_offsets_are_committed_when_partitions_are_revoked() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("commit_on_revoke");
    let group = cdc_testkit::unique_name("g");
    create_topic(&cfg, &topic, 1).await;
    produce(&cfg, &topic, 0..50).await;
    let tp = TopicPartition::new(&topic, 0);
    let listener = Arc::new(CommitOnRevoke {
        durable: vec![(tp.clone(), 30)],
    });
    let a = BatchConsumer::new(&cfg, &group, Some(listener), opts(1000))?;
    a.subscribe(&[&topic])?;
    let mut n = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while n < 50 && Instant::now() < end {
        n += a.next_batch().await?.len();
    }
    assert_eq!(n, 50);
    a.close().await?; // revokes: the listener's durable offset is committed

    let b = BatchConsumer::new(&cfg, &group, None, opts(1000))?;
    b.subscribe(&[&topic])?;
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while got.len() < 20 && Instant::now() < end {
        got.extend(b.next_batch().await?.records);
    }
    assert_eq!(got.first().map(|r| r.offset), Some(30));
    assert_eq!(got.len(), 20);
    Ok(())
}

/// A batch fetched before a rebalance is never committed afterwards for the
/// partitions that were revoked in between; they are redelivered instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_fetched_before_a_rebalance_is_not_committed_for_revoked_partitions() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("stale_batch");
    let group = cdc_testkit::unique_name("g");
    create_topic(&cfg, &topic, 4).await;
    produce(&cfg, &topic, 0..400).await;

    let a = BatchConsumer::new(&cfg, &group, None, opts(50))?;
    a.subscribe(&[&topic])?;
    let mut stale = a.next_batch().await?;
    while stale.is_empty() {
        stale = a.next_batch().await?;
    }
    assert_eq!(a.assignment().len(), 4);

    // B joins; A serves the rebalance in its next polls.
    let b = Arc::new(BatchConsumer::new(&cfg, &group, None, opts(50))?);
    b.subscribe(&[&topic])?;
    let b_reader = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut n = 0;
            let end = Instant::now() + Duration::from_secs(30);
            while b.assignment().is_empty() && Instant::now() < end {
                n += b.next_batch().await?.len();
            }
            Ok::<_, kafka_io::Error>(n)
        })
    };
    let mut revoked = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while (revoked.is_empty() || a.assignment().len() == 4) && Instant::now() < end {
        let b = a.next_batch().await?;
        revoked.extend(b.revoked);
    }
    b_reader.await??;
    assert!(!revoked.is_empty(), "A saw a revocation");
    assert!(a.assignment().len() < 4, "A gave partitions to B");

    let outcome = a.commit(&stale).await?;
    let stale_parts: std::collections::BTreeSet<_> = stale.next_offsets().into_keys().collect();
    let skipped: std::collections::BTreeSet<_> = outcome.skipped.iter().cloned().collect();
    assert_eq!(
        skipped, stale_parts,
        "every partition of the stale batch was revoked since (eager protocol)"
    );
    assert!(outcome.committed.is_empty());
    Ok(())
}
