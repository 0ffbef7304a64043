//! Producer and consumer throughput against the local broker, side by side
//! with Kafka's own `ProducerPerformance` / `ConsumerPerformance` run on the
//! same broker in the same run.
//!
//! ```text
//! cargo xtask services up
//! cargo bench -p kafka-io --bench throughput            # 1,000,000 × 500 B, lz4
//! BENCH_MESSAGES=200000 cargo bench -p kafka-io --bench throughput
//! ```
//!
//! Numbers are printed, never asserted.

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_io::{
    BatchConsumer, BatchOptions, KafkaConfig, Producer, ProducerOptions, Record, TopicAdmin,
    TopicSpec,
};

const RECORD_SIZE: usize = 500;
const PARTITIONS: i32 = 3;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn payloads(n: usize) -> Vec<Vec<u8>> {
    // Like ProducerPerformance: random uppercase letters.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            (0..RECORD_SIZE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b'A' + (x % 26) as u8
                })
                .collect()
        })
        .collect()
}

async fn produce(cfg: &KafkaConfig, topic: &str, n: u64) -> BenchResult<f64> {
    let producer = Producer::new(cfg, ProducerOptions::default())?;
    let values = payloads(1024);
    let start = Instant::now();
    for seq in 1..=n {
        let v = &values[(seq % 1024) as usize];
        producer.send(seq, &Record::to(topic).value(v)).await?;
    }
    let wm = producer.flush(Duration::from_secs(300)).await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(wm, Some(n), "every record acknowledged");
    Ok(n as f64 / secs)
}

async fn consume(cfg: &KafkaConfig, topic: &str, n: u64) -> BenchResult<f64> {
    let c = BatchConsumer::new(
        cfg,
        &cdc_testkit::unique_name("bench"),
        None,
        BatchOptions {
            max_records: 20_000,
            max_bytes: 64 << 20,
            max_wait: Duration::from_millis(100),
        },
    )?;
    c.subscribe(&[topic])?;
    let mut got = 0u64;
    let mut start = None;
    while got < n {
        let b = c.next_batch().await?;
        if !b.is_empty() && start.is_none() {
            start = Some(Instant::now());
        }
        got += b.len() as u64;
    }
    let secs = start.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
    Ok(n as f64 / secs)
}

fn java_tool(class: &str, args: &[String]) -> BenchResult<String> {
    let cp = cdc_testkit::kafka_classpath()?;
    let out = Command::new(cdc_testkit::java()?)
        .args(["-Xmx512m", "-cp", &cp, class])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("{class} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `… records sent, 123456.7 records/sec (58.87 MB/sec) …` → records/sec.
fn parse_producer_perf(out: &str) -> Option<f64> {
    let line = out.lines().rev().find(|l| l.contains("records sent"))?;
    let before = line.split(" records/sec").next()?;
    before.rsplit(", ").next()?.trim().parse().ok()
}

/// CSV header + one line; returns `fetch.nMsg.sec`.
fn parse_consumer_perf(out: &str) -> Option<f64> {
    let mut lines = out.lines().filter(|l| l.contains(','));
    let header: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let i = header.iter().position(|h| *h == "fetch.nMsg.sec")?;
    values.get(i)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not:
    // then only say how to run it (the run takes a minute and a broker).
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: run with `cargo bench -p kafka-io --bench throughput`");
        return Ok(());
    }
    let n: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let brokers = cdc_testkit::Services::get()?.kafka_brokers().to_string();
    let mut props = std::collections::BTreeMap::new();
    props.insert("bootstrap.servers".to_string(), brokers.clone());
    let cfg = KafkaConfig::from_properties(&props)?;
    let admin = TopicAdmin::new(&cfg)?;
    let ours = cdc_testkit::unique_name("bench_kafka_io");
    let theirs = cdc_testkit::unique_name("bench_java");
    for t in [&ours, &theirs] {
        admin
            .ensure_topic(
                &TopicSpec::new(t)
                    .partitions(PARTITIONS)
                    .replication_factor(1),
            )
            .await?;
    }
    println!("kafka-io throughput: {n} records × {RECORD_SIZE} B, lz4, acks=all, idempotent, {PARTITIONS} partitions, broker {brokers}");

    let p_ours = produce(&cfg, &ours, n).await?;
    println!(
        "  kafka-io Producer          {p_ours:>12.0} msgs/s  {:>7.1} MB/s",
        p_ours * RECORD_SIZE as f64 / 1e6
    );

    let perf = java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic".into(),
            theirs.clone(),
            "--num-records".into(),
            n.to_string(),
            "--record-size".into(),
            RECORD_SIZE.to_string(),
            "--throughput".into(),
            "-1".into(),
            "--producer-props".into(),
            format!("bootstrap.servers={brokers}"),
            "compression.type=lz4".into(),
            "acks=all".into(),
            "enable.idempotence=true".into(),
            "linger.ms=5".into(),
            "batch.size=1000000".into(),
        ],
    )?;
    let p_java = parse_producer_perf(&perf).ok_or("cannot parse ProducerPerformance output")?;
    println!(
        "  ProducerPerformance (Java) {p_java:>12.0} msgs/s  {:>7.1} MB/s",
        p_java * RECORD_SIZE as f64 / 1e6
    );
    println!("  producer ratio kafka-io / Java = {:.2}", p_ours / p_java);

    let c_ours = consume(&cfg, &ours, n).await?;
    println!(
        "  kafka-io BatchConsumer     {c_ours:>12.0} msgs/s  {:>7.1} MB/s",
        c_ours * RECORD_SIZE as f64 / 1e6
    );
    let perf = java_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        &[
            "--bootstrap-server".into(),
            brokers.clone(),
            "--topic".into(),
            theirs.clone(),
            "--messages".into(),
            n.to_string(),
            "--timeout".into(),
            "60000".into(),
        ],
    )?;
    match parse_consumer_perf(&perf) {
        Some(c_java) => {
            println!(
                "  ConsumerPerformance (Java) {c_java:>12.0} msgs/s  {:>7.1} MB/s (fetch.nMsg.sec)",
                c_java * RECORD_SIZE as f64 / 1e6
            );
            println!("  consumer ratio kafka-io / Java = {:.2}", c_ours / c_java);
        }
        None => println!("  ConsumerPerformance output not understood:\n{perf}"),
    }
    admin.delete_topics(&[&ours, &theirs]).await?;
    Ok(())
}
