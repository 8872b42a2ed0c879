//! Benchmark program (not a test): what produce-side batch validation costs in user space.
//!
//! `cargo run --release -p rafka-records --example validate_speed [record_bytes] [batch_bytes]`
//!
//! Builds one uncompressed batch shaped like rdkafka_performance's (keyless records of
//! `record_bytes`, default 1024, about `batch_bytes` per batch, default 1 MiB), then times
//! (best of seven runs over 1 GB each) `validate_produce` with the broker's settings (CRC-32C and the record walk) and CRC-32C alone
//! over the same bytes, and prints CPU-seconds per GB. The difference is the record walk. See
//! docs/benchmarks.md for how this relates to the broker's total produce cost.

use std::time::Instant;

use rafka_records::{validate_produce, BatchBuilder, ValidationLimits};

fn main() {
    let mut args = std::env::args().skip(1);
    let record_bytes: usize = args
        .next()
        .map_or(1024, |a| a.parse().expect("record_bytes"));
    let batch_bytes: usize = args
        .next()
        .map_or(1 << 20, |a| a.parse().expect("batch_bytes"));
    let value = vec![0x5a_u8; record_bytes];
    let count = (batch_bytes / (record_bytes + 8)).max(1);
    let mut builder = BatchBuilder::new(0)
        .producer(1000, 0, 0)
        .timestamp(1_700_000_000_000);
    for _ in 0..count {
        builder = builder.record(None, Some(&value), &[], 1_700_000_000_000);
    }
    let batch = builder.build();
    let limits = ValidationLimits {
        max_batch_bytes: batch.len() + 1,
        ..ValidationLimits::default()
    };
    validate_produce(&batch, &limits).expect("the batch is valid");

    // About 1 GB per measurement, so timer resolution does not matter; the best of
    // REPETITIONS, so a moment of interference from the rest of the machine does not count.
    const REPETITIONS: usize = 7;
    let rounds = (1usize << 30) / batch.len();
    let gb = (rounds * batch.len()) as f64 / 1e9;
    let time = |f: &dyn Fn() -> u64| {
        (0..REPETITIONS)
            .map(|_| {
                let t0 = Instant::now();
                let mut sink = 0u64;
                for _ in 0..rounds {
                    sink = sink.wrapping_add(f());
                }
                std::hint::black_box(sink);
                t0.elapsed().as_secs_f64() / gb
            })
            .fold(f64::INFINITY, f64::min)
    };
    let full = time(&|| {
        validate_produce(std::hint::black_box(&batch), &limits)
            .map(|s| s.record_count)
            .unwrap_or(0)
    });
    let crc = time(&|| u64::from(crc32c::crc32c(std::hint::black_box(&batch[21..]))));
    println!(
        "batch: {count} records of {record_bytes} B, {} B; best of {REPETITIONS} x {gb:.1} GB",
        batch.len()
    );
    println!("validate_produce (CRC-32C + record walk): {full:.4} CPU-s per GB");
    println!("CRC-32C alone:                             {crc:.4} CPU-s per GB");
    println!(
        "record walk (difference):                  {:.4} CPU-s per GB, {:.1} ns per record",
        full - crc,
        (full - crc) * 1e9 * batch.len() as f64 / 1e9 / count as f64
    );
}
