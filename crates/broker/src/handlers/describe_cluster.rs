//! DescribeCluster (key 60): cluster id, controller and the brokers on the caller's listener.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::metadata::{CLUSTER_OPERATIONS_ALL, OPERATIONS_OMITTED};
use crate::connection::ConnectionContext;
use crate::node::Shared;

/// `endpoint_type` values (KIP-919): 1 = brokers, 2 = controllers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    request: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = ENDPOINT_TYPE_BROKERS;
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        // Controllers are not reachable separately on a combined single node.
        response.error_code = ResponseError::UnsupportedEndpointType.code();
        response.error_message = Some(StrBytes::from_static_str(
            "only broker endpoints can be described on this node",
        ));
        response.endpoint_type = request.endpoint_type;
        return response;
    }
    let image = shared.image();
    response.cluster_id = StrBytes::from_string(shared.cluster_id.clone());
    response.controller_id = BrokerId(shared.node_id);
    response.brokers = image
        .brokers()
        .filter_map(|b| {
            let e = b.endpoint(&ctx.listener_name)?;
            let mut r = DescribeClusterBroker::default();
            r.broker_id = BrokerId(b.node_id);
            r.host = StrBytes::from_string(e.host.clone());
            r.port = i32::from(e.port);
            r.rack = b.rack.clone().map(StrBytes::from_string);
            r.is_fenced = false;
            Some(r)
        })
        .collect();
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS_ALL
    } else {
        OPERATIONS_OMITTED
    };
    response
}
