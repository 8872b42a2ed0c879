//! A partition's part in replication (DESIGN.md §6): the I/O shell around
//! `rafka_replication`'s state machines. The image decides each replica's role (KRaft has no
//! LeaderAndIsr requests); the leader keeps its followers' progress and the high watermark
//! under the log's lock, so the log end, the high watermark and the role always move together.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rafka_replication::{
    EpochEndOffset, EpochHistory, EpochStart, FollowerFetch, IsrChange, LeaderConfig,
    LeaderPartition,
};
use rafka_storage::{Log, LogRead, StorageError};

use super::{lock, Inner, Partition};

/// What this replica does for its partition.
#[derive(Debug)]
pub enum Role {
    /// This broker leads: the follower bookkeeping and the high watermark.
    Leader(Box<LeaderPartition>),
    /// Another broker leads (or none does: `leader_id` -1); this replica copies its log.
    Follower { leader_id: i32, leader_epoch: i32 },
}

impl Role {
    /// A replica before the image has said anything about it.
    pub(super) fn unassigned() -> Role {
        Role::Follower {
            leader_id: -1,
            leader_epoch: -1,
        }
    }
}

/// A follower's fetch of one partition as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaFetch {
    pub replica_id: i32,
    /// The broker epoch the request carried (KIP-903), -1 before Fetch v15.
    pub broker_epoch: i64,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    /// The epoch of the last batch the follower has, -1 when unknown (before Fetch v12).
    pub last_fetched_epoch: i32,
    /// Whether the follower's broker may join the ISR now (from the image).
    pub may_join_isr: bool,
}

/// The leader's answer to a [`ReplicaFetch`].
#[derive(Debug)]
pub enum ReplicaRead {
    /// The batches from the fetch offset up to the log end, the high watermark with this fetch
    /// counted, and an ISR expansion to send if one became due.
    Records {
        read: LogRead,
        high_watermark: i64,
        isr_change: Option<IsrChange>,
    },
    /// The follower's log stops agreeing with ours at this epoch and end offset (KIP-320): it
    /// truncates before it fetches on.
    Diverging(EpochEndOffset),
}

/// Why a follower's fetch was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaFetchError {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error(transparent)]
    Storage(StorageError),
}

/// This log's leader epoch history, for the epoch lookups of `rafka_replication`.
fn epoch_history(log: &Log) -> EpochHistory {
    let entries = log
        .leader_epoch_entries()
        .iter()
        .map(|e| EpochStart {
            epoch: e.epoch,
            start_offset: e.start_offset,
        })
        .collect();
    // The log keeps its cache ordered; one that is not reads as empty (no divergence can be
    // claimed from it) rather than as a wrong answer.
    EpochHistory::new(entries).unwrap_or_else(|_| EpochHistory::new(Vec::new()).expect("empty"))
}

impl Partition {
    /// A leader appended: the high watermark follows at once when no follower has to copy the
    /// records first (a single replica, or an ISR of the leader alone).
    pub(super) fn after_leader_append(&self, inner: &mut Inner, now_ms: i64) {
        let end = inner.log.log_end_offset();
        if let Role::Leader(leader) = &mut inner.role {
            if let Some(hw) = leader.on_append(end, now_ms) {
                self.set_high_watermark(inner, hw);
            }
        }
    }

    /// Publishes a new high watermark; the log settles transaction markers below it.
    fn set_high_watermark(&self, inner: &mut Inner, high_watermark: i64) {
        self.high_watermark.store(high_watermark, Ordering::Release);
        inner.log.on_high_watermark_updated(high_watermark);
    }

    /// The role the image gives this replica: becoming leader starts the follower bookkeeping
    /// afresh at the new epoch (Kafka's `makeLeader`), an ISR the controller committed reaches
    /// the leader here, becoming a follower drops the leader state. Returns whether parked
    /// fetches and produces must be woken (the high watermark moved, or leadership was lost).
    pub fn apply_partition_image(
        &self,
        node_id: i32,
        image: &rafka_metadata::PartitionImage,
        config: LeaderConfig,
        now_ms: i64,
    ) -> bool {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let end = inner.log.log_end_offset();
        if image.leader == node_id {
            let moved = match &mut inner.role {
                Role::Leader(l) if l.leader_epoch() == image.leader_epoch => {
                    // Only a new registration ends the change in flight: an image that
                    // changed elsewhere says nothing about it.
                    if l.partition_epoch() != image.partition_epoch {
                        l.on_replicas_changed(&image.replicas);
                        l.on_isr_committed(&image.isr, image.partition_epoch, end, now_ms)
                    } else {
                        None
                    }
                }
                _ => {
                    if let Err(e) = inner.log.assign_leader_epoch_start(image.leader_epoch) {
                        // The log went offline; reads and appends report it.
                        tracing::error!(partition = ?self, error = %e,
                            "Could not record the start of the new leader epoch");
                    }
                    let mut l = LeaderPartition::new(
                        node_id,
                        image.leader_epoch,
                        image.partition_epoch,
                        &image.replicas,
                        &image.isr,
                        end,
                        self.high_watermark(),
                        now_ms,
                        config,
                    );
                    let moved = l.on_append(end, now_ms);
                    if !image.leader_recovery_state.is_recovered() {
                        tracing::info!(partition = ?self, "The topic partition was marked as RECOVERING. Marking the topic partition as RECOVERED.");
                    }
                    if image.replicas.len() > 1 {
                        tracing::info!(partition = ?self, leader_epoch = image.leader_epoch,
                            isr = ?image.isr, log_end_offset = end,
                            high_watermark = l.high_watermark(), "Became the leader");
                    }
                    inner.role = Role::Leader(Box::new(l));
                    self.leading.store(true, Ordering::Release);
                    moved
                }
            };
            return match moved {
                Some(hw) => {
                    self.set_high_watermark(inner, hw);
                    true
                }
                None => false,
            };
        }
        let was_leader = matches!(inner.role, Role::Leader(_));
        let unchanged = matches!(inner.role, Role::Follower { leader_id, leader_epoch }
            if leader_id == image.leader && leader_epoch == image.leader_epoch);
        if !unchanged {
            tracing::info!(partition = ?self, leader = image.leader,
                leader_epoch = image.leader_epoch, log_end_offset = end, "Following the leader");
            inner.role = Role::Follower {
                leader_id: image.leader,
                leader_epoch: image.leader_epoch,
            };
            self.leading.store(false, Ordering::Release);
        }
        was_leader
    }

    /// Kafka's `lowWatermarkIfLeader`: the smallest log start over this leader and its followers
    /// on live brokers; `None` when this replica does not lead.
    pub fn low_watermark(&self, alive: impl Fn(i32) -> bool) -> Option<i64> {
        let inner = lock(&self.inner);
        match &inner.role {
            Role::Leader(l) => Some(l.low_watermark(inner.log.log_start_offset(), alive)),
            Role::Follower { .. } => None,
        }
    }

    /// Whether this replica leads at `leader_epoch` (a parked acks=all produce checks it).
    pub fn leads_at(&self, leader_epoch: i32) -> bool {
        matches!(&lock(&self.inner).role, Role::Leader(l) if l.leader_epoch() == leader_epoch)
    }

    /// KIP-207: this replica leads, and its high watermark has not reached the offset its
    /// epoch started at (its followers have not all fetched at the new epoch yet).
    pub fn high_watermark_behind_epoch_start(&self) -> bool {
        matches!(&lock(&self.inner).role,
            Role::Leader(l) if l.high_watermark() < l.epoch_start_offset())
    }

    /// While this replica leads at `leader_epoch`: its high watermark and committed ISR size
    /// (what a parked acks=all produce decides on, under one lock).
    pub fn leader_state(&self, leader_epoch: i32) -> Option<(i64, usize)> {
        match &lock(&self.inner).role {
            Role::Leader(l) if l.leader_epoch() == leader_epoch => {
                Some((self.high_watermark(), l.isr().len()))
            }
            _ => None,
        }
    }

    /// Kafka's end offset for `epoch` on this leader (OffsetForLeaderEpoch): the start of the
    /// first later epoch, or the log end for the latest; UNDEFINED for an epoch this log never
    /// knew. A leader whose epoch has not written yet answers as Kafka's does, whose cache gets
    /// the new epoch at the log end when it becomes leader.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> EpochEndOffset {
        let inner = lock(&self.inner);
        let end = inner.log.log_end_offset();
        let mut history = epoch_history(&inner.log);
        if let Role::Leader(l) = &inner.role {
            if history.latest().is_none_or(|e| e.epoch < l.leader_epoch()) {
                history.assign(l.leader_epoch(), end);
            }
        }
        history.end_offset_for(epoch, end)
    }

    /// The committed ISR size while this replica leads, `None` otherwise.
    pub fn isr_len(&self) -> Option<usize> {
        match &lock(&self.inner).role {
            Role::Leader(l) => Some(l.isr().len()),
            Role::Follower { .. } => None,
        }
    }

    /// A follower's fetch on the leader (Kafka's `Partition.fetchRecords` for a follower): the
    /// diverging-epoch check first, then a read up to the log end, then the follower's
    /// progress, which may move the high watermark (parked fetches and produces are woken) and
    /// propose an ISR expansion.
    pub fn replica_fetch(
        &self,
        fetch: ReplicaFetch,
        max_bytes: usize,
        min_one_batch: bool,
        now_ms: i64,
    ) -> Result<ReplicaRead, ReplicaFetchError> {
        let (result, moved) = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            if !matches!(inner.role, Role::Leader(_)) {
                return Err(ReplicaFetchError::NotLeader);
            }
            let end = inner.log.log_end_offset();
            if fetch.last_fetched_epoch >= 0 {
                let history = epoch_history(&inner.log);
                if let Some(diverging) =
                    history.diverging_epoch(fetch.last_fetched_epoch, fetch.fetch_offset, end)
                {
                    return Ok(ReplicaRead::Diverging(diverging));
                }
            }
            let read = inner
                .log
                .read(fetch.fetch_offset, max_bytes, end, min_one_batch)
                .map_err(ReplicaFetchError::Storage)?;
            let Role::Leader(leader) = &mut inner.role else {
                return Err(ReplicaFetchError::NotLeader);
            };
            let progress = leader.on_follower_fetch(
                FollowerFetch {
                    replica_id: fetch.replica_id,
                    broker_epoch: fetch.broker_epoch,
                    fetch_offset: fetch.fetch_offset,
                    log_start_offset: fetch.log_start_offset,
                    may_join_isr: fetch.may_join_isr,
                    now_ms,
                },
                end,
            );
            let high_watermark = leader.high_watermark();
            if let Some(moved) = progress.high_watermark {
                self.set_high_watermark(inner, moved);
            }
            (
                ReplicaRead::Records {
                    read,
                    high_watermark,
                    isr_change: progress.isr_change,
                },
                // A parked DeleteRecords waits for followers' log starts.
                progress.high_watermark.is_some() || progress.log_start_moved,
            )
        };
        if moved {
            self.wake_waiters();
        }
        Ok(result)
    }

    /// The periodic ISR check on a leader: followers that have not caught up within
    /// `replica.lag.time.max.ms` are proposed for removal.
    pub fn maybe_shrink_isr(&self, now_ms: i64) -> Option<IsrChange> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let end = inner.log.log_end_offset();
        match &mut inner.role {
            Role::Leader(l) => l.maybe_shrink(now_ms, end),
            Role::Follower { .. } => None,
        }
    }

    /// The controller refused `change` and did not apply it.
    pub fn isr_change_refused(&self, change: &IsrChange) {
        if let Role::Leader(l) = &mut lock(&self.inner).role {
            l.on_isr_change_refused(change);
        }
    }

    /// Whether `change` is still this leader's change in flight (the image has not settled it,
    /// and leadership has not moved).
    pub fn isr_change_pending(&self, change: &IsrChange) -> bool {
        match &lock(&self.inner).role {
            Role::Leader(l) => l.pending_isr_change() == Some(change),
            Role::Follower { .. } => false,
        }
    }

    /// What a follower's next fetch asks for: its log end, its log start and the epoch of its
    /// last batch (-1 when it has none).
    pub fn follower_fetch_state(&self) -> (i64, i64, i32) {
        let inner = lock(&self.inner);
        (
            inner.log.log_end_offset(),
            inner.log.log_start_offset(),
            inner.log.latest_epoch().unwrap_or(-1),
        )
    }

    /// Whether this replica still follows at `leader_epoch`: an answer from a leader the
    /// image has since replaced must not touch the log (it may lead now itself).
    fn follows_at(inner: &Inner, leader_epoch: i32) -> bool {
        matches!(inner.role, Role::Follower { leader_epoch: e, .. } if e == leader_epoch)
    }

    /// A follower appends what its leader (at `leader_epoch`) sent, with offsets and epochs as
    /// the leader wrote them, and takes the leader's high watermark, capped at its own log end.
    pub fn append_as_follower(
        self: &Arc<Self>,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let sealed = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            if !Self::follows_at(inner, leader_epoch) {
                return Ok(());
            }
            if !records.is_empty() {
                inner.log.append_stamped(records, now_ms)?;
            }
            let hw = rafka_replication::follower_high_watermark(
                leader_high_watermark,
                inner.log.log_end_offset(),
            );
            if hw > self.high_watermark() {
                self.set_high_watermark(inner, hw);
            }
            // The leader's log start moved (DeleteRecords, retention): follow it, never past
            // what this replica knows is committed (Kafka's `maybeIncrementLogStartOffset` with
            // `LeaderOffsetIncremented`).
            let start = leader_log_start_offset.min(self.high_watermark());
            if start > inner.log.log_start_offset() {
                let start = inner
                    .log
                    .delete_records(start, self.high_watermark(), now_ms)?;
                self.log_start_offset.store(start, Ordering::Release);
            }
            self.take_sealed_flush(inner)
        };
        self.wake_waiters();
        self.run_sealed_flush(sealed);
        Ok(())
    }

    /// A follower truncates where the leader's diverging epoch says its log stops agreeing
    /// (never to its high watermark: KIP-101, KIP-279). Returns whether the logs now agree
    /// (otherwise the next fetch asks again from the new end).
    pub fn truncate_to_leader(
        &self,
        leader_epoch: i32,
        diverging: EpochEndOffset,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut inner = lock(&self.inner);
        if !Self::follows_at(&inner, leader_epoch) {
            return Ok(false);
        }
        let end = inner.log.log_end_offset();
        let history = epoch_history(&inner.log);
        let Some(t) = rafka_replication::truncation(&history, end, diverging) else {
            return Ok(true);
        };
        if t.offset < end {
            tracing::info!(partition = ?self, truncate_to = t.offset, log_end_offset = end,
                leader_epoch = diverging.epoch, leader_end_offset = diverging.end_offset,
                "Truncating to the leader's end offset for the diverging epoch");
        }
        // At or past the log end this removes only an epoch begun here and never written in,
        // which the next fetch would otherwise name again.
        inner.log.truncate_to(t.offset, now_ms)?;
        let new_end = inner.log.log_end_offset();
        if self.high_watermark() > new_end {
            self.high_watermark.store(new_end, Ordering::Release);
        }
        Ok(t.complete)
    }

    /// A follower whose log ends below the leader's log start starts over there (Kafka's
    /// `truncateFullyAndStartAt` after OFFSET_OUT_OF_RANGE).
    pub fn restart_at(
        &self,
        leader_epoch: i32,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        if !Self::follows_at(&inner, leader_epoch) {
            return Ok(());
        }
        tracing::warn!(partition = ?self, log_end_offset = inner.log.log_end_offset(),
            leader_log_start_offset = offset,
            "The log ends below the leader's log start; starting over there");
        inner.log.truncate_fully_and_start_at(offset, now_ms)?;
        self.log_start_offset.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        Ok(())
    }

    /// Kafka's rule before KIP-101, for the simulation to show it catches it: a follower cuts
    /// its log at its high watermark.
    #[cfg(test)]
    pub(super) fn truncate_to_high_watermark(&self, now_ms: i64) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        let hw = self.high_watermark();
        inner.log.truncate_to(hw, now_ms)
    }
}
