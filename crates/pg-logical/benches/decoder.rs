//! pgoutput decoder throughput: raw message decoding (GB/s) and typed rows
//! (rows/s) for the seed's `employees` shape, on messages captured from
//! PostgreSQL 15 (`tests/fixtures/pg15/v1_text.hex`).
//!
//! `cargo bench -p pg-logical --bench decoder`
//!
//! Wall-clock time: on a machine shared with other work (load average above
//! the core count) the numbers drop accordingly; note the load with them.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pg_logical::{Decoder, PgOutputMessage, RelationCache};

fn fixture() -> Vec<Bytes> {
    let text = include_str!("../tests/fixtures/pg15/v1_text.hex");
    text.lines()
        .map(|l| {
            Bytes::from(
                (0..l.len() / 2)
                    .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap())
                    .collect::<Vec<u8>>(),
            )
        })
        .collect()
}

/// The employees Relation message and its first Insert.
fn employees() -> (Bytes, Bytes) {
    let msgs = fixture();
    let mut decoder = Decoder::new();
    let mut rel = None;
    for m in msgs {
        match decoder.decode(m.clone()).unwrap() {
            PgOutputMessage::Relation(r) if r.name == "employees" && rel.is_none() => {
                rel = Some((m, r.oid))
            }
            PgOutputMessage::Insert(i) if rel.as_ref().is_some_and(|r| r.1 == i.relation_oid) => {
                return (rel.unwrap().0, m);
            }
            _ => {}
        }
    }
    panic!("no employees insert in the fixture");
}

/// `n` copies of `msg` sliced out of one contiguous buffer, like a stream of XLogData payloads.
fn batch(msg: &Bytes, n: usize) -> Vec<Bytes> {
    let mut buf = Vec::with_capacity(msg.len() * n);
    for _ in 0..n {
        buf.extend_from_slice(msg);
    }
    let buf = Bytes::from(buf);
    (0..n)
        .map(|i| buf.slice(i * msg.len()..(i + 1) * msg.len()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let (rel, insert) = employees();
    const N: usize = 1000;
    let inserts = batch(&insert, N);
    let all = fixture();
    let all_bytes: usize = all.iter().map(Bytes::len).sum();

    let mut g = c.benchmark_group("raw_decode");
    g.throughput(Throughput::Bytes((insert.len() * N) as u64));
    g.bench_function("employees_insert", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            for m in &inserts {
                black_box(d.decode(m.clone()).unwrap());
            }
        })
    });
    g.throughput(Throughput::Bytes(all_bytes as u64));
    g.bench_function("pg15_capture_mix", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            for m in &all {
                black_box(d.decode(m.clone()).unwrap());
            }
        })
    });
    g.finish();

    let mut cache = RelationCache::new();
    cache.apply(&Decoder::new().decode(rel).unwrap());
    let mut g = c.benchmark_group("typed");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("employees_rows", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            for m in &inserts {
                let msg = d.decode(m.clone()).unwrap();
                black_box(cache.row_change(&msg).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
