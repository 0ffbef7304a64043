//! Keyed partitioning parity with the Java client: the same keys are
//! produced by Kafka's own Java `KafkaProducer` (compiled and run from the
//! broker's jars) and by our producer, and must land in the same partitions.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use kafka_io::{Producer, ProducerOptions, Record};

/// Same as `KeyedProducer.key` in tests/java.
fn key(i: usize) -> String {
    let mut s = String::from(if i.is_multiple_of(3) { "ключ" } else { "k" });
    s.push_str(&"x".repeat(i % 13));
    s.push_str(&i.to_string());
    s
}

fn java_partitions(brokers: &str, topic: &str, n: usize) -> BTreeMap<String, i32> {
    let cp = cdc_testkit::kafka_classpath().expect("Kafka classpath");
    let java = cdc_testkit::java().expect("java");
    let javac = java.with_file_name("javac");
    let javac = if javac.is_file() {
        javac
    } else {
        PathBuf::from("javac")
    };
    let out_dir = std::env::temp_dir().join(cdc_testkit::unique_name("javac"));
    std::fs::create_dir_all(&out_dir).expect("temp dir");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/java/KeyedProducer.java");
    let status = Command::new(&javac)
        .args(["-encoding", "UTF-8", "-cp", &cp, "-d"])
        .arg(&out_dir)
        .arg(&src)
        .status()
        .expect("javac must be installed (JDK 17)");
    assert!(status.success(), "javac failed");
    let output = Command::new(&java)
        .arg("-Dfile.encoding=UTF-8")
        .arg("-cp")
        .arg(format!("{cp}:{}", out_dir.display()))
        .args(["KeyedProducer", brokers, topic, &n.to_string()])
        .output()
        .expect("run the Java producer");
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        output.status.success(),
        "Java producer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| {
            let (k, p) = l.split_once('\t')?;
            Some((k.to_string(), p.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_partitioning_matches_the_java_client() -> TestResult {
    init_tracing();
    let brokers = brokers();
    let cfg = config(&[]);
    let n = 400;
    let java_topic = cdc_testkit::unique_name("murmur_java");
    let ours = cdc_testkit::unique_name("murmur_rust");
    for t in [&java_topic, &ours] {
        create_topic(&cfg, t, 7).await;
    }
    let java = {
        let (b, t) = (brokers.clone(), java_topic.clone());
        tokio::task::spawn_blocking(move || java_partitions(&b, &t, n)).await?
    };
    assert_eq!(java.len(), n, "Java produced every key");

    let p = Producer::new(&cfg, ProducerOptions::default())?;
    for i in 0..n {
        p.send(
            i as u64 + 1,
            &Record::to(&ours).key(key(i).as_bytes()).value(&[1]),
        )
        .await?;
    }
    p.flush(Duration::from_secs(30)).await?;
    let got = consume_n(&cfg, &ours, n, Duration::from_secs(60)).await;
    let rust: BTreeMap<String, i32> = got
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap_or_default()).expect("UTF-8 key"),
                r.partition,
            )
        })
        .collect();
    assert_eq!(rust.len(), n);
    let used: std::collections::BTreeSet<i32> = java.values().copied().collect();
    assert_eq!(used.len(), 7, "keys spread over all partitions");
    for (k, jp) in &java {
        assert_eq!(rust.get(k), Some(jp), "key {k:?}: Java partition {jp}");
    }
    Ok(())
}
