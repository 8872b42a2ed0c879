//! The controller listener (`controller.listener.names`): what a KRaft controller answers.
//!
//! Kafka's own APIs where they exist: ApiVersions (the controller's table),
//! DescribeCluster (`endpoint_type` 2 lists the controllers, KIP-919), DescribeQuorum,
//! BrokerRegistration and BrokerHeartbeat; and the quorum's private API keys
//! ([`rafka_metadata::PrivateApi`]: Raft, observer fetch, forwarded commands), which only this
//! listener accepts. Any other key closes the connection, as Kafka does for an API the listener
//! does not serve.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rafka_metadata::{Heartbeat, LifecycleError, MetadataQuorum, PrivateApi, RegistrationRequest};
use rafka_protocol::codec::{self, DecodeError};
use rafka_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rafka_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationRequest, BrokerRegistrationResponse, DescribeClusterRequest,
    DescribeClusterResponse, RequestHeader, RequestKind, ResponseKind,
};
use rafka_protocol::kafka_protocol::protocol::{Decodable, StrBytes};
use rafka_protocol::kafka_protocol::ResponseError;

use super::lifecycle::security_protocol_name;
use crate::connection::{ConnectionContext, ConnectionLimits, Dispatch};
use crate::handlers::{describe_quorum, Outcome};

/// `endpoint_type` values (KIP-919).
pub const ENDPOINT_TYPE_BROKERS: i8 = 1;
pub const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;

/// Serves one node's controller listener.
pub struct ControllerDispatch {
    pub quorum: Arc<MetadataQuorum>,
    pub limits: ConnectionLimits,
}

impl Dispatch for ControllerDispatch {
    fn dispatch(
        &self,
        ctx: &ConnectionContext,
        frame: Bytes,
    ) -> impl std::future::Future<Output = Outcome> + Send {
        dispatch(self.quorum.clone(), ctx.clone(), frame)
    }

    fn limits(&self) -> ConnectionLimits {
        self.limits
    }
}

/// The private request header (v2) and the body after it.
fn split_private(frame: &Bytes) -> Result<(RequestHeader, Bytes), String> {
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, 2).map_err(|e| format!("header: {e:#}"))?;
    Ok((header, buf))
}

fn respond(correlation_id: i32, body: &[u8]) -> Outcome {
    // Response header v0: the correlation id alone.
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_i32(i32::try_from(4 + body.len()).unwrap_or(i32::MAX));
    out.put_i32(correlation_id);
    out.put_slice(body);
    Outcome::Respond(vec![out.freeze()])
}

async fn dispatch(quorum: Arc<MetadataQuorum>, ctx: ConnectionContext, frame: Bytes) -> Outcome {
    let peek = match codec::peek_header(&frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("unreadable request header: {e}")),
    };
    if let Some(api) = PrivateApi::from_key(peek.api_key) {
        let (header, body) = match split_private(&frame) {
            Ok(x) => x,
            Err(e) => return Outcome::Close(format!("malformed private request: {e}")),
        };
        let answer = quorum.server().handle(api, &body).await;
        return respond(header.correlation_id, &answer);
    }
    let request = match codec::decode_controller_request(frame) {
        Ok(r) => r,
        Err(DecodeError::UnknownApiKey(key)) => {
            return Outcome::Close(format!("unknown API key {key}"))
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            return Outcome::Respond(vec![codec::controller_api_versions_fallback_response(
                correlation_id,
            )])
        }
        Err(DecodeError::UnsupportedVersion {
            api_key, version, ..
        }) => {
            return Outcome::Close(format!(
                "the controller listener does not serve {api_key:?} v{version}"
            ))
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
    let response =
        match body {
            RequestKind::ApiVersions(_) => {
                let mut r = ApiVersionsResponse::default();
                r.api_keys = rafka_protocol::versions::controller_api_versions_keys();
                ResponseKind::ApiVersions(r)
            }
            RequestKind::DescribeCluster(r) => {
                ResponseKind::DescribeCluster(describe_cluster(&quorum, &r, version))
            }
            RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(
                describe_quorum::respond(&r, quorum.server().describe(), &ctx.listener_name),
            ),
            RequestKind::BrokerRegistration(r) => {
                ResponseKind::BrokerRegistration(register(&quorum, r).await)
            }
            RequestKind::BrokerHeartbeat(r) => {
                ResponseKind::BrokerHeartbeat(heartbeat(&quorum, r).await)
            }
            RequestKind::AlterPartition(r) => ResponseKind::AlterPartition(
                super::alter_partition::handle(&quorum, r, version).await,
            ),
            _ => {
                return Outcome::Close(format!(
                    "API {api_key:?} is in the controller table but has no handler"
                ))
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

/// Splits a voter address `host:port` (IPv6 in brackets).
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

fn describe_cluster(
    quorum: &MetadataQuorum,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = request.endpoint_type;
    if request.endpoint_type != ENDPOINT_TYPE_CONTROLLERS {
        let (code, message) = if request.endpoint_type == ENDPOINT_TYPE_BROKERS {
            (
                if version == 0 {
                    ResponseError::InvalidRequest
                } else {
                    ResponseError::MismatchedEndpointType
                },
                "The request was sent to an endpoint of type CONTROLLER, but we wanted an endpoint of type BROKER".to_string(),
            )
        } else {
            (
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {}", request.endpoint_type),
            )
        };
        response.error_code = code.code();
        response.error_message = Some(StrBytes::from_string(message));
        return response;
    }
    response.cluster_id = StrBytes::from_string(quorum.cluster_id().to_string());
    response.brokers = quorum
        .voters()
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = split_host_port(addr)?;
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(i32::try_from(*id).ok()?);
            b.host = StrBytes::from_string(host);
            b.port = i32::from(port);
            Some(b)
        })
        .collect();
    let leader = quorum
        .leader()
        .and_then(|l| i32::try_from(l.node_id).ok())
        .filter(|l| response.brokers.iter().any(|b| b.broker_id.0 == *l));
    response.controller_id = BrokerId(leader.unwrap_or(-1));
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        crate::handlers::metadata::CLUSTER_OPERATIONS_ALL
    } else {
        crate::handlers::metadata::OPERATIONS_OMITTED
    };
    response
}

async fn register(
    quorum: &MetadataQuorum,
    request: BrokerRegistrationRequest,
) -> BrokerRegistrationResponse {
    let mut response = BrokerRegistrationResponse::default();
    response.broker_epoch = -1;
    let Some(controller) = quorum.controller() else {
        response.error_code = ResponseError::NotController.code();
        return response;
    };
    let mut endpoints = Vec::with_capacity(request.listeners.len());
    for l in &request.listeners {
        let Some(protocol) = security_protocol_name(l.security_protocol) else {
            // Kafka fails the whole controller here; an unknown protocol is bad input.
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        };
        endpoints.push(rafka_metadata::Endpoint {
            listener: l.name.to_string(),
            host: l.host.to_string(),
            port: l.port,
            security_protocol: protocol.to_string(),
        });
    }
    let outcome = controller
        .register_broker(RegistrationRequest {
            node_id: request.broker_id.0,
            cluster_id: request.cluster_id.to_string(),
            incarnation_id: request.incarnation_id,
            endpoints,
            rack: request.rack.map(|r| r.to_string()),
            co_located: false,
            previous_broker_epoch: request.previous_broker_epoch,
        })
        .await;
    match outcome {
        Ok(epoch) => response.broker_epoch = i64::try_from(epoch).unwrap_or(i64::MAX),
        Err(e) => {
            log_refusal("registerBroker", request.broker_id.0, &e);
            response.error_code = e.code();
        }
    }
    response
}

async fn heartbeat(
    quorum: &MetadataQuorum,
    request: BrokerHeartbeatRequest,
) -> BrokerHeartbeatResponse {
    let mut response = BrokerHeartbeatResponse::default();
    response.is_fenced = true;
    let Some(controller) = quorum.controller() else {
        response.error_code = ResponseError::NotController.code();
        return response;
    };
    let (Ok(broker_epoch), Ok(metadata_index)) = (
        u64::try_from(request.broker_epoch),
        u64::try_from(request.current_metadata_offset.max(0)),
    ) else {
        response.error_code = ResponseError::StaleBrokerEpoch.code();
        return response;
    };
    let outcome = controller
        .heartbeat(Heartbeat {
            node_id: request.broker_id.0,
            broker_epoch,
            metadata_index,
            want_fence: request.want_fence,
            want_shut_down: request.want_shut_down,
        })
        .await;
    match outcome {
        Ok(reply) => {
            response.is_caught_up = reply.is_caught_up;
            response.is_fenced = reply.is_fenced;
            response.should_shut_down = reply.should_shut_down;
        }
        Err(e) => {
            log_refusal("processBrokerHeartbeat", request.broker_id.0, &e);
            response.error_code = e.code();
        }
    }
    response
}

fn log_refusal(event: &str, broker: i32, e: &LifecycleError) {
    match e {
        LifecycleError::NotController(_) => {}
        e => tracing::info!(broker, "{event}: event failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_addresses_split() {
        assert_eq!(
            split_host_port("kafka-1:9093"),
            Some(("kafka-1".to_string(), 9093))
        );
        assert_eq!(
            split_host_port("[::1]:9093"),
            Some(("::1".to_string(), 9093))
        );
        assert_eq!(split_host_port("nope"), None);
    }
}
