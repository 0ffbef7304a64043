//! Kafka Connect / Debezium-style properties → typed configuration.
//!
//! [`KafkaConfig::from_properties`] reads the keys this crate understands from
//! a connector's flat property map and ignores the rest (a connector config
//! also holds `database.*`, converters, …):
//!
//! | Keys | Becomes |
//! |---|---|
//! | `bootstrap.servers`, `security.protocol`, `client.id`, `ssl.*`, `sasl.*` | [`KafkaConfig::client`], applied to every client |
//! | `librdkafka.<prop>` | `<prop>` passed verbatim to every librdkafka client (escape hatch) |
//! | `producer.override.<prop>`, `consumer.override.<prop>`, `admin.override.<prop>` | per-client overrides |
//! | `topic.creation.default.*`, `topic.creation.groups`, `topic.creation.<group>.*` | [`TopicCreation`] |
//! | `errors.*` | [`ErrorHandling`] |
//!
//! Every client starts from `reconnect.backoff.ms=50`, the Java clients'
//! default (librdkafka's is 100 ms, and it also paces a new client's first
//! connection by half of it); any of the keys above may set it.
//!
//! Secrets (`*.password`, `sasl.jaas.config`, `*.secret`, PEM keys) are kept
//! in [`ClientProperties`], whose `Debug` prints `[redacted]`, and never
//! appear in error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use regex_lite::Regex;

use crate::error::{Error, Result};

/// Placeholder printed instead of a secret value.
pub const REDACTED: &str = "[redacted]";

/// True when a property holds a secret (its value must never be printed).
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("password")
        || k.contains("secret")
        || k.ends_with("jaas.config")
        || k == "ssl.key.pem"
        || k.ends_with("ssl.keystore.key")
        || k.ends_with("oauthbearer.config")
        || k.ends_with("token")
}

fn shown(key: &str, value: &str) -> String {
    if is_sensitive(key) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> Error {
    Error::InvalidConfig {
        key: key.to_string(),
        value: shown(key, value),
        expected: expected.into(),
    }
}

/// librdkafka properties whose values may be secret; `Debug` redacts them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties(BTreeMap<String, String>);

impl ClientProperties {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (replacing an earlier value).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates over `(key, value)` pairs (values include secrets: do not log them).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copies every property into an rdkafka [`ClientConfig`].
    pub fn apply_to(&self, config: &mut ClientConfig) {
        for (k, v) in &self.0 {
            config.set(k, v);
        }
    }
}

impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, shown(k, v))))
            .finish()
    }
}

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tolerance {
    /// `none` (Kafka Connect's default): the first failed record stops the task.
    #[default]
    None,
    /// `all`: failed records are skipped (and sent to the DLQ when one is configured).
    All,
}

/// Kafka Connect's `errors.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorHandling {
    /// `errors.tolerance` (default `none`).
    pub tolerance: Tolerance,
    /// `errors.deadletterqueue.topic.name` (default: no DLQ).
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.context.headers.enable` (default false).
    pub dlq_context_headers: bool,
    /// `errors.deadletterqueue.topic.replication.factor`. Kafka Connect
    /// defaults to 3; unset here means the broker's `default.replication.factor`
    /// so that single-broker setups work with the seed configs.
    pub dlq_replication_factor: Option<i16>,
    /// `errors.log.enable` (default false).
    pub log_enable: bool,
    /// `errors.log.include.messages` (default false).
    pub log_include_messages: bool,
    /// `errors.retry.timeout`: total time to retry a failed operation;
    /// `Some(0)` (default) = no retries, `None` (`-1`) = retry forever.
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms` (default 60000): cap of the exponential backoff.
    pub retry_delay_max: Duration,
}

impl Default for ErrorHandling {
    fn default() -> Self {
        Self {
            tolerance: Tolerance::None,
            dlq_topic: None,
            dlq_context_headers: false,
            dlq_replication_factor: None,
            log_enable: false,
            log_include_messages: false,
            retry_timeout: Some(Duration::ZERO),
            retry_delay_max: Duration::from_millis(60_000),
        }
    }
}

/// Partitions, replication factor and topic-level configs of topics to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSettings {
    /// Partition count; `None` or `-1` = broker default.
    pub partitions: Option<i32>,
    /// Replication factor; `None` or `-1` = broker default.
    pub replication_factor: Option<i32>,
    /// Topic configs (`cleanup.policy`, `compression.type`, `retention.ms`, …).
    pub configs: BTreeMap<String, String>,
}

/// One `topic.creation.<group>` of Kafka Connect (KIP-158).
#[derive(Debug, Clone)]
pub struct TopicGroup {
    /// Group name.
    pub name: String,
    /// `topic.creation.<group>.include` regexes (whole-name match).
    pub include: Vec<Regex>,
    /// `topic.creation.<group>.exclude` regexes (whole-name match).
    pub exclude: Vec<Regex>,
    /// Settings overriding the default group's.
    pub settings: TopicSettings,
}

impl TopicGroup {
    /// True when `topic` is included and not excluded.
    pub fn matches(&self, topic: &str) -> bool {
        self.include.iter().any(|r| r.is_match(topic))
            && !self.exclude.iter().any(|r| r.is_match(topic))
    }
}

/// `topic.creation.*`: how topics are created.
#[derive(Debug, Clone, Default)]
pub struct TopicCreation {
    /// `topic.creation.default.*`.
    pub default: TopicSettings,
    /// `topic.creation.groups` in declaration order (the first match wins).
    pub groups: Vec<TopicGroup>,
}

/// The resolved settings for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions (`-1` = broker default).
    pub partitions: i32,
    /// Replication factor (`-1` = broker default).
    pub replication_factor: i32,
    /// Topic-level configs.
    pub configs: BTreeMap<String, String>,
    /// The creation group that matched (`default` when none did).
    pub group: String,
}

impl TopicSpec {
    /// A spec with broker defaults and no configs.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
            group: "default".into(),
        }
    }

    /// Sets the partition count.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
        self
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, n: i32) -> Self {
        self.replication_factor = n;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

impl TopicCreation {
    /// The settings for `topic`: the first group whose `include` matches
    /// (and `exclude` does not) overrides the default group, key by key.
    pub fn spec_for(&self, topic: &str) -> TopicSpec {
        let mut spec = TopicSpec {
            name: topic.to_string(),
            partitions: self.default.partitions.unwrap_or(-1),
            replication_factor: self.default.replication_factor.unwrap_or(-1),
            configs: self.default.configs.clone(),
            group: "default".into(),
        };
        if let Some(g) = self.groups.iter().find(|g| g.matches(topic)) {
            if let Some(p) = g.settings.partitions {
                spec.partitions = p;
            }
            if let Some(r) = g.settings.replication_factor {
                spec.replication_factor = r;
            }
            spec.configs.extend(
                g.settings
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            spec.group = g.name.clone();
        }
        spec
    }
}

/// Which Kafka client an exactly-once source's transactional producer
/// uses (`producer.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProducerEngine {
    /// `auto` (default): the native producer when it supports every
    /// producer setting in effect (PLAINTEXT, LZ4 or no compression, no
    /// librdkafka property it does not know), else librdkafka.
    #[default]
    Auto,
    /// `native`: the native producer; a setting it does not support is a
    /// configuration error naming it.
    Native,
    /// `librdkafka`: always librdkafka.
    Librdkafka,
}

/// Everything kafka-io reads from a connector's properties.
#[derive(Debug, Clone, Default)]
pub struct KafkaConfig {
    /// Properties applied to every client (bootstrap, security, `librdkafka.*`).
    pub client: ClientProperties,
    /// `producer.override.*` (prefix stripped).
    pub producer_overrides: ClientProperties,
    /// `consumer.override.*` (prefix stripped).
    pub consumer_overrides: ClientProperties,
    /// `admin.override.*` (prefix stripped).
    pub admin_overrides: ClientProperties,
    /// `topic.creation.*`.
    pub topic_creation: TopicCreation,
    /// `errors.*`.
    pub errors: ErrorHandling,
    /// `producer.engine`.
    pub producer_engine: ProducerEngine,
}

const SECURITY_PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, v, "a boolean: true or false")),
    }
}

fn parse_i64(key: &str, v: &str, min: i64, expected: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| invalid(key, v, expected))
}

fn parse_count(key: &str, v: &str) -> Result<i32> {
    let n = v
        .trim()
        .parse::<i32>()
        .map_err(|_| invalid(key, v, "a positive integer or -1 (broker default)"))?;
    if n == -1 || n >= 1 {
        Ok(n)
    } else {
        Err(invalid(key, v, "a positive integer or -1 (broker default)"))
    }
}

fn parse_regex_list(key: &str, v: &str) -> Result<Vec<Regex>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| {
            Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| invalid(key, v, format!("comma-separated regular expressions ({e})")))
        })
        .collect()
}

/// Validates a topic-level config value we know the domain of.
fn check_topic_config(key: &str, name: &str, v: &str) -> Result<()> {
    match name {
        "compression.type" => {
            const ALLOWED: [&str; 6] =
                ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
            if !ALLOWED.contains(&v.trim()) {
                return Err(invalid(key, v, format!("one of: {}", ALLOWED.join(", "))));
            }
        }
        "cleanup.policy" => {
            let ok = !v.trim().is_empty()
                && v.split(',')
                    .all(|p| matches!(p.trim(), "compact" | "delete"));
            if !ok {
                return Err(invalid(key, v, "a list of: compact, delete"));
            }
        }
        "min.cleanable.dirty.ratio" => {
            let ok = v
                .trim()
                .parse::<f64>()
                .is_ok_and(|r| (0.0..=1.0).contains(&r));
            if !ok {
                return Err(invalid(key, v, "a number between 0 and 1"));
            }
        }
        "retention.ms" | "retention.bytes" => {
            parse_i64(key, v, -1, "an integer >= -1 (-1 = unlimited)")?;
        }
        _ => {}
    }
    Ok(())
}

fn topic_setting(key: &str, name: &str, v: &str, settings: &mut TopicSettings) -> Result<()> {
    match name {
        "partitions" => settings.partitions = Some(parse_count(key, v)?),
        "replication.factor" => settings.replication_factor = Some(parse_count(key, v)?),
        "include" | "exclude" => {}
        other => {
            check_topic_config(key, other, v)?;
            settings
                .configs
                .insert(other.to_string(), v.trim().to_string());
        }
    }
    Ok(())
}

/// Java-client `ssl.*` / `sasl.*` keys, translated or rejected.
fn client_property(
    key: &str,
    value: &str,
    props: &BTreeMap<String, String>,
    out: &mut ClientProperties,
) -> Result<()> {
    match key {
        "security.protocol" => {
            let up = value.trim().to_ascii_uppercase();
            if !SECURITY_PROTOCOLS.contains(&up.as_str()) {
                return Err(invalid(
                    key,
                    value,
                    format!("one of: {}", SECURITY_PROTOCOLS.join(", ")),
                ));
            }
            out.set(key, up.to_ascii_lowercase());
        }
        "ssl.truststore.location" => {
            let pem = props
                .get("ssl.truststore.type")
                .is_some_and(|t| t.eq_ignore_ascii_case("PEM"));
            if !pem {
                return Err(Error::UnsupportedConfig {
                    key: key.into(),
                    hint: "librdkafka cannot read JKS/PKCS12 trust stores: convert it to PEM \
                           and set ssl.ca.location (or ssl.truststore.type=PEM)"
                        .into(),
                });
            }
            out.set("ssl.ca.location", value);
        }
        "ssl.truststore.type" | "ssl.truststore.password" => {}
        "ssl.keystore.type" => {
            if !value.eq_ignore_ascii_case("PKCS12") {
                return Err(Error::UnsupportedConfig {
                    key: key.into(),
                    hint: "librdkafka reads PKCS12 key stores only (or PEM files via \
                           ssl.certificate.location / ssl.key.location)"
                        .into(),
                });
            }
        }
        "ssl.protocol"
        | "ssl.enabled.protocols"
        | "ssl.keymanager.algorithm"
        | "ssl.trustmanager.algorithm"
        | "ssl.secure.random.implementation" => {
            return Err(Error::UnsupportedConfig {
                key: key.into(),
                hint: "a Java-only TLS setting; librdkafka negotiates TLS through OpenSSL \
                       (see ssl.cipher.suites, ssl.curves.list)"
                    .into(),
            });
        }
        "sasl.jaas.config" => {
            let user = jaas_option(value, "username");
            let pass = jaas_option(value, "password");
            match (user, pass) {
                (Some(u), Some(p)) => {
                    out.set("sasl.username", u);
                    out.set("sasl.password", p);
                }
                _ => {
                    return Err(invalid(
                        key,
                        value,
                        "a PlainLoginModule/ScramLoginModule entry with username=\"…\" \
                         password=\"…\" (or set sasl.username / sasl.password)",
                    ))
                }
            }
        }
        _ => {
            out.set(key, value);
        }
    }
    Ok(())
}

/// A `*.override.<prop>`: security properties get the same translation as
/// top-level ones; errors name the full (prefixed) key.
fn override_property(
    full_key: &str,
    prop: &str,
    value: &str,
    props: &BTreeMap<String, String>,
    out: &mut ClientProperties,
) -> Result<()> {
    if prop == "security.protocol" || prop.starts_with("ssl.") || prop.starts_with("sasl.") {
        let prefix = &full_key[..full_key.len() - prop.len()];
        // Sibling keys (e.g. ssl.truststore.type) under the same prefix.
        let scoped: BTreeMap<String, String> = props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|p| (p.to_string(), v.clone())))
            .collect();
        client_property(prop, value, &scoped, out).map_err(|e| match e {
            Error::InvalidConfig {
                value, expected, ..
            } => Error::InvalidConfig {
                key: full_key.to_string(),
                value,
                expected,
            },
            Error::UnsupportedConfig { hint, .. } => Error::UnsupportedConfig {
                key: full_key.to_string(),
                hint,
            },
            other => other,
        })
    } else {
        out.set(prop, value);
        Ok(())
    }
}

/// Extracts `name="value"` from a JAAS config line.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_whitespace() || c == ';');
        let after = rest[i + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.strip_prefix('"') {
                    return q.find('"').map(|end| q[..end].to_string());
                }
                let end = v.find([' ', ';']).unwrap_or(v.len());
                return Some(v[..end].to_string());
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

impl KafkaConfig {
    /// Parses the keys kafka-io understands; other keys are ignored.
    /// A bad value fails with [`Error::InvalidConfig`] naming key, value
    /// (redacted for secrets) and what is allowed.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        let mut cfg = KafkaConfig::default();
        let mut groups: Vec<String> = Vec::new();
        if let Some(v) = props.get("topic.creation.groups") {
            groups = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for g in &groups {
                if g == "default" {
                    return Err(invalid(
                        "topic.creation.groups",
                        v,
                        "group names other than `default` (it is implicit)",
                    ));
                }
                let inc_key = format!("topic.creation.{g}.include");
                let include = match props.get(&inc_key) {
                    Some(i) => parse_regex_list(&inc_key, i)?,
                    None => {
                        return Err(invalid(
                            &inc_key,
                            "",
                            format!("a regex list: group `{g}` is listed in topic.creation.groups"),
                        ))
                    }
                };
                let exc_key = format!("topic.creation.{g}.exclude");
                let exclude = match props.get(&exc_key) {
                    Some(e) => parse_regex_list(&exc_key, e)?,
                    None => Vec::new(),
                };
                cfg.topic_creation.groups.push(TopicGroup {
                    name: g.clone(),
                    include,
                    exclude,
                    settings: TopicSettings::default(),
                });
            }
        }

        for (key, value) in props {
            let key = key.as_str();
            if let Some(rest) = key.strip_prefix("topic.creation.") {
                if rest == "groups" || rest == "enable" {
                    continue;
                }
                let Some((group, name)) = rest.split_once('.') else {
                    continue;
                };
                if group == "default" {
                    topic_setting(key, name, value, &mut cfg.topic_creation.default)?;
                } else if let Some(g) = cfg
                    .topic_creation
                    .groups
                    .iter_mut()
                    .find(|g| g.name == group)
                {
                    topic_setting(key, name, value, &mut g.settings)?;
                } else if !groups.is_empty() || name != "include" {
                    // A setting for an undeclared group is ignored by Connect; keep that.
                    tracing::debug!(
                        key,
                        "topic.creation group not listed in topic.creation.groups"
                    );
                }
            } else if let Some(p) = key.strip_prefix("producer.override.") {
                override_property(key, p, value, props, &mut cfg.producer_overrides)?;
            } else if let Some(p) = key.strip_prefix("consumer.override.") {
                override_property(key, p, value, props, &mut cfg.consumer_overrides)?;
            } else if let Some(p) = key.strip_prefix("admin.override.") {
                override_property(key, p, value, props, &mut cfg.admin_overrides)?;
            } else if let Some(p) = key.strip_prefix("librdkafka.") {
                cfg.client.set(p, value);
            } else if key == "bootstrap.servers" {
                if value.trim().is_empty() {
                    return Err(invalid(key, value, "a comma-separated host:port list"));
                }
                cfg.client.set(key, value.trim());
            } else if key == "client.id"
                || key == "security.protocol"
                || key.starts_with("ssl.")
                || key.starts_with("sasl.")
            {
                client_property(key, value, props, &mut cfg.client)?;
            } else if key.starts_with("errors.") {
                parse_errors_key(key, value, &mut cfg.errors)?;
            } else if key == "producer.engine" {
                cfg.producer_engine = match value.trim().to_ascii_lowercase().as_str() {
                    "auto" => ProducerEngine::Auto,
                    "native" => ProducerEngine::Native,
                    "librdkafka" => ProducerEngine::Librdkafka,
                    _ => return Err(invalid(key, value, "one of: auto, native, librdkafka")),
                };
            }
        }
        Ok(cfg)
    }

    /// Sets (replaces) `bootstrap.servers`.
    pub fn with_bootstrap_servers(mut self, servers: &str) -> Self {
        self.client.set("bootstrap.servers", servers);
        self
    }

    fn base(&self) -> Result<ClientConfig> {
        if self.client.get("bootstrap.servers").is_none() {
            return Err(invalid(
                "bootstrap.servers",
                "",
                "a comma-separated host:port list (it is not set)",
            ));
        }
        let mut c = ClientConfig::new();
        // The Java clients' default (Kafka Connect's), not librdkafka's 100
        // ms. librdkafka also waits half of it between attempts to open a
        // first connection (its sparse connections), so every new client
        // paid ≈ 50 ms before its first request; with 50, ≈ 25 ms.
        c.set("reconnect.backoff.ms", "50");
        self.client.apply_to(&mut c);
        Ok(c)
    }

    /// librdkafka config of a producer: idempotent, `acks=all`, lz4,
    /// Java-compatible `murmur2_random` partitioning, then `producer.override.*`;
    /// a compressing producer passes payloads by reference
    /// (`message.copy.max.bytes=0`) unless that is overridden too.
    pub fn producer_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "200000")
            .set("message.timeout.ms", "300000");
        self.producer_overrides.apply_to(&mut c);
        // A compressed batch is built from the messages' own buffers: with
        // the default (64 KB) librdkafka first copies every payload into the
        // request buffer, only to compress that copy. Passing payloads by
        // reference instead saved ~15 % of the source's CPU and 2–3 MiB of
        // RSS (300k Debezium JSON events, `tools/bench/source.sh`). An
        // uncompressed producer keeps the copy: there it saves one iovec
        // per message on the socket.
        let compressed = c
            .get("compression.type")
            .is_some_and(|t| !t.trim().eq_ignore_ascii_case("none"));
        if compressed && c.get("message.copy.max.bytes").is_none() {
            c.set("message.copy.max.bytes", "0");
        }
        Ok(c)
    }

    /// librdkafka config of a consumer in `group_id`: manual offset storing
    /// and committing, `auto.offset.reset=earliest`, then `consumer.override.*`.
    pub fn consumer_config(&self, group_id: &str) -> Result<ClientConfig> {
        let mut c = self.base()?;
        c.set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed");
        self.consumer_overrides.apply_to(&mut c);
        Ok(c)
    }

    /// librdkafka config of an admin client, then `admin.override.*`.
    pub fn admin_config(&self) -> Result<ClientConfig> {
        let mut c = self.base()?;
        self.admin_overrides.apply_to(&mut c);
        Ok(c)
    }
}

fn parse_errors_key(key: &str, value: &str, e: &mut ErrorHandling) -> Result<()> {
    match key {
        "errors.tolerance" => {
            e.tolerance = match value.trim().to_ascii_lowercase().as_str() {
                "none" => Tolerance::None,
                "all" => Tolerance::All,
                _ => return Err(invalid(key, value, "one of: none, all")),
            }
        }
        "errors.deadletterqueue.topic.name" => {
            let v = value.trim();
            let valid = v.len() <= 249
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && v != "."
                && v != "..";
            if !valid {
                return Err(invalid(
                    key,
                    value,
                    "a topic name of [a-zA-Z0-9._-], at most 249 characters, or empty for no DLQ",
                ));
            }
            e.dlq_topic = (!v.is_empty()).then(|| v.to_string());
        }
        "errors.deadletterqueue.context.headers.enable" => {
            e.dlq_context_headers = parse_bool(key, value)?
        }
        "errors.deadletterqueue.topic.replication.factor" => {
            let n = value
                .trim()
                .parse::<i16>()
                .ok()
                .filter(|n| *n == -1 || *n >= 1)
                .ok_or_else(|| invalid(key, value, "a positive integer or -1 (broker default)"))?;
            e.dlq_replication_factor = Some(n);
        }
        "errors.log.enable" => e.log_enable = parse_bool(key, value)?,
        "errors.log.include.messages" => e.log_include_messages = parse_bool(key, value)?,
        "errors.retry.timeout" => {
            let n = parse_i64(key, value, -1, "milliseconds >= 0, or -1 to retry forever")?;
            e.retry_timeout = u64::try_from(n).ok().map(Duration::from_millis);
        }
        "errors.retry.delay.max.ms" => {
            let n = parse_i64(key, value, 1, "milliseconds >= 1")?;
            e.retry_delay_max = Duration::from_millis(n.unsigned_abs());
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_source_settings() {
        let p = props(&[
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.default.compression.type", "lz4"),
            ("topic.creation.default.cleanup.policy", "compact,delete"),
            ("topic.creation.default.min.cleanable.dirty.ratio", "0.1"),
            ("topic.creation.default.retention.ms", "604800000"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "dlq_source"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
            ("errors.log.enable", "true"),
            ("errors.log.include.messages", "true"),
            ("database.hostname", "localhost"),
        ]);
        let c = KafkaConfig::from_properties(&p).expect("valid");
        let s = c.topic_creation.spec_for("pgsource.public.employees");
        assert_eq!((s.partitions, s.replication_factor), (3, 1));
        assert_eq!(s.configs["cleanup.policy"], "compact,delete");
        assert_eq!(s.configs.len(), 4);
        assert_eq!(c.errors.tolerance, Tolerance::All);
        assert_eq!(c.errors.dlq_topic.as_deref(), Some("dlq_source"));
        assert!(c.errors.dlq_context_headers && c.errors.log_enable);
        assert!(c.errors.log_include_messages);
        assert_eq!(c.errors.retry_timeout, Some(Duration::ZERO));
    }

    #[test]
    fn groups_override_default() {
        let p = props(&[
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.default.cleanup.policy", "delete"),
            ("topic.creation.groups", "compacted, big"),
            ("topic.creation.compacted.include", "pg\\.public\\..*"),
            ("topic.creation.compacted.exclude", "pg\\.public\\.log.*"),
            ("topic.creation.compacted.cleanup.policy", "compact"),
            ("topic.creation.big.include", "pg\\.public\\.log.*"),
            ("topic.creation.big.partitions", "12"),
        ]);
        let c = KafkaConfig::from_properties(&p).expect("valid");
        let a = c.topic_creation.spec_for("pg.public.users");
        assert_eq!((a.group.as_str(), a.partitions), ("compacted", 3));
        assert_eq!(a.configs["cleanup.policy"], "compact");
        let b = c.topic_creation.spec_for("pg.public.log_2024");
        assert_eq!((b.group.as_str(), b.partitions), ("big", 12));
        assert_eq!(b.configs["cleanup.policy"], "delete");
        let d = c.topic_creation.spec_for("other");
        assert_eq!(d.group, "default");
        // Whole-name match, as Java's Matcher.matches().
        assert_eq!(
            c.topic_creation.spec_for("xpg.public.users").group,
            "default"
        );
    }

    #[test]
    fn bad_values_name_key_value_and_allowed() {
        let cases = [
            ("errors.tolerance", "some", "one of: none, all"),
            ("errors.log.enable", "yes", "a boolean"),
            ("errors.retry.timeout", "-5", "-1 to retry forever"),
            ("topic.creation.default.partitions", "0", "positive integer"),
            ("topic.creation.default.compression.type", "brotli", "lz4"),
            (
                "topic.creation.default.cleanup.policy",
                "compact,keep",
                "compact, delete",
            ),
            (
                "topic.creation.default.min.cleanable.dirty.ratio",
                "2",
                "between 0 and 1",
            ),
            ("security.protocol", "TLS", "SASL_SSL"),
        ];
        for (k, v, allowed) in cases {
            let err = KafkaConfig::from_properties(&props(&[(k, v)])).expect_err(k);
            match &err {
                Error::InvalidConfig {
                    key,
                    value,
                    expected,
                } => {
                    assert_eq!((key.as_str(), value.as_str()), (k, v));
                    assert!(expected.contains(allowed), "{expected}");
                }
                other => panic!("{k}: unexpected {other:?}"),
            }
            assert!(!err.is_retriable());
        }
    }

    #[test]
    fn secrets_never_printed() {
        let p = props(&[
            ("bootstrap.servers", "b:9092"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "s3cr3t"),
            (
                "producer.override.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"topsecret\";",
            ),
        ]);
        let c = KafkaConfig::from_properties(&p).expect("valid");
        assert_eq!(c.producer_overrides.get("sasl.username"), Some("u"));
        assert_eq!(c.producer_overrides.get("sasl.jaas.config"), None);
        let dbg = format!("{c:?}");
        for s in ["hunter2", "s3cr3t", "topsecret"] {
            assert!(!dbg.contains(s), "{dbg}");
        }
        assert_eq!(c.client.get("security.protocol"), Some("sasl_ssl"));

        let bad = props(&[("sasl.jaas.config", "garbage password=\"pw-in-error\"")]);
        let err = KafkaConfig::from_properties(&bad).expect_err("no username");
        assert!(!err.to_string().contains("pw-in-error"), "{err}");
        assert!(err.to_string().contains(REDACTED));
    }

    #[test]
    fn jaas_is_translated() {
        let p = props(&[(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"pw\";",
        )]);
        let c = KafkaConfig::from_properties(&p).expect("valid");
        assert_eq!(c.client.get("sasl.username"), Some("alice"));
        assert_eq!(c.client.get("sasl.password"), Some("pw"));
    }

    #[test]
    fn overrides_and_passthrough() {
        let p = props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("producer.override.linger.ms", "20"),
            ("consumer.override.fetch.max.bytes", "1000"),
            ("librdkafka.statistics.interval.ms", "1000"),
        ]);
        let c = KafkaConfig::from_properties(&p).expect("valid");
        let pc = c.producer_config().expect("producer");
        assert_eq!(pc.get("linger.ms"), Some("20"));
        assert_eq!(pc.get("enable.idempotence"), Some("true"));
        assert_eq!(pc.get("partitioner"), Some("murmur2_random"));
        assert_eq!(pc.get("statistics.interval.ms"), Some("1000"));
        assert_eq!(pc.get("message.copy.max.bytes"), Some("0"));
        let cc = c.consumer_config("g").expect("consumer");
        assert_eq!(cc.get("fetch.max.bytes"), Some("1000"));
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert!(KafkaConfig::default().producer_config().is_err());
    }

    #[test]
    fn payload_copies_only_for_uncompressed_producers_unless_set() {
        let make = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("bootstrap.servers", "127.0.0.1:9092")];
            pairs.extend_from_slice(extra);
            KafkaConfig::from_properties(&props(&pairs))
                .expect("valid")
                .producer_config()
                .expect("producer")
        };
        assert_eq!(make(&[]).get("message.copy.max.bytes"), Some("0"));
        let none = make(&[("producer.override.compression.type", "none")]);
        assert_eq!(none.get("message.copy.max.bytes"), None);
        let set = make(&[("producer.override.message.copy.max.bytes", "1024")]);
        assert_eq!(set.get("message.copy.max.bytes"), Some("1024"));
    }

    #[test]
    fn jks_truststore_is_rejected_with_a_hint() {
        let p = props(&[("ssl.truststore.location", "/x.jks")]);
        match KafkaConfig::from_properties(&p) {
            Err(Error::UnsupportedConfig { key, hint }) => {
                assert_eq!(key, "ssl.truststore.location");
                assert!(hint.contains("ssl.ca.location"));
            }
            other => panic!("{other:?}"),
        }
    }
}
