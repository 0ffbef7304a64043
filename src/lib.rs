//! # pg-cdc
//!
//! PostgreSQL → logical replication (pgoutput) → Kafka → upsert sink →
//! PostgreSQL, with Debezium-compatible events on the wire, in one small
//! native process. This root crate re-exports the workspace libraries so a
//! program can depend on one crate; the example binaries in `examples/`
//! compose them.
//!
//! ```text
//!           cdc_envelope            (model, schema, converters)
//!         ↗      ↑       ↖
//! pg_logical  kafka_io  jdbc_sink   (source, transport, sink)
//!         ↖      ↑       ↗
//!            pg_cdc / examples
//! ```
//!
//! ```
//! use pg_cdc::cdc_envelope::{Op, Lsn};
//!
//! assert_eq!(Op::Create.code(), "c");
//! assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
//! ```

pub use cdc_envelope;
pub use jdbc_sink;
pub use kafka_io;
pub use pg_logical;

pub mod connector;
pub mod converter;
pub mod dead_letter;
pub mod error;
pub mod metrics;
pub mod rest;
pub mod runtime;
pub mod sink_task;
pub mod source_task;
pub mod status;
