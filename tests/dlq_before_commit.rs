//! The sink task's dead-letter hook against the real broker and target: a
//! record the target rejects is acknowledged by Kafka in the DLQ topic
//! *before* the transaction that stores the offsets past it commits.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_envelope::{
    ChangeEvent, Column, Op, PgType, Position, SourceInfo, TableId, TableSchema, Value,
};
use cdc_testkit::{unique_name, Services};
use common::{BoxError, TestResult};
use jdbc_sink::{DeadLetterFuture, DeadLetterSink, FailedRecord, JdbcSink, SinkConfig, SinkRecord};
use kafka_io::{Batch, ConsumedRecord, ErrorReporter, KafkaConfig};
use pg_cdc::dead_letter::{DeadLetters, SinkBatchDeadLetters};
use pg_cdc::metrics::Metrics;

const TABLE: &str = "CREATE TABLE items (id integer PRIMARY KEY, v text CHECK (v <> 'bad'))";

fn schema() -> Arc<TableSchema> {
    let col = |name: &str, t: PgType, key: bool| Column {
        name: name.into(),
        pg_type: t,
        optional: !key,
        default_expr: None,
        is_key: key,
    };
    Arc::new(TableSchema {
        id: TableId::new("public", "items"),
        relation_oid: 0,
        columns: vec![
            col("id", PgType::base(23, "int4"), true),
            col("v", PgType::base(25, "text"), false),
        ],
        version: 1,
    })
}

fn insert(schema: &Arc<TableSchema>, id: i32, v: &str) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: Some(Arc::clone(schema)),
        before: None,
        after: Some(vec![Value::Int32(id), Value::Text(v.into())]),
        source: SourceInfo {
            schema: "public".into(),
            table: "items".into(),
            ..SourceInfo::default()
        },
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Position::default(),
        key_change: None,
    }
}

/// What the hook saw, from the outside, around the real DLQ delivery.
#[derive(Debug, Default)]
struct Observed {
    /// Stored next offset (another session) when the hook was called.
    stored_before: Option<i64>,
    /// Stored next offset right after Kafka acknowledged the DLQ record.
    stored_after_ack: Option<i64>,
    /// Rows visible to another session after the acknowledgement.
    rows_after_ack: i64,
    /// The DLQ record, read back from the broker by a fresh consumer
    /// before the hook returned: (value, `__connect.errors.offset`).
    in_dlq: Option<(Vec<u8>, String)>,
}

/// The production hook, observed.
struct Observing {
    inner: SinkBatchDeadLetters,
    client: tokio_postgres::Client,
    brokers: String,
    dlq_topic: String,
    topic: String,
    seen: Mutex<Observed>,
}

impl Observing {
    async fn stored(&self) -> Result<Option<i64>, BoxError> {
        Ok(self
            .client
            .query_opt(
                "SELECT next_offset FROM __pgcdc_sink_offsets WHERE topic = $1 AND partition = 0",
                &[&self.topic],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn read_dlq(&self) -> Result<(Vec<u8>, String), BoxError> {
        let consumer = common::reader(&self.brokers, "dlq_order", &[&self.dlq_topic], 10)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let batch = consumer.next_batch().await?;
            if let Some(r) = batch.records.into_iter().next() {
                let offset = r
                    .headers
                    .iter()
                    .find(|h| h.key == "__connect.errors.offset")
                    .and_then(|h| h.value.clone())
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                return Ok((r.value.unwrap_or_default(), offset));
            }
            if Instant::now() > deadline {
                return Err("the DLQ record is not readable 60 s after its ack".into());
            }
        }
    }
}

impl DeadLetterSink for Observing {
    fn deliver<'a>(&'a self, failed: &'a [FailedRecord]) -> DeadLetterFuture<'a> {
        Box::pin(async move {
            let stored_before = self.stored().await?;
            self.inner.deliver(failed).await?;
            let stored_after_ack = self.stored().await?;
            let rows_after_ack: i64 = self
                .client
                .query_one("SELECT count(*) FROM items", &[])
                .await?
                .get(0);
            let in_dlq = Some(self.read_dlq().await?);
            *self.seen.lock().expect("lock") = Observed {
                stored_before,
                stored_after_ack,
                rows_after_ack,
                in_dlq,
            };
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_failure_is_in_the_dlq_before_the_offsets_commit() -> TestResult {
    let services = Services::get()?;
    let db = services.target().fresh_database("dlq_order").await?;
    let client = db.connect().await?;
    client.batch_execute(TABLE).await?;
    let topic = unique_name("pgsource.public.items");
    let dlq_topic = unique_name("dlq_sink");

    let s = db.server();
    let props: BTreeMap<String, String> = [
        (
            "connection.url",
            format!("jdbc:postgresql://{}:{}/{}", s.host(), s.port(), db.name()),
        ),
        ("connection.username", s.user()),
        ("connection.password", s.password()),
        ("insert.mode", "upsert".into()),
        ("primary.key.mode", "record_key".into()),
        ("table.name.format", "${source.table}".into()),
        ("errors.tolerance", "all".into()),
        ("bootstrap.servers", services.kafka_brokers().to_owned()),
        ("errors.deadletterqueue.topic.name", dlq_topic.clone()),
        (
            "errors.deadletterqueue.context.headers.enable",
            "true".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut sink = JdbcSink::connect(SinkConfig::from_properties(&props)?).await?;
    let kafka = KafkaConfig::from_properties(&props)?;
    let dlq = DeadLetters::new(
        Arc::new(ErrorReporter::new(&kafka, "dlq-order", 0).await?),
        Metrics::new(),
        "dlq-order",
    );

    // Six consumed records; offset 3 violates the target's CHECK.
    let sch = schema();
    let mut batch = Batch::default();
    let mut records = Vec::new();
    for (offset, v) in ["a", "b", "c", "bad", "e", "f"].into_iter().enumerate() {
        let offset = offset as i64;
        batch.records.push(ConsumedRecord {
            topic: topic.clone(),
            partition: 0,
            offset,
            key: Some(format!("{{\"id\":{offset}}}").into_bytes()),
            value: Some(format!("raw-{offset}-{v}").into_bytes()),
            headers: Vec::new(),
            timestamp: Some(1_700_000_000_000),
        });
        records.push(SinkRecord::from_event(
            topic.clone(),
            0,
            offset,
            insert(&sch, offset as i32, v),
        ));
    }
    let origin: Vec<usize> = (0..records.len()).collect();
    let hook = Observing {
        inner: SinkBatchDeadLetters::new(dlq, Arc::new(batch), origin),
        client: db.connect().await?,
        brokers: services.kafka_brokers().to_owned(),
        dlq_topic,
        topic: topic.clone(),
        seen: Mutex::new(Observed::default()),
    };
    let out = sink.write_with(&records, &hook).await?;

    assert_eq!(
        out.failed.iter().map(|f| f.offset).collect::<Vec<_>>(),
        vec![3]
    );
    let seen = std::mem::take(&mut *hook.seen.lock().expect("lock"));
    // Acknowledged and readable in the DLQ while the target had neither the
    // offsets past it nor any row of the batch.
    assert_eq!(
        seen.in_dlq,
        Some((b"raw-3-bad".to_vec(), "3".to_owned())),
        "{seen:?}"
    );
    assert_eq!(seen.stored_before, None, "{seen:?}");
    assert_eq!(seen.stored_after_ack, None, "{seen:?}");
    assert_eq!(seen.rows_after_ack, 0, "{seen:?}");
    // Then the transaction committed.
    let stored: i64 = client
        .query_one(
            "SELECT next_offset FROM __pgcdc_sink_offsets WHERE topic = $1 AND partition = 0",
            &[&topic],
        )
        .await?
        .get(0);
    assert_eq!(stored, 6);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    assert_eq!(rows, 5);
    Ok(())
}
