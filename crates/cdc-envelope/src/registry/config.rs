//! [`RegistryConfig`]: the schema-registry settings of Confluent's
//! `AvroConverter`, read from the same property names Debezium users put in
//! their connector configuration (`value.converter.schema.registry.url`, …).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// How subjects are named (`key.subject.name.strategy` /
/// `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (Confluent's default).
    #[default]
    TopicName,
    /// The record's full name, e.g. `pgsource.public.employees.Envelope`.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// Parses Confluent's class names (or their simple names).
    pub fn parse(key: &str, value: &str) -> Result<Self> {
        let simple = value.trim().rsplit('.').next().unwrap_or_default();
        match simple {
            "TopicNameStrategy" => Ok(Self::TopicName),
            "RecordNameStrategy" => Ok(Self::RecordName),
            "TopicRecordNameStrategy" => Ok(Self::TopicRecordName),
            _ => Err(Error::InvalidOption {
                key: key.to_owned(),
                value: value.to_owned(),
                allowed: "io.confluent.kafka.serializers.subject.TopicNameStrategy, \
                          RecordNameStrategy or TopicRecordNameStrategy"
                    .into(),
            }),
        }
    }

    /// The subject for a key (`is_key`) or value schema of `topic` whose
    /// Avro record full name is `record_name`.
    pub fn subject(self, topic: &str, is_key: bool, record_name: &str) -> String {
        let part = if is_key { "key" } else { "value" };
        match self {
            Self::TopicName => format!("{topic}-{part}"),
            Self::RecordName => record_name.to_owned(),
            Self::TopicRecordName => format!("{topic}-{record_name}"),
        }
    }
}

/// PEM material for TLS to the registry (`schema.registry.ssl.*`, PEM
/// store type only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// Trusted CA certificates: `schema.registry.ssl.truststore.location`
    /// (a PEM file) or `schema.registry.ssl.truststore.certificates` (inline
    /// PEM). When neither is set the system's roots are trusted.
    pub truststore: Option<PemSource>,
    /// Client certificate chain and private key for mutual TLS:
    /// `schema.registry.ssl.keystore.location` (one PEM file holding both),
    /// or `schema.registry.ssl.keystore.certificate.chain` +
    /// `schema.registry.ssl.keystore.key` (inline PEM).
    pub keystore: Option<KeyStore>,
}

/// Where PEM text comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PemSource {
    /// A file.
    File(PathBuf),
    /// Inline PEM text (a secret when it holds a key).
    Inline(Secret),
}

/// Client certificate chain and key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyStore {
    /// One PEM file holding the certificate chain and the private key.
    File(PathBuf),
    /// Inline PEM certificate chain and private key.
    Inline {
        /// The certificate chain.
        chain: String,
        /// The private key (unencrypted PKCS#8, PKCS#1 or SEC1).
        key: Secret,
    },
}

/// Credentials for HTTP basic authentication.
#[derive(Clone, PartialEq)]
pub struct BasicAuth {
    /// The user.
    pub user: String,
    /// The password.
    pub password: Secret,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

/// Settings of the schema-registry client and the registry-backed Avro
/// converter.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// Base URLs (`schema.registry.url`, comma-separated; tried in order
    /// when one is unreachable). Credentials in a URL are removed from it
    /// and used with `basic.auth.credentials.source=URL`.
    pub urls: Vec<String>,
    /// Basic authentication, if any.
    pub basic_auth: Option<BasicAuth>,
    /// TLS settings for `https://` URLs.
    pub tls: TlsConfig,
    /// Connect timeout (`http.connect.timeout.ms`, default 60 s as Confluent).
    pub connect_timeout: Duration,
    /// Whole-request timeout (`http.read.timeout.ms`, default 60 s as Confluent).
    pub request_timeout: Duration,
    /// `auto.register.schemas` (default true): register a schema that is
    /// not yet registered; when false, only look its id up.
    pub auto_register_schemas: bool,
    /// `key.subject.name.strategy`.
    pub key_subject_name_strategy: SubjectNameStrategy,
    /// `value.subject.name.strategy`.
    pub value_subject_name_strategy: SubjectNameStrategy,
}

impl RegistryConfig {
    /// A configuration for one registry URL with Confluent's defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            basic_auth: None,
            tls: TlsConfig::default(),
            connect_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            auto_register_schemas: true,
            key_subject_name_strategy: SubjectNameStrategy::default(),
            value_subject_name_strategy: SubjectNameStrategy::default(),
        }
    }

    /// Reads a converter's own properties (already without the
    /// `value.converter.` prefix): `schema.registry.url`,
    /// `basic.auth.credentials.source` (`USER_INFO` or `URL`; default `URL`,
    /// or `USER_INFO` when `basic.auth.user.info` is set),
    /// `basic.auth.user.info` (`user:password`),
    /// `schema.registry.ssl.truststore.{location,type,certificates}`,
    /// `schema.registry.ssl.keystore.{location,type,certificate.chain,key}`,
    /// `http.connect.timeout.ms`, `http.read.timeout.ms`,
    /// `auto.register.schemas`, `key.subject.name.strategy`,
    /// `value.subject.name.strategy`. Other keys are ignored (they belong to
    /// the converter). Unsupported values (a JKS store, an encrypted key,
    /// `SASL_INHERIT`, disabled hostname verification) are rejected rather
    /// than ignored.
    pub fn from_properties<'a, I>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut url: Option<String> = None;
        let mut source: Option<String> = None;
        let mut user_info: Option<String> = None;
        let mut trust_type = "PEM".to_owned();
        let mut key_type = "PEM".to_owned();
        let mut trust_location = None;
        let mut trust_inline = None;
        let mut key_location = None;
        let mut key_chain = None;
        let mut key_inline = None;
        let mut cfg = Self::new(String::new());
        for (key, value) in props {
            let v = value.trim();
            match key {
                "schema.registry.url" => url = Some(v.to_owned()),
                "basic.auth.credentials.source" => source = Some(v.to_ascii_uppercase()),
                "basic.auth.user.info" | "schema.registry.basic.auth.user.info" => {
                    user_info = Some(value.to_owned())
                }
                "schema.registry.ssl.truststore.type" => trust_type = v.to_ascii_uppercase(),
                "schema.registry.ssl.keystore.type" => key_type = v.to_ascii_uppercase(),
                "schema.registry.ssl.truststore.location" if !v.is_empty() => {
                    trust_location = Some(PathBuf::from(v))
                }
                "schema.registry.ssl.truststore.certificates" if !v.is_empty() => {
                    trust_inline = Some(v.to_owned())
                }
                "schema.registry.ssl.keystore.location" if !v.is_empty() => {
                    key_location = Some(PathBuf::from(v))
                }
                "schema.registry.ssl.keystore.certificate.chain" if !v.is_empty() => {
                    key_chain = Some(v.to_owned())
                }
                "schema.registry.ssl.keystore.key" if !v.is_empty() => {
                    key_inline = Some(Secret::new(v))
                }
                "schema.registry.ssl.key.password" | "schema.registry.ssl.keystore.password"
                    if !v.is_empty() =>
                {
                    return Err(Error::InvalidOption {
                        key: key.to_owned(),
                        value: "<redacted>".into(),
                        allowed: "empty: encrypted PEM keys are not supported; \
                                  decrypt the key (openssl pkcs8 -nocrypt)"
                            .into(),
                    });
                }
                "schema.registry.ssl.endpoint.identification.algorithm"
                    if !v.eq_ignore_ascii_case("https") =>
                {
                    return Err(Error::InvalidOption {
                        key: key.to_owned(),
                        value: value.to_owned(),
                        allowed: "https (hostname verification cannot be disabled)".into(),
                    });
                }
                "http.connect.timeout.ms" => cfg.connect_timeout = millis(key, value)?,
                "http.read.timeout.ms" => cfg.request_timeout = millis(key, value)?,
                "auto.register.schemas" => cfg.auto_register_schemas = boolean(key, value)?,
                "key.subject.name.strategy" => {
                    cfg.key_subject_name_strategy = SubjectNameStrategy::parse(key, value)?
                }
                "value.subject.name.strategy" => {
                    cfg.value_subject_name_strategy = SubjectNameStrategy::parse(key, value)?
                }
                _ => {}
            }
        }
        for (key, t) in [
            ("schema.registry.ssl.truststore.type", &trust_type),
            ("schema.registry.ssl.keystore.type", &key_type),
        ] {
            if t != "PEM" {
                return Err(Error::InvalidOption {
                    key: key.into(),
                    value: t.clone(),
                    allowed: "PEM (convert a JKS or PKCS12 store with keytool / openssl)".into(),
                });
            }
        }
        let url = url.filter(|u| !u.is_empty()).ok_or(Error::InvalidOption {
            key: "schema.registry.url".into(),
            value: String::new(),
            allowed: "one or more comma-separated http(s) URLs".into(),
        })?;
        let mut url_credentials = None;
        cfg.urls.clear();
        for u in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (clean, creds) = split_user_info(u)?;
            if creds.is_some() {
                url_credentials = creds;
            }
            cfg.urls.push(clean);
        }
        // Confluent's default source is URL; `basic.auth.user.info` without
        // a source is taken as USER_INFO (what its author meant).
        cfg.basic_auth = match source.as_deref() {
            None | Some("USER_INFO") if user_info.is_some() => {
                Some(parse_user_info(user_info.as_deref().unwrap_or_default())?)
            }
            Some("USER_INFO") => None,
            None | Some("URL") => url_credentials,
            Some(other) => {
                return Err(Error::InvalidOption {
                    key: "basic.auth.credentials.source".into(),
                    value: other.to_owned(),
                    allowed: "USER_INFO or URL (SASL_INHERIT is not supported)".into(),
                })
            }
        };
        cfg.tls.truststore = match (trust_location, trust_inline) {
            (Some(p), _) => Some(PemSource::File(p)),
            (None, Some(t)) => Some(PemSource::Inline(Secret::new(t))),
            (None, None) => None,
        };
        cfg.tls.keystore = match (key_location, key_chain, key_inline) {
            (Some(p), _, _) => Some(KeyStore::File(p)),
            (None, Some(chain), Some(key)) => Some(KeyStore::Inline { chain, key }),
            (None, None, None) => None,
            (None, _, _) => {
                return Err(Error::InvalidOption {
                    key: "schema.registry.ssl.keystore.key".into(),
                    value: "<redacted>".into(),
                    allowed: "both schema.registry.ssl.keystore.certificate.chain and \
                              schema.registry.ssl.keystore.key, or neither"
                        .into(),
                })
            }
        };
        Ok(cfg)
    }

    /// Reads the properties of one converter from a whole connector
    /// configuration: keys starting with `<prefix>.` (e.g. `value.converter`),
    /// prefix removed, as Kafka Connect passes them to the converter.
    pub fn from_converter_properties<'a, I>(props: I, prefix: &str) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let prefix = format!("{prefix}.");
        let own: Vec<(&str, &str)> = props
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix.as_str()).map(|k| (k, v)))
            .collect();
        Self::from_properties(own)
    }
}

fn millis(key: &str, value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| Error::InvalidOption {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed: "a number of milliseconds".into(),
        })
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::InvalidOption {
            key: key.to_owned(),
            value: value.to_owned(),
            allowed: "true or false".into(),
        }),
    }
}

/// `user:password` → credentials (the password may contain `:`).
fn parse_user_info(info: &str) -> Result<BasicAuth> {
    match info.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(BasicAuth {
            user: user.to_owned(),
            password: Secret::new(password),
        }),
        _ => Err(Error::InvalidOption {
            key: "basic.auth.user.info".into(),
            value: "<redacted>".into(),
            allowed: "user:password".into(),
        }),
    }
}

/// Checks an `http(s)://` URL and removes `user:password@` from it.
fn split_user_info(url: &str) -> Result<(String, Option<BasicAuth>)> {
    let bad = |why: &str| Error::InvalidOption {
        key: "schema.registry.url".into(),
        value: redact_url(url),
        allowed: format!("http:// or https:// URLs ({why})"),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("unsupported scheme"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (creds, host) = match authority.rsplit_once('@') {
        Some((info, host)) => (Some(parse_user_info(&percent_decode(info))?), host),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((
        format!(
            "{}://{host}{}",
            scheme.to_ascii_lowercase(),
            path.trim_end_matches('/')
        ),
        creds,
    ))
}

/// The URL with any `user:password@` replaced by `***@`, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debezium_style_properties() {
        let props = [
            ("value.converter", "io.confluent.connect.avro.AvroConverter"),
            (
                "value.converter.schema.registry.url",
                "http://a:8081/apis/ccompat/v7/, https://b:8081",
            ),
            ("value.converter.basic.auth.credentials.source", "USER_INFO"),
            ("value.converter.basic.auth.user.info", "fred:s3:cret"),
            ("value.converter.auto.register.schemas", "false"),
            (
                "value.converter.value.subject.name.strategy",
                "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            ),
            ("key.converter.schema.registry.url", "http://other:1"),
        ];
        let c = RegistryConfig::from_converter_properties(props, "value.converter").expect("valid");
        assert_eq!(
            c.urls,
            ["http://a:8081/apis/ccompat/v7", "https://b:8081"].map(String::from)
        );
        let auth = c.basic_auth.clone().expect("auth");
        assert_eq!(
            (auth.user.as_str(), auth.password.expose()),
            ("fred", "s3:cret")
        );
        assert!(!c.auto_register_schemas);
        assert_eq!(
            c.value_subject_name_strategy,
            SubjectNameStrategy::RecordName
        );
        assert_eq!(c.key_subject_name_strategy, SubjectNameStrategy::TopicName);
        assert!(!format!("{c:?}").contains("s3:cret"), "{c:?}");
    }

    #[test]
    fn url_credentials_are_split_off_and_used_unless_the_source_is_user_info() {
        let props = [
            ("schema.registry.url", "http://u%40x:p%3Aw@h:1/base"),
            ("basic.auth.credentials.source", "URL"),
        ];
        let c = RegistryConfig::from_properties(props).expect("valid");
        assert_eq!(c.urls, ["http://h:1/base"]);
        let auth = c.basic_auth.expect("auth");
        assert_eq!((auth.user.as_str(), auth.password.expose()), ("u@x", "p:w"));
        // URL is Confluent's default source.
        let c = RegistryConfig::from_properties([("schema.registry.url", "http://u:p@h:1")])
            .expect("valid");
        assert_eq!(c.urls, ["http://h:1"]);
        let auth = c.basic_auth.expect("auth");
        assert_eq!((auth.user.as_str(), auth.password.expose()), ("u", "p"));
        let c = RegistryConfig::from_properties([
            ("schema.registry.url", "http://u:p@h:1"),
            ("basic.auth.credentials.source", "USER_INFO"),
        ])
        .expect("valid");
        assert!(c.basic_auth.is_none());
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://***@h:1/x");
    }

    #[test]
    fn rejects_what_it_cannot_honour_without_echoing_secrets() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("schema.registry.url", "ftp://h")],
            &[
                ("schema.registry.url", "http://h"),
                ("basic.auth.credentials.source", "SASL_INHERIT"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("basic.auth.user.info", "nocolon"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("schema.registry.ssl.truststore.type", "JKS"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("schema.registry.ssl.key.password", "topsecret"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("schema.registry.ssl.endpoint.identification.algorithm", ""),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("http.read.timeout.ms", "soon"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("auto.register.schemas", "maybe"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("value.subject.name.strategy", "Mine"),
            ],
            &[
                ("schema.registry.url", "http://h"),
                ("schema.registry.ssl.keystore.key", "k"),
            ],
        ];
        for props in cases {
            let e = RegistryConfig::from_properties(props.iter().copied())
                .expect_err("must be rejected");
            assert!(matches!(e, Error::InvalidOption { .. }), "{e}");
            assert!(!e.to_string().contains("topsecret"), "{e}");
        }
    }

    #[test]
    fn subject_names() {
        let t = "pgsource.public.employees";
        let rec = "pgsource.public.employees.Envelope";
        assert_eq!(
            SubjectNameStrategy::TopicName.subject(t, false, rec),
            "pgsource.public.employees-value"
        );
        assert_eq!(
            SubjectNameStrategy::TopicName.subject(t, true, rec),
            "pgsource.public.employees-key"
        );
        assert_eq!(SubjectNameStrategy::RecordName.subject(t, false, rec), rec);
        assert_eq!(
            SubjectNameStrategy::TopicRecordName.subject(t, false, rec),
            format!("{t}-{rec}")
        );
    }
}
