//! `cargo xtask bench`: the pipeline measured end to end, side by side with
//! the physical ceiling and with the real Debezium connector, in one run.
//!
//! ```text
//! fresh source db: employees + bench_latency, publication, slots warm*/recv/kafka/dbz/e2e
//!                  (all created BEFORE the load, so every run drains the same WAL)
//!   └─ load N rows into employees in 10k-row transactions, note pg_current_wal_lsn()
//!
//! [0] pipeline --source (slots warm1…, own topics), again until the  not timed: warms the broker
//!     broker's JIT compilers are nearly idle (--warm-up passes at most)
//! [1] pg_recvlogical -S recv … -E <end lsn> -f /dev/null --no-loop    the ceiling (timed)
//! [2] pipeline --source (slot kafka, snapshot.mode=no_data)           from process start until the
//!                                                                     slot's confirmed_flush_lsn ≥ end lsn
//! [3] java DbzBench (Debezium embedded engine, slot dbz)              same changes, no Kafka
//! [3b] Debezium in a Kafka Connect standalone worker (slot dbzc),     same changes into Kafka, as the
//!      the seed's source connector file                               seed deploys it; timed by TopicWatch
//! [4] pipeline --source --sink (slot e2e) into a fresh target db      from process start until the
//!                                                                     target has the N rows
//! [5] the same pipeline, caught up: rows inserted at 1k and 10k rows/s into bench_latency;
//!     latency per row = target applied_at (DEFAULT clock_timestamp()) − source created_at
//! ```
//!
//! Prints a table with ratios and goals and writes it to
//! `target/bench/report.md`. It measures; it never asserts timings. Slots,
//! databases, topics and processes it created are removed at the end, also
//! when a step fails.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::debezium::Debezium;
use crate::layout::{Layout, PG_PASSWORD, PG_USER};
use crate::process;
use crate::services;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows loaded and streamed by every throughput run.
    pub rows: u64,
    pub skip_debezium: bool,
    pub skip_latency: bool,
    /// Duration of each fixed-rate latency run.
    pub latency_secs: u64,
    /// The command line, for the report.
    pub command: String,
    /// Extra `--source-set` overrides for every pipeline run (applied last).
    pub source_set: Vec<String>,
    /// Extra `--sink-set` overrides for the end-to-end pipeline (applied last).
    pub sink_set: Vec<String>,
    /// Measure the existing release binary without building it.
    pub no_build: bool,
    /// Warm-up passes at most (pg-cdc into Kafka, unmeasured) before [1].
    pub warm_up: u32,
}

/// Fixed rates of the latency runs (rows/s).
const LATENCY_RATES: [u64; 2] = [1_000, 10_000];
/// Rows per load transaction.
const CHUNK: u64 = 10_000;
/// How often completion is polled (one long-lived psql session each).
const POLL: Duration = Duration::from_millis(100);
/// How often the source-only run polls the slot, and how often pg-cdc
/// reports its position there (`status.update.interval.ms`): `pg_recvlogical`
/// is timed to its exit, pg-cdc to when the slot is seen confirmed, so both
/// delays add to pg-cdc's time (at 100 ms each, ≈ 100 ms on average, 2 % of
/// a 500k-row run). Reading one slot row is cheap; a `count(*)` of the
/// target (end to end) is not, so that keeps [`POLL`].
const SLOT_POLL: Duration = Duration::from_millis(20);
/// Java heap of the Debezium run (as in the issue's reference numbers).
const DBZ_HEAP: &str = "-Xmx512m";

const EMPLOYEES: &str = "CREATE TABLE employees (
    emp_id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// The employees shape with a wall-clock insert time, for latency.
const LATENCY_SOURCE: &str = "CREATE TABLE bench_latency (
    id BIGSERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
)";

/// Pre-created in the target: the sink writes the source columns by name;
/// `applied_at` is not in the events, so its default marks when the sink's
/// INSERT wrote the row.
const LATENCY_TARGET: &str = "CREATE TABLE bench_latency (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMPTZ,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
)";

pub fn run(layout: &Layout, opts: Options) -> Result<()> {
    let started = Instant::now();
    let load_start = uptime();
    heading(&format!(
        "pg-cdc bench: {} rows{}{} — load: {load_start}",
        thousands(opts.rows as f64),
        if opts.skip_debezium {
            ", no Debezium"
        } else {
            ""
        },
        if opts.skip_latency {
            ", no latency"
        } else {
            ""
        },
    ));

    heading("services");
    let s = services::up(layout)?;
    let dbz = if opts.skip_debezium {
        None
    } else {
        Some(crate::debezium::ensure(layout)?)
    };

    let target = target_dir(layout);
    let pipeline = target.join("release/examples/pipeline");
    if opts.no_build {
        heading("--no-build: measuring the existing release binary");
        let built = fs::metadata(&pipeline)
            .and_then(|m| m.modified())
            .with_context(|| {
                format!(
                    "{} not found: build it (cargo build --release --example pipeline) or drop --no-build",
                    pipeline.display()
                )
            })?;
        let age = SystemTime::now()
            .duration_since(built)
            .unwrap_or_default()
            .as_secs();
        println!("  {} (built {} min ago)", pipeline.display(), age / 60);
    } else {
        heading("cargo build --release --example pipeline");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let t = Instant::now();
        let status = Command::new(&cargo)
            .current_dir(&layout.root)
            .args(["build", "--release", "--example", "pipeline"])
            .status()
            .context("running cargo build --release --example pipeline")?;
        if !status.success() {
            bail!(
                "cargo build --release --example pipeline failed ({status}); \
                 --no-build measures the binary from the last successful build"
            );
        }
        println!("  built in {:.0} s", t.elapsed().as_secs_f64());
        if !pipeline.is_file() {
            bail!("{} is missing after the build", pipeline.display());
        }
    }

    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut bench = Bench::new(layout, s.pg_bin.clone(), pipeline, out_dir.clone(), dbz)?;
    let mut results = Results {
        rows: opts.rows,
        load_start,
        ..Results::default()
    };
    let outcome = bench.run_all(&opts, &mut results);
    heading("cleaning up");
    bench.cleanup();
    results.load_end = uptime();
    results.total_secs = started.elapsed().as_secs_f64();

    let report = results.markdown(&opts, &bench.names, outcome.as_ref().err());
    heading("results");
    println!("{report}");
    let path = out_dir.join("report.md");
    fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("(written to {})", path.display());
    outcome
}

// ---------------------------------------------------------------------------
// Results and the report

#[derive(Debug, Default)]
struct Results {
    rows: u64,
    load_start: String,
    load_end: String,
    total_secs: f64,
    load_secs: Option<f64>,
    /// (phase, load average when it started)
    phase_loads: Vec<(String, String)>,
    recv: Option<Timed>,
    /// The same ceiling measured again right after pg-cdc's run.
    recv2: Option<Timed>,
    kafka: Option<PipelineRun>,
    dbz: Option<DbzRun>,
    connect: Option<ConnectRun>,
    e2e: Option<PipelineRun>,
    latency: Vec<LatencyRun>,
    /// VmHWM of the end-to-end pipeline after the latency runs.
    e2e_final_rss_kib: Option<u64>,
    pipeline_log_lines: Vec<(String, usize)>,
    /// Warm-up passes before the measured runs.
    warm_up: Vec<WarmUp>,
    /// The end-to-end pipeline's Prometheus metrics after the last run.
    metrics_file: Option<PathBuf>,
}

#[derive(Debug)]
struct Timed {
    secs: f64,
    cpu: f64,
}

#[derive(Debug)]
struct PipelineRun {
    /// Process start → done.
    secs: f64,
    /// Process start → first progress (slot advanced / first target row).
    first_progress_secs: Option<f64>,
    cpu: f64,
    rss_kib: u64,
    /// Where the machine's CPU went during the run (source-only run).
    budget: Option<CpuBudget>,
}

/// One warm-up pass (step [0]).
#[derive(Debug)]
struct WarmUp {
    secs: f64,
    /// The broker's CPU seconds over the pass.
    broker_cpu: Option<f64>,
    /// Seconds the broker's JIT compiler spent during the pass (`jstat`).
    jit_secs: Option<f64>,
}

impl WarmUp {
    /// "8.1 s (broker 4.2 s CPU, 3.5 s compiling)"; `?` for what was not read.
    fn describe(&self) -> String {
        let secs = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1}"));
        format!(
            "{:.1} s (broker {} s CPU, {} s compiling)",
            self.secs,
            secs(self.broker_cpu),
            secs(self.jit_secs)
        )
    }

    /// Whether the broker's JIT compilers worked less than 10 % of the
    /// pass (no `jstat`: there is no telling, so yes).
    fn settled(&self) -> bool {
        self.jit_secs.is_none_or(|j| j < 0.1 * self.secs)
    }
}

/// CPU seconds of the other processes on the path, and the machine's idle
/// share, over one run: what bounds the rate when every core is busy.
#[derive(Debug, Clone, Copy)]
struct CpuBudget {
    /// The walsender serving pg-cdc's slot (started with the run).
    walsender: f64,
    /// The Kafka broker, over the run.
    broker: Option<f64>,
    /// Share of all cores' time spent idle (incl. I/O wait).
    idle: f64,
    cores: usize,
}

impl CpuBudget {
    /// One line: CPU per row of each process on the path, the machine's
    /// idle share, and the rate the cores would allow if fully busy.
    fn describe(&self, rows: u64, pipeline_cpu: f64) -> String {
        let us = |cpu: f64| cpu / rows as f64 * 1e6;
        format!(
            "CPU per row: pg-cdc {:.1} µs, walsender {:.1} µs, Kafka broker {}; machine {:.0} % idle during the run; fully busy, {} cores would allow ≈ {} rows/s at these costs",
            us(pipeline_cpu),
            us(self.walsender),
            self.broker
                .map(|b| format!("{:.1} µs", us(b)))
                .unwrap_or_else(|| "not measured".into()),
            self.idle * 100.0,
            self.cores,
            thousands(self.bound(rows, pipeline_cpu)),
        )
    }

    /// Rows per second if the cores were fully busy at these CPU costs per row.
    fn bound(&self, rows: u64, pipeline_cpu: f64) -> f64 {
        let per_row = (pipeline_cpu + self.walsender + self.broker.unwrap_or(0.0)) / rows as f64;
        self.cores as f64 / per_row.max(1e-12)
    }
}

#[derive(Debug)]
struct DbzRun {
    events: u64,
    /// DbzBench's own figure: first event → last event.
    steady_rate: f64,
    first_event_after_engine_start: f64,
    /// JVM start → last event (the line printed right after it).
    from_start_secs: f64,
    cpu: f64,
    rss_kib: u64,
}

/// Debezium in a Kafka Connect worker, writing to the broker.
#[derive(Debug)]
struct ConnectRun {
    records: u64,
    /// TopicWatch's figure: first poll that saw a record → all records.
    steady_rate: f64,
    /// JVM start → first record seen in the topic.
    first_record_secs: f64,
    /// JVM start → all records seen in the topic.
    from_start_secs: f64,
    cpu: f64,
    rss_kib: u64,
    /// The broker's CPU over the run (it compresses Connect's batches).
    broker_cpu: Option<f64>,
}

#[derive(Debug)]
struct LatencyRun {
    rate: u64,
    rows: usize,
    achieved_rate: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn tick(ok: bool) -> &'static str {
    if ok {
        "✔"
    } else {
        "✘"
    }
}

impl Results {
    fn rate(&self, secs: f64) -> f64 {
        self.rows as f64 / secs.max(1e-9)
    }

    fn markdown(&self, opts: &Options, names: &Names, error: Option<&anyhow::Error>) -> String {
        let mut m = String::new();
        let n = thousands(self.rows as f64);
        let _ = writeln!(
            m,
            "Measured {} UTC with `{}` on {} cores; load average at start: {}; at end: {}. \
             Workload: the seed's `employees` table, {n} rows inserted in {}-row transactions \
             (`INSERT … SELECT generate_series`){}, slots created before the load so every run \
             drains the same WAL.\n",
            utc_now(),
            opts.command,
            num_cpus(),
            self.load_start,
            self.load_end,
            thousands(CHUNK as f64),
            self.load_secs
                .map(|s| format!(" in {s:.1} s"))
                .unwrap_or_default(),
        );
        m.push_str("| measurement | pg-cdc | reference (same run) | ratio | goal |\n");
        m.push_str("|---|---|---|---|---|\n");
        // The faster of the two ceiling runs (before and after pg-cdc's).
        let best = [&self.recv, &self.recv2]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.secs.total_cmp(&b.secs));
        let recv_rate = best.map(|r| self.rate(r.secs));
        let ceiling_runs = [&self.recv, &self.recv2]
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} rows/s ({:.2} s, {:.2} s CPU)",
                    thousands(self.rate(r.secs)),
                    r.secs,
                    r.cpu
                )
            })
            .collect::<Vec<_>>()
            .join(" before, ")
            + if self.recv2.is_some() { " after" } else { "" };
        if let Some(k) = &self.kafka {
            let ours = self.rate(k.secs);
            let (reference, ratio, goal) = match (best, recv_rate) {
                (Some(_), Some(rr)) => (
                    format!("`pg_recvlogical`: {ceiling_runs}; ratio against the faster"),
                    format!("**{:.2}×**", ours / rr),
                    format!("≥ 0.8× {}", tick(ours / rr >= 0.8)),
                ),
                _ => ("—".into(), "—".into(), "≥ 0.8×".into()),
            };
            let _ = writeln!(
                m,
                "| PostgreSQL → Kafka (source only, {}) | {} rows/s ({:.2} s from process start{}; {:.2} s CPU; peak RSS {}) | {reference} | {ratio} | {goal} |",
                if opts
                    .source_set
                    .iter()
                    .any(|kv| kv.replace(' ', "") == "exactly.once.source.support=disabled")
                {
                    "at-least-once"
                } else {
                    "exactly-once"
                },
                thousands(ours),
                k.secs,
                k.first_progress_secs
                    .map(|f| format!(", slot first advanced at {f:.2} s"))
                    .unwrap_or_default(),
                k.cpu,
                mib(k.rss_kib),
            );
            if let Some(b) = &k.budget {
                let _ = writeln!(
                    m,
                    "| CPU budget of the source-only run | {} | — | — | — |",
                    b.describe(self.rows, k.cpu)
                );
            }
        } else if recv_rate.is_some() {
            let _ = writeln!(
                m,
                "| `pg_recvlogical` ceiling | — | {ceiling_runs} | — | — |"
            );
        }
        if let Some(c) = &self.connect {
            let connect_start_rate = c.records as f64 / c.from_start_secs.max(1e-9);
            let reference = format!(
                "Debezium 3.6.3 in a Kafka Connect 4.3.1 worker (the seed's deployment; writes to Kafka): {} events/s first→last record in the topic (first record {:.2} s after JVM start), {} events/s from JVM start ({:.2} s); {:.1} s CPU{}; peak RSS {} at {DBZ_HEAP}",
                thousands(c.steady_rate),
                c.first_record_secs,
                thousands(connect_start_rate),
                c.from_start_secs,
                c.cpu,
                c.broker_cpu
                    .map(|b| format!(" (+ {b:.1} s of the broker's)"))
                    .unwrap_or_default(),
                mib(c.rss_kib)
            );
            match &self.kafka {
                Some(k) => {
                    let ours = self.rate(k.secs);
                    let ratio = ours / c.steady_rate.max(1e-9);
                    let _ = writeln!(
                        m,
                        "| vs Debezium in Kafka Connect, same changes into Kafka | {} rows/s (exactly-once unless overridden), {:.2} s CPU{}, {} | {reference} | **{ratio:.2}×** throughput ({:.2}× from process start both sides); {:.1}× less CPU | ≥ 5× {} |",
                        thousands(ours),
                        k.cpu,
                        k.budget
                            .and_then(|b| b.broker)
                            .map(|b| format!(" (+ {b:.1} s of the broker's)"))
                            .unwrap_or_default(),
                        mib(k.rss_kib),
                        ours / connect_start_rate.max(1e-9),
                        c.cpu / k.cpu.max(1e-9),
                        tick(ratio >= 5.0)
                    );
                }
                None => {
                    let _ = writeln!(
                        m,
                        "| Debezium in Kafka Connect, same changes | — | {reference} | — | — |"
                    );
                }
            }
        }
        if let Some(d) = &self.dbz {
            let dbz_start_rate = d.events as f64 / d.from_start_secs.max(1e-9);
            let reference = format!(
                "Debezium 3.6.3 embedded engine (no Kafka): {} events/s first→last event (first event {:.2} s after engine start), {} events/s from JVM start ({:.2} s); {:.1} s CPU; peak RSS {} at {DBZ_HEAP}",
                thousands(d.steady_rate),
                d.first_event_after_engine_start,
                thousands(dbz_start_rate),
                d.from_start_secs,
                d.cpu,
                mib(d.rss_kib)
            );
            match &self.kafka {
                Some(k) => {
                    let ours = self.rate(k.secs);
                    let ratio = ours / d.steady_rate.max(1e-9);
                    // The goal's reference is the connector as deployed
                    // (previous row); this one has no Kafka on its side.
                    let goal = if self.connect.is_some() {
                        "— (stricter than the goal's reference)".to_string()
                    } else {
                        format!("≥ 5× {}", tick(ratio >= 5.0))
                    };
                    let _ = writeln!(
                        m,
                        "| vs Debezium's engine alone, same changes (no Kafka on its side) | {} rows/s (into Kafka, durable), {:.2} s CPU, {} | {reference} | **{ratio:.2}×** throughput ({:.2}× from process start both sides); {:.1}× less CPU | {goal} |",
                        thousands(ours),
                        k.cpu,
                        mib(k.rss_kib),
                        ours / dbz_start_rate.max(1e-9),
                        d.cpu / k.cpu.max(1e-9),
                    );
                }
                None => {
                    let _ = writeln!(m, "| Debezium, same changes | — | {reference} | — | — |");
                }
            }
        }
        if let Some(e) = &self.e2e {
            let _ = writeln!(
                m,
                "| PostgreSQL → Kafka → PostgreSQL (source + sink) | {} rows/s ({:.2} s from process start until the target has all rows{}; {:.2} s CPU; peak RSS {}) | — | — | — |",
                thousands(self.rate(e.secs)),
                e.secs,
                e.first_progress_secs
                    .map(|f| format!(", first row at {f:.2} s"))
                    .unwrap_or_default(),
                e.cpu,
                mib(e.rss_kib),
            );
        }
        for l in &self.latency {
            let goal = if l.rate == 1_000 {
                format!("p99 ≤ 100 ms {}", tick(l.p99 <= 100.0))
            } else {
                "—".into()
            };
            let _ = writeln!(
                m,
                "| latency at {} rows/s ({} rows, achieved {} rows/s) | p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms · max {:.1} ms | — | — | {goal} |",
                thousands(l.rate as f64),
                thousands(l.rows as f64),
                thousands(l.achieved_rate),
                l.p50,
                l.p95,
                l.p99,
                l.max
            );
        }
        let peaks: Vec<u64> = [
            self.kafka.as_ref().map(|k| k.rss_kib),
            self.e2e.as_ref().map(|e| e.rss_kib),
            self.e2e_final_rss_kib,
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(peak) = peaks.iter().max() {
            let _ = writeln!(
                m,
                "| pipeline peak RSS (VmHWM, all runs) | {} | — | — | ≤ 64 MiB {} |",
                mib(*peak),
                tick(*peak <= 64 * 1024)
            );
        }
        if let Some(e) = error {
            let _ = writeln!(m, "\n**The run stopped early:** {e:#}");
        }
        m.push_str("\nHow it was measured:\n\n");
        let _ = writeln!(
            m,
            "- Ceiling: `pg_recvlogical -S <slot> --start -o proto_version=1 -o publication_names=<pub> -E <end lsn> -f /dev/null --no-loop`, wall time of the process, run on its own slot right before and right after pg-cdc's run (load on a shared machine changes by the minute); the ratio uses the faster run."
        );
        if self.warm_up.is_empty() {
            m.push_str("- Broker warm-up: none (`--warm-up 0`); a broker started shortly before compiles its produce and transaction paths during the measured runs.\n");
        } else {
            let passes: Vec<String> = self.warm_up.iter().map(WarmUp::describe).collect();
            let _ = writeln!(
                m,
                "- Broker warm-up (step [0], not measured): pg-cdc streamed the same changes into Kafka on its own slot and topics, pass after pass until the broker's JIT compilers (`jstat -compiler`) worked less than 10 % of a pass's time, at most `--warm-up` passes: {}. Debezium's runs come later and find the broker as warm.",
                passes.join(", ")
            );
            if self.warm_up.last().is_some_and(|p| !p.settled()) {
                m.push_str("- **The broker was still compiling after the last warm-up pass**: the measured runs include the rest of its JIT work (more CPU per row on the broker, longer latencies); a run with more `--warm-up` passes, or on a broker that has been running for a while, measures the warm state.\n");
            }
        }
        let _ = writeln!(
            m,
            "- pg-cdc → Kafka: `target/release/examples/pipeline --source config/postg-source-connector.json` with overrides (fresh database, `slot.name`, `publication.name`, `publication.autocreate.mode=disabled`, `snapshot.mode=no_data`, `topic.prefix={}`, `status.update.interval.ms={}` so the slot position is reported promptly; connector renamed so its `transactional.id` is unique; `offsets.storage.topic` of this run's own, so the first start does not read the positions of every earlier run). Done when the slot's `confirmed_flush_lsn` (polled every {} ms) ≥ the end LSN — pg-cdc confirms a position only after the Kafka transaction holding its records committed. CPU = utime+stime and peak RSS = VmHWM of the process, read just before SIGTERM. CPU budget: the walsender's utime+stime (its pid from `pg_replication_slots.active_pid`; it starts with the run and is read before the pipeline stops), the broker's utime+stime over the run, the machine's idle + iowait share from `/proc/stat` over the run; the bound is cores ÷ (the three processes' CPU seconds per row).",
            names.prefix_kafka,
            SLOT_POLL.as_millis(),
            SLOT_POLL.as_millis()
        );
        if self.dbz.is_some() {
            let _ = writeln!(
                m,
                "- Debezium's engine alone: `java {DBZ_HEAP} -cp 'libs/*:classes' DbzBench <props> N N /dev/null` (tools/debezium-capture), embedded engine, `MemoryOffsetBackingStore`, `snapshot.mode=no_data` on a slot created before the load, the seed's converter settings (`decimal.handling.mode=string`, `time.precision.mode=connect`, JSON with schemas). The embedded engine does **not** write to Kafka: each event is serialized to JSON and handed to a callback that prints it to /dev/null — strictly less work than pg-cdc, which commits every record to Kafka. The ratio uses DbzBench's own first→last-event rate (excludes JVM and engine start-up; favours Debezium). CPU = the java process's utime+stime (from the reaped child), RSS = its VmHWM."
            );
        }
        if self.connect.is_some() {
            let _ = writeln!(
                m,
                "- Debezium in Kafka Connect (the goal's reference: the issue's ≈ 17k events/s, 58 s CPU per 500k events, 650 MiB describe this deployment): `java {DBZ_HEAP} -cp <Kafka 4.3.1 jars> org.apache.kafka.connect.cli.ConnectStandalone worker.properties source.json` — a standalone worker (the seed runs a distributed one; the source task's path is the same) with all Kafka Connect defaults (its producer: `acks=all`, `max.in.flight.requests.per.connection=1`, idempotence off, no compression, `linger.ms=5`), `plugin.path` holding the Debezium 3.6.3 PostgreSQL plugin's jars, and the seed's `config/postg-source-connector.json` **unchanged** except the connection, `slot.name`, `publication.name`, `publication.autocreate.mode=disabled`, `snapshot.mode=no_data` and `topic.prefix={}`; the topic is created by Connect with the seed's `topic.creation.default.*` (lz4 on the broker). Timed by `TopicWatch` (tools/debezium-capture), a separate JVM polling the topic's end offsets every 20 ms: the ratio uses its first→last-record rate (excludes JVM and worker start-up; favours Debezium). CPU = utime+stime of the worker (read when the last record was seen), RSS = its VmHWM sampled every 200 ms; the broker's CPU over the run is shown next to it, as pg-cdc's is.",
                names.prefix_connect
            );
        }
        if self.e2e.is_some() {
            let _ = writeln!(
                m,
                "- End to end: the pipeline with both seed connector files (fresh slot on the same WAL, fresh target database, `topics.regex={}\\.public\\..*`), from process start until `count(*)` of the target `employees` equals N (polled every {} ms once `max(emp_id)` reached the source's).",
                names.prefix_e2e,
                POLL.as_millis()
            );
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                m,
                "- Latency: with that pipeline running and caught up, a server-side loop inserts one multi-row INSERT (rate/100 rows) every 10 ms, each its own transaction, into `bench_latency` (`created_at timestamptz DEFAULT clock_timestamp()`) for {} s per rate. The target table was pre-created with `applied_at timestamptz DEFAULT clock_timestamp()`, which the sink never writes, so it records when the sink's INSERT wrote the row (the sink's commit follows within its batch). Latency per row = target `applied_at` − source `created_at`, joined by id (both servers share the machine clock); nearest-rank percentiles.",
                opts.latency_secs
            );
        }
        if !self.phase_loads.is_empty() {
            m.push_str("- Load average when each step started: ");
            let parts: Vec<String> = self
                .phase_loads
                .iter()
                .map(|(p, l)| format!("{p}: {l}"))
                .collect();
            m.push_str(&parts.join("; "));
            m.push('\n');
        }
        for (what, lines) in &self.pipeline_log_lines {
            let _ = writeln!(
                m,
                "- Pipeline log ({what}): {lines} lines at the default `RUST_LOG=info`."
            );
        }
        if let Some(f) = &self.metrics_file {
            let _ = writeln!(
                m,
                "- The end-to-end pipeline's Prometheus metrics at the end: `{}`.",
                f.display()
            );
        }
        let _ = writeln!(m, "- Whole bench took {:.0} s.", self.total_secs);
        m
    }
}

// ---------------------------------------------------------------------------
// The run

/// Names of everything this run creates (all start with one unique tag).
#[derive(Debug, Clone)]
struct Names {
    tag: String,
    src_db: String,
    tgt_db: String,
    publication: String,
    slot_recv: String,
    /// A second ceiling run after pg-cdc's, to bracket load changes.
    slot_recv2: String,
    slot_kafka: String,
    slot_dbz: String,
    slot_connect: String,
    slot_e2e: String,
    prefix_kafka: String,
    prefix_dbz: String,
    prefix_connect: String,
    prefix_e2e: String,
}

impl Names {
    /// Slot and topic prefix of warm-up pass `i` (1-based).
    fn warm_up(&self, i: u32) -> (String, String) {
        (
            format!("{}_warm{i}", self.tag),
            format!("{}_w{i}", self.tag),
        )
    }

    /// The exactly-once position topic of this run's pipelines (removed
    /// with the run's other topics, `{tag}_.*`).
    fn offsets_topic(&self) -> String {
        format!("{}_offsets", self.tag)
    }

    fn new() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tag = format!("pgcdc_bench_{secs}");
        let n = |s: &str| format!("{tag}_{s}");
        Self {
            src_db: n("src"),
            tgt_db: n("tgt"),
            publication: n("pub"),
            slot_recv: n("recv"),
            slot_recv2: n("recv2"),
            slot_kafka: n("kafka"),
            slot_dbz: n("dbz"),
            slot_connect: n("dbzc"),
            slot_e2e: n("e2e"),
            prefix_kafka: n("k"),
            prefix_dbz: n("d"),
            prefix_connect: n("c"),
            prefix_e2e: n("e"),
            tag,
        }
    }
}

struct Bench {
    layout: Layout,
    pg_bin: PathBuf,
    pipeline: PathBuf,
    dir: PathBuf,
    dbz: Option<Debezium>,
    names: Names,
    slots: Vec<String>,
    created_src: bool,
    created_tgt: bool,
    topics_used: bool,
    /// The end-to-end pipeline, kept running for the latency runs.
    e2e: Option<Proc>,
    /// Its /metrics port.
    rest_port: Option<u16>,
    /// `--source-set` / `--sink-set` given to `cargo xtask bench`.
    extra_source: Vec<String>,
    extra_sink: Vec<String>,
}

impl Bench {
    fn new(
        layout: &Layout,
        pg_bin: PathBuf,
        pipeline: PathBuf,
        dir: PathBuf,
        dbz: Option<Debezium>,
    ) -> Result<Self> {
        Ok(Self {
            layout: layout.clone(),
            pg_bin,
            pipeline,
            dir,
            dbz,
            names: Names::new(),
            slots: Vec::new(),
            created_src: false,
            created_tgt: false,
            topics_used: false,
            e2e: None,
            rest_port: None,
            extra_source: Vec::new(),
            extra_sink: Vec::new(),
        })
    }

    fn src_port(&self) -> u16 {
        self.layout.pg_source_port
    }

    fn tgt_port(&self) -> u16 {
        self.layout.pg_target_port
    }

    /// One statement with psql (fails loudly).
    fn psql(&self, port: u16, db: &str, sql: &str) -> Result<String> {
        let out = process::run_checked(
            Command::new(self.pg_bin.join("psql"))
                .env("PGPASSWORD", PG_PASSWORD)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", PG_USER])
                .args(["-d", db, "-c", sql]),
            &format!("psql on port {port}, database {db}"),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn src(&self, sql: &str) -> Result<String> {
        self.psql(self.src_port(), &self.names.src_db, sql)
    }

    fn tgt(&self, sql: &str) -> Result<String> {
        self.psql(self.tgt_port(), &self.names.tgt_db, sql)
    }

    fn session(&self, port: u16, db: &str, what: &str) -> Result<Session> {
        Session::open(
            &self.pg_bin,
            port,
            db,
            self.dir.join(format!("{}-{what}-psql.err", self.names.tag)),
        )
    }

    fn run_all(&mut self, opts: &Options, r: &mut Results) -> Result<()> {
        self.extra_source = opts.source_set.clone();
        self.extra_sink = opts.sink_set.clone();
        self.remove_leftovers();
        heading(&format!(
            "setup: databases {} / {}, publication, {} slots, load {} rows",
            self.names.src_db,
            self.names.tgt_db,
            opts.warm_up + if self.dbz.is_some() { 6 } else { 4 },
            thousands(opts.rows as f64)
        ));
        let end_lsn = self.setup(opts, r)?;
        self.warm_up(&end_lsn, opts, r)?;

        phase(r, "[1]", "pg_recvlogical (ceiling)");
        let slot = self.names.slot_recv.clone();
        r.recv = Some(self.run_recvlogical(&slot, &end_lsn, opts)?);
        if let Some(rv) = &r.recv {
            println!(
                "  {:.2} s, {} rows/s, {:.2} s CPU",
                rv.secs,
                thousands(r.rate(rv.secs)),
                rv.cpu
            );
        }

        phase(
            r,
            "[2]",
            "pg-cdc: PostgreSQL → Kafka (source connector only)",
        );
        let k = self.run_source_only(&end_lsn, opts, r)?;
        println!(
            "  {:.2} s, {} rows/s ({:.2}× pg_recvlogical), {:.2} s CPU, peak RSS {}",
            k.secs,
            thousands(r.rate(k.secs)),
            r.recv
                .as_ref()
                .map(|rv| rv.secs / k.secs)
                .unwrap_or_default(),
            k.cpu,
            mib(k.rss_kib)
        );
        if let Some(b) = &k.budget {
            println!("  {}", b.describe(opts.rows, k.cpu));
        }
        r.kafka = Some(k);

        phase(r, "[2b]", "pg_recvlogical again (brackets load changes)");
        let slot = self.names.slot_recv2.clone();
        let rv = self.run_recvlogical(&slot, &end_lsn, opts)?;
        println!(
            "  {:.2} s, {} rows/s, {:.2} s CPU",
            rv.secs,
            thousands(r.rate(rv.secs)),
            rv.cpu
        );
        r.recv2 = Some(rv);

        if self.dbz.is_some() {
            phase(
                r,
                "[3]",
                "Debezium embedded engine, same changes (does not write to Kafka)",
            );
            let d = self.run_debezium(opts)?;
            print_java_run(d.events, d.steady_rate, d.from_start_secs, d.cpu, d.rss_kib);
            r.dbz = Some(d);

            phase(
                r,
                "[3b]",
                "Debezium in Kafka Connect, the seed's source config, same changes into Kafka",
            );
            let c = self.run_debezium_connect(opts)?;
            print_java_run(
                c.records,
                c.steady_rate,
                c.from_start_secs,
                c.cpu,
                c.rss_kib,
            );
            r.connect = Some(c);
        }

        phase(
            r,
            "[4]",
            "pg-cdc: PostgreSQL → Kafka → PostgreSQL (source + sink)",
        );
        let e = self.run_end_to_end(opts)?;
        println!(
            "  {:.2} s, {} rows/s, {:.2} s CPU, peak RSS {}",
            e.secs,
            thousands(r.rate(e.secs)),
            e.cpu,
            mib(e.rss_kib)
        );
        r.e2e = Some(e);

        if !opts.skip_latency {
            phase(
                r,
                "[5]",
                "latency at fixed rates (pipeline running, caught up)",
            );
            self.run_latency(opts, r)?;
        }
        if let Some(mut p) = self.e2e.take() {
            r.e2e_final_rss_kib = proc_stats(p.pid()).map(|(_, rss)| rss);
            if let Some(port) = self.rest_port {
                let path = self.dir.join(format!("{}-metrics-e2e.txt", self.names.tag));
                match http_get(port, "/metrics") {
                    Ok(body) => {
                        let _ = fs::write(&path, body);
                        println!("  pipeline metrics saved to {}", path.display());
                        r.metrics_file = Some(path);
                    }
                    Err(e) => println!("  (could not read /metrics: {e:#})"),
                }
            }
            p.stop();
            r.pipeline_log_lines
                .push(("end to end".into(), count_lines(&p.log)));
        }
        Ok(())
    }

    /// Slots and databases of earlier runs that were interrupted (Ctrl-C),
    /// once they are older than 30 minutes (a run started later may still
    /// be going on).
    fn remove_leftovers(&self) {
        let stale = |name: &str| -> bool {
            let secs = name
                .strip_prefix("pgcdc_bench_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|t| t.parse::<u64>().ok());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            secs.is_some_and(|t| t + 30 * 60 < now)
        };
        let like = "pgcdc\\_bench\\_%";
        let slots = self
            .psql(
                self.src_port(),
                "postgres",
                &format!(
                    "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE '{like}' AND NOT active"
                ),
            )
            .unwrap_or_default();
        for slot in slots.lines().filter(|l| stale(l)) {
            println!("  removing slot {slot} left by an interrupted run");
            if let Err(e) = self.psql(
                self.src_port(),
                "postgres",
                &format!("SELECT pg_drop_replication_slot('{slot}')"),
            ) {
                println!("  (could not drop slot {slot}: {e:#})");
            }
        }
        for port in [self.src_port(), self.tgt_port()] {
            let dbs = self
                .psql(
                    port,
                    "postgres",
                    &format!("SELECT datname FROM pg_database WHERE datname LIKE '{like}'"),
                )
                .unwrap_or_default();
            for db in dbs.lines().filter(|l| stale(l)) {
                println!("  removing database {db} left by an interrupted run (port {port})");
                if let Err(e) =
                    self.psql(port, "postgres", &format!("DROP DATABASE IF EXISTS {db}"))
                {
                    println!("  (could not drop {db}: {e:#})");
                }
            }
        }
    }

    fn setup(&mut self, opts: &Options, r: &mut Results) -> Result<String> {
        let n = self.names.clone();
        self.psql(
            self.src_port(),
            "postgres",
            &format!("CREATE DATABASE {}", n.src_db),
        )?;
        self.created_src = true;
        self.psql(
            self.tgt_port(),
            "postgres",
            &format!("CREATE DATABASE {}", n.tgt_db),
        )?;
        self.created_tgt = true;
        self.src(EMPLOYEES)?;
        self.src(LATENCY_SOURCE)?;
        self.src(&format!(
            "CREATE PUBLICATION {} FOR TABLE employees, bench_latency",
            n.publication
        ))?;
        self.tgt(LATENCY_TARGET)?;
        let mut slots: Vec<String> = (1..=opts.warm_up).map(|i| n.warm_up(i).0).collect();
        slots.extend([
            n.slot_recv.clone(),
            n.slot_kafka.clone(),
            n.slot_recv2.clone(),
        ]);
        if self.dbz.is_some() {
            slots.push(n.slot_dbz.clone());
            slots.push(n.slot_connect.clone());
        }
        slots.push(n.slot_e2e.clone());
        for slot in slots {
            self.src(&format!(
                "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
            ))?;
            self.slots.push(slot);
        }
        let t = Instant::now();
        let mut done = 0;
        let mut last = Instant::now();
        while done < opts.rows {
            let hi = (done + CHUNK).min(opts.rows);
            self.src(&format!(
                "INSERT INTO employees (name, email, department, salary, hire_date, created_at) \
                 SELECT 'Employee ' || g, 'e' || g || '@example.com', 'dept ' || (g % 17), \
                        (g % 100000) + 0.25, DATE '2020-01-01' + (g % 1500), \
                        TIMESTAMP '2024-01-15 10:30:00' + g * INTERVAL '1 second' \
                 FROM generate_series({}, {hi}) g",
                done + 1
            ))?;
            done = hi;
            if last.elapsed() > Duration::from_secs(2) || done == opts.rows {
                println!(
                    "  loaded {} / {} rows ({:.1} s)",
                    thousands(done as f64),
                    thousands(opts.rows as f64),
                    t.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
        }
        r.load_secs = Some(t.elapsed().as_secs_f64());
        let end_lsn = self.src("SELECT pg_current_wal_lsn()")?;
        parse_lsn(&end_lsn).with_context(|| format!("end LSN {end_lsn:?}"))?;
        println!("  end LSN {end_lsn}");
        Ok(end_lsn)
    }

    fn run_recvlogical(&self, slot: &str, end_lsn: &str, opts: &Options) -> Result<Timed> {
        let n = &self.names;
        let log = self.dir.join(format!("{slot}-pg_recvlogical.log"));
        let out = fs::File::create(&log)?;
        let cpu0 = children_cpu();
        let t = Instant::now();
        let mut child = Command::new(self.pg_bin.join("pg_recvlogical"))
            .env("PGPASSWORD", PG_PASSWORD)
            .arg("-d")
            .arg(format!(
                "host=127.0.0.1 port={} user={PG_USER} dbname={}",
                self.src_port(),
                n.src_db
            ))
            .args(["-S", slot, "--start", "-o", "proto_version=1", "-o"])
            .arg(format!("publication_names={}", n.publication))
            .args(["-E", end_lsn, "-f", "/dev/null", "--no-loop"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting pg_recvlogical")?;
        let timeout = run_timeout(opts.rows);
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if t.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "pg_recvlogical did not reach {end_lsn} within {} s; log:\n{}",
                    timeout.as_secs(),
                    process::tail(&log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let secs = t.elapsed().as_secs_f64();
        if !status.success() {
            bail!(
                "pg_recvlogical failed ({status}); log:\n{}",
                process::tail(&log, 20)
            );
        }
        Ok(Timed {
            secs,
            cpu: children_cpu() - cpu0,
        })
    }

    /// A connector file: the seed's, renamed so its transactional.id and
    /// consumer group are this run's own.
    fn connector_file(&self, seed: &str, seed_name: &str, name: &str) -> Result<PathBuf> {
        let path = self.layout.root.join("config").join(seed);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let from = format!("\"{seed_name}\"");
        if !text.contains(&from) {
            bail!("{} does not name the connector {from}", path.display());
        }
        let out = self.dir.join(format!("{name}.json"));
        fs::write(&out, text.replacen(&from, &format!("\"{name}\""), 1))?;
        Ok(out)
    }

    fn source_args(&self, slot: &str, prefix: &str, name: &str) -> Result<Vec<String>> {
        let file =
            self.connector_file("postg-source-connector.json", "pg-source-connector", name)?;
        let mut args = vec!["--source".to_string(), file.display().to_string()];
        for kv in [
            "database.hostname=127.0.0.1".to_string(),
            format!("database.port={}", self.src_port()),
            format!("database.user={PG_USER}"),
            format!("database.password={PG_PASSWORD}"),
            format!("database.dbname={}", self.names.src_db),
            format!("slot.name={slot}"),
            format!("publication.name={}", self.names.publication),
            "publication.autocreate.mode=disabled".into(),
            "snapshot.mode=no_data".into(),
            format!("topic.prefix={prefix}"),
            "table.include.list=public\\.employees,public\\.bench_latency".into(),
            format!("errors.deadletterqueue.topic.name={prefix}_dlq_source"),
            format!("status.update.interval.ms={}", SLOT_POLL.as_millis()),
            // A position topic of this run's own: a connector's first start
            // reads the shared one whole, and on a broker that served many
            // runs that took 0.5 s of the measured time.
            format!("offsets.storage.topic={}", self.names.offsets_topic()),
        ] {
            args.push("--source-set".into());
            args.push(kv);
        }
        for kv in &self.extra_source {
            args.push("--source-set".into());
            args.push(kv.clone());
        }
        Ok(args)
    }

    /// Starts the pipeline; `rest` serves /metrics on that port (else `--no-rest`).
    fn spawn_pipeline(&mut self, what: &str, args: &[String], rest: Option<u16>) -> Result<Proc> {
        let log = self
            .dir
            .join(format!("{}-pipeline-{what}.log", self.names.tag));
        let data_dir = self.dir.join(format!("{}-data-{what}", self.names.tag));
        let _ = fs::remove_dir_all(&data_dir);
        let out = fs::File::create(&log)?;
        self.topics_used = true;
        let child = Command::new(&self.pipeline)
            .current_dir(&self.layout.root)
            .args(args)
            .args(["--bootstrap-servers", &self.layout.kafka_brokers()])
            .args(match rest {
                Some(port) => vec!["--rest-addr".to_string(), format!("127.0.0.1:{port}")],
                None => vec!["--no-rest".to_string()],
            })
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", self.pipeline.display()))?;
        println!("  pipeline pid {} (log {})", child.id(), log.display());
        Ok(Proc {
            child,
            what: format!("the pipeline ({what})"),
            log,
            data_dir: Some(data_dir),
        })
    }

    /// Step [0]: pg-cdc streams the same changes into Kafka on its own slot
    /// (own topics), unmeasured, until a pass leaves the broker's JIT
    /// compiler nearly idle (under 10 % of the pass's time compiling) or
    /// `opts.warm_up` passes ran. A broker started just before the bench
    /// otherwise compiles its produce and transaction paths during the
    /// measured runs: on a fresh broker, three 500k-row passes took 7.7 /
    /// 5.0 / 4.2 s of broker CPU while its compilers worked 6.7 / 4.2 /
    /// 3.5 s (docs/benchmarks.md, 2026-11-25 05:45).
    fn warm_up(&mut self, end_lsn: &str, opts: &Options, r: &mut Results) -> Result<()> {
        if opts.warm_up == 0 {
            return Ok(());
        }
        phase(
            r,
            "[0]",
            "warm-up: pg-cdc → Kafka on the same changes, own slot and topics (not measured)",
        );
        let broker = crate::kafka::Kafka::new(&self.layout).pid();
        let mut settled = false;
        for i in 1..=opts.warm_up {
            let (slot, prefix) = self.names.warm_up(i);
            let jit0 = broker.and_then(jit_seconds);
            let (run, _) = self.run_source(&slot, &prefix, &format!("warm{i}"), end_lsn, opts)?;
            let jit = jit0.zip(broker.and_then(jit_seconds)).map(|(a, b)| b - a);
            let pass = WarmUp {
                secs: run.secs,
                broker_cpu: run.budget.as_ref().and_then(|b| b.broker),
                jit_secs: jit,
            };
            println!(
                "  pass {i}: {} rows/s, {}",
                thousands(r.rate(run.secs)),
                pass.describe()
            );
            settled = pass.settled();
            r.warm_up.push(pass);
            if settled {
                break;
            }
        }
        if !settled {
            println!(
                "  the broker's JIT was still compiling after {} passes: the measured runs pay for the rest (--warm-up N for more passes)",
                r.warm_up.len()
            );
        }
        Ok(())
    }

    fn run_source_only(
        &mut self,
        end_lsn: &str,
        opts: &Options,
        r: &mut Results,
    ) -> Result<PipelineRun> {
        let n = self.names.clone();
        let (run, lines) =
            self.run_source(&n.slot_kafka, &n.prefix_kafka, "kafka", end_lsn, opts)?;
        r.pipeline_log_lines.push(("source only".into(), lines));
        Ok(run)
    }

    /// pg-cdc's source connector alone on `slot` (topics under `prefix`),
    /// from process start until the slot confirmed `end_lsn`; with the
    /// number of lines it logged.
    fn run_source(
        &mut self,
        slot: &str,
        prefix: &str,
        what: &str,
        end_lsn: &str,
        opts: &Options,
    ) -> Result<(PipelineRun, usize)> {
        let n = self.names.clone();
        let end = parse_lsn(end_lsn)?;
        let mut slots = self.session(self.src_port(), &n.src_db, &format!("slot-{what}"))?;
        let slot_sql = format!(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
        );
        let start_lsn = slots
            .value(&slot_sql)?
            .and_then(|v| parse_lsn(&v).ok())
            .context("reading the slot's confirmed_flush_lsn")?;
        let args = self.source_args(slot, prefix, &format!("{}-src-{what}", n.tag))?;
        let active_sql = format!(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
        );
        let broker = CpuSince::start(crate::kafka::Kafka::new(&self.layout).pid());
        let machine0 = machine_ticks();
        let t = Instant::now();
        let mut p = self.spawn_pipeline(what, &args, None)?;
        let timeout = run_timeout(opts.rows);
        let mut first = None;
        let mut walsender: Option<u32> = None;
        let mut last_print = Instant::now();
        loop {
            p.fail_if_exited()?;
            if walsender.is_none() {
                walsender = slots.value(&active_sql)?.and_then(|v| v.parse().ok());
            }
            let lsn = slots
                .value(&slot_sql)?
                .and_then(|v| parse_lsn(&v).ok())
                .unwrap_or(start_lsn);
            if lsn > start_lsn && first.is_none() {
                first = Some(t.elapsed().as_secs_f64());
            }
            if lsn >= end {
                break;
            }
            if t.elapsed() > timeout {
                bail!(
                    "the pipeline did not confirm {end_lsn} within {} s (slot at {}); last log lines:\n{}",
                    timeout.as_secs(),
                    fmt_lsn(lsn),
                    process::tail(&p.log, 30)
                );
            }
            if last_print.elapsed() > Duration::from_secs(2) {
                println!(
                    "  {:5.1} s: slot confirmed {:.0}% of the WAL to {end_lsn}",
                    t.elapsed().as_secs_f64(),
                    progress(start_lsn, lsn, end)
                );
                last_print = Instant::now();
            }
            std::thread::sleep(SLOT_POLL);
        }
        let secs = t.elapsed().as_secs_f64();
        let (cpu, rss_kib) = proc_stats(p.pid()).context("reading /proc of the pipeline")?;
        // Read before the pipeline stops: its walsender exits with it.
        let budget = walsender
            .and_then(proc_stats)
            .zip(machine0.zip(machine_ticks()))
            .map(
                |((walsender, _), ((busy0, idle0), (busy1, idle1)))| CpuBudget {
                    walsender,
                    broker: broker.elapsed(),
                    idle: (idle1 - idle0) as f64
                        / ((busy1 + idle1) - (busy0 + idle0)).max(1) as f64,
                    cores: num_cpus(),
                },
            );
        p.stop();
        Ok((
            PipelineRun {
                secs,
                first_progress_secs: first,
                cpu,
                rss_kib,
                budget,
            },
            count_lines(&p.log),
        ))
    }

    fn run_debezium(&self, opts: &Options) -> Result<DbzRun> {
        let Some(dbz) = &self.dbz else {
            bail!("Debezium is not set up");
        };
        let n = &self.names;
        let props = self.dir.join(format!("{}-debezium.properties", n.tag));
        let mut text = String::new();
        for (k, v) in [
            ("name", format!("{}-dbz", n.tag)),
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector".into(),
            ),
            (
                "offset.storage",
                "org.apache.kafka.connect.storage.MemoryOffsetBackingStore".into(),
            ),
            ("offset.flush.interval.ms", "1000".into()),
            ("database.hostname", "127.0.0.1".into()),
            ("database.port", self.src_port().to_string()),
            ("database.user", PG_USER.into()),
            ("database.password", PG_PASSWORD.into()),
            ("database.dbname", n.src_db.clone()),
            ("topic.prefix", n.prefix_dbz.clone()),
            ("plugin.name", "pgoutput".into()),
            ("slot.name", n.slot_dbz.clone()),
            ("slot.drop.on.stop", "false".into()),
            ("publication.name", n.publication.clone()),
            ("publication.autocreate.mode", "disabled".into()),
            ("snapshot.mode", "no_data".into()),
            ("table.include.list", "public\\\\.employees".into()),
            ("decimal.handling.mode", "string".into()),
            ("time.precision.mode", "connect".into()),
            ("tombstones.on.delete", "false".into()),
            ("skipped.operations", "none".into()),
            ("converter.schemas.enable", "true".into()),
        ] {
            let _ = writeln!(text, "{k}={v}");
        }
        fs::write(&props, text)?;
        let out_log = self.dir.join(format!("{}-debezium.out", n.tag));
        let err_log = self.dir.join(format!("{}-debezium.err", n.tag));
        let java =
            crate::kafka::Kafka::java().context("java (17+) is needed for the Debezium run")?;
        let rows = opts.rows.to_string();
        let mut slots = self.session(self.src_port(), &n.src_db, "dbz-slot")?;
        let slot_sql = format!(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
            n.slot_dbz
        );
        let start_lsn = slots
            .value(&slot_sql)?
            .and_then(|v| parse_lsn(&v).ok())
            .unwrap_or(0);
        let end_lsn = slots
            .value("SELECT pg_current_wal_lsn()")?
            .and_then(|v| parse_lsn(&v).ok())
            .unwrap_or(0);
        let cpu0 = children_cpu();
        let t = Instant::now();
        let child = Command::new(java)
            .arg(DBZ_HEAP)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                dbz.tools.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!(
                "{}/*:{}",
                dbz.libs.display(),
                dbz.classes.display()
            ))
            .arg("DbzBench")
            .arg(&props)
            .args([&rows, &rows, "/dev/null", "60000"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_log)?)
            .stderr(fs::File::create(&err_log)?)
            .spawn()
            .context("starting java DbzBench")?;
        println!("  java pid {} (output {})", child.id(), out_log.display());
        let mut p = Proc {
            child,
            what: "Debezium (java DbzBench)".into(),
            log: out_log.clone(),
            data_dir: None,
        };
        let timeout = run_timeout(opts.rows) * 3;
        let mut rss = PeakRss::new(p.pid());
        let mut from_start = None;
        let mut last_print = Instant::now();
        let status = loop {
            if from_start.is_none()
                && fs::read_to_string(&out_log)
                    .unwrap_or_default()
                    .contains("events=")
            {
                from_start = Some(t.elapsed().as_secs_f64());
            }
            rss.sample();
            if let Some(st) = p.child.try_wait()? {
                break st;
            }
            if t.elapsed() > timeout {
                bail!(
                    "Debezium did not finish within {} s; output:\n{}\n{}",
                    timeout.as_secs(),
                    process::tail(&out_log, 20),
                    process::tail(&err_log, 20)
                );
            }
            if from_start.is_none() && last_print.elapsed() > Duration::from_secs(5) {
                let lsn = slots
                    .value(&slot_sql)?
                    .and_then(|v| parse_lsn(&v).ok())
                    .unwrap_or(start_lsn);
                println!(
                    "  {:5.1} s: Debezium running; its slot confirmed {:.0}% of the load's WAL",
                    t.elapsed().as_secs_f64(),
                    progress(start_lsn, lsn, end_lsn)
                );
                last_print = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let cpu = children_cpu() - cpu0;
        let out = fs::read_to_string(&out_log).unwrap_or_default();
        let line = out
            .lines()
            .find(|l| l.starts_with("events="))
            .map(str::to_owned);
        let Some(line) = line else {
            bail!(
                "DbzBench exited ({status}) without a result line; output:\n{}\n{}",
                process::tail(&out_log, 30),
                process::tail(&err_log, 30)
            );
        };
        println!("  DbzBench: {line}");
        let field = |k: &str| kv_field(&line, k);
        let events = field("events") as u64;
        if events < opts.rows {
            bail!(
                "Debezium delivered {events} of {} events before going idle; output:\n{}\n{}",
                opts.rows,
                process::tail(&out_log, 30),
                process::tail(&err_log, 30)
            );
        }
        Ok(DbzRun {
            events,
            steady_rate: field("rows_per_s"),
            first_event_after_engine_start: field("first_event_after_start_s"),
            from_start_secs: from_start.unwrap_or(t.elapsed().as_secs_f64()),
            cpu,
            rss_kib: rss.kib,
        })
    }

    /// Debezium as the seed deploys it: the seed's source connector file in
    /// a Kafka Connect worker (Kafka's own jars, the Debezium plugin on
    /// `plugin.path`), writing to the same broker; timed from outside by
    /// `TopicWatch` on the topic's end offsets.
    fn run_debezium_connect(&mut self, opts: &Options) -> Result<ConnectRun> {
        let Some(dbz) = self.dbz.clone() else {
            bail!("Debezium is not set up");
        };
        let n = self.names.clone();
        let java =
            crate::kafka::Kafka::java().context("java (17+) is needed for the Debezium run")?;
        let kafka = crate::kafka::Kafka::new(&self.layout);
        let classpath = kafka.classpath()?;
        let plugins = dbz.connect_plugin()?;

        let seed = self.layout.root.join("config/postg-source-connector.json");
        let mut doc: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(&seed).with_context(|| format!("reading {}", seed.display()))?,
        )
        .with_context(|| format!("parsing {}", seed.display()))?;
        doc["name"] = format!("{}-connect", n.tag).into();
        let config = doc
            .get_mut("config")
            .and_then(|c| c.as_object_mut())
            .with_context(|| format!("{} has no \"config\" object", seed.display()))?;
        for (k, v) in [
            ("database.hostname", "127.0.0.1".to_string()),
            ("database.port", self.src_port().to_string()),
            ("database.user", PG_USER.into()),
            ("database.password", PG_PASSWORD.into()),
            ("database.dbname", n.src_db.clone()),
            ("slot.name", n.slot_connect.clone()),
            ("publication.name", n.publication.clone()),
            ("publication.autocreate.mode", "disabled".into()),
            ("snapshot.mode", "no_data".into()),
            ("topic.prefix", n.prefix_connect.clone()),
            (
                "errors.deadletterqueue.topic.name",
                format!("{}_dlq_source", n.prefix_connect),
            ),
        ] {
            config.insert(k.into(), v.into());
        }
        let connector = self.dir.join(format!("{}-connect-source.json", n.tag));
        fs::write(&connector, serde_json::to_string_pretty(&doc)?)?;
        let rest_port = free_port().context("no free port for the Connect worker's REST API")?;
        let worker = self
            .dir
            .join(format!("{}-connect-worker.properties", n.tag));
        fs::write(
            &worker,
            format!(
                "bootstrap.servers={}\n\
                 key.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 value.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 offset.storage.file.filename={}\n\
                 listeners=http://127.0.0.1:{rest_port}\n\
                 plugin.path={}\n",
                self.layout.kafka_brokers(),
                self.dir
                    .join(format!("{}-connect.offsets", n.tag))
                    .display(),
                plugins.display()
            ),
        )?;

        let topic = format!("{}.public.employees", n.prefix_connect);
        let timeout = run_timeout(opts.rows) * 3;
        let watch_log = self.dir.join(format!("{}-connect-watch.out", n.tag));
        let watch_child = Command::new(&java)
            .args(["-Xmx128m", "-cp"])
            .arg(format!(
                "{}/*:{}",
                dbz.libs.display(),
                dbz.classes.display()
            ))
            .arg("TopicWatch")
            .arg(self.layout.kafka_brokers())
            .arg(&topic)
            .arg(opts.rows.to_string())
            .arg(timeout.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&watch_log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting java TopicWatch")?;
        let mut watch = Proc {
            child: watch_child,
            what: "TopicWatch".into(),
            log: watch_log.clone(),
            data_dir: None,
        };
        let ready = process::wait_until(Duration::from_secs(30), || {
            fs::read_to_string(&watch_log)
                .unwrap_or_default()
                .contains("watching")
        });
        if !ready {
            watch.fail_if_exited()?;
            bail!("TopicWatch did not connect to the broker within 30 s");
        }

        let log = self.dir.join(format!("{}-connect.log", n.tag));
        let out = fs::File::create(&log)?;
        self.topics_used = true;
        let broker = CpuSince::start(kafka.pid());
        let t = Instant::now();
        let child = Command::new(&java)
            .arg(DBZ_HEAP)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                dbz.tools.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(&classpath)
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .arg(&worker)
            .arg(&connector)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting the Kafka Connect worker")?;
        println!("  Kafka Connect pid {} (log {})", child.id(), log.display());
        let mut connect = Proc {
            child,
            what: "the Kafka Connect worker".into(),
            log,
            data_dir: None,
        };
        let pid = connect.pid();
        let status_path = format!("/connectors/{}/status", doc["name"].as_str().unwrap_or(""));
        let mut peak = PeakRss::new(pid);
        let mut last_print = Instant::now();
        let mut last_status = Instant::now();
        let status = loop {
            if let Some(st) = watch.child.try_wait()? {
                break st;
            }
            connect.fail_if_exited()?;
            // A failed task leaves the worker running: ask its REST API.
            if last_status.elapsed() >= Duration::from_secs(2) {
                if let Some(trace) = http_get(rest_port, &status_path)
                    .ok()
                    .and_then(|body| connect_failure(&body))
                {
                    bail!(
                        "Debezium's connector failed in Kafka Connect:\n{trace}\nlast lines of {}:\n{}",
                        connect.log.display(),
                        process::tail(&connect.log, 20)
                    );
                }
                last_status = Instant::now();
            }
            peak.sample();
            if last_print.elapsed() > Duration::from_secs(5) {
                let text = fs::read_to_string(&watch_log).unwrap_or_default();
                let count = text
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("count=")?.split_whitespace().next())
                    .unwrap_or("0");
                println!(
                    "  {:5.1} s: Kafka Connect running; {count} of {} records in {topic}",
                    t.elapsed().as_secs_f64(),
                    thousands(opts.rows as f64)
                );
                last_print = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let from_start_secs = t.elapsed().as_secs_f64();
        let (cpu, rss) = proc_stats(pid).context("reading /proc of the Connect worker")?;
        let broker_cpu = broker.elapsed();
        connect.stop();
        let text = fs::read_to_string(&watch_log).unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("records=")) else {
            bail!(
                "TopicWatch exited ({status}) without a result; its output:\n{}\nKafka Connect's log:\n{}",
                process::tail(&watch_log, 10),
                process::tail(&connect.log, 30)
            );
        };
        println!("  TopicWatch: {line}");
        let field = |k: &str| kv_field(line, k);
        // TopicWatch's times count from its "watching", which came before
        // the worker's start.
        let watch_to_start = field("done_s") - from_start_secs;
        Ok(ConnectRun {
            records: field("records") as u64,
            steady_rate: field("rows_per_s"),
            first_record_secs: field("first_record_s") - watch_to_start,
            from_start_secs,
            cpu,
            rss_kib: peak.kib.max(rss),
            broker_cpu,
        })
    }

    fn run_end_to_end(&mut self, opts: &Options) -> Result<PipelineRun> {
        let n = self.names.clone();
        let expected_max = self.src("SELECT max(emp_id) FROM employees")?;
        let expected_count = opts.rows.to_string();
        let mut args =
            self.source_args(&n.slot_e2e, &n.prefix_e2e, &format!("{}-e2e-src", n.tag))?;
        let sink = self.connector_file(
            "postg-sink-connector.json",
            "pg-sink-connector",
            &format!("{}-e2e-sink", n.tag),
        )?;
        args.push("--sink".into());
        args.push(sink.display().to_string());
        for kv in [
            format!(
                "connection.url=jdbc:postgresql://127.0.0.1:{}/{}",
                self.tgt_port(),
                n.tgt_db
            ),
            format!("connection.username={PG_USER}"),
            format!("connection.password={PG_PASSWORD}"),
            format!("topics.regex={}\\.public\\..*", n.prefix_e2e),
            format!(
                "errors.deadletterqueue.topic.name={}_dlq_sink",
                n.prefix_e2e
            ),
        ] {
            args.push("--sink-set".into());
            args.push(kv);
        }
        for kv in &self.extra_sink {
            args.push("--sink-set".into());
            args.push(kv.clone());
        }
        let mut target = self.session(self.tgt_port(), &n.tgt_db, "target")?;
        let t = Instant::now();
        self.rest_port = free_port();
        let mut p = self.spawn_pipeline("e2e", &args, self.rest_port)?;
        let timeout = run_timeout(opts.rows) * 2;
        let mut first = None;
        let mut last_print = Instant::now();
        loop {
            p.fail_if_exited()?;
            // Empty until the sink created the table (the query errors).
            let max = target
                .value("SELECT max(emp_id) FROM employees")?
                .filter(|v| !v.is_empty());
            if max.is_some() && first.is_none() {
                first = Some(t.elapsed().as_secs_f64());
            }
            let mut count = None;
            if max.as_deref() == Some(expected_max.as_str()) {
                count = target.value("SELECT count(*) FROM employees")?;
                if count.as_deref() == Some(expected_count.as_str()) {
                    break;
                }
            }
            if t.elapsed() > timeout {
                bail!(
                    "the target did not get all {} rows within {} s (max(emp_id) {max:?}, count {count:?}); last log lines:\n{}",
                    expected_count,
                    timeout.as_secs(),
                    process::tail(&p.log, 30)
                );
            }
            if last_print.elapsed() > Duration::from_secs(2) {
                println!(
                    "  {:5.1} s: target max(emp_id) = {} of {expected_max}",
                    t.elapsed().as_secs_f64(),
                    max.as_deref().unwrap_or("(no table yet)")
                );
                last_print = Instant::now();
            }
            std::thread::sleep(POLL);
        }
        let secs = t.elapsed().as_secs_f64();
        let (cpu, rss_kib) = proc_stats(p.pid()).context("reading /proc of the pipeline")?;
        self.e2e = Some(p);
        Ok(PipelineRun {
            secs,
            first_progress_secs: first,
            cpu,
            rss_kib,
            budget: None,
        })
    }

    fn run_latency(&mut self, opts: &Options, r: &mut Results) -> Result<()> {
        let n = self.names.clone();
        let mut target = self.session(self.tgt_port(), &n.tgt_db, "latency")?;
        // Warm-up: the first row creates the topic and the sink discovers it.
        self.src(
            "INSERT INTO bench_latency (name) SELECT 'warm-up ' || g FROM generate_series(1, 10) g",
        )?;
        println!("  warm-up: 10 rows (topic creation and discovery by the sink) …");
        self.wait_target_rows(&mut target, 0, 10, Duration::from_secs(120))?;
        for rate in LATENCY_RATES {
            let before: i64 = self
                .src("SELECT coalesce(max(id), 0) FROM bench_latency")?
                .parse()?;
            let per_tick = (rate / 100).max(1);
            let ticks = opts.latency_secs * 100;
            println!(
                "  {} rows/s for {} s: one INSERT of {per_tick} rows every 10 ms …",
                thousands(rate as f64),
                opts.latency_secs
            );
            r.phase_loads
                .push((format!("[5] at {rate} rows/s"), uptime_short()));
            self.src(&format!(
                "DO $$
                 DECLARE
                   t0 timestamptz := clock_timestamp();
                   wait double precision;
                 BEGIN
                   FOR k IN 1..{ticks} LOOP
                     INSERT INTO bench_latency (name, email, department, salary, hire_date)
                       SELECT 'Employee ' || g, 'e' || g || '@example.com', 'dept ' || (g % 17),
                              (g % 100000) + 0.25, DATE '2020-01-01' + (g % 1500)
                       FROM generate_series(1, {per_tick}) g;
                     COMMIT;
                     wait := extract(epoch FROM (t0 + k * interval '10 milliseconds') - clock_timestamp());
                     IF wait > 0 THEN PERFORM pg_sleep(wait); END IF;
                   END LOOP;
                 END $$"
            ))?;
            let after: i64 = self
                .src("SELECT coalesce(max(id), 0) FROM bench_latency")?
                .parse()?;
            let expected = after - before;
            self.wait_target_rows(&mut target, before, expected, Duration::from_secs(180))?;
            let range = format!("id > {before} AND id <= {after}");
            let created = self.src(&format!(
                "SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint FROM bench_latency WHERE {range}"
            ))?;
            let applied = self.tgt(&format!(
                "SELECT id, (extract(epoch FROM applied_at) * 1000000)::bigint FROM bench_latency WHERE {range}"
            ))?;
            let created = parse_pairs(&created);
            let mut lat: Vec<f64> = Vec::with_capacity(created.len());
            for (id, at) in parse_pairs(&applied) {
                if let Some(c) = created.get(&id) {
                    lat.push((at - c) as f64 / 1000.0);
                }
            }
            if lat.is_empty() {
                bail!("no latency samples at {rate} rows/s");
            }
            lat.sort_by(f64::total_cmp);
            let span = {
                let min = created.values().min().copied().unwrap_or(0);
                let max = created.values().max().copied().unwrap_or(0);
                ((max - min) as f64 / 1e6).max(1e-3)
            };
            let run = LatencyRun {
                rate,
                rows: lat.len(),
                achieved_rate: created.len() as f64 / span,
                p50: percentile(&lat, 0.50),
                p95: percentile(&lat, 0.95),
                p99: percentile(&lat, 0.99),
                max: lat.last().copied().unwrap_or(0.0),
            };
            println!(
                "  {} rows/s: {} rows, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                thousands(rate as f64),
                thousands(run.rows as f64),
                run.p50,
                run.p95,
                run.p99,
                run.max
            );
            r.latency.push(run);
        }
        Ok(())
    }

    /// Waits until the target's bench_latency holds `expected` rows with id > `after_id`.
    fn wait_target_rows(
        &mut self,
        target: &mut Session,
        after_id: i64,
        expected: i64,
        timeout: Duration,
    ) -> Result<()> {
        let t = Instant::now();
        let mut last_print = Instant::now();
        loop {
            if let Some(p) = self.e2e.as_mut() {
                p.fail_if_exited()?;
            }
            let got: i64 = target
                .value(&format!(
                    "SELECT count(*) FROM bench_latency WHERE id > {after_id}"
                ))?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got >= expected {
                return Ok(());
            }
            if t.elapsed() > timeout {
                bail!(
                    "the target has {got} of {expected} latency rows after {} s; last pipeline log lines:\n{}",
                    timeout.as_secs(),
                    self.e2e
                        .as_ref()
                        .map(|p| process::tail(&p.log, 30))
                        .unwrap_or_default()
                );
            }
            if last_print.elapsed() > Duration::from_secs(2) {
                println!(
                    "  {:5.1} s: target has {got} of {expected} rows",
                    t.elapsed().as_secs_f64()
                );
                last_print = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops processes, drops slots, databases and topics. Best effort:
    /// every step runs, failures are printed.
    fn cleanup(&mut self) {
        if let Some(mut p) = self.e2e.take() {
            p.stop();
        }
        let warn = |what: &str, r: Result<String>| {
            if let Err(e) = r {
                println!("  warning: {what}: {e:#}");
            }
        };
        if !self.slots.is_empty() {
            let list = self
                .slots
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ");
            warn(
                "terminating slot readers",
                self.psql(
                    self.src_port(),
                    "postgres",
                    &format!(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                         WHERE slot_name IN ({list}) AND active_pid IS NOT NULL"
                    ),
                ),
            );
            let _ = process::wait_until(Duration::from_secs(10), || {
                self.psql(
                    self.src_port(),
                    "postgres",
                    &format!(
                        "SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ({list}) AND active"
                    ),
                )
                .is_ok_and(|c| c == "0")
            });
            warn(
                "dropping slots",
                self.psql(
                    self.src_port(),
                    "postgres",
                    &format!(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                         WHERE slot_name IN ({list})"
                    ),
                ),
            );
            println!("  dropped slots {list}");
        }
        if self.created_src {
            let db = self.names.src_db.clone();
            warn(
                "dropping the source database",
                self.psql(
                    self.src_port(),
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ),
            );
            println!("  dropped database {db} (source)");
        }
        if self.created_tgt {
            let db = self.names.tgt_db.clone();
            warn(
                "dropping the target database",
                self.psql(
                    self.tgt_port(),
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ),
            );
            println!("  dropped database {db} (target)");
        }
        if self.topics_used {
            let regex = format!("{}_.*", self.names.tag);
            match self.delete_topics(&regex) {
                Ok(()) => println!("  deleted topics matching {regex}"),
                Err(e) => println!("  warning: deleting topics {regex}: {e:#}"),
            }
        }
    }

    fn delete_topics(&self, regex: &str) -> Result<()> {
        let java = crate::kafka::Kafka::java()?;
        let cp = crate::kafka::Kafka::new(&self.layout).classpath()?;
        process::run_checked(
            Command::new(java)
                .args(["-Xmx256m", "-cp", &cp])
                .arg("org.apache.kafka.tools.TopicCommand")
                .args(["--bootstrap-server", &self.layout.kafka_brokers()])
                .args(["--delete", "--if-exists", "--topic", regex]),
            "kafka-topics --delete",
        )
        .map(|_| ())
    }
}

// ---------------------------------------------------------------------------
// Processes

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
    data_dir: Option<PathBuf>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn fail_if_exited(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early ({status}); last lines of {}:\n{}",
                self.what,
                self.log.display(),
                process::tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// SIGTERM (the pipeline flushes and leaves its group), SIGKILL after 30 s.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        let _ = process::signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!(
            "  {} did not stop within 30 s of SIGTERM: killing it",
            self.what
        );
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if let Some(d) = &self.data_dir {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// A long-lived psql for cheap polling: one connection, a query per call.
/// Errors (e.g. a table that does not exist yet) give an empty result; the
/// message goes to `err_log`.
struct Session {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    err_log: PathBuf,
}

const MARK: &str = "@@pgcdc-bench-end@@";

impl Session {
    fn open(bin: &Path, port: u16, db: &str, err_log: PathBuf) -> Result<Self> {
        let mut child = Command::new(bin.join("psql"))
            .env("PGPASSWORD", PG_PASSWORD)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                PG_USER,
                "-d",
                db,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err_log)?)
            .spawn()
            .context("starting psql")?;
        let stdin = child.stdin.take().context("psql stdin")?;
        let out = BufReader::new(child.stdout.take().context("psql stdout")?);
        Ok(Self {
            child,
            stdin,
            out,
            err_log,
        })
    }

    fn query(&mut self, sql: &str) -> Result<Vec<String>> {
        let sql = sql.trim().trim_end_matches(';');
        let sent = writeln!(self.stdin, "{sql};\n\\echo {MARK}").and_then(|_| self.stdin.flush());
        if let Err(e) = sent {
            bail!(
                "psql session ended ({e}); its errors:\n{}",
                process::tail(&self.err_log, 10)
            );
        }
        let mut rows = Vec::new();
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line)? == 0 {
                bail!(
                    "psql session ended; its errors:\n{}",
                    process::tail(&self.err_log, 10)
                );
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line == MARK {
                return Ok(rows);
            }
            rows.push(line.to_string());
        }
    }

    /// The first row, if any.
    fn value(&mut self, sql: &str) -> Result<Option<String>> {
        Ok(self.query(sql)?.into_iter().next())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of /proc/<pid>/stat after the command name (index 0 = state).
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// The machine's (busy, idle + iowait) clock ticks since boot, all cores.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let idle = ticks.get(3)? + ticks.get(4)?;
    let busy = ticks.iter().take(8).sum::<u64>() - idle;
    Some((busy, idle))
}

/// (CPU seconds = utime + stime, peak RSS = VmHWM in KiB) of a live process.
fn proc_stats(pid: u32) -> Option<(f64, u64)> {
    let f = stat_fields(&pid.to_string())?;
    let cpu = (f.get(11)? + f.get(12)?) as f64 / clock_ticks();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((cpu, hwm))
}

/// Seconds a JVM's JIT compilers have spent compiling since it started
/// (`jstat -compiler <pid>`, the JDK's tool next to the `java` Kafka runs
/// with); `None` when jstat is missing or cannot attach.
fn jit_seconds(pid: u32) -> Option<f64> {
    let java = crate::kafka::Kafka::java().ok()?;
    let jstat = fs::canonicalize(&java)
        .unwrap_or(java)
        .with_file_name("jstat");
    let out = Command::new(jstat)
        .args(["-compiler", &pid.to_string()])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_jstat_compile_time(&String::from_utf8_lossy(&out.stdout))
}

/// The `Time` column (seconds) of `jstat -compiler` output.
fn parse_jstat_compile_time(out: &str) -> Option<f64> {
    let mut lines = out.lines();
    let column = lines.next()?.split_whitespace().position(|h| h == "Time")?;
    lines.next()?.split_whitespace().nth(column)?.parse().ok()
}

/// CPU seconds of this process's reaped children (cutime + cstime).
fn children_cpu() -> f64 {
    stat_fields("self")
        .and_then(|f| Some((f.get(13)? + f.get(14)?) as f64 / clock_ticks()))
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Small helpers

fn target_dir(layout: &Layout) -> PathBuf {
    layout
        .services_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| layout.root.join("target"))
}

/// Generous per-run limit: 2 minutes plus 1 s per 1,000 rows.
fn run_timeout(rows: u64) -> Duration {
    Duration::from_secs(120 + rows / 1_000)
}

/// The number after `key=` in a `key=value key=value …` result line (0 if
/// missing), as DbzBench and TopicWatch print them.
fn kv_field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The peak RSS of a child process, sampled at most every 200 ms.
struct PeakRss {
    pid: u32,
    kib: u64,
    last: Option<Instant>,
}

impl PeakRss {
    fn new(pid: u32) -> Self {
        Self {
            pid,
            kib: 0,
            last: None,
        }
    }

    fn sample(&mut self) {
        if self
            .last
            .is_some_and(|l| l.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        if let Some((_, rss)) = proc_stats(self.pid) {
            self.kib = self.kib.max(rss);
        }
        self.last = Some(Instant::now());
    }
}

/// CPU seconds another process (the broker) spends from `start` on.
struct CpuSince {
    pid: Option<u32>,
    cpu0: Option<f64>,
}

impl CpuSince {
    fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            cpu0: pid.and_then(proc_stats).map(|(c, _)| c),
        }
    }

    fn elapsed(&self) -> Option<f64> {
        let (now, _) = self.pid.and_then(proc_stats)?;
        Some(now - self.cpu0?)
    }
}

/// The error of a FAILED connector or task in a Kafka Connect
/// `GET /connectors/<name>/status` answer (its first lines), if any.
fn connect_failure(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    std::iter::once(&v["connector"])
        .chain(v["tasks"].as_array().into_iter().flatten())
        .find(|s| s["state"] == "FAILED")
        .map(|s| {
            let trace = s["trace"].as_str().unwrap_or("(no trace)");
            trace.lines().take(8).collect::<Vec<_>>().join("\n")
        })
}

/// One line about a Debezium run.
fn print_java_run(events: u64, rate: f64, from_start: f64, cpu: f64, rss_kib: u64) {
    println!(
        "  {} events, {} events/s first→last, {from_start:.2} s from JVM start, {cpu:.1} s CPU, peak RSS {}",
        thousands(events as f64),
        thousands(rate),
        mib(rss_kib)
    );
}

fn heading(s: &str) {
    println!("\n== {s}");
}

fn phase(r: &mut Results, step: &str, name: &str) {
    let load = uptime_short();
    heading(&format!("{step} {name} — load average {load}"));
    r.phase_loads.push((step.to_string(), load));
}

/// `uptime`'s line, or /proc/loadavg.
fn uptime() -> String {
    Command::new("uptime")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(uptime_short)
}

/// The three load averages.
fn uptime_short() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn parse_lsn(s: &str) -> Result<u64> {
    let (hi, lo) = s
        .trim()
        .split_once('/')
        .context("an LSN looks like 16/B374D848")?;
    Ok((u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?)
}

fn fmt_lsn(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)
}

fn progress(start: u64, now: u64, end: u64) -> f64 {
    if end <= start {
        return 100.0;
    }
    (now.saturating_sub(start) as f64 / (end - start) as f64 * 100.0).min(100.0)
}

/// `id|value` lines → map.
fn parse_pairs(text: &str) -> HashMap<i64, i64> {
    text.lines()
        .filter_map(|l| {
            let (a, b) = l.split_once('|')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// 1234567.8 → "1,234,568".
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() -> Result<()> {
        let l = parse_lsn("16/B374D848")?;
        assert_eq!(l, (0x16 << 32) | 0xB374_D848);
        assert_eq!(fmt_lsn(l), "16/B374D848");
        Ok(())
    }

    #[test]
    fn a_broker_still_compiling_after_the_warm_up_is_flagged_in_the_report() {
        let pass = |secs: f64, jit: Option<f64>| WarmUp {
            secs,
            broker_cpu: Some(3.0),
            jit_secs: jit,
        };
        assert!(pass(10.0, Some(0.9)).settled());
        assert!(!pass(10.0, Some(1.0)).settled());
        assert!(pass(10.0, None).settled(), "no jstat: no telling");
        let opts = Options {
            rows: 1_000,
            skip_debezium: true,
            skip_latency: true,
            latency_secs: 1,
            command: "cargo xtask bench".into(),
            source_set: Vec::new(),
            sink_set: Vec::new(),
            no_build: true,
            warm_up: 2,
        };
        let names = Names::new();
        let flag = "The broker was still compiling after the last warm-up pass";
        let report = |passes: Vec<WarmUp>| {
            Results {
                warm_up: passes,
                ..Results::default()
            }
            .markdown(&opts, &names, None)
        };
        let cold = report(vec![pass(15.2, Some(14.4)), pass(12.1, Some(8.2))]);
        assert!(cold.contains(flag), "{cold}");
        assert!(cold.contains("15.2 s (broker 3.0 s CPU, 14.4 s compiling)"));
        let warm = report(vec![pass(15.2, Some(14.4)), pass(11.1, Some(0.2))]);
        assert!(!warm.contains(flag), "{warm}");
    }

    #[test]
    fn cpu_budget_bounds_the_rate_by_cpu_per_row() {
        let b = CpuBudget {
            walsender: 2.5,
            broker: Some(1.5),
            idle: 0.2,
            cores: 2,
        };
        // (4.5 + 2.5 + 1.5) s for 500k rows = 17 µs per row; 2 cores → 117,647 rows/s.
        assert!((b.bound(500_000, 4.5) - 117_647.06).abs() < 0.1);
        let line = b.describe(500_000, 4.5);
        for part in [
            "pg-cdc 9.0 µs",
            "walsender 5.0 µs",
            "broker 3.0 µs",
            "20 % idle",
            "≈ 117,647 rows/s",
        ] {
            assert!(line.contains(part), "{part:?} not in {line}");
        }
        let no_broker = CpuBudget { broker: None, ..b };
        assert!(no_broker
            .describe(500_000, 4.5)
            .contains("broker not measured"));
        let (busy, idle) = machine_ticks().expect("/proc/stat");
        assert!(busy > 0 && idle > 0);
    }

    #[test]
    fn a_failed_connect_task_is_reported_with_its_trace() {
        // Captured from Kafka Connect 4.3.1 running Debezium 3.6.3 with the
        // seed's source config and a publication that does not exist.
        let failed = include_str!("../tests/fixtures/connect-status-task-failed.json");
        let trace = connect_failure(failed).expect("a FAILED task");
        assert!(
            trace.starts_with("org.apache.kafka.connect.errors.ConnectException: Publication autocreation is disabled"),
            "{trace}"
        );
        assert!(trace.lines().count() <= 8);
        let running = failed.replace("\"FAILED\"", "\"RUNNING\"");
        assert_eq!(connect_failure(&running), None);
        assert_eq!(connect_failure("not json"), None);
    }

    #[test]
    fn the_brokers_compile_time_is_read_from_jstat() {
        // Captured from `jstat -compiler <broker pid>` (OpenJDK 17) on the
        // dev broker, a few minutes after it started.
        let out = include_str!("../tests/fixtures/jstat-compiler.txt");
        assert_eq!(parse_jstat_compile_time(out), Some(14.81));
        let header_only = out.lines().next().unwrap_or_default();
        assert_eq!(parse_jstat_compile_time(header_only), None);
        assert_eq!(
            parse_jstat_compile_time("Compiled Failed\n    7760      1\n"),
            None,
            "no Time column"
        );
        assert_eq!(parse_jstat_compile_time("12345 not attachable"), None);
        // This test's own process is no JVM: no answer, no panic.
        assert_eq!(jit_seconds(std::process::id()), None);
    }

    #[test]
    fn percentiles_and_numbers() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
