//! ISR changes from a partition leader to the controller (Kafka's `AlterPartitionManager`):
//! expansions proposed when a follower catches up (from the fetch path) and shrinks found by
//! the periodic check every `replica.lag.time.max.ms / 2` (Kafka's `isr-expiration` task). Each
//! change goes to the active controller as Kafka's AlterPartition request on its controller
//! listener ([`super::alter_partition`]), or as the same command in process on the active
//! controller's node; the controller validates it in Kafka's order inside apply, and the leader
//! learns the outcome from the image it follows. Only a refusal that says the change was not
//! applied frees the partition for the next proposal; an unanswered change is sent again, since
//! it may have been committed (fault suite, seed 625: a leader that fell back to the smaller ISR
//! after a lost answer acknowledged records the newly added member did not have, and that member
//! was elected).

use std::sync::Arc;
use std::time::Duration;

use rafka_replication::IsrChange;
use tokio::sync::watch;

use super::alter_partition;
use super::controller_client::ControllerClient;
use crate::partitions::Partition;
use crate::state::Shared;

/// The first wait before an unanswered ISR change is sent again, and the longest.
const RETRY_BACKOFF_MS: u64 = 100;
const RETRY_BACKOFF_MAX_MS: u64 = 2_000;

/// Sends `change` for `partition` in a task of its own; the fetch that found it does not wait.
/// An unanswered change is sent again until the controller answers or the image settles it:
/// it may have been committed, so the leader may not fall back to the smaller ISR.
pub fn propose(shared: &Arc<Shared>, partition: Arc<Partition>, change: IsrChange) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tracing::info!(partition = ?partition, isr = ?change.members(),
            leader_epoch = change.leader_epoch, partition_epoch = change.partition_epoch,
            "Proposing an ISR change");
        let mut backoff_ms = RETRY_BACKOFF_MS;
        loop {
            let Err(e) = send_once(&shared, &partition, &change).await else {
                // A committed change reaches the partition with the image that carries it.
                return;
            };
            match after_failure(&e) {
                AfterFailure::NotApplied => {
                    tracing::warn!(partition = ?partition, isr = ?change.members(), error = %e,
                        "The controller refused the ISR change");
                    partition.isr_change_refused(&change);
                    return;
                }
                AfterFailure::AwaitImage => {
                    tracing::info!(partition = ?partition, isr = ?change.members(), error = %e,
                        "The partition changed meanwhile; the image settles the ISR change");
                    return;
                }
                AfterFailure::Retry => {
                    tracing::warn!(partition = ?partition, isr = ?change.members(), error = %e,
                        "The ISR change was not answered; sending it again");
                }
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
            if !partition.isr_change_pending(&change) {
                return;
            }
        }
    });
}

/// One AlterPartition for `change`: to the remote active controller on its controller
/// listener, or as the same command in process on the active controller's own node.
async fn send_once(
    shared: &Arc<Shared>,
    partition: &Partition,
    change: &IsrChange,
) -> Result<(), alter_partition::SendError> {
    let broker_epoch = shared
        .image()
        .broker(shared.node_id)
        .map(|b| b.epoch)
        .unwrap_or(0);
    let target = (partition.topic_id, partition.index);
    if ControllerClient::remote_leader(&shared.quorum).is_some() {
        alter_partition::send(
            &shared.controller_client,
            &shared.quorum,
            shared.node_id,
            broker_epoch,
            target,
            change,
        )
        .await
    } else {
        let command = alter_partition::command(shared.node_id, broker_epoch, target, change);
        shared
            .quorum
            .write(command)
            .await
            .map(|_| ())
            .map_err(|e| alter_partition::SendError::Answered(alter_partition::error_code(&e)))
    }
}

/// What a failed AlterPartition means for the change in flight (Kafka's
/// `Partition.handleAlterPartitionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// The controller says it did not apply the change: back to the committed ISR.
    NotApplied,
    /// The partition's registration moved on (maybe through this very change, sent before and
    /// unanswered): the image brings what was committed.
    AwaitImage,
    /// No answer, or one that says nothing about the change: send it again.
    Retry,
}

pub(crate) fn after_failure(e: &alter_partition::SendError) -> AfterFailure {
    use rafka_protocol::kafka_protocol::ResponseError as E;
    match e {
        alter_partition::SendError::Answered(E::IneligibleReplica | E::OperationNotAttempted) => {
            AfterFailure::NotApplied
        }
        alter_partition::SendError::Answered(
            E::FencedLeaderEpoch
            | E::InvalidUpdateVersion
            | E::UnknownTopicOrPartition
            | E::UnknownTopicId
            | E::NotLeaderOrFollower,
        ) => AfterFailure::AwaitImage,
        _ => AfterFailure::Retry,
    }
}

/// Kafka's `isr-expiration` task: every `replica.lag.time.max.ms / 2`, each led partition
/// proposes removing followers that have not caught up for `replica.lag.time.max.ms`.
pub async fn shrink_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let period_ms = (shared.config.replica.lag_time_max_ms / 2).max(1) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::now_ms();
        for p in shared.partitions.all() {
            if let Some(change) = p.maybe_shrink_isr(now) {
                propose(&shared, p, change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alter_partition::SendError;
    use rafka_protocol::kafka_protocol::ResponseError as E;

    /// Only an answer that says the change was not applied lets the leader fall back to the
    /// committed ISR: a lost answer may hide a committed expansion.
    #[test]
    fn only_a_refusal_undoes_the_change_in_flight() {
        for e in [E::IneligibleReplica, E::OperationNotAttempted] {
            assert_eq!(
                after_failure(&SendError::Answered(e)),
                AfterFailure::NotApplied
            );
        }
        for e in [
            E::FencedLeaderEpoch,
            E::InvalidUpdateVersion,
            E::UnknownTopicId,
        ] {
            assert_eq!(
                after_failure(&SendError::Answered(e)),
                AfterFailure::AwaitImage
            );
        }
        for e in [E::RequestTimedOut, E::NotController, E::StaleBrokerEpoch] {
            assert_eq!(after_failure(&SendError::Answered(e)), AfterFailure::Retry);
        }
        assert_eq!(
            after_failure(&SendError::Unanswered("connection closed".into())),
            AfterFailure::Retry
        );
    }
}
