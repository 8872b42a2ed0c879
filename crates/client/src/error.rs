//! The one error type of the crate.

use std::io;
use std::time::Duration;

/// Why a connect or a request failed.
///
/// What the caller should do: [`ClientError::Resolve`], [`ClientError::Connect`] and
/// [`ClientError::Disconnected`] mean "try again later, on a new connection" (the [`Pool`]
/// reconnects by itself on the next `get`); [`ClientError::Timeout`] means the request may or may
/// not have been executed by the peer; [`ClientError::Protocol`] and
/// [`ClientError::FrameTooLarge`] mean the peer sent something we cannot read;
/// [`ClientError::Encode`] is a bug on our side (a request that cannot be encoded at the asked
/// version).
///
/// [`Pool`]: crate::Pool
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve (bad syntax, unknown host, no addresses, lookup timed out).
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// No resolved address accepted a connection within the connect timeout.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The error of the last address tried (`TimedOut` for a connect timeout).
        #[source]
        source: io::Error,
    },
    /// No response within the request's timeout. The connection stays usable; a late response is
    /// dropped.
    #[error("request with api key {api_key} to {addr} timed out after {} ms", timeout.as_millis())]
    Timeout {
        /// The address of the connection.
        addr: String,
        /// The request's api key.
        api_key: i16,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection is closed (peer closed it, I/O error, protocol violation, or
    /// [`Connection::close`](crate::Connection::close)); the request may or may not have been
    /// executed by the peer.
    #[error("connection to {addr} is closed")]
    Disconnected {
        /// The address of the connection.
        addr: String,
    },
    /// The peer's response does not parse (bad header, body that does not decode).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The response to this request claimed a size above the connection's limit
    /// ([`ConnectOptions::frame_bytes_max`](crate::ConnectOptions::frame_bytes_max)); nothing was
    /// allocated for it and the connection was closed. For a request it means the encoded request
    /// does not fit Kafka's `i32` size prefix.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The claimed size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The peer does not speak any version of the request this build can encode.
    #[error("{addr} supports no version of api key {api_key} that we do (ours {ours:?}, theirs {theirs:?})")]
    UnsupportedVersion {
        /// The address of the connection.
        addr: String,
        /// The request's api key.
        api_key: i16,
        /// The versions this build can encode.
        ours: (i16, i16),
        /// The peer's versions, `None` if it lacks the key.
        theirs: Option<(i16, i16)>,
    },
    /// The request could not be encoded at the asked version (a bug on the caller's side).
    #[error("cannot encode request: {0}")]
    Encode(String),
}

impl ClientError {
    /// A copy for the pool's reconnect backoff, which answers every `get` during the backoff with
    /// the error of the failed connect (`io::Error` is not `Clone`, so its kind and text are kept).
    pub(crate) fn replay(&self) -> ClientError {
        let io_copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            ClientError::Resolve { addr, source } => ClientError::Resolve {
                addr: addr.clone(),
                source: io_copy(source),
            },
            ClientError::Connect { addr, source } => ClientError::Connect {
                addr: addr.clone(),
                source: io_copy(source),
            },
            ClientError::Timeout {
                addr,
                api_key,
                timeout,
            } => ClientError::Timeout {
                addr: addr.clone(),
                api_key: *api_key,
                timeout: *timeout,
            },
            ClientError::Disconnected { addr } => ClientError::Disconnected { addr: addr.clone() },
            ClientError::Protocol(m) => ClientError::Protocol(m.clone()),
            ClientError::FrameTooLarge { size, max } => ClientError::FrameTooLarge {
                size: *size,
                max: *max,
            },
            ClientError::Encode(m) => ClientError::Encode(m.clone()),
            ClientError::UnsupportedVersion {
                addr,
                api_key,
                ours,
                theirs,
            } => ClientError::UnsupportedVersion {
                addr: addr.clone(),
                api_key: *api_key,
                ours: *ours,
                theirs: *theirs,
            },
        }
    }
}
