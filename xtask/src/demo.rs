//! `cargo xtask demo`: the seed's Quick Start, automated.
//!
//! Services up → a clean `employees` table in `bf_source` → the pipeline
//! example with the seed's two connector files (only hosts and ports
//! overridden) → inserts, updates, deletes → the target converges, shown
//! step by step. Then it keeps running until Ctrl-C (`--once` stops after
//! the check).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kafka::Kafka;
use crate::layout::{Layout, PG_SOURCE_DB, PG_TARGET_DB};
use crate::process;
use crate::services::{self, Services};

const EMPLOYEES: &str = "CREATE TABLE employees (
    emp_id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100),
    department VARCHAR(50),
    salary DECIMAL(10,2),
    hire_date DATE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)";

/// The rows as text; `time.precision.mode=connect` carries milliseconds.
const ROWS: &str = "SELECT emp_id, name, coalesce(email, '-'), coalesce(department, '-'), \
    coalesce(salary::text, '-'), coalesce(hire_date::text, '-'), \
    coalesce(date_trunc('milliseconds', created_at)::text, '-') FROM employees ORDER BY emp_id";

const SLOT: &str = "debezium_pgsource_slot";
const PUBLICATION: &str = "debezium_pub";
const TOPIC: &str = "pgsource.public.employees";
const SINK_GROUP: &str = "connect-pg-sink-connector";

pub fn run(layout: &Layout, once: bool, rest_port: u16) -> Result<()> {
    let started = Instant::now();
    step(1, "starting PostgreSQL source + target and Kafka");
    let s = services::up(layout)?;

    step(2, "building the pipeline example");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    process::run_checked(
        Command::new(&cargo).current_dir(&layout.root).args([
            "build",
            "--quiet",
            "--example",
            "pipeline",
        ]),
        "cargo build --example pipeline",
    )?;
    let binary = target_dir(layout).join("debug/examples/pipeline");

    step(
        3,
        "resetting the demo: employees table in bf_source, slot, publication, topic, target table",
    );
    reset(layout, &s)?;

    step(
        4,
        "starting pg-source-connector and pg-sink-connector from config/postg-*-connector.json",
    );
    let data_dir = layout.services_dir.join("demo-data");
    let _ = fs::remove_dir_all(&data_dir);
    let log = layout.services_dir.join("demo-pipeline.log");
    let mut child = spawn_pipeline(layout, &binary, &data_dir, &log, rest_port)?;
    let outcome = drive(&s, &mut child, rest_port, &log);
    if let Err(e) = outcome {
        stop(&mut child);
        return Err(e);
    }
    println!(
        "\nQuick Start reproduced in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    println!("  connector status: curl http://127.0.0.1:{rest_port}/connectors/pg-source-connector/status");
    println!("  metrics:          curl http://127.0.0.1:{rest_port}/metrics");
    println!("  pipeline log:     {}", log.display());
    if once {
        stop(&mut child);
        return Ok(());
    }
    println!(
        "\nThe pipeline keeps running: change rows with\n  PGPASSWORD=cdc psql -h 127.0.0.1 -p {} -U cdc -d {PG_SOURCE_DB}\n\
         and watch them arrive in\n  PGPASSWORD=cdc psql -h 127.0.0.1 -p {} -U cdc -d {PG_TARGET_DB} -c 'SELECT * FROM employees'\n\
         Press Ctrl-C to stop (the services keep running; `cargo xtask services down` stops them).",
        s.source.port, s.target.port
    );
    let status = child.wait()?;
    if !status.success() && status.code().is_some() {
        bail!("the pipeline exited with {status}; see {}", log.display());
    }
    Ok(())
}

fn target_dir(layout: &Layout) -> PathBuf {
    layout
        .services_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| layout.root.join("target"))
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

fn reset(layout: &Layout, s: &Services) -> Result<()> {
    let src = |sql: &str| s.source.psql(&s.pg_bin, PG_SOURCE_DB, sql);
    src(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{SLOT}' AND active_pid IS NOT NULL"
    ))?;
    std::thread::sleep(Duration::from_millis(300));
    src(&format!("SELECT pg_drop_replication_slot('{SLOT}') FROM pg_replication_slots WHERE slot_name = '{SLOT}'"))?;
    src(&format!("DROP PUBLICATION IF EXISTS {PUBLICATION}"))?;
    src("DROP TABLE IF EXISTS employees")?;
    src(EMPLOYEES)?;
    let tgt = |sql: &str| s.target.psql(&s.pg_bin, PG_TARGET_DB, sql);
    tgt("DROP TABLE IF EXISTS employees")?;
    tgt("DROP TABLE IF EXISTS __pgcdc_sink_offsets")?;
    // Old records and committed offsets would replay into the fresh table.
    let java = Kafka::java()?;
    let cp = Kafka::new(layout).classpath()?;
    let brokers = layout.kafka_brokers();
    let quiet = |args: &[&str]| {
        Command::new(&java)
            .args(["-Xmx256m", "-cp", &cp])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    quiet(&[
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        &brokers,
        "--delete",
        "--if-exists",
        "--topic",
        TOPIC,
    ])?;
    // Fails when the group does not exist yet: fine.
    let _ = quiet(&[
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server",
        &brokers,
        "--delete",
        "--group",
        SINK_GROUP,
    ]);
    Ok(())
}

fn spawn_pipeline(
    layout: &Layout,
    binary: &Path,
    data_dir: &Path,
    log: &Path,
    rest_port: u16,
) -> Result<Child> {
    let out = fs::File::create(log)?;
    let child = Command::new(binary)
        .current_dir(&layout.root)
        .args([
            "--source",
            "config/postg-source-connector.json",
            "--sink",
            "config/postg-sink-connector.json",
        ])
        .args(["--source-set", "database.hostname=127.0.0.1"])
        .args([
            "--source-set",
            &format!("database.port={}", layout.pg_source_port),
        ])
        .args([
            "--sink-set",
            &format!(
                "connection.url=jdbc:postgresql://127.0.0.1:{}/{PG_TARGET_DB}",
                layout.pg_target_port
            ),
        ])
        .args(["--bootstrap-servers", &layout.kafka_brokers()])
        .args(["--rest-addr", &format!("127.0.0.1:{rest_port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the pipeline example")?;
    println!("    pipeline pid {} (log: {})", child.id(), log.display());
    Ok(child)
}

fn drive(s: &Services, child: &mut Child, rest_port: u16, log: &Path) -> Result<()> {
    for name in ["pg-source-connector", "pg-sink-connector"] {
        wait_running(child, rest_port, name, log)?;
        println!("    {name}: RUNNING");
    }
    let src = |sql: &str| s.source.psql(&s.pg_bin, PG_SOURCE_DB, sql);
    step(
        5,
        "INSERT INTO employees … 'John Doe' (the Quick Start's row)",
    );
    src(
        "INSERT INTO employees (name, email, department, salary, hire_date) \
         VALUES ('John Doe', 'john@example.com', 'Engineering', 75000.00, '2024-01-15')",
    )?;
    converge(s, child, log)?;
    step(6, "more changes: 3 inserts, 2 updates, 1 delete");
    src(
        "INSERT INTO employees (name, email, department, salary, hire_date) VALUES \
         ('Jane Roe', 'jane@example.com', 'Sales', 65000.50, '2023-03-01'), \
         ('Ada Lovelace', 'ada@example.com', 'Research', 99000.99, '2022-12-10'), \
         ('Max Mustermann', NULL, 'Ops', NULL, NULL)",
    )?;
    src("UPDATE employees SET salary = 80000, department = 'Platform' WHERE name = 'John Doe'")?;
    src("UPDATE employees SET email = 'max@example.com' WHERE name = 'Max Mustermann'")?;
    src("DELETE FROM employees WHERE name = 'Jane Roe'")?;
    converge(s, child, log)?;
    step(7, "target employees (bf_target):");
    println!(
        "{}",
        s.target.psql(
            &s.pg_bin,
            PG_TARGET_DB,
            "SELECT * FROM employees ORDER BY emp_id"
        )?
    );
    Ok(())
}

fn converge(s: &Services, child: &mut Child, log: &Path) -> Result<()> {
    let t = Instant::now();
    let want = s.source.psql(&s.pg_bin, PG_SOURCE_DB, ROWS)?;
    let mut last_report = Instant::now();
    loop {
        let got = s
            .target
            .psql(&s.pg_bin, PG_TARGET_DB, ROWS)
            .unwrap_or_default();
        if got == want {
            println!(
                "    target matches the source ({} rows) after {} ms",
                want.lines().count(),
                t.elapsed().as_millis()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the pipeline exited ({status}); last log lines:\n{}",
                process::tail(log, 30)
            );
        }
        if t.elapsed() > Duration::from_secs(90) {
            bail!(
                "the target did not converge within 90 s.\nsource:\n{want}\ntarget:\n{got}\nlast log lines:\n{}",
                process::tail(log, 30)
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!(
                "    waiting: target has {} of {} rows …",
                got.lines().count(),
                want.lines().count()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_running(child: &mut Child, port: u16, name: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http_get(port, &format!("/connectors/{name}/status")).unwrap_or_default();
        if body.contains(r#""tasks":[{"id":0,"state":"RUNNING""#) {
            return Ok(());
        }
        if body.contains("FAILED") {
            bail!("{name} FAILED: {body}");
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the pipeline exited ({status}); last log lines:\n{}",
                process::tail(log, 30)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{name} not RUNNING within 60 s (status: {body}); last log lines:\n{}",
                process::tail(log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn http_get(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Graceful stop (SIGTERM: the pipeline flushes and acknowledges), then kill.
fn stop(child: &mut Child) {
    let pid = child.id();
    if process::signal(pid, "TERM").is_ok() && process::wait_exit(pid, Duration::from_secs(20)) {
        let _ = child.wait();
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}
