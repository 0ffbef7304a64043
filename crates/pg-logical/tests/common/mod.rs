//! Shared test helpers: fixture loading, a test-only pgoutput encoder, and a
//! canonical rendering of values that matches `fixtures/expected_types.sql`.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};
use cdc_envelope::{Date, Numeric, Timestamp, Value};
use pg_logical::*;

pub fn fixture_dir(label: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(label)
}

/// Fixture directories present (`pg15`, `pg17`, …).
pub fn labels() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pg"))
        .collect();
    out.sort();
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// One message per line, hex-encoded.
pub fn load_messages(label: &str, name: &str) -> Option<Vec<Bytes>> {
    let text = std::fs::read_to_string(fixture_dir(label).join(format!("{name}.hex"))).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| Bytes::from(unhex(l.trim())))
            .collect(),
    )
}

/// The user-defined types as the source would load them from the catalog.
pub fn registry(label: &str) -> TypeRegistry {
    let text = std::fs::read_to_string(fixture_dir(label).join("catalog.tsv")).unwrap();
    let mut reg = TypeRegistry::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let oid: u32 = f[0].parse().unwrap();
        let kind = match (f[3], f[6]) {
            ("e", _) => TypeInfoKind::Enum {
                labels: f[7].split(',').map(str::to_owned).collect(),
            },
            ("d", _) => TypeInfoKind::Domain {
                base_oid: f[4].parse().unwrap(),
                base_modifier: f[5].parse().unwrap(),
            },
            ("c", _) => TypeInfoKind::Composite,
            ("b", elem) if elem != "0" => TypeInfoKind::Array {
                element_oid: elem.parse().unwrap(),
            },
            _ => TypeInfoKind::Base,
        };
        reg.insert_type(TypeInfo {
            oid,
            namespace: f[1].into(),
            name: f[2].into(),
            kind,
        });
    }
    reg
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn numeric(n: &Numeric) -> String {
    match n {
        Numeric::NaN => "NaN".into(),
        Numeric::PosInfinity => "Infinity".into(),
        Numeric::NegInfinity => "-Infinity".into(),
        Numeric::Finite(d) => d.as_str().into(),
        #[allow(unreachable_patterns)]
        _ => unreachable!(),
    }
}

fn ts(t: &Timestamp) -> String {
    match t {
        Timestamp::PgMicros(_) => t.micros_since_unix_i128().unwrap_or_default().to_string(),
        Timestamp::PosInfinity => "infinity".into(),
        Timestamp::NegInfinity => "-infinity".into(),
    }
}

/// The canonical form `expected_types.sql` computes in SQL.
pub fn canon(v: &Value) -> String {
    canon_in(v, "<NULL>")
}

fn canon_in(v: &Value, null: &str) -> String {
    match v {
        Value::Null => null.into(),
        Value::Unavailable => "<UNAVAILABLE>".into(),
        Value::Bool(b) => (if *b { "t" } else { "f" }).into(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => format!("{:08x}", f.to_bits()),
        Value::Float64(f) => format!("{:016x}", f.to_bits()),
        Value::Numeric(n) | Value::Money(n) => numeric(n),
        Value::Text(s) | Value::Json(s) | Value::Xml(s) | Value::Enum(s) => s.to_string(),
        Value::Bytes(b) => hex(b),
        Value::Date(Date::Days(d)) => d.to_string(),
        Value::Date(Date::PosInfinity) => "infinity".into(),
        Value::Date(Date::NegInfinity) => "-infinity".into(),
        Value::Time(t) => t.to_string(),
        Value::TimeTz {
            micros,
            offset_seconds,
        } => format!("{micros}@{offset_seconds}"),
        Value::Timestamp(t) | Value::TimestampTz(t) => ts(t),
        Value::Interval(i) => format!("{}/{}/{}", i.months, i.days, i.micros),
        Value::Uuid(u) => hex(u),
        Value::Bits(b) => (0..b.len as usize)
            .map(|i| {
                if b.data[i / 8] & (0x80 >> (i % 8)) != 0 {
                    '1'
                } else {
                    '0'
                }
            })
            .collect(),
        Value::Array(a) => {
            let dims: String = a
                .dims
                .iter()
                .map(|d| format!("[{}:{}]", d.lower_bound, d.lower_bound + d.len as i32 - 1))
                .collect();
            let elems: Vec<String> = a.elements.iter().map(|e| canon_in(e, "NULL")).collect();
            format!("{dims}={}", elems.join("|"))
        }
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------- encoder

fn cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

fn tuple(out: &mut BytesMut, t: &TupleData) {
    out.put_i16(t.len() as i16);
    out.put_slice(t.raw());
}

fn xid(out: &mut BytesMut, x: Option<u32>) {
    if let Some(x) = x {
        out.put_u32(x);
    }
}

fn old(out: &mut BytesMut, o: &OldTuple) {
    out.put_u8(match o.kind {
        OldTupleKind::Key => b'K',
        OldTupleKind::Full => b'O',
    });
    tuple(out, &o.data);
}

/// Encodes a message as pgoutput would (test-only; the inverse of the decoder).
pub fn encode(msg: &PgOutputMessage) -> Bytes {
    let mut o = BytesMut::new();
    o.put_u8(msg.tag());
    let ts = |t: i64| unix_to_pg_micros(t);
    match msg {
        PgOutputMessage::Begin(m) => {
            o.put_u64(m.final_lsn.0);
            o.put_i64(ts(m.commit_time));
            o.put_u32(m.xid);
        }
        PgOutputMessage::Commit(m) => {
            o.put_u8(m.flags);
            o.put_u64(m.commit_lsn.0);
            o.put_u64(m.end_lsn.0);
            o.put_i64(ts(m.commit_time));
        }
        PgOutputMessage::Origin(m) => {
            o.put_u64(m.commit_lsn.0);
            cstr(&mut o, &m.name);
        }
        PgOutputMessage::Relation(m) => {
            xid(&mut o, m.xid);
            o.put_u32(m.oid);
            cstr(&mut o, &m.namespace);
            cstr(&mut o, &m.name);
            o.put_u8(m.replica_identity.as_byte());
            o.put_i16(m.columns.len() as i16);
            for c in &m.columns {
                o.put_u8(c.flags);
                cstr(&mut o, &c.name);
                o.put_u32(c.type_oid);
                o.put_i32(c.type_modifier);
            }
        }
        PgOutputMessage::Type(m) => {
            xid(&mut o, m.xid);
            o.put_u32(m.oid);
            cstr(&mut o, &m.namespace);
            cstr(&mut o, &m.name);
        }
        PgOutputMessage::Insert(m) => {
            xid(&mut o, m.xid);
            o.put_u32(m.relation_oid);
            o.put_u8(b'N');
            tuple(&mut o, &m.new);
        }
        PgOutputMessage::Update(m) => {
            xid(&mut o, m.xid);
            o.put_u32(m.relation_oid);
            if let Some(old_t) = &m.old {
                old(&mut o, old_t);
            }
            o.put_u8(b'N');
            tuple(&mut o, &m.new);
        }
        PgOutputMessage::Delete(m) => {
            xid(&mut o, m.xid);
            o.put_u32(m.relation_oid);
            old(&mut o, &m.old);
        }
        PgOutputMessage::Truncate(m) => {
            xid(&mut o, m.xid);
            o.put_i32(m.relation_oids.len() as i32);
            o.put_u8(m.options);
            for r in &m.relation_oids {
                o.put_u32(*r);
            }
        }
        PgOutputMessage::Message(m) => {
            xid(&mut o, m.xid);
            o.put_u8(m.flags);
            o.put_u64(m.lsn.0);
            cstr(&mut o, &m.prefix);
            o.put_i32(m.content.len() as i32);
            o.put_slice(&m.content);
        }
        PgOutputMessage::StreamStart(m) => {
            o.put_u32(m.xid);
            o.put_u8(u8::from(m.first_segment));
        }
        PgOutputMessage::StreamStop => {}
        PgOutputMessage::StreamCommit(m) => {
            o.put_u32(m.xid);
            o.put_u8(m.flags);
            o.put_u64(m.commit_lsn.0);
            o.put_u64(m.end_lsn.0);
            o.put_i64(ts(m.commit_time));
        }
        PgOutputMessage::StreamAbort(m) => {
            o.put_u32(m.xid);
            o.put_u32(m.subxid);
            if let (Some(l), Some(t)) = (m.abort_lsn, m.abort_time) {
                o.put_u64(l.0);
                o.put_i64(ts(t));
            }
        }
        PgOutputMessage::BeginPrepare(m) => {
            o.put_u64(m.prepare_lsn.0);
            o.put_u64(m.end_lsn.0);
            o.put_i64(ts(m.prepare_time));
            o.put_u32(m.xid);
            cstr(&mut o, &m.gid);
        }
        PgOutputMessage::Prepare(m) | PgOutputMessage::StreamPrepare(m) => {
            o.put_u8(m.flags);
            o.put_u64(m.prepare_lsn.0);
            o.put_u64(m.end_lsn.0);
            o.put_i64(ts(m.prepare_time));
            o.put_u32(m.xid);
            cstr(&mut o, &m.gid);
        }
        PgOutputMessage::CommitPrepared(m) => {
            o.put_u8(m.flags);
            o.put_u64(m.commit_lsn.0);
            o.put_u64(m.end_lsn.0);
            o.put_i64(ts(m.commit_time));
            o.put_u32(m.xid);
            cstr(&mut o, &m.gid);
        }
        PgOutputMessage::RollbackPrepared(m) => {
            o.put_u8(m.flags);
            o.put_u64(m.prepare_end_lsn.0);
            o.put_u64(m.rollback_end_lsn.0);
            o.put_i64(ts(m.prepare_time));
            o.put_i64(ts(m.rollback_time));
            o.put_u32(m.xid);
            cstr(&mut o, &m.gid);
        }
        _ => unreachable!("new message kind"),
    }
    o.freeze()
}
