//! Request routing: decode, check the version table (in the protocol crate, before any handler
//! runs), call the one module that implements the API, encode the answer. Nothing else lives here.
//!
//! A handler is handed the parts of the node it uses when they are one or two (the group or
//! transaction coordinator's handle, the image and the hosted partitions), so its signature says
//! what it touches; handlers that use many parts take the whole [`Shared`].

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_partition_reassignments;
pub(crate) mod api_versions;
mod config_admin;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
pub(crate) mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod groups;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
pub(crate) mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
mod topic_admin;
mod txn_offset_commit;
mod write_txn_markers;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rafka_protocol::codec::{self, DecodeError};
use rafka_protocol::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::connection::ConnectionContext;
use crate::state::Shared;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send these chunks back to back (a whole framed response; record bytes of a fetch are
    /// chunks of their own so they are never copied into the response buffer).
    Respond(Vec<Bytes>),
    /// acks=0 produce: nothing goes back.
    NoResponse,
    /// Close the connection, logging the reason.
    Close(String),
}

/// The client listeners' requests: every Kafka API the broker answers.
pub struct ClientDispatch {
    pub shared: Arc<Shared>,
}

impl crate::connection::Dispatch for ClientDispatch {
    fn dispatch(
        &self,
        ctx: &ConnectionContext,
        frame: Bytes,
    ) -> impl std::future::Future<Output = Outcome> + Send {
        dispatch(&self.shared, ctx, frame)
    }

    fn limits(&self) -> crate::connection::ConnectionLimits {
        // The connection limits are dynamic broker configs in Kafka, so they are read per
        // accept; the rest are static.
        let shared = &self.shared;
        let effective = shared.effective_config();
        crate::connection::ConnectionLimits {
            queued_max_requests: shared.config.queued_max_requests,
            socket_request_max_bytes: shared.config.socket_request_max_bytes,
            connections_max_idle_ms: shared.config.connections_max_idle_ms,
            max_connections: effective.max_connections,
            max_connections_per_ip: effective.max_connections_per_ip,
        }
    }
}

/// Runs one request and counts it (Kafka's RequestMetrics: requests by API and version, the
/// time until the answer is ready).
pub async fn dispatch(shared: &Arc<Shared>, ctx: &ConnectionContext, frame: Bytes) -> Outcome {
    let started = std::time::Instant::now();
    let key = codec::peek_header(&frame)
        .ok()
        .map(|h| (h.api_key, h.api_version));
    let outcome = route(shared, ctx, frame).await;
    if let Some((api_key, version)) = key {
        shared.metrics.request(api_key, version, started.elapsed());
    }
    outcome
}

async fn route(shared: &Arc<Shared>, ctx: &ConnectionContext, frame: Bytes) -> Outcome {
    let peek = match codec::peek_header(&frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("unreadable request header: {e}")),
    };
    // Produce reclaims the frame after decoding to stamp offsets in place, so it keeps a handle.
    let produce_frame = (peek.api_key == ApiKey::Produce as i16).then(|| frame.clone());
    let request = match codec::decode_request(frame) {
        Ok(r) => r,
        Err(DecodeError::UnknownApiKey(key)) => {
            return Outcome::Close(format!("unknown API key {key}"))
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges so the client can
            // pick a version it shares with us.
            return Outcome::Respond(vec![codec::api_versions_fallback_response(correlation_id)]);
        }
        Err(DecodeError::UnsupportedVersion {
            api_key, version, ..
        }) => {
            // A client only sends versions from our ApiVersions ranges; anything else cannot be
            // answered in a schema it understands, so Kafka closes the connection here too.
            return Outcome::Close(format!(
                "unsupported version {version} of {api_key:?} (see ApiVersions for the supported ranges)"
            ));
        }
        Err(e) => return Outcome::Close(format!("malformed request: {e}")),
    };
    let codec::DecodedRequest {
        api_key,
        version,
        header,
        body,
        ..
    } = request;
    let correlation_id = header.correlation_id;
    // JoinGroup and ConsumerGroupHeartbeat record the client id of each member (DescribeGroups
    // reports it).
    let client_id = if matches!(api_key, ApiKey::JoinGroup | ApiKey::ConsumerGroupHeartbeat) {
        header
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    // The header's client id is a slice of the frame; dropping it now lets produce reclaim the
    // frame as the sole owner and stamp offsets in place instead of copying.
    drop(header);
    let response: ResponseKind = match body {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(api_versions::handle(&r, &shared.image()))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(shared, ctx, r, version).await)
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(shared, r).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(shared, r, version).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            alter_partition_reassignments::handle(shared, r, version).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            list_partition_reassignments::handle(&shared.image(), &r),
        ),
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(&shared.image(), &ctx.listener_name, &r),
        ),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(shared, ctx, &r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(shared, r, version).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(shared, r, version).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(shared, r).await)
        }
        RequestKind::Produce(r) => {
            match produce::handle(shared, &ctx.listener_name, r, version, produce_frame).await {
                produce::ProduceOutcome::Respond(resp) => ResponseKind::Produce(resp),
                produce::ProduceOutcome::NoResponse => return Outcome::NoResponse,
                produce::ProduceOutcome::Close(reason) => return Outcome::Close(reason),
            }
        }
        RequestKind::Fetch(r) => {
            let response = fetch::handle(shared, &ctx.listener_name, r, version).await;
            return match rafka_protocol::fetch_encode::encode_fetch_response(
                correlation_id,
                version,
                &response,
            ) {
                Ok(parts) => Outcome::Respond(parts),
                Err(e) => Outcome::Close(format!("cannot encode Fetch v{version} response: {e}")),
            };
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(
            &shared.image(),
            &shared.partitions,
            r,
            version,
        )),
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(&shared.image(), &shared.partitions, r),
        ),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(shared, r, version))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(shared, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(shared, r).await,
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(shared, ctx, r, version).await)
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(
            join_group::handle(&shared.groups, shared.image(), ctx, client_id, r, version).await,
        ),
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(shared, ctx, client_id, r, version).await,
        ),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(
            sync_group::handle(&shared.groups, shared.image(), r, version).await,
        ),
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(heartbeat::handle(&shared.groups, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(&shared.groups, r, version).await)
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            offset_commit::handle(&shared.image(), &shared.groups, r, version).await,
        ),
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(&shared.groups, r, version).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(shared, r, version).await,
        ),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(&shared.groups, r, version).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups::handle(&shared.groups, r, version).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(&shared.groups, r).await)
        }
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(
            init_producer_id::handle(&shared.txns, &shared.producer_ids, r, version).await,
        ),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(
            describe_producers::handle(&shared.image(), &shared.partitions, r),
        ),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(&shared.partitions, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(describe_transactions::handle(&shared.txns, r).await)
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(
            list_transactions::handle(&shared.txns, r, version).await,
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(shared, r).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(shared, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            add_partitions_to_txn::handle(shared, r, version).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(shared, r, version).await)
        }
        RequestKind::EndTxn(r) => {
            ResponseKind::EndTxn(end_txn::handle(&shared.txns, r, version).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(shared, r, version).await)
        }
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(
            offset_delete::handle(&shared.image(), &shared.groups, r).await,
        ),
        RequestKind::DescribeAcls(r) => match describe_acls::handle(&r) {
            Ok(response) => ResponseKind::DescribeAcls(response),
            Err(reason) => return Outcome::Close(reason),
        },
        RequestKind::CreateAcls(r) => match create_acls::handle(&r) {
            Ok(response) => ResponseKind::CreateAcls(response),
            Err(reason) => return Outcome::Close(reason),
        },
        RequestKind::DeleteAcls(r) => match delete_acls::handle(&r) {
            Ok(response) => ResponseKind::DeleteAcls(response),
            Err(reason) => return Outcome::Close(reason),
        },
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(&r))
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(describe_user_scram_credentials::handle(&r))
        }
        _ => {
            // The version table only admits the APIs above; reaching this is a table bug.
            return Outcome::Close(format!(
                "API {api_key:?} is in the version table but has no handler"
            ));
        }
    };
    let mut out = BytesMut::new();
    match codec::encode_response(correlation_id, api_key, version, &response, &mut out) {
        Ok(()) => Outcome::Respond(vec![out.freeze()]),
        Err(e) => Outcome::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        )),
    }
}
