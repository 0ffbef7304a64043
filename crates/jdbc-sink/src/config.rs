//! Configuration: the Debezium JDBC sink's property names, defaults and
//! validation rules, read from string properties.
//!
//! | property | default | notes |
//! |---|---|---|
//! | `connection.url` | required | `jdbc:postgresql://host[:port][/db][?params]` (`postgresql://` also accepted); params `user`, `password`, `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `currentSchema`, `ApplicationName`, `connectTimeout` |
//! | `hibernate.connection.sslmode` / `…sslrootcert` / `…sslcert` / `…sslkey` | from the URL | the JDBC driver properties as the Debezium JDBC sink passes them (see [`crate::tls`] for the modes) |
//! | `connection.username` / `connection.password` | from the URL | the password never appears in `Debug`, logs or errors |
//! | `insert.mode` | `insert` | `insert`, `update`, `upsert` |
//! | `primary.key.mode` | `none` | `none`, `kafka`, `record_key`, `record_value`, `record_header` |
//! | `primary.key.fields` | empty | comma-separated |
//! | `delete.enabled` / `truncate.enabled` | `false` | delete needs `primary.key.mode=record_key` |
//! | `collection.name.format` / `table.name.format` | `${topic}` | `${topic}` (dots become `_`), `${source.schema}`, `${source.table}`; a literal `.` separates schema and table |
//! | `quote.identifiers` | `false` | `false`: names folded to lower case (as PostgreSQL folds unquoted names), still quoted in SQL |
//! | `schema.evolution` | `none` | `none`, `basic`; `auto.create` / `auto.evolve` = `true` are accepted as aliases |
//! | `batch.size` | `500` | records per database transaction |
//! | `use.reduction.buffer` | `true` (Debezium: `false`) | `true`: one row per key with its final state per batch (see [`crate::reduce`]); `false`: every event applied in record order (a repeated key starts new statements) |
//! | `flush.max.retries` / `flush.retry.delay.ms` | `5` / `1000` | transient database errors |
//! | `errors.tolerance` | `none` | `all`: failing records are returned for the DLQ and the rest commits |
//! | `tasks.max` | `1` | writer connections in a [`crate::pool::SinkPool`] |
//! | `name` | `pg-cdc-sink` | connector name, the key of stored offsets |
//! | `pgcdc.exactly.once` | `true` | store offsets in the target in the same transaction as the rows |
//! | `pgcdc.offsets.table` | `__pgcdc_sink_offsets` | |
//! | `pgcdc.write.path` | `auto` | `auto`, `unnest`, `copy` (see [`crate::write`]) |

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::SinkError;
use crate::naming::NameFormat;

/// `insert.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// `INSERT`; a duplicate key fails the record.
    Insert,
    /// `UPDATE … WHERE key`; missing rows are not created.
    Update,
    /// `INSERT … ON CONFLICT (key) DO UPDATE`.
    Upsert,
}

/// `primary.key.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryKeyMode {
    /// No key: every record is appended.
    None,
    /// `__connect_topic`, `__connect_partition`, `__connect_offset`.
    Kafka,
    /// The record key's fields (or `primary.key.fields` among them).
    RecordKey,
    /// `primary.key.fields` of the value (all fields when empty).
    RecordValue,
    /// `primary.key.fields` read from the record headers (as text).
    RecordHeader,
}

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTolerance {
    /// The first failing record fails the whole batch.
    None,
    /// Failing records are reported; the rest commits.
    All,
}

/// Which bulk path writes rows (`pgcdc.write.path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// The measured default: `unnest` unless a column is an array.
    Auto,
    /// One `INSERT … SELECT … FROM UNNEST($1::row_type[])` per group (rows
    /// as one array of a session row type).
    Unnest,
    /// Binary `COPY` into a temporary staging table, then `INSERT … SELECT`.
    Copy,
}

/// `sslmode` from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it (certificate not verified).
    Allow,
    /// TLS if the server offers it (certificate not verified); the default.
    Prefer,
    /// TLS required (certificate verified only when `sslrootcert` is given).
    Require,
    /// TLS with CA verification.
    VerifyCa,
    /// TLS with CA and host name verification.
    VerifyFull,
}

/// The workspace's never-printed secret string.
pub use cdc_envelope::Secret;

/// Where and how to connect, parsed from `connection.url` and the
/// `connection.*` properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Hosts and ports (several for a multi-host URL; tried in order).
    pub hosts: Vec<(String, u16)>,
    /// Database name.
    pub database: String,
    /// User.
    pub user: String,
    /// Password (redacted in `Debug`).
    pub password: Option<Secret>,
    /// `sslmode`.
    pub ssl_mode: SslMode,
    /// `sslrootcert`, when given: a PEM file of CA certificates, or `system`.
    pub ssl_root_cert: Option<String>,
    /// `sslcert`: client certificate (PEM) for certificate authentication.
    pub ssl_cert: Option<String>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub ssl_key: Option<String>,
    /// `currentSchema`: the default schema for unqualified table names.
    pub current_schema: Option<String>,
    /// `ApplicationName`.
    pub application_name: String,
    /// `connectTimeout` (seconds in the URL).
    pub connect_timeout: Option<Duration>,
}

impl ConnectionConfig {
    /// Parses `jdbc:postgresql://host[:port][,host2[:port]][/db][?k=v&…]`
    /// (the `jdbc:` prefix is optional; `postgres://` is accepted too).
    pub fn parse_url(url: &str) -> Result<Self, SinkError> {
        let bad = |why: &str| {
            SinkError::config(
                "connection.url",
                format!("cannot parse {:?}: {why}", redact_url(url)),
                "use jdbc:postgresql://host:port/database?sslmode=…",
            )
        };
        let rest = url.strip_prefix("jdbc:").unwrap_or(url);
        let rest = rest
            .strip_prefix("postgresql://")
            .or_else(|| rest.strip_prefix("postgres://"))
            .ok_or_else(|| bad("expected the jdbc:postgresql:// scheme"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, db) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut hosts = Vec::new();
        for h in hostlist.split(',') {
            if h.is_empty() {
                continue;
            }
            let (host, port) = if let Some(v6) = h.strip_prefix('[') {
                let (addr, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unterminated [ipv6]"))?;
                (addr.to_owned(), after.strip_prefix(':'))
            } else {
                match h.rsplit_once(':') {
                    Some((a, p)) => (a.to_owned(), Some(p)),
                    None => (h.to_owned(), None),
                }
            };
            let port = match port {
                Some(p) => p.parse::<u16>().map_err(|_| bad("port is not a number"))?,
                None => 5432,
            };
            hosts.push((host, port));
        }
        if hosts.is_empty() {
            hosts.push(("localhost".to_owned(), 5432));
        }
        let mut cfg = ConnectionConfig {
            hosts,
            database: percent_decode(db),
            user: String::new(),
            password: None,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            current_schema: None,
            application_name: "pg-cdc-sink".to_owned(),
            connect_timeout: None,
        };
        if let Some(u) = userinfo {
            let (user, pw) = u.split_once(':').unwrap_or((u, ""));
            cfg.user = percent_decode(user);
            if !pw.is_empty() {
                cfg.password = Some(Secret::new(percent_decode(pw)));
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "user" => cfg.user = v,
                "password" => cfg.password = Some(Secret::new(v)),
                "sslmode" => {
                    cfg.ssl_mode = parse_ssl_mode(&v).ok_or_else(|| {
                        bad("sslmode must be disable|allow|prefer|require|verify-ca|verify-full")
                    })?
                }
                "ssl" if v == "true" => cfg.ssl_mode = SslMode::VerifyFull,
                "sslrootcert" => cfg.ssl_root_cert = Some(v),
                "sslcert" => cfg.ssl_cert = Some(v),
                "sslkey" => cfg.ssl_key = Some(v),
                "currentSchema" => cfg.current_schema = Some(v),
                "ApplicationName" => cfg.application_name = v,
                "connectTimeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad("connectTimeout is not a number of seconds"))?;
                    cfg.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// A tokio-postgres configuration.
    pub fn to_pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        for (h, p) in &self.hosts {
            c.host(h);
            c.port(*p);
        }
        c.dbname(&self.database)
            .user(&self.user)
            .application_name(&self.application_name);
        if let Some(pw) = &self.password {
            c.password(pw.expose());
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        c.ssl_mode(match self.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        c
    }
}

fn parse_ssl_mode(v: &str) -> Option<SslMode> {
    Some(match v {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        _ => return None,
    })
}

fn redact_url(url: &str) -> String {
    // Drop userinfo and the query string (either may hold a password).
    let no_query = url.split('?').next().unwrap_or(url);
    match (no_query.find("://"), no_query.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &no_query[..s + 3], &no_query[at + 1..]),
        _ => no_query.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The whole sink configuration.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// `name`: connector name (key of the stored offsets).
    pub name: String,
    /// Connection settings.
    pub connection: ConnectionConfig,
    /// `insert.mode`.
    pub insert_mode: InsertMode,
    /// `primary.key.mode`.
    pub primary_key_mode: PrimaryKeyMode,
    /// `primary.key.fields`.
    pub primary_key_fields: Vec<String>,
    /// `delete.enabled`.
    pub delete_enabled: bool,
    /// `truncate.enabled`.
    pub truncate_enabled: bool,
    /// `collection.name.format` / `table.name.format`.
    pub table_name_format: NameFormat,
    /// `quote.identifiers`.
    pub quote_identifiers: bool,
    /// Create missing tables (`schema.evolution=basic` or `auto.create=true`).
    pub auto_create: bool,
    /// Add missing columns (`schema.evolution=basic` or `auto.evolve=true`).
    pub auto_evolve: bool,
    /// `batch.size`.
    pub batch_size: usize,
    /// `use.reduction.buffer`: collapse the events of one key in a batch to
    /// its final state (`true`, the default here) or apply every event in
    /// record order (`false`).
    pub use_reduction_buffer: bool,
    /// `flush.max.retries`.
    pub max_retries: u32,
    /// `flush.retry.delay.ms`.
    pub retry_delay: Duration,
    /// `errors.tolerance`.
    pub errors_tolerance: ErrorTolerance,
    /// `tasks.max`: writer connections in a pool.
    pub tasks_max: usize,
    /// `pgcdc.exactly.once`.
    pub exactly_once: bool,
    /// `pgcdc.offsets.table`.
    pub offsets_table: String,
    /// `pgcdc.write.path`.
    pub write_path: WritePath,
}

fn parse_bool(
    props: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, SinkError> {
    match props.get(key).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(SinkError::config(
            key,
            format!("{v:?} is not a boolean"),
            "use true or false",
        )),
    }
}

fn parse_num<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, SinkError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            SinkError::config(
                key,
                format!("{v:?} is not a valid number"),
                "use a non-negative integer",
            )
        }),
    }
}

fn parse_enum<T: Copy>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, SinkError> {
    let Some(v) = props.get(key) else {
        return Ok(default);
    };
    let v = v.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            SinkError::config(
                key,
                format!("unknown value {v:?}"),
                format!("use one of {}", names.join(", ")),
            )
        })
}

/// Every property the sink reads (Debezium JDBC sink names plus
/// `pgcdc.*`), for [`SinkConfig::unknown_sink_keys`].
pub const KNOWN_KEYS: &[&str] = &[
    "auto.create",
    "auto.evolve",
    "batch.size",
    "collection.name.format",
    "connection.password",
    "connection.url",
    "connection.username",
    "delete.enabled",
    "flush.max.retries",
    "flush.retry.delay.ms",
    "hibernate.connection.sslcert",
    "hibernate.connection.sslkey",
    "hibernate.connection.sslmode",
    "hibernate.connection.sslrootcert",
    "insert.mode",
    "pgcdc.exactly.once",
    "pgcdc.offsets.table",
    "pgcdc.write.path",
    "primary.key.fields",
    "primary.key.mode",
    "quote.identifiers",
    "schema.evolution",
    "table.name.format",
    "truncate.enabled",
    "use.reduction.buffer",
];

/// Prefixes of the sink's own property names: keys under them that are not
/// in [`KNOWN_KEYS`] are likely typos or unsupported Debezium settings.
const OWN_PREFIXES: &[&str] = &[
    "auto.",
    "batch.",
    "collection.",
    "column.",
    "connection.",
    "database.",
    "delete.",
    "dialect.",
    "field.",
    "flush.",
    "hibernate.",
    "insert.",
    "pgcdc.",
    "primary.key.",
    "quote.",
    "schema.",
    "table.",
    "truncate.",
    "use.",
];

impl SinkConfig {
    /// Keys in `map` that look like sink properties but are not read here
    /// (typos, or Debezium JDBC sink settings pg-cdc does not support, such
    /// as `connection.pool.*` or `field.include.list`), to warn about.
    pub fn unknown_sink_keys(map: &BTreeMap<String, String>) -> Vec<String> {
        map.keys()
            .filter(|k| {
                OWN_PREFIXES.iter().any(|p| k.starts_with(p)) && !KNOWN_KEYS.contains(&k.as_str())
            })
            .cloned()
            .collect()
    }

    /// Reads and validates the properties (unknown properties, such as
    /// `connector.class` or the converters, are ignored).
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, SinkError> {
        let url = props.get("connection.url").ok_or_else(|| {
            SinkError::config(
                "connection.url",
                "missing",
                "set it to jdbc:postgresql://host:port/database",
            )
        })?;
        let mut connection = ConnectionConfig::parse_url(url)?;
        if let Some(u) = props.get("connection.username") {
            connection.user = u.clone();
        }
        if let Some(p) = props.get("connection.password") {
            connection.password = Some(Secret::new(p.clone()));
        }
        if connection.user.is_empty() {
            return Err(SinkError::config(
                "connection.username",
                "no user given",
                "set connection.username or user= in connection.url",
            ));
        }
        // The JDBC driver's connection properties, as the Debezium JDBC sink
        // passes them through Hibernate (`hibernate.connection.<property>`).
        for (key, slot) in [
            ("hibernate.connection.sslmode", 0),
            ("hibernate.connection.sslrootcert", 1),
            ("hibernate.connection.sslcert", 2),
            ("hibernate.connection.sslkey", 3),
        ] {
            let Some(v) = props.get(key) else { continue };
            match slot {
                0 => {
                    connection.ssl_mode = parse_ssl_mode(v.trim()).ok_or_else(|| {
                        SinkError::config(
                            key,
                            format!("unknown sslmode {v:?}"),
                            "use disable, allow, prefer, require, verify-ca or verify-full",
                        )
                    })?
                }
                1 => connection.ssl_root_cert = Some(v.clone()),
                2 => connection.ssl_cert = Some(v.clone()),
                _ => connection.ssl_key = Some(v.clone()),
            }
        }
        // Fail at configuration time on TLS settings that cannot work
        // (missing root certificate, unreadable PEM files).
        crate::tls::RustlsConnect::from_config(&connection)?;
        let insert_mode = parse_enum(
            props,
            "insert.mode",
            InsertMode::Insert,
            &[
                ("insert", InsertMode::Insert),
                ("update", InsertMode::Update),
                ("upsert", InsertMode::Upsert),
            ],
        )?;
        let primary_key_mode = parse_enum(
            props,
            "primary.key.mode",
            PrimaryKeyMode::None,
            &[
                ("none", PrimaryKeyMode::None),
                ("kafka", PrimaryKeyMode::Kafka),
                ("record_key", PrimaryKeyMode::RecordKey),
                ("record_value", PrimaryKeyMode::RecordValue),
                ("record_header", PrimaryKeyMode::RecordHeader),
            ],
        )?;
        let primary_key_fields: Vec<String> = props
            .get("primary.key.fields")
            .map(|s| {
                s.split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let delete_enabled = parse_bool(props, "delete.enabled", false)?;
        let truncate_enabled = parse_bool(props, "truncate.enabled", false)?;
        let format = props
            .get("collection.name.format")
            .or_else(|| props.get("table.name.format"))
            .map_or("${topic}", String::as_str);
        let key_for_format = if props.contains_key("collection.name.format") {
            "collection.name.format"
        } else {
            "table.name.format"
        };
        let table_name_format = NameFormat::parse(format).map_err(|why| {
            SinkError::config(
                key_for_format,
                why,
                "use ${topic}, ${source.schema}, ${source.table} and literal text",
            )
        })?;
        let quote_identifiers = parse_bool(props, "quote.identifiers", false)?;
        let evolution_explicit = props.contains_key("schema.evolution");
        let basic = parse_enum(
            props,
            "schema.evolution",
            false,
            &[("none", false), ("basic", true)],
        )?;
        let auto_create_alias = parse_bool(props, "auto.create", false)?;
        let auto_evolve_alias = parse_bool(props, "auto.evolve", false)?;
        if evolution_explicit && !basic && (auto_create_alias || auto_evolve_alias) {
            return Err(SinkError::config(
                "schema.evolution",
                "is none but auto.create/auto.evolve is true",
                "remove auto.create/auto.evolve or set schema.evolution=basic",
            ));
        }
        let batch_size: usize = parse_num(props, "batch.size", 500)?;
        if batch_size == 0 {
            return Err(SinkError::config(
                "batch.size",
                "must be at least 1",
                "use the default 500",
            ));
        }
        let tasks_max: usize = parse_num(props, "tasks.max", 1)?;
        let errors_tolerance = parse_enum(
            props,
            "errors.tolerance",
            ErrorTolerance::None,
            &[("none", ErrorTolerance::None), ("all", ErrorTolerance::All)],
        )?;
        let write_path = parse_enum(
            props,
            "pgcdc.write.path",
            WritePath::Auto,
            &[
                ("auto", WritePath::Auto),
                ("unnest", WritePath::Unnest),
                ("copy", WritePath::Copy),
            ],
        )?;
        let cfg = SinkConfig {
            name: props
                .get("name")
                .cloned()
                .unwrap_or_else(|| "pg-cdc-sink".to_owned()),
            connection,
            insert_mode,
            primary_key_mode,
            primary_key_fields,
            delete_enabled,
            truncate_enabled,
            table_name_format,
            quote_identifiers,
            auto_create: basic || auto_create_alias,
            auto_evolve: basic || auto_evolve_alias,
            batch_size,
            // Default true: the batch is one transaction, so collapsing is
            // invisible except for the secondary-unique-constraint case that
            // `false` exists for (see `crate::reduce`).
            use_reduction_buffer: parse_bool(props, "use.reduction.buffer", true)?,
            max_retries: parse_num(props, "flush.max.retries", 5)?,
            retry_delay: Duration::from_millis(parse_num(props, "flush.retry.delay.ms", 1000)?),
            errors_tolerance,
            tasks_max: tasks_max.max(1),
            exactly_once: parse_bool(props, "pgcdc.exactly.once", true)?,
            offsets_table: props
                .get("pgcdc.offsets.table")
                .cloned()
                .unwrap_or_else(|| "__pgcdc_sink_offsets".to_owned()),
            write_path,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Convenience: from `(key, value)` pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SinkError> {
        let props: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self::from_properties(&props)
    }

    fn validate(&self) -> Result<(), SinkError> {
        if self.delete_enabled && self.primary_key_mode != PrimaryKeyMode::RecordKey {
            return Err(SinkError::config(
                "delete.enabled",
                "deletes need the record key to find the row, but primary.key.mode is not record_key",
                "set primary.key.mode=record_key or delete.enabled=false",
            ));
        }
        if self.primary_key_mode == PrimaryKeyMode::None && self.insert_mode != InsertMode::Insert {
            return Err(SinkError::config(
                "insert.mode",
                "update and upsert need a primary key, but primary.key.mode is none",
                "set primary.key.mode (record_key for Debezium topics) or insert.mode=insert",
            ));
        }
        if self.primary_key_mode == PrimaryKeyMode::RecordHeader
            && self.primary_key_fields.is_empty()
        {
            return Err(SinkError::config(
                "primary.key.fields",
                "primary.key.mode=record_header needs the header names",
                "list the headers that form the key, comma-separated",
            ));
        }
        if self.primary_key_mode == PrimaryKeyMode::Kafka && !self.primary_key_fields.is_empty() {
            return Err(SinkError::config(
                "primary.key.fields",
                "primary.key.mode=kafka always uses __connect_topic, __connect_partition, __connect_offset",
                "remove primary.key.fields",
            ));
        }
        if self.exactly_once && self.offsets_table.is_empty() {
            return Err(SinkError::config(
                "pgcdc.offsets.table",
                "is empty while pgcdc.exactly.once=true",
                "name the offsets table or set pgcdc.exactly.once=false",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> BTreeMap<String, String> {
        let raw = [
            (
                "connector.class",
                "io.debezium.connector.jdbc.JdbcSinkConnector",
            ),
            ("tasks.max", "1"),
            ("topics.regex", "pgsource\\.public\\..*"),
            (
                "connection.url",
                "jdbc:postgresql://localhost:5433/bf_target",
            ),
            ("connection.username", "cdc"),
            ("connection.password", "cdc-secret"),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("delete.enabled", "true"),
            ("auto.create", "true"),
            ("auto.evolve", "true"),
            ("schema.evolution", "basic"),
            ("table.name.format", "${source.table}"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "dlq_sink"),
        ];
        raw.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_config_is_accepted() {
        let c = SinkConfig::from_properties(&seed()).expect("seed config");
        assert_eq!(c.insert_mode, InsertMode::Upsert);
        assert_eq!(c.primary_key_mode, PrimaryKeyMode::RecordKey);
        assert!(c.delete_enabled && c.auto_create && c.auto_evolve);
        assert_eq!(c.connection.hosts, vec![("localhost".to_owned(), 5433)]);
        assert_eq!(c.connection.database, "bf_target");
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.errors_tolerance, ErrorTolerance::All);
    }

    #[test]
    fn password_never_in_debug() {
        let mut p = seed();
        p.insert(
            "connection.url".into(),
            "jdbc:postgresql://h:1/db?password=url-secret".into(),
        );
        let c = SinkConfig::from_properties(&p).expect("config");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("cdc-secret") && !dbg.contains("url-secret"),
            "{dbg}"
        );
        p.insert(
            "connection.url".into(),
            "jdbc:postgresql://u:pw-in-url@h:x/db".into(),
        );
        let e = SinkConfig::from_properties(&p)
            .expect_err("bad port")
            .to_string();
        assert!(!e.contains("pw-in-url"), "{e}");
    }

    #[test]
    fn invalid_combinations_name_the_key() {
        let mut p = seed();
        p.insert("primary.key.mode".into(), "record_value".into());
        match SinkConfig::from_properties(&p) {
            Err(SinkError::Config { key, reason, hint }) => {
                assert_eq!(key, "delete.enabled");
                assert!(reason.contains("record_key") && hint.contains("record_key"));
            }
            other => panic!("expected config error, got {other:?}"),
        }
        let mut p = seed();
        p.insert("delete.enabled".into(), "false".into());
        p.insert("primary.key.mode".into(), "none".into());
        assert!(
            matches!(SinkConfig::from_properties(&p), Err(SinkError::Config { key, .. }) if key == "insert.mode")
        );
        let mut p = seed();
        p.insert("insert.mode".into(), "merge".into());
        assert!(
            matches!(SinkConfig::from_properties(&p), Err(SinkError::Config { key, .. }) if key == "insert.mode")
        );
        let mut p = seed();
        p.insert("schema.evolution".into(), "none".into());
        assert!(
            matches!(SinkConfig::from_properties(&p), Err(SinkError::Config { key, .. }) if key == "schema.evolution")
        );
        let mut p = seed();
        p.insert("batch.size".into(), "lots".into());
        assert!(
            matches!(SinkConfig::from_properties(&p), Err(SinkError::Config { key, .. }) if key == "batch.size")
        );
    }

    #[test]
    fn url_forms() {
        let c = ConnectionConfig::parse_url(
            "jdbc:postgresql://a:1,b/db%20x?user=me&sslmode=disable&currentSchema=s&connectTimeout=3",
        )
        .expect("url");
        assert_eq!(c.hosts, vec![("a".to_owned(), 1), ("b".to_owned(), 5432)]);
        assert_eq!(c.database, "db x");
        assert_eq!(c.user, "me");
        assert_eq!(c.ssl_mode, SslMode::Disable);
        assert_eq!(c.current_schema.as_deref(), Some("s"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert!(ConnectionConfig::parse_url("mysql://x/y").is_err());
        let mut p = BTreeMap::new();
        p.insert(
            "connection.url".to_owned(),
            "jdbc:postgresql://h/d?sslmode=verify-full".to_owned(),
        );
        p.insert("connection.username".to_owned(), "u".to_owned());
        assert!(
            matches!(SinkConfig::from_properties(&p), Err(SinkError::Config { key, .. }) if key == "connection.url")
        );
    }
}
