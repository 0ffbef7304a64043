//! Locating (or starting) the services and naming things uniquely.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::config::Host;

use crate::database::TestDatabase;
use crate::error::Error;

/// Env var with the source PostgreSQL URL.
pub const ENV_PG_SOURCE: &str = "CDC_TEST_PG_SOURCE_URL";
/// Env var with the target PostgreSQL URL.
pub const ENV_PG_TARGET: &str = "CDC_TEST_PG_TARGET_URL";
/// Env var with a shell command that restarts the source server (set by
/// `cargo xtask`), for tests that restart it mid-stream.
pub const ENV_PG_SOURCE_RESTART: &str = "CDC_TEST_PG_SOURCE_RESTART";
/// Env var with the Kafka bootstrap servers.
pub const ENV_KAFKA: &str = "CDC_TEST_KAFKA_BROKERS";
/// Env var with the path of the CA certificate that signed the source
/// server's TLS certificate (set by `cargo xtask services up`; the
/// certificate is valid for `localhost` and `127.0.0.1`).
pub const ENV_PG_SOURCE_SSLROOTCERT: &str = "CDC_TEST_PG_SOURCE_SSLROOTCERT";
/// Env var with the base URL of a Confluent-API schema registry (what
/// Debezium users set as `value.converter.schema.registry.url`).
pub const ENV_SCHEMA_REGISTRY: &str = "CDC_TEST_SCHEMA_REGISTRY_URL";

/// The base URL of the schema registry tests use: `CDC_TEST_SCHEMA_REGISTRY_URL`,
/// else the one `cargo xtask services up` wrote to `target/services/env`
/// (Apicurio Registry's Confluent-compatible API,
/// `http://127.0.0.1:58081/apis/ccompat/v7`). Fails with a message saying how
/// to start one; tests never skip silently.
pub fn schema_registry_url() -> Result<String, Error> {
    setting(ENV_SCHEMA_REGISTRY)
        .map(|url| url.trim().to_string())
        .filter(|url| !url.is_empty())
        .ok_or_else(|| Error::NotConfigured {
            reason: format!(
                "no schema registry: {ENV_SCHEMA_REGISTRY} is unset and target/services/env names \
                 none (`cargo xtask services up` starts Apicurio Registry and writes its URL there; \
                 or set {ENV_SCHEMA_REGISTRY} to a Confluent-API registry you run)"
            ),
        })
}

/// A PostgreSQL server reachable by tests, identified by a URL to an
/// existing database on it (the admin connection).
#[derive(Debug, Clone)]
pub struct PgServer {
    config: tokio_postgres::Config,
}

impl PgServer {
    /// Parses a `postgres://user:password@host:port/db` URL.
    pub fn from_url(var: &str, url: &str) -> Result<Self, Error> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| Error::BadUrl {
            var: var.into(),
            reason: e.to_string(),
        })?;
        if config.get_hosts().is_empty() || config.get_user().is_none() {
            return Err(Error::BadUrl {
                var: var.into(),
                reason: "host and user are required".into(),
            });
        }
        Ok(Self { config })
    }

    /// Host name (first host of the URL).
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "127.0.0.1".into(),
        }
    }

    /// Port (first port of the URL, default 5432).
    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// User name.
    pub fn user(&self) -> String {
        self.config.get_user().unwrap_or("postgres").to_string()
    }

    /// Password (empty when none).
    pub fn password(&self) -> String {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    }

    /// The database the URL names (used as the admin database).
    pub fn admin_database(&self) -> String {
        self.config.get_dbname().unwrap_or("postgres").to_string()
    }

    /// A driver config for `database` on this server.
    pub fn config_for(&self, database: &str) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        c.dbname(database);
        c
    }

    /// A `postgres://` URL for `database` on this server.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user(),
            self.password(),
            self.host(),
            self.port(),
            database
        )
    }

    /// Connects to the admin database.
    pub async fn connect_admin(&self) -> Result<tokio_postgres::Client, Error> {
        connect(&self.config_for(&self.admin_database())).await
    }

    /// Creates a new, empty database with a unique name derived from
    /// `prefix`. It is dropped — together with any replication slots in it —
    /// when the returned value is dropped (set `CDC_TEST_KEEP_DB=1` to keep it).
    pub async fn fresh_database(&self, prefix: &str) -> Result<TestDatabase, Error> {
        let name = unique_name(prefix);
        let admin = self.connect_admin().await?;
        // `name` is generated from [a-z0-9_] only; quote it anyway.
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(Error::pg(format!("creating database {name}")))?;
        Ok(TestDatabase::new(self.clone(), name))
    }
}

/// Connects and drives the connection on the current runtime.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, Error> {
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(Error::pg(format!(
            "connecting to {:?}",
            config.get_dbname()
        )))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The services a test run uses.
#[derive(Debug)]
pub struct Services {
    source: PgServer,
    target: PgServer,
    kafka_brokers: String,
    /// Where they came from, for messages.
    origin: String,
    /// Shell command that restarts the source server (`CDC_TEST_PG_SOURCE_RESTART`).
    source_restart: Option<String>,
}

static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();

impl Services {
    /// The services for this test process (resolved once).
    pub fn get() -> Result<&'static Services, Error> {
        SERVICES
            .get_or_init(|| Self::resolve().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| Error::NotConfigured {
                reason: reason.clone(),
            })
    }

    fn resolve() -> Result<Services, Error> {
        if let Some(s) = Self::from_env()? {
            return Ok(s);
        }
        if let Some(s) = Self::from_state_file()? {
            return Ok(s);
        }
        Self::from_docker()
    }

    fn from_env() -> Result<Option<Services>, Error> {
        let vars = [ENV_PG_SOURCE, ENV_PG_TARGET, ENV_KAFKA].map(|v| std::env::var(v).ok());
        match vars {
            [Some(src), Some(tgt), Some(kafka)] => Ok(Some(Services {
                source: PgServer::from_url(ENV_PG_SOURCE, &src)?,
                target: PgServer::from_url(ENV_PG_TARGET, &tgt)?,
                kafka_brokers: kafka,
                origin: "environment".into(),
                source_restart: std::env::var(ENV_PG_SOURCE_RESTART).ok(),
            })),
            [None, None, None] => Ok(None),
            _ => Err(Error::NotConfigured {
                reason: format!(
                    "only some of {ENV_PG_SOURCE}, {ENV_PG_TARGET}, {ENV_KAFKA} are set; set all three"
                ),
            }),
        }
    }

    fn from_state_file() -> Result<Option<Services>, Error> {
        let Some(path) = state_file() else {
            return Ok(None);
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
        };
        match (get(ENV_PG_SOURCE), get(ENV_PG_TARGET), get(ENV_KAFKA)) {
            (Some(src), Some(tgt), Some(kafka)) => Ok(Some(Services {
                source: PgServer::from_url(ENV_PG_SOURCE, &src)?,
                target: PgServer::from_url(ENV_PG_TARGET, &tgt)?,
                kafka_brokers: kafka,
                origin: path.display().to_string(),
                source_restart: get(ENV_PG_SOURCE_RESTART),
            })),
            _ => Ok(None),
        }
    }

    #[cfg(feature = "docker")]
    fn from_docker() -> Result<Services, Error> {
        let started = crate::docker::start()?;
        Ok(Services {
            source: PgServer::from_url("docker source", &started.source_url)?,
            target: PgServer::from_url("docker target", &started.target_url)?,
            kafka_brokers: started.kafka_brokers,
            origin: "testcontainers".into(),
            source_restart: None,
        })
    }

    #[cfg(not(feature = "docker"))]
    fn from_docker() -> Result<Services, Error> {
        let docker_hint = if docker_reachable() {
            "; a Docker engine is reachable: enable the `docker` feature of cdc-testkit \
             (`cargo test --features cdc-testkit/docker`) to start containers instead"
        } else {
            ""
        };
        Err(Error::NotConfigured {
            reason: format!(
                "{ENV_PG_SOURCE}/{ENV_PG_TARGET}/{ENV_KAFKA} are unset and target/services/env \
                 does not exist{docker_hint}"
            ),
        })
    }

    /// The source PostgreSQL server (`wal_level=logical`).
    pub fn source(&self) -> &PgServer {
        &self.source
    }

    /// The target PostgreSQL server.
    pub fn target(&self) -> &PgServer {
        &self.target
    }

    /// Kafka bootstrap servers (`host:port[,host:port]`).
    pub fn kafka_brokers(&self) -> &str {
        &self.kafka_brokers
    }

    /// Restarts the source PostgreSQL server (fast shutdown, then start;
    /// returns when it accepts connections again). Only possible for servers
    /// this project started: the command comes from `CDC_TEST_PG_SOURCE_RESTART`.
    pub fn restart_source(&self) -> Result<(), Error> {
        let cmd = self
            .source_restart
            .as_deref()
            .ok_or_else(|| Error::NotConfigured {
                reason: format!(
                    "this test restarts the source server and {ENV_PG_SOURCE_RESTART} is not set \
                 (it is set for the servers `cargo xtask services up` starts)"
                ),
            })?;
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map_err(|e| Error::Restart(format!("running the restart command: {e}")))?;
        if !out.status.success() {
            return Err(Error::Restart(format!(
                "restarting the source failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Where the services were found (environment, state file, docker).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl Services {
    /// The CA certificate of the source server's TLS certificate, for
    /// `sslmode=verify-ca` / `verify-full` tests: `CDC_TEST_PG_SOURCE_SSLROOTCERT`
    /// (environment or `target/services/env`), else the file
    /// `cargo xtask services up` makes (`target/services/pg-source/tls/ca.crt`).
    /// Fails with what to do when the source serves no TLS this project knows of.
    pub fn source_ssl_root_cert(&self) -> Result<PathBuf, Error> {
        let path = setting(ENV_PG_SOURCE_SSLROOTCERT)
            .map(PathBuf::from)
            .or_else(|| {
                target_dir()
                    .map(|t| t.join("services/pg-source/tls/ca.crt"))
                    .filter(|p| p.is_file())
            });
        match path {
            Some(p) if p.is_file() => Ok(p),
            other => Err(Error::NotConfigured {
                reason: format!(
                    "this test needs the source server to serve TLS and {ENV_PG_SOURCE_SSLROOTCERT} \
                     names no CA certificate{}: run `cargo xtask services down && cargo xtask \
                     services up` (it makes a test CA and turns ssl on), or set \
                     {ENV_PG_SOURCE_SSLROOTCERT} to the CA of the server you run",
                    other
                        .map(|p| format!(" (not a file: {})", p.display()))
                        .unwrap_or_default()
                ),
            }),
        }
    }
}

/// `target/services/env` of this workspace (found from the test binary's
/// location or `CARGO_TARGET_DIR`).
fn state_file() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(dir).join("services/env"));
    }
    // Test binaries live in <target>/<profile>/deps/.
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|p| p.join("services").is_dir())
        .map(|p| p.join("services/env"))
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, or the ancestor of
/// the running test binary that holds `services/`).
pub(crate) fn target_dir() -> Option<PathBuf> {
    state_file().and_then(|f| f.parent()?.parent().map(PathBuf::from))
}

#[cfg(not(feature = "docker"))]
fn docker_reachable() -> bool {
    std::path::Path::new("/var/run/docker.sock").exists()
        || std::env::var_os("DOCKER_HOST").is_some()
}

/// A name unique across tests and test processes: `<prefix>_<pid>_<n>_<nanos>`,
/// lowercase `[a-z0-9_]`, at most 63 bytes (valid as a database, slot,
/// publication or topic name).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    format!("{clean}_{}_{n}_{nanos:x}", std::process::id())
}

/// A test setting by name: the environment variable `key`, else the line
/// `key=value` of `target/services/env` (written by `cargo xtask services
/// up`), e.g. `CDC_TEST_DEBEZIUM_LIBS`.
pub fn setting(key: &str) -> Option<String> {
    if let Ok(v) = std::env::var(key) {
        return Some(v);
    }
    let text = std::fs::read_to_string(state_file()?).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_unique_and_valid() {
        let a = unique_name("My Test-Slot");
        let b = unique_name("My Test-Slot");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
            assert!(n.starts_with("my_test_slot_"), "{n}");
        }
    }

    #[test]
    fn server_url_parses() {
        let s = PgServer::from_url("X", "postgres://cdc:secret@127.0.0.1:55432/bf_source")
            .expect("valid");
        assert_eq!(
            (s.host().as_str(), s.port(), s.user().as_str()),
            ("127.0.0.1", 55432, "cdc")
        );
        assert_eq!(s.admin_database(), "bf_source");
        assert_eq!(s.url_for("x"), "postgres://cdc:secret@127.0.0.1:55432/x");
        assert!(PgServer::from_url("X", "not a url").is_err());
    }
}
