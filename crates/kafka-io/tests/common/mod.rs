//! Helpers shared by the integration tests (real broker from cdc-testkit).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_io::{BatchConsumer, BatchOptions, ConsumedRecord, KafkaConfig, TopicAdmin, TopicSpec};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "kafka_io=info".to_string()))
        .with_test_writer()
        .try_init();
}

pub fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Brokers of the shared services (fails, never skips, when they are absent).
pub fn brokers() -> String {
    cdc_testkit::Services::get()
        .expect("test services (run `cargo xtask services up`)")
        .kafka_brokers()
        .to_string()
}

pub fn config_for(brokers: &str, extra: &[(&str, &str)]) -> KafkaConfig {
    let mut p = props(extra);
    p.insert("bootstrap.servers".into(), brokers.into());
    KafkaConfig::from_properties(&p).expect("valid test config")
}

pub fn config(extra: &[(&str, &str)]) -> KafkaConfig {
    config_for(&brokers(), extra)
}

pub async fn create_topic(config: &KafkaConfig, name: &str, partitions: i32) {
    create_topic_with(config, name, partitions, &[]).await
}

/// Creates `name` with topic configs, e.g. `cleanup.policy=compact`.
pub async fn create_topic_with(
    config: &KafkaConfig,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut spec = TopicSpec::new(name)
        .partitions(partitions)
        .replication_factor(1);
    for (k, v) in configs {
        spec = spec.config(*k, *v);
    }
    TopicAdmin::new(config)
        .expect("admin")
        .ensure_topic(&spec)
        .await
        .expect("create topic");
}

/// Reads `n` records of `topic` with a fresh group (fails after `timeout`).
pub async fn consume_n(
    config: &KafkaConfig,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<ConsumedRecord> {
    consume(config, topic, n, timeout, 0).await
}

/// Reads `n` records of `topic` as [`consume_n`] does, then a few batches
/// more: whatever must not be there (aborted, duplicated) has had its
/// chance to show up. Returns everything read.
pub async fn consume_n_and_settle(
    config: &KafkaConfig,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<ConsumedRecord> {
    consume(config, topic, n, timeout, 4).await
}

async fn consume(
    config: &KafkaConfig,
    topic: &str,
    n: usize,
    timeout: Duration,
    settle_batches: usize,
) -> Vec<ConsumedRecord> {
    let group = cdc_testkit::unique_name("reader");
    let c = BatchConsumer::new(
        config,
        &group,
        None,
        BatchOptions {
            max_records: 10_000,
            max_wait: Duration::from_millis(200),
            ..BatchOptions::default()
        },
    )
    .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let end = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < end,
            "only {} of {n} records of {topic} within {timeout:?}",
            out.len()
        );
        let b = c.next_batch().await.expect("batch");
        out.extend(b.records);
    }
    for _ in 0..settle_batches {
        out.extend(c.next_batch().await.expect("batch").records);
    }
    out
}
