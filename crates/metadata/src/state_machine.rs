//! The metadata state machine (openraft's `RaftStateMachine`): the image plus snapshots.
//!
//! The image lives in memory and is published through a `watch` channel after every applied
//! batch. Only snapshots reach the disk: `snapshot` in the quorum directory holds two frames,
//! the JSON [`SnapshotMeta`] (last log id, membership) and the JSON image, replaced atomically.
//! On restart the image comes from that file and openraft replays the committed log after it.
//! The second frame is also the snapshot data sent to followers, so no re-encoding is needed.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rafka_storage::Backend;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StoredMembership,
};
use tokio::sync::watch;

use crate::command::apply_in_place;
use crate::fsio::{self, Frame};
use crate::image::MetadataImage;
use crate::raft_types::{CommandResponse, LogEntry, Node, NodeId, StorageResult, TypeConfig};
use crate::rpc::SnapshotPayload;

pub(crate) const SNAPSHOT_FILE: &str = "snapshot";

/// Applied entries kept in memory for observers that are slightly behind; one further behind
/// gets the whole image instead.
pub(crate) const RECENT_ENTRIES_MAX: usize = 4096;

pub(crate) type Meta = SnapshotMeta<NodeId, Node>;

/// Applies one log entry to `image`: a command through [`apply_in_place`], a blank or
/// membership entry only moves `last_applied_index`. Voters and observers share it, so the same
/// log gives the same image everywhere.
pub fn apply_entry(image: &mut MetadataImage, entry: &LogEntry) -> CommandResponse {
    let index = entry.log_id.index;
    match &entry.payload {
        EntryPayload::Blank | EntryPayload::Membership(_) => {
            image.last_applied_index = index;
            CommandResponse::NoCommand
        }
        EntryPayload::Normal(cmd) => match apply_in_place(image, index, cmd) {
            Ok(outcome) => CommandResponse::Applied(outcome),
            Err(rejected) => {
                tracing::debug!(index, %rejected, "metadata command rejected");
                CommandResponse::Rejected(rejected)
            }
        },
    }
}

/// What has been applied, shared with the code that serves observers: the image, the last
/// applied log id and the most recent entries, changed together under one lock so a reader
/// never sees an image that disagrees with the entries.
#[derive(Debug)]
pub(crate) struct Applied {
    inner: Mutex<AppliedInner>,
    index: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug)]
struct AppliedInner {
    image: Arc<MetadataImage>,
    last: Option<LogId<NodeId>>,
    recent: VecDeque<LogEntry>,
    /// A running hash of every entry applied since the start of the log (FNV-1a over each
    /// entry's JSON), so tests can check that two nodes applied the same prefix. `None` once a
    /// snapshot was loaded: its entries are not known one by one.
    digest: Option<u64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// What [`Applied::read_from`] found.
pub(crate) enum AppliedRead {
    /// Nothing at or after the index yet.
    Nothing,
    Entries(Vec<LogEntry>),
    /// The index is older than the entries kept: here is the whole image.
    Snapshot(SnapshotPayload),
}

impl Applied {
    fn new(image: Arc<MetadataImage>, last: Option<LogId<NodeId>>) -> Self {
        let index = last.map(|l| l.index).unwrap_or(0);
        Applied {
            inner: Mutex::new(AppliedInner {
                image,
                last,
                recent: VecDeque::new(),
                digest: last.is_none().then_some(FNV_OFFSET),
            }),
            index: tokio::sync::watch::channel(index).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppliedInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, image: Arc<MetadataImage>, entries: Vec<LogEntry>) {
        let mut inner = self.lock();
        for e in entries {
            inner.last = Some(e.log_id);
            if let Some(d) = inner.digest {
                inner.digest = Some(fnv1a(d, &serde_json::to_vec(&e).unwrap_or_default()));
            }
            inner.recent.push_back(e);
        }
        while inner.recent.len() > RECENT_ENTRIES_MAX {
            inner.recent.pop_front();
        }
        inner.image = image;
        let index = inner.last.map(|l| l.index).unwrap_or(0);
        drop(inner);
        self.index.send_replace(index);
    }

    fn reset(&self, image: Arc<MetadataImage>, last: Option<LogId<NodeId>>) {
        let mut inner = self.lock();
        inner.image = image;
        inner.last = last;
        inner.recent.clear();
        inner.digest = None;
        let index = last.map(|l| l.index).unwrap_or(0);
        drop(inner);
        self.index.send_replace(index);
    }

    /// The last applied index, as a watch that moves with every applied batch.
    pub(crate) fn watch_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.index.subscribe()
    }

    pub(crate) fn last_index(&self) -> u64 {
        *self.index.borrow()
    }

    /// The last applied index and the running digest of the entries up to it.
    pub(crate) fn digest(&self) -> (Option<u64>, Option<u64>) {
        let inner = self.lock();
        (inner.last.map(|l| l.index), inner.digest)
    }

    /// Up to `max` applied entries from `index` on.
    pub(crate) fn read_from(&self, index: u64, max: usize) -> io::Result<AppliedRead> {
        let inner = self.lock();
        let last = inner.last.map(|l| l.index);
        if last.is_none_or(|l| index > l) {
            return Ok(AppliedRead::Nothing);
        }
        match inner.recent.front() {
            Some(first) if first.log_id.index <= index => Ok(AppliedRead::Entries(
                inner
                    .recent
                    .iter()
                    .skip_while(|e| e.log_id.index < index)
                    .take(max.max(1))
                    .cloned()
                    .collect(),
            )),
            _ => {
                let json = serde_json::to_vec(inner.image.as_ref()).map_err(json_error)?;
                Ok(AppliedRead::Snapshot(SnapshotPayload {
                    last_index: last.unwrap_or(0),
                    last_term: inner.last.map(|l| l.leader_id.term).unwrap_or(0),
                    image_json: json,
                }))
            }
        }
    }
}

/// In-memory image, last applied log id and membership, plus the snapshot file.
pub struct MetadataStateMachine {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    publisher: watch::Sender<Arc<MetadataImage>>,
    snapshots: Arc<SnapshotFile>,
    applied: Arc<Applied>,
}

impl Debug for MetadataStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStateMachine")
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

/// The snapshot file, shared with snapshot builders. The mutex serialises writers so an older
/// snapshot never replaces a newer one.
pub(crate) struct SnapshotFile {
    backend: Arc<dyn Backend>,
    path: PathBuf,
    current: Mutex<Option<Meta>>,
    /// Makes snapshot ids unique within a process run, as openraft asks.
    counter: AtomicU64,
}

fn snapshot_error(verb: ErrorVerb, e: io::Error) -> StorageError<NodeId> {
    // Logged here because openraft's own logs are off by default (see the binary's log filter).
    tracing::error!(?verb, error = %e, "Metadata snapshot storage failed");
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e)
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl SnapshotFile {
    pub(crate) fn new(backend: Arc<dyn Backend>, path: PathBuf, current: Option<Meta>) -> Self {
        SnapshotFile {
            backend,
            path,
            current: Mutex::new(current),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn write(&self, meta: &Meta, image_json: &[u8]) -> io::Result<()> {
        let mut current = self
            .current
            .lock()
            .map_err(|_| io::Error::other("snapshot lock poisoned"))?;
        if current
            .as_ref()
            .is_some_and(|c| c.last_log_id > meta.last_log_id)
        {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(image_json.len() + 512);
        fsio::encode_frame(&serde_json::to_vec(meta).map_err(json_error)?, &mut buf)?;
        fsio::encode_frame(image_json, &mut buf)?;
        fsio::write_atomic(self.backend.as_ref(), &self.path, &buf)?;
        *current = Some(meta.clone());
        Ok(())
    }

    /// Reads the snapshot file: its meta and the image bytes. `None` if there is none yet.
    pub(crate) fn read(backend: &dyn Backend, path: &Path) -> io::Result<Option<(Meta, Vec<u8>)>> {
        let Some(bytes) = fsio::read_file(backend, path)? else {
            return Ok(None);
        };
        let mut frames = Vec::with_capacity(2);
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or_default();
            match fsio::decode_frame(rest) {
                Frame::Whole {
                    payload,
                    frame_bytes,
                } => {
                    frames.push(payload);
                    pos += frame_bytes;
                }
                // Written atomically, so any damage is real corruption, not a torn write.
                Frame::Short => return Err(fsio::corrupt(path, "truncated snapshot")),
                Frame::Bad(why) => return Err(fsio::corrupt(path, &why)),
            }
        }
        let [meta, image] = frames.as_slice() else {
            return Err(fsio::corrupt(
                path,
                &format!("expected 2 frames, found {}", frames.len()),
            ));
        };
        let meta: Meta = crate::legacy::from_slice(meta, false).map_err(json_error)?;
        Ok(Some((meta, image.to_vec())))
    }

    fn read_current(&self) -> io::Result<Option<(Meta, Vec<u8>)>> {
        // Holding the lock keeps a concurrent writer from swapping the file mid-read.
        let _guard = self
            .current
            .lock()
            .map_err(|_| io::Error::other("snapshot lock poisoned"))?;
        Self::read(self.backend.as_ref(), &self.path)
    }
}

pub(crate) fn decode_image(
    json: &[u8],
    meta: &Meta,
    cluster_id: &str,
) -> io::Result<MetadataImage> {
    let mut image: MetadataImage = serde_json::from_slice(json).map_err(json_error)?;
    if image.cluster_id != cluster_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot belongs to cluster {:?}, this node to {cluster_id:?}",
                image.cluster_id
            ),
        ));
    }
    image.last_applied_index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    Ok(image)
}

impl MetadataStateMachine {
    /// Loads the latest snapshot from `dir` on the real file system, if any.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
    ) -> io::Result<(Self, watch::Receiver<Arc<MetadataImage>>)> {
        Self::open_with(dir, cluster_id, Arc::new(rafka_storage::FileBackend))
    }

    /// Loads the latest snapshot from `dir` through `backend`. The receiver sees every
    /// published image.
    pub fn open_with(
        dir: &Path,
        cluster_id: &str,
        backend: Arc<dyn Backend>,
    ) -> io::Result<(Self, watch::Receiver<Arc<MetadataImage>>)> {
        backend.create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        fsio::remove_stale_tmp(backend.as_ref(), &path)?;
        let (image, meta) = match SnapshotFile::read(backend.as_ref(), &path)? {
            Some((meta, json)) => (decode_image(&json, &meta, cluster_id)?, Some(meta)),
            None => (MetadataImage::empty(cluster_id), None),
        };
        let image = Arc::new(image);
        let (publisher, rx) = watch::channel(image.clone());
        let last_applied = meta.as_ref().and_then(|m| m.last_log_id);
        let sm = MetadataStateMachine {
            applied: Arc::new(Applied::new(image.clone(), last_applied)),
            image,
            last_applied,
            membership: meta
                .as_ref()
                .map(|m| m.last_membership.clone())
                .unwrap_or_default(),
            publisher,
            snapshots: Arc::new(SnapshotFile::new(backend, path, meta)),
        };
        Ok((sm, rx))
    }

    /// The voters of the membership in the loaded snapshot, if any.
    pub(crate) fn snapshot_voters(&self) -> Option<Vec<NodeId>> {
        let voters: Vec<NodeId> = self.membership.membership().voter_ids().collect();
        (!voters.is_empty()).then_some(voters)
    }

    /// What has been applied, for serving observers.
    pub(crate) fn applied(&self) -> Arc<Applied> {
        self.applied.clone()
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }
}

/// Captures the state at the moment openraft asks for a snapshot; building runs off that copy.
pub struct MetadataSnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshots: Arc<SnapshotFile>,
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let json = serde_json::to_vec(self.image.as_ref())
            .map_err(|e| snapshot_error(ErrorVerb::Write, json_error(e)))?;
        let seq = self.snapshots.counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        self.snapshots
            .write(&meta, &json)
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = json.len(), "wrote metadata snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(json)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResponse>>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        // One copy of the image per batch: topics are shared, so this copies pointers only.
        let mut next = MetadataImage::clone(&self.image);
        let mut responses = Vec::new();
        let mut applied = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            if let EntryPayload::Membership(m) = &entry.payload {
                self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
            }
            responses.push(apply_entry(&mut next, &entry));
            applied.push(entry);
        }
        self.image = Arc::new(next);
        self.applied.push(self.image.clone(), applied);
        self.publisher.send_replace(self.image.clone());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let json = snapshot.into_inner();
        let image = decode_image(&json, meta, &self.image.cluster_id)
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        self.snapshots
            .write(meta, &json)
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied.reset(self.image.clone(), self.last_applied);
        self.publisher.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let current = self
            .snapshots
            .read_current()
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, json)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(json)),
        }))
    }
}
