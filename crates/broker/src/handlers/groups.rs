//! Small conversions shared by the group API handlers (wire strings to the coordinator's
//! plain types and back).

use rafka_protocol::kafka_protocol::protocol::StrBytes;

pub fn text(s: &StrBytes) -> String {
    s.as_str().to_string()
}

pub fn opt_text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(text)
}

pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka reports a member's host as `/<ip>` (Java's `InetAddress.toString()` with no host name).
pub fn client_host(peer: &std::net::SocketAddr) -> String {
    format!("/{}", peer.ip())
}
