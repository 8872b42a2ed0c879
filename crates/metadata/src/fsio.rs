//! Small on-disk helpers shared by the log store and the state machine: checksummed frames and
//! atomic file replacement. All file access goes through storage's [`Backend`], so tests can run
//! the metadata quorum on the fault-injecting backend, where a crash loses what was not fsynced.
//!
//! Frame layout: `u32 BE payload length | u32 BE CRC-32C of payload | payload`.

use std::io;
use std::path::{Path, PathBuf};

use rafka_storage::Backend;

/// Frame header size, in bytes.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;

/// Largest frame payload we write or accept, in bytes. Metadata entries and snapshots are far
/// smaller; a larger length read from disk is treated as damage, not as a reason to allocate.
pub(crate) const FRAME_PAYLOAD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Appends one frame around `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.len() > FRAME_PAYLOAD_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {FRAME_PAYLOAD_BYTES_MAX}-byte limit",
                payload.len()
            ),
        ));
    }
    let len =
        u32::try_from(payload.len()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Result of reading one frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole frame with a matching checksum, and its total size in bytes.
    Whole {
        payload: &'a [u8],
        frame_bytes: usize,
    },
    /// The buffer ends before the frame does.
    Short,
    /// The frame fits in the buffer but its length is absurd or its checksum is wrong.
    Bad(String),
}

pub(crate) fn decode_frame(buf: &[u8]) -> Frame<'_> {
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Frame::Short;
    };
    let (len_bytes, crc_bytes) = header.split_at(4);
    let mut len_arr = [0u8; 4];
    len_arr.copy_from_slice(len_bytes);
    let mut crc_arr = [0u8; 4];
    crc_arr.copy_from_slice(crc_bytes);
    let Ok(len) = usize::try_from(u32::from_be_bytes(len_arr)) else {
        return Frame::Bad("length does not fit in memory".into());
    };
    if len == 0 {
        // Never written (payloads are JSON); this is how zero-filled space after a crash looks.
        return Frame::Bad("empty frame".into());
    }
    if len > FRAME_PAYLOAD_BYTES_MAX {
        // A length past the limit that also runs past the end is indistinguishable from a torn
        // header; let the caller decide by where it sits.
        return if len > rest.len() {
            Frame::Short
        } else {
            Frame::Bad(format!("length {len} over limit"))
        };
    }
    let Some(payload) = rest.get(..len) else {
        return Frame::Short;
    };
    let crc = u32::from_be_bytes(crc_arr);
    let actual = crc32c::crc32c(payload);
    if crc != actual {
        return Frame::Bad(format!(
            "CRC-32C mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    Frame::Whole {
        payload,
        frame_bytes: FRAME_HEADER_BYTES + len,
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file: write a
/// temporary sibling, fsync it, rename it over, fsync the directory so the rename is durable.
pub(crate) fn write_atomic(backend: &dyn Backend, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let f = backend.open(&tmp, true)?;
        f.set_len(0)?;
        f.write_all_at(contents, 0)?;
        f.sync()?;
    }
    backend.rename(&tmp, path)?;
    sync_parent(backend, path)
}

/// The whole content of `path`, or `None` if it does not exist.
pub(crate) fn read_file(backend: &dyn Backend, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !backend.exists(path)? {
        return Ok(None);
    }
    let f = match backend.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len =
        usize::try_from(f.len()?).map_err(|_| corrupt(path, "file does not fit in memory"))?;
    if len > FRAME_PAYLOAD_BYTES_MAX.saturating_mul(2) {
        return Err(corrupt(
            path,
            &format!("file of {len} bytes is over the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// Reads a file written by [`write_atomic`] holding a single frame. `Ok(None)` if absent.
pub(crate) fn read_single_frame(backend: &dyn Backend, path: &Path) -> io::Result<Option<Vec<u8>>> {
    let Some(bytes) = read_file(backend, path)? else {
        return Ok(None);
    };
    match decode_frame(&bytes) {
        Frame::Whole {
            payload,
            frame_bytes,
        } if frame_bytes == bytes.len() => Ok(Some(payload.to_vec())),
        Frame::Whole { .. } => Err(corrupt(path, "trailing bytes after the frame")),
        Frame::Short => Err(corrupt(path, "file is shorter than its frame")),
        Frame::Bad(why) => Err(corrupt(path, &why)),
    }
}

/// Writes `payload` as one frame with [`write_atomic`].
pub(crate) fn write_single_frame(
    backend: &dyn Backend,
    path: &Path,
    payload: &[u8],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES);
    encode_frame(payload, &mut buf)?;
    write_atomic(backend, path, &buf)
}

pub(crate) fn sync_parent(backend: &dyn Backend, path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => backend.sync_dir(dir),
        _ => backend.sync_dir(Path::new(".")),
    }
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Removes a leftover temporary sibling of `path` from an interrupted [`write_atomic`].
pub(crate) fn remove_stale_tmp(backend: &dyn Backend, path: &Path) -> io::Result<()> {
    let tmp = tmp_path(path);
    if backend.exists(&tmp)? {
        backend.remove_file(&tmp)?;
    }
    Ok(())
}

pub(crate) fn corrupt(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_damage() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf).unwrap();
        assert_eq!(
            decode_frame(&buf),
            Frame::Whole {
                payload: b"hello",
                frame_bytes: 13
            }
        );
        assert_eq!(decode_frame(&buf[..12]), Frame::Short);
        assert_eq!(decode_frame(&buf[..3]), Frame::Short);
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert!(matches!(decode_frame(&bad), Frame::Bad(_)));
    }

    #[test]
    fn atomic_single_frame_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = rafka_storage::FileBackend;
        let path = dir.path().join("vote");
        assert_eq!(read_single_frame(&b, &path).unwrap(), None);
        write_single_frame(&b, &path, b"one").unwrap();
        write_single_frame(&b, &path, b"two").unwrap();
        assert_eq!(
            read_single_frame(&b, &path).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(!tmp_path(&path).exists());
        std::fs::write(&path, b"junk").unwrap();
        assert!(read_single_frame(&b, &path).is_err());
    }
}
