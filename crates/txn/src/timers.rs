//! Deadlines of the coordinator, ordered, with cancellation by key.
//!
//! The coordinator is single-threaded and passive: its shell asks [`Timers::next_deadline_ms`],
//! sleeps until then (or until a request arrives) and calls `tick(now)`, which pops what is due.
//! Kafka runs both of its transaction chores as fixed-interval scans rather than per-transaction
//! deadlines, and so does this coordinator: a transaction is aborted at the first scan after its
//! timeout, not at the timeout itself, exactly as in Kafka.

use std::collections::{BTreeSet, HashMap};

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: abort transactions that
    /// have run past their timeout.
    AbortTimedOutTransactions,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: forget idle transactional
    /// ids older than `transactional.id.expiration.ms`.
    RemoveExpiredTransactionalIds,
}

#[derive(Debug, Default)]
pub struct Timers {
    by_time: BTreeSet<(i64, TimerKey)>,
    by_key: HashMap<TimerKey, i64>,
}

impl Timers {
    /// Sets (or moves) the deadline of `key`.
    pub fn schedule(&mut self, key: TimerKey, at_ms: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), at_ms) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at_ms, key));
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    pub fn deadline(&self, key: &TimerKey) -> Option<i64> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns one key whose deadline is at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<TimerKey> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_replaces_and_cancel_removes() {
        let mut t = Timers::default();
        t.schedule(TimerKey::AbortTimedOutTransactions, 100);
        t.schedule(TimerKey::RemoveExpiredTransactionalIds, 50);
        t.schedule(TimerKey::AbortTimedOutTransactions, 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline_ms(), Some(10));
        assert_eq!(t.pop_due(9), None);
        assert_eq!(t.pop_due(10), Some(TimerKey::AbortTimedOutTransactions));
        assert_eq!(t.deadline(&TimerKey::AbortTimedOutTransactions), None);
        t.cancel(&TimerKey::RemoveExpiredTransactionalIds);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline_ms(), None);
    }
}
