//! The broker side of KIP-631: register this incarnation with the active controller, heartbeat,
//! catch up with the metadata log (STARTING -> RECOVERY), ask to be unfenced once the logs are
//! open (RECOVERY -> RUNNING), and on SIGTERM ask for a controlled shutdown
//! (PENDING_CONTROLLED_SHUTDOWN -> SHUTTING_DOWN). Kafka's `BrokerLifecycleManager`, including
//! its log lines.
//!
//! The active controller may be this very node (a combined node, or the zero-config single
//! node): then the calls go to it in-process; otherwise they are Kafka's BrokerRegistration and
//! BrokerHeartbeat requests to its controller listener. A call that finds no active controller,
//! or one that answers NOT_CONTROLLER, is retried after a short wait while the quorum settles.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::{Endpoint, Heartbeat, HeartbeatReply, LifecycleError, MetadataQuorum};
use rafka_protocol::kafka_protocol::messages::broker_registration_request::Listener;
use rafka_protocol::kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use uuid::Uuid;

use super::controller_client::{ControllerCallError, ControllerClient};

/// Kafka's `BrokerState`, as far as the lifecycle moves through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BrokerState {
    Starting,
    Recovery,
    Running,
    PendingControlledShutdown,
    ShuttingDown,
}

impl BrokerState {
    fn name(self) -> &'static str {
        match self {
            BrokerState::Starting => "STARTING",
            BrokerState::Recovery => "RECOVERY",
            BrokerState::Running => "RUNNING",
            BrokerState::PendingControlledShutdown => "PENDING_CONTROLLED_SHUTDOWN",
            BrokerState::ShuttingDown => "SHUTTING_DOWN",
        }
    }
}

/// Versions spoken to a rafka controller listener.
const REGISTRATION_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 1;
/// How soon to retry while the quorum has no active controller, or while catching up.
const RETRY_SOON: Duration = Duration::from_millis(100);
/// Kafka's heartbeat delay while STARTING and after the first PENDING_CONTROLLED_SHUTDOWN answer.
const STARTING_HEARTBEAT: Duration = Duration::from_millis(10);
const SHUTDOWN_HEARTBEAT: Duration = Duration::from_millis(50);

/// Settings of one broker incarnation.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub node_id: i32,
    pub cluster_id: String,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub heartbeat_interval: Duration,
    pub registration_timeout: Duration,
    pub request_timeout: Duration,
    /// The broker epoch of the last clean shutdown, -1 if it was not clean (KIP-966).
    pub previous_broker_epoch: i64,
}

#[derive(Debug)]
enum CallError {
    /// Ask again soon: no active controller, or the one asked is not it any more.
    NotController,
    /// The controller refused; Kafka's error name for the log.
    Refused(ResponseError, String),
    Unreachable(String),
}

fn refused(code: i16, detail: impl Into<String>) -> CallError {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::NotController) => CallError::NotController,
        Some(e) => CallError::Refused(e, detail.into()),
        None => CallError::Unreachable(format!("unknown error code {code}")),
    }
}

fn lifecycle_error(e: LifecycleError) -> CallError {
    match e {
        LifecycleError::NotController(_) => CallError::NotController,
        e => refused(e.code(), e.to_string()),
    }
}

fn call_error(e: ControllerCallError) -> CallError {
    match e {
        ControllerCallError::NoController => CallError::NotController,
        e => CallError::Unreachable(e.to_string()),
    }
}

fn error_name(e: &ResponseError) -> String {
    // Kafka logs the `Errors` enum name: DUPLICATE_BROKER_REGISTRATION, ...
    let debug = format!("{e:?}");
    let mut out = String::with_capacity(debug.len() + 8);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One broker incarnation's lifecycle.
pub struct BrokerLifecycle {
    config: LifecycleConfig,
    incarnation_id: Uuid,
    client: Arc<ControllerClient>,
    broker_epoch: AtomicU64,
    ready_to_unfence: AtomicBool,
    state: watch::Sender<BrokerState>,
    wake: Notify,
    /// When the active controller last answered a heartbeat, and whether it said fenced (the
    /// readiness endpoint: a broker whose heartbeats go unanswered for a session is fenced).
    last_answer: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl std::fmt::Debug for BrokerLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLifecycle")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

macro_rules! lifecycle_log {
    ($level:ident, $me:expr, $($arg:tt)*) => {
        tracing::$level!("[BrokerLifecycleManager id={}] {}", $me.config.node_id, format!($($arg)*))
    };
}

impl BrokerLifecycle {
    pub fn new(config: LifecycleConfig, client: Arc<ControllerClient>) -> Arc<Self> {
        let incarnation_id = Uuid::new_v4();
        let me = Arc::new(BrokerLifecycle {
            config,
            incarnation_id,
            client,
            broker_epoch: AtomicU64::new(0),
            ready_to_unfence: AtomicBool::new(false),
            state: watch::channel(BrokerState::Starting).0,
            wake: Notify::new(),
            last_answer: std::sync::Mutex::new(None),
        });
        lifecycle_log!(
            info,
            me,
            "Incarnation {} of broker {} in cluster {} is now STARTING.",
            incarnation_id,
            me.config.node_id,
            me.config.cluster_id
        );
        me
    }

    pub fn state(&self) -> BrokerState {
        *self.state.borrow()
    }

    /// How long ago the active controller last answered a heartbeat, and whether that answer
    /// said this broker is fenced; `None` before the first answer.
    pub fn last_heartbeat_answer(&self) -> Option<(std::time::Duration, bool)> {
        self.last_answer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(at, fenced)| (at.elapsed(), fenced))
    }

    /// Kafka's `BrokerState` number, as its `kafka.server:type=KafkaServer,name=BrokerState`
    /// gauge reports it.
    pub fn state_number(&self) -> i64 {
        match self.state() {
            BrokerState::Starting => 1,
            BrokerState::Recovery => 2,
            BrokerState::Running => 3,
            BrokerState::PendingControlledShutdown => 6,
            BrokerState::ShuttingDown => 7,
        }
    }

    pub fn state_name(&self) -> &'static str {
        self.state().name()
    }

    pub fn broker_epoch(&self) -> u64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    fn transition(&self, to: BrokerState) {
        let from = self.state();
        if from != to {
            self.state.send_replace(to);
        }
    }

    /// Registers this incarnation, retrying until `initial.broker.registration.timeout.ms`.
    pub async fn register(&self, quorum: &MetadataQuorum) -> Result<u64, String> {
        let deadline = Instant::now() + self.config.registration_timeout;
        let mut last_error = String::new();
        loop {
            let wait = match self.try_register(quorum).await {
                Ok(epoch) => {
                    self.broker_epoch.store(epoch, Ordering::Release);
                    lifecycle_log!(
                        info,
                        self,
                        "Successfully registered broker {} with broker epoch {epoch}",
                        self.config.node_id
                    );
                    return Ok(epoch);
                }
                Err(CallError::NotController) => RETRY_SOON,
                Err(CallError::Refused(e, detail)) => {
                    let text = format!(
                        "Unable to register broker {} because the controller returned error {}",
                        self.config.node_id,
                        error_name(&e)
                    );
                    if text != last_error {
                        lifecycle_log!(warn, self, "{text} ({detail})");
                        last_error = text;
                    }
                    self.config.heartbeat_interval
                }
                Err(CallError::Unreachable(why)) => {
                    let text = format!("Unable to register broker {}. {why}", self.config.node_id);
                    if text != last_error {
                        lifecycle_log!(warn, self, "{text}");
                        last_error = text;
                    }
                    RETRY_SOON
                }
            };
            if Instant::now() + wait > deadline {
                lifecycle_log!(
                    error,
                    self,
                    "Shutting down because we were unable to register with the controller quorum."
                );
                return Err(format!(
                    "broker {} could not register with the controller quorum within initial.broker.registration.timeout.ms ({} ms){}",
                    self.config.node_id,
                    self.config.registration_timeout.as_millis(),
                    if last_error.is_empty() { String::new() } else { format!(": {last_error}") }
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn try_register(&self, quorum: &MetadataQuorum) -> Result<u64, CallError> {
        if quorum.is_active_controller() {
            if let Some(controller) = quorum.controller() {
                return controller
                    .register_broker(rafka_metadata::RegistrationRequest {
                        node_id: self.config.node_id,
                        cluster_id: self.config.cluster_id.clone(),
                        incarnation_id: self.incarnation_id,
                        endpoints: self.config.endpoints.clone(),
                        rack: self.config.rack.clone(),
                        co_located: true,
                        previous_broker_epoch: self.config.previous_broker_epoch,
                    })
                    .await
                    .map_err(lifecycle_error);
            }
        }
        let mut req = BrokerRegistrationRequest::default();
        req.broker_id = BrokerId(self.config.node_id);
        req.cluster_id = StrBytes::from_string(self.config.cluster_id.clone());
        req.incarnation_id = self.incarnation_id;
        req.listeners = self
            .config
            .endpoints
            .iter()
            .map(|e| {
                let mut l = Listener::default();
                l.name = StrBytes::from_string(e.listener.clone());
                l.host = StrBytes::from_string(e.host.clone());
                l.port = e.port;
                l.security_protocol = security_protocol_id(&e.security_protocol);
                l
            })
            .collect();
        req.rack = self.config.rack.clone().map(StrBytes::from_string);
        req.previous_broker_epoch = self.config.previous_broker_epoch;
        let resp = self
            .client
            .send(
                quorum,
                &req,
                REGISTRATION_VERSION,
                self.config.request_timeout,
            )
            .await
            .map_err(call_error)?;
        if resp.error_code != 0 {
            return Err(refused(resp.error_code, "from the controller listener"));
        }
        u64::try_from(resp.broker_epoch).map_err(|_| {
            CallError::Unreachable(format!("invalid broker epoch {}", resp.broker_epoch))
        })
    }

    async fn heartbeat(&self, quorum: &MetadataQuorum) -> Result<HeartbeatReply, CallError> {
        let hb = Heartbeat {
            node_id: self.config.node_id,
            broker_epoch: self.broker_epoch(),
            metadata_index: quorum.image().last_applied_index,
            want_fence: !self.ready_to_unfence.load(Ordering::Acquire),
            want_shut_down: self.state() == BrokerState::PendingControlledShutdown,
        };
        if quorum.is_active_controller() {
            if let Some(controller) = quorum.controller() {
                return controller.heartbeat(hb).await.map_err(lifecycle_error);
            }
        }
        let mut req = BrokerHeartbeatRequest::default();
        req.broker_id = BrokerId(hb.node_id);
        req.broker_epoch = i64::try_from(hb.broker_epoch).unwrap_or(i64::MAX);
        req.current_metadata_offset = i64::try_from(hb.metadata_index).unwrap_or(i64::MAX);
        req.want_fence = hb.want_fence;
        req.want_shut_down = hb.want_shut_down;
        let timeout = self
            .config
            .heartbeat_interval
            .min(self.config.request_timeout);
        let resp = self
            .client
            .send(quorum, &req, HEARTBEAT_VERSION, timeout)
            .await
            .map_err(call_error)?;
        if resp.error_code != 0 {
            return Err(refused(resp.error_code, "from the controller listener"));
        }
        Ok(HeartbeatReply {
            is_caught_up: resp.is_caught_up,
            is_fenced: resp.is_fenced,
            should_shut_down: resp.should_shut_down,
        })
    }

    /// Heartbeats until the broker has shut down (or `stop` fires). Spawned after
    /// [`BrokerLifecycle::register`] succeeded.
    pub async fn run(
        self: Arc<Self>,
        quorum: Arc<MetadataQuorum>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut last_error = String::new();
        loop {
            let state = self.state();
            if state == BrokerState::ShuttingDown {
                return;
            }
            let wait = match self.heartbeat(&quorum).await {
                Ok(reply) => {
                    *self.last_answer.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((std::time::Instant::now(), reply.is_fenced));
                    last_error.clear();
                    self.on_reply(state, reply)
                }
                Err(CallError::NotController) => RETRY_SOON,
                Err(e) => {
                    let text = match &e {
                        CallError::Refused(code, _) => format!(
                            "Broker {} sent a heartbeat request but received error {}.",
                            self.config.node_id,
                            error_name(code)
                        ),
                        CallError::Unreachable(why) => format!(
                            "Unable to send broker heartbeat for {}. Retrying. ({why})",
                            self.config.node_id
                        ),
                        CallError::NotController => String::new(),
                    };
                    if text != last_error {
                        lifecycle_log!(warn, self, "{text}");
                        last_error = text;
                    }
                    if state == BrokerState::Running {
                        self.config.heartbeat_interval
                    } else {
                        RETRY_SOON
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Acts on a heartbeat answer; returns when to send the next one.
    fn on_reply(&self, state: BrokerState, reply: HeartbeatReply) -> Duration {
        match state {
            BrokerState::Starting => {
                if reply.is_caught_up {
                    lifecycle_log!(
                        info,
                        self,
                        "The broker has caught up. Transitioning from STARTING to RECOVERY."
                    );
                    self.transition(BrokerState::Recovery);
                }
                STARTING_HEARTBEAT
            }
            BrokerState::Recovery => {
                if !reply.is_fenced {
                    lifecycle_log!(
                        info,
                        self,
                        "The broker has been unfenced. Transitioning from RECOVERY to RUNNING."
                    );
                    self.transition(BrokerState::Running);
                    self.config.heartbeat_interval
                } else if self.ready_to_unfence.load(Ordering::Acquire) {
                    // Asked to be unfenced but not yet (the controller may still see it behind):
                    // ask again soon rather than a whole interval later.
                    RETRY_SOON
                } else {
                    self.config.heartbeat_interval
                }
            }
            // A running broker ignores being fenced: its next heartbeat (want_fence false)
            // unfences it again once it is caught up, as in Kafka.
            BrokerState::Running => self.config.heartbeat_interval,
            BrokerState::PendingControlledShutdown => {
                if reply.should_shut_down {
                    lifecycle_log!(
                        info,
                        self,
                        "The controller has asked us to exit controlled shutdown."
                    );
                    lifecycle_log!(
                        info,
                        self,
                        "Transitioning from PENDING_CONTROLLED_SHUTDOWN to SHUTTING_DOWN."
                    );
                    self.transition(BrokerState::ShuttingDown);
                } else {
                    lifecycle_log!(
                        info,
                        self,
                        "The broker is in PENDING_CONTROLLED_SHUTDOWN state, still waiting for the active controller."
                    );
                }
                SHUTDOWN_HEARTBEAT
            }
            BrokerState::ShuttingDown => self.config.heartbeat_interval,
        }
    }

    /// Waits until the lifecycle reaches `state` (or passed it).
    pub async fn wait_for(&self, state: BrokerState) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s >= state).await;
    }

    /// The logs are open: ask to be unfenced now.
    pub fn set_ready_to_unfence(&self) {
        self.ready_to_unfence.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// SIGTERM: asks the controller to move leadership off this broker and fence it, and waits
    /// for its approval at most `timeout`.
    pub async fn controlled_shutdown(&self, timeout: Duration) {
        let state = self.state();
        if state != BrokerState::Running {
            lifecycle_log!(
                info,
                self,
                "Skipping controlled shutdown because we are in state {}.",
                state.name()
            );
            self.transition(BrokerState::ShuttingDown);
            return;
        }
        lifecycle_log!(info, self, "Beginning controlled shutdown.");
        self.transition(BrokerState::PendingControlledShutdown);
        self.wake.notify_one();
        if tokio::time::timeout(timeout, self.wait_for(BrokerState::ShuttingDown))
            .await
            .is_err()
        {
            lifecycle_log!(
                error,
                self,
                "Timed out waiting for the controller to approve controlled shutdown"
            );
            self.transition(BrokerState::ShuttingDown);
        }
    }
}

fn security_protocol_id(name: &str) -> i16 {
    match name {
        "SSL" => 1,
        "SASL_PLAINTEXT" => 2,
        "SASL_SSL" => 3,
        _ => 0,
    }
}

/// The protocol name of a listener's security protocol id (BrokerRegistration's encoding).
pub fn security_protocol_name(id: i16) -> Option<&'static str> {
    match id {
        0 => Some("PLAINTEXT"),
        1 => Some("SSL"),
        2 => Some("SASL_PLAINTEXT"),
        3 => Some("SASL_SSL"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(
            error_name(&ResponseError::DuplicateBrokerRegistration),
            "DUPLICATE_BROKER_REGISTRATION"
        );
        assert_eq!(
            error_name(&ResponseError::InconsistentClusterId),
            "INCONSISTENT_CLUSTER_ID"
        );
        assert_eq!(
            security_protocol_name(security_protocol_id("SSL")),
            Some("SSL")
        );
    }
}
