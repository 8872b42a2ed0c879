//! Broker-only nodes follow the metadata log without being Raft members (KRaft's observers).
//!
//! The fetcher asks a controller for committed entries from the first index it has not
//! applied ([`crate::rpc::FetchRequest`]); the controller answers at once if it has some, or
//! parks the request until an entry commits or `max_wait_ms` passes, so a new entry reaches
//! every broker in one round trip with no polling interval. An observer too far behind (the
//! entries were purged after a snapshot) gets the whole image instead. Entries are applied with
//! [`apply_entry`], the code voters use, so equal indexes give equal images.
//!
//! The fetcher prefers the leader (every answer names it), which then lists the observer in
//! DescribeQuorum; when a controller does not answer within `controller.quorum.fetch.timeout.ms`
//! it forgets the leader and asks the next bootstrap controller.
//!
//! The image is saved as a snapshot in the quorum directory every [`SAVE_EVERY_ENTRIES`]
//! entries and at shutdown, so a restart resumes from there instead of from the beginning.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{CommittedLeaderId, LogId, StoredMembership};
use rafka_storage::Backend;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::MetadataError;
use crate::image::MetadataImage;
use crate::network::wall_clock_ms;
use crate::quorum::QuorumShared;
use crate::raft_types::NodeId;
use crate::rpc::{self, codes, FetchRequest, FetchResponse, PrivateApi, RpcError};
use crate::state_machine::{
    apply_entry, decode_image, AppliedRead, Meta, SnapshotFile, SNAPSHOT_FILE,
};

/// Save the image after this many applied entries.
pub const SAVE_EVERY_ENTRIES: u64 = 200;
/// Entries asked for per fetch.
const FETCH_ENTRIES_MAX: u32 = 1000;
/// The longest a controller parks a fetch, whatever the observer asked for.
const FETCH_WAIT_MS_MAX: u64 = 10_000;

/// What the leader knows of one observer, for DescribeQuorum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserverProgress {
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

struct State {
    image: Arc<MetadataImage>,
    /// Index and term of the last applied entry; `None` before the first.
    last: Option<(u64, u64)>,
    saved_index: Option<u64>,
}

/// An observer's image and its snapshot file.
pub(crate) struct Observer {
    state: Arc<Mutex<State>>,
    publisher: Arc<watch::Sender<Arc<MetadataImage>>>,
    snapshots: Arc<SnapshotFile>,
    cluster_id: String,
}

fn meta_for(index: u64, term: u64) -> Meta {
    Meta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(term, 0), index)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("observer-{term}-{index}"),
    }
}

impl Observer {
    /// Loads the saved image from `dir`, if any.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
        backend: Arc<dyn Backend>,
    ) -> Result<Observer, MetadataError> {
        let path = dir.join(SNAPSHOT_FILE);
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        crate::fsio::remove_stale_tmp(backend.as_ref(), &path).map_err(io)?;
        let stored = SnapshotFile::read(backend.as_ref(), &path).map_err(io)?;
        let (image, last, meta) = match stored {
            Some((meta, json)) => {
                let image = decode_image(&json, &meta, cluster_id).map_err(io)?;
                let last = meta.last_log_id.map(|l| (l.index, l.leader_id.term));
                (image, last, Some(meta))
            }
            None => (MetadataImage::empty(cluster_id), None, None),
        };
        if let Some((index, _)) = last {
            tracing::info!(
                index,
                "loaded the saved metadata image; fetching the log from there"
            );
        }
        let image = Arc::new(image);
        Ok(Observer {
            state: Arc::new(Mutex::new(State {
                image: image.clone(),
                last,
                saved_index: last.map(|(i, _)| i),
            })),
            publisher: Arc::new(watch::channel(image).0),
            snapshots: Arc::new(SnapshotFile::new(backend, path, meta)),
            cluster_id: cluster_id.to_string(),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.publisher.subscribe()
    }

    /// Saves the current image (at shutdown).
    pub fn save_now(&self) -> Result<(), MetadataError> {
        save(&self.state, &self.snapshots, true)
    }

    pub fn spawn_fetcher(
        &self,
        shared: Arc<QuorumShared>,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let fetcher = Fetcher {
            shared,
            state: self.state.clone(),
            publisher: self.publisher.clone(),
            snapshots: self.snapshots.clone(),
            cluster_id: self.cluster_id.clone(),
        };
        tokio::spawn(fetcher.run(shutdown))
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn save(state: &Mutex<State>, snapshots: &SnapshotFile, force: bool) -> Result<(), MetadataError> {
    let (image, last) = {
        let s = lock(state);
        let due = match (s.last, s.saved_index) {
            (None, _) => false,
            (Some((i, _)), Some(saved)) => (force && i != saved) || i >= saved + SAVE_EVERY_ENTRIES,
            (Some(_), None) => true,
        };
        if !due {
            return Ok(());
        }
        (s.image.clone(), s.last)
    };
    let Some((index, term)) = last else {
        return Ok(());
    };
    let json =
        serde_json::to_vec(image.as_ref()).map_err(|e| MetadataError::Config(e.to_string()))?;
    snapshots
        .write(&meta_for(index, term), &json)
        .map_err(|source| MetadataError::Io {
            path: "snapshot".into(),
            source,
        })?;
    lock(state).saved_index = Some(index);
    Ok(())
}

struct Fetcher {
    shared: Arc<QuorumShared>,
    state: Arc<Mutex<State>>,
    publisher: Arc<watch::Sender<Arc<MetadataImage>>>,
    snapshots: Arc<SnapshotFile>,
    cluster_id: String,
}

impl Fetcher {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let config = self.shared.config.clone();
        let mut backoff_ms = config.retry_backoff_ms.max(1);
        let mut last_error: Option<String> = None;
        loop {
            let target = match self.shared.leader() {
                Some(l) if !l.addr.is_empty() => l.addr,
                _ => match self.shared.next_contact() {
                    Some(a) => a,
                    None => return,
                },
            };
            let fetch_index = lock(&self.state).last.map(|(i, _)| i + 1).unwrap_or(0);
            let request = FetchRequest {
                caller: self.shared.caller(),
                fetch_index,
                max_wait_ms: config.fetch_timeout_ms / 2,
                max_entries: FETCH_ENTRIES_MAX,
            };
            let call = rpc::call::<_, FetchResponse>(
                self.shared.transport.as_ref(),
                &target,
                PrivateApi::MetadataFetch,
                &request,
                Duration::from_millis(config.fetch_timeout_ms.max(1)),
            );
            let answer = tokio::select! {
                a = call => a,
                _ = shutdown.changed() => return,
            };
            let problem = match answer {
                Ok(Ok(resp)) => match self.apply(resp) {
                    Ok(()) => {
                        if last_error.take().is_some() {
                            tracing::info!(controller = %target, "fetching the metadata log again");
                        }
                        backoff_ms = config.retry_backoff_ms.max(1);
                        continue;
                    }
                    Err(e) => e.to_string(),
                },
                Ok(Err(e)) if e.code == codes::INCONSISTENT_CLUSTER_ID => {
                    tracing::error!(controller = %target, "{}", e.message);
                    e.message
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            self.shared.set_leader_hint(None);
            if last_error.as_deref() != Some(problem.as_str()) {
                tracing::warn!(controller = %target, "cannot fetch the metadata log: {problem}");
                last_error = Some(problem);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {}
                _ = shutdown.changed() => return,
            }
            backoff_ms = (backoff_ms * 2).min(1000);
        }
    }

    fn apply(&self, resp: FetchResponse) -> Result<(), MetadataError> {
        self.shared.set_leader_hint(resp.leader);
        let mut state = lock(&self.state);
        if let Some(snapshot) = resp.snapshot {
            let meta = meta_for(snapshot.last_index, snapshot.last_term);
            let image =
                decode_image(&snapshot.image_json, &meta, &self.cluster_id).map_err(|source| {
                    MetadataError::Io {
                        path: "fetched snapshot".into(),
                        source,
                    }
                })?;
            tracing::info!(
                index = snapshot.last_index,
                "installed a metadata snapshot from the controller"
            );
            state.image = Arc::new(image);
            state.last = Some((snapshot.last_index, snapshot.last_term));
            state.saved_index = None;
        }
        if !resp.entries.is_empty() {
            let mut next = MetadataImage::clone(&state.image);
            for entry in &resp.entries {
                let expected = state.last.map(|(i, _)| i + 1).unwrap_or(0);
                if entry.log_id.index < expected {
                    continue;
                }
                if entry.log_id.index != expected {
                    return Err(MetadataError::Raft(format!(
                        "the controller sent entry {} where {expected} was next",
                        entry.log_id.index
                    )));
                }
                apply_entry(&mut next, entry);
                state.last = Some((entry.log_id.index, entry.log_id.leader_id.term));
            }
            state.image = Arc::new(next);
        }
        let image = state.image.clone();
        drop(state);
        self.publisher.send_if_modified(|current| {
            if current.last_applied_index == image.last_applied_index
                && Arc::ptr_eq(current, &image)
            {
                return false;
            }
            *current = image;
            true
        });
        save(&self.state, &self.snapshots, false)
    }
}

/// A controller's side of an observer fetch.
pub(crate) async fn serve_fetch(
    shared: &QuorumShared,
    req: FetchRequest,
) -> Result<FetchResponse, RpcError> {
    shared.check_caller(&req.caller)?;
    let Some(applied) = shared.applied.clone() else {
        return Err(RpcError::new(
            codes::NOT_CONTROLLER,
            "a broker-only node does not serve the metadata log",
        ));
    };
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.min(FETCH_WAIT_MS_MAX));
    let had_everything = req.fetch_index > applied.last_index();
    let mut index = applied.watch_index();
    let read = loop {
        let read = applied
            .read_from(req.fetch_index, req.max_entries as usize)
            .map_err(|e| RpcError::new(codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        if !matches!(read, AppliedRead::Nothing) {
            break read;
        }
        // Parked until an entry commits here; then read again.
        match tokio::time::timeout_at(deadline, index.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => break AppliedRead::Nothing,
        }
    };
    if shared.is_local_leader() && !shared.voters.contains_key(&req.caller.node_id) {
        record_observer(shared, req.caller.node_id, req.fetch_index, had_everything);
    }
    let (entries, snapshot) = match read {
        AppliedRead::Nothing => (Vec::new(), None),
        AppliedRead::Entries(e) => (e, None),
        AppliedRead::Snapshot(s) => (Vec::new(), Some(s)),
    };
    Ok(FetchResponse {
        leader: shared.leader(),
        committed_index: applied.last_index(),
        entries,
        snapshot,
    })
}

fn record_observer(shared: &QuorumShared, node: NodeId, fetch_index: u64, caught_up: bool) {
    let now = wall_clock_ms();
    let mut observers = shared.observers.lock().unwrap_or_else(|e| e.into_inner());
    let o = observers.entry(node).or_default();
    o.log_end_offset = i64::try_from(fetch_index).unwrap_or(i64::MAX);
    o.last_fetch_ms = now;
    if caught_up {
        o.last_caught_up_ms = now;
    } else if o.last_caught_up_ms == 0 {
        o.last_caught_up_ms = -1;
    }
}
