//! Micro-benchmarks for the hot protocol work on every message: parsing a client's line and
//! serializing the relayed line once. `cargo bench -p parley-proto`; numbers go in BENCHMARKS.md,
//! never into test assertions.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parley_proto::{write_line, Message};

const PRIVMSG: &str = "PRIVMSG #general :b3 1234 987654321 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";
const TAGGED: &str = "@time=2026-11-25T13:37:00.000Z;account=alice;+draft/reply=abc123 :alice!alice@parley/user PRIVMSG #general :hello there, how is everyone doing today?\r\n";
const NUMERIC: &str = ":parley.local 353 alice = #general :@alice +bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy\r\n";

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, line) in [("privmsg", PRIVMSG), ("tagged", TAGGED), ("names", NUMERIC)] {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| Message::parse(black_box(line))));
    }
    group.finish();
}

fn serialize(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialize");
    let mut out = Vec::with_capacity(512);
    let text = "b3 1234 987654321 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    group.bench_function("write_line privmsg", |b| {
        b.iter(|| {
            out.clear();
            write_line(
                &mut out,
                &[],
                Some(black_box("alice!alice@127.0.0.1")),
                "PRIVMSG",
                &["#general"],
                Some(black_box(text)),
            );
            black_box(out.len())
        })
    });
    group.bench_function("write_line tagged", |b| {
        b.iter(|| {
            out.clear();
            write_line(
                &mut out,
                &[
                    ("account", Some("alice")),
                    ("time", Some("2026-11-25T13:37:00.000Z")),
                ],
                Some(black_box("alice!alice@127.0.0.1")),
                "PRIVMSG",
                &["#general"],
                Some(black_box(text)),
            );
            black_box(out.len())
        })
    });
    let parsed = Message::parse(TAGGED).ok();
    group.bench_function("Message::write_to", |b| {
        b.iter(|| {
            out.clear();
            if let Some(m) = &parsed {
                m.write_to(&mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, serialize);
criterion_main!(benches);
