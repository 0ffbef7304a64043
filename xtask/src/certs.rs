//! Test certificates for the services that serve TLS (PostgreSQL, the
//! schema registry): a throwaway CA and a server certificate for
//! `localhost` / `127.0.0.1`, made with the `openssl` CLI.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::process::run_checked;

/// Writes `ca.crt`/`ca.key` and `server.crt`/`server.key` (EC P-256, ten
/// years) into `dir`; `who` names the CA.
pub fn make_ca_and_server(openssl: &Path, dir: &Path, who: &str) -> Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_checked(
        Command::new(openssl)
            .current_dir(dir)
            .args(["req", "-x509", "-days", "3650"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.crt"])
            .args(["-subj", &format!("/CN=pg-cdc test CA ({who})")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        "openssl: test CA",
    )?;
    run_checked(
        Command::new(openssl)
            .current_dir(dir)
            .args(["req", "-new"])
            .args(ec)
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=localhost"]),
        "openssl: server key",
    )?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
         basicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n",
    )?;
    run_checked(
        Command::new(openssl)
            .current_dir(dir)
            .args(["x509", "-req", "-days", "3650", "-in", "server.csr"])
            .args(["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"])
            .args(["-extfile", "server.ext", "-out", "server.crt"]),
        "openssl: server certificate",
    )?;
    Ok(())
}
