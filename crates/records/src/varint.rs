//! Zigzag varints as used inside v2 records (the protobuf encoding Kafka's `ByteUtils` uses).
//!
//! Decoders reject encodings longer than the type allows (5 bytes for 32-bit, 10 for 64-bit) the
//! way Kafka does, so a run of continuation bits cannot make us read far past a record.

use crate::RecordError;

/// Longest encoding of a 32-bit varint.
pub const VARINT_LEN_MAX: usize = 5;
/// Longest encoding of a 64-bit varlong.
pub const VARLONG_LEN_MAX: usize = 10;

/// Appends the zigzag encoding of `value`.
pub fn encode_varint(value: i32, out: &mut Vec<u8>) {
    encode_unsigned(u64::from(((value << 1) ^ (value >> 31)) as u32), out);
}

/// Appends the zigzag encoding of `value`.
pub fn encode_varlong(value: i64, out: &mut Vec<u8>) {
    encode_unsigned(((value << 1) ^ (value >> 63)) as u64, out);
}

fn encode_unsigned(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded size of `value` as a varint.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Encoded size of `value` as a varlong.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Decodes a zigzag varint from the start of `buf`; returns the value and the bytes used.
#[inline]
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    // Most varints in a batch (attributes-adjacent deltas, short lengths, header counts) fit in
    // one byte; the produce path walks every record, so this branch pays for itself.
    match *buf {
        [b0, ..] if b0 < 0x80 => {
            let raw = u32::from(b0);
            return Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), 1));
        }
        // Two bytes hold values up to 8191 in magnitude: the record and value lengths of
        // records up to 8 KiB, and offset deltas of batches up to 8192 records.
        [b0, b1, ..] if b1 < 0x80 => {
            let raw = u32::from(b0 & 0x7f) | (u32::from(b1) << 7);
            return Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), 2));
        }
        _ => {}
    }
    let (raw, used) = decode_unsigned(buf, VARINT_LEN_MAX)?;
    let raw = u32::try_from(raw)
        .map_err(|_| RecordError::InvalidRecord("varint does not fit in 32 bits".into()))?;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Decodes a zigzag varlong from the start of `buf`; returns the value and the bytes used.
#[inline]
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            let raw = u64::from(b);
            return Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), 1));
        }
    }
    let (raw, used) = decode_unsigned(buf, VARLONG_LEN_MAX)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

fn decode_unsigned(buf: &[u8], len_max: usize) -> Result<(u64, usize), RecordError> {
    let mut value: u64 = 0;
    for (i, byte) in buf.iter().take(len_max).enumerate() {
        // i < 10, so the shift is at most 63; bits shifted out of a 10th byte are dropped, as
        // Kafka's readVarlong does.
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < len_max {
        Err(RecordError::InvalidRecord(
            "varint runs past the end of the record".into(),
        ))
    } else {
        Err(RecordError::InvalidRecord(format!(
            "varint longer than {len_max} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: [(i32, &[u8]); 7] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (-2, &[3]),
            (300, &[216, 4]),
            (i32::MAX, &[254, 255, 255, 255, 15]),
            (i32::MIN, &[255, 255, 255, 255, 15]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            encode_varint(v, &mut out);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(decode_varint(bytes).unwrap(), (v, bytes.len()));
        }
    }

    #[test]
    fn one_and_two_byte_fast_paths_agree_with_the_general_decoder() {
        // Every value whose encoding takes one or two bytes, the boundaries around them, and the
        // same bytes followed by more data (a varint is read from the start of a longer slice).
        for v in -8300..=8300 {
            let mut out = Vec::new();
            encode_varint(v, &mut out);
            let (raw, used) = decode_unsigned(&out, VARINT_LEN_MAX).unwrap();
            let general = (((raw as u32) >> 1) as i32) ^ -((raw as u32 & 1) as i32);
            assert_eq!(decode_varint(&out).unwrap(), (general, used), "{v}");
            assert_eq!(general, v);
            out.extend_from_slice(&[0xff, 0x01]);
            assert_eq!(
                decode_varint(&out).unwrap(),
                (v, used),
                "{v} with trailing bytes"
            );
        }
        assert_eq!(decode_varint(&[0x80, 0x01]).unwrap(), (64, 2));
        assert_eq!(decode_varint(&[0xff, 0x7f]).unwrap(), (-8192, 2));
        assert_eq!(decode_varint(&[0x80, 0x80, 0x01]).unwrap(), (8192, 3));
    }

    #[test]
    fn varlong_round_trips() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i64::from(i32::MAX) + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            encode_varlong(v, &mut out);
            assert_eq!(varlong_len(v), out.len());
            assert_eq!(decode_varlong(&out).unwrap(), (v, out.len()));
        }
        let mut out = Vec::new();
        encode_varlong(i64::MIN, &mut out);
        assert_eq!(out.len(), VARLONG_LEN_MAX);
    }

    #[test]
    fn overlong_and_truncated_are_errors() {
        assert!(decode_varint(&[]).is_err());
        assert!(decode_varint(&[0x80]).is_err());
        assert!(decode_varint(&[0x80; 6]).is_err());
        // Five bytes whose value needs more than 32 bits.
        assert!(decode_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode_varlong(&[0x80; 11]).is_err());
        assert!(decode_varlong(&[0x80; 9]).is_err());
    }
}
