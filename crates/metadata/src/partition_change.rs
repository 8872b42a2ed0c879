//! How a partition's registration changes when its ISR shrinks or grows, a broker leaves, comes
//! back or shut down uncleanly: Kafka's `PartitionChangeBuilder`, as far as rafka needs it.
//!
//! With `eligible.leader.replicas.version` 1 (KIP-966, what Kafka 4.1 formats new clusters
//! with), the controller keeps **eligible leader replicas**: a replica that leaves the ISR while
//! the ISR is below the effective `min.insync.replicas` keeps everything below the high
//! watermark, because leaders do not move the high watermark below min ISR. Such a replica may
//! lead when no ISR member can, and a broker that shut down uncleanly (its page cache, and with
//! it acknowledged records, may be gone) leaves the ISR and the ELR at its next registration
//! instead of being elected as the ISR's last member. Without the feature the ISR keeps its last
//! member, as before Kafka 4.1.
//!
//! Elections, in Kafka's order: keep a leader that is still in the ISR and active; else the first
//! replica (in replica order) in the ISR and active; else the first active ELR member, which
//! becomes the whole ISR; else, when the ISR and ELR are empty and the last known ELR is one
//! replica, that replica once it is back (Kafka's "last known leader"); else, when
//! `unclean.leader.election.enable` (the topic's, else the cluster's) allows it or an UNCLEAN
//! ElectLeaders asks, the first active replica, out of sync or not (which may lose records);
//! else no leader. A PREFERRED election moves leadership to the first replica when it is in sync
//! and active.

use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{LeaderRecoveryState, PartitionChangeRecord, NO_LEADER};

/// KIP-966's feature name.
pub const ELR_FEATURE: &str = "eligible.leader.replicas.version";

/// Whether the controller keeps eligible leader replicas.
pub fn elr_enabled(image: &MetadataImage) -> bool {
    image.feature_level(ELR_FEATURE) >= 1
}

/// The `min.insync.replicas` the controller applies to a topic: the topic's, else the cluster's
/// dynamic default, else Kafka's default 1, capped at the replication factor. Leaders resolve the
/// same value (a new cluster with the ELR feature gets its controller's static value as the
/// cluster default, and per-broker values are refused, as in Kafka), so the ELR never holds a
/// replica that a leader moved the high watermark past.
pub fn effective_min_isr(image: &MetadataImage, topic: &TopicImage, replicas: usize) -> usize {
    const KEY: &str = "min.insync.replicas";
    let configured = topic
        .configs
        .get(KEY)
        .or_else(|| image.broker_configs.cluster_default.get(KEY))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    configured.min(replicas.max(1))
}

/// Whether unclean leader election is allowed for `topic` (`unclean.leader.election.enable`: the
/// topic's, else the cluster's dynamic default, else Kafka's default, false).
pub fn unclean_allowed(image: &MetadataImage, topic: &TopicImage) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    topic
        .configs
        .get(KEY)
        .or_else(|| image.broker_configs.cluster_default.get(KEY))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Partitions whose first (preferred) replica is in sync and live but does not lead, at most
/// `max` of them, in topic then partition order.
pub fn imbalanced(image: &MetadataImage, max: usize) -> Vec<(uuid::Uuid, i32)> {
    image
        .partitions()
        .filter(|(_, _, p)| {
            p.replicas.first().is_some_and(|&pref| {
                pref != p.leader && p.isr.contains(&pref) && image.is_active_broker(pref)
            })
        })
        .map(|(t, i, _)| (t.topic_id, i))
        .take(max)
        .collect()
}

/// Which election a change runs when its leader must change (Kafka's `Election`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Election {
    /// ISR, ELR, last known leader; unclean only if the topic's config allows it.
    Clean,
    /// ElectLeaders PREFERRED: the first replica, if it is in sync and active.
    Preferred,
    /// ElectLeaders UNCLEAN: as `Clean`, then any active replica whatever the config.
    Unclean,
}

/// A change to one partition under construction.
pub(crate) struct PartitionChange<'a> {
    image: &'a MetadataImage,
    topic: &'a TopicImage,
    index: i32,
    current: &'a PartitionImage,
    isr: Vec<i32>,
    elect: bool,
    leaving: Option<i32>,
    becoming_active: Option<i32>,
    unclean_shutdown: Option<i32>,
    election: Election,
    /// The replica list and reassignment state the change leads to.
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
    recovery: LeaderRecoveryState,
}

impl<'a> PartitionChange<'a> {
    pub(crate) fn new(
        image: &'a MetadataImage,
        topic: &'a TopicImage,
        index: i32,
        current: &'a PartitionImage,
    ) -> Self {
        PartitionChange {
            image,
            topic,
            index,
            current,
            isr: current.isr.clone(),
            elect: true,
            leaving: None,
            becoming_active: None,
            unclean_shutdown: None,
            election: Election::Clean,
            replicas: current.replicas.clone(),
            adding: current.adding_replicas.clone(),
            removing: current.removing_replicas.clone(),
            recovery: current.leader_recovery_state,
        }
    }

    /// The leader recovery state the leader's AlterPartition reports (KIP-704).
    pub(crate) fn leader_recovery_state(mut self, state: LeaderRecoveryState) -> Self {
        self.recovery = state;
        self
    }

    /// A reassignment step (Kafka's `setTargetReplicas` / `setTargetAdding` /
    /// `setTargetRemoving`): the new replica list and what is being added and removed.
    pub(crate) fn assignment(
        mut self,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
    ) -> Self {
        self.replicas = replicas;
        self.adding = adding;
        self.removing = removing;
        self
    }

    /// The ISR a cancelled reassignment leaves (Kafka's `setTargetIsr`); the leader is elected
    /// again if it is not in it.
    pub(crate) fn target_isr(mut self, isr: Vec<i32>) -> Self {
        self.isr = isr;
        self
    }

    /// ElectLeaders: run `election` even if the leader could stay.
    pub(crate) fn election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }

    /// The leader's proposed ISR (AlterPartition): the leader stays, nobody is elected.
    pub(crate) fn alter_isr(mut self, isr: Vec<i32>) -> Self {
        self.isr = isr;
        self.elect = false;
        self
    }

    /// `node` is being fenced or shutting down: it leaves the ISR and cannot lead.
    pub(crate) fn leaving(mut self, node: i32) -> Self {
        self.leaving = Some(node);
        self
    }

    /// `node` is being unfenced by the same command: it counts as active.
    pub(crate) fn becoming_active(mut self, node: i32) -> Self {
        self.becoming_active = Some(node);
        self
    }

    /// `node` registers after an unclean shutdown: it leaves the ISR and the ELR.
    pub(crate) fn unclean_shutdown(mut self, node: i32) -> Self {
        self.unclean_shutdown = Some(node);
        self
    }

    fn acceptable(&self, node: i32) -> bool {
        Some(node) != self.leaving
            && Some(node) != self.unclean_shutdown
            && (Some(node) == self.becoming_active || self.image.is_active_broker(node))
    }

    /// The record, or `None` when nothing changes.
    pub(crate) fn build(mut self) -> Option<PartitionChangeRecord> {
        let p = self.current;
        let elr_on = elr_enabled(self.image);
        let gone = |b: i32| Some(b) == self.leaving || Some(b) == self.unclean_shutdown;
        let mut isr: Vec<i32> = self.isr.iter().copied().filter(|b| !gone(*b)).collect();
        if isr.is_empty() && !elr_on {
            // Without ELR the last member stays, so it can lead again when it is back.
            isr = self.isr.clone();
        }
        self.complete_reassignment(&mut isr);
        let replicas = std::mem::take(&mut self.replicas);
        let mut elr: Vec<i32> = Vec::new();
        let mut last_known_elr: Vec<i32> = Vec::new();
        if elr_on {
            let min_isr = effective_min_isr(self.image, self.topic, p.replicas.len());
            if isr.len() < min_isr {
                elr = replicas
                    .iter()
                    .copied()
                    .filter(|b| {
                        (p.isr.contains(b) || p.elr.contains(b))
                            && !isr.contains(b)
                            && Some(*b) != self.unclean_shutdown
                    })
                    .collect();
                // With nobody in sync, replicas that leave the ELR by unclean shutdowns are
                // remembered: if exactly one was last eligible, it may lead once it is back.
                if isr.is_empty() {
                    last_known_elr = p.last_known_elr.clone();
                    if let Some(u) = self.unclean_shutdown {
                        if (p.isr.contains(&u) || p.elr.contains(&u))
                            && !last_known_elr.contains(&u)
                        {
                            last_known_elr.push(u);
                        }
                    }
                }
            }
        }
        let mut leader = p.leader;
        let keeps = leader != NO_LEADER && isr.contains(&leader) && self.acceptable(leader);
        // An ISR change keeps its leader, unless completing a reassignment took it out.
        let elect = self.elect || (leader != NO_LEADER && !isr.contains(&leader));
        if self.election == Election::Preferred {
            if let Some(&preferred) = replicas.first() {
                if preferred != leader && isr.contains(&preferred) && self.acceptable(preferred) {
                    leader = preferred;
                }
            }
        } else if elect && !keeps {
            leader = NO_LEADER;
            if let Some(b) = replicas
                .iter()
                .copied()
                .find(|b| isr.contains(b) && self.acceptable(*b))
            {
                leader = b;
            } else if let Some(b) = replicas
                .iter()
                .copied()
                .find(|b| elr.contains(b) && self.acceptable(*b))
            {
                leader = b;
                isr = vec![b];
                elr.retain(|e| *e != b);
                last_known_elr.clear();
            } else if isr.is_empty()
                && elr.is_empty()
                && last_known_elr.len() == 1
                && self.acceptable(last_known_elr[0])
            {
                leader = last_known_elr[0];
                isr = vec![leader];
                last_known_elr.clear();
                // Kafka counts this election as unclean: the replica may have lost records.
                self.recovery = LeaderRecoveryState::Recovering;
                tracing::warn!(topic = %self.topic.name, partition = self.index, leader,
                    "Electing the last known leader after unclean shutdowns emptied the ELR; records it lost are gone");
            } else if self.election == Election::Unclean || unclean_allowed(self.image, self.topic)
            {
                if let Some(b) = replicas.iter().copied().find(|b| self.acceptable(*b)) {
                    leader = b;
                    isr = vec![b];
                    elr.clear();
                    last_known_elr.clear();
                    self.recovery = LeaderRecoveryState::Recovering;
                    tracing::warn!(topic = %self.topic.name, partition = self.index, leader,
                        "Unclean leader election: a replica out of sync leads; records only the others had are lost");
                }
            }
        }
        if leader == p.leader
            && isr == p.isr
            && elr == p.elr
            && last_known_elr == p.last_known_elr
            && replicas == p.replicas
            && self.adding == p.adding_replicas
            && self.removing == p.removing_replicas
            && self.recovery == p.leader_recovery_state
        {
            return None;
        }
        // Replicas dropped by a reassignment must be fenced from the partition: the leader
        // epoch moves even when the leader stays (Kafka's
        // `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`).
        let dropped = p.replicas.iter().any(|r| !replicas.contains(r));
        Some(PartitionChangeRecord {
            topic_id: self.topic.topic_id,
            partition: self.index,
            leader: (leader != p.leader || dropped).then_some(leader),
            isr: (isr != p.isr).then_some(isr),
            replicas: (replicas != p.replicas).then_some(replicas),
            elr: (elr != p.elr).then_some(elr),
            last_known_elr: (last_known_elr != p.last_known_elr).then_some(last_known_elr),
            adding_replicas: (self.adding != p.adding_replicas).then(|| self.adding.clone()),
            removing_replicas: (self.removing != p.removing_replicas)
                .then(|| self.removing.clone()),
            leader_recovery_state: (self.recovery != p.leader_recovery_state)
                .then_some(self.recovery),
        })
    }

    /// Kafka's `completeReassignmentIfNeeded`: once the ISR without the replicas being removed
    /// is not empty and holds every replica of the target, the removed ones go from the replicas
    /// and the ISR, and the reassignment is over.
    fn complete_reassignment(&mut self, isr: &mut Vec<i32>) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let removing = &self.removing;
        let new_isr: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        let new_replicas: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        if new_isr.is_empty()
            || new_replicas.is_empty()
            || !new_replicas.iter().all(|r| new_isr.contains(r))
        {
            return;
        }
        tracing::info!(topic = %self.topic.name, partition = self.index, replicas = ?new_replicas,
            isr = ?new_isr, "Completing the reassignment");
        *isr = new_isr;
        self.replicas = new_replicas;
        self.adding.clear();
        self.removing.clear();
    }
}
