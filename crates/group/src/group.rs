//! One classic consumer group: its members, state, generation and chosen protocol. The
//! transitions live in [`crate::coordinator`]; this module holds the data and the rules that only
//! look at one group (protocol choice, who is awaiting what). The offsets committed under the
//! group's id are not part of it: they live in [`crate::offsets`], whatever kind of group holds
//! the id.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use crate::consumer_protocol::{self, CONSUMER_PROTOCOL_TYPE};
use crate::coordinator::ReplyId;

/// Kafka's classic group states, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    pub fn all() -> [GroupState; 5] {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
    }
}

/// A JoinGroup parked until the join phase ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingJoin {
    pub reply: ReplyId,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub(crate) awaiting_join: Option<PendingJoin>,
    pub(crate) awaiting_sync: Option<ReplyId>,
    /// Joined during the current rebalance and not yet through it.
    pub(crate) is_new: bool,
    pub(crate) last_heartbeat_ms: i64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m)
    }

    /// Same protocols, same metadata, same order: a rejoin that changes nothing.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub fn is_static(&self) -> bool {
        self.group_instance_id.is_some()
    }
}

/// One committed offset, as kept in memory and in `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: Option<i64>,
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub group_id: String,
    pub state: GroupState,
    /// When the group entered its current state (KIP-211: offsets of an Empty group expire
    /// this long after it became empty).
    pub state_timestamp_ms: Option<i64>,
    pub generation_id: i32,
    /// Empty for a group that only ever stored offsets.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet (KIP-394).
    pub pending_members: BTreeSet<String>,
    /// Members that must still send SyncGroup in this generation.
    pub pending_sync: BTreeSet<String>,
    /// The initial delay (`group.initial.rebalance.delay.ms`) is running: the join does not
    /// complete early, and each new member extends it while rebalance time is left.
    pub(crate) initial_delay: Option<InitialDelay>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct InitialDelay {
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

impl ClassicGroup {
    pub fn new(group_id: String, now_ms: i64) -> Self {
        ClassicGroup {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            initial_delay: None,
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Members plus ids handed out but not joined: what counts against `group.max.size`.
    pub fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    /// A request naming `instance_id` with a member id that is not the one now holding it.
    pub fn is_static_member_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Largest rebalance timeout of the members: how long the join phase may last.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            set.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        set
    }

    /// Whether a member with this protocol type and these protocols may join.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Kafka's choice: among protocols all members support, each member votes for the first one
    /// in its own preference order; the most votes wins (ties go to the name first in order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_string())
    }

    /// Topics the members subscribe to, when the group runs the consumer protocol and every
    /// subscription is readable.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        consumer_protocol::union_of(
            self.members
                .values()
                .map(|m| m.metadata_for(protocol).map(|b| b.as_ref()).unwrap_or(&[])),
        )
    }

    /// The leader may be gone after members left; pick one that is awaiting join. Returns false
    /// when nobody is awaiting join (Kafka then waits for session timeouts to clear the group).
    pub fn elect_joined_leader(&mut self) -> bool {
        if let Some(l) = &self.leader_id {
            if self
                .members
                .get(l)
                .is_some_and(|m| m.awaiting_join.is_some())
            {
                return true;
            }
        }
        match self
            .members
            .values()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.member_id.clone())
        {
            Some(id) => {
                self.leader_id = Some(id);
                true
            }
            None => {
                self.leader_id = None;
                false
            }
        }
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(i) = &member.group_instance_id {
            self.static_members
                .insert(i.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; the leader moves to any remaining member.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        if let Some(i) = &m.group_instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(m)
    }
}
