//! A private schema registry for tests that need one configured differently
//! from the shared one: the same Apicurio Registry app `cargo xtask services
//! up` builds (`xtask/registry/pom.xml`) and runs on 127.0.0.1:58081, started
//! on a free loopback port, in a directory of its own under `target/tmp/`.
//!
//! Today that is a registry that requires HTTP basic authentication on its
//! API (`/apis/…`): Quarkus' basic-auth mechanism against embedded users
//! (quarkus-elytron-security-properties-file), switched on for this instance
//! only (`pgcdc.registry.require-authentication`, see
//! `xtask/registry/src/main/java/pgcdc/registry/RequireAuthenticationPolicy.java`).
//! The shared registry asks for no credentials.
//!
//! ```no_run
//! # fn demo() -> Result<(), cdc_testkit::Error> {
//! let registry = cdc_testkit::SchemaRegistryServer::start_with_basic_auth("fred", "s3cret")?;
//! let url = registry.url(); // "http://127.0.0.1:<port>/apis/ccompat/v7"
//! // … clients without fred's password get 401 …
//! drop(registry); // the JVM is killed, its directory removed
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::process::{find_java, free_port, kill, tail, NO_JAVA};
use crate::services::{setting, target_dir, unique_name};

/// Setting (env var or `target/services/env` line) naming the registry
/// app's `*-runner.jar`; by default the one `cargo xtask services up` built
/// under `target/services/schema-registry/build/`.
pub const ENV_SCHEMA_REGISTRY_JAR: &str = "CDC_TEST_SCHEMA_REGISTRY_JAR";

/// Path of the Confluent-compatible API on the server.
const CCOMPAT_PATH: &str = "/apis/ccompat/v7";
/// How long the JVM may take to listen (it takes 2–10 s on 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A jar in the app's `lib/` that only builds with basic-auth support have.
const AUTH_EXTENSION_JAR: &str = "io.quarkus.quarkus-elytron-security-properties-file-";

/// An Apicurio Registry process owned by a test; killed on drop, its
/// directory removed (`CDC_TEST_KEEP_REGISTRY=1` keeps it).
#[derive(Debug)]
pub struct SchemaRegistryServer {
    dir: PathBuf,
    port: u16,
    user: String,
    child: Option<Child>,
}

fn registry_err(msg: impl Into<String>) -> Error {
    Error::Registry(msg.into())
}

impl SchemaRegistryServer {
    /// Starts a registry whose API answers only requests that carry HTTP
    /// basic credentials of `user` / `password` (others get 401 with a
    /// `WWW-Authenticate: basic` challenge). Blocks until it listens (up to
    /// 120 s).
    ///
    /// `user` is `[A-Za-z0-9._-]+`; `password` is any non-empty text
    /// without leading or trailing whitespace (Quarkus trims it). Neither
    /// appears on the command line: they go to the instance's
    /// `config/application.properties` (mode 0600).
    ///
    /// Fails with [`Error::NotConfigured`] when the app is not built (or
    /// was built before basic-auth support), saying how to build it.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Result<Self, Error> {
        let valid_user = !user.is_empty()
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_user || password.is_empty() || password.trim() != password {
            return Err(registry_err(
                "user must be [A-Za-z0-9._-]+ and the password non-empty without surrounding \
                 whitespace",
            ));
        }
        let jar = app_jar()?;
        let java = find_java().ok_or_else(|| registry_err(NO_JAVA))?;
        let base = target_dir()
            .map(|t| t.join("tmp"))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(unique_name("schema_registry"));
        let config_dir = dir.join("config");
        fs::create_dir_all(&config_dir)
            .map_err(|e| registry_err(format!("creating {}: {e}", config_dir.display())))?;
        let port = free_port().map_err(|e| registry_err(format!("no free port: {e}")))?;
        // Quarkus reads ./config/application.properties at run time, above
        // the app's own (and Apicurio's `%prod.` defaults).
        let props = format!(
            "# cdc-testkit's SchemaRegistryServer: this instance only.\n\
             quarkus.http.host=127.0.0.1\n\
             quarkus.http.port={port}\n\
             # A small pool for the in-memory H2 database, as the shared registry's.\n\
             quarkus.datasource.jdbc.min-size=1\n\
             quarkus.datasource.jdbc.initial-size=1\n\
             quarkus.datasource.jdbc.max-size=8\n\
             pgcdc.registry.require-authentication=true\n\
             quarkus.security.users.embedded.plain-text=true\n\
             quarkus.security.users.embedded.users.{user}={}\n",
            properties_escape(password)
        );
        write_private(&config_dir.join("application.properties"), &props)?;
        let mut server = SchemaRegistryServer {
            dir,
            port,
            user: user.to_owned(),
            child: None,
        };
        server.launch(&java, &jar)?;
        Ok(server)
    }

    /// The Confluent-compatible base URL (`schema.registry.url`), without
    /// credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{CCOMPAT_PATH}", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user it accepts.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The JVM's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The instance's directory (config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("registry.log")
    }

    fn launch(&mut self, java: &Path, jar: &Path) -> Result<(), Error> {
        let log = fs::File::create(self.log_file())
            .map_err(|e| registry_err(format!("creating the registry log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| registry_err(format!("registry log: {e}")))?;
        // The shared registry's JVM settings (xtask/src/registry.rs); the
        // rest is in ./config/application.properties.
        let child = Command::new(java)
            .args([
                "-Xmx256m",
                "-Xss512k",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg("-jar")
            .arg(jar)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| registry_err(format!("starting the registry JVM: {e}")))?;
        self.child = Some(child);
        let listening = format!("Listening on: http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(registry_err(format!(
                        "the registry JVM exited ({status}); log ({}):\n{}",
                        self.log_file().display(),
                        tail(&self.log_file())
                    )));
                }
            }
            let started = fs::read_to_string(self.log_file()).is_ok_and(|t| t.contains(&listening));
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            if started && TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        kill(&mut self.child);
        Err(registry_err(format!(
            "the registry did not listen within {} s; log:\n{}",
            START_TIMEOUT.as_secs(),
            tail(&self.log_file())
        )))
    }
}

impl Drop for SchemaRegistryServer {
    fn drop(&mut self) {
        kill(&mut self.child);
        if std::env::var_os("CDC_TEST_KEEP_REGISTRY").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The registry app's runner jar: [`ENV_SCHEMA_REGISTRY_JAR`], else the one
/// under `target/services/schema-registry/build/`; it must have been built
/// with basic-auth support.
fn app_jar() -> Result<PathBuf, Error> {
    let not_built = |why: String| Error::NotConfigured {
        reason: format!(
            "{why}; `cargo xtask services up` builds the schema registry app from \
             xtask/registry/pom.xml (if the shared registry is already running on an older \
             build: `cargo xtask services down && cargo xtask services up`), or set \
             {ENV_SCHEMA_REGISTRY_JAR} to a *-runner.jar built from it"
        ),
    };
    let jar = match setting(ENV_SCHEMA_REGISTRY_JAR).filter(|s| !s.trim().is_empty()) {
        Some(j) => PathBuf::from(j.trim()),
        None => {
            let build = target_dir()
                .map(|t| t.join("services/schema-registry/build"))
                .ok_or_else(|| not_built("cannot locate the target directory".into()))?;
            fs::read_dir(&build)
                .ok()
                .and_then(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .find(|p| p.to_string_lossy().ends_with("-runner.jar"))
                })
                .ok_or_else(|| {
                    not_built(format!(
                        "the schema registry app is not built (no *-runner.jar in {})",
                        build.display()
                    ))
                })?
        }
    };
    if !jar.is_file() {
        return Err(not_built(format!("{} is not a file", jar.display())));
    }
    let lib = jar.with_file_name("lib");
    let has_auth = fs::read_dir(&lib).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(AUTH_EXTENSION_JAR)
        })
    });
    if !has_auth {
        return Err(not_built(format!(
            "the schema registry app {} was built before xtask/registry added basic-auth \
             support (no {AUTH_EXTENSION_JAR}*.jar in {}): it must be rebuilt",
            jar.display(),
            lib.display()
        )));
    }
    Ok(jar)
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| registry_err(format!("writing {}: {e}", path.display())))
}

/// A value as a `java.util.Properties` file reads it back unchanged.
fn properties_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_values_are_escaped() {
        assert_eq!(properties_escape("a:b=c#d"), "a:b=c#d");
        assert_eq!(properties_escape("x\\y\tz"), "x\\\\y\\tz");
        assert_eq!(properties_escape("é😀"), "\\u00e9\\ud83d\\ude00");
    }

    #[test]
    fn bad_users_are_rejected_before_anything_starts() {
        for (user, password) in [
            ("", "p"),
            ("a b", "p"),
            ("a=b", "p"),
            ("u", ""),
            ("u", " p"),
        ] {
            let e =
                SchemaRegistryServer::start_with_basic_auth(user, password).expect_err("rejected");
            assert!(matches!(e, Error::Registry(_)), "{e}");
        }
    }
}
