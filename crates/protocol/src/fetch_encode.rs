//! Zero-copy encoding of Fetch responses, the read hot path.
//!
//! `kafka-protocol` encodes a response into one buffer, which copies every record byte once more
//! than the socket needs. Here the response is written as a list of chunks: small encoded pieces
//! and, between them, the records' own `Bytes` (often a view of a memory-mapped segment), so the
//! connection hands them to one vectored write. The byte stream is exactly what `kafka-protocol`
//! produces (a test compares them at every version); fields this encoder does not cover (unknown
//! tagged fields, node endpoints, diverging epochs, snapshot ids) make it fall back to
//! `kafka-protocol`'s encoder.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};

use crate::codec::{encode_response, EncodeError};

/// Records smaller than this are copied into the surrounding chunk: a separate iovec costs more
/// than copying a few hundred bytes.
const SPLICE_MIN_BYTES: usize = 4096;

/// A framed response as chunks to write back to back.
#[derive(Debug, Default)]
pub struct Chunks {
    pub parts: Vec<Bytes>,
    current: BytesMut,
}

impl Chunks {
    fn splice(&mut self, bytes: &Bytes) {
        if bytes.len() < SPLICE_MIN_BYTES {
            self.current.put_slice(bytes);
            return;
        }
        if !self.current.is_empty() {
            self.parts.push(self.current.split().freeze());
        }
        self.parts.push(bytes.clone());
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.parts.push(self.current.split().freeze());
        }
        self.parts
    }

    pub fn total_len(parts: &[Bytes]) -> usize {
        parts.iter().map(Bytes::len).sum()
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Whether every field set in `resp` is one this encoder writes.
fn covered(resp: &FetchResponse, version: i16) -> bool {
    resp.unknown_tagged_fields.is_empty()
        && resp.node_endpoints.is_empty()
        && (version >= 7 || resp.session_id == 0)
        && resp.responses.iter().all(|t| {
            t.unknown_tagged_fields.is_empty()
                && t.partitions.iter().all(|p| {
                    p.unknown_tagged_fields.is_empty()
                        && p.diverging_epoch == Default::default()
                        && p.current_leader == Default::default()
                        && p.snapshot_id == Default::default()
                        && (version >= 11 || p.preferred_read_replica.0 == -1)
                        && p.aborted_transactions.as_ref().is_none_or(|a| a.is_empty())
                })
        })
}

/// Encodes a whole framed Fetch response (size prefix, header, body) as chunks.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    resp: &FetchResponse,
) -> Result<Vec<Bytes>, EncodeError> {
    if !(4..=18).contains(&version) || !covered(resp, version) {
        let mut out = BytesMut::new();
        encode_response(
            correlation_id,
            ApiKey::Fetch,
            version,
            &ResponseKind::Fetch(resp.clone()),
            &mut out,
        )?;
        return Ok(vec![out.freeze()]);
    }
    let flexible = version >= 12;
    let mut c = Chunks {
        parts: Vec::new(),
        current: BytesMut::with_capacity(256),
    };
    c.current.put_i32(0); // size, patched below
    c.current.put_i32(correlation_id);
    if flexible {
        c.current.put_u8(0); // response header v1: no tagged fields
    }
    c.current.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        c.current.put_i16(resp.error_code);
        c.current.put_i32(resp.session_id);
    }
    put_array_len(&mut c.current, resp.responses.len(), flexible)?;
    for t in &resp.responses {
        encode_topic(&mut c, t, version)?;
    }
    if flexible {
        c.current.put_u8(0);
    }
    let mut parts = c.finish();
    let total = Chunks::total_len(&parts);
    let size = i32::try_from(total - 4).map_err(|_| EncodeError::TooLarge { size_bytes: total })?;
    // The first chunk always holds the size prefix: it starts with the header.
    let first = parts
        .first_mut()
        .ok_or(EncodeError::TooLarge { size_bytes: 0 })?;
    let mut head = BytesMut::from(&first[..]);
    head[..4].copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    Ok(parts)
}

fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) -> Result<(), EncodeError> {
    if flexible {
        let n = u32::try_from(len + 1).map_err(|_| EncodeError::TooLarge { size_bytes: len })?;
        put_uvarint(buf, n);
    } else {
        let n = i32::try_from(len).map_err(|_| EncodeError::TooLarge { size_bytes: len })?;
        buf.put_i32(n);
    }
    Ok(())
}

fn encode_topic(
    c: &mut Chunks,
    t: &FetchableTopicResponse,
    version: i16,
) -> Result<(), EncodeError> {
    let flexible = version >= 12;
    if version <= 12 {
        let name = t.topic.0.as_bytes();
        if flexible {
            put_array_len(&mut c.current, name.len(), true)?;
        } else {
            let n = i16::try_from(name.len()).map_err(|_| EncodeError::TooLarge {
                size_bytes: name.len(),
            })?;
            c.current.put_i16(n);
        }
        c.current.put_slice(name);
    }
    if version >= 13 {
        c.current.put_slice(t.topic_id.as_bytes());
    }
    put_array_len(&mut c.current, t.partitions.len(), flexible)?;
    for p in &t.partitions {
        encode_partition(c, p, version)?;
    }
    if flexible {
        c.current.put_u8(0);
    }
    Ok(())
}

fn encode_partition(c: &mut Chunks, p: &PartitionData, version: i16) -> Result<(), EncodeError> {
    let flexible = version >= 12;
    let b = &mut c.current;
    b.put_i32(p.partition_index);
    b.put_i16(p.error_code);
    b.put_i64(p.high_watermark);
    b.put_i64(p.last_stable_offset);
    if version >= 5 {
        b.put_i64(p.log_start_offset);
    }
    // Aborted transactions: null or empty only (covered() checked).
    match (&p.aborted_transactions, flexible) {
        (None, true) => b.put_u8(0),
        (None, false) => b.put_i32(-1),
        (Some(_), true) => b.put_u8(1),
        (Some(_), false) => b.put_i32(0),
    }
    if version >= 11 {
        b.put_i32(p.preferred_read_replica.0);
    }
    match &p.records {
        None if flexible => b.put_u8(0),
        None => b.put_i32(-1),
        Some(records) => {
            if flexible {
                let n = u32::try_from(records.len() + 1).map_err(|_| EncodeError::TooLarge {
                    size_bytes: records.len(),
                })?;
                put_uvarint(b, n);
            } else {
                let n = i32::try_from(records.len()).map_err(|_| EncodeError::TooLarge {
                    size_bytes: records.len(),
                })?;
                b.put_i32(n);
            }
            c.splice(records);
        }
    }
    if flexible {
        c.current.put_u8(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::LeaderIdAndEpoch;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn sample(version: i16, big: bool) -> FetchResponse {
        let mut resp = FetchResponse::default();
        resp.throttle_time_ms = 7;
        if version >= 7 {
            resp.error_code = 0;
            resp.session_id = 0;
        }
        for ti in 0..2 {
            let mut t = FetchableTopicResponse::default();
            t.topic = TopicName(StrBytes::from_string(format!("topic-{ti}")));
            t.topic_id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0 + ti as u128);
            for pi in 0..3 {
                let mut p = PartitionData::default();
                p.partition_index = pi;
                p.error_code = if pi == 2 { 1 } else { 0 };
                p.high_watermark = 1000 + i64::from(pi);
                p.last_stable_offset = 999;
                p.log_start_offset = if version >= 5 { 3 } else { -1 };
                p.aborted_transactions = if pi == 1 { Some(Vec::new()) } else { None };
                p.preferred_read_replica = BrokerId(if version >= 11 { 2 } else { -1 });
                let len = if big { 10_000 + pi as usize } else { 10 };
                p.records = match pi {
                    0 => Some(Bytes::from(vec![0xAB; len])),
                    1 => Some(Bytes::new()),
                    _ => None,
                };
                t.partitions.push(p);
            }
            resp.responses.push(t);
        }
        resp
    }

    fn reference(resp: &FetchResponse, version: i16) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_response(
            9,
            ApiKey::Fetch,
            version,
            &ResponseKind::Fetch(resp.clone()),
            &mut out,
        )
        .expect("reference encode");
        out.to_vec()
    }

    #[test]
    fn matches_kafka_protocol_at_every_version() {
        for version in 4..=18 {
            for big in [false, true] {
                let resp = sample(version, big);
                let parts = encode_fetch_response(9, version, &resp).expect("encode");
                let ours: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
                assert_eq!(
                    ours,
                    reference(&resp, version),
                    "version {version} big {big}"
                );
                if big {
                    assert!(parts.len() > 1, "large records are spliced, not copied");
                }
            }
        }
    }

    #[test]
    fn uncovered_fields_fall_back_to_the_reference_encoder() {
        let mut resp = sample(12, true);
        let mut leader = LeaderIdAndEpoch::default();
        leader.leader_id = BrokerId(1);
        leader.leader_epoch = 4;
        resp.responses[0].partitions[0].current_leader = leader;
        let parts = encode_fetch_response(9, 12, &resp).expect("encode");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].to_vec(), reference(&resp, 12));
    }

    #[test]
    fn spliced_records_are_not_copied() {
        let resp = sample(13, true);
        let original = resp.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        let parts = encode_fetch_response(9, 13, &resp).expect("encode");
        assert!(parts.iter().any(|p| p.as_ptr() == original.as_ptr()));
    }
}
