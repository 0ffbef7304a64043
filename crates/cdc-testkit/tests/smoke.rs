//! Smoke tests proving the services are real: a logical replication slot on
//! the source streams pgoutput, the target answers, and the Kafka broker
//! creates topics, stores their configs and round-trips records.

use std::time::Duration;

use cdc_testkit::{unique_name, Services};
use pgwire_replication::{ReplicationClient, ReplicationConfig, ReplicationEvent};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn source_postgres_streams_pgoutput_of_an_insert() -> TestResult {
    let services = Services::get()?;
    let db = services.source().fresh_database("smoke_repl").await?;
    let client = db.connect().await?;
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    assert_eq!(
        wal_level, "logical",
        "the source must run with wal_level=logical"
    );

    let slot = unique_name("slot");
    let publication = unique_name("pub");
    client
        .batch_execute(&format!(
            "CREATE TABLE smoke (id int PRIMARY KEY, name text);
             CREATE PUBLICATION {publication} FOR TABLE smoke;"
        ))
        .await?;
    client
        .query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await?;
    client
        .execute("INSERT INTO smoke VALUES (42, 'forty-two')", &[])
        .await?;

    let server = db.server();
    let cfg = ReplicationConfig::new(
        server.host(),
        server.user(),
        server.password(),
        db.name(),
        slot.as_str(),
        publication.as_str(),
    )
    .with_port(server.port());
    let mut repl = ReplicationClient::connect(cfg).await?;

    let mut saw_begin = false;
    let mut insert: Option<bytes::Bytes> = None;
    let mut commit_end = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while commit_end.is_none() {
        let event = tokio::time::timeout_at(deadline, repl.recv())
            .await
            .map_err(|_| "no commit within 30 s")??
            .ok_or("replication stream ended early")?;
        match event {
            ReplicationEvent::Begin { .. } => saw_begin = true,
            ReplicationEvent::XLogData { data, .. } if data.first() == Some(&b'I') => {
                insert = Some(data)
            }
            ReplicationEvent::Commit { end_lsn, .. } => commit_end = Some(end_lsn),
            _ => {}
        }
    }
    assert!(saw_begin, "a Begin precedes the insert");
    let insert = insert.ok_or("no pgoutput Insert message received")?;
    // 'I', relation oid (4), 'N', column count (2), then ('t', len, bytes) per column.
    assert_eq!(insert[5], b'N');
    assert_eq!(u16::from_be_bytes([insert[6], insert[7]]), 2, "two columns");
    let text = String::from_utf8_lossy(&insert[8..]);
    assert!(
        text.contains("42") && text.contains("forty-two"),
        "tuple carries the row: {text:?}"
    );
    if let Some(lsn) = commit_end {
        repl.update_applied_lsn(lsn);
    }
    repl.shutdown().await?;
    drop(client);
    db.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn target_postgres_accepts_writes() -> TestResult {
    let services = Services::get()?;
    let db = services.target().fresh_database("smoke_target").await?;
    let client = db.connect().await?;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await?;
    client
        .execute("INSERT INTO t VALUES ($1, $2)", &[&7i32, &"seven"])
        .await?;
    let v: String = client
        .query_one("SELECT v FROM t WHERE id = 7", &[])
        .await?
        .get(0);
    assert_eq!(v, "seven");
    drop(client);
    db.cleanup().await?;
    Ok(())
}

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, rdkafka::error::KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
}

async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &NewTopic<'_>,
) -> TestResult {
    let results = admin
        .create_topics(
            [topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for r in results {
        r.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn kafka_round_trips_a_record() -> TestResult {
    let services = Services::get()?;
    let brokers = services.kafka_brokers();
    let topic = unique_name("smoke_topic");
    create_topic(
        &admin(brokers)?,
        &NewTopic::new(&topic, 1, TopicReplication::Fixed(1)),
    )
    .await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()?;
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("k1").payload("hello kafka"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    assert_eq!(
        (delivery.partition, delivery.offset),
        (0, 0),
        "first record of a fresh topic"
    );

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("smoke_group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .map_err(|_| "no record consumed within 60 s")??;
    assert_eq!(msg.key(), Some(&b"k1"[..]));
    assert_eq!(msg.payload(), Some(&b"hello kafka"[..]));
    assert_eq!(msg.offset(), 0);
    Ok(())
}

#[tokio::test]
async fn kafka_topic_keeps_the_seed_settings() -> TestResult {
    let services = Services::get()?;
    let admin = admin(services.kafka_brokers())?;
    let topic = unique_name("smoke_seed");
    // The seed's topic.creation.default.* settings.
    let settings = [
        ("compression.type", "lz4"),
        ("cleanup.policy", "compact,delete"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("retention.ms", "604800000"),
    ];
    let mut new_topic = NewTopic::new(&topic, 3, TopicReplication::Fixed(1));
    for (k, v) in settings {
        new_topic = new_topic.set(k, v);
    }
    create_topic(&admin, &new_topic).await?;

    let metadata = tokio::task::spawn_blocking({
        let brokers = services.kafka_brokers().to_string();
        let topic = topic.clone();
        move || -> Result<usize, rdkafka::error::KafkaError> {
            let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()?;
            // A just-created topic's partitions reach the metadata a moment
            // later on a freshly started broker: ask until they show up.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
                let n = md.topics().first().map_or(0, |t| t.partitions().len());
                if n > 0 || std::time::Instant::now() > deadline {
                    return Ok(n);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    })
    .await??;
    assert_eq!(metadata, 3, "three partitions");

    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await?;
    let resource = described
        .into_iter()
        .next()
        .ok_or("no config resource returned")??;
    for (key, expected) in settings {
        let entry = resource
            .get(key)
            .ok_or_else(|| format!("broker did not return {key}"))?;
        assert_eq!(entry.value.as_deref(), Some(expected), "{key}");
        assert!(
            !entry.is_default,
            "{key} must be a topic override, not the broker default"
        );
    }
    Ok(())
}
