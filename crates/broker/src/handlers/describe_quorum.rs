//! DescribeQuorum (key 55): the metadata quorum (`__cluster_metadata-0`) as its leader sees it:
//! leader id and epoch, high watermark, and each voter's and observer's log end offset and last
//! fetch and caught-up times (`kafka-metadata-quorum describe --status` / `--replication`).
//!
//! Only the active controller knows this. A controller answers on its controller listener (a
//! voter that does not lead says NOT_LEADER_OR_FOLLOWER); a broker forwards the request to the
//! active controller, as Kafka does, and retries through the next one it learns of while the
//! request's time lasts.

use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::{MetadataQuorum, QuorumDescription, ReplicaDescription, RpcError};
use rafka_protocol::kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use crate::cluster::controller_listener::split_host_port;
use crate::state::Shared;

/// The metadata log's topic, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Version spoken when forwarding to a rafka controller.
const FORWARD_VERSION: i16 = 2;
/// How long a broker keeps looking for the active controller.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

fn replica(r: &ReplicaDescription) -> ReplicaState {
    let mut s = ReplicaState::default();
    s.replica_id = BrokerId(i32::try_from(r.node_id).unwrap_or(-1));
    s.log_end_offset = r.log_end_offset;
    s.last_fetch_timestamp = r.last_fetch_timestamp_ms;
    s.last_caught_up_timestamp = r.last_caught_up_timestamp_ms;
    s
}

/// Builds the answer for `request` from the leader's view (or its refusal).
pub fn respond(
    request: &DescribeQuorumRequest,
    described: Result<QuorumDescription, RpcError>,
    controller_listener: &str,
) -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    for t in &request.topics {
        let mut topic = TopicData::default();
        topic.topic_name = t.topic_name.clone();
        for p in &t.partitions {
            let mut part = PartitionData::default();
            part.partition_index = p.partition_index;
            part.leader_id = BrokerId(-1);
            part.leader_epoch = -1;
            part.high_watermark = -1;
            if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                part.error_code = ResponseError::UnknownTopicOrPartition.code();
                topic.partitions.push(part);
                continue;
            }
            match &described {
                Ok(d) => {
                    part.leader_id = BrokerId(i32::try_from(d.leader_id).unwrap_or(-1));
                    part.leader_epoch = i32::try_from(d.leader_epoch).unwrap_or(i32::MAX);
                    part.high_watermark = d.high_watermark;
                    part.current_voters = d.voters.iter().map(replica).collect();
                    part.observers = d.observers.iter().map(replica).collect();
                }
                Err(e) => {
                    part.error_code = e.code;
                    part.error_message = Some(StrBytes::from_string(e.message.clone()));
                }
            }
            topic.partitions.push(part);
        }
        response.topics.push(topic);
    }
    if let Ok(d) = &described {
        response.nodes = d
            .voter_endpoints
            .iter()
            .filter_map(|(id, addr)| {
                let (host, port) = split_host_port(addr)?;
                let mut l = Listener::default();
                l.name = StrBytes::from_string(controller_listener.to_string());
                l.host = StrBytes::from_string(host);
                l.port = port;
                let mut n = Node::default();
                n.node_id = BrokerId(i32::try_from(*id).ok()?);
                n.listeners = vec![l];
                Some(n)
            })
            .collect();
    }
    response
}

fn controller_listener_name(shared: &Shared) -> String {
    shared
        .config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string())
}

/// A broker's DescribeQuorum: answered here when this node is the active controller, else
/// forwarded to it.
pub async fn handle(
    shared: &Arc<Shared>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let quorum: &MetadataQuorum = &shared.quorum;
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        if quorum.is_active_controller() {
            return respond(
                &request,
                quorum.describe(),
                &controller_listener_name(shared),
            );
        }
        let forwarded = shared
            .controller_client
            .send(quorum, &request, FORWARD_VERSION, FORWARD_TIMEOUT)
            .await;
        let retry = match forwarded {
            Ok(resp) => {
                let stale = resp
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.error_code == ResponseError::NotLeaderOrFollower.code());
                if !stale {
                    return resp;
                }
                // The controller we asked lost its leadership: ask the next one.
                ResponseError::NotController
            }
            Err(_) => ResponseError::NotController,
        };
        if tokio::time::Instant::now() >= deadline {
            let e = RpcError::new(retry.code(), "no active controller answered in time");
            return respond(&request, Err(e), &controller_listener_name(shared));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
