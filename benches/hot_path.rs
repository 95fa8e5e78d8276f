//! Microbenchmarks of the hot path, on real records of the test fixtures: Message parsing,
//! NDJSON framing (decoding) and `_bulk` encoding (parse, transform, serialise), with and
//! without the fast path for flat records.
//!
//! `cargo bench --bench hot_path`; `bench/run` quotes their medians.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use evtship::config::IndexName;
use evtship::decode::{read_lines, Flow, RawChunk, StreamPos};
use evtship::sink::wire::Actions;
use evtship::transform::{message, Encoder, Settings};
use std::hint::black_box;
use std::sync::Arc;

/// The allocator evtship itself runs with.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/otrf/covenant_persistwmi_2019-12-05044734.json"
);

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).expect("the fixture")
}

fn chunks(data: &[u8]) -> Vec<RawChunk> {
    let origin: Arc<str> = Arc::from("bench");
    let mut out = Vec::new();
    let mut emit = |c: RawChunk| {
        out.push(c);
        Flow::Continue
    };
    read_lines(data, 0, &origin, StreamPos::default(), &mut emit).expect("in memory");
    out
}

fn messages(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|v| v["Message"].as_str().map(String::from))
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = fixture();
    let msgs = messages(&data);
    let msg_bytes: usize = msgs.iter().map(String::len).sum();

    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(msg_bytes as u64));
    g.bench_function("parse_sysmon", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(message::parse_sysmon(m));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("read_lines", |b| b.iter(|| black_box(chunks(&data))));
    g.finish();

    let encoder = Encoder::new(Settings::default());
    let general = encoder.clone().with_fast_path(false);
    // The sink writes each document's action line: counted here, as when the encoder did.
    let actions =
        Actions::new(&IndexName::try_from("logstashindex".to_owned()).expect("a valid name"));
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(data.len() as u64));
    // `bulk` is what evtship does (flat records on the fast path); `bulk_general` parses every
    // record into a tree, as all records were before the fast path.
    for (name, encoder) in [("bulk", &encoder), ("bulk_general", &general)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || chunks(&data),
                |raw| {
                    let mut lines = Vec::with_capacity(1 << 20);
                    for chunk in raw {
                        let encoded = encoder.encode(chunk);
                        lines.clear();
                        for doc in &encoded.docs {
                            actions.write(doc, &mut lines);
                        }
                        black_box((encoded, &lines));
                    }
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
