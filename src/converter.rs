//! The connector's record converter, chosen as Kafka Connect chooses it:
//! `key.converter` / `value.converter`.
//!
//! | class | wire format |
//! |---|---|
//! | `org.apache.kafka.connect.json.JsonConverter` | Kafka Connect JSON, `*.converter.schemas.enable` |
//! | `io.confluent.connect.avro.AvroConverter` | Avro, Confluent framing (magic 0 + schema id), schemas in a registry at `*.converter.schema.registry.url` |
//!
//! Key and value use the same converter class (mixed pairs are refused,
//! naming the key).

use cdc_envelope::registry::{AvroRegistryConverter, RegistryConfig, SchemaRegistryClient};
use cdc_envelope::{ChangeEvent, DecodedRecord, EncodedRecord, JsonDecoder, JsonEncoder, Options};

use crate::connector::{ConfigError, ConnectorConfig};

/// Kafka Connect's JSON converter class.
pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// Confluent's Avro converter class.
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";

/// Key and value buffers kept for [`Converter::encode_reusing`]: at most
/// `limit` of each, none larger than [`Spare::MAX_CAPACITY`].
#[derive(Debug)]
pub struct Spare {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    limit: usize,
}

impl Spare {
    /// Buffers that grew beyond this (a huge row) are freed, not kept.
    pub const MAX_CAPACITY: usize = 64 * 1024;

    /// An empty pool keeping at most `limit` key and `limit` value buffers.
    pub fn new(limit: usize) -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
            limit,
        }
    }

    /// Keeps a record's buffers for the next records (once sent).
    pub fn give(&mut self, key: Option<Vec<u8>>, value: Option<Vec<u8>>) {
        for (buf, pool) in [(key, &mut self.keys), (value, &mut self.values)] {
            if let Some(b) = buf {
                if b.capacity() > 0 && b.capacity() <= Self::MAX_CAPACITY && pool.len() < self.limit
                {
                    pool.push(b);
                }
            }
        }
    }

    /// Buffers kept (keys, values).
    pub fn kept(&self) -> (usize, usize) {
        (self.keys.len(), self.values.len())
    }
}

/// Which wire format a connector's converters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// [`JSON_CONVERTER`].
    Json,
    /// [`AVRO_CONVERTER`].
    Avro,
}

impl Format {
    /// Reads `key.converter` and `value.converter` (JSON when unset, as in
    /// Kafka Connect's default worker config).
    pub fn from_config(config: &ConnectorConfig) -> Result<Self, ConfigError> {
        let of = |key: &str| -> Result<Self, ConfigError> {
            match config.props.get(key).map(|c| c.trim()) {
                None | Some(JSON_CONVERTER) => Ok(Self::Json),
                Some(AVRO_CONVERTER) => Ok(Self::Avro),
                Some(class) => Err(ConfigError::Property {
                    connector: config.name.clone(),
                    key: key.into(),
                    reason: format!(
                        "`{class}` is not supported; use {JSON_CONVERTER} (with or without \
                         {key}.schemas.enable) or {AVRO_CONVERTER} (with {key}.schema.registry.url)"
                    ),
                }),
            }
        };
        let (key, value) = (of("key.converter")?, of("value.converter")?);
        if key != value {
            return Err(ConfigError::Property {
                connector: config.name.clone(),
                key: "key.converter".into(),
                reason: format!(
                    "key and value converters differ ({key:?} / {value:?}); pg-cdc uses one \
                     format for both: set key.converter and value.converter to the same class"
                ),
            });
        }
        if value == Self::Avro
            && !config
                .props
                .contains_key("value.converter.schema.registry.url")
        {
            return Err(ConfigError::Property {
                connector: config.name.clone(),
                key: "value.converter.schema.registry.url".into(),
                reason: format!(
                    "{AVRO_CONVERTER} needs the schema registry's URL (e.g. http://localhost:8081); \
                     set key.converter.schema.registry.url and value.converter.schema.registry.url"
                ),
            });
        }
        Ok(value)
    }

    /// The converter class name (for `__connect.errors.class.name`).
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Json => JSON_CONVERTER,
            Self::Avro => AVRO_CONVERTER,
        }
    }
}

/// Encodes and decodes a connector's records.
// One per task, created once and never moved on the hot path: the size
// difference between the variants costs nothing, a box would cost a pointer
// chase per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Converter {
    /// Kafka Connect JSON.
    Json {
        /// Source side.
        encoder: JsonEncoder,
        /// Sink side.
        decoder: JsonDecoder,
    },
    /// Confluent Avro with a schema registry.
    Avro(Box<AvroRegistryConverter>),
}

impl Converter {
    /// The converter `config` asks for (see [`Format::from_config`]).
    pub fn from_config(
        config: &ConnectorConfig,
        options: &Options,
    ) -> Result<Self, crate::error::Error> {
        Ok(match Format::from_config(config)? {
            Format::Json => Self::Json {
                encoder: JsonEncoder::new(options.clone()),
                decoder: JsonDecoder::new(options.clone()),
            },
            Format::Avro => {
                let props = config.props.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let registry = RegistryConfig::from_converter_properties(props, "value.converter")?;
                let client = SchemaRegistryClient::new(&registry)?;
                Self::Avro(Box::new(AvroRegistryConverter::new(
                    client,
                    &registry,
                    options.clone(),
                )))
            }
        })
    }

    /// The wire format.
    pub fn format(&self) -> Format {
        match self {
            Self::Json { .. } => Format::Json,
            Self::Avro(_) => Format::Avro,
        }
    }

    /// Key and value of `event`, bound for `topic`.
    pub async fn encode(
        &mut self,
        topic: &str,
        event: &ChangeEvent,
    ) -> cdc_envelope::Result<EncodedRecord> {
        match self {
            Self::Json { encoder, .. } => encoder.encode(event),
            Self::Avro(avro) => avro.encode(topic, event).await,
        }
    }

    /// Like [`Self::encode`], writing JSON into buffers taken from `spare`
    /// (cleared first; left there when not needed or on error) instead of
    /// allocating new ones: a source hands each record's buffers back once
    /// the producer has copied them. Avro allocates as [`Self::encode`].
    pub async fn encode_reusing(
        &mut self,
        topic: &str,
        event: &ChangeEvent,
        spare: &mut Spare,
    ) -> cdc_envelope::Result<EncodedRecord> {
        match self {
            Self::Json { encoder, .. } => {
                let mut key = spare.keys.pop().unwrap_or_default();
                let mut value = spare.values.pop().unwrap_or_default();
                key.clear();
                value.clear();
                let encoded = encoder
                    .encode_key_into(event, &mut key)
                    .and_then(|has_key| {
                        encoder
                            .encode_value_into(event, &mut value)
                            .map(|()| has_key)
                    });
                match encoded {
                    Ok(true) => Ok(EncodedRecord {
                        key: Some(key),
                        value: Some(value),
                    }),
                    Ok(false) => {
                        spare.keys.push(key);
                        Ok(EncodedRecord {
                            key: None,
                            value: Some(value),
                        })
                    }
                    Err(e) => {
                        spare.keys.push(key);
                        spare.values.push(value);
                        Err(e)
                    }
                }
            }
            Self::Avro(avro) => avro.encode(topic, event).await,
        }
    }

    /// A consumed record back into an event (`None` for a tombstone).
    pub async fn decode(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> cdc_envelope::Result<DecodedRecord> {
        match self {
            Self::Json { decoder, .. } => decoder.decode(key, value),
            Self::Avro(avro) => avro.decode(key, value).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ConnectorKind;

    fn config(pairs: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "c".into(),
            kind: ConnectorKind::Source,
            props: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    fn employee(id: i32, name: &str) -> ChangeEvent {
        use cdc_envelope::{Column, Op, PgType, Position, SourceInfo, TableId, TableSchema, Value};
        let columns = vec![
            Column {
                is_key: true,
                optional: false,
                ..Column::new("emp_id", PgType::base(23, "int4"))
            },
            Column::new("name", PgType::base(25, "text")),
        ];
        ChangeEvent {
            op: Op::Create,
            table: Some(std::sync::Arc::new(TableSchema {
                id: TableId::new("public", "employees"),
                relation_oid: 1,
                columns,
                version: 1,
            })),
            before: None,
            after: Some(vec![Value::Int32(id), Value::Text(name.into())]),
            source: SourceInfo::default(),
            ts_ns: 0,
            transaction: None,
            message: None,
            position: Position::default(),
            key_change: None,
        }
    }

    #[tokio::test]
    async fn reused_buffers_encode_the_same_bytes() {
        let cfg = config(&[("topic.prefix", "p")]);
        let options = Options::from_map(&cfg.props).expect("options");
        let mut fresh = Converter::from_config(&cfg, &options).expect("json");
        let mut reusing = Converter::from_config(&cfg, &options).expect("json");
        let mut spare = Spare::new(1);
        let mut last_value_ptr = None;
        for (id, name) in [
            (1, "a long first name to grow the buffer"),
            (2, "b"),
            (30, "c"),
        ] {
            let ev = employee(id, name);
            let want = fresh
                .encode("p.public.employees", &ev)
                .await
                .expect("encodes");
            let got = reusing
                .encode_reusing("p.public.employees", &ev, &mut spare)
                .await
                .expect("encodes");
            assert_eq!(got.key, want.key, "key of {id}");
            assert_eq!(got.value, want.value, "value of {id}");
            let value = got.value.expect("value");
            let ptr = value.as_ptr();
            if let Some(p) = last_value_ptr {
                assert_eq!(ptr, p, "record {id} reuses the previous value buffer");
            }
            last_value_ptr = Some(ptr);
            spare.give(got.key, Some(value));
            assert_eq!(spare.kept(), (1, 1));
        }
        // Bounded: by count, and huge buffers are not kept.
        spare.give(Some(vec![0; 8]), Some(vec![0; 8]));
        assert_eq!(spare.kept(), (1, 1), "at most `limit` of each");
        let mut big = Spare::new(4);
        big.give(None, Some(Vec::with_capacity(Spare::MAX_CAPACITY + 1)));
        big.give(None, Some(Vec::new()));
        assert_eq!(
            big.kept(),
            (0, 0),
            "oversized and empty buffers are dropped"
        );
    }

    #[test]
    fn converter_classes_are_checked_by_key() {
        assert_eq!(Format::from_config(&config(&[])).ok(), Some(Format::Json));
        let avro = [
            ("key.converter", AVRO_CONVERTER),
            ("value.converter", AVRO_CONVERTER),
            ("value.converter.schema.registry.url", "http://r:8081"),
        ];
        assert_eq!(Format::from_config(&config(&avro)).ok(), Some(Format::Avro));
        for (pairs, key) in [
            (
                vec![(
                    "value.converter",
                    "org.apache.kafka.connect.storage.StringConverter",
                )],
                "value.converter",
            ),
            (vec![("value.converter", AVRO_CONVERTER)], "key.converter"),
            (
                vec![
                    ("key.converter", AVRO_CONVERTER),
                    ("value.converter", AVRO_CONVERTER),
                ],
                "value.converter.schema.registry.url",
            ),
        ] {
            match Format::from_config(&config(&pairs)) {
                Err(ConfigError::Property { key: k, .. }) => assert_eq!(k, key, "{pairs:?}"),
                other => panic!("{pairs:?}: expected an error naming {key}, got {other:?}"),
            }
        }
    }
}
