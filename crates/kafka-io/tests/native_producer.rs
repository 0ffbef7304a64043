//! The native transactional producer (`producer.engine`) against a real
//! broker: what librdkafka's consumer reads back is exactly what was sent
//! (keys, values, tombstones, headers, timestamps; LZ4 and uncompressed
//! batches), keys land in the partitions librdkafka's murmur2 partitioner
//! (the Java client's) picks, settings it does not support leave the
//! producer to librdkafka, and a broker restart in the middle of a
//! transaction loses and duplicates nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_testkit::KafkaBroker;
use common::*;
use kafka_io::{
    ConsumedRecord, Error, Header, Producer, ProducerOptions, Record, TransactionalProducer,
};

/// A value of `len` bytes: half text that compresses, half that does not.
fn value(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|j| {
            if j < len / 2 {
                b"{\"schema\":{\"type\":\"struct\"},"[j % 28]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

fn seen(r: &ConsumedRecord) -> Seen {
    Seen {
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
        timestamp: r.timestamp,
    }
}

/// A transactional producer with a fresh id and position topic.
async fn producer(
    cfg: &kafka_io::KafkaConfig,
    tag: &str,
) -> kafka_io::Result<TransactionalProducer> {
    let positions = cdc_testkit::unique_name(&format!("{tag}_pos"));
    TransactionalProducer::new(cfg, &cdc_testkit::unique_name(tag), &positions).await
}

async fn round_trip(compression: &str) -> TestResult {
    init_tracing();
    let cfg = config(&[
        ("producer.engine", "native"),
        ("producer.override.compression.type", compression),
        // Small batches: many per partition and transaction.
        ("producer.override.batch.size", "20000"),
    ]);
    let topic = cdc_testkit::unique_name("native_rt");
    // Batches close before a record would take them over batch.size (or
    // hold that one record alone): at most ~40 KB here, which the broker
    // takes uncompressed; a 20 KB batch plus a 40 KB record it refuses.
    create_topic_with(&cfg, &topic, 3, &[("max.message.bytes", "50000")]).await;
    let mut p = producer(&cfg, "native_rt").await?;
    assert_eq!(p.engine_name(), "native");
    let headers = [
        Header::new("h1", "v1"),
        Header {
            key: "null".into(),
            value: None,
        },
        Header::new("ключ", vec![0u8, 255, 7]),
    ];
    let mut want = Vec::new();
    for txn in 0..4 {
        let mut t = p.begin()?;
        for i in txn * 500..(txn + 1) * 500 {
            let key = format!("key-{i}");
            let v = value(i, [0, 1, 100, 3_500, 40_000][i % 5]);
            let mut r = Record::to(&topic)
                .key(key.as_bytes())
                .timestamp(1_700_000_000_000 + i as i64);
            if i % 7 != 0 {
                r = r.value(&v);
            }
            if i % 3 == 0 {
                r = r.headers(&headers);
            }
            t.send(&r).await?;
            if txn != 2 {
                want.push(Seen {
                    key: Some(key.into_bytes()),
                    value: (i % 7 != 0).then(|| v.clone()),
                    headers: if i % 3 == 0 {
                        headers
                            .iter()
                            .map(|h| (h.key.clone(), h.value.clone()))
                            .collect()
                    } else {
                        Vec::new()
                    },
                    timestamp: Some(1_700_000_000_000 + i as i64),
                });
            }
        }
        if txn == 2 {
            t.abort().await?;
        } else {
            t.commit(format!("txn={txn}").as_bytes()).await?;
        }
    }
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"txn=3"[..])
    );
    let got = consume_n_and_settle(&cfg, &topic, want.len(), Duration::from_secs(60)).await;
    let mut got_seen: Vec<Seen> = got.iter().map(seen).collect();
    assert_eq!(got_seen.len(), want.len());
    // Each partition keeps the order of sending.
    for part in 0..3 {
        let keys: Vec<usize> = got
            .iter()
            .filter(|r| r.partition == part)
            .map(|r| {
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default())[4..]
                    .parse()
                    .unwrap_or(usize::MAX)
            })
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "partition {part}: {keys:?}"
        );
    }
    got_seen.sort();
    want.sort();
    assert!(got_seen == want, "records differ from what was sent");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_batches_arrive_byte_for_byte() -> TestResult {
    round_trip("lz4").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncompressed_batches_arrive_byte_for_byte() -> TestResult {
    round_trip("none").await
}

/// librdkafka's `murmur2_random` is checked against the Java client in
/// `murmur2.rs`; the native producer must agree with it key for key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_librdkafka_puts_them() -> TestResult {
    init_tracing();
    let cfg = config(&[("producer.engine", "native")]);
    let native_topic = cdc_testkit::unique_name("native_keys");
    let rd_topic = cdc_testkit::unique_name("rd_keys");
    create_topic(&cfg, &native_topic, 7).await;
    create_topic(&cfg, &rd_topic, 7).await;
    let keys: Vec<String> = (0..400)
        .map(|i| format!("{}{}", "ключx".repeat(i % 5), i))
        .collect();
    let mut p = producer(&cfg, "native_keys").await?;
    let mut t = p.begin()?;
    for k in &keys {
        t.send(&Record::to(&native_topic).key(k.as_bytes()).value(b"x"))
            .await?;
    }
    t.commit(b"done").await?;
    let rd = Producer::new(&cfg, ProducerOptions::default())?;
    for (seq, k) in keys.iter().enumerate() {
        rd.send(
            seq as u64,
            &Record::to(&rd_topic).key(k.as_bytes()).value(b"x"),
        )
        .await?;
    }
    rd.flush(Duration::from_secs(30)).await?;
    let partitions = |records: Vec<ConsumedRecord>| -> BTreeMap<Vec<u8>, i32> {
        records
            .into_iter()
            .map(|r| (r.key.unwrap_or_default(), r.partition))
            .collect()
    };
    let native =
        partitions(consume_n(&cfg, &native_topic, keys.len(), Duration::from_secs(60)).await);
    let rd = partitions(consume_n(&cfg, &rd_topic, keys.len(), Duration::from_secs(60)).await);
    assert_eq!(native.len(), keys.len());
    let used: std::collections::BTreeSet<i32> = native.values().copied().collect();
    assert!(
        used.len() == 7,
        "keys spread over every partition: {used:?}"
    );
    assert_eq!(native, rd);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_it_cannot_honour_leave_the_producer_to_librdkafka() -> TestResult {
    init_tracing();
    let positions = cdc_testkit::unique_name("native_fallback_pos");
    let zstd = [("producer.override.compression.type", "gzip")];
    let auto = config(&zstd);
    let p = TransactionalProducer::new(&auto, &cdc_testkit::unique_name("fb"), &positions).await?;
    assert_eq!(p.engine_name(), "librdkafka");
    let plain = config(&[]);
    let p = TransactionalProducer::new(&plain, &cdc_testkit::unique_name("fb"), &positions).await?;
    assert_eq!(p.engine_name(), "native");
    let forced = config(&[zstd[0], ("producer.engine", "native")]);
    match TransactionalProducer::new(&forced, &cdc_testkit::unique_name("fb"), &positions).await {
        Err(Error::UnsupportedConfig { key, hint }) => {
            assert_eq!(key, "producer.engine");
            assert!(hint.contains("compression.type=gzip"), "{hint}");
        }
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
    let bad = props(&[("bootstrap.servers", "x:1"), ("producer.engine", "fast")]);
    let err = kafka_io::KafkaConfig::from_properties(&bad).expect_err("not an engine");
    assert!(err.to_string().contains("producer.engine"), "{err}");
    Ok(())
}

/// The broker goes away in the middle of a transaction and comes back:
/// the native producer resends what was in flight with the same sequence
/// numbers, the transaction commits, and every record is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_transaction_loses_and_duplicates_nothing() -> TestResult {
    init_tracing();
    let mut broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let cfg = config_for(
        &broker.bootstrap_servers(),
        &[("producer.engine", "native")],
    );
    let topic = cdc_testkit::unique_name("native_restart");
    create_topic(&cfg, &topic, 3).await;
    let mut p = producer(&cfg, "native_restart").await?;
    let mut n = 0usize;
    for txn in 0..3 {
        let mut t = p.begin()?;
        for _ in 0..2_000 {
            let v = n.to_string();
            t.send(&Record::to(&topic).key(v.as_bytes()).value(v.as_bytes()))
                .await?;
            n += 1;
            if n.is_multiple_of(200) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if txn == 1 && n == 3_000 {
                broker =
                    tokio::task::spawn_blocking(move || broker.restart().map(|_| broker)).await??;
            }
        }
        t.commit(format!("txn={txn}").as_bytes()).await?;
    }
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"txn=2"[..])
    );
    let got = consume_n_and_settle(&cfg, &topic, n, Duration::from_secs(120)).await;
    let mut values: Vec<usize> = got
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                .parse()
                .unwrap_or(usize::MAX)
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..n).collect::<Vec<_>>());
    drop(broker);
    Ok(())
}

/// A batch the broker refuses (larger than the topic's `max.message.bytes`)
/// fails the commit with a non-retriable error and aborts the transaction;
/// the producer goes on (new epoch: the refused batch's sequence numbers
/// were never written), and nothing of the failed transaction is visible.
/// A single record over `message.max.bytes` is refused at `send`, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_fail_the_commit_and_the_producer_goes_on() -> TestResult {
    init_tracing();
    let cfg = config(&[
        ("producer.engine", "native"),
        ("producer.override.compression.type", "none"),
    ]);
    let small = cdc_testkit::unique_name("native_small");
    let normal = cdc_testkit::unique_name("native_normal");
    create_topic_with(&cfg, &small, 1, &[("max.message.bytes", "2000")]).await;
    create_topic(&cfg, &normal, 2).await;
    let mut p = producer(&cfg, "native_refused").await?;
    let big = vec![b'x'; 1_100_000];
    let mut t = p.begin()?;
    match t.send(&Record::to(&normal).key(b"big").value(&big)).await {
        Err(e @ Error::Delivery { .. }) => {
            assert!(!e.is_retriable(), "{e}");
            assert!(e.to_string().contains("message.max.bytes"), "{e}");
        }
        other => panic!("expected a refused record, got {other:?}"),
    }
    t.send(&Record::to(&normal).key(b"k0").value(b"first"))
        .await?;
    t.commit(b"one").await?;

    let mut t = p.begin()?;
    t.send(&Record::to(&normal).key(b"k1").value(b"lost with the batch"))
        .await?;
    for i in 0..10 {
        t.send(
            &Record::to(&small)
                .key(format!("{i}").as_bytes())
                .value(&[b'y'; 500]),
        )
        .await?;
    }
    let err = t
        .commit(b"two")
        .await
        .expect_err("the broker refuses the batch");
    assert!(!err.is_retriable(), "{err}");
    assert!(
        err.to_string().contains("MESSAGE_TOO_LARGE")
            || err.to_string().contains("RECORD_LIST_TOO_LARGE"),
        "{err}"
    );

    for round in 0..3 {
        let mut t = p.begin()?;
        t.send(
            &Record::to(&normal)
                .key(b"k2")
                .value(format!("after {round}").as_bytes()),
        )
        .await?;
        t.commit(format!("three {round}").as_bytes()).await?;
    }
    assert_eq!(
        p.last_committed_position().await?.as_deref(),
        Some(&b"three 2"[..])
    );
    let got = consume_n_and_settle(&cfg, &normal, 4, Duration::from_secs(60)).await;
    let mut values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    assert_eq!(values, ["after 0", "after 1", "after 2", "first"]);
    Ok(())
}
