//! One partition on its leader (Kafka's `Partition` and `Replica` on the leader side): what each
//! follower has, the high watermark, and the ISR changes to ask the controller for.
//!
//! Rules, each Kafka's:
//! - A follower's last caught-up time moves to this fetch's time when it fetched from the
//!   leader's log end, or to its previous fetch's time when it has reached the leader's log end of
//!   that previous fetch (`Replica.updateFetchStateOrThrow`).
//! - The high watermark is the smallest log end offset over the leader and the *maximal* ISR:
//!   the committed ISR plus a member being added, and still including a member being removed
//!   until the controller has committed its removal; a caught-up follower that may join the ISR
//!   holds it back too (Kafka's `shouldWaitForReplicaToJoinIsr`). It never moves back, and not at
//!   all while the committed ISR is smaller than `min(min.insync.replicas, replicas)`
//!   (KAFKA-15583). A follower's log end is unknown until it has fetched at this leader's epoch,
//!   and an unknown log end holds the high watermark where it is: a new leader moves it only as
//!   its followers fetch.
//! - A follower out of the ISR is added once its log end reaches both the high watermark and the
//!   start of the leader's epoch (so it holds everything this leader may have acknowledged), and
//!   its broker may join (unfenced, not shutting down: the shell's word, from the image).
//! - An ISR member is removed once it has not been caught up for `replica.lag.time.max.ms`.
//! - One ISR change is in flight at a time; the next waits for the controller's answer.

use std::collections::BTreeMap;

/// The leader-side settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: usize,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// `None` until the follower has fetched at this leader epoch.
    pub log_end_offset: Option<i64>,
    pub log_start_offset: Option<i64>,
    /// `None` while it has never been caught up at this epoch (and was not in the ISR when
    /// this leader took over).
    pub last_caught_up_time_ms: Option<i64>,
    /// The broker epoch its last fetch carried (KIP-903), passed on in ISR changes.
    pub broker_epoch: Option<i64>,
    /// Whether its broker could join the ISR at its last fetch.
    pub may_join_isr: bool,
    last_fetch_leader_log_end_offset: Option<i64>,
    last_fetch_time_ms: Option<i64>,
}

impl ReplicaProgress {
    /// A replica the leader has not heard from yet, counted as caught up at `caught_up_at_ms`.
    fn fresh(caught_up_at_ms: Option<i64>) -> ReplicaProgress {
        ReplicaProgress {
            log_end_offset: None,
            log_start_offset: None,
            last_caught_up_time_ms: caught_up_at_ms,
            broker_epoch: None,
            may_join_isr: false,
            last_fetch_leader_log_end_offset: None,
            last_fetch_time_ms: None,
        }
    }

    /// Kafka's `Replica.isCaughtUp`: at the leader's log end, or caught up within the lag time.
    pub fn is_caught_up(&self, leader_log_end_offset: i64, now_ms: i64, lag_max_ms: i64) -> bool {
        self.log_end_offset == Some(leader_log_end_offset)
            || self
                .last_caught_up_time_ms
                .is_some_and(|t| now_ms - t <= lag_max_ms)
    }
}

/// A follower fetch as the leader's shell hands it in: the shell has already checked the
/// request's leader epoch and the fetch offset's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica_id: i32,
    pub broker_epoch: i64,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    /// Whether the follower's broker may join the ISR now (registered with this broker epoch,
    /// unfenced, not in controlled shutdown).
    pub may_join_isr: bool,
    pub now_ms: i64,
}

/// An ISR to propose with AlterPartition: every member with the broker epoch it last fetched
/// with (`None` for the leader itself and for members not heard from at this epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<(i32, Option<i64>)>,
}

impl IsrChange {
    pub fn members(&self) -> Vec<i32> {
        self.new_isr.iter().map(|(id, _)| *id).collect()
    }
}

/// What a fetch or an append changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The new high watermark, if it moved.
    pub high_watermark: Option<i64>,
    /// An ISR expansion to send, if one became due.
    pub isr_change: Option<IsrChange>,
    /// The follower reported another log start (a DeleteRecords may be waiting for it).
    pub log_start_moved: bool,
}

/// One partition led by this broker, for one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderPartition {
    node_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
    pending: Option<IsrChange>,
    high_watermark: i64,
    /// The leader's log end when it took over: the first offset of its epoch.
    epoch_start_offset: i64,
    followers: BTreeMap<i32, ReplicaProgress>,
    config: LeaderConfig,
}

impl LeaderPartition {
    /// Becoming leader at `leader_epoch` with the image's `replicas` and `isr`, a log that ends at
    /// `log_end_offset` and a high watermark of `high_watermark` (from the checkpoint, at most the
    /// log end). ISR members count as caught up now, so none is removed before it had a chance
    /// to fetch (Kafka's `resetReplicaState`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end_offset: i64,
        high_watermark: i64,
        now_ms: i64,
        config: LeaderConfig,
    ) -> LeaderPartition {
        let followers = replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| {
                (
                    *r,
                    ReplicaProgress::fresh(isr.contains(r).then_some(now_ms)),
                )
            })
            .collect();
        LeaderPartition {
            node_id,
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            pending: None,
            high_watermark: high_watermark.min(log_end_offset),
            epoch_start_offset: log_end_offset,
            followers,
            config,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The partition epoch of the registration this leader last saw committed.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The ISR change awaiting the controller's answer.
    pub fn pending_isr_change(&self) -> Option<&IsrChange> {
        self.pending.as_ref()
    }

    pub fn follower(&self, replica_id: i32) -> Option<&ReplicaProgress> {
        self.followers.get(&replica_id)
    }

    /// The committed ISR plus a member being added (a member being removed is still in it).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut out = self.isr.clone();
        if let Some(p) = &self.pending {
            for id in p.members() {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// Whether acks=all writes may be accepted: the ISR (the committed one, as Kafka checks it)
    /// has at least `min_insync_replicas` members.
    pub fn isr_at_least(&self, min_insync_replicas: usize) -> bool {
        self.isr.len() >= min_insync_replicas
    }

    /// A fetch from a follower; `log_end_offset` is the leader's log end now. Fetches from
    /// brokers that are not replicas are ignored.
    pub fn on_follower_fetch(&mut self, fetch: FollowerFetch, log_end_offset: i64) -> Progress {
        let Some(f) = self.followers.get_mut(&fetch.replica_id) else {
            return Progress::default();
        };
        let caught_up_at = if fetch.fetch_offset >= log_end_offset {
            Some(fetch.now_ms)
        } else {
            match (f.last_fetch_leader_log_end_offset, f.last_fetch_time_ms) {
                (Some(prev_end), Some(prev_time)) if fetch.fetch_offset >= prev_end => {
                    Some(prev_time)
                }
                _ => None,
            }
        };
        if let Some(at) = caught_up_at {
            f.last_caught_up_time_ms = Some(f.last_caught_up_time_ms.map_or(at, |t| t.max(at)));
        }
        f.log_end_offset = Some(fetch.fetch_offset);
        let log_start_moved = f.log_start_offset != Some(fetch.log_start_offset);
        f.log_start_offset = Some(fetch.log_start_offset);
        f.last_fetch_leader_log_end_offset = Some(log_end_offset);
        f.last_fetch_time_ms = Some(fetch.now_ms);
        f.broker_epoch = Some(fetch.broker_epoch);
        f.may_join_isr = fetch.may_join_isr;

        let isr_change = self.maybe_expand(fetch);
        Progress {
            high_watermark: self.maybe_advance_high_watermark(log_end_offset, fetch.now_ms),
            isr_change,
            log_start_moved,
        }
    }

    /// The leader appended: with no follower in the ISR the high watermark follows at once.
    pub fn on_append(&mut self, log_end_offset: i64, now_ms: i64) -> Option<i64> {
        self.maybe_advance_high_watermark(log_end_offset, now_ms)
    }

    /// The periodic ISR check (Kafka's `maybeShrinkIsr`): members that have not been caught up
    /// for `replica.lag.time.max.ms` are proposed for removal.
    pub fn maybe_shrink(&mut self, now_ms: i64, log_end_offset: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| *id != self.node_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_some_and(|f| !f.is_caught_up(log_end_offset, now_ms, lag_max_ms))
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let members: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| !lagging.contains(id))
            .collect();
        Some(self.propose(members))
    }

    /// The controller committed an ISR for this partition (the AlterPartition answer, or the
    /// image): it replaces the committed one, and the change in flight is over.
    pub fn on_isr_committed(
        &mut self,
        isr: &[i32],
        partition_epoch: i32,
        log_end_offset: i64,
        now_ms: i64,
    ) -> Option<i64> {
        // A member the controller removed (fenced, or shrunk out) must qualify again with a
        // fetch of its own before it counts as about to join: otherwise a dead follower that
        // was caught up when it died would hold the high watermark for the whole lag time
        // (Kafka checks a fenced broker as ineligible, `isReplicaIsrEligible`).
        for (id, f) in self.followers.iter_mut() {
            if self.isr.contains(id) && !isr.contains(id) {
                f.may_join_isr = false;
            }
        }
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
        self.pending = None;
        // A removed member no longer holds the high watermark back.
        self.maybe_advance_high_watermark(log_end_offset, now_ms)
    }

    /// The controller changed the partition's replicas within this leader epoch (a reassignment
    /// adds replicas without a new epoch; dropping one always comes with one): new replicas start
    /// with no progress, as Kafka's `updateAssignmentAndIsr` does, and must catch up before they
    /// may join the ISR.
    pub fn on_replicas_changed(&mut self, replicas: &[i32]) {
        self.followers.retain(|id, _| replicas.contains(id));
        for r in replicas {
            if *r != self.node_id {
                self.followers
                    .entry(*r)
                    .or_insert_with(|| ReplicaProgress::fresh(None));
            }
        }
    }

    /// Kafka's `lowWatermarkIfLeader`: the smallest log start of the leader (`log_start_offset`)
    /// and of every follower whose broker is alive (`alive`); a follower that has not fetched at
    /// this epoch counts as -1, so DeleteRecords waits for it. A delete is complete on every
    /// replica once this reaches its offset.
    pub fn low_watermark(&self, log_start_offset: i64, alive: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(id, _)| alive(**id))
            .map(|(_, f)| f.log_start_offset.unwrap_or(-1))
            .fold(log_start_offset, i64::min)
    }

    /// The controller refused `change` and said it did not apply it (INELIGIBLE_REPLICA,
    /// OPERATION_NOT_ATTEMPTED): the committed ISR stands and the next check may propose again.
    /// Only then: after any other failure the change may have been committed (an answer lost
    /// with its connection, a retry after a timeout), so it stays in flight and its member keeps
    /// holding the high watermark until the image says what was committed (Kafka's
    /// `handleAlterPartitionError`). A refusal of an older change leaves a newer one alone.
    pub fn on_isr_change_refused(&mut self, change: &IsrChange) {
        if self.pending.as_ref() == Some(change) {
            self.pending = None;
        }
    }

    fn maybe_expand(&mut self, fetch: FollowerFetch) -> Option<IsrChange> {
        if self.pending.is_some() || self.isr.contains(&fetch.replica_id) || !fetch.may_join_isr {
            return None;
        }
        let end = self.followers.get(&fetch.replica_id)?.log_end_offset?;
        if end < self.high_watermark || end < self.epoch_start_offset {
            return None;
        }
        let mut members = self.isr.clone();
        members.push(fetch.replica_id);
        Some(self.propose(members))
    }

    fn propose(&mut self, members: Vec<i32>) -> IsrChange {
        let change = IsrChange {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr: members
                .into_iter()
                .map(|id| (id, self.followers.get(&id).and_then(|f| f.broker_epoch)))
                .collect(),
        };
        self.pending = Some(change.clone());
        change
    }

    fn maybe_advance_high_watermark(&mut self, log_end_offset: i64, now_ms: i64) -> Option<i64> {
        let replicas = self.followers.len() + 1;
        if self.isr.len() < self.config.min_insync_replicas.min(replicas) {
            return None;
        }
        let maximal = self.maximal_isr();
        let mut candidate = log_end_offset;
        for id in &maximal {
            if *id == self.node_id {
                continue;
            }
            match self.followers.get(id).and_then(|f| f.log_end_offset) {
                Some(end) => candidate = candidate.min(end),
                // Not heard from at this epoch: hold the high watermark where it is.
                None => return None,
            }
        }
        // A follower about to join holds it back as well, so that it joins an ISR whose high
        // watermark it already has.
        for (id, f) in &self.followers {
            let waiting = !maximal.contains(id)
                && f.may_join_isr
                && f.is_caught_up(log_end_offset, now_ms, self.config.replica_lag_time_max_ms);
            if let (true, Some(end)) = (waiting, f.log_end_offset) {
                candidate = candidate.min(end);
            }
        }
        (candidate > self.high_watermark).then(|| {
            self.high_watermark = candidate;
            candidate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 30_000;

    fn leader(isr: &[i32], log_end: i64, hw: i64) -> LeaderPartition {
        LeaderPartition::new(
            1,
            5,
            7,
            &[1, 2, 3],
            isr,
            log_end,
            hw,
            1_000,
            LeaderConfig {
                replica_lag_time_max_ms: LAG_MS,
                min_insync_replicas: 1,
            },
        )
    }

    fn fetch(replica_id: i32, fetch_offset: i64, now_ms: i64) -> FollowerFetch {
        FollowerFetch {
            replica_id,
            broker_epoch: 100 + i64::from(replica_id),
            fetch_offset,
            log_start_offset: 0,
            may_join_isr: true,
            now_ms,
        }
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        assert_eq!(
            l.on_append(20, 1_050),
            None,
            "followers not heard from hold it"
        );
        assert_eq!(
            l.on_follower_fetch(fetch(2, 15, 1_100), 20).high_watermark,
            None
        );
        assert_eq!(
            l.on_follower_fetch(fetch(3, 12, 1_100), 20).high_watermark,
            Some(12)
        );
        assert_eq!(
            l.on_follower_fetch(fetch(3, 20, 1_200), 20).high_watermark,
            Some(15)
        );
        assert_eq!(
            l.on_follower_fetch(fetch(2, 20, 1_200), 20).high_watermark,
            Some(20)
        );
        assert_eq!(l.high_watermark(), 20);
    }

    /// A follower fenced while caught up leaves the ISR through the controller; until it
    /// fetches again it must not hold the high watermark as a member about to join.
    #[test]
    fn a_follower_removed_by_the_controller_no_longer_holds_the_high_watermark() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        l.on_follower_fetch(fetch(2, 10, 1_100), 10);
        l.on_follower_fetch(fetch(3, 10, 1_100), 10);
        assert_eq!(l.high_watermark(), 10);
        // Broker 3 dies; the controller fences it and commits ISR [1, 2].
        assert_eq!(l.on_isr_committed(&[1, 2], 8, 10, 1_200), None);
        l.on_append(12, 1_300);
        assert_eq!(
            l.on_follower_fetch(fetch(2, 12, 1_400), 12).high_watermark,
            Some(12),
            "broker 3, last caught up within the lag time, must not hold it at 10"
        );
        // Back and caught up, it holds the high watermark again while it joins.
        l.on_follower_fetch(fetch(3, 12, 1_500), 12);
        l.on_append(14, 1_600);
        assert_eq!(
            l.on_follower_fetch(fetch(2, 14, 1_700), 14).high_watermark,
            None
        );
    }

    #[test]
    fn the_high_watermark_never_moves_back() {
        let mut l = leader(&[1, 2], 10, 8);
        l.on_follower_fetch(fetch(2, 10, 1_100), 10);
        assert_eq!(l.high_watermark(), 10);
        // A follower that truncated and fetches from further back cannot lower it.
        assert_eq!(
            l.on_follower_fetch(fetch(2, 4, 1_200), 10).high_watermark,
            None
        );
        assert_eq!(l.high_watermark(), 10);
    }

    #[test]
    fn a_new_leader_moves_the_high_watermark_only_as_followers_fetch() {
        // Its checkpoint said 5; its log ends at 9. Nothing moves until both ISR followers
        // fetched at this epoch.
        let mut l = leader(&[1, 2, 3], 9, 5);
        assert_eq!(l.high_watermark(), 5);
        assert_eq!(l.on_append(9, 1_050), None);
        l.on_follower_fetch(fetch(2, 9, 1_100), 9);
        assert_eq!(l.high_watermark(), 5);
        assert_eq!(
            l.on_follower_fetch(fetch(3, 7, 1_100), 9).high_watermark,
            Some(7)
        );
    }

    #[test]
    fn alone_in_the_isr_the_leader_moves_it_on_append() {
        let mut l = leader(&[1], 0, 0);
        assert_eq!(l.on_append(3, 1_050), Some(3));
    }

    #[test]
    fn lagging_members_are_proposed_for_removal_and_held_until_committed() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        l.on_follower_fetch(fetch(2, 10, 1_100), 10);
        l.on_follower_fetch(fetch(3, 10, 1_100), 10);
        // Appends move on; 3 stops fetching, 2 keeps up.
        l.on_follower_fetch(fetch(2, 50, 20_000), 50);
        assert_eq!(l.maybe_shrink(20_000, 50), None, "within the lag time");
        let change = l.maybe_shrink(1_100 + LAG_MS + 1, 50).expect("3 lags");
        assert_eq!(change.members(), vec![1, 2]);
        assert_eq!(change.new_isr, vec![(1, None), (2, Some(102))]);
        assert_eq!((change.leader_epoch, change.partition_epoch), (5, 7));
        // One change at a time.
        assert_eq!(l.maybe_shrink(1_100 + LAG_MS + 2, 50), None);
        // 3 still holds the high watermark until the controller commits its removal.
        assert_eq!(l.high_watermark(), 10);
        assert_eq!(
            l.on_isr_committed(&[1, 2], 8, 50, 1_100 + LAG_MS + 3),
            Some(50)
        );
        assert_eq!(l.isr(), &[1, 2]);
    }

    #[test]
    fn a_member_at_the_log_end_is_never_lagging() {
        let mut l = leader(&[1, 2], 10, 10);
        l.on_follower_fetch(fetch(2, 10, 1_100), 10);
        // No appends for longer than the lag time: 2 has everything.
        assert_eq!(l.maybe_shrink(1_100 + 10 * LAG_MS, 10), None);
    }

    #[test]
    fn caught_up_time_follows_kafkas_rule() {
        let mut l = leader(&[1, 2], 10, 10);
        // At the leader's end: caught up now.
        l.on_follower_fetch(fetch(2, 10, 2_000), 10);
        assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, Some(2_000));
        // Behind the end, but at the end of its previous fetch: caught up as of that fetch.
        l.on_follower_fetch(fetch(2, 10, 3_000), 20);
        assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, Some(2_000));
        l.on_follower_fetch(fetch(2, 20, 4_000), 30);
        assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, Some(3_000));
        // Behind both: no progress.
        l.on_follower_fetch(fetch(2, 25, 5_000), 40);
        assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, Some(3_000));
    }

    #[test]
    fn a_follower_joins_once_it_holds_the_high_watermark_and_the_epoch_start() {
        // Leader took over at log end 10; high watermark 6 (a follower is behind).
        let mut l = leader(&[1, 2], 10, 6);
        l.on_follower_fetch(fetch(2, 10, 1_100), 12);
        assert_eq!(l.high_watermark(), 10);
        // 3 is past the high watermark? It must also reach the epoch start (10).
        assert_eq!(l.on_follower_fetch(fetch(3, 9, 1_200), 12).isr_change, None);
        let mut refused = fetch(3, 11, 1_300);
        refused.may_join_isr = false;
        assert_eq!(
            l.on_follower_fetch(refused, 12).isr_change,
            None,
            "fenced broker"
        );
        let change = l
            .on_follower_fetch(fetch(3, 11, 1_400), 12)
            .isr_change
            .expect("3 joins");
        assert_eq!(change.members(), vec![1, 2, 3]);
        // While the expansion is in flight, 3 already holds the high watermark back.
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        assert_eq!(
            l.on_follower_fetch(fetch(2, 12, 1_500), 12).high_watermark,
            Some(11)
        );
        l.on_isr_change_refused(&change);
        assert!(l.pending_isr_change().is_none());
    }

    /// Fault suite, seed 625: an expansion whose answer was lost may have been committed, so
    /// its member keeps holding the high watermark; only a refusal of that very change (or
    /// the image) ends it.
    #[test]
    fn an_unanswered_expansion_keeps_holding_the_high_watermark() {
        let mut l = leader(&[1, 2], 10, 10);
        let change = l
            .on_follower_fetch(fetch(3, 10, 1_100), 10)
            .isr_change
            .expect("3 joins");
        // 3 goes quiet; the leader and 2 move on.
        l.on_follower_fetch(fetch(2, 20, 1_200), 20);
        assert_eq!(l.high_watermark(), 10, "3 is in the maximal ISR");
        // A refusal of some other (older) change does not end this one.
        let mut older = change.clone();
        older.partition_epoch -= 1;
        l.on_isr_change_refused(&older);
        assert_eq!(l.pending_isr_change(), Some(&change));
        l.on_follower_fetch(fetch(2, 20, 1_300), 20);
        assert_eq!(l.high_watermark(), 10);
        // The image says the controller committed it: 3 is in the ISR and still holds it.
        l.on_isr_committed(&[1, 2, 3], change.partition_epoch + 1, 20, 1_400);
        assert_eq!(l.high_watermark(), 10);
    }

    #[test]
    fn below_min_insync_replicas_the_high_watermark_stays() {
        let mut l = LeaderPartition::new(
            1,
            5,
            7,
            &[1, 2, 3],
            &[1, 2],
            10,
            10,
            1_000,
            LeaderConfig {
                replica_lag_time_max_ms: LAG_MS,
                min_insync_replicas: 3,
            },
        );
        assert_eq!(
            l.on_follower_fetch(fetch(2, 15, 1_100), 15).high_watermark,
            None
        );
        // min(min.insync.replicas, replicas) counts: with 3 replicas and an ISR of 2, nothing.
        assert_eq!(l.high_watermark(), 10);
        assert_eq!(
            l.on_isr_committed(&[1, 2, 3], 8, 15, 1_200),
            None,
            "3 not heard from"
        );
        assert_eq!(
            l.on_follower_fetch(fetch(3, 15, 1_300), 15).high_watermark,
            Some(15)
        );
    }

    #[test]
    fn a_caught_up_follower_about_to_join_holds_the_high_watermark() {
        // 3 is out of the ISR but fetching at the leader's end; its broker may join.
        let mut l = leader(&[1, 2], 10, 10);
        let change = l
            .on_follower_fetch(fetch(3, 10, 1_100), 10)
            .isr_change
            .expect("3 joins");
        // (It was proposed for the ISR; the controller refused, say.)
        l.on_isr_change_refused(&change);
        // Appends: 2 keeps up, 3 lags a little but is caught up within the lag time.
        l.on_follower_fetch(fetch(2, 20, 1_200), 20);
        assert_eq!(
            l.high_watermark(),
            10,
            "3 (at 10, caught up at 1100) holds it"
        );
        // A follower that may not join does not hold it.
        let mut fenced = fetch(3, 10, 1_300);
        fenced.may_join_isr = false;
        assert_eq!(l.on_follower_fetch(fenced, 20).high_watermark, Some(20));
    }

    #[test]
    fn fetches_from_strangers_change_nothing() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        assert_eq!(
            l.on_follower_fetch(fetch(9, 10, 1_100), 10),
            Progress::default()
        );
        assert!(l.isr_at_least(3) && !l.isr_at_least(4));
    }

    /// A reassignment adds replica 4 within the epoch: it has no progress and joins the ISR
    /// only after fetching up to the high watermark.
    #[test]
    fn a_replica_added_within_the_epoch_must_catch_up_before_joining() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        l.on_replicas_changed(&[1, 2, 3, 4]);
        assert_eq!(l.follower(4).unwrap().log_end_offset, None);
        assert!(l.follower(4).unwrap().last_caught_up_time_ms.is_none());
        let behind = l.on_follower_fetch(fetch(4, 4, 1_100), 10);
        assert!(behind.isr_change.is_none());
        let caught_up = l.on_follower_fetch(fetch(4, 10, 1_200), 10);
        assert_eq!(caught_up.isr_change.unwrap().members(), vec![1, 2, 3, 4]);
        l.on_replicas_changed(&[1, 3, 4]);
        assert!(l.follower(2).is_none());
    }

    /// DeleteRecords completes once every live replica's log start reached the offset; a
    /// follower not heard from at this epoch holds it at -1, a dead one does not count.
    #[test]
    fn the_low_watermark_is_the_smallest_live_log_start() {
        let mut l = leader(&[1, 2, 3], 10, 10);
        assert_eq!(l.low_watermark(5, |_| true), -1);
        assert_eq!(l.low_watermark(5, |_| false), 5);
        let mut f = fetch(2, 10, 1_100);
        f.log_start_offset = 3;
        assert!(l.on_follower_fetch(f, 10).log_start_moved);
        assert!(!l.on_follower_fetch(f, 10).log_start_moved);
        assert_eq!(l.low_watermark(5, |id| id == 2), 3);
        f.log_start_offset = 7;
        assert!(l.on_follower_fetch(f, 10).log_start_moved);
        assert_eq!(l.low_watermark(5, |id| id == 2), 5);
    }
}
