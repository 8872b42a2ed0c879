//! Deadlines of the coordinator, ordered, with cancellation by key.
//!
//! The coordinator is single-threaded and passive: its shell asks [`Timers::next_deadline_ms`],
//! sleeps until then (or until a request arrives) and calls `tick(now)`, which pops what is due.
//! Kafka runs both of its transaction chores as fixed-interval scans rather than per-transaction
//! deadlines, and so does this coordinator: a transaction is aborted at the first scan after its
//! timeout, not at the timeout itself, exactly as in Kafka.

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

/// The coordinator's deadlines.
pub type Timers = rafka_coordinator_common::Timers<TimerKey>;
