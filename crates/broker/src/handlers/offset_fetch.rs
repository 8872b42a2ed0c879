//! OffsetFetch (key 9): committed offsets of one group (v1-v7) or several (v8+, KIP-709), for
//! the listed partitions or, with null topics (v2+), all of them.

use rafka_group::{GroupError, OffsetFetchPartition};
use rafka_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use rafka_protocol::kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::groups::{sb, text};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;

type Topics = Option<Vec<(String, Vec<i32>)>>;

/// A v9+ fetch's member id and epoch: a consumer group's member must be current.
type Member = Option<(Option<String>, i32)>;

async fn fetch(
    groups: &GroupCoordinator,
    group_id: String,
    topics: Topics,
    require_stable: bool,
    member: Member,
) -> Result<Vec<OffsetFetchPartition>, GroupError> {
    groups
        .query(move |c, _now| {
            if let Some((member_id, epoch)) = &member {
                c.check_offset_fetch_member(&group_id, member_id.as_deref(), *epoch)?;
            }
            c.fetch_offsets(&group_id, topics.as_deref(), require_stable)
        })
        .await
        .and_then(|r| r)
}

/// Groups partitions by topic, keeping first-seen topic order.
fn by_topic(parts: Vec<OffsetFetchPartition>) -> Vec<(String, Vec<OffsetFetchPartition>)> {
    let mut out: Vec<(String, Vec<OffsetFetchPartition>)> = Vec::new();
    for p in parts {
        match out.iter_mut().find(|(t, _)| *t == p.topic) {
            Some((_, v)) => v.push(p),
            None => out.push((p.topic.clone(), vec![p])),
        }
    }
    out
}

pub async fn handle(
    groups: &GroupCoordinator,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for g in request.groups {
            let topics: Topics = g.topics.map(|ts| {
                ts.iter()
                    .map(|t| (text(&t.name.0), t.partition_indexes.clone()))
                    .collect()
            });
            let mut gr = OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            let member = (version >= 9).then(|| (g.member_id.as_ref().map(text), g.member_epoch));
            match fetch(
                groups,
                text(&g.group_id.0),
                topics,
                request.require_stable,
                member,
            )
            .await
            {
                Ok(parts) => {
                    gr.topics = by_topic(parts)
                        .into_iter()
                        .map(|(t, ps)| {
                            let mut tr = OffsetFetchResponseTopics::default();
                            tr.name = TopicName(sb(t));
                            tr.partitions = ps
                                .into_iter()
                                .map(|p| {
                                    let mut pr = OffsetFetchResponsePartitions::default();
                                    pr.partition_index = p.partition;
                                    pr.committed_offset = p.offset;
                                    pr.committed_leader_epoch = p.leader_epoch;
                                    pr.metadata = p.metadata.map(sb);
                                    pr.error_code = errors::group_code(p.error);
                                    pr
                                })
                                .collect();
                            tr
                        })
                        .collect();
                }
                Err(e) => gr.error_code = errors::group(e).code(),
            }
            response.groups.push(gr);
        }
        return response;
    }
    let group_id: GroupId = request.group_id;
    let topics: Topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (text(&t.name.0), t.partition_indexes.clone()))
            .collect()
    });
    let requested = topics.clone();
    let require_stable = version >= 7 && request.require_stable;
    match fetch(groups, text(&group_id.0), topics, require_stable, None).await {
        Ok(parts) => response.topics = v1_topics(parts, version),
        Err(e) => {
            let code = errors::group(e).code();
            if version >= 2 {
                response.error_code = code;
            } else {
                // v1 has no top-level error: every requested partition carries it.
                let parts = requested
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(t, ps)| {
                        ps.into_iter().map(move |p| OffsetFetchPartition {
                            topic: t.clone(),
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: Some(String::new()),
                            error: Some(e),
                        })
                    })
                    .collect();
                response.topics = v1_topics(parts, version);
            }
        }
    }
    response
}

fn v1_topics(parts: Vec<OffsetFetchPartition>, version: i16) -> Vec<OffsetFetchResponseTopic> {
    by_topic(parts)
        .into_iter()
        .map(|(t, ps)| {
            let mut tr = OffsetFetchResponseTopic::default();
            tr.name = TopicName(sb(t));
            tr.partitions = ps
                .into_iter()
                .map(|p| {
                    let mut pr = OffsetFetchResponsePartition::default();
                    pr.partition_index = p.partition;
                    pr.committed_offset = p.offset;
                    if version >= 5 {
                        pr.committed_leader_epoch = p.leader_epoch;
                    }
                    pr.metadata = p.metadata.map(sb);
                    pr.error_code = errors::group_code(p.error);
                    pr
                })
                .collect();
            tr
        })
        .collect()
}
