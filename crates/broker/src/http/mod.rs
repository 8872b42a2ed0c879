//! The HTTP listener (`http.listener`): `/metrics`, `/livez`, `/readyz` and the status page.
//!
//! It is bound first thing at startup, before log recovery and the metadata quorum, so that an
//! orchestrator sees the node alive (`/livez`) but not ready (`/readyz` 503) while it starts.
//! The node hands it its parts as they come up ([`HttpState`]). It never touches the Kafka
//! listeners: its own accept loop, its own connection limit, a deadline on every request, and
//! nothing it serves changes the node.

mod request;
pub mod status_page;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::cluster::lifecycle::{BrokerLifecycle, BrokerState};
use crate::metrics::scrape::Snapshot;
use crate::metrics::Metrics;
use crate::state::Shared;
pub use request::{Method, Parsed, Request, Response, Status, HEAD_BYTES_MAX};

/// Connections served at once; more wait in the kernel's backlog.
const CONNECTIONS_MAX: usize = 32;
/// A client has this long to send its request head and read the answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener knows of the node, filled in as the node starts.
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    is_broker: bool,
    broker_session_timeout: Duration,
    shared: OnceLock<Arc<Shared>>,
    lifecycle: OnceLock<Arc<BrokerLifecycle>>,
    /// The client listeners are open (Kafka opens them once the broker is unfenced).
    listening: AtomicBool,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("is_broker", &self.is_broker)
            .field("started", &self.shared.get().is_some())
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

impl HttpState {
    pub fn new(metrics: Arc<Metrics>, is_broker: bool, broker_session_timeout_ms: u64) -> Self {
        HttpState {
            metrics,
            is_broker,
            broker_session_timeout: Duration::from_millis(broker_session_timeout_ms),
            shared: OnceLock::new(),
            lifecycle: OnceLock::new(),
            listening: AtomicBool::new(false),
        }
    }

    pub fn set_shared(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    pub fn set_lifecycle(&self, lifecycle: Arc<BrokerLifecycle>) {
        let _ = self.lifecycle.set(lifecycle);
    }

    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// `Ok` when ready to serve, else why not (the body of a 503).
    pub fn readiness(&self) -> Result<(), String> {
        let Some(shared) = self.shared.get() else {
            return Err("starting: recovering logs and joining the metadata quorum".into());
        };
        if !self.is_broker {
            // A controller-only node serves the quorum: ready once the quorum has a leader.
            return match shared.quorum.leader() {
                Some(_) => Ok(()),
                None => Err("the metadata quorum has no leader".into()),
            };
        }
        let Some(lifecycle) = self.lifecycle.get() else {
            return Err("starting: registering with the controller".into());
        };
        let state = lifecycle.state();
        if state != BrokerState::Running {
            return Err(format!("broker state is {}", lifecycle.state_name()));
        }
        match shared.image().broker(shared.node_id) {
            Some(b) if b.fenced => return Err("fenced by the controller".into()),
            Some(b) if b.in_controlled_shutdown => {
                return Err("in controlled shutdown".into());
            }
            Some(_) => {}
            None => return Err("not registered in the metadata image".into()),
        }
        match lifecycle.last_heartbeat_answer() {
            Some((_, true)) => return Err("fenced: the last heartbeat answer said so".into()),
            Some((age, false)) if age > self.broker_session_timeout => {
                return Err(format!(
                    "fenced: no heartbeat answered by the active controller for {} ms (broker.session.timeout.ms is {})",
                    age.as_millis(),
                    self.broker_session_timeout.as_millis()
                ));
            }
            Some(_) => {}
            None => return Err("no heartbeat answered yet".into()),
        }
        if !self.listening.load(Ordering::Acquire) {
            return Err("starting: the client listeners are not open yet".into());
        }
        Ok(())
    }

    fn broker_state(&self) -> Option<i64> {
        self.lifecycle.get().map(|l| l.state_number())
    }

    /// A snapshot of the node for a scrape or the page; `None` while it starts.
    async fn snapshot(&self) -> Option<(Arc<Shared>, Snapshot)> {
        let shared = self.shared.get()?.clone();
        let image = shared.image();
        self.metrics
            .retain_topics(|t| image.topic_by_name(t).is_some());
        let snapshot = Snapshot::take(&shared, self.broker_state()).await;
        Some((shared, snapshot))
    }

    /// Answers one request.
    pub async fn respond(&self, req: &Request) -> Response {
        if req.method == Method::Other {
            return Response::text(Status::MethodNotAllowed, "only GET and HEAD are served");
        }
        match req.path.as_str() {
            "/livez" => Response::text(Status::Ok, "ok"),
            "/readyz" => match self.readiness() {
                Ok(()) => Response::text(Status::Ok, "ok"),
                Err(why) => Response::text(Status::ServiceUnavailable, why),
            },
            "/metrics" => self.metrics_page(req.openmetrics).await,
            "/" => {
                let snapshot = self.snapshot().await;
                let ready = self.readiness();
                let html = status_page::render(
                    snapshot.as_ref().map(|(s, snap)| (&**s, snap)),
                    &self.metrics,
                    ready,
                );
                Response::new(Status::Ok, "text/html; charset=utf-8", html)
            }
            _ => Response::text(Status::NotFound, format!("no such page: {}", req.path)),
        }
    }

    async fn metrics_page(&self, openmetrics: bool) -> Response {
        let mut registry = prometheus_client::registry::Registry::default();
        let snapshot = self.snapshot().await;
        self.metrics.register(&mut registry);
        match &snapshot {
            Some((_, snap)) => snap.register(&mut registry),
            // Starting: the process metrics only.
            None => crate::metrics::process::ProcessStats::read().register(&mut registry),
        }
        let mut body = String::new();
        let (encoded, content_type) = if openmetrics {
            (
                prometheus_client::encoding::text::encode(&mut body, &registry),
                OPENMETRICS_CONTENT_TYPE,
            )
        } else {
            (
                prometheus_client::encoding::prometheus_text::encode(&mut body, &registry),
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )
        };
        match encoded {
            Ok(()) => Response::new(Status::Ok, content_type, body),
            Err(_) => Response::text(Status::ServiceUnavailable, "metrics could not be encoded"),
        }
    }
}

/// Binds the listener (`host` may be an IPv6 address without brackets).
pub async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(addr).await
}

/// Accepts and answers until shutdown.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(REQUEST_DEADLINE, serve_one(stream, peer, &state))
                .await
                .is_err()
            {
                tracing::debug!(%peer, "http listener: request deadline passed; closing");
            }
            drop(permit);
        });
    }
}

/// Reads one request head, answers it and closes.
async fn serve_one(mut stream: TcpStream, peer: SocketAddr, state: &HttpState) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let req = loop {
        match request::parse(&buf) {
            Parsed::Done(req) => break req,
            Parsed::Refuse(status) => {
                tracing::debug!(%peer, status = status.code(), "http listener: refused a request");
                let why = match status {
                    Status::HeadersTooLarge => {
                        format!("request head larger than {HEAD_BYTES_MAX} bytes or 64 headers")
                    }
                    _ => "malformed HTTP request".to_string(),
                };
                let _ = stream
                    .write_all(&Response::text(status, why).encode(false))
                    .await;
                return;
            }
            Parsed::Partial => {}
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let response = state.respond(&req).await;
    let _ = stream
        .write_all(&response.encode(req.method == Method::Head))
        .await;
    let _ = stream.shutdown().await;
}
