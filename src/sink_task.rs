//! The sink connector: Kafka → Debezium JSON / Avro converter → PostgreSQL.
//!
//! ```text
//! BatchConsumer::next_batch ──bytes──▶ Converter ──SinkRecord──▶ SinkPool::write_with (one txn per batch,
//!        ▲                                 │ bad records              offsets stored in the same txn)
//!        │                                 ▼                               │ failed records, before COMMIT
//!        │                           DLQ (dlq_sink) ◀──── acked ───────────┘ then COMMIT
//!        └── commit offsets (after the COMMIT) ◀───────────────────────────┘
//! ```
//!
//! The records the target rejects reach the DLQ *before* the database
//! transaction that stores offsets past them commits (the sink awaits
//! [`SinkBatchDeadLetters`] before its `COMMIT`); offsets are committed to
//! Kafka only after that. With exactly-once (offsets stored in the target),
//! a restarted sink seeks to the stored offsets on assignment, so a crash
//! between the database commit and the Kafka commit replays nothing; a
//! crash between the DLQ acknowledgement and the database commit redoes the
//! batch and may dead-letter a record twice, never lose it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_envelope::Options;
use jdbc_sink::{SinkConfig, SinkPool, SinkRecord};
use kafka_io::{
    BatchConsumer, BatchOptions, ErrorReporter, KafkaConfig, RebalanceListener, Stage,
    TopicPartition,
};
use tokio::sync::watch;

use crate::connector::{ConfigError, ConnectorConfig};
use crate::converter::Converter;
use crate::dead_letter::{DeadLetters, SinkBatchDeadLetters};
use crate::error::Result;
use crate::metrics::{ConnectorLabels, EventCounters, Metrics, PartitionLabels};
use crate::runtime::AbortOnDrop;
use crate::source_task::TaskContext;
use crate::status::ConnectorState;

/// Seeks newly assigned partitions to the offsets stored in the target.
struct StoredOffsets {
    pool: Arc<SinkPool>,
    handle: tokio::runtime::Handle,
}

impl RebalanceListener for StoredOffsets {
    fn on_assigned(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        // Runs on a blocking thread (kafka-io's contract): block_on is fine.
        let stored = match self.handle.block_on(self.pool.load_offsets()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read stored sink offsets; using the group's committed offsets");
                return Vec::new();
            }
        };
        partitions
            .iter()
            .filter_map(|tp| stored.get(tp).map(|&off| (tp.clone(), off)))
            .collect()
    }
}

/// The topics to subscribe to: `topics` (comma-separated) or `topics.regex`.
fn subscription(config: &ConnectorConfig) -> Result<Vec<String>> {
    let topics = config.props.get("topics").filter(|t| !t.trim().is_empty());
    let regex = config
        .props
        .get("topics.regex")
        .filter(|t| !t.trim().is_empty());
    match (topics, regex) {
        (Some(t), None) => Ok(t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
        // librdkafka treats a subscription starting with `^` as a regex; Kafka
        // Connect's topics.regex must match the whole name.
        (None, Some(r)) => Ok(vec![format!("^{}$", r.trim_start_matches('^').trim_end_matches('$'))]),
        (Some(_), Some(_)) => Err(ConfigError::Property {
            connector: config.name.clone(),
            key: "topics".into(),
            reason: "set either `topics` or `topics.regex`, not both".into(),
        }
        .into()),
        (None, None) => Err(ConfigError::Property {
            connector: config.name.clone(),
            key: "topics.regex".into(),
            reason: "a sink needs `topics` or `topics.regex` (the seed uses topics.regex=pgsource\\.public\\..*)".into(),
        }
        .into()),
    }
}

/// Bytes per fetch (compressed), per partition and in all; see
/// [`consumer_defaults`].
const FETCH_BYTES: u64 = 128 * 1024;

/// The sink consumer's memory-bounding defaults, each overridable.
fn consumer_defaults(props: &mut BTreeMap<String, String>) {
    let user_set = props.contains_key("consumer.override.message.max.bytes");
    // librdkafka prefetches up to 64 MiB per consumer by default; the sink
    // applies one batch at a time, so a smaller prefetch keeps the process
    // small (measured in `cargo xtask bench`, 300k rows: peak RSS 282 MiB at
    // the default, 217–234 MiB with 8 MiB, 115 MiB with 1 MiB, at the same
    // throughput). With the queue that small it is often full, and
    // librdkafka then postpones the partition's next fetch by
    // `fetch.queue.backoff.ms` (default 1 s): the sink applied ~6,500
    // records and sat idle for a second, over and over (2.2× slower end to
    // end).
    //
    // The fetch size is in *compressed* bytes, and librdkafka decompresses a
    // whole fetch response at once: Debezium's JSON events carry a 3 KB
    // schema each and LZ4 shrinks them about 26×, so a 1 MB fetch held
    // ~40 MB of decompressed batches (heaptrack: 41 of 50 MB peak heap in
    // `rd_kafka_lz4_decompress`). Over 200k records, the sink alone peaks
    // at 61–64 MiB RSS with 1 MiB fetches (58k rows/s), 33 MiB with 256 KiB
    // (55–61k rows/s) and 27–28 MiB with 128 KiB (50–52k rows/s); end to
    // end, where the source sets the pace, 128 KiB saves 5 MiB at the same
    // rate, and that keeps the whole pipeline within 64 MiB. Kafka still
    // returns a first batch larger than the limit whole (KIP-74), so no
    // record is too big to consume. `message.max.bytes` only bounds this
    // consumer's own requests here; librdkafka requires it ≤
    // `fetch.max.bytes`. Overridable as usual.
    let default_fetch = FETCH_BYTES.to_string();
    for (k, v) in [
        ("consumer.override.queued.max.messages.kbytes", "1024"),
        ("consumer.override.fetch.max.bytes", &default_fetch),
        (
            "consumer.override.max.partition.fetch.bytes",
            &default_fetch,
        ),
        ("consumer.override.message.max.bytes", &default_fetch),
        ("consumer.override.fetch.queue.backoff.ms", "10"),
    ] {
        props.entry(k.into()).or_insert_with(|| v.into());
    }
    // A smaller `fetch.max.bytes` set by the user lowers the request bound with
    // it, instead of failing librdkafka's check.
    if !user_set {
        let fetch = props
            .get("consumer.override.fetch.max.bytes")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(fetch) = fetch.filter(|&f| f < FETCH_BYTES) {
            props.insert(
                "consumer.override.message.max.bytes".into(),
                fetch.max(1000).to_string(),
            );
        }
    }
}

/// Runs the sink connector until `shutdown` turns true or it fails.
pub async fn run_sink(
    config: ConnectorConfig,
    mut ctx: TaskContext,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let name = config.name.clone();
    let topics = subscription(&config)?;
    let mut props = config.props.clone();
    props.entry("name".into()).or_insert_with(|| name.clone());
    if config.props.contains_key("topics.regex") {
        // Pick up topics the source creates within seconds, not after
        // librdkafka's (and Java's) default five-minute metadata refresh.
        props
            .entry("librdkafka.topic.metadata.refresh.interval.ms".into())
            .or_insert_with(|| "2000".into());
    }
    consumer_defaults(&mut props);
    let sink_config = SinkConfig::from_properties(&props)?;
    let options = Options::from_map(&props)?;
    let kafka = KafkaConfig::from_properties(&props)?;
    let dlq = DeadLetters::new(
        Arc::new(ErrorReporter::new(&kafka, &name, 0).await?),
        ctx.metrics.clone(),
        &name,
    );
    let batch_size = sink_config.batch_size.max(1);
    let pool = Arc::new(SinkPool::connect(sink_config).await?);
    let listener = Arc::new(StoredOffsets {
        pool: pool.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    let consumer = BatchConsumer::new(
        &kafka,
        &format!("connect-{name}"),
        Some(listener),
        BatchOptions {
            max_records: batch_size,
            max_bytes: 16 * 1024 * 1024,
            max_wait: Duration::from_millis(100),
        },
    )?;
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    // A topic a source of this process creates is matched at once, not at
    // the next metadata refresh (2 s for a regex subscription, see above).
    let refresher = config
        .props
        .contains_key("topics.regex")
        .then(|| refresh_on_new_topics(&consumer, &ctx, &name));
    ctx.board.set(&name, ConnectorState::Running);
    tracing::info!(connector = %name, ?topics, "sink started");

    let mut converter = Converter::from_config(&config, &options)?;
    let converter_class = converter.format().class_name();
    let mut counters = EventCounters::new(ctx.metrics.clone(), &name);
    let labels = ConnectorLabels {
        connector: name.clone(),
    };
    let mut last_lag = Instant::now();
    loop {
        if ctx.wait_while_paused(&name, &mut shutdown).await {
            break;
        }
        let batch = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
                continue;
            }
            // Pausing is checked between batches only: a fetch in flight is
            // never cancelled half-way (its records would be skipped).
            batch = consumer.next_batch() => batch?,
        };
        if last_lag.elapsed() >= LAG_EVERY {
            last_lag = Instant::now();
            report_lag(&consumer, &ctx.metrics, &name).await;
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut records: Vec<SinkRecord> = Vec::with_capacity(batch.len());
        // Index in `records` → index in `batch.records`.
        let mut origin: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, r) in batch.records.iter().enumerate() {
            match converter.decode(r.key.as_deref(), r.value.as_deref()).await {
                Ok(decoded) => {
                    records.push(SinkRecord::from_decoded(
                        r.topic.clone(),
                        r.partition,
                        r.offset,
                        decoded,
                    ));
                    origin.push(i);
                }
                Err(e) => {
                    dlq.send(
                        &r.to_failed(),
                        Stage::ValueConverter,
                        converter_class,
                        &e,
                        e.kind(),
                    )
                    .await?;
                }
            }
        }
        // Failed records go to the DLQ inside `write_with`, before the
        // transaction storing offsets past them commits.
        let batch = Arc::new(batch);
        let dead_letters = SinkBatchDeadLetters::new(dlq.clone(), Arc::clone(&batch), origin);
        // Counted before the write, which takes the records: a failed write
        // fails the task, and the records are consumed (and counted) again.
        for r in records.iter().filter_map(|r| r.value.as_ref()) {
            counters.count(r);
        }
        pool.write_with(records, Arc::new(dead_letters)).await?;
        ctx.metrics
            .sink_batch_records
            .get_or_create(&labels)
            .observe(batch.len() as f64);
        ctx.metrics
            .sink_batch_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        // Durable in the target and in the DLQ: now Kafka may forget them.
        consumer.commit(&batch).await?;
    }
    drop(refresher);
    consumer.close().await?;
    Ok(())
}

/// Refreshes `consumer`'s subscription whenever a source of this process
/// announces a new topic; stops when the returned guard is dropped.
fn refresh_on_new_topics(consumer: &BatchConsumer, ctx: &TaskContext, name: &str) -> AbortOnDrop {
    let refresher = consumer.subscription_refresher();
    let mut announced = ctx.new_topics.subscribe();
    let name = name.to_string();
    AbortOnDrop(tokio::spawn(async move {
        while announced.changed().await.is_ok() {
            if let Err(e) = refresher.refresh().await {
                // The periodic refresh still finds the topic.
                tracing::debug!(connector = %name, "subscription not refreshed: {e}");
            }
        }
    }))
}

/// How often the sink refreshes its consumer-lag gauges.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Sets `pgcdc_consumer_lag` for every assigned partition (a failure to ask
/// the broker only skips this refresh).
async fn report_lag(consumer: &BatchConsumer, metrics: &Metrics, connector: &str) {
    match consumer.lag(Duration::from_secs(2)).await {
        Ok(lags) => {
            for (tp, lag) in lags {
                metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabels {
                        connector: connector.to_string(),
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                    .set(lag);
            }
        }
        Err(e) => tracing::debug!(connector, "consumer lag not refreshed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ConnectorKind;

    fn cfg(props: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "s".into(),
            kind: ConnectorKind::Sink,
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn subscription_from_topics_or_regex() -> Result<()> {
        assert_eq!(subscription(&cfg(&[("topics", "a, b")]))?, vec!["a", "b"]);
        assert_eq!(
            subscription(&cfg(&[("topics.regex", "pgsource\\.public\\..*")]))?,
            vec!["^pgsource\\.public\\..*$"]
        );
        assert!(subscription(&cfg(&[])).is_err());
        assert!(subscription(&cfg(&[("topics", "a"), ("topics.regex", "b")])).is_err());
        Ok(())
    }

    #[test]
    fn consumer_defaults_bound_fetches_and_yield_to_the_user() -> Result<()> {
        let get = |p: &BTreeMap<String, String>, k: &str| {
            p.get(&format!("consumer.override.{k}")).cloned()
        };
        let mut p = BTreeMap::new();
        consumer_defaults(&mut p);
        assert_eq!(get(&p, "fetch.max.bytes").as_deref(), Some("131072"));
        assert_eq!(
            get(&p, "max.partition.fetch.bytes").as_deref(),
            Some("131072")
        );
        assert_eq!(get(&p, "message.max.bytes").as_deref(), Some("131072"));
        // The user's values win, and librdkafka's message.max.bytes <=
        // fetch.max.bytes rule follows a smaller fetch.
        let mut p = BTreeMap::from([(
            "consumer.override.fetch.max.bytes".to_string(),
            "65536".to_string(),
        )]);
        consumer_defaults(&mut p);
        assert_eq!(get(&p, "fetch.max.bytes").as_deref(), Some("65536"));
        assert_eq!(get(&p, "message.max.bytes").as_deref(), Some("65536"));
        let mut p = BTreeMap::from([
            (
                "consumer.override.fetch.max.bytes".to_string(),
                "52428800".to_string(),
            ),
            (
                "consumer.override.message.max.bytes".to_string(),
                "2000000".to_string(),
            ),
        ]);
        consumer_defaults(&mut p);
        assert_eq!(get(&p, "fetch.max.bytes").as_deref(), Some("52428800"));
        assert_eq!(get(&p, "message.max.bytes").as_deref(), Some("2000000"));
        Ok(())
    }
}
