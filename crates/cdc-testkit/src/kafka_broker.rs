//! A private, throw-away Kafka broker for tests that stop and restart it.
//!
//! Same jars and layout as `cargo xtask services up` (KRaft combined mode,
//! single node) but on free ports with its data in a temporary directory
//! under `target/tmp/`, so a test can kill and restart *its* broker without
//! disturbing the shared services other tests use.
//!
//! ```no_run
//! # fn demo() -> Result<(), cdc_testkit::Error> {
//! let mut broker = cdc_testkit::KafkaBroker::start()?;
//! let brokers = broker.bootstrap_servers(); // "127.0.0.1:<port>"
//! broker.stop()?;    // SIGTERM, wait for exit; data kept
//! broker.restart()?; // same ports, same data
//! # Ok(()) }
//! ```

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::process::{self, java, tail};
use crate::services::{target_dir, unique_name};

/// Env var naming the Kafka classpath (else `target/services/kafka/classpath.txt`).
pub const ENV_KAFKA_CLASSPATH: &str = "CDC_TEST_KAFKA_CLASSPATH";

/// A Kafka broker process owned by one test; killed and deleted on drop.
#[derive(Debug)]
pub struct KafkaBroker {
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    java: PathBuf,
    classpath: String,
    child: Option<Child>,
}

fn broker_err(msg: impl Into<String>) -> Error {
    Error::Broker(msg.into())
}

fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    process::free_ports().map_err(|e| broker_err(format!("no free port: {e}")))
}

/// The Kafka broker + tools classpath written by `cargo xtask services up`.
pub fn kafka_classpath() -> Result<String, Error> {
    if let Ok(cp) = std::env::var(ENV_KAFKA_CLASSPATH) {
        return Ok(cp);
    }
    let file = target_dir()
        .map(|t| t.join("services/kafka/classpath.txt"))
        .ok_or_else(|| broker_err("cannot locate the target directory"))?;
    let cp = fs::read_to_string(&file).map_err(|e| {
        broker_err(format!(
            "reading {} ({e}); run `cargo xtask services up` once to resolve the Kafka jars, \
             or set {ENV_KAFKA_CLASSPATH}",
            file.display()
        ))
    })?;
    Ok(cp.trim().to_string())
}

/// True when a Kafka broker answers an ApiVersions (v0) request on `port`.
pub fn api_versions_ok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let client_id = b"cdc-testkit";
    let correlation_id: i32 = 0x7e57;
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut req = (body.len() as i32).to_be_bytes().to_vec();
    req.extend_from_slice(&body);
    if stream.write_all(&req).is_err() {
        return false;
    }
    let mut header = [0u8; 10];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let corr = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let error = i16::from_be_bytes([header[8], header[9]]);
    corr == correlation_id && error == 0
}

fn cluster_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
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
        for i in 0..chunk.len() + 1 {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl KafkaBroker {
    /// Formats storage in a fresh directory and starts a broker on free
    /// ports; returns once it answers requests (blocking, up to 120 s).
    ///
    /// A start that fails is tried twice more in a fresh directory on new
    /// ports (each failure is printed): a port found free can be taken by
    /// another process's connection before the JVM binds it.
    pub fn start() -> Result<Self, Error> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Ok(broker) => return Ok(broker),
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!("kafka broker: start {attempt} of {ATTEMPTS} failed, retrying: {e}");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn start_once() -> Result<Self, Error> {
        let base = target_dir()
            .map(|t| t.join("tmp"))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(unique_name("kafka_broker"));
        fs::create_dir_all(&dir)
            .map_err(|e| broker_err(format!("creating {}: {e}", dir.display())))?;
        let [port, controller_port] = free_ports()?;
        let mut broker = KafkaBroker {
            port,
            controller_port,
            java: java()?,
            classpath: kafka_classpath()?,
            dir,
            child: None,
        };
        broker.write_config()?;
        let out = Command::new(&broker.java)
            .args(["-Xmx256m", "-cp", &broker.classpath])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                broker.log4j().display()
            ))
            .args([
                "kafka.tools.StorageTool",
                "format",
                "-t",
                &cluster_id(),
                "-c",
            ])
            .arg(broker.properties())
            .output()
            .map_err(|e| broker_err(format!("running kafka storage format: {e}")))?;
        if !out.status.success() {
            return Err(broker_err(format!(
                "kafka storage format failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        broker.launch()?;
        Ok(broker)
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's directory (config, logs, data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The JVM's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs and answers requests.
    pub fn healthy(&self) -> bool {
        self.child.is_some() && api_versions_ok(self.port)
    }

    fn properties(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log4j(&self) -> PathBuf {
        self.dir.join("log4j2.properties")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    fn write_config(&self) -> Result<(), Error> {
        let props = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{cport}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={data}\n\
             auto.create.topics.enable=false\n\
             num.partitions=1\n\
             default.replication.factor=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=3\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=3\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             num.network.threads=1\n\
             num.io.threads=2\n\
             log.cleaner.threads=1\n\
             log.cleaner.dedupe.buffer.size=8388608\n",
            port = self.port,
            cport = self.controller_port,
            data = self.dir.join("data").display()
        );
        let log4j = format!(
            "status = warn\n\
             appender.file.type = File\n\
             appender.file.name = FILE\n\
             appender.file.fileName = {dir}/server.log\n\
             appender.file.layout.type = PatternLayout\n\
             appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = INFO\n\
             rootLogger.appenderRef.file.ref = FILE\n",
            dir = self.dir.display()
        );
        fs::write(self.properties(), props)
            .and_then(|()| fs::write(self.log4j(), log4j))
            .map_err(|e| broker_err(format!("writing broker config: {e}")))
    }

    fn launch(&mut self) -> Result<(), Error> {
        let log = fs::File::create(self.log_file())
            .map_err(|e| broker_err(format!("creating broker log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| broker_err(format!("broker log: {e}")))?;
        let child = Command::new(&self.java)
            .args([
                "-Xmx384m",
                "-Xms128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.log4j().display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
            .args(["-cp", &self.classpath, "kafka.Kafka"])
            .arg(self.properties())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| broker_err(format!("starting the Kafka JVM: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(broker_err(format!(
                        "the Kafka JVM exited ({status}); log: {}",
                        tail(&self.log_file())
                    )));
                }
            }
            let started = fs::read_to_string(self.dir.join("server.log"))
                .is_ok_and(|t| t.matches("Kafka Server started").count() >= self.starts());
            if started && api_versions_ok(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill();
        Err(broker_err(format!(
            "broker did not start within 120 s; log: {}",
            tail(&self.log_file())
        )))
    }

    /// How many launches the server log should report (restarts append).
    fn starts(&self) -> usize {
        fs::read_to_string(self.dir.join("launches"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1)
    }

    /// Stops the broker with SIGTERM (controlled shutdown) and waits for
    /// the process to exit; the data directory is kept.
    pub fn stop(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }

    /// Kills the broker with SIGKILL (a crash); the data directory is kept.
    pub fn kill(&mut self) {
        process::kill(&mut self.child);
    }

    /// Starts the broker again on the same ports with the same data.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        let n = self.starts() + 1;
        fs::write(self.dir.join("launches"), n.to_string())
            .map_err(|e| broker_err(format!("writing launch count: {e}")))?;
        self.launch()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("CDC_TEST_KEEP_BROKER").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
