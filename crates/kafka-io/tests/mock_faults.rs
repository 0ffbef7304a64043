//! Fault injection a real broker cannot do on demand, with librdkafka's mock
//! cluster: Produce requests failing with retriable errors are retried
//! transparently (idempotence keeps order) also on a slow broker; a non-retriable broker error
//! stops the watermark before the failed record.

mod common;

use std::time::Duration;

use common::*;
use kafka_io::{Error, Producer, ProducerOptions, Record};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_produce_errors_are_retried_and_fatal_ones_stop_the_watermark() -> TestResult {
    init_tracing();
    let mock = MockCluster::new(1)?;
    let topic = "mocked";
    mock.create_topic(topic, 2, 1)?;
    let cfg = config_for(
        &mock.bootstrap_servers(),
        &[("producer.override.linger.ms", "0")],
    );
    let producer = Producer::new(
        &cfg,
        ProducerOptions {
            // The mock cluster does not answer DescribeConfigs.
            check_topic_configs: false,
            ..ProducerOptions::default()
        },
    )?;

    producer
        .send(1, &Record::to(topic).key(b"warm").value(b"up"))
        .await?;
    assert_eq!(producer.flush(Duration::from_secs(30)).await?, Some(1));

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    // And a slow broker (500 ms round trips) on top.
    mock.broker_round_trip_time(1, Duration::from_millis(500))?;
    for seq in 2..=50u64 {
        producer
            .send(seq, &Record::to(topic).key(&seq.to_be_bytes()).value(b"v"))
            .await?;
    }
    assert_eq!(producer.flush(Duration::from_secs(60)).await?, Some(50));
    assert!(producer.failure().is_none());
    mock.broker_round_trip_time(1, Duration::ZERO)?;

    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    producer
        .send(51, &Record::to(topic).key(b"denied").value(b"v"))
        .await?;
    let err = producer
        .flush(Duration::from_secs(60))
        .await
        .expect_err("authorization failure is not retried");
    match &err {
        Error::Delivery { seq, code, .. } => {
            assert_eq!(*seq, 51);
            assert_eq!(*code, RDKafkaErrorCode::TopicAuthorizationFailed);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retriable());
    assert_eq!(
        producer.watermark(),
        Some(50),
        "nothing acked past the failed record"
    );
    assert!(producer
        .send(52, &Record::to(topic).value(b"v"))
        .await
        .is_err());
    Ok(())
}
