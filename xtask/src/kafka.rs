//! A single-node Apache Kafka 4.x (KRaft combined mode) under `target/services/kafka`.
//!
//! The jars come from Maven Central through `xtask/kafka/pom.xml` (cached in
//! `~/.m2`); the broker runs on the machine's Java 17 with a bounded heap.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use crate::layout::Layout;
use crate::process::{self, run_checked};

/// Heap of the broker JVM.
const HEAP: &str = "-Xmx512m";

pub struct Kafka {
    pub dir: PathBuf,
    pub port: u16,
    pub controller_port: u16,
    pom: PathBuf,
}

impl Kafka {
    pub fn new(layout: &Layout) -> Self {
        Self {
            dir: layout.services_dir.join("kafka"),
            port: layout.kafka_port,
            controller_port: layout.kafka_controller_port,
            pom: layout.root.join("xtask/kafka/pom.xml"),
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("kafka.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn properties(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    /// Our broker's pid, if the pid file names a live process that is our broker.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let ours = process::pid_alive(pid) && {
            let cmd = process::cmdline(pid);
            cmd.contains("kafka.Kafka") && cmd.contains(&self.properties().display().to_string())
        };
        ours.then_some(pid)
    }

    /// True when the broker answers an ApiVersions request.
    pub fn healthy(&self) -> bool {
        api_versions_ok(self.port)
    }

    /// The classpath of the broker and tools, resolved by Maven (cached).
    pub fn classpath(&self) -> Result<String> {
        let cp_file = self.dir.join("classpath.txt");
        let pom_time = fs::metadata(&self.pom).and_then(|m| m.modified()).ok();
        let cached = fs::read_to_string(&cp_file).ok().filter(|cp| {
            let fresh = fs::metadata(&cp_file)
                .and_then(|m| m.modified())
                .ok()
                .zip(pom_time)
                .is_some_and(|(cp_t, pom_t)| cp_t >= pom_t);
            fresh && !cp.trim().is_empty() && cp.trim().split(':').all(|j| Path::new(j).is_file())
        });
        if let Some(cp) = cached {
            return Ok(cp.trim().to_string());
        }
        let mvn = process::which("mvn").context(
            "Maven (mvn) not found: it resolves the Kafka jars from Maven Central. \
             Install it (Debian/Ubuntu: `apt-get install maven`)",
        )?;
        println!(
            "  kafka: resolving Kafka jars with Maven (first run downloads ~100 MB into ~/.m2) …"
        );
        fs::create_dir_all(&self.dir)?;
        run_checked(
            Command::new(mvn)
                .args(["-B", "-q", "-f"])
                .arg(&self.pom)
                .arg("dependency:build-classpath")
                .arg(format!("-Dmdep.outputFile={}", cp_file.display())),
            "mvn dependency:build-classpath (resolving Kafka jars)",
        )?;
        let cp = fs::read_to_string(&cp_file).context("reading the Maven classpath file")?;
        Ok(cp.trim().to_string())
    }

    /// The Java launcher: `$JAVA_HOME/bin/java`, else `java` on PATH.
    pub fn java() -> Result<PathBuf> {
        if let Some(home) = std::env::var_os("JAVA_HOME") {
            let java = PathBuf::from(home).join("bin/java");
            if java.is_file() {
                return Ok(java);
            }
        }
        process::which("java").context(
            "Java not found: Kafka needs a Java 17+ runtime. Install it (Debian/Ubuntu: \
             `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME",
        )
    }

    pub fn up(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            if process::wait_until(Duration::from_secs(60), || self.healthy()) {
                println!(
                    "  kafka: already running on 127.0.0.1:{} (pid {pid})",
                    self.port
                );
                return Ok(());
            }
            bail!(
                "kafka (pid {pid}) is running but does not answer on port {}; last log lines:\n{}",
                self.port,
                process::tail(&self.log_file(), 40)
            );
        }
        process::ensure_port_free(self.port, "kafka", "CDC_KAFKA_PORT")?;
        process::ensure_port_free(
            self.controller_port,
            "kafka controller",
            "CDC_KAFKA_CONTROLLER_PORT",
        )?;
        let java = Self::java()?;
        let cp = self.classpath()?;
        fs::create_dir_all(&self.dir)?;
        self.write_config()?;
        if !self.data_dir().join("meta.properties").exists() {
            println!("  kafka: formatting storage {}", self.data_dir().display());
            run_checked(
                Command::new(&java)
                    .args([HEAP, "-cp", &cp])
                    .arg(format!(
                        "-Dlog4j2.configurationFile={}",
                        self.dir.join("log4j2.properties").display()
                    ))
                    .args([
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        &cluster_id(),
                        "-c",
                    ])
                    .arg(self.properties()),
                "kafka storage format",
            )?;
        }
        println!("  kafka: starting on 127.0.0.1:{} …", self.port);
        let log = fs::File::create(self.log_file())?;
        let child = Command::new(&java)
            .args([
                HEAP,
                "-Xms256m",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
            .args(["-cp", &cp, "kafka.Kafka"])
            .arg(self.properties())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the Kafka JVM")?;
        let pid = child.id();
        fs::write(self.pid_file(), pid.to_string())?;
        let started = process::wait_until(Duration::from_secs(90), || {
            process::pid_alive(pid) && self.healthy() && log_says_started(&self.log_file())
        });
        if !started {
            let alive = process::pid_alive(pid);
            if alive {
                let _ = process::signal(pid, "KILL");
            }
            bail!(
                "kafka did not become healthy on 127.0.0.1:{} within 90 s ({}); last log lines ({}):\n{}",
                self.port,
                if alive { "killed it" } else { "the JVM exited" },
                self.log_file().display(),
                process::tail(&self.log_file(), 40)
            );
        }
        Ok(())
    }

    pub fn down(&self) -> Result<()> {
        let Some(pid) = self.pid() else {
            println!("  kafka: not running");
            let _ = fs::remove_file(self.pid_file());
            return Ok(());
        };
        println!("  kafka: stopping pid {pid}");
        process::signal(pid, "TERM")?;
        if !process::wait_exit(pid, Duration::from_secs(30)) {
            eprintln!("  kafka: did not stop within 30 s, killing pid {pid}");
            process::signal(pid, "KILL")?;
            process::wait_exit(pid, Duration::from_secs(10));
        }
        let _ = fs::remove_file(self.pid_file());
        Ok(())
    }

    fn write_config(&self) -> Result<()> {
        let props = format!(
            "# Written by `cargo xtask services up`; edits are overwritten.\n\
             process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{cport}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={data}\n\
             # Our code creates topics, as the seed's connectors do.\n\
             auto.create.topics.enable=false\n\
             num.partitions=1\n\
             default.replication.factor=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=10\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=10\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             num.network.threads=2\n\
             num.io.threads=4\n\
             log.retention.check.interval.ms=300000\n\
             log.cleaner.threads=1\n\
             log.cleaner.dedupe.buffer.size=16777216\n",
            port = self.port,
            cport = self.controller_port,
            data = self.data_dir().display()
        );
        fs::write(self.properties(), props)?;
        let log4j = format!(
            "status = warn\n\
             appender.file.type = File\n\
             appender.file.name = FILE\n\
             appender.file.fileName = {dir}/server.log\n\
             appender.file.layout.type = PatternLayout\n\
             appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = INFO\n\
             rootLogger.appenderRef.file.ref = FILE\n\
             logger.kafka.name = kafka\n\
             logger.kafka.level = INFO\n\
             logger.state.name = state.change.logger\n\
             logger.state.level = WARN\n",
            dir = self.dir.display()
        );
        fs::write(self.dir.join("log4j2.properties"), log4j)?;
        Ok(())
    }
}

fn log_says_started(stdout_log: &Path) -> bool {
    let server_log = stdout_log.with_file_name("server.log");
    [stdout_log, server_log.as_path()]
        .iter()
        .any(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("Kafka Server started")))
}

/// A random cluster id: 16 bytes, URL-safe base64 without padding (as
/// `kafka-storage random-uuid` prints).
fn cluster_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    } else {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Sends a Kafka ApiVersions (v0) request and checks the response's error code.
pub fn api_versions_ok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let client_id = b"xtask";
    let correlation_id: i32 = 0x5eed;
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut req = (body.len() as i32).to_be_bytes().to_vec();
    req.extend_from_slice(&body);
    if stream.write_all(&req).is_err() {
        return false;
    }
    let mut header = [0u8; 10]; // size, correlation id, error code
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let corr = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let error = i16::from_be_bytes([header[8], header[9]]);
    corr == correlation_id && error == 0
}
