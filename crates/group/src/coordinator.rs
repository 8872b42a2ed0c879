//! [`Coordinator`]: every group this node coordinates, and Kafka's classic rebalance protocol
//! over them.
//!
//! Calls that change state take a [`ReplyId`] and return an [`Output`]; the reply for that id
//! may be in it, or in the output of a later call (a JoinGroup is answered when the join phase
//! ends, a follower's SyncGroup when the leader's arrives). State changes apply at once, and the
//! records that make them durable are in the same output: the shell writes them before it sends
//! any reply of that output.
//!
//! The rules follow Kafka's classic group coordinator (`GroupCoordinator.scala` in 3.x,
//! `GroupMetadataManager` / `ClassicGroup` in 4.x): which state accepts which request, which
//! error each situation gets, when a rebalance starts and ends, and when offsets expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use crate::consumer_group::{
    AdoptedMember, ConsumerGroup, ConsumerGroups, DescribedConsumerGroup, GroupTimeouts,
    HeartbeatError, HeartbeatRequest, HeartbeatResponse, OffsetError, TopicsView,
};
use crate::consumer_protocol::CONSUMER_PROTOCOL_TYPE;
use crate::consumer_records::ConsumerGroupRecord;
use crate::group::{ClassicGroup, CommittedOffset, GroupState, InitialDelay, Member, PendingJoin};
use crate::offsets::{GroupOffsets, OffsetKey, OffsetStore};
use crate::records::{
    self, CoordinatorRecord, GroupMetadataKey, GroupMetadataValue, MemberMetadata, OffsetCommitKey,
    OffsetCommitValue,
};
use crate::timers::{TimerKey, Timers};
use crate::{partition_for, GroupConfig, GroupError, NEW_MEMBER_JOIN_TIMEOUT_MS};

/// Identifies the request a reply belongs to; chosen by the shell.
pub type ReplyId = u64;

/// Records for one `__consumer_offsets` partition: (key, value), a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub partition: i32,
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// For a TxnOffsetCommit: the producer id and epoch the batch is written with, as a
    /// transactional batch, so the transaction's marker settles it.
    pub producer: Option<(i64, i16)>,
}

#[derive(Debug)]
pub struct PendingReply {
    pub id: ReplyId,
    /// The partition whose records this reply depends on.
    pub partition: i32,
    pub reply: Reply,
}

/// What a call produced: write these records, then send these replies.
#[derive(Debug, Default)]
pub struct Output {
    pub appends: Vec<Append>,
    pub replies: Vec<PendingReply>,
}

impl Output {
    fn reply(&mut self, id: ReplyId, partition: i32, reply: Reply) {
        self.replies.push(PendingReply {
            id,
            partition,
            reply,
        });
    }

    fn append(&mut self, partition: i32, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.append_as(partition, None, key, value);
    }

    fn append_as(
        &mut self,
        partition: i32,
        producer: Option<(i64, i16)>,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) {
        match self.appends.last_mut() {
            Some(a) if a.partition == partition && a.producer == producer => {
                a.records.push((key, value))
            }
            _ => self.appends.push(Append {
                partition,
                records: vec![(key, value)],
                producer,
            }),
        }
    }

    pub fn merge(&mut self, other: Output) {
        self.appends.extend(other.appends);
        self.replies.extend(other.replies);
    }
}

/// Every reply the coordinator sends later than (or after the records of) its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
    Leave(Result<Vec<(LeaveMember, Option<GroupError>)>, GroupError>),
    /// Per (topic, partition).
    Commit(Vec<(String, i32, Option<GroupError>)>),
    DeleteGroup(Result<(), GroupError>),
    /// Per (topic, partition), or an error for the whole request.
    OffsetDelete(Result<Vec<(String, i32, Option<GroupError>)>, GroupError>),
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerHeartbeat(Result<HeartbeatResponse, HeartbeatFailure>),
}

/// Why a ConsumerGroupHeartbeat failed: the coordinator (not here, loading, the write failed)
/// or the group's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatFailure {
    Coordinator(GroupError),
    Group(HeartbeatError),
}

impl Reply {
    /// The same reply, failed with `error` (used when its records could not be written).
    pub fn failed(self, error: GroupError) -> Reply {
        match self {
            Reply::Join(j) => Reply::Join(JoinResponse::error(error, j.member_id)),
            Reply::Sync(_) => Reply::Sync(SyncResponse::error(error)),
            Reply::Leave(_) => Reply::Leave(Err(error)),
            Reply::Commit(parts) => Reply::Commit(
                parts
                    .into_iter()
                    .map(|(t, p, _)| (t, p, Some(error)))
                    .collect(),
            ),
            Reply::DeleteGroup(_) => Reply::DeleteGroup(Err(error)),
            Reply::OffsetDelete(_) => Reply::OffsetDelete(Err(error)),
            Reply::ConsumerHeartbeat(_) => {
                Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Coordinator(error)))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// The JoinGroup version: KIP-394 (v4+) and KIP-814 (v9+) depend on it.
    pub version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponseMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinResponseMember>,
}

impl JoinResponse {
    pub fn error(error: GroupError, member_id: String) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id,
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: GroupError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v2-v4 `retention_time_ms`; -1 means the broker's retention.
    pub retention_time_ms: i64,
    /// The OffsetCommit version: a consumer group's members must use v9 or above.
    pub api_version: i16,
    /// (topic, partition, offset, leader epoch, metadata).
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

/// TxnOffsetCommit: offsets committed as part of a producer's transaction.
#[derive(Debug, Clone)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata).
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchPartition {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// UNSTABLE_OFFSET_COMMIT when `require_stable` was asked and a transaction holds one.
    pub error: Option<GroupError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member as the status page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

/// One group as [`Coordinator::group_summaries`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    /// "classic" or "consumer" (KIP-848), as Kafka's ListGroups v5 names group types.
    pub protocol: &'static str,
    pub state: &'static str,
    pub members: Vec<MemberSummary>,
    /// Committed offsets: (topic, partition, offset), sorted.
    pub offsets: Vec<(String, i32, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded,
}

/// The groups of the `__consumer_offsets` partitions this node leads.
pub struct Coordinator {
    config: GroupConfig,
    groups: HashMap<String, ClassicGroup>,
    /// Committed and pending transactional offsets by group id, kept apart from `groups` as
    /// Kafka's OffsetMetadataManager is, so they do not depend on the kind of group. Every
    /// group id with offsets here has a classic group in `groups` or a consumer group in
    /// `consumer`: offsets are only stored for a group that exists (or is created for them),
    /// and go when the group is deleted or expires. A classic group converted to a consumer
    /// group keeps them.
    offsets: OffsetStore,
    /// The KIP-848 consumer groups of the loaded partitions (`group.version` 1): rebuilt from
    /// their records on load, dropped with their partition on unload.
    consumer: ConsumerGroups,
    partitions: HashMap<i32, Load>,
    timers: Timers,
    /// Randomness for member ids, passed in so tests are deterministic.
    random: Box<dyn FnMut() -> u128 + Send>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("groups", &self.groups.len())
            .field("partitions", &self.partitions)
            .finish()
    }
}

fn uuid_text(v: u128) -> String {
    let b = v.to_be_bytes();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Coordinator {
    pub fn new(config: GroupConfig, random: Box<dyn FnMut() -> u128 + Send>) -> Self {
        Coordinator {
            consumer: ConsumerGroups::new(config.consumer.clone()),
            config,
            groups: HashMap::new(),
            offsets: OffsetStore::default(),
            partitions: HashMap::new(),
            timers: Timers::default(),
            random,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.num_partitions)
    }

    /// When `tick` should next run.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        match (
            self.timers.next_deadline_ms(),
            self.consumer.next_deadline_ms(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn check_coordinator(&self, group_id: &str) -> Result<i32, GroupError> {
        let p = self.partition_of(group_id);
        match self.partitions.get(&p) {
            Some(Load::Loaded) => Ok(p),
            Some(Load::Loading) => Err(GroupError::CoordinatorLoadInProgress),
            None => Err(GroupError::NotCoordinator),
        }
    }

    /// Whether `partition` is loaded or loading here.
    pub fn owns_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Whether this node coordinates `group_id` (partition loaded or loading).
    pub fn owns(&self, group_id: &str) -> bool {
        self.partitions.contains_key(&self.partition_of(group_id))
    }

    // ---- loading ---------------------------------------------------------------------------

    /// Starts loading a partition this node now leads; its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until [`Coordinator::finish_load`].
    pub fn begin_load(&mut self, partition: i32) {
        self.partitions.insert(partition, Load::Loading);
    }

    /// Applies one record of a transactional batch of `producer_id` read back from the log: an
    /// offset commit waits for the transaction's marker ([`Coordinator::complete_txn`]).
    pub fn replay_transactional(
        &mut self,
        record: CoordinatorRecord,
        producer_id: i64,
        now_ms: i64,
    ) {
        match record {
            CoordinatorRecord::OffsetCommit {
                key,
                value: Some(v),
            } => {
                self.ensure_group(&key.group, now_ms);
                self.offsets.commit_pending(
                    &key.group,
                    producer_id,
                    (key.topic, key.partition),
                    CommittedOffset::from(v),
                );
            }
            other => self.replay(other, now_ms),
        }
    }

    /// Applies one record read back from the partition, in log order.
    pub fn replay(&mut self, record: CoordinatorRecord, now_ms: i64) {
        match record {
            CoordinatorRecord::OffsetCommit { key, value } => match value {
                Some(v) => {
                    // Like Kafka's OffsetMetadataManager replay, an offset of a group not seen
                    // yet creates it: the offsets of a simple group are its only records.
                    self.ensure_group(&key.group, now_ms);
                    self.offsets.commit(
                        &key.group,
                        (key.topic, key.partition),
                        CommittedOffset::from(v),
                    );
                }
                None => {
                    self.offsets.remove(&key.group, &key.topic, key.partition);
                }
            },
            CoordinatorRecord::GroupMetadata { key, value } => match value {
                Some(v) => {
                    let g = self
                        .groups
                        .entry(key.group.clone())
                        .or_insert_with(|| ClassicGroup::new(key.group.clone(), now_ms));
                    g.generation_id = v.generation;
                    g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                    g.protocol_name = v.protocol;
                    g.leader_id = v.leader;
                    g.state_timestamp_ms = v.current_state_timestamp_ms;
                    g.members.clear();
                    g.static_members.clear();
                    for m in v.members {
                        let protocols = match &g.protocol_name {
                            Some(p) => vec![(p.clone(), m.subscription)],
                            None => Vec::new(),
                        };
                        g.add_member(Member {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            session_timeout_ms: m.session_timeout_ms,
                            protocol_type: g.protocol_type.clone().unwrap_or_default(),
                            protocols,
                            assignment: m.assignment,
                            awaiting_join: None,
                            awaiting_sync: None,
                            is_new: false,
                            last_heartbeat_ms: now_ms,
                        });
                    }
                    g.state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                }
                None => {
                    self.groups.remove(&key.group);
                    // A deleted group's committed offsets were tombstoned before it; a group
                    // converted to a consumer group keeps them (Kafka's offsets do not depend
                    // on the group records). Pending transactional offsets go, as a live
                    // delete drops them.
                    self.offsets.drop_pending(&key.group);
                }
            },
            CoordinatorRecord::Consumer(record) => self.consumer.replay(&record),
            CoordinatorRecord::Other { .. } => {}
        }
    }

    /// Creates the classic group `group_id`, Empty, unless it exists.
    fn ensure_group(&mut self, group_id: &str, now_ms: i64) {
        if !self.groups.contains_key(group_id) {
            self.groups.insert(
                group_id.to_string(),
                ClassicGroup::new(group_id.to_string(), now_ms),
            );
        }
    }

    /// Ends a load: the partition's groups start serving, loaded members get a fresh session.
    pub fn finish_load(&mut self, partition: i32, now_ms: i64) {
        self.partitions.insert(partition, Load::Loaded);
        let n = self.config.num_partitions;
        let mut sessions = Vec::new();
        for g in self.groups.values() {
            if partition_for(&g.group_id, n) != partition {
                continue;
            }
            for m in g.members.values() {
                sessions.push((
                    TimerKey::Heartbeat {
                        group: g.group_id.clone(),
                        member: m.member_id.clone(),
                    },
                    now_ms + i64::from(m.session_timeout_ms),
                ));
            }
        }
        for (k, at) in sessions {
            self.timers.schedule(k, at);
        }
        self.consumer
            .on_loaded(now_ms, |g| partition_for(g, n) == partition);
        if self.timers.deadline(&TimerKey::OffsetExpiration).is_none() {
            self.timers.schedule(
                TimerKey::OffsetExpiration,
                now_ms + self.config.offsets_retention_check_interval_ms,
            );
        }
    }

    /// The groups' own `consumer.*` timeouts (dynamic GROUP configs from the metadata image).
    pub fn set_group_timeouts(
        &mut self,
        timeouts: std::collections::BTreeMap<String, GroupTimeouts>,
    ) {
        self.consumer.set_timeouts(timeouts);
    }

    /// Drops a partition (no longer led here, or its log failed). Parked joins and syncs of its
    /// groups are answered NOT_COORDINATOR so their clients look for the coordinator again.
    pub fn unload_partition(&mut self, partition: i32) -> Output {
        let mut out = Output::default();
        self.partitions.remove(&partition);
        let n = self.config.num_partitions;
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|g| partition_for(g, n) == partition)
            .cloned()
            .collect();
        // The offsets are read back from the log with the groups if the partition comes back.
        self.offsets.unload_partition(partition, n);
        self.consumer.unload(|g| partition_for(g, n) == partition);
        for id in ids {
            if let Some(g) = self.groups.remove(&id) {
                for m in g.members.values() {
                    if let Some(j) = m.awaiting_join {
                        out.reply(
                            j.reply,
                            partition,
                            Reply::Join(JoinResponse::error(
                                GroupError::NotCoordinator,
                                m.member_id.clone(),
                            )),
                        );
                    }
                    if let Some(s) = m.awaiting_sync {
                        out.reply(
                            s,
                            partition,
                            Reply::Sync(SyncResponse::error(GroupError::NotCoordinator)),
                        );
                    }
                    self.timers.cancel(&TimerKey::Heartbeat {
                        group: id.clone(),
                        member: m.member_id.clone(),
                    });
                }
                for p in &g.pending_members {
                    self.timers.cancel(&TimerKey::PendingMember {
                        group: id.clone(),
                        member: p.clone(),
                    });
                }
                self.timers.cancel(&TimerKey::Join { group: id.clone() });
                self.timers.cancel(&TimerKey::Sync { group: id.clone() });
            }
        }
        out
    }

    // ---- records ---------------------------------------------------------------------------

    fn group_record(g: &ClassicGroup) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = records::encode_group_metadata_key(&GroupMetadataKey {
            group: g.group_id.clone(),
        });
        let protocol = g.protocol_name.clone();
        let value = GroupMetadataValue {
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation_id,
            protocol: protocol.clone(),
            leader: g.leader_id.clone(),
            current_state_timestamp_ms: g.state_timestamp_ms,
            members: g
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata_for(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        (key, Some(records::encode_group_metadata_value(&value)))
    }

    fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
        records::encode_offset_commit_key(&OffsetCommitKey {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        })
    }

    // ---- JoinGroup -------------------------------------------------------------------------

    pub fn join_group(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        topics: &impl TopicsView,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(&req.group_id);
        let fail = |out: &mut Output, e: GroupError, member_id: &str| {
            out.reply(
                reply,
                p,
                Reply::Join(JoinResponse::error(e, member_id.to_string())),
            );
        };
        if req.group_id.is_empty() {
            fail(&mut out, GroupError::InvalidGroupId, &req.member_id);
            return out;
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            fail(&mut out, e, &req.member_id);
            return out;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            fail(&mut out, GroupError::InvalidSessionTimeout, &req.member_id);
            return out;
        }
        if self.consumer.serves_classic(&req.group_id) {
            // A classic member joining a consumer group (online migration).
            let replaces_consumer_member = req.group_instance_id.as_deref().is_some_and(|i| {
                self.consumer
                    .group(&req.group_id)
                    .is_some_and(|g| g.consumer_protocol_static_member(i))
            });
            let random = (self.random)();
            match self
                .consumer
                .classic_join(&req, topics, now_ms, || uuid_text(random))
            {
                Ok((joined, records)) => {
                    for record in &records {
                        Self::append_consumer(&mut out, p, record);
                    }
                    out.reply(
                        reply,
                        p,
                        Reply::Join(JoinResponse {
                            error: None,
                            generation_id: joined.generation_id,
                            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
                            protocol_name: Some(joined.protocol_name),
                            // No leader: the group assigns; the member learns its partitions
                            // from SyncGroup.
                            leader: String::new(),
                            skip_assignment: false,
                            member_id: joined.member_id,
                            members: Vec::new(),
                        }),
                    );
                    // Kafka's step 4 of `classicGroupJoinToConsumerGroup`: a classic static
                    // member that replaced the last consumer-protocol member downgrades the
                    // group (the member learns of the rebalance at its SyncGroup).
                    if replaces_consumer_member {
                        self.try_downgrade(&req.group_id, now_ms, &mut out);
                    }
                }
                Err((e, member_id)) => fail(&mut out, e, &member_id),
            }
            return out;
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                fail(&mut out, GroupError::UnknownMemberId, &req.member_id);
                return out;
            }
            // An empty consumer group gives way to the classic group (Kafka's
            // maybeDeleteEmptyConsumerGroup); its offsets stay, as they are kept by group id.
            if let Some(Ok(tombstones)) = self.consumer.delete_group(&req.group_id) {
                for record in &tombstones {
                    Self::append_consumer(&mut out, p, record);
                }
            }
            self.groups.insert(
                req.group_id.clone(),
                ClassicGroup::new(req.group_id.clone(), now_ms),
            );
        }
        let Some(g) = self.groups.get(&req.group_id) else {
            return out;
        };
        if g.state == GroupState::Dead {
            // Being removed; the client finds the coordinator again and rejoins.
            fail(
                &mut out,
                GroupError::CoordinatorNotAvailable,
                &req.member_id,
            );
            return out;
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            fail(
                &mut out,
                GroupError::InconsistentGroupProtocol,
                &req.member_id,
            );
            return out;
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(now_ms, reply, req, &mut out);
        } else {
            self.join_known_member(now_ms, reply, req, &mut out);
        }
        out
    }

    fn join_unknown_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        out: &mut Output,
    ) {
        let p = self.partition_of(&req.group_id);
        let new_id = format!("{}-{}", req.client_id, uuid_text((self.random)()));
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let existing_static = req
            .group_instance_id
            .as_ref()
            .and_then(|i| g.static_members.get(i))
            .cloned();
        if existing_static.is_none() && g.size() >= self.config.max_size {
            out.reply(
                reply,
                p,
                Reply::Join(JoinResponse::error(
                    GroupError::GroupMaxSizeReached,
                    String::new(),
                )),
            );
            return;
        }
        match (&req.group_instance_id, existing_static) {
            (Some(_), Some(old_id)) => {
                self.replace_static_member(now_ms, reply, req, old_id, new_id, out)
            }
            (Some(_), None) => self.add_member_and_rebalance(now_ms, reply, req, new_id, out),
            (None, _) if req.version >= 4 => {
                // KIP-394: hand out the id first, so a client that retries after a lost answer
                // does not leave orphan members holding the rebalance.
                g.pending_members.insert(new_id.clone());
                let session = i64::from(req.session_timeout_ms);
                self.timers.schedule(
                    TimerKey::PendingMember {
                        group: req.group_id.clone(),
                        member: new_id.clone(),
                    },
                    now_ms + session,
                );
                out.reply(
                    reply,
                    p,
                    Reply::Join(JoinResponse::error(GroupError::MemberIdRequired, new_id)),
                );
            }
            (None, _) => self.add_member_and_rebalance(now_ms, reply, req, new_id, out),
        }
    }

    fn join_known_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        out: &mut Output,
    ) {
        let p = self.partition_of(&req.group_id);
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let member_id = req.member_id.clone();
        if g.pending_members.remove(&member_id) {
            self.timers.cancel(&TimerKey::PendingMember {
                group: req.group_id.clone(),
                member: member_id.clone(),
            });
            self.add_member_and_rebalance(now_ms, reply, req, member_id, out);
            return;
        }
        if g.is_static_member_fenced(&member_id, req.group_instance_id.as_deref()) {
            out.reply(
                reply,
                p,
                Reply::Join(JoinResponse::error(GroupError::FencedInstanceId, member_id)),
            );
            return;
        }
        let Some(member) = g.members.get(&member_id) else {
            out.reply(
                reply,
                p,
                Reply::Join(JoinResponse::error(GroupError::UnknownMemberId, member_id)),
            );
            return;
        };
        let unchanged = member.matches(&req.protocols);
        match g.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, reply, req, out)
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried join of this generation: answer it again.
                let resp = current_generation_response(g, &member_id);
                out.reply(reply, p, Reply::Join(resp));
            }
            GroupState::Stable if unchanged && !g.is_leader(&member_id) => {
                // Nothing changed and followers cannot start a rebalance by rejoining.
                let resp = current_generation_response(g, &member_id);
                out.reply(reply, p, Reply::Join(resp));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now_ms, reply, req, out)
            }
            GroupState::Empty | GroupState::Dead => out.reply(
                reply,
                p,
                Reply::Join(JoinResponse::error(GroupError::UnknownMemberId, member_id)),
            ),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        member_id: String,
        out: &mut Output,
    ) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(PendingJoin { reply }),
            awaiting_sync: None,
            is_new: true,
            last_heartbeat_ms: now_ms,
        };
        if let Some(d) = g.initial_delay.as_mut() {
            d.new_member_added = true;
        }
        g.add_member(member);
        // A new member that never completes its join is dropped after NewMemberJoinTimeoutMs.
        self.timers.schedule(
            TimerKey::Heartbeat {
                group: req.group_id.clone(),
                member: member_id,
            },
            now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
        );
        self.maybe_prepare_rebalance(&req.group_id, now_ms, out);
        self.try_complete_join(&req.group_id, now_ms, out);
    }

    fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        out: &mut Output,
    ) {
        let p = self.partition_of(&req.group_id);
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return;
        };
        if let Some(old) = m.awaiting_join.take() {
            // A second join from the same member replaces the first; the first learns it lost.
            out.reply(
                old.reply,
                p,
                Reply::Join(JoinResponse::error(
                    GroupError::UnknownMemberId,
                    req.member_id.clone(),
                )),
            );
        }
        m.protocols = req.protocols.clone();
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.awaiting_join = Some(PendingJoin { reply });
        m.last_heartbeat_ms = now_ms;
        self.maybe_prepare_rebalance(&req.group_id, now_ms, out);
        self.try_complete_join(&req.group_id, now_ms, out);
    }

    /// A static member rejoined with an unknown member id (KIP-345): it takes over the old
    /// member's place. In a Stable group whose protocol choice does not change this is not a
    /// rebalance: the member gets the current generation back and, at SyncGroup, its old
    /// assignment.
    fn replace_static_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        out: &mut Output,
    ) {
        let p = self.partition_of(&req.group_id);
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let Some(mut m) = g.members.remove(&old_id) else {
            return;
        };
        // Fence the old incarnation if it is still waiting on something.
        if let Some(j) = m.awaiting_join.take() {
            out.reply(
                j.reply,
                p,
                Reply::Join(JoinResponse::error(
                    GroupError::FencedInstanceId,
                    old_id.clone(),
                )),
            );
        }
        if let Some(s) = m.awaiting_sync.take() {
            out.reply(
                s,
                p,
                Reply::Sync(SyncResponse::error(GroupError::FencedInstanceId)),
            );
        }
        let was_leader = g.is_leader(&old_id);
        m.protocols = req.protocols.clone();
        m.member_id = new_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_heartbeat_ms = now_ms;
        if let Some(i) = &m.group_instance_id {
            g.static_members.insert(i.clone(), new_id.clone());
        }
        g.members.insert(new_id.clone(), m);
        if was_leader {
            g.leader_id = Some(new_id.clone());
        }
        if g.pending_sync.remove(&old_id) {
            g.pending_sync.insert(new_id.clone());
        }
        self.timers.cancel(&TimerKey::Heartbeat {
            group: req.group_id.clone(),
            member: old_id.clone(),
        });
        self.timers.schedule(
            TimerKey::Heartbeat {
                group: req.group_id.clone(),
                member: new_id.clone(),
            },
            now_ms + i64::from(req.session_timeout_ms),
        );
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if g.state == GroupState::Stable && g.select_protocol() == g.protocol_name {
            let (k, v) = Self::group_record(g);
            out.append(p, k, v);
            let mut resp = current_generation_response(g, &new_id);
            if req.version >= 9 {
                // KIP-814: the returning leader learns it leads but must not reassign.
                resp.skip_assignment = was_leader;
            } else if was_leader {
                // Older clients would run an assignment a Stable group never distributes;
                // naming the old id as leader keeps them from thinking they lead.
                resp.leader = old_id;
                resp.members.clear();
            }
            out.reply(reply, p, Reply::Join(resp));
            return;
        }
        // Otherwise the new incarnation joins the rebalance (starting one if needed).
        let mut req = req;
        req.member_id = new_id;
        self.update_member_and_rebalance(now_ms, reply, req, out);
    }

    fn maybe_prepare_rebalance(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group_id, now_ms, out);
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let p = self.partition_of(group_id);
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms);
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state == GroupState::CompletingRebalance {
            // Members waiting on SyncGroup learn that this generation is over.
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(s) = m.awaiting_sync.take() {
                    out.reply(
                        s,
                        p,
                        Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                    );
                }
            }
        }
        g.pending_sync.clear();
        self.timers.cancel(&TimerKey::Sync {
            group: group_id.to_string(),
        });
        let rebalance_timeout = g.rebalance_timeout_ms();
        let deadline = if g.state == GroupState::Empty {
            // The first rebalance of an empty group waits so that members starting together
            // join one generation instead of triggering one rebalance each.
            g.initial_delay = Some(InitialDelay {
                remaining_ms: (rebalance_timeout - initial_delay).max(0),
                new_member_added: false,
            });
            now_ms + initial_delay
        } else {
            g.initial_delay = None;
            now_ms + rebalance_timeout
        };
        g.transition(GroupState::PreparingRebalance, now_ms);
        self.timers.schedule(
            TimerKey::Join {
                group: group_id.to_string(),
            },
            deadline,
        );
    }

    /// Ends the join phase early once everyone has rejoined (never during the initial delay).
    fn try_complete_join(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if g.state == GroupState::PreparingRebalance
            && g.initial_delay.is_none()
            && g.all_members_joined()
        {
            self.complete_join(group_id, now_ms, out);
        }
    }

    fn on_join_deadline(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms);
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(d) = g.initial_delay {
            if d.new_member_added && d.remaining_ms > 0 {
                let delay = initial_delay.min(d.remaining_ms);
                g.initial_delay = Some(InitialDelay {
                    remaining_ms: (d.remaining_ms - delay).max(0),
                    new_member_added: false,
                });
                self.timers.schedule(
                    TimerKey::Join {
                        group: group_id.to_string(),
                    },
                    now_ms + delay,
                );
                return;
            }
            g.initial_delay = None;
        }
        self.complete_join(group_id, now_ms, out);
    }

    fn complete_join(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let p = self.partition_of(group_id);
        self.timers.cancel(&TimerKey::Join {
            group: group_id.to_string(),
        });
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        g.initial_delay = None;
        // Dynamic members that did not rejoin in time are out; static ones keep their place
        // until their session expires.
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && !m.is_static())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            g.remove_member(id);
            self.timers.cancel(&TimerKey::Heartbeat {
                group: group_id.to_string(),
                member: id.clone(),
            });
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if !g.members.is_empty() && !g.elect_joined_leader() {
            // Only static members that have not rejoined are left: wait for them (or for their
            // sessions to expire) for another rebalance timeout.
            let t = g.rebalance_timeout_ms();
            self.timers.schedule(
                TimerKey::Join {
                    group: group_id.to_string(),
                },
                now_ms + t,
            );
            return;
        }
        g.generation_id += 1;
        if g.members.is_empty() {
            g.protocol_name = None;
            g.transition(GroupState::Empty, now_ms);
            let (k, v) = Self::group_record(g);
            out.append(p, k, v);
            return;
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, now_ms);
        let mut sessions = Vec::new();
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in &ids {
            let resp_version = g.members.get(id).and_then(|m| m.awaiting_join);
            if let Some(pj) = resp_version {
                let resp = current_generation_response(g, id);
                out.reply(pj.reply, p, Reply::Join(resp));
            }
            if let Some(m) = g.members.get_mut(id) {
                m.awaiting_join = None;
                m.is_new = false;
                m.last_heartbeat_ms = now_ms;
                sessions.push((id.clone(), now_ms + i64::from(m.session_timeout_ms)));
            }
        }
        g.pending_sync = ids.into_iter().collect();
        let sync_deadline = now_ms + g.rebalance_timeout_ms();
        for (id, at) in sessions {
            self.timers.schedule(
                TimerKey::Heartbeat {
                    group: group_id.to_string(),
                    member: id,
                },
                at,
            );
        }
        self.timers.schedule(
            TimerKey::Sync {
                group: group_id.to_string(),
            },
            sync_deadline,
        );
    }

    // ---- SyncGroup -------------------------------------------------------------------------

    pub fn sync_group(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: SyncRequest,
        topics: &impl TopicsView,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(&req.group_id);
        let fail = |out: &mut Output, e: GroupError| {
            out.reply(reply, p, Reply::Sync(SyncResponse::error(e)));
        };
        if let Err(e) = self.check_coordinator(&req.group_id) {
            fail(&mut out, e);
            return out;
        }
        if self.consumer.group(&req.group_id).is_some() {
            match self.consumer.classic_sync(&req, topics, now_ms) {
                Ok((protocol_name, assignment)) => out.reply(
                    reply,
                    p,
                    Reply::Sync(SyncResponse {
                        error: None,
                        protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
                        protocol_name: Some(protocol_name),
                        assignment,
                    }),
                ),
                Err(e) => fail(&mut out, e),
            }
            return out;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            fail(&mut out, GroupError::UnknownMemberId);
            return out;
        };
        if g.state == GroupState::Dead {
            fail(&mut out, GroupError::CoordinatorNotAvailable);
            return out;
        }
        if let Err(e) = validate_member(
            g,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        ) {
            fail(&mut out, e);
            return out;
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| g.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| g.protocol_name.as_ref() != Some(n))
        {
            fail(&mut out, GroupError::InconsistentGroupProtocol);
            return out;
        }
        let session_deadline;
        match g.state {
            GroupState::Empty => {
                fail(&mut out, GroupError::UnknownMemberId);
                return out;
            }
            GroupState::PreparingRebalance => {
                fail(&mut out, GroupError::RebalanceInProgress);
                return out;
            }
            GroupState::Dead => return out,
            GroupState::CompletingRebalance => {
                let Some(m) = g.members.get_mut(&req.member_id) else {
                    return out;
                };
                m.awaiting_sync = Some(reply);
                m.last_heartbeat_ms = now_ms;
                session_deadline = now_ms + i64::from(m.session_timeout_ms);
                g.pending_sync.remove(&req.member_id);
                if g.is_leader(&req.member_id) {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.transition(GroupState::Stable, now_ms);
                    let (k, v) = Self::group_record(g);
                    out.append(p, k, v);
                    for m in g.members.values_mut() {
                        if let Some(s) = m.awaiting_sync.take() {
                            out.reply(
                                s,
                                p,
                                Reply::Sync(SyncResponse {
                                    error: None,
                                    protocol_type: g.protocol_type.clone(),
                                    protocol_name: g.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                }),
                            );
                        }
                    }
                }
            }
            GroupState::Stable => {
                let Some(m) = g.members.get_mut(&req.member_id) else {
                    return out;
                };
                m.last_heartbeat_ms = now_ms;
                session_deadline = now_ms + i64::from(m.session_timeout_ms);
                out.reply(
                    reply,
                    p,
                    Reply::Sync(SyncResponse {
                        error: None,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    }),
                );
                g.pending_sync.remove(&req.member_id);
            }
        }
        let sync_done = g.pending_sync.is_empty();
        self.timers.schedule(
            TimerKey::Heartbeat {
                group: req.group_id.clone(),
                member: req.member_id.clone(),
            },
            session_deadline,
        );
        if sync_done {
            self.timers.cancel(&TimerKey::Sync {
                group: req.group_id.clone(),
            });
        }
        out
    }

    fn on_sync_deadline(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if !matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            return;
        }
        let laggards: Vec<String> = g.pending_sync.iter().cloned().collect();
        for id in laggards {
            self.remove_member_and_update_group(group_id, &id, now_ms, out);
        }
    }

    // ---- Heartbeat -------------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.check_coordinator(group_id)?;
        if self.consumer.group(group_id).is_some() {
            return self.consumer.classic_heartbeat(
                group_id,
                member_id,
                group_instance_id,
                generation_id,
                now_ms,
            );
        }
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        match g.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        validate_member(g, member_id, group_instance_id, generation_id)?;
        let state = g.state;
        let Some(m) = g.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        m.last_heartbeat_ms = now_ms;
        let deadline = now_ms + i64::from(m.session_timeout_ms);
        let key = TimerKey::Heartbeat {
            group: group_id.to_string(),
            member: member_id.to_string(),
        };
        // A member parked in JoinGroup keeps its longer new-member deadline.
        if m.awaiting_join.is_none() {
            self.timers.schedule(key, deadline);
        }
        match state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    fn on_heartbeat_deadline(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(m) = self
            .groups
            .get(group_id)
            .and_then(|g| g.members.get(member_id))
        else {
            return;
        };
        // Kafka's shouldKeepAlive: a parked JoinGroup is alive (new members for at most
        // NewMemberJoinTimeoutMs); a member awaiting SyncGroup is left to the sync deadline.
        let keep_until = if m.awaiting_join.is_some() {
            m.is_new
                .then_some(m.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS)
                .or(Some(i64::MAX))
        } else if m.awaiting_sync.is_some() {
            Some(i64::MAX)
        } else {
            Some(m.last_heartbeat_ms + i64::from(m.session_timeout_ms))
        };
        match keep_until {
            Some(t) if t > now_ms => {
                let at = if t == i64::MAX {
                    now_ms + i64::from(m.session_timeout_ms)
                } else {
                    t
                };
                self.timers.schedule(
                    TimerKey::Heartbeat {
                        group: group_id.to_string(),
                        member: member_id.to_string(),
                    },
                    at,
                );
            }
            _ => self.remove_member_and_update_group(group_id, member_id, now_ms, out),
        }
    }

    fn remove_member_and_update_group(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        out: &mut Output,
    ) {
        let p = self.partition_of(group_id);
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = g.remove_member(member_id) else {
            return;
        };
        // A parked request of a removed member is answered so its client rejoins.
        if let Some(j) = m.awaiting_join {
            out.reply(
                j.reply,
                p,
                Reply::Join(JoinResponse::error(
                    GroupError::UnknownMemberId,
                    member_id.to_string(),
                )),
            );
        }
        if let Some(s) = m.awaiting_sync {
            out.reply(
                s,
                p,
                Reply::Sync(SyncResponse::error(GroupError::UnknownMemberId)),
            );
        }
        self.timers.cancel(&TimerKey::Heartbeat {
            group: group_id.to_string(),
            member: member_id.to_string(),
        });
        let state = g.state;
        match state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_id, now_ms, out);
                self.try_complete_join(group_id, now_ms, out);
            }
            GroupState::PreparingRebalance => self.try_complete_join(group_id, now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- LeaveGroup ------------------------------------------------------------------------

    pub fn leave_group(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        group_id: &str,
        members: Vec<LeaveMember>,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(group_id);
        if let Err(e) = self.check_coordinator(group_id) {
            out.reply(reply, p, Reply::Leave(Err(e)));
            return out;
        }
        if self.consumer.group(group_id).is_some() {
            let (results, records) = self.consumer.classic_leave(group_id, members);
            for record in &records {
                Self::append_consumer(&mut out, p, record);
            }
            out.reply(reply, p, Reply::Leave(Ok(results)));
            return out;
        }
        let Some(g) = self.groups.get(group_id) else {
            let results = members
                .into_iter()
                .map(|m| (m, Some(GroupError::UnknownMemberId)))
                .collect();
            out.reply(reply, p, Reply::Leave(Ok(results)));
            return out;
        };
        if g.state == GroupState::Dead {
            out.reply(
                reply,
                p,
                Reply::Leave(Err(GroupError::CoordinatorNotAvailable)),
            );
            return out;
        }
        let mut results = Vec::with_capacity(members.len());
        for lm in members {
            let Some(g) = self.groups.get_mut(group_id) else {
                break;
            };
            // A static member may leave by instance id alone (the admin client's
            // removeMembersFromConsumerGroup does).
            let target = match (&lm.group_instance_id, lm.member_id.is_empty()) {
                (Some(i), true) => match g.static_members.get(i) {
                    Some(id) => Ok(id.clone()),
                    None => Err(GroupError::UnknownMemberId),
                },
                (Some(i), false) => match g.static_members.get(i) {
                    Some(id) if *id != lm.member_id => Err(GroupError::FencedInstanceId),
                    _ => Ok(lm.member_id.clone()),
                },
                (None, _) => Ok(lm.member_id.clone()),
            };
            let result = match target {
                Err(e) => Some(e),
                Ok(id) if g.pending_members.remove(&id) => {
                    self.timers.cancel(&TimerKey::PendingMember {
                        group: group_id.to_string(),
                        member: id,
                    });
                    let gid = group_id.to_string();
                    self.try_complete_join(&gid, now_ms, &mut out);
                    None
                }
                Ok(id) if g.members.contains_key(&id) => {
                    self.remove_member_and_update_group(group_id, &id, now_ms, &mut out);
                    None
                }
                Ok(_) => Some(GroupError::UnknownMemberId),
            };
            results.push((lm, result));
        }
        out.reply(reply, p, Reply::Leave(Ok(results)));
        out
    }

    // ---- offsets ---------------------------------------------------------------------------

    pub fn commit_offsets(&mut self, now_ms: i64, reply: ReplyId, req: CommitRequest) -> Output {
        self.commit(now_ms, reply, req, None)
    }

    /// OffsetCommit, or with `producer` a TxnOffsetCommit: the offsets go into the log now (as
    /// a transactional batch of the producer for the latter) and into the group's committed
    /// offsets, or its pending ones until the transaction's marker.
    fn commit(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: CommitRequest,
        producer: Option<(i64, i16)>,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(&req.group_id);
        let all = |e: GroupError| {
            Reply::Commit(
                req.offsets
                    .iter()
                    .map(|(t, part, ..)| (t.clone(), *part, Some(e)))
                    .collect(),
            )
        };
        if req.group_id.is_empty() {
            out.reply(reply, p, all(GroupError::InvalidGroupId));
            return out;
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            out.reply(reply, p, all(e));
            return out;
        }
        // A consumer group's member commits with its member epoch; the group's session is not
        // extended by it (Kafka's ConsumerGroup.validateOffsetCommit).
        let consumer_check = match producer {
            None => self.consumer.validate_offset_commit(
                &req.group_id,
                &req.member_id,
                req.generation_id,
                req.api_version,
            ),
            Some(_) => self.consumer.validate_txn_offset_commit(
                &req.group_id,
                &req.member_id,
                req.generation_id,
                req.group_instance_id.as_deref(),
            ),
        };
        if let Some(check) = consumer_check {
            if let Err(e) = check {
                out.reply(reply, p, all(offset_error(e)));
                return out;
            }
            let results = self.store_offsets(now_ms, p, &req, producer, &mut out);
            out.reply(reply, p, Reply::Commit(results));
            return out;
        }
        if !self.groups.contains_key(&req.group_id) {
            // A consumer that manages its own partitions (or an admin) stores offsets under a
            // group id that never runs the group protocol; Kafka creates the group for a
            // transactional commit whatever the generation.
            if producer.is_none() && req.generation_id >= 0 {
                out.reply(reply, p, all(GroupError::IllegalGeneration));
                return out;
            }
            self.ensure_group(&req.group_id, now_ms);
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return out;
        };
        if let Err(e) = validate_commit(g, &req) {
            out.reply(reply, p, all(e));
            return out;
        }
        if let Some(m) = g.members.get_mut(&req.member_id) {
            m.last_heartbeat_ms = now_ms;
            let at = now_ms + i64::from(m.session_timeout_ms);
            if m.awaiting_join.is_none() {
                self.timers.schedule(
                    TimerKey::Heartbeat {
                        group: req.group_id.clone(),
                        member: req.member_id.clone(),
                    },
                    at,
                );
            }
        }
        let results = self.store_offsets(now_ms, p, &req, producer, &mut out);
        out.reply(reply, p, Reply::Commit(results));
        out
    }

    /// Writes and stores the offsets of a validated commit (pending ones for a transaction);
    /// the result per partition.
    fn store_offsets(
        &mut self,
        now_ms: i64,
        p: i32,
        req: &CommitRequest,
        producer: Option<(i64, i16)>,
        out: &mut Output,
    ) -> Vec<(String, i32, Option<GroupError>)> {
        let expire = (req.retention_time_ms >= 0).then(|| now_ms + req.retention_time_ms);
        let mut results = Vec::with_capacity(req.offsets.len());
        for (topic, partition, offset, leader_epoch, metadata) in req.offsets.iter().cloned() {
            let metadata = metadata.unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                results.push((topic, partition, Some(GroupError::OffsetMetadataTooLarge)));
                continue;
            }
            let committed = CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms: expire,
            };
            let value = OffsetCommitValue {
                offset,
                leader_epoch,
                metadata: committed.metadata.clone(),
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms: expire,
            };
            out.append_as(
                p,
                producer,
                Self::offset_key(&req.group_id, &topic, partition),
                Some(records::encode_offset_commit_value(&value)),
            );
            let key = (topic.clone(), partition);
            match producer {
                Some((pid, _)) => self
                    .offsets
                    .commit_pending(&req.group_id, pid, key, committed),
                None => self.offsets.commit(&req.group_id, key, committed),
            }
            results.push((topic, partition, None));
        }
        results
    }

    /// OffsetFetch v9+ from a member of a consumer group: its member id and epoch must be
    /// current (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH); an admin's fetch (no member id, a
    /// negative epoch) and fetches for other groups are not checked.
    pub fn check_offset_fetch_member(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        match self
            .consumer
            .validate_offset_fetch(group_id, member_id, member_epoch)
        {
            Some(Err(e)) => Err(offset_error(e)),
            _ => Ok(()),
        }
    }

    /// Committed offsets of `group_id`: of the listed partitions, or of every partition that
    /// has one when `topics` is `None`. An unknown group has nothing committed (offset -1).
    /// Offsets of open transactions are not visible; with `require_stable` (KIP-447) a partition
    /// that has one answers UNSTABLE_OFFSET_COMMIT, so the consumer waits for the transaction.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        require_stable: bool,
    ) -> Result<Vec<OffsetFetchPartition>, GroupError> {
        self.check_coordinator(group_id)?;
        let stored = self.offsets.group(group_id);
        let lookup = |topic: &str, partition: i32| -> OffsetFetchPartition {
            let unstable = require_stable && stored.has_pending_txn_offset(topic, partition);
            let committed = stored.offsets.get(&(topic.to_string(), partition));
            match committed {
                Some(c) if !unstable => OffsetFetchPartition {
                    topic: topic.to_string(),
                    partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: Some(c.metadata.clone()),
                    error: None,
                },
                _ => OffsetFetchPartition {
                    topic: topic.to_string(),
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: unstable.then_some(GroupError::UnstableOffsetCommit),
                },
            }
        };
        Ok(match topics {
            Some(list) => list
                .iter()
                .flat_map(|(t, parts)| parts.iter().map(move |p| (t, *p)))
                .map(|(t, p)| lookup(t, p))
                .collect(),
            None => {
                let mut keys: BTreeSet<OffsetKey> = stored.offsets.keys().cloned().collect();
                if require_stable {
                    for m in stored.pending_txn_offsets.values() {
                        keys.extend(m.keys().cloned());
                    }
                }
                keys.iter().map(|(t, p)| lookup(t, *p)).collect()
            }
        })
    }

    /// TxnOffsetCommit: offsets committed as part of the producer's transaction. They are
    /// recorded (as a transactional batch) now and become visible when the commit marker reaches
    /// the group's partition ([`Coordinator::complete_txn`]).
    pub fn txn_commit_offsets(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: TxnCommitRequest,
    ) -> Output {
        let producer = Some((req.producer_id, req.producer_epoch));
        let as_commit = CommitRequest {
            group_id: req.group_id,
            generation_id: req.generation_id,
            member_id: req.member_id,
            group_instance_id: req.group_instance_id,
            retention_time_ms: -1,
            // TxnOffsetCommit has its own rules for consumer groups (any version will do).
            api_version: i16::MAX,
            offsets: req.offsets,
        };
        self.commit(now_ms, reply, as_commit, producer)
    }

    /// A transaction marker of `producer_id` was written to `partition`: its pending offsets
    /// in that partition's groups become committed (or are dropped on abort).
    pub fn complete_txn(&mut self, partition: i32, producer_id: i64, commit: bool) {
        let n = self.config.num_partitions;
        let ids: Vec<String> = self
            .offsets
            .group_ids()
            .filter(|id| partition_for(id, n) == partition)
            .cloned()
            .collect();
        for id in ids {
            self.offsets.complete_txn(&id, producer_id, commit);
        }
    }

    /// OffsetDelete: removes committed offsets of an empty group, or of topics an active
    /// consumer group does not subscribe to.
    pub fn delete_offsets(
        &mut self,
        reply: ReplyId,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(group_id);
        if let Err(e) = self.check_coordinator(group_id) {
            out.reply(reply, p, Reply::OffsetDelete(Err(e)));
            return out;
        }
        let Some(g) = self.groups.get(group_id) else {
            // A consumer group's offsets can go at any time, except those of topics a member
            // subscribes to (Kafka's ConsumerGroup.validateOffsetDelete).
            let Some(cg) = self.consumer.group(group_id) else {
                out.reply(
                    reply,
                    p,
                    Reply::OffsetDelete(Err(GroupError::GroupIdNotFound)),
                );
                return out;
            };
            let subscribed = cg.subscribed_topic_names();
            return self.delete_offsets_except(reply, group_id, partitions, &subscribed);
        };
        let subscribed: BTreeSet<String> = match g.state {
            GroupState::Dead => {
                out.reply(
                    reply,
                    p,
                    Reply::OffsetDelete(Err(GroupError::GroupIdNotFound)),
                );
                return out;
            }
            GroupState::Empty => BTreeSet::new(),
            _ => match g.subscribed_topics() {
                Some(t) => t,
                None => {
                    out.reply(
                        reply,
                        p,
                        Reply::OffsetDelete(Err(GroupError::NonEmptyGroup)),
                    );
                    return out;
                }
            },
        };
        self.delete_offsets_except(reply, group_id, partitions, &subscribed)
    }

    /// Deletes `partitions`' offsets of `group_id` except those of `subscribed` topics
    /// (GROUP_SUBSCRIBED_TO_TOPIC).
    fn delete_offsets_except(
        &mut self,
        reply: ReplyId,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        subscribed: &BTreeSet<String>,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(group_id);
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                results.push((topic, partition, Some(GroupError::GroupSubscribedToTopic)));
                continue;
            }
            if self.offsets.remove(group_id, &topic, partition).is_some() {
                out.append(p, Self::offset_key(group_id, &topic, partition), None);
            }
            results.push((topic, partition, None));
        }
        out.reply(reply, p, Reply::OffsetDelete(Ok(results)));
        out
    }

    // ---- admin -----------------------------------------------------------------------------

    pub fn describe_group(&self, group_id: &str) -> Result<Option<DescribedGroup>, GroupError> {
        self.check_coordinator(group_id)?;
        let Some(g) = self.groups.get(group_id) else {
            return Ok(None);
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Ok(Some(DescribedGroup {
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            // Kafka reports the protocol and member metadata only for a Stable group.
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }))
    }

    /// ConsumerGroupDescribe of one group. The inner error is GROUP_ID_NOT_FOUND's message, as
    /// Kafka words it, for an id that is unknown or names a classic group.
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<Result<DescribedConsumerGroup, String>, GroupError> {
        self.check_coordinator(group_id)?;
        Ok(match self.consumer.describe(group_id) {
            Some(g) => Ok(g),
            None if self.groups.contains_key(group_id) => {
                Err(format!("Group {group_id} is not a consumer group."))
            }
            None => Err(format!("Group {group_id} not found.")),
        })
    }

    /// Groups of the loaded partitions in one of `states` (all when empty).
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        let n = self.config.num_partitions;
        let mut out: Vec<ListedGroup> = self
            .groups
            .values()
            .filter(|g| self.partitions.get(&partition_for(&g.group_id, n)) == Some(&Load::Loaded))
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// The KIP-848 consumer groups of the loaded partitions with their state names (Empty,
    /// Assigning, Reconciling, Stable), sorted by id, for ListGroups.
    pub fn list_consumer_groups(&self) -> Vec<(String, &'static str)> {
        let n = self.config.num_partitions;
        self.consumer
            .groups()
            .filter(|(id, _)| self.partitions.get(&partition_for(id, n)) == Some(&Load::Loaded))
            .map(|(id, g)| (id.clone(), g.state().name()))
            .collect()
    }

    /// Every group of the loaded partitions, classic or KIP-848, with its members and committed
    /// offsets, sorted by id: what the metrics endpoint (consumer lag) and the status page show.
    /// A group id that has only offsets (a consumer that assigns partitions itself and commits)
    /// is listed too, as Kafka's `kafka-consumer-groups --describe` lists it.
    pub fn group_summaries(&self) -> Vec<GroupSummary> {
        let n = self.config.num_partitions;
        let loaded = |id: &str| self.partitions.get(&partition_for(id, n)) == Some(&Load::Loaded);
        let mut out: BTreeMap<String, GroupSummary> = BTreeMap::new();
        for g in self.groups.values().filter(|g| loaded(&g.group_id)) {
            out.insert(
                g.group_id.clone(),
                GroupSummary {
                    group_id: g.group_id.clone(),
                    protocol: "classic",
                    state: g.state.name(),
                    members: g
                        .members
                        .values()
                        .map(|m| MemberSummary {
                            member_id: m.member_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                        })
                        .collect(),
                    offsets: Vec::new(),
                },
            );
        }
        for (id, g) in self.consumer.groups().filter(|(id, _)| loaded(id)) {
            out.insert(
                id.clone(),
                GroupSummary {
                    group_id: id.clone(),
                    protocol: "consumer",
                    state: g.state().name(),
                    members: g
                        .members
                        .iter()
                        .map(|(id, m)| MemberSummary {
                            member_id: id.clone(),
                            client_id: m.metadata.client_id.clone(),
                            client_host: m.metadata.client_host.clone(),
                        })
                        .collect(),
                    offsets: Vec::new(),
                },
            );
        }
        for id in self.offsets.group_ids().filter(|id| loaded(id)) {
            let summary = out.entry(id.clone()).or_insert_with(|| GroupSummary {
                group_id: id.clone(),
                protocol: "classic",
                state: GroupState::Empty.name(),
                members: Vec::new(),
                offsets: Vec::new(),
            });
            summary.offsets = self
                .offsets
                .group(id)
                .offsets
                .iter()
                .map(|((topic, partition), c)| (topic.clone(), *partition, c.offset))
                .collect();
        }
        out.into_values().collect()
    }

    /// Whether any partition is still loading (ListGroups answers
    /// COORDINATOR_LOAD_IN_PROGRESS then).
    pub fn is_loading(&self) -> bool {
        self.partitions.values().any(|l| *l == Load::Loading)
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets and its metadata
    /// are tombstoned.
    pub fn delete_group(&mut self, now_ms: i64, reply: ReplyId, group_id: &str) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(group_id);
        if let Err(e) = self.check_coordinator(group_id) {
            out.reply(reply, p, Reply::DeleteGroup(Err(e)));
            return out;
        }
        // A consumer group goes with its offsets' tombstones first, then its own (Kafka's
        // order); only an empty one can.
        match self.consumer.delete_group(group_id) {
            Some(Err(_)) => {
                out.reply(reply, p, Reply::DeleteGroup(Err(GroupError::NonEmptyGroup)));
                return out;
            }
            Some(Ok(records)) => {
                let offsets = self.offsets.remove_group(group_id);
                for (topic, partition) in offsets.offsets.keys() {
                    out.append(p, Self::offset_key(group_id, topic, *partition), None);
                }
                for record in &records {
                    Self::append_consumer(&mut out, p, record);
                }
                out.reply(reply, p, Reply::DeleteGroup(Ok(())));
                return out;
            }
            None => {}
        }
        let result = match self.groups.get(group_id) {
            None => Err(GroupError::GroupIdNotFound),
            Some(g) if g.state == GroupState::Dead => Err(GroupError::GroupIdNotFound),
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            Some(_) => {
                self.remove_group_with_tombstones(group_id, now_ms, &mut out);
                Ok(())
            }
        };
        out.reply(reply, p, Reply::DeleteGroup(result));
        out
    }

    fn remove_group_with_tombstones(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let p = self.partition_of(group_id);
        let Some(mut g) = self.groups.remove(group_id) else {
            return;
        };
        g.transition(GroupState::Dead, now_ms);
        // Pending transactional offsets are dropped too, without tombstones, as they were when
        // they lived in the group; replaying the group's tombstone drops them the same way.
        let offsets = self.offsets.remove_group(group_id);
        for (topic, partition) in offsets.offsets.keys() {
            out.append(p, Self::offset_key(group_id, topic, *partition), None);
        }
        out.append(
            p,
            records::encode_group_metadata_key(&GroupMetadataKey {
                group: group_id.to_string(),
            }),
            None,
        );
        for pm in &g.pending_members {
            self.timers.cancel(&TimerKey::PendingMember {
                group: group_id.to_string(),
                member: pm.clone(),
            });
        }
    }

    /// KIP-211 expiration: offsets of an empty group expire `offsets.retention.minutes` after
    /// it became empty; offsets of topics an active consumer group no longer subscribes to
    /// expire that long after their commit; an explicit expire timestamp (v2-v4 commits) wins.
    /// An empty group left without offsets is removed.
    fn expire_offsets(&mut self, now_ms: i64, out: &mut Output) {
        let retention = self.config.offsets_retention_ms;
        let n = self.config.num_partitions;
        let mut emptied = Vec::new();
        for g in self.groups.values() {
            let p = partition_for(&g.group_id, n);
            if self.partitions.get(&p) != Some(&Load::Loaded) {
                continue;
            }
            let (base_is_state, subscribed) = match (g.state, &g.protocol_type) {
                (GroupState::Empty, Some(_)) => (true, BTreeSet::new()),
                (GroupState::Empty, None) => (false, BTreeSet::new()),
                (GroupState::Stable, Some(_)) => match g.subscribed_topics() {
                    Some(s) => (false, s),
                    None => continue,
                },
                _ => continue,
            };
            let state_ts = g.state_timestamp_ms;
            let expired: Vec<OffsetKey> = self
                .offsets
                .group(&g.group_id)
                .offsets
                .iter()
                .filter(|((topic, _), c)| {
                    if subscribed.contains(topic) {
                        return false;
                    }
                    match c.expire_timestamp_ms {
                        Some(t) => now_ms >= t,
                        None => {
                            let base = if base_is_state {
                                state_ts.unwrap_or(c.commit_timestamp_ms)
                            } else {
                                c.commit_timestamp_ms
                            };
                            base.saturating_add(retention) <= now_ms
                        }
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (topic, partition) in expired {
                self.offsets.remove(&g.group_id, &topic, partition);
                out.append(p, Self::offset_key(&g.group_id, &topic, partition), None);
            }
            if g.state == GroupState::Empty
                && !self.offsets.has_committed(&g.group_id)
                && g.pending_members.is_empty()
                && !self.offsets.has_pending_txn(&g.group_id)
            {
                emptied.push(g.group_id.clone());
            }
        }
        // KIP-848 consumer groups: an offset expires `offsets.retention.minutes` after its
        // commit (or at its explicit expiry), unless a member subscribes to its topic; an empty
        // consumer group left without offsets goes too (Kafka's ConsumerGroup expiration
        // condition and `maybeDeleteGroup`).
        let mut emptied_consumer = Vec::new();
        for (group_id, cg) in self.consumer.groups() {
            let p = partition_for(group_id, n);
            if self.partitions.get(&p) != Some(&Load::Loaded) {
                continue;
            }
            let subscribed = cg.subscribed_topic_names();
            let expired: Vec<OffsetKey> = self
                .offsets
                .group(group_id)
                .offsets
                .iter()
                .filter(|((topic, _), c)| {
                    !subscribed.contains(topic)
                        && match c.expire_timestamp_ms {
                            Some(t) => now_ms >= t,
                            None => c.commit_timestamp_ms.saturating_add(retention) <= now_ms,
                        }
                })
                .map(|(k, _)| k.clone())
                .collect();
            let group_id = group_id.clone();
            for (topic, partition) in expired {
                self.offsets.remove(&group_id, &topic, partition);
                out.append(p, Self::offset_key(&group_id, &topic, partition), None);
            }
            if cg.members.is_empty()
                && !self.offsets.has_committed(&group_id)
                && !self.offsets.has_pending_txn(&group_id)
            {
                emptied_consumer.push(group_id);
            }
        }
        for id in emptied_consumer {
            let p = self.partition_of(&id);
            if let Some(Ok(tombstones)) = self.consumer.delete_group(&id) {
                self.offsets.remove_group(&id);
                for record in &tombstones {
                    Self::append_consumer(out, p, record);
                }
            }
        }
        for id in emptied {
            let p = self.partition_of(&id);
            if let Some(mut g) = self.groups.remove(&id) {
                g.transition(GroupState::Dead, now_ms);
                // Nothing is left to drop (that is why the group goes), but the store must not
                // outlive the group.
                self.offsets.remove_group(&id);
                out.append(
                    p,
                    records::encode_group_metadata_key(&GroupMetadataKey { group: id }),
                    None,
                );
            }
        }
    }

    // ---- time ------------------------------------------------------------------------------

    /// Runs everything due at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        while let Some(key) = self.timers.pop_due(now_ms) {
            match key {
                TimerKey::Heartbeat { group, member } => {
                    self.on_heartbeat_deadline(&group, &member, now_ms, &mut out)
                }
                TimerKey::PendingMember { group, member } => {
                    let removed = self
                        .groups
                        .get_mut(&group)
                        .is_some_and(|g| g.pending_members.remove(&member));
                    if removed {
                        self.try_complete_join(&group, now_ms, &mut out);
                    }
                }
                TimerKey::Join { group } => self.on_join_deadline(&group, now_ms, &mut out),
                TimerKey::Sync { group } => self.on_sync_deadline(&group, now_ms, &mut out),
                TimerKey::OffsetExpiration => {
                    self.expire_offsets(now_ms, &mut out);
                    self.timers.schedule(
                        TimerKey::OffsetExpiration,
                        now_ms + self.config.offsets_retention_check_interval_ms,
                    );
                }
            }
        }
        // Consumer group members whose session or rebalance timeout ran out are fenced; the
        // records are applied already and go to their groups' partitions.
        let mut touched = BTreeSet::new();
        for record in self.consumer.expire(now_ms) {
            let p = self.partition_of(record.group());
            touched.insert(record.group().to_string());
            Self::append_consumer(&mut out, p, &record);
        }
        for group_id in touched {
            self.try_downgrade(&group_id, now_ms, &mut out);
        }
        out
    }

    /// Kafka's `validateOnlineUpgrade` and `convertToConsumerGroup`: a classic group using the
    /// consumer protocol becomes a consumer group when a consumer-protocol member joins (if
    /// `group.consumer.migration.policy` allows and it fits `group.consumer.max.size`). Its
    /// members stay, as classic members, at the classic generation with their assignments;
    /// those waiting in a join or sync phase are told to rejoin. Returns whether it converted.
    fn try_upgrade(
        &mut self,
        group_id: &str,
        topics: &impl TopicsView,
        now_ms: i64,
        out: &mut Output,
    ) -> bool {
        let p = self.partition_of(group_id);
        let consumer_config = self.consumer.config();
        let Some(g) = self.groups.get(group_id) else {
            return false;
        };
        if !consumer_config.migration_policy.upgrade_enabled()
            || g.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE)
            || g.members.len() > consumer_config.max_size
        {
            return false;
        }
        let members: Vec<AdoptedMember> = g
            .members
            .values()
            .map(|m| {
                let subscription = g
                    .protocol_name
                    .as_deref()
                    .and_then(|name| m.metadata_for(name))
                    .or_else(|| m.protocols.first().map(|(_, md)| md))
                    .cloned()
                    .unwrap_or_default();
                AdoptedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: m.protocols.clone(),
                    subscription,
                    assignment: m.assignment.clone(),
                }
            })
            .collect();
        let generation = g.generation_id;
        let Some(records) = self
            .consumer
            .adopt_classic(group_id, generation, &members, topics, now_ms)
        else {
            return false;
        };
        // The classic group ends: parked joins and syncs learn of the new rebalance, its
        // timers go, and its tombstone precedes the consumer group's records.
        if let Some(mut g) = self.groups.remove(group_id) {
            for m in g.members.values_mut() {
                if let Some(j) = m.awaiting_join.take() {
                    out.reply(
                        j.reply,
                        p,
                        Reply::Join(JoinResponse::error(
                            GroupError::RebalanceInProgress,
                            m.member_id.clone(),
                        )),
                    );
                }
                if let Some(s) = m.awaiting_sync.take() {
                    out.reply(
                        s,
                        p,
                        Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                    );
                }
                self.timers.cancel(&TimerKey::Heartbeat {
                    group: group_id.to_string(),
                    member: m.member_id.clone(),
                });
            }
            for member in &g.pending_members {
                self.timers.cancel(&TimerKey::PendingMember {
                    group: group_id.to_string(),
                    member: member.clone(),
                });
            }
        }
        for key in [
            TimerKey::Join {
                group: group_id.to_string(),
            },
            TimerKey::Sync {
                group: group_id.to_string(),
            },
        ] {
            self.timers.cancel(&key);
        }
        out.append(
            p,
            records::encode_group_metadata_key(&GroupMetadataKey {
                group: group_id.to_string(),
            }),
            None,
        );
        for record in &records {
            Self::append_consumer(out, p, record);
        }
        true
    }

    /// Kafka's `validateOnlineDowngradeWithFencedMember` and `convertToClassicGroup`: once
    /// every member left of a consumer group uses the classic protocol (and
    /// `group.consumer.migration.policy` allows, and it fits `group.max.size`), it becomes a
    /// classic group at the group epoch and starts a rebalance, so the members rejoin and
    /// their leader assigns.
    fn try_downgrade(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        let p = self.partition_of(group_id);
        let allowed = self.consumer.config().migration_policy.downgrade_enabled();
        let fits = self
            .consumer
            .group(group_id)
            .is_some_and(|g| g.all_classic() && g.members.len() <= self.config.max_size);
        if !allowed || !fits {
            return;
        }
        let Some((records, _epoch, members)) = self.consumer.remove_for_downgrade(group_id) else {
            return;
        };
        // Kafka converts at the group epoch before the leaving member was removed, which is
        // the epoch of every reconciled member; the removal here has bumped it already, so
        // the members' own epoch is the generation they heartbeat with and are told to
        // rejoin at (REBALANCE_IN_PROGRESS rather than ILLEGAL_GENERATION).
        let epoch = members.iter().map(|m| m.member_epoch).max().unwrap_or(0);
        for record in &records {
            Self::append_consumer(out, p, record);
        }
        let mut g = ClassicGroup::new(group_id.to_string(), now_ms);
        g.generation_id = epoch;
        g.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
        // A protocol every member supports, in the first member's order of preference.
        g.protocol_name = members.first().and_then(|first| {
            first
                .protocols
                .iter()
                .map(|(name, _)| name)
                .find(|name| {
                    members
                        .iter()
                        .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
                })
                .cloned()
        });
        // No leader until the rebalance below elects one among the members that rejoin.
        g.leader_id = None;
        for m in members {
            if let Some(instance) = &m.instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.timers.schedule(
                TimerKey::Heartbeat {
                    group: group_id.to_string(),
                    member: m.member_id.clone(),
                },
                now_ms + i64::from(m.session_timeout_ms),
            );
            g.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
                    protocols: m.protocols,
                    // The rebalance below hands out new assignments.
                    assignment: Bytes::new(),
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                    last_heartbeat_ms: now_ms,
                },
            );
        }
        g.transition(GroupState::Stable, now_ms);
        let (key, value) = Self::group_record(&g);
        out.append(p, key, value);
        self.groups.insert(group_id.to_string(), g);
        self.prepare_rebalance(group_id, now_ms, out);
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, heartbeats and leaves of consumer-protocol
    /// members. The records go to the group's partition before the answer. An empty classic
    /// group under the same id (a simple group's offsets, or a group whose members all left)
    /// becomes a consumer group, keeping its offsets; a classic group with members is upgraded
    /// online if `group.consumer.migration.policy` allows (else GROUP_ID_NOT_FOUND); a leave
    /// that leaves only classic members downgrades the group back.
    pub fn consumer_group_heartbeat(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: &HeartbeatRequest,
        topics: &impl TopicsView,
    ) -> Output {
        let mut out = Output::default();
        let p = self.partition_of(&req.group_id);
        if let Err(e) = self.check_coordinator(&req.group_id) {
            out.reply(
                reply,
                p,
                Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Coordinator(e))),
            );
            return out;
        }
        let classic_empty = match self.groups.get(&req.group_id) {
            Some(g) if !g.members.is_empty() || !g.pending_members.is_empty() => {
                // Online upgrade: the classic group becomes a consumer group whose members
                // go on with the classic protocol.
                if req.member_epoch == 0
                    && self.try_upgrade(&req.group_id, topics, now_ms, &mut out)
                {
                    return self.consumer_heartbeat_answer(now_ms, reply, req, topics, false, out);
                }
                let e = HeartbeatError::GroupIdNotFound(req.group_id.clone());
                out.reply(
                    reply,
                    p,
                    Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Group(e))),
                );
                return out;
            }
            Some(_) => true,
            None => false,
        };
        self.consumer_heartbeat_answer(now_ms, reply, req, topics, classic_empty, out)
    }

    /// The heartbeat itself, once the group is a consumer group (or none); `classic_empty`: an
    /// empty classic group holds the id and gives way if the heartbeat creates the group.
    fn consumer_heartbeat_answer(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: &HeartbeatRequest,
        topics: &impl TopicsView,
        classic_empty: bool,
        mut out: Output,
    ) -> Output {
        let p = self.partition_of(&req.group_id);
        let random = (self.random)();
        match self
            .consumer
            .heartbeat(req, topics, now_ms, || uuid_text(random))
        {
            Ok((response, records)) => {
                if classic_empty && self.consumer.group(&req.group_id).is_some() {
                    // The classic group's tombstone comes first, so a load sees the classic
                    // group end before the consumer group begins; offsets are not touched.
                    self.groups.remove(&req.group_id);
                    out.append(
                        p,
                        records::encode_group_metadata_key(&GroupMetadataKey {
                            group: req.group_id.clone(),
                        }),
                        None,
                    );
                }
                for record in &records {
                    Self::append_consumer(&mut out, p, record);
                }
                if req.member_epoch == -1 {
                    // The last member using the consumer protocol left: the classic members
                    // go on in a classic group.
                    self.try_downgrade(&req.group_id, now_ms, &mut out);
                }
                out.reply(reply, p, Reply::ConsumerHeartbeat(Ok(response)));
            }
            Err(e) => out.reply(
                reply,
                p,
                Reply::ConsumerHeartbeat(Err(HeartbeatFailure::Group(e))),
            ),
        }
        out
    }

    /// Queues a consumer group record for `partition`. Such records are built from requests
    /// whose strings arrived with 16-bit lengths, so they always fit their schema; one that did
    /// not could not be written in Kafka's format at all, and is left out.
    fn append_consumer(out: &mut Output, partition: i32, record: &ConsumerGroupRecord) {
        if let Ok((key, value)) = record.encode() {
            out.append(partition, key, value);
        }
    }

    /// The consumer group `group_id`, if one is loaded here.
    pub fn consumer_group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.consumer.group(group_id)
    }

    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    /// The offsets stored under `group_id` (empty when there are none), whatever group holds
    /// the id.
    pub fn group_offsets(&self, group_id: &str) -> &GroupOffsets {
        self.offsets.group(group_id)
    }
}

impl From<OffsetCommitValue> for CommittedOffset {
    /// An offset commit record read back from the log.
    fn from(v: OffsetCommitValue) -> Self {
        CommittedOffset {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp_ms: v.commit_timestamp_ms,
            expire_timestamp_ms: v.expire_timestamp_ms,
        }
    }
}

/// A consumer group's refusal of an offset request, as the group error its reply carries.
fn offset_error(e: OffsetError) -> GroupError {
    match e {
        OffsetError::UnknownMemberId => GroupError::UnknownMemberId,
        OffsetError::StaleMemberEpoch => GroupError::StaleMemberEpoch,
        OffsetError::IllegalGeneration => GroupError::IllegalGeneration,
        OffsetError::UnsupportedVersion(_) => GroupError::UnsupportedVersion,
    }
}

/// Member id, instance id and generation checks shared by SyncGroup and Heartbeat.
fn validate_member(
    g: &ClassicGroup,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
) -> Result<(), GroupError> {
    if g.is_static_member_fenced(member_id, instance_id) {
        return Err(GroupError::FencedInstanceId);
    }
    if !g.members.contains_key(member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    if generation_id != g.generation_id {
        return Err(GroupError::IllegalGeneration);
    }
    Ok(())
}

/// Kafka's `ClassicGroup.validateOffsetCommit`.
fn validate_commit(g: &ClassicGroup, req: &CommitRequest) -> Result<(), GroupError> {
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && g.state == GroupState::Empty {
        // Admin clients and consumers without group management commit to empty groups.
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_member(
            g,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        )?;
    } else if g.state != GroupState::Empty {
        return Err(GroupError::UnknownMemberId);
    }
    if g.state == GroupState::CompletingRebalance {
        // The member has the new generation but not its assignment yet.
        return Err(GroupError::RebalanceInProgress);
    }
    Ok(())
}

/// The JoinGroup answer describing the group's current generation; the leader gets the
/// members' metadata for the chosen protocol.
fn current_generation_response(g: &ClassicGroup, member_id: &str) -> JoinResponse {
    let protocol = g.protocol_name.clone();
    let members = if g.is_leader(member_id) {
        let p = protocol.clone().unwrap_or_default();
        g.members
            .values()
            .map(|m| JoinResponseMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&p).cloned().unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: None,
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: protocol,
        leader: g.leader_id.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members,
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
