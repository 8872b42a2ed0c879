//! Connections by address, reconnected on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kafka_protocol::protocol::Request;
use tokio::time::Instant;

use crate::{ClientError, ConnectOptions, Connection};

/// Doublings of the reconnect backoff before the cap surely applies (keeps the shift in range).
const BACKOFF_DOUBLINGS_MAX: u32 = 20;

/// One connection per address, shared by every caller.
///
/// [`Pool::get`] hands out the live connection or opens a new one (replacing a closed one);
/// concurrent callers for the same address wait for one connect attempt instead of racing their
/// own. After a failed connect, `get` for that address fails fast with the same error until the
/// reconnect backoff has passed ([`ConnectOptions::reconnect_backoff`], doubling per failure up to
/// [`ConnectOptions::reconnect_backoff_max`], as Kafka's client does minus the jitter), so a dead
/// node is not hammered by every caller. The pool keeps one small entry per address ever asked
/// for; node-to-node traffic knows few addresses.
pub struct Pool {
    options: ConnectOptions,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<String> = lock(&self.slots).keys().cloned().collect();
        f.debug_struct("Pool").field("addrs", &addrs).finish()
    }
}

/// One address.
#[derive(Default)]
struct Slot {
    /// The current connection; read without waiting behind a connect in progress.
    live: Mutex<Option<Arc<Connection>>>,
    /// Held for the whole of a connect attempt, so there is one attempt per address at a time.
    connecting: tokio::sync::Mutex<Backoff>,
}

#[derive(Default)]
struct Backoff {
    /// Connect failures in a row.
    failures: u32,
    /// Until when `get` answers with `last_error` instead of connecting.
    retry_at: Option<Instant>,
    last_error: Option<ClientError>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here is left half-updated by a panic, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn live_connection(&self) -> Option<Arc<Connection>> {
        let mut live = lock(&self.live);
        if live.as_ref().is_some_and(|c| c.is_closed()) {
            *live = None;
        }
        live.clone()
    }
}

impl Pool {
    /// An empty pool; connections are opened with `options`.
    pub fn new(options: ConnectOptions) -> Pool {
        Pool {
            options,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The options connections are opened with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The live connection to `addr`, connecting first if there is none (or it closed).
    pub async fn get(&self, addr: &str) -> Result<Arc<Connection>, ClientError> {
        let slot = Arc::clone(lock(&self.slots).entry(addr.to_string()).or_default());
        if let Some(conn) = slot.live_connection() {
            return Ok(conn);
        }
        let mut backoff = slot.connecting.lock().await;
        // Whoever held the lock before us may have just connected.
        if let Some(conn) = slot.live_connection() {
            return Ok(conn);
        }
        if let (Some(retry_at), Some(error)) = (backoff.retry_at, &backoff.last_error) {
            if Instant::now() < retry_at {
                return Err(error.replay());
            }
        }
        match Connection::connect(addr, &self.options).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *lock(&slot.live) = Some(Arc::clone(&conn));
                *backoff = Backoff::default();
                Ok(conn)
            }
            Err(error) => {
                backoff.failures = backoff.failures.saturating_add(1);
                let delay = self.backoff_delay(backoff.failures);
                tracing::debug!(
                    addr,
                    %error,
                    failures = backoff.failures,
                    backoff_ms = delay.as_millis(),
                    "connect failed"
                );
                backoff.retry_at = Some(Instant::now() + delay);
                backoff.last_error = Some(error.replay());
                Err(error)
            }
        }
    }

    /// Sends `req` to `addr` on its pooled connection and decodes the answer, all within
    /// `timeout` (the connect included): at `version`, or with `None` at the version
    /// [`Connection::version_for`] negotiates. A timeout or a broken connection drops the pooled
    /// connection ([`Pool::invalidate`]), so the next call starts on a fresh one.
    pub async fn send<R: Request>(
        &self,
        addr: &str,
        req: &R,
        version: Option<i16>,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let started = Instant::now();
        let conn = match tokio::time::timeout(timeout, self.get(addr)).await {
            Ok(conn) => conn?,
            Err(_elapsed) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    api_key: R::KEY,
                    timeout,
                })
            }
        };
        let left = timeout.saturating_sub(started.elapsed());
        let sent = match version {
            Some(v) => conn.send(req, v, left).await,
            None => conn.send_negotiated(req, left).await,
        };
        if let Err(ClientError::Timeout { .. } | ClientError::Disconnected { .. }) = &sent {
            self.invalidate(addr);
        }
        sent
    }

    /// Drops the pooled connection to `addr` and closes it (its requests in flight fail with
    /// [`ClientError::Disconnected`]), as Kafka's client disconnects a node after a request
    /// timeout; the next [`Pool::get`] connects anew. The reconnect backoff is kept.
    pub fn invalidate(&self, addr: &str) {
        let slot = lock(&self.slots).get(addr).cloned();
        let conn = slot.and_then(|slot| lock(&slot.live).take());
        if let Some(conn) = conn {
            conn.close();
        }
    }

    fn backoff_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(BACKOFF_DOUBLINGS_MAX);
        self.options
            .reconnect_backoff
            .saturating_mul(1 << doublings)
            .min(self.options.reconnect_backoff_max)
    }
}
