//! The handlers' view of a running node: [`Shared`] holds the parts of the node that API
//! handlers reach (its identity, the static and effective config, the metadata quorum, the
//! hosted partitions, the coordinators' handles and the producer id allocator). `node.rs` builds
//! it at startup and hands it to the client listeners.
//!
//! It exists so that a handler touching many of these parts needs one argument. It is not the
//! node's internals for everyone: the coordinator shells and the log cleaner get narrow contexts
//! of their own, and `handlers::dispatch` hands a handler that uses only one or two parts just
//! those.

use std::sync::Arc;

use rafka_metadata::{MetadataImage, MetadataQuorum};

use crate::cluster::broker_client::BrokerClient;
use crate::cluster::controller_client::ControllerClient;
use crate::config::BrokerConfig;
use crate::dynamic_config::DynamicBrokerConfig;
use crate::group_coordinator::GroupCoordinator;
use crate::partitions::Partitions;
use crate::producer_ids::ProducerIds;
use crate::txn_coordinator::TxnCoordinatorHandle;

/// State every connection and handler shares.
pub struct Shared {
    /// The static config (what the node started with).
    pub config: Arc<BrokerConfig>,
    /// The static config with the dynamic broker configs of the metadata log over it.
    pub dynamic_config: Arc<DynamicBrokerConfig>,
    pub cluster_id: String,
    pub node_id: i32,
    pub quorum: Arc<MetadataQuorum>,
    /// Kafka requests to the active controller (DescribeQuorum forwarding, the lifecycle).
    pub controller_client: Arc<ControllerClient>,
    /// Kafka requests to other brokers (transaction verification, transaction markers).
    pub brokers: Arc<BrokerClient>,
    /// Follower fetches, on connections of their own (as Kafka's replica fetchers have their
    /// own network clients): a broker answers a connection's requests in order, so a fetch
    /// queued behind a WriteTxnMarkers that waits for this very follower would stall both.
    pub replica_fetch_client: Arc<BrokerClient>,
    pub partitions: Arc<Partitions>,
    pub groups: GroupCoordinator,
    pub producer_ids: Arc<ProducerIds>,
    pub txns: TxnCoordinatorHandle,
    /// Incremental fetch sessions (KIP-227) of consumers and followers.
    pub fetch_sessions: std::sync::Mutex<crate::fetch_sessions::FetchSessionCache>,
    /// The counters the request paths bump (served by the HTTP listener's `/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The effective broker config: static values with the current dynamic ones over them.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.dynamic_config.current(&self.image())
    }
}
