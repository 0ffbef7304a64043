//! Where things live: repository root, service directories, ports.

use std::path::{Path, PathBuf};

/// Default ports, chosen above the usual system and developer ranges
/// (5432/9092 stay free for a user's own servers).
pub const DEFAULT_PG_SOURCE_PORT: u16 = 55432;
pub const DEFAULT_PG_TARGET_PORT: u16 = 55433;
pub const DEFAULT_KAFKA_PORT: u16 = 59092;
pub const DEFAULT_KAFKA_CONTROLLER_PORT: u16 = 59093;

/// User, password and databases of the PostgreSQL instances, as in the seed's
/// docker-compose (`postgres-source` / `postgres-target`).
pub const PG_USER: &str = "cdc";
pub const PG_PASSWORD: &str = "cdc";
pub const PG_SOURCE_DB: &str = "bf_source";
pub const PG_TARGET_DB: &str = "bf_target";

/// Paths and ports of one checkout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Repository root (holds the workspace Cargo.toml).
    pub root: PathBuf,
    /// `target/services`.
    pub services_dir: PathBuf,
    pub pg_source_port: u16,
    pub pg_target_port: u16,
    pub kafka_port: u16,
    pub kafka_controller_port: u16,
}

impl Layout {
    /// The layout of the checkout xtask runs for: `cargo run` names the
    /// package's directory in `CARGO_MANIFEST_DIR` at run time; the
    /// directory it was built in is the fallback. (A target directory moved
    /// between clones keeps a binary cargo sees no reason to rebuild: the
    /// build-time path would then point at the other clone.)
    pub fn discover() -> Self {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .filter(|d| d.join("Cargo.toml").is_file())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| if p.is_absolute() { p } else { root.join(p) })
            .unwrap_or_else(|| root.join("target"));
        Self {
            services_dir: target.join("services"),
            root,
            pg_source_port: port_from_env("CDC_PG_SOURCE_PORT", DEFAULT_PG_SOURCE_PORT),
            pg_target_port: port_from_env("CDC_PG_TARGET_PORT", DEFAULT_PG_TARGET_PORT),
            kafka_port: port_from_env("CDC_KAFKA_PORT", DEFAULT_KAFKA_PORT),
            kafka_controller_port: port_from_env(
                "CDC_KAFKA_CONTROLLER_PORT",
                DEFAULT_KAFKA_CONTROLLER_PORT,
            ),
        }
    }

    pub fn pg_source_url(&self) -> String {
        pg_url(self.pg_source_port, PG_SOURCE_DB)
    }

    pub fn pg_target_url(&self) -> String {
        pg_url(self.pg_target_port, PG_TARGET_DB)
    }

    pub fn kafka_brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }
}

fn pg_url(port: u16, db: &str) -> String {
    format!("postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{db}")
}

pub(crate) fn port_from_env(var: &str, default: u16) -> u16 {
    match std::env::var(var) {
        Ok(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                eprintln!("warning: {var}={v:?} is not a port number (1-65535); using {default}");
                default
            }
        },
        Err(_) => default,
    }
}
