//! Shared test helpers: backends and the per-backend suite macro, opening logs, batch building,
//! brute-force checks. Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rafka_records::{batches, BatchBuilder};
use rafka_storage::{AppendInfo, Backend, Faults, FaultyBackend, FileBackend, Log, LogConfig};

pub const NOW: i64 = 1_700_000_000_000;

/// The real backend.
pub fn file_backend() -> Arc<dyn Backend> {
    Arc::new(FileBackend)
}

/// A `FaultyBackend` with no faults configured.
pub fn faulty_backend_no_faults() -> Arc<dyn Backend> {
    Arc::new(FaultyBackend::new())
}

/// A `FaultyBackend` with short writes, which correct callers never notice.
pub fn faulty_backend_short_writes() -> Arc<dyn Backend> {
    let b = FaultyBackend::new();
    b.set_faults(Faults {
        short_writes: true,
        ..Default::default()
    });
    Arc::new(b)
}

/// A `FaultyBackend` without faults, and the same backend for opening logs: faults set on the
/// first apply to the logs opened with the second.
pub fn faulty() -> (FaultyBackend, Arc<dyn Backend>) {
    let fb = FaultyBackend::new();
    (fb.clone(), Arc::new(fb))
}

/// Runs every named `fn(Arc<dyn Backend>)` once per listed backend: for each backend `x` (one of
/// the constructors above), a module `x` with a `#[test] fn name()` calling `name(common::x())`.
///
/// ```ignore
/// backend_suite!([file_backend, faulty_backend_short_writes] test_a, test_b);
/// ```
#[allow(unused_macros)] // recovery.rs and logdir.rs have no per-backend suite
macro_rules! backend_suite {
    ([] $($name:ident),* $(,)?) => {};
    ([$backend:ident $(, $rest:ident)* $(,)?] $($name:ident),* $(,)?) => {
        mod $backend {
            $( #[test] fn $name() { super::$name($crate::common::$backend()); } )*
        }
        $crate::common::backend_suite!([$($rest),*] $($name),*);
    };
}
#[allow(unused_imports)]
pub(crate) use backend_suite;

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

/// Opens (or creates) the log in `dir` with recovery point and log start offset 0.
pub fn open(dir: &Path, config: LogConfig, backend: Arc<dyn Backend>, clean: bool) -> Log {
    open_with(dir, config, backend, 0, 0, clean)
}

/// Opens (or creates) the log in `dir` with the given recovery point and log start offset.
pub fn open_with(
    dir: &Path,
    config: LogConfig,
    backend: Arc<dyn Backend>,
    recovery_point: i64,
    log_start_offset: i64,
    clean: bool,
) -> Log {
    Log::open(
        dir.to_path_buf(),
        config,
        backend,
        recovery_point,
        log_start_offset,
        clean,
        NOW,
    )
    .unwrap()
}

/// Appends `bytes` with leader epoch 0.
pub fn append(log: &mut Log, mut bytes: Vec<u8>) -> AppendInfo {
    log.append(&mut bytes, 0, NOW).unwrap()
}

/// Copies everything in `leader` to `follower` as replication would, in fetches of at most
/// `fetch_bytes` (whole batches, at least one).
pub fn replicate(leader: &Log, follower: &mut Log, fetch_bytes: usize) {
    let mut at = 0;
    while at < leader.log_end_offset() {
        let r = leader.read(at, fetch_bytes, i64::MAX, true).unwrap();
        follower.append_stamped(&r.records, NOW).unwrap();
        at = r.next_offset;
    }
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

/// The offset a segment file (`.log`, `.snapshot`, ...) is named after.
pub fn base_offset_of(path: &Path) -> i64 {
    path.file_name().unwrap().to_str().unwrap()[..20]
        .parse()
        .unwrap()
}

/// The offsets of the files in `dir` ending with `suffix`, ascending.
pub fn base_offsets(dir: &Path, suffix: &str) -> Vec<i64> {
    segment_files(dir, suffix)
        .iter()
        .map(|p| base_offset_of(p))
        .collect()
}

/// Copies the files of `from` into `to` (created if missing): a crash image.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
