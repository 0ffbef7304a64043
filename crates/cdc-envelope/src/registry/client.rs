//! [`SchemaRegistryClient`]: HTTP/1.1 (rustls for `https://`) client of the
//! Confluent Schema Registry REST API with two caches, so that after the
//! first record of a table schema nothing goes over the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{redact_url, KeyStore, PemSource, RegistryConfig};
use super::protocol::{self, Compatibility, Operation};
use crate::error::{Error, Result};

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One registry base URL, split for building request URIs.
#[derive(Debug)]
struct Base {
    /// `scheme://host:port/path-prefix` without a trailing `/`.
    url: String,
}

/// Schemas registered per subject: schema text → id.
type SubjectCache = HashMap<String, HashMap<Arc<str>, u32>>;

#[derive(Debug)]
struct Inner {
    bases: Vec<Base>,
    /// Index of the base URL that answered last.
    current: AtomicUsize,
    auth: Option<HeaderValue>,
    http: HttpClient,
    request_timeout: Duration,
    by_subject: RwLock<SubjectCache>,
    by_id: RwLock<HashMap<u32, Arc<str>>>,
    requests: AtomicU64,
}

/// A Confluent Schema Registry client (cheap to clone; clones share the
/// connection pool and caches).
///
/// * [`register`](Self::register) / [`lookup`](Self::lookup): schema → id
///   under a subject, cached per (subject, schema text);
/// * [`schema_by_id`](Self::schema_by_id): id → schema text, cached (ids are
///   immutable in a registry);
/// * [`request_count`](Self::request_count): HTTP requests sent so far, to
///   verify that the hot path does none.
///
/// Errors are typed ([`Error::RegistryIncompatibleSchema`],
/// [`Error::RegistrySchemaNotFound`], [`Error::RegistryUnauthorized`],
/// [`Error::RegistryUnreachable`] …) and never contain credentials.
#[derive(Debug, Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

impl SchemaRegistryClient {
    /// A client for `config`. Reads TLS material (PEM files) now, so a bad
    /// path fails here rather than on the first record. Needs a tokio
    /// runtime only when requests are made.
    pub fn new(config: &RegistryConfig) -> Result<Self> {
        if config.urls.is_empty() {
            return Err(Error::InvalidOption {
                key: "schema.registry.url".into(),
                value: String::new(),
                allowed: "one or more comma-separated http(s) URLs".into(),
            });
        }
        let mut bases = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let url = url.trim_end_matches('/').to_owned();
            // Validate now: every request URI is this plus a path.
            url.parse::<Uri>().map_err(|e| Error::InvalidOption {
                key: "schema.registry.url".into(),
                value: redact_url(&url),
                allowed: format!("a valid http(s) URL ({e})"),
            })?;
            bases.push(Base { url });
        }
        let auth = match &config.basic_auth {
            Some(a) => {
                let token =
                    crate::base64::encode(format!("{}:{}", a.user, a.password.expose()).as_bytes());
                let mut v = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    Error::InvalidOption {
                        key: "basic.auth.user.info".into(),
                        value: "<redacted>".into(),
                        allowed: "printable user:password".into(),
                    }
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let tls = tls_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                bases,
                current: AtomicUsize::new(0),
                auth,
                http: client,
                request_timeout: config.request_timeout,
                by_subject: RwLock::new(HashMap::new()),
                by_id: RwLock::new(HashMap::new()),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// HTTP requests sent so far (each attempt counts).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The base URL in use (without credentials).
    pub fn url(&self) -> &str {
        let i = self.inner.current.load(Ordering::Relaxed) % self.inner.bases.len();
        &self.inner.bases[i].url
    }

    fn cached_id(&self, subject: &str, schema: &str) -> Option<u32> {
        let map = self
            .inner
            .by_subject
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(subject).and_then(|m| m.get(schema)).copied()
    }

    fn remember(&self, subject: &str, schema: &str, id: u32) {
        let schema: Arc<str> = {
            let mut ids = self
                .inner
                .by_id
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(ids.entry(id).or_insert_with(|| Arc::from(schema)))
        };
        let mut map = self
            .inner
            .by_subject
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(subject.to_owned())
            .or_default()
            .insert(schema, id);
    }

    /// Registers `schema` (Avro schema JSON) under `subject` and returns its
    /// id; an already registered schema returns its existing id. Cached: the
    /// same (subject, schema) asks the registry once.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        let op = Operation::Register(subject.to_owned());
        let body = self.send(&op, Some(protocol::schema_body(schema))).await?;
        let id = protocol::parse_id(&op, &body)?;
        self.remember(subject, schema, id);
        Ok(id)
    }

    /// The id of `schema` if it is registered under `subject` (never
    /// registers; for `auto.register.schemas=false`). Cached like
    /// [`register`](Self::register).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<u32> {
        if let Some(id) = self.cached_id(subject, schema) {
            return Ok(id);
        }
        let op = Operation::Lookup(subject.to_owned());
        let body = self.send(&op, Some(protocol::schema_body(schema))).await?;
        let id = protocol::parse_id(&op, &body)?;
        self.remember(subject, schema, id);
        Ok(id)
    }

    /// The schema with this id (for decoding a record whose Confluent header
    /// names it). Cached; an unknown id is [`Error::RegistrySchemaNotFound`].
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<str>> {
        if let Some(s) = self.cached_schema(id) {
            return Ok(s);
        }
        let op = Operation::SchemaById(id);
        let body = self.send(&op, None).await?;
        let schema: Arc<str> = protocol::parse_schema(&op, &body)?.into();
        let mut ids = self
            .inner
            .by_id
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(ids.entry(id).or_insert(schema)))
    }

    /// The cached schema with this id, without I/O.
    pub fn cached_schema(&self, id: u32) -> Option<Arc<str>> {
        let ids = self
            .inner
            .by_id
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ids.get(&id).cloned()
    }

    /// The latest schema registered under `subject` (not cached).
    pub async fn latest_schema(&self, subject: &str) -> Result<(u32, String)> {
        let op = Operation::Latest(subject.to_owned());
        let body = self.send(&op, None).await?;
        Ok((
            protocol::parse_id(&op, &body)?,
            protocol::parse_schema(&op, &body)?,
        ))
    }

    /// Sets the compatibility level of `subject` (`PUT /config/{subject}`).
    pub async fn set_compatibility(&self, subject: &str, level: Compatibility) -> Result<()> {
        let op = Operation::SetCompatibility(subject.to_owned());
        self.send(&op, Some(protocol::compatibility_body(level)))
            .await
            .map(drop)
    }

    /// Sends `op` to the current base URL, failing over to the next ones
    /// when a base is unreachable. Returns the body of a 2xx answer.
    async fn send(&self, op: &Operation, body: Option<Vec<u8>>) -> Result<Bytes> {
        let inner = &self.inner;
        let n = inner.bases.len();
        let first = inner.current.load(Ordering::Relaxed) % n;
        let body = Bytes::from(body.unwrap_or_default());
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            let base = &inner.bases[i];
            match self.send_to(base, op, body.clone()).await {
                Ok((status, bytes)) if (200..300).contains(&status) => {
                    inner.current.store(i, Ordering::Relaxed);
                    return Ok(bytes);
                }
                Ok((status, bytes)) => {
                    inner.current.store(i, Ordering::Relaxed);
                    return Err(protocol::error_from_response(op, &base.url, status, &bytes));
                }
                Err(reason) => {
                    last = Some(Error::RegistryUnreachable {
                        url: base.url.clone(),
                        reason,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::RegistryUnreachable {
            url: String::new(),
            reason: "no registry URL configured".into(),
        }))
    }

    /// One HTTP exchange. `Err` is a transport failure (a reason without
    /// credentials).
    async fn send_to(
        &self,
        base: &Base,
        op: &Operation,
        body: Bytes,
    ) -> std::result::Result<(u16, Bytes), String> {
        let inner = &self.inner;
        let uri: Uri = format!("{}{}", base.url, op.path())
            .parse()
            .map_err(|e| format!("invalid request URI: {e}"))?;
        let method = Method::from_bytes(op.method().as_bytes()).unwrap_or(Method::GET);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, protocol::ACCEPT)
            .header(USER_AGENT, concat!("pg-cdc/", env!("CARGO_PKG_VERSION")));
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, protocol::CONTENT_TYPE);
        }
        if let Some(auth) = &inner.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("building the request: {e}"))?;
        inner.requests.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let resp = inner
                .http
                .request(req)
                .await
                .map_err(|e| transport_reason(&e))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok((status, bytes))
        };
        match tokio::time::timeout(inner.request_timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {} ms (http.read.timeout.ms)",
                inner.request_timeout.as_millis()
            )),
        }
    }
}

/// The error and its causes, one line (hyper's top-level message alone is
/// "client error (Connect)").
fn transport_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn tls_error(key: &str, what: impl std::fmt::Display) -> Error {
    Error::InvalidOption {
        key: key.to_owned(),
        value: String::new(),
        allowed: format!("readable PEM ({what})"),
    }
}

/// rustls client config (ring provider) from the PEM settings.
fn tls_config(config: &RegistryConfig) -> Result<rustls::ClientConfig> {
    const TRUST: &str = "schema.registry.ssl.truststore.location";
    const KEYS: &str = "schema.registry.ssl.keystore.location";
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls.truststore {
        Some(src) => {
            let certs = certificates(src).map_err(|e| tls_error(TRUST, e))?;
            if certs.is_empty() {
                return Err(tls_error(TRUST, "no CERTIFICATE block found"));
            }
            for c in certs {
                roots.add(c).map_err(|e| tls_error(TRUST, e))?;
            }
        }
        None => {
            // As a JVM trusts its cacerts: the system's roots (unreadable
            // ones are skipped; plain-http registries need none).
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(TRUST, e))?
        .with_root_certificates(roots);
    let config = match &config.tls.keystore {
        None => builder.with_no_client_auth(),
        Some(ks) => {
            let (chain, key) = client_identity(ks).map_err(|e| tls_error(KEYS, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(KEYS, e))?
        }
    };
    Ok(config)
}

fn certificates(src: &PemSource) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs: std::result::Result<Vec<_>, _> = match src {
        PemSource::File(p) => CertificateDer::pem_file_iter(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .collect(),
        PemSource::Inline(t) => CertificateDer::pem_slice_iter(t.expose().as_bytes()).collect(),
    };
    certs.map_err(|e| e.to_string())
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_identity(ks: &KeyStore) -> std::result::Result<Identity, String> {
    let (chain, key) = match ks {
        KeyStore::File(p) => {
            let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let chain: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(&text).collect();
            (
                chain.map_err(|e| e.to_string())?,
                PrivateKeyDer::from_pem_slice(&text).map_err(|e| e.to_string())?,
            )
        }
        KeyStore::Inline { chain, key } => {
            let certs: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(chain.as_bytes()).collect();
            (
                certs.map_err(|e| e.to_string())?,
                PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    if chain.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tls_material_fails_at_construction_without_secrets() {
        let mut c = RegistryConfig::new("https://127.0.0.1:1");
        c.tls.truststore = Some(PemSource::File("/nonexistent/ca.pem".into()));
        let e = SchemaRegistryClient::new(&c).expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        c.tls.truststore = Some(PemSource::Inline(crate::Secret::new("not pem")));
        assert!(SchemaRegistryClient::new(&c).is_err());
        c.tls.truststore = None;
        c.tls.keystore = Some(KeyStore::Inline {
            chain: "nope".into(),
            key: crate::Secret::new("VERY-SECRET-KEY"),
        });
        let e = SchemaRegistryClient::new(&c).expect_err("bad identity");
        assert!(!e.to_string().contains("VERY-SECRET-KEY"), "{e}");
    }

    #[test]
    fn bad_urls_fail_at_construction() {
        let mut c = RegistryConfig::new("http://h:1");
        c.urls.clear();
        assert!(SchemaRegistryClient::new(&c).is_err());
        let c = RegistryConfig::new("http://bad host:1");
        assert!(SchemaRegistryClient::new(&c).is_err());
    }

    #[tokio::test]
    async fn unreachable_is_typed_retriable_and_counted() {
        // A port nothing listens on: bind, take the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut c = RegistryConfig::new(format!("http://127.0.0.1:{port}"));
        c.basic_auth = Some(super::super::config::BasicAuth {
            user: "fred".into(),
            password: crate::Secret::new("hunter2"),
        });
        c.connect_timeout = Duration::from_secs(2);
        let client = SchemaRegistryClient::new(&c).expect("client");
        assert!(!format!("{client:?}").contains("hunter2"));
        assert!(!format!("{client:?}").contains(&crate::base64::encode(b"fred:hunter2")));
        let e = client.schema_by_id(1).await.expect_err("nothing listens");
        assert!(matches!(e, Error::RegistryUnreachable { .. }), "{e}");
        assert!(e.is_retriable());
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(client.request_count(), 1);
    }
}
