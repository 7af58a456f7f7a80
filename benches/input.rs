//! Input throughput: checking and parsing a 1,000,000-row CSV (pass one:
//! validate, checksum, dedupe) and streaming it back out as jobs (pass two).
//! Target: at least 2 million rows per second on one core. The same check of
//! a file whose every row holds a quoted note across two lines shows the cost
//! of the records csv-core reads.

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: u64 = 1_000_000;

/// Writes a million rows, each with its common name as `name` formats it.
fn write_input(path: &std::path::Path, name: fn(u64) -> String) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "zone_id,certificate_id,common_name").unwrap();
    for i in 0..ROWS {
        let zone = 0x1000_u128 + u128::from(i % 40);
        let cert = 0x9e37_79b9_7f4a_7c15_u128.wrapping_mul(u128::from(i) + 1);
        writeln!(out, "{zone:032x},{cert:032x},{}", name(i)).unwrap();
    }
}

fn input(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.csv");
    write_input(&path, |i| format!("device-{i}.example"));
    let quoted = dir.path().join("quoted.csv");
    write_input(&quoted, |i| format!("\"device-{i}\nsecond line\""));
    let mut group = c.benchmark_group("input");
    group.sample_size(10).throughput(Throughput::Elements(ROWS));
    for (name, path) in [("check_1m_rows", &path), ("check_1m_quoted_rows", &quoted)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let plan = cfrevoke::input::plan::Plan::build(path).unwrap();
                assert_eq!(plan.unique, ROWS);
            })
        });
    }
    let plan = cfrevoke::input::plan::Plan::build(&path).unwrap();
    group.bench_function("stream_1m_jobs", |b| b.iter(|| assert_eq!(plan.jobs().unwrap().count() as u64, ROWS)));
    group.finish();
}

criterion_group!(benches, input);
criterion_main!(benches);
