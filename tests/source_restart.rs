//! End to end: the source PostgreSQL server is restarted (fast shutdown)
//! while a writer commits; the pipeline reconnects and after catch-up the
//! target equals the source. This test binary holds a single test: cargo
//! runs test binaries one at a time, so no other test sees the restart.

mod common;

use std::time::Duration;

use cdc_testkit::Services;
use common::{wait_equal, Setup, TestResult, EMPLOYEES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_restart_mid_stream_loses_nothing() -> TestResult {
    let services = Services::get()?;
    let source_db = services.source().fresh_database("sr_src").await?;
    let target_db = services.target().fresh_database("sr_tgt").await?;
    let source = source_db.connect().await?;
    let target = target_db.connect().await?;
    source.batch_execute(EMPLOYEES).await?;
    source
        .batch_execute("INSERT INTO employees (name) VALUES ('first')")
        .await?;
    let setup = Setup::new(&source_db, &target_db)?;
    let running = setup.start(services);
    let rows = "SELECT concat_ws('|', emp_id, name, coalesce(department, '-')) FROM employees ORDER BY emp_id";
    wait_equal(&source, &target, rows, Duration::from_secs(60)).await?;

    // The writer reconnects when the restart cuts its connection; whatever
    // committed on the source must reach the target.
    let url_config = source_db.config();
    let writer = tokio::spawn(async move {
        let mut committed = 0u32;
        let mut attempts = 0u32;
        while committed < 40 && attempts < 400 {
            attempts += 1;
            let Ok((client, conn)) = url_config.connect(tokio_postgres::NoTls).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            tokio::spawn(conn);
            while committed < 40 {
                let name = format!("row {committed}");
                if client
                    .execute(
                        "INSERT INTO employees (name, department) VALUES ($1, 'w')",
                        &[&name],
                    )
                    .await
                    .is_err()
                {
                    break;
                }
                committed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        committed
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    tokio::task::spawn_blocking(|| Services::get().and_then(|s| s.restart_source())).await??;
    let committed = writer.await?;
    assert_eq!(committed, 40, "the writer finished after the restart");

    // Our own client was cut by the restart too.
    let source = source_db.connect().await?;
    wait_equal(&source, &target, rows, Duration::from_secs(180)).await?;
    running.stop().await?;
    Ok(())
}
