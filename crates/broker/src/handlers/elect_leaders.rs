//! ElectLeaders (key 43, v0-2): PREFERRED and UNCLEAN leader elections, as Kafka's controller
//! runs them. Each named partition (every partition when the request names none) is checked
//! against the current image: an election that is not needed (the preferred replica leads; an
//! UNCLEAN election for a partition that has a leader) answers ELECTION_NOT_NEEDED, one that
//! cannot happen answers PREFERRED_LEADER_NOT_AVAILABLE or ELIGIBLE_LEADERS_NOT_AVAILABLE; the
//! rest go to the controller as one `ElectLeaders` command, which decides again on the image it
//! is applied to, and each result is read back from the committed image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::command::{ControllerCommand, Election};
use rafka_metadata::records::NO_LEADER;
use rafka_metadata::{MetadataImage, PartitionImage};
use rafka_protocol::kafka_protocol::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use rafka_protocol::kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::state::Shared;

/// Kafka's wire values of `ElectionType`.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// What one partition's election needs, judged on an image.
enum Verdict {
    Done(Result<(), (ResponseError, String)>),
    Needed,
}

fn judge(image: &MetadataImage, p: &PartitionImage, election: Election) -> Verdict {
    let active = |b: i32| image.is_active_broker(b);
    match election {
        Election::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return Verdict::Done(Err((
                    ResponseError::PreferredLeaderNotAvailable,
                    "The partition has no replicas.".into(),
                )));
            };
            if p.leader == preferred {
                Verdict::Done(Err((
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.".into(),
                )))
            } else if p.isr.contains(&preferred) && active(preferred) {
                Verdict::Needed
            } else {
                Verdict::Done(Err((
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("Failed to elect leader for topic partition. Preferred replica {preferred} is not in the ISR or not live."),
                )))
            }
        }
        _ => {
            if p.leader != NO_LEADER {
                Verdict::Done(Err((
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.".into(),
                )))
            } else if p.replicas.iter().any(|b| active(*b)) {
                Verdict::Needed
            } else {
                Verdict::Done(Err((
                    ResponseError::EligibleLeadersNotAvailable,
                    "Failed to elect leader for topic partition: no replica is live.".into(),
                )))
            }
        }
    }
}

/// After the command: did the election take place?
fn outcome(p: &PartitionImage, election: Election) -> Result<(), (ResponseError, String)> {
    let done = match election {
        Election::Preferred => p.replicas.first() == Some(&p.leader),
        _ => p.leader != NO_LEADER,
    };
    if done {
        Ok(())
    } else if election == Election::Preferred {
        Err((
            ResponseError::PreferredLeaderNotAvailable,
            "Failed to elect the preferred replica: it left the ISR or went down meanwhile.".into(),
        ))
    } else {
        Err((
            ResponseError::EligibleLeadersNotAvailable,
            "Failed to elect leader for topic partition: no replica is live.".into(),
        ))
    }
}

pub async fn handle(
    shared: &Arc<Shared>,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    let election = match (version, request.election_type) {
        (0, _) | (_, PREFERRED) => Election::Preferred,
        (_, UNCLEAN) => Election::Unclean,
        (_, other) => {
            response.error_code = ResponseError::InvalidRequest.code();
            tracing::debug!(
                election_type = other,
                "ElectLeaders with an unknown election type"
            );
            return response;
        }
    };
    let image = shared.image();
    // (topic name, partition) -> result; BTreeMap for a stable answer order.
    let mut wanted: Vec<(String, i32)> = match &request.topic_partitions {
        Some(tps) => tps
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect(),
        None => image
            .partitions()
            .map(|(t, i, _)| (t.name.clone(), i))
            .collect(),
    };
    wanted.sort();
    wanted.dedup();
    let mut results: BTreeMap<(String, i32), Result<(), (ResponseError, String)>> = BTreeMap::new();
    let mut to_elect: Vec<(Uuid, i32)> = Vec::new();
    for (name, index) in &wanted {
        let found = image
            .topic_by_name(name)
            .and_then(|t| t.partition(*index).map(|p| (t.topic_id, p)));
        let Some((topic_id, p)) = found else {
            results.insert(
                (name.clone(), *index),
                Err((
                    ResponseError::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.".into(),
                )),
            );
            continue;
        };
        match judge(&image, p, election) {
            Verdict::Done(r) => {
                results.insert((name.clone(), *index), r);
            }
            Verdict::Needed => to_elect.push((topic_id, *index)),
        }
    }
    if !to_elect.is_empty() {
        let timeout = Duration::from_millis(request.timeout_ms.clamp(1, 300_000) as u64);
        let cmd = ControllerCommand::ElectLeaders {
            election,
            partitions: to_elect.clone(),
        };
        let written = shared.quorum.write_within(cmd, timeout).await;
        let after = shared.image();
        for (topic_id, index) in to_elect {
            let Some(t) = image.topic_by_id(&topic_id) else {
                continue;
            };
            let r = match &written {
                Err(e) => Err((
                    ResponseError::RequestTimedOut,
                    format!("The election was not committed: {e}"),
                )),
                Ok(_) => match after
                    .topic_by_id(&topic_id)
                    .and_then(|t| t.partition(index))
                {
                    Some(p) => outcome(p, election),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        "The topic was deleted meanwhile.".into(),
                    )),
                },
            };
            results.insert((t.name.clone(), index), r);
        }
    }
    for ((topic, partition), r) in results {
        let mut pr = PartitionResult::default();
        pr.partition_id = partition;
        match r {
            Ok(()) => pr.error_code = 0,
            Err((e, message)) => {
                pr.error_code = e.code();
                pr.error_message = Some(StrBytes::from_string(message));
            }
        }
        match response
            .replica_election_results
            .iter_mut()
            .find(|x| x.topic.0.as_str() == topic)
        {
            Some(x) => x.partition_result.push(pr),
            None => {
                let mut x = ReplicaElectionResult::default();
                x.topic = TopicName(StrBytes::from_string(topic));
                x.partition_result.push(pr);
                response.replica_election_results.push(x);
            }
        }
    }
    response
}
