//! Listeners and the accept loop: binds every configured listener (IPv4 or IPv6, hostnames
//! resolved at bind time), enforces `max.connections` and `max.connections.per.ip`, and spawns
//! one task per connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Listener;
use crate::connection::{self, ConnectionContext, Dispatch};

/// A bound listener, ready to accept.
pub struct BoundListener {
    pub listener: Listener,
    pub socket: TcpListener,
}

impl BoundListener {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }
}

pub async fn bind(listener: &Listener) -> std::io::Result<BoundListener> {
    let addr = format!("{}:{}", bracket(listener.bind_host()), listener.port);
    let socket = TcpListener::bind(&addr).await?;
    Ok(BoundListener {
        listener: listener.clone(),
        socket,
    })
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Counts open connections overall and per IP so the limits hold.
#[derive(Default)]
pub struct ConnectionCounter {
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Releases its slot when the connection ends.
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    ip: IpAddr,
}

impl ConnectionCounter {
    fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Option<ConnectionSlot> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let per_ip = g.1.get(&ip).copied().unwrap_or(0);
        if g.0 >= max_total || per_ip >= max_per_ip {
            return None;
        }
        g.0 += 1;
        *g.1.entry(ip).or_insert(0) += 1;
        Some(ConnectionSlot {
            counter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut g = self.counter.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on one listener until shutdown.
pub async fn accept_loop<D: Dispatch>(
    dispatcher: Arc<D>,
    bound: BoundListener,
    counter: Arc<ConnectionCounter>,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name: Arc<str> = Arc::from(bound.listener.name.as_str());
    let connections = metrics.listener(&name);
    loop {
        let accepted = tokio::select! {
            a = bound.socket.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Both limits are dynamic broker configs in Kafka, so they are read per accept.
        let limits = dispatcher.limits();
        let Some(slot) = counter.try_acquire(
            peer.ip(),
            limits.max_connections,
            limits.max_connections_per_ip,
        ) else {
            tracing::warn!(%peer, "Closing connection: max.connections or max.connections.per.ip reached");
            drop(stream);
            continue;
        };
        let ctx = ConnectionContext {
            peer,
            listener_name: name.clone(),
        };
        let dispatcher = dispatcher.clone();
        let rx = shutdown.clone();
        let open = connections.opened();
        tokio::spawn(async move {
            connection::serve(dispatcher, stream, ctx, rx).await;
            drop(slot);
            drop(open);
        });
    }
}
