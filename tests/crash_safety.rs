//! Crash safety end to end: a pgbench workload runs on the source while the
//! pipeline process (the `pipeline` example, source + sink connectors from
//! the seed's files) is killed with SIGKILL at random moments and restarted,
//! at least 20 times. After catch-up every table in the target equals the
//! source row for row: nothing lost, nothing duplicated.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdc_testkit::{unique_name, Services, TestDatabase};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const KILLS: usize = 20;

/// Compared columns per table (pgbench's `filler` char columns are left out).
const TABLES: [(&str, &str, &str); 4] = [
    ("pgbench_accounts", "aid", "aid, bid, abalance"),
    ("pgbench_branches", "bid", "bid, bbalance"),
    ("pgbench_tellers", "tid", "tid, bid, tbalance"),
    ("pgbench_history", "hid", "hid, tid, bid, aid, delta"),
];

fn pipeline_binary() -> Result<PathBuf, String> {
    // `cargo test` builds the examples next to the test binaries' deps dir.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().and_then(Path::parent).ok_or("no target dir")?;
    let bin = dir.join("examples/pipeline");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not built: run through `cargo test` (which builds examples)",
            bin.display()
        ))
    }
}

fn pg_tool(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir).join(name);
    }
    Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

struct Pipeline {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

impl Pipeline {
    fn spawn(&self) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }
}

async fn table_rows(
    db: &tokio_postgres::Client,
    table: &str,
    key: &str,
    cols: &str,
) -> Vec<String> {
    let sql = format!("SELECT concat_ws('|', {cols}) FROM {table} ORDER BY {key}");
    match db.query(&sql, &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Returns the tables that differ (empty when the target equals the source).
async fn differences(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (table, key, cols) in TABLES {
        let want = table_rows(source, table, key, cols).await;
        let got = table_rows(target, table, key, cols).await;
        if want != got {
            diff.push(format!(
                "{table}: source {} rows, target {} rows",
                want.len(),
                got.len()
            ));
        }
    }
    diff
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_workload_loses_and_duplicates_nothing() -> TestResult {
    let services = Services::get()?;
    let binary = pipeline_binary()?;
    let source_db: TestDatabase = services.source().fresh_database("crash_src").await?;
    let target_db = services.target().fresh_database("crash_tgt").await?;
    let src = source_db.server();
    let pgbench = pg_tool("pgbench");
    let pg_env = |cmd: &mut Command| {
        cmd.env("PGPASSWORD", src.password()).args([
            "-h",
            &src.host(),
            "-p",
            &src.port().to_string(),
            "-U",
            &src.user(),
        ]);
    };
    let mut init = Command::new(&pgbench);
    pg_env(&mut init);
    let status = init
        .args(["-i", "-s", "1", "-q", source_db.name()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    assert!(status.success(), "pgbench -i failed");
    let source = source_db.connect().await?;
    // pgbench_history has no key: give it one so it can be upserted.
    source
        .batch_execute("ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY")
        .await?;
    let target = target_db.connect().await?;

    let prefix = unique_name("crash");
    let tgt = target_db.server();
    let log = std::env::temp_dir().join(format!("{}.log", unique_name("crash-pipeline")));
    let data_dir = std::env::temp_dir().join(unique_name("crash-data"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let set = |flag: &str, kv: String| [flag.to_string(), kv];
    let mut args: Vec<String> = vec![
        "--source".into(),
        root.join("postg-source-connector.json")
            .display()
            .to_string(),
        "--sink".into(),
        root.join("postg-sink-connector.json").display().to_string(),
        "--bootstrap-servers".into(),
        services.kafka_brokers().to_string(),
        "--no-rest".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    for kv in [
        format!("database.hostname={}", src.host()),
        format!("database.port={}", src.port()),
        format!("database.dbname={}", source_db.name()),
        format!("slot.name={}", unique_name("slot")),
        format!("publication.name={}", unique_name("pub")),
        format!("topic.prefix={prefix}"),
        "table.include.list=public\\.pgbench_.*".into(),
        format!(
            "errors.deadletterqueue.topic.name={}",
            unique_name("dlq_src")
        ),
    ] {
        args.extend(set("--source-set", kv));
    }
    for kv in [
        format!(
            "connection.url=jdbc:postgresql://{}:{}/{}",
            tgt.host(),
            tgt.port(),
            target_db.name()
        ),
        format!("topics.regex={prefix}\\.public\\..*"),
        format!(
            "errors.deadletterqueue.topic.name={}",
            unique_name("dlq_sink")
        ),
        // A killed consumer's membership would otherwise block the group for
        // the default 45 s session timeout on every restart.
        "consumer.override.session.timeout.ms=6000".into(),
        "consumer.override.heartbeat.interval.ms=1000".into(),
    ] {
        args.extend(set("--sink-set", kv));
    }
    let pipeline = Pipeline {
        binary,
        args,
        log: log.clone(),
    };

    // The workload: 4 clients for 30 s.
    let mut bench = Command::new(&pgbench);
    pg_env(&mut bench);
    let mut workload = bench
        .args(["-n", "-c", "4", "-j", "2", "-T", "30", source_db.name()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;

    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let mut kills = 0usize;
    let started = Instant::now();
    while kills < KILLS {
        let mut child = pipeline.spawn()?;
        let wait = 400 + xorshift(&mut seed) % 1600;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "pipeline exited by itself ({status}) after {kills} kills:\n{tail}"
            )
            .into());
        }
        // The binary re-executes itself with one malloc arena and a fixed
        // mmap threshold, keeping its PID (so this SIGKILL reaches the
        // running pipeline).
        let environ = std::fs::read(format!("/proc/{}/environ", child.id()))?;
        for wanted in [&b"MALLOC_ARENA_MAX=1"[..], b"MALLOC_MMAP_THRESHOLD_=131072"] {
            assert!(
                environ.split(|&b| b == 0).any(|kv| kv == wanted),
                "the pipeline runs without {}",
                String::from_utf8_lossy(wanted)
            );
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        kills += 1;
    }
    let workload_status = workload.wait()?;
    assert!(workload_status.success(), "pgbench failed");
    let transactions: i64 = source
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await?
        .get(0);
    assert!(
        transactions > 100,
        "the workload ran ({transactions} transactions)"
    );

    // Catch up with one last, undisturbed run.
    let mut child = pipeline.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut diff = differences(&source, &target).await;
    while !diff.is_empty() && Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("pipeline exited during catch-up ({status}):\n{tail}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        diff = differences(&source, &target).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "crash safety: {kills} SIGKILLs over {:.0} s, {transactions} pgbench transactions, converged: {}",
        started.elapsed().as_secs_f64(),
        diff.is_empty()
    );
    if !diff.is_empty() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: String = tail
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(format!(
            "target differs from source after catch-up: {diff:?}\nlog tail:\n{tail}"
        )
        .into());
    }
    // Exactly-once source: every streamed change is in its topic once
    // (read_committed). Snapshot rows (`op: r`) of a chunk interrupted by a
    // kill may be read again; they are counted, not failed on.
    let (events, duplicates, reread) = topic_duplicates(services.kafka_brokers(), &prefix).await?;
    eprintln!(
        "crash safety: {events} change events in Kafka, {duplicates} duplicated streamed changes, \
         {reread} snapshot rows read twice"
    );
    assert_eq!(
        duplicates, 0,
        "exactly-once source: streamed changes duplicated in Kafka"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_file(&log);
    Ok(())
}

/// Reads every committed record of the four pgbench topics and counts
/// events, streamed changes seen more than once (same topic, op and WAL
/// position) and snapshot rows seen more than once.
async fn topic_duplicates(
    brokers: &str,
    prefix: &str,
) -> Result<(usize, usize, usize), Box<dyn std::error::Error + Send + Sync>> {
    use kafka_io::{BatchConsumer, BatchOptions, KafkaConfig};
    use std::collections::{BTreeMap, HashSet};

    let mut props = BTreeMap::new();
    props.insert("bootstrap.servers".to_string(), brokers.to_string());
    let consumer = BatchConsumer::new(
        &KafkaConfig::from_properties(&props)?,
        &unique_name("dup_reader"),
        None,
        BatchOptions {
            max_records: 5000,
            max_bytes: 16 << 20,
            max_wait: Duration::from_millis(500),
        },
    )?;
    let topics: Vec<String> = TABLES
        .iter()
        .map(|(t, _, _)| format!("{prefix}.public.{t}"))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let mut seen = HashSet::new();
    let mut rows = HashSet::new();
    let (mut events, mut duplicates, mut reread) = (0, 0, 0);
    let mut idle = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while idle < 6 && Instant::now() < deadline {
        let batch = consumer.next_batch().await?;
        if batch.records.is_empty() {
            // Only count idle polls once partitions are assigned.
            if !consumer.assignment().is_empty() {
                idle += 1;
            }
            continue;
        }
        idle = 0;
        for r in batch.records {
            let Some(value) = r.value else { continue }; // tombstone
            let v: serde_json::Value = serde_json::from_slice(&value)?;
            let payload = v.get("payload").unwrap_or(&v);
            let op = payload["op"].as_str().unwrap_or_default().to_string();
            events += 1;
            if op == "r" {
                let key =
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
                if !rows.insert((r.topic.clone(), key)) {
                    reread += 1;
                }
            } else {
                let lsn = payload["source"]["lsn"].as_i64().unwrap_or_default();
                if !seen.insert((r.topic.clone(), op, lsn)) {
                    duplicates += 1;
                }
            }
        }
    }
    Ok((events, duplicates, reread))
}
