//! The node's part in a cluster: the transport of the controller listener's private RPCs
//! ([`transport`]), calls to the active controller ([`controller_client`]) and to other brokers
//! ([`broker_client`]), the controller
//! listener's request handling ([`controller_listener`], with [`alter_partition`] for leaders'
//! ISR changes) and the broker lifecycle of KIP-631 ([`lifecycle`]: registration, heartbeats,
//! unfencing, controlled shutdown).

pub mod alter_partition;
pub mod broker_client;
pub mod controller_client;
pub mod controller_listener;
pub mod fetcher;
pub mod isr;
pub mod lifecycle;
pub mod transport;
