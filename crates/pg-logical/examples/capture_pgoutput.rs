//! Records raw pgoutput messages from a live replication slot over the
//! streaming replication protocol (pgwire-replication), one hex-encoded
//! message per line — the format of `tests/fixtures/*/*.hex` — and checks
//! that each one decodes.
//!
//! The committed fixtures are captured with `pg_logical_slot_get_binary_changes`
//! (see `tests/fixtures/regenerate.sh`), which returns the very bytes the
//! walsender puts in each XLogData message and also covers protocol versions
//! 2–4. This helper captures the same bytes through the replication protocol
//! the source uses. pgwire-replication decodes Begin, Commit and logical
//! Message itself; they are re-encoded here from its events. On PostgreSQL 15
//! a capture made this way was byte-for-byte identical to the SQL-interface
//! capture of a second slot over the same changes.
//!
//! ```text
//! PGHOST=/tmp/pg PGPORT=56115 SLOT=s PUBLICATION=pub STOP_LSN=0/1E00000 OUT=capture.hex \
//!   cargo run -p pg-logical --example capture_pgoutput
//! ```
#![allow(clippy::print_stdout)]

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use pg_logical::Decoder;
use pgwire_replication::{
    client::ReplicationEvent, Lsn, ReplicationClient, ReplicationConfig, TlsConfig,
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// pgwire-replication reports commit times as sent: µs since 2000-01-01.
fn pg_time(micros: i64) -> i64 {
    micros
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stop =
        Lsn::parse(&env("STOP_LSN", "")).map_err(|e| format!("STOP_LSN (X/X) required: {e}"))?;
    let mut cfg = ReplicationConfig::new(
        env("PGHOST", "127.0.0.1"),
        env("PGUSER", "postgres"),
        env("PGPASSWORD", ""),
        env("PGDATABASE", "postgres"),
        env("SLOT", "capture"),
        env("PUBLICATION", "pub"),
    )
    .with_port(env("PGPORT", "5432").parse()?)
    .with_tls(TlsConfig::disabled())
    .with_start_lsn(Lsn::ZERO)
    .with_stop_lsn(stop);
    cfg.options = Some(
        "-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC -c extra_float_digits=3".into(),
    );

    let mut out = std::fs::File::create(env("OUT", "capture.hex"))?;
    let mut client = ReplicationClient::connect(cfg).await?;
    let mut decoder = Decoder::new();
    let mut n = 0usize;
    while let Some(ev) = client.recv().await? {
        let raw: Bytes = match ev {
            ReplicationEvent::XLogData { data, .. } => data,
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                let mut b = BytesMut::new();
                b.put_u8(b'B');
                b.put_u64(final_lsn.as_u64());
                b.put_i64(pg_time(commit_time_micros));
                b.put_u32(xid);
                b.freeze()
            }
            ReplicationEvent::Commit {
                lsn,
                end_lsn,
                commit_time_micros,
            } => {
                let mut b = BytesMut::new();
                b.put_u8(b'C');
                b.put_u8(0);
                b.put_u64(lsn.as_u64());
                b.put_u64(end_lsn.as_u64());
                b.put_i64(pg_time(commit_time_micros));
                client.update_applied_lsn(end_lsn);
                b.freeze()
            }
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                let mut b = BytesMut::new();
                b.put_u8(b'M');
                b.put_u8(u8::from(transactional));
                b.put_u64(lsn.as_u64());
                b.put_slice(prefix.as_bytes());
                b.put_u8(0);
                b.put_u32(u32::try_from(content.len())?);
                b.put_slice(&content);
                b.freeze()
            }
            ReplicationEvent::StoppedAt { .. } => break,
            _ => continue,
        };
        decoder.decode(raw.clone())?;
        writeln!(out, "{}", hex(&raw))?;
        n += 1;
    }
    println!("captured {n} messages up to {stop}");
    Ok(())
}
