//! ISR changes from a partition leader to the controller (Kafka's `AlterPartitionManager`):
//! expansions proposed when a follower catches up (from the fetch path) and shrinks found by
//! the periodic check every `replica.lag.time.max.ms / 2` (Kafka's `isr-expiration` task). Each
//! change goes to the active controller as Kafka's AlterPartition request on its controller
//! listener ([`super::alter_partition`]), or as the same command in process on the active
//! controller's node; the controller validates it in Kafka's order inside apply, and the leader
//! learns the outcome from the image it follows (a refusal or no answer frees the partition for
//! the next proposal).

use std::sync::Arc;
use std::time::Duration;

use rafka_replication::IsrChange;
use tokio::sync::watch;

use super::alter_partition;
use super::controller_client::ControllerClient;
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
        tracing::info!(partition = ?partition, isr = ?change.members(),
            leader_epoch = change.leader_epoch, partition_epoch = change.partition_epoch,
            "Proposing an ISR change");
        // A remote active controller gets Kafka's AlterPartition on its controller listener;
        // on the active controller's own node the command is written in process.
        let outcome = if ControllerClient::remote_leader(&shared.quorum).is_some() {
            alter_partition::send(
                &shared.controller_client,
                &shared.quorum,
                shared.node_id,
                broker_epoch,
                (partition.topic_id, partition.index),
                &change,
            )
            .await
        } else {
            let command = alter_partition::command(
                shared.node_id,
                broker_epoch,
                (partition.topic_id, partition.index),
                &change,
            );
            shared
                .quorum
                .write(command)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        // A committed change reaches the partition with the image that carries it.
        if let Err(e) = outcome {
            tracing::warn!(partition = ?partition, isr = ?change.members(), error = %e,
                "The controller did not accept the ISR change");
            partition.isr_change_failed();
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
