//! Prints append and read throughput of one partition log on the local disk.
//!
//! `cargo run --release -p rafka-storage --example append_bench -- [dir] [total_mib] [batch_kib]`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use rafka_records::BatchBuilder;
use rafka_storage::{FileBackend, Log, LogConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(1)
        .map_or_else(|| tmp.path().join("bench-0"), Into::into);
    let total_mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let batch_kib: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    // One batch of ~batch_kib with 1 KiB records, appended over and over.
    let mut b = BatchBuilder::new(0);
    for i in 0..batch_kib {
        b = b.record(None, Some(&[b'x'; 1000]), &[], 1_700_000_000_000 + i as i64);
    }
    let template = b.build();
    let n = total_mib * 1024 * 1024 / template.len();
    let mut log = Log::open(
        dir.clone(),
        LogConfig::default(),
        Arc::new(FileBackend),
        0,
        0,
        false,
        0,
    )
    .unwrap();
    let mut buf = template.clone();
    let t = Instant::now();
    for _ in 0..n {
        buf.copy_from_slice(&template); // a fresh request buffer, as the broker would have
        log.append(&mut buf, 1, 1_700_000_000_000).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = (n * template.len()) as f64;
    println!(
        "append: {n} batches of {} B, {:.0} MiB in {secs:.2}s = {:.0} MiB/s, {} segments (dir {})",
        template.len(),
        bytes / 1048576.0,
        bytes / 1048576.0 / secs,
        log.segment_count(),
        dir.display()
    );
    let t = Instant::now();
    let mut off = 0;
    let mut read = 0usize;
    while off < log.log_end_offset() {
        let r = log.read(off, 1 << 20, i64::MAX, true).unwrap();
        read += r.records.len();
        off = r.next_offset;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read: {:.0} MiB in {secs:.2}s = {:.0} MiB/s (1 MiB fetches)",
        read as f64 / 1048576.0,
        read as f64 / 1048576.0 / secs
    );
    log.close().unwrap();
}
