//! Kafka Connect-compatible error handling: `errors.tolerance`, error
//! logging, retries with exponential backoff and the dead-letter queue.
//!
//! [`ErrorReporter::report`] does what Kafka Connect's
//! `RetryWithToleranceOperator` + `LogReporter` + `DeadLetterQueueReporter`
//! do for a failed record:
//!
//! 1. `errors.log.enable=true` → an `ERROR` event via `tracing` naming the
//!    stage, class and record coordinates (with key and value when
//!    `errors.log.include.messages=true`);
//! 2. `errors.deadletterqueue.topic.name` set → the original key, value,
//!    headers and timestamp, byte for byte, to the DLQ topic, plus — when
//!    `errors.deadletterqueue.context.headers.enable=true` — the
//!    `__connect.errors.*` headers, UTF-8 strings in this order:
//!    `topic`, `partition`, `offset`, `connector.name`, `task.id`, `stage`,
//!    `class.name`, `exception.class.name`, `exception.message`,
//!    `exception.stacktrace` (a header already on the record is not
//!    duplicated, as in Kafka Connect);
//! 3. `errors.tolerance=none` → [`Error::ToleranceExceeded`]; `all` → `Ok`,
//!    the caller skips the record.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::message::{Header as RdHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::admin::TopicAdmin;
use crate::config::{ErrorHandling, KafkaConfig, Tolerance, TopicSpec};
use crate::error::{Error, Result};
use crate::producer::Header;

/// Prefix of Kafka Connect's error context headers.
pub const ERROR_HEADER_PREFIX: &str = "__connect.errors.";
/// `__connect.errors.topic`.
pub const HEADER_TOPIC: &str = "__connect.errors.topic";
/// `__connect.errors.partition`.
pub const HEADER_PARTITION: &str = "__connect.errors.partition";
/// `__connect.errors.offset`.
pub const HEADER_OFFSET: &str = "__connect.errors.offset";
/// `__connect.errors.connector.name`.
pub const HEADER_CONNECTOR_NAME: &str = "__connect.errors.connector.name";
/// `__connect.errors.task.id`.
pub const HEADER_TASK_ID: &str = "__connect.errors.task.id";
/// `__connect.errors.stage`.
pub const HEADER_STAGE: &str = "__connect.errors.stage";
/// `__connect.errors.class.name`.
pub const HEADER_CLASS_NAME: &str = "__connect.errors.class.name";
/// `__connect.errors.exception.class.name`.
pub const HEADER_EXCEPTION_CLASS: &str = "__connect.errors.exception.class.name";
/// `__connect.errors.exception.message`.
pub const HEADER_EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
/// `__connect.errors.exception.stacktrace`.
pub const HEADER_EXCEPTION_STACKTRACE: &str = "__connect.errors.exception.stacktrace";

/// Kafka Connect's processing stages (`Stage.name()` is the header value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// `KEY_CONVERTER`.
    KeyConverter,
    /// `VALUE_CONVERTER`.
    ValueConverter,
    /// `HEADER_CONVERTER`.
    HeaderConverter,
    /// `TRANSFORMATION`.
    Transformation,
    /// `TASK_PUT` (sink writes).
    TaskPut,
    /// `TASK_POLL` (source reads).
    TaskPoll,
    /// `KAFKA_PRODUCE`.
    KafkaProduce,
    /// `KAFKA_CONSUME`.
    KafkaConsume,
}

impl Stage {
    /// The Java enum constant name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
            Stage::KafkaConsume => "KAFKA_CONSUME",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record that failed, as it was (or would have been) in Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedRecord {
    /// Original topic (empty if the record never reached Kafka).
    pub topic: String,
    /// Original partition (-1 when unknown).
    pub partition: i32,
    /// Original offset (-1 when unknown).
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Timestamp in ms, if any (kept on the DLQ record).
    pub timestamp: Option<i64>,
}

/// What went wrong, for the log and the context headers.
#[derive(Debug)]
pub struct ErrorContext<'a> {
    /// The stage that failed.
    pub stage: Stage,
    /// The component that failed (`__connect.errors.class.name`).
    pub executing_class: &'a str,
    /// The error (`exception.message`; its `source()` chain goes into the stack trace).
    pub error: &'a (dyn std::error::Error + Send + Sync + 'static),
    /// `exception.class.name`; e.g. [`Error::class_name`] for this crate's errors.
    pub exception_class: &'a str,
}

/// A Java-`printStackTrace`-like rendering: `class: message` and a
/// `Caused by:` line per source.
pub fn stack_trace(exception_class: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{exception_class}: {error}\n");
    let mut cur = error.source();
    while let Some(e) = cur {
        out.push_str(&format!("Caused by: {e}\n"));
        cur = e.source();
    }
    out
}

/// Connect-style exponential backoff for `errors.retry.*`: 300 ms, doubling,
/// capped at `errors.retry.delay.max.ms`, until `errors.retry.timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total retry time; `None` = forever; zero = no retries.
    pub timeout: Option<Duration>,
    /// Largest delay between attempts.
    pub max_delay: Duration,
    /// First delay.
    pub initial_delay: Duration,
}

impl RetryPolicy {
    /// Kafka Connect's minimum retry delay.
    pub const INITIAL_DELAY: Duration = Duration::from_millis(300);

    /// From `errors.retry.timeout` / `errors.retry.delay.max.ms`.
    pub fn from_config(e: &ErrorHandling) -> Self {
        Self {
            timeout: e.retry_timeout,
            max_delay: e.retry_delay_max,
            initial_delay: Self::INITIAL_DELAY,
        }
    }

    /// Delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or the
    /// retry timeout is used up (the last error is returned).
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retriable() => return Err(e),
                Err(e) => {
                    attempt += 1;
                    let mut delay = self.delay(attempt);
                    if let Some(limit) = self.timeout {
                        let left = limit.saturating_sub(start.elapsed());
                        if left.is_zero() {
                            return Err(e);
                        }
                        delay = delay.min(left);
                    }
                    tracing::debug!(attempt, ?delay, error = %e, "retrying after a retriable error");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Writes failed records to a dead-letter queue topic.
pub struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
    context_headers: bool,
    connector_name: String,
    task_id: u32,
    written: AtomicU64,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("topic", &self.topic)
            .field("context_headers", &self.context_headers)
            .field("connector_name", &self.connector_name)
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

impl DeadLetterQueue {
    /// A DLQ writer for `topic`, creating the topic (1 partition, like Kafka
    /// Connect) when it does not exist.
    pub async fn new(
        config: &KafkaConfig,
        topic: &str,
        connector_name: &str,
        task_id: u32,
    ) -> Result<Self> {
        let admin = TopicAdmin::new(config)?;
        let rf = config.errors.dlq_replication_factor.map_or(-1, i32::from);
        admin
            .ensure_topic(&TopicSpec::new(topic).partitions(1).replication_factor(rf))
            .await?;
        crate::client::dispose("admin", admin);
        let mut pc = config.producer_config()?;
        // The DLQ must accept whatever the main producer rejected for size.
        let max = pc
            .get("message.max.bytes")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1_000_000)
            .max(1_000_000);
        pc.set("message.max.bytes", max.to_string());
        let producer = pc.create().map_err(Error::kafka("create DLQ producer"))?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            context_headers: config.errors.dlq_context_headers,
            connector_name: connector_name.to_string(),
            task_id,
            written: AtomicU64::new(0),
        })
    }

    /// The DLQ topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The headers Kafka Connect's `DeadLetterQueueReporter` would add.
    pub fn context_headers(
        &self,
        record: &FailedRecord,
        ctx: &ErrorContext<'_>,
    ) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (HEADER_TOPIC, record.topic.clone().into_bytes()),
            (HEADER_PARTITION, record.partition.to_string().into_bytes()),
            (HEADER_OFFSET, record.offset.to_string().into_bytes()),
            (
                HEADER_CONNECTOR_NAME,
                self.connector_name.clone().into_bytes(),
            ),
            (HEADER_TASK_ID, self.task_id.to_string().into_bytes()),
            (HEADER_STAGE, ctx.stage.as_str().as_bytes().to_vec()),
            (HEADER_CLASS_NAME, ctx.executing_class.as_bytes().to_vec()),
            (
                HEADER_EXCEPTION_CLASS,
                ctx.exception_class.as_bytes().to_vec(),
            ),
            (HEADER_EXCEPTION_MESSAGE, ctx.error.to_string().into_bytes()),
            (
                HEADER_EXCEPTION_STACKTRACE,
                stack_trace(ctx.exception_class, ctx.error).into_bytes(),
            ),
        ]
    }

    /// Writes `record` to the DLQ and waits for the broker's acknowledgement.
    pub async fn write(&self, record: &FailedRecord, ctx: &ErrorContext<'_>) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 10);
        for h in &record.headers {
            headers = headers.insert(RdHeader {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        if self.context_headers {
            for (k, v) in self.context_headers(record, ctx) {
                if record.headers.iter().any(|h| h.key == k) {
                    tracing::error!(
                        header = k,
                        "record already has this header; not overwritten"
                    );
                    continue;
                }
                headers = headers.insert(RdHeader {
                    key: k,
                    value: Some(&v[..]),
                });
            }
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = &record.key {
            fr = fr.key(&k[..]);
        }
        if let Some(v) = &record.value {
            fr = fr.payload(&v[..]);
        }
        if let Some(ts) = record.timestamp {
            fr = fr.timestamp(ts);
        }
        self.producer
            .send(fr, Duration::from_secs(60))
            .await
            .map_err(|(e, _)| Error::Delivery {
                seq: 0,
                topic: self.topic.clone(),
                code: e
                    .rdkafka_error_code()
                    .unwrap_or(rdkafka::error::RDKafkaErrorCode::Fail),
                message: format!("writing to the dead-letter queue: {e}"),
            })?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `errors.*` in one place: logging, DLQ and tolerance.
#[derive(Debug)]
pub struct ErrorReporter {
    config: ErrorHandling,
    dlq: Option<DeadLetterQueue>,
    connector_name: String,
    task_id: u32,
    failures: AtomicU64,
}

/// What the caller should do after [`ErrorReporter::report`] returned `Ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The record was written to the DLQ; skip it.
    DeadLettered,
    /// No DLQ configured; the record was logged (if enabled) and is skipped.
    Skipped,
}

impl ErrorReporter {
    /// Builds the reporter of `connector_name` / `task_id` (e.g. `dlq_source`
    /// or `dlq_sink` from the seed configs), creating the DLQ topic.
    pub async fn new(config: &KafkaConfig, connector_name: &str, task_id: u32) -> Result<Self> {
        let dlq = match &config.errors.dlq_topic {
            Some(topic) => {
                Some(DeadLetterQueue::new(config, topic, connector_name, task_id).await?)
            }
            None => None,
        };
        Ok(Self {
            config: config.errors.clone(),
            dlq,
            connector_name: connector_name.to_string(),
            task_id,
            failures: AtomicU64::new(0),
        })
    }

    /// The `errors.*` settings.
    pub fn config(&self) -> &ErrorHandling {
        &self.config
    }

    /// The DLQ writer, when `errors.deadletterqueue.topic.name` is set.
    pub fn dlq(&self) -> Option<&DeadLetterQueue> {
        self.dlq.as_ref()
    }

    /// Failed records reported so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The retry policy from `errors.retry.*`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::from_config(&self.config)
    }

    /// Logs, dead-letters and applies `errors.tolerance` to a failed record.
    /// `Ok` means "skip it and go on"; `Err` means "stop".
    pub async fn report(&self, record: &FailedRecord, ctx: &ErrorContext<'_>) -> Result<Handled> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.config.log_enable {
            if self.config.log_include_messages {
                tracing::error!(
                    connector = %self.connector_name, task = self.task_id,
                    stage = %ctx.stage, class = ctx.executing_class,
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    key = ?record.key.as_deref().map(String::from_utf8_lossy),
                    value = ?record.value.as_deref().map(String::from_utf8_lossy),
                    error = %ctx.error,
                    "Error encountered in task {}-{}. Executing stage '{}' with class '{}'",
                    self.connector_name, self.task_id, ctx.stage, ctx.executing_class
                );
            } else {
                tracing::error!(
                    connector = %self.connector_name, task = self.task_id,
                    stage = %ctx.stage, class = ctx.executing_class,
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    error = %ctx.error,
                    "Error encountered in task {}-{}. Executing stage '{}' with class '{}'",
                    self.connector_name, self.task_id, ctx.stage, ctx.executing_class
                );
            }
        }
        let mut handled = Handled::Skipped;
        if let Some(dlq) = &self.dlq {
            let policy = self.retry_policy();
            policy.run(|| dlq.write(record, ctx)).await?;
            handled = Handled::DeadLettered;
        }
        match self.config.tolerance {
            Tolerance::All => Ok(handled),
            Tolerance::None => Err(Error::ToleranceExceeded {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                stage: ctx.stage.as_str().to_string(),
                reason: ctx.error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            timeout: Some(Duration::from_secs(10)),
            max_delay: Duration::from_secs(2),
            initial_delay: RetryPolicy::INITIAL_DELAY,
        };
        let d: Vec<u128> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, [300, 600, 1200, 2000, 2000, 2000]);
        assert_eq!(p.delay(100), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_timeout_then_fails() {
        let p = RetryPolicy {
            timeout: Some(Duration::from_secs(5)),
            max_delay: Duration::from_secs(1),
            initial_delay: RetryPolicy::INITIAL_DELAY,
        };
        let mut calls = 0;
        let start = tokio::time::Instant::now();
        let r: Result<()> = p
            .run(|| {
                calls += 1;
                async {
                    Err(Error::Timeout {
                        operation: "x",
                        after: Duration::ZERO,
                    })
                }
            })
            .await;
        assert!(r.is_err());
        assert!(calls > 3, "{calls}");
        assert!(start.elapsed() <= Duration::from_secs(6));

        let mut calls = 0;
        let r: Result<()> = p
            .run(|| {
                calls += 1;
                async {
                    Err(Error::Closed {
                        component: "non-retriable",
                    })
                }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "non-retriable errors are not retried");
    }

    #[test]
    fn stage_names() {
        assert_eq!(Stage::KafkaProduce.as_str(), "KAFKA_PRODUCE");
        assert_eq!(Stage::TaskPut.to_string(), "TASK_PUT");
    }
}
