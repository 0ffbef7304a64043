//! # cdc-testkit
//!
//! Dev-only fixtures that give pg-cdc's tests **real** servers: a PostgreSQL
//! source (`wal_level=logical`), a PostgreSQL target and an Apache Kafka
//! broker, with unique database / slot / publication / topic names per test so
//! tests run in parallel, and cleanup of what a test created.
//!
//! Where the servers come from, in order:
//!
//! 1. `CDC_TEST_PG_SOURCE_URL`, `CDC_TEST_PG_TARGET_URL`,
//!    `CDC_TEST_KAFKA_BROKERS` (set by `cargo xtask test`, or by you);
//! 2. `target/services/env`, written by `cargo xtask services up`, so plain
//!    `cargo test` works while the services run;
//! 3. with the `docker` feature and a reachable Docker engine, containers
//!    started with testcontainers;
//! 4. otherwise the fixture fails with a message saying how to start them.
//!    Tests never skip silently.
//!
//! ```text
//!  test ──▶ Services::get() ──▶ env / target/services/env / docker
//!    │
//!    ├── source().fresh_database("t") ──▶ CREATE DATABASE t_<unique>   (dropped, with its slots, on Drop)
//!    ├── unique_name("slot")           ──▶ slot_<unique>
//!    ├── kafka_brokers()               ──▶ "127.0.0.1:59092"
//!    ├── KafkaBroker::start()          ──▶ a private broker (free ports, data in target/tmp)
//!    │                                     to stop / kill / restart in fault tests
//!    └── SchemaRegistryServer::start_with_basic_auth(user, password)
//!                                      ──▶ a private Apicurio Registry (the app xtask builds)
//!                                          that requires HTTP basic auth, killed on drop
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let services = cdc_testkit::Services::get()?;
//! let db = services.source().fresh_database("smoke").await?;
//! let client = db.connect().await?;
//! client.batch_execute("CREATE TABLE t (id int primary key)").await?;
//! let topic = cdc_testkit::unique_name("topic");
//! println!("{} {topic} {}", db.url(), services.kafka_brokers());
//! # Ok(()) }
//! ```

mod database;
#[cfg(feature = "docker")]
mod docker;
mod error;
mod kafka_broker;
mod process;
mod schema_registry;
mod services;

pub use database::TestDatabase;
pub use error::Error;
pub use kafka_broker::{api_versions_ok, kafka_classpath, KafkaBroker, ENV_KAFKA_CLASSPATH};
pub use process::java;
pub use schema_registry::{SchemaRegistryServer, ENV_SCHEMA_REGISTRY_JAR};
pub use services::{
    schema_registry_url, setting, unique_name, PgServer, Services, ENV_SCHEMA_REGISTRY,
};
