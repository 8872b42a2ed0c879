//! Benchmark program (not a test): what the metrics cost on the request paths, per call.
//!
//! `cargo run --profile release-test -p rafka-broker --example metrics_cost`
//!
//! Times the calls the produce and fetch paths make (a request counted with its time, a
//! topic's counters looked up and bumped) from one thread and from two at once (the machine's
//! cores, contending on the same counters), and prints nanoseconds per call. Compare with a
//! produce request's handling time in docs/benchmarks.md (tens of microseconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rafka_broker::metrics::Metrics;

const CALLS: u64 = 2_000_000;

/// One produce request of one partition as produce.rs counts it.
fn produce_path(m: &Metrics, topic: &str) {
    let handle = m.topic(topic);
    let stats = m.stats(&handle);
    stats.produce_request();
    stats.appended(100, 16_384);
    m.request(0, 11, Duration::from_micros(40));
}

/// One fetch answer of one partition as fetch.rs counts it.
fn fetch_path(m: &Metrics, topic: &str) {
    let handle = m.topic(topic);
    let stats = m.stats(&handle);
    stats.fetch_request();
    stats.bytes_out(16_384);
    m.request(1, 17, Duration::from_micros(300));
}

fn per_call(threads: usize, f: fn(&Metrics, &str)) -> f64 {
    let m = Arc::new(Metrics::new());
    // 100 topics known already, as on a broker that has served for a while.
    for t in 0..100 {
        m.topic(&format!("topic-{t}"));
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                let topic = format!("topic-{}", i * 7);
                for _ in 0..CALLS {
                    f(&m, &topic);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

fn main() {
    println!("{CALLS} calls per thread; ns per call (wall time / calls per thread)");
    for threads in [1, 2] {
        println!(
            "threads {threads}: produce path {:.0} ns, fetch path {:.0} ns",
            per_call(threads, produce_path),
            per_call(threads, fetch_path)
        );
    }
}
