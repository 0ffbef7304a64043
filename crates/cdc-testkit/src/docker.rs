//! Containers for the services when no servers are configured (feature `docker`).
//!
//! The containers live as long as the test process (they are kept in a
//! static); the Ryuk reaper that testcontainers starts removes them after.

use std::sync::OnceLock;
use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::error::Error;

/// Connection settings of the started containers.
pub(crate) struct Started {
    pub source_url: String,
    pub target_url: String,
    pub kafka_brokers: String,
}

static CONTAINERS: OnceLock<Vec<Container<GenericImage>>> = OnceLock::new();

fn postgres(db: &str, logical: bool) -> Result<(Container<GenericImage>, String), Error> {
    let mut cmd = vec![
        "postgres".to_string(),
        "-c".into(),
        "max_connections=300".into(),
    ];
    if logical {
        for setting in [
            "wal_level=logical",
            "max_replication_slots=64",
            "max_wal_senders=64",
        ] {
            cmd.push("-c".into());
            cmd.push(setting.into());
        }
    }
    let container = GenericImage::new("postgres", "16")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_USER", "cdc")
        .with_env_var("POSTGRES_PASSWORD", "cdc")
        .with_env_var("POSTGRES_DB", db)
        .with_cmd(cmd)
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .map_err(|e| Error::Docker(format!("starting postgres:16: {e}")))?;
    let port = container
        .get_host_port_ipv4(5432.tcp())
        .map_err(|e| Error::Docker(format!("postgres port: {e}")))?;
    Ok((
        container,
        format!("postgres://cdc:cdc@127.0.0.1:{port}/{db}"),
    ))
}

fn kafka() -> Result<(Container<GenericImage>, String), Error> {
    // The broker must advertise the host port the client will use: pick a
    // free port first and map it 1:1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Docker(format!("finding a free port: {e}")))?;
    let container = GenericImage::new("apache/kafka", "4.1.0")
        .with_exposed_port(port.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
        .with_mapped_port(port, port.tcp())
        .with_env_var("KAFKA_NODE_ID", "1")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var(
            "KAFKA_LISTENERS",
            format!("PLAINTEXT://0.0.0.0:{port},CONTROLLER://0.0.0.0:9093"),
        )
        .with_env_var(
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        )
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env_var(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .map_err(|e| Error::Docker(format!("starting apache/kafka:4.1.0: {e}")))?;
    Ok((container, format!("127.0.0.1:{port}")))
}

/// Starts PostgreSQL source, target and Kafka containers (once per process).
pub(crate) fn start() -> Result<Started, Error> {
    if CONTAINERS.get().is_some() {
        return Err(Error::Docker("containers already started".into()));
    }
    let (src, source_url) = postgres("bf_source", true)?;
    let (tgt, target_url) = postgres("bf_target", false)?;
    let (kafka, kafka_brokers) = kafka()?;
    let _ = CONTAINERS.set(vec![src, tgt, kafka]);
    Ok(Started {
        source_url,
        target_url,
        kafka_brokers,
    })
}
