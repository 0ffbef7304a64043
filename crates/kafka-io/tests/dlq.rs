//! Poison records → dead-letter queue with Kafka Connect's error headers,
//! read back from the broker; `errors.tolerance` none vs all.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kafka_io::dlq::*;
use kafka_io::{
    ConsumedRecord, Error, ErrorReporter, Header, KafkaConfig, Producer, ProducerOptions, Record,
    TopicAdmin, TopicSpec,
};
use rdkafka::error::RDKafkaErrorCode;

fn header<'a>(r: &'a ConsumedRecord, key: &str) -> Option<&'a [u8]> {
    let matches: Vec<_> = r.headers.iter().filter(|h| h.key == key).collect();
    assert!(
        matches.len() <= 1,
        "header {key} appears {} times",
        matches.len()
    );
    matches.first().and_then(|h| h.value.as_deref())
}

fn header_str(r: &ConsumedRecord, key: &str) -> String {
    String::from_utf8(
        header(r, key)
            .unwrap_or_else(|| panic!("missing header {key}"))
            .to_vec(),
    )
    .expect("UTF-8 header")
}

fn dlq_config(dlq: &str, tolerance: &str) -> KafkaConfig {
    config(&[
        ("errors.tolerance", tolerance),
        ("errors.deadletterqueue.topic.name", dlq),
        ("errors.deadletterqueue.context.headers.enable", "true"),
        ("errors.log.enable", "true"),
        ("errors.log.include.messages", "true"),
        ("producer.override.message.max.bytes", "50000"),
        ("producer.override.linger.ms", "0"),
    ])
}

#[tokio::test]
async fn poison_records_go_to_the_dlq_with_every_header() -> TestResult {
    init_tracing();
    let topic = cdc_testkit::unique_name("poison");
    let dlq = cdc_testkit::unique_name("dlq_source");
    let cfg = dlq_config(&dlq, "all");
    // Compacted: the broker rejects records without a key (InvalidRecord).
    create_topic_with(&cfg, &topic, 1, &[("cleanup.policy", "compact")]).await;
    let reporter = Arc::new(ErrorReporter::new(&cfg, "pg-source-connector", 0).await?);
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            reporter: Some(reporter.clone()),
            ..ProducerOptions::default()
        },
    )?;
    let t = Duration::from_secs(60);
    let headers = vec![
        Header::new("bin", vec![0u8, 1, 2, 0xff, 0xfe]),
        Header {
            key: "null".into(),
            value: None,
        },
        Header::new("bin", b"second value, same key".to_vec()),
    ];
    producer
        .send(1, &Record::to(&topic).key(b"k1").value(b"v1"))
        .await?;
    assert_eq!(producer.flush(t).await?, Some(1));

    // Rejected by the client at once: larger than message.max.bytes.
    let big: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    producer
        .send(
            2,
            &Record::to(&topic)
                .key(&[0x00, 0x9f, 0x92, 0x96])
                .value(&big)
                .headers(&headers)
                .timestamp(1_700_000_000_123),
        )
        .await?;
    // No key on a compacted topic: refused before batching (the broker
    // would refuse the record's whole batch with InvalidRecord).
    producer
        .send(
            3,
            &Record::to(&topic)
                .value(b"\x00keyless\xff")
                .headers(&headers),
        )
        .await?;
    assert_eq!(producer.flush(t).await?, Some(3));
    producer
        .send(4, &Record::to(&topic).key(b"k4").value(b"v4"))
        .await?;
    assert_eq!(
        producer.flush(t).await?,
        Some(4),
        "the pipeline continues (tolerance=all)"
    );
    assert_eq!(producer.dead_lettered(), 2);

    let got = consume_n(&cfg, &dlq, 2, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 2);
    let (oversized, keyless) = if got[0].value.as_deref() == Some(&big[..]) {
        (&got[0], &got[1])
    } else {
        (&got[1], &got[0])
    };
    // Original key, value, headers byte for byte; timestamp kept.
    assert_eq!(
        oversized.key.as_deref(),
        Some(&[0x00, 0x9f, 0x92, 0x96][..])
    );
    assert_eq!(oversized.value.as_deref(), Some(&big[..]));
    assert_eq!(oversized.timestamp, Some(1_700_000_000_123));
    assert_eq!(keyless.key, None);
    assert_eq!(keyless.value.as_deref(), Some(&b"\x00keyless\xff"[..]));
    for r in [oversized, keyless] {
        assert_eq!(
            &r.headers[..3],
            &headers[..],
            "original headers first, in order"
        );
        assert_eq!(header_str(r, HEADER_TOPIC), topic);
        assert_eq!(header_str(r, HEADER_CONNECTOR_NAME), "pg-source-connector");
        assert_eq!(header_str(r, HEADER_TASK_ID), "0");
        assert_eq!(header_str(r, HEADER_STAGE), "KAFKA_PRODUCE");
        assert_eq!(
            header_str(r, HEADER_CLASS_NAME),
            "kafka_io::producer::Producer"
        );
        assert_eq!(
            header_str(r, HEADER_EXCEPTION_CLASS),
            "kafka_io::Error::Delivery"
        );
        let trace = header_str(r, HEADER_EXCEPTION_STACKTRACE);
        assert!(trace.starts_with("kafka_io::Error::Delivery: "), "{trace}");
        let names: Vec<&str> = r.headers[3..].iter().map(|h| h.key.as_str()).collect();
        assert_eq!(
            names,
            [
                HEADER_TOPIC,
                HEADER_PARTITION,
                HEADER_OFFSET,
                HEADER_CONNECTOR_NAME,
                HEADER_TASK_ID,
                HEADER_STAGE,
                HEADER_CLASS_NAME,
                HEADER_EXCEPTION_CLASS,
                HEADER_EXCEPTION_MESSAGE,
                HEADER_EXCEPTION_STACKTRACE
            ],
            "Connect's header order"
        );
    }
    // Never written: partition/offset -1 (client-side rejection)…
    assert_eq!(header_str(oversized, HEADER_PARTITION), "-1");
    assert_eq!(header_str(oversized, HEADER_OFFSET), "-1");
    let msg = header_str(oversized, HEADER_EXCEPTION_MESSAGE);
    assert!(msg.contains("MessageSizeTooLarge"), "{msg}");
    // …and the keyless one, refused before batching (the broker would
    // have refused its whole batch), was never written either.
    assert_eq!(header_str(keyless, HEADER_PARTITION), "-1");
    let msg = header_str(keyless, HEADER_EXCEPTION_MESSAGE);
    assert!(msg.contains("InvalidRecord"), "{msg}");

    // Only the good records are in the topic.
    let data = consume_n(&cfg, &topic, 2, Duration::from_secs(60)).await;
    let keys: Vec<_> = data.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, [Some(b"k1".to_vec()), Some(b"k4".to_vec())]);
    Ok(())
}

#[tokio::test]
async fn tolerance_none_stops_and_still_dead_letters() -> TestResult {
    init_tracing();
    let topic = cdc_testkit::unique_name("strict");
    let dlq = cdc_testkit::unique_name("dlq_strict");
    let cfg = dlq_config(&dlq, "none");
    create_topic(&cfg, &topic, 1).await;
    let reporter = Arc::new(ErrorReporter::new(&cfg, "strict", 3).await?);
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            reporter: Some(reporter),
            ..ProducerOptions::default()
        },
    )?;
    producer
        .send(1, &Record::to(&topic).key(b"a").value(b"ok"))
        .await?;
    let big = vec![7u8; 60_000];
    let err = producer
        .send(2, &Record::to(&topic).key(b"b").value(&big))
        .await
        .expect_err("tolerance=none stops at the poison record");
    assert!(
        matches!(err, Error::ToleranceExceeded { ref stage, .. } if stage == "KAFKA_PRODUCE"),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert!(producer
        .send(3, &Record::to(&topic).key(b"c").value(b"x"))
        .await
        .is_err());
    assert!(producer.flush(Duration::from_secs(30)).await.is_err());
    assert_eq!(
        producer.watermark(),
        Some(1),
        "never acked past the failure"
    );
    let got = consume_n(&cfg, &dlq, 1, Duration::from_secs(60)).await;
    assert_eq!(header_str(&got[0], HEADER_TASK_ID), "3");
    Ok(())
}

#[tokio::test]
async fn sink_side_failures_carry_the_consumed_coordinates() -> TestResult {
    init_tracing();
    let topic = cdc_testkit::unique_name("sink_in");
    let dlq = cdc_testkit::unique_name("dlq_sink");
    let cfg = dlq_config(&dlq, "all");
    create_topic(&cfg, &topic, 2).await;
    let producer = Producer::new(&cfg, ProducerOptions::default())?;
    let hdr = [Header::new("trace-id", b"abc".to_vec())];
    for i in 1..=4u64 {
        producer
            .send(
                i,
                &Record::to(&topic)
                    .key(format!("k{i}").as_bytes())
                    .value(b"{not json")
                    .headers(&hdr),
            )
            .await?;
    }
    producer.flush(Duration::from_secs(30)).await?;
    let consumed = consume_n(&cfg, &topic, 4, Duration::from_secs(60)).await;
    let reporter = ErrorReporter::new(&cfg, "pg-sink-connector", 0).await?;
    let poison = &consumed[2];
    let cause = std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected end of JSON");
    let handled = reporter
        .report(
            &poison.to_failed(),
            &ErrorContext {
                stage: Stage::ValueConverter,
                executing_class: "org.apache.kafka.connect.json.JsonConverter",
                error: &cause,
                exception_class: "org.apache.kafka.connect.errors.DataException",
            },
        )
        .await?;
    assert_eq!(handled, Handled::DeadLettered);
    let got = consume_n(&cfg, &dlq, 1, Duration::from_secs(60)).await;
    let r = &got[0];
    assert_eq!(r.key, poison.key);
    assert_eq!(r.value, poison.value);
    assert_eq!(r.timestamp, poison.timestamp);
    assert_eq!(header(r, "trace-id"), Some(&b"abc"[..]));
    assert_eq!(header_str(r, HEADER_TOPIC), topic);
    assert_eq!(
        header_str(r, HEADER_PARTITION),
        poison.partition.to_string()
    );
    assert_eq!(header_str(r, HEADER_OFFSET), poison.offset.to_string());
    assert_eq!(header_str(r, HEADER_STAGE), "VALUE_CONVERTER");
    assert_eq!(
        header_str(r, HEADER_CLASS_NAME),
        "org.apache.kafka.connect.json.JsonConverter"
    );
    assert_eq!(
        header_str(r, HEADER_EXCEPTION_CLASS),
        "org.apache.kafka.connect.errors.DataException"
    );
    assert_eq!(
        header_str(r, HEADER_EXCEPTION_MESSAGE),
        "unexpected end of JSON"
    );
    assert_eq!(
        header_str(r, HEADER_EXCEPTION_STACKTRACE),
        "org.apache.kafka.connect.errors.DataException: unexpected end of JSON\n"
    );
    Ok(())
}

/// One keyless record among keyed ones bound for a compacted topic, all in
/// one producer batch: the broker would refuse the whole batch
/// (InvalidRecord) and librdkafka would fail every record of it. The
/// producer refuses the culprit before batching, so only it reaches the DLQ
/// and its batch-mates reach the topic, in order.
#[tokio::test]
async fn a_poison_record_does_not_take_its_batch_mates_to_the_dlq() -> TestResult {
    init_tracing();
    let topic = cdc_testkit::unique_name("mixed");
    let dlq = cdc_testkit::unique_name("dlq_mixed");
    let mut cfg = dlq_config(&dlq, "all");
    // One batch for everything below.
    cfg.producer_overrides.set("linger.ms", "200");
    TopicAdmin::new(&cfg)?
        .ensure_topic(
            &TopicSpec::new(&topic)
                .partitions(1)
                .replication_factor(1)
                .config("cleanup.policy", "compact,delete"),
        )
        .await?;
    let reporter = Arc::new(ErrorReporter::new(&cfg, "c", 0).await?);
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            reporter: Some(reporter),
            ..ProducerOptions::default()
        },
    )?;
    for seq in 1..=20u64 {
        let key = format!("k{seq}");
        let r = if seq == 10 {
            Record::to(&topic).value(b"keyless")
        } else {
            Record::to(&topic).key(key.as_bytes()).value(b"v")
        };
        producer.send(seq, &r).await?;
    }
    let t = Duration::from_secs(60);
    assert_eq!(producer.flush(t).await?, Some(20));
    assert_eq!(producer.dead_lettered(), 1);

    let data = consume_n(&cfg, &topic, 19, t).await;
    let keys: Vec<String> = data
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let expected: Vec<String> = (1..=20)
        .filter(|s| *s != 10)
        .map(|s| format!("k{s}"))
        .collect();
    assert_eq!(keys, expected, "every valid record in the topic, in order");
    let dead = consume_n(&cfg, &dlq, 1, t).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key, None);
    assert_eq!(dead[0].value.as_deref(), Some(&b"keyless"[..]));
    let msg = header_str(&dead[0], HEADER_EXCEPTION_MESSAGE);
    assert!(
        msg.contains("InvalidRecord") && msg.contains("compacted"),
        "{msg}"
    );
    Ok(())
}

/// A rejection the producer cannot attribute to one record (the broker
/// refuses a batch because one record's timestamp is out of range): the
/// valid batch-mates must not be dead-lettered as if they were poison, so
/// the producer stops before the batch, even with errors.tolerance=all.
#[tokio::test]
async fn a_whole_batch_rejection_stops_instead_of_dead_lettering_valid_records() -> TestResult {
    init_tracing();
    let topic = cdc_testkit::unique_name("old_ts");
    let dlq = cdc_testkit::unique_name("dlq_old_ts");
    let mut cfg = dlq_config(&dlq, "all");
    cfg.producer_overrides.set("linger.ms", "200");
    TopicAdmin::new(&cfg)?
        .ensure_topic(
            &TopicSpec::new(&topic)
                .partitions(1)
                .replication_factor(1)
                .config("message.timestamp.type", "CreateTime")
                .config("message.timestamp.before.max.ms", "3600000"),
        )
        .await?;
    let reporter = Arc::new(ErrorReporter::new(&cfg, "c", 0).await?);
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            reporter: Some(reporter),
            ..ProducerOptions::default()
        },
    )?;
    let t = Duration::from_secs(60);
    producer
        .send(1, &Record::to(&topic).key(b"k1").value(b"v"))
        .await?;
    assert_eq!(producer.flush(t).await?, Some(1));

    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        - 2 * 24 * 3600 * 1000;
    for seq in 2..=11u64 {
        let key = format!("k{seq}");
        let mut r = Record::to(&topic).key(key.as_bytes()).value(b"v");
        if seq == 6 {
            r = r.timestamp(two_days_ago);
        }
        producer.send(seq, &r).await?;
    }
    let err = producer
        .flush(t)
        .await
        .expect_err("a batch rejection stops the producer");
    match &err {
        Error::Delivery {
            seq, code, message, ..
        } => {
            assert!(
                *seq <= 6,
                "the first failure is at or before the culprit: {seq}"
            );
            assert_eq!(*code, RDKafkaErrorCode::InvalidTimestamp);
            assert!(message.contains("whole batch"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(producer.dead_lettered(), 0, "no valid record dead-lettered");
    assert!(
        producer.watermark() < Some(6),
        "nothing acknowledged past the culprit"
    );
    assert!(producer.failure().is_some());
    Ok(())
}
