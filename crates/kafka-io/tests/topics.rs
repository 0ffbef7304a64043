//! Topic creation from the seed's `topic.creation.default.*` settings, read
//! back from the broker, and drift detection on existing topics.

mod common;

use common::*;
use kafka_io::{Drift, KafkaConfig, TopicAdmin, TopicSpec, TopicStatus};

fn seed_config() -> KafkaConfig {
    config(&[
        ("topic.creation.default.partitions", "3"),
        ("topic.creation.default.replication.factor", "1"),
        ("topic.creation.default.compression.type", "lz4"),
        ("topic.creation.default.cleanup.policy", "compact,delete"),
        ("topic.creation.default.min.cleanable.dirty.ratio", "0.1"),
        ("topic.creation.default.retention.ms", "604800000"),
        ("topic.creation.groups", "dlq"),
        ("topic.creation.dlq.include", "dlq_.*"),
        ("topic.creation.dlq.partitions", "1"),
        ("topic.creation.dlq.cleanup.policy", "delete"),
    ])
}

#[tokio::test]
async fn creates_topics_with_seed_settings_and_is_idempotent() -> TestResult {
    init_tracing();
    let cfg = seed_config();
    let admin = TopicAdmin::new(&cfg)?;
    let topic = cdc_testkit::unique_name("pgsource.public.employees");
    let spec = cfg.topic_creation.spec_for(&topic);
    assert_eq!(admin.ensure_topic(&spec).await?, TopicStatus::Created);

    let d = admin.describe(&topic).await?;
    assert_eq!((d.partitions, d.replication_factor), (3, 1));
    for (k, v) in [
        ("compression.type", "lz4"),
        ("cleanup.policy", "compact,delete"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("retention.ms", "604800000"),
    ] {
        assert_eq!(
            d.overrides.get(k).map(String::as_str),
            Some(v),
            "{k} is a topic override"
        );
    }
    // Second call: the topic exists and matches.
    assert_eq!(admin.ensure_topic(&spec).await?, TopicStatus::Matches);

    // A group's overrides apply to the topics it includes.
    let dlq = cdc_testkit::unique_name("dlq_source");
    let dspec = cfg.topic_creation.spec_for(&dlq);
    assert_eq!(dspec.group, "dlq");
    admin.ensure_topic(&dspec).await?;
    let d = admin.describe(&dlq).await?;
    assert_eq!(d.partitions, 1);
    assert_eq!(d.configs["cleanup.policy"], "delete");
    assert_eq!(
        d.configs["compression.type"], "lz4",
        "inherited from default"
    );
    admin.delete_topics(&[&topic, &dlq]).await?;
    Ok(())
}

#[tokio::test]
async fn reports_drift_of_existing_topics() -> TestResult {
    init_tracing();
    let cfg = seed_config();
    let admin = TopicAdmin::new(&cfg)?;
    let topic = cdc_testkit::unique_name("drifted");
    // Someone created it by hand with other settings.
    admin
        .ensure_topic(
            &TopicSpec::new(&topic)
                .partitions(1)
                .replication_factor(1)
                .config("retention.ms", "1000")
                .config("cleanup.policy", "delete"),
        )
        .await?;
    let status = admin
        .ensure_topic(&cfg.topic_creation.spec_for(&topic))
        .await?;
    let TopicStatus::Drifted(drift) = status else {
        panic!("expected drift, got {status:?}");
    };
    assert!(
        drift.contains(&Drift::Partitions {
            expected: 3,
            actual: 1
        }),
        "{drift:?}"
    );
    assert!(
        drift.contains(&Drift::Config {
            key: "retention.ms".into(),
            expected: "604800000".into(),
            actual: Some("1000".into())
        }),
        "{drift:?}"
    );
    assert!(
        drift
            .iter()
            .any(|d| matches!(d, Drift::Config { key, .. } if key == "cleanup.policy")),
        "{drift:?}"
    );
    assert!(
        drift
            .iter()
            .any(|d| matches!(d, Drift::Config { key, .. } if key == "compression.type")),
        "{drift:?}"
    );
    // The existing topic was not altered.
    assert_eq!(admin.describe(&topic).await?.partitions, 1);
    admin.delete_topics(&[&topic]).await?;
    Ok(())
}
