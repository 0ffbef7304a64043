//! TLS for both connections, with pgwire-replication's rustls support.
//!
//! The replication connection takes a [`TlsConfig`] directly. The SQL
//! connection opens the TCP socket itself, lets pgwire-replication run the
//! PostgreSQL `SSLRequest` and the rustls handshake (same verification rules
//! for `require`, `verify-ca`, `verify-full`, same client certificate), and
//! hands the encrypted stream to tokio-postgres with `connect_raw`.

use pgwire_replication::config::{SslMode as WireSslMode, TlsConfig};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::source::catalog::sql_error;
use crate::source::config::{SourceConfig, SslMode};

/// The replication connection's TLS settings for `database.sslmode` and friends.
pub fn tls_config(cfg: &SourceConfig) -> TlsConfig {
    let mut tls = match cfg.sslmode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => TlsConfig::disabled(),
        SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(cfg.sslrootcert.clone()),
        SslMode::VerifyFull => TlsConfig::verify_full(cfg.sslrootcert.clone()),
    };
    if let (Some(cert), Some(key)) = (&cfg.sslcert, &cfg.sslkey) {
        tls = tls.with_client_cert(cert.clone(), key.clone());
    }
    tls
}

/// Opens the SQL connection over TLS.
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
        .map_err(|e| Error::Sql {
            context: context.clone(),
            sqlstate: None,
            detail: e.to_string(),
            retriable: e.is_transient(),
        })?;
    // The stream is already encrypted: tokio-postgres must not negotiate again.
    pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, conn) = pg
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(sql_error(context))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("source SQL connection ended: {e}");
        }
    });
    Ok(client)
}
