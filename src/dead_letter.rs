//! Dead-lettering shared by the source and sink tasks: one place that
//! writes a failed record with Kafka Connect's error headers (through
//! kafka-io's [`ErrorReporter`], which honours `errors.tolerance` and
//! `errors.log.*`) and counts it in `pgcdc_dlq_records_total`.

use std::sync::Arc;

use kafka_io::{ErrorContext, ErrorReporter, FailedRecord, Stage};

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
