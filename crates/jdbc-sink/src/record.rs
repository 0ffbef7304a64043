//! The sink's input and output: [`SinkRecord`]s in, a [`BatchOutcome`] out.

use std::collections::BTreeMap;

use bytes::Bytes;
use cdc_envelope::{ChangeEvent, Row, Value};

use crate::error::RecordError;

/// A Kafka topic partition (the workspace's shared type).
pub use cdc_envelope::TopicPartition;

/// The decoded record key: the key struct's values, with field names when
/// the decoder knows them (a Debezium JSON key with `schemas.enable=true`,
/// or the key columns of the event's table).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordKey {
    /// Field names, parallel to `values`, when known.
    pub names: Option<Vec<String>>,
    /// Field values.
    pub values: Row,
}

/// One Kafka record, already decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Decoded key (`None` for a null key).
    pub key: Option<RecordKey>,
    /// Decoded value; `None` is a tombstone.
    pub value: Option<ChangeEvent>,
    /// Record headers (`primary.key.mode=record_header` reads them as UTF-8).
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl SinkRecord {
    /// A record carrying a change event; the key is taken from the event's
    /// key columns.
    pub fn from_event(
        topic: impl Into<String>,
        partition: i32,
        offset: i64,
        event: ChangeEvent,
    ) -> Self {
        let key = key_of(&event);
        Self {
            topic: topic.into(),
            partition,
            offset,
            key,
            value: Some(event),
            headers: Vec::new(),
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(
        topic: impl Into<String>,
        partition: i32,
        offset: i64,
        key: Option<RecordKey>,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
            key,
            value: None,
            headers: Vec::new(),
        }
    }

    /// From the output of `cdc_envelope::JsonDecoder::decode`.
    pub fn from_decoded(
        topic: impl Into<String>,
        partition: i32,
        offset: i64,
        decoded: cdc_envelope::DecodedRecord,
    ) -> Self {
        let topic = topic.into();
        match decoded.event {
            Some(ev) => {
                let mut r = Self::from_event(topic, partition, offset, ev);
                if r.key.is_none() {
                    r.key = decoded.key.map(|values| RecordKey {
                        names: None,
                        values,
                    });
                }
                r
            }
            None => Self::tombstone(
                topic,
                partition,
                offset,
                decoded.key.map(|values| RecordKey {
                    names: None,
                    values,
                }),
            ),
        }
    }

    /// The record's topic partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

fn key_of(ev: &ChangeEvent) -> Option<RecordKey> {
    let table = ev.table.as_ref()?;
    if !table.has_key() {
        return None;
    }
    let row = ev.after.as_ref().or(ev.before.as_ref())?;
    let mut names = Vec::new();
    let mut values = Vec::new();
    for i in table.key_indices() {
        names.push(table.columns[i].name.clone());
        values.push(row.get(i).cloned().unwrap_or(Value::Null));
    }
    Some(RecordKey {
        names: Some(names),
        values,
    })
}

/// A record that could not be written.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRecord {
    /// Index of the record in the slice given to `write`.
    pub index: usize,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Why (for the DLQ headers).
    pub error: RecordError,
}

/// What one call to `write` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    /// Records whose change is now in the target (after reduction several
    /// records may have produced one row write).
    pub written: usize,
    /// Records deliberately ignored (messages, tombstones and deletes with
    /// `delete.enabled=false`, truncates with `truncate.enabled=false`).
    pub skipped: usize,
    /// Records already applied by an earlier transaction (offset below the
    /// stored offset): replays made harmless by exactly-once.
    pub replayed: usize,
    /// Records that failed. Through `write_with` they were delivered to its
    /// [`DeadLetterSink`](crate::DeadLetterSink) before their transaction
    /// committed; through `write` they were not dead-lettered by anyone, and
    /// their transaction (with exactly-once: the offsets past them) is
    /// already committed.
    pub failed: Vec<FailedRecord>,
    /// Next offset to consume per partition (last offset + 1) covering every
    /// record of the call, failed ones included. With exactly-once these are
    /// already stored in the target; otherwise commit them to Kafka after the
    /// failed records reached the DLQ.
    pub next_offsets: BTreeMap<TopicPartition, i64>,
    /// Database transactions committed.
    pub transactions: usize,
}

impl BatchOutcome {
    pub(crate) fn merge(&mut self, other: BatchOutcome) {
        self.written += other.written;
        self.skipped += other.skipped;
        self.replayed += other.replayed;
        self.failed.extend(other.failed);
        for (tp, o) in other.next_offsets {
            let e = self.next_offsets.entry(tp).or_insert(o);
            *e = (*e).max(o);
        }
        self.transactions += other.transactions;
    }
}
