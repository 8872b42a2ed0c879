//! The metadata quorum's [`Transport`] over real sockets: each private RPC is a Kafka request
//! frame to the peer's controller listener (host names resolved on every connect).
//!
//! A controller answers the requests of one connection in order, as Kafka does, so a request
//! must not queue behind one that is parked: observer fetches (long polls) get connections of
//! their own, Raft traffic between voters others, and forwarded commands share the pool of the
//! node's other calls to the active controller.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rafka_client::{ClientError, ConnectOptions, Pool};
use rafka_metadata::rpc::BoxFuture;
use rafka_metadata::{PrivateApi, Transport, TransportError};

/// Private RPCs are version 0 of their key; the body carries its own format.
const PRIVATE_API_VERSION: i16 = 0;

#[derive(Debug)]
pub struct PoolTransport {
    raft: Arc<Pool>,
    fetch: Arc<Pool>,
    control: Arc<Pool>,
    /// Peers the last connect to failed: a failure is logged once, when a peer becomes
    /// unreachable, not on every retry.
    unreachable: Mutex<HashSet<String>>,
}

impl PoolTransport {
    /// `control` is the pool of the node's other requests to the active controller.
    pub fn new(options: &ConnectOptions, control: Arc<Pool>) -> Self {
        PoolTransport {
            raft: Arc::new(Pool::new(options.clone())),
            fetch: Arc::new(Pool::new(options.clone())),
            control,
            unreachable: Mutex::new(HashSet::new()),
        }
    }

    /// Notes the outcome of a connect to `addr`, logging the first failure (Kafka's
    /// NetworkClient words it the same way).
    fn note_connect(&self, addr: &str, failure: Option<&ClientError>) {
        let mut down = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            Some(e) => {
                if down.insert(addr.to_string()) {
                    tracing::warn!(
                        "Connection to node {addr} could not be established. Node may not be available. ({e})"
                    );
                }
            }
            None => {
                down.remove(addr);
            }
        }
    }

    fn pool(&self, api: PrivateApi) -> &Pool {
        match api {
            PrivateApi::RaftVote
            | PrivateApi::RaftPreVote
            | PrivateApi::RaftAppendEntries
            | PrivateApi::RaftInstallSnapshot => &self.raft,
            PrivateApi::MetadataFetch => &self.fetch,
            PrivateApi::ForwardCommand => &self.control,
        }
    }
}

pub(crate) fn transport_error(addr: &str, timeout: Duration, e: ClientError) -> TransportError {
    match e {
        ClientError::Timeout { .. } => TransportError::Timeout {
            addr: addr.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        },
        ClientError::Protocol(reason) | ClientError::Encode(reason) => TransportError::Protocol {
            addr: addr.to_string(),
            reason,
        },
        e => TransportError::Unreachable {
            addr: addr.to_string(),
            reason: e.to_string(),
        },
    }
}

impl Transport for PoolTransport {
    fn call<'a>(
        &'a self,
        addr: &'a str,
        api: PrivateApi,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let pool = self.pool(api);
            let started = tokio::time::Instant::now();
            let conn = tokio::time::timeout(timeout, pool.get(addr))
                .await
                .map_err(|_| TransportError::Timeout {
                    addr: addr.to_string(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })?
                .map_err(|e| {
                    self.note_connect(addr, Some(&e));
                    transport_error(addr, timeout, e)
                })?;
            self.note_connect(addr, None);
            let left = timeout.saturating_sub(started.elapsed());
            match conn
                .send_raw(api.key(), PRIVATE_API_VERSION, Bytes::from(body), left)
                .await
            {
                Ok(answer) => Ok(answer.to_vec()),
                Err(e) => {
                    // A peer that timed out may be gone (or paused): the next call reconnects,
                    // resolving the host again, instead of queueing behind a dead socket.
                    if matches!(
                        e,
                        ClientError::Timeout { .. } | ClientError::Disconnected { .. }
                    ) {
                        pool.invalidate(addr);
                    }
                    Err(transport_error(addr, timeout, e))
                }
            }
        })
    }
}
