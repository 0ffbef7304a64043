//! Server checks and replication-slot management.
//!
//! Every failure a Debezium user has met on a slot gets its own typed error
//! that says what to do: `wal_level` not logical, a user without
//! `REPLICATION`, a slot held by another walsender ("slot is active for PID
//! n": who holds it and how to free it), a slot PostgreSQL invalidated
//! (`wal_status = 'lost'`), a slot of another plugin or database.

use std::time::Duration;

use cdc_envelope::Lsn;
use pgwire_replication::{PgWireError, ReplicationClient, ReplicationConfig};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::source::catalog::{quote_ident, sql_error};
use crate::source::config::SourceConfig;
use crate::source::tls::tls_config;

/// `pg_replication_slots` for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot name.
    pub name: String,
    /// Output plugin (`None` for physical slots).
    pub plugin: Option<String>,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// PID of the walsender using it, if any.
    pub active_pid: Option<i32>,
    /// `confirmed_flush_lsn`: where streaming resumes.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `restart_lsn`.
    pub restart_lsn: Option<Lsn>,
    /// `wal_status`: `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

fn parse_lsn(s: Option<String>) -> Option<Lsn> {
    s.and_then(|s| s.parse().ok())
}

/// Checks `wal_level` and the user's replication privilege.
pub async fn check_server(client: &Client, cfg: &SourceConfig) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), \
             coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false)",
            &[],
        )
        .await
        .map_err(sql_error("checking wal_level and privileges"))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(Error::WalLevelNotLogical { actual: wal_level });
    }
    if !row.get::<_, bool>(1) {
        return Err(Error::MissingReplicationPrivilege {
            user: cfg.user.clone(),
        });
    }
    Ok(())
}

/// The slot's row in `pg_replication_slots`, if it exists.
pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>> {
    let row = client
        .query_opt(
            "SELECT slot_name::text, plugin::text, slot_type, database::text, active_pid, \
             confirmed_flush_lsn::text, restart_lsn::text, wal_status \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(sql_error(format!("reading replication slot {slot}")))?;
    Ok(row.map(|r| SlotInfo {
        name: r.get(0),
        plugin: r.get(1),
        slot_type: r.get(2),
        database: r.get(3),
        active_pid: r.get(4),
        confirmed_flush_lsn: parse_lsn(r.get(5)),
        restart_lsn: parse_lsn(r.get(6)),
        wal_status: r.get(7),
    }))
}

/// Rejects slots this connector cannot stream from.
pub fn check_slot(info: &SlotInfo, cfg: &SourceConfig) -> Result<()> {
    if info.wal_status.as_deref() == Some("lost") {
        return Err(Error::SlotInvalidated {
            slot: info.name.clone(),
            wal_status: "lost".into(),
        });
    }
    if info.slot_type != "logical" {
        return Err(Error::SlotUnusable {
            slot: info.name.clone(),
            detail: format!("it is a {} slot; choose another slot.name", info.slot_type),
        });
    }
    if info.plugin.as_deref() != Some("pgoutput") {
        return Err(Error::SlotUnusable {
            slot: info.name.clone(),
            detail: format!(
                "it uses output plugin {:?}, this connector needs pgoutput; drop it or choose another slot.name",
                info.plugin.as_deref().unwrap_or("")
            ),
        });
    }
    if info.database.as_deref() != Some(cfg.dbname.as_str()) {
        return Err(Error::SlotUnusable {
            slot: info.name.clone(),
            detail: format!(
                "it belongs to database {:?}, not {:?}; choose another slot.name",
                info.database.as_deref().unwrap_or(""),
                cfg.dbname
            ),
        });
    }
    Ok(())
}

/// Describes the session with PID `pid` (application, client, start time).
pub async fn describe_backend(client: &Client, pid: i32) -> String {
    let row = client
        .query_opt(
            "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), \
             coalesce(usename::text, ''), coalesce(backend_start::text, '') \
             FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await;
    match row {
        Ok(Some(r)) => format!(
            "application_name {:?}, user {:?}, client {}, connected since {}",
            r.get::<_, String>(0),
            r.get::<_, String>(2),
            r.get::<_, String>(1),
            r.get::<_, String>(3)
        ),
        _ => "session details unavailable".to_owned(),
    }
}

/// Fails with [`Error::SlotInUse`] while another session holds the slot,
/// retrying `slot.max.retries` times `slot.retry.delay.ms` apart.
pub async fn wait_until_free(client: &Client, cfg: &SourceConfig) -> Result<Option<SlotInfo>> {
    let mut attempt = 0;
    loop {
        let info = slot_info(client, &cfg.slot_name).await?;
        let Some(pid) = info.as_ref().and_then(|i| i.active_pid) else {
            return Ok(info);
        };
        if attempt >= cfg.slot_max_retries {
            return Err(Error::SlotInUse {
                slot: cfg.slot_name.clone(),
                pid,
                holder: describe_backend(client, pid).await,
            });
        }
        attempt += 1;
        tracing::warn!(
            slot = %cfg.slot_name,
            pid,
            attempt,
            max = cfg.slot_max_retries,
            "replication slot is active for another process; retrying"
        );
        tokio::time::sleep(cfg.slot_retry_delay).await;
    }
}

/// Drops the slot (waiting briefly for a walsender that is exiting).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<()> {
    for _ in 0..50 {
        let res = client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await
            .map_err(sql_error(format!("dropping replication slot {slot}")))?;
        if res > 0 || slot_info(client, slot).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::SlotUnusable {
        slot: slot.to_owned(),
        detail: "still active; could not drop it".into(),
    })
}

/// Moves the slot's `confirmed_flush_lsn` to `lsn` (never backwards) once
/// no walsender holds it; best effort, retried for about two seconds.
pub async fn advance_slot(client: &Client, slot: &str, lsn: Lsn) {
    let target = lsn.to_string();
    for _ in 0..20 {
        let res = client
            .query_opt(
                "SELECT pg_replication_slot_advance(slot_name, $2::text::pg_lsn) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active AND confirmed_flush_lsn < $2::text::pg_lsn",
                &[&slot, &target],
            )
            .await;
        match res {
            Ok(_) => {
                let active: Option<bool> = client
                    .query_opt(
                        "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.get(0));
                if active != Some(true) {
                    return;
                }
            }
            Err(e) => tracing::debug!("advancing slot {slot}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replication connection's configuration: pinned text formats,
/// `status.update.interval.ms`, TLS, resume from the slot's position.
pub fn replication_config(cfg: &SourceConfig, ack_lsn: Option<Lsn>) -> ReplicationConfig {
    let mut rc = ReplicationConfig::new(
        cfg.hostname.clone(),
        cfg.user.clone(),
        cfg.password.expose().to_owned(),
        cfg.dbname.clone(),
        cfg.slot_name.clone(),
        cfg.publication_name.clone(),
    )
    .with_port(cfg.port)
    .with_tls(tls_config(cfg))
    .with_options(SourceConfig::session_options())
    .with_status_interval(cfg.status_update_interval.max(Duration::from_millis(100)))
    .with_wakeup_interval(Duration::from_secs(1))
    // Raw WAL messages read ahead of the decoder. The decoded events have
    // their own queue of `max.queue.size`; a second queue as long only
    // doubles the memory held when the consumer is slower than the server.
    .with_buffer_size(cfg.max_queue_size.clamp(64, 1024))
    .with_application_name(format!("pg-cdc {}", cfg.topic_prefix));
    if let Some(lsn) = ack_lsn.filter(|l| l.0 != 0) {
        rc = rc.with_ack_lsn(pgwire_replication::Lsn(lsn.0));
    }
    rc
}

/// [`wire_error`] for errors of a replication connection opened with
/// `cfg`: TLS and authentication failures become [`Error::Tls`] /
/// [`Error::Authentication`] with what to do.
pub fn wire_connect_error(e: PgWireError, cfg: &SourceConfig) -> Error {
    match e {
        PgWireError::Tls(detail) => crate::source::tls::tls_error("replication", cfg, detail),
        e => wire_error(e, &cfg.slot_name),
    }
}

/// Maps a replication-protocol error to a typed error, recognising the
/// server's slot errors.
pub fn wire_error(e: PgWireError, slot: &str) -> Error {
    match e {
        PgWireError::Auth(detail) => {
            return Error::Authentication {
                connection: "replication",
                detail,
            }
        }
        PgWireError::Server(detail)
            if detail.contains("28P01")
                || detail.contains("password authentication failed")
                || detail.contains("no pg_hba.conf entry") =>
        {
            return Error::Authentication {
                connection: "replication",
                detail,
            }
        }
        _ => {}
    }
    let text = e.to_string();
    if let Some(rest) = text.split("is active for PID ").nth(1) {
        let pid = rest
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        return Error::SlotInUse {
            slot: slot.to_owned(),
            pid,
            holder: "another walsender".into(),
        };
    }
    if text.contains("can no longer get changes")
        || text.contains("has been invalidated")
        || text.contains("can no longer be used")
    {
        return Error::SlotInvalidated {
            slot: slot.to_owned(),
            wal_status: "lost".into(),
        };
    }
    if text.contains("does not exist") && text.contains("replication slot") {
        return Error::SlotUnusable {
            slot: slot.to_owned(),
            detail: format!("{text}; it was dropped while in use"),
        };
    }
    if text.contains("must be superuser or replication role")
        || text.contains("permission denied to start WAL sender")
    {
        return Error::Replication {
            detail: format!("{text}: grant REPLICATION to the user"),
            retriable: false,
        };
    }
    let retriable = e.is_transient()
        || text.contains("terminating connection")
        || text.contains("the database system is")
        || text.contains("57P0");
    Error::Replication {
        detail: text,
        retriable,
    }
}

/// A slot just created with an exported snapshot: the gated replication
/// session must stay open, and not start, until every snapshot reader has
/// imported `snapshot_name`.
pub struct CreatedSlot {
    /// The gated session that created the slot; [`ReplicationClient::start`]
    /// then streams from `consistent_point`.
    pub client: ReplicationClient,
    /// The slot's consistent point: the snapshot holds exactly the
    /// transactions committed before it, the stream exactly those after.
    pub consistent_point: Lsn,
    /// Name of the exported snapshot.
    pub snapshot_name: Option<String>,
}

impl std::fmt::Debug for CreatedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSlot")
            .field("consistent_point", &self.consistent_point)
            .field("snapshot_name", &self.snapshot_name)
            .finish_non_exhaustive()
    }
}

/// Creates the slot on a gated replication session, exporting its snapshot
/// when `export` is set (`SNAPSHOT 'export'`, else `'nothing'`).
pub async fn create_slot(cfg: &SourceConfig, export: bool) -> Result<CreatedSlot> {
    let mut client = ReplicationClient::connect_gated(replication_config(cfg, None))
        .await
        .map_err(|e| wire_connect_error(e, cfg))?;
    let sql = format!(
        "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT '{}')",
        quote_ident(&cfg.slot_name),
        if export { "export" } else { "nothing" }
    );
    let rows = client
        .simple_query(&sql)
        .await
        .map_err(|e| wire_connect_error(e, cfg))?;
    let row = rows.into_iter().next().ok_or_else(|| Error::Replication {
        detail: "CREATE_REPLICATION_SLOT returned no row".into(),
        retriable: false,
    })?;
    let text = |i: usize| -> Option<String> {
        row.get(i)
            .and_then(|c| c.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent_point: Lsn =
        text(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Replication {
                detail: "CREATE_REPLICATION_SLOT: no consistent point".into(),
                retriable: false,
            })?;
    Ok(CreatedSlot {
        client,
        consistent_point,
        snapshot_name: text(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_in_use_is_recognised() {
        let e = wire_error(
            PgWireError::Server(
                "ERROR: replication slot \"s\" is active for PID 4242 (SQLSTATE 55006)".into(),
            ),
            "s",
        );
        assert_eq!(
            e,
            Error::SlotInUse {
                slot: "s".into(),
                pid: 4242,
                holder: "another walsender".into()
            }
        );
        assert!(e.to_string().contains("pg_terminate_backend(4242)"));
        let e = wire_error(
            PgWireError::Io(std::sync::Arc::new(std::io::Error::other("reset"))),
            "s",
        );
        assert!(e.is_retriable());
    }
}
