//! Real Debezium 3.6.3 output for the seed's `employees` table
//! (`tests/fixtures/emp_seed.jsonl`, captured with the seed's connector
//! settings) decoded by cdc-envelope's JSON decoder and written by the sink.

mod common;

use cdc_envelope::{JsonDecoder, Options};
use common::*;
use jdbc_sink::{JdbcSink, SinkRecord};

fn fixture_records() -> Result<Vec<SinkRecord>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/emp_seed.jsonl"
    ))?;
    let mut decoder = JsonDecoder::new(Options::default());
    let mut out = Vec::new();
    for (offset, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let key = match &v["key"] {
            serde_json::Value::Null => None,
            k => Some(serde_json::to_vec(k)?),
        };
        let value = match &v["value"] {
            serde_json::Value::Null => None,
            x => Some(serde_json::to_vec(x)?),
        };
        let decoded = decoder.decode(key.as_deref(), value.as_deref())?;
        let is_message = decoded
            .event
            .as_ref()
            .is_some_and(|e| e.op == cdc_envelope::Op::Message);
        let topic = if is_message {
            "pgsource.message"
        } else {
            TOPIC
        };
        out.push(SinkRecord::from_decoded(topic, 0, offset as i64, decoded));
    }
    Ok(out)
}

async fn state(client: &tokio_postgres::Client) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(client
        .query(
            "SELECT concat_ws('|', emp_id, name, email, department, salary, hire_date, created_at, nickname) FROM employees ORDER BY emp_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

const EXPECTED: [&str; 4] = [
    // Rows that existed when `nickname TEXT DEFAULT 'none'` was added get the
    // default, as in the source (the Connect schema carries it).
    "3|John Doe|john@example.com|Platform|80000.25|2024-01-15|2024-01-15 10:30:00|none",
    "4|Tx One|tx1@example.com|1.00|none",
    "6|After Alter|aa",
    "100|Alice Snapshot|alice@example.com|Engineering|91000.50|2021-03-01|2021-03-01 09:00:00|none",
];

#[tokio::test]
async fn captured_debezium_events_one_by_one_into_auto_created_table() -> TestResult {
    let db = target_db("sink_dbz_json").await?;
    let client = db.connect().await?;
    let records = fixture_records()?;
    assert_eq!(records.len(), 15);
    let mut sink = JdbcSink::connect(seed_config(&db, &[("truncate.enabled", "true")])).await?;
    let (before_truncate, truncate) = records.split_at(14);
    for r in before_truncate {
        let out = sink.write(std::slice::from_ref(r)).await?;
        assert!(
            out.failed.is_empty(),
            "record {}: {:?}",
            r.offset,
            out.failed
        );
    }
    let mut got = state(&client).await?;
    // created_at of the streamed rows is generated at capture time; compare the stable prefix.
    for g in got.iter_mut() {
        if g.starts_with("4|") || g.starts_with("6|") {
            *g = g
                .split('|')
                .filter(|p| !p.starts_with("2026-") && !p.starts_with("2025-"))
                .collect::<Vec<_>>()
                .join("|");
        }
    }
    assert_eq!(got, EXPECTED);
    let out = sink.write(truncate).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 0);
    Ok(())
}

#[tokio::test]
async fn captured_debezium_events_in_one_batch_into_a_typed_target() -> TestResult {
    let db = target_db("sink_dbz_typed").await?;
    let client = db.connect().await?;
    // The seed's own DDL on the target side: the sink casts the string-mode
    // decimals and connect-mode dates/timestamps into the real types.
    client
        .batch_execute(
            "CREATE TABLE employees (emp_id int PRIMARY KEY, name varchar(100) NOT NULL, email varchar(100), \
             department varchar(50), salary numeric(10,2), hire_date date, created_at timestamp DEFAULT current_timestamp)",
        )
        .await?;
    let records = fixture_records()?;
    let mut sink = JdbcSink::connect(seed_config(&db, &[])).await?;
    let out = sink.write(&records[..14]).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.skipped, 2, "the two logical messages");
    assert_eq!(out.transactions, 1);
    let r = client
        .query_one(
            "SELECT salary, pg_typeof(salary)::text FROM employees WHERE emp_id = 3",
            &[],
        )
        .await?;
    assert_eq!(r.get::<_, String>(1), "numeric");
    let salary: String = client
        .query_one("SELECT salary::text FROM employees WHERE emp_id = 3", &[])
        .await?
        .get(0);
    assert_eq!(salary, "80000.25");
    let ids: Vec<i32> = client
        .query("SELECT emp_id FROM employees ORDER BY 1", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3, 4, 6, 100]);
    let nick: String = client
        .query_one("SELECT nickname FROM employees WHERE emp_id = 6", &[])
        .await?
        .get(0);
    assert_eq!(nick, "aa");
    Ok(())
}
