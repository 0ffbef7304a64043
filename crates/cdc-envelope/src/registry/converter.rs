//! [`AvroRegistryConverter`]: Confluent's `AvroConverter` for pg-cdc — the
//! [`AvroEncoder`] / [`AvroDecoder`] with schema ids from a registry.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::client::SchemaRegistryClient;
use super::config::{RegistryConfig, SubjectNameStrategy};
use crate::avro::{decode_key, split_confluent, AvroDecoder, AvroEncoder};
use crate::error::{Error, Result};
use crate::event::ChangeEvent;
use crate::json::{DecodedRecord, EncodedRecord};
use crate::options::Options;

/// Bound of the converter's own caches (schemas seen; cleared when full).
const MAX_CACHED: usize = 4096;

/// A schema the encoder produced, its subject and registered id.
#[derive(Debug)]
struct Registered {
    /// Keeps the encoder's `Arc<str>` alive so its address stays unique.
    _schema: Arc<str>,
    id: u32,
}

/// Encodes [`ChangeEvent`]s to Confluent-framed Avro with ids from a schema
/// registry, and decodes such records back (writer schema fetched by id).
///
/// Hot path: the encoder hands out the same `Arc<str>` schema for every
/// event of one (table, schema version), so the id is found by that
/// pointer and the topic, with no hashing of schema text and no I/O; only
/// the first record of a new table schema (or a new topic) asks the
/// registry. Decoding caches id → schema the same way.
#[derive(Debug)]
pub struct AvroRegistryConverter {
    client: SchemaRegistryClient,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    options: Options,
    auto_register: bool,
    key_strategy: SubjectNameStrategy,
    value_strategy: SubjectNameStrategy,
    /// topic → (schema pointer, is_key) → id.
    ids: HashMap<String, HashMap<(usize, bool), Registered>>,
    /// id → writer schema, for decoding.
    schemas: HashMap<u32, Arc<str>>,
}

impl AvroRegistryConverter {
    /// A converter for the connector `options`, using `client` and the
    /// converter settings of `config` (`auto.register.schemas`,
    /// `key.subject.name.strategy`, `value.subject.name.strategy`).
    pub fn new(client: SchemaRegistryClient, config: &RegistryConfig, options: Options) -> Self {
        Self {
            client,
            encoder: AvroEncoder::new(options.clone()),
            decoder: AvroDecoder::new(options.clone()),
            options,
            auto_register: config.auto_register_schemas,
            key_strategy: config.key_subject_name_strategy,
            value_strategy: config.value_subject_name_strategy,
            ids: HashMap::new(),
            schemas: HashMap::new(),
        }
    }

    /// The registry client (shared caches and request counter).
    pub fn client(&self) -> &SchemaRegistryClient {
        &self.client
    }

    /// The id of `schema` for `topic`'s key or value subject: from the
    /// converter's cache, else registered (or looked up).
    async fn id_for(&mut self, topic: &str, schema: &Arc<str>, is_key: bool) -> Result<u32> {
        let slot = (Arc::as_ptr(schema) as *const u8 as usize, is_key);
        if let Some(r) = self.ids.get(topic).and_then(|m| m.get(&slot)) {
            return Ok(r.id);
        }
        let strategy = if is_key {
            self.key_strategy
        } else {
            self.value_strategy
        };
        let record_name = match strategy {
            SubjectNameStrategy::TopicName => String::new(),
            _ => record_full_name(schema)?,
        };
        let subject = strategy.subject(topic, is_key, &record_name);
        let id = if self.auto_register {
            self.client.register(&subject, schema).await?
        } else {
            self.client.lookup(&subject, schema).await?
        };
        if self.ids.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED {
            self.ids.clear();
        }
        self.ids.entry(topic.to_owned()).or_default().insert(
            slot,
            Registered {
                _schema: Arc::clone(schema),
                id,
            },
        );
        Ok(id)
    }

    /// Encodes `event` for `topic` (as Confluent's `AvroConverter` would):
    /// key and value framed with their registered schema ids (registered
    /// under `<topic>-key` / `<topic>-value` with the default strategy). The
    /// key is `None` for tables without a primary key and for truncates.
    /// Use [`crate::tombstone_follows`] and [`Self::encode_tombstone`] for
    /// the record that follows a delete.
    pub async fn encode(&mut self, topic: &str, event: &ChangeEvent) -> Result<EncodedRecord> {
        let (key_schema, value_schema) = self.encoder.schemas(event)?;
        let key = self.encode_key(topic, event, key_schema.as_ref()).await?;
        let value_id = self.id_for(topic, &value_schema, false).await?;
        let mut value = Vec::with_capacity(256);
        self.encoder
            .encode_value_framed(event, value_id, &mut value)?;
        Ok(EncodedRecord {
            key,
            value: Some(value),
        })
    }

    /// The tombstone after a delete: the event's key, a null value.
    pub async fn encode_tombstone(
        &mut self,
        topic: &str,
        event: &ChangeEvent,
    ) -> Result<EncodedRecord> {
        let (key_schema, _) = self.encoder.schemas(event)?;
        let key = self.encode_key(topic, event, key_schema.as_ref()).await?;
        Ok(EncodedRecord { key, value: None })
    }

    async fn encode_key(
        &mut self,
        topic: &str,
        event: &ChangeEvent,
        key_schema: Option<&Arc<str>>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(ks) = key_schema else {
            return Ok(None);
        };
        let id = self.id_for(topic, ks, true).await?;
        let mut key = Vec::with_capacity(32);
        Ok(self
            .encoder
            .encode_key_framed(event, id, &mut key)?
            .then_some(key))
    }

    /// The writer schema with this id: converter cache, client cache, registry.
    async fn schema(&mut self, id: u32) -> Result<Arc<str>> {
        if let Some(s) = self.schemas.get(&id) {
            return Ok(Arc::clone(s));
        }
        let s = self.client.schema_by_id(id).await?;
        if self.schemas.len() >= MAX_CACHED {
            self.schemas.clear();
        }
        self.schemas.insert(id, Arc::clone(&s));
        Ok(s)
    }

    /// Decodes a record written by Confluent's `AvroConverter` (Debezium's
    /// or ours): reads the schema id of key and value from their Confluent
    /// headers, fetches those writer schemas (cached) and decodes. A `None`
    /// value is a tombstone (`event: None`). An id the registry does not
    /// know is [`Error::RegistrySchemaNotFound`].
    pub async fn decode(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<DecodedRecord> {
        let (key_values, key_schema) = match key {
            Some(k) => {
                let (id, datum) = split_confluent(k)?;
                let schema = self.schema(id).await?;
                (
                    Some(decode_key(&schema, datum, &self.options)?),
                    Some(schema),
                )
            }
            None => (None, None),
        };
        let Some(value) = value else {
            return Ok(DecodedRecord {
                event: None,
                key: key_values,
                topic_prefix: None,
            });
        };
        let (id, datum) = split_confluent(value)?;
        let schema = self.schema(id).await?;
        // The schemas are the cache's `Arc`s: the decoder recognises them by
        // pointer; one copy of the datum, which the event's strings slice.
        let event = self.decoder.decode_value_shared(
            &schema,
            key_schema.as_ref(),
            &bytes::Bytes::copy_from_slice(datum),
        )?;
        let prefix = (!event.source.name.is_empty()).then(|| event.source.name.clone());
        Ok(DecodedRecord {
            event: Some(event),
            key: key_values,
            topic_prefix: prefix,
        })
    }
}

/// `namespace.name` of an Avro record schema (for the record-name strategies).
fn record_full_name(schema: &str) -> Result<String> {
    let json: Json = serde_json::from_str(schema).map_err(|e| Error::InvalidJson {
        offset: e.column(),
        reason: format!("Avro schema: {e}"),
    })?;
    let name = json
        .get("name")
        .and_then(Json::as_str)
        .ok_or(Error::InvalidSchema {
            path: "avro.name".into(),
            expected: "a named record (for RecordNameStrategy)".into(),
            found: "no name".into(),
        })?;
    Ok(match json.get("namespace").and_then(Json::as_str) {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names() {
        assert_eq!(
            record_full_name(
                r#"{"type":"record","name":"Envelope","namespace":"pgsource.public.t","fields":[]}"#
            )
            .as_deref(),
            Ok("pgsource.public.t.Envelope")
        );
        assert_eq!(
            record_full_name(r#"{"type":"record","name":"a.b.C","namespace":"x","fields":[]}"#)
                .as_deref(),
            Ok("a.b.C")
        );
        assert!(record_full_name(r#""int""#).is_err());
        assert!(record_full_name("{").is_err());
    }
}
