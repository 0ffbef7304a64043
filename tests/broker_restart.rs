//! End to end: the Kafka broker is restarted while changes stream; after
//! catch-up the target equals the source. The test runs its own broker (the
//! shared one serves other tests).

mod common;

use std::time::Duration;

use cdc_testkit::{KafkaBroker, Services};
use common::{wait_equal, Setup, TestResult, EMPLOYEES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_restart_mid_stream_loses_nothing() -> TestResult {
    let services = Services::get()?;
    let mut broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let source_db = services.source().fresh_database("kr_src").await?;
    let target_db = services.target().fresh_database("kr_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute("INSERT INTO employees (name) VALUES ('first')")
        .await?;
    let setup = Setup::new(&source_db, &target_db)?;
    let running = setup.start_with_brokers(&broker.bootstrap_servers());
    let rows = "SELECT concat_ws('|', emp_id, name, coalesce(department, '-')) FROM employees ORDER BY emp_id";
    wait_equal(&source, &target, rows, Duration::from_secs(60)).await?;

    // A writer keeps committing while the broker goes away and comes back.
    let writer = {
        let client = source_db.connect().await?;
        tokio::spawn(async move {
            for i in 0..60 {
                client
                    .execute(
                        "INSERT INTO employees (name, department) VALUES ($1, 'w')",
                        &[&format!("row {i}")],
                    )
                    .await?;
                if i % 3 == 0 {
                    client
                        .execute(
                            "UPDATE employees SET department = $1 WHERE emp_id = 1",
                            &[&format!("u{i}")],
                        )
                        .await?;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, tokio_postgres::Error>(())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker = tokio::task::spawn_blocking(move || broker.restart().map(|_| broker)).await??;
    writer.await??;
    wait_equal(&source, &target, rows, Duration::from_secs(180)).await?;
    running.stop().await?;
    drop(broker);
    Ok(())
}
