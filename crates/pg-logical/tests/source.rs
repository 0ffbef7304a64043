//! Integration tests of the replication source against the real source
//! PostgreSQL (`cargo xtask services up`). Each test uses its own database,
//! slot and publication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use cdc_envelope::{ChangeEvent, Op, Position, SnapshotMarker, TableId, Value};
use cdc_testkit::{unique_name, Services, TestDatabase};
use pg_logical::source::{
    MemoryOffsetStore, PgSource, SourceConfig, SourceEvent, StartPlan, TableSnapshot,
};
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

    /// The slot's `confirmed_flush_lsn` as the server reports it.
    async fn slot_confirmed(&self) -> cdc_envelope::Lsn {
        let row = self
            .client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .unwrap();
        row.get::<_, String>(0).parse().unwrap()
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
    let confirmed = f.slot_confirmed().await;
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
    // The chunk planner counted the rows to read.
    let expect = |rows: u64| {
        vec![TableSnapshot {
            table: TableId::new("public", "big"),
            expected_rows: Some(rows),
        }]
    };
    assert_eq!(src.stats().snapshot_tables(), expect(10000));
    src.ack(first[3499].position);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(src); // crash: no orderly stop
    let progress = store.get().unwrap().snapshot.unwrap();
    assert!(!progress.completed);

    let mut src = PgSource::start(cfg(), store.clone()).await.unwrap();
    assert_eq!(src.info().plan, StartPlan::ResumeSnapshot);
    let rest_first = next_change(&mut src).await;
    // Resumed: only the rows of the unfinished chunks are left to read.
    assert_eq!(src.stats().snapshot_tables(), expect(7000));
    let mut seen: HashSet<i64> = first
        .iter()
        .map(|e| int(&e.after.as_ref().unwrap()[0]))
        .collect();
    let mut rest = vec![rest_first];
    rest.extend(changes(&mut src, 10000 - 3000 - 1).await);
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
    // Replication lag in bytes: the server's WAL end is past the change;
    // once acknowledged, the confirmed position catches up with it.
    let stats = src.stats();
    let commit = ev.position.commit_lsn;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.server_wal_end() < Some(commit) {
        assert!(
            Instant::now() < deadline,
            "no WAL end past {commit}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    src.ack(ev.position);
    while stats.confirmed_flush() < Some(commit) {
        assert!(Instant::now() < deadline, "never confirmed: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (end, flushed) = (
        stats.server_wal_end().unwrap(),
        stats.confirmed_flush().unwrap(),
    );
    assert!(end >= flushed);
    assert!(stats.lag_bytes().is_some_and(|lag| lag <= end.0 - commit.0));
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

    // verify-ca with a CA file that is not there: a TLS configuration error
    // naming the property (the source serves TLS since `services up` makes
    // a test CA; TLS handshakes are covered by the tls_* tests).
    let err = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.ok"),
            ("database.sslmode", "verify-ca"),
            ("database.sslrootcert", "/nonexistent/pg-cdc-ca.crt"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("database.sslrootcert"), "{err}");

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
        let confirmed = f.slot_confirmed().await;
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

/// PostgreSQL's whole timestamp range (4714 BC … 294276 AD, ±infinity)
/// travels losslessly: the decoded values equal the server's own binary
/// representation, ZonedTimestamp text equals what PostgreSQL prints for the
/// instant (in java.time's year style), and int64 encodings counting from
/// 1970 refuse what they cannot hold instead of wrapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_timestamps_are_carried_losslessly() {
    use cdc_envelope::{Error as EnvError, JsonEncoder, Options, Timestamp};

    let f = fixture("src_ts").await;
    f.exec("CREATE TABLE t (id int PRIMARY KEY, ts timestamp, tstz timestamptz)")
        .await;
    let mut src = PgSource::start(
        f.config(&[("table.include.list", "public\\.t")]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec(
        "SET TIME ZONE 'UTC';
         INSERT INTO t VALUES
          (1, '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00'),
          (2, '4714-11-24 00:00:00 BC', '4714-11-24 00:00:00+00 BC'),
          (3, 'infinity', '-infinity'),
          (4, '294247-01-10 04:00:54.775807', '294247-01-10 04:00:54.775807+00'),
          (5, '294247-01-10 04:00:54.775808', '294247-01-10 04:00:54.775808+00'),
          (6, '2024-05-06 07:08:09.123456', '2024-05-06 07:08:09.123456+02')",
    )
    .await;
    let evs = changes(&mut src, 6).await;
    src.stop().await.unwrap();

    // Ground truth from the server: the binary send format (µs since 2000,
    // i64::MAX/MIN for ±infinity), ms since 1970 computed in numeric, and
    // the UTC instant as text with java.time's year rules (4 digits, '+'
    // beyond 9999, astronomical negative years).
    let rows = f
        .client
        .query(
            "SELECT id,
               ('x' || encode(timestamp_send(ts), 'hex'))::bit(64)::bigint,
               ('x' || encode(timestamptz_send(tstz), 'hex'))::bit(64)::bigint,
               CASE WHEN isfinite(ts) THEN floor((('x' || encode(timestamp_send(ts), 'hex'))::bit(64)::bigint::numeric
                                                  + 946684800000000) / 1000)::text END,
               CASE WHEN isfinite(tstz) THEN
                 (SELECT CASE WHEN y < 0 THEN '-' || lpad((-(y + 1))::text, 4, '0')
                              WHEN y > 9999 THEN '+' || y::text
                              ELSE lpad(y::text, 4, '0') END
                    FROM (SELECT extract(year FROM tstz AT TIME ZONE 'UTC')::int AS y) yy)
                 || to_char(tstz AT TIME ZONE 'UTC', '-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
               ELSE tstz::text END
             FROM t ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    let mut adaptive = JsonEncoder::new(Options::default());
    let mut connect =
        JsonEncoder::new(Options::from_properties([("time.precision.mode", "connect")]).unwrap());
    for (ev, row) in evs.iter().zip(&rows) {
        let id: i32 = row.get(0);
        let after = ev.after.as_ref().unwrap();
        assert_eq!(int(&after[0]), i64::from(id));
        let (Value::Timestamp(ts), Value::TimestampTz(tstz)) = (&after[1], &after[2]) else {
            panic!("id {id}: {after:?}");
        };
        assert_eq!(ts.to_pg_binary(), row.get::<_, i64>(1), "id {id} ts");
        assert_eq!(tstz.to_pg_binary(), row.get::<_, i64>(2), "id {id} tstz");

        // ZonedTimestamp carries every instant exactly.
        let zoned: String = row.get(4);
        let needle = format!("\"tstz\":\"{zoned}\"");
        // MicroTimestamp (int64 µs since 1970) only where it fits.
        let fits = ts.micros_since_unix().is_some() || !matches!(ts, Timestamp::PgMicros(_));
        match adaptive.encode(ev) {
            Ok(rec) => {
                assert!(fits, "id {id}: {ts:?} must not be written as int64 µs");
                let text = String::from_utf8(rec.value.unwrap()).unwrap();
                assert!(text.contains(&needle), "id {id}: {needle} not in {text}");
                if let Some(us) = ts.micros_since_unix() {
                    assert!(text.contains(&format!("\"ts\":{us}")), "id {id}: {text}");
                }
            }
            Err(e) => {
                assert!(!fits, "id {id}: {e}");
                assert!(
                    matches!(&e, EnvError::Unrepresentable { column, .. } if column == "ts"),
                    "id {id}: {e:?}"
                );
            }
        }
        // Connect Timestamp (int64 ms since 1970) holds all of PostgreSQL's range.
        let text = String::from_utf8(connect.encode(ev).unwrap().value.unwrap()).unwrap();
        if let Some(ms) = row.get::<_, Option<String>>(3) {
            assert!(text.contains(&format!("\"ts\":{ms}")), "id {id}: {text}");
        }
        assert!(text.contains(&needle), "id {id}: {needle} not in {text}");
    }
    // The rows that exercise the edges really are there.
    assert!(
        matches!(evs[0].after.as_ref().unwrap()[1], Value::Timestamp(t) if t.micros_since_unix().is_none())
    );
    assert!(
        matches!(evs[3].after.as_ref().unwrap()[1], Value::Timestamp(t) if t.micros_since_unix() == Some(i64::MAX))
    );
}

/// A primary-key change carries the other half's key, and the header bytes
/// built from it equal what Debezium + Kafka Connect's SimpleHeaderConverter
/// wrote for the same DML (fixtures/debezium_key_headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_change_headers_match_debezium() {
    use cdc_envelope::headers::{key_change_header, NEW_KEY_HEADER, OLD_KEY_HEADER};
    use cdc_envelope::{topic_name, KeyChange, Options};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/debezium_key_headers");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let f = fixture("src_pkhdr").await;
    f.exec(&read("setup.sql")).await;
    let mut src = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.k_.*"),
            ("snapshot.mode", "no_data"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    f.exec_each(&read("dml.sql")).await;
    let evs = changes(&mut src, 14).await;
    src.stop().await.unwrap();

    // Pairs: delete of the old key (with the new key), create of the new
    // key (with the old key), consistent with before/after.
    for pair in evs.chunks(2) {
        let (d, c) = (&pair[0], &pair[1]);
        assert_eq!((d.op, c.op), (Op::Delete, Op::Create));
        let table = d.table.as_ref().unwrap();
        let key = |row: &Option<Vec<Value>>| -> Vec<Value> {
            let row = row.as_ref().unwrap();
            table.key_indices().map(|i| row[i].clone()).collect()
        };
        // Debug text: the k_misc key holds a NaN.
        let dbg = |k: &Option<KeyChange>| format!("{k:?}");
        assert_eq!(
            dbg(&d.key_change),
            dbg(&Some(KeyChange::NewKey(key(&c.after))))
        );
        assert_eq!(
            dbg(&c.key_change),
            dbg(&Some(KeyChange::OldKey(key(&d.before))))
        );
    }

    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (file, props) in [
        ("default.tsv", vec![]),
        (
            "seed.tsv",
            vec![
                ("decimal.handling.mode", "string"),
                ("time.precision.mode", "connect"),
                ("binary.handling.mode", "hex"),
            ],
        ),
    ] {
        let mut props = props;
        props.push(("topic.prefix", "pgsource"));
        let options = Options::from_properties(props).unwrap();
        let text = read(file);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').collect())
            .collect();
        // Debezium copies a delete's header onto its tombstone.
        for w in lines.windows(2) {
            if w[1][1] == "tombstone" {
                assert_eq!((w[0][1], w[0][2], w[0][3]), ("record", w[1][2], w[1][3]));
            }
        }
        let want: Vec<(String, String, String)> = lines
            .iter()
            .filter(|l| l[1] == "record")
            .map(|l| (l[0].to_owned(), l[2].to_owned(), l[3].to_owned()))
            .collect();
        let got: Vec<(String, String, String)> = evs
            .iter()
            .map(|ev| {
                let (name, bytes) = key_change_header(ev, &options).unwrap().unwrap();
                assert_eq!(
                    name,
                    if ev.op == Op::Delete {
                        NEW_KEY_HEADER
                    } else {
                        OLD_KEY_HEADER
                    }
                );
                (
                    topic_name(ev, &options).unwrap(),
                    name.to_owned(),
                    hex(&bytes),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{file}");
        for (g, w) in got.iter().zip(&want) {
            let text = |h: &str| {
                String::from_utf8(
                    (0..h.len() / 2)
                        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                        .collect(),
                )
                .unwrap()
            };
            assert_eq!(g, w, "{file}: got {} want {}", text(&g.2), text(&w.2));
        }
    }
}

/// The CA of the source's TLS certificate (`cargo xtask services up` makes it).
fn source_ca() -> std::path::PathBuf {
    Services::get()
        .unwrap()
        .source_ssl_root_cert()
        .expect("the source serves TLS")
}

/// A host name other than `localhost` that resolves to 127.0.0.1 (where
/// the source listens) but is not in its certificate: the machine's name.
async fn other_loopback_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let loopback = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map(|mut a| a.any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST))
        .unwrap_or(false);
    assert!(
        !name.is_empty() && name != "localhost" && loopback,
        "the wrong-host-name check needs this machine's name ({name:?}) to resolve to 127.0.0.1 \
         (add `127.0.0.1 {name}` to /etc/hosts)"
    );
    name
}

/// `sslmode` prefer (Debezium's default) / require / verify-ca /
/// verify-full against a server that offers TLS: a change streams, and both
/// the SQL connection and the walsender are encrypted (pg_stat_ssl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_stream_over_tls_on_both_connections() {
    use pg_logical::source::catalog;

    let ca = source_ca().display().to_string();
    for (mode, host) in [
        ("prefer", "127.0.0.1"),
        ("require", "127.0.0.1"),
        ("verify-ca", "127.0.0.1"),
        ("verify-full", "localhost"),
    ] {
        let f = fixture("src_tls").await;
        f.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
        let mut props = vec![
            ("database.hostname", host),
            ("database.sslmode", mode),
            ("table.include.list", "public\\.t"),
        ];
        if mode.starts_with("verify") {
            props.push(("database.sslrootcert", ca.as_str()));
        }
        let cfg = f.config(&props);
        // The SQL connection, asked from inside.
        let sql = catalog::connect(&cfg, "pg-cdc tls probe").await.unwrap();
        let row = sql
            .query_one(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "{mode}: SQL connection not encrypted"
        );
        assert!(row.get::<_, String>(1).starts_with("TLS"), "{mode}");

        let mut src = PgSource::start(cfg, MemoryOffsetStore::new())
            .await
            .unwrap();
        f.exec("INSERT INTO t VALUES (7)").await;
        let ev = next_change(&mut src).await;
        assert_eq!(
            (ev.op, int(&ev.after.as_ref().unwrap()[0])),
            (Op::Create, 7)
        );
        // The walsender streaming to us, and the source's own SQL sessions.
        let walsenders: Vec<bool> = f
            .client
            .query(
                "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) \
                 JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(walsenders, [true], "{mode}: walsender TLS");
        let sessions: Vec<bool> = f
            .client
            .query(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.datname = current_database() AND a.backend_type = 'client backend' \
                   AND a.application_name LIKE 'pg-cdc %'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !sessions.is_empty() && sessions.iter().all(|s| *s),
            "{mode}: source SQL sessions {sessions:?}"
        );
        src.stop().await.unwrap();
    }
}

/// verify-full against a host name the certificate does not list, and
/// verify-full / verify-ca against a CA that did not sign it, fail on both
/// connections with a typed error that says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_failures_are_typed_and_actionable() {
    use pg_logical::source::{catalog, slot};

    let ca = source_ca().display().to_string();
    let wrong_host = other_loopback_name().await;
    // A CA that did not sign the server's certificate.
    let dir = std::env::temp_dir().join(unique_name("pglogical_other_ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca = dir.join("other-ca.crt");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-days", "1", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=other CA",
        ])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .expect("openssl (also needed by `cargo xtask services up` for the TLS test CA)");
    assert!(out.status.success(), "{out:?}");
    let other_ca = other_ca.display().to_string();

    let f = fixture("src_tlsbad").await;
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "verify-full",
            wrong_host.as_str(),
            ca.as_str(),
            "not issued for host",
        ),
        (
            "verify-full",
            "localhost",
            other_ca.as_str(),
            "not signed by a CA in",
        ),
        (
            "verify-ca",
            "127.0.0.1",
            other_ca.as_str(),
            "not signed by a CA in",
        ),
    ];
    for (mode, host, root, hint) in cases {
        let cfg = f.config(&[
            ("database.hostname", host),
            ("database.sslmode", mode),
            ("database.sslrootcert", root),
        ]);
        let sql = catalog::connect(&cfg, "pg-cdc tls probe").await.err();
        let repl = slot::create_slot(&cfg, false).await.err();
        for (conn, e) in [("SQL", sql), ("replication", repl)] {
            let e = e.unwrap_or_else(|| panic!("{mode} {host}: {conn} connection succeeded"));
            match &e {
                Error::Tls { connection, .. } => assert_eq!(*connection, conn),
                other => panic!("{mode} {host} {conn}: {other:?}"),
            }
            assert!(!e.is_retriable());
            let text = e.to_string();
            assert!(text.contains(hint), "{mode} {host} {conn}: {text}");
            assert!(text.contains("database.sslrootcert") || text.contains("database.hostname"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The source authenticates the user with SCRAM; a wrong password is a
/// typed, non-retriable error on both connections and never shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_authentication_and_wrong_password() {
    use pg_logical::source::{catalog, slot};

    let f = fixture("src_auth").await;
    // The server stores a SCRAM verifier and asks for scram-sha-256 over TCP.
    let row = f
        .client
        .query_one(
            "SELECT left(rolpassword, 14), current_setting('password_encryption') \
             FROM pg_authid WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0).as_str(),
            row.get::<_, String>(1).as_str()
        ),
        ("SCRAM-SHA-256$", "scram-sha-256")
    );
    let methods: Vec<String> = f
        .client
        .query(
            "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(methods, ["scram-sha-256"]);
    // The right password works (SCRAM) on both connections, with and without TLS.
    for mode in ["disable", "require"] {
        let cfg = f.config(&[("database.sslmode", mode)]);
        catalog::connect(&cfg, "pg-cdc auth probe").await.unwrap();
        drop(slot::create_slot(&cfg, false).await.unwrap());
        f.exec(&format!("SELECT pg_drop_replication_slot('{}')", f.slot))
            .await;
    }

    let wrong = "Wr0ng-pa55word-7d1f";
    for mode in ["disable", "require"] {
        let cfg = f.config(&[("database.password", wrong), ("database.sslmode", mode)]);
        let sql = catalog::connect(&cfg, "pg-cdc auth probe").await.err();
        let repl = slot::create_slot(&cfg, false).await.err();
        let start = PgSource::start(cfg, MemoryOffsetStore::new()).await.err();
        for (conn, e) in [("SQL", sql), ("replication", repl), ("SQL", start)] {
            let e = e.unwrap_or_else(|| panic!("{mode}: {conn} connected with a wrong password"));
            match &e {
                Error::Authentication { connection, .. } => assert_eq!(*connection, conn),
                other => panic!("{mode} {conn}: {other:?}"),
            }
            assert!(!e.is_retriable());
            let text = format!("{e} {e:?}");
            assert!(!text.contains(wrong), "{text}");
            assert!(text.contains("database.password"), "{text}");
        }
    }
}

/// A range-partitioned table with `publish.via.partition.root=true`: the
/// publication publishes through the root, the snapshot reads the root once,
/// and snapshot + stream deliver every row exactly once, under the root
/// table's name (Debezium's `publish.via.partition.root`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_table_via_root_exactly_once() {
    let f = fixture("src_part").await;
    f.exec(
        "CREATE TABLE m (id int, day date, v text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE m_2023 PARTITION OF m FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO m VALUES (1, '2023-03-01', 'a'), (2, '2023-04-01', 'b'),
                              (3, '2024-03-01', 'c'), (4, '2024-04-01', 'd');",
    )
    .await;
    let mut src = PgSource::start(
        f.config(&[
            ("table.include.list", "public\\.m"),
            ("publish.via.partition.root", "true"),
        ]),
        MemoryOffsetStore::new(),
    )
    .await
    .unwrap();
    let via_root: bool = f
        .client
        .query_one(
            "SELECT pubviaroot FROM pg_publication WHERE pubname = $1",
            &[&f.publication],
        )
        .await
        .unwrap()
        .get(0);
    assert!(via_root);
    f.exec_each(
        "INSERT INTO m VALUES (5, '2023-05-01', 'e'), (6, '2024-05-01', 'f');
         UPDATE m SET v = 'a2' WHERE id = 1;
         DELETE FROM m WHERE id = 2;",
    )
    .await;
    // 4 snapshot reads, then c, c, u, d.
    let evs = changes(&mut src, 8).await;
    src.stop().await.unwrap();
    for ev in &evs {
        let t = &ev.table.as_ref().unwrap().id;
        assert_eq!(
            (t.schema.as_str(), t.table.as_str()),
            ("public", "m"),
            "{ev:?}"
        );
    }
    let ops: String = evs.iter().map(|e| e.op.code()).collect();
    assert_eq!(ops, "rrrrccud");
    let id_of = |ev: &ChangeEvent| int(&ev.after.as_ref().or(ev.before.as_ref()).unwrap()[0]);
    let mut snapshot: Vec<i64> = evs[..4].iter().map(id_of).collect();
    snapshot.sort_unstable();
    assert_eq!(snapshot, [1, 2, 3, 4], "each existing row read once");
    let stream: Vec<i64> = evs[4..].iter().map(id_of).collect();
    assert_eq!(stream, [5, 6, 1, 2]);
    assert_eq!(
        col(&evs[6], evs[6].after.as_ref().unwrap(), "v"),
        &Value::Text("a2".into())
    );
}

/// Binary (`binary 'true'`) values of arrays, network types, ranges and bit
/// strings, taken from the server's own send functions, decode to what the
/// server prints as text (and to what the text decoder makes of that text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_send_formats_match_server_text() {
    use bytes::Bytes;
    use pg_logical::{builtin_pg_type, ValueDecoder};

    let f = fixture("src_binfmt").await;
    f.exec("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3")
        .await;
    let exprs = [
        "'10.1.2.3/8'::inet",
        "'10.1.2.3'::inet",
        "'10.0.0.0/8'::cidr",
        "'192.168.0.7/32'::cidr",
        "'::'::inet",
        "'::1'::inet",
        "'1::'::inet",
        "'::ffff:1.2.3.4'::inet",
        "'::1.2.3.4'::inet",
        "'::0.0.0.2'::inet",
        "'fe80::1:0:0:1/64'::inet",
        "'0:0:1:0:0:1:0:0'::inet",
        "'1:0:0:1:0:0:1:1'::inet",
        "'a:b:c:d:e:f:0:0'::inet",
        "'2001:db8::/32'::cidr",
        "'::/0'::cidr",
        "'08:00:2b:01:02:03'::macaddr",
        "'08:00:2b:01:02:03:04:05'::macaddr8",
        "B'101'::bit(3)",
        "''::varbit",
        "B'1010101010'::varbit",
        "'[1,10)'::int4range",
        "'(,5]'::int4range",
        "'empty'::int4range",
        "'(,)'::int8range",
        "'[-9223372036854775808,9223372036854775807)'::int8range",
        "'[1.50,2.25)'::numrange",
        "'[-Infinity,Infinity]'::numrange",
        "'[2024-01-01,infinity)'::daterange",
        "'[0044-03-15 BC,2024-02-29)'::daterange",
        "'[2024-01-01 10:00:00.5,infinity)'::tsrange",
        "'[4714-11-24 00:00:00 BC,294276-12-31 23:59:59.999999)'::tsrange",
        "'(\"2024-01-01 10:00:00+02\",\"2024-01-02 00:00:00.000001+00\"]'::tstzrange",
        "'[0044-03-15 12:00:00+00 BC,)'::tstzrange",
        "'[0:1][-2:-1]={{1,2},{3,NULL}}'::int4[]",
        "'{}'::int4[]",
        "ARRAY['a\"b', NULL, 'c,d', '', 'x y']::text[]",
        "ARRAY['10.0.0.1/8', '::1']::inet[]",
        "ARRAY['[1,2)', 'empty']::int4range[]",
        "ARRAY['2024-01-01', '-infinity']::date[]",
        "ARRAY[1.5, NULL, 'NaN']::numeric[]",
        "ARRAY['294276-12-31 23:59:59.999999+00']::timestamptz[]",
        "ARRAY[B'1', B'0']::bit(1)[]",
    ];
    for expr in exprs {
        let row = f
            .client
            .query_one(
                &format!(
                    // format('%s') uses the output function (inet's ::text
                    // cast would add the /32).
                    "SELECT pg_typeof(x)::oid, format('%s', x), t.typsend::regproc::text \
                     FROM (SELECT {expr} AS x) s JOIN pg_type t ON t.oid = pg_typeof(x)"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let (oid, text, send): (u32, String, String) = (row.get(0), row.get(1), row.get(2));
        let bytes: Vec<u8> = f
            .client
            .query_one(&format!("SELECT {send}({expr})"), &[])
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .get(0);
        let ty = builtin_pg_type(oid, -1).unwrap_or_else(|| panic!("{expr}: OID {oid}"));
        let dec = ValueDecoder::for_type(&ty);
        let bin = dec
            .decode_binary(&Bytes::from(bytes))
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let from_text = dec
            .decode_text(&Bytes::from(text.clone()))
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(format!("{bin:?}"), format!("{from_text:?}"), "{expr}");
        if let Value::Text(s) = &bin {
            assert_eq!(s.as_str(), text, "{expr}");
        }
    }
}

/// Snapshot progress of a table without a key (read in one chunk, not
/// counted by the planner): the planner's estimate after `ANALYZE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_size_of_a_keyless_table_is_the_planner_estimate() {
    let f = fixture("src_nokey").await;
    f.exec(
        "CREATE TABLE nokey (v int); ALTER TABLE nokey REPLICA IDENTITY FULL;
         INSERT INTO nokey SELECT g FROM generate_series(1, 500) g; ANALYZE nokey;",
    )
    .await;
    let cfg = f.config(&[("table.include.list", "public\\.nokey")]);
    let mut src = PgSource::start(cfg, MemoryOffsetStore::new())
        .await
        .unwrap();
    let read = changes(&mut src, 500).await;
    assert!(read.iter().all(|e| e.op == Op::Read));
    assert_eq!(
        src.stats().snapshot_tables(),
        vec![TableSnapshot {
            table: TableId::new("public", "nokey"),
            expected_rows: Some(500),
        }]
    );
    src.stop().await.unwrap();
}

/// An offset store that holds every `store` call until the gate opens, and
/// records what it stored.
#[derive(Clone)]
struct GatedStore {
    open: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stored: std::sync::Arc<std::sync::Mutex<Option<pg_logical::source::offset::SourceOffset>>>,
}

impl pg_logical::source::offset::OffsetStore for GatedStore {
    async fn load(&self) -> pg_logical::Result<Option<pg_logical::source::offset::SourceOffset>> {
        Ok(None)
    }

    async fn store(
        &self,
        offset: &pg_logical::source::offset::SourceOffset,
    ) -> pg_logical::Result<()> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.open.subscribe();
        while !*open.borrow_and_update() {
            if open.changed().await.is_err() {
                break;
            }
        }
        *self.stored.lock().unwrap() = Some(offset.clone());
        Ok(())
    }
}

/// While the offset store is slow (for the exactly-once pipeline it waits
/// for a Kafka commit), the stream keeps delivering new transactions, and
/// the slot is confirmed only once the store covering a position returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_offset_store_neither_stalls_the_stream_nor_confirms_early() {
    let f = fixture("src_slowstore").await;
    f.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let store = GatedStore {
        open: std::sync::Arc::new(tokio::sync::watch::channel(true).0),
        calls: Default::default(),
        stored: Default::default(),
    };
    let cfg = f.config(&[
        ("table.include.list", "public\\.t"),
        ("snapshot.mode", "no_data"),
    ]);
    let mut src = PgSource::start(cfg, store.clone()).await.unwrap();
    let stats = src.stats();
    let wait_confirmed = |lsn: cdc_envelope::Lsn| {
        let stats = stats.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while stats.confirmed_flush() <= Some(lsn) {
                assert!(
                    Instant::now() < deadline,
                    "{lsn} never confirmed: {stats:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Gate open: acknowledged → stored → confirmed.
    f.exec("INSERT INTO t SELECT generate_series(1, 10)").await;
    let a = changes(&mut src, 10).await;
    src.ack(a[9].position);
    wait_confirmed(a[9].position.commit_lsn).await;

    // Gate closed: the next acknowledgement's store hangs.
    store.open.send_replace(false);
    let calls_before = store.calls.load(std::sync::atomic::Ordering::SeqCst);
    f.exec("INSERT INTO t SELECT generate_series(11, 20)").await;
    let b = changes(&mut src, 10).await;
    src.ack(b[9].position);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.calls.load(std::sync::atomic::Ordering::SeqCst) == calls_before {
        assert!(
            Instant::now() < deadline,
            "the offset was never handed to the store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The stream is not blocked by the pending store: later transactions
    // arrive while it hangs.
    for txn in 0..3 {
        f.exec(&format!(
            "INSERT INTO t SELECT generate_series({}, {})",
            100 + txn * 10,
            109 + txn * 10
        ))
        .await;
    }
    let c = changes(&mut src, 30).await;
    assert_eq!(int(&c[29].after.as_ref().unwrap()[0]), 129);
    // ... but nothing past the pending store is confirmed to the slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b_commit = b[9].position.commit_lsn;
    assert!(
        stats.confirmed_flush() <= Some(b_commit),
        "confirmed {:?} past {b_commit} before its offset was stored",
        stats.confirmed_flush()
    );
    let in_slot = f.slot_confirmed().await;
    assert!(
        in_slot <= b_commit,
        "slot at {in_slot}, store still pending"
    );
    assert!(store.stored.lock().unwrap().as_ref().unwrap().acked < Some(b[9].position));

    // Open the gate: the store completes and the slot moves past B.
    store.open.send_replace(true);
    wait_confirmed(b_commit).await;
    assert_eq!(
        store.stored.lock().unwrap().as_ref().unwrap().acked,
        Some(b[9].position)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.slot_confirmed().await <= b_commit {
        assert!(
            Instant::now() < deadline,
            "slot never advanced past {b_commit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    src.ack(c[29].position);
    src.stop().await.unwrap();
    assert_eq!(
        store.stored.lock().unwrap().as_ref().unwrap().acked,
        Some(c[29].position),
        "the final offset is stored on stop"
    );
}

/// The walsender can decode a transaction before it is visible to other
/// sessions; the catalog read for a Relation message waits for it
/// (`catalog::wait_until_visible`), against the real server here.
#[tokio::test]
async fn catalog_reads_wait_until_the_decoded_transaction_is_visible() {
    use pg_logical::source::catalog;
    let f = fixture("visible").await;
    let sql = catalog::connect(&f.config(&[]), "pg-cdc visibility probe")
        .await
        .expect("sql connection");
    f.exec("BEGIN").await;
    let full: i64 = f
        .client
        .query_one("SELECT txid_current()", &[])
        .await
        .expect("xid")
        .get(0);
    let xid = u32::try_from(full & 0xffff_ffff).expect("32 bits");
    let waited = Instant::now();
    let visible = catalog::wait_until_visible(&sql, xid, Duration::from_millis(150))
        .await
        .expect("query");
    assert!(!visible, "an open transaction is not visible");
    assert!(
        waited.elapsed() >= Duration::from_millis(150),
        "it waited the limit"
    );
    f.exec("COMMIT").await;
    assert!(
        catalog::wait_until_visible(&sql, xid, Duration::from_secs(5))
            .await
            .expect("query"),
        "a committed transaction is visible"
    );
    // Transaction ids from long ago (the bootstrap xid) and not yet assigned
    // (ahead of the next xid) are placed in the right epoch.
    assert!(catalog::wait_until_visible(&sql, 3, Duration::ZERO)
        .await
        .expect("query"));
    let ahead = xid.wrapping_add(1_000_000);
    assert!(!catalog::wait_until_visible(&sql, ahead, Duration::ZERO)
        .await
        .expect("query"));
}
