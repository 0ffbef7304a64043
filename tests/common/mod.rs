//! Shared harness for the end-to-end tests: the seed's two connector files,
//! pointed at per-test databases with per-test slot, publication, topic
//! prefix and DLQ names, run in-process by a [`Worker`].

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdc_testkit::{unique_name, Services, TestDatabase};
use pg_cdc::connector::ConnectorConfig;
use pg_cdc::runtime::{Worker, WorkerOptions, WorkerOutcome};
use pg_cdc::status::StatusBoard;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The seed's `employees` table.
pub const EMPLOYEES: &str = "CREATE TABLE employees (
    emp_id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// Per-test names and connector configs.
pub struct Setup {
    pub prefix: String,
    pub dlq_source: String,
    pub dlq_sink: String,
    pub source: ConnectorConfig,
    pub sink: ConnectorConfig,
    pub data_dir: PathBuf,
}

fn seed(file: &str, overrides: &BTreeMap<&str, String>) -> Result<ConnectorConfig, BoxError> {
    let mut c = ConnectorConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(file),
    )?;
    let pairs: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
    c.apply_overrides(pairs.iter().map(String::as_str))?;
    Ok(c)
}

impl Setup {
    /// The seed's connectors for these databases, with unique names.
    pub fn new(source_db: &TestDatabase, target_db: &TestDatabase) -> Result<Self, BoxError> {
        let prefix = unique_name("pgsource");
        let dlq_source = unique_name("dlq_source");
        let dlq_sink = unique_name("dlq_sink");
        let src = source_db.server();
        let mut s = BTreeMap::new();
        s.insert("database.hostname", src.host());
        s.insert("database.port", src.port().to_string());
        s.insert("database.dbname", source_db.name().to_string());
        s.insert("slot.name", unique_name("slot"));
        s.insert("publication.name", unique_name("pub"));
        s.insert("topic.prefix", prefix.clone());
        s.insert("errors.deadletterqueue.topic.name", dlq_source.clone());
        let tgt = target_db.server();
        let mut k = BTreeMap::new();
        k.insert(
            "connection.url",
            format!(
                "jdbc:postgresql://{}:{}/{}",
                tgt.host(),
                tgt.port(),
                target_db.name()
            ),
        );
        k.insert("topics.regex", format!("{prefix}\\.public\\..*"));
        k.insert("errors.deadletterqueue.topic.name", dlq_sink.clone());
        let mut source = seed("postg-source-connector.json", &s)?;
        let mut sink = seed("postg-sink-connector.json", &k)?;
        source.name = unique_name("pg-source-connector");
        sink.name = unique_name("pg-sink-connector");
        Ok(Self {
            prefix,
            dlq_source,
            dlq_sink,
            source,
            sink,
            data_dir: std::env::temp_dir().join(unique_name("pgcdc-e2e")),
        })
    }

    /// Starts both connectors in-process against the shared broker.
    pub fn start(&self, services: &Services) -> Running {
        self.start_with_brokers(services.kafka_brokers())
    }

    /// Starts both connectors in-process against `brokers`.
    pub fn start_with_brokers(&self, brokers: &str) -> Running {
        start_worker(
            vec![self.source.clone(), self.sink.clone()],
            brokers,
            self.data_dir.clone(),
        )
    }
}

/// A running worker.
pub struct Running {
    pub board: StatusBoard,
    pub metrics: std::sync::Arc<pg_cdc::metrics::Metrics>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<pg_cdc::error::Result<WorkerOutcome>>,
}

impl Running {
    /// Stops gracefully and checks that no connector failed.
    pub async fn stop(self) -> TestResult {
        self.stop.send(true)?;
        let outcome = tokio::time::timeout(Duration::from_secs(60), self.handle).await???;
        if !outcome.failed.is_empty() {
            return Err(format!("connectors failed: {:?}", outcome.failed).into());
        }
        Ok(())
    }
}

/// Runs `query` (one text column per row) on both sides until equal.
pub async fn wait_equal(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    query: &str,
    timeout: Duration,
) -> TestResult {
    let deadline = Instant::now() + timeout;
    loop {
        let want = text_rows(source, query).await?;
        // Until the sink has created the table the query fails: no rows yet.
        let got = text_rows(target, query).await.unwrap_or_default();
        if want == got {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "target did not converge within {timeout:?}:\nsource {want:?}\ntarget {got:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rows of `query` as strings (first column).
pub async fn text_rows(
    client: &tokio_postgres::Client,
    query: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(query, &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}

/// Starts `connectors` in one in-process worker against `brokers`.
pub fn start_worker(connectors: Vec<ConnectorConfig>, brokers: &str, data_dir: PathBuf) -> Running {
    let worker = Worker::new(
        connectors,
        WorkerOptions {
            bootstrap_servers: brokers.to_string(),
            rest_addr: None,
            data_dir,
            max_restart_backoff: Duration::from_secs(2),
        },
    );
    let board = worker.board().clone();
    let metrics = worker.metrics().clone();
    let (stop, rx) = watch::channel(false);
    Running {
        board,
        metrics,
        stop,
        handle: tokio::spawn(worker.run(rx)),
    }
}

/// A consumer in a fresh consumer group (`<group>_<unique>`) subscribed to
/// `topics`, reading committed records from the beginning, up to
/// `max_records` per batch.
pub fn reader(
    brokers: &str,
    group: &str,
    topics: &[&str],
    max_records: usize,
) -> Result<kafka_io::BatchConsumer, BoxError> {
    let props = [("bootstrap.servers".to_string(), brokers.to_string())]
        .into_iter()
        .collect();
    let consumer = kafka_io::BatchConsumer::new(
        &kafka_io::KafkaConfig::from_properties(&props)?,
        &unique_name(group),
        None,
        kafka_io::BatchOptions {
            max_records,
            max_bytes: 16 << 20,
            max_wait: Duration::from_millis(300),
        },
    )?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}
