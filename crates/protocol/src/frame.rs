//! Kafka's framing: every request and response is a big-endian `i32` size, then that many bytes.

use bytes::{Buf, BytesMut};

/// Size of the length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Why a frame cannot be accepted. Either way the connection cannot be resynchronised and should
/// be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix exceeds the limit (Kafka: `socket.request.max.bytes`).
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Claimed body size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    Negative(i32),
}

fn read_size(buf: &[u8]) -> Option<i32> {
    let prefix: [u8; FRAME_PREFIX_LEN] = buf.get(..FRAME_PREFIX_LEN)?.try_into().ok()?;
    Some(i32::from_be_bytes(prefix))
}

fn checked_size(size: i32, max_frame_bytes: usize) -> Result<usize, FrameError> {
    let body = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
    if body > max_frame_bytes {
        return Err(FrameError::TooLarge {
            size: body,
            max: max_frame_bytes,
        });
    }
    Ok(body)
}

/// Total bytes (prefix included) the next frame occupies, once its prefix has arrived and passes
/// the limit checks; `Ok(None)` while fewer than 4 bytes are buffered.
pub fn frame_len_hint(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, FrameError> {
    match read_size(buf) {
        None => Ok(None),
        Some(size) => Ok(Some(
            checked_size(size, max_frame_bytes)? + FRAME_PREFIX_LEN,
        )),
    }
}

/// Takes one complete frame body (without its prefix) off the front of `buf`.
///
/// - fewer than 4 bytes: `Ok(None)`;
/// - negative or over-limit size: an error, with `buf` untouched and nothing allocated;
/// - frame incomplete: capacity for the whole frame is reserved (so the caller's next read can
///   fill it in one go) and `Ok(None)`;
/// - otherwise the prefix is consumed and the body split off without copying.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let Some(size) = read_size(buf) else {
        return Ok(None);
    };
    let body = checked_size(size, max_frame_bytes)?;
    let total = body + FRAME_PREFIX_LEN;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if body >= UNIQUE_FRAME_MIN_BYTES {
        // Large frames (produce) leave as the sole owner of their memory, so the broker can later
        // reclaim them as mutable and stamp offsets in place. Splitting would leave `buf` sharing
        // the allocation; instead the few bytes after the frame (at most one read's overshoot)
        // move to a fresh buffer.
        let tail = BytesMut::from(&buf[total..]);
        buf.truncate(total);
        let mut frame = std::mem::replace(buf, tail);
        frame.advance(FRAME_PREFIX_LEN);
        return Ok(Some(frame));
    }
    buf.advance(FRAME_PREFIX_LEN);
    Ok(Some(buf.split_to(body)))
}

/// Frames at least this large are handed out uniquely owned (see [`decode_frame`]).
pub const UNIQUE_FRAME_MIN_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn waits_for_prefix_and_body() {
        let bytes = framed(b"hello world");
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode_frame(&mut buf, 100), Ok(None), "cut {cut}");
            assert_eq!(&buf[..], &bytes[..cut]);
            if cut >= 4 {
                assert!(buf.capacity() >= bytes.len());
            }
        }
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            decode_frame(&mut buf, 100).unwrap().as_deref(),
            Some(&b"hello world"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn large_frames_are_uniquely_owned_and_keep_what_follows() {
        let big = vec![7u8; UNIQUE_FRAME_MIN_BYTES + 10];
        let mut bytes = framed(&big);
        bytes.extend_from_slice(&framed(b"next"));
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = decode_frame(&mut buf, 1 << 20)
            .unwrap()
            .expect("whole frame");
        assert_eq!(&frame[..], &big[..]);
        // Unique: freezing and converting back to mutable does not copy.
        let ptr = frame.as_ptr();
        let again = frame.freeze().try_into_mut().expect("unique");
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(
            decode_frame(&mut buf, 1 << 20).unwrap().as_deref(),
            Some(&b"next"[..])
        );
    }

    #[test]
    fn pipelined_frames_come_out_in_order() {
        let mut bytes = framed(b"one");
        bytes.extend_from_slice(&framed(b""));
        bytes.extend_from_slice(&framed(b"three"));
        bytes.extend_from_slice(&[0, 0]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            decode_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(decode_frame(&mut buf, 10), Ok(None));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn oversized_and_negative_claims_fail_before_allocating() {
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(&i32::MAX.to_be_bytes());
        let cap = buf.capacity();
        assert_eq!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::TooLarge {
                size: i32::MAX as usize,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), cap);
        assert_eq!(&buf[..], &i32::MAX.to_be_bytes());

        let mut buf = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(decode_frame(&mut buf, 1024), Err(FrameError::Negative(-5)));
        assert_eq!(buf.len(), 4);

        // Exactly at the limit is fine.
        let mut buf = BytesMut::from(&framed(&[7; 16])[..]);
        assert!(decode_frame(&mut buf, 16).unwrap().is_some());
    }

    #[test]
    fn hint_matches() {
        assert_eq!(frame_len_hint(&[0, 0], 10), Ok(None));
        assert_eq!(frame_len_hint(&[0, 0, 0, 3], 10), Ok(Some(7)));
        assert_eq!(
            frame_len_hint(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
    }
}
