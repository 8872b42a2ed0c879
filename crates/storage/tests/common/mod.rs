//! Shared test helpers: batch building, backends, brute-force checks.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rafka_records::{batches, BatchBuilder};
use rafka_storage::{Backend, Log, LogConfig};

pub const NOW: i64 = 1_700_000_000_000;

/// One uncompressed batch of `records` records, each `value_len` bytes, timestamps `ts`, ts+1, ...
pub fn batch(records: usize, ts: i64, value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let mut b = BatchBuilder::new(0);
    for i in 0..records {
        b = b.record(
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
            ts + i as i64,
        );
    }
    b.build()
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig, backend: Arc<dyn Backend>, clean: bool) -> Log {
    Log::open(dir.to_path_buf(), config, backend, 0, 0, clean, NOW).unwrap()
}

/// (base offset, last offset, bytes without the stamped fields) of every batch in `buf`.
pub fn parse_all(buf: &[u8]) -> Vec<(i64, i64, usize)> {
    batches(buf)
        .map(|b| {
            let b = b.unwrap();
            (
                b.header().base_offset,
                b.header().last_offset(),
                b.total_len(),
            )
        })
        .collect()
}

/// Appends `n` batches of 1..=5 records with varying sizes; returns each batch's (base, last).
pub fn fill(log: &mut Log, n: usize, ts0: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut b = batch(1 + i % 5, ts0 + i as i64 * 10, 10 + (i * 37) % 300);
        let info = log.append(&mut b, 3, NOW).unwrap();
        out.push((info.base_offset, info.last_offset));
    }
    out
}

/// Checks that reading at every offset returns whole batches starting with the one holding it.
pub fn check_reads(log: &Log, expected: &[(i64, i64)]) {
    let end = log.log_end_offset();
    for &(base, last) in expected {
        for off in base..=last {
            let r = log.read(off, 1 << 20, i64::MAX, true).unwrap();
            let got = parse_all(&r.records);
            assert!(!got.is_empty(), "offset {off}: nothing read");
            assert_eq!(got[0].0, base, "offset {off}: wrong first batch");
            assert_eq!(got[0].1, last);
            for b in batches(&r.records) {
                b.unwrap().verify_crc().unwrap();
            }
            assert_eq!(r.next_offset, got.last().unwrap().1 + 1);
            assert!(r.next_offset <= end);
        }
    }
}

pub fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}
