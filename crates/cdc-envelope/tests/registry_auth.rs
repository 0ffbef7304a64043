//! HTTP basic authentication of the schema-registry client against a real
//! registry that requires it: the Apicurio Registry app `cargo xtask services
//! up` builds, started on a free port by
//! [`cdc_testkit::SchemaRegistryServer::start_with_basic_auth`] (Quarkus'
//! basic-auth mechanism, embedded users; the shared registry on 58081 asks
//! for no credentials). Without the built app these tests fail with a
//! message saying how to build it; they never skip.

mod common;

use std::sync::{Arc, Mutex, PoisonError, Weak};

use cdc_envelope::registry::{AvroRegistryConverter, RegistryConfig, SchemaRegistryClient};
use cdc_envelope::{ChangeEvent, Error, JsonDecoder};
use cdc_testkit::SchemaRegistryServer;
use common::{captures, options_for};

const USER: &str = "pgcdc-tester";
/// Has `:` (user info splits at the first one) and characters a URL's user
/// info must percent-encode.
const PASSWORD: &str = "s3:cr@t/pw-Q7";
/// [`PASSWORD`] as it appears in a URL.
const PASSWORD_IN_URL: &str = "s3%3Acr%40t%2Fpw-Q7";
const WRONG_PASSWORD: &str = "not-the-pw-Z4";

const SCHEMA: &str = r#"{"type":"record","name":"Auth","namespace":"pgcdc.test","fields":[{"name":"a","type":"int"}]}"#;

/// One registry JVM for the tests of this binary that run at the same time;
/// it stops when the last of them drops its handle.
static SERVER: Mutex<Weak<SchemaRegistryServer>> = Mutex::new(Weak::new());

/// Serializes registrations: the app's in-memory (H2) storage races under
/// concurrent writes (see tests/registry.rs).
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn server() -> Arc<SchemaRegistryServer> {
    let mut shared = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(s) = shared.upgrade() {
        return s;
    }
    let s = Arc::new(
        SchemaRegistryServer::start_with_basic_auth(USER, PASSWORD)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    *shared = Arc::downgrade(&s);
    s
}

fn client(props: &[(&str, &str)]) -> (RegistryConfig, SchemaRegistryClient) {
    let config = RegistryConfig::from_properties(props.iter().copied()).expect("valid settings");
    let client = SchemaRegistryClient::new(&config).expect("client");
    (config, client)
}

fn subject(prefix: &str) -> String {
    format!(
        "{}-value",
        cdc_testkit::unique_name(prefix).replace('_', ".")
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("schema is JSON")
}

/// Asserts that nothing a user may print shows a secret.
fn assert_no_secret(printed: &[String], secrets: &[&str]) {
    for text in printed {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} shown in: {text}");
        }
    }
}

/// The registry's 401, typed, explained, not retriable, without secrets.
fn assert_authentication_failed(err: &Error, url: &str) {
    match err {
        Error::RegistryUnauthorized { url: u, status } => {
            assert_eq!((u.as_str(), *status), (url, 401), "{err}");
        }
        other => panic!("expected RegistryUnauthorized, got {other:?}"),
    }
    let text = err.to_string();
    for what in [
        "HTTP 401",
        "basic.auth.credentials.source",
        "basic.auth.user.info",
        "schema.registry.url",
    ] {
        assert!(text.contains(what), "{what:?} missing from: {text}");
    }
    assert!(!err.is_retriable(), "{err}");
    assert_eq!(err.kind(), "cdc_envelope::RegistryUnauthorized");
    assert_no_secret(
        &[text, format!("{err:?}")],
        &[PASSWORD, PASSWORD_IN_URL, WRONG_PASSWORD],
    );
}

#[tokio::test]
async fn without_credentials_reads_and_writes_are_refused_with_401() {
    let server = server();
    let url = server.url();
    let (_, c) = client(&[("schema.registry.url", url.as_str())]);
    let err = c
        .register(&subject("auth.none"), SCHEMA)
        .await
        .expect_err("no credentials");
    assert_authentication_failed(&err, &url);
    let err = c.schema_by_id(1).await.expect_err("reads need them too");
    assert_authentication_failed(&err, &url);
    // Each refusal was one request: a 401 is not retried.
    assert_eq!(c.request_count(), 2);
}

#[tokio::test]
async fn a_wrong_password_or_user_is_refused_and_never_shown() {
    let server = server();
    let url = server.url();
    let wrong_password = format!("{USER}:{WRONG_PASSWORD}");
    let wrong_user = format!("nobody:{PASSWORD}");
    let url_with_wrong_password = url.replacen("://", &format!("://{USER}:{WRONG_PASSWORD}@"), 1);
    let cases: [&[(&str, &str)]; 3] = [
        &[
            ("schema.registry.url", url.as_str()),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", wrong_password.as_str()),
        ],
        &[
            ("schema.registry.url", url.as_str()),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", wrong_user.as_str()),
        ],
        &[
            ("schema.registry.url", url_with_wrong_password.as_str()),
            ("basic.auth.credentials.source", "URL"),
        ],
    ];
    for props in cases {
        let (config, c) = client(props);
        let err = c
            .register(&subject("auth.wrong"), SCHEMA)
            .await
            .expect_err("wrong credentials");
        assert_authentication_failed(&err, &url);
        assert_no_secret(
            &[format!("{config:?}"), format!("{c:?}"), c.url().to_owned()],
            &[PASSWORD, PASSWORD_IN_URL, WRONG_PASSWORD],
        );
    }
}

#[tokio::test]
async fn user_info_credentials_register_and_read_back_by_id() {
    let server = server();
    let url = server.url();
    let user_info = format!("{USER}:{PASSWORD}");
    // As a Debezium / Kafka Connect configuration spells them.
    let props = [
        ("value.converter", "io.confluent.connect.avro.AvroConverter"),
        ("value.converter.schema.registry.url", url.as_str()),
        ("value.converter.basic.auth.credentials.source", "USER_INFO"),
        ("value.converter.basic.auth.user.info", user_info.as_str()),
    ];
    let config =
        RegistryConfig::from_converter_properties(props, "value.converter").expect("valid");
    let subject = subject("auth.userinfo");
    let id = {
        let _one_at_a_time = WRITES.lock().await;
        SchemaRegistryClient::new(&config)
            .expect("client")
            .register(&subject, SCHEMA)
            .await
            .expect("registers with the right credentials")
    };
    let reader = SchemaRegistryClient::new(&config).expect("client");
    let back = reader.schema_by_id(id).await.expect("reads back by id");
    assert_eq!(json(&back), json(SCHEMA));
    let (latest_id, latest) = reader.latest_schema(&subject).await.expect("latest");
    assert_eq!((latest_id, json(&latest)), (id, json(SCHEMA)));
    assert_no_secret(&[format!("{config:?}"), format!("{reader:?}")], &[PASSWORD]);

    // The registry-backed converter end to end: a captured Debezium event
    // encodes (registering key and value schemas) and decodes with a
    // converter that fetches them by id.
    let file = "emp_seed.jsonl";
    let event = first_event(file);
    let record = {
        let _one_at_a_time = WRITES.lock().await;
        let client = SchemaRegistryClient::new(&config).expect("client");
        AvroRegistryConverter::new(client, &config, options_for(file))
            .encode(
                &cdc_testkit::unique_name("auth.conv").replace('_', "."),
                &event,
            )
            .await
            .expect("encodes through the authenticated registry")
    };
    let client = SchemaRegistryClient::new(&config).expect("client");
    let decoded = AvroRegistryConverter::new(client, &config, options_for(file))
        .decode(record.key.as_deref(), record.value.as_deref())
        .await
        .expect("decodes through the authenticated registry");
    assert_eq!(decoded.event.map(|e| e.after), Some(event.after));
}

#[tokio::test]
async fn url_credentials_register_and_read_back_by_id() {
    let server = server();
    let url = server.url();
    let url_with_credentials = url.replacen("://", &format!("://{USER}:{PASSWORD_IN_URL}@"), 1);
    // Explicitly, and by default: URL is Confluent's default source.
    let explicit: &[(&str, &str)] = &[
        ("schema.registry.url", url_with_credentials.as_str()),
        ("basic.auth.credentials.source", "URL"),
    ];
    let default: &[(&str, &str)] = &[("schema.registry.url", url_with_credentials.as_str())];
    for props in [explicit, default] {
        let (config, writer) = client(props);
        assert_eq!(config.urls, [url.as_str()], "credentials are split off");
        assert_eq!(writer.url(), url);
        let subject = subject("auth.url");
        let id = {
            let _one_at_a_time = WRITES.lock().await;
            writer
                .register(&subject, SCHEMA)
                .await
                .expect("registers with credentials from the URL")
        };
        let (_, reader) = client(props);
        let back = reader.schema_by_id(id).await.expect("reads back by id");
        assert_eq!(json(&back), json(SCHEMA));
        assert_no_secret(
            &[format!("{config:?}"), format!("{reader:?}")],
            &[PASSWORD, PASSWORD_IN_URL],
        );
    }
    // With source USER_INFO the URL's credentials are not used.
    let (_, c) = client(&[
        ("schema.registry.url", url_with_credentials.as_str()),
        ("basic.auth.credentials.source", "USER_INFO"),
    ]);
    let err = c.schema_by_id(1).await.expect_err("no credentials sent");
    assert_authentication_failed(&err, &url);
}

/// The first captured Debezium event of `file` that has a row.
fn first_event(file: &'static str) -> ChangeEvent {
    let mut dec = JsonDecoder::new(options_for(file));
    captures(file)
        .into_iter()
        .find_map(|cap| {
            dec.decode(cap.key.as_deref(), cap.value.as_deref())
                .expect("captured event decodes")
                .event
        })
        .expect("an event")
}
