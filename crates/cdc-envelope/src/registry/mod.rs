//! Schema registry (feature `registry`): a client of the Confluent Schema
//! Registry REST API and [`AvroRegistryConverter`], the registry-backed
//! Avro converter — what Debezium users get from
//! `value.converter=io.confluent.connect.avro.AvroConverter` with
//! `value.converter.schema.registry.url=…`. The only I/O of this crate.
//!
//! ```text
//! ChangeEvent ──▶ AvroEncoder.schemas() ──Arc<str> per (table, version)──▶ id cache ──hit──▶ encode, framed with id
//!                                                                             │ miss (first record of a schema)
//!                                                                             ▼
//!                                      SchemaRegistryClient.register("<topic>-value", schema)  POST /subjects/{s}/versions
//!
//! bytes ──▶ magic 0 + id ──▶ id cache ──hit──▶ AvroDecoder.decode_value(writer schema, …) ──▶ ChangeEvent
//!                              │ miss
//!                              ▼
//!                SchemaRegistryClient.schema_by_id(id)                  GET /schemas/ids/{id}
//! ```
//!
//! Layout: [`config`] (properties, Confluent names), [`protocol`] (paths,
//! bodies, answers and error typing; pure), [`client`] (HTTP/1.1, rustls,
//! caches), [`converter`].
//!
//! Errors are typed: [`Error::RegistryIncompatibleSchema`] (HTTP 409),
//! [`Error::RegistrySubjectNotFound`] (40401/40402),
//! [`Error::RegistrySchemaNotRegistered`] / [`Error::RegistrySchemaNotFound`]
//! (40403), [`Error::RegistryUnauthorized`] (401/403),
//! [`Error::RegistryUnreachable`] (retriable), otherwise [`Error::Registry`].
//! None of them contains credentials.
//!
//! Tested against a real registry: Apicurio Registry's Confluent-compatible
//! API, started by `cargo xtask services up` (`tests/registry.rs`); HTTP
//! basic authentication (`basic.auth.credentials.source` `USER_INFO` or
//! `URL`, Confluent's default) against an instance of it that requires
//! credentials (`tests/registry_auth.rs`).
//!
//! [`Error`]: crate::Error
//! [`Error::RegistryIncompatibleSchema`]: crate::Error::RegistryIncompatibleSchema
//! [`Error::RegistrySubjectNotFound`]: crate::Error::RegistrySubjectNotFound
//! [`Error::RegistrySchemaNotRegistered`]: crate::Error::RegistrySchemaNotRegistered
//! [`Error::RegistrySchemaNotFound`]: crate::Error::RegistrySchemaNotFound
//! [`Error::RegistryUnauthorized`]: crate::Error::RegistryUnauthorized
//! [`Error::RegistryUnreachable`]: crate::Error::RegistryUnreachable
//! [`Error::Registry`]: crate::Error::Registry
//!
//! ```no_run
//! use cdc_envelope::registry::{AvroRegistryConverter, RegistryConfig, SchemaRegistryClient};
//! use cdc_envelope::{ChangeEvent, Options};
//!
//! # async fn demo(event: ChangeEvent) -> Result<(), cdc_envelope::Error> {
//! // The sink connector's properties, as in a Debezium / Kafka Connect config.
//! let props = [
//!     ("value.converter", "io.confluent.connect.avro.AvroConverter"),
//!     ("value.converter.schema.registry.url", "http://127.0.0.1:58081/apis/ccompat/v7"),
//!     ("value.converter.basic.auth.credentials.source", "USER_INFO"),
//!     ("value.converter.basic.auth.user.info", "fred:secret"),
//! ];
//! let config = RegistryConfig::from_converter_properties(props, "value.converter")?;
//! let client = SchemaRegistryClient::new(&config)?;
//! let options = Options::from_properties([("topic.prefix", "pgsource")])?;
//! let mut converter = AvroRegistryConverter::new(client, &config, options);
//!
//! // Registers pgsource.public.employees-key / -value on first use, then cached.
//! let record = converter.encode("pgsource.public.employees", &event).await?;
//! let back = converter
//!     .decode(record.key.as_deref(), record.value.as_deref())
//!     .await?;
//! assert_eq!(back.event.map(|e| e.after), Some(event.after));
//! # Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod converter;
pub mod protocol;

pub use client::SchemaRegistryClient;
pub use config::{BasicAuth, KeyStore, PemSource, RegistryConfig, SubjectNameStrategy, TlsConfig};
pub use converter::AvroRegistryConverter;
pub use protocol::Compatibility;
