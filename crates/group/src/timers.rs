//! Deadlines of the coordinator, ordered, with cancellation by key.
//!
//! The coordinator is single-threaded and passive: its shell asks [`Timers::next_deadline_ms`],
//! sleeps until then (or until a request arrives) and calls `tick(now)`, which pops what is due.
//! Rescheduling a key replaces its previous deadline, so a heartbeat costs two map updates.

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's session: expires unless a heartbeat (or join, sync, commit) moves it on.
    Heartbeat { group: String, member: String },
    /// A member id handed out with MEMBER_ID_REQUIRED (KIP-394) that has not joined yet.
    PendingMember { group: String, member: String },
    /// End of the join phase: the initial delay or the rebalance timeout.
    Join { group: String },
    /// End of the sync phase: members that have not sent SyncGroup by then are removed.
    Sync { group: String },
    /// The periodic offset expiration scan (`offsets.retention.check.interval.ms`).
    OffsetExpiration,
}

/// The coordinator's deadlines.
pub type Timers = rafka_coordinator_common::Timers<TimerKey>;
