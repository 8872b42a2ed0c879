//! Startup and shutdown of one node in its roles (`process.roles`): log dirs and
//! `meta.properties`, the metadata quorum (standalone, voter or observer) and, on a controller,
//! the controller listener; on a broker, registration with the active controller, catching up
//! with the metadata log, the hosted partitions and coordinators, unfencing, and only then the
//! client listeners. On SIGTERM the reverse: a controlled shutdown, then a clean-shutdown marker
//! so the next start skips log recovery.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rafka_client::{ConnectOptions, Pool};
use rafka_metadata::{MetadataQuorum, QuorumConfig, QuorumOptions, QuorumRole};
use rafka_storage::{Backend, FileBackend, LogDirs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::broker_client::BrokerClient;
use crate::cluster::controller_client::ControllerClient;
use crate::cluster::controller_listener::ControllerDispatch;
use crate::cluster::lifecycle::{BrokerLifecycle, BrokerState, LifecycleConfig};
use crate::cluster::transport::PoolTransport;
use crate::config::{BrokerConfig, QuorumMode};
use crate::connection::ConnectionLimits;
use crate::coordinator_task::CoordinatorContext;
use crate::group_coordinator::{self, GroupCoordinator, OFFSETS_TOPIC};
use crate::log_cleaner::{CleanerContext, LogCleaner};
use crate::now_ms;
use crate::partitions::{Partitions, PartitionsError};
use crate::producer_ids::ProducerIds;
use crate::server::{self, ConnectionCounter};
use crate::state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("log dir {path}: {source}")]
    LogDir {
        path: String,
        source: rafka_storage::StorageError,
    },
    /// Formatting or checking the log dirs (`meta.properties` mismatches, a partition in two
    /// dirs, a dir that cannot be created or read).
    #[error(transparent)]
    LogDirs(#[from] rafka_storage::LogDirsError),
    #[error("metadata quorum: {0}")]
    Metadata(#[from] rafka_metadata::MetadataError),
    #[error("partitions: {0}")]
    Partitions(#[from] PartitionsError),
    #[error("cannot bind listener {listener}: {source}")]
    Bind {
        listener: String,
        source: std::io::Error,
    },
    #[error("startup task failed: {0}")]
    Join(String),
    #[error(
        "Failed to acquire lock on file .lock in {path}. A Kafka instance in another process or \
         thread is using this directory."
    )]
    DirLocked { path: String },
    /// The broker could not register with the controller quorum.
    #[error("{0}")]
    Registration(String),
    /// The quorum settings cannot work (e.g. a dynamic quorum with no initial voters).
    #[error("{0}")]
    Quorum(String),
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    /// The broker lifecycle; `None` on a controller-only node.
    lifecycle: Option<Arc<BrokerLifecycle>>,
    /// The log cleaner threads (compaction), stopped first at shutdown.
    cleaner: Option<LogCleaner>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    bound: Vec<(String, SocketAddr)>,
    /// Held for the node's lifetime: the OS locks on every `<log.dir>/.lock` keep a second
    /// process off these directories (the metadata quorum's files live under the first, by
    /// default).
    _dir_locks: Vec<std::fs::File>,
}

/// This machine's address for advertised listeners written without a host: the host name
/// resolved (preferring a non-loopback IPv4 address, then IPv6), else the host name itself.
fn local_address() -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())?;
    let addrs: Vec<std::net::IpAddr> = (name.as_str(), 0)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default();
    let pick = addrs
        .iter()
        .find(|a| a.is_ipv4() && !a.is_loopback())
        .or_else(|| addrs.iter().find(|a| !a.is_loopback()));
    Some(pick.map_or(name, |a| a.to_string()))
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64 without padding (the same
/// encoding Kafka uses for topic ids in `partition.metadata`).
pub fn new_cluster_id() -> String {
    rafka_storage::uuid_to_base64(uuid::Uuid::new_v4().as_bytes())
}

/// The quorum tunables from the `controller.quorum.*` and broker session keys.
fn quorum_config(config: &BrokerConfig) -> QuorumConfig {
    QuorumConfig {
        election_timeout_ms: config.controller_quorum_election_timeout_ms,
        fetch_timeout_ms: config.controller_quorum_fetch_timeout_ms,
        request_timeout_ms: config.controller_quorum_request_timeout_ms,
        retry_backoff_ms: config.controller_quorum_retry_backoff_ms,
        broker_session_timeout_ms: config.broker_session_timeout_ms,
        // A new cluster starts with the feature levels Kafka 4.x formats new clusters with
        // (`transaction.version` 2). An existing cluster keeps what it had finalized across
        // restarts and upgrades, as in Kafka, where only UpdateFeatures changes a level; for
        // clusters created before rafka knew features that is level 0, so their clients keep
        // using Transactions V1.
        // Kafka 4.1 also formats new clusters with eligible leader replicas (KIP-966), and
        // writes this controller's `min.insync.replicas` as the cluster default so every leader
        // and the controller read the same value.
        bootstrap_features: vec![
            (
                crate::handlers::api_versions::TRANSACTION_VERSION_FEATURE.to_string(),
                rafka_txn::TransactionVersion::LATEST.feature_level(),
            ),
            (rafka_metadata::partition_change::ELR_FEATURE.to_string(), 1),
            // KIP-848's consumer protocol, as Kafka 4.x formats new clusters.
            (
                crate::handlers::consumer_group_heartbeat::GROUP_VERSION_FEATURE.to_string(),
                1,
            ),
        ],
        // The controller reads unclean.leader.election.enable from the image only, so a cluster
        // created with it on in the file keeps it as the cluster default.
        bootstrap_cluster_configs: config
            .value_of("min.insync.replicas")
            .map(|v| ("min.insync.replicas".to_string(), v))
            .into_iter()
            .chain(
                config
                    .value_of("unclean.leader.election.enable")
                    .filter(|v| v.eq_ignore_ascii_case("true"))
                    .map(|v| ("unclean.leader.election.enable".to_string(), v)),
            )
            .collect(),
        leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_ms,
        ..QuorumConfig::default()
    }
}

/// Which part this node plays in the metadata quorum.
fn quorum_role(config: &BrokerConfig) -> Result<QuorumRole, NodeError> {
    let voter_addrs = || -> BTreeMap<u64, String> {
        config
            .quorum_voters
            .iter()
            .map(|v| {
                let host = if v.host.contains(':') {
                    format!("[{}]", v.host)
                } else {
                    v.host.clone()
                };
                (v.id as u64, format!("{host}:{}", v.port))
            })
            .collect()
    };
    Ok(match config.quorum_mode() {
        QuorumMode::Standalone => QuorumRole::Standalone,
        QuorumMode::StaticVoters if config.process_roles.controller => QuorumRole::Voter {
            voters: voter_addrs(),
        },
        QuorumMode::StaticVoters => QuorumRole::Observer {
            bootstrap: voter_addrs().into_values().collect(),
        },
        QuorumMode::Bootstrap if config.process_roles.controller => {
            // Formatted with `kafka-storage format --standalone` / `--initial-controllers`.
            match rafka_metadata::initial_voters::read(&config.metadata_log_dir) {
                Ok(Some(voters)) => QuorumRole::Voter { voters },
                Ok(None) => return Err(NodeError::Quorum(
                    "controller.quorum.voters is not set on this controller and its metadata log dir holds no initial controllers: format it with `kafka-storage format --standalone` or `--initial-controllers`, or set controller.quorum.voters (changing voters later, KIP-853, is not supported)".into(),
                )),
                Err(e) => return Err(NodeError::Quorum(format!(
                    "cannot read the initial controllers written by kafka-storage format: {e}"
                ))),
            }
        }
        QuorumMode::Bootstrap => QuorumRole::Observer {
            bootstrap: config
                .quorum_bootstrap_servers
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
    })
}

impl Node {
    pub async fn start(mut config: BrokerConfig) -> Result<Node, NodeError> {
        if let Some((names, address)) = config.resolve_empty_advertised_hosts(local_address) {
            tracing::info!(
                listeners = %names.join(","),
                "Advertised listeners without a host are advertised as {address}, the address of this host"
            );
        }
        let config = Arc::new(config);
        let roles = config.process_roles;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // The HTTP listener comes up first, so that `/livez` answers (and `/readyz` says why
        // not yet) during log recovery and while the quorum forms.
        let http = Arc::new(crate::http::HttpState::new(
            metrics.clone(),
            roles.broker,
            config.broker_session_timeout_ms,
        ));
        if let Some((host, port)) = &config.http_listener {
            let socket =
                crate::http::bind(host, *port)
                    .await
                    .map_err(|source| NodeError::Bind {
                        listener: format!("http.listener={host}:{port}"),
                        source,
                    })?;
            if let Ok(addr) = socket.local_addr() {
                tracing::info!(%addr, "Listening (http: /metrics, /livez, /readyz, /)");
            }
            tasks.push(tokio::spawn(crate::http::serve(
                socket,
                http.clone(),
                shutdown_rx.clone(),
            )));
        }
        let backend: Arc<dyn Backend> = Arc::new(FileBackend);
        let log_dirs = LogDirs::new(&config.log_dirs, backend.clone())?;
        log_dirs.create_all()?;
        let mut dir_locks = Vec::with_capacity(log_dirs.len());
        for d in log_dirs.dirs() {
            dir_locks.push(lock_dir(d.path()).map_err(|_| NodeError::DirLocked {
                path: d.path().display().to_string(),
            })?);
        }
        // Every dir must agree on the cluster and node ids (Kafka refuses to start otherwise);
        // dirs without meta.properties are formatted, each with its own directory.id.
        let formatted =
            log_dirs.load_or_format(config.cluster_id.as_deref(), config.node_id, &mut || {
                *uuid::Uuid::new_v4().as_bytes()
            })?;
        let cluster_id = formatted.cluster_id.clone();
        for dir in &formatted.formatted {
            tracing::info!(cluster_id = %cluster_id, dir = %dir.display(), "Formatting log directory");
        }
        let dir_error = |d: &rafka_storage::LogDir, source| NodeError::LogDir {
            path: d.path().display().to_string(),
            source,
        };
        let mut clean_shutdown = Vec::with_capacity(log_dirs.len());
        // KIP-966: the epoch every dir's marker recorded, or -1 when any dir did not shut down
        // cleanly (as Kafka's `LogManager` reads it).
        let mut marker_epochs = Vec::with_capacity(log_dirs.len());
        for d in log_dirs.dirs() {
            marker_epochs.push(
                d.clean_shutdown_broker_epoch()
                    .map_err(|e| dir_error(d, e))?,
            );
            let clean = d.had_clean_shutdown().map_err(|e| dir_error(d, e))?;
            let fresh = formatted.formatted.iter().any(|f| f == d.path());
            if clean {
                tracing::info!(dir = %d.path().display(), "Previous shutdown was clean; skipping log recovery");
            } else if !fresh {
                tracing::info!(dir = %d.path().display(), "No clean shutdown marker; recovering logs from their recovery points");
            }
            clean_shutdown.push(clean);
        }
        let previous_broker_epoch = match marker_epochs.first() {
            Some(Some(e)) if marker_epochs.iter().all(|m| *m == Some(*e)) => *e,
            _ => -1,
        };
        // Reads the checkpoints and finds every partition's dir before anything else happens,
        // so a partition found in two dirs stops the start with the markers still in place.
        let dynamic_config = Arc::new(crate::dynamic_config::DynamicBrokerConfig::new(
            config.clone(),
        ));
        let partitions = Arc::new(
            Partitions::open(
                config.node_id,
                log_dirs.clone(),
                backend.clone(),
                dynamic_config.clone(),
                &clean_shutdown,
            )
            .map_err(|e| match e {
                PartitionsError::LogDirs(e) => NodeError::LogDirs(e),
                e => NodeError::Partitions(e),
            })?,
        );
        // A marker only vouches for the shutdown that wrote it: remove it before anything can
        // be appended, so a crash from here on is recovered. Each dir has its own.
        for d in log_dirs.dirs() {
            d.clear_clean_shutdown().map_err(|e| dir_error(d, e))?;
        }

        let mut bound = Vec::new();
        let counter = Arc::new(ConnectionCounter::default());
        let limits = ConnectionLimits {
            queued_max_requests: config.queued_max_requests,
            socket_request_max_bytes: config.socket_request_max_bytes,
            connections_max_idle_ms: config.connections_max_idle_ms,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
        };
        let connect_options = ConnectOptions {
            client_id: format!("rafka-node-{}", config.node_id),
            connect_timeout: Duration::from_millis(config.controller_quorum_request_timeout_ms),
            ..ConnectOptions::default()
        };
        let pool = Arc::new(Pool::new(connect_options.clone()));

        // The metadata quorum. A voter binds its controller listener first, so peers that start
        // at the same moment can reach it while it joins.
        let role = quorum_role(&config)?;
        let mut controller_sockets = Vec::new();
        if matches!(role, QuorumRole::Voter { .. }) {
            for l in &config.controller_listeners {
                let b = server::bind(l).await.map_err(|source| NodeError::Bind {
                    listener: l.to_string(),
                    source,
                })?;
                if let Some(addr) = b.local_addr() {
                    tracing::info!(listener = %l.name, %addr, "Listening (controller)");
                    bound.push((l.name.clone(), addr));
                }
                controller_sockets.push(b);
            }
        }
        let quorum = Arc::new(
            MetadataQuorum::open(QuorumOptions {
                dir: config.metadata_log_dir.join("__cluster_metadata-0"),
                node_id: config.node_id as u64,
                cluster_id: cluster_id.clone(),
                role,
                config: quorum_config(&config),
                backend: backend.clone(),
                transport: Arc::new(PoolTransport::new(&connect_options, pool.clone())),
            })
            .await?,
        );
        let controller_dispatch = Arc::new(ControllerDispatch {
            quorum: quorum.clone(),
            limits,
        });
        for b in controller_sockets {
            tasks.push(tokio::spawn(server::accept_loop(
                controller_dispatch.clone(),
                b,
                counter.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
            )));
        }

        let (groups, groups_inbox) = GroupCoordinator::new();
        let (txns, txns_inbox) = crate::txn_coordinator::TxnCoordinatorHandle::new();
        let controller_client = Arc::new(ControllerClient::new(pool.clone()));
        let brokers = Arc::new(BrokerClient::new(
            pool.clone(),
            config.inter_broker_listener.clone(),
        ));
        let replica_fetch_client = Arc::new(BrokerClient::new(
            Arc::new(Pool::new(connect_options.clone())),
            config.inter_broker_listener.clone(),
        ));
        let shared = Arc::new(Shared {
            config: config.clone(),
            dynamic_config,
            cluster_id,
            node_id: config.node_id,
            quorum: quorum.clone(),
            controller_client: controller_client.clone(),
            brokers,
            replica_fetch_client,
            partitions,
            groups,
            producer_ids: Arc::new(ProducerIds::new(config.node_id, quorum.clone())),
            txns,
            fetch_sessions: std::sync::Mutex::new(crate::fetch_sessions::FetchSessionCache::new(
                config.max_incremental_fetch_session_cache_slots,
                u64::from_le_bytes(
                    uuid::Uuid::new_v4().as_bytes()[..8]
                        .try_into()
                        .unwrap_or([1; 8]),
                ),
            )),
            metrics: metrics.clone(),
        });
        http.set_shared(shared.clone());

        if !roles.broker {
            tracing::info!(
                "[KafkaRaftServer nodeId={}] Kafka Server started",
                shared.node_id
            );
            return Ok(Node {
                shared,
                lifecycle: None,
                cleaner: None,
                shutdown_tx,
                tasks,
                bound,
                _dir_locks: dir_locks,
            });
        }

        // KIP-631: register this incarnation, then catch up with the metadata log.
        let endpoints: Vec<rafka_metadata::Endpoint> = config
            .advertised_listeners
            .iter()
            .map(|l| rafka_metadata::Endpoint {
                listener: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
                security_protocol: l.protocol.name().to_string(),
            })
            .collect();
        let lifecycle = BrokerLifecycle::new(
            LifecycleConfig {
                node_id: config.node_id,
                cluster_id: shared.cluster_id.clone(),
                endpoints,
                rack: config.rack.clone(),
                heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
                registration_timeout: Duration::from_millis(
                    config.initial_broker_registration_timeout_ms,
                ),
                request_timeout: Duration::from_millis(config.controller_quorum_request_timeout_ms),
                previous_broker_epoch,
            },
            controller_client,
        );
        http.set_lifecycle(lifecycle.clone());
        let epoch = match lifecycle.register(&quorum).await {
            Ok(epoch) => epoch,
            Err(e) => {
                let _ = shutdown_tx.send(true);
                let _ = quorum.shutdown().await;
                return Err(NodeError::Registration(e));
            }
        };
        tasks.push(tokio::spawn(
            lifecycle.clone().run(quorum.clone(), shutdown_rx.clone()),
        ));
        lifecycle.wait_for(BrokerState::Recovery).await;

        // RECOVERY: open (and recover) the hosted partitions, load the coordinators.
        {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                shared.partitions.reconcile(&shared.image(), now_ms())
            })
            .await
            .map_err(|e| NodeError::Join(e.to_string()))??;
        }
        let cleaner = LogCleaner::start(CleanerContext {
            partitions: shared.partitions.clone(),
            broker_config: shared.dynamic_config.clone(),
            images: quorum.subscribe(),
        });
        // Images reach the coordinators only after the partitions follow them: a shell that
        // saw a new leadership before its log was open would skip the partition and never look
        // again.
        let (reconciled_tx, reconciled) = watch::channel(shared.image());
        tasks.push(tokio::spawn(follow_metadata(
            shared.clone(),
            reconciled_tx,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(checkpoint_loop(
            shared.clone(),
            shutdown_rx.clone(),
        )));
        // Replication: followers fetch from their leaders once their logs are open; leaders
        // drop followers that fell behind.
        tasks.push(tokio::spawn(crate::cluster::fetcher::run(
            shared.clone(),
            reconciled.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::cluster::isr::shrink_loop(
            shared.clone(),
            shutdown_rx.clone(),
        )));
        // An existing __consumer_offsets decides the partition count groups hash over.
        let offsets_partitions = shared
            .image()
            .topic_by_name(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .unwrap_or(config.offsets_topic_num_partitions);
        // The coordinator shells see only the node id, the images and the hosted partitions
        // (plus, for transactions, producer ids and the group coordinator); they end on the
        // shutdown signal.
        let coordinator_context = CoordinatorContext {
            node_id: config.node_id,
            images: reconciled,
            latest: quorum.subscribe(),
            partitions: shared.partitions.clone(),
        };
        tasks.push(group_coordinator::spawn(
            groups_inbox,
            config.group_config(offsets_partitions),
            coordinator_context.clone(),
            shutdown_rx.clone(),
        ));
        let txn_partitions = shared
            .image()
            .topic_by_name(rafka_txn::TRANSACTION_STATE_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .unwrap_or(config.transaction_state_log_num_partitions);
        tasks.push(crate::txn_coordinator::spawn(
            txns_inbox,
            config.txn_config(txn_partitions),
            coordinator_context,
            shared.producer_ids.clone(),
            shared.groups.clone(),
            crate::txn_coordinator::MarkerSender {
                // Connections of its own, as Kafka's marker channel manager has: a marker
                // write waits for its followers, and must not hold up the verification
                // requests that share `shared.brokers`.
                brokers: Arc::new(BrokerClient::new(
                    Arc::new(Pool::new(connect_options.clone())),
                    config.inter_broker_listener.clone(),
                )),
                request_timeout: Duration::from_millis(config.request_timeout_ms),
            },
            shutdown_rx.clone(),
        ));

        // Unfenced, this broker leads its partitions again: wait until this node's own image
        // says so, then load the groups and transactions it now coordinates before the first
        // client request can arrive.
        lifecycle.set_ready_to_unfence();
        lifecycle.wait_for(BrokerState::Running).await;
        let node_id = config.node_id;
        let mut images = quorum.subscribe();
        let _ = images
            .wait_for(|i| {
                i.broker(node_id)
                    .is_some_and(|b| b.epoch == epoch && !b.fenced)
            })
            .await;
        {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                shared.partitions.reconcile(&shared.image(), now_ms())
            })
            .await
            .map_err(|e| NodeError::Join(e.to_string()))??;
        }
        shared.groups.sync_partitions().await;
        shared.txns.sync_partitions().await;

        // Kafka opens the client listeners only once the broker is unfenced.
        let client_dispatch = Arc::new(crate::handlers::ClientDispatch {
            shared: shared.clone(),
        });
        for l in &config.listeners {
            let b = server::bind(l).await.map_err(|source| NodeError::Bind {
                listener: l.to_string(),
                source,
            })?;
            if let Some(addr) = b.local_addr() {
                tracing::info!(listener = %l.name, %addr, "Listening");
                bound.push((l.name.clone(), addr));
            }
            tasks.push(tokio::spawn(server::accept_loop(
                client_dispatch.clone(),
                b,
                counter.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
            )));
        }
        http.set_listening();
        // The line tools wait for (Testcontainers, compose healthchecks, scripts).
        tracing::info!(
            "[KafkaRaftServer nodeId={}] Kafka Server started",
            shared.node_id
        );
        Ok(Node {
            shared,
            lifecycle: Some(lifecycle),
            cleaner: Some(cleaner),
            shutdown_tx,
            tasks,
            bound,
            _dir_locks: dir_locks,
        })
    }

    /// The addresses the listeners are bound to (port 0 in config becomes the real port here).
    pub fn bound_addresses(&self) -> &[(String, SocketAddr)] {
        &self.bound
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Controlled shutdown (the broker leaves: its leaderships move and it is fenced), then
    /// stops accepting, closes connections, flushes every log, writes the checkpoints and the
    /// clean-shutdown marker, and stops the quorum.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let node_id = self.shared.node_id;
        tracing::info!("[KafkaRaftServer nodeId={node_id}] shutting down");
        if let Some(lifecycle) = &self.lifecycle {
            // Bounded so the whole stop fits in `docker stop`'s 10 s grace period.
            lifecycle
                .controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT)
                .await;
        }
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(cleaner) = self.cleaner {
            // Joins the cleaner threads (a pass in progress stops at its next batch).
            let _ = tokio::task::spawn_blocking(move || cleaner.shutdown()).await;
        }
        let shared = self.shared;
        if let Some(lifecycle) = &self.lifecycle {
            let s = shared.clone();
            let broker_epoch = i64::try_from(lifecycle.broker_epoch()).unwrap_or(-1);
            tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
                s.partitions.close_all()?;
                s.partitions
                    .write_clean_shutdown_marker(broker_epoch)
                    .map_err(|source| NodeError::LogDir {
                        path: s
                            .config
                            .log_dirs
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        source,
                    })
            })
            .await
            .map_err(|e| NodeError::Join(e.to_string()))??;
        }
        if let Err(e) = shared.quorum.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
        tracing::info!("[KafkaRaftServer nodeId={node_id}] shut down completed");
        Ok(())
    }
}

/// How long SIGTERM waits for the controller to approve the controlled shutdown.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

fn lock_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    file.try_lock().map_err(std::io::Error::other)?;
    Ok(file)
}

/// Applies every new metadata image to the hosted partitions, then passes it on to `reconciled`
/// (what the coordinators follow).
async fn follow_metadata(
    shared: Arc<Shared>,
    reconciled: watch::Sender<Arc<rafka_metadata::MetadataImage>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = shared.quorum.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        let s = shared.clone();
        let applied = image.clone();
        let result =
            tokio::task::spawn_blocking(move || s.partitions.reconcile(&applied, now_ms())).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "Applying metadata to partitions failed"),
            Err(e) => tracing::error!(error = %e, "Applying metadata to partitions panicked"),
        }
        reconciled.send_replace(image);
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Kafka's `log.flush.offset.checkpoint.interval.ms` (60 s): recovery points and log start
/// offsets are checkpointed so a crash recovers from a recent point instead of the start; high
/// watermarks every `replica.high.watermark.checkpoint.interval.ms`. The same loop runs the
/// time-based flush (`flush.ms`) once a second when it is configured.
async fn checkpoint_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    const CHECKPOINT_INTERVAL_MS: u64 = 60_000;
    const FLUSH_CHECK_INTERVAL_MS: u64 = 1_000;
    let mut tick = tokio::time::interval(Duration::from_millis(FLUSH_CHECK_INTERVAL_MS));
    let mut since_checkpoint_ms = 0;
    let mut since_hw_checkpoint_ms = 0;
    let hw_checkpoint_ms = shared.config.replica.high_watermark_checkpoint_interval_ms;
    let mut since_producer_expiry_ms = 0;
    let mut since_retention_ms = 0;
    let retention_check_ms = shared.config.log_retention_check_interval_ms;
    let producer_check_ms = shared.config.producer_id_expiration_check_interval_ms;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        since_checkpoint_ms += FLUSH_CHECK_INTERVAL_MS;
        let checkpoint = since_checkpoint_ms >= CHECKPOINT_INTERVAL_MS;
        if checkpoint {
            since_checkpoint_ms = 0;
        }
        since_hw_checkpoint_ms += FLUSH_CHECK_INTERVAL_MS;
        let checkpoint_hw = since_hw_checkpoint_ms >= hw_checkpoint_ms;
        if checkpoint_hw {
            since_hw_checkpoint_ms = 0;
        }
        since_producer_expiry_ms += FLUSH_CHECK_INTERVAL_MS;
        let expire_producers = since_producer_expiry_ms >= producer_check_ms;
        if expire_producers {
            since_producer_expiry_ms = 0;
        }
        since_retention_ms += FLUSH_CHECK_INTERVAL_MS;
        let check_retention = since_retention_ms >= retention_check_ms;
        if check_retention {
            since_retention_ms = 0;
        }
        let s = shared.clone();
        let r = tokio::task::spawn_blocking(move || {
            s.partitions.flush_due(now_ms());
            // Unlinks of deleted segment files are checked every tick; retention itself runs
            // every log.retention.check.interval.ms.
            s.partitions.enforce_retention(now_ms(), check_retention);
            if expire_producers {
                s.partitions
                    .expire_producers(now_ms(), s.effective_config().producer_id_expiration_ms);
            }
            if checkpoint_hw {
                s.partitions.checkpoint_high_watermarks()?;
            }
            if checkpoint {
                s.partitions.checkpoint()
            } else {
                Ok(())
            }
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "Writing checkpoints failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        // URL-safe alphabet: 0xfb 0xff 0xbf encode to "-_-_".
        let mut bytes = [0u8; 16];
        bytes[..3].copy_from_slice(&[0xfb, 0xff, 0xbf]);
        assert!(rafka_storage::uuid_to_base64(&bytes).starts_with("-_-_"));
    }
}
