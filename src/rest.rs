//! A small HTTP endpoint with the Kafka Connect REST paths Debezium users
//! already script against, plus Prometheus metrics:
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | worker info |
//! | `GET /connectors` | names |
//! | `GET /connectors/<name>/status` | state (`RUNNING`, `PAUSED`, `FAILED` + trace) |
//! | `PUT /connectors/<name>/pause`, `…/resume` | 202 |
//! | `GET /connector-plugins` | the two connector classes pg-cdc implements |
//! | `GET /metrics` | Prometheus / OpenMetrics text |

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;
use crate::status::StatusBoard;

/// Connector classes pg-cdc accepts in `connector.class`.
pub const SOURCE_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";
/// The sink connector class.
pub const SINK_CLASS: &str = "io.debezium.connector.jdbc.JdbcSinkConnector";

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, board: StatusBoard, metrics: Arc<Metrics>) {
    if let Ok(addr) = listener.local_addr() {
        board.set_worker_id(addr.to_string());
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let board = board.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &board, &metrics).await {
                tracing::debug!(error = %e, "REST request failed");
            }
        });
    }
}

/// Binds `addr` and serves in a background task; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    board: StatusBoard,
    metrics: Arc<Metrics>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, board, metrics));
    Ok(local)
}

async fn handle(
    mut stream: TcpStream,
    board: &StatusBoard,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the request head (we ignore bodies); cap at 16 KiB.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (status, content_type, body) = route(method, &segments, board, metrics);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

const JSON: &str = "application/json";

fn not_found(what: &str) -> (&'static str, &'static str, String) {
    (
        "404 Not Found",
        JSON,
        json!({"error_code": 404, "message": what}).to_string(),
    )
}

fn route(
    method: &str,
    segments: &[&str],
    board: &StatusBoard,
    metrics: &Metrics,
) -> (&'static str, &'static str, String) {
    match (method, segments) {
        ("GET", []) => (
            "200 OK",
            JSON,
            json!({"version": env!("CARGO_PKG_VERSION"), "commit": "pg-cdc", "kafka_cluster_id": null}).to_string(),
        ),
        ("GET", ["metrics"]) => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.render())
        }
        ("GET", ["connectors"]) => ("200 OK", JSON, json!(board.names()).to_string()),
        ("GET", ["connector-plugins"]) => (
            "200 OK",
            JSON,
            json!([
                {"class": SINK_CLASS, "type": "sink", "version": env!("CARGO_PKG_VERSION")},
                {"class": SOURCE_CLASS, "type": "source", "version": env!("CARGO_PKG_VERSION")},
            ])
            .to_string(),
        ),
        ("GET", ["connectors", name, "status"]) => match board.status_json(name) {
            Some(s) => ("200 OK", JSON, s.to_string()),
            None => not_found(&format!("Connector {name} not found")),
        },
        ("PUT", ["connectors", name, action @ ("pause" | "resume")]) => {
            if board.set_paused(name, *action == "pause") {
                ("202 Accepted", JSON, String::new())
            } else {
                not_found(&format!("Connector {name} not found"))
            }
        }
        _ => not_found("Unknown endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ConnectorKind, ConnectorState};

    async fn get(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn serves_connect_rest_paths_and_metrics() -> std::io::Result<()> {
        let board = StatusBoard::new();
        let metrics = Metrics::new();
        let _pause = board.register("pg-source-connector", ConnectorKind::Source);
        board.set("pg-source-connector", ConnectorState::Running);
        metrics.event("pg-source-connector", "public.employees", "c");
        let addr = spawn(([127, 0, 0, 1], 0).into(), board.clone(), metrics).await?;

        let status = get(addr, "GET", "/connectors/pg-source-connector/status").await?;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert!(status.contains(r#""state":"RUNNING""#), "{status}");
        let listed = get(addr, "GET", "/connectors").await?;
        assert!(listed.ends_with(r#"["pg-source-connector"]"#), "{listed}");
        let paused = get(addr, "PUT", "/connectors/pg-source-connector/pause").await?;
        assert!(paused.starts_with("HTTP/1.1 202"), "{paused}");
        assert_eq!(
            board.state("pg-source-connector"),
            Some(ConnectorState::Paused)
        );
        let metrics = get(addr, "GET", "/metrics").await?;
        assert!(metrics.contains("pgcdc_events_total"), "{metrics}");
        let missing = get(addr, "GET", "/connectors/nope/status").await?;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let plugins = get(addr, "GET", "/connector-plugins").await?;
        assert!(
            plugins.contains(SOURCE_CLASS) && plugins.contains(SINK_CLASS),
            "{plugins}"
        );
        Ok(())
    }
}
