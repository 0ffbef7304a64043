//! TLS for both connections, with pgwire-replication's rustls support.
//!
//! The replication connection takes a [`TlsConfig`] directly. The SQL
//! connection opens the TCP socket itself, lets pgwire-replication run the
//! PostgreSQL `SSLRequest` and the rustls handshake (same verification rules
//! for `require`, `verify-ca`, `verify-full`, same client certificate), and
//! hands the encrypted stream to tokio-postgres with `connect_raw`.

use pgwire_replication::config::{SslMode as WireSslMode, TlsConfig};
use pgwire_replication::PgWireError;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::source::catalog::sql_error;
use crate::source::config::{SourceConfig, SslMode};

/// The replication connection's TLS settings for `database.sslmode` and friends.
pub fn tls_config(cfg: &SourceConfig) -> TlsConfig {
    let mut tls = match cfg.sslmode {
        SslMode::Disable | SslMode::Allow => TlsConfig::disabled(),
        // TLS if the server answers the SSLRequest with 'S', else plain.
        SslMode::Prefer => TlsConfig {
            mode: WireSslMode::Prefer,
            ..TlsConfig::disabled()
        },
        SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(cfg.sslrootcert.clone()),
        SslMode::VerifyFull => TlsConfig::verify_full(cfg.sslrootcert.clone()),
    };
    if let (Some(cert), Some(key)) = (&cfg.sslcert, &cfg.sslkey) {
        tls = tls.with_client_cert(cert.clone(), key.clone());
    }
    tls
}

/// Opens the SQL connection over TLS (for `prefer`: over plain TCP when the
/// server refuses TLS).
pub(crate) async fn connect_sql(
    mut pg: tokio_postgres::Config,
    cfg: &SourceConfig,
    context: String,
) -> Result<Client> {
    let tls = tls_config(cfg);
    debug_assert!(tls.mode != WireSslMode::Disable);
    let tcp = tokio::net::TcpStream::connect((cfg.hostname.as_str(), cfg.port))
        .await
        .map_err(|e| Error::Sql {
            context: context.clone(),
            sqlstate: None,
            detail: e.to_string(),
            retriable: true,
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = pgwire_replication::tls::rustls::maybe_upgrade_to_tls(tcp, &tls, &cfg.hostname)
        .await
        .map_err(|e| match e {
            PgWireError::Tls(detail) => tls_error("SQL", cfg, detail),
            e => Error::Sql {
                context: context.clone(),
                sqlstate: None,
                detail: e.to_string(),
                retriable: e.is_transient(),
            },
        })?;
    // The stream is already encrypted: tokio-postgres must not negotiate again.
    pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, conn) = pg
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(|e| auth_or_sql_error("SQL", sql_error(context)(e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("source SQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// A TLS failure as [`Error::Tls`], with what to do for the usual causes.
pub(crate) fn tls_error(connection: &'static str, cfg: &SourceConfig, detail: String) -> Error {
    let ca = cfg.sslrootcert.as_ref().map_or_else(
        || "the system's trusted roots".to_owned(),
        |p| format!("`{}`", p.display()),
    );
    let d = detail.to_ascii_lowercase();
    let hint = if d.contains("notvalidforname") || d.contains("not valid for name") {
        format!(
            "the server's certificate is not issued for host `{}`: set database.hostname to a \
             name the certificate lists, or use database.sslmode=verify-ca to check only the chain",
            cfg.hostname
        )
    } else if d.contains("unknownissuer")
        || d.contains("unknown issuer")
        || d.contains("badsignature")
    {
        format!(
            "the server's certificate is not signed by a CA in {ca}: point database.sslrootcert \
             at the CA certificate (PEM) that issued it"
        )
    } else if d.contains("is an ip address") {
        "verify-full checks the host name: connect by a DNS name the certificate lists \
         (database.hostname), or use database.sslmode=verify-ca"
            .to_owned()
    } else if d.contains("does not support tls") || d.contains("sslrequest rejected") {
        "the server does not accept TLS: set ssl = on (with ssl_cert_file and ssl_key_file) in \
         postgresql.conf, or lower database.sslmode"
            .to_owned()
    } else if d.contains("ca pem") || d.contains("ca certificates") {
        format!(
            "database.sslrootcert must name a readable PEM file with the CA certificate (now {ca})"
        )
    } else if d.contains("client cert") || d.contains("private key") {
        "database.sslcert and database.sslkey must name the client certificate and its key (PEM)"
            .to_owned()
    } else {
        format!(
            "check database.sslmode ({:?}) and database.sslrootcert ({ca}) against the server's \
             certificate",
            cfg.sslmode
        )
    };
    Error::Tls {
        connection,
        detail,
        hint,
    }
}

/// Turns an [`Error::Sql`] carrying SQLSTATE 28P01 (invalid password) or
/// 28000 (no pg_hba.conf entry / invalid authorization) into
/// [`Error::Authentication`]; other errors pass through.
pub(crate) fn auth_or_sql_error(connection: &'static str, e: Error) -> Error {
    match e {
        Error::Sql {
            sqlstate: Some(s),
            detail,
            ..
        } if s == "28P01" || s == "28000" => Error::Authentication { connection, detail },
        e => e,
    }
}
