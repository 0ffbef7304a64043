//! A local PostgreSQL instance under `target/services/<name>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::layout::{PG_PASSWORD, PG_USER};
use crate::process::{self, run_checked};

/// One PostgreSQL instance (source or target).
pub struct Postgres {
    /// `pg-source` / `pg-target`.
    pub name: &'static str,
    pub port: u16,
    /// Database created on first start (`bf_source` / `bf_target`).
    pub database: &'static str,
    /// Env var that overrides the port (for error messages).
    pub port_env: &'static str,
    pub dir: PathBuf,
}

impl Postgres {
    pub fn new(
        services_dir: &Path,
        name: &'static str,
        port: u16,
        database: &'static str,
        port_env: &'static str,
    ) -> Self {
        Self {
            name,
            port,
            database,
            port_env,
            dir: services_dir.join(name),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The postmaster pid from `postmaster.pid`, if the file exists.
    pub fn pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// True when our postmaster is alive.
    pub fn running(&self) -> bool {
        self.pid().is_some_and(process::pid_alive)
    }

    /// True when the server accepts connections (pg_isready).
    pub fn healthy(&self, bin: &Path) -> bool {
        Command::new(bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Initialises (first time), starts and waits for the instance.
    pub fn up(&self, bin: &Path) -> Result<()> {
        if self.running() {
            if self.healthy(bin) {
                println!(
                    "  {}: already running on 127.0.0.1:{}",
                    self.name, self.port
                );
                return Ok(());
            }
            // Running but not answering: give it a moment (e.g. crash recovery).
            if process::wait_until(Duration::from_secs(30), || self.healthy(bin)) {
                return Ok(());
            }
            bail!(
                "{} (pid {:?}) is running but not accepting connections on port {}; \
                 last log lines:\n{}",
                self.name,
                self.pid(),
                self.port,
                process::tail(&self.log_file(), 30)
            );
        }
        process::ensure_port_free(self.port, self.name, self.port_env)?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let fresh = !self.data_dir().join("PG_VERSION").exists();
        if fresh {
            self.initdb(bin)?;
        }
        let tls = self.ensure_tls()?;
        self.write_config(tls.as_ref())?;
        self.chown_to_postgres()?;
        println!("  {}: starting on 127.0.0.1:{} …", self.name, self.port);
        let data = self.data_dir();
        let log = self.log_file();
        let start = self
            .as_server_user(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .context("running pg_ctl start")?;
        if !start.status.success()
            || !process::wait_until(Duration::from_secs(30), || self.healthy(bin))
        {
            bail!(
                "{} did not become healthy on port {} within 60 s. pg_ctl said: {}{}\nlast log lines ({}):\n{}",
                self.name,
                self.port,
                String::from_utf8_lossy(&start.stdout),
                String::from_utf8_lossy(&start.stderr),
                log.display(),
                process::tail(&log, 30)
            );
        }
        if fresh {
            self.psql(
                bin,
                "postgres",
                &format!("CREATE DATABASE {}", self.database),
            )?;
        }
        Ok(())
    }

    /// Stops the instance (fast shutdown) if it is running.
    pub fn down(&self, bin: &Path) -> Result<()> {
        let Some(pid) = self.pid().filter(|p| process::pid_alive(*p)) else {
            println!("  {}: not running", self.name);
            return Ok(());
        };
        println!("  {}: stopping pid {pid}", self.name);
        let stopped = self
            .as_server_user(bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped || !process::wait_exit(pid, Duration::from_secs(10)) {
            // The postmaster is ours (its pid file is in our data dir): force it.
            process::signal(pid, "QUIT")?;
            if !process::wait_exit(pid, Duration::from_secs(10)) {
                process::signal(pid, "KILL")?;
            }
        }
        Ok(())
    }

    /// A shell command that restarts this instance (fast shutdown, wait until
    /// up), for tests that restart the source mid-stream.
    pub fn restart_command(&self, bin: &Path) -> String {
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
        let ctl = format!(
            "{} -D {} -l {} -m fast -w -t 60 restart",
            q(&bin.join("pg_ctl")),
            q(&self.data_dir()),
            q(&self.log_file())
        );
        if process::is_root() {
            format!("runuser -u postgres -- {ctl}")
        } else {
            ctl
        }
    }

    /// Runs one SQL statement with psql as the `cdc` superuser.
    pub fn psql(&self, bin: &Path, db: &str, sql: &str) -> Result<String> {
        let out = run_checked(
            Command::new(bin.join("psql"))
                .env("PGPASSWORD", PG_PASSWORD)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    PG_USER,
                    "-d",
                    db,
                ])
                .args(["-c", sql]),
            &format!("psql on {}", self.name),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn initdb(&self, bin: &Path) -> Result<()> {
        println!("  {}: initdb {}", self.name, self.data_dir().display());
        let pwfile = self.dir.join("pwfile");
        fs::write(&pwfile, PG_PASSWORD)?;
        self.chown_to_postgres()?;
        let out = self
            .as_server_user(bin.join("initdb"))
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                PG_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--locale=C", "--no-instructions"])
            .output()
            .context("running initdb")?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            bail!(
                "initdb for {} failed:\n{}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Directory with the test TLS material (`ca.crt`, `server.crt`, `server.key`).
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    /// The CA certificate that signed the server's certificate, when the
    /// instance serves TLS (what clients pass as `sslrootcert`).
    pub fn tls_root_cert(&self) -> Option<PathBuf> {
        let ca = self.tls_dir().join("ca.crt");
        ca.is_file().then_some(ca)
    }

    /// Makes a self-signed CA and a server certificate it signs (EC P-256,
    /// SAN `DNS:localhost`, `IP:127.0.0.1`, ten years) with the `openssl`
    /// CLI, once. Returns `(server.crt, server.key)`, or `None` (with a
    /// warning: plain connections keep working) when `openssl` is missing.
    fn ensure_tls(&self) -> Result<Option<(PathBuf, PathBuf)>> {
        let dir = self.tls_dir();
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        if !(crt.is_file() && key.is_file() && dir.join("ca.crt").is_file()) {
            let Some(openssl) = process::which("openssl") else {
                println!(
                    "  {}: `openssl` not found, serving without TLS (TLS tests will fail: \
                     install openssl and run `cargo xtask services down && cargo xtask services up`)",
                    self.name
                );
                return Ok(None);
            };
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            crate::certs::make_ca_and_server(&openssl, &dir, self.name)?;
            println!(
                "  {}: made a test CA and server certificate in {}",
                self.name,
                dir.display()
            );
        }
        // PostgreSQL refuses a key file others can read; it must belong to
        // the server user (chown_to_postgres, which runs next, sees to that).
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", key.display()))?;
        Ok(Some((crt, key)))
    }

    /// Settings written to `postgresql.auto.conf` on every start (so a port
    /// override takes effect without re-initialising).
    fn write_config(&self, tls: Option<&(PathBuf, PathBuf)>) -> Result<()> {
        let fsync = std::env::var("CDC_PG_FSYNC").unwrap_or_else(|_| "off".into());
        let conf = format!(
            "# Written by `cargo xtask services up`; edits are overwritten.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             wal_level = logical\n\
             max_replication_slots = 64\n\
             max_wal_senders = 64\n\
             max_connections = 300\n\
             shared_buffers = '128MB'\n\
             max_wal_size = '1GB'\n\
             wal_sender_timeout = '60s'\n\
             password_encryption = 'scram-sha-256'\n\
             # Test services trade durability for speed (override: CDC_PG_FSYNC=on).\n\
             # Crash tests kill pg-cdc, not the server; server restarts are clean.\n\
             fsync = {fsync}\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n\
             log_min_messages = warning\n",
            port = self.port
        );
        // TLS on top of plain connections (pg_hba's `host` lines accept both).
        let conf = match tls {
            Some((crt, key)) => format!(
                "{conf}ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                crt.display(),
                key.display()
            ),
            None => conf,
        };
        fs::write(self.data_dir().join("postgresql.auto.conf"), conf)
            .with_context(|| format!("writing config of {}", self.name))
    }

    fn chown_to_postgres(&self) -> Result<()> {
        if process::is_root() {
            run_checked(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&self.dir),
                "chown service dir to postgres",
            )?;
        }
        Ok(())
    }

    /// A command that runs `program` as the PostgreSQL server user: the
    /// current user, or `postgres` when we are root (PostgreSQL refuses root).
    fn as_server_user(&self, program: PathBuf) -> Command {
        if process::is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }
}

/// Locates the PostgreSQL server binaries: `PG_BIN`, else `pg_config --bindir`.
pub fn find_bin() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
        bail!(
            "PG_BIN={} has no pg_ctl; point it at a PostgreSQL bin directory",
            dir.display()
        );
    }
    let pg_config = process::which("pg_config").context(
        "PostgreSQL server binaries not found: install them (Debian/Ubuntu: \
         `apt-get install postgresql`) or set PG_BIN to a directory with initdb and pg_ctl",
    )?;
    let out = run_checked(
        Command::new(pg_config).arg("--bindir"),
        "pg_config --bindir",
    )?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("initdb").is_file() || !dir.join("pg_ctl").is_file() {
        bail!(
            "pg_config points at {} but initdb/pg_ctl are not there: install the server \
             package (`apt-get install postgresql`) or set PG_BIN",
            dir.display()
        );
    }
    if process::is_root() && process::which("runuser").is_none() {
        bail!(
            "running as root needs `runuser` (util-linux) to start PostgreSQL as the postgres user"
        );
    }
    Ok(dir)
}
