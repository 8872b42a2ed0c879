//! Kafka's four batch codecs, with the framing Kafka's clients read and write.
//!
//! The broker needs them in three places: validating the records of a compressed produce batch
//! (record counts, offset deltas, framing, keys on compacted topics; Kafka decompresses every
//! compressed produce batch for this too), rewriting a batch when the topic's
//! `compression.type` asks for another codec, and the log cleaner, which rewrites batches in
//! their original codec. Uncompressed produce batches and the fetch path never call into it.
//!
//! Framing, as Kafka's Java client reads it:
//! - gzip: a gzip stream (`GZIPOutputStream`); concatenated members are accepted on read.
//! - snappy: Xerial's stream framing (`SnappyOutputStream`: a 16-byte header, then blocks of
//!   `[i32 length][raw snappy]`). librdkafka and older clients may send bare raw snappy, which is
//!   also accepted on read.
//! - lz4: the LZ4 frame format with independent 64 KiB blocks (`KafkaLZ4BlockOutputStream`).
//! - zstd: a zstd frame.
//!
//! Every decompression takes a cap on the output size, so a small "bomb" batch cannot make the
//! broker allocate gigabytes.

use std::io::{Read, Write};

use crate::header::Compression;
use crate::RecordError;

/// Kafka's default `compression.gzip.level` (-1: `Deflater.DEFAULT_COMPRESSION`, level 6).
pub const GZIP_LEVEL_DEFAULT: i32 = 6;
/// Valid explicit `compression.gzip.level` values (KIP-390).
pub const GZIP_LEVEL_RANGE: (i32, i32) = (1, 9);
/// Kafka's default `compression.lz4.level`.
pub const LZ4_LEVEL_DEFAULT: i32 = 9;
/// Valid `compression.lz4.level` values (KIP-390).
pub const LZ4_LEVEL_RANGE: (i32, i32) = (1, 17);
/// Kafka's default `compression.zstd.level`.
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;
/// Valid `compression.zstd.level` values (KIP-390: zstd's own minimum and maximum).
pub const ZSTD_LEVEL_RANGE: (i32, i32) = (-131_072, 22);

/// Xerial snappy stream header: magic, then format version 1 and minimum compatible version 1.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// `SnappyOutputStream`'s default block size; each block is compressed on its own.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Compresses `input` with `codec` in Kafka's framing. `level` is the topic's KIP-390 level for
/// gzip and zstd (`None` or out of range: the codec's Kafka default). LZ4 has one speed here:
/// the frame encoder used does not offer levels, and any level reads back the same.
pub fn compress(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let io_err = |e: std::io::Error| {
        RecordError::InvalidRecord(format!("{codec:?} compression failed: {e}"))
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let level = in_range(level, GZIP_LEVEL_RANGE).unwrap_or(GZIP_LEVEL_DEFAULT);
            let level = u32::try_from(level).unwrap_or(6);
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::new(level),
            );
            enc.write_all(input).map_err(io_err)?;
            enc.finish().map_err(io_err)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + XERIAL_HEADER_LEN);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = enc.compress_vec(block).map_err(|e| {
                    RecordError::InvalidRecord(format!("snappy compression failed: {e}"))
                })?;
                let len = i32::try_from(compressed.len()).map_err(|_| {
                    RecordError::InvalidRecord("snappy block too large".to_string())
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            enc.write_all(input).map_err(io_err)?;
            enc.finish()
                .map_err(|e| RecordError::InvalidRecord(format!("lz4 compression failed: {e}")))
        }
        Compression::Zstd => {
            let level = in_range(level, ZSTD_LEVEL_RANGE).unwrap_or(ZSTD_LEVEL_DEFAULT);
            zstd::stream::encode_all(input, level).map_err(io_err)
        }
    }
}

/// Decompresses a batch's records section. Output beyond `max_output_bytes` is refused with
/// [`RecordError::InvalidRecord`]; malformed compressed data is [`RecordError::CorruptMessage`].
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_output_bytes: usize,
) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            check_cap(input.len(), max_output_bytes)?;
            Ok(input.to_vec())
        }
        Compression::Gzip => read_capped(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            max_output_bytes,
        ),
        Compression::Snappy => decompress_snappy(input, max_output_bytes),
        Compression::Lz4 => read_capped(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            max_output_bytes,
        ),
        Compression::Zstd => {
            let dec =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, &e))?;
            read_capped(codec, dec, max_output_bytes)
        }
    }
}

fn in_range(level: Option<i32>, (lo, hi): (i32, i32)) -> Option<i32> {
    level.filter(|l| (lo..=hi).contains(l))
}

fn corrupt(codec: Compression, e: &dyn std::fmt::Display) -> RecordError {
    RecordError::CorruptMessage(format!("invalid {codec:?} compressed records: {e}"))
}

fn check_cap(len: usize, max_output_bytes: usize) -> Result<(), RecordError> {
    if len > max_output_bytes {
        return Err(RecordError::InvalidRecord(format!(
            "decompressed records exceed the limit of {max_output_bytes} bytes"
        )));
    }
    Ok(())
}

/// Reads a decoder to its end, failing as soon as it yields more than the cap.
fn read_capped(
    codec: Compression,
    reader: impl Read,
    max_output_bytes: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_output_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, &e))?;
    check_cap(out.len(), max_output_bytes)?;
    Ok(out)
}

fn decompress_snappy(input: &[u8], max_output_bytes: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    if !input.starts_with(&XERIAL_MAGIC) {
        return snappy_raw_block(input, max_output_bytes);
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt(codec, &"xerial header cut short"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(codec, &"xerial block length cut short"))?;
        let len = usize::try_from(i32::from_be_bytes(*len_bytes))
            .map_err(|_| corrupt(codec, &"negative xerial block length"))?;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(codec, &"xerial block cut short"))?;
        let room = max_output_bytes.saturating_sub(out.len());
        out.extend_from_slice(&snappy_raw_block(block, room)?);
        rest = tail.get(len..).unwrap_or_default();
    }
    Ok(out)
}

fn snappy_raw_block(block: &[u8], max_output_bytes: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    // The raw format states its decompressed length up front, so the cap is checked before
    // anything is allocated.
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, &e))?;
    check_cap(len, max_output_bytes)?;
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| corrupt(codec, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips_small_empty_and_multi_block_inputs() {
        for codec in ALL {
            for len in [0, 1, 100, 70_000, 300_000] {
                let data = sample(len);
                let packed = compress(codec, None, &data).unwrap();
                let back = decompress(codec, &packed, len).unwrap();
                assert_eq!(back, data, "{codec:?} {len}");
            }
        }
    }

    #[test]
    fn levels_are_honoured_and_bad_levels_fall_back_to_the_default() {
        let data = sample(200_000);
        for (codec, levels) in [
            (Compression::Gzip, [1, 9, 42]),
            (Compression::Zstd, [-5, 19, 99]),
            (Compression::Lz4, [1, 17, 0]),
        ] {
            for level in levels {
                let packed = compress(codec, Some(level), &data).unwrap();
                assert_eq!(decompress(codec, &packed, data.len()).unwrap(), data);
            }
        }
    }

    #[test]
    fn output_over_the_cap_is_refused_without_inflating_it() {
        let zeros = vec![0u8; 1 << 20];
        for codec in ALL {
            let packed = compress(codec, None, &zeros).unwrap();
            let err = decompress(codec, &packed, 1000).unwrap_err();
            assert!(
                matches!(err, RecordError::InvalidRecord(_)),
                "{codec:?}: {err:?}"
            );
            assert!(decompress(codec, &packed, 1 << 20).is_ok());
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        for codec in ALL.into_iter().skip(1) {
            let err = decompress(codec, &garbage, 1 << 20).unwrap_err();
            assert!(
                matches!(err, RecordError::CorruptMessage(_)),
                "{codec:?}: {err:?}"
            );
        }
        // A truncated stream of each codec is corrupt too.
        let data = sample(50_000);
        for codec in ALL.into_iter().skip(1) {
            let packed = compress(codec, None, &data).unwrap();
            let cut = &packed[..packed.len() / 2];
            assert!(decompress(codec, cut, 1 << 20).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn raw_snappy_without_xerial_framing_is_accepted() {
        let data = sample(10_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, data.len()).unwrap(),
            data
        );
        let framed = compress(Compression::Snappy, None, &data).unwrap();
        assert!(framed.starts_with(&XERIAL_MAGIC));
    }

    #[test]
    fn concatenated_gzip_members_are_read_whole() {
        let mut two = compress(Compression::Gzip, None, b"hello ").unwrap();
        two.extend(compress(Compression::Gzip, None, b"world").unwrap());
        assert_eq!(
            decompress(Compression::Gzip, &two, 100).unwrap(),
            b"hello world"
        );
    }
}
