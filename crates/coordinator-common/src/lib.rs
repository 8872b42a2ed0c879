//! What rafka's two sans-IO coordinators (`rafka-group`, `rafka-txn`) share, as Kafka's
//! `coordinator-common` module does for its group and transaction coordinators:
//!
//! - [`Timers`]: deadlines keyed by what they are for, ordered, with cancellation by key. A
//!   coordinator's shell sleeps until [`Timers::next_deadline_ms`] and then runs `tick(now)`.
//! - [`partition_for`]: which partition of an internal topic holds a key.
//! - [`wire`]: the primitive types of Kafka's generated message schemas that the internal-topic
//!   record formats (`__consumer_offsets`, `__transaction_state`) are built from: a
//!   bounds-checked [`wire::Reader`] that never panics on untrusted bytes, a [`wire::Writer`]
//!   that cuts (and reports) fields too long for their length prefix, and their
//!   [`wire::WireError`].

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

pub mod wire;

/// Deadlines by key. Rescheduling a key replaces its previous deadline, so a heartbeat costs
/// two map updates.
#[derive(Debug)]
pub struct Timers<K> {
    by_time: BTreeSet<(i64, K)>,
    by_key: HashMap<K, i64>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Clone + Ord + Hash> Timers<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn schedule(&mut self, key: K, at_ms: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), at_ms) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at_ms, key));
    }

    pub fn cancel(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    pub fn deadline(&self, key: &K) -> Option<i64> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns one key whose deadline is at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<K> {
        let (t, _) = self.by_time.first()?;
        if *t > now_ms {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The partition of an internal topic (`__consumer_offsets`, `__transaction_state`) that holds
/// `key`: Java's `String.hashCode`, made non-negative the way Kafka's `Utils.abs` does, modulo
/// the partition count. Matching Kafka matters: a log Kafka wrote keeps each key in the
/// partition Kafka chose.
pub fn partition_for(key: &str, num_partitions: i32) -> i32 {
    kafka_abs(java_hash_code(key)) % num_partitions.max(1)
}

/// Java's `String.hashCode` (over UTF-16 code units, with int overflow), which Kafka uses to
/// place keys: internal-topic partitions, replica fetcher ids.
pub fn java_hash_code(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    h
}

/// Kafka's `Utils.abs`: the absolute value, with `Integer.MIN_VALUE` mapped to 0.
pub fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN {
        0
    } else {
        n.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_replaces_and_cancel_removes() {
        let mut t = Timers::default();
        t.schedule("a", 100);
        t.schedule("b", 50);
        t.schedule("a", 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline_ms(), Some(10));
        assert_eq!(t.pop_due(9), None);
        assert_eq!(t.pop_due(10), Some("a"));
        assert_eq!(t.deadline(&"a"), None);
        assert_eq!(t.pop_due(49), None);
        t.cancel(&"b");
        assert!(t.is_empty());
        assert_eq!(t.next_deadline_ms(), None);
    }

    #[test]
    fn partition_matches_java_hash_code() {
        // "hello".hashCode() == 99162322; 99162322 % 50 == 22.
        assert_eq!(partition_for("hello", 50), 22);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert!((0..50).contains(&partition_for("console-consumer-12345", 50)));
        // "txn-1".hashCode() == 110810510.
        assert_eq!(partition_for("txn-1", 50), 10);
        // A negative hash: "txn-negative".hashCode() == -2043681736; Utils.abs flips it.
        assert_eq!(partition_for("txn-negative", 1000), 736);
        assert_eq!(partition_for("", 50), 0);
        // Hashing is over UTF-16 code units, like Java.
        assert_eq!(partition_for("é", 1000), 233);
        assert_eq!(
            partition_for("x", 0),
            0,
            "a zero count does not divide by zero"
        );
    }
}
