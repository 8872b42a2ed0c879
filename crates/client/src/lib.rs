//! A tokio Kafka client for calls between rafka nodes (controller RPCs, WriteTxnMarkers and
//! transaction verification; later follower fetch) and for the CLI tools. It speaks only Kafka's wire protocol, so it
//! works against any Kafka node.
//!
//! - [`connection`] holds [`Connection`], one TCP connection with many requests in flight.
//!   Requests go out through a writer task; a reader task matches each response to its caller by
//!   correlation id. Every request has a timeout; a broken connection fails everything in flight
//!   with [`ClientError::Disconnected`]. Two request forms: [`Connection::send`] for
//!   `kafka-protocol` message types and [`Connection::send_raw`] for private api keys with
//!   opaque bodies.
//! - [`pool`] holds [`Pool`], one shared connection per address, reconnected on demand with Kafka's
//!   reconnect backoff.
//! - [`error`] holds [`ClientError`].
//! - [`versions`] holds [`PeerVersions`]: what a peer's ApiVersions answer allows.
//!   [`Connection::send_negotiated`] asks a peer's versions once per connection and speaks the
//!   highest version both sides know; [`Connection::send`] takes an explicit version.
//!
//! Limits: the largest response accepted ([`ConnectOptions::frame_bytes_max`], checked before
//! anything is allocated for it) and the requests in flight per connection
//! ([`ConnectOptions::requests_in_flight_max`]).

pub mod connection;
pub mod error;
pub mod pool;
pub mod versions;

pub use connection::{ConnectOptions, Connection};
pub use error::ClientError;
pub use kafka_protocol;
pub use pool::Pool;
pub use versions::PeerVersions;
