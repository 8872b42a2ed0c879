//! The on-disk Raft log, vote and committed pointer (openraft's `RaftLogStorage`).
//!
//! Files in the quorum directory:
//! - `raft.log`: frames (see [`crate::fsio`]) of JSON [`LogFrame`]s: one `Header` holding the
//!   last purged log id, then entries in index order. Appends go to the end and are fsynced
//!   before openraft is told they are durable. Truncation cuts the file; purging rewrites it
//!   atomically, which is cheap at metadata volumes because a snapshot bounds the log.
//! - `vote`, `committed`: one frame each, replaced atomically.
//!
//! On open, a torn tail (a frame cut short, or a damaged last frame, or trailing zeros) is
//! truncated away. Damage followed by more data is not a torn write, so it is refused rather than
//! silently dropping entries that may have been acknowledged.
//!
//! All entries are also kept in memory: snapshots bound the log to a few thousand entries, and
//! this keeps reads free of I/O. File I/O is synchronous inside the async methods; the calls are
//! rare and short (one write and one fsync per batch).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rafka_storage::{Backend, StorageFile};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};
use serde::{Deserialize, Serialize};

use crate::fsio::{self, Frame};
use crate::raft_types::{LogEntry, NodeId, StorageResult, TypeConfig};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
const LOG_FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
enum LogFrame {
    Header {
        format_version: u32,
        last_purged: Option<LogId<NodeId>>,
    },
    Entry(LogEntry),
}

/// Same JSON as [`LogFrame::Entry`] without cloning the entry to write it.
#[derive(Serialize)]
enum LogFrameRef<'a> {
    Entry(&'a LogEntry),
}

/// File-backed Raft log storage. Cheap to clone: clones share one store, which is how the
/// log reader handed to openraft sees the same entries.
#[derive(Clone)]
pub struct FileLogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl Debug for FileLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLogStore").finish_non_exhaustive()
    }
}

struct LogInner {
    backend: Arc<dyn Backend>,
    dir: PathBuf,
    file: Arc<dyn StorageFile>,
    file_bytes: u64,
    /// index -> (byte offset of its frame, entry)
    entries: BTreeMap<u64, (u64, LogEntry)>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// Set after a failed write whose effect on the file is unknown; every later call fails, so
    /// nothing is appended after bytes we could not account for.
    failed: bool,
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: io::Error) -> StorageError<NodeId> {
    // Logged here because openraft's own logs are off by default (see the binary's log filter);
    // the error also stops the quorum, which the node reports.
    tracing::error!(?subject, ?verb, error = %e, "Metadata log storage failed");
    StorageError::from_io_error(subject, verb, e)
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl FileLogStore {
    /// Opens (creating if needed) the log in `dir` on the real file system.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, Arc::new(rafka_storage::FileBackend))
    }

    /// Opens (creating if needed) the log in `dir` through `backend`, truncating a torn tail.
    pub fn open_with(dir: &Path, backend: Arc<dyn Backend>) -> io::Result<Self> {
        let b = backend.as_ref();
        b.create_dir_all(dir)?;
        let log_path = dir.join(LOG_FILE);
        for name in [LOG_FILE, VOTE_FILE, COMMITTED_FILE] {
            fsio::remove_stale_tmp(b, &dir.join(name))?;
        }
        if !b.exists(&log_path)? {
            write_log_file(b, &log_path, None, std::iter::empty())?;
        }
        let (entries, last_purged, valid_bytes) = read_log_file(b, &log_path)?;
        let file = b.open(&log_path, false)?;
        let on_disk = file.len()?;
        if valid_bytes < on_disk {
            tracing::warn!(
                path = %log_path.display(),
                kept_bytes = valid_bytes,
                dropped_bytes = on_disk - valid_bytes,
                "truncating torn tail of the metadata log"
            );
            file.set_len(valid_bytes)?;
            file.sync()?;
        }
        let vote = read_json(b, &dir.join(VOTE_FILE), true)?;
        let mut committed =
            read_json::<Option<LogId<NodeId>>>(b, &dir.join(COMMITTED_FILE), false)?.flatten();
        // Entries are fsynced before they can be committed, so a committed pointer past the end
        // means the log lost entries to damage (a cut file). Point at what is left rather than
        // make openraft re-apply entries that no longer exist; a leader re-replicates the rest.
        let last = entries
            .values()
            .next_back()
            .map(|(_, e)| e.log_id)
            .or(last_purged);
        if committed.is_some_and(|c| Some(c.index) > last.map(|l| l.index)) {
            tracing::warn!(
                ?committed,
                ?last,
                "committed pointer is past the end of the metadata log; lowering it"
            );
            committed = last;
        }
        Ok(FileLogStore {
            inner: Arc::new(Mutex::new(LogInner {
                backend,
                dir: dir.to_path_buf(),
                file,
                file_bytes: valid_bytes,
                entries,
                last_purged,
                vote,
                committed,
                failed: false,
            })),
        })
    }

    /// The voters of the newest membership entry in the log, if it holds one.
    pub fn last_membership_voters(&self) -> Option<Vec<NodeId>> {
        let inner = self.inner.lock().ok()?;
        inner
            .entries
            .values()
            .rev()
            .find_map(|(_, e)| match &e.payload {
                openraft::EntryPayload::Membership(m) => Some(m.voter_ids().collect()),
                _ => None,
            })
    }

    /// Runs `f` on the locked store, mapping I/O failures to openraft's storage error.
    // The large error is openraft's `StorageError`, which every trait method returns anyway.
    #[allow(clippy::result_large_err)]
    fn with<T>(
        &self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
        f: impl FnOnce(&mut LogInner) -> io::Result<T>,
    ) -> StorageResult<T> {
        let result = match self.inner.lock() {
            Err(_) => Err(io::Error::other("log store lock poisoned")),
            Ok(guard) if guard.failed => Err(io::Error::other(
                "an earlier write to the metadata log failed",
            )),
            Ok(mut guard) => f(&mut guard),
        };
        result.map_err(|e| io_error(subject, verb, e))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    backend: &dyn Backend,
    path: &Path,
    vote: bool,
) -> io::Result<Option<T>> {
    match fsio::read_single_frame(backend, path)? {
        None => Ok(None),
        Some(payload) => crate::legacy::from_slice(&payload, vote)
            .map(Some)
            .map_err(json_error),
    }
}

type LoadedLog = (BTreeMap<u64, (u64, LogEntry)>, Option<LogId<NodeId>>, u64);

/// Reads every whole entry; returns them, the last purged id, and the length of the valid prefix.
fn read_log_file(backend: &dyn Backend, path: &Path) -> io::Result<LoadedLog> {
    let bytes = fsio::read_file(backend, path)?.unwrap_or_default();
    let (last_purged, mut pos) = match fsio::decode_frame(&bytes) {
        Frame::Whole {
            payload,
            frame_bytes,
        } => match crate::legacy::from_slice(payload, false).map_err(json_error)? {
            LogFrame::Header {
                format_version,
                last_purged,
            } => {
                if format_version != LOG_FORMAT_VERSION {
                    return Err(fsio::corrupt(
                        path,
                        &format!("unsupported log format version {format_version}"),
                    ));
                }
                (last_purged, frame_bytes)
            }
            LogFrame::Entry(_) => return Err(fsio::corrupt(path, "first frame is not the header")),
        },
        // The header is written atomically with the file, so it is never torn.
        Frame::Short => return Err(fsio::corrupt(path, "header frame is incomplete")),
        Frame::Bad(why) => return Err(fsio::corrupt(path, &format!("header frame: {why}"))),
    };
    let mut entries: BTreeMap<u64, (u64, LogEntry)> = BTreeMap::new();
    let mut prev: Option<u64> = None;
    while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
        match fsio::decode_frame(rest) {
            Frame::Whole {
                payload,
                frame_bytes,
            } => {
                let entry = match crate::legacy::from_slice(payload, false).map_err(json_error)? {
                    LogFrame::Entry(e) => e,
                    LogFrame::Header { .. } => {
                        return Err(fsio::corrupt(path, &format!("second header at byte {pos}")))
                    }
                };
                let index = entry.log_id.index;
                if let Some(p) = prev {
                    if Some(index) != p.checked_add(1) {
                        return Err(fsio::corrupt(
                            path,
                            &format!("entry {index} follows entry {p} at byte {pos}"),
                        ));
                    }
                }
                prev = Some(index);
                entries.insert(index, (pos as u64, entry));
                pos += frame_bytes;
            }
            Frame::Short => break,
            Frame::Bad(why) => {
                let frame_reaches_end = rest.len() <= frame_extent(rest);
                if frame_reaches_end || rest.iter().all(|b| *b == 0) {
                    break;
                }
                return Err(fsio::corrupt(
                    path,
                    &format!("damaged entry at byte {pos} ({why}) followed by more data; refusing to drop it"),
                ));
            }
        }
    }
    Ok((entries, last_purged, pos as u64))
}

/// How many bytes the frame at the start of `buf` claims to span.
fn frame_extent(buf: &[u8]) -> usize {
    let mut len = [0u8; 4];
    if let Some(b) = buf.get(..4) {
        len.copy_from_slice(b);
    }
    usize::try_from(u32::from_be_bytes(len))
        .unwrap_or(usize::MAX)
        .saturating_add(fsio::FRAME_HEADER_BYTES)
}

fn encode_entry(entry: &LogEntry, out: &mut Vec<u8>) -> io::Result<()> {
    let payload = serde_json::to_vec(&LogFrameRef::Entry(entry)).map_err(json_error)?;
    fsio::encode_frame(&payload, out)
}

/// Writes a whole log file atomically; returns the byte offset of each entry.
fn write_log_file<'a>(
    backend: &dyn Backend,
    path: &Path,
    last_purged: Option<LogId<NodeId>>,
    entries: impl Iterator<Item = &'a LogEntry>,
) -> io::Result<Vec<u64>> {
    let mut buf = Vec::new();
    let header = serde_json::to_vec(&LogFrame::Header {
        format_version: LOG_FORMAT_VERSION,
        last_purged,
    })
    .map_err(json_error)?;
    fsio::encode_frame(&header, &mut buf)?;
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(buf.len() as u64);
        encode_entry(e, &mut buf)?;
    }
    fsio::write_atomic(backend, path, &buf)?;
    Ok(offsets)
}

impl LogInner {
    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn append(&mut self, entries: Vec<LogEntry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in &entries {
            offsets.push(self.file_bytes + buf.len() as u64);
            encode_entry(e, &mut buf)?;
        }
        let written = self
            .file
            .write_all_at(&buf, self.file_bytes)
            .and_then(|()| self.file.sync());
        if let Err(e) = written {
            // Cut off whatever part of the batch reached the file so a later open does not
            // mistake it for acknowledged data; if even that fails, stop accepting writes.
            if self
                .file
                .set_len(self.file_bytes)
                .and_then(|()| self.file.sync())
                .is_err()
            {
                self.failed = true;
            }
            return Err(e);
        }
        self.file_bytes += buf.len() as u64;
        for (offset, e) in offsets.into_iter().zip(entries) {
            self.entries.insert(e.log_id.index, (offset, e));
        }
        Ok(())
    }

    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some((_, (offset, _))) = self.entries.range(index..).next() else {
            return Ok(());
        };
        let offset = *offset;
        if let Err(e) = self.file.set_len(offset).and_then(|()| self.file.sync()) {
            self.failed = true;
            return Err(e);
        }
        self.file_bytes = offset;
        self.entries.split_off(&index);
        Ok(())
    }

    fn purge_upto(&mut self, log_id: LogId<NodeId>) -> io::Result<()> {
        if self
            .last_purged
            .as_ref()
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        let kept = log_id
            .index
            .checked_add(1)
            .map(|next| self.entries.split_off(&next))
            .unwrap_or_default();
        let path = self.log_path();
        let offsets = match write_log_file(
            self.backend.as_ref(),
            &path,
            Some(log_id),
            kept.values().map(|(_, e)| e),
        ) {
            Ok(o) => o,
            Err(e) => {
                // The old file may or may not have been replaced; the in-memory view no longer
                // matches either for sure.
                self.failed = true;
                return Err(e);
            }
        };
        self.last_purged = Some(log_id);
        self.entries = kept
            .into_values()
            .zip(offsets)
            .map(|((_, e), off)| (e.log_id.index, (off, e)))
            .collect();
        // The rename replaced the file under our handle; reopen to append to the new one.
        self.file = self.backend.open(&path, false)?;
        self.file_bytes = self.file.len()?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for FileLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<LogEntry>> {
        self.with(ErrorSubject::Logs, ErrorVerb::Read, |inner| {
            Ok(inner
                .entries
                .range(range)
                .map(|(_, (_, e))| e.clone())
                .collect())
        })
    }
}

impl RaftLogStorage<TypeConfig> for FileLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        self.with(ErrorSubject::Logs, ErrorVerb::Read, |inner| {
            let last = inner.entries.values().next_back().map(|(_, e)| e.log_id);
            Ok(LogState {
                last_purged_log_id: inner.last_purged,
                last_log_id: last.or(inner.last_purged),
            })
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.with(ErrorSubject::Vote, ErrorVerb::Write, |inner| {
            let json = serde_json::to_vec(vote).map_err(json_error)?;
            fsio::write_single_frame(inner.backend.as_ref(), &inner.dir.join(VOTE_FILE), &json)?;
            inner.vote = Some(*vote);
            Ok(())
        })
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.with(ErrorSubject::Vote, ErrorVerb::Read, |inner| Ok(inner.vote))
    }

    /// Persisted so a restart re-applies committed entries to the state machine at once,
    /// instead of waiting until the leader commits something new.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        self.with(ErrorSubject::Store, ErrorVerb::Write, |inner| {
            let json = serde_json::to_vec(&committed).map_err(json_error)?;
            fsio::write_single_frame(
                inner.backend.as_ref(),
                &inner.dir.join(COMMITTED_FILE),
                &json,
            )?;
            inner.committed = committed;
            Ok(())
        })
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        self.with(ErrorSubject::Store, ErrorVerb::Read, |inner| {
            Ok(inner.committed)
        })
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let result = self.with(ErrorSubject::Logs, ErrorVerb::Write, |inner| {
            inner.append(entries)
        });
        // openraft waits on the callback, not on the return value, to learn about durability.
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.with(ErrorSubject::Logs, ErrorVerb::Delete, |inner| {
            inner.truncate_from(log_id.index)
        })
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.with(ErrorSubject::Logs, ErrorVerb::Delete, |inner| {
            inner.purge_upto(log_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    use super::*;

    pub(crate) fn blank(term: u64, index: u64) -> LogEntry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// Appends without a `LogFlushed` callback, which only openraft can build.
    fn append_direct(store: &FileLogStore, entries: Vec<LogEntry>) {
        store.inner.lock().unwrap().append(entries).unwrap();
    }

    fn indexes(store: &FileLogStore) -> Vec<u64> {
        store
            .inner
            .lock()
            .unwrap()
            .entries
            .keys()
            .copied()
            .collect()
    }

    #[test]
    fn torn_tail_is_truncated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        append_direct(&store, (1..=5).map(|i| blank(1, i)).collect());
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).unwrap();

        // Cut the last entry in half.
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
        // Appending after recovery lands after the last whole entry.
        append_direct(&store, vec![blank(1, 5)]);
        drop(store);
        assert_eq!(
            indexes(&FileLogStore::open(dir.path()).unwrap()),
            vec![1, 2, 3, 4, 5]
        );

        // Garbage after the last whole entry: a partial header, then a header claiming more
        // bytes than exist, then trailing zeros.
        for junk in [
            &[0xde, 0xad, 0xbe][..],
            &[0, 0, 0, 50, 1, 2, 3, 4, 5, 6][..],
            &[0u8; 64][..],
        ] {
            let mut bytes = std::fs::read(&path).unwrap();
            let before = bytes.len();
            bytes.extend_from_slice(junk);
            std::fs::write(&path, &bytes).unwrap();
            let store = FileLogStore::open(dir.path()).unwrap();
            assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5]);
            drop(store);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), before as u64);
        }
    }

    #[test]
    fn damage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileLogStore::open(dir.path()).unwrap();
        append_direct(&store, (1..=3).map(|i| blank(1, i)).collect());
        let second = store.inner.lock().unwrap().entries[&2].0 as usize;
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + fsio::FRAME_HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = FileLogStore::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileLogStore::open(dir.path()).unwrap();
        append_direct(&store, (1..=10).map(|i| blank(1, i)).collect());
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 8))
            .await
            .unwrap();
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .unwrap();
        append_direct(&store, vec![blank(2, 8)]);
        drop(store);
        let mut store = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![4, 5, 6, 7, 8]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(
            state.last_log_id,
            Some(LogId::new(CommittedLeaderId::new(2, 1), 8))
        );
        let got = store.try_get_log_entries(5..7).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![5, 6]
        );
    }
}
