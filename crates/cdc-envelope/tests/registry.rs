//! The schema-registry client and the registry-backed Avro converter
//! against a real Confluent-API registry: Apicurio Registry, started by
//! `cargo xtask services up` (URL from `CDC_TEST_SCHEMA_REGISTRY_URL` or
//! `target/services/env`). Without a registry these tests fail with a
//! message saying how to start one; they never skip.

mod common;

use std::sync::Arc;

use cdc_envelope::registry::{
    AvroRegistryConverter, Compatibility, RegistryConfig, SchemaRegistryClient,
};
use cdc_envelope::{
    AvroEncoder, ChangeEvent, Column, Error, JsonDecoder, JsonEncoder, Op, PgType, Value,
};
use common::{captures, diff, options_for, FILES};

/// Serializes the tests' use of the registry. Apicurio 2.4's in-memory (H2)
/// storage, which `cargo xtask services up` runs, races under concurrent
/// writes: parallel first registrations fail with duplicate content ids,
/// lock timeouts or a spurious 409 "artifact already exists". Registries
/// meant for production do not; the client itself has no such limit.
static REGISTRY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn registry_config() -> RegistryConfig {
    let url = cdc_testkit::schema_registry_url().unwrap_or_else(|e| panic!("{e}"));
    RegistryConfig::from_properties([("schema.registry.url", url.as_str())])
        .expect("valid registry URL")
}

fn client() -> SchemaRegistryClient {
    SchemaRegistryClient::new(&registry_config()).expect("client")
}

/// A topic (and so subjects) no other test or run uses.
fn topic(prefix: &str) -> String {
    cdc_testkit::unique_name(prefix).replace('_', ".")
}

/// The captured Debezium events of `file` (tombstones skipped) and their captures.
fn events(file: &'static str) -> Vec<(ChangeEvent, common::Capture)> {
    let mut dec = JsonDecoder::new(options_for(file));
    captures(file)
        .into_iter()
        .filter_map(|cap| {
            let ev = dec
                .decode(cap.key.as_deref(), cap.value.as_deref())
                .expect("captured event decodes")
                .event?;
            Some((ev, cap))
        })
        .collect()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("schema is JSON")
}

#[tokio::test]
async fn registers_key_and_value_schemas_and_reads_them_back_by_id() {
    let _one_at_a_time = REGISTRY.lock().await;
    let (ev, _) = events("emp_seed.jsonl")
        .into_iter()
        .next()
        .expect("an event");
    let (key_schema, value_schema) = AvroEncoder::new(options_for("emp_seed.jsonl"))
        .schemas(&ev)
        .expect("schemas");
    let key_schema = key_schema.expect("employees has a primary key");
    let topic = topic("reg.by.id");
    let writer = client();
    let key_id = writer
        .register(&format!("{topic}-key"), &key_schema)
        .await
        .expect("key schema registers");
    let value_id = writer
        .register(&format!("{topic}-value"), &value_schema)
        .await
        .expect("value schema registers");
    assert_ne!(key_id, value_id);
    let sent = writer.request_count();
    assert_eq!(sent, 2);
    // Registering again is answered from the cache.
    assert_eq!(
        writer
            .register(&format!("{topic}-value"), &value_schema)
            .await,
        Ok(value_id)
    );
    assert_eq!(writer.request_count(), sent);

    // Another client (empty caches) reads them back by id.
    let reader = client();
    let k = reader.schema_by_id(key_id).await.expect("key schema by id");
    let v = reader
        .schema_by_id(value_id)
        .await
        .expect("value schema by id");
    assert_eq!(json(&k), json(&key_schema));
    assert_eq!(json(&v), json(&value_schema));
    assert_eq!(reader.request_count(), 2);
    let again = reader.schema_by_id(value_id).await.expect("cached");
    assert!(Arc::ptr_eq(&again, &v), "second lookup by id is cached");
    assert_eq!(reader.request_count(), 2);
    // The subject's latest version is the value schema.
    let (latest_id, latest) = reader
        .latest_schema(&format!("{topic}-value"))
        .await
        .expect("latest");
    assert_eq!((latest_id, json(&latest)), (value_id, json(&value_schema)));
}

#[tokio::test]
async fn every_captured_event_encodes_and_decodes_through_the_registry() {
    let _one_at_a_time = REGISTRY.lock().await;
    for file in FILES {
        let opts = options_for(file);
        let config = registry_config();
        let topic = topic("reg.roundtrip");
        let mut writer = AvroRegistryConverter::new(
            SchemaRegistryClient::new(&config).expect("client"),
            &config,
            opts.clone(),
        );
        // A separate reader: it must fetch the writer schemas by id.
        let mut reader = AvroRegistryConverter::new(
            SchemaRegistryClient::new(&config).expect("client"),
            &config,
            opts.clone(),
        );
        let mut jenc = JsonEncoder::new(opts.clone());
        for (ev, cap) in events(file) {
            let record = writer.encode(&topic, &ev).await.expect("encodes");
            let value = record.value.as_deref().expect("value");
            assert_eq!(value[0], 0, "Confluent magic byte");
            assert_eq!(
                record.key.is_some(),
                cap.key.is_some(),
                "{file}:{}",
                cap.line
            );
            let back = reader
                .decode(record.key.as_deref(), Some(value))
                .await
                .unwrap_or_else(|e| panic!("{file}:{}: decodes: {e}", cap.line));
            if ev.op != Op::Message {
                assert_eq!(back.key, ev.key(), "{file}:{}", cap.line);
            }
            assert_eq!(back.topic_prefix.as_deref(), Some("pgsource"));
            let back = back.event.expect("not a tombstone");
            let again = jenc.encode(&back).expect("json encodes");
            let (a, b) = (
                again.value.expect("value"),
                cap.value.clone().expect("value"),
            );
            assert!(
                a == b,
                "{file}:{} after the registry round trip\n{}",
                cap.line,
                diff(&a, &b)
            );
        }
        // A tombstone: the key alone.
        let (ev, _) = events(file).into_iter().next().expect("an event");
        let t = writer
            .encode_tombstone(&topic, &ev)
            .await
            .expect("tombstone");
        assert!(t.value.is_none());
        let back = reader
            .decode(t.key.as_deref(), None)
            .await
            .expect("decodes");
        assert!(back.event.is_none());
        assert_eq!(back.key, ev.key());
    }
}

#[tokio::test]
async fn second_encode_of_a_table_schema_does_no_http() {
    let _one_at_a_time = REGISTRY.lock().await;
    let evs = events("emp_seed.jsonl");
    let config = registry_config();
    let opts = options_for("emp_seed.jsonl");
    let mut conv = AvroRegistryConverter::new(
        SchemaRegistryClient::new(&config).expect("client"),
        &config,
        opts.clone(),
    );
    let topic = topic("reg.cache");
    let (first, _) = &evs[0];
    let record = conv.encode(&topic, first).await.expect("encodes");
    let after_first = conv.client().request_count();
    assert_eq!(after_first, 2, "one registration each for key and value");
    // The same event again and every other event of the same table schema.
    conv.encode(&topic, first).await.expect("encodes again");
    for (ev, _) in &evs {
        if ev.table == first.table {
            conv.encode(&topic, ev).await.expect("encodes");
        }
    }
    assert_eq!(
        conv.client().request_count(),
        after_first,
        "no HTTP after the first record"
    );

    // Decoding: one fetch per id, then none.
    let mut reader = AvroRegistryConverter::new(
        SchemaRegistryClient::new(&config).expect("client"),
        &config,
        opts,
    );
    for _ in 0..3 {
        reader
            .decode(record.key.as_deref(), record.value.as_deref())
            .await
            .expect("decodes");
    }
    assert_eq!(
        reader.client().request_count(),
        2,
        "key and value schema fetched once"
    );
}

/// `ev` with its table changed: `column` appended (a new table version) and
/// the rows given `value` for it.
fn with_new_column(ev: &ChangeEvent, column: Column, value: Value) -> ChangeEvent {
    let mut ev = ev.clone();
    let mut table = ev.table.as_deref().expect("table").clone();
    table.columns.push(column);
    table.version += 1;
    ev.table = Some(Arc::new(table));
    for row in [ev.before.as_mut(), ev.after.as_mut()]
        .into_iter()
        .flatten()
    {
        row.push(value.clone());
    }
    ev
}

#[tokio::test]
async fn incompatible_table_change_is_a_typed_error() {
    let _one_at_a_time = REGISTRY.lock().await;
    let (ev, _) = events("emp_seed.jsonl")
        .into_iter()
        .next()
        .expect("an event");
    let config = registry_config();
    let client = SchemaRegistryClient::new(&config).expect("client");
    let mut conv =
        AvroRegistryConverter::new(client.clone(), &config, options_for("emp_seed.jsonl"));
    let topic = topic("reg.compat");
    let subject = format!("{topic}-value");
    conv.encode(&topic, &ev)
        .await
        .expect("first version registers");
    client
        .set_compatibility(&subject, Compatibility::Backward)
        .await
        .expect("compatibility set");

    // A nullable column is a BACKWARD-compatible change: accepted.
    let nullable = with_new_column(
        &ev,
        Column::new("nickname", PgType::base(25, "text")),
        Value::Null,
    );
    conv.encode(&topic, &nullable)
        .await
        .expect("an optional new column is compatible");

    // A NOT NULL column without a default is not: readers of the new schema
    // could not read the records already written.
    let required = with_new_column(
        &ev,
        Column {
            optional: false,
            ..Column::new("badge", PgType::base(23, "int4"))
        },
        Value::Int32(7),
    );
    let err = conv
        .encode(&topic, &required)
        .await
        .expect_err("a required new column without default is incompatible");
    match &err {
        Error::RegistryIncompatibleSchema { subject: s, .. } => assert_eq!(s, &subject),
        other => panic!("expected RegistryIncompatibleSchema, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert_eq!(err.kind(), "cdc_envelope::RegistryIncompatibleSchema");
    assert!(
        err.to_string().contains("default"),
        "the message says what to do: {err}"
    );
}

/// `ev` with its table changed: column `name` dropped (a new table version).
fn without_column(ev: &ChangeEvent, name: &str) -> ChangeEvent {
    let mut ev = ev.clone();
    let mut table = ev.table.as_deref().expect("table").clone();
    let i = table
        .columns
        .iter()
        .position(|c| c.name == name)
        .expect("column exists");
    table.columns.remove(i);
    table.version += 1;
    ev.table = Some(Arc::new(table));
    for row in [ev.before.as_mut(), ev.after.as_mut()]
        .into_iter()
        .flatten()
    {
        row.remove(i);
    }
    ev
}

#[tokio::test]
async fn dropping_a_required_column_is_incompatible_under_forward() {
    let _one_at_a_time = REGISTRY.lock().await;
    // Under BACKWARD, dropping a column is compatible in Avro (the new
    // reader ignores the extra field); under FORWARD, readers of the old
    // schema need `name` (NOT NULL, so no default) in every new record.
    let (ev, _) = events("emp_seed.jsonl")
        .into_iter()
        .next()
        .expect("an event");
    let config = registry_config();
    let client = SchemaRegistryClient::new(&config).expect("client");
    let mut conv =
        AvroRegistryConverter::new(client.clone(), &config, options_for("emp_seed.jsonl"));
    let topic = topic("reg.forward");
    let subject = format!("{topic}-value");
    conv.encode(&topic, &ev)
        .await
        .expect("first version registers");
    client
        .set_compatibility(&subject, Compatibility::Forward)
        .await
        .expect("compatibility set");
    // `email` is nullable (default null): old readers fill it in.
    let no_email = without_column(&ev, "email");
    conv.encode(&topic, &no_email)
        .await
        .expect("dropping a nullable column is forward compatible");
    let no_name = without_column(&no_email, "name");
    let err = conv
        .encode(&topic, &no_name)
        .await
        .expect_err("dropping a NOT NULL column is not forward compatible");
    assert!(
        matches!(&err, Error::RegistryIncompatibleSchema { subject: s, .. } if s == &subject),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_ids_and_subjects_are_typed_errors() {
    let _one_at_a_time = REGISTRY.lock().await;
    let config = registry_config();
    let mut conv = AvroRegistryConverter::new(
        SchemaRegistryClient::new(&config).expect("client"),
        &config,
        options_for("emp_seed.jsonl"),
    );
    let id: u32 = 2_000_000_007;
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&[2, 4, 6]);
    let err = conv
        .decode(None, Some(&bytes))
        .await
        .expect_err("unknown id");
    assert!(
        matches!(err, Error::RegistrySchemaNotFound { id: i, .. } if i == id),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    // Not Confluent framing at all: rejected before any request.
    let before = conv.client().request_count();
    let err = conv
        .decode(None, Some(b"{\"json\":1}"))
        .await
        .expect_err("not framed");
    assert!(matches!(err, Error::InvalidAvro { .. }), "{err:?}");
    assert_eq!(conv.client().request_count(), before);

    let c = client();
    let err = c
        .latest_schema(&format!("{}-value", topic("reg.nosubject")))
        .await
        .expect_err("no such subject");
    assert!(
        matches!(err, Error::RegistrySubjectNotFound { .. }),
        "{err:?}"
    );

    // auto.register.schemas=false: a schema nobody registered is not found.
    let mut strict = registry_config();
    strict.auto_register_schemas = false;
    let mut conv = AvroRegistryConverter::new(
        SchemaRegistryClient::new(&strict).expect("client"),
        &strict,
        options_for("emp_seed.jsonl"),
    );
    let (ev, _) = events("emp_seed.jsonl")
        .into_iter()
        .next()
        .expect("an event");
    let err = conv
        .encode(&topic("reg.strict"), &ev)
        .await
        .expect_err("nothing registered");
    assert!(
        matches!(
            err,
            Error::RegistrySubjectNotFound { .. } | Error::RegistrySchemaNotRegistered { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn lookup_finds_what_was_registered() {
    let _one_at_a_time = REGISTRY.lock().await;
    let (ev, _) = events("emp_seed.jsonl")
        .into_iter()
        .next()
        .expect("an event");
    let topic = topic("reg.lookup");
    let mut conv_cfg = registry_config();
    let writer = client();
    let mut enc = AvroEncoder::new(options_for("emp_seed.jsonl"));
    let (k, v) = enc.schemas(&ev).expect("schemas");
    let k = k.expect("key");
    let key_id = writer
        .register(&format!("{topic}-key"), &k)
        .await
        .expect("key");
    let value_id = writer
        .register(&format!("{topic}-value"), &v)
        .await
        .expect("value");
    conv_cfg.auto_register_schemas = false;
    let mut conv = AvroRegistryConverter::new(
        SchemaRegistryClient::new(&conv_cfg).expect("client"),
        &conv_cfg,
        options_for("emp_seed.jsonl"),
    );
    let rec = conv
        .encode(&topic, &ev)
        .await
        .expect("looked up, not registered");
    let id_of = |b: &[u8]| u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
    assert_eq!(id_of(rec.key.as_deref().expect("key")), key_id);
    assert_eq!(id_of(rec.value.as_deref().expect("value")), value_id);
}

/// A setting `cargo xtask services up` writes (or the environment gives).
fn required_setting(key: &str) -> String {
    cdc_testkit::setting(key)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
            "{key} is not set: `cargo xtask services up` serves the registry over HTTPS with a \
             test CA (it needs the `openssl` CLI) and writes {key} to target/services/env"
        )
        })
}

#[tokio::test]
async fn https_with_the_truststore_option() {
    let _one_at_a_time = REGISTRY.lock().await;
    let url = required_setting("CDC_TEST_SCHEMA_REGISTRY_TLS_URL");
    let ca = required_setting("CDC_TEST_SCHEMA_REGISTRY_CA");
    let props = [
        ("value.converter.schema.registry.url", url.as_str()),
        ("value.converter.schema.registry.ssl.truststore.type", "PEM"),
        (
            "value.converter.schema.registry.ssl.truststore.location",
            ca.as_str(),
        ),
    ];
    let config = RegistryConfig::from_converter_properties(props, "value.converter")
        .expect("valid TLS settings");
    let client = SchemaRegistryClient::new(&config).expect("client");
    let subject = format!("{}-value", topic("reg.tls"));
    let schema = r#"{"type":"record","name":"Tls","namespace":"pgcdc.test","fields":[{"name":"a","type":"int"}]}"#;
    let id = client
        .register(&subject, schema)
        .await
        .expect("registers over HTTPS");
    let fresh = SchemaRegistryClient::new(&config).expect("client");
    let back = fresh.schema_by_id(id).await.expect("reads back over HTTPS");
    assert_eq!(json(&back), json(schema));

    // Without the CA the server's certificate is not trusted: a typed,
    // explained failure, not a panic or a plain-text fallback.
    let untrusted =
        RegistryConfig::from_properties([("schema.registry.url", url.as_str())]).expect("valid");
    let err = SchemaRegistryClient::new(&untrusted)
        .expect("client")
        .schema_by_id(id)
        .await
        .expect_err("unknown CA");
    match &err {
        Error::RegistryUnreachable { reason, .. } => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("expected RegistryUnreachable, got {other:?}"),
    }
}
