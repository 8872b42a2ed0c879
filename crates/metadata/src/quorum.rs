//! The metadata quorum a node takes part in, in one of three roles:
//!
//! - **standalone**: a single voter with no network (zero-config), leader of itself;
//! - **voter**: one of the static voters (`controller.quorum.voters`), an openraft member
//!   talking to its peers through a [`Transport`];
//! - **observer**: a broker-only node, which is not a Raft member (a broker start is not a
//!   membership change, as in KRaft) but fetches the committed log from a controller
//!   ([`crate::observer`]) and applies it with the same code.
//!
//! Every role gives the same surface: [`MetadataQuorum::image`] and `subscribe` never wait;
//! [`MetadataQuorum::write`] proposes a command to the active controller (locally, or
//! forwarded over the controller listener, retried on NOT_CONTROLLER with backoff until the
//! deadline) and returns once this node's own image has applied it, so a handler reading the
//! image right after sees its write. Voters also answer the private RPCs of the controller
//! listener ([`QuorumServer`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::raft::AppendEntriesResponse;
use openraft::{BasicNode, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use rafka_storage::{Backend, FileBackend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::{CommandOutcome, ControllerCommand};
use crate::controller::Controller;
use crate::error::MetadataError;
use crate::fsio;
use crate::image::MetadataImage;
use crate::log_store::FileLogStore;
use crate::network::{wall_clock_ms, LocalOnlyNetwork, NetworkContext, PeerStats, QuorumNetwork};
use crate::observer::{Observer, ObserverProgress};
use crate::raft_types::{CommandResponse, Node, NodeId, TypeConfig};
use crate::rpc::{
    self, codes, Caller, ForwardRequest, ForwardResponse, LeaderHint, PrivateApi, RpcError,
    Transport, TransportError,
};
use crate::state_machine::{Applied, MetadataStateMachine};

const IDENTITY_FILE: &str = "quorum.meta";
/// The longest wait between two attempts of a write that found no active controller.
const WRITE_RETRY_BACKOFF_MS_MAX: u64 = 200;
const IDENTITY_FORMAT_VERSION: u32 = 1;

/// Tunables of the metadata quorum. `Default` suits a single node; the names follow Kafka's
/// `controller.quorum.*` keys where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `host:port` other controllers use to reach this one (kept in the membership entry a
    /// standalone quorum writes; static voters come from the voter list).
    pub node_addr: String,
    /// Take a snapshot after this many entries since the last one; the log is then purged.
    pub snapshot_interval_entries: u64,
    /// Entries already in a snapshot that are kept anyway, so a follower slightly behind can
    /// catch up from the log instead of a whole snapshot.
    pub entries_kept_after_snapshot: u64,
    /// How long a standalone quorum's `start` waits to lead with the log applied.
    pub leader_wait_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`: the shortest time a follower waits for the
    /// leader before it stands for election.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: the longest such wait (openraft draws the
    /// timeout between the two), and how long an observer waits for a fetch answer before it
    /// tries another controller.
    pub fetch_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`: one RPC to a peer.
    pub request_timeout_ms: u64,
    /// `controller.quorum.retry.backoff.ms`: first wait before retrying a forwarded write or a
    /// failed fetch; doubles up to one second.
    pub retry_backoff_ms: u64,
    /// How long [`MetadataQuorum::write`] keeps trying when the caller gives no deadline.
    pub write_timeout_ms: u64,
    /// `broker.session.timeout.ms`, for the active controller's broker sessions.
    pub broker_session_timeout_ms: u64,
    /// Feature levels a new cluster starts with (Kafka's bootstrap metadata): written by the
    /// active controller before the first broker registers.
    pub bootstrap_features: Vec<(String, i16)>,
    /// Cluster-wide dynamic broker configs a new cluster starts with, written with the
    /// bootstrap features (with the ELR feature, Kafka writes the controller's
    /// `min.insync.replicas` as the cluster default, so every leader reads the same one).
    pub bootstrap_cluster_configs: Vec<(String, String)>,
    /// `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds`: how often
    /// the active controller moves leadership back to preferred replicas; `None` when off.
    pub leader_imbalance_check_interval_ms: Option<u64>,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            node_addr: String::new(),
            snapshot_interval_entries: 1000,
            entries_kept_after_snapshot: 100,
            leader_wait_timeout_ms: 10_000,
            // KRaft's defaults.
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            write_timeout_ms: 30_000,
            broker_session_timeout_ms: 9000,
            bootstrap_features: Vec::new(),
            bootstrap_cluster_configs: Vec::new(),
            leader_imbalance_check_interval_ms: None,
        }
    }
}

impl QuorumConfig {
    /// openraft's leader lease (its `election_timeout_max`): a voter that heard from a leader
    /// this recently refuses to vote for anyone else. Half the fetch timeout, so it has always
    /// run out by the time a follower stands for election (at least 3/4 of the fetch timeout).
    fn leader_lease_ms(&self) -> u64 {
        (self.fetch_timeout_ms / 2).max(2)
    }

    /// The leader's heartbeat: a tenth of the fetch timeout, so a follower misses several
    /// before it stands for election.
    fn heartbeat_interval_ms(&self) -> u64 {
        (self.fetch_timeout_ms / 20).max(5)
    }

    /// How long a follower waits without hearing from a leader before it stands for election:
    /// drawn again every time between 3/4 and all of `controller.quorum.fetch.timeout.ms` (Kafka
    /// turns a voter into a candidate after the fetch timeout).
    fn follower_timeout(&self) -> Duration {
        let max = self.fetch_timeout_ms.max(4);
        Duration::from_millis(random_between(max * 3 / 4, max))
    }

    /// How long a candidate waits before trying again after an election that nobody won: drawn
    /// between 1/2 and 3/2 of `controller.quorum.election.timeout.ms`, so two candidates that
    /// split a vote do not keep colliding.
    fn candidate_timeout(&self) -> Duration {
        let base = self.election_timeout_ms.max(2);
        Duration::from_millis(random_between(base / 2, base * 3 / 2))
    }
}

/// A draw from the quorum runtime's generator (seedable in simulations).
fn random_between(low: u64, high: u64) -> u64 {
    use rand::Rng;
    let mut rng = <crate::runtime::RafkaRuntime as openraft::AsyncRuntime>::thread_rng();
    rng.gen_range(low..=high.max(low))
}

/// Which part this node plays in the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumRole {
    /// The only voter, with no network.
    Standalone,
    /// One of these voters (node id -> `host:port` of its controller listener).
    Voter { voters: BTreeMap<NodeId, String> },
    /// Not a voter: fetches the committed log from these controllers (`host:port`).
    Observer { bootstrap: Vec<String> },
}

/// Everything [`MetadataQuorum::open`] needs.
#[derive(Debug, Clone)]
pub struct QuorumOptions {
    /// `<metadata.log.dir>/__cluster_metadata-0`.
    pub dir: PathBuf,
    pub node_id: NodeId,
    pub cluster_id: String,
    pub role: QuorumRole,
    pub config: QuorumConfig,
    pub backend: Arc<dyn Backend>,
    pub transport: Arc<dyn Transport>,
}

/// Who formatted a quorum directory; a mismatch means the wrong directory or wrong config.
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    format_version: u32,
    cluster_id: String,
    node_id: NodeId,
}

/// State shared by the quorum handle, its server side and its background tasks.
pub(crate) struct QuorumShared {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub config: QuorumConfig,
    pub transport: Arc<dyn Transport>,
    /// Voters (configured), or empty for observers and standalone.
    pub voters: BTreeMap<NodeId, String>,
    /// Where an observer (or a voter that knows no leader) sends fetches and forwarded writes.
    pub bootstrap: Vec<String>,
    pub raft: Option<Raft<TypeConfig>>,
    pub applied: Option<Arc<Applied>>,
    pub images: watch::Receiver<Arc<MetadataImage>>,
    /// The leader as an observer last heard of it.
    pub leader_hint: Mutex<Option<LeaderHint>>,
    /// Observers that fetched from this node while it led (for DescribeQuorum).
    pub observers: Mutex<BTreeMap<NodeId, ObserverProgress>>,
    pub peer_stats: Arc<PeerStats>,
    /// Round-robin position in `bootstrap`.
    pub next_bootstrap: Mutex<usize>,
    /// When this voter last heard from a leader (or led): a pre-vote is refused within the
    /// leader lease of it.
    pub last_leader_contact: Mutex<Instant>,
    /// When this voter last granted a vote: like leader contact, it restarts the election
    /// timer, but it says nothing about a live leader.
    pub last_vote_granted: Mutex<Instant>,
}

impl std::fmt::Debug for QuorumShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumShared")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl QuorumShared {
    pub fn caller(&self) -> Caller {
        Caller {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
        }
    }

    /// The leader this node knows of: from openraft for a voter, from fetch answers for an
    /// observer.
    pub fn leader(&self) -> Option<LeaderHint> {
        if let Some(raft) = &self.raft {
            let m = raft.metrics().borrow().clone();
            let leader = m.current_leader?;
            let addr = self
                .voters
                .get(&leader)
                .cloned()
                .or_else(|| {
                    m.membership_config
                        .membership()
                        .get_node(&leader)
                        .map(|n| n.addr.clone())
                })
                .unwrap_or_default();
            return Some(LeaderHint {
                node_id: leader,
                addr,
                term: m.current_term,
            });
        }
        self.leader_hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A leader was heard from (or this voter leads).
    pub fn touch_leader_contact(&self) {
        *self
            .last_leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// This voter granted a vote.
    pub fn touch_vote_granted(&self) {
        *self
            .last_vote_granted
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The later of the last leader contact and the last vote granted: the election timer
    /// counts from here.
    pub fn last_heard(&self) -> Instant {
        let contact = *self
            .last_leader_contact
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let granted = *self
            .last_vote_granted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        contact.max(granted)
    }

    pub fn set_leader_hint(&self, hint: Option<LeaderHint>) {
        *self.leader_hint.lock().unwrap_or_else(|e| e.into_inner()) = hint;
    }

    /// Whether this node's Raft is the leader right now.
    pub fn is_local_leader(&self) -> bool {
        self.raft.as_ref().is_some_and(|r| {
            let m = r.metrics();
            let m = m.borrow();
            m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
        })
    }

    /// The next address to try when no leader is known.
    pub fn next_contact(&self) -> Option<String> {
        let candidates: Vec<&String> = if self.bootstrap.is_empty() {
            self.voters
                .iter()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(_, a)| a)
                .collect()
        } else {
            self.bootstrap.iter().collect()
        };
        if candidates.is_empty() {
            return None;
        }
        let mut i = self
            .next_bootstrap
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *i = (*i + 1) % candidates.len();
        Some(candidates[*i].clone())
    }

    pub fn check_caller(&self, caller: &Caller) -> Result<(), RpcError> {
        if caller.cluster_id != self.cluster_id {
            return Err(RpcError::new(
                codes::INCONSISTENT_CLUSTER_ID,
                format!(
                    "The clusterId in the request does not match that found on the server. Expected cluster ID {}, but got cluster ID {}",
                    self.cluster_id, caller.cluster_id
                ),
            ));
        }
        Ok(())
    }

    pub fn not_controller(&self) -> RpcError {
        let leader = self.leader().filter(|l| l.node_id != self.node_id);
        RpcError {
            code: codes::NOT_CONTROLLER,
            message: match &leader {
                Some(l) => format!(
                    "This node is not the active controller; node {} is",
                    l.node_id
                ),
                None => "This node is not the active controller and knows of none".to_string(),
            },
            leader,
        }
    }

    /// Waits until this node's image has applied `index`.
    pub async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), MetadataError> {
        let mut images = self.images.clone();
        let result = tokio::time::timeout_at(deadline, async {
            images
                .wait_for(|i| i.last_applied_index >= index)
                .await
                .map(|_| ())
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MetadataError::Stopped("metadata quorum stopped".into())),
            Err(_) => Err(MetadataError::Timeout {
                what: format!("this node to apply metadata entry {index}"),
            }),
        }
    }

    /// Proposes `cmd` on this node's Raft, which must be the leader.
    pub async fn propose_local(
        &self,
        cmd: ControllerCommand,
        deadline: Instant,
    ) -> Result<ForwardResponse, RpcError> {
        let Some(raft) = &self.raft else {
            return Err(self.not_controller());
        };
        let mut metrics = raft.metrics();
        let term = metrics.borrow().current_term;
        // One attempt is bounded even when the caller's deadline is far: an entry proposed by a
        // leader that lost its term may never be answered here (a snapshot from the new leader
        // can cover it), and the caller retries through the new leader.
        let mut give_up = deadline.min(
            Instant::now()
                + Duration::from_millis(self.config.request_timeout_ms.saturating_mul(5)),
        );
        let write = raft.client_write(cmd);
        tokio::pin!(write);
        let result = loop {
            tokio::select! {
                r = &mut write => break Some(r),
                _ = tokio::time::sleep_until(give_up) => break None,
                changed = metrics.changed() => {
                    if changed.is_err() {
                        break None;
                    }
                    let (state, now_term) = {
                        let m = metrics.borrow_and_update();
                        (m.state, m.current_term)
                    };
                    if state != ServerState::Leader || now_term != term {
                        // The entry may still commit through the new leader and be answered
                        // here; wait a fetch timeout for that, no longer.
                        give_up = give_up.min(
                            Instant::now() + Duration::from_millis(self.config.fetch_timeout_ms),
                        );
                    }
                }
            }
        };
        match result {
            None => Err(RpcError::new(
                codes::REQUEST_TIMED_OUT,
                "the command did not commit in time",
            )),
            Some(Ok(resp)) => {
                let log_index = resp.log_id.index;
                match resp.data {
                    CommandResponse::Applied(outcome) => Ok(ForwardResponse {
                        log_index,
                        result: Ok(outcome),
                    }),
                    CommandResponse::Rejected(rejected) => Ok(ForwardResponse {
                        log_index,
                        result: Err(rejected),
                    }),
                    CommandResponse::NoCommand => Err(RpcError::new(
                        codes::UNKNOWN_SERVER_ERROR,
                        format!("entry {log_index} answered without a command result"),
                    )),
                }
            }
            Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(self.not_controller())
            }
            Some(Err(e)) => Err(RpcError::new(codes::UNKNOWN_SERVER_ERROR, e.to_string())),
        }
    }
}

/// A running metadata quorum member (or observer).
pub struct MetadataQuorum {
    shared: Arc<QuorumShared>,
    controller: Option<Arc<Controller>>,
    observer: Option<Observer>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_identity(
    backend: &dyn Backend,
    dir: &Path,
    node_id: NodeId,
    cluster_id: &str,
) -> Result<(), MetadataError> {
    let path = dir.join(IDENTITY_FILE);
    fsio::remove_stale_tmp(backend, &path).map_err(io_err(&path))?;
    match fsio::read_single_frame(backend, &path).map_err(io_err(&path))? {
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
            fsio::write_single_frame(backend, &path, &json).map_err(io_err(&path))
        }
    }
}

/// A transport for a standalone quorum: it never sends anything.
#[derive(Debug)]
struct NoTransport;

impl Transport for NoTransport {
    fn call<'a>(
        &'a self,
        addr: &'a str,
        _api: PrivateApi,
        _body: Vec<u8>,
        _timeout: Duration,
    ) -> rpc::BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            Err(TransportError::Unreachable {
                addr: addr.to_string(),
                reason: "a standalone quorum has no network".into(),
            })
        })
    }
}

/// openraft's settings. Elections are ours ([`elect_when_leader_lost`]): openraft draws its
/// election timeout once per process and checks it on a coarse tick, so two voters that drew
/// close values would split every vote; ours is drawn afresh for every wait.
fn raft_config(cluster_id: &str, config: &QuorumConfig) -> Result<Arc<Config>, MetadataError> {
    let election_max = config.leader_lease_ms();
    let election_min = (election_max / 2).max(1);
    Config {
        cluster_name: cluster_id.to_string(),
        heartbeat_interval: config.heartbeat_interval_ms(),
        election_timeout_min: election_min,
        election_timeout_max: election_max.max(election_min + 1),
        enable_elect: false,
        install_snapshot_timeout: config.request_timeout_ms.max(1000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_interval_entries),
        max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
        // Purging rewrites the log file, so do it once per snapshot, not per entry.
        purge_batch_size: config.snapshot_interval_entries,
        // A follower further behind than this gets a snapshot; it must exceed the interval so
        // a snapshot actually helps (openraft's rule).
        replication_lag_threshold: config
            .snapshot_interval_entries
            .saturating_add(config.entries_kept_after_snapshot)
            .saturating_mul(2),
        ..Config::default()
    }
    .validate()
    .map(Arc::new)
    .map_err(|e| MetadataError::Config(e.to_string()))
}

impl MetadataQuorum {
    /// Opens a standalone quorum stored in `dir` on the real file system and returns once this
    /// node leads with its whole log applied.
    pub async fn start(
        dir: &Path,
        node_id: NodeId,
        cluster_id: String,
        config: QuorumConfig,
    ) -> Result<MetadataQuorum, MetadataError> {
        Self::open(QuorumOptions {
            dir: dir.to_path_buf(),
            node_id,
            cluster_id,
            role: QuorumRole::Standalone,
            config,
            backend: Arc::new(FileBackend),
            transport: Arc::new(NoTransport),
        })
        .await
    }

    /// Opens the quorum in the given role. A standalone voter returns once it leads with its
    /// log applied; a voter among several returns once its Raft runs (the leader is elected
    /// among the peers); an observer returns once its stored snapshot is loaded and fetching
    /// has begun.
    pub async fn open(options: QuorumOptions) -> Result<MetadataQuorum, MetadataError> {
        let QuorumOptions {
            dir,
            node_id,
            cluster_id,
            role,
            config,
            backend,
            transport,
        } = options;
        if cluster_id.is_empty() {
            return Err(MetadataError::Config("cluster id is empty".into()));
        }
        if config.snapshot_interval_entries == 0 {
            return Err(MetadataError::Config(
                "snapshot_interval_entries must be at least 1".into(),
            ));
        }
        backend.create_dir_all(&dir).map_err(io_err(&dir))?;
        check_identity(backend.as_ref(), &dir, node_id, &cluster_id)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let peer_stats = Arc::new(PeerStats::default());

        if let QuorumRole::Observer { bootstrap } = &role {
            if bootstrap.is_empty() {
                return Err(MetadataError::Config(
                    "an observer needs at least one controller to fetch from".into(),
                ));
            }
            let observer = Observer::open(&dir, &cluster_id, backend.clone())?;
            let shared = Arc::new(QuorumShared {
                node_id,
                cluster_id: cluster_id.clone(),
                config: config.clone(),
                transport,
                voters: BTreeMap::new(),
                bootstrap: bootstrap.clone(),
                raft: None,
                applied: None,
                images: observer.subscribe(),
                leader_hint: Mutex::new(None),
                observers: Mutex::new(BTreeMap::new()),
                peer_stats,
                next_bootstrap: Mutex::new(0),
                last_leader_contact: Mutex::new(Instant::now()),
                last_vote_granted: Mutex::new(Instant::now()),
            });
            let task = observer.spawn_fetcher(shared.clone(), shutdown_rx);
            return Ok(MetadataQuorum {
                shared,
                controller: None,
                observer: Some(observer),
                tasks: Mutex::new(vec![task]),
                shutdown,
            });
        }

        let log_store = FileLogStore::open_with(&dir, backend.clone())
            .map_err(io_err(&dir.join("raft.log")))?;
        let (state_machine, images) =
            MetadataStateMachine::open_with(&dir, &cluster_id, backend.clone())
                .map_err(io_err(&dir.join("snapshot")))?;
        let applied = state_machine.applied();
        // The voters the stored log was created with, read before openraft takes the files.
        let stored_voters = log_store
            .last_membership_voters()
            .or_else(|| state_machine.snapshot_voters());
        let raft_config = raft_config(&cluster_id, &config)?;
        let (voters, standalone) = match &role {
            QuorumRole::Voter { voters } => (voters.clone(), false),
            _ => (BTreeMap::from([(node_id, config.node_addr.clone())]), true),
        };
        if !voters.contains_key(&node_id) {
            return Err(MetadataError::Config(format!(
                "node {node_id} is not among the voters {:?}",
                voters.keys().collect::<Vec<_>>()
            )));
        }
        let raft = if standalone {
            Raft::new(
                node_id,
                raft_config,
                LocalOnlyNetwork,
                log_store,
                state_machine,
            )
            .await
        } else {
            let ctx = Arc::new(NetworkContext {
                transport: transport.clone(),
                caller: Caller {
                    cluster_id: cluster_id.clone(),
                    node_id,
                },
                voters: voters.clone(),
                stats: peer_stats.clone(),
            });
            Raft::new(
                node_id,
                raft_config,
                QuorumNetwork::new(ctx),
                log_store,
                state_machine,
            )
            .await
        }
        .map_err(|e| MetadataError::Stopped(e.to_string()))?;

        let shared = Arc::new(QuorumShared {
            node_id,
            cluster_id: cluster_id.clone(),
            config: config.clone(),
            transport,
            voters: voters.clone(),
            bootstrap: Vec::new(),
            raft: Some(raft.clone()),
            applied: Some(applied),
            images,
            leader_hint: Mutex::new(None),
            observers: Mutex::new(BTreeMap::new()),
            peer_stats,
            next_bootstrap: Mutex::new(0),
            last_leader_contact: Mutex::new(Instant::now()),
            last_vote_granted: Mutex::new(Instant::now()),
        });
        let controller = Arc::new(Controller::new(shared.clone()));
        let quorum = MetadataQuorum {
            shared,
            controller: Some(controller.clone()),
            observer: None,
            tasks: Mutex::new(Vec::new()),
            shutdown,
        };
        // A static voter list of this node alone is a standalone quorum with a listener.
        let sole_voter = voters.len() == 1;
        let started = if sole_voter {
            quorum.become_sole_leader().await
        } else {
            quorum.join_voters(&voters, stored_voters).await
        };
        if let Err(e) = started {
            if let Err(join) = raft.shutdown().await {
                tracing::warn!(error = %join, "metadata quorum did not shut down cleanly");
            }
            return Err(e);
        }
        {
            let mut tasks = quorum.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.push(controller.spawn(shutdown_rx.clone(), quorum.shared.clone()));
            tasks.push(tokio::spawn(track_leader_log(
                quorum.shared.clone(),
                shutdown_rx.clone(),
            )));
            if !sole_voter {
                tasks.push(tokio::spawn(elect_when_leader_lost(
                    quorum.shared.clone(),
                    shutdown_rx,
                )));
            }
        }
        Ok(quorum)
    }

    fn raft(&self) -> Result<&Raft<TypeConfig>, MetadataError> {
        self.shared
            .raft
            .as_ref()
            .ok_or_else(|| MetadataError::Config("an observer has no Raft".into()))
    }

    /// Bootstraps the static voters on an empty log, and checks the log's voters against the
    /// configured ones otherwise.
    async fn join_voters(
        &self,
        voters: &BTreeMap<NodeId, String>,
        stored_voters: Option<Vec<NodeId>>,
    ) -> Result<(), MetadataError> {
        let raft = self.raft()?;
        let fatal = |e: openraft::error::Fatal<NodeId>| MetadataError::Stopped(e.to_string());
        let configured: Vec<NodeId> = voters.keys().copied().collect();
        if let Some(in_log) = stored_voters {
            if in_log != configured {
                return Err(MetadataError::Config(format!(
                    "controller.quorum.voters names voters {configured:?}, but this node's metadata log was created with voters {in_log:?}; the voter set cannot change (KIP-853 voter changes are not supported)"
                )));
            }
            return Ok(());
        }
        if !raft.is_initialized().await.map_err(fatal)? {
            // Every voter of an empty log writes the same first entry (the voter list) and
            // stands for election. Staggered by rank, so that when they all start together the
            // first one usually wins before the others stand and split the vote; a later one
            // that has meanwhile heard from a leader or voted does not initialize at all. A
            // pre-vote comes first, as for every later election: a voter whose peers are not up
            // yet (containers start in any order) waits a candidate timeout and asks again
            // instead of standing in vain (openraft logs each failed vote request as an error).
            let rank = voters.keys().position(|id| *id == self.shared.node_id);
            let stagger = self.shared.config.election_timeout_ms / 2;
            let delay = stagger.saturating_mul(rank.unwrap_or(0) as u64);
            let shared = self.shared.clone();
            let members: BTreeMap<NodeId, BasicNode> = voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let Some(raft) = shared.raft.clone() else {
                    return;
                };
                loop {
                    if raft.is_initialized().await.unwrap_or(true) {
                        return;
                    }
                    let heard = shared.last_heard();
                    if pre_vote(&shared, &raft).await && shared.last_heard() == heard {
                        break;
                    }
                    tokio::time::sleep(shared.config.candidate_timeout()).await;
                }
                tracing::info!(
                    node_id = shared.node_id,
                    voters = ?members.keys().collect::<Vec<_>>(),
                    "initializing the metadata log with the static voters of controller.quorum.voters"
                );
                if let Err(e) = raft.initialize(members).await {
                    // Another voter's vote request got here first: its leader brings the log.
                    tracing::debug!(error = %e, "not initializing the metadata log");
                }
            });
            return Ok(());
        }
        Ok(())
    }

    async fn become_sole_leader(&self) -> Result<(), MetadataError> {
        let raft = self.raft()?;
        let node_id = self.shared.node_id;
        let fatal = |e: openraft::error::Fatal<NodeId>| MetadataError::Stopped(e.to_string());
        if !raft.is_initialized().await.map_err(fatal)? {
            let members = BTreeMap::from([(
                node_id,
                BasicNode {
                    addr: self.shared.config.node_addr.clone(),
                },
            )]);
            tracing::info!(
                node_id,
                "initializing the metadata quorum with this node as sole voter"
            );
            raft.initialize(members)
                .await
                .map_err(|e| MetadataError::Raft(e.to_string()))?;
        }
        let wait_ms = self.shared.config.leader_wait_timeout_ms;
        // openraft publishes the membership read from the log shortly after start.
        let members = raft
            .wait(Some(Duration::from_millis(wait_ms)))
            .metrics(
                |m| {
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .next()
                        .is_some()
                },
                "membership loaded",
            )
            .await
            .map_err(|e| MetadataError::Stopped(e.to_string()))?;
        let sole_voter = members
            .membership_config
            .membership()
            .voter_ids()
            .eq([node_id]);
        if !sole_voter {
            return Err(MetadataError::Config(
                "this node's metadata log has other voters than this node, but no controller.quorum.voters is configured".into(),
            ));
        }
        if !raft.metrics().borrow().state.is_leader() {
            // A sole voter that restarted as follower would otherwise sit out an election
            // timeout before electing itself; there is no one to split the vote with.
            raft.trigger().elect().await.map_err(fatal)?;
        }
        let wait = raft
            .wait(Some(Duration::from_millis(wait_ms)))
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
            Err(WaitError::Timeout(..)) => Err(MetadataError::LeaderTimeout { waited_ms: wait_ms }),
            Err(WaitError::ShuttingDown) => {
                Err(MetadataError::Stopped("raft stopped while starting".into()))
            }
        }
    }

    /// The latest applied image. Never waits on the quorum.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.images.borrow().clone()
    }

    /// A receiver that is notified after every applied batch of log entries.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.images.clone()
    }

    /// Proposes `cmd` to the active controller, waits until it is committed and applied here,
    /// and returns what apply said, within the default write timeout.
    pub async fn write(&self, cmd: ControllerCommand) -> Result<CommandOutcome, MetadataError> {
        let timeout = Duration::from_millis(self.shared.config.write_timeout_ms);
        self.write_within(cmd, timeout).await
    }

    /// [`MetadataQuorum::write`] with a deadline: a write that finds no active controller is
    /// retried with backoff (NOT_CONTROLLER, unreachable controllers) until `timeout` passes.
    /// When this returns `Ok`, [`image`](Self::image) already reflects the command.
    pub async fn write_within(
        &self,
        cmd: ControllerCommand,
        timeout: Duration,
    ) -> Result<CommandOutcome, MetadataError> {
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut backoff_ms = shared.config.retry_backoff_ms.max(1);
        loop {
            let answer = if shared.is_local_leader() {
                shared.propose_local(cmd.clone(), deadline).await
            } else {
                self.forward(&cmd, deadline).await
            };
            let last_error = match answer {
                Ok(resp) => {
                    shared.wait_applied(resp.log_index, deadline).await?;
                    return resp.result.map_err(MetadataError::Rejected);
                }
                Err(e) if e.code == codes::NOT_CONTROLLER => {
                    shared.set_leader_hint(e.leader.clone());
                    e
                }
                Err(e) if e.code == codes::INCONSISTENT_CLUSTER_ID => {
                    return Err(MetadataError::Raft(e.message))
                }
                Err(e) if e.code == codes::REQUEST_TIMED_OUT => e,
                Err(e) if e.code == codes::UNKNOWN_SERVER_ERROR && e.leader.is_none() => e,
                Err(e) => return Err(MetadataError::Raft(e.to_string())),
            };
            tracing::debug!(node_id = shared.node_id, error = %last_error, "retrying a metadata write");
            let now = Instant::now();
            if now >= deadline {
                return Err(MetadataError::Timeout {
                    what: format!(
                        "the active controller to commit the command ({})",
                        last_error.message
                    ),
                });
            }
            let wait = Duration::from_millis(backoff_ms).min(deadline - now);
            tokio::time::sleep(wait).await;
            // Capped low: a new controller is usually elected within the fetch timeout, and a
            // write should reach it soon after rather than at the next step of a long backoff.
            backoff_ms = (backoff_ms * 2).min(WRITE_RETRY_BACKOFF_MS_MAX);
        }
    }

    /// Sends `cmd` to the leader this node knows of, or to the next controller it could ask.
    async fn forward(
        &self,
        cmd: &ControllerCommand,
        deadline: Instant,
    ) -> Result<ForwardResponse, RpcError> {
        let shared = &self.shared;
        let target = match shared.leader().filter(|l| l.node_id != shared.node_id) {
            Some(l) if !l.addr.is_empty() => l.addr,
            _ => match shared.next_contact() {
                Some(a) => a,
                None => return Err(shared.not_controller()),
            },
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let per_call = remaining.min(Duration::from_millis(
            shared.config.request_timeout_ms.max(1).saturating_mul(5),
        ));
        let request = ForwardRequest {
            caller: shared.caller(),
            command: cmd.clone(),
            timeout_ms: u64::try_from(per_call.as_millis()).unwrap_or(u64::MAX),
        };
        match rpc::call::<_, ForwardResponse>(
            shared.transport.as_ref(),
            &target,
            PrivateApi::ForwardCommand,
            &request,
            per_call + Duration::from_millis(shared.config.request_timeout_ms),
        )
        .await
        {
            Ok(answer) => answer,
            Err(e) => {
                // The leader may be gone: forget it so the next try asks around.
                shared.set_leader_hint(None);
                Err(RpcError::new(codes::REQUEST_TIMED_OUT, e.to_string()))
            }
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.shared.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }

    /// Whether this node is a voter (standalone or among static voters).
    pub fn is_voter(&self) -> bool {
        self.shared.raft.is_some()
    }

    /// The configured voters and their controller listeners (empty for observers).
    pub fn voters(&self) -> &BTreeMap<NodeId, String> {
        &self.shared.voters
    }

    /// The active controller as far as this node knows.
    pub fn leader(&self) -> Option<LeaderHint> {
        self.shared.leader()
    }

    /// Whether this node is the active controller.
    pub fn is_active_controller(&self) -> bool {
        self.shared.is_local_leader()
    }

    /// The active-controller duties (broker registrations and heartbeats); voters only.
    pub fn controller(&self) -> Option<&Arc<Controller>> {
        self.controller.as_ref()
    }

    /// The server side of the private RPCs, for the controller listener.
    pub fn server(&self) -> QuorumServer {
        QuorumServer {
            shared: self.shared.clone(),
        }
    }

    /// openraft's metrics (voters only).
    pub fn metrics(&self) -> Option<watch::Receiver<RaftMetrics<NodeId, Node>>> {
        self.shared.raft.as_ref().map(Raft::metrics)
    }

    /// The last applied log index and a running digest of every entry applied up to it (voters
    /// only; the digest is `None` after a snapshot was loaded). Two voters with the same index
    /// and digest applied the same log prefix.
    pub fn applied_digest(&self) -> Option<(Option<u64>, Option<u64>)> {
        self.shared.applied.as_ref().map(|a| a.digest())
    }

    /// The underlying Raft handle (voters only).
    pub fn raft_handle(&self) -> Option<&Raft<TypeConfig>> {
        self.shared.raft.as_ref()
    }

    /// Stops the Raft task and the background tasks; an observer saves its image first.
    /// Everything acknowledged is already on disk. Later calls do nothing.
    pub async fn shutdown(&self) -> Result<(), MetadataError> {
        if self.shutdown.send_replace(true) {
            return Ok(());
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        if let Some(observer) = &self.observer {
            observer.save_now()?;
        }
        if let Some(raft) = &self.shared.raft {
            raft.shutdown()
                .await
                .map_err(|e| MetadataError::Stopped(e.to_string()))?;
        }
        Ok(())
    }

    /// What DescribeQuorum reports; only the leader can say (NOT_LEADER_OR_FOLLOWER otherwise).
    pub fn describe(&self) -> Result<QuorumDescription, RpcError> {
        describe(&self.shared)
    }
}

/// Stands for election when no leader was heard from for a follower timeout, and again after a
/// candidate timeout if the election was not won (see [`QuorumConfig::follower_timeout`]). A
/// pre-vote comes first, so a voter that could not win does not raise the term.
async fn elect_when_leader_lost(shared: Arc<QuorumShared>, mut shutdown: watch::Receiver<bool>) {
    let Some(raft) = shared.raft.clone() else {
        return;
    };
    let mut timeout = shared.config.follower_timeout();
    // When this voter last asked for votes itself; `None` since it last heard from others.
    let mut own_attempt: Option<Instant> = None;
    loop {
        let heard = shared.last_heard();
        let reference = own_attempt.map_or(heard, |a| a.max(heard));
        tokio::select! {
            _ = tokio::time::sleep_until(reference + timeout) => {}
            _ = shutdown.changed() => return,
        }
        if raft.metrics().borrow().state == ServerState::Leader {
            shared.touch_leader_contact();
            own_attempt = None;
            timeout = shared.config.follower_timeout();
            continue;
        }
        if shared.last_heard() > heard {
            // A leader spoke, or this voter granted a vote: a whole follower timeout again.
            own_attempt = None;
            timeout = shared.config.follower_timeout();
            continue;
        }
        own_attempt = Some(Instant::now());
        timeout = shared.config.candidate_timeout();
        if !pre_vote(&shared, &raft).await {
            // Not enough voters would vote for this node now (a stale log, or they still hear
            // from a leader): try again later without raising the term.
            tracing::debug!(
                node_id = shared.node_id,
                "pre-vote not granted; not standing"
            );
            continue;
        }
        tracing::debug!(
            node_id = shared.node_id,
            "no leader heard from; standing for election"
        );
        if raft.trigger().elect().await.is_err() {
            return;
        }
    }
}

/// Term and index of the last entry of this voter's log.
fn last_log(raft: &Raft<TypeConfig>) -> Option<(u64, u64)> {
    raft.data_metrics()
        .borrow()
        .last_log
        .map(|l| (l.leader_id.term, l.index))
}

/// The pre-vote rule (KIP-996): grant when this voter does not lead, has not heard from a leader
/// within the leader lease, and the candidate's log is at least as up to date as its own.
/// Nothing changes here: a pre-vote is only a question. The candidate's term is not compared: a
/// voter behind in terms learns the current one from the real vote that follows.
fn pre_vote_answer(
    shared: &QuorumShared,
    raft: &Raft<TypeConfig>,
    req: &rpc::PreVoteRequest,
) -> rpc::PreVoteResponse {
    let lease = Duration::from_millis(shared.config.leader_lease_ms());
    let contact = *shared
        .last_leader_contact
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let m = raft.metrics().borrow().clone();
    let leading = m.state == ServerState::Leader;
    let hears_leader = m.current_leader.is_some() && contact.elapsed() < lease;
    let log_ok = req.last_log >= last_log(raft);
    rpc::PreVoteResponse {
        granted: log_ok && !hears_leader && !leading,
    }
}

/// Asks every other voter whether it would vote for this node; true with a majority.
async fn pre_vote(shared: &Arc<QuorumShared>, raft: &Raft<TypeConfig>) -> bool {
    let request = Arc::new(rpc::PreVoteCall {
        caller: shared.caller(),
        voters: shared.voters.keys().copied().collect(),
        rpc: rpc::PreVoteRequest {
            term: raft.metrics().borrow().current_term + 1,
            last_log: last_log(raft),
        },
    });
    let timeout = Duration::from_millis(shared.config.request_timeout_ms.max(1));
    let mut asks = tokio::task::JoinSet::new();
    for (id, addr) in &shared.voters {
        if *id == shared.node_id {
            continue;
        }
        let (shared, request, addr) = (shared.clone(), request.clone(), addr.clone());
        asks.spawn(async move {
            let answer = rpc::call::<_, rpc::PreVoteResponse>(
                shared.transport.as_ref(),
                &addr,
                PrivateApi::RaftPreVote,
                request.as_ref(),
                timeout,
            )
            .await;
            matches!(answer, Ok(Ok(r)) if r.granted)
        });
    }
    let mut granted = 1;
    while let Some(answer) = asks.join_next().await {
        if answer.unwrap_or(false) {
            granted += 1;
        }
    }
    granted * 2 > shared.voters.len()
}

/// Keeps the leader's last log index where the network can judge a peer caught up, and clears
/// the peer and observer progress when leadership changes hands.
async fn track_leader_log(shared: Arc<QuorumShared>, mut shutdown: watch::Receiver<bool>) {
    let Some(raft) = shared.raft.clone() else {
        return;
    };
    let mut metrics = raft.metrics();
    let mut term_led = None;
    loop {
        let (is_leader, term, last) = {
            let m = metrics.borrow_and_update();
            (
                m.state == ServerState::Leader,
                m.current_term,
                m.last_log_index.unwrap_or(0),
            )
        };
        shared
            .peer_stats
            .leader_last_index
            .store(last, Ordering::Relaxed);
        let led = is_leader.then_some(term);
        if led != term_led {
            if let Some(epoch) = led {
                // Kafka's words for it; the fault tests check from every node's log that no
                // epoch had two leaders.
                tracing::info!(
                    "[RaftManager id={}] Completed transition to Leader(epoch={epoch}) of the metadata quorum",
                    shared.node_id
                );
            }
            shared.peer_stats.clear();
            shared
                .observers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            term_led = led;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// One replica's state in DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDescription {
    pub node_id: NodeId,
    /// Kafka's log end offset: one past the last entry the replica has (-1 if unknown).
    pub log_end_offset: i64,
    pub last_fetch_timestamp_ms: i64,
    pub last_caught_up_timestamp_ms: i64,
}

/// The leader's view of the quorum (Kafka's DescribeQuorum partition data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    pub leader_id: NodeId,
    pub leader_epoch: u64,
    /// One past the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaDescription>,
    pub observers: Vec<ReplicaDescription>,
    /// Voter id -> controller listener `host:port`.
    pub voter_endpoints: BTreeMap<NodeId, String>,
}

/// Observers that have not fetched for this long leave DescribeQuorum (Kafka's 5 minutes).
const OBSERVER_SESSION_MS: i64 = 300_000;

fn describe(shared: &QuorumShared) -> Result<QuorumDescription, RpcError> {
    let Some(raft) = &shared.raft else {
        return Err(RpcError::new(
            codes::NOT_LEADER_OR_FOLLOWER,
            "a broker-only node is not part of the quorum",
        ));
    };
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(RpcError::new(
            codes::NOT_LEADER_OR_FOLLOWER,
            "this controller is not the leader of the metadata quorum",
        ));
    }
    let now = wall_clock_ms();
    let leader_end = m.last_log_index.map(|i| i as i64 + 1).unwrap_or(0);
    let high_watermark = m.last_applied.map(|l| l.index as i64 + 1).unwrap_or(0);
    let replication = m.replication.clone().unwrap_or_default();
    let voters = m
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| {
            if id == shared.node_id {
                return ReplicaDescription {
                    node_id: id,
                    log_end_offset: leader_end,
                    last_fetch_timestamp_ms: now,
                    last_caught_up_timestamp_ms: now,
                };
            }
            let matched = replication.get(&id).copied().flatten();
            let progress = shared.peer_stats.get(id).unwrap_or_default();
            let ts = |t: i64| if t == 0 { -1 } else { t };
            ReplicaDescription {
                node_id: id,
                log_end_offset: matched.map(|l| l.index as i64 + 1).unwrap_or(-1),
                last_fetch_timestamp_ms: ts(progress.last_fetch_ms),
                last_caught_up_timestamp_ms: ts(progress.last_caught_up_ms),
            }
        })
        .collect();
    let observers = shared
        .observers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, o)| now - o.last_fetch_ms <= OBSERVER_SESSION_MS)
        .map(|(id, o)| ReplicaDescription {
            node_id: *id,
            log_end_offset: o.log_end_offset,
            last_fetch_timestamp_ms: o.last_fetch_ms,
            last_caught_up_timestamp_ms: o.last_caught_up_ms,
        })
        .collect();
    Ok(QuorumDescription {
        leader_id: shared.node_id,
        leader_epoch: m.current_term,
        high_watermark,
        voters,
        observers,
        voter_endpoints: shared.voters.clone(),
    })
}

/// Serves the private RPCs of the controller listener for one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QuorumServer {
    shared: Arc<QuorumShared>,
}

impl QuorumServer {
    /// Answers one private request; the body of the answer is always a JSON
    /// `Result<_, RpcError>`, so refusals reach the caller with their Kafka code.
    pub async fn handle(&self, api: PrivateApi, body: &[u8]) -> Vec<u8> {
        match api {
            PrivateApi::RaftVote => {
                let shared = self.shared.clone();
                self.raft_call(body, |raft, rpc| async move {
                    let answer = raft.vote(rpc).await;
                    if answer.as_ref().is_ok_and(|r| r.vote_granted) {
                        shared.touch_vote_granted();
                    }
                    answer
                })
                .await
            }
            PrivateApi::RaftAppendEntries => {
                let shared = self.shared.clone();
                self.raft_call(body, |raft, rpc| async move {
                    let answer = raft.append_entries(rpc).await;
                    // Success or a log conflict: either way a current leader is alive.
                    if matches!(
                        answer,
                        Ok(AppendEntriesResponse::Success
                            | AppendEntriesResponse::PartialSuccess(_)
                            | AppendEntriesResponse::Conflict)
                    ) {
                        shared.touch_leader_contact();
                    }
                    answer
                })
                .await
            }
            PrivateApi::RaftInstallSnapshot => {
                let shared = self.shared.clone();
                self.raft_call(body, |raft, rpc| async move {
                    let answer = raft.install_snapshot(rpc).await;
                    if answer.is_ok() {
                        shared.touch_leader_contact();
                    }
                    answer
                })
                .await
            }
            PrivateApi::RaftPreVote => {
                let shared = self.shared.clone();
                self.raft_call(body, |raft, rpc: rpc::PreVoteRequest| async move {
                    pre_vote_answer(&shared, &raft, &rpc)
                })
                .await
            }
            PrivateApi::MetadataFetch => {
                let answer = match serde_json::from_slice(body) {
                    Ok(req) => crate::observer::serve_fetch(&self.shared, req).await,
                    Err(e) => Err(bad_request(&e)),
                };
                rpc::encode(&answer)
            }
            PrivateApi::ForwardCommand => {
                let answer = match serde_json::from_slice::<ForwardRequest>(body) {
                    Ok(req) => self.forwarded(req).await,
                    Err(e) => Err(bad_request(&e)),
                };
                rpc::encode(&answer)
            }
        }
    }

    async fn raft_call<Req, Resp, F, Fut>(&self, body: &[u8], f: F) -> Vec<u8>
    where
        Req: for<'de> Deserialize<'de>,
        Resp: Serialize,
        F: FnOnce(Raft<TypeConfig>, Req) -> Fut,
        Fut: std::future::Future<Output = Resp>,
    {
        let call: rpc::RaftCall<Req> = match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => return rpc::encode(&Err::<(), _>(bad_request(&e))),
        };
        if let Err(e) = self.shared.check_caller(&call.caller) {
            return rpc::encode(&Err::<(), _>(e));
        }
        let ours: Vec<NodeId> = self.shared.voters.keys().copied().collect();
        if call.voters != ours {
            let e = RpcError::new(
                codes::INCONSISTENT_VOTER_SET,
                format!(
                    "node {} has voters {:?} in controller.quorum.voters, this node {} has {ours:?}",
                    call.caller.node_id, call.voters, self.shared.node_id
                ),
            );
            return rpc::encode(&Err::<(), _>(e));
        }
        let Some(raft) = self.shared.raft.clone() else {
            return rpc::encode(&Err::<(), _>(RpcError::new(
                codes::INVALID_REQUEST,
                "this node is not a voter",
            )));
        };
        let answer = f(raft, call.rpc).await;
        rpc::encode(&Ok::<_, RpcError>(answer))
    }

    async fn forwarded(&self, req: ForwardRequest) -> Result<ForwardResponse, RpcError> {
        self.shared.check_caller(&req.caller)?;
        if !self.shared.is_local_leader() {
            return Err(self.shared.not_controller());
        }
        let deadline = Instant::now() + Duration::from_millis(req.timeout_ms.min(120_000));
        self.shared.propose_local(req.command, deadline).await
    }

    /// DescribeQuorum, as [`MetadataQuorum::describe`].
    pub fn describe(&self) -> Result<QuorumDescription, RpcError> {
        describe(&self.shared)
    }

    /// The node's cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }
}

fn bad_request(e: &serde_json::Error) -> RpcError {
    RpcError::new(codes::INVALID_REQUEST, format!("unreadable request: {e}"))
}

/// Where the broker keeps the metadata quorum, as Kafka does: `<metadata.log.dir>/__cluster_metadata-0`.
pub fn quorum_dir(metadata_log_dir: &Path) -> PathBuf {
    metadata_log_dir.join("__cluster_metadata-0")
}
