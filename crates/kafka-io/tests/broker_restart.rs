//! A private broker (cdc-testkit's `KafkaBroker`) is stopped and restarted
//! while we produce and consume: nothing is lost, the producer resumes
//! without the caller doing anything, the consumer resumes from its commits.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_testkit::KafkaBroker;
use common::*;
use kafka_io::{BatchConsumer, BatchOptions, Producer, ProducerOptions, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_while_producing_loses_nothing() -> TestResult {
    init_tracing();
    let broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let cfg = config_for(&broker.bootstrap_servers(), &[]);
    let topic = cdc_testkit::unique_name("restart");
    let group = cdc_testkit::unique_name("g");
    create_topic(&cfg, &topic, 3).await;
    let total = 30_000u64;

    // Consumer: commit after every batch, record what was seen.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (cfg, topic, group, seen, stop) = (
            cfg.clone(),
            topic.clone(),
            group.clone(),
            seen.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let c = BatchConsumer::new(
                &cfg,
                &group,
                None,
                BatchOptions {
                    max_records: 2000,
                    max_bytes: 1 << 22,
                    max_wait: Duration::from_millis(200),
                },
            )?;
            c.subscribe(&[&topic])?;
            let mut commit_errors = 0;
            while !stop.load(Ordering::SeqCst) {
                let b = c.next_batch().await?;
                seen.lock().expect("lock").extend(b.records.iter().map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                        .parse::<u64>()
                        .unwrap_or(0)
                }));
                // Commits fail while the broker is down; the next one covers them.
                if c.commit(&b).await.is_err() {
                    commit_errors += 1;
                }
            }
            Ok::<_, kafka_io::Error>(commit_errors)
        })
    };

    let producer = Arc::new(Producer::new(&cfg, ProducerOptions::default())?);
    let produce = {
        let (producer, topic) = (producer.clone(), topic.clone());
        tokio::spawn(async move {
            for seq in 1..=total {
                let v = seq.to_string();
                producer
                    .send(
                        seq,
                        &Record::to(&topic).key(v.as_bytes()).value(v.as_bytes()),
                    )
                    .await?;
                if seq % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok::<_, kafka_io::Error>(())
        })
    };

    // Restart once a few thousand records are durable (mid-stream: producing
    // all of them takes several seconds because of the pauses above).
    let wait = Instant::now() + Duration::from_secs(60);
    while producer.watermark().unwrap_or(0) < 3_000 && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = producer.watermark().unwrap_or(0);
    assert!(
        before > 0 && before < total,
        "restart happens mid-stream (watermark {before})"
    );
    let mut broker =
        tokio::task::spawn_blocking(move || -> Result<KafkaBroker, cdc_testkit::Error> {
            let mut broker = broker;
            broker.stop()?;
            std::thread::sleep(Duration::from_secs(2));
            broker.restart()?;
            Ok(broker)
        })
        .await??;
    tracing::info!(before, after = ?producer.watermark(), "broker restarted");

    produce.await??;
    assert_eq!(
        producer.flush(Duration::from_secs(180)).await?,
        Some(total),
        "every record acknowledged"
    );
    assert!(producer.failure().is_none());

    let end = Instant::now() + Duration::from_secs(120);
    while seen.lock().expect("lock").len() < total as usize && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _commit_errors = consumer.await??;
    let seen = seen.lock().expect("lock").clone();
    let missing: Vec<u64> = (1..=total).filter(|s| !seen.contains(s)).take(20).collect();
    assert!(missing.is_empty(), "consumer missed {missing:?}");

    // Independent check: a fresh group reads exactly `total` distinct records.
    let all = consume_n(&cfg, &topic, total as usize, Duration::from_secs(120)).await;
    let distinct: BTreeSet<_> = all.iter().map(|r| r.value.clone()).collect();
    assert_eq!(distinct.len(), total as usize);
    tokio::task::spawn_blocking(move || broker.stop()).await??;
    Ok(())
}
