//! ISR changes from a partition leader to the controller (Kafka's `AlterPartitionManager`):
//! expansions proposed when a follower catches up (from the fetch path) and shrinks found by
//! the periodic check every `replica.lag.time.max.ms / 2` (Kafka's `isr-expiration` task). Each
//! change is written as an AlterPartition command through the quorum; the controller validates
//! it in Kafka's order inside apply, and the leader learns the outcome from the image it
//! follows (a refusal or no answer frees the partition for the next proposal).

use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::ControllerCommand;
use rafka_replication::IsrChange;
use tokio::sync::watch;

use crate::partitions::Partition;
use crate::state::Shared;

/// Sends `change` for `partition` in a task of its own; the fetch that found it does not wait.
pub fn propose(shared: &Arc<Shared>, partition: Arc<Partition>, change: IsrChange) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let broker_epoch = shared
            .image()
            .broker(shared.node_id)
            .map(|b| b.epoch)
            .unwrap_or(0);
        let command = ControllerCommand::AlterPartition {
            broker_id: shared.node_id,
            broker_epoch,
            topic_id: partition.topic_id,
            partition: partition.index,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change
                .new_isr
                .iter()
                .map(|(id, epoch)| (*id, epoch.and_then(|e| u64::try_from(e).ok())))
                .collect(),
        };
        tracing::info!(partition = ?partition, isr = ?change.members(),
            leader_epoch = change.leader_epoch, partition_epoch = change.partition_epoch,
            "Proposing an ISR change");
        match shared.quorum.write(command).await {
            // The image that carries the change reaches the partition through reconcile.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(partition = ?partition, isr = ?change.members(), error = %e,
                    "The controller did not accept the ISR change");
                partition.isr_change_failed();
            }
        }
    });
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
