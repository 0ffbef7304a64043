//! `cargo xtask services up|down|status|env`.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::kafka::Kafka;
use crate::layout::{Layout, PG_SOURCE_DB, PG_TARGET_DB};
use crate::postgres::{self, Postgres};
use crate::registry::SchemaRegistry;

/// The three services of one checkout.
pub struct Services {
    pub pg_bin: PathBuf,
    pub source: Postgres,
    pub target: Postgres,
    pub kafka: Kafka,
    pub registry: SchemaRegistry,
}

impl Services {
    pub fn new(layout: &Layout) -> Result<Self> {
        Ok(Self {
            pg_bin: postgres::find_bin()?,
            source: Postgres::new(
                &layout.services_dir,
                "pg-source",
                layout.pg_source_port,
                PG_SOURCE_DB,
                "CDC_PG_SOURCE_PORT",
            ),
            target: Postgres::new(
                &layout.services_dir,
                "pg-target",
                layout.pg_target_port,
                PG_TARGET_DB,
                "CDC_PG_TARGET_PORT",
            ),
            kafka: Kafka::new(layout),
            registry: SchemaRegistry::new(layout),
        })
    }
}

/// The environment tests read to find the services.
pub fn test_env(layout: &Layout) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CDC_TEST_PG_SOURCE_URL", layout.pg_source_url()),
        ("CDC_TEST_PG_TARGET_URL", layout.pg_target_url()),
        ("CDC_TEST_KAFKA_BROKERS", layout.kafka_brokers()),
    ];
    let registry = SchemaRegistry::new(layout);
    env.push(("CDC_TEST_SCHEMA_REGISTRY_URL", registry.url()));
    if let Some(ca) = registry.tls_ca() {
        env.push(("CDC_TEST_SCHEMA_REGISTRY_TLS_URL", registry.tls_url()));
        env.push(("CDC_TEST_SCHEMA_REGISTRY_CA", ca.display().to_string()));
    }
    // Lets end-to-end tests restart the source server mid-stream.
    if let Ok(s) = Services::new(layout) {
        env.push((
            "CDC_TEST_PG_SOURCE_RESTART",
            s.source.restart_command(&s.pg_bin),
        ));
        // The CA of the source's TLS certificate (`database.sslrootcert`).
        if let Some(ca) = s.source.tls_root_cert() {
            env.push(("CDC_TEST_PG_SOURCE_SSLROOTCERT", ca.display().to_string()));
        }
    }
    env.extend(crate::debezium::test_env(layout));
    env
}

/// Starts what is not running and waits until healthy. Writes
/// `target/services/env` so `cargo test` run by hand finds the services.
pub fn up(layout: &Layout) -> Result<Services> {
    println!("services up ({}):", layout.services_dir.display());
    fs::create_dir_all(&layout.services_dir)
        .with_context(|| format!("creating {}", layout.services_dir.display()))?;
    let s = Services::new(layout)?;
    s.source.up(&s.pg_bin)?;
    s.target.up(&s.pg_bin)?;
    s.kafka.up()?;
    s.registry.up()?;
    // The real Debezium connector, for the interop test (cached after the first run).
    crate::debezium::ensure(layout)?;
    let env: String = test_env(layout)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    fs::write(layout.services_dir.join("env"), env)?;
    print_status(layout, &s);
    Ok(s)
}

/// Stops everything this tool started.
pub fn down(layout: &Layout) -> Result<()> {
    println!("services down:");
    let s = Services::new(layout)?;
    // Stop all three even if one fails; report the first error.
    let results = [
        s.registry.down(),
        s.kafka.down(),
        s.source.down(&s.pg_bin),
        s.target.down(&s.pg_bin),
    ];
    let _ = fs::remove_file(layout.services_dir.join("env"));
    results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
}

pub fn status(layout: &Layout) -> Result<()> {
    let s = Services::new(layout)?;
    print_status(layout, &s);
    Ok(())
}

fn print_status(layout: &Layout, s: &Services) {
    let health = |running: bool, healthy: bool| match (running, healthy) {
        (true, true) => "healthy",
        (true, false) => "running, NOT answering",
        (false, true) => "answering, but not started by xtask",
        (false, false) => "stopped",
    };
    println!(
        "  {:<10} {:<45} {}",
        "pg-source",
        layout.pg_source_url().replace(":cdc@", ":***@"),
        health(s.source.running(), s.source.healthy(&s.pg_bin))
    );
    println!(
        "  {:<10} {:<45} {}",
        "pg-target",
        layout.pg_target_url().replace(":cdc@", ":***@"),
        health(s.target.running(), s.target.healthy(&s.pg_bin))
    );
    println!(
        "  {:<10} {:<45} {}",
        "kafka",
        layout.kafka_brokers(),
        health(s.kafka.pid().is_some(), s.kafka.healthy())
    );
    println!(
        "  {:<10} {:<45} {}",
        "registry",
        s.registry.url(),
        health(s.registry.pid().is_some(), s.registry.healthy())
    );
}
