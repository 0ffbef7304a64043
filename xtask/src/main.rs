//! `cargo xtask …`: project automation for pg-cdc.
//!
//! ```text
//! cargo xtask services up|down|status|env   real PostgreSQL source + target and Kafka (KRaft) on loopback
//! cargo xtask test                          services up → fmt → clippy → cargo test → services down
//! cargo xtask demo [--once]                 the seed's Quick Start through the pipeline, automated
//! cargo xtask bench [--quick]               end-to-end throughput, latency, RSS vs pg_recvlogical and Debezium
//! ```
//!
//! Everything it starts lives under `target/services/` (data, logs, pid files)
//! and is stopped by pid.

mod bench;
mod certs;
mod debezium;
mod demo;
mod kafka;
mod layout;
mod postgres;
mod process;
mod registry;
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
    /// (wal_level=logical), a single-node Apache Kafka in KRaft mode and a
    /// Confluent-API schema registry (Apicurio Registry, in-memory).
    ///
    /// Ports (override with the env var in brackets): PostgreSQL source 55432
    /// [CDC_PG_SOURCE_PORT], PostgreSQL target 55433 [CDC_PG_TARGET_PORT],
    /// Kafka 59092 [CDC_KAFKA_PORT], Kafka controller 59093
    /// [CDC_KAFKA_CONTROLLER_PORT], schema registry 58081
    /// [CDC_SCHEMA_REGISTRY_PORT]. PostgreSQL binaries come from PG_BIN, else
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
    /// Measure the pipeline end to end, side by side in one run, and print
    /// a table of results, ratios and goals (also written to
    /// target/bench/report.md). Builds `--release --example pipeline`,
    /// starts the services, loads N rows into the seed's `employees` table
    /// in a fresh database (slots created before the load, so every run
    /// drains the same WAL), then measures: PostgreSQL → Kafka against the
    /// `pg_recvlogical` ceiling; the real Debezium connector on the same
    /// changes, twice (its engine alone, writing nowhere, and as the seed
    /// deploys it: in a Kafka Connect worker, writing to the same broker);
    /// PostgreSQL → Kafka → PostgreSQL; and
    /// latency at 1k and 10k rows/s. Never asserts timings. Slots,
    /// databases, topics and processes it creates are removed at the end.
    Bench {
        /// Rows loaded and streamed by each throughput run [default: 500000,
        /// or 50000 with --quick].
        #[arg(long)]
        rows: Option<u64>,
        /// Skip both Debezium runs (no Java engine or Connect worker, no comparison).
        #[arg(long)]
        skip_debezium: bool,
        /// Skip the fixed-rate latency runs.
        #[arg(long)]
        skip_latency: bool,
        /// Smoke test: 50000 rows (unless --rows is given) and 5 s instead
        /// of 15 s per latency rate.
        #[arg(long)]
        quick: bool,
        /// Extra source connector override for every pipeline run, applied
        /// after the bench's own, e.g. `exactly.once.source.support=disabled`
        /// or `max.batch.size=8192` (repeatable; recorded in the report).
        #[arg(long = "source-set", value_name = "KEY=VALUE")]
        source_set: Vec<String>,
        /// Extra sink connector override for the end-to-end run, e.g.
        /// `batch.size=2000` (repeatable; recorded in the report).
        #[arg(long = "sink-set", value_name = "KEY=VALUE")]
        sink_set: Vec<String>,
        /// Do not run `cargo build --release --example pipeline`; measure the
        /// binary already in target/release/examples (e.g. while the tree
        /// does not compile).
        #[arg(long)]
        no_build: bool,
        /// Warm-up passes at most before measuring: pg-cdc streams the same
        /// changes into Kafka (own slot, own topics; not measured) until a
        /// pass leaves the broker's JIT compiler nearly idle. A freshly
        /// started broker otherwise spends seconds compiling its produce and
        /// transaction paths during the measured run (0: no warm-up). A
        /// broker started three minutes before still compiled 4.5 s of an
        /// 11 s third pass.
        #[arg(long, value_name = "PASSES", default_value_t = 5)]
        warm_up: u32,
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
    /// (CDC_TEST_PG_SOURCE_URL, CDC_TEST_PG_TARGET_URL, CDC_TEST_KAFKA_BROKERS,
    /// CDC_TEST_SCHEMA_REGISTRY_URL).
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
        Command::Bench {
            rows,
            skip_debezium,
            skip_latency,
            quick,
            source_set,
            sink_set,
            no_build,
            warm_up,
        } => {
            let command = std::iter::once("cargo xtask".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            bench::run(
                &layout::Layout::discover(),
                bench::Options {
                    rows: rows.unwrap_or(if quick { 50_000 } else { 500_000 }),
                    skip_debezium,
                    skip_latency,
                    latency_secs: if quick { 5 } else { 15 },
                    command,
                    source_set,
                    sink_set,
                    no_build,
                    warm_up,
                },
            )
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
