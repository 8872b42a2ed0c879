//! A tokio Kafka client for calls between rafka nodes (controller RPCs; later follower fetch and
//! WriteTxnMarkers) and, later, for the CLI tools. It speaks only Kafka's wire protocol, so it
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
//!
//! Limits: the largest response accepted ([`ConnectOptions::frame_bytes_max`], checked before
//! anything is allocated for it) and the requests in flight per connection
//! ([`ConnectOptions::requests_in_flight_max`]). Version negotiation (ApiVersions) is the
//! caller's business: [`Connection::send`] takes the version to speak.

pub mod connection;
pub mod error;
pub mod pool;

pub use connection::{ConnectOptions, Connection};
pub use error::ClientError;
pub use kafka_protocol;
pub use pool::Pool;
