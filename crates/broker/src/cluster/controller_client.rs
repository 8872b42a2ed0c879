//! Kafka requests to the active controller's listener (BrokerRegistration, BrokerHeartbeat,
//! DescribeQuorum), on the node's connection pool. The active controller is the one the local
//! quorum knows of: from openraft on a voter, from fetch answers on a broker-only node.

use std::sync::Arc;
use std::time::Duration;

use rafka_client::{ClientError, Pool};
use rafka_metadata::{LeaderHint, MetadataQuorum};
use rafka_protocol::kafka_protocol::protocol::Request;

/// Why a call to the active controller got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCallError {
    /// No controller leads, as far as this node knows (an election may be under way).
    #[error("no active controller is known")]
    NoController,
    #[error("active controller {node_id} at {addr}: {source}")]
    Client {
        node_id: u64,
        addr: String,
        source: ClientError,
    },
}

#[derive(Debug)]
pub struct ControllerClient {
    pool: Arc<Pool>,
}

impl ControllerClient {
    pub fn new(pool: Arc<Pool>) -> Self {
        ControllerClient { pool }
    }

    /// The active controller, unless it is this node (callers use it in-process then).
    pub fn remote_leader(quorum: &MetadataQuorum) -> Option<LeaderHint> {
        quorum
            .leader()
            .filter(|l| l.node_id != quorum.node_id() && !l.addr.is_empty())
    }

    /// Sends `req` at `version` to the active controller.
    pub async fn send<R: Request>(
        &self,
        quorum: &MetadataQuorum,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ControllerCallError> {
        let leader = Self::remote_leader(quorum).ok_or(ControllerCallError::NoController)?;
        self.pool
            .send(&leader.addr, req, Some(version), timeout)
            .await
            .map_err(|source| ControllerCallError::Client {
                node_id: leader.node_id,
                addr: leader.addr.clone(),
                source,
            })
    }
}
