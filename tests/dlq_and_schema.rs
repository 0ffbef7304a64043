//! End to end: a row the sink cannot write goes to `dlq_sink` with Kafka
//! Connect's error headers while everything else keeps flowing; a column
//! added on the source mid-stream appears in the target with its values.

mod common;

use std::time::{Duration, Instant};

use cdc_testkit::Services;
use common::{wait_equal, Setup, TestResult, EMPLOYEES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_row_goes_to_dlq_and_the_rest_flows() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("dlq_src").await?;
    let target_db = services.target().fresh_database("dlq_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    // A constraint that exists only in the target.
    target
        .batch_execute(&EMPLOYEES.replace(
            "created_at TIMESTAMP",
            "CHECK (name <> 'Mallory'), created_at TIMESTAMP",
        ))
        .await?;
    let setup = Setup::new(&source_db, &target_db)?;
    let running = setup.start(services);

    source
        .batch_execute(
            "INSERT INTO employees (name, department) VALUES ('Alice', 'A');
             INSERT INTO employees (name, department) VALUES ('Mallory', 'M');
             INSERT INTO employees (name, department) VALUES ('Bob', 'B');",
        )
        .await?;
    let rows = "SELECT concat_ws('|', emp_id, name, department) FROM employees WHERE name <> 'Mallory' ORDER BY emp_id";
    wait_equal(&source, &target, rows, Duration::from_secs(60)).await?;
    source
        .batch_execute("UPDATE employees SET department = 'AA' WHERE name = 'Alice'")
        .await?;
    wait_equal(&source, &target, rows, Duration::from_secs(60)).await?;

    // The DLQ holds Mallory's original record with Connect's headers.
    let consumer = common::reader(
        services.kafka_brokers(),
        "dlq_reader",
        &[&setup.dlq_sink],
        10,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let batch = consumer.next_batch().await?;
        if let Some(r) = batch.records.into_iter().next() {
            break r;
        }
        if Instant::now() > deadline {
            return Err("no record in dlq_sink within 60 s".into());
        }
    };
    let value = String::from_utf8(record.value.clone().unwrap_or_default())?;
    assert!(
        value.contains("\"name\":\"Mallory\""),
        "original value kept: {value}"
    );
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let topic = format!("{}.public.employees", setup.prefix);
    assert_eq!(
        header("__connect.errors.topic").as_deref(),
        Some(topic.as_str())
    );
    assert_eq!(
        header("__connect.errors.connector.name").as_deref(),
        Some(setup.sink.name.as_str())
    );
    assert_eq!(
        header("__connect.errors.stage").as_deref(),
        Some("TASK_PUT")
    );
    for name in [
        "__connect.errors.partition",
        "__connect.errors.offset",
        "__connect.errors.task.id",
        "__connect.errors.class.name",
        "__connect.errors.exception.class.name",
        "__connect.errors.exception.message",
        "__connect.errors.exception.stacktrace",
    ] {
        assert!(
            header(name).is_some(),
            "header {name} missing: {:?}",
            record.headers
        );
    }
    let message = header("__connect.errors.exception.message").unwrap_or_default();
    assert!(
        message.contains("check") || message.contains("23514"),
        "constraint named: {message}"
    );
    consumer.close().await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_added_mid_stream_reaches_the_target() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("ddl_src").await?;
    let target_db = services.target().fresh_database("ddl_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute("INSERT INTO employees (name) VALUES ('before')")
        .await?;
    let setup = Setup::new(&source_db, &target_db)?;
    let running = setup.start(services);
    let base = "SELECT concat_ws('|', emp_id, name) FROM employees ORDER BY emp_id";
    wait_equal(&source, &target, base, Duration::from_secs(60)).await?;

    source
        .batch_execute(
            "ALTER TABLE employees ADD COLUMN title varchar(40);
             INSERT INTO employees (name, title) VALUES ('after', 'Engineer');
             UPDATE employees SET title = 'Veteran' WHERE name = 'before';",
        )
        .await?;
    let with_title = "SELECT concat_ws('|', emp_id, name, coalesce(title, '<null>')) FROM employees ORDER BY emp_id";
    wait_equal(&source, &target, with_title, Duration::from_secs(60)).await?;
    running.stop().await?;
    Ok(())
}

/// A table without primary key (REPLICA IDENTITY FULL) under the seed's
/// `cleanup.policy=compact,delete`: Kafka refuses keyless records on
/// compacted topics, and one such record would fail its whole transaction.
/// The source dead-letters it alone, with Connect's headers, and the other
/// table keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_record_for_a_compacted_topic_goes_to_dlq_source() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("keyless_src").await?;
    let target_db = services.target().fresh_database("keyless_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute("CREATE TABLE audit (note text); ALTER TABLE audit REPLICA IDENTITY FULL;")
        .await?;
    let mut setup = Setup::new(&source_db, &target_db)?;
    setup.source.props.insert(
        "table.include.list".into(),
        "public.employees,public.audit".into(),
    );
    let running = setup.start(services);
    tokio::time::sleep(Duration::from_secs(1)).await;
    source
        .batch_execute(
            "INSERT INTO audit VALUES ('no key here');
             INSERT INTO employees (name, department) VALUES ('Alice', 'A');",
        )
        .await?;
    let rows = "SELECT name FROM employees ORDER BY emp_id";
    wait_equal(&source, &target, rows, Duration::from_secs(60)).await?;

    let consumer = common::reader(
        services.kafka_brokers(),
        "keyless_reader",
        &[&setup.dlq_source],
        10,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        if let Some(r) = consumer.next_batch().await?.records.into_iter().next() {
            break r;
        }
        if Instant::now() > deadline {
            return Err("no record in dlq_source within 60 s".into());
        }
    };
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        header("__connect.errors.topic"),
        Some(format!("{}.public.audit", setup.prefix))
    );
    assert_eq!(
        header("__connect.errors.stage").as_deref(),
        Some("KAFKA_PRODUCE")
    );
    assert!(
        header("__connect.errors.exception.message")
            .is_some_and(|m| m.contains("compacted") && m.contains("without a key")),
        "{:?}",
        header("__connect.errors.exception.message")
    );
    let value = String::from_utf8(record.value.clone().unwrap_or_default())?;
    assert!(
        value.contains("no key here"),
        "original value kept: {value}"
    );
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&setup.data_dir);
    Ok(())
}
