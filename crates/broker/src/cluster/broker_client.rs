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

    /// A client on the same listener with a connection pool of its own: another replica
    /// fetcher towards the same leader must not queue its long polls behind this one's on a
    /// shared connection (a broker answers a connection's requests in order).
    pub fn with_own_pool(&self) -> Self {
        BrokerClient {
            pool: Arc::new(Pool::new(self.pool.options().clone())),
            listener: self.listener.clone(),
        }
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
        self.call(image, node_id, req, None, timeout).await
    }

    /// [`BrokerClient::send`] at `version` (from [`BrokerClient::version_for`]), for requests
    /// whose fields depend on it.
    pub async fn send_at<R: Request>(
        &self,
        image: &MetadataImage,
        node_id: i32,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, BrokerCallError> {
        self.call(image, node_id, req, Some(version), timeout).await
    }

    /// The highest version of `R` both this broker and broker `node_id` speak.
    pub async fn version_for<R: Request>(
        &self,
        image: &MetadataImage,
        node_id: i32,
        timeout: Duration,
    ) -> Result<i16, BrokerCallError> {
        let addr = self.addr(image, node_id)?;
        let client = |source| BrokerCallError::Client {
            node_id,
            addr: addr.clone(),
            source,
        };
        let conn = match tokio::time::timeout(timeout, self.pool.get(&addr)).await {
            Ok(conn) => conn.map_err(client)?,
            Err(_) => {
                return Err(client(ClientError::Timeout {
                    addr: addr.clone(),
                    api_key: R::KEY,
                    timeout,
                }))
            }
        };
        conn.version_for::<R>(timeout).await.map_err(client)
    }

    async fn call<R: Request>(
        &self,
        image: &MetadataImage,
        node_id: i32,
        req: &R,
        version: Option<i16>,
        timeout: Duration,
    ) -> Result<R::Response, BrokerCallError> {
        let addr = self.addr(image, node_id)?;
        self.pool
            .send(&addr, req, version, timeout)
            .await
            .map_err(|source| BrokerCallError::Client {
                node_id,
                addr,
                source,
            })
    }
}
