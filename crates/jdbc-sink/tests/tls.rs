//! TLS to the target: the sink connects with `sslmode=require` and
//! `verify-full` to the TLS-enabled PostgreSQL that `cargo xtask services
//! up` runs (the source server, whose CA is `CDC_TEST_PG_SOURCE_SSLROOTCERT`;
//! a sink may write to any database), writes over it, and refuses a server
//! whose certificate an unknown CA signed, with a typed error.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cdc_envelope::Op;
use cdc_testkit::{Services, TestDatabase};
use common::*;
use jdbc_sink::{JdbcSink, SinkConfig, SinkError};

async fn tls_db(prefix: &str) -> Result<(TestDatabase, String), Box<dyn std::error::Error>> {
    let services = Services::get()?;
    let ca = services.source_ssl_root_cert()?;
    let db = services.source().fresh_database(prefix).await?;
    Ok((db, ca.display().to_string()))
}

fn config(
    db: &TestDatabase,
    host: &str,
    query: &str,
    extra: &[(&str, &str)],
) -> Result<SinkConfig, SinkError> {
    let s = db.server();
    let mut p: BTreeMap<String, String> = BTreeMap::new();
    p.insert(
        "connection.url".into(),
        format!(
            "jdbc:postgresql://{host}:{}/{}?{query}",
            s.port(),
            db.name()
        ),
    );
    p.insert("connection.username".into(), s.user());
    p.insert("connection.password".into(), s.password());
    for (k, v) in [
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("schema.evolution", "basic"),
        ("table.name.format", "${source.table}"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        p.insert(k.into(), v.into());
    }
    SinkConfig::from_properties(&p)
}

/// Writes two rows and checks that the sink's session is encrypted.
async fn write_over_tls(db: &TestDatabase, cfg: SinkConfig) -> TestResult {
    let mut sink = JdbcSink::connect(cfg).await?;
    let s = employees_schema();
    let mut st = Stream::new(TOPIC);
    for id in 1..=2 {
        st.push(event(
            &s,
            Op::Create,
            None,
            Some(emp_row(id, "E", "tls", "1")),
        ));
    }
    let out = sink.write(&st.take()).await?;
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let client = db.connect().await?;
    assert_eq!(count(&client, "SELECT count(*) FROM employees").await, 2);
    let encrypted = count(
        &client,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND a.application_name = 'pg-cdc-sink' AND s.ssl",
    )
    .await;
    assert_eq!(encrypted, 1, "the sink's session must use TLS");
    Ok(())
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() -> TestResult {
    let (db, _ca) = tls_db("sink_tls_req").await?;
    write_over_tls(&db, config(&db, "127.0.0.1", "sslmode=require", &[])?).await
}

#[tokio::test]
async fn sslmode_verify_full_with_the_servers_ca() -> TestResult {
    let (db, ca) = tls_db("sink_tls_full").await?;
    let q = format!("sslmode=verify-full&sslrootcert={ca}");
    write_over_tls(&db, config(&db, "localhost", &q, &[])?).await?;
    // By IP address (the certificate names 127.0.0.1 too), and through the
    // Debezium JDBC sink-style driver properties instead of the URL.
    let db2 = Services::get()?
        .source()
        .fresh_database("sink_tls_props")
        .await?;
    let cfg = config(
        &db2,
        "127.0.0.1",
        "",
        &[
            ("hibernate.connection.sslmode", "verify-full"),
            ("hibernate.connection.sslrootcert", ca.as_str()),
        ],
    )?;
    write_over_tls(&db2, cfg).await
}

#[tokio::test]
async fn verify_full_with_an_unknown_ca_fails_with_a_typed_error() -> TestResult {
    let (db, _ca) = tls_db("sink_tls_bad").await?;
    let other_ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unknown-ca.crt");
    for mode in ["verify-full", "verify-ca", "require"] {
        let q = format!("sslmode={mode}&sslrootcert={}", other_ca.display());
        let cfg = config(&db, "127.0.0.1", &q, &[("flush.max.retries", "5")])?;
        match JdbcSink::connect(cfg).await {
            Err(e @ SinkError::Tls { .. }) => {
                assert!(!e.is_retriable());
                let msg = e.to_string();
                assert!(
                    msg.contains("UnknownIssuer") || msg.contains("unknown issuer"),
                    "{mode}: {msg}"
                );
                assert!(msg.contains("sslrootcert"), "the hint names the key: {msg}");
            }
            Err(other) => panic!("{mode}: expected SinkError::Tls, got {other}"),
            Ok(_) => panic!("{mode}: connected although the CA is unknown"),
        }
    }
    Ok(())
}
