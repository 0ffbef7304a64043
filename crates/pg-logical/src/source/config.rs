//! Connector configuration with the Debezium PostgreSQL connector's property
//! names and defaults.
//!
//! [`SourceConfig::from_properties`] reads the `config` map of a Debezium
//! connector JSON as is: unknown keys (converters, `topic.creation.*`,
//! `errors.*` …) are ignored, known keys are validated and a bad value is an
//! [`Error::InvalidConfig`] naming the key, the value and what is allowed.
//! The password is kept in a [`Secret`] that never prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cdc_envelope::TableId;

use crate::error::{Error, Result};

/// The workspace's never-printed secret string.
pub use cdc_envelope::Secret;

/// `database.sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// `disable`: plain TCP.
    Disable,
    /// `allow`: plain TCP (TLS only if the server insists; treated as `disable`).
    Allow,
    /// `prefer` (Debezium's default): TLS when the server offers it (no
    /// certificate verification, as in libpq and pgjdbc), plain TCP when it
    /// refuses the `SSLRequest`. Use `verify-full` against active attackers.
    #[default]
    Prefer,
    /// `require`: TLS without certificate verification.
    Require,
    /// `verify-ca`: TLS, the certificate must chain to `database.sslrootcert`.
    VerifyCa,
    /// `verify-full`: like `verify-ca`, and the host name must match.
    VerifyFull,
}

impl SslMode {
    const ALLOWED: &'static str = "disable, allow, prefer, require, verify-ca, verify-full";

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" | "verify_ca" => Self::VerifyCa,
            "verify-full" | "verify_full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// True when the connections must be encrypted.
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    /// True when the connections ask the server for TLS first (`prefer`
    /// and the modes that require it).
    pub fn attempts_tls(self) -> bool {
        self == Self::Prefer || self.requires_tls()
    }
}

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublicationAutocreateMode {
    /// `all_tables` (Debezium's default): `CREATE PUBLICATION … FOR ALL TABLES`
    /// when missing (needs superuser).
    #[default]
    AllTables,
    /// `filtered`: create the publication for the included tables, or
    /// `ALTER PUBLICATION … SET TABLE` an existing one to exactly them.
    Filtered,
    /// `disabled`: the publication must exist.
    Disabled,
    /// `no_tables`: create an empty publication when missing; tables are added by hand.
    NoTables,
}

impl PublicationAutocreateMode {
    const ALLOWED: &'static str = "all_tables, filtered, disabled, no_tables";

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "all_tables" => Self::AllTables,
            "filtered" => Self::Filtered,
            "disabled" => Self::Disabled,
            "no_tables" => Self::NoTables,
            _ => return None,
        })
    }
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// `initial` (default): snapshot when no offsets exist, then stream.
    #[default]
    Initial,
    /// `always`: snapshot on every start, then stream.
    Always,
    /// `initial_only`: snapshot when no offsets exist, then stop.
    InitialOnly,
    /// `no_data` (old name `never`): stream only, no snapshot.
    NoData,
    /// `when_needed`: snapshot when there are no offsets or the slot cannot
    /// resume from them (missing, invalidated, or already past them).
    WhenNeeded,
}

impl SnapshotMode {
    const ALLOWED: &'static str =
        "initial, always, initial_only, no_data, when_needed (never = no_data)";

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "initial" => Self::Initial,
            "always" => Self::Always,
            "initial_only" => Self::InitialOnly,
            "no_data" | "never" => Self::NoData,
            "when_needed" => Self::WhenNeeded,
            _ => return None,
        })
    }
}

/// Operations named in `skipped.operations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkippedOperations {
    /// `c`: inserts.
    pub create: bool,
    /// `u`: updates.
    pub update: bool,
    /// `d`: deletes.
    pub delete: bool,
    /// `t`: truncates (skipped by default, as in Debezium).
    pub truncate: bool,
}

impl SkippedOperations {
    fn parse(s: &str) -> Option<Self> {
        let mut out = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "none" => {}
                "c" => out.create = true,
                "u" => out.update = true,
                "d" => out.delete = true,
                "t" => out.truncate = true,
                _ => return None,
            }
        }
        Some(out)
    }
}

/// A Debezium regex list (`table.include.list` …): comma-separated regular
/// expressions (a comma inside one is written `\,`), each matched against
/// the whole identifier (anchored), case-insensitively.
#[derive(Clone)]
pub struct RegexList {
    source: String,
    patterns: Vec<regex_lite::Regex>,
}

impl fmt::Debug for RegexList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegexList({:?})", self.source)
    }
}

impl RegexList {
    /// Parses a list; `key` names the property for errors.
    pub fn parse(key: &str, value: &str) -> Result<Self> {
        let mut patterns = Vec::new();
        for part in split_unescaped_commas(value) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let re = regex_lite::Regex::new(&format!("(?i)^(?:{part})$")).map_err(|e| {
                Error::InvalidConfig {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    expected: format!("comma-separated regular expressions ({part:?}: {e})"),
                }
            })?;
            patterns.push(re);
        }
        Ok(Self {
            source: value.to_owned(),
            patterns,
        })
    }

    /// True if any expression matches the whole of `s`.
    pub fn matches(&self, s: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(s))
    }

    /// Index of the first expression that matches the whole of `s`.
    pub fn first_match(&self, s: &str) -> Option<usize> {
        self.patterns.iter().position(|p| p.is_match(s))
    }

    /// True when the list has no expressions.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn split_unescaped_commas(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&',') {
            cur.push(',');
            chars.next();
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Which tables are captured: Debezium's schema and table include/exclude
/// lists (an include list and an exclude list of the same kind are mutually
/// exclusive). System schemas are never captured.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// `schema.include.list`.
    pub schema_include: Option<RegexList>,
    /// `schema.exclude.list`.
    pub schema_exclude: Option<RegexList>,
    /// `table.include.list` (matched against `schema.table`).
    pub table_include: Option<RegexList>,
    /// `table.exclude.list`.
    pub table_exclude: Option<RegexList>,
}

impl TableFilter {
    /// True if the table is captured.
    pub fn includes(&self, id: &TableId) -> bool {
        if matches!(
            id.schema.as_str(),
            "pg_catalog" | "information_schema" | "pg_toast"
        ) || id.schema.starts_with("pg_temp")
            || id.schema.starts_with("pg_toast_temp")
        {
            return false;
        }
        if let Some(inc) = &self.schema_include {
            if !inc.matches(&id.schema) {
                return false;
            }
        }
        if let Some(exc) = &self.schema_exclude {
            if exc.matches(&id.schema) {
                return false;
            }
        }
        let full = format!("{}.{}", id.schema, id.table);
        if let Some(inc) = &self.table_include {
            if !inc.matches(&full) {
                return false;
            }
        }
        if let Some(exc) = &self.table_exclude {
            if exc.matches(&full) {
                return false;
            }
        }
        true
    }

    /// Where a captured table comes in the snapshot, as Debezium orders it:
    /// by the first `table.include.list` expression it matches (tables
    /// matching the same one, and all tables without an include list, by
    /// name).
    pub fn snapshot_rank(&self, id: &TableId) -> usize {
        self.table_include
            .as_ref()
            .and_then(|inc| inc.first_match(&format!("{}.{}", id.schema, id.table)))
            .unwrap_or(0)
    }
}

/// The replication source's configuration.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `database.hostname`.
    pub hostname: String,
    /// `database.port` (5432).
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: Secret,
    /// `database.dbname`.
    pub dbname: String,
    /// `database.sslmode` (`prefer`).
    pub sslmode: SslMode,
    /// `database.sslrootcert`.
    pub sslrootcert: Option<PathBuf>,
    /// `database.sslcert` (client certificate, PEM).
    pub sslcert: Option<PathBuf>,
    /// `database.sslkey` (client key, PEM).
    pub sslkey: Option<PathBuf>,
    /// `topic.prefix` (the logical server name, `source.name`).
    pub topic_prefix: String,
    /// `plugin.name`: only `pgoutput` (Debezium's default `decoderbufs` is
    /// not supported, so the default here is `pgoutput`).
    pub plugin_name: String,
    /// `slot.name` (`debezium`).
    pub slot_name: String,
    /// `publication.name` (`dbz_publication`).
    pub publication_name: String,
    /// `publication.autocreate.mode` (`all_tables`).
    pub publication_autocreate_mode: PublicationAutocreateMode,
    /// `publish.via.partition.root` (false, as Debezium): the publication
    /// this connector creates gets `publish_via_partition_root = true`, so
    /// changes to the partitions of a captured partitioned table arrive as
    /// changes to that (root) table, under its name and topic.
    pub publish_via_partition_root: bool,
    /// Schema/table include and exclude lists.
    pub tables: TableFilter,
    /// `slot.drop.on.stop` (false).
    pub slot_drop_on_stop: bool,
    /// `slot.max.retries` (6): attempts to acquire a slot held by another session.
    pub slot_max_retries: u32,
    /// `slot.retry.delay.ms` (10000).
    pub slot_retry_delay: Duration,
    /// `snapshot.mode` (`initial`).
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.max.threads` (1): parallel snapshot readers.
    pub snapshot_max_threads: usize,
    /// `snapshot.fetch.size` (10240): rows per batch handed from a reader to the stream.
    pub snapshot_fetch_size: usize,
    /// `snapshot.chunk.size` (pg-cdc extension, 100000): rows per primary-key
    /// chunk, the unit of parallelism and of snapshot resumption.
    pub snapshot_chunk_size: u64,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval: Option<Duration>,
    /// `heartbeat.action.query`: run on the source at each heartbeat.
    pub heartbeat_action_query: Option<String>,
    /// `skipped.operations` (`t`).
    pub skipped_operations: SkippedOperations,
    /// `provide.transaction.metadata` (false).
    pub provide_transaction_metadata: bool,
    /// `status.update.interval.ms` (10000).
    pub status_update_interval: Duration,
    /// `max.queue.size` (8192): events buffered between the source and its consumer.
    pub max_queue_size: usize,
}

/// Property names this module reads.
pub const KNOWN_KEYS: &[&str] = &[
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "database.sslmode",
    "database.sslrootcert",
    "database.sslcert",
    "database.sslkey",
    "topic.prefix",
    "plugin.name",
    "slot.name",
    "publication.name",
    "publication.autocreate.mode",
    "publish.via.partition.root",
    "table.include.list",
    "table.exclude.list",
    "schema.include.list",
    "schema.exclude.list",
    "slot.drop.on.stop",
    "slot.max.retries",
    "slot.retry.delay.ms",
    "snapshot.mode",
    "snapshot.max.threads",
    "snapshot.fetch.size",
    "snapshot.chunk.size",
    "heartbeat.interval.ms",
    "heartbeat.action.query",
    "skipped.operations",
    "provide.transaction.metadata",
    "status.update.interval.ms",
    "max.queue.size",
];

struct Props<'a> {
    map: &'a BTreeMap<String, String>,
}

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn required(&self, key: &str) -> Result<String> {
        self.get(key)
            .map(str::to_owned)
            .ok_or_else(|| Error::MissingConfig {
                key: key.to_owned(),
            })
    }

    fn invalid(key: &str, value: &str, expected: &str) -> Error {
        Error::InvalidConfig {
            key: key.to_owned(),
            value: if key.contains("password") {
                "<redacted>".to_owned()
            } else {
                value.to_owned()
            },
            expected: expected.to_owned(),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: T, expected: &str) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Self::invalid(key, v, expected)),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Self::invalid(key, v, "true or false")),
            },
        }
    }

    fn enumerated<T>(
        &self,
        key: &str,
        default: T,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse(v).ok_or_else(|| Self::invalid(key, v, &format!("one of {allowed}"))),
        }
    }

    fn regex_list(&self, key: &str) -> Result<Option<RegexList>> {
        self.get(key).map(|v| RegexList::parse(key, v)).transpose()
    }
}

impl SourceConfig {
    /// Reads Debezium PostgreSQL connector properties. `database.hostname`,
    /// `database.user`, `database.dbname` and `topic.prefix` are required.
    pub fn from_properties(map: &BTreeMap<String, String>) -> Result<Self> {
        let p = Props { map };
        let plugin_name = p.get("plugin.name").unwrap_or("pgoutput").to_owned();
        if plugin_name != "pgoutput" {
            return Err(Props::invalid(
                "plugin.name",
                &plugin_name,
                "pgoutput (the only supported plugin)",
            ));
        }
        let tables = TableFilter {
            schema_include: p.regex_list("schema.include.list")?,
            schema_exclude: p.regex_list("schema.exclude.list")?,
            table_include: p.regex_list("table.include.list")?,
            table_exclude: p.regex_list("table.exclude.list")?,
        };
        for (inc, exc) in [
            ("schema.include.list", "schema.exclude.list"),
            ("table.include.list", "table.exclude.list"),
        ] {
            if p.get(inc).is_some() && p.get(exc).is_some() {
                return Err(Props::invalid(
                    exc,
                    p.get(exc).unwrap_or_default(),
                    &format!("not set together with {inc} (Debezium allows only one of them)"),
                ));
            }
        }
        let millis = |key: &str, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(p.number(
                key,
                default,
                "a non-negative integer (milliseconds)",
            )?))
        };
        let heartbeat = millis("heartbeat.interval.ms", 0)?;
        let threads: usize = p.number("snapshot.max.threads", 1, "a positive integer")?;
        if threads == 0 {
            return Err(Props::invalid(
                "snapshot.max.threads",
                "0",
                "a positive integer",
            ));
        }
        let fetch: usize = p.number("snapshot.fetch.size", 10240, "a positive integer")?;
        let chunk: u64 = p.number("snapshot.chunk.size", 100_000, "a positive integer")?;
        let queue: usize = p.number("max.queue.size", 8192, "a positive integer")?;
        for (k, v) in [
            ("snapshot.fetch.size", fetch as u64),
            ("snapshot.chunk.size", chunk),
            ("max.queue.size", queue as u64),
        ] {
            if v == 0 {
                return Err(Props::invalid(k, "0", "a positive integer"));
            }
        }
        let port: u16 = p.number("database.port", 5432, "a TCP port (1-65535)")?;
        if port == 0 {
            return Err(Props::invalid("database.port", "0", "a TCP port (1-65535)"));
        }
        Ok(Self {
            hostname: p.required("database.hostname")?,
            port,
            user: p.required("database.user")?,
            password: Secret::new(map.get("database.password").cloned().unwrap_or_default()),
            dbname: p.required("database.dbname")?,
            sslmode: p.enumerated(
                "database.sslmode",
                SslMode::Prefer,
                SslMode::parse,
                SslMode::ALLOWED,
            )?,
            sslrootcert: p.get("database.sslrootcert").map(PathBuf::from),
            sslcert: p.get("database.sslcert").map(PathBuf::from),
            sslkey: p.get("database.sslkey").map(PathBuf::from),
            topic_prefix: p.required("topic.prefix")?,
            plugin_name,
            slot_name: p.get("slot.name").unwrap_or("debezium").to_owned(),
            publication_name: p
                .get("publication.name")
                .unwrap_or("dbz_publication")
                .to_owned(),
            publication_autocreate_mode: p.enumerated(
                "publication.autocreate.mode",
                PublicationAutocreateMode::AllTables,
                PublicationAutocreateMode::parse,
                PublicationAutocreateMode::ALLOWED,
            )?,
            publish_via_partition_root: p.bool("publish.via.partition.root", false)?,
            tables,
            slot_drop_on_stop: p.bool("slot.drop.on.stop", false)?,
            slot_max_retries: p.number("slot.max.retries", 6, "a non-negative integer")?,
            slot_retry_delay: millis("slot.retry.delay.ms", 10_000)?,
            snapshot_mode: p.enumerated(
                "snapshot.mode",
                SnapshotMode::Initial,
                SnapshotMode::parse,
                SnapshotMode::ALLOWED,
            )?,
            snapshot_max_threads: threads,
            snapshot_fetch_size: fetch,
            snapshot_chunk_size: chunk,
            heartbeat_interval: (!heartbeat.is_zero()).then_some(heartbeat),
            heartbeat_action_query: p.get("heartbeat.action.query").map(str::to_owned),
            skipped_operations: p.enumerated(
                "skipped.operations",
                SkippedOperations {
                    truncate: true,
                    ..Default::default()
                },
                SkippedOperations::parse,
                "a comma-separated list of c, u, d, t, or none",
            )?,
            provide_transaction_metadata: p.bool("provide.transaction.metadata", false)?,
            status_update_interval: millis("status.update.interval.ms", 10_000)?,
            max_queue_size: queue,
        })
    }

    /// Keys in `map` that look like source properties (`database.`, `slot.`,
    /// `snapshot.` …) but are not read here, to warn about typos.
    pub fn unknown_source_keys(map: &BTreeMap<String, String>) -> Vec<String> {
        let known: BTreeSet<&str> = KNOWN_KEYS.iter().copied().collect();
        let prefixes = [
            "database.",
            "slot.",
            "snapshot.",
            "publication.",
            "heartbeat.",
            "plugin.",
        ];
        map.keys()
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)) && !known.contains(k.as_str()))
            .cloned()
            .collect()
    }

    /// `-c` startup options that pin how values are printed as text, for
    /// both the SQL and the replication connections (`lc_monetary=C` so
    /// `money` prints as `$1,234.56` whatever the server locale).
    pub fn session_options() -> &'static str {
        "-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC -c extra_float_digits=3 -c lc_monetary=C"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("database.hostname", "localhost"),
            ("database.user", "cdc"),
            ("database.password", "hunter2"),
            ("database.dbname", "db"),
            ("topic.prefix", "p"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn defaults_match_debezium() {
        let c = SourceConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.port, 5432);
        assert_eq!(c.slot_name, "debezium");
        assert_eq!(c.publication_name, "dbz_publication");
        assert_eq!(
            c.publication_autocreate_mode,
            PublicationAutocreateMode::AllTables
        );
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(c.sslmode, SslMode::Prefer);
        assert!(c.skipped_operations.truncate && !c.skipped_operations.create);
        assert_eq!(c.slot_max_retries, 6);
        assert_eq!(c.slot_retry_delay, Duration::from_secs(10));
        assert_eq!(c.snapshot_fetch_size, 10240);
        assert!(c.heartbeat_interval.is_none());
        assert!(!c.provide_transaction_metadata);
        assert!(!c.publish_via_partition_root);
    }

    #[test]
    fn publish_via_partition_root() {
        let c = SourceConfig::from_properties(&props(&[("publish.via.partition.root", "true")]))
            .unwrap();
        assert!(c.publish_via_partition_root);
        let e = SourceConfig::from_properties(&props(&[("publish.via.partition.root", "maybe")]))
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "publish.via.partition.root"),
            "{e}"
        );
    }

    #[test]
    fn seed_connector_json_is_accepted() {
        // The `config` map of the seed's `postg-source-connector.json`, verbatim.
        let seed: &[(&str, &str)] = &[
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("tasks.max", "1"),
            ("database.hostname", "localhost"),
            ("database.port", "5432"),
            ("database.user", "cdc"),
            ("database.password", "cdc"),
            ("database.dbname", "bf_source"),
            ("topic.prefix", "pgsource"),
            ("plugin.name", "pgoutput"),
            ("slot.name", "debezium_pgsource_slot"),
            ("publication.name", "debezium_pub"),
            ("publication.autocreate.mode", "filtered"),
            ("table.include.list", "public.employees"),
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "connect"),
            ("tombstones.on.delete", "false"),
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
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("key.converter.schemas.enable", "true"),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("value.converter.schemas.enable", "true"),
        ];
        let map: BTreeMap<String, String> = seed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = SourceConfig::from_properties(&map).unwrap();
        assert_eq!(c.slot_name, "debezium_pgsource_slot");
        assert_eq!(c.publication_name, "debezium_pub");
        assert_eq!(
            c.publication_autocreate_mode,
            PublicationAutocreateMode::Filtered
        );
        assert!(c.tables.includes(&TableId::new("public", "employees")));
        assert!(!c.tables.includes(&TableId::new("public", "employees2")));
        assert!(!c.tables.includes(&TableId::new("other", "employees")));
        assert!(SourceConfig::unknown_source_keys(&map).is_empty());
    }

    #[test]
    fn bad_values_name_key_value_and_allowed() {
        let e =
            SourceConfig::from_properties(&props(&[("snapshot.mode", "sometimes")])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("snapshot.mode")
                && msg.contains("sometimes")
                && msg.contains("when_needed"),
            "{msg}"
        );
        let e = SourceConfig::from_properties(&props(&[("publication.autocreate.mode", "x")]))
            .unwrap_err();
        assert!(e
            .to_string()
            .contains("all_tables, filtered, disabled, no_tables"));
        let e =
            SourceConfig::from_properties(&props(&[("plugin.name", "decoderbufs")])).unwrap_err();
        assert!(e.to_string().contains("pgoutput"));
        let e = SourceConfig::from_properties(&props(&[("database.port", "http")])).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { ref key, .. } if key == "database.port"));
        let e =
            SourceConfig::from_properties(&props(&[("table.include.list", "a.(")])).unwrap_err();
        assert!(e.to_string().contains("table.include.list"));
        let mut m = props(&[]);
        m.remove("topic.prefix");
        assert_eq!(
            SourceConfig::from_properties(&m).unwrap_err(),
            Error::MissingConfig {
                key: "topic.prefix".into()
            }
        );
    }

    #[test]
    fn never_is_no_data() {
        let c = SourceConfig::from_properties(&props(&[("snapshot.mode", "never")])).unwrap();
        assert_eq!(c.snapshot_mode, SnapshotMode::NoData);
    }

    #[test]
    fn password_never_printed() {
        let c = SourceConfig::from_properties(&props(&[])).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(c.password.expose(), "hunter2");
    }

    #[test]
    fn regex_lists_are_anchored_and_comma_separated() {
        let l = RegexList::parse("k", r"public\.emp.*, inventory\.a{1\,2}").unwrap();
        assert!(l.matches("public.employees"));
        assert!(l.matches("PUBLIC.EMPLOYEES"));
        assert!(!l.matches("xpublic.employees"));
        assert!(l.matches("inventory.aa"));
        assert!(!l.matches("inventory.aaa"));
        let f = TableFilter {
            schema_exclude: Some(RegexList::parse("k", "audit").unwrap()),
            ..Default::default()
        };
        assert!(!f.includes(&TableId::new("audit", "x")));
        assert!(f.includes(&TableId::new("public", "x")));
        assert!(!f.includes(&TableId::new("pg_catalog", "pg_class")));
    }

    #[test]
    fn skipped_operations_parse() {
        let c = SourceConfig::from_properties(&props(&[("skipped.operations", "none")])).unwrap();
        assert_eq!(c.skipped_operations, SkippedOperations::default());
        let c = SourceConfig::from_properties(&props(&[("skipped.operations", "c,u")])).unwrap();
        assert!(
            c.skipped_operations.create
                && c.skipped_operations.update
                && !c.skipped_operations.truncate
        );
        assert!(SourceConfig::from_properties(&props(&[("skipped.operations", "x")])).is_err());
    }
}
