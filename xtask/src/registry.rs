//! A Confluent-API schema registry under `target/services/schema-registry`:
//! Apicurio Registry with in-memory storage, whose Confluent-compatible API
//! (`/apis/ccompat/v7`) is what Debezium users point
//! `value.converter.schema.registry.url` at.
//!
//! It also serves HTTPS on a second port with a certificate signed by a
//! test CA made with the `openssl` CLI (`tls/ca.crt`), for the client's TLS
//! options (`schema.registry.ssl.truststore.location`).
//!
//! `xtask/registry/pom.xml` builds a runnable jar from the Apicurio modules
//! on Maven Central (first run downloads into `~/.m2`, later runs reuse the
//! jar under `target/services/schema-registry/build`, rebuilt when a file of
//! `xtask/registry` is newer); it runs on the machine's Java 17 with a small
//! heap.
//!
//! The build includes Quarkus' HTTP basic authentication (embedded users),
//! off unless an instance is started with
//! `pgcdc.registry.require-authentication=true`: the shared registry asks
//! for no credentials; the basic-auth test starts its own instance of the
//! same jar (cdc-testkit's `SchemaRegistryServer::start_with_basic_auth`).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::kafka::Kafka;
use crate::layout::{self, Layout};
use crate::process::{self, run_checked};

/// Apicurio Registry release built by `xtask/registry/pom.xml` (its project version).
pub const APICURIO_VERSION: &str = "2.4.2.Final";
/// Default port (override with `CDC_SCHEMA_REGISTRY_PORT`).
pub const DEFAULT_PORT: u16 = 58081;
/// Default HTTPS port (override with `CDC_SCHEMA_REGISTRY_TLS_PORT`).
pub const DEFAULT_TLS_PORT: u16 = 58443;
/// Path of the Confluent-compatible API on the server.
pub const CCOMPAT_PATH: &str = "/apis/ccompat/v7";
/// Heap of the registry JVM (in-memory storage holds a few test schemas).
const HEAP: &str = "-Xmx256m";
/// How long a started registry may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct SchemaRegistry {
    pub dir: PathBuf,
    pub port: u16,
    pub tls_port: u16,
    project: PathBuf,
}

impl SchemaRegistry {
    pub fn new(layout: &Layout) -> Self {
        Self {
            dir: layout.services_dir.join("schema-registry"),
            port: layout::port_from_env("CDC_SCHEMA_REGISTRY_PORT", DEFAULT_PORT),
            tls_port: layout::port_from_env("CDC_SCHEMA_REGISTRY_TLS_PORT", DEFAULT_TLS_PORT),
            project: layout.root.join("xtask/registry"),
        }
    }

    /// The Confluent-compatible base URL clients use as `schema.registry.url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{CCOMPAT_PATH}", self.port)
    }

    /// The HTTPS base URL (certificate for `localhost` and `127.0.0.1`).
    pub fn tls_url(&self) -> String {
        format!("https://localhost:{}{CCOMPAT_PATH}", self.tls_port)
    }

    /// The CA certificate clients trust for [`Self::tls_url`], once made.
    pub fn tls_ca(&self) -> Option<PathBuf> {
        let ca = self.tls_dir().join("ca.crt");
        ca.is_file().then_some(ca)
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("registry.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("registry.log")
    }

    fn build_dir(&self) -> PathBuf {
        self.dir.join("build")
    }

    fn runner_jar(&self) -> PathBuf {
        self.build_dir().join(format!(
            "schema-registry-runtime-{APICURIO_VERSION}-runner.jar"
        ))
    }

    /// Our registry's pid, if the pid file names a live process running our jar.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let ours = process::pid_alive(pid)
            && process::cmdline(pid).contains(&self.runner_jar().display().to_string());
        ours.then_some(pid)
    }

    /// True when the Confluent-compatible API answers `GET /subjects` with 200.
    pub fn healthy(&self) -> bool {
        http_get_status(self.port, &format!("{CCOMPAT_PATH}/subjects")) == Some(200)
    }

    /// True when the runnable jar exists and is newer than every file of
    /// the Maven project (`xtask/registry`).
    fn built_fresh(&self) -> bool {
        let jar_time = fs::metadata(self.runner_jar())
            .and_then(|m| m.modified())
            .ok();
        let newest_input = newest_mtime(&self.project);
        matches!((jar_time, newest_input), (Some(j), Some(i)) if j >= i)
    }

    /// Builds the runnable jar with Maven unless it is newer than the inputs.
    fn ensure_built(&self) -> Result<PathBuf> {
        let jar = self.runner_jar();
        if self.built_fresh() {
            return Ok(jar);
        }
        let mvn = process::which("mvn").context(
            "Maven (mvn) not found: it builds the schema registry (Apicurio) from Maven \
             Central. Install it (Debian/Ubuntu: `apt-get install maven`)",
        )?;
        println!(
            "  schema-registry: building Apicurio Registry {APICURIO_VERSION} with Maven \
             (first run downloads ~250 MB into ~/.m2) …"
        );
        let started = Instant::now();
        fs::create_dir_all(&self.dir)?;
        run_checked(
            Command::new(mvn)
                .args(["-B", "-q", "-f"])
                .arg(self.project.join("pom.xml"))
                .args(["package", "-DskipDefault=true"])
                .arg(format!(
                    "-Dregistry.build.dir={}",
                    self.build_dir().display()
                )),
            "mvn package (building the Apicurio schema registry)",
        )?;
        if !jar.is_file() {
            bail!("the Maven build finished but {} is missing", jar.display());
        }
        println!(
            "  schema-registry: built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(jar)
    }

    pub fn up(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            if process::wait_until(START_TIMEOUT, || self.healthy()) {
                println!(
                    "  schema-registry: already running at {} (pid {pid})",
                    self.url()
                );
                if !self.built_fresh() {
                    // Tests that start their own instance of the app (cdc-testkit's
                    // SchemaRegistryServer) need the current build.
                    println!(
                        "  schema-registry: xtask/registry changed since this registry was built; \
                         `cargo xtask services down && cargo xtask services up` rebuilds it"
                    );
                }
                return Ok(());
            }
            bail!(
                "schema registry (pid {pid}) is running but does not answer on port {}; last log lines:\n{}",
                self.port,
                process::tail(&self.log_file(), 40)
            );
        }
        process::ensure_port_free(self.port, "schema registry", "CDC_SCHEMA_REGISTRY_PORT")?;
        let java = Kafka::java()?;
        let jar = self.ensure_built()?;
        let tls = self.ensure_tls()?;
        if tls.is_some() {
            process::ensure_port_free(
                self.tls_port,
                "schema registry (HTTPS)",
                "CDC_SCHEMA_REGISTRY_TLS_PORT",
            )?;
        }
        println!("  schema-registry: starting at {} …", self.url());
        let started = Instant::now();
        let log = fs::File::create(self.log_file())?;
        let mut cmd = Command::new(&java);
        if let Some((crt, key)) = &tls {
            cmd.arg(format!("-Dquarkus.http.ssl-port={}", self.tls_port))
                .arg(format!(
                    "-Dquarkus.http.ssl.certificate.files={}",
                    crt.display()
                ))
                .arg(format!(
                    "-Dquarkus.http.ssl.certificate.key-files={}",
                    key.display()
                ));
        }
        let child = cmd
            .args([
                HEAP,
                "-Xss512k",
                "-XX:+UseSerialGC",
                // Start fast: C1 only (a test registry serves a few requests).
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                "-Dquarkus.profile=prod",
                "-Dquarkus.http.host=127.0.0.1",
                // A small pool for the in-memory H2 database (Apicurio nests
                // connections, so at least 2). Note: this storage races under
                // concurrent writes (duplicate content ids, lock timeouts, a
                // spurious 409 "artifact already exists"); tests serialize
                // their registrations (crates/cdc-envelope/tests/registry.rs).
                "-Dquarkus.datasource.jdbc.min-size=1",
                "-Dquarkus.datasource.jdbc.initial-size=1",
                "-Dquarkus.datasource.jdbc.max-size=8",
            ])
            .arg(format!("-Dquarkus.http.port={}", self.port))
            .arg("-jar")
            .arg(&jar)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the schema registry JVM")?;
        let pid = child.id();
        fs::write(self.pid_file(), pid.to_string())?;
        let ok = process::wait_until(START_TIMEOUT, || process::pid_alive(pid) && self.healthy());
        if !ok {
            let alive = process::pid_alive(pid);
            if alive {
                let _ = process::signal(pid, "KILL");
            }
            bail!(
                "schema registry did not answer at {} within {} s ({}); last log lines ({}):\n{}",
                self.url(),
                START_TIMEOUT.as_secs(),
                if alive { "killed it" } else { "the JVM exited" },
                self.log_file().display(),
                process::tail(&self.log_file(), 40)
            );
        }
        println!(
            "  schema-registry: answering after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// A test CA and a server certificate it signs (EC P-256, SAN
    /// `DNS:localhost`, `IP:127.0.0.1`, ten years), made once with the
    /// `openssl` CLI. `None` (HTTP only, with a warning) without `openssl`.
    fn ensure_tls(&self) -> Result<Option<(PathBuf, PathBuf)>> {
        let dir = self.tls_dir();
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        if crt.is_file() && key.is_file() && dir.join("ca.crt").is_file() {
            return Ok(Some((crt, key)));
        }
        let Some(openssl) = process::which("openssl") else {
            println!(
                "  schema-registry: `openssl` not found, serving HTTP only (the registry TLS \
                 test will fail: install openssl, then restart the services)"
            );
            return Ok(None);
        };
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::certs::make_ca_and_server(&openssl, &dir, "schema-registry")?;
        Ok(Some((crt, key)))
    }

    pub fn down(&self) -> Result<()> {
        let Some(pid) = self.pid() else {
            println!("  schema-registry: not running");
            let _ = fs::remove_file(self.pid_file());
            return Ok(());
        };
        println!("  schema-registry: stopping pid {pid}");
        process::signal(pid, "TERM")?;
        if !process::wait_exit(pid, Duration::from_secs(30)) {
            eprintln!("  schema-registry: did not stop within 30 s, killing pid {pid}");
            process::signal(pid, "KILL")?;
            process::wait_exit(pid, Duration::from_secs(10));
        }
        let _ = fs::remove_file(self.pid_file());
        Ok(())
    }
}

/// The newest modification time of the files under `dir` (the Maven project).
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // A build directory left inside the project is output, not input.
                if p.file_name().is_some_and(|n| n != "target") {
                    stack.push(p);
                }
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    newest
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0); the response status, if any.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
