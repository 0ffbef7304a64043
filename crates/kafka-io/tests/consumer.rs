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

/// Env vars that turn [`kill_child_consumer`] into the child process of
/// [`consumer_killed_before_commit_gets_the_records_again`].
const CHILD_BROKERS: &str = "KAFKA_IO_KILL_CHILD_BROKERS";
const CHILD_TOPIC: &str = "KAFKA_IO_KILL_CHILD_TOPIC";
const CHILD_GROUP: &str = "KAFKA_IO_KILL_CHILD_GROUP";
const CHILD_INSTANCE: &str = "KAFKA_IO_KILL_CHILD_INSTANCE";
/// Prefix of the child's protocol lines on stdout (libtest prints its own).
const CHILD_LINE: &str = "KIO ";

/// Not a test on its own: the child process of
/// `consumer_killed_before_commit_gets_the_records_again`, started by it
/// (re-executing this test binary) with the `KAFKA_IO_KILL_CHILD_*` env vars
/// and SIGKILLed mid-stream. Does nothing without them.
///
/// Protocol on stdout, one line each: `consumed <partition> <offset>` per
/// record of a batch, then `processed`; it then waits for a line on stdin
/// before committing the batch and printing `committed <partition> <next>`
/// per partition and `done`. The parent kills it while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of consumer_killed_before_commit_gets_the_records_again"]
async fn kill_child_consumer() -> TestResult {
    use std::io::{BufRead, Write};
    let (Ok(brokers), Ok(topic), Ok(group), Ok(instance)) = (
        std::env::var(CHILD_BROKERS),
        std::env::var(CHILD_TOPIC),
        std::env::var(CHILD_GROUP),
        std::env::var(CHILD_INSTANCE),
    ) else {
        return Ok(());
    };
    let cfg = config_for(
        &brokers,
        &[("consumer.override.session.timeout.ms", "6000")],
    );
    let c = BatchConsumer::new_static(&cfg, &group, &instance, None, opts(25))?;
    c.subscribe(&[&topic])?;
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{CHILD_LINE}{line}")?;
        out.flush()
    };
    loop {
        let batch = c.next_batch().await?;
        if batch.is_empty() {
            continue;
        }
        for r in &batch.records {
            say(format!("consumed {} {}", r.partition, r.offset))?;
        }
        say("processed".into())?;
        // "Durable" only when the parent says so; it kills us instead at some point.
        let mut go = String::new();
        if tokio::task::spawn_blocking(move || std::io::stdin().lock().read_line(&mut go)).await??
            == 0
        {
            return Ok(()); // parent went away
        }
        let outcome = c.commit(&batch).await?;
        for (tp, next) in &outcome.committed {
            say(format!("committed {} {next}", tp.partition))?;
        }
        say("done".into())?;
    }
}

/// A consumer process SIGKILLed after processing a batch and before
/// committing it: a successor in the same group (static membership, so it
/// takes over at once) receives every record from the last commit on —
/// nothing skipped — and the only records both saw are the killed process's
/// uncommitted tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_before_commit_gets_the_records_again() -> TestResult {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    init_tracing();
    const PARTITIONS: i32 = 3;
    const PER_PARTITION: i64 = 400;
    const COMMITS_BEFORE_KILL: usize = 5;
    let brokers = brokers();
    let cfg = config_for(&brokers, &[]);
    let topic = cdc_testkit::unique_name("redeliver");
    let group = cdc_testkit::unique_name("g");
    let instance = cdc_testkit::unique_name("member");
    create_topic(&cfg, &topic, PARTITIONS).await;
    let p = Producer::new(&cfg, ProducerOptions::default())?;
    for i in 0..PER_PARTITION as u64 * PARTITIONS as u64 {
        let part = (i % PARTITIONS as u64) as i32;
        p.send(
            i + 1,
            &Record::to(&topic)
                .partition(part)
                .value(i.to_string().as_bytes()),
        )
        .await?;
    }
    p.flush(Duration::from_secs(60)).await?;

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "kill_child_consumer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_BROKERS, &brokers)
        .env(CHILD_TOPIC, &topic)
        .env(CHILD_GROUP, &group)
        .env(CHILD_INSTANCE, &instance)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_child = child.stdin.take().ok_or("child stdin")?;
    let from_child = child.stdout.take().ok_or("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(from_child).lines().map_while(Result::ok) {
            // libtest may print "test kill_child_consumer ... " on the same line.
            if let Some(i) = line.find(CHILD_LINE) {
                if tx.send(line[i + CHILD_LINE.len()..].to_string()).is_err() {
                    break;
                }
            }
        }
    });

    // What the killed process processed, and what it saw committed.
    let mut processed: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut committed_seen: BTreeMap<i32, i64> = BTreeMap::new();
    let mut commits = 0;
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|e| format!("child protocol stalled after {commits} commits: {e}"))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["consumed", p, o] => processed.entry(p.parse()?).or_default().push(o.parse()?),
            ["committed", p, n] => {
                committed_seen.insert(p.parse()?, n.parse()?);
            }
            ["done"] => commits += 1,
            ["processed"] if commits >= COMMITS_BEFORE_KILL => break,
            ["processed"] => to_child.write_all(b"commit\n")?,
            other => return Err(format!("unexpected child line {other:?}").into()),
        }
    }
    // Processed, not committed: the process dies for real.
    child.kill()?;
    let status = child.wait()?;
    assert_eq!(status.signal(), Some(9), "child was SIGKILLed: {status:?}");
    drop(to_child);
    reader.join().map_err(|_| "reader thread panicked")?;
    let total_processed: usize = processed.values().map(Vec::len).sum();
    assert!(
        total_processed < (PER_PARTITION * PARTITIONS as i64) as usize,
        "killed mid-stream"
    );

    // The successor takes the dead member's place (same group.instance.id).
    let b = BatchConsumer::new_static(&cfg, &group, &instance, None, opts(1000))?;
    b.subscribe(&[&topic])?;
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut committed: Option<BTreeMap<TopicPartition, i64>> = None;
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let batch = b.next_batch().await?;
        if committed.is_none() && b.assignment().len() == PARTITIONS as usize {
            // Read before B commits anything: what the killed process committed.
            committed = Some(b.committed().await?);
        }
        for r in batch.records {
            got.entry(r.partition).or_default().push(r.offset);
        }
        let done = (0..PARTITIONS).all(|p| {
            got.get(&p)
                .and_then(|v| v.last())
                .is_some_and(|o| *o == PER_PARTITION - 1)
        });
        if done {
            break;
        }
        assert!(Instant::now() < end, "successor got only {got:?}");
    }
    let committed = committed.ok_or("successor never owned every partition")?;

    let mut duplicates = 0;
    for p in 0..PARTITIONS {
        let seen = processed.get(&p).cloned().unwrap_or_default();
        let c = committed
            .get(&TopicPartition::new(&topic, p))
            .copied()
            .unwrap_or(0);
        // The killed process read its partition in order from the start
        // and committed nothing it had not processed.
        assert_eq!(seen, (0..seen.len() as i64).collect::<Vec<_>>(), "p{p}");
        assert!(c <= seen.len() as i64, "p{p}: committed {c} > processed");
        assert!(
            committed_seen.get(&p).is_none_or(|s| *s <= c),
            "p{p}: the broker lost a commit the child saw succeed"
        );
        // The successor starts exactly at the commit: nothing skipped,
        // nothing below the commit redelivered.
        assert_eq!(
            got.get(&p).cloned().unwrap_or_default(),
            (c..PER_PARTITION).collect::<Vec<_>>(),
            "p{p}: successor resumes at the committed offset {c}"
        );
        duplicates += seen.len() as i64 - c;
    }
    assert!(
        duplicates > 0,
        "the killed process had an uncommitted processed batch ({processed:?}, committed {committed:?})"
    );
    Ok(())
}

/// What one group member saw.
#[derive(Default)]
struct Member {
    /// Values of the records it processed (and then committed).
    seen: Mutex<Vec<u64>>,
    /// Rebalance notes (`revoked …` / `assigned …`).
    events: Mutex<Vec<String>>,
    /// Batches that reported revoked partitions.
    revocations: std::sync::atomic::AtomicUsize,
}

impl Member {
    fn seen(&self) -> Vec<u64> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Consumes, "processes" and commits every batch until `stop`; returns the
/// group's committed offsets for its final assignment (read before leaving).
async fn run_member(
    cfg: KafkaConfig,
    group: String,
    topic: String,
    me: Arc<Member>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> kafka_io::Result<std::collections::BTreeMap<TopicPartition, i64>> {
    let c = BatchConsumer::new(&cfg, &group, None, opts(37))?;
    c.subscribe(&[&topic])?;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let b = c.next_batch().await?;
        if !b.revoked.is_empty() || !b.assigned.is_empty() {
            me.events
                .lock()
                .expect("lock")
                .push(format!("revoked {:?} assigned {:?}", b.revoked, b.assigned));
        }
        if !b.revoked.is_empty() {
            me.revocations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        me.seen
            .lock()
            .expect("lock")
            .extend(b.records.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                    .parse::<u64>()
                    .unwrap_or(u64::MAX)
            }));
        // Slow processing widens the window in which a rebalance lands
        // between fetch and commit.
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.commit(&b).await?;
    }
    let committed = c.committed().await?;
    c.close().await?;
    Ok(committed)
}

/// Polls `cond` every 50 ms; fails with `what` after 60 s (a guard against
/// hanging, not a timing assertion).
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> TestResult {
    let end = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > end {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Two members of one group while a producer keeps writing: B joins (A
/// gives up partitions mid-stream), then A leaves (B takes everything).
/// Every produced record is processed by someone (duplicates allowed:
/// at-least-once), and the group's final commits reach the end of every
/// partition.
async fn two_consumers_rebalancing(strategy: &str) -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    init_tracing();
    let cfg = config(&[("consumer.override.partition.assignment.strategy", strategy)]);
    let topic = cdc_testkit::unique_name("rebalance");
    let group = cdc_testkit::unique_name("g");
    const PARTITIONS: i32 = 4;
    create_topic(&cfg, &topic, PARTITIONS).await;

    // Records flow for the whole scenario: chunks of 100 every 20 ms.
    let produced = Arc::new(AtomicU64::new(0));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = {
        let (cfg, topic) = (cfg.clone(), topic.clone());
        let (produced, stop) = (produced.clone(), stop_producing.clone());
        tokio::spawn(async move {
            let p = Producer::new(&cfg, ProducerOptions::default())?;
            let mut next = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for _ in 0..100 {
                    p.send(
                        next + 1,
                        &Record::to(&topic)
                            .key(format!("k{next}").as_bytes())
                            .value(next.to_string().as_bytes()),
                    )
                    .await?;
                    next += 1;
                }
                p.flush(Duration::from_secs(60)).await?;
                produced.store(next, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Per-partition end offsets, from what was produced.
            Ok::<u64, kafka_io::Error>(next)
        })
    };

    let a = Arc::new(Member::default());
    let b = Arc::new(Member::default());
    let stop_a = Arc::new(AtomicBool::new(false));
    let stop_b = Arc::new(AtomicBool::new(false));
    let a_task = tokio::spawn(run_member(
        cfg.clone(),
        group.clone(),
        topic.clone(),
        a.clone(),
        stop_a.clone(),
    ));
    wait_for("A to consume", || a.seen.lock().expect("lock").len() > 500).await?;

    let b_task = tokio::spawn(run_member(
        cfg.clone(),
        group.clone(),
        topic.clone(),
        b.clone(),
        stop_b.clone(),
    ));
    // Both members consume after B joined and A gave partitions away.
    let a_before = a.seen.lock().expect("lock").len();
    wait_for("B to consume", || !b.seen.lock().expect("lock").is_empty()).await?;
    wait_for("A to give up partitions", || {
        a.revocations.load(Ordering::SeqCst) > 0
    })
    .await?;
    wait_for("A to keep consuming after the rebalance", || {
        a.seen.lock().expect("lock").len() > a_before + 200
    })
    .await?;

    // A leaves mid-stream: B takes over its partitions.
    let b_before = b.seen.lock().expect("lock").len();
    stop_a.store(true, Ordering::SeqCst);
    a_task.await??;
    wait_for("B to consume after A left", || {
        b.seen.lock().expect("lock").len() > b_before + 500
    })
    .await?;
    stop_producing.store(true, Ordering::SeqCst);
    let total = producer.await??;
    assert!(total > 0);

    wait_for("every record to be processed", || {
        let all: BTreeSet<u64> = a.seen().into_iter().chain(b.seen()).collect();
        all.len() as u64 >= total
    })
    .await
    .map_err(|e| {
        let all: BTreeSet<u64> = a.seen().into_iter().chain(b.seen()).collect();
        let missing: Vec<u64> = (0..total).filter(|i| !all.contains(i)).take(20).collect();
        format!(
            "{e}: skipped records {missing:?} (A events {:?}, B events {:?})",
            a.events.lock().expect("lock"),
            b.events.lock().expect("lock")
        )
    })?;
    stop_b.store(true, Ordering::SeqCst);
    let committed = b_task.await??;

    let all: BTreeSet<u64> = a.seen().into_iter().chain(b.seen()).collect();
    assert_eq!(
        all,
        (0..total).collect::<BTreeSet<_>>(),
        "every record processed, nothing unknown"
    );
    // B ended up owning every partition, and the group's commits reached
    // the end of each: nothing stuck behind a revoked batch.
    assert_eq!(committed.len(), PARTITIONS as usize, "{committed:?}");
    assert_eq!(
        committed.values().sum::<i64>(),
        total as i64,
        "committed offsets sum to the records produced: {committed:?}"
    );
    let a_events = a.events.lock().expect("lock").len();
    let b_events = b.events.lock().expect("lock").len();
    assert!(a_events >= 2 && b_events >= 2, "rebalances happened");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_rebalancing_skip_nothing() -> TestResult {
    two_consumers_rebalancing("range").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_rebalancing_cooperatively_skip_nothing() -> TestResult {
    two_consumers_rebalancing("cooperative-sticky").await
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

/// A regex subscription sees a topic created after it subscribed as soon as
/// `SubscriptionRefresher::refresh` runs — here the periodic metadata refresh
/// is 10 minutes, so without it no partition would be assigned within the
/// test's 60 s guard — and consumes the topic's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshing_the_subscription_finds_a_topic_created_after_subscribing() -> TestResult {
    init_tracing();
    let cfg = config(&[(
        "consumer.override.topic.metadata.refresh.interval.ms",
        "600000",
    )]);
    let prefix = cdc_testkit::unique_name("refresh");
    let group = cdc_testkit::unique_name("g");
    let consumer = BatchConsumer::new(&cfg, &group, None, opts(1000))?;
    consumer.subscribe(&[&format!("^{prefix}\\..*")])?;
    // Nothing matches yet: the group is joined with no partitions.
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        assert!(consumer.next_batch().await?.is_empty());
    }
    assert!(consumer.assignment().is_empty());

    let topic = format!("{prefix}.late");
    create_topic(&cfg, &topic, 2).await;
    produce(&cfg, &topic, 0..10).await;
    consumer.subscription_refresher().refresh().await?;
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while got.len() < 10 && Instant::now() < end {
        got.extend(consumer.next_batch().await?.records);
    }
    assert_eq!(
        got.len(),
        10,
        "records of the topic created after subscribing"
    );
    assert!(got.iter().all(|r| r.topic == topic));
    let mut partitions: Vec<i32> = consumer
        .assignment()
        .iter()
        .map(|tp| tp.partition)
        .collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![0, 1]);
    consumer.close().await?;
    Ok(())
}
