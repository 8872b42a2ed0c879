//! Just enough of the consumer embedded protocol (`ConsumerProtocolSubscription`) to learn which
//! topics a member subscribes to. Kafka's coordinator reads it for the same two reasons: offsets
//! of subscribed topics do not expire while the group is active, and OffsetDelete refuses to
//! delete them (GROUP_SUBSCRIBED_TO_TOPIC).
//!
//! Layout (all versions start the same way): i16 version, then an array (i32 count) of topic
//! names (i16-length strings). Later fields (user data, owned partitions, generation, rack) are
//! not needed here.

use std::collections::BTreeSet;

/// The protocol type consumers use.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of one subscription, or `None` if the bytes are not a consumer subscription.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let s = metadata.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    };
    let version = i16::from_be_bytes(take(&mut pos, 2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(&mut pos, 4)?.try_into().ok()?);
    if count < 0 || count as usize > metadata.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut pos, 2)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        let name = take(&mut pos, len as usize)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
    }
    Some(topics)
}

/// The union of the members' subscriptions, or `None` if any member's cannot be read.
pub fn union_of<'a>(metadatas: impl Iterator<Item = &'a [u8]>) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for m in metadatas {
        all.extend(subscribed_topics(m)?);
    }
    Some(all)
}

/// Encodes a v0 subscription; for tests across the workspace.
pub fn encode_subscription_v0(topics: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    // Null user data.
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_and_refuses_garbage() {
        let sub = encode_subscription_v0(&["a", "bb"]);
        assert_eq!(subscribed_topics(&sub), Some(vec!["a".into(), "bb".into()]));
        for cut in 0..sub.len() - 4 {
            assert_eq!(subscribed_topics(&sub[..cut]), None, "cut {cut}");
        }
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            union_of([sub.as_slice(), encode_subscription_v0(&["c"]).as_slice()].into_iter()),
            Some(["a", "bb", "c"].iter().map(|s| s.to_string()).collect())
        );
    }
}
