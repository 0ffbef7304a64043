//! The exactly-once source's producer on both engines (`producer.engine`):
//! records per second and CPU per record of `TransactionalProducer`,
//! native and librdkafka alternating, in one run against the local broker.
//!
//! ```text
//! cargo xtask services up
//! cargo bench -p kafka-io --bench transactional          # 200,000 records, 3 rounds
//! BENCH_MESSAGES=500000 BENCH_ROUNDS=5 cargo bench -p kafka-io --bench transactional
//! ```
//!
//! Records are the pipeline's own: a Debezium JSON change event of the
//! seed's `employees` table with its schema (3.5 KB, captured from a
//! pg-cdc run: `benches/fixtures/employees_value.json`), `emp_id` and the
//! key varied per record, sent in transactions of 3,000 records (about
//! what the source's 12 MiB transactions hold) to a 3-partition topic,
//! each committed with a position record, lz4, `acks=all`,
//! `linger.ms=2`, as the source runs. CPU per record is this process's
//! user + system time (all threads: librdkafka's and Tokio's) over the
//! round, from `/proc/self/stat`. Numbers are printed, never asserted.

use std::time::Instant;

use kafka_io::{KafkaConfig, Record, TopicAdmin, TopicSpec, TransactionalProducer};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PER_TRANSACTION: usize = 3_000;

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn config(brokers: &str, engine: &str) -> BenchResult<KafkaConfig> {
    let props = [
        ("bootstrap.servers", brokers),
        ("producer.engine", engine),
        ("producer.override.linger.ms", "2"),
        ("producer.override.queue.buffering.max.kbytes", "16384"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Ok(KafkaConfig::from_properties(&props)?)
}

async fn round(
    brokers: &str,
    engine: &str,
    n: usize,
    template: &str,
    tag: &str,
) -> BenchResult<()> {
    let cfg = config(brokers, engine)?;
    let topic = format!("bench_txn_{tag}_{engine}");
    TopicAdmin::new(&cfg)?
        .ensure_topic(&TopicSpec::new(&topic).partitions(3).replication_factor(1))
        .await?;
    let mut p = TransactionalProducer::new(
        &cfg,
        &format!("bench-{tag}-{engine}"),
        &format!("bench_txn_{tag}_positions"),
    )
    .await?;
    assert_eq!(p.engine_name(), engine);
    // One event per record, built before timing.
    let values: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("{{\"schema\":{{\"type\":\"struct\",\"fields\":[{{\"type\":\"int32\",\"optional\":false,\"default\":0,\"field\":\"emp_id\"}}],\"optional\":false,\"name\":\"bench.public.employees.Key\"}},\"payload\":{{\"emp_id\":{i}}}}}"),
                template
                    .replace("\"emp_id\":4,", &format!("\"emp_id\":{i},"))
                    .replace("name 4", &format!("name {i}")),
            )
        })
        .collect();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    for (txn, chunk) in values.chunks(PER_TRANSACTION).enumerate() {
        let mut t = p.begin()?;
        for (k, v) in chunk {
            t.send(&Record::to(&topic).key(k.as_bytes()).value(v.as_bytes()))
                .await?;
        }
        t.commit(format!("txn={txn}").as_bytes()).await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu0
        .zip(cpu_seconds())
        .map(|(a, b)| (b - a) * 1e6 / n as f64);
    let bytes: usize = values.iter().map(|(k, v)| k.len() + v.len()).sum();
    println!(
        "  {engine:<10} {:>9.0} records/s  {:>6.1} MB/s  {}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        cpu.map_or("CPU n/a".to_string(), |c| format!("{c:.2} µs CPU/record")),
    );
    let admin = TopicAdmin::new(&cfg)?;
    let _ = admin.delete_topics(&[&topic]).await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not:
    // then only say how to run it (it needs the broker).
    if !std::env::args().any(|a| a == "--bench") {
        println!("transactional: run with `cargo bench -p kafka-io --bench transactional`");
        return Ok(());
    }
    let brokers = cdc_testkit::Services::get()?.kafka_brokers().to_string();
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let template = include_str!("fixtures/employees_value.json").trim();
    println!("transactional producer: {n} Debezium JSON records of {} B, {PER_TRANSACTION} per transaction, {brokers}", template.len());
    let tag = format!("{}", std::process::id());
    for r in 1..=rounds {
        println!("round {r}/{rounds}");
        for engine in ["native", "librdkafka"] {
            round(&brokers, engine, n, template, &format!("{tag}_{r}")).await?;
        }
    }
    Ok(())
}
