//! jdbc-sink throughput against the real target PostgreSQL.
//!
//! * `one-connection`: upserting existing `employees` rows — the sink's
//!   write path (UNNEST default, and the COPY staging path) vs the plain
//!   baseline "binary COPY into a temp staging table + INSERT … ON CONFLICT
//!   DO UPDATE" for the same rows into the same table, same batch size.
//! * `scaling`: the same upserts over 4 partitions with a pool of 1, 2, 4
//!   writer connections.
//!
//! Run: `cargo bench -p jdbc-sink --bench sink` (needs `cargo xtask services up`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use cdc_envelope::{
    ChangeEvent, Column, Date, Decimal, Numeric, Op, PgType, Position, SourceInfo, TableId,
    TableSchema, Timestamp, Value,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::SinkExt;
use jdbc_sink::encode::{encode_field, WireKind};
use jdbc_sink::{JdbcSink, SinkConfig, SinkPool, SinkRecord};

const ROWS: usize = 10_000;
const TOPIC: &str = "pgsource.public.employees";

fn schema() -> Arc<TableSchema> {
    let col = |n: &str, t: PgType, key: bool| Column {
        name: n.into(),
        pg_type: t,
        optional: !key,
        default_expr: None,
        is_key: key,
    };
    Arc::new(TableSchema {
        id: TableId::new("public", "employees"),
        relation_oid: 0,
        columns: vec![
            col("emp_id", PgType::base(23, "int4"), true),
            col(
                "name",
                PgType::base(1043, "varchar").with_modifier(104),
                false,
            ),
            col(
                "email",
                PgType::base(1043, "varchar").with_modifier(104),
                false,
            ),
            col(
                "department",
                PgType::base(1043, "varchar").with_modifier(54),
                false,
            ),
            col(
                "salary",
                PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4),
                false,
            ),
            col("hire_date", PgType::base(1082, "date"), false),
            col("created_at", PgType::base(1114, "timestamp"), false),
        ],
        version: 1,
    })
}

fn row(id: i32, round: u64) -> Vec<Value> {
    vec![
        Value::Int32(id),
        Value::Text(format!("Employee {id}").into()),
        Value::Text(format!("e{id}@example.com").into()),
        Value::Text(format!("dept-{}", round % 7).into()),
        Value::Numeric(Numeric::Finite(
            Decimal::parse(&format!("{}.{:02}", 50_000 + id, round % 100)).expect("decimal"),
        )),
        Value::Date(Date::Days(19_000 + id % 1000)),
        Value::Timestamp(Timestamp::PgMicros(
            1_700_000_000_000_000 - Timestamp::PG_EPOCH_UNIX_MICROS + i64::from(id),
        )),
    ]
}

fn records(s: &Arc<TableSchema>, round: u64, partitions: i32, offset_base: i64) -> Vec<SinkRecord> {
    (0..ROWS as i32)
        .map(|id| {
            let ev = ChangeEvent {
                op: Op::Update,
                table: Some(Arc::clone(s)),
                before: None,
                after: Some(row(id, round)),
                source: SourceInfo {
                    schema: "public".into(),
                    table: "employees".into(),
                    ..SourceInfo::default()
                },
                ts_ns: 0,
                transaction: None,
                message: None,
                position: Position::default(),
                key_change: None,
            };
            let p = id % partitions;
            SinkRecord::from_event(TOPIC, p, offset_base + i64::from(id / partitions), ev)
        })
        .collect()
}

fn config(url: &str, user: &str, pw: &str, path: &str, batch: usize) -> SinkConfig {
    SinkConfig::from_pairs([
        ("connection.url", url),
        ("connection.username", user),
        ("connection.password", pw),
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("schema.evolution", "basic"),
        ("table.name.format", "${source.table}"),
        ("errors.tolerance", "all"),
        ("pgcdc.write.path", path),
        ("batch.size", &batch.to_string()),
    ])
    .expect("config")
}

/// Baseline: binary COPY into a temp staging table, INSERT … ON CONFLICT.
async fn baseline(client: &tokio_postgres::Client, rows: &[Vec<Value>], batch: usize) {
    let kinds: Vec<WireKind> = schema()
        .columns
        .iter()
        .map(|c| WireKind::for_type(&c.pg_type))
        .collect();
    for chunk in rows.chunks(batch) {
        client
            .batch_execute("BEGIN; CREATE TEMP TABLE IF NOT EXISTS stage (LIKE employees) ON COMMIT DELETE ROWS")
            .await
            .expect("begin");
        let mut buf = BytesMut::with_capacity(chunk.len() * 96);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0);
        buf.put_i32(0);
        for r in chunk {
            buf.put_i16(r.len() as i16);
            for (v, k) in r.iter().zip(&kinds) {
                encode_field(&mut buf, v, k).expect("encode");
            }
        }
        buf.put_i16(-1);
        let sink = client
            .copy_in("COPY stage FROM STDIN (FORMAT binary)")
            .await
            .expect("copy");
        let mut sink = std::pin::pin!(sink);
        sink.send(buf.freeze()).await.expect("send");
        sink.finish().await.expect("finish");
        client
            .batch_execute(
                "INSERT INTO employees SELECT * FROM stage ON CONFLICT (emp_id) DO UPDATE SET name = EXCLUDED.name, \
                 email = EXCLUDED.email, department = EXCLUDED.department, salary = EXCLUDED.salary, \
                 hire_date = EXCLUDED.hire_date, created_at = EXCLUDED.created_at; COMMIT",
            )
            .await
            .expect("insert");
    }
}

/// CPU seconds used so far by process `pid` (0: this process), from
/// `/proc/<pid>/stat` (clock ticks of 10 ms; summed over many rounds).
fn cpu_of(pid: i32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let services = cdc_testkit::Services::get().expect("services: run `cargo xtask services up`");
    let db = rt
        .block_on(services.target().fresh_database("bench_sink"))
        .expect("database");
    let srv = db.server();
    // Same transport as the baseline's connection (cdc-testkit connects
    // without TLS): the target of `cargo xtask services up` has `ssl = on`,
    // and the sink's default `sslmode=prefer` would otherwise encrypt (and
    // the server decrypt) every batch that the baseline sends in clear.
    // `SINK_BENCH_SSLMODE=prefer` measures the sink over TLS instead.
    let sslmode = std::env::var("SINK_BENCH_SSLMODE").unwrap_or_else(|_| "disable".into());
    let url = format!(
        "jdbc:postgresql://{}:{}/{}?sslmode={sslmode}",
        srv.host(),
        srv.port(),
        db.name()
    );
    let (user, pw) = (srv.user(), srv.password());
    let s = schema();
    let client = rt.block_on(db.connect()).expect("connect");
    // Seed the table with the rows the benchmark then upserts.
    rt.block_on(async {
        let mut sink = JdbcSink::connect(config(&url, &user, &pw, "unnest", 500))
            .await
            .expect("sink");
        sink.write(&records(&s, 0, 1, 0)).await.expect("seed");
        client
            .batch_execute("VACUUM ANALYZE employees")
            .await
            .expect("vacuum");
    });
    let mut offset_base = 1_000_000i64;

    // Side by side, interleaved (sink, baseline, sink, baseline, …) so that
    // both see the same machine load; prints medians and the ratio.
    let rounds: usize = std::env::var("SINK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!(
        "side-by-side, {ROWS} existing rows upserted per round, {rounds} rounds, medians (sink sslmode={sslmode}, baseline without TLS):"
    );
    let base_pid: i32 = rt
        .block_on(client.query_one("SELECT pg_backend_pid()", &[]))
        .expect("pid")
        .get(0);
    // `SINK_BENCH_ONLY=5000/unnest,500/auto` limits the side-by-side table
    // to those lines (for quick A/B runs).
    let only: Option<Vec<String>> = std::env::var("SINK_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    for batch in [500usize, 5000] {
        for path in ["auto", "unnest", "copy"] {
            if only
                .as_ref()
                .is_some_and(|o| !o.contains(&format!("{batch}/{path}")))
            {
                continue;
            }
            let mut sink = rt
                .block_on(JdbcSink::connect(config(&url, &user, &pw, path, batch)))
                .expect("sink");
            // The sink's backend: the one other session of this database.
            let sink_pid: Option<i32> = rt
                .block_on(client.query_opt(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'pg-cdc-sink' ORDER BY backend_start DESC LIMIT 1",
                    &[],
                ))
                .expect("pid")
                .map(|r| r.get(0));
            let (mut ours, mut base) = (Vec::new(), Vec::new());
            // CPU seconds: (sink backend, sink client) and (baseline backend, baseline client).
            let (mut cpu_ours, mut cpu_base) = ((0.0, 0.0), (0.0, 0.0));
            for r in 0..rounds as u64 {
                offset_base += ROWS as i64;
                let recs = records(&s, r + 1, 1, offset_base);
                let (b0, c0) = (sink_pid.map_or(0.0, cpu_of), cpu_of(0));
                let t = Instant::now();
                let out = rt.block_on(sink.write(&recs)).expect("write");
                ours.push(t.elapsed().as_secs_f64());
                cpu_ours.0 += sink_pid.map_or(0.0, cpu_of) - b0;
                cpu_ours.1 += cpu_of(0) - c0;
                assert!(out.failed.is_empty());
                let rows: Vec<Vec<Value>> = (0..ROWS as i32).map(|id| row(id, r + 2)).collect();
                let (b0, c0) = (cpu_of(base_pid), cpu_of(0));
                let t = Instant::now();
                rt.block_on(baseline(&client, &rows, batch));
                base.push(t.elapsed().as_secs_f64());
                cpu_base.0 += cpu_of(base_pid) - b0;
                cpu_base.1 += cpu_of(0) - c0;
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            // Ratio of each sink round to the baseline round right after it
            // (same machine load), then the median of those.
            let mut paired: Vec<f64> = base.iter().zip(&ours).map(|(b, o)| b / o).collect();
            let paired = median(&mut paired);
            let (o, b) = (
                ROWS as f64 / median(&mut ours),
                ROWS as f64 / median(&mut base),
            );
            let per = |x: f64| x * 1000.0 / rounds as f64;
            println!(
                "  batch.size={batch:<5} path={path:<6}  sink {o:>9.0} rows/s   baseline COPY+ON CONFLICT {b:>9.0} rows/s   ratio {:.2} (paired {paired:.2})   \
                 CPU ms/round server+client: sink {:.0}+{:.0} baseline {:.0}+{:.0}",
                o / b,
                per(cpu_ours.0),
                per(cpu_ours.1),
                per(cpu_base.0),
                per(cpu_base.1),
            );
        }
    }

    // Client-side CPU only: planning (key extraction, reduction) and binary
    // encoding of 10k records, no database.
    let mut g = c.benchmark_group("jdbc-sink/client-cpu");
    g.sample_size(20)
        .throughput(Throughput::Elements(ROWS as u64));
    let cfg = config(&url, &user, &pw, "unnest", ROWS);
    let recs = records(&s, 1, 1, 0);
    let all: Vec<usize> = (0..recs.len()).collect();
    g.bench_function("plan+encode", |b| {
        b.iter(|| {
            let mut memory = jdbc_sink::reduce::TopicMemory::default();
            let p = jdbc_sink::reduce::plan(&cfg, None, &mut memory, &recs, &all);
            let mut buf = BytesMut::with_capacity(ROWS * 128);
            for t in &p.tables {
                for w in &t.writes {
                    for (v, c) in w.cells.iter().zip(&t.columns) {
                        encode_field(&mut buf, v, &c.wire).expect("encode");
                    }
                }
            }
            buf.len()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("jdbc-sink/upsert-existing-employees/one-connection");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(ROWS as u64));
    for batch in [500usize, 5000] {
        for path in ["unnest", "copy"] {
            let mut sink = rt
                .block_on(JdbcSink::connect(config(&url, &user, &pw, path, batch)))
                .expect("sink");
            g.bench_function(BenchmarkId::new(format!("sink-{path}"), batch), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        offset_base += ROWS as i64;
                        let recs = records(&s, i + 1, 1, offset_base);
                        let t = Instant::now();
                        let out = rt.block_on(sink.write(&recs)).expect("write");
                        total += t.elapsed();
                        assert!(out.failed.is_empty());
                    }
                    total
                })
            });
        }
        g.bench_function(BenchmarkId::new("baseline-copy-on-conflict", batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let rows: Vec<Vec<Value>> = (0..ROWS as i32).map(|id| row(id, i + 1)).collect();
                    let t = Instant::now();
                    rt.block_on(baseline(&client, &rows, batch));
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("jdbc-sink/upsert-existing-employees/scaling-4-partitions");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(ROWS as u64));
    for writers in [1usize, 2, 4] {
        let pool = rt
            .block_on(SinkPool::with_writers(
                config(&url, &user, &pw, "auto", 500),
                writers,
            ))
            .expect("pool");
        g.bench_function(BenchmarkId::new("pool-writers", writers), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    offset_base += ROWS as i64;
                    let recs = records(&s, i + 1, 4, offset_base);
                    let t = Instant::now();
                    let out = rt.block_on(pool.write(recs)).expect("write");
                    total += t.elapsed();
                    assert!(out.failed.is_empty());
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(sink, benches);
criterion_main!(sink);
