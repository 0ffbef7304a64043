//! The seed's Quick Start, end to end against real PostgreSQL source,
//! Kafka and PostgreSQL target: both connectors from the seed's files
//! (overriding only hosts, ports, database and per-test names), insert /
//! update / delete on `employees`, and the target converges to the source.

mod common;

use std::time::Duration;

use cdc_testkit::Services;
use common::{text_rows, wait_equal, Setup, TestResult, EMPLOYEES};
use pg_cdc::status::ConnectorState;

/// Rows as text, comparable across source and target (`time.precision.mode=connect`
/// carries milliseconds, so compare at that precision).
const ROWS: &str =
    "SELECT concat_ws('|', emp_id, name, coalesce(email, '<null>'), coalesce(department, '<null>'),
        coalesce(salary::text, '<null>'), coalesce(hire_date::text, '<null>'),
        coalesce(date_trunc('milliseconds', created_at)::text, '<null>'))
    FROM employees ORDER BY emp_id";

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
    let setup = Setup::new(&source_db, &target_db)?;
    let running = setup.start(services);

    // Snapshot of the first row.
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;
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
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;
    assert_eq!(
        text_rows(&target, ROWS).await?.len(),
        2,
        "John and Max remain"
    );
    let board = &running.board;
    assert_eq!(
        board.state(&setup.source.name),
        Some(ConnectorState::Running)
    );
    assert_eq!(board.state(&setup.sink.name), Some(ConnectorState::Running));

    // The topics exist with the seed's settings, and so do both DLQs.
    let admin = kafka_io::TopicAdmin::new(&kafka_io::KafkaConfig::from_properties(
        &[(
            "bootstrap.servers".to_string(),
            services.kafka_brokers().to_string(),
        )]
        .into_iter()
        .collect(),
    )?)?;
    let topic = format!("{}.public.employees", setup.prefix);
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
    for dlq in [&setup.dlq_source, &setup.dlq_sink] {
        admin
            .describe(dlq)
            .await
            .map_err(|e| format!("DLQ topic {dlq} missing: {e}"))?;
    }

    // Pausing the source (PUT /connectors/<name>/pause) holds changes back;
    // resuming delivers them.
    assert!(board.set_paused(&setup.source.name, true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    source
        .batch_execute("UPDATE employees SET department = 'Paused' WHERE name = 'John Doe'")
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        board.state(&setup.source.name),
        Some(ConnectorState::Paused)
    );
    assert!(
        !text_rows(&target, ROWS)
            .await?
            .iter()
            .any(|r| r.contains("|Paused|")),
        "a paused source must not deliver changes"
    );
    assert!(board.set_paused(&setup.source.name, false));
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;
    assert_eq!(
        board.state(&setup.source.name),
        Some(ConnectorState::Running)
    );

    running.stop().await?;
    let _ = std::fs::remove_dir_all(&setup.data_dir);
    Ok(())
}
