//! TLS for the target connection: a rustls connector for tokio-postgres
//! with libpq's `sslmode` semantics.
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` / `prefer` (default) | if the server offers it | not verified (like libpq) |
//! | `require` | always | not verified; verified against `sslrootcert` when one is given (like libpq) |
//! | `verify-ca` | always | chain verified against `sslrootcert` |
//! | `verify-full` | always | chain and host name (or IP address) verified |
//!
//! `sslrootcert` is a PEM file (one or more CA certificates) or `system`
//! (the operating system's trust store). `sslcert` + `sslkey` (PEM) enable
//! client-certificate authentication. Handshake and verification failures
//! surface as [`crate::SinkError::Tls`], which is not retried.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::config::{ConnectionConfig, SslMode};
use crate::error::SinkError;

/// A tokio-postgres TLS connector backed by rustls (ring provider).
#[derive(Clone)]
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for RustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsConnect").finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(reason: impl Into<String>, hint: impl Into<String>) -> SinkError {
    SinkError::Tls {
        reason: reason.into(),
        hint: hint.into(),
    }
}

impl RustlsConnect {
    /// The connector for a connection's `sslmode`, `sslrootcert`, `sslcert`
    /// and `sslkey` (`None` for `sslmode=disable`). Reads the PEM files.
    pub fn from_config(c: &ConnectionConfig) -> Result<Option<Self>, SinkError> {
        let verify = match (c.ssl_mode, &c.ssl_root_cert) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::VerifyFull, Some(_)) => Verify::Full,
            (SslMode::VerifyCa, Some(_)) | (SslMode::Require, Some(_)) => Verify::Chain,
            (SslMode::VerifyFull | SslMode::VerifyCa, None) => return Err(SinkError::config(
                "connection.url",
                "sslmode=verify-ca/verify-full needs the CA certificate to verify the server with",
                "add sslrootcert=/path/to/root.crt (PEM) or sslrootcert=system to the URL",
            )),
            (SslMode::Allow | SslMode::Prefer, _) | (SslMode::Require, None) => Verify::None,
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(format!("TLS setup: {e}"), "report this as a bug"))?;
        let builder = match verify {
            Verify::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(Arc::clone(&provider)))),
            Verify::Chain | Verify::Full => {
                let roots = Arc::new(root_store(c.ssl_root_cert.as_deref().unwrap_or("system"))?);
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                        .build()
                        .map_err(|e| {
                            tls_err(
                                format!("cannot use sslrootcert: {e}"),
                                "give a PEM file with at least one CA certificate",
                            )
                        })?;
                let full = matches!(verify, Verify::Full);
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainVerify { webpki, full }))
            }
        };
        let config = match (&c.ssl_cert, &c.ssl_key) {
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        SinkError::config(
                            "connection.url",
                            format!("cannot read sslcert {cert:?}: {e}"),
                            "point sslcert at the client certificate (PEM)",
                        )
                    })?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    SinkError::config(
                        "connection.url",
                        format!("cannot read sslkey {key:?}: {e}"),
                        "point sslkey at the client certificate's private key (PEM, unencrypted)",
                    )
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    tls_err(
                        format!("sslcert and sslkey do not form a usable client certificate: {e}"),
                        "check that the key belongs to the certificate",
                    )
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(SinkError::config(
                    "connection.url",
                    "sslcert and sslkey must be given together",
                    "add both, or neither",
                ))
            }
        };
        Ok(Some(Self {
            config: Arc::new(config),
        }))
    }
}

enum Verify {
    None,
    Chain,
    Full,
}

fn root_store(path: &str) -> Result<RootCertStore, SinkError> {
    let mut roots = RootCertStore::empty();
    if path == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(tls_err(
                "sslrootcert=system but no CA certificates were found in the system trust store",
                "install the CA bundle (ca-certificates) or give sslrootcert=/path/to/root.crt",
            ));
        }
        return Ok(roots);
    }
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            SinkError::config(
                "connection.url",
                format!("cannot read sslrootcert {path:?}: {e}"),
                "point sslrootcert at the CA certificate (PEM) that signed the server's certificate",
            )
        })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(SinkError::config(
            "connection.url",
            format!("sslrootcert {path:?} holds no usable CA certificate"),
            "point sslrootcert at a PEM file with the CA certificate",
        ));
    }
    Ok(roots)
}

/// `prefer` / `require` without a root certificate: encrypted, not
/// authenticated (libpq's behaviour). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain only) and `verify-full` (chain and name).
#[derive(Debug)]
struct ChainVerify {
    webpki: Arc<WebPkiServerVerifier>,
    full: bool,
}

impl ServerCertVerifier for ChainVerify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // verify-ca: a valid chain for another name is fine.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.full => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnectOne {
            config: Arc::clone(&self.config),
            name,
        })
    }
}

/// One TLS handshake to a named host.
pub struct RustlsConnectOne {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(s))
        })
    }
}

/// A TLS stream to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// The rustls error behind a failed connection, if TLS was the cause.
pub fn tls_cause(e: &tokio_postgres::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(r.to_string());
            }
        }
        cur = err.source();
    }
    // tokio-postgres' own TLS errors (sslmode=require against a server
    // without TLS) carry no typed cause; server errors (SQLSTATE) are not TLS.
    if e.as_db_error().is_some() {
        return None;
    }
    let msg = e.to_string();
    msg.contains("TLS").then_some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str) -> ConnectionConfig {
        ConnectionConfig::parse_url(url).expect("url")
    }

    #[test]
    fn modes_build_connectors() {
        assert!(
            RustlsConnect::from_config(&conn("jdbc:postgresql://h/d?sslmode=disable"))
                .expect("disable")
                .is_none()
        );
        for m in ["allow", "prefer", "require"] {
            let c = conn(&format!("jdbc:postgresql://h/d?sslmode={m}"));
            assert!(RustlsConnect::from_config(&c).expect(m).is_some(), "{m}");
        }
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        for m in ["verify-ca", "verify-full"] {
            let c = conn(&format!("jdbc:postgresql://h/d?sslmode={m}"));
            match RustlsConnect::from_config(&c) {
                Err(SinkError::Config { key, hint, .. }) => {
                    assert_eq!(key, "connection.url");
                    assert!(hint.contains("sslrootcert"), "{hint}");
                }
                other => panic!("expected a config error, got {other:?}"),
            }
        }
        let c = conn("jdbc:postgresql://h/d?sslmode=verify-full&sslrootcert=/nonexistent/root.crt");
        match RustlsConnect::from_config(&c) {
            Err(SinkError::Config { reason, .. }) => {
                assert!(reason.contains("/nonexistent/root.crt"))
            }
            other => panic!("expected a config error, got {other:?}"),
        }
        let c = conn("jdbc:postgresql://h/d?sslmode=require&sslcert=/x.crt");
        assert!(matches!(
            RustlsConnect::from_config(&c),
            Err(SinkError::Config { .. })
        ));
    }
}
