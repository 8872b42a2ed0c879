//! Producer-state snapshot files: `<20-digit offset>.snapshot` in the partition directory, as
//! Kafka names them. The offset is exclusive: the file holds the state after every batch below
//! it. The encoding is [`ProducerStateManager::to_snapshot`]; this module only moves bytes
//! through the [`Backend`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{Backend, StorageFile};
use crate::error::{Result, StorageError};
use crate::producer_state::ProducerStateManager;
use crate::segment::remove_if_exists;

/// Kafka's `LogFileUtils.PRODUCER_SNAPSHOT_FILE_SUFFIX`.
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// Larger files are taken for corrupt rather than read (about 5.8 million producers; Kafka has
/// no limit, but a partition with that many live producer ids is not a real workload).
pub(crate) const SNAPSHOT_MAX_BYTES: u64 = 256 << 20;

/// `<dir>/<20-digit offset>.snapshot`.
pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// Writes a snapshot so that readers see either no file or the whole file: `<name>.tmp`, then a
/// rename. With `sync`, the file is fsynced before and the directory after the rename (a crash
/// leaves the old or the new state). Without, the caller must fsync the returned handle and the
/// directory later; until then a crash may leave a partial file, which the CRC turns into a
/// corrupt snapshot that is ignored.
pub(crate) fn write(
    backend: &dyn Backend,
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
    sync: bool,
) -> Result<Arc<dyn StorageFile>> {
    let path = snapshot_path(dir, offset);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = state.to_snapshot();
    let f = backend
        .open(&tmp, true)
        .map_err(|e| StorageError::io(&tmp, e))?;
    f.set_len(0).map_err(|e| StorageError::io(&tmp, e))?;
    f.write_all_at(&bytes, 0)
        .map_err(|e| StorageError::io(&tmp, e))?;
    if sync {
        f.sync().map_err(|e| StorageError::io(&tmp, e))?;
    }
    backend
        .rename(&tmp, &path)
        .map_err(|e| StorageError::io(&path, e))?;
    if sync {
        backend
            .sync_dir(dir)
            .map_err(|e| StorageError::io(dir, e))?;
    }
    Ok(f)
}

/// Reads and decodes the snapshot at `offset`. `Ok(Err(reason))` if the file is not a valid
/// snapshot (the caller ignores it); `Err` only for I/O failures.
pub(crate) fn read(
    backend: &dyn Backend,
    dir: &Path,
    offset: i64,
) -> Result<std::result::Result<ProducerStateManager, String>> {
    let path = snapshot_path(dir, offset);
    let f = backend
        .open(&path, false)
        .map_err(|e| StorageError::io(&path, e))?;
    let len = f.len().map_err(|e| StorageError::io(&path, e))?;
    if len > SNAPSHOT_MAX_BYTES {
        return Ok(Err(format!(
            "{len} bytes is over the {SNAPSHOT_MAX_BYTES}-byte limit"
        )));
    }
    let Ok(len) = usize::try_from(len) else {
        return Ok(Err(format!("{len} bytes does not fit in memory")));
    };
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| StorageError::io(&path, e))?;
    Ok(ProducerStateManager::from_snapshot(&buf))
}

/// Deletes the snapshot at `offset` (no error if it is already gone).
pub(crate) fn delete(backend: &dyn Backend, dir: &Path, offset: i64) -> Result<()> {
    remove_if_exists(backend, &snapshot_path(dir, offset))
}
