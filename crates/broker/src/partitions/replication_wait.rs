//! Waiting for an append to be replicated: Kafka's delayed produce check
//! (`DelayedProduce` with `Partition.checkEnoughReplicasReachOffset`), shared by acks=all
//! produces and by everything the broker writes itself with acks=all semantics (the group and
//! transaction coordinators' records, transaction markers).

use std::sync::Arc;

use tokio::sync::Notify;

use super::Partition;

/// Why a replicated append was not confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// Before the append: fewer in-sync replicas than min(`min.insync.replicas`, replicas).
    #[error("the ISR is smaller than min.insync.replicas")]
    NotEnoughReplicas,
    /// The high watermark passed the append, but the ISR had shrunk below the minimum.
    #[error("the ISR shrank below min.insync.replicas while the append was replicated")]
    NotEnoughReplicasAfterAppend,
    /// This broker stopped leading at the append's epoch.
    #[error("leadership moved before the append was replicated")]
    NotLeader,
    /// The high watermark did not pass the append in time.
    #[error("the append was not replicated in time")]
    TimedOut,
}

/// An append on a leader, waiting for the high watermark to pass `required` while this broker
/// still leads at `leader_epoch`.
pub struct ReplicationWait {
    partition: Arc<Partition>,
    required: i64,
    leader_epoch: i32,
    replicas: usize,
}

impl ReplicationWait {
    /// Waits for the records below `required` of `partition`, a leader at `leader_epoch` with
    /// `replicas` assigned replicas.
    pub fn new(
        partition: Arc<Partition>,
        required: i64,
        leader_epoch: i32,
        replicas: usize,
    ) -> ReplicationWait {
        ReplicationWait {
            partition,
            required,
            leader_epoch,
            replicas,
        }
    }

    /// The partition appended to.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// The answer, once there is one: a single replica has it at once.
    pub fn outcome(&self) -> Option<Result<(), ReplicationError>> {
        let Some((high_watermark, isr)) = self.partition.leader_state(self.leader_epoch) else {
            return Some(Err(ReplicationError::NotLeader));
        };
        if high_watermark < self.required {
            return None;
        }
        // Settings are read now: a min.insync.replicas changed while waiting applies, as in
        // Kafka, where the check reads the log's current config.
        let settings = self.partition.settings();
        Some(if settings.enough_in_sync(isr, self.replicas) {
            Ok(())
        } else {
            Err(ReplicationError::NotEnoughReplicasAfterAppend)
        })
    }

    /// Waits until [`ReplicationWait::outcome`] has an answer or `deadline` passes. Every high
    /// watermark move, append and role change wakes it.
    pub async fn wait(&self, deadline: tokio::time::Instant) -> Result<(), ReplicationError> {
        loop {
            // Checked before the waiter is made: a single replica is done at once.
            if let Some(done) = self.outcome() {
                return done;
            }
            let waiter = Arc::new(Notify::new());
            self.partition.register_waiter(waiter.clone());
            if let Some(done) = self.outcome() {
                return done;
            }
            if tokio::time::timeout_at(deadline, waiter.notified())
                .await
                .is_err()
            {
                return Err(ReplicationError::TimedOut);
            }
        }
    }
}
