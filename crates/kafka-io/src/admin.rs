//! Topic administration: idempotent creation from `topic.creation.*` and
//! drift detection on topics that already exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use crate::config::{KafkaConfig, TopicSpec};
use crate::error::{Error, Result};

/// A difference between a topic's wanted and actual settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// The partition count differs.
    Partitions {
        /// From the settings.
        expected: i32,
        /// On the broker.
        actual: i32,
    },
    /// The replication factor differs.
    ReplicationFactor {
        /// From the settings.
        expected: i32,
        /// On the broker.
        actual: i32,
    },
    /// A topic config differs (or is missing: `actual` is `None`).
    Config {
        /// Config name.
        key: String,
        /// From the settings.
        expected: String,
        /// On the broker.
        actual: Option<String>,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Partitions { expected, actual } => {
                write!(f, "partitions: expected {expected}, broker has {actual}")
            }
            Drift::ReplicationFactor { expected, actual } => {
                write!(
                    f,
                    "replication.factor: expected {expected}, broker has {actual}"
                )
            }
            Drift::Config {
                key,
                expected,
                actual,
            } => write!(
                f,
                "{key}: expected {expected:?}, broker has {}",
                actual
                    .as_deref()
                    .map_or("nothing".to_string(), |a| format!("{a:?}"))
            ),
        }
    }
}

/// What [`TopicAdmin::ensure_topic`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    /// The topic was created with the wanted settings.
    Created,
    /// The topic existed and matches.
    Matches,
    /// The topic existed with different settings (also logged as a warning).
    Drifted(Vec<Drift>),
}

/// The broker's view of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Number of partitions.
    pub partitions: i32,
    /// Replicas of partition 0.
    pub replication_factor: i32,
    /// Every config with its value (defaults included).
    pub configs: BTreeMap<String, String>,
    /// Configs that are topic overrides (not broker defaults).
    pub overrides: BTreeMap<String, String>,
}

/// Creates and checks topics.
pub struct TopicAdmin {
    admin: AdminClient<DefaultClientContext>,
    metadata: Arc<BaseConsumer>,
    timeout: Duration,
}

impl std::fmt::Debug for TopicAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicAdmin")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Compares two config values the way the broker normalises them: lists
/// (`compact,delete`) ignore order and spaces, numbers compare numerically.
fn same_value(expected: &str, actual: &str) -> bool {
    let (e, a) = (expected.trim(), actual.trim());
    if e == a {
        return true;
    }
    if let (Ok(x), Ok(y)) = (e.parse::<f64>(), a.parse::<f64>()) {
        return x == y;
    }
    let norm = |s: &str| {
        let mut v: Vec<String> = s
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect();
        v.sort();
        v
    };
    norm(e) == norm(a)
}

/// The differences between `spec` and `actual` (`-1` in the spec = don't care).
pub fn compare(spec: &TopicSpec, actual: &TopicDescription) -> Vec<Drift> {
    let mut drift = Vec::new();
    if spec.partitions > 0 && spec.partitions != actual.partitions {
        drift.push(Drift::Partitions {
            expected: spec.partitions,
            actual: actual.partitions,
        });
    }
    if spec.replication_factor > 0 && spec.replication_factor != actual.replication_factor {
        drift.push(Drift::ReplicationFactor {
            expected: spec.replication_factor,
            actual: actual.replication_factor,
        });
    }
    for (key, expected) in &spec.configs {
        let a = actual.configs.get(key);
        if !a.is_some_and(|a| same_value(expected, a)) {
            drift.push(Drift::Config {
                key: key.clone(),
                expected: expected.clone(),
                actual: a.cloned(),
            });
        }
    }
    drift
}

impl TopicAdmin {
    /// An admin client from `config` (`bootstrap.servers`, security, `admin.override.*`).
    pub fn new(config: &KafkaConfig) -> Result<Self> {
        let cc = config.admin_config()?;
        Ok(Self {
            admin: cc.create().map_err(Error::kafka("create admin client"))?,
            metadata: Arc::new(
                cc.create()
                    .map_err(Error::kafka("create metadata client"))?,
            ),
            timeout: Duration::from_secs(30),
        })
    }

    /// Creates the topic if it does not exist; otherwise compares it with
    /// `spec` and reports (and logs at `WARN`) any drift. Never alters an
    /// existing topic.
    pub async fn ensure_topic(&self, spec: &TopicSpec) -> Result<TopicStatus> {
        let replication = TopicReplication::Fixed(spec.replication_factor);
        let mut nt = NewTopic::new(&spec.name, spec.partitions, replication);
        for (k, v) in &spec.configs {
            nt = nt.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = self
            .admin
            .create_topics([&nt], &opts)
            .await
            .map_err(Error::kafka("create topics"))?;
        for r in results {
            match r {
                Ok(_) => {
                    tracing::info!(topic = %spec.name, partitions = spec.partitions, group = %spec.group, "created topic");
                    // Return once clients can see it (metadata propagation).
                    self.partitions(&spec.name).await?;
                    return Ok(TopicStatus::Created);
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::Topic {
                        topic,
                        operation: "create",
                        code: Some(code),
                        message: code.to_string(),
                    })
                }
            }
        }
        let actual = self.describe(&spec.name).await?;
        let drift = compare(spec, &actual);
        if drift.is_empty() {
            Ok(TopicStatus::Matches)
        } else {
            for d in &drift {
                tracing::warn!(topic = %spec.name, drift = %d, "existing topic differs from the settings it would be created with");
            }
            Ok(TopicStatus::Drifted(drift))
        }
    }

    /// Partition count, replication factor and configs of `topic`.
    pub async fn describe(&self, topic: &str) -> Result<TopicDescription> {
        let (configs, overrides) = self.configs(topic, &AdminOptions::new()).await?;
        let (partitions, replication_factor) = self.partitions(topic).await?;
        Ok(TopicDescription {
            partitions,
            replication_factor,
            configs,
            overrides,
        })
    }

    /// Every config of `topic` with its value, and the topic overrides,
    /// within `timeout` (used by the producer to learn a topic's rules).
    pub(crate) async fn configs_within(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>> {
        let opts = AdminOptions::new().request_timeout(Some(timeout));
        match tokio::time::timeout(timeout, self.configs(topic, &opts)).await {
            Ok(r) => r.map(|(all, _)| all),
            Err(_) => Err(Error::Timeout {
                operation: "describe topic configs",
                after: timeout,
            }),
        }
    }

    async fn configs(
        &self,
        topic: &str,
        opts: &AdminOptions,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let described = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], opts)
            .await
            .map_err(Error::kafka("describe configs"))?;
        let resource = described
            .into_iter()
            .next()
            .ok_or_else(|| Error::Topic {
                topic: topic.into(),
                operation: "describe configs",
                code: None,
                message: "no resource returned".into(),
            })?
            .map_err(|code| Error::Topic {
                topic: topic.into(),
                operation: "describe configs",
                code: Some(code),
                message: code.to_string(),
            })?;
        let mut configs = BTreeMap::new();
        let mut overrides = BTreeMap::new();
        for e in &resource.entries {
            if let Some(v) = &e.value {
                if !e.is_default {
                    overrides.insert(e.name.clone(), v.clone());
                }
                configs.insert(e.name.clone(), v.clone());
            }
        }
        Ok((configs, overrides))
    }

    /// `(partitions, replication factor)` of `topic` from the cluster
    /// metadata, waiting up to the admin timeout for a just-created topic to
    /// appear (metadata propagation).
    pub async fn partitions(&self, topic: &str) -> Result<(i32, i32)> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        // A topic just created is usually visible within a few ms (KRaft):
        // start polling at 5 ms, doubling up to 50 ms.
        let mut pause = Duration::from_millis(5);
        loop {
            match self.partitions_once(topic).await {
                Err(Error::Topic {
                    code:
                        Some(
                            RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::LeaderNotAvailable,
                        ),
                    ..
                }) if tokio::time::Instant::now() < deadline => {}
                Ok((0, _)) if tokio::time::Instant::now() < deadline => {}
                other => return other,
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn partitions_once(&self, topic: &str) -> Result<(i32, i32)> {
        let (client, name, timeout) = (self.metadata.clone(), topic.to_string(), self.timeout);
        let md = tokio::task::spawn_blocking(move || client.fetch_metadata(Some(&name), timeout))
            .await
            .map_err(|_| Error::Closed {
                component: "metadata task",
            })?
            .map_err(Error::kafka("fetch metadata"))?;
        let t = md.topics().first().ok_or_else(|| Error::Topic {
            topic: topic.into(),
            operation: "metadata",
            code: None,
            message: "topic missing from metadata".into(),
        })?;
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            return Err(Error::Topic {
                topic: topic.into(),
                operation: "metadata",
                code: Some(code),
                message: code.to_string(),
            });
        }
        let parts = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
        let rf = t
            .partitions()
            .first()
            .map_or(0, |p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX));
        Ok((parts, rf))
    }

    /// Deletes topics (tests, tooling); missing topics are fine.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<()> {
        let results = self
            .admin
            .delete_topics(
                topics,
                &AdminOptions::new().operation_timeout(Some(self.timeout)),
            )
            .await
            .map_err(Error::kafka("delete topics"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(Error::Topic {
                        topic,
                        operation: "delete",
                        code: Some(code),
                        message: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_normalises() {
        let spec = TopicSpec::new("t")
            .partitions(3)
            .replication_factor(1)
            .config("cleanup.policy", "compact,delete")
            .config("min.cleanable.dirty.ratio", "0.10")
            .config("retention.ms", "604800000");
        let mut actual = TopicDescription {
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
            overrides: BTreeMap::new(),
        };
        actual
            .configs
            .insert("cleanup.policy".into(), "delete, compact".into());
        actual
            .configs
            .insert("min.cleanable.dirty.ratio".into(), "0.1".into());
        actual
            .configs
            .insert("retention.ms".into(), "604800000".into());
        assert!(compare(&spec, &actual).is_empty());
        actual.partitions = 1;
        actual.configs.insert("retention.ms".into(), "1000".into());
        let d = compare(&spec, &actual);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.contains(&Drift::Partitions {
            expected: 3,
            actual: 1
        }));
    }
}
