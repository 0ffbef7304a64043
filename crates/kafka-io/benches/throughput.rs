//! Producer and consumer throughput against the local broker, side by side
//! with Kafka's own `ProducerPerformance` / `ConsumerPerformance` run on the
//! same broker in the same run.
//!
//! ```text
//! cargo xtask services up
//! cargo bench -p kafka-io --bench throughput            # 1,000,000 × 500 B, lz4
//! BENCH_ROUNDS=3 cargo bench -p kafka-io --bench throughput
//! BENCH_MESSAGES=200000 cargo bench -p kafka-io --bench throughput
//! ```
//!
//! Each round prints msg/s and MB/s of ours and Java's, their ratio, and
//! the CPU time this process spent per record (user + system, all threads,
//! librdkafka's included; Linux only) — much steadier than msg/s on a
//! shared machine. Numbers are printed, never asserted.
//!
//! Profiling / tuning knobs: `BENCH_JAVA=0` (skip the Java tools),
//! `BENCH_PRODUCER=0` / `BENCH_CONSUMER=0` (skip a side; the producer still
//! fills the topic the consumer reads), `BENCH_PRODUCER_PROPS` /
//! `BENCH_CONSUMER_PROPS` = `key=value,…` (become `producer.override.*` /
//! `consumer.override.*`).

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

/// Throughput of one side, and the CPU our process spent per record.
struct Measured {
    msgs_per_sec: f64,
    cpu_us_per_msg: Option<f64>,
}

fn measured(n: u64, secs: f64, cpu_before: Option<f64>) -> Measured {
    let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
    Measured {
        msgs_per_sec: n as f64 / secs,
        cpu_us_per_msg: cpu.map(|c| c * 1e6 / n as f64),
    }
}

async fn produce(cfg: &KafkaConfig, topic: &str, n: u64) -> BenchResult<Measured> {
    let producer = Producer::new(cfg, ProducerOptions::default())?;
    let values = payloads(1024);
    let cpu = cpu_seconds();
    let start = Instant::now();
    for seq in 1..=n {
        let v = &values[(seq % 1024) as usize];
        producer.send(seq, &Record::to(topic).value(v)).await?;
    }
    let wm = producer.flush(Duration::from_secs(300)).await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(wm, Some(n), "every record acknowledged");
    Ok(measured(n, secs, cpu))
}

async fn consume(cfg: &KafkaConfig, topic: &str, n: u64) -> BenchResult<Measured> {
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
            start = Some((Instant::now(), cpu_seconds()));
        }
        got += b.len() as u64;
    }
    // Timed from the first non-empty batch (the group join is excluded, as
    // in ConsumerPerformance's fetch.nMsg.sec); that batch's records count.
    let (start, cpu) = start.ok_or("no records consumed")?;
    Ok(measured(n, start.elapsed().as_secs_f64(), cpu))
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

/// CPU seconds (user + system) used by this process so far, from
/// `/proc/self/stat` (Linux; `None` elsewhere). The kernel reports clock
/// ticks of `USER_HZ`, 100 on every mainstream Linux ABI.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn env_flag(name: &str, default: bool) -> bool {
    std::env::var(name).map_or(default, |v| v != "0" && !v.is_empty())
}

fn line(what: &str, msgs: f64, cpu_us_per_msg: Option<f64>) {
    let cpu = cpu_us_per_msg.map_or(String::new(), |c| {
        format!("  ({c:.2} µs CPU/msg in this process)")
    });
    println!(
        "  {what:<27}{msgs:>10.0} msg/s {:>7.1} MB/s{cpu}",
        msgs * RECORD_SIZE as f64 / 1e6
    );
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
    let rounds: u32 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Profiling aids (not for published numbers): BENCH_JAVA=0 skips the
    // Java tools, BENCH_CONSUMER=0 / BENCH_PRODUCER=0 skip a side.
    let java = env_flag("BENCH_JAVA", true);
    let do_consumer = env_flag("BENCH_CONSUMER", true);
    let do_producer = env_flag("BENCH_PRODUCER", true);
    let brokers = cdc_testkit::Services::get()?.kafka_brokers().to_string();
    let mut props = std::collections::BTreeMap::new();
    props.insert("bootstrap.servers".to_string(), brokers.clone());
    // Tuning experiments: BENCH_PRODUCER_PROPS / BENCH_CONSUMER_PROPS =
    // "key=value,key=value" become producer.override.* / consumer.override.*.
    for (var, prefix) in [
        ("BENCH_PRODUCER_PROPS", "producer.override."),
        ("BENCH_CONSUMER_PROPS", "consumer.override."),
    ] {
        if let Ok(list) = std::env::var(var) {
            for kv in list.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').ok_or("expected key=value")?;
                props.insert(format!("{prefix}{k}"), v.to_string());
            }
        }
    }
    let cfg = KafkaConfig::from_properties(&props)?;
    let admin = TopicAdmin::new(&cfg)?;
    println!(
        "kafka-io throughput: {n} records × {RECORD_SIZE} B, lz4, acks=all, idempotent, \
         {PARTITIONS} partitions, broker {brokers}"
    );
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round}/{rounds}");
        }
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
        // Our producer fills `ours` (consumed below) even when only the
        // consumer is being looked at.
        let p_ours = produce(&cfg, &ours, n).await?;
        if do_producer {
            line(
                "kafka-io Producer",
                p_ours.msgs_per_sec,
                p_ours.cpu_us_per_msg,
            );
        }
        if java {
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
            let p_java =
                parse_producer_perf(&perf).ok_or("cannot parse ProducerPerformance output")?;
            line("ProducerPerformance (Java)", p_java, None);
            if do_producer {
                println!(
                    "  producer ratio kafka-io / Java = {:.2}",
                    p_ours.msgs_per_sec / p_java
                );
            }
        }
        if do_consumer {
            let c_ours = consume(&cfg, &ours, n).await?;
            line(
                "kafka-io BatchConsumer",
                c_ours.msgs_per_sec,
                c_ours.cpu_us_per_msg,
            );
            if java {
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
                        line("ConsumerPerformance (Java)", c_java, None);
                        println!(
                            "  consumer ratio kafka-io / Java = {:.2}",
                            c_ours.msgs_per_sec / c_java
                        );
                    }
                    None => println!("  ConsumerPerformance output not understood:\n{perf}"),
                }
            }
        }
        admin.delete_topics(&[&ours, &theirs]).await?;
    }
    Ok(())
}
