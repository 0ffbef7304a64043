//! Integration tests of the replication source against the real source
//! PostgreSQL (`cargo xtask services up`). Each test uses its own database,
//! slot and publication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use cdc_envelope::{ChangeEvent, Op, Position, SnapshotMarker, Value};
use cdc_testkit::{unique_name, Services, TestDatabase};
use pg_logical::source::{MemoryOffsetStore, PgSource, SourceConfig, SourceEvent, StartPlan};
use pg_logical::Error;

struct Fixture {
    db: TestDatabase,
    client: tokio_postgres::Client,
    slot: String,
    publication: String,
}

async fn fixture(prefix: &str) -> Fixture {
    let services = Services::get().expect("test services (cargo xtask services up)");
    let db = services
        .source()
        .fresh_database(prefix)
        .await
        .expect("fresh database");
    let client = db.connect().await.expect("connect");
    Fixture {
        db,
        client,
        slot: unique_name(&format!("{prefix}_slot")),
        publication: unique_name(&format!("{prefix}_pub")),
    }
}

impl Fixture {
    fn props(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let s = self.db.server();
        let mut m: BTreeMap<String, String> = [
            ("database.hostname", s.host()),
            ("database.port", s.port().to_string()),
            ("database.user", s.user()),
            ("database.password", s.password()),
            ("database.dbname", self.db.name().to_owned()),
            ("database.sslmode", "disable".to_owned()),
            ("topic.prefix", "pgsource".to_owned()),
            ("slot.name", self.slot.clone()),
            ("publication.name", self.publication.clone()),
            ("publication.autocreate.mode", "filtered".to_owned()),
            ("status.update.interval.ms", "100".to_owned()),
            ("slot.retry.delay.ms", "200".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            m.insert((*k).to_owned(), (*v).to_owned());
        }
        m
    }

    fn config(&self, extra: &[(&str, &str)]) -> SourceConfig {
        SourceConfig::from_properties(&self.props(extra)).expect("valid config")
    }

    async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs each statement as its own transaction (a multi-statement simple
    /// query would be one implicit transaction).
    async fn exec_each(&self, sql: &str) {
        for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            self.exec(stmt).await;
        }
    }
}

async fn next_event(src: &mut PgSource) -> SourceEvent {
    match tokio::time::timeout(Duration::from_secs(60), src.recv()).await {
        Ok(Ok(Some(e))) => e,
        Ok(Ok(None)) => panic!("source ended"),
        Ok(Err(e)) => panic!("source failed: {e}"),
        Err(_) => panic!("no event within 60 s"),
    }
}

async fn next_change(src: &mut PgSource) -> ChangeEvent {
    loop {
        if let SourceEvent::Change(c) = next_event(src).await {
            return c;
        }
    }
}

async fn changes(src: &mut PgSource, n: usize) -> Vec<ChangeEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_change(src).await);
    }
    out
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int16(x) => i64::from(*x),
        Value::Int32(x) => i64::from(*x),
        Value::Int64(x) => *x,
        other => panic!("not an integer: {other:?}"),
    }
}

fn col<'a>(ev: &'a ChangeEvent, row: &'a [Value], name: &str) -> &'a Value {
    let i = ev
        .table
        .as_ref()
        .unwrap()
        .column_index(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    &row[i]
}

/// Snapshot + stream deliver every row exactly once while a writer inserts,
/// updates and deletes during the snapshot; snapshot markers as Debezium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_stream_exactly_once_with_concurrent_writer() {
    let f = fixture("src_once").await;
    f.exec(
        "CREATE TABLE items (id bigserial PRIMARY KEY, v int NOT NULL, note text);
         INSERT INTO items (v, note) SELECT g, 'row ' || g FROM generate_series(1, 30000) g;
         CREATE TABLE other (k text PRIMARY KEY, n int);
         INSERT INTO other SELECT 'k' || g, g FROM generate_series(1, 500) g;",
    )
    .await;
    let writer_db = f.db.connect().await.unwrap();
    let stop_writer = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writes = 0;
    let mut writer = Some({
        let stop = stop_writer.clone();
        tokio::spawn(async move {
            let mut i: i64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                writer_db
                    .execute(
                        "INSERT INTO items (v, note) VALUES ($1, 'w')",
                        &[&(i as i32)],
                    )
                    .await
                    .unwrap();
                let target = (i * 7919) % 30000 + 1;
                writer_db
                    .execute("UPDATE items SET v = v + 1000000 WHERE id = $1", &[&target])
                    .await
                    .unwrap();
                if i % 5 == 0 {
                    writer_db
                        .execute(
                            "DELETE FROM items WHERE id = $1",
                            &[&((i * 104729) % 30000 + 1)],
                        )
                        .await
                        .unwrap();
                }
            }
            i
        })
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cfg = f.config(&[
        ("table.include.list", "public\\.items,public\\.other"),
        ("snapshot.max.threads", "3"),
        ("snapshot.chunk.size", "4000"),
        ("snapshot.fetch.size", "1000"),
    ]);
    let mut src = PgSource::start(cfg, MemoryOffsetStore::new())
        .await
        .unwrap();
    assert_eq!(src.info().plan, StartPlan::Snapshot);

    let mut model: HashMap<(String, String), i64> = HashMap::new();
    let mut created: HashMap<(String, String), u32> = HashMap::new();
    let mut markers = Vec::new();
    let mut snapshot_done = false;
    let mut stream_events = 0usize;
    let mut last_pos: Option<Position> = None;
    let started = Instant::now();
    let mut final_state: Option<HashMap<(String, String), i64>> = None;
    loop {
        let ev = next_change(&mut src).await;
        assert!(
            last_pos < Some(ev.position),
            "positions increase: {last_pos:?} then {:?}",
            ev.position
        );
        last_pos = Some(ev.position);
        let table = ev.table.clone().unwrap();
        let row = ev.after.as_ref().or(ev.before.as_ref()).unwrap();
        let key_val = &row[table
            .column_index(if table.id.table == "items" { "id" } else { "k" })
            .unwrap()];
        let key = (
            table.id.table.clone(),
            match key_val {
                Value::Text(s) => s.as_str().to_owned(),
                v => int(v).to_string(),
            },
        );
        let vcol = if table.id.table == "items" { "v" } else { "n" };
        match ev.op {
            Op::Read => {
                assert!(!snapshot_done, "snapshot row after streaming started");
                markers.push(ev.source.snapshot);
                *created.entry(key.clone()).or_default() += 1;
                model.insert(key, int(col(&ev, ev.after.as_ref().unwrap(), vcol)));
            }
            Op::Create => {
                snapshot_done = true;
                stream_events += 1;
                *created.entry(key.clone()).or_default() += 1;
                model.insert(key, int(col(&ev, ev.after.as_ref().unwrap(), vcol)));
            }
            Op::Update => {
                snapshot_done = true;
                stream_events += 1;
                assert!(
                    model.contains_key(&key),
                    "update of a row never seen: {key:?}"
                );
                model.insert(key, int(col(&ev, ev.after.as_ref().unwrap(), vcol)));
            }
            Op::Delete => {
                snapshot_done = true;
                stream_events += 1;
                assert!(
                    model.remove(&key).is_some(),
                    "delete of a row never seen: {key:?}"
                );
            }
            op => panic!("unexpected op {op:?}"),
        }
        src.ack(ev.position);
        if snapshot_done && final_state.is_none() && stream_events > 200 {
            stop_writer.store(true, std::sync::atomic::Ordering::Relaxed);
            writes = writer.take().unwrap().await.unwrap();
            let mut state = HashMap::new();
            for r in f
                .client
                .query("SELECT id::text, v::bigint FROM items", &[])
                .await
                .unwrap()
            {
                state.insert(
                    ("items".to_owned(), r.get::<_, String>(0)),
                    r.get::<_, i64>(1),
                );
            }
            for r in f
                .client
                .query("SELECT k, n::bigint FROM other", &[])
                .await
                .unwrap()
            {
                state.insert(
                    ("other".to_owned(), r.get::<_, String>(0)),
                    r.get::<_, i64>(1),
                );
            }
            final_state = Some(state);
        }
        if let Some(state) = &final_state {
            if &model == state {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "did not converge"
        );
    }
    assert!(
        writes > 10,
        "the writer ran during the snapshot ({writes} iterations)"
    );
    for (k, n) in &created {
        assert_eq!(*n, 1, "row {k:?} created {n} times");
    }
    // Debezium's markers: first, true…, last_in_data_collection / first_in_data_collection between tables, last.
    assert_eq!(markers.first(), Some(&SnapshotMarker::First));
    assert_eq!(markers.last(), Some(&SnapshotMarker::Last));
    assert_eq!(
        markers
            .iter()
            .filter(|m| **m == SnapshotMarker::FirstInDataCollection)
            .count(),
        1
    );
    assert_eq!(
        markers
            .iter()
            .filter(|m| **m == SnapshotMarker::LastInDataCollection)
            .count(),
        1
    );
    src.stop().await.unwrap();
}

/// Acknowledged events are never re-delivered after a restart; the
/// unacknowledged tail (from the middle of a transaction) is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_redelivers_only_the_unacknowledged_tail() {
    let f = fixture("src_restart").await;
    f.exec("CREATE TABLE t (id int PRIMARY KEY, v int)").await;
    let store = MemoryOffsetStore::new();
    let cfg = || f.config(&[("table.include.list", "public\\.t")]);
    let mut src = PgSource::start(cfg(), store.clone()).await.unwrap();
    for txn in 0..5 {
        f.exec(&format!(
            "INSERT INTO t SELECT g, {txn} FROM generate_series({}, {}) g",
            txn * 10,
            txn * 10 + 9
        ))
        .await;
    }
    let evs = changes(&mut src, 50).await;
    let ids: Vec<i64> = evs
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
    // Five transactions of ten, seq 0..9 each.
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.position.seq, (i % 10) as u64);
        assert_eq!(e.position.commit_lsn, evs[i / 10 * 10].position.commit_lsn);
    }
    // Acknowledge through the 5th event of the 3rd transaction, then stop.
    src.ack(evs[24].position);
    tokio::time::sleep(Duration::from_millis(300)).await;
    src.stop().await.unwrap();
    assert_eq!(store.get().unwrap().acked, Some(evs[24].position));

    let mut src = PgSource::start(cfg(), store.clone()).await.unwrap();
    assert_eq!(src.info().plan, StartPlan::Stream);
    f.exec("INSERT INTO t VALUES (1000, 9)").await;
    let again = changes(&mut src, 26).await;
    let ids: Vec<i64> = again
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    let mut expected: Vec<i64> = (25..50).collect();
    expected.push(1000);
    assert_eq!(
        ids, expected,
        "exactly the unacknowledged tail, then new changes"
    );
    assert_eq!(again[0].position, evs[25].position);
    src.ack(again[25].position);
    tokio::time::sleep(Duration::from_millis(500)).await;
    src.stop().await.unwrap();
    // The slot was advanced past everything acknowledged.
    let row = f
        .client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&f.slot],
        )
        .await
        .unwrap();
    let confirmed: cdc_envelope::Lsn = row.get::<_, String>(0).parse().unwrap();
    assert!(
        confirmed > again[25].position.commit_lsn,
        "slot confirmed {confirmed}"
    );
}

/// A crash in the middle of a snapshot resumes from the last acknowledged chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_resumes_after_crash_from_last_acknowledged_chunk() {
    let f = fixture("src_resume").await;
    f.exec("CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 10000) g")
        .await;
    let store = MemoryOffsetStore::new();
    let cfg = || {
        f.config(&[
            ("table.include.list", "public\\.big"),
            ("snapshot.chunk.size", "1000"),
            ("snapshot.max.threads", "2"),
            ("snapshot.fetch.size", "100"),
            ("max.queue.size", "64"),
        ])
    };
    let mut src = PgSource::start(cfg(), store.clone()).await.unwrap();
    let first = changes(&mut src, 3500).await;
    src.ack(first[3499].position);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(src); // crash: no orderly stop
    let progress = store.get().unwrap().snapshot.unwrap();
    assert!(!progress.completed);

    let mut src = PgSource::start(cfg(), store.clone()).await.unwrap();
    assert_eq!(src.info().plan, StartPlan::ResumeSnapshot);
    let mut seen: HashSet<i64> = first
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    let rest = changes(&mut src, 10000 - 3000).await;
    let resumed_ids: Vec<i64> = rest
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    // Chunks 1..=3 (ids 1..=3000) were acknowledged: not read again.
    assert!(
        resumed_ids.iter().all(|id| *id > 3000),
        "re-read an acknowledged chunk"
    );
    assert!(rest.iter().all(|e| e.op == Op::Read));
    assert!(
        rest[0].position > first[3499].position,
        "positions keep growing across the resume"
    );
    seen.extend(resumed_ids);
    assert_eq!(seen.len(), 10000);
    src.ack(rest.last().unwrap().position);
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.exec("INSERT INTO big VALUES (20000, 'after')").await;
    let ev = next_change(&mut src).await;
    assert_eq!(ev.op, Op::Create);
    src.ack(ev.position);
    src.stop().await.unwrap();
    assert!(store.get().unwrap().snapshot.unwrap().completed);
}

/// ADD COLUMN, DROP COLUMN and a type change mid-stream: every event
/// carries the schema it was written with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_mid_stream() {
    let f = fixture("src_ddl").await;
    f.exec("CREATE TABLE s (id int PRIMARY KEY, a int NOT NULL)")
        .await;
    let mut src = PgSource::start(
        f.config(&[("table.include.list", "public\\.s")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec_each(
        "INSERT INTO s VALUES (1, 10);
         ALTER TABLE s ADD COLUMN b text DEFAULT 'x';
         INSERT INTO s VALUES (2, 20, 'y');
         ALTER TABLE s DROP COLUMN a;
         INSERT INTO s VALUES (3, 'z');
         ALTER TABLE s ALTER COLUMN id TYPE bigint;
         INSERT INTO s VALUES (4, 'w');",
    )
    .await;
    let evs = changes(&mut src, 4).await;
    let names = |e: &ChangeEvent| {
        e.table
            .as_ref()
            .unwrap()
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&evs[0]), ["id", "a"]);
    assert_eq!(evs[0].after, Some(vec![Value::Int32(1), Value::Int32(10)]));
    assert!(
        !evs[0].table.as_ref().unwrap().columns[1].optional,
        "a is NOT NULL"
    );
    assert_eq!(names(&evs[1]), ["id", "a", "b"]);
    let b = &evs[1].table.as_ref().unwrap().columns[2];
    assert_eq!(b.default_expr.as_deref(), Some("'x'::text"));
    assert_eq!(evs[1].after.as_ref().unwrap()[2], Value::Text("y".into()));
    assert_eq!(names(&evs[2]), ["id", "b"]);
    assert_eq!(
        evs[3].table.as_ref().unwrap().columns[0].pg_type.name,
        "int8"
    );
    assert_eq!(evs[3].after.as_ref().unwrap()[0], Value::Int64(4));
    let versions: Vec<u64> = evs
        .iter()
        .map(|e| e.table.as_ref().unwrap().version)
        .collect();
    assert!(
        versions.windows(2).all(|w| w[1] > w[0]),
        "schema versions grow: {versions:?}"
    );
    assert!(evs
        .iter()
        .all(|e| e.table.as_ref().unwrap().columns[0].is_key));
    src.stop().await.unwrap();
}

/// Truncate (op t only when skipped.operations allows it), logical messages,
/// replica identity DEFAULT / FULL and primary-key changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_messages_and_replica_identity() {
    let f = fixture("src_ops").await;
    f.exec(
        "CREATE TABLE e (id int PRIMARY KEY, name text NOT NULL, note text);
         CREATE TABLE full_t (id int PRIMARY KEY, name text);
         ALTER TABLE full_t REPLICA IDENTITY FULL;",
    )
    .await;
    let mut src = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.(e|full_t)"),
            ("skipped.operations", "none"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec_each(
        "INSERT INTO e VALUES (1, 'one', 'n1'), (2, 'two', 'n2');
         UPDATE e SET note = 'changed' WHERE id = 1;
         DELETE FROM e WHERE id = 2;
         UPDATE e SET id = 100 WHERE id = 1;
         BEGIN; INSERT INTO e VALUES (3, 'three', NULL); SELECT pg_logical_emit_message(true, 'audit', 'hello'); COMMIT;
         SELECT pg_logical_emit_message(false, 'heartbeat', 'non-tx');
         INSERT INTO full_t VALUES (1, 'a');
         UPDATE full_t SET name = 'b';
         DELETE FROM full_t;
         TRUNCATE e;",
    )
    .await;
    let evs = changes(&mut src, 13).await;
    let ops: String = evs.iter().map(|e| e.op.code()).collect();
    assert_eq!(ops, "ccuddccmmcudt");
    // DEFAULT: update without before, delete with the key only.
    assert_eq!(evs[2].before, None);
    assert_eq!(
        evs[3].before,
        Some(vec![Value::Int32(2), Value::Null, Value::Null])
    );
    // Primary-key change: delete of the old key, create of the new one, same transaction.
    assert_eq!(evs[4].before.as_ref().unwrap()[0], Value::Int32(1));
    assert_eq!(evs[5].after.as_ref().unwrap()[0], Value::Int32(100));
    assert_eq!(evs[4].position.commit_lsn, evs[5].position.commit_lsn);
    assert_eq!((evs[4].position.seq, evs[5].position.seq), (0, 1));
    // Transactional message inside the transaction; non-transactional on its own.
    let m = evs[7].message.as_ref().unwrap();
    assert_eq!(
        (m.prefix.as_str(), &m.content[..], m.transactional),
        ("audit", &b"hello"[..], true)
    );
    assert_eq!(evs[7].position.commit_lsn, evs[6].position.commit_lsn);
    assert!(evs[7].source.tx_id.is_some());
    let m = evs[8].message.as_ref().unwrap();
    assert_eq!((m.prefix.as_str(), m.transactional), ("heartbeat", false));
    assert_eq!(evs[8].source.tx_id, None);
    // FULL: whole old rows.
    assert_eq!(
        evs[10].before,
        Some(vec![Value::Int32(1), Value::Text("a".into())])
    );
    assert_eq!(
        evs[11].before,
        Some(vec![Value::Int32(1), Value::Text("b".into())])
    );
    assert_eq!(evs[12].table.as_ref().unwrap().id.table, "e");
    // Source block.
    assert_eq!(evs[0].source.connector, "postgresql");
    assert_eq!(evs[0].source.name, "pgsource");
    assert_eq!(evs[0].source.snapshot, SnapshotMarker::False);
    assert!(evs[0].source.sequence.as_deref().unwrap().starts_with('['));
    src.stop().await.unwrap();

    // Default skipped.operations=t: truncates are dropped.
    let f = fixture("src_trunc").await;
    f.exec("CREATE TABLE e (id int PRIMARY KEY)").await;
    let mut src = PgSource::start(
        f.config(&[("table.include.list", "public\\.e")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec("INSERT INTO e VALUES (1); TRUNCATE e; INSERT INTO e VALUES (2);")
        .await;
    let evs = changes(&mut src, 2).await;
    assert_eq!(
        evs.iter().map(|e| e.op).collect::<Vec<_>>(),
        [Op::Create, Op::Create]
    );
    src.stop().await.unwrap();
}

/// The errors users meet most, each typed and actionable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_are_clear() {
    let f = fixture("src_err").await;
    f.exec("CREATE TABLE ok (id int PRIMARY KEY); CREATE TABLE nopk (a int);")
        .await;

    // Table without primary key or usable replica identity.
    let err = PgSource::start(
        f.config(&[("table.include.list", "public\\..*")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        Error::NoReplicaIdentity {
            tables: vec!["public.nopk".into()]
        }
    );
    assert!(err.to_string().contains("REPLICA IDENTITY FULL"));
    f.exec("ALTER TABLE nopk REPLICA IDENTITY FULL").await;

    // Slot in use by another consumer.
    let first = PgSource::start(
        f.config(&[("table.include.list", "public\\..*")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\..*"),
            ("slot.max.retries", "1"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    match &err {
        Error::SlotInUse { slot, pid, holder } => {
            assert_eq!(slot, &f.slot);
            assert!(*pid > 0);
            assert!(holder.contains("pg-cdc"), "{holder}");
        }
        other => panic!("expected SlotInUse, got {other:?}"),
    }
    assert!(err.to_string().contains("pg_terminate_backend"));
    first.stop().await.unwrap();

    // A user without REPLICATION.
    let role = unique_name("norepl");
    f.exec(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"))
        .await;
    let mut props = f.props(&[("table.include.list", "public\\.ok")]);
    props.insert("database.user".into(), role.clone());
    props.insert("database.password".into(), "pw".into());
    let err = PgSource::start(
        SourceConfig::from_properties(&props).unwrap(),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    f.exec(&format!("DROP ROLE {role}")).await;
    assert_eq!(
        err,
        Error::MissingReplicationPrivilege { user: role.clone() }
    );
    assert!(err.to_string().contains("WITH REPLICATION"));
    assert!(!format!("{err:?}{err}").contains("pw'"));

    // Publication disabled and missing.
    let err = PgSource::start(
        f.config(&[
            ("publication.autocreate.mode", "disabled"),
            ("publication.name", "nope_pub"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Publication { .. }), "{err}");

    // sslmode=require against a server without TLS: refused, not downgraded.
    let err = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.ok"),
            ("database.sslmode", "require"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    let text = err.to_string().to_lowercase();
    assert!(text.contains("tls") || text.contains("ssl"), "{err}");

    // Filtered with an include list matching nothing.
    let err = PgSource::start(
        f.config(&[("table.include.list", "public\\.missing")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no table matches"), "{err}");
}

/// Terminating the walsender mid-stream: the source reconnects and delivers
/// everything once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_walsender_is_terminated() {
    let f = fixture("src_reconn").await;
    f.exec("CREATE TABLE r (id int PRIMARY KEY)").await;
    let mut src = PgSource::start(
        f.config(&[("table.include.list", "public\\.r")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec("INSERT INTO r SELECT g FROM generate_series(1, 100) g")
        .await;
    let a = changes(&mut src, 100).await;
    src.ack(a[49].position); // half acknowledged
    let killed = f
        .client
        .execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1", &[&f.slot])
        .await
        .unwrap();
    assert_eq!(killed, 1);
    f.exec("INSERT INTO r SELECT g FROM generate_series(101, 150) g")
        .await;
    let b = changes(&mut src, 50).await;
    let ids: Vec<i64> = b
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    assert_eq!(
        ids,
        (101..=150).collect::<Vec<_>>(),
        "no duplicates, nothing lost"
    );
    src.stop().await.unwrap();
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn big_transaction(rows: i64) {
    let f = fixture("src_bigtx").await;
    f.exec(
        "CREATE TABLE employees (emp_id SERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100),
         department VARCHAR(50), salary DECIMAL(10,2), hire_date DATE, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
    )
    .await;
    let mut src = PgSource::start(
        f.config(&[("table.include.list", "public\\.employees")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    let before = peak_rss_kib();
    f.exec(&format!(
        "INSERT INTO employees (name, email, department, salary, hire_date)
         SELECT 'name ' || g, 'e' || g || '@example.com', 'dept ' || (g % 10), g % 100000 + 0.25, DATE '2020-01-01' + (g % 1000)
         FROM generate_series(1, {rows}) g"
    ))
    .await;
    let t0 = Instant::now();
    let mut n = 0i64;
    let mut commit = None;
    while n < rows {
        let ev = next_change(&mut src).await;
        assert_eq!(ev.position.seq, n as u64);
        commit = Some(ev.position.commit_lsn);
        n += 1;
        if n % 10_000 == 0 {
            src.ack(ev.position);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    eprintln!(
        "big transaction: {rows} rows in {secs:.2} s ({:.0} rows/s), peak RSS {} MiB (before {} MiB)",
        rows as f64 / secs,
        peak / 1024,
        before / 1024
    );
    assert!(commit.is_some());
    // Bounded: two event queues of 8192, not the transaction.
    assert!(
        peak < before + 400 * 1024,
        "peak RSS grew by {} MiB",
        (peak - before) / 1024
    );
    src.stop().await.unwrap();
}

/// A 1,000,000-row transaction streams through in bounded memory (never
/// buffered whole); prints rows/s and peak RSS. Also measured in release by
/// `benches/source_e2e.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_row_transaction_bounded_memory() {
    let rows = std::env::var("PGCDC_BIG_TX_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    big_transaction(rows).await;
}

/// `slot.drop.on.stop=true` removes the slot on an orderly stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_drop_on_stop() {
    let f = fixture("src_drop").await;
    f.exec("CREATE TABLE d (id int PRIMARY KEY)").await;
    let src = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.d"),
            ("slot.drop.on.stop", "true"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    src.stop().await.unwrap();
    let n: i64 = f
        .client
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&f.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// Idle stream: keepalives are acknowledged while nothing is in flight, so
/// WAL written by other tables does not stay pinned; heartbeats fire and run
/// `heartbeat.action.query`; transaction metadata when asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slot_advances_heartbeats_and_transaction_metadata() {
    let f = fixture("src_idle").await;
    f.exec("CREATE TABLE cap (id int PRIMARY KEY); CREATE TABLE noise (id int); CREATE TABLE hb (ts timestamptz)").await;
    let mut src = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.cap"),
            ("heartbeat.interval.ms", "300"),
            ("heartbeat.action.query", "INSERT INTO hb VALUES (now())"),
            ("provide.transaction.metadata", "true"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec("INSERT INTO cap VALUES (1), (2)").await;
    let mut kinds = Vec::new();
    let mut last = None;
    while kinds.len() < 4 {
        match next_event(&mut src).await {
            SourceEvent::TransactionBegin(m) => kinds.push(format!("begin:{}", m.id)),
            SourceEvent::Change(c) => {
                let t = c.transaction.clone().unwrap();
                kinds.push(format!(
                    "change:{}:{}:{}",
                    t.id, t.total_order, t.data_collection_order
                ));
                last = Some(c.position);
            }
            SourceEvent::TransactionEnd(m) => {
                assert_eq!(m.event_count, 2);
                kinds.push(format!("end:{}", m.id));
            }
            SourceEvent::Heartbeat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let id = kinds[0].trim_start_matches("begin:").to_owned();
    assert_eq!(
        kinds,
        [
            format!("begin:{id}"),
            format!("change:{id}:1:1"),
            format!("change:{id}:2:2"),
            format!("end:{id}")
        ]
    );
    src.ack(last.unwrap());
    // WAL from a table that is not captured; the slot must follow it.
    for i in 0..20 {
        f.exec(&format!("INSERT INTO noise VALUES ({i})")).await;
    }
    let target: String = f
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let target: cdc_envelope::Lsn = target.parse().unwrap();
    let t0 = Instant::now();
    let mut heartbeats = 0;
    loop {
        // Keep receiving so heartbeats flow.
        if let Ok(Ok(Some(SourceEvent::Heartbeat(_)))) =
            tokio::time::timeout(Duration::from_millis(200), src.recv()).await
        {
            heartbeats += 1;
        }
        let confirmed: String = f
            .client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&f.slot],
            )
            .await
            .unwrap()
            .get(0);
        let confirmed: cdc_envelope::Lsn = confirmed.parse().unwrap();
        if confirmed >= target && heartbeats >= 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "slot stayed at {confirmed} (WAL at {target}), {heartbeats} heartbeats"
        );
    }
    let hb_rows: i64 = f
        .client
        .query_one("SELECT count(*) FROM hb", &[])
        .await
        .unwrap()
        .get(0);
    assert!(hb_rows >= 2, "heartbeat.action.query ran {hb_rows} times");
    src.stop().await.unwrap();
}
