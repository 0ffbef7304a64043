//! Exactly-once: consumer offsets stored in the target, in the same
//! transaction as the rows they cover.
//!
//! ```text
//! __pgcdc_sink_offsets(connector text, topic text, partition int4, next_offset int8,
//!                      updated_at timestamptz, PRIMARY KEY (connector, topic, partition))
//! ```
//!
//! At start the consumer seeks every assigned partition to
//! [`OffsetStore::load`]'s `next_offset`. If it does not (or Kafka replays
//! after a crash between the database commit and the Kafka offset commit),
//! the sink itself skips records below the stored offset, so a replay
//! writes nothing twice.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::error::SinkError;
use crate::ident::QualifiedName;
use crate::record::TopicPartition;

/// Reads and writes the offsets table.
#[derive(Debug, Clone)]
pub struct OffsetStore {
    table: QualifiedName,
    connector: String,
}

impl OffsetStore {
    /// A store for `connector` in `table` (`schema.table` or `table`).
    pub fn new(table: &str, connector: &str) -> Self {
        let table = match table.split_once('.') {
            Some((s, t)) => QualifiedName::new(Some(s.to_owned()), t),
            None => QualifiedName::new(None, table),
        };
        Self {
            table,
            connector: connector.to_owned(),
        }
    }

    /// The table.
    pub fn table(&self) -> &QualifiedName {
        &self.table
    }

    /// Creates the table if needed.
    pub async fn ensure(&self, client: &Client) -> Result<(), SinkError> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (connector text NOT NULL, topic text NOT NULL, partition integer NOT NULL, \
             next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (connector, topic, partition))",
            self.table.quoted()
        );
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            // Two writers creating it at once: the other one won.
            Err(e)
                if e.code()
                    .is_some_and(|c| matches!(c.code(), "23505" | "42P07")) =>
            {
                Ok(())
            }
            Err(e) => Err(SinkError::db(
                format!("creating the offsets table {}", self.table),
                &e,
            )),
        }
    }

    /// Stored next offsets of this connector (all partitions, or the given ones).
    pub async fn load(
        &self,
        client: &Client,
        only: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>, SinkError> {
        let ctx = || format!("reading offsets from {}", self.table);
        let rows = match only {
            None => client
                .query(
                    &format!(
                        "SELECT topic, partition, next_offset FROM {} WHERE connector = $1",
                        self.table.quoted()
                    ),
                    &[&self.connector],
                )
                .await
                .map_err(|e| SinkError::db(ctx(), &e))?,
            Some(tps) => {
                let topics: Vec<&str> = tps.iter().map(|t| t.topic.as_str()).collect();
                let parts: Vec<i32> = tps.iter().map(|t| t.partition).collect();
                client
                    .query(
                        &format!(
                            "SELECT o.topic, o.partition, o.next_offset FROM {} o \
                             JOIN UNNEST($2::text[], $3::int4[]) AS w(topic, partition) \
                             ON o.topic = w.topic AND o.partition = w.partition WHERE o.connector = $1",
                            self.table.quoted()
                        ),
                        &[&self.connector, &topics, &parts],
                    )
                    .await
                    .map_err(|e| SinkError::db(ctx(), &e))?
            }
        };
        Ok(rows
            .iter()
            .map(|r| {
                (
                    TopicPartition::new(r.get::<_, String>(0), r.get(1)),
                    r.get(2),
                )
            })
            .collect())
    }

    /// The statement and parameters that store `offsets` (run it inside the
    /// batch transaction).
    pub(crate) fn store_sql(&self) -> String {
        format!(
            "INSERT INTO {t} (connector, topic, partition, next_offset) \
             SELECT $1, w.topic, w.partition, w.next_offset FROM UNNEST($2::text[], $3::int4[], $4::int8[]) \
             AS w(topic, partition, next_offset) \
             ON CONFLICT (connector, topic, partition) DO UPDATE \
             SET next_offset = GREATEST({t}.next_offset, EXCLUDED.next_offset), updated_at = now()",
            t = self.table.quoted()
        )
    }

    /// Stores offsets (normally done by the sink inside its transaction).
    pub async fn store(
        &self,
        client: &Client,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), SinkError> {
        let (topics, parts, offs) = split(offsets);
        client
            .execute(
                &self.store_sql(),
                &[&self.connector, &topics, &parts, &offs],
            )
            .await
            .map_err(|e| SinkError::db(format!("storing offsets in {}", self.table), &e))?;
        Ok(())
    }

    pub(crate) fn connector(&self) -> &str {
        &self.connector
    }
}

pub(crate) fn split(offsets: &BTreeMap<TopicPartition, i64>) -> (Vec<&str>, Vec<i32>, Vec<i64>) {
    let topics = offsets.keys().map(|t| t.topic.as_str()).collect();
    let parts = offsets.keys().map(|t| t.partition).collect();
    let offs = offsets.values().copied().collect();
    (topics, parts, offs)
}
