//! Connector states, as Kafka Connect reports them (`RUNNING`, `PAUSED`,
//! `FAILED` with a trace, `UNASSIGNED`), and the pause switch the connector
//! tasks obey.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::{json, Value as Json};
use tokio::sync::watch;

/// What a connector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    /// PostgreSQL → Kafka.
    Source,
    /// Kafka → PostgreSQL.
    Sink,
}

impl ConnectorKind {
    /// `source` / `sink`, as Kafka Connect's REST API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        }
    }
}

/// A connector's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorState {
    /// Created, not started yet (or restarting).
    Unassigned,
    /// Working.
    Running,
    /// Paused by the user; resumes where it stopped.
    Paused,
    /// Stopped by an error it cannot handle; the message says what to do.
    Failed(String),
}

impl ConnectorState {
    /// Kafka Connect's state name.
    pub fn name(&self) -> &'static str {
        match self {
            ConnectorState::Unassigned => "UNASSIGNED",
            ConnectorState::Running => "RUNNING",
            ConnectorState::Paused => "PAUSED",
            ConnectorState::Failed(_) => "FAILED",
        }
    }
}

#[derive(Debug)]
struct Entry {
    kind: ConnectorKind,
    state: ConnectorState,
    pause: watch::Sender<bool>,
}

/// The states of all connectors of this process.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
    worker_id: Arc<RwLock<String>>,
}

impl StatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `worker_id` reported (the REST address).
    pub fn set_worker_id(&self, id: impl Into<String>) {
        if let Ok(mut w) = self.worker_id.write() {
            *w = id.into();
        }
    }

    /// Registers a connector (state `UNASSIGNED`) and returns the receiver of
    /// its pause switch (`true` = paused).
    pub fn register(&self, name: &str, kind: ConnectorKind) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Ok(mut map) = self.inner.write() {
            map.insert(
                name.to_string(),
                Entry {
                    kind,
                    state: ConnectorState::Unassigned,
                    pause: tx,
                },
            );
        }
        rx
    }

    /// Records a state change.
    pub fn set(&self, name: &str, state: ConnectorState) {
        if let Ok(mut map) = self.inner.write() {
            if let Some(e) = map.get_mut(name) {
                e.state = state;
            }
        }
    }

    /// The state of one connector.
    pub fn state(&self, name: &str) -> Option<ConnectorState> {
        self.inner.read().ok()?.get(name).map(|e| e.state.clone())
    }

    /// Connector names.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Pauses (`true`) or resumes (`false`) a connector. Returns false if unknown.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let Ok(mut map) = self.inner.write() else {
            return false;
        };
        let Some(e) = map.get_mut(name) else {
            return false;
        };
        let _ = e.pause.send(paused);
        match (&e.state, paused) {
            (ConnectorState::Running, true) => e.state = ConnectorState::Paused,
            (ConnectorState::Paused, false) => e.state = ConnectorState::Running,
            _ => {}
        }
        true
    }

    /// Kafka Connect's `GET /connectors/<name>/status` document.
    pub fn status_json(&self, name: &str) -> Option<Json> {
        let map = self.inner.read().ok()?;
        let e = map.get(name)?;
        let worker = self.worker_id.read().map(|w| w.clone()).unwrap_or_default();
        let mut task = json!({"id": 0, "state": e.state.name(), "worker_id": worker});
        if let ConnectorState::Failed(trace) = &e.state {
            task["trace"] = Json::String(trace.clone());
        }
        // The connector itself is RUNNING unless paused; failures show on the task,
        // as in Kafka Connect.
        let connector_state = match e.state {
            ConnectorState::Paused => "PAUSED",
            ConnectorState::Unassigned => "UNASSIGNED",
            _ => "RUNNING",
        };
        Some(json!({
            "name": name,
            "connector": {"state": connector_state, "worker_id": worker},
            "tasks": [task],
            "type": e.kind.as_str(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_task_carries_trace_and_pause_switch_flips() {
        let board = StatusBoard::new();
        let mut pause = board.register("src", ConnectorKind::Source);
        board.set("src", ConnectorState::Running);
        assert!(board.set_paused("src", true));
        assert!(*pause.borrow_and_update());
        assert_eq!(board.state("src"), Some(ConnectorState::Paused));
        assert!(board.set_paused("src", false));
        assert_eq!(board.state("src"), Some(ConnectorState::Running));
        board.set(
            "src",
            ConnectorState::Failed("slot is active for PID 7".into()),
        );
        let s = board.status_json("src").expect("known connector");
        assert_eq!(s["tasks"][0]["state"], "FAILED");
        assert_eq!(s["tasks"][0]["trace"], "slot is active for PID 7");
        assert_eq!(s["type"], "source");
        assert!(board.status_json("nope").is_none());
        assert!(!board.set_paused("nope", true));
    }
}
