//! Committed offsets, and offsets committed inside transactions that await their marker, kept
//! per group id apart from the groups themselves.
//!
//! Kafka's group coordinator keeps them in its `OffsetMetadataManager`, next to (not inside)
//! the `GroupMetadataManager`, and this store plays that part: offsets belong to a group id,
//! whatever kind of group currently runs under it. A classic group and a KIP-848 consumer group
//! ([`crate::consumer_group`]) commit to the same place, so converting a group from one protocol
//! to the other, or replacing its membership state, leaves its offsets where they are.
//!
//! The store does not decide when offsets go: the coordinator removes a group's offsets when it
//! deletes, expires or unloads the group, and writes the tombstones that make that durable.

use std::collections::{BTreeMap, HashMap};

use crate::group::CommittedOffset;
use crate::partition_for;

/// `(topic, partition)`, the key of one committed offset within a group.
pub type OffsetKey = (String, i32);

/// The offsets of one group id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    /// Committed offsets, visible to OffsetFetch.
    pub offsets: BTreeMap<OffsetKey, CommittedOffset>,
    /// Offsets committed inside transactions, by producer id, until the transaction's marker
    /// reaches the group's partition (KIP-98): visible only after a commit marker.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<OffsetKey, CommittedOffset>>,
}

impl GroupOffsets {
    /// Nothing committed and nothing pending: an entry like this is not kept in the store.
    pub const EMPTY: GroupOffsets = GroupOffsets {
        offsets: BTreeMap::new(),
        pending_txn_offsets: BTreeMap::new(),
    };

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.pending_txn_offsets.is_empty()
    }

    /// Whether a transactional commit for `(topic, partition)` awaits its marker.
    pub fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending_txn_offsets
            .values()
            .any(|m| m.contains_key(&key))
    }
}

/// [`GroupOffsets`] by group id. Group ids without offsets have no entry, so the store only
/// grows with groups that hold something.
#[derive(Debug, Default)]
pub struct OffsetStore {
    groups: HashMap<String, GroupOffsets>,
}

/// Shared by reads of group ids the store has no entry for.
static NO_OFFSETS: GroupOffsets = GroupOffsets::EMPTY;

impl OffsetStore {
    /// The offsets of `group_id`; empty when it has none.
    pub fn group(&self, group_id: &str) -> &GroupOffsets {
        self.groups.get(group_id).unwrap_or(&NO_OFFSETS)
    }

    /// The committed offset of `(topic, partition)` in `group_id`.
    pub fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&CommittedOffset> {
        self.groups
            .get(group_id)?
            .offsets
            .get(&(topic.to_string(), partition))
    }

    /// Whether `group_id` has any committed offset.
    pub fn has_committed(&self, group_id: &str) -> bool {
        !self.group(group_id).offsets.is_empty()
    }

    /// Whether `group_id` has offsets of a transaction that has not reached its marker.
    pub fn has_pending_txn(&self, group_id: &str) -> bool {
        !self.group(group_id).pending_txn_offsets.is_empty()
    }

    /// Stores a committed offset (an OffsetCommit, or its record replayed), replacing the
    /// previous one of the partition.
    pub fn commit(&mut self, group_id: &str, key: OffsetKey, offset: CommittedOffset) {
        self.entry(group_id).offsets.insert(key, offset);
    }

    /// Stores an offset committed inside the transaction of `producer_id`; it stays invisible
    /// until [`OffsetStore::complete_txn`].
    pub fn commit_pending(
        &mut self,
        group_id: &str,
        producer_id: i64,
        key: OffsetKey,
        offset: CommittedOffset,
    ) {
        self.entry(group_id)
            .pending_txn_offsets
            .entry(producer_id)
            .or_default()
            .insert(key, offset);
    }

    /// The marker of `producer_id`'s transaction reached `group_id`'s partition: its pending
    /// offsets there become committed, or are dropped on abort.
    pub fn complete_txn(&mut self, group_id: &str, producer_id: i64, commit: bool) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if let Some(pending) = g.pending_txn_offsets.remove(&producer_id) {
            if commit {
                g.offsets.extend(pending);
            }
        }
        self.prune(group_id);
    }

    /// Group ids that have an entry (something committed or pending).
    pub fn group_ids(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    /// Removes one committed offset (OffsetDelete, expiry, or a tombstone replayed); returns it
    /// if there was one. Pending transactional offsets of the partition stay.
    pub fn remove(
        &mut self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        let removed = self
            .groups
            .get_mut(group_id)?
            .offsets
            .remove(&(topic.to_string(), partition));
        self.prune(group_id);
        removed
    }

    /// Drops the pending transactional offsets of `group_id`: its classic group's metadata was
    /// tombstoned (deleted, or converted to a consumer group). Committed offsets have their own
    /// tombstones when they go.
    pub fn drop_pending(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.pending_txn_offsets.clear();
        }
        self.prune(group_id);
    }

    /// Removes everything of `group_id`, committed and pending, and returns it: the group is
    /// deleted or expired.
    pub fn remove_group(&mut self, group_id: &str) -> GroupOffsets {
        self.groups.remove(group_id).unwrap_or_default()
    }

    /// Drops the offsets of every group of `__consumer_offsets` partition `partition` (of
    /// `num_partitions`): the partition is no longer led here, and its offsets are read back
    /// from the log if it is loaded again.
    pub fn unload_partition(&mut self, partition: i32, num_partitions: i32) {
        self.groups
            .retain(|id, _| partition_for(id, num_partitions) != partition);
    }

    fn entry(&mut self, group_id: &str) -> &mut GroupOffsets {
        self.groups.entry(group_id.to_string()).or_default()
    }

    /// Keeps the store to groups that hold something.
    fn prune(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(GroupOffsets::is_empty)
        {
            self.groups.remove(group_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        }
    }

    fn key(topic: &str, partition: i32) -> OffsetKey {
        (topic.to_string(), partition)
    }

    #[test]
    fn offsets_are_kept_per_group_id() {
        let mut s = OffsetStore::default();
        s.commit("a", key("t", 0), at(1));
        s.commit("b", key("t", 0), at(2));
        s.commit("a", key("t", 0), at(3));
        assert_eq!(s.committed("a", "t", 0).map(|c| c.offset), Some(3));
        assert_eq!(s.committed("b", "t", 0).map(|c| c.offset), Some(2));
        assert_eq!(s.committed("c", "t", 0), None);
        assert!(s.group("c").is_empty());
    }

    #[test]
    fn removing_the_last_offset_drops_the_entry() {
        let mut s = OffsetStore::default();
        s.commit("g", key("t", 0), at(1));
        s.commit("g", key("t", 1), at(2));
        assert_eq!(s.remove("g", "t", 0).map(|c| c.offset), Some(1));
        assert_eq!(s.remove("g", "t", 0), None);
        assert!(s.has_committed("g"));
        assert_eq!(s.remove("g", "t", 1).map(|c| c.offset), Some(2));
        assert!(!s.has_committed("g"));
        assert_eq!(s.group_ids().count(), 0);
        // Removing from an unknown group changes nothing.
        assert_eq!(s.remove("nope", "t", 0), None);
    }

    #[test]
    fn pending_offsets_are_invisible_until_committed_and_dropped_on_abort() {
        let mut s = OffsetStore::default();
        s.commit("g", key("t", 0), at(10));
        s.commit_pending("g", 7, key("t", 0), at(20));
        s.commit_pending("g", 8, key("t", 1), at(30));
        assert_eq!(s.committed("g", "t", 0).map(|c| c.offset), Some(10));
        assert!(s.group("g").has_pending_txn_offset("t", 0));
        assert!(s.group("g").has_pending_txn_offset("t", 1));
        assert!(!s.group("g").has_pending_txn_offset("t", 2));

        s.complete_txn("g", 7, true);
        assert_eq!(s.committed("g", "t", 0).map(|c| c.offset), Some(20));
        assert!(!s.group("g").has_pending_txn_offset("t", 0));
        assert!(s.has_pending_txn("g"));

        s.complete_txn("g", 8, false);
        assert_eq!(s.committed("g", "t", 1), None);
        assert!(!s.has_pending_txn("g"));
    }

    #[test]
    fn an_aborted_transaction_of_a_group_without_offsets_leaves_no_entry() {
        let mut s = OffsetStore::default();
        s.commit_pending("g", 7, key("t", 0), at(20));
        assert_eq!(s.group_ids().count(), 1);
        s.complete_txn("g", 7, false);
        assert_eq!(s.group_ids().count(), 0);
    }

    #[test]
    fn removing_a_group_takes_committed_and_pending_offsets() {
        let mut s = OffsetStore::default();
        s.commit("g", key("t", 0), at(1));
        s.commit_pending("g", 7, key("t", 1), at(2));
        s.commit("other", key("t", 0), at(3));
        let removed = s.remove_group("g");
        assert_eq!(removed.offsets.len(), 1);
        assert_eq!(removed.pending_txn_offsets.len(), 1);
        assert!(s.group("g").is_empty());
        assert_eq!(s.committed("other", "t", 0).map(|c| c.offset), Some(3));
        assert!(s.remove_group("g").is_empty());
    }

    #[test]
    fn unloading_a_partition_drops_exactly_its_groups() {
        let n = 4;
        let ids: Vec<String> = (0..32).map(|i| format!("group-{i}")).collect();
        let mut s = OffsetStore::default();
        for id in &ids {
            s.commit(id, key("t", 0), at(1));
            s.commit_pending(id, 7, key("t", 1), at(2));
        }
        let target = partition_for(&ids[0], n);
        s.unload_partition(target, n);
        for id in &ids {
            let kept = partition_for(id, n) != target;
            assert_eq!(s.has_committed(id), kept, "{id}");
            assert_eq!(s.has_pending_txn(id), kept, "{id}");
        }
        assert!(ids.iter().any(|id| partition_for(id, n) != target));
    }
}
