//! The metadata state machine (openraft's `RaftStateMachine`): the image plus snapshots.
//!
//! The image lives in memory and is published through a `watch` channel after every applied
//! batch. Only snapshots reach the disk: `snapshot` in the quorum directory holds two frames,
//! the JSON [`SnapshotMeta`] (last log id, membership) and the JSON image, replaced atomically.
//! On restart the image comes from that file and openraft replays the committed log after it.
//! The second frame is also the snapshot data sent to followers, so no re-encoding is needed.

use std::fmt::Debug;
use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

const SNAPSHOT_FILE: &str = "snapshot";

type Meta = SnapshotMeta<NodeId, Node>;

/// In-memory image, last applied log id and membership, plus the snapshot file.
pub struct MetadataStateMachine {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    publisher: watch::Sender<Arc<MetadataImage>>,
    snapshots: Arc<SnapshotFile>,
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
struct SnapshotFile {
    path: PathBuf,
    current: Mutex<Option<Meta>>,
    /// Makes snapshot ids unique within a process run, as openraft asks.
    counter: AtomicU64,
}

fn snapshot_error(verb: ErrorVerb, e: io::Error) -> StorageError<NodeId> {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e)
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl SnapshotFile {
    fn write(&self, meta: &Meta, image_json: &[u8]) -> io::Result<()> {
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
        fsio::write_atomic(&self.path, &buf)?;
        *current = Some(meta.clone());
        Ok(())
    }

    /// Reads the snapshot file: its meta and the image bytes. `None` if there is none yet.
    fn read(path: &Path) -> io::Result<Option<(Meta, Vec<u8>)>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
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
        let meta: Meta = serde_json::from_slice(meta).map_err(json_error)?;
        Ok(Some((meta, image.to_vec())))
    }

    fn read_current(&self) -> io::Result<Option<(Meta, Vec<u8>)>> {
        // Holding the lock keeps a concurrent writer from swapping the file mid-read.
        let _guard = self
            .current
            .lock()
            .map_err(|_| io::Error::other("snapshot lock poisoned"))?;
        Self::read(&self.path)
    }
}

fn decode_image(json: &[u8], meta: &Meta, cluster_id: &str) -> io::Result<MetadataImage> {
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
    /// Loads the latest snapshot from `dir`, if any. The receiver sees every published image.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
    ) -> io::Result<(Self, watch::Receiver<Arc<MetadataImage>>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        fsio::remove_stale_tmp(&path)?;
        let (image, meta) = match SnapshotFile::read(&path)? {
            Some((meta, json)) => (decode_image(&json, &meta, cluster_id)?, Some(meta)),
            None => (MetadataImage::empty(cluster_id), None),
        };
        let image = Arc::new(image);
        let (publisher, rx) = watch::channel(image.clone());
        let sm = MetadataStateMachine {
            image,
            last_applied: meta.as_ref().and_then(|m| m.last_log_id),
            membership: meta
                .as_ref()
                .map(|m| m.last_membership.clone())
                .unwrap_or_default(),
            publisher,
            snapshots: Arc::new(SnapshotFile {
                path,
                current: Mutex::new(meta),
                counter: AtomicU64::new(0),
            }),
        };
        Ok((sm, rx))
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
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => {
                    next.last_applied_index = index;
                    CommandResponse::NoCommand
                }
                EntryPayload::Membership(m) => {
                    next.last_applied_index = index;
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::NoCommand
                }
                EntryPayload::Normal(cmd) => match apply_in_place(&mut next, index, &cmd) {
                    Ok(outcome) => CommandResponse::Applied(outcome),
                    Err(rejected) => {
                        tracing::debug!(index, %rejected, "metadata command rejected");
                        CommandResponse::Rejected(rejected)
                    }
                },
            };
            responses.push(response);
        }
        self.image = Arc::new(next);
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
