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

/// Reads records of `topic` until `done` says enough or 60 s pass.
async fn read_until(
    brokers: &str,
    topic: &str,
    mut done: impl FnMut(&[kafka_io::ConsumedRecord]) -> bool,
) -> Result<Vec<kafka_io::ConsumedRecord>, common::BoxError> {
    let consumer = common::reader(brokers, "qs_reader", &[topic], 100)?;
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done(&got) {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{topic}: condition not met within 60 s; got {} records",
                got.len()
            )
            .into());
        }
        got.extend(consumer.next_batch().await?.records);
    }
    Ok(got)
}

/// At-least-once on both sides (`exactly.once.source.support=disabled`,
/// `pgcdc.exactly.once=false`), with heartbeats and transaction metadata:
/// the target converges, `__debezium-heartbeat.<prefix>` receives Debezium's
/// heartbeat records and `<prefix>.transaction` BEGIN / END records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_with_heartbeats_and_transaction_metadata() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("qs_alo_src").await?;
    let target_db = services.target().fresh_database("qs_alo_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    // Three rows for the snapshot (its progress metrics are checked below).
    source
        .batch_execute(
            "INSERT INTO employees (name, salary) VALUES ('Pre1', 1.00), ('Pre2', 2.00), ('Pre3', 3.00)",
        )
        .await?;
    let mut setup = Setup::new(&source_db, &target_db)?;
    for (k, v) in [
        ("exactly.once.source.support", "disabled"),
        ("heartbeat.interval.ms", "300"),
        ("provide.transaction.metadata", "true"),
    ] {
        setup.source.props.insert(k.into(), v.into());
    }
    setup
        .sink
        .props
        .insert("pgcdc.exactly.once".into(), "false".into());
    let running = setup.start(services);
    tokio::time::sleep(Duration::from_secs(1)).await;
    source
        .batch_execute(
            "BEGIN;
             INSERT INTO employees (name, salary) VALUES ('One', 1.00), ('Two', 2.00);
             COMMIT;",
        )
        .await?;
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;

    let brokers = services.kafka_brokers();
    let heartbeats = read_until(
        brokers,
        &format!("__debezium-heartbeat.{}", setup.prefix),
        |got| !got.is_empty(),
    )
    .await?;
    let key: serde_json::Value =
        serde_json::from_slice(heartbeats[0].key.as_deref().unwrap_or_default())?;
    assert_eq!(key["payload"]["serverName"], setup.prefix.as_str(), "{key}");
    assert_eq!(
        key["schema"]["name"],
        "io.debezium.connector.common.ServerNameKey"
    );
    let value: serde_json::Value =
        serde_json::from_slice(heartbeats[0].value.as_deref().unwrap_or_default())?;
    assert!(
        value["payload"]["ts_ms"].as_i64().unwrap_or(0) > 1_600_000_000_000,
        "{value}"
    );

    let status = |r: &kafka_io::ConsumedRecord| -> Option<(String, serde_json::Value)> {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref()?).ok()?;
        Some((
            v["payload"]["status"].as_str()?.to_string(),
            v["payload"].clone(),
        ))
    };
    let txns = read_until(brokers, &format!("{}.transaction", setup.prefix), |got| {
        got.iter().filter_map(status).any(|(s, _)| s == "END")
    })
    .await?;
    let marks: Vec<(String, serde_json::Value)> = txns.iter().filter_map(status).collect();
    let (_, begin) = marks
        .iter()
        .find(|(s, _)| s == "BEGIN")
        .ok_or("no BEGIN record")?;
    let (_, end) = marks
        .iter()
        .find(|(s, _)| s == "END")
        .ok_or("no END record")?;
    assert_eq!(begin["id"], end["id"], "BEGIN and END of one transaction");
    assert!(begin["event_count"].is_null(), "{begin}");
    assert_eq!(end["event_count"], 2, "{end}");
    assert_eq!(
        end["data_collections"][0]["data_collection"], "public.employees",
        "{end}"
    );
    // The Prometheus metrics of both connectors are populated.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = running.metrics.render();
        let has = |name: &str| {
            text.lines().any(|l| {
                l.starts_with(name) && l.contains(&setup.source.name)
                    || l.starts_with(name) && l.contains(&setup.sink.name)
            })
        };
        let missing: Vec<&str> = [
            "pgcdc_events_total",
            "pgcdc_replication_lag_milliseconds",
            "pgcdc_kafka_produce_latency_seconds_count",
            "pgcdc_sink_batch_records_count",
            "pgcdc_sink_batch_seconds_count",
            "pgcdc_consumer_lag_records",
            "pgcdc_replication_lag_bytes",
        ]
        .into_iter()
        .filter(|m| !has(m))
        .collect();
        // Snapshot progress: rows to read (counted by the chunk planner)
        // and rows read, per table.
        let snapshot = |name: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("{name}{{"))
                        && l.contains(&setup.source.name)
                        && l.contains("table=\"public.employees\"")
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        let progress = (
            snapshot("pgcdc_snapshot_rows_estimated"),
            snapshot("pgcdc_snapshot_rows"),
        );
        let three = Some("3".to_string());
        if missing.is_empty() && progress == (three.clone(), three.clone()) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "metrics never populated: {missing:?}, snapshot progress {progress:?}\n{text}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A primary-key change: delete of the old key with `__debezium.newkey`,
    // create of the new key with `__debezium.oldkey` (Debezium's headers).
    source
        .batch_execute("UPDATE employees SET emp_id = 100 WHERE name = 'One'")
        .await?;
    let header = |r: &kafka_io::ConsumedRecord, name: &str| {
        r.headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    // The two records have different keys, so usually different
    // partitions: wait for both (either may be fetched first).
    let records = read_until(
        brokers,
        &format!("{}.public.employees", setup.prefix),
        |got| {
            ["__debezium.oldkey", "__debezium.newkey"]
                .iter()
                .all(|name| got.iter().any(|r| header(r, name).is_some()))
        },
    )
    .await?;
    let op = |r: &kafka_io::ConsumedRecord| -> String {
        r.value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| v["payload"]["op"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let delete = records
        .iter()
        .find(|r| header(r, "__debezium.newkey").is_some())
        .ok_or("no record with __debezium.newkey")?;
    assert_eq!(op(delete), "d");
    assert_eq!(
        header(delete, "__debezium.newkey").as_deref(),
        Some(r#"{"emp_id":100}"#)
    );
    let create = records
        .iter()
        .find(|r| header(r, "__debezium.oldkey").is_some())
        .ok_or("no record with __debezium.oldkey")?;
    assert_eq!(op(create), "c");
    // 'One' came after the three snapshot rows: SERIAL gave it emp_id 4.
    assert_eq!(
        header(create, "__debezium.oldkey").as_deref(),
        Some(r#"{"emp_id":4}"#)
    );
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&setup.data_dir);
    Ok(())
}

/// The Quick Start with Confluent's Avro converter on both connectors and
/// schemas in the real schema registry (`cargo xtask services up` runs
/// Apicurio Registry's Confluent-compatible API): the target converges,
/// and the topic's records are Confluent-framed Avro whose schema ids the
/// registry knows under `<topic>-key` / `<topic>-value`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_with_schema_registry_converges() -> TestResult {
    let services = Services::get()?;
    let registry = cdc_testkit::schema_registry_url()?;
    let source_db = services.source().fresh_database("qs_avro_src").await?;
    let target_db = services.target().fresh_database("qs_avro_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute(
            "INSERT INTO employees (name, email, department, salary, hire_date)
             VALUES ('John Doe', 'john@example.com', 'Engineering', 75000.00, '2024-01-15')",
        )
        .await?;
    let mut setup = Setup::new(&source_db, &target_db)?;
    for props in [&mut setup.source.props, &mut setup.sink.props] {
        for side in ["key", "value"] {
            props.insert(
                format!("{side}.converter"),
                "io.confluent.connect.avro.AvroConverter".into(),
            );
            props.insert(
                format!("{side}.converter.schema.registry.url"),
                registry.clone(),
            );
        }
    }
    let running = setup.start(services);
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;
    source
        .batch_execute(
            "INSERT INTO employees (name, email, department, salary, hire_date)
                 VALUES ('Jane Roe', 'jane@example.com', 'Sales', 65000.50, '2023-03-01');
             UPDATE employees SET salary = 80000, department = 'Platform' WHERE name = 'John Doe';
             DELETE FROM employees WHERE name = 'Jane Roe';",
        )
        .await?;
    wait_equal(&source, &target, ROWS, Duration::from_secs(60)).await?;

    let topic = format!("{}.public.employees", setup.prefix);
    let records = read_until(services.kafka_brokers(), &topic, |got| !got.is_empty()).await?;
    let value = records[0].value.as_deref().ok_or("a value")?;
    assert_eq!(value[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    let client = cdc_envelope::registry::SchemaRegistryClient::new(
        &cdc_envelope::registry::RegistryConfig::new(registry.clone()),
    )?;
    let (latest, schema) = client.latest_schema(&format!("{topic}-value")).await?;
    assert_eq!(latest, id, "the record's schema id is the subject's latest");
    assert!(schema.contains("\"connect.name\":\"pgsource"), "{schema}");
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&setup.data_dir);
    Ok(())
}
