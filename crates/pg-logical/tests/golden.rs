//! Golden tests over raw pgoutput captured from real PostgreSQL servers
//! (`fixtures/regenerate.sh`); expected values were computed by the database.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use cdc_envelope::Value;
use common::*;
use pg_logical::*;

const FLAVOURS: &[&str] = &[
    "v1_text",
    "v1_binary",
    "v2_stream",
    "v3_twophase",
    "v4_parallel",
];

/// Decodes a capture with one decoder and one relation cache, typing every
/// row change; returns the messages and the typed changes.
type Replay = (Vec<PgOutputMessage>, Vec<(u8, RowChange)>, RelationCache);

fn replay(label: &str, name: &str) -> Option<Replay> {
    let raw = load_messages(label, name)?;
    let mut decoder = Decoder::new();
    let mut cache = RelationCache::with_registry(registry(label));
    let mut msgs = Vec::new();
    let mut changes = Vec::new();
    for (i, bytes) in raw.into_iter().enumerate() {
        let msg = decoder.decode(bytes.clone()).unwrap_or_else(|e| {
            panic!(
                "{label}/{name} message {i} ({:?}): {e}",
                bytes.first().map(|b| *b as char)
            )
        });
        // The test-only encoder reproduces the server's bytes exactly.
        assert_eq!(encode(&msg), bytes, "{label}/{name} message {i} re-encodes");
        cache.apply(&msg);
        if name != "v1_binary" {
            if let Some(change) = cache
                .row_change(&msg)
                .unwrap_or_else(|e| panic!("{label}/{name} message {i}: {e}"))
            {
                changes.push((msg.tag(), change));
            }
        }
        msgs.push(msg);
    }
    assert!(
        !decoder.in_streamed_block(),
        "{label}/{name}: capture ends outside a streamed block"
    );
    Some((msgs, changes, cache))
}

fn expected_types(label: &str) -> HashMap<i32, Vec<String>> {
    let text = std::fs::read_to_string(fixture_dir(label).join("expected_types.txt")).unwrap();
    text.split('\x1e')
        .map(|r| r.trim_matches('\n'))
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let mut f: Vec<String> = r.split('\x1f').map(str::to_owned).collect();
            let id: i32 = f.remove(0).trim().parse().unwrap();
            (id, f)
        })
        .collect()
}

#[test]
fn every_captured_message_decodes_and_re_encodes() {
    let labels = labels();
    assert!(labels.iter().any(|l| l == "pg15"), "pg15 fixtures present");
    for label in &labels {
        for name in FLAVOURS {
            if let Some((msgs, _, _)) = replay(label, name) {
                assert!(msgs.len() > 100, "{label}/{name}");
            }
        }
    }
}

#[test]
fn typed_values_match_the_database() {
    for label in labels() {
        let expected = expected_types(&label);
        assert_eq!(expected.len(), 6, "{label}");
        let (_, changes, cache) = replay(&label, "v1_text").unwrap();
        let types_schema = cache
            .relations()
            .find(|r| r.schema.id.table == "types")
            .unwrap()
            .schema
            .clone();
        let mut seen = 0;
        for (_, ch) in changes
            .iter()
            .filter(|(t, c)| *t == b'I' && c.schema.id.table == "types")
        {
            let row = ch.after.as_ref().unwrap();
            let Value::Int32(id) = row[0] else {
                panic!("id")
            };
            let want = &expected[&id];
            assert_eq!(row.len(), want.len() + 1);
            for (i, (got, want)) in row[1..].iter().zip(want).enumerate() {
                let col = &types_schema.columns[i + 1];
                assert_eq!(
                    &canon(got),
                    want,
                    "{label} id {id} column {} ({})",
                    col.name,
                    col.pg_type.name
                );
            }
            seen += 1;
        }
        assert_eq!(seen, 6, "{label}");
        // Catalog-resolved kinds: enum, enum array, domain over int4.
        let col = |n: &str| types_schema.columns[types_schema.column_index(n).unwrap()].clone();
        assert!(
            matches!(col("c_mood").pg_type.kind, cdc_envelope::TypeKind::Enum(ref l) if l.len() == 3)
        );
        assert!(matches!(
            col("c_posint").pg_type.kind,
            cdc_envelope::TypeKind::Domain(_)
        ));
        assert!(matches!(
            col("c_mood_arr").pg_type.kind,
            cdc_envelope::TypeKind::Array(_)
        ));
        assert_eq!(col("c_numeric_10_2").pg_type.numeric_scale(), Some(2));
        assert_eq!(col("c_varchar").pg_type.length(), Some(20));
    }
}

#[test]
fn binary_tuples_match_text_tuples() {
    for label in labels() {
        let (text_msgs, _, _) = replay(&label, "v1_text").unwrap();
        let (bin_msgs, _, _) = replay(&label, "v1_binary").unwrap();
        assert_eq!(text_msgs.len(), bin_msgs.len());
        let (mut compared, mut unsupported) = (0, 0);
        let mut compared_types = std::collections::BTreeSet::new();
        let mut unsupported_types = std::collections::BTreeSet::new();
        let mut cache = RelationCache::with_registry(registry(&label));
        let mut employees_row = None;
        for (t, b) in text_msgs.iter().zip(&bin_msgs) {
            cache.apply(t);
            let (PgOutputMessage::Insert(t), PgOutputMessage::Insert(b)) = (t, b) else {
                continue;
            };
            let rel = cache.get(t.relation_oid).unwrap();
            if rel.schema.id.table == "employees" && employees_row.is_none() {
                employees_row = Some(rel.decode_row(&b.new).unwrap());
            }
            for ((tv, bv), col) in t.new.iter().zip(b.new.iter()).zip(&rel.schema.columns) {
                let dec = ValueDecoder::for_type(&col.pg_type);
                match (tv, bv) {
                    (TupleValue::Text(tx), TupleValue::Binary(bx)) => {
                        match dec.decode_binary(&bx) {
                            Ok(v) => {
                                assert_eq!(
                                    canon(&v),
                                    canon(&dec.decode_text(&tx).unwrap()),
                                    "{label} {}",
                                    col.name
                                );
                                compared += 1;
                                compared_types.insert(col.pg_type.name.clone());
                            }
                            Err(ValueError::UnsupportedBinary) => {
                                unsupported += 1;
                                unsupported_types.insert(col.pg_type.name.clone());
                            }
                            Err(e) => {
                                panic!("{label} column {} ({}): {e:?}", col.name, col.pg_type.name)
                            }
                        }
                    }
                    (TupleValue::Null, TupleValue::Null) => {}
                    other => panic!("{label} column {}: {other:?}", col.name),
                }
            }
        }
        assert!(
            compared > 1000,
            "{label}: {compared} binary values compared, {unsupported} unsupported"
        );
        // Arrays, network types, ranges and bit strings decode in binary
        // exactly as in text (the text side is checked against the database
        // in typed_values_match_the_database); only geometric types (and
        // arrays of them) and tsvector stay text-only.
        for t in [
            "inet",
            "cidr",
            "macaddr",
            "macaddr8",
            "int4range",
            "tstzrange",
            "bit",
            "varbit",
            "_int4",
            "_text",
            "_date",
            "_numeric",
            "_timestamptz",
            "_uuid",
            "_bool",
            "_float8",
            "_bytea",
            "_interval",
            "_jsonb",
            "_varchar",
            "_mood",
        ] {
            assert!(
                compared_types.contains(t),
                "{label}: {t} not compared in binary"
            );
        }
        assert!(
            unsupported_types
                .iter()
                .all(|t| ["point", "box", "_box", "tsvector"].contains(&t.as_str())),
            "{label}: unsupported in binary: {unsupported_types:?}"
        );
        // The employees shape decodes fully in binary.
        let row: Vec<Value> = employees_row.unwrap();
        assert_eq!(canon(&row[1]), "Ada");
        assert_eq!(canon(&row[4]), "75000.00");
    }
}

#[test]
fn row_changes_have_debezium_semantics() {
    for label in labels() {
        let (msgs, changes, cache) = replay(&label, "v1_text").unwrap();
        let by_table = |t: &str| {
            changes
                .iter()
                .filter(move |(_, c)| c.schema.id.table == t)
                .collect::<Vec<_>>()
        };

        // employees: key change → old key tuple 'K' with non-key columns NULL.
        let emp = by_table("employees");
        let key_change = emp
            .iter()
            .find(|(_, c)| c.kind == ChangeKind::Update && c.before.is_some())
            .expect("update with old key");
        assert_eq!(key_change.1.before_kind, Some(OldTupleKind::Key));
        let before = key_change.1.before.as_ref().unwrap();
        assert_eq!(before[0], Value::Int32(2));
        assert!(before[1..].iter().all(Value::is_null));
        assert_eq!(key_change.1.after.as_ref().unwrap()[0], Value::Int32(100));
        let schema = &key_change.1.schema;
        assert_eq!(schema.key_indices().collect::<Vec<_>>(), vec![0]);
        // Delete with replica identity default: key only.
        let del = emp
            .iter()
            .find(|(_, c)| c.kind == ChangeKind::Delete)
            .unwrap();
        assert_eq!(del.1.before.as_ref().unwrap()[0], Value::Int32(3));
        // Schema change: the last insert has the extra column and a newer version.
        let last = emp
            .iter()
            .find(|(_, c)| c.kind == ChangeKind::Insert && c.schema.columns.len() == 8)
            .unwrap();
        assert_eq!(last.1.schema.version, 2);
        assert_eq!(last.1.schema.columns[7].name, "email");
        assert_eq!(canon(&last.1.after.as_ref().unwrap()[7]), "n@example.com");
        assert_eq!(emp.iter().filter(|(_, c)| c.schema.version == 1).count(), 6);

        // docs: the TOASTed body is unchanged in the update → Unavailable, not NULL.
        let docs = by_table("docs");
        let upd = docs
            .iter()
            .find(|(_, c)| c.kind == ChangeKind::Update)
            .unwrap();
        let after = upd.1.after.as_ref().unwrap();
        assert_eq!(after[1], Value::Unavailable);
        assert_eq!(canon(&after[2]), "touched");

        // rif: replica identity FULL → whole old row 'O', no key columns.
        let rif = by_table("rif");
        let upd = rif
            .iter()
            .find(|(_, c)| c.kind == ChangeKind::Update)
            .unwrap();
        assert_eq!(upd.1.before_kind, Some(OldTupleKind::Full));
        assert_eq!(upd.1.before.as_ref().unwrap()[1], Value::Text("one".into()));
        assert!(!upd.1.schema.has_key());
        assert_eq!(
            cache
                .get(upd.1.schema.relation_oid)
                .unwrap()
                .replica_identity,
            ReplicaIdentity::Full
        );

        // Truncates and logical messages.
        let truncs: Vec<&Truncate> = msgs
            .iter()
            .filter_map(|m| {
                if let PgOutputMessage::Truncate(t) = m {
                    Some(t)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(truncs.len(), 2);
        assert!(
            !truncs[0].cascade()
                && !truncs[0].restart_identity()
                && truncs[0].relation_oids.len() == 1
        );
        assert!(
            truncs[1].cascade()
                && truncs[1].restart_identity()
                && truncs[1].relation_oids.len() == 2
        );
        let lm: Vec<&LogicalMessage> = msgs
            .iter()
            .filter_map(|m| {
                if let PgOutputMessage::Message(t) = m {
                    Some(t)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(lm.len(), 2);
        assert!(
            lm[0].transactional()
                && lm[0].prefix == "tx-prefix"
                && lm[0].content == Bytes::from_static(b"transactional content")
        );
        assert!(
            !lm[1].transactional()
                && lm[1].prefix == "ntx-prefix"
                && lm[1].content == Bytes::from_static(b"\x00\xff")
        );

        // Begin/Commit pairs line up.
        let begins = msgs
            .iter()
            .filter(|m| matches!(m, PgOutputMessage::Begin(_)))
            .count();
        let commits = msgs
            .iter()
            .filter(|m| matches!(m, PgOutputMessage::Commit(_)))
            .count();
        assert_eq!(begins, commits);
        // Type messages for the user-defined types.
        assert!(msgs
            .iter()
            .any(|m| matches!(m, PgOutputMessage::Type(t) if t.name == "mood")));
    }
}

#[test]
fn streamed_transactions() {
    let (mut top_aborts, mut subxact_aborts) = (0, 0);
    for label in labels() {
        let (msgs, changes, _) = replay(&label, "v2_stream").unwrap();
        let starts: Vec<&StreamStart> = msgs
            .iter()
            .filter_map(|m| {
                if let PgOutputMessage::StreamStart(s) = m {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        assert!(starts.len() >= 2, "{label}: streamed blocks");
        assert!(starts[0].first_segment);
        // Every data message inside a block carries an xid (of the top-level
        // transaction or of the subtransaction that made the change), none outside.
        let mut inside = false;
        let mut xids = std::collections::BTreeSet::new();
        for m in &msgs {
            match m {
                PgOutputMessage::StreamStart(_) => inside = true,
                PgOutputMessage::StreamStop => inside = false,
                PgOutputMessage::Insert(i) => {
                    assert_eq!(i.xid.is_some(), inside);
                    xids.extend(i.xid);
                }
                PgOutputMessage::Relation(r) => assert_eq!(r.xid.is_some(), inside),
                _ => {}
            }
        }
        assert!(
            xids.len() >= 3,
            "top-level and subtransaction xids: {xids:?}"
        );
        let aborts: Vec<&StreamAbort> = msgs
            .iter()
            .filter_map(|m| {
                if let PgOutputMessage::StreamAbort(s) = m {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        // The aborted top-level transaction and the rolled-back subtransaction
        // get a Stream Abort when some of their changes were streamed before
        // the abort (14–17 here; 18 skips decoding a transaction it already
        // knows aborted, so only the subtransaction's abort remains).
        assert!(!aborts.is_empty(), "{label}");
        top_aborts += aborts.iter().filter(|a| a.xid == a.subxid).count();
        subxact_aborts += aborts.iter().filter(|a| a.xid != a.subxid).count();
        assert!(aborts.iter().all(|a| a.abort_lsn.is_none()));
        let commits = msgs
            .iter()
            .filter(|m| matches!(m, PgOutputMessage::StreamCommit(_)))
            .count();
        assert!(commits >= 1);
        assert!(changes.iter().any(|(_, c)| c.xid.is_some()));
    }
    assert!(subxact_aborts > 0 && top_aborts > 0);
}

#[test]
fn two_phase_transactions() {
    for label in labels() {
        let Some((msgs, _, _)) = replay(&label, "v3_twophase") else {
            continue;
        };
        let gids = |f: fn(&PgOutputMessage) -> Option<String>| {
            msgs.iter().filter_map(f).collect::<Vec<_>>()
        };
        assert_eq!(
            gids(|m| if let PgOutputMessage::BeginPrepare(p) = m {
                Some(p.gid.to_string())
            } else {
                None
            }),
            vec!["gid-commit", "gid-rollback"]
        );
        assert_eq!(
            gids(|m| if let PgOutputMessage::Prepare(p) = m {
                Some(p.gid.to_string())
            } else {
                None
            }),
            vec!["gid-commit", "gid-rollback"]
        );
        assert_eq!(
            gids(|m| if let PgOutputMessage::CommitPrepared(p) = m {
                Some(p.gid.to_string())
            } else {
                None
            }),
            vec!["gid-commit", "gid-big"]
        );
        assert_eq!(
            gids(|m| if let PgOutputMessage::RollbackPrepared(p) = m {
                Some(p.gid.to_string())
            } else {
                None
            }),
            vec!["gid-rollback"]
        );
        assert_eq!(
            gids(|m| if let PgOutputMessage::StreamPrepare(p) = m {
                Some(p.gid.to_string())
            } else {
                None
            }),
            vec!["gid-big"]
        );
    }
}

#[test]
fn parallel_stream_abort_carries_lsn_and_time() {
    for label in labels() {
        let Some((msgs, _, _)) = replay(&label, "v4_parallel") else {
            continue;
        };
        let aborts: Vec<&StreamAbort> = msgs
            .iter()
            .filter_map(|m| {
                if let PgOutputMessage::StreamAbort(s) = m {
                    Some(s)
                } else {
                    None
                }
            })
            .collect();
        assert!(!aborts.is_empty(), "{label}");
        assert!(
            aborts
                .iter()
                .all(|a| a.abort_lsn.is_some_and(|l| l.0 > 0) && a.abort_time.is_some()),
            "{label}"
        );
    }
}

#[test]
fn builtin_type_table_matches_server_catalog() {
    for label in labels() {
        let text = std::fs::read_to_string(fixture_dir(&label).join("pg_type.tsv")).unwrap();
        let catalog: HashMap<u32, (String, u32)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].parse().unwrap(),
                    (f[1].to_owned(), f[2].parse().unwrap()),
                )
            })
            .collect();
        for (oid, (name, _)) in &catalog {
            if let Some(ours) = builtin_type_name(*oid) {
                assert_eq!(ours, name, "{label} oid {oid}");
            }
        }
        // Every built-in we know exists on the server with the same element type
        // (multiranges and xid8 arrays only exist on 14+, which every capture is).
        for oid in 0..10_000u32 {
            let Some(t) = builtin_pg_type(oid, -1) else {
                continue;
            };
            let (name, elem) = catalog
                .get(&oid)
                .unwrap_or_else(|| panic!("{label}: oid {oid} {} not on server", t.name));
            assert_eq!(&t.name, name);
            if let cdc_envelope::TypeKind::Array(e) = &t.kind {
                assert_eq!(e.oid, *elem, "{label}: element of {name}");
            }
        }
    }
}
