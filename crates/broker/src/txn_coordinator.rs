//! The I/O shell around the sans-IO transaction coordinator (`rafka-txn`), built like
//! [`crate::group_coordinator`]: one task owns the [`TxnCoordinator`], takes requests over a
//! channel, runs its timers (timed-out transactions, expired transactional ids), writes its
//! records to `__transaction_state` before sending the replies that depend on them, and writes
//! the transaction markers it asks for.
//!
//! Markers: every partition of a finished transaction gets a control batch (COMMIT or ABORT)
//! from this node's log, since on one node this node leads every partition (the cluster issue
//! sends them to other leaders with WriteTxnMarkers). A marker on a `__consumer_offsets`
//! partition also settles the transaction's offsets in the group coordinator. When every
//! partition has its marker the coordinator completes the transaction; a failed write is retried
//! on the next tick.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_txn::records::decode_record;
use rafka_txn::{
    Output, Reply, TxnConfig, TxnCoordinator, TxnError, WriteMarkers, CONSUMER_OFFSETS_TOPIC,
    TRANSACTION_STATE_TOPIC,
};
use tokio::sync::{mpsc, watch};

use crate::coordinator_task::{self, CoordinatorContext, TaskHandle, Waiting};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;
use crate::now_ms;
use crate::partitions::{Partition, Partitions};
use crate::producer_ids::ProducerIds;

/// Marker writes that failed are retried this often.
const MARKER_RETRY_MS: u64 = 1000;

type Command = coordinator_task::Command<TxnCoordinator, Output, Reply>;

/// Handle the API handlers use. Cheap to clone.
pub type TxnCoordinatorHandle = TaskHandle<TxnCoordinator, Output, Reply, TxnError>;

/// The receiving end of a [`TxnCoordinatorHandle`], until [`spawn`] starts its task.
pub type Inbox = mpsc::Receiver<Command>;

/// Starts the coordinator task; it runs until `shutdown` changes (or its sender is dropped).
/// Besides what every shell sees (`ctx`), it takes producer ids from the broker's allocator and
/// settles transactional offsets through the group coordinator when it marks
/// `__consumer_offsets`.
pub fn spawn(
    inbox: Inbox,
    config: TxnConfig,
    ctx: CoordinatorContext,
    producer_ids: Arc<ProducerIds>,
    groups: GroupCoordinator,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let ids = producer_ids.clone();
    // Ids come from the broker's current block; the task makes sure one is available before
    // each InitProducerId, so running dry here is a rare race the client retries.
    let next_id = Box::new(move || ids.try_take().ok_or(TxnError::CoordinatorLoadInProgress));
    let coordinator = TxnCoordinator::new(config, next_id);
    let shell = Shell {
        coordinator,
        ctx,
        producer_ids,
        groups,
        waiting: Waiting::default(),
        markers: Vec::new(),
    };
    tokio::spawn(run(shell, inbox, shutdown))
}

struct Shell {
    coordinator: TxnCoordinator,
    ctx: CoordinatorContext,
    producer_ids: Arc<ProducerIds>,
    groups: GroupCoordinator,
    waiting: Waiting<Reply>,
    /// Marker writes still to do (failed partitions are retried).
    markers: Vec<WriteMarkers>,
}

async fn run(
    mut shell: Shell,
    mut rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = shell.ctx.images.clone();
    shell.sync_partitions().await;
    loop {
        let mut sleep = match shell.coordinator.next_deadline_ms() {
            Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        if !shell.markers.is_empty() {
            sleep = sleep.min(Duration::from_millis(MARKER_RETRY_MS));
        }
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => shell.handle(cmd).await,
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {
                let out = shell.coordinator.tick(now_ms());
                shell.apply(out).await;
                shell.write_markers().await;
            }
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                shell.sync_partitions().await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Shell {
    async fn handle(&mut self, cmd: Command) {
        let now = now_ms();
        match cmd {
            Command::Change(op, reply) => {
                // InitProducerId may need a fresh producer id: make sure the block has one.
                if let Err(e) = self.producer_ids.ensure_available().await {
                    tracing::warn!(error = %e.message, "no producer id block available");
                }
                let id = self.waiting.register(reply);
                let out = op(&mut self.coordinator, now, id);
                self.apply(out).await;
            }
            Command::Direct(op) => op(&mut self.coordinator, now),
            Command::Sync(done) => {
                self.sync_partitions().await;
                let _ = done.send(());
            }
        }
    }

    /// Writes the records of `out`, sends its replies, then writes the markers it asks for.
    async fn apply(&mut self, out: Output) {
        let mut failed = BTreeSet::new();
        for append in &out.appends {
            if let Err(e) = self.append(append.partition, &append.records) {
                tracing::error!(
                    partition = append.partition,
                    error = %e,
                    "Writing to {TRANSACTION_STATE_TOPIC} failed; unloading the partition"
                );
                failed.insert(append.partition);
            }
        }
        for r in out.replies {
            let reply = match r.partition {
                Some(p) if failed.contains(&p) => r.reply.failed(TxnError::NotCoordinator),
                _ => r.reply,
            };
            self.waiting.send(r.id, reply);
        }
        self.markers.extend(
            out.markers
                .into_iter()
                .filter(|m| !failed.contains(&m.txn_partition)),
        );
        for p in failed {
            self.coordinator.unload_partition(p);
            self.markers.retain(|m| m.txn_partition != p);
        }
        self.write_markers().await;
    }

    fn append(&self, partition: i32, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), String> {
        let part = self.ctx.local_leader(TRANSACTION_STATE_TOPIC, partition)?;
        coordinator_task::append_records(&part, None, records, now_ms())
    }

    /// Writes the pending markers; a transaction whose partitions all have theirs completes.
    async fn write_markers(&mut self) {
        let pending = std::mem::take(&mut self.markers);
        for mut m in pending {
            let mut left = Vec::new();
            for (topic, partition) in std::mem::take(&mut m.partitions) {
                let written = write_marker_to(
                    &self.ctx.image(),
                    &self.ctx.partitions,
                    &self.groups,
                    Marker::of(&m),
                    &topic,
                    partition,
                )
                .await;
                match written {
                    Ok(()) => {}
                    Err(MarkerError::Gone) => {}
                    Err(MarkerError::Fenced(_, e)) => {
                        // A newer coordinator or producer owns this transaction now.
                        tracing::info!(txn = %m.transactional_id, %topic, partition, error = %e,
                            "Transaction marker refused; giving up on this transaction");
                        left.clear();
                        m.partitions.clear();
                        break;
                    }
                    Err(MarkerError::Retry(_, e)) => {
                        tracing::warn!(txn = %m.transactional_id, %topic, partition, error = %e,
                            "Writing a transaction marker failed; retrying");
                        left.push((topic, partition));
                    }
                }
            }
            if left.is_empty() {
                let out = self.coordinator.markers_written(
                    now_ms(),
                    &m.transactional_id,
                    m.producer_id,
                    m.producer_epoch,
                    m.coordinator_epoch,
                );
                // Completing writes one more record and never asks for markers again.
                Box::pin(self.apply(out)).await;
            } else {
                m.partitions = left;
                self.markers.push(m);
            }
        }
    }

    async fn sync_partitions(&mut self) {
        let image = self.ctx.image();
        let Some(topic) = image.topic_by_name(TRANSACTION_STATE_TOPIC) else {
            return;
        };
        for p in 0..self.coordinator.config().num_partitions {
            let led = topic
                .partition(p)
                .is_some_and(|pi| pi.leader == self.ctx.node_id);
            let owned = self.coordinator.owns_partition(p);
            if owned && !led {
                self.coordinator.unload_partition(p);
                self.markers.retain(|m| m.txn_partition != p);
            } else if led && !owned {
                let Ok(part) = self.ctx.partitions.leader(topic, p) else {
                    continue;
                };
                match self.load(&part, p) {
                    Ok(out) => self.apply(out).await,
                    Err(e) => {
                        tracing::error!(partition = p, error = %e, "Loading {TRANSACTION_STATE_TOPIC} failed");
                        self.coordinator.unload_partition(p);
                    }
                }
            }
        }
    }

    fn load(&mut self, part: &Partition, partition: i32) -> Result<Output, String> {
        let started = std::time::Instant::now();
        self.coordinator.begin_load(partition, part.leader_epoch());
        let mut records = 0usize;
        coordinator_task::replay_log(part, |batch| {
            if batch.header().is_control() {
                return Ok(());
            }
            for r in batch.records() {
                let r = r.map_err(|e| e.to_string())?;
                let Some(key) = r.key else { continue };
                match decode_record(key, r.value) {
                    Ok(rec) => {
                        self.coordinator.replay(partition, rec);
                        records += 1;
                    }
                    Err(e) => tracing::warn!(partition, error = %e,
                        "Skipping an unreadable record in {TRANSACTION_STATE_TOPIC}"),
                }
            }
            Ok(())
        })?;
        let out = self.coordinator.finish_load(partition, now_ms());
        tracing::info!(
            "Finished loading transaction state from {TRANSACTION_STATE_TOPIC}-{partition} in {} milliseconds ({records} records)",
            started.elapsed().as_millis()
        );
        Ok(out)
    }
}

/// Why a marker could not be written, with the code WriteTxnMarkers answers.
pub enum MarkerError {
    /// The topic or partition is gone: nothing to mark.
    Gone,
    /// The partition refused the marker for good (stale producer or coordinator epoch).
    Fenced(ResponseError, String),
    /// Worth another try (not leader yet, storage error, coordinator task busy).
    Retry(ResponseError, String),
}

impl MarkerError {
    pub fn code(&self) -> ResponseError {
        match self {
            MarkerError::Gone => ResponseError::UnknownTopicOrPartition,
            MarkerError::Fenced(c, _) | MarkerError::Retry(c, _) => *c,
        }
    }
}

/// Which transaction a marker ends and how: what every partition's control batch carries.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

impl Marker {
    fn of(m: &WriteMarkers) -> Marker {
        Marker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.commit,
        }
    }
}

/// Writes one transaction marker to `topic`-`partition` on this node (the WriteTxnMarkers work
/// for one partition), looked up in `image` among the hosted `partitions`; a marker on
/// `__consumer_offsets` also settles the producer's pending transactional offsets in `groups`.
pub async fn write_marker_to(
    image: &MetadataImage,
    partitions: &Partitions,
    groups: &GroupCoordinator,
    marker: Marker,
    topic: &str,
    partition: i32,
) -> Result<(), MarkerError> {
    let Marker {
        producer_id,
        producer_epoch,
        coordinator_epoch,
        commit,
    } = marker;
    let Some(t) = image.topic_by_name(topic) else {
        return Err(MarkerError::Gone);
    };
    if t.partition(partition).is_none() {
        return Err(MarkerError::Gone);
    }
    let part = partitions
        .leader(t, partition)
        .map_err(|u| MarkerError::Retry(errors::unavailable(u), format!("{u:?}")))?;
    if let Err(e) = part.append_txn_marker(
        producer_id,
        producer_epoch,
        coordinator_epoch,
        commit,
        now_ms(),
    ) {
        let code = errors::storage(&e);
        return Err(match e {
            rafka_storage::StorageError::InvalidProducerEpoch { .. }
            | rafka_storage::StorageError::TransactionCoordinatorFenced { .. } => {
                MarkerError::Fenced(code, e.to_string())
            }
            _ => MarkerError::Retry(code, e.to_string()),
        });
    }
    if topic == CONSUMER_OFFSETS_TOPIC {
        groups
            .query(move |c, _| c.complete_txn(partition, producer_id, commit))
            .await
            .map_err(|e| MarkerError::Retry(errors::group(e), e.to_string()))?;
    }
    Ok(())
}
