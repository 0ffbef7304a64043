//! The seed's Quick Start, end to end against real PostgreSQL source,
//! Kafka and PostgreSQL target: both connectors from the seed's files
//! (overriding only hosts, ports, database and per-test names), insert /
//! update / delete on `employees`, and the target converges to the source.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cdc_testkit::{unique_name, Services};
use pg_cdc::connector::ConnectorConfig;
use pg_cdc::runtime::{Worker, WorkerOptions};
use pg_cdc::status::ConnectorState;
use tokio::sync::watch;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const EMPLOYEES: &str = "CREATE TABLE employees (
    emp_id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// Rows as text, comparable across source and target (`time.precision.mode=connect`
/// carries milliseconds, so compare at that precision).
const ROWS: &str =
    "SELECT emp_id::text, name, coalesce(email, '<null>'), coalesce(department, '<null>'),
        coalesce(salary::text, '<null>'), coalesce(hire_date::text, '<null>'),
        coalesce(date_trunc('milliseconds', created_at)::text, '<null>')
    FROM employees ORDER BY emp_id";

async fn rows(client: &tokio_postgres::Client) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    Ok(client
        .query(ROWS, &[])
        .await?
        .iter()
        .map(|r| (0..7).map(|i| r.get::<_, String>(i)).collect())
        .collect())
}

async fn wait_equal(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    timeout: Duration,
) -> TestResult {
    let deadline = Instant::now() + timeout;
    loop {
        let want = rows(source).await?;
        // Until the sink has created the table the query fails: no rows yet.
        let got = rows(target).await.unwrap_or_default();
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

fn seed(
    file: &str,
    overrides: &BTreeMap<&str, String>,
) -> Result<ConnectorConfig, Box<dyn std::error::Error + Send + Sync>> {
    let mut c = ConnectorConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(file),
    )?;
    let pairs: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
    c.apply_overrides(pairs.iter().map(String::as_str))?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_quick_start_converges() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("qs_src").await?;
    let target_db = services.target().fresh_database("qs_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute(
            "INSERT INTO employees (name, email, department, salary, hire_date)
             VALUES ('John Doe', 'john@example.com', 'Engineering', 75000.00, '2024-01-15')",
        )
        .await?;

    let prefix = unique_name("pgsource");
    let src_server = source_db.server();
    let mut src_over = BTreeMap::new();
    src_over.insert("database.hostname", src_server.host());
    src_over.insert("database.port", src_server.port().to_string());
    src_over.insert("database.dbname", source_db.name().to_string());
    src_over.insert("slot.name", unique_name("slot"));
    src_over.insert("publication.name", unique_name("pub"));
    src_over.insert("topic.prefix", prefix.clone());
    let dlq_source = unique_name("dlq_source");
    let dlq_sink = unique_name("dlq_sink");
    src_over.insert("errors.deadletterqueue.topic.name", dlq_source.clone());
    let tgt_server = target_db.server();
    let mut sink_over = BTreeMap::new();
    sink_over.insert(
        "connection.url",
        format!(
            "jdbc:postgresql://{}:{}/{}",
            tgt_server.host(),
            tgt_server.port(),
            target_db.name()
        ),
    );
    sink_over.insert("topics.regex", format!("{}\\.public\\..*", prefix));
    sink_over.insert("errors.deadletterqueue.topic.name", dlq_sink.clone());

    let mut src_cfg = seed("postg-source-connector.json", &src_over)?;
    let mut sink_cfg = seed("postg-sink-connector.json", &sink_over)?;
    src_cfg.name = unique_name("pg-source-connector");
    sink_cfg.name = unique_name("pg-sink-connector");

    let data_dir = std::env::temp_dir().join(unique_name("pgcdc-qs"));
    let worker = Worker::new(
        vec![src_cfg.clone(), sink_cfg.clone()],
        WorkerOptions {
            bootstrap_servers: services.kafka_brokers().to_string(),
            rest_addr: None,
            data_dir: data_dir.clone(),
            max_restart_backoff: Duration::from_secs(2),
        },
    );
    let board = worker.board().clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = tokio::spawn(worker.run(stop_rx));

    // Snapshot of the first row.
    wait_equal(&source, &target, Duration::from_secs(60)).await?;
    // Streamed changes: insert, update, delete.
    source
        .batch_execute(
            "INSERT INTO employees (name, email, department, salary, hire_date)
                 VALUES ('Jane Roe', 'jane@example.com', 'Sales', 65000.50, '2023-03-01'),
                        ('Max Mustermann', NULL, 'Ops', NULL, NULL);
             UPDATE employees SET salary = 80000, department = 'Platform' WHERE name = 'John Doe';
             DELETE FROM employees WHERE name = 'Jane Roe';",
        )
        .await?;
    wait_equal(&source, &target, Duration::from_secs(60)).await?;
    assert_eq!(rows(&target).await?.len(), 2, "John and Max remain");
    assert_eq!(board.state(&src_cfg.name), Some(ConnectorState::Running));
    assert_eq!(board.state(&sink_cfg.name), Some(ConnectorState::Running));

    // The topics exist with the seed's settings, and so do both DLQs.
    let admin = kafka_io::TopicAdmin::new(&kafka_io::KafkaConfig::from_properties(
        &[(
            "bootstrap.servers".to_string(),
            services.kafka_brokers().to_string(),
        )]
        .into_iter()
        .collect(),
    )?)?;
    let topic = format!("{prefix}.public.employees");
    let described = admin.describe(&topic).await?;
    assert_eq!(described.partitions, 3, "{described:?}");
    for (k, v) in [
        ("compression.type", "lz4"),
        ("cleanup.policy", "compact,delete"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("retention.ms", "604800000"),
    ] {
        assert_eq!(
            described.overrides.get(k).map(String::as_str),
            Some(v),
            "{k} of {topic}"
        );
    }
    for dlq in [&dlq_source, &dlq_sink] {
        admin
            .describe(dlq)
            .await
            .map_err(|e| format!("DLQ topic {dlq} missing: {e}"))?;
    }

    // Pausing the source (PUT /connectors/<name>/pause) holds changes back;
    // resuming delivers them.
    assert!(board.set_paused(&src_cfg.name, true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    source
        .batch_execute("UPDATE employees SET department = 'Paused' WHERE name = 'John Doe'")
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(board.state(&src_cfg.name), Some(ConnectorState::Paused));
    assert!(
        !rows(&target).await?.iter().any(|r| r[3] == "Paused"),
        "a paused source must not deliver changes"
    );
    assert!(board.set_paused(&src_cfg.name, false));
    wait_equal(&source, &target, Duration::from_secs(60)).await?;
    assert_eq!(board.state(&src_cfg.name), Some(ConnectorState::Running));

    stop_tx.send(true)?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), run).await???;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let _ = std::fs::remove_dir_all(data_dir);
    Ok(())
}
