//! `cargo xtask …`: project automation for pg-cdc.
//!
//! ```text
//! cargo xtask services up|down|status|env   real PostgreSQL source + target and Kafka (KRaft) on loopback
//! cargo xtask test                          services up → fmt → clippy → cargo test → services down
//! cargo xtask demo [--once]                 the seed's Quick Start through the pipeline, automated
//! ```
//!
//! Everything it starts lives under `target/services/` (data, logs, pid files)
//! and is stopped by pid.

mod demo;
mod kafka;
mod layout;
mod postgres;
mod process;
mod services;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// pg-cdc project automation.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the local test services: PostgreSQL source and target
    /// (wal_level=logical) and a single-node Apache Kafka in KRaft mode.
    ///
    /// Ports (override with the env var in brackets): PostgreSQL source 55432
    /// [CDC_PG_SOURCE_PORT], PostgreSQL target 55433 [CDC_PG_TARGET_PORT],
    /// Kafka 59092 [CDC_KAFKA_PORT], Kafka controller 59093
    /// [CDC_KAFKA_CONTROLLER_PORT]. PostgreSQL binaries come from PG_BIN, else
    /// `pg_config --bindir`.
    Services {
        #[command(subcommand)]
        action: ServicesAction,
    },
    /// The seed's Quick Start, automated: start the services, create the
    /// `employees` table in bf_source, run the pipeline example with the
    /// seed's two connector files, insert / update / delete sample rows and
    /// show the target converging. Keeps running until Ctrl-C.
    Demo {
        /// Stop (and exit) after the target has converged.
        #[arg(long)]
        once: bool,
        /// Port of the pipeline's REST/metrics endpoint (Kafka Connect paths).
        #[arg(long, env = "CDC_DEMO_REST_PORT", default_value_t = 18083)]
        rest_port: u16,
    },
    /// Run the whole test suite: services up, `cargo fmt --check`, clippy
    /// with `-D warnings`, `cargo test --workspace` against the real
    /// services, then services down (also when something failed).
    Test {
        /// Leave the services running afterwards (faster reruns).
        #[arg(long)]
        keep_services: bool,
        /// Extra arguments passed to `cargo test` after `--workspace`
        /// (e.g. `-- --nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ServicesAction {
    /// Start every service that is not already running (idempotent) and wait until healthy.
    Up,
    /// Stop the services this tool started (by pid). Data is kept under target/services.
    Down,
    /// Print each service's address and health.
    Status,
    /// Print `export` lines with the connection settings tests read
    /// (CDC_TEST_PG_SOURCE_URL, CDC_TEST_PG_TARGET_URL, CDC_TEST_KAFKA_BROKERS).
    Env,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Services { action } => {
            let layout = layout::Layout::discover();
            match action {
                ServicesAction::Up => services::up(&layout).map(|_| ()),
                ServicesAction::Down => services::down(&layout),
                ServicesAction::Status => services::status(&layout),
                ServicesAction::Env => {
                    for (k, v) in services::test_env(&layout) {
                        println!("export {k}='{}'", v.replace('\'', "'\\''"));
                    }
                    Ok(())
                }
            }
        }
        Command::Demo { once, rest_port } => {
            demo::run(&layout::Layout::discover(), once, rest_port)
        }
        Command::Test {
            keep_services,
            cargo_test_args,
        } => test::run(&layout::Layout::discover(), keep_services, &cargo_test_args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
