//! KIP-848 consumer groups without I/O: ConsumerGroupHeartbeat as a method call that answers
//! with the records to append to `__consumer_offsets` and the reply to send once they are
//! written, the session and rebalance timeouts, and replay of those records, so a coordinator
//! that loads the partition rebuilds exactly the state that wrote them
//! (docs/design/kip-848.md §2-§5).
//!
//! Every change goes through records: a heartbeat computes them and applies them with the same
//! [`ConsumerGroups::replay`] a load uses. Only the timers are soft state, armed again on load.
//!
//! Subscriptions by regular expression are resolved inside the heartbeat, against the image the
//! shell passes in (Kafka resolves them on a thread and writes the result separately; the
//! records and the gating, at most every 10 s unless a pattern is new, are the same).
//!
//! Classic members inside a consumer group (online migration) are in the child module
//! `consumer_classic.rs`. Not here: KIP-1101's exact metadata
//! hash (rafka hashes the subscribed topics' ids, names and partition counts with FNV-1a; a group
//! taken over from Kafka gets one extra epoch bump).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::assignor::{Assignor, MemberSpec, SubscriptionType};
use crate::consumer_records::{
    ConsumerGroupRecord, CurrentMemberAssignmentValue, GroupMetadataValue, MemberMetadataValue,
    RegularExpressionValue, TopicPartitions,
};
use crate::reconcile::{reconcile, MemberAssignment, MemberState, ReconcileError};

#[path = "consumer_classic.rs"]
mod classic;
pub use classic::{AdoptedMember, ClassicJoined, DowngradedMember};

/// `group.consumer.migration.policy`: which way a group may convert between the classic and
/// the consumer protocol when a member of the other kind joins (KIP-848's online migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both ways (Kafka's default).
    Bidirectional,
    /// Classic to consumer only.
    Upgrade,
    /// Consumer to classic only.
    Downgrade,
    /// Never.
    Disabled,
}

impl MigrationPolicy {
    pub fn upgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    pub fn downgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }

    /// Kafka's names, case-insensitive as its validator is.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "disabled" => Some(MigrationPolicy::Disabled),
            _ => None,
        }
    }
}

/// Broker settings of consumer groups, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<Assignor>,
    /// `group.consumer.regex.refresh.interval.ms`.
    pub regex_refresh_interval_ms: i64,
    /// `group.consumer.migration.policy`.
    pub migration_policy: MigrationPolicy,
}

/// A group's own `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` (dynamic
/// GROUP configs, KIP-848), over the broker's `group.consumer.*` defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTimeouts {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
}

/// A group's patterns are resolved again at most this often when topics appear (Kafka's
/// `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`).
pub const REGEX_REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: vec![Assignor::Uniform, Assignor::Range],
            regex_refresh_interval_ms: 600_000,
            migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}

/// What the coordinator needs of the metadata image.
pub trait TopicsView {
    fn topic_id(&self, name: &str) -> Option<Uuid>;
    fn partition_count(&self, topic_id: &Uuid) -> Option<i32>;
    /// The name of a topic by id (classic members are answered by name).
    fn topic_name(&self, topic_id: &Uuid) -> Option<String>;
    /// Every topic name, internal ones included (Kafka's patterns see them too).
    fn topic_names(&self) -> Vec<String>;
    /// The metadata offset the view reflects: a resolution records it.
    fn version(&self) -> i64;
}

/// A ConsumerGroupHeartbeat request; `None` fields are "unchanged since the last heartbeat".
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns now, `None` when not sent.
    pub topic_partitions: Option<TopicPartitions>,
    /// From the connection.
    pub client_id: String,
    pub client_host: String,
}

/// A successful heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The complete set of partitions the member may use now, when it must be told.
    pub assignment: Option<TopicPartitions>,
}

/// Heartbeat errors, with Kafka's names; the broker maps them to codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("group {0} is not a consumer group")]
    GroupIdNotFound(String),
    #[error("the consumer group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("{0}")]
    UnknownMemberId(String),
    #[error("the member epoch is fenced by the group coordinator")]
    FencedMemberEpoch,
    #[error("{0}")]
    FencedInstanceId(String),
    #[error("static member {0} is still in use by another member")]
    UnreleasedInstanceId(String),
    #[error("{0}")]
    InvalidRegularExpression(String),
}

/// NON_EMPTY_GROUP: only an empty group can be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the group is not empty")]
pub struct NonEmptyGroup;

/// Why an offset request from a consumer group member is refused; Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    #[error("the member is not known to the group")]
    UnknownMemberId,
    #[error("the member epoch is not the member's current epoch")]
    StaleMemberEpoch,
    #[error("the generation is not the member's current epoch")]
    IllegalGeneration,
    #[error("{0}")]
    UnsupportedVersion(String),
}

/// One member as the records describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub metadata: MemberMetadataValue,
    pub assignment: MemberAssignment,
}

/// One consumer group as the records describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub metadata_hash: i64,
    /// -1 after its tombstone.
    pub target_epoch: i32,
    pub target: BTreeMap<String, TopicPartitions>,
    pub members: BTreeMap<String, Member>,
    /// The group's patterns as last resolved.
    pub regexes: BTreeMap<String, RegularExpressionValue>,
}

/// Kafka's consumer group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

impl ConsumerGroup {
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.target_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.assignment.is_reconciled_to(self.target_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The tombstones that end a group, after its members' and target's: its patterns, its
    /// subscription metadata and its epoch record (Kafka's order).
    fn last_tombstones(&self, group_id: &str) -> Vec<ConsumerGroupRecord> {
        let g = || group_id.to_string();
        let mut records: Vec<ConsumerGroupRecord> = self
            .regexes
            .keys()
            .map(|regex| ConsumerGroupRecord::RegularExpression {
                group: g(),
                regex: regex.clone(),
                value: None,
            })
            .collect();
        records.push(ConsumerGroupRecord::PartitionMetadata {
            group: g(),
            present: false,
        });
        records.push(ConsumerGroupRecord::GroupMetadata {
            group: g(),
            value: None,
        });
        records
    }

    /// Every topic a member subscribes to, by name or through its pattern (Kafka's
    /// `isSubscribedToTopic`).
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topic_names(m))
            .cloned()
            .collect()
    }

    /// A member's topic names and what its pattern resolved to.
    fn member_topic_names<'a>(&'a self, member: &'a Member) -> impl Iterator<Item = &'a String> {
        let by_regex = member
            .metadata
            .subscribed_topic_regex
            .as_ref()
            .and_then(|r| self.regexes.get(r))
            .map(|v| v.topics.as_slice())
            .unwrap_or_default();
        member
            .metadata
            .subscribed_topic_names
            .iter()
            .chain(by_regex)
    }

    /// A member's topics: its names and what its pattern resolved to, as ids that exist.
    fn subscribed_ids(&self, member: &Member, topics: &impl TopicsView) -> BTreeSet<Uuid> {
        self.member_topic_names(member)
            .filter_map(|n| topics.topic_id(n))
            .collect()
    }

    /// Whether a member other than `except` subscribes with `regex`.
    fn regex_used_by_other(&self, regex: &str, except: &str) -> bool {
        self.members.iter().any(|(id, m)| {
            id != except && m.metadata.subscribed_topic_regex.as_deref() == Some(regex)
        })
    }

    /// The member holding `instance_id`, which must be `member_id`: UNKNOWN_MEMBER_ID when no
    /// member holds it, FENCED_INSTANCE_ID when another one does.
    fn static_holder(&self, instance_id: &str, member_id: &str) -> Result<&str, HeartbeatError> {
        let holder = self.static_member(instance_id).ok_or_else(|| {
            HeartbeatError::UnknownMemberId(format!("Instance id {instance_id} is unknown."))
        })?;
        if holder != member_id {
            return Err(HeartbeatError::FencedInstanceId(format!(
                "Static member {member_id} with instance id {instance_id} is fenced by existing member {holder}."
            )));
        }
        Ok(holder)
    }

    fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, m)| m.metadata.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id.as_str())
    }

    /// Whether a member other than `member` holds `topic`-`partition`.
    fn held_by_other(&self, member: &str, topic: &Uuid, partition: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != member
                && [&m.assignment.assigned, &m.assignment.pending_revocation]
                    .iter()
                    .any(|tp| tp.get(topic).is_some_and(|ps| ps.contains(&partition)))
        })
    }
}

/// ConsumerGroupDescribe's view of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub metadata: MemberMetadataValue,
    /// What the member owns now.
    pub assigned: TopicPartitions,
    /// What the target assignment gives it.
    pub target: TopicPartitions,
}

/// ConsumerGroupDescribe's view of one group (Kafka's `ConsumerGroup.asDescribedGroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    pub state: ConsumerGroupState,
    pub epoch: i32,
    pub assignment_epoch: i32,
    /// The assignor most members ask for, else the configured default.
    pub assignor: &'static str,
    pub members: Vec<DescribedMember>,
}

/// What the timers are for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Deadline {
    Session {
        group: String,
        member: String,
    },
    /// Fences only if the member is still at `epoch` (it did not revoke in time).
    Rebalance {
        group: String,
        member: String,
        epoch: i32,
    },
    /// A classic member told to rejoin (REBALANCE_IN_PROGRESS) must send JoinGroup by then.
    ClassicJoin {
        group: String,
        member: String,
    },
    /// A classic member that joined must send SyncGroup by then.
    ClassicSync {
        group: String,
        member: String,
    },
}

impl Deadline {
    fn of(&self) -> (&String, &String) {
        match self {
            Deadline::Session { group, member }
            | Deadline::Rebalance { group, member, .. }
            | Deadline::ClassicJoin { group, member }
            | Deadline::ClassicSync { group, member } => (group, member),
        }
    }
}

/// Every consumer group of the partitions a coordinator loaded.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    config: ConsumerGroupConfig,
    groups: BTreeMap<String, ConsumerGroup>,
    /// Soft state: deadline per timer, and timers by deadline.
    deadlines: BTreeMap<Deadline, i64>,
    /// Groups with their own timeouts (from the metadata image, not from the log).
    timeouts: BTreeMap<String, GroupTimeouts>,
}

impl ConsumerGroups {
    pub fn config(&self) -> &ConsumerGroupConfig {
        &self.config
    }

    pub fn new(config: ConsumerGroupConfig) -> Self {
        ConsumerGroups {
            config,
            ..ConsumerGroups::default()
        }
    }

    /// Replaces the groups' own timeouts; each applies from the member's next heartbeat, as
    /// in Kafka, where the session deadline is set by every heartbeat.
    pub fn set_timeouts(&mut self, timeouts: BTreeMap<String, GroupTimeouts>) {
        self.timeouts = timeouts;
    }

    /// The session timeout of `group_id`'s consumer-protocol members.
    pub fn group_session_timeout_ms(&self, group_id: &str) -> i32 {
        self.timeouts
            .get(group_id)
            .and_then(|t| t.session_timeout_ms)
            .unwrap_or(self.config.session_timeout_ms)
    }

    /// The heartbeat interval `group_id`'s members are told.
    pub fn group_heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.timeouts
            .get(group_id)
            .and_then(|t| t.heartbeat_interval_ms)
            .unwrap_or(self.config.heartbeat_interval_ms)
    }

    pub fn group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&String, &ConsumerGroup)> {
        self.groups.iter()
    }

    /// The group as ConsumerGroupDescribe shows it, if `group_id` is a consumer group here.
    pub fn describe(&self, group_id: &str) -> Option<DescribedConsumerGroup> {
        let group = self.groups.get(group_id)?;
        Some(DescribedConsumerGroup {
            state: group.state(),
            epoch: group.epoch,
            assignment_epoch: group.target_epoch.max(0),
            assignor: self.assignor_for(group).name(),
            members: group
                .members
                .iter()
                .map(|(id, m)| DescribedMember {
                    member_id: id.clone(),
                    member_epoch: m.assignment.member_epoch,
                    metadata: m.metadata.clone(),
                    assigned: m.assignment.assigned.clone(),
                    target: group.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Handles a ConsumerGroupHeartbeat. On success the records must be written before the
    /// response is sent; they are already applied here. `new_member_id` makes the id of a v0
    /// member that joined without one.
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        topics: &impl TopicsView,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(HeartbeatResponse, Vec<ConsumerGroupRecord>), HeartbeatError> {
        self.validate(req)?;
        if req.member_epoch < 0 {
            return self.leave(req);
        }
        let mut records = Vec::new();
        let group_id = req.group_id.clone();
        let existing = self.groups.get(&group_id).cloned();
        let group = match existing {
            Some(g) => g,
            None if req.member_epoch == 0 => ConsumerGroup {
                target_epoch: 0,
                ..ConsumerGroup::default()
            },
            None => return Err(HeartbeatError::GroupIdNotFound(group_id)),
        };
        let known = !req.member_id.is_empty() && group.members.contains_key(&req.member_id);
        if group.members.len() >= self.config.max_size && !known {
            return Err(HeartbeatError::GroupMaxSizeReached);
        }
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };

        // 3. The member: a new one, the one the group knows, or a static member's new
        //    incarnation taking over the old one's assignment.
        let mut inherited_target: Option<(String, TopicPartitions)> = None;
        let old: Member = match (&req.instance_id, req.member_epoch) {
            (Some(instance), 0) => match group.static_member(instance) {
                None => Member::default(),
                Some(holder) if holder == member_id => {
                    check_epoch(&group.members[holder], req)?;
                    group.members[holder].clone()
                }
                Some(holder) => {
                    let held = &group.members[holder];
                    if held.assignment.member_epoch != -2 {
                        return Err(HeartbeatError::UnreleasedInstanceId(instance.clone()));
                    }
                    let mut m = held.clone();
                    m.assignment.member_epoch = 0;
                    m.assignment.previous_member_epoch = 0;
                    inherited_target = Some((
                        holder.to_string(),
                        group.target.get(holder).cloned().unwrap_or_default(),
                    ));
                    m
                }
            },
            (Some(instance), _) => {
                let holder = group.static_holder(instance, &member_id)?;
                let m = group.members[holder].clone();
                check_epoch(&m, req)?;
                m
            }
            (None, epoch) => match group.members.get(&member_id) {
                Some(m) => {
                    check_epoch(m, req)?;
                    m.clone()
                }
                None if epoch == 0 => Member::default(),
                None => {
                    return Err(HeartbeatError::UnknownMemberId(format!(
                        "Member {member_id} is not a member of group {group_id}."
                    )))
                }
            },
        };
        if let Some((holder, target)) = &inherited_target {
            records.extend(takeover_records(
                &group_id,
                holder,
                &member_id,
                target,
                &old.assignment,
            ));
        }

        // 4. The member's metadata, each field only if sent.
        let mut meta = old.metadata.clone();
        if let Some(v) = &req.instance_id {
            meta.instance_id = Some(v.clone());
        }
        if let Some(v) = &req.rack_id {
            meta.rack_id = Some(v.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            meta.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(v) = &req.server_assignor {
            meta.server_assignor = Some(v.clone());
        }
        if let Some(v) = &req.subscribed_topic_names {
            let mut names = v.clone();
            names.sort();
            names.dedup();
            meta.subscribed_topic_names = names;
        }
        if let Some(v) = &req.subscribed_topic_regex {
            meta.subscribed_topic_regex = (!v.is_empty()).then(|| v.clone());
        }
        meta.client_id = req.client_id.clone();
        meta.client_host = req.client_host.clone();
        meta.classic_member_metadata = None;
        let current = old.assignment.clone();
        let next = self.update_member(
            &group_id,
            &group,
            &member_id,
            &old,
            &meta,
            &inherited_target,
            req.topic_partitions.as_ref(),
            &mut records,
            topics,
            now_ms,
        )?;

        // Timers: the session from this heartbeat; the rebalance timeout while partitions
        // wait to be revoked.
        self.deadlines.insert(
            Deadline::Session {
                group: group_id.clone(),
                member: member_id.clone(),
            },
            now_ms + i64::from(self.group_session_timeout_ms(&group_id)),
        );
        self.deadlines.retain(|k, _| {
            !matches!(k, Deadline::Rebalance { group, member, .. }
                if *group == group_id && *member == member_id)
        });
        if next.state == MemberState::UnrevokedPartitions {
            self.deadlines.insert(
                Deadline::Rebalance {
                    group: group_id.clone(),
                    member: member_id.clone(),
                    epoch: next.member_epoch,
                },
                now_ms + i64::from(meta.rebalance_timeout_ms.max(0)),
            );
        }
        if let Some((holder, _)) = &inherited_target {
            self.cancel_timers(&group_id, holder);
        }

        let full = req.rebalance_timeout_ms != -1
            && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && req.topic_partitions.is_some();
        let assignment = (req.member_epoch == 0 || full || next.assigned != current.assigned)
            .then(|| next.assigned.clone());
        Ok((
            HeartbeatResponse {
                member_id,
                member_epoch: next.member_epoch,
                heartbeat_interval_ms: self.group_heartbeat_interval_ms(&group_id),
                assignment,
            },
            records,
        ))
    }

    /// Steps 5-8 of a join or heartbeat, once the member is known: its metadata record, the
    /// group's patterns, a new group epoch if the subscriptions changed, a new target
    /// assignment if the epoch moved past it, and the member reconciled towards its target.
    /// Queues the records after those already in `records` and applies them all; returns the
    /// member's new assignment.
    #[allow(clippy::too_many_arguments)]
    fn update_member(
        &mut self,
        group_id: &str,
        group: &ConsumerGroup,
        member_id: &str,
        old: &Member,
        meta: &MemberMetadataValue,
        inherited_target: &Option<(String, TopicPartitions)>,
        owned: Option<&TopicPartitions>,
        records: &mut Vec<ConsumerGroupRecord>,
        topics: &impl TopicsView,
        now_ms: i64,
    ) -> Result<MemberAssignment, HeartbeatError> {
        // 5. A pattern nobody else uses must compile (checked before anything is written).
        if let Some(r) = &meta.subscribed_topic_regex {
            if !group.regex_used_by_other(r, member_id) {
                compile(r)?;
            }
        }
        let is_new = !group.members.contains_key(member_id);
        if is_new || *meta != old.metadata {
            records.push(ConsumerGroupRecord::MemberMetadata {
                group: group_id.to_string(),
                member: member_id.to_string(),
                value: Some(meta.clone()),
            });
        }
        let subscription_changed = meta.subscribed_topic_names
            != old.metadata.subscribed_topic_names
            || meta.subscribed_topic_regex != old.metadata.subscribed_topic_regex;

        // 6. A new epoch when the group is new, a subscription changed, or the subscribed
        //    topics changed (created, deleted, grown).
        let mut after = group.clone();
        if let Some((holder, _)) = inherited_target {
            after.members.remove(holder);
        }
        after.members.insert(
            member_id.to_string(),
            Member {
                metadata: meta.clone(),
                assignment: old.assignment.clone(),
            },
        );
        // 5. Patterns: the one this member dropped goes with its last subscriber; the
        //    group's patterns are resolved when new, when topics were added since (at most
        //    every 10 s), or when the refresh interval has passed. A pattern new to the group
        //    is not resolved by the heartbeat that brings it: Kafka resolves it in the
        //    background and bumps the group epoch when done, so that heartbeat is answered
        //    without the pattern's topics (its literal topics first) and the member gets them
        //    at its next one. rafka resolves it at the group's next heartbeat, which the
        //    member sees the same way.
        let mut regexes_changed = false;
        if let Some(r) = &old.metadata.subscribed_topic_regex {
            if meta.subscribed_topic_regex.as_ref() != Some(r)
                && !after.regex_used_by_other(r, "")
                && after.regexes.remove(r).is_some()
            {
                records.push(ConsumerGroupRecord::RegularExpression {
                    group: group_id.to_string(),
                    regex: r.clone(),
                    value: None,
                });
            }
        }
        let in_use: BTreeSet<String> = after
            .members
            .values()
            .filter_map(|m| m.metadata.subscribed_topic_regex.clone())
            .collect();
        let introduced = meta
            .subscribed_topic_regex
            .as_ref()
            .filter(|r| old.metadata.subscribed_topic_regex.as_ref() != Some(*r));
        for r in in_use {
            let due = match after.regexes.get(&r) {
                None if introduced == Some(&r) => false,
                None => true,
                Some(v) => {
                    let age = now_ms - v.timestamp_ms;
                    (v.version != topics.version() && age >= REGEX_REFRESH_MIN_INTERVAL_MS)
                        || age >= self.config.regex_refresh_interval_ms
                }
            };
            if !due {
                continue;
            }
            let resolved = RegularExpressionValue {
                topics: resolve(&compile(&r)?, topics),
                version: topics.version(),
                timestamp_ms: now_ms,
            };
            if after.regexes.get(&r).map(|v| &v.topics) != Some(&resolved.topics) {
                regexes_changed = true;
            }
            after.regexes.insert(r.clone(), resolved.clone());
            records.push(ConsumerGroupRecord::RegularExpression {
                group: group_id.to_string(),
                regex: r,
                value: Some(resolved),
            });
        }
        let hash = metadata_hash(&after, topics);
        let mut epoch = group.epoch;
        if group.epoch == 0
            || subscription_changed
            || regexes_changed
            || hash != group.metadata_hash
        {
            epoch = group.epoch + 1;
            records.push(ConsumerGroupRecord::GroupMetadata {
                group: group_id.to_string(),
                value: Some(GroupMetadataValue {
                    epoch,
                    metadata_hash: hash,
                }),
            });
        }

        // 7. A new target assignment when the group epoch moved past it.
        let (target_epoch, member_target) = if epoch > group.target_epoch {
            let mut previous = group.target.clone();
            if let Some((holder, target)) = inherited_target {
                previous.remove(holder);
                previous.insert(member_id.to_string(), target.clone());
            }
            let specs: BTreeMap<String, MemberSpec> = after
                .members
                .iter()
                .map(|(id, m)| {
                    let spec = MemberSpec {
                        instance_id: m.metadata.instance_id.clone(),
                        subscribed: after.subscribed_ids(m, topics),
                        current: previous.get(id).cloned().unwrap_or_default(),
                    };
                    (id.clone(), spec)
                })
                .collect();
            let kind = SubscriptionType::of(specs.values().map(|s| &s.subscribed));
            let assignor = self.assignor_for(&after);
            let new_target = assignor.assign(&specs, kind, |t| topics.partition_count(t));
            for (id, t) in &new_target {
                if previous.get(id) != Some(t) || (is_new && id.as_str() == member_id) {
                    records.push(ConsumerGroupRecord::TargetAssignmentMember {
                        group: group_id.to_string(),
                        member: id.clone(),
                        value: Some(t.clone()),
                    });
                }
            }
            records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
                group: group_id.to_string(),
                value: Some(epoch),
            });
            (
                epoch,
                new_target.get(member_id).cloned().unwrap_or_default(),
            )
        } else {
            let t = match inherited_target {
                Some((_, t)) => t.clone(),
                None => group.target.get(member_id).cloned().unwrap_or_default(),
            };
            (group.target_epoch, t)
        };

        // 8. Reconcile the member towards its target.
        let current = old.assignment.clone();
        let next = reconcile(
            &current,
            target_epoch,
            &member_target,
            |t, p| after.held_by_other(member_id, t, p),
            owned,
        )
        .map_err(|e| match e {
            ReconcileError::FencedMemberEpoch => HeartbeatError::FencedMemberEpoch,
        })?;
        if next != current || is_new {
            records.push(current_assignment_record(group_id, member_id, &next));
        }

        for r in records.iter() {
            self.replay(r);
        }
        Ok(next)
    }

    /// The front-door checks of Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
    fn validate(&self, req: &HeartbeatRequest) -> Result<(), HeartbeatError> {
        let invalid = |m: &str| Err(HeartbeatError::InvalidRequest(m.to_string()));
        let blank = |s: &str| s.trim().is_empty();
        if (req.version >= 1 || req.member_epoch > 0 || req.member_epoch == -1)
            && blank(&req.member_id)
        {
            return invalid("MemberId can't be empty.");
        }
        if blank(&req.group_id) {
            return invalid("GroupId can't be empty.");
        }
        if req.instance_id.as_deref().is_some_and(blank) {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref().is_some_and(blank) {
            return invalid("RackId can't be empty.");
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if req
                .topic_partitions
                .as_ref()
                .is_none_or(|tp| !tp.is_empty())
            {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.");
            }
        }
        if req.member_epoch == -2 && req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
        if req.member_epoch < -2 {
            return invalid("MemberEpoch is invalid.");
        }
        if let Some(name) = &req.server_assignor {
            if !self.config.assignors.iter().any(|a| a.name() == name) {
                let names: Vec<&str> = self.config.assignors.iter().map(|a| a.name()).collect();
                return Err(HeartbeatError::UnsupportedAssignor(format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Epoch -1 (leave) or -2 (a static member leaving for now).
    fn leave(
        &mut self,
        req: &HeartbeatRequest,
    ) -> Result<(HeartbeatResponse, Vec<ConsumerGroupRecord>), HeartbeatError> {
        let group_id = &req.group_id;
        let group = self
            .groups
            .get(group_id)
            .ok_or_else(|| HeartbeatError::GroupIdNotFound(group_id.clone()))?;
        let member_id = req.member_id.clone();
        let records = match &req.instance_id {
            None => {
                if !group.members.contains_key(&member_id) {
                    return Err(HeartbeatError::UnknownMemberId(format!(
                        "Member {member_id} is not a member of group {group_id}."
                    )));
                }
                self.fence_records(group_id, &member_id)
            }
            Some(instance) => {
                let holder = group.static_holder(instance, &member_id)?;
                if req.member_epoch == -2 {
                    // The member stays with its partitions (and its session timer, which
                    // removes it unless a new instance takes over first).
                    let mut a = group.members[holder].assignment.clone();
                    a.member_epoch = -2;
                    a.pending_revocation = TopicPartitions::new();
                    vec![current_assignment_record(group_id, &member_id, &a)]
                } else {
                    self.fence_records(group_id, &member_id)
                }
            }
        };
        for r in &records {
            self.replay(r);
        }
        if req.member_epoch == -1 {
            self.cancel_timers(group_id, &member_id);
        }
        Ok((
            HeartbeatResponse {
                member_id,
                member_epoch: req.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            records,
        ))
    }

    /// A member's removal: its three tombstones, then a new group epoch.
    fn fence_records(&self, group_id: &str, member_id: &str) -> Vec<ConsumerGroupRecord> {
        let Some(group) = self.groups.get(group_id) else {
            return Vec::new();
        };
        let mut records = member_tombstones(group_id, member_id);
        let regex = group
            .members
            .get(member_id)
            .and_then(|m| m.metadata.subscribed_topic_regex.as_ref());
        if let Some(r) = regex {
            if !group.regex_used_by_other(r, member_id) && group.regexes.contains_key(r) {
                records.push(ConsumerGroupRecord::RegularExpression {
                    group: group_id.to_string(),
                    regex: r.clone(),
                    value: None,
                });
            }
        }
        records.push(ConsumerGroupRecord::GroupMetadata {
            group: group_id.to_string(),
            value: Some(GroupMetadataValue {
                epoch: group.epoch + 1,
                metadata_hash: group.metadata_hash,
            }),
        });
        records
    }

    /// Drops the groups `unloaded` names with their timers (their partition is no longer led
    /// here); a later load reads them back from the log.
    pub fn unload(&mut self, unloaded: impl Fn(&str) -> bool) {
        self.groups.retain(|gid, _| !unloaded(gid));
        self.deadlines.retain(|k, _| !unloaded(k.of().0));
    }

    fn cancel_timers(&mut self, group_id: &str, member_id: &str) {
        self.deadlines.retain(|k, _| {
            let (group, member) = k.of();
            !(group == group_id && member == member_id)
        });
    }

    /// A member's session: the group's, or the one a classic member joined with.
    fn session_timeout_ms(&self, group_id: &str, member: &Member) -> i64 {
        i64::from(match &member.metadata.classic_member_metadata {
            Some(c) => c.session_timeout_ms,
            None => self.group_session_timeout_ms(group_id),
        })
    }

    /// The assignor most members ask for, else the configured default.
    fn assignor_for(&self, group: &ConsumerGroup) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in group.members.values() {
            if let Some(a) = &m.metadata.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(name, _)| Assignor::from_name(name))
            .or_else(|| self.config.assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    /// DeleteGroups of a consumer group: refused unless it is empty (`None` for a group that is
    /// not a consumer group here); otherwise its tombstones, in Kafka's order, already applied.
    /// The caller adds the tombstones of its offsets.
    pub fn delete_group(
        &mut self,
        group_id: &str,
    ) -> Option<Result<Vec<ConsumerGroupRecord>, NonEmptyGroup>> {
        let group = self.groups.get(group_id)?;
        if group.state() != ConsumerGroupState::Empty {
            return Some(Err(NonEmptyGroup));
        }
        let mut records = vec![ConsumerGroupRecord::TargetAssignmentMetadata {
            group: group_id.to_string(),
            value: None,
        }];
        records.extend(group.last_tombstones(group_id));
        for r in &records {
            self.replay(r);
        }
        Some(Ok(records))
    }

    /// OffsetCommit from a member of a consumer group (Kafka's `validateOffsetCommit`).
    /// `None` when `group_id` is not a consumer group here: the classic rules apply. A commit
    /// does not extend the member's session.
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Option<Result<(), OffsetError>> {
        let group = self.groups.get(group_id)?;
        let classic = group
            .members
            .get(member_id)
            .is_some_and(|m| m.metadata.classic_member_metadata.is_some());
        Some(validate_member(group, member_id, member_epoch).and_then(|()| {
            if member_epoch >= 0 && api_version < 9 && !classic {
                Err(OffsetError::UnsupportedVersion(
                    "OffsetCommit version 9 or above must be used by members using the modern group protocol".into(),
                ))
            } else {
                Ok(())
            }
        }))
    }

    /// TxnOffsetCommit: as OffsetCommit, except that a producer committing without a member
    /// (epoch -1, no member or instance id) is not checked, a stale epoch is
    /// ILLEGAL_GENERATION, and any version will do.
    pub fn validate_txn_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        instance_id: Option<&str>,
    ) -> Option<Result<(), OffsetError>> {
        let group = self.groups.get(group_id)?;
        if member_epoch == -1 && member_id.is_empty() && instance_id.is_none() {
            return Some(Ok(()));
        }
        Some(
            validate_member(group, member_id, member_epoch).map_err(|e| match e {
                OffsetError::StaleMemberEpoch => OffsetError::IllegalGeneration,
                e => e,
            }),
        )
    }

    /// OffsetFetch with a member id and epoch (v9+); an admin's fetch (no member id, negative
    /// epoch) is not checked.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<Result<(), OffsetError>> {
        let group = self.groups.get(group_id)?;
        match member_id {
            None if member_epoch < 0 => Some(Ok(())),
            member => Some(validate_member(
                group,
                member.unwrap_or_default(),
                member_epoch.max(0),
            )),
        }
    }

    /// The earliest timer, for the shell to sleep until.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.deadlines.values().min().copied()
    }

    /// Fires the timers due at `now_ms`: members whose session ran out, or who did not revoke
    /// within their rebalance timeout, are fenced. Returns the records to write.
    pub fn expire(&mut self, now_ms: i64) -> Vec<ConsumerGroupRecord> {
        let due: Vec<Deadline> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut records = Vec::new();
        for d in due {
            self.deadlines.remove(&d);
            let (group, member) = d.of();
            let at_epoch = match &d {
                Deadline::Rebalance { epoch, .. } => Some(*epoch),
                _ => None,
            };
            let Some(m) = self.groups.get(group).and_then(|g| g.members.get(member)) else {
                continue;
            };
            if at_epoch.is_some_and(|e| e != m.assignment.member_epoch) {
                continue;
            }
            let fenced = self.fence_records(group, member);
            for r in &fenced {
                self.replay(r);
            }
            let (group, member) = (group.clone(), member.clone());
            self.cancel_timers(&group, &member);
            records.extend(fenced);
        }
        records
    }

    /// Arms the session timer of every member of the groups `loaded` names, as Kafka does when
    /// a partition has been loaded (and the rebalance timer of members that still have
    /// partitions to revoke).
    pub fn on_loaded(&mut self, now_ms: i64, loaded: impl Fn(&str) -> bool) {
        for (gid, g) in self.groups.iter().filter(|(gid, _)| loaded(gid)) {
            for (mid, m) in &g.members {
                self.deadlines.insert(
                    Deadline::Session {
                        group: gid.clone(),
                        member: mid.clone(),
                    },
                    now_ms + self.session_timeout_ms(gid, m),
                );
                if m.assignment.state == MemberState::UnrevokedPartitions {
                    self.deadlines.insert(
                        Deadline::Rebalance {
                            group: gid.clone(),
                            member: mid.clone(),
                            epoch: m.assignment.member_epoch,
                        },
                        now_ms + i64::from(m.metadata.rebalance_timeout_ms.max(0)),
                    );
                }
            }
        }
    }

    /// Applies one record, from this coordinator's own output or from the log at load.
    pub fn replay(&mut self, record: &ConsumerGroupRecord) {
        let group_id = record.group().to_string();
        let exists = self.groups.contains_key(&group_id);
        let is_value = !matches!(
            record,
            ConsumerGroupRecord::GroupMetadata { value: None, .. }
                | ConsumerGroupRecord::PartitionMetadata { present: false, .. }
                | ConsumerGroupRecord::MemberMetadata { value: None, .. }
                | ConsumerGroupRecord::TargetAssignmentMetadata { value: None, .. }
                | ConsumerGroupRecord::TargetAssignmentMember { value: None, .. }
                | ConsumerGroupRecord::CurrentMemberAssignment { value: None, .. }
                | ConsumerGroupRecord::RegularExpression { value: None, .. }
        );
        if !exists && !is_value {
            return;
        }
        if let ConsumerGroupRecord::GroupMetadata { value: None, .. } = record {
            self.groups.remove(&group_id);
            return;
        }
        let group = self.groups.entry(group_id).or_default();
        match record {
            ConsumerGroupRecord::GroupMetadata { value, .. } => {
                if let Some(v) = value {
                    group.epoch = v.epoch;
                    group.metadata_hash = v.metadata_hash;
                }
            }
            ConsumerGroupRecord::PartitionMetadata { .. } => {}
            ConsumerGroupRecord::RegularExpression { regex, value, .. } => {
                put(&mut group.regexes, regex, value.as_ref());
            }
            ConsumerGroupRecord::MemberMetadata { member, value, .. } => match value {
                Some(v) => {
                    group.members.entry(member.clone()).or_default().metadata = v.clone();
                }
                None => {
                    group.members.remove(member);
                }
            },
            ConsumerGroupRecord::TargetAssignmentMetadata { value, .. } => {
                group.target_epoch = value.unwrap_or(-1);
            }
            ConsumerGroupRecord::TargetAssignmentMember { member, value, .. } => {
                put(&mut group.target, member, value.as_ref());
            }
            ConsumerGroupRecord::CurrentMemberAssignment { member, value, .. } => match value {
                Some(v) => {
                    group.members.entry(member.clone()).or_default().assignment =
                        MemberAssignment {
                            member_epoch: v.member_epoch,
                            previous_member_epoch: v.previous_member_epoch,
                            state: MemberState::from_i8(v.state),
                            assigned: v.assigned_partitions.clone(),
                            pending_revocation: v.partitions_pending_revocation.clone(),
                        };
                }
                None => {
                    if let Some(m) = group.members.get_mut(member) {
                        m.assignment = MemberAssignment {
                            member_epoch: -1,
                            previous_member_epoch: -1,
                            ..MemberAssignment::default()
                        };
                    }
                }
            },
        }
    }
}

/// Steps 2, 3 and 5 of Kafka's offset validation for a consumer group: a negative epoch on an
/// empty group is an admin's (or a manual assignment's) and passes; otherwise the member must
/// exist and be at exactly this epoch.
fn validate_member(group: &ConsumerGroup, member_id: &str, epoch: i32) -> Result<(), OffsetError> {
    if epoch < 0 && group.members.is_empty() {
        return Ok(());
    }
    let member = group
        .members
        .get(member_id)
        .ok_or(OffsetError::UnknownMemberId)?;
    if member.assignment.member_epoch != epoch {
        // A classic member's generation is its member epoch; a wrong one is what a classic
        // group answers.
        return Err(if member.metadata.classic_member_metadata.is_some() {
            OffsetError::IllegalGeneration
        } else {
            OffsetError::StaleMemberEpoch
        });
    }
    Ok(())
}

/// A value record sets `key`, a tombstone removes it.
fn put<V: Clone>(map: &mut BTreeMap<String, V>, key: &str, value: Option<&V>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// Kafka's epoch check: a newer epoch than the member's is fenced; an older one is accepted
/// only as the previous epoch of a member whose answer was lost, reporting a subset of what it
/// was assigned.
fn check_epoch(member: &Member, req: &HeartbeatRequest) -> Result<(), HeartbeatError> {
    let stored = member.assignment.member_epoch;
    let received = req.member_epoch;
    // A member may always rejoin with epoch 0 (what KIP-848 says; Kafka 4.1 fenced a known
    // member id rejoining until its session ran out, fixed by KAFKA-19233): its state is kept
    // and the answer carries its whole assignment.
    if received == 0 {
        return Ok(());
    }
    if received > stored {
        return Err(HeartbeatError::FencedMemberEpoch);
    }
    if received < stored {
        let lost_answer = received == member.assignment.previous_member_epoch
            && req.topic_partitions.as_ref().is_some_and(|owned| {
                owned.iter().all(|(t, ps)| {
                    member
                        .assignment
                        .assigned
                        .get(t)
                        .is_some_and(|a| ps.is_subset(a))
                })
            });
        if !lost_answer {
            return Err(HeartbeatError::FencedMemberEpoch);
        }
    }
    Ok(())
}

/// A subscription pattern as Kafka applies it: the whole topic name must match.
fn compile(regex: &str) -> Result<regex::Regex, HeartbeatError> {
    regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
        HeartbeatError::InvalidRegularExpression(format!(
            "SubscribedTopicRegex `{regex}` is not a valid regular expression: {e}."
        ))
    })
}

/// The topic names `pattern` matches, sorted.
fn resolve(pattern: &regex::Regex, topics: &impl TopicsView) -> Vec<String> {
    let mut names: Vec<String> = topics
        .topic_names()
        .into_iter()
        .filter(|n| pattern.is_match(n))
        .collect();
    names.sort();
    names
}

fn member_tombstones(group_id: &str, member_id: &str) -> Vec<ConsumerGroupRecord> {
    vec![
        ConsumerGroupRecord::CurrentMemberAssignment {
            group: group_id.to_string(),
            member: member_id.to_string(),
            value: None,
        },
        ConsumerGroupRecord::TargetAssignmentMember {
            group: group_id.to_string(),
            member: member_id.to_string(),
            value: None,
        },
        ConsumerGroupRecord::MemberMetadata {
            group: group_id.to_string(),
            member: member_id.to_string(),
            value: None,
        },
    ]
}

/// A static member's new incarnation `member_id` taking over `holder`'s place: the holder's
/// tombstones, then its target and its assignment under the new id.
fn takeover_records(
    group_id: &str,
    holder: &str,
    member_id: &str,
    target: &TopicPartitions,
    assignment: &MemberAssignment,
) -> Vec<ConsumerGroupRecord> {
    let mut records = member_tombstones(group_id, holder);
    records.push(ConsumerGroupRecord::TargetAssignmentMember {
        group: group_id.to_string(),
        member: member_id.to_string(),
        value: Some(target.clone()),
    });
    records.push(current_assignment_record(group_id, member_id, assignment));
    records
}

fn current_assignment_record(
    group_id: &str,
    member_id: &str,
    a: &MemberAssignment,
) -> ConsumerGroupRecord {
    ConsumerGroupRecord::CurrentMemberAssignment {
        group: group_id.to_string(),
        member: member_id.to_string(),
        value: Some(CurrentMemberAssignmentValue {
            member_epoch: a.member_epoch,
            previous_member_epoch: a.previous_member_epoch,
            state: a.state.as_i8(),
            assigned_partitions: a.assigned.clone(),
            partitions_pending_revocation: a.pending_revocation.clone(),
        }),
    }
}

/// A hash of what the assignment depends on: each subscribed topic that exists, by name, with
/// its id and partition count (FNV-1a; 0 for no topics, as Kafka's).
fn metadata_hash(group: &ConsumerGroup, topics: &impl TopicsView) -> i64 {
    let names: BTreeSet<&String> = group
        .members
        .values()
        .flat_map(|m| m.metadata.subscribed_topic_names.iter())
        .chain(group.regexes.values().flat_map(|v| v.topics.iter()))
        .collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut any = false;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for name in names {
        let Some(id) = topics.topic_id(name) else {
            continue;
        };
        any = true;
        feed(name.as_bytes());
        feed(&[0]);
        feed(id.as_bytes());
        feed(&topics.partition_count(&id).unwrap_or(0).to_be_bytes());
    }
    if any {
        h as i64
    } else {
        0
    }
}

#[cfg(test)]
#[path = "consumer_group_tests.rs"]
mod tests;
