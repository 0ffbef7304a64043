//! What the fixtures that start their own JVMs ([`crate::KafkaBroker`],
//! [`crate::SchemaRegistryServer`]) share: the Java launcher, free loopback
//! ports and log tails for error messages.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::error::Error;

/// The Java launcher: `$JAVA_HOME/bin/java`, else `java` on PATH.
pub fn java() -> Result<PathBuf, Error> {
    find_java().ok_or_else(|| Error::Broker(NO_JAVA.into()))
}

/// Why [`find_java`] found nothing.
pub(crate) const NO_JAVA: &str = "java not found (set JAVA_HOME or install a Java 17 runtime)";

/// `$JAVA_HOME/bin/java`, else `java` on PATH.
pub(crate) fn find_java() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let j = PathBuf::from(home).join("bin/java");
        if j.is_file() {
            return Some(j);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("java"))
        .find(|j| j.is_file())
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(free_ports::<1>()?[0])
}

/// `N` distinct free loopback ports: each listener is held until all are
/// chosen (ports taken one at a time could repeat: the kernel may hand the
/// same one out again once its listener is closed).
pub(crate) fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr()?.port();
    }
    Ok(ports)
}

/// The last 30 lines of a log file (empty if unreadable).
pub(crate) fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Kills the process (SIGKILL) and reaps it, if there is one.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
