//! The metadata quorum: an openraft `Raft` over the file log store and the image state machine.
//!
//! Today it is one voter (this node). Voters and learners join through the same code once the
//! cluster network exists: node ids and addresses are plain openraft `BasicNode`s, and the
//! transport is whatever [`RaftNetworkFactory`] is passed to
//! [`MetadataQuorum::start_with_network`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::{
    BasicNode, Config, Raft, RaftMetrics, RaftNetworkFactory, ServerState, SnapshotPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{CommandOutcome, ControllerCommand};
use crate::error::MetadataError;
use crate::fsio;
use crate::image::MetadataImage;
use crate::log_store::FileLogStore;
use crate::network::LocalOnlyNetwork;
use crate::raft_types::{CommandResponse, Node, NodeId, TypeConfig};
use crate::state_machine::MetadataStateMachine;

const IDENTITY_FILE: &str = "quorum.meta";
const IDENTITY_FORMAT_VERSION: u32 = 1;

/// Tunables of the metadata quorum. `Default` suits a single node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `host:port` other controllers will use to reach this one; unused by a single voter.
    pub node_addr: String,
    /// Take a snapshot after this many entries since the last one; the log is then purged.
    pub snapshot_interval_entries: u64,
    /// Entries already in a snapshot that are kept anyway, so a follower slightly behind can
    /// catch up from the log instead of a whole snapshot.
    pub entries_kept_after_snapshot: u64,
    /// How long `start` waits for this node to become leader with the log applied.
    pub leader_wait_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            node_addr: String::new(),
            snapshot_interval_entries: 1000,
            entries_kept_after_snapshot: 100,
            leader_wait_timeout_ms: 10_000,
            // KRaft's defaults: controller.quorum.election.timeout.ms = 1000, fetch every 500ms.
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
        }
    }
}

/// Who formatted a quorum directory; a mismatch means the wrong directory or wrong config.
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    format_version: u32,
    cluster_id: String,
    node_id: NodeId,
}

/// A running metadata quorum member.
pub struct MetadataQuorum {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    images: watch::Receiver<Arc<MetadataImage>>,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_identity(dir: &Path, node_id: NodeId, cluster_id: &str) -> Result<(), MetadataError> {
    let path = dir.join(IDENTITY_FILE);
    fsio::remove_stale_tmp(&path).map_err(io_err(&path))?;
    match fsio::read_single_frame(&path).map_err(io_err(&path))? {
        Some(payload) => {
            let id: Identity = serde_json::from_slice(&payload).map_err(|e| MetadataError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            if id.format_version != IDENTITY_FORMAT_VERSION {
                return Err(MetadataError::Config(format!(
                    "{} has format version {}, this build reads {IDENTITY_FORMAT_VERSION}",
                    path.display(),
                    id.format_version
                )));
            }
            if id.cluster_id != cluster_id {
                return Err(MetadataError::IdentityMismatch {
                    path,
                    what: "cluster id",
                    found: id.cluster_id,
                    expected: cluster_id.to_string(),
                });
            }
            if id.node_id != node_id {
                return Err(MetadataError::IdentityMismatch {
                    path,
                    what: "node id",
                    found: id.node_id.to_string(),
                    expected: node_id.to_string(),
                });
            }
            Ok(())
        }
        None => {
            let id = Identity {
                format_version: IDENTITY_FORMAT_VERSION,
                cluster_id: cluster_id.to_string(),
                node_id,
            };
            let json = serde_json::to_vec(&id).map_err(|e| MetadataError::Config(e.to_string()))?;
            fsio::write_single_frame(&path, &json).map_err(io_err(&path))
        }
    }
}

impl MetadataQuorum {
    /// Opens the quorum stored in `dir` (creating it on first start) as a single voter and
    /// returns once this node leads and has applied its whole log.
    pub async fn start(
        dir: &Path,
        node_id: NodeId,
        cluster_id: String,
        config: QuorumConfig,
    ) -> Result<MetadataQuorum, MetadataError> {
        Self::start_with_network(dir, node_id, cluster_id, config, LocalOnlyNetwork).await
    }

    /// [`start`](Self::start) with a caller-provided Raft transport.
    pub async fn start_with_network<N: RaftNetworkFactory<TypeConfig>>(
        dir: &Path,
        node_id: NodeId,
        cluster_id: String,
        config: QuorumConfig,
        network: N,
    ) -> Result<MetadataQuorum, MetadataError> {
        if cluster_id.is_empty() {
            return Err(MetadataError::Config("cluster id is empty".into()));
        }
        if config.snapshot_interval_entries == 0 {
            return Err(MetadataError::Config(
                "snapshot_interval_entries must be at least 1".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        check_identity(dir, node_id, &cluster_id)?;

        let log_store = FileLogStore::open(dir).map_err(io_err(&dir.join("raft.log")))?;
        let (state_machine, images) =
            MetadataStateMachine::open(dir, &cluster_id).map_err(io_err(&dir.join("snapshot")))?;

        let raft_config = Config {
            cluster_name: cluster_id.clone(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_interval_entries),
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            // Purging rewrites the log file, so do it once per snapshot, not per entry.
            purge_batch_size: config.snapshot_interval_entries,
            ..Config::default()
        }
        .validate()
        .map_err(|e| MetadataError::Config(e.to_string()))?;

        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| MetadataError::Stopped(e.to_string()))?;
        let quorum = MetadataQuorum {
            node_id,
            raft,
            images,
        };
        match quorum.become_leader(&config).await {
            Ok(()) => Ok(quorum),
            Err(e) => {
                // Stop the Raft task rather than leave it running detached.
                if let Err(join) = quorum.raft.shutdown().await {
                    tracing::warn!(error = %join, "metadata quorum did not shut down cleanly");
                }
                Err(e)
            }
        }
    }

    async fn become_leader(&self, config: &QuorumConfig) -> Result<(), MetadataError> {
        let fatal = |e: openraft::error::Fatal<NodeId>| MetadataError::Stopped(e.to_string());
        if !self.raft.is_initialized().await.map_err(fatal)? {
            let members = BTreeMap::from([(
                self.node_id,
                BasicNode {
                    addr: config.node_addr.clone(),
                },
            )]);
            tracing::info!(
                node_id = self.node_id,
                "initializing the metadata quorum with this node as sole voter"
            );
            self.raft
                .initialize(members)
                .await
                .map_err(|e| MetadataError::Raft(e.to_string()))?;
        }
        let sole_voter = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .voter_ids()
                .eq([self.node_id])
        };
        if sole_voter && !self.raft.metrics().borrow().state.is_leader() {
            // A sole voter that restarted as follower would otherwise sit out an election
            // timeout before electing itself; there is no one to split the vote with.
            self.raft.trigger().elect().await.map_err(fatal)?;
        }
        let node_id = self.node_id;
        let wait = self
            .raft
            .wait(Some(Duration::from_millis(config.leader_wait_timeout_ms)))
            .metrics(
                move |m| {
                    m.state == ServerState::Leader
                        && m.current_leader == Some(node_id)
                        && m.last_applied.map(|l| l.index) == m.last_log_index
                },
                "leader with the log applied",
            )
            .await;
        match wait {
            Ok(m) => {
                tracing::info!(
                    node_id,
                    term = m.current_term,
                    last_applied = ?m.last_applied,
                    "metadata quorum leader ready"
                );
                Ok(())
            }
            Err(WaitError::Timeout(..)) => Err(MetadataError::LeaderTimeout {
                waited_ms: config.leader_wait_timeout_ms,
            }),
            Err(WaitError::ShuttingDown) => {
                Err(MetadataError::Stopped("raft stopped while starting".into()))
            }
        }
    }

    /// The latest applied image. Never waits on the quorum.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// A receiver that is notified after every applied batch of log entries.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// Proposes `cmd`, waits until it is committed and applied, and returns what apply said.
    /// When this returns `Ok`, [`image`](Self::image) already reflects the command.
    pub async fn write(&self, cmd: ControllerCommand) -> Result<CommandOutcome, MetadataError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => match resp.data {
                CommandResponse::Applied(outcome) => Ok(outcome),
                CommandResponse::Rejected(rejected) => Err(MetadataError::Rejected(rejected)),
                CommandResponse::NoCommand => Err(MetadataError::Raft(format!(
                    "entry {} answered without a command result",
                    resp.log_id
                ))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(MetadataError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(e)) => Err(MetadataError::Raft(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(MetadataError::Stopped(e.to_string())),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// openraft's metrics: state, term, leader, log and applied indexes.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, Node>> {
        self.raft.metrics()
    }

    /// The underlying Raft handle, for the cluster network's RPC handlers and membership changes.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Stops the Raft task. Everything acknowledged is already on disk.
    pub async fn shutdown(self) -> Result<(), MetadataError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| MetadataError::Stopped(e.to_string()))
    }
}

/// Where the broker keeps the metadata quorum, as Kafka does: `<metadata.log.dir>/__cluster_metadata-0`.
pub fn quorum_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join("__cluster_metadata-0")
}
