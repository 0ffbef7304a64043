//! Runs connectors in one process, like a single Kafka Connect worker:
//! each connector in its own task, its state on the [`StatusBoard`],
//! retriable failures restarted with backoff, permanent ones reported as
//! `FAILED` with what to do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::connector::ConnectorConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rest;
use crate::sink_task::run_sink;
use crate::source_task::{run_source, NewTopics, TaskContext};
use crate::status::{ConnectorKind, ConnectorState, StatusBoard};

/// A connector's helper task (gauges, subscription refreshes) that lives as
/// long as this guard: dropping it aborts the task.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Worker-level settings (what Kafka Connect keeps in the worker config).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `bootstrap.servers` for connectors whose config does not set it.
    pub bootstrap_servers: String,
    /// Where the REST/metrics endpoint listens (`None`: no endpoint).
    pub rest_addr: Option<SocketAddr>,
    /// Directory for local offsets.
    pub data_dir: PathBuf,
    /// Longest pause between restarts of a connector after a retriable error.
    pub max_restart_backoff: Duration,
}

/// A set of connectors running together.
#[derive(Debug)]
pub struct Worker {
    connectors: Vec<ConnectorConfig>,
    options: WorkerOptions,
    board: StatusBoard,
    metrics: Arc<Metrics>,
}

/// How the worker ended.
#[derive(Debug, Default)]
pub struct WorkerOutcome {
    /// Connectors that failed permanently, with their errors.
    pub failed: Vec<(String, String)>,
}

impl Worker {
    /// A worker for `connectors`.
    pub fn new(mut connectors: Vec<ConnectorConfig>, options: WorkerOptions) -> Self {
        for c in &mut connectors {
            c.props
                .entry("bootstrap.servers".into())
                .or_insert_with(|| options.bootstrap_servers.clone());
        }
        Self {
            connectors,
            options,
            board: StatusBoard::new(),
            metrics: Metrics::new(),
        }
    }

    /// The status board (for callers that report progress).
    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Starts the REST endpoint (if configured) and every connector, and
    /// runs until `shutdown` turns true or every connector has ended.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<WorkerOutcome> {
        if let Some(addr) = self.options.rest_addr {
            let bound = rest::spawn(addr, self.board.clone(), self.metrics.clone())
                .await
                .map_err(|source| Error::Io {
                    context: format!("binding the REST endpoint on {addr}"),
                    source,
                })?;
            tracing::info!(%bound, "REST endpoint (Kafka Connect paths + /metrics) listening");
        }
        for config in &self.connectors {
            for warning in config.check_supported()? {
                tracing::warn!(connector = %config.name, "{warning}");
            }
        }
        let mut tasks = JoinSet::new();
        let new_topics = NewTopics::default();
        for config in self.connectors {
            let pause = self.board.register(&config.name, config.kind);
            let ctx = TaskContext {
                board: self.board.clone(),
                metrics: self.metrics.clone(),
                data_dir: self.options.data_dir.clone(),
                pause,
                new_topics: new_topics.clone(),
            };
            let shutdown = shutdown.clone();
            let max_backoff = self.options.max_restart_backoff;
            tasks.spawn(supervise(config, ctx, shutdown, max_backoff));
        }
        let mut outcome = WorkerOutcome::default();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Some(failure)) => outcome.failed.push(failure),
                Ok(None) => {}
                Err(e) => outcome.failed.push(("<task>".into(), e.to_string())),
            }
        }
        Ok(outcome)
    }
}

/// Runs one connector, restarting it after retriable errors. Returns the
/// connector's name and error if it failed permanently.
async fn supervise(
    config: ConnectorConfig,
    ctx: TaskContext,
    mut shutdown: watch::Receiver<bool>,
    max_backoff: Duration,
) -> Option<(String, String)> {
    let name = config.name.clone();
    let mut backoff = Duration::from_millis(500);
    loop {
        let run = match config.kind {
            ConnectorKind::Source => {
                Box::pin(run_source(config.clone(), ctx.clone(), shutdown.clone()))
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
            }
            ConnectorKind::Sink => {
                Box::pin(run_sink(config.clone(), ctx.clone(), shutdown.clone()))
            }
        };
        match run.await {
            Ok(()) => {
                ctx.board.set(&name, ConnectorState::Unassigned);
                return None;
            }
            Err(e) if e.is_retriable() && !*shutdown.borrow() => {
                tracing::warn!(connector = %name, error = %e, retry_in = ?backoff, "connector failed with a retriable error; restarting");
                ctx.board.set(&name, ConnectorState::Unassigned);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return None;
                }
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(connector = %name, error = %message, "connector failed");
                ctx.board
                    .set(&name, ConnectorState::Failed(message.clone()));
                return Some((name, message));
            }
        }
    }
}

/// The environment variable glibc reads, at start-up only, for how many
/// malloc arenas it may create.
pub const MALLOC_ARENA_MAX: &str = "MALLOC_ARENA_MAX";

/// The environment variable glibc reads, at start-up only, for the block
/// size from which `malloc` maps memory of its own instead of using the heap
/// (setting it also turns off glibc's raising of that size at run time).
pub const MALLOC_MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";

/// Makes the process run with one glibc malloc arena, unless the user chose
/// a value: returns `Ok` at once if `MALLOC_ARENA_MAX` is set, otherwise
/// replaces the process (same PID, same arguments) with itself started with
/// `MALLOC_ARENA_MAX=1`, and returns only if that exec failed (with why).
///
/// glibc gives each thread that meets a locked arena a new one (up to 8 per
/// core), and memory freed into an arena stays with it: with the Tokio
/// workers, the replication reader and librdkafka's threads all allocating
/// record buffers, the extra arenas cost 20–28 MiB of peak RSS on the
/// exactly-once source (77–86 → 59 MiB over 300k rows, `docs/benchmarks.md`)
/// for 5–10 % more throughput.
///
/// The same exec also sets [`MALLOC_MMAP_THRESHOLD`] to 128 KiB unless it is
/// set: glibc otherwise raises its threshold to the largest block freed so
/// far, after which librdkafka's decompressed fetches and the source's
/// batch vectors (100 KiB – 4 MiB each) come from, and fragment, the heap;
/// mapped separately they go back to the kernel when freed (end to end,
/// 200k rows: 63–66 → 60–61 MiB peak RSS, same throughput).
///
/// glibc reads these settings only when the process starts, hence the exec.
/// Call it first in `main`, before any thread exists; programs embedding
/// the crates decide for themselves.
pub fn single_malloc_arena() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(MALLOC_ARENA_MAX).is_some() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1))
        .env(MALLOC_ARENA_MAX, "1");
    if std::env::var_os(MALLOC_MMAP_THRESHOLD).is_none() {
        cmd.env(MALLOC_MMAP_THRESHOLD, "131072");
    }
    Err(cmd.exec())
}
