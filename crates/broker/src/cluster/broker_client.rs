//! Kafka requests from this broker to another one (WriteTxnMarkers from a transaction
//! coordinator, AddPartitionsToTxn from a partition leader verifying a transactional produce),
//! on the node's connection pool. A broker is reached at its endpoint on
//! `inter.broker.listener.name`, as the metadata image advertises it; versions are negotiated
//! per connection.

use std::sync::Arc;
use std::time::Duration;

use rafka_client::{ClientError, Pool};
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::protocol::Request;

/// Why a call to another broker got no answer.
#[derive(Debug, thiserror::Error)]
pub enum BrokerCallError {
    /// The image has no such broker, or it advertises no endpoint on the inter-broker listener.
    #[error("broker {node_id} has no endpoint on listener {listener}")]
    NoEndpoint { node_id: i32, listener: String },
    #[error("broker {node_id} at {addr}: {source}")]
    Client {
        node_id: i32,
        addr: String,
        source: ClientError,
    },
}

#[derive(Debug)]
pub struct BrokerClient {
    pool: Arc<Pool>,
    /// `inter.broker.listener.name`.
    listener: String,
}

impl BrokerClient {
    pub fn new(pool: Arc<Pool>, listener: String) -> Self {
        BrokerClient { pool, listener }
    }

    /// `host:port` of broker `node_id` on the inter-broker listener (IPv6 hosts bracketed).
    pub fn addr(&self, image: &MetadataImage, node_id: i32) -> Result<String, BrokerCallError> {
        let endpoint = image
            .broker(node_id)
            .and_then(|b| b.endpoint(&self.listener))
            .ok_or_else(|| BrokerCallError::NoEndpoint {
                node_id,
                listener: self.listener.clone(),
            })?;
        Ok(if endpoint.host.contains(':') {
            format!("[{}]:{}", endpoint.host, endpoint.port)
        } else {
            format!("{}:{}", endpoint.host, endpoint.port)
        })
    }

    /// Sends `req` to broker `node_id` at the highest version both sides speak, within
    /// `timeout` (connect and negotiation included).
    pub async fn send<R: Request>(
        &self,
        image: &MetadataImage,
        node_id: i32,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response, BrokerCallError> {
        let addr = self.addr(image, node_id)?;
        self.pool
            .send(&addr, req, None, timeout)
            .await
            .map_err(|source| BrokerCallError::Client {
                node_id,
                addr,
                source,
            })
    }
}
