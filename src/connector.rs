//! Connector configuration files, as Kafka Connect takes them.
//!
//! Accepted forms, so the seed's files work unchanged:
//!
//! - the REST create body: `{"name": "...", "config": {"connector.class": ..., ...}}`;
//! - a flat JSON object of properties (the `PUT /connectors/<name>/config` body), with `name`;
//! - a Java `.properties` file (`key=value` lines, `#` comments).
//!
//! Values may use Kafka Connect's config providers `${env:VAR}` and
//! `${file:/path/to/file.properties:key}` so secrets stay out of the file,
//! and `--set key=value` overrides (hosts, ports, passwords …) are applied on
//! top. The password values are never printed: see [`ConnectorConfig::redacted`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::rest::{SINK_CLASS, SOURCE_CLASS};
use crate::status::ConnectorKind;

/// Why a connector configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read connector config {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON / properties.
    #[error("connector config {path} is not valid: {reason}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A required property is missing or a value is wrong.
    #[error("connector {connector}: property `{key}`: {reason}")]
    Property {
        /// Connector name.
        connector: String,
        /// The property.
        key: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// One connector's configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    /// Connector name (`name`).
    pub name: String,
    /// Source or sink, from `connector.class`.
    pub kind: ConnectorKind,
    /// All properties, `connector.class` included, after overrides and
    /// config-provider substitution.
    pub props: BTreeMap<String, String>,
}

/// Property names whose values are secrets.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".key")
        || k.contains("sasl.jaas.config")
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("props", &self.redacted())
            .finish()
    }
}

impl ConnectorConfig {
    /// Loads a connector file (JSON or `.properties`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |reason: String| ConfigError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let trimmed = text.trim_start();
        let (name, props) = if trimmed.starts_with('{') {
            let json: Json = serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
            let obj = json
                .as_object()
                .ok_or_else(|| parse_err("expected a JSON object".into()))?;
            match obj.get("config") {
                Some(Json::Object(config)) => {
                    let name = obj.get("name").and_then(Json::as_str).map(str::to_string);
                    (name, flatten(config).map_err(parse_err)?)
                }
                Some(_) => {
                    return Err(parse_err("`config` must be an object of properties".into()))
                }
                None => (None, flatten(obj).map_err(parse_err)?),
            }
        } else {
            (None, parse_properties(&text))
        };
        let name = name
            .or_else(|| props.get("name").cloned())
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "connector".into());
        Self::from_props(name, props)
    }

    /// Builds a configuration from a property map.
    pub fn from_props(name: String, props: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let class = props
            .get("connector.class")
            .ok_or_else(|| ConfigError::Property {
                connector: name.clone(),
                key: "connector.class".into(),
                reason: format!("missing; use {SOURCE_CLASS} or {SINK_CLASS}"),
            })?;
        let kind = match class.as_str() {
            SOURCE_CLASS => ConnectorKind::Source,
            SINK_CLASS => ConnectorKind::Sink,
            other => {
                return Err(ConfigError::Property {
                    connector: name,
                    key: "connector.class".into(),
                    reason: format!(
                    "`{other}` is not supported; pg-cdc implements {SOURCE_CLASS} and {SINK_CLASS}"
                ),
                })
            }
        };
        let mut cfg = Self { name, kind, props };
        cfg.resolve_providers()?;
        Ok(cfg)
    }

    /// Applies `key=value` overrides (later ones win).
    pub fn apply_overrides<'a>(
        &mut self,
        overrides: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConfigError> {
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Property {
                connector: self.name.clone(),
                key: o.to_string(),
                reason: "an override must look like key=value".into(),
            })?;
            self.props.insert(k.trim().to_string(), v.to_string());
        }
        self.resolve_providers()
    }

    /// Checks what the pipeline cannot honour. Unsupported settings are
    /// errors that name the property; properties that look like the
    /// connector's own but are not read anywhere are returned as warnings
    /// (likely typos).
    pub fn check_supported(&self) -> Result<Vec<String>, ConfigError> {
        crate::converter::Format::from_config(self)?;
        if let Some(tasks) = self.props.get("tasks.max").filter(|t| t.trim() != "1") {
            if self.kind == ConnectorKind::Source {
                return Err(ConfigError::Property {
                    connector: self.name.clone(),
                    key: "tasks.max".into(),
                    reason: format!(
                        "`{tasks}`: a PostgreSQL source reads one replication slot and runs one task, \
                         as Debezium's does; set tasks.max=1"
                    ),
                });
            }
        }
        let unknown = match self.kind {
            ConnectorKind::Source => {
                pg_logical::source::SourceConfig::unknown_source_keys(&self.props)
            }
            ConnectorKind::Sink => jdbc_sink::SinkConfig::unknown_sink_keys(&self.props),
        };
        let warnings = unknown
            .into_iter()
            .map(|key| {
                format!(
                    "property `{key}` is not a setting pg-cdc knows or supports; ignored (typo?)"
                )
            })
            .collect();
        Ok(warnings)
    }

    /// The properties with secret values replaced by `********`.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.props
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if is_secret(k) {
                        "********".into()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    }

    /// Substitutes `${env:VAR}` and `${file:path:key}` in every value.
    fn resolve_providers(&mut self) -> Result<(), ConfigError> {
        let name = self.name.clone();
        for (key, value) in self.props.iter_mut() {
            if value.contains("${") {
                *value = substitute(value).map_err(|reason| ConfigError::Property {
                    connector: name.clone(),
                    key: key.clone(),
                    reason,
                })?;
            }
        }
        Ok(())
    }
}

fn flatten(obj: &serde_json::Map<String, Json>) -> Result<BTreeMap<String, String>, String> {
    obj.iter()
        .map(|(k, v)| {
            let s = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                Json::Null => String::new(),
                _ => {
                    return Err(format!(
                        "property `{k}` must be a string, number or boolean"
                    ))
                }
            };
            Ok((k.clone(), s))
        })
        .collect()
}

/// Parses Java `.properties` text (`key=value` or `key: value`, `#`/`!` comments).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let idx = l.find(['=', ':'])?;
            Some((l[..idx].trim().to_string(), l[idx + 1..].trim().to_string()))
        })
        .collect()
}

fn substitute(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated `${` in value")?;
        let expr = &after[..end];
        let resolved = match expr.split_once(':') {
            Some(("env", var)) => std::env::var(var)
                .map_err(|_| format!("`${{env:{var}}}`: environment variable {var} is not set"))?,
            Some(("file", path_key)) => {
                let (path, key) = path_key.rsplit_once(':').ok_or_else(|| {
                    format!("`${{file:{path_key}}}` must be ${{file:<path>:<key>}}")
                })?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("`${{file:{path}:{key}}}`: cannot read {path}: {e}"))?;
                parse_properties(&text)
                    .remove(key)
                    .ok_or_else(|| format!("`${{file:{path}:{key}}}`: {path} has no key {key}"))?
            }
            // Not a config provider (e.g. the sink's `${source.table}` template): keep as is.
            _ => format!("${{{expr}}}"),
        };
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::io::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("pgcdc-connector-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    }

    #[test]
    fn loads_the_seed_files_unchanged() -> Result<(), Box<dyn std::error::Error>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let src = ConnectorConfig::load(&root.join("postg-source-connector.json"))?;
        assert_eq!(src.name, "pg-source-connector");
        assert_eq!(src.kind, ConnectorKind::Source);
        assert_eq!(
            src.props.get("slot.name").map(String::as_str),
            Some("debezium_pgsource_slot")
        );
        let sink = ConnectorConfig::load(&root.join("postg-sink-connector.json"))?;
        assert_eq!(sink.kind, ConnectorKind::Sink);
        assert_eq!(
            sink.props.get("topics.regex").map(String::as_str),
            Some("pgsource\\.public\\..*")
        );
        Ok(())
    }

    #[test]
    fn overrides_providers_and_redaction() -> Result<(), Box<dyn std::error::Error>> {
        let p = write(
            "c.json",
            r#"{"name":"x","config":{"connector.class":"io.debezium.connector.postgresql.PostgresConnector",
                "database.port":5432,"database.password":"${env:PGCDC_TEST_SECRET_PW}"}}"#,
        )?;
        std::env::set_var("PGCDC_TEST_SECRET_PW", "hunter2");
        let mut c = ConnectorConfig::load(&p)?;
        assert_eq!(c.props["database.password"], "hunter2");
        assert_eq!(c.props["database.port"], "5432");
        c.apply_overrides(["database.port=55432", "database.hostname=127.0.0.1"])?;
        assert_eq!(c.props["database.port"], "55432");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("********"),
            "{shown}"
        );
        assert!(c.apply_overrides(["no-equals-sign"]).is_err());
        c.apply_overrides(["table.name.format=${source.schema}_${source.table}"])?;
        assert_eq!(
            c.props["table.name.format"],
            "${source.schema}_${source.table}"
        );
        Ok(())
    }

    #[test]
    fn unsupported_settings_are_named() -> Result<(), Box<dyn std::error::Error>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut src = ConnectorConfig::load(&root.join("postg-source-connector.json"))?;
        assert_eq!(
            src.check_supported()?,
            Vec::<String>::new(),
            "the seed's file is fully supported"
        );
        src.apply_overrides(["slot.nmae=oops"])?;
        let warnings = src.check_supported()?;
        assert!(
            warnings.iter().any(|w| w.contains("slot.nmae")),
            "{warnings:?}"
        );
        src.apply_overrides(["value.converter=io.confluent.connect.avro.AvroConverter"])?;
        let err = src
            .check_supported()
            .err()
            .ok_or("an Avro value with a JSON key (and no registry URL) must be refused")?;
        assert!(err.to_string().contains("value.converter"), "{err}");
        let mut sink = ConnectorConfig::load(&root.join("postg-sink-connector.json"))?;
        assert!(sink.check_supported()?.is_empty());
        sink.apply_overrides(["insert.mod=upsert", "connection.pool.max_size=5"])?;
        let warnings = sink.check_supported()?;
        for key in ["insert.mod", "connection.pool.max_size"] {
            assert!(
                warnings.iter().any(|w| w.contains(key)),
                "{key}: {warnings:?}"
            );
        }
        sink.apply_overrides(["tasks.max=4"])?;
        assert!(
            sink.check_supported().is_ok(),
            "a sink may run several writers"
        );
        Ok(())
    }

    #[test]
    fn rejects_unknown_class_and_missing_env() -> Result<(), Box<dyn std::error::Error>> {
        let p = write(
            "bad.properties",
            "name=b\nconnector.class=com.example.Other\n",
        )?;
        let err = ConnectorConfig::load(&p).err().ok_or("must fail")?;
        assert!(err.to_string().contains("connector.class"), "{err}");
        let p = write(
            "env.properties",
            "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector\nconnection.password=${env:PGCDC_DEFINITELY_UNSET}\n",
        )?;
        let err = ConnectorConfig::load(&p).err().ok_or("must fail")?;
        assert!(err.to_string().contains("PGCDC_DEFINITELY_UNSET"), "{err}");
        Ok(())
    }
}
