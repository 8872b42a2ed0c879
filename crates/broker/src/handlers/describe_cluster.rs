//! DescribeCluster (key 60) on a broker listener: cluster id, a live broker as "controller"
//! (as Metadata reports it) and the brokers on the caller's listener, fenced ones only when v2
//! asks for them. Controllers (`endpoint_type` 2, KIP-919) are described by the controller
//! listener; a broker answers MISMATCHED_ENDPOINT_TYPE, as Kafka does.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rafka_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::metadata::{CLUSTER_OPERATIONS_ALL, OPERATIONS_OMITTED};
use crate::connection::ConnectionContext;
use crate::state::Shared;

use crate::cluster::controller_listener::ENDPOINT_TYPE_BROKERS;

pub fn handle(
    shared: &Arc<Shared>,
    ctx: &ConnectionContext,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = ENDPOINT_TYPE_BROKERS;
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        let (code, message) = if request.endpoint_type
            == crate::cluster::controller_listener::ENDPOINT_TYPE_CONTROLLERS
        {
            (
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_string(),
            )
        } else {
            (
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {}", request.endpoint_type),
            )
        };
        response.error_code = if version == 0 {
            ResponseError::InvalidRequest.code()
        } else {
            code.code()
        };
        response.error_message = Some(StrBytes::from_string(message));
        response.endpoint_type = request.endpoint_type;
        return response;
    }
    let image = shared.image();
    response.cluster_id = StrBytes::from_string(shared.cluster_id.clone());
    response.controller_id = BrokerId(super::metadata::random_live_broker(&image).unwrap_or(-1));
    response.brokers = image
        .brokers()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let e = b.endpoint(&ctx.listener_name)?;
            let mut r = DescribeClusterBroker::default();
            r.broker_id = BrokerId(b.node_id);
            r.host = StrBytes::from_string(e.host.clone());
            r.port = i32::from(e.port);
            r.rack = b.rack.clone().map(StrBytes::from_string);
            r.is_fenced = b.fenced;
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
