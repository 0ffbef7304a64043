//! Property tests: arbitrary input never panics the decoder or the typed
//! conversion; valid messages and values survive encode → decode.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use cdc_envelope::{Array, Date, Interval, Lsn, Str, Value};
use common::encode;
use pg_logical::*;
use proptest::prelude::*;

fn s() -> impl Strategy<Value = Str> {
    "[^\u{0}]{0,12}".prop_map(Str::from)
}

fn tuple() -> impl Strategy<Value = TupleData> {
    prop::collection::vec(
        prop_oneof![
            Just(TupleValue::Null),
            Just(TupleValue::UnchangedToast),
            prop::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| TupleValue::Text(Bytes::from(v))),
            prop::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| TupleValue::Binary(Bytes::from(v))),
        ],
        0..8,
    )
    .prop_map(|v| TupleData::from_values(&v))
}

fn old() -> impl Strategy<Value = OldTuple> {
    (any::<bool>(), tuple()).prop_map(|(k, data)| OldTuple {
        kind: if k {
            OldTupleKind::Key
        } else {
            OldTupleKind::Full
        },
        data,
    })
}

fn lsn() -> impl Strategy<Value = Lsn> {
    any::<u64>().prop_map(Lsn)
}

/// Arbitrary valid messages; `xid` is `Some` exactly when inside a streamed block.
fn message(in_stream: bool) -> BoxedStrategy<PgOutputMessage> {
    let xid = move || {
        if in_stream {
            any::<u32>().prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        }
    };
    let column = (any::<u8>(), s(), any::<u32>(), any::<i32>()).prop_map(
        |(flags, name, type_oid, type_modifier)| RelationColumn {
            flags,
            name,
            type_oid,
            type_modifier,
        },
    );
    let ri = prop_oneof![Just(b'd'), Just(b'n'), Just(b'f'), Just(b'i'), any::<u8>()]
        .prop_map(ReplicaIdentity::from_byte);
    prop_oneof![
        (lsn(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, commit_time, xid)| {
            PgOutputMessage::Begin(Begin {
                final_lsn,
                commit_time,
                xid,
            })
        }),
        (any::<u8>(), lsn(), lsn(), any::<i64>()).prop_map(
            |(flags, commit_lsn, end_lsn, commit_time)| {
                PgOutputMessage::Commit(Commit {
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_time,
                })
            }
        ),
        (lsn(), s())
            .prop_map(|(commit_lsn, name)| PgOutputMessage::Origin(Origin { commit_lsn, name })),
        (
            xid(),
            any::<u32>(),
            s(),
            s(),
            ri,
            prop::collection::vec(column, 0..6)
        )
            .prop_map(|(xid, oid, namespace, name, replica_identity, columns)| {
                PgOutputMessage::Relation(Relation {
                    xid,
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }),
        (xid(), any::<u32>(), s(), s()).prop_map(|(xid, oid, namespace, name)| {
            PgOutputMessage::Type(TypeMessage {
                xid,
                oid,
                namespace,
                name,
            })
        }),
        (xid(), any::<u32>(), tuple()).prop_map(
            |(xid, relation_oid, new)| PgOutputMessage::Insert(Insert {
                xid,
                relation_oid,
                new
            })
        ),
        (xid(), any::<u32>(), prop::option::of(old()), tuple()).prop_map(
            |(xid, relation_oid, old, new)| PgOutputMessage::Update(Update {
                xid,
                relation_oid,
                old,
                new
            })
        ),
        (xid(), any::<u32>(), old()).prop_map(|(xid, relation_oid, old)| PgOutputMessage::Delete(
            Delete {
                xid,
                relation_oid,
                old
            }
        )),
        (
            xid(),
            any::<u8>(),
            prop::collection::vec(any::<u32>(), 0..5)
        )
            .prop_map(|(xid, options, relation_oids)| PgOutputMessage::Truncate(
                Truncate {
                    xid,
                    options,
                    relation_oids
                }
            )),
        (
            xid(),
            any::<u8>(),
            lsn(),
            s(),
            prop::collection::vec(any::<u8>(), 0..30)
        )
            .prop_map(|(xid, flags, lsn, prefix, content)| {
                PgOutputMessage::Message(LogicalMessage {
                    xid,
                    flags,
                    lsn,
                    prefix,
                    content: Bytes::from(content),
                })
            }),
        (any::<u32>(), any::<u8>(), lsn(), lsn(), any::<i64>()).prop_map(
            |(xid, flags, commit_lsn, end_lsn, commit_time)| {
                PgOutputMessage::StreamCommit(StreamCommit {
                    xid,
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_time,
                })
            }
        ),
        (
            any::<u32>(),
            any::<u32>(),
            prop::option::of((lsn(), any::<i64>()))
        )
            .prop_map(|(xid, subxid, abort)| {
                PgOutputMessage::StreamAbort(StreamAbort {
                    xid,
                    subxid,
                    abort_lsn: abort.map(|a| a.0),
                    abort_time: abort.map(|a| a.1),
                })
            }),
        (lsn(), lsn(), any::<i64>(), any::<u32>(), s()).prop_map(
            |(prepare_lsn, end_lsn, prepare_time, xid, gid)| {
                PgOutputMessage::BeginPrepare(BeginPrepare {
                    prepare_lsn,
                    end_lsn,
                    prepare_time,
                    xid,
                    gid,
                })
            }
        ),
        (
            any::<bool>(),
            any::<u8>(),
            lsn(),
            lsn(),
            any::<i64>(),
            any::<u32>(),
            s()
        )
            .prop_map(
                |(streamed, flags, prepare_lsn, end_lsn, prepare_time, xid, gid)| {
                    let p = Prepare {
                        flags,
                        prepare_lsn,
                        end_lsn,
                        prepare_time,
                        xid,
                        gid,
                    };
                    if streamed {
                        PgOutputMessage::StreamPrepare(p)
                    } else {
                        PgOutputMessage::Prepare(p)
                    }
                }
            ),
        (any::<u8>(), lsn(), lsn(), any::<i64>(), any::<u32>(), s()).prop_map(
            |(flags, commit_lsn, end_lsn, commit_time, xid, gid)| {
                PgOutputMessage::CommitPrepared(CommitPrepared {
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_time,
                    xid,
                    gid,
                })
            }
        ),
        (
            any::<u8>(),
            lsn(),
            lsn(),
            any::<i64>(),
            any::<i64>(),
            any::<u32>(),
            s()
        )
            .prop_map(
                |(
                    flags,
                    prepare_end_lsn,
                    rollback_end_lsn,
                    prepare_time,
                    rollback_time,
                    xid,
                    gid,
                )| {
                    PgOutputMessage::RollbackPrepared(RollbackPrepared {
                        flags,
                        prepare_end_lsn,
                        rollback_end_lsn,
                        prepare_time,
                        rollback_time,
                        xid,
                        gid,
                    })
                }
            ),
    ]
    .boxed()
}

const TAGS: &[u8] = b"BCORYIUDTMSEcAbPKrp";

fn all_builtin_decoders() -> Vec<ValueDecoder> {
    (0..7000u32)
        .filter_map(|oid| builtin_pg_type(oid, -1))
        .map(|t| ValueDecoder::for_type(&t))
        .collect()
}

/// Days since 1970 → `YYYY-MM-DD[ BC]` (independent of the crate's parser).
fn format_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if y <= 0 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn quote_elem(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), in_stream in any::<bool>()) {
        let _ = decode_message(Bytes::from(bytes.clone()), in_stream);
        let mut d = Decoder::new();
        let _ = d.decode(Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bodies_behind_valid_tags_never_panic(
        tag in prop::sample::select(TAGS),
        body in prop::collection::vec(any::<u8>(), 0..120),
        in_stream in any::<bool>(),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(body);
        if let Ok(msg) = decode_message(Bytes::from(bytes), in_stream) {
            // Whatever decodes also types (or fails cleanly) against a cache.
            let mut cache = RelationCache::new();
            cache.apply(&msg);
            let _ = cache.row_change(&msg);
        }
    }

    #[test]
    fn valid_messages_round_trip(msg in message(false)) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode_message(bytes.clone(), false).unwrap(), msg.clone());
        // Every strict prefix is an error, never a panic (Stream Abort may stop
        // before its optional v4 fields).
        for cut in 0..bytes.len() {
            let r = decode_message(bytes.slice(..cut), false);
            if !matches!(msg, PgOutputMessage::StreamAbort(_)) || cut < 9 {
                prop_assert!(r.is_err(), "prefix {} of {:?}", cut, msg);
            }
        }
    }

    #[test]
    fn streamed_messages_round_trip(msg in message(true)) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode_message(bytes, true).unwrap(), msg);
    }

    #[test]
    fn typed_conversion_of_array_like_text_never_panics(s in "[\\[\\]{}\",\\\\ a-z0-9:;=-]{0,40}") {
        let b = Bytes::from(s);
        for oid in [1007u32, 1009, 1020, 1182, 1231, 1115] {
            let _ = ValueDecoder::for_type(&builtin_pg_type(oid, -1).unwrap()).decode_text(&b);
        }
    }

    #[test]
    fn integers_round_trip(a in any::<i16>(), b in any::<i32>(), c in any::<i64>(), o in any::<u32>()) {
        let t = |oid: u32, s: String| ValueDecoder::for_type(&builtin_pg_type(oid, -1).unwrap()).decode_text(&Bytes::from(s)).unwrap();
        prop_assert_eq!(t(21, a.to_string()), Value::Int16(a));
        prop_assert_eq!(t(23, b.to_string()), Value::Int32(b));
        prop_assert_eq!(t(20, c.to_string()), Value::Int64(c));
        prop_assert_eq!(t(26, o.to_string()), Value::Int64(i64::from(o)));
    }

    #[test]
    fn floats_round_trip(f in any::<f64>(), g in any::<f32>()) {
        let d8 = ValueDecoder::for_type(&builtin_pg_type(701, -1).unwrap());
        let d4 = ValueDecoder::for_type(&builtin_pg_type(700, -1).unwrap());
        let text8 = if f.is_nan() { "NaN".to_string() } else if f.is_infinite() { if f > 0.0 { "Infinity".into() } else { "-Infinity".into() } } else { format!("{f:e}") };
        match d8.decode_text(&Bytes::from(text8)).unwrap() {
            Value::Float64(x) => prop_assert!(x.to_bits() == f.to_bits() || (x.is_nan() && f.is_nan())),
            other => prop_assert!(false, "{:?}", other),
        }
        match d4.decode_binary(&Bytes::copy_from_slice(&g.to_be_bytes())).unwrap() {
            Value::Float32(x) => prop_assert!(x.to_bits() == g.to_bits()),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn dates_round_trip(days in -2_440_588i64..106_762_939) {
        let d = ValueDecoder::for_type(&builtin_pg_type(1082, -1).unwrap());
        prop_assert_eq!(d.decode_text(&Bytes::from(format_date(days))).unwrap(), Value::Date(Date::Days(days as i32)));
    }

    #[test]
    fn intervals_round_trip(months in -1000i32..1000, days in -1000i32..1000, micros in -10_000_000_000_000i64..10_000_000_000_000) {
        // IntervalStyle=postgres output.
        let mut parts = Vec::new();
        let (y, m) = (months / 12, months % 12);
        if y != 0 { parts.push(format!("{y} year{}", if y.abs() == 1 { "" } else { "s" })); }
        if m != 0 { parts.push(format!("{m} mon{}", if m.abs() == 1 { "" } else { "s" })); }
        if days != 0 { parts.push(format!("{}{days} day{}", if days > 0 && !parts.is_empty() { "+" } else { "" }, if days.abs() == 1 { "" } else { "s" })); }
        if micros != 0 || parts.is_empty() {
            let a = micros.unsigned_abs();
            let sign = if micros < 0 { "-" } else if !parts.is_empty() { "+" } else { "" };
            let frac = a % 1_000_000;
            let secs = a / 1_000_000;
            let mut t = format!("{sign}{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            if frac != 0 { t.push_str(format!(".{frac:06}").trim_end_matches('0')); }
            parts.push(t);
        }
        let text = parts.join(" ");
        let d = ValueDecoder::for_type(&builtin_pg_type(1186, -1).unwrap());
        prop_assert_eq!(d.decode_text(&Bytes::from(text)).unwrap(), Value::Interval(Interval { months, days, micros }));
    }

    #[test]
    fn bytea_and_uuid_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..64), u in any::<[u8; 16]>()) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let d = ValueDecoder::for_type(&builtin_pg_type(17, -1).unwrap());
        prop_assert_eq!(d.decode_text(&Bytes::from(format!("\\x{hex}"))).unwrap(), Value::Bytes(Bytes::from(bytes.clone())));
        let esc: String = bytes.iter().map(|&b| if b == b'\\' { "\\\\".to_string() } else if (0x20..0x7f).contains(&b) { (b as char).to_string() } else { format!("\\{b:03o}") }).collect();
        prop_assert_eq!(d.decode_text(&Bytes::from(esc)).unwrap(), Value::Bytes(Bytes::from(bytes)));
        let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("{}-{}-{}-{}-{}", h[..4].concat(), h[4..6].concat(), h[6..8].concat(), h[8..10].concat(), h[10..].concat());
        let d = ValueDecoder::for_type(&builtin_pg_type(2950, -1).unwrap());
        prop_assert_eq!(d.decode_text(&Bytes::from(text)).unwrap(), Value::Uuid(u));
    }

    #[test]
    fn arrays_round_trip(ints in prop::collection::vec(prop::option::of(any::<i32>()), 1..10), texts in prop::collection::vec("[^\u{0}]{0,8}", 1..6)) {
        let lit = format!("{{{}}}", ints.iter().map(|i| i.map_or("NULL".to_string(), |i| i.to_string())).collect::<Vec<_>>().join(","));
        let d = ValueDecoder::for_type(&builtin_pg_type(1007, -1).unwrap());
        let want = Array::one_dim(ints.iter().map(|i| i.map_or(Value::Null, Value::Int32)).collect());
        prop_assert_eq!(d.decode_text(&Bytes::from(lit)).unwrap(), Value::Array(want));
        let lit = format!("{{{}}}", texts.iter().map(|s| quote_elem(s)).collect::<Vec<_>>().join(","));
        let d = ValueDecoder::for_type(&builtin_pg_type(1009, -1).unwrap());
        let want = Array::one_dim(texts.iter().map(|s| Value::Text(Str::from(s.as_str()))).collect());
        prop_assert_eq!(d.decode_text(&Bytes::from(lit)).unwrap(), Value::Array(want));
    }

    #[test]
    fn numerics_round_trip(neg in any::<bool>(), int in "[1-9][0-9]{0,40}|0", frac in prop::option::of("[0-9]{1,40}")) {
        let text = format!("{}{int}{}", if neg { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default());
        let d = ValueDecoder::for_type(&builtin_pg_type(1700, -1).unwrap());
        match d.decode_text(&Bytes::from(text.clone())).unwrap() {
            Value::Numeric(cdc_envelope::Numeric::Finite(x)) => prop_assert_eq!(x.as_str(), text),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

proptest! {
    // Every built-in type's text and binary converter per case: fewer cases.
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn typed_conversion_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let b = Bytes::from(bytes);
        for d in all_builtin_decoders() {
            let _ = d.decode_text(&b);
            let _ = d.decode_binary(&b);
        }
    }
}

#[test]
fn every_truncation_of_captured_messages_fails_cleanly() {
    for label in common::labels() {
        let msgs = common::load_messages(&label, "v3_twophase")
            .or_else(|| common::load_messages(&label, "v2_stream"))
            .unwrap();
        for m in msgs.iter().filter(|m| m.len() < 400) {
            for cut in 0..m.len() {
                let _ = decode_message(m.slice(..cut), false);
                let _ = decode_message(m.slice(..cut), true);
            }
        }
    }
}
