//! The rafka broker on tokio.
//!
//! Layout:
//! - [`cluster`]: the node's part in a cluster: the controller listener, the transport of the
//!   quorum's private RPCs, calls to the active controller and to other brokers, the broker
//!   lifecycle (KIP-631).
//! - [`config`]: the config key table, the sources config is read from, the typed config.
//! - [`node`]: startup and shutdown of one node in its roles (log dirs, metadata quorum,
//!   registration and unfencing, partitions, listeners).
//! - [`state`]: [`state::Shared`], the handlers' view of the running node that `node` builds.
//! - [`server`] and [`connection`]: listeners, the accept loop with its connection limits, and one
//!   task per connection that reads frames, runs requests in arrival order and writes answers.
//! - [`handlers`]: one module per Kafka API; `handlers/mod.rs` only routes.
//! - [`partitions`]: the partitions this node hosts: their logs, high watermarks and the
//!   long-poll waiters that appends wake.
//! - [`coordinator_task`]: what both coordinator shells share: the request channel of their tasks
//!   and the `CoordinatorContext` (node id, metadata images, hosted partitions) they see the node
//!   through.
//! - [`group_coordinator`]: the task that runs the sans-IO group coordinator (`rafka-group`):
//!   its timers, its writes to `__consumer_offsets`, and loading groups back from that topic.
//! - [`txn_coordinator`]: the task that runs the sans-IO transaction coordinator (`rafka-txn`):
//!   `__transaction_state`, timeouts, and the transaction markers (written here or sent to
//!   other leaders with WriteTxnMarkers).
//! - [`txn_membership`]: asking a transaction's coordinator, here or on another broker, whether
//!   partitions are in the transaction (KIP-890 verification) or to add them (Transactions V2).
//! - [`log_cleaner`]: the threads that compact `cleanup.policy=compact` logs (storage's cleaner
//!   run outside the partition lock, swapped in under it), and `cleaner-offset-checkpoint`.
//! - [`producer_ids`]: producer id blocks taken from the metadata log for InitProducerId.
//! - [`topic_config`]: a topic's effective settings (topic overrides over broker defaults).
//! - [`dynamic_config`]: dynamic broker configs from the metadata log layered over the static
//!   config (Kafka's `DynamicBrokerConfig`).
//! - [`metrics`]: the node's counters (bumped on the request paths) and the gauges read when
//!   scraped, under the names Kafka's JMX-exporter dashboards query.
//! - [`http`]: the optional HTTP listener (`http.listener`): `/metrics`, the health endpoints
//!   `/livez` and `/readyz`, and the read-only status page at `/`.
//! - [`errors`]: the one place where internal errors become Kafka error codes.
//!
//! Storage is synchronous; appends and reads run inline on the connection's task under a
//! per-partition mutex (they are page-cache copies bounded by the request size), and long-running
//! work (recovery, fsync at shutdown) runs on the blocking pool.

pub mod cluster;
pub mod config;
pub mod connection;
pub mod coordinator_task;
pub mod dynamic_config;
pub mod errors;
pub mod fetch_sessions;
pub mod group_coordinator;
pub mod handlers;
pub mod http;
pub mod log_cleaner;
pub mod metrics;
pub mod node;
pub mod partitions;
pub mod producer_ids;
pub mod server;
pub mod state;
pub mod topic_config;
pub mod txn_coordinator;
pub mod txn_membership;

pub use config::BrokerConfig;
pub use node::{Node, NodeError};

/// Wall-clock milliseconds, the time base of record timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
