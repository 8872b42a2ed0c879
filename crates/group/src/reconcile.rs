//! How a KIP-848 consumer group member moves towards its target assignment, one heartbeat at
//! a time (Kafka's `CurrentAssignmentBuilder`, docs/design/kip-848.md §4). A pure function of
//! the member's current assignment, the group's target for it, which partitions other members
//! still hold, and what the member's heartbeat reports it owns.
//!
//! The rule that keeps a partition from being consumed twice: a partition reaches its new owner
//! only once no member lists it any more, assigned or pending revocation, and a member lets go
//! of a partition only when its heartbeat no longer reports it (or the member is fenced). The
//! member epoch moves to the target epoch once the member has revoked what it must.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::consumer_records::TopicPartitions;

/// Kafka's `MemberState`, as kept in `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Reconciled to the member epoch.
    Stable,
    /// Must revoke partitions before it gets more, or a new epoch.
    UnrevokedPartitions,
    /// Waits for partitions other members have not released yet.
    UnreleasedPartitions,
    /// A state byte this version does not know (written by a newer Kafka).
    Unknown,
}

impl MemberState {
    pub fn from_i8(v: i8) -> Self {
        match v {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }

    pub fn as_i8(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }
}

/// A member's current assignment: what the heartbeat answers it, and what it must still give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    pub member_epoch: i32,
    /// The epoch before the last bump: a member whose answer was lost may heartbeat with it.
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

impl Default for MemberAssignment {
    /// A member that just joined: epoch 0, nothing assigned.
    fn default() -> Self {
        MemberAssignment {
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: TopicPartitions::new(),
            pending_revocation: TopicPartitions::new(),
        }
    }
}

impl MemberAssignment {
    /// Whether the member has reached the target epoch with nothing left to do.
    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_epoch
    }

    /// Every partition the member holds, assigned or still to revoke.
    pub fn held(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

/// Why a heartbeat cannot be reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// FENCED_MEMBER_EPOCH: a member in a state this version does not know reports partitions;
    /// it must rejoin.
    #[error("the member is in an unknown state and still owns partitions")]
    FencedMemberEpoch,
}

/// The member's next assignment. `target_epoch` and `target` are the group's target assignment
/// epoch and this member's part of it; `held_by_other(topic, partition)` says whether any other
/// member still holds the partition (assigned or pending revocation); `owned` is what the
/// heartbeat reports the member owns, `None` when the heartbeat did not say (it then counts as
/// still owning everything it was asked to revoke).
pub fn reconcile(
    member: &MemberAssignment,
    target_epoch: i32,
    target: &TopicPartitions,
    held_by_other: impl Fn(&Uuid, i32) -> bool,
    owned: Option<&TopicPartitions>,
) -> Result<MemberAssignment, ReconcileError> {
    if member.is_reconciled_to(target_epoch) {
        return Ok(member.clone());
    }
    let step = Step {
        member,
        target_epoch,
        target,
        held_by_other: &held_by_other,
        owned,
    };
    Ok(match member.state {
        MemberState::Stable => {
            if member.member_epoch != target_epoch {
                step.next(member.member_epoch)
            } else {
                member.clone()
            }
        }
        MemberState::UnrevokedPartitions => {
            if step.still_owns_any(&member.pending_revocation) {
                member.clone()
            } else {
                step.next(member.member_epoch + 1)
            }
        }
        MemberState::UnreleasedPartitions => step.next(member.member_epoch),
        MemberState::Unknown => {
            if owned.is_none_or(|o| o.values().any(|ps| !ps.is_empty())) {
                return Err(ReconcileError::FencedMemberEpoch);
            }
            step.next(target_epoch)
        }
    })
}

struct Step<'a, F: Fn(&Uuid, i32) -> bool> {
    member: &'a MemberAssignment,
    target_epoch: i32,
    target: &'a TopicPartitions,
    held_by_other: &'a F,
    owned: Option<&'a TopicPartitions>,
}

impl<F: Fn(&Uuid, i32) -> bool> Step<'_, F> {
    /// Whether the heartbeat still reports any partition of `partitions`.
    fn still_owns_any(&self, partitions: &TopicPartitions) -> bool {
        let Some(owned) = self.owned else {
            return true;
        };
        partitions.iter().any(|(t, ps)| {
            owned
                .get(t)
                .is_some_and(|o| ps.iter().any(|p| o.contains(p)))
        })
    }

    /// Kafka's `computeNextAssignment`: keep what stays, revoke what goes (and wait while the
    /// member still owns it), add what is free.
    fn next(&self, epoch: i32) -> MemberAssignment {
        let current = &self.member.assigned;
        let topics: BTreeSet<&Uuid> = current.keys().chain(self.target.keys()).collect();
        let mut keep = TopicPartitions::new();
        let mut revoke = TopicPartitions::new();
        let mut add = TopicPartitions::new();
        let mut unreleased = false;
        let none = BTreeSet::new();
        for t in topics {
            let have = current.get(t).unwrap_or(&none);
            let want = self.target.get(t).unwrap_or(&none);
            let k: BTreeSet<i32> = have.intersection(want).copied().collect();
            let r: BTreeSet<i32> = have.difference(&k).copied().collect();
            let mut a = BTreeSet::new();
            for p in want.difference(&k) {
                // Still held by a member (another one, or this one's pending revocation):
                // it comes once released.
                let pending_here = self
                    .member
                    .pending_revocation
                    .get(t)
                    .is_some_and(|ps| ps.contains(p));
                if pending_here || (self.held_by_other)(t, *p) {
                    unreleased = true;
                } else {
                    a.insert(*p);
                }
            }
            if !k.is_empty() {
                keep.insert(*t, k);
            }
            if !r.is_empty() {
                revoke.insert(*t, r);
            }
            if !a.is_empty() {
                add.insert(*t, a);
            }
        }
        let previous = self.member.member_epoch;
        if !revoke.is_empty() && self.still_owns_any(&revoke) {
            return MemberAssignment {
                member_epoch: epoch,
                previous_member_epoch: previous,
                state: MemberState::UnrevokedPartitions,
                assigned: keep,
                pending_revocation: revoke,
            };
        }
        let state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        let mut assigned = keep;
        for (t, ps) in add {
            assigned.entry(t).or_default().extend(ps);
        }
        MemberAssignment {
            member_epoch: self.target_epoch,
            previous_member_epoch: previous,
            state,
            assigned,
            pending_revocation: TopicPartitions::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    use crate::consumer_records::tp;

    fn free(_: &Uuid, _: i32) -> bool {
        false
    }

    fn stable(epoch: i32, assigned: TopicPartitions) -> MemberAssignment {
        MemberAssignment {
            member_epoch: epoch,
            previous_member_epoch: epoch - 1,
            state: MemberState::Stable,
            assigned,
            pending_revocation: TopicPartitions::new(),
        }
    }

    #[test]
    fn a_reconciled_member_is_left_alone() {
        let m = stable(3, tp(&[(1, &[0])]));
        assert_eq!(reconcile(&m, 3, &tp(&[(1, &[0, 1])]), free, None), Ok(m));
    }

    #[test]
    fn free_partitions_are_added_at_the_target_epoch() {
        let m = stable(3, tp(&[(1, &[0])]));
        let next = reconcile(&m, 5, &tp(&[(1, &[0, 1])]), free, None).unwrap();
        assert_eq!(next, {
            let mut s = stable(5, tp(&[(1, &[0, 1])]));
            s.previous_member_epoch = 3;
            s
        });
    }

    #[test]
    fn revocation_comes_first_and_the_epoch_jumps_once_acknowledged() {
        let m = stable(3, tp(&[(1, &[0, 1])]));
        let target = tp(&[(1, &[0]), (2, &[0])]);
        // The member still reports partition 1: it must revoke it before anything else.
        let owned = tp(&[(1, &[0, 1])]);
        let next = reconcile(&m, 5, &target, free, Some(&owned)).unwrap();
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.member_epoch, 3);
        assert_eq!(next.assigned, tp(&[(1, &[0])]));
        assert_eq!(next.pending_revocation, tp(&[(1, &[1])]));
        // A heartbeat that does not say what it owns changes nothing.
        assert_eq!(reconcile(&next, 5, &target, free, None).unwrap(), next);
        // Once partition 1 is gone from its report: the new partition, at the target epoch.
        let owned = tp(&[(1, &[0])]);
        let done = reconcile(&next, 5, &target, free, Some(&owned)).unwrap();
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.member_epoch, 5);
        assert_eq!(done.assigned, target);
        assert!(done.pending_revocation.is_empty());
    }

    #[test]
    fn a_partition_another_member_holds_waits_until_released() {
        let m = stable(3, TopicPartitions::new());
        let target = tp(&[(1, &[0, 1])]);
        let held = |t: &Uuid, p: i32| *t == Uuid::from_u128(1) && p == 1;
        let next = reconcile(&m, 4, &target, held, Some(&TopicPartitions::new())).unwrap();
        assert_eq!(next.state, MemberState::UnreleasedPartitions);
        assert_eq!(next.member_epoch, 4);
        assert_eq!(next.assigned, tp(&[(1, &[0])]));
        let done = reconcile(&next, 4, &target, free, Some(&tp(&[(1, &[0])]))).unwrap();
        assert!(done.is_reconciled_to(4));
        assert_eq!(done.assigned, target);
    }

    #[test]
    fn an_unknown_state_with_partitions_is_fenced() {
        let mut m = stable(3, tp(&[(1, &[0])]));
        m.state = MemberState::Unknown;
        let target = tp(&[(1, &[0])]);
        assert_eq!(
            reconcile(&m, 4, &target, free, Some(&tp(&[(1, &[0])]))),
            Err(ReconcileError::FencedMemberEpoch)
        );
        assert_eq!(
            reconcile(&m, 4, &target, free, None),
            Err(ReconcileError::FencedMemberEpoch)
        );
        let next = reconcile(&m, 4, &target, free, Some(&TopicPartitions::new())).unwrap();
        assert!(next.is_reconciled_to(4));
        for v in [0, 1, 2] {
            assert_eq!(MemberState::from_i8(v).as_i8(), v);
        }
        assert_eq!(MemberState::from_i8(9), MemberState::Unknown);
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % bound.max(1)
        }
    }

    /// Members heartbeat in random order while the target assignment keeps changing (each
    /// partition in at most one member's target); a client consumes what an answer adds at
    /// once and gives up what it drops only by its next heartbeat, which sometimes does not
    /// say what it owns. No partition is ever held by two members, nor consumed by two
    /// clients, and once the target stops changing everyone reaches it.
    #[test]
    fn no_partition_is_ever_held_by_two_members() {
        let topic = Uuid::from_u128(1);
        for seed in 0..300 {
            let mut rng = Rng(seed);
            let members = 2 + rng.next(3) as usize;
            let partitions = 1 + rng.next(8) as i32;
            let mut state: Vec<MemberAssignment> = vec![MemberAssignment::default(); members];
            // What each client believes it owns: the assignment of its last answer.
            let mut client: Vec<TopicPartitions> = vec![TopicPartitions::new(); members];
            // What each client really consumes at a given moment.
            let mut actual: Vec<TopicPartitions> = vec![TopicPartitions::new(); members];
            let mut epoch = 0;
            let mut targets: Vec<TopicPartitions> = vec![TopicPartitions::new(); members];
            for step in 0..200 {
                if step < 150 && rng.next(10) == 0 {
                    epoch += 1;
                    targets = vec![TopicPartitions::new(); members];
                    for p in 0..partitions {
                        let m = rng.next(members as u64) as usize;
                        targets[m].entry(topic).or_default().insert(p);
                    }
                }
                let i = rng.next(members as u64) as usize;
                // Revocations finish before the next heartbeat.
                actual[i] = client[i].clone();
                let owned = match rng.next(4) {
                    0 => None,
                    _ => Some(client[i].clone()),
                };
                let others: BTreeMap<(Uuid, i32), usize> = state
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(j, s)| s.held().map(move |tp| (tp, j)))
                    .collect();
                let next = reconcile(
                    &state[i],
                    epoch,
                    &targets[i],
                    |t, p| others.contains_key(&(*t, p)),
                    owned.as_ref(),
                )
                .unwrap();
                for held in next.held() {
                    assert!(
                        !others.contains_key(&held),
                        "seed {seed} step {step}: {held:?} held by {} and {i}",
                        others[&held]
                    );
                }
                // The client starts on what the answer adds at once, and gives up what it
                // drops only before its next heartbeat: until then it holds both.
                let mut now = client[i].clone();
                for (t, ps) in &next.assigned {
                    now.entry(*t).or_default().extend(ps);
                }
                actual[i] = now;
                client[i] = next.assigned.clone();
                state[i] = next;
                for a in 0..members {
                    for b in a + 1..members {
                        for (t, ps) in &actual[a] {
                            let both = actual[b]
                                .get(t)
                                .is_some_and(|o| ps.iter().any(|p| o.contains(p)));
                            assert!(!both, "seed {seed} step {step}: clients {a} and {b}");
                        }
                    }
                }
            }
            // Quiet: everyone heartbeats with what it owns until reconciled.
            for _ in 0..10 {
                for i in 0..members {
                    let others: BTreeSet<(Uuid, i32)> = state
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .flat_map(|(_, s)| s.held())
                        .collect();
                    let next = reconcile(
                        &state[i],
                        epoch,
                        &targets[i],
                        |t, p| others.contains(&(*t, p)),
                        Some(&client[i]),
                    )
                    .unwrap();
                    client[i] = next.assigned.clone();
                    state[i] = next;
                }
            }
            for (i, s) in state.iter().enumerate() {
                assert!(s.is_reconciled_to(epoch), "seed {seed}: member {i} {s:?}");
                let want: TopicPartitions = targets[i]
                    .iter()
                    .filter(|(_, ps)| !ps.is_empty())
                    .map(|(t, ps)| (*t, ps.clone()))
                    .collect();
                assert_eq!(s.assigned, want, "seed {seed}: member {i}");
            }
        }
    }
}
