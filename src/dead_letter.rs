//! Dead-lettering shared by the source and sink tasks: one place that
//! writes a failed record with Kafka Connect's error headers (through
//! kafka-io's [`ErrorReporter`], which honours `errors.tolerance` and
//! `errors.log.*`) and counts it in `pgcdc_dlq_records_total`.
//!
//! The sink task dead-letters the records the target rejects through
//! [`SinkBatchDeadLetters`], the [`jdbc_sink::DeadLetterSink`] of one
//! consumed batch: the sink awaits it before the `COMMIT` that stores
//! offsets past those records, so a crash can duplicate a DLQ record (the
//! batch is redone) but never lose one.

use std::sync::Arc;

use jdbc_sink::{DeadLetterFuture, DeadLetterSink};
use kafka_io::{Batch, ErrorContext, ErrorReporter, FailedRecord, Stage};

use crate::error::Result;
use crate::metrics::{DlqLabels, Metrics};

/// A connector's dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    reporter: Arc<ErrorReporter>,
    metrics: Arc<Metrics>,
    connector: String,
}

impl DeadLetters {
    /// The DLQ of `connector`.
    pub fn new(reporter: Arc<ErrorReporter>, metrics: Arc<Metrics>, connector: &str) -> Self {
        Self {
            reporter,
            metrics,
            connector: connector.to_string(),
        }
    }

    /// The reporter (e.g. for a producer that dead-letters delivery failures).
    pub fn reporter(&self) -> &Arc<ErrorReporter> {
        &self.reporter
    }

    /// Reports `record`, failed at `stage` in `executing_class` with `error`
    /// (`exception_class` for `__connect.errors.exception.class.name`). An
    /// error means the record could not be dead-lettered, or
    /// `errors.tolerance=none`: the task must stop.
    pub async fn send(
        &self,
        record: &FailedRecord,
        stage: Stage,
        executing_class: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        exception_class: &str,
    ) -> Result<()> {
        let ctx = ErrorContext {
            stage,
            executing_class,
            error,
            exception_class,
        };
        self.reporter.report(record, &ctx).await?;
        self.metrics
            .dlq_records
            .get_or_create(&DlqLabels {
                connector: self.connector.clone(),
                stage: stage.as_str().into(),
            })
            .inc();
        Ok(())
    }
}

/// `__connect.errors.class.name` of records the sink could not write.
pub const SINK_TASK_CLASS: &str = "io.debezium.connector.jdbc.JdbcSinkConnectorTask";

/// The dead-letter hook of one consumed batch: delivers the records the
/// sink failed (found by their position in the decoded records) to the DLQ
/// as they were in Kafka, awaiting each acknowledgement, before the sink's
/// transaction commits.
#[derive(Debug, Clone)]
pub struct SinkBatchDeadLetters {
    dlq: DeadLetters,
    batch: Arc<Batch>,
    origin: Arc<Vec<usize>>,
}

impl SinkBatchDeadLetters {
    /// The hook for `batch`, whose decoded record *i* (the index the sink
    /// reports) came from `batch.records[origin[i]]`.
    pub fn new(dlq: DeadLetters, batch: Arc<Batch>, origin: Vec<usize>) -> Self {
        Self {
            dlq,
            batch,
            origin: Arc::new(origin),
        }
    }
}

impl DeadLetterSink for SinkBatchDeadLetters {
    fn deliver<'a>(&'a self, failed: &'a [jdbc_sink::FailedRecord]) -> DeadLetterFuture<'a> {
        Box::pin(async move {
            for f in failed {
                let raw = self
                    .origin
                    .get(f.index)
                    .and_then(|&i| self.batch.records.get(i))
                    .filter(|r| {
                        r.topic == f.topic && r.partition == f.partition && r.offset == f.offset
                    })
                    .ok_or_else(|| {
                        format!(
                            "failed record {}/{}@{} (index {}) is not in the consumed batch",
                            f.topic, f.partition, f.offset, f.index
                        )
                    })?;
                let error = SinkFailure(f.error.message.clone());
                self.dlq
                    .send(
                        &raw.to_failed(),
                        Stage::TaskPut,
                        SINK_TASK_CLASS,
                        &error,
                        &f.error.class_name,
                    )
                    .await?;
            }
            Ok(())
        })
    }
}

/// A sink-side failure message, as an error for the DLQ context.
#[derive(Debug)]
struct SinkFailure(String);

impl std::fmt::Display for SinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SinkFailure {}
