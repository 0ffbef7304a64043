//! End-to-end benchmark of the replication source: PostgreSQL → typed
//! `ChangeEvent`s (no Kafka), against `pg_recvlogical` draining the same
//! changes, plus the parallel snapshot.
//!
//! ```text
//! cargo bench -p pg-logical --bench source_e2e            # 1M rows
//! PGCDC_BENCH_ROWS=200000 cargo bench -p pg-logical --bench source_e2e
//! PGCDC_BENCH_CHUNK=10240 cargo bench -p pg-logical --bench source_e2e   # snapshot.chunk.size (50000)
//! ```
//!
//! Needs the test services (`cargo xtask services up`) and `pg_recvlogical`
//! on `PATH` (or `PG_BIN`). Prints rows/s and ratios; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdc_testkit::{unique_name, Services, TestDatabase};
use pg_logical::source::{MemoryOffsetStore, PgSource, SourceConfig, SourceEvent};

fn props(
    db: &TestDatabase,
    slot: &str,
    publication: &str,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let s = db.server();
    let mut m: BTreeMap<String, String> = [
        ("database.hostname", s.host()),
        ("database.port", s.port().to_string()),
        ("database.user", s.user()),
        ("database.password", s.password()),
        ("database.dbname", db.name().to_owned()),
        ("database.sslmode", "disable".to_owned()),
        ("topic.prefix", "pgsource".to_owned()),
        ("slot.name", slot.to_owned()),
        ("publication.name", publication.to_owned()),
        ("publication.autocreate.mode", "filtered".to_owned()),
        ("table.include.list", "public\\.employees".to_owned()),
        ("status.update.interval.ms", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    m
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc/self/stat (clock ticks of 100 Hz).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        / 1024
}

async fn drain(src: &mut PgSource, rows: u64) -> (Duration, u64) {
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut last = None;
    let mut buf = Vec::with_capacity(1024);
    while n < rows {
        buf.clear();
        let got =
            tokio::time::timeout(Duration::from_secs(300), src.recv_many(&mut buf, 1024)).await;
        match got {
            Ok(Ok(k)) if k > 0 => {}
            other => panic!("source stopped early after {n} rows: {other:?}"),
        }
        for ev in &buf {
            if let SourceEvent::Change(ev) = ev {
                n += 1;
                last = Some(ev.position);
            }
        }
        if let Some(p) = last {
            src.ack(p);
        }
    }
    (t0.elapsed(), n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let rows: u64 = std::env::var("PGCDC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let services = Services::get().expect("test services (cargo xtask services up)");
    let db = services
        .source()
        .fresh_database("bench_src")
        .await
        .expect("database");
    let client = db.connect().await.expect("connect");
    let publication = unique_name("bench_pub");
    let ours = unique_name("bench_ours");
    let theirs = unique_name("bench_recv");
    for sql in [
        "CREATE TABLE employees (emp_id SERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100), \
         department VARCHAR(50), salary DECIMAL(10,2), hire_date DATE, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
            .to_owned(),
        format!("CREATE PUBLICATION {publication} FOR TABLE employees"),
        format!("SELECT pg_create_logical_replication_slot('{ours}', 'pgoutput')"),
        format!("SELECT pg_create_logical_replication_slot('{theirs}', 'pgoutput')"),
    ] {
        client.batch_execute(&sql).await.expect("setup");
    }
    let t = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO employees (name, email, department, salary, hire_date, created_at)
             SELECT 'Employee ' || g, 'e' || g || '@example.com', 'dept ' || (g % 17), (g % 100000) + 0.25,
                    DATE '2020-01-01' + (g % 1500), TIMESTAMP '2024-01-15 10:30:00' + g * INTERVAL '1 second'
             FROM generate_series(1, {rows}) g"
        ))
        .await
        .expect("insert");
    let end_lsn: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    println!(
        "inserted {rows} rows in one transaction in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // 1. pg_recvlogical: the ceiling.
    let bin = std::env::var("PG_BIN")
        .map(|d| format!("{d}/pg_recvlogical"))
        .unwrap_or_else(|_| "pg_recvlogical".into());
    let url = db.url();
    let args = [
        "-d".to_owned(),
        url.clone(),
        "-S".into(),
        theirs.clone(),
        "--start".into(),
        "-o".into(),
        "proto_version=1".into(),
        "-o".into(),
        format!("publication_names={publication}"),
        "-E".into(),
        end_lsn.clone(),
        "-f".into(),
        "/dev/null".into(),
        "--no-loop".into(),
    ];
    let t = Instant::now();
    let status = std::process::Command::new(&bin)
        .args(&args)
        .status()
        .expect("run pg_recvlogical");
    let recv_secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "pg_recvlogical failed: {status}");
    let recv_rate = rows as f64 / recv_secs;
    println!(
        "pg_recvlogical -S <slot> --start -o proto_version=1 -o publication_names=<pub> -E {end_lsn} -f /dev/null --no-loop: \
         {recv_secs:.2} s, {recv_rate:.0} rows/s"
    );

    // 2. pg-logical source: same changes, typed ChangeEvents.
    let cfg = SourceConfig::from_properties(&props(
        &db,
        &ours,
        &publication,
        &[("snapshot.mode", "no_data")],
    ))
    .unwrap();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut src = PgSource::start(cfg, MemoryOffsetStore::new())
        .await
        .expect("start");
    let (_, n) = drain(&mut src, rows).await;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    src.stop().await.expect("stop");
    let rate = n as f64 / secs;
    println!(
        "pg-logical stream: {n} rows in {secs:.2} s, {rate:.0} rows/s ({:.2}x pg_recvlogical), {:.2} s CPU, peak RSS {} MiB",
        rate / recv_rate,
        cpu,
        peak_rss_mib()
    );

    // 3. Snapshot with parallel readers.
    let thread_counts: &[&str] = if std::env::var_os("PGCDC_BENCH_NO_SNAPSHOT").is_some() {
        &[]
    } else {
        &["1", "2", "4"]
    };
    let chunk = std::env::var("PGCDC_BENCH_CHUNK").unwrap_or_else(|_| "50000".into());
    for &threads in thread_counts {
        let slot = unique_name("bench_snap");
        let cfg = SourceConfig::from_properties(&props(
            &db,
            &slot,
            &publication,
            &[
                ("snapshot.mode", "initial_only"),
                ("snapshot.max.threads", threads),
                ("snapshot.chunk.size", chunk.as_str()),
            ],
        ))
        .unwrap();
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        let mut src = PgSource::start(cfg, MemoryOffsetStore::new())
            .await
            .expect("start");
        let (_, n) = drain(&mut src, rows).await;
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        src.stop().await.expect("stop");
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .expect("drop snapshot slot");
        println!(
            "pg-logical snapshot, snapshot.max.threads={threads}: {n} rows in {secs:.2} s, {:.0} rows/s, {cpu:.2} s CPU (this process)",
            n as f64 / secs
        );
    }
    drop(client);
    db.cleanup().await.expect("cleanup");
}
