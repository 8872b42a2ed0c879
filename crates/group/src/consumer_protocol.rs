//! The consumer embedded protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`, versions 0-3) as far as the coordinator reads it: the topics a
//! classic member subscribes to (offsets of subscribed topics do not expire while the group is
//! active, and OffsetDelete refuses them: GROUP_SUBSCRIBED_TO_TOPIC), and, for the classic
//! members of a consumer group (online migration), the whole subscription and the assignment
//! both ways.
//!
//! Layout (not flexible; every version appends to the one before): i16 version, topics (i32
//! count of i16-length strings), user data (i32-length bytes, -1 null), v1+ owned partitions
//! (i32 count of topic + i32 array of partitions), v2+ generation (i32), v3+ rack (nullable
//! string). An assignment is the version, the partitions (as owned partitions) and user data.
//! A version above 3 is read as 3, as Kafka does.

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

/// A member's subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// What the member owns (v1+, cooperative members); empty for eager ones.
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

/// Reads big-endian fields off a byte slice; `None` when it runs out.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    /// An array length, bounded by the bytes left (each element takes at least one).
    fn count(&mut self) -> Option<usize> {
        let n = self.i32()?;
        if n < 0 {
            return Some(0);
        }
        let n = usize::try_from(n).ok()?;
        (n <= self.b.len() - self.pos).then_some(n)
    }
    fn string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let s = self.take(len as usize)?;
        Some(Some(String::from_utf8(s.to_vec()).ok()?))
    }
    fn bytes(&mut self) -> Option<()> {
        let len = self.i32()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Some(())
    }
    fn partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = self.string()??;
            let k = self.count()?;
            let mut ps = Vec::with_capacity(k);
            for _ in 0..k {
                ps.push(self.i32()?);
            }
            out.push((topic, ps));
        }
        Some(out)
    }
}

/// The whole subscription, or `None` if the bytes are not one.
pub fn decode_subscription(metadata: &[u8]) -> Option<Subscription> {
    let mut r = Reader {
        b: metadata,
        pos: 0,
    };
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let n = r.count()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string()??);
    }
    r.bytes()?;
    let mut sub = Subscription {
        version,
        topics,
        ..Subscription::default()
    };
    if version >= 1 {
        sub.owned = r.partitions()?;
    }
    if version >= 2 {
        r.i32()?;
    }
    if version >= 3 {
        sub.rack_id = r.string()?;
    }
    Some(sub)
}

/// An assignment's partitions, or `None` if the bytes are not an assignment; empty bytes are
/// an empty assignment (a member that has not been through a SyncGroup).
pub fn decode_assignment(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader {
        b: assignment,
        pos: 0,
    };
    if r.i16()? < 0 {
        return None;
    }
    r.partitions()
}

/// Encodes an assignment at `version` (its layout is the same in versions 0-3), without user
/// data.
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&version.clamp(0, 3).to_be_bytes());
    out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for (topic, ps) in partitions {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

/// Encodes a subscription at `version` (0-3) with the partitions the member owns; for tests.
pub fn encode_subscription(version: i16, topics: &[&str], owned: &[(String, Vec<i32>)]) -> Vec<u8> {
    let mut out = encode_subscription_v0(topics);
    out[..2].copy_from_slice(&version.to_be_bytes());
    if version >= 1 {
        let a = encode_assignment(0, owned);
        // The owned partitions are laid out as an assignment's, between its version and its
        // user data.
        out.extend_from_slice(&a[2..a.len() - 4]);
    }
    if version >= 2 {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    }
    if version >= 3 {
        out.extend_from_slice(&(-1i16).to_be_bytes());
    }
    out
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
    fn subscriptions_and_assignments_of_every_version() {
        let owned = vec![("a".to_string(), vec![0, 2])];
        for v in 0..=3 {
            let b = encode_subscription(v, &["a", "b"], &owned);
            let sub = decode_subscription(&b).expect("decodes");
            assert_eq!(sub.version, v);
            assert_eq!(sub.topics, vec!["a".to_string(), "b".to_string()]);
            assert_eq!(sub.owned, if v >= 1 { owned.clone() } else { vec![] });
            assert_eq!(subscribed_topics(&b), Some(sub.topics.clone()));
            for cut in 0..b.len() {
                assert_eq!(decode_subscription(&b[..cut]), None, "v{v} cut {cut}");
            }
            let a = encode_assignment(v, &owned);
            assert_eq!(decode_assignment(&a), Some(owned.clone()));
        }
        assert_eq!(decode_assignment(&[]), Some(vec![]));
        assert_eq!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
    }

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
