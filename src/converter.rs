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
