//! The delivery watermark against the real broker: acks arrive out of order
//! across partitions, the watermark only moves over fully acknowledged
//! prefixes, and a full queue slows the caller down instead of dropping.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use kafka_io::{Producer, ProducerOptions, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_is_in_order_under_real_out_of_order_acks() -> TestResult {
    init_tracing();
    let cfg = config(&[("producer.override.linger.ms", "2")]);
    let topic = cdc_testkit::unique_name("wm");
    create_topic(&cfg, &topic, 6).await;
    let producer = Producer::new(&cfg, ProducerOptions::default())?;
    let mut wm_rx = producer.subscribe_watermark();
    let tracker = producer.tracker().clone();
    // Every time the watermark moves, nothing at or below it may be in flight.
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while wm_rx.changed().await.is_ok() {
            let wm = *wm_rx.borrow_and_update();
            if let Some(w) = wm {
                seen.push(w);
            }
            if wm == Some(40_000) {
                break;
            }
        }
        seen
    });
    let n = 20_000u64;
    for i in 1..=n {
        // Gapped sequence numbers, like LSNs.
        let seq = i * 2;
        let key = format!("key-{}", i % 977);
        let value = format!("{seq}");
        producer
            .send(
                seq,
                &Record::to(&topic)
                    .key(key.as_bytes())
                    .value(value.as_bytes()),
            )
            .await?;
        if let Some(w) = producer.watermark() {
            assert!(w <= seq && w % 2 == 0);
        }
    }
    assert_eq!(producer.flush(Duration::from_secs(60)).await?, Some(2 * n));
    assert_eq!(tracker.in_flight(), 0);
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher).await??;
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "monotonic watermark");
    assert_eq!(seen.last(), Some(&(2 * n)));

    let got = consume_n(&cfg, &topic, n as usize, Duration::from_secs(120)).await;
    let seqs: BTreeSet<u64> = got
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                .parse()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(seqs.len(), n as usize, "each record exactly once");
    assert_eq!(seqs.first(), Some(&2));
    assert_eq!(seqs.last(), Some(&(2 * n)));
    Ok(())
}

#[tokio::test]
async fn full_queue_backs_off_and_never_drops() -> TestResult {
    init_tracing();
    // A tiny librdkafka queue: sends hit QueueFull constantly.
    let cfg = config(&[
        ("producer.override.queue.buffering.max.messages", "20"),
        ("producer.override.linger.ms", "20"),
    ]);
    let topic = cdc_testkit::unique_name("queue_full");
    create_topic(&cfg, &topic, 2).await;
    let producer = Producer::new(&cfg, ProducerOptions::default())?;
    let n = 3_000u64;
    for seq in 1..=n {
        producer
            .send(seq, &Record::to(&topic).key(&seq.to_be_bytes()).value(b"x"))
            .await?;
    }
    assert_eq!(producer.flush(Duration::from_secs(60)).await?, Some(n));
    assert_eq!(producer.acked(), n);
    assert_eq!(
        consume_n(&cfg, &topic, n as usize, Duration::from_secs(60))
            .await
            .len(),
        n as usize
    );
    Ok(())
}

#[tokio::test]
async fn in_flight_is_bounded() -> TestResult {
    init_tracing();
    let cfg = config(&[]);
    let topic = cdc_testkit::unique_name("bounded");
    create_topic(&cfg, &topic, 1).await;
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            max_in_flight: 8,
            ..ProducerOptions::default()
        },
    )?;
    for seq in 1..=500u64 {
        producer.send(seq, &Record::to(&topic).value(b"v")).await?;
        assert!(producer.tracker().in_flight() <= 8);
    }
    assert_eq!(producer.flush(Duration::from_secs(30)).await?, Some(500));
    // Sequence numbers must increase.
    assert!(producer
        .send(500, &Record::to(&topic).value(b"v"))
        .await
        .is_err());
    Ok(())
}
