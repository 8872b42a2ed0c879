//! The log cleaner: `log.cleaner.threads` dedicated threads that compact the logs of topics
//! with `cleanup.policy=compact` (Kafka's `LogCleaner` + `LogCleanerManager`; the algorithm is
//! storage's `log::cleaner`).
//!
//! Each thread repeatedly takes the filthiest log nobody else is cleaning (the highest dirty
//! ratio among those at or above `min.cleanable.dirty.ratio` or overdue per
//! `max.compaction.lag.ms`; else one whose delete horizon passed), and cleans it in three steps
//! so the partition lock is held only briefly: the pass is prepared under the lock (it takes the
//! sealed, immutable segments), run without it (reading the segments and writing the `.cleaned`
//! files, throttled by `log.cleaner.io.max.bytes.per.second`), and swapped in under the lock.
//! With nothing to do it sleeps `log.cleaner.backoff.ms`. The offsets cleaned up to are kept in
//! the log dir's `cleaner-offset-checkpoint`, as in Kafka.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rafka_metadata::MetadataImage;
use rafka_storage::{CleanerSettings, TopicPartition};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::dynamic_config::DynamicBrokerConfig;
use crate::now_ms;
use crate::partitions::{Partition, Partitions};

/// Kafka's `Throttler`: measures the rate over short periods and sleeps when it is above the
/// limit.
struct Throttler {
    max_bytes_per_second: f64,
    period_start: Instant,
    bytes: u64,
}

/// The throttler's measuring period: the rate is held over windows of this length.
const THROTTLE_PERIOD_MS: u64 = 1000;
/// A deficit shorter than this is carried to the next call instead of slept (no tiny sleeps).
const THROTTLE_MIN_SLEEP_MS: u64 = 10;

impl Throttler {
    fn new(max_bytes_per_second: f64) -> Self {
        Throttler {
            // A zero, negative or NaN rate would stop the cleaner forever; hold it at 1 B/s.
            max_bytes_per_second: if max_bytes_per_second >= 1.0 {
                max_bytes_per_second
            } else {
                1.0
            },
            period_start: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` of cleaner I/O and sleeps as long as the window's bytes are ahead of the
    /// rate. Checked on every call (not only after a minimum period, as Kafka's throttler does),
    /// so a pass shorter than a period is held to the rate too.
    fn maybe_throttle(&mut self, bytes: u64) {
        if self.max_bytes_per_second >= f64::MAX {
            return;
        }
        self.bytes = self.bytes.saturating_add(bytes);
        let elapsed = self.period_start.elapsed();
        let wanted = Duration::try_from_secs_f64(self.bytes as f64 / self.max_bytes_per_second)
            .unwrap_or(Duration::from_secs(3600));
        if wanted > elapsed + Duration::from_millis(THROTTLE_MIN_SLEEP_MS) {
            std::thread::sleep(wanted - elapsed);
        }
        if self.period_start.elapsed() >= Duration::from_millis(THROTTLE_PERIOD_MS) {
            self.period_start = Instant::now();
            self.bytes = 0;
        }
    }
}

/// The part of the node the cleaner uses: the logs it compacts and the broker config its
/// settings come from.
pub struct CleanerContext {
    /// The hosted partitions, whose log dirs also hold `cleaner-offset-checkpoint`.
    pub partitions: Arc<Partitions>,
    /// The broker config: `log.cleaner.enable` and `log.cleaner.threads` from the static layer
    /// (fixed at start, as in Kafka), the other cleaner settings from the effective config.
    pub broker_config: Arc<DynamicBrokerConfig>,
    /// The metadata images, whose dynamic broker configs the effective config follows.
    pub images: watch::Receiver<Arc<MetadataImage>>,
}

impl CleanerContext {
    /// The broker config as of the latest image (dynamic configs over the static ones).
    fn effective_config(&self) -> Arc<BrokerConfig> {
        // Cloned out first so the image's lock is not held while the config is rebuilt.
        let image = self.images.borrow().clone();
        self.broker_config.current(&image)
    }
}

/// Cleaner state shared by the threads.
struct State {
    ctx: CleanerContext,
    /// `cleaner-offset-checkpoint`: where the next pass of each log starts.
    checkpoints: Mutex<HashMap<TopicPartition, i64>>,
    /// Logs a thread is cleaning right now.
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Compacted logs whose delete horizons were read back from their batches since start.
    horizons_recovered: Mutex<HashSet<TopicPartition>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The running cleaner; [`LogCleaner::shutdown`] stops it.
pub struct LogCleaner {
    state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tp_of(p: &Partition) -> TopicPartition {
    TopicPartition::new(p.topic.to_string(), p.index)
}

impl LogCleaner {
    /// Starts the threads (none if `log.cleaner.enable` is false).
    pub fn start(ctx: CleanerContext) -> LogCleaner {
        let config = ctx.broker_config.static_config().clone();
        let checkpoints = match ctx.partitions.read_cleaner_checkpoints() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read cleaner-offset-checkpoint; cleaning from the log starts");
                HashMap::new()
            }
        };
        let state = Arc::new(State {
            ctx,
            checkpoints: Mutex::new(checkpoints),
            in_progress: Mutex::new(HashSet::new()),
            horizons_recovered: Mutex::new(HashSet::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut threads = Vec::new();
        if config.log_cleaner_enable {
            // The thread count is fixed at start; the other cleaner settings are read again
            // before every pass, so dynamic broker config changes apply.
            let threads_n = config.log_cleaner_threads.max(1);
            for id in 0..threads_n {
                let state = Arc::clone(&state);
                let spawned = std::thread::Builder::new()
                    .name(format!("kafka-log-cleaner-thread-{id}"))
                    .spawn(move || run(&state, id, threads_n));
                match spawned {
                    Ok(h) => threads.push(h),
                    Err(e) => tracing::error!(error = %e, "cannot start a log cleaner thread"),
                }
            }
        }
        LogCleaner { state, threads }
    }

    /// Stops the threads (a pass in progress is abandoned at its next batch; its `.cleaned`
    /// files are removed) and writes the checkpoint.
    pub fn shutdown(mut self) {
        self.stop();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        write_checkpoints(&self.state);
    }

    fn stop(&self) {
        *lock(&self.state.stop) = true;
        self.state.wake.notify_all();
    }
}

impl Drop for LogCleaner {
    /// A cleaner dropped without [`LogCleaner::shutdown`] (a start that failed after it began)
    /// still stops its threads, at their next check, so they never go on compacting logs of a
    /// node that is gone. Not joined: dropping may happen on an async task.
    fn drop(&mut self) {
        self.stop();
    }
}

fn stopped(state: &State) -> bool {
    *lock(&state.stop)
}

/// What one pass of one of `threads_n` threads may use, from the broker's current (dynamic)
/// config: its share of the dedupe buffer and of the I/O rate, and the backoff.
fn pass_settings(config: &BrokerConfig, threads_n: usize) -> (CleanerSettings, f64, Duration) {
    let settings = CleanerSettings {
        dedupe_buffer_bytes: config.log_cleaner_dedupe_buffer_size / threads_n as u64,
        max_batch_uncompressed_bytes: usize::try_from(config.message_max_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(64)
            .max(64 << 20),
    };
    // The throttle is shared by all threads in Kafka; split it evenly here.
    let rate = config.log_cleaner_io_max_bytes_per_second / threads_n as f64;
    let backoff = Duration::from_millis(config.log_cleaner_backoff_ms);
    (settings, rate, backoff)
}

fn run(state: &State, id: usize, threads_n: usize) {
    while !stopped(state) {
        let (settings, rate, backoff) = pass_settings(&state.ctx.effective_config(), threads_n);
        let cleaned = clean_filthiest(state, id, &settings, rate);
        if !cleaned {
            let guard = lock(&state.stop);
            if *guard {
                return;
            }
            let _ = state
                .wake
                .wait_timeout(guard, backoff)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Picks and cleans one log; `false` if none needed it or the pass made no progress (failed,
/// or stopped at an unreadable batch), so the thread backs off instead of spinning.
fn clean_filthiest(state: &State, id: usize, settings: &CleanerSettings, rate: f64) -> bool {
    // Once per compacted log after start: tombstones a pass before the restart marked must still
    // go when their horizon passes, though the log may not be dirty again.
    for p in state.ctx.partitions.all() {
        if p.settings().log.compact && lock(&state.horizons_recovered).insert(tp_of(&p)) {
            p.recover_delete_horizon();
        }
    }
    let now = now_ms();
    let picked = {
        let checkpoints = lock(&state.checkpoints).clone();
        let mut in_progress = lock(&state.in_progress);
        let mut best: Option<(Arc<Partition>, rafka_storage::CleanableInfo)> = None;
        let mut horizon: Option<(Arc<Partition>, rafka_storage::CleanableInfo)> = None;
        for p in state.ctx.partitions.all() {
            let tp = tp_of(&p);
            if in_progress.contains(&tp) {
                continue;
            }
            let Some(info) = p.cleanable_info(checkpoints.get(&tp).copied(), now) else {
                continue;
            };
            if !info.is_due() {
                continue;
            }
            let by_ratio = info.cleanable_bytes > 0
                && (info.must_clean_now || info.dirty_ratio() >= info.min_cleanable_ratio);
            if by_ratio {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| info.dirty_ratio() > b.dirty_ratio())
                {
                    best = Some((p, info));
                }
            } else if horizon.is_none() {
                horizon = Some((p, info));
            }
        }
        let picked = best.or(horizon);
        if let Some((p, _)) = &picked {
            in_progress.insert(tp_of(p));
        }
        picked
    };
    let Some((partition, info)) = picked else {
        return false;
    };
    let tp = tp_of(&partition);
    let progressed = clean_one(state, id, &partition, &tp, info, settings, rate);
    lock(&state.in_progress).remove(&tp);
    progressed
}

fn clean_one(
    state: &State,
    id: usize,
    partition: &Arc<Partition>,
    tp: &TopicPartition,
    info: rafka_storage::CleanableInfo,
    settings: &CleanerSettings,
    rate: f64,
) -> bool {
    let name = tp.dir_name();
    let task = match partition.prepare_clean(&info) {
        Ok(Some(task)) => task,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(partition = %name, error = %e, "Cleaner {id}: cannot clean log");
            return false;
        }
    };
    tracing::info!(
        "Cleaner {id}: Beginning cleaning of log {name} (dirty section = [{}, {}], dirty ratio {:.3})",
        info.first_dirty_offset,
        info.first_uncleanable_offset,
        info.dirty_ratio()
    );
    let mut throttler = Throttler::new(rate);
    let mut aborted = false;
    let now = now_ms();
    // The heavy part: no partition lock held.
    let result = task.run(settings, now, &mut |bytes| {
        throttler.maybe_throttle(bytes);
        if !aborted && stopped(state) {
            aborted = true;
        }
        !aborted
    });
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            if !stopped(state) {
                tracing::warn!(partition = %name, error = %e, "Cleaner {id}: cleaning failed");
            }
            return false;
        }
    };
    let end = output.end_offset;
    let first_dirty = output.first_dirty_offset;
    match partition.finish_clean(output, now_ms()) {
        Ok(stats) => {
            tracing::info!(
                "Cleaner {id}: Cleaning log {name} (cleaned up to offset {end}) done: \
                 {:.1} MB of log processed in {:.1} seconds, {} bytes read, {} bytes written, \
                 {} records read, {} retained, {} keys in the offset map, {} segment groups swapped{}",
                stats.bytes_read as f64 / (1024.0 * 1024.0),
                stats.elapsed_ms as f64 / 1000.0,
                stats.bytes_read + stats.map_bytes_read,
                stats.bytes_written,
                stats.records_read,
                stats.records_retained,
                stats.map_keys,
                stats.groups_swapped,
                if stats.groups_skipped > 0 {
                    format!(", {} skipped (log changed)", stats.groups_skipped)
                } else {
                    String::new()
                }
            );
            tracing::debug!(partition = %name, first_dirty, end, "cleaner pass finished");
            if stats.groups_skipped == 0 {
                lock(&state.checkpoints).insert(tp.clone(), end);
                write_checkpoints(state);
            }
            end > first_dirty || stats.groups_swapped > 0
        }
        Err(e) => {
            tracing::error!(partition = %name, error = %e, "Cleaner {id}: swapping cleaned segments failed; log is offline");
            false
        }
    }
}

/// Writes `cleaner-offset-checkpoint` for the logs still hosted.
fn write_checkpoints(state: &State) {
    let partitions = &state.ctx.partitions;
    let hosted: HashSet<TopicPartition> = partitions.all().iter().map(|p| tp_of(p)).collect();
    let entries: Vec<(TopicPartition, i64)> = {
        let mut c = lock(&state.checkpoints);
        c.retain(|tp, _| hosted.contains(tp));
        c.iter().map(|(tp, o)| (tp.clone(), *o)).collect()
    };
    if let Err(e) = partitions.write_cleaner_checkpoints(&entries) {
        tracing::warn!(error = %e, "cannot write cleaner-offset-checkpoint");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unthrottled_never_sleeps_and_throttled_slows_down() {
        let mut t = Throttler::new(f64::MAX);
        let start = Instant::now();
        for _ in 0..1000 {
            t.maybe_throttle(1 << 30);
        }
        assert!(start.elapsed() < Duration::from_millis(100));
        let mut t = Throttler::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..30 {
            t.maybe_throttle(10_000);
            std::thread::sleep(Duration::from_millis(5));
        }
        // 300 kB at 1 MB/s: at least ~0.3 s (the sleeps alone are 0.15 s).
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        // A short burst with no pauses is held to the rate as well: 200 kB at 1 MB/s.
        let mut t = Throttler::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..20 {
            t.maybe_throttle(10_000);
        }
        assert!(
            start.elapsed() >= Duration::from_millis(180),
            "{:?}",
            start.elapsed()
        );
        // A rate of zero does not divide by zero or sleep for ever.
        let mut t = Throttler::new(0.0);
        t.maybe_throttle(1);
    }
}
