//! The process metrics every Prometheus client library exports (`process_*`), read from
//! `/proc/self` at scrape time. Elsewhere than Linux there is no `/proc` and nothing is reported.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// One reading of the process (absent values were unreadable).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<i64>,
    pub virtual_memory_bytes: Option<i64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

impl ProcessStats {
    pub fn read() -> Self {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let page_bytes = rustix::param::page_size() as i64;
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let mut s = stat
            .as_deref()
            .map(|st| parse_stat(st, ticks, page_bytes, boot.as_deref().and_then(boot_time)))
            .unwrap_or_default();
        s.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64);
        s.max_fds = limits.as_deref().and_then(max_open_files);
        s
    }

    pub fn register(&self, r: &mut Registry) {
        if let Some(v) = self.cpu_seconds {
            r.register(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                ConstCounter::new(v),
            );
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                self.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                self.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                self.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                r.register(name, help, ConstGauge::new(v));
            }
        }
        if let Some(v) = self.start_time_seconds {
            r.register(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                ConstGauge::new(v),
            );
        }
    }
}

/// Fields of `/proc/self/stat` (proc(5)); the command name in parentheses may hold spaces, so
/// the fields are counted from its closing parenthesis.
fn parse_stat(stat: &str, ticks: f64, page_bytes: i64, boot_secs: Option<i64>) -> ProcessStats {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return ProcessStats::default();
    };
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let cpu_seconds = match (field(14), field(15)) {
        (Some(u), Some(s)) => Some((u + s) as f64 / ticks),
        _ => None,
    };
    ProcessStats {
        cpu_seconds,
        virtual_memory_bytes: field(23),
        resident_memory_bytes: field(24).map(|pages| pages * page_bytes),
        start_time_seconds: match (boot_secs, field(22)) {
            (Some(boot), Some(start)) => Some(boot as f64 + start as f64 / ticks),
            _ => None,
        },
        ..ProcessStats::default()
    }
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<i64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and parentheses, as proc(5) allows.
        let stat = "4242 (rafka (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 \
                    9 0 123400 2000000 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let s = parse_stat(stat, 100.0, 4096, Some(1_700_000_000));
        assert_eq!(s.cpu_seconds, Some(4.0));
        assert_eq!(s.virtual_memory_bytes, Some(2_000_000));
        assert_eq!(s.resident_memory_bytes, Some(512 * 4096));
        assert_eq!(s.start_time_seconds, Some(1_700_000_000.0 + 1234.0));
    }

    #[test]
    fn limits_and_boot_time_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let s = ProcessStats::read();
            assert!(s.resident_memory_bytes.is_some_and(|b| b > 0));
            assert!(s.open_fds.is_some_and(|n| n > 0));
            assert!(s.start_time_seconds.is_some());
        }
    }
}
