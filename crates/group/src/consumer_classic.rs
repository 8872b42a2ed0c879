//! Members that use the classic protocol inside a consumer group (KIP-848's online migration,
//! Kafka's `classicGroup*ToConsumerGroup`): a classic consumer keeps sending JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup, and the consumer group serves them with its own
//! assignment. A JoinGroup reconciles the member from the partitions its subscription says it
//! owns (cooperative members list them; an eager member owns nothing when it rejoins) and answers
//! with the member epoch as the generation; SyncGroup hands out what the member may own now; a
//! Heartbeat answers REBALANCE_IN_PROGRESS when the member has to rejoin to move on. Timers: the
//! member's own session timeout, a join deadline once it was told to rejoin, a sync deadline
//! after it joined; any of them running out fences the member.

use bytes::Bytes;

use super::*;
use crate::consumer_protocol::{decode_subscription, encode_assignment, CONSUMER_PROTOCOL_TYPE};
use crate::consumer_records::{ClassicMemberMetadata, ClassicProtocol};
use crate::coordinator::{JoinRequest, LeaveMember, SyncRequest};
use crate::GroupError;

/// A classic JoinGroup's answer from a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicJoined {
    pub member_id: String,
    /// The member epoch.
    pub generation_id: i32,
    /// The first protocol the member listed.
    pub protocol_name: String,
}

impl Member {
    fn is_classic(&self) -> bool {
        self.metadata.classic_member_metadata.is_some()
    }

    /// The protocol a classic member is answered with: the first it listed.
    fn classic_protocol(&self) -> Option<&ClassicProtocol> {
        self.metadata
            .classic_member_metadata
            .as_ref()
            .and_then(|c| c.supported_protocols.first())
    }
}

impl ConsumerGroup {
    /// Kafka's `supportsClassicProtocols`: a classic member may join if it speaks the consumer
    /// protocol and one of its protocols is supported by every classic member already here.
    fn supports_classic_protocols(&self, protocol_type: &str, names: &[&str]) -> bool {
        if protocol_type != CONSUMER_PROTOCOL_TYPE || names.is_empty() {
            return false;
        }
        let classic: Vec<&ClassicMemberMetadata> = self
            .members
            .values()
            .filter_map(|m| m.metadata.classic_member_metadata.as_ref())
            .collect();
        names.iter().any(|n| {
            classic
                .iter()
                .all(|c| c.supported_protocols.iter().any(|p| p.name == *n))
        })
    }

    /// Whether every member uses the classic protocol (and there is one).
    /// Whether `instance_id` names a static member that uses the consumer protocol: a classic
    /// member joining with that id replaces it (Kafka then downgrades the group if it was the
    /// last such member).
    pub fn consumer_protocol_static_member(&self, instance_id: &str) -> bool {
        self.static_member(instance_id)
            .and_then(|id| self.members.get(id))
            .is_some_and(|m| !m.is_classic())
    }

    pub fn all_classic(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(Member::is_classic)
    }

    /// Kafka's `waitingOnUnreleasedPartition`: some partition of the member's target is still
    /// held by another member.
    fn waiting_on_unreleased(&self, member_id: &str, member: &Member) -> bool {
        self.target.get(member_id).is_some_and(|t| {
            t.iter().any(|(topic, ps)| {
                ps.iter().any(|p| {
                    !member
                        .assignment
                        .assigned
                        .get(topic)
                        .is_some_and(|a| a.contains(p))
                        && self.held_by_other(member_id, topic, *p)
                })
            })
        })
    }

    /// Kafka's `validateConsumerGroupMember`: the member by id, or by instance id when one is
    /// given (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), and it must use the classic protocol.
    fn classic_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(&String, &Member), GroupError> {
        let (id, m) = match instance_id {
            None => self
                .members
                .get_key_value(member_id)
                .ok_or(GroupError::UnknownMemberId)?,
            Some(instance) => {
                let holder = self
                    .static_member(instance)
                    .ok_or(GroupError::UnknownMemberId)?;
                if holder != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                self.members
                    .get_key_value(holder)
                    .ok_or(GroupError::UnknownMemberId)?
            }
        };
        if !m.is_classic() {
            return Err(GroupError::UnknownMemberId);
        }
        Ok((id, m))
    }
}

impl ConsumerGroups {
    /// Whether classic requests for `group_id` go to a consumer group: one with members.
    pub fn serves_classic(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// A classic JoinGroup to a consumer group with members. On success the records must be
    /// written before the answer. The error comes with the member id to answer with.
    pub fn classic_join(
        &mut self,
        req: &JoinRequest,
        topics: &impl TopicsView,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(ClassicJoined, Vec<ConsumerGroupRecord>), (GroupError, String)> {
        let group_id = req.group_id.clone();
        let Some(group) = self.groups.get(&group_id).cloned() else {
            return Err((GroupError::UnknownMemberId, req.member_id.clone()));
        };
        let unknown = req.member_id.is_empty();
        let member_id = if unknown {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let fail = |e: GroupError| Err((e, member_id.clone()));
        let replaced = req
            .group_instance_id
            .as_deref()
            .and_then(|i| group.static_member(i))
            .map(str::to_string);
        if group.members.len() >= self.config.max_size
            && !group.members.contains_key(&member_id)
            && replaced.is_none()
        {
            return fail(GroupError::GroupMaxSizeReached);
        }
        let names: Vec<&str> = req.protocols.iter().map(|(n, _)| n.as_str()).collect();
        if !group.supports_classic_protocols(&req.protocol_type, &names) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        // KIP-394: a dynamic member without an id gets one and joins again with it.
        if unknown && req.version >= 4 && req.group_instance_id.is_none() {
            return fail(GroupError::MemberIdRequired);
        }
        let Some(subscription) = req
            .protocols
            .first()
            .and_then(|(_, m)| decode_subscription(m))
        else {
            return fail(GroupError::InconsistentGroupProtocol);
        };

        let mut records = Vec::new();
        let mut inherited_target = None;
        let old = match (&req.group_instance_id, replaced) {
            (None, _) | (Some(_), None) => match group.members.get(&member_id) {
                Some(m) => m.clone(),
                None if req.group_instance_id.is_some() && !unknown => {
                    return fail(GroupError::UnknownMemberId)
                }
                None => Member::default(),
            },
            (Some(_), Some(holder)) if holder == member_id => group.members[&holder].clone(),
            (Some(_), Some(_)) if !unknown => return fail(GroupError::FencedInstanceId),
            (Some(_), Some(holder)) => {
                // A static member's new incarnation takes over the old one's assignment.
                let mut m = group.members[&holder].clone();
                m.assignment.member_epoch = 0;
                m.assignment.previous_member_epoch = 0;
                let target = group.target.get(&holder).cloned().unwrap_or_default();
                records.extend(takeover_records(
                    &group_id,
                    &holder,
                    &member_id,
                    &target,
                    &m.assignment,
                ));
                self.cancel_timers(&group_id, &holder);
                inherited_target = Some((holder, target));
                m
            }
        };

        let mut meta = old.metadata.clone();
        meta.instance_id = req.group_instance_id.clone();
        if subscription.rack_id.is_some() {
            meta.rack_id = subscription.rack_id.clone();
        }
        meta.rebalance_timeout_ms = req.rebalance_timeout_ms;
        let mut topics_sorted = subscription.topics.clone();
        topics_sorted.sort();
        topics_sorted.dedup();
        meta.subscribed_topic_names = topics_sorted;
        meta.client_id = req.client_id.clone();
        meta.client_host = req.client_host.clone();
        meta.classic_member_metadata = Some(ClassicMemberMetadata {
            session_timeout_ms: req.session_timeout_ms,
            supported_protocols: req
                .protocols
                .iter()
                .map(|(name, m)| ClassicProtocol {
                    name: name.clone(),
                    metadata: m.to_vec(),
                })
                .collect(),
        });
        let mut owned = TopicPartitions::new();
        for (topic, ps) in &subscription.owned {
            if let Some(id) = topics.topic_id(topic) {
                owned.entry(id).or_default().extend(ps.iter().copied());
            }
        }
        let next = self
            .update_member(
                &group_id,
                &group,
                &member_id,
                &old,
                &meta,
                &inherited_target,
                Some(&owned),
                &mut records,
                topics,
                now_ms,
            )
            .map_err(|_| (GroupError::UnknownMemberId, member_id.clone()))?;

        // Timers: a classic member's own session; it must sync within its rebalance timeout.
        self.cancel_timers(&group_id, &member_id);
        self.arm(
            Deadline::Session {
                group: group_id.clone(),
                member: member_id.clone(),
            },
            now_ms + i64::from(req.session_timeout_ms),
        );
        self.arm(
            Deadline::ClassicSync {
                group: group_id.clone(),
                member: member_id.clone(),
            },
            now_ms + i64::from(req.rebalance_timeout_ms.max(0)),
        );
        Ok((
            ClassicJoined {
                member_id,
                generation_id: next.member_epoch,
                protocol_name: names[0].to_string(),
            },
            records,
        ))
    }

    /// A classic SyncGroup to a consumer group: the member's current assignment in the consumer
    /// protocol's format, at the version of its subscription. Writes nothing.
    pub fn classic_sync(
        &mut self,
        req: &SyncRequest,
        topics: &impl TopicsView,
        now_ms: i64,
    ) -> Result<(String, Bytes), GroupError> {
        let group = self
            .groups
            .get(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let (member_id, member) =
            group.classic_member(&req.member_id, req.group_instance_id.as_deref())?;
        if member.assignment.member_epoch != req.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let protocol = member
            .classic_protocol()
            .ok_or(GroupError::InconsistentGroupProtocol)?;
        if req
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || req
                .protocol_name
                .as_deref()
                .is_some_and(|n| n != protocol.name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let (member_id, member) = (member_id.clone(), member.clone());
        let protocol = protocol.clone();
        if group.epoch > member.assignment.member_epoch
            && member.assignment.state != MemberState::UnrevokedPartitions
        {
            self.arm_join_deadline(&req.group_id, &member_id, &member, now_ms);
            return Err(GroupError::RebalanceInProgress);
        }
        let group_id = req.group_id.clone();
        self.deadlines.remove(&Deadline::ClassicSync {
            group: group_id.clone(),
            member: member_id.clone(),
        });
        self.arm(
            Deadline::Session {
                group: group_id.clone(),
                member: member_id,
            },
            now_ms + self.session_timeout_ms(&group_id, &member),
        );
        let version = protocol
            .metadata
            .get(..2)
            .map_or(0, |v| i16::from_be_bytes([v[0], v[1]]));
        let mut partitions: Vec<(String, Vec<i32>)> = member
            .assignment
            .assigned
            .iter()
            .filter_map(|(id, ps)| Some((topics.topic_name(id)?, ps.iter().copied().collect())))
            .collect();
        partitions.sort();
        Ok((
            protocol.name,
            Bytes::from(encode_assignment(version, &partitions)),
        ))
    }

    /// A classic Heartbeat to a consumer group: REBALANCE_IN_PROGRESS when the member has to
    /// rejoin (the group moved to a new epoch, it has partitions to give up, or the partitions
    /// it waits for are free now).
    pub fn classic_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let (id, member) = group.classic_member(member_id, instance_id)?;
        if member.assignment.member_epoch != generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let rejoin = member.assignment.member_epoch < group.epoch
            || member.assignment.state == MemberState::UnrevokedPartitions
            || (member.assignment.state == MemberState::UnreleasedPartitions
                && !group.waiting_on_unreleased(id, member));
        let (id, member) = (id.clone(), member.clone());
        self.arm(
            Deadline::Session {
                group: group_id.to_string(),
                member: id.clone(),
            },
            now_ms + self.session_timeout_ms(group_id, &member),
        );
        if rejoin {
            self.arm_join_deadline(group_id, &id, &member, now_ms);
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// A classic LeaveGroup to a consumer group: each member's answer, and the records of the
    /// members that left (already applied).
    pub fn classic_leave(
        &mut self,
        group_id: &str,
        members: Vec<LeaveMember>,
    ) -> (
        Vec<(LeaveMember, Option<GroupError>)>,
        Vec<ConsumerGroupRecord>,
    ) {
        let mut results = Vec::with_capacity(members.len());
        let mut records = Vec::new();
        for lm in members {
            let found = self
                .groups
                .get(group_id)
                .map_or(Err(GroupError::UnknownMemberId), |g| {
                    match &lm.group_instance_id {
                        None => g
                            .classic_member(&lm.member_id, None)
                            .map(|(id, _)| id.clone()),
                        Some(instance) => {
                            // An admin may remove a static member by instance id alone.
                            let holder = g
                                .static_member(instance)
                                .ok_or(GroupError::UnknownMemberId)?
                                .to_string();
                            let asked = if lm.member_id.is_empty() {
                                holder.clone()
                            } else {
                                lm.member_id.clone()
                            };
                            g.classic_member(&asked, Some(instance))
                                .map(|(id, _)| id.clone())
                        }
                    }
                });
            match found {
                Ok(id) => {
                    let fenced = self.fence_records(group_id, &id);
                    for r in &fenced {
                        self.replay(r);
                    }
                    self.cancel_timers(group_id, &id);
                    records.extend(fenced);
                    results.push((lm, None));
                }
                Err(e) => results.push((lm, Some(e))),
            }
        }
        (results, records)
    }

    fn arm(&mut self, deadline: Deadline, at_ms: i64) {
        self.deadlines.insert(deadline, at_ms);
    }

    /// Kafka's `scheduleConsumerGroupJoinTimeoutIfAbsent`.
    fn arm_join_deadline(&mut self, group_id: &str, member_id: &str, member: &Member, now_ms: i64) {
        self.deadlines
            .entry(Deadline::ClassicJoin {
                group: group_id.to_string(),
                member: member_id.to_string(),
            })
            .or_insert(now_ms + i64::from(member.metadata.rebalance_timeout_ms.max(0)));
    }
}

/// A member of a classic group being converted into a consumer group.
#[derive(Debug, Clone)]
pub struct AdoptedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// (name, metadata) in the member's order.
    pub protocols: Vec<(String, Bytes)>,
    /// Its subscription for the group's protocol.
    pub subscription: Bytes,
    /// Its assignment of the last generation (empty if it has none).
    pub assignment: Bytes,
}

/// A classic member of a consumer group being converted into a classic group.
#[derive(Debug, Clone)]
pub struct DowngradedMember {
    pub member_id: String,
    /// Its member epoch: the generation it heartbeats with.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
}

impl ConsumerGroups {
    /// Kafka's `ConsumerGroup.fromClassicGroup` and `createConsumerGroupRecords`: the members
    /// of a classic group become classic members of a new consumer group at the classic
    /// generation, each keeping its last assignment as its target, all Stable. Returns the
    /// records (already applied), or `None` if a member's subscription or assignment cannot be
    /// read (the group then stays classic).
    pub fn adopt_classic(
        &mut self,
        group_id: &str,
        generation: i32,
        members: &[AdoptedMember],
        topics: &impl TopicsView,
        now_ms: i64,
    ) -> Option<Vec<ConsumerGroupRecord>> {
        let mut adopted = Vec::with_capacity(members.len());
        for m in members {
            let sub = decode_subscription(&m.subscription)?;
            let mut assigned = TopicPartitions::new();
            for (topic, ps) in crate::consumer_protocol::decode_assignment(&m.assignment)? {
                if let Some(id) = topics.topic_id(&topic) {
                    assigned.entry(id).or_default().extend(ps);
                }
            }
            let mut names = sub.topics.clone();
            names.sort();
            names.dedup();
            let meta = MemberMetadataValue {
                instance_id: m.instance_id.clone(),
                rack_id: sub.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: names,
                subscribed_topic_regex: None,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: None,
                classic_member_metadata: Some(ClassicMemberMetadata {
                    session_timeout_ms: m.session_timeout_ms,
                    supported_protocols: m
                        .protocols
                        .iter()
                        .map(|(name, md)| ClassicProtocol {
                            name: name.clone(),
                            metadata: md.to_vec(),
                        })
                        .collect(),
                }),
            };
            adopted.push((m.member_id.clone(), meta, assigned));
        }
        let g = || group_id.to_string();
        let mut records: Vec<ConsumerGroupRecord> = adopted
            .iter()
            .map(|(id, meta, _)| ConsumerGroupRecord::MemberMetadata {
                group: g(),
                member: id.clone(),
                value: Some(meta.clone()),
            })
            .collect();
        // No metadata hash: the joining member's heartbeat computes one, which bumps the
        // epoch and starts the rebalance that brings it in.
        records.push(ConsumerGroupRecord::GroupMetadata {
            group: g(),
            value: Some(GroupMetadataValue {
                epoch: generation,
                metadata_hash: 0,
            }),
        });
        for (id, _, assigned) in &adopted {
            records.push(ConsumerGroupRecord::TargetAssignmentMember {
                group: g(),
                member: id.clone(),
                value: Some(assigned.clone()),
            });
        }
        records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group: g(),
            value: Some(generation),
        });
        for (id, _, assigned) in &adopted {
            let assignment = MemberAssignment {
                member_epoch: generation,
                previous_member_epoch: generation,
                state: MemberState::Stable,
                assigned: assigned.clone(),
                pending_revocation: TopicPartitions::new(),
            };
            records.push(current_assignment_record(group_id, id, &assignment));
        }
        for r in &records {
            self.replay(r);
        }
        for m in members {
            self.arm(
                Deadline::Session {
                    group: g(),
                    member: m.member_id.clone(),
                },
                now_ms + i64::from(m.session_timeout_ms),
            );
        }
        Some(records)
    }

    /// Kafka's `createGroupTombstoneRecords` for a consumer group whose members all use the
    /// classic protocol, being converted back into a classic group: the tombstones (already
    /// applied, timers cancelled), the group epoch, and the members.
    pub fn remove_for_downgrade(
        &mut self,
        group_id: &str,
    ) -> Option<(Vec<ConsumerGroupRecord>, i32, Vec<DowngradedMember>)> {
        let group = self.groups.get(group_id)?;
        if !group.all_classic() {
            return None;
        }
        let members: Vec<DowngradedMember> = group
            .members
            .iter()
            .map(|(id, m)| {
                let classic = m
                    .metadata
                    .classic_member_metadata
                    .clone()
                    .unwrap_or_default();
                DowngradedMember {
                    member_id: id.clone(),
                    member_epoch: m.assignment.member_epoch,
                    instance_id: m.metadata.instance_id.clone(),
                    client_id: m.metadata.client_id.clone(),
                    client_host: m.metadata.client_host.clone(),
                    rebalance_timeout_ms: m.metadata.rebalance_timeout_ms,
                    session_timeout_ms: classic.session_timeout_ms,
                    protocols: classic
                        .supported_protocols
                        .into_iter()
                        .map(|p| (p.name, Bytes::from(p.metadata)))
                        .collect(),
                }
            })
            .collect();
        let epoch = group.epoch;
        let g = || group_id.to_string();
        let ids: Vec<String> = group.members.keys().cloned().collect();
        let mut records: Vec<ConsumerGroupRecord> = ids
            .iter()
            .map(|id| ConsumerGroupRecord::CurrentMemberAssignment {
                group: g(),
                member: id.clone(),
                value: None,
            })
            .collect();
        records.extend(
            ids.iter()
                .map(|id| ConsumerGroupRecord::TargetAssignmentMember {
                    group: g(),
                    member: id.clone(),
                    value: None,
                }),
        );
        records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group: g(),
            value: None,
        });
        records.extend(ids.iter().map(|id| ConsumerGroupRecord::MemberMetadata {
            group: g(),
            member: id.clone(),
            value: None,
        }));
        records.extend(group.last_tombstones(group_id));
        for r in &records {
            self.replay(r);
        }
        for id in &ids {
            self.cancel_timers(group_id, id);
        }
        Some((records, epoch, members))
    }
}
