//! Small conversions shared by the group API handlers (wire strings to the coordinator's
//! plain types and back).

use bytes::Bytes;
use rafka_protocol::kafka_protocol::protocol::StrBytes;

pub fn text(s: &StrBytes) -> String {
    s.as_str().to_string()
}

pub fn opt_text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(text)
}

/// A copy of a byte field decoded from a request, for the group to keep. Decoded fields are slices
/// of the connection's read buffer (64 KiB or more), so keeping the slice for as long as the member
/// stays in the group (its JoinGroup metadata, the SyncGroup assignment) would keep that whole
/// buffer alive per member.
pub fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka reports a member's host as `/<ip>` (Java's `InetAddress.toString()` with no host name).
pub fn client_host(peer: &std::net::SocketAddr) -> String {
    format!("/{}", peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_holds_only_its_own_bytes() {
        let read_buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let field = read_buffer.slice(100..110);
        let kept = owned(&field);
        drop((read_buffer, field));
        assert_eq!(&kept[..], &[7u8; 10]);
        // Sole owner now: the Vec reuses the allocation, whose capacity shows what was kept
        // alive (a clone of the slice would report the whole 64 KiB).
        assert_eq!(Vec::<u8>::from(kept).capacity(), 10);
    }
}
