//! The active controller's duties toward brokers: registration, heartbeats, fencing on session
//! expiry (KIP-631). The rules are [`crate::lifecycle`]'s; this is their shell on a voter: it
//! knows when this node leads, reads the image, proposes the transitions and answers.
//!
//! Only the leader answers; every other voter says NOT_CONTROLLER and names the leader it knows.
//! A voter starts acting as controller once it leads and has applied the blank entry of its
//! term (so its image holds everything committed before), and then treats every unfenced broker
//! as having just heartbeated. Requests are handled one at a time, so each decision sees the
//! transitions of the ones before it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::command::{CommandRejected, ControllerCommand};
use crate::lifecycle::{BrokerHeartbeats, Heartbeat, SessionError};
use crate::quorum::QuorumShared;
use crate::records::{BrokerRegistration, Endpoint};
use crate::rpc::{codes, LeaderHint};

/// The most partitions one leader-balancing check moves (Kafka's controller bounds its batch
/// the same way).
const BALANCED_PER_CHECK_MAX: usize = 1000;

/// A broker's registration request (Kafka's `BrokerRegistrationRequest`, as far as it matters
/// here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    pub node_id: i32,
    pub cluster_id: String,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The broker runs in this controller's process (never true for a request off the wire).
    pub co_located: bool,
    /// The broker epoch the broker's log dirs recorded at its last clean shutdown, -1 when it
    /// did not shut down cleanly (KIP-966's `PreviousBrokerEpoch`).
    pub previous_broker_epoch: i64,
}

/// The controller's answer to a heartbeat (Kafka's `BrokerHeartbeatResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// Why a registration or heartbeat failed; [`LifecycleError::code`] is the Kafka error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("this node is not the active controller")]
    NotController(Option<LeaderHint>),
    #[error("Expected cluster ID {expected}, but got cluster ID {got}")]
    InconsistentClusterId { expected: String, got: String },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{0}")]
    Rejected(CommandRejected),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

impl LifecycleError {
    /// The Kafka error code of this failure.
    pub fn code(&self) -> i16 {
        match self {
            LifecycleError::NotController(_) => codes::NOT_CONTROLLER,
            LifecycleError::InconsistentClusterId { .. } => codes::INCONSISTENT_CLUSTER_ID,
            LifecycleError::Session(SessionError::StaleBrokerEpoch(_)) => 77,
            LifecycleError::Session(SessionError::DuplicateBrokerRegistration) => 101,
            LifecycleError::Rejected(CommandRejected::StaleBrokerEpoch { .. }) => 77,
            LifecycleError::Rejected(_) => codes::INVALID_REQUEST,
            LifecycleError::Timeout(_) => codes::REQUEST_TIMED_OUT,
            LifecycleError::Other(_) => codes::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// How long one transition may take to commit before the broker is told to retry.
const PROPOSE_TIMEOUT_MS: u64 = 5000;

/// Broker lifecycle handling on one voter.
pub struct Controller {
    shared: Arc<QuorumShared>,
    heartbeats: Mutex<BrokerHeartbeats>,
    /// The term this node acts as controller in, once activated.
    active_term: Mutex<Option<u64>>,
    /// One registration or heartbeat at a time.
    serial: tokio::sync::Mutex<()>,
    epoch: Instant,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    pub(crate) fn new(shared: Arc<QuorumShared>) -> Self {
        Controller {
            heartbeats: Mutex::new(BrokerHeartbeats::new(
                shared.config.broker_session_timeout_ms,
            )),
            shared,
            active_term: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The term this node leads in and has caught up to, if any.
    fn leading_term(&self) -> Option<u64> {
        let raft = self.shared.raft.as_ref()?;
        let m = raft.metrics().borrow().clone();
        let caught_up = m
            .last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term);
        (m.state == ServerState::Leader
            && m.current_leader == Some(self.shared.node_id)
            && caught_up)
            .then_some(m.current_term)
    }

    /// Activates for a new term when this node leads it; deactivates otherwise.
    fn refresh(&self) -> bool {
        let term = self.leading_term();
        let mut active = lock(&self.active_term);
        if term != *active {
            if let Some(t) = term {
                let image = self.shared.images.borrow().clone();
                lock(&self.heartbeats).activate(&image, self.now_ms());
                tracing::info!(
                    term = t,
                    brokers = image.brokers.len(),
                    "Became the active controller; every unfenced broker starts a new session"
                );
            }
            *active = term;
        }
        active.is_some()
    }

    fn ensure_active(&self) -> Result<(), LifecycleError> {
        if self.refresh() {
            Ok(())
        } else {
            Err(LifecycleError::NotController(
                self.shared
                    .leader()
                    .filter(|l| l.node_id != self.shared.node_id),
            ))
        }
    }

    async fn propose(&self, cmd: ControllerCommand) -> Result<u64, LifecycleError> {
        let deadline = Instant::now() + Duration::from_millis(PROPOSE_TIMEOUT_MS);
        match self.shared.propose_local(cmd, deadline).await {
            Ok(resp) => match resp.result {
                Ok(_) => Ok(resp.log_index),
                Err(rejected) => Err(LifecycleError::Rejected(rejected)),
            },
            Err(e) if e.code == codes::NOT_CONTROLLER => {
                Err(LifecycleError::NotController(e.leader))
            }
            Err(e) if e.code == codes::REQUEST_TIMED_OUT => Err(LifecycleError::Timeout(e.message)),
            Err(e) => Err(LifecycleError::Other(e.message)),
        }
    }

    /// Registers a broker incarnation; returns its broker epoch.
    pub async fn register_broker(&self, req: RegistrationRequest) -> Result<u64, LifecycleError> {
        self.ensure_active()?;
        if req.cluster_id != self.shared.cluster_id {
            return Err(LifecycleError::InconsistentClusterId {
                expected: self.shared.cluster_id.clone(),
                got: req.cluster_id,
            });
        }
        let _one = self.serial.lock().await;
        let mut image = self.shared.images.borrow().clone();
        if image.brokers.is_empty() && image.finalized_features.is_empty() {
            // A log no broker has registered in yet is a new cluster: it starts with the
            // bootstrap feature levels, before anyone can read the finalized features.
            for (name, level) in self.shared.config.bootstrap_features.clone() {
                self.propose(ControllerCommand::SetFeatureLevel { name, level })
                    .await?;
            }
            let configs = &self.shared.config.bootstrap_cluster_configs;
            if !configs.is_empty() {
                self.propose(ControllerCommand::AlterBrokerConfigs {
                    node_id: None,
                    changes: configs
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                    // Proposed once, by the controller itself, on a log with no broker yet.
                    request_id: None,
                })
                .await?;
            }
            image = self.shared.images.borrow().clone();
        }
        if let Some(b) = image.broker(req.node_id) {
            if b.incarnation_id == req.incarnation_id {
                // A retry of a registration that went through: the epoch stays.
                return Ok(b.epoch);
            }
        }
        lock(&self.heartbeats).check_registration(
            &image,
            req.node_id,
            req.incarnation_id,
            req.co_located && u64::try_from(req.node_id) == Ok(self.shared.node_id),
            self.now_ms(),
        )?;
        if let Some(cmd) =
            crate::lifecycle::unclean_shutdown(&image, req.node_id, req.previous_broker_epoch)
        {
            tracing::info!(
                "Broker {} registered with previous broker epoch {}, not its last epoch: it shut down uncleanly, so it leaves every ISR and ELR.",
                req.node_id, req.previous_broker_epoch
            );
            self.propose(cmd).await?;
            image = self.shared.images.borrow().clone();
        }
        let previous = image.broker(req.node_id).map(|b| b.incarnation_id);
        let epoch = self
            .propose(ControllerCommand::RegisterBroker(BrokerRegistration {
                node_id: req.node_id,
                incarnation_id: req.incarnation_id,
                endpoints: req.endpoints,
                rack: req.rack,
                fenced: true,
            }))
            .await?;
        lock(&self.heartbeats).registered(req.node_id);
        match previous {
            None => tracing::info!(
                "No previous registration found for broker {}. New incarnation ID is {}. New broker epoch is {epoch}.",
                req.node_id, req.incarnation_id
            ),
            Some(p) => tracing::info!(
                "Registering a new incarnation of broker {}. Previous incarnation ID was {p}; new incarnation ID is {}. Broker epoch will become {epoch}.",
                req.node_id, req.incarnation_id
            ),
        }
        Ok(epoch)
    }

    /// Handles a heartbeat: records the contact and writes the transition it calls for.
    pub async fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, LifecycleError> {
        self.ensure_active()?;
        let _one = self.serial.lock().await;
        let image = self.shared.images.borrow().clone();
        let decision = lock(&self.heartbeats).heartbeat(&image, hb, self.now_ms())?;
        if let Some(cmd) = decision.command {
            let index = self.propose(cmd.clone()).await?;
            lock(&self.heartbeats).applied(&cmd, index);
        }
        if let Some(t) = decision.transition {
            tracing::info!("Broker {} {t}.", hb.node_id);
        }
        Ok(HeartbeatReply {
            is_caught_up: decision.is_caught_up,
            is_fenced: decision.is_fenced,
            should_shut_down: decision.should_shut_down,
        })
    }

    /// Fences brokers whose sessions expired, checking when the earliest session expires (as
    /// Kafka's controller schedules its `maybeFenceReplicas` event) and at least every session
    /// timeout / 8 (sessions started since the last check), and follows leadership changes.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        shared: Arc<QuorumShared>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        let period = Duration::from_millis((shared.config.broker_session_timeout_ms / 8).max(10));
        tokio::spawn(async move {
            let mut metrics = match &shared.raft {
                Some(r) => r.metrics(),
                None => return,
            };
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let balance_every = shared
                .config
                .leader_imbalance_check_interval_ms
                .map(Duration::from_millis);
            let mut last_balance = Instant::now();
            // Sessions are tracked only while this node is the active controller; a former
            // one's stale entries must not wake the loop.
            let mut active = false;
            loop {
                let expiry = lock(&me.heartbeats)
                    .next_check_ms()
                    .filter(|_| active)
                    .map(|at| {
                        Instant::now() + Duration::from_millis(at.saturating_sub(me.now_ms()))
                    });
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = async {
                        match expiry {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                    changed = metrics.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                }
                active = me.refresh();
                if active {
                    me.fence_expired().await;
                    if balance_every.is_some_and(|every| last_balance.elapsed() >= every) {
                        last_balance = Instant::now();
                        me.balance_leaders().await;
                    }
                }
            }
        })
    }

    /// `auto.leader.rebalance.enable`: a PREFERRED election for every partition whose first
    /// replica is in sync and live but does not lead (at most [`BALANCED_PER_CHECK_MAX`] per
    /// check), as Kafka's KRaft controller does every `leader.imbalance.check.interval.seconds`.
    async fn balance_leaders(&self) {
        let _one = self.serial.lock().await;
        let image = self.shared.images.borrow().clone();
        let partitions = crate::partition_change::imbalanced(&image, BALANCED_PER_CHECK_MAX);
        if partitions.is_empty() {
            return;
        }
        tracing::info!(
            "Moving the leadership of {} partition(s) back to their preferred replicas.",
            partitions.len()
        );
        if let Err(e) = self
            .propose(ControllerCommand::ElectLeaders {
                election: crate::partition_change::Election::Preferred,
                partitions,
            })
            .await
        {
            tracing::warn!(error = %e, "could not rebalance partition leaders");
        }
    }

    async fn fence_expired(&self) {
        let _one = self.serial.lock().await;
        loop {
            let image = self.shared.images.borrow().clone();
            let Some((node_id, broker_epoch)) =
                lock(&self.heartbeats).next_expired(&image, self.now_ms())
            else {
                return;
            };
            tracing::info!(
                "Fencing broker {node_id} at epoch {broker_epoch} because its session has timed out."
            );
            if let Err(e) = self
                .propose(ControllerCommand::FenceBroker {
                    node_id,
                    broker_epoch,
                })
                .await
            {
                tracing::warn!(node_id, error = %e, "could not fence broker");
                return;
            }
        }
    }
}
