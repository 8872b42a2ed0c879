//! What the group and transaction coordinator shells share: the request channel of a
//! coordinator task (handlers send closures that run on the task's coordinator and await the
//! answer; the task hands each state change a reply id and answers when its output says so), the
//! [`CoordinatorContext`] a shell sees of the node, and reading and writing an internal-topic
//! partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rafka_metadata::MetadataImage;
use rafka_records::{batches, BatchBuilder, BatchView};
use rafka_storage::AppendOrigin;
use tokio::sync::{mpsc, oneshot, watch};

use crate::partitions::{Partition, Partitions, ReplicationError, ReplicationWait};

/// Bytes read per step while loading a coordinator partition.
const LOAD_READ_BYTES: usize = 4 << 20;

/// The part of the node a coordinator shell uses: which internal-topic partitions this node
/// leads (the images, followed as they change) and their logs. It holds no coordinator's handle,
/// so a shell never keeps its own channel open; the task ends on the node's shutdown signal.
#[derive(Clone)]
pub struct CoordinatorContext {
    /// This node: a shell loads the partitions whose leader it is.
    pub node_id: i32,
    /// The metadata images as this node applies them (after the hosted partitions follow).
    pub images: watch::Receiver<Arc<MetadataImage>>,
    /// The newest image the quorum gave this node, which the partitions may not follow yet: a
    /// shell marks what it names this node leader of as loading before the log is open, as
    /// Kafka's coordinators answer COORDINATOR_LOAD_IN_PROGRESS from the election on.
    pub latest: watch::Receiver<Arc<MetadataImage>>,
    /// The hosted partitions, where the internal topics are read back and appended to.
    pub partitions: Arc<Partitions>,
}

impl CoordinatorContext {
    /// The latest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Appends a coordinator's records (key, value; `None` is a tombstone) to
    /// `topic`-`partition`, which this node must lead, as one uncompressed batch, as Kafka's
    /// coordinators write, with acks=all: refused before the append when the ISR is below
    /// `min.insync.replicas`, and the returned wait says when the followers have it. With
    /// `producer` the batch is a transactional batch of that producer (TxnOffsetCommit),
    /// settled by its marker.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        producer: Option<(i64, i16)>,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<ReplicationWait, WriteError> {
        // The newest image, not the applied one: a shell loads a partition as soon as its log
        // leads (from `latest`, see `load_opened`), while the applied image reaches the shell
        // only once every partition of that image is open, which for a new __consumer_offsets
        // takes a while. Writing through the applied image then found no topic, failed the
        // commit with NOT_COORDINATOR and unloaded the partition just loaded. The newest image
        // is also the stricter one: leadership and the ISR as the quorum last decided them.
        let image = self.latest.borrow().clone();
        let t = image
            .topic_by_name(topic)
            .ok_or_else(|| WriteError::NotLeader(format!("{topic} does not exist")))?;
        let (isr, replicas) = t
            .partition(partition)
            .map_or((0, 0), |p| (p.isr.len(), p.replicas.len()));
        let part = self
            .partitions
            .leader(t, partition)
            .map_err(|u| WriteError::NotLeader(format!("{topic}-{partition}: {u:?}")))?;
        if !part.settings().enough_in_sync(isr, replicas) {
            return Err(WriteError::Replication(ReplicationError::NotEnoughReplicas));
        }
        let now_ms = crate::now_ms();
        let mut builder = BatchBuilder::new(0).timestamp(now_ms);
        let origin = match producer {
            Some((pid, epoch)) => {
                builder = builder.producer(pid, epoch, 0).transactional(true);
                AppendOrigin::Coordinator
            }
            None => AppendOrigin::Client,
        };
        for (k, v) in records {
            builder = builder.record(Some(k), v.as_deref(), &[], now_ms);
        }
        let leader_epoch = part.leader_epoch();
        let info = part
            .append_with_origin(&mut builder.build(), origin, now_ms)
            .map_err(|e| WriteError::Storage(e.to_string()))?;
        Ok(ReplicationWait::new(
            part,
            info.last_offset + 1,
            leader_epoch,
            replicas,
        ))
    }
}

/// What a shell's writes of one output came to.
#[derive(Default)]
pub struct Written {
    /// Partitions whose writes wait for their followers (the last write of each).
    pub waits: BTreeMap<i32, ReplicationWait>,
    /// Partitions whose writes failed, and why.
    pub failed: BTreeMap<i32, WriteError>,
    /// Of those, the ones whose records did not reach the log at all: the coordinator's state
    /// no longer matches the log there.
    pub unwritten: BTreeSet<i32>,
}

impl CoordinatorContext {
    /// Writes a shell's appends (partition, producer, records) to `topic` in order; a
    /// partition's later appends are skipped once one failed. `waits` may hold earlier waits
    /// (a loaded partition's log end). Writes already replicated (every single-replica
    /// partition) or already failed are settled before returning, so `waits` keeps only what
    /// must be waited for.
    pub fn write_all<'a>(
        &self,
        topic: &str,
        appends: impl IntoIterator<Item = (i32, Option<(i64, i16)>, &'a [(Vec<u8>, Option<Vec<u8>>)])>,
        waits: BTreeMap<i32, ReplicationWait>,
    ) -> Written {
        let mut w = Written {
            waits,
            ..Written::default()
        };
        for (partition, producer, records) in appends {
            if w.failed.contains_key(&partition) {
                continue;
            }
            match self.append(topic, partition, producer, records) {
                // The later append of a partition is replicated after the earlier one.
                Ok(wait) => {
                    w.waits.insert(partition, wait);
                }
                Err(e) => {
                    tracing::error!(partition, error = %e, "Writing to {topic} failed");
                    w.waits.remove(&partition);
                    w.failed.insert(partition, e);
                    w.unwritten.insert(partition);
                }
            }
        }
        let failed = &mut w.failed;
        w.waits.retain(|p, wait| match wait.outcome() {
            None => true,
            Some(Ok(())) => false,
            Some(Err(e)) => {
                failed.insert(*p, WriteError::Replication(e));
                false
            }
        });
        w
    }
}

/// Why a coordinator's write failed. Kafka's coordinators answer NOT_COORDINATOR for the first
/// and last (the client looks for the coordinator again) and COORDINATOR_NOT_AVAILABLE for a
/// write that was not replicated (the client retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("not the leader: {0}")]
    NotLeader(String),
    #[error(transparent)]
    Replication(ReplicationError),
    #[error("storage: {0}")]
    Storage(String),
}

impl WriteError {
    /// Whether the client should look for the coordinator again (rather than retry here).
    pub fn moved(&self) -> bool {
        !matches!(self, WriteError::Replication(r) if *r != ReplicationError::NotLeader)
    }
}

/// Replies held until the write they depend on is replicated, and the wait itself: a shell
/// runs the wait in a task of its own and gets the outcome back through a channel, so a slow
/// follower never stalls the coordinator.
pub struct Held<T> {
    pub partition: i32,
    pub items: T,
    pub result: Result<(), ReplicationError>,
}

/// Waits for `wait` (at most `timeout`) in a task and sends `items` with the outcome to `done`.
pub fn hold<T: Send + 'static>(
    wait: ReplicationWait,
    timeout: std::time::Duration,
    partition: i32,
    items: T,
    done: mpsc::UnboundedSender<Held<T>>,
) {
    tokio::spawn(async move {
        let result = wait.wait(tokio::time::Instant::now() + timeout).await;
        // The coordinator may have stopped meanwhile; then nobody waits for these.
        let _ = done.send(Held {
            partition,
            items,
            result,
        });
    });
}

/// Hands every batch of `part`, from the log start to the log end, to `on_batch`: how a
/// coordinator rebuilds its state from its internal-topic partition when it loads it.
pub fn replay_log(
    part: &Partition,
    mut on_batch: impl FnMut(&BatchView<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut offset = part.log_start_offset();
    let end = part.log_end_offset();
    while offset < end {
        let read = part
            .read_to_log_end(offset, LOAD_READ_BYTES)
            .map_err(|e| e.to_string())?;
        if read.next_offset <= offset {
            break;
        }
        for batch in batches(&read.records) {
            on_batch(&batch.map_err(|e| e.to_string())?)?;
        }
        offset = read.next_offset;
    }
    Ok(())
}

/// Requests queued for a coordinator task; beyond this, handlers wait (backpressure).
const QUEUE_DEPTH: usize = 1024;

/// What a state change runs: the coordinator, the time, the reply id; it returns an output.
pub type Change<C, O> = Box<dyn FnOnce(&mut C, i64, u64) -> O + Send>;
/// A read, or a change answered on the spot; the closure replies itself.
pub type Direct<C> = Box<dyn FnOnce(&mut C, i64) + Send>;

pub enum Command<C, O, R> {
    /// A state change whose reply comes through an output, now or later.
    Change(Change<C, O>, oneshot::Sender<R>),
    Direct(Direct<C>),
    /// Load the partitions the current metadata image assigns to this node; answer when done.
    Sync(oneshot::Sender<()>),
}

/// The task is gone (the node is stopping); each coordinator's error type says this as
/// COORDINATOR_NOT_AVAILABLE.
#[derive(Debug, Clone, Copy)]
pub struct Gone;

impl From<Gone> for rafka_group::GroupError {
    fn from(_: Gone) -> Self {
        rafka_group::GroupError::CoordinatorNotAvailable
    }
}

impl From<Gone> for rafka_txn::TxnError {
    fn from(_: Gone) -> Self {
        rafka_txn::TxnError::CoordinatorNotAvailable
    }
}

/// Handle the API handlers use: `C` the coordinator, `O` its output, `R` its replies, `E` its
/// error type. Cheap to clone.
pub struct TaskHandle<C, O, R, E> {
    tx: mpsc::Sender<Command<C, O, R>>,
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<C, O, R, E> Clone for TaskHandle<C, O, R, E> {
    fn clone(&self) -> Self {
        TaskHandle {
            tx: self.tx.clone(),
            _error: std::marker::PhantomData,
        }
    }
}

impl<C, O, R, E> std::fmt::Debug for TaskHandle<C, O, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskHandle")
    }
}

impl<C: 'static, O: 'static, R: Send + 'static, E: From<Gone>> TaskHandle<C, O, R, E> {
    /// A handle and the receiver its task will read.
    pub fn new() -> (Self, mpsc::Receiver<Command<C, O, R>>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (
            TaskHandle {
                tx,
                _error: std::marker::PhantomData,
            },
            rx,
        )
    }

    /// Runs a state change and waits for its reply.
    pub async fn change(
        &self,
        op: impl FnOnce(&mut C, i64, u64) -> O + Send + 'static,
    ) -> Result<R, E> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Change(Box::new(op), tx))
            .await
            .map_err(|_| Gone)?;
        Ok(rx.await.map_err(|_| Gone)?)
    }

    /// Runs `op` on the coordinator and returns what it returns.
    pub async fn query<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut C, i64) -> T + Send + 'static,
    ) -> Result<T, E> {
        let (tx, rx) = oneshot::channel();
        let direct: Direct<C> = Box::new(move |c, now| {
            let _ = tx.send(op(c, now));
        });
        self.tx
            .send(Command::Direct(direct))
            .await
            .map_err(|_| Gone)?;
        Ok(rx.await.map_err(|_| Gone)?)
    }

    /// Makes the task load what the latest image assigns to this node, and waits.
    pub async fn sync_partitions(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Sync(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The reply senders of state changes whose answers are not out yet, by reply id.
pub struct Waiting<R> {
    next: u64,
    senders: HashMap<u64, oneshot::Sender<R>>,
}

impl<R> Default for Waiting<R> {
    fn default() -> Self {
        Waiting {
            next: 1,
            senders: HashMap::new(),
        }
    }
}

impl<R> Waiting<R> {
    /// Files a sender and returns the reply id the coordinator will answer under.
    pub fn register(&mut self, tx: oneshot::Sender<R>) -> u64 {
        let id = self.next;
        self.next += 1;
        self.senders.insert(id, tx);
        id
    }

    /// Sends the reply for `id`; the client may have gone, which is fine.
    pub fn send(&mut self, id: u64, reply: R) {
        if let Some(tx) = self.senders.remove(&id) {
            let _ = tx.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::tests::{partition_image, partitions};

    /// A coordinator loads a partition once its log leads, from the newest image, before the
    /// image that created the topic is handed to it as applied (the bitnami cluster's first
    /// group commit failed this way with NOT_COORDINATOR, and the partition was unloaded).
    #[test]
    fn a_partition_loaded_from_the_newest_image_can_be_written_before_that_image_is_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = Arc::new(partitions(dir.path()));
        let newest = partition_image(uuid::Uuid::new_v4(), vec![1], 1, 0, 5);
        parts.reconcile(&newest, 0).expect("reconcile");
        let (_applied_tx, applied) = watch::channel(Arc::new(MetadataImage::empty("c")));
        let (_latest_tx, latest) = watch::channel(Arc::new(newest));
        let ctx = CoordinatorContext {
            node_id: 1,
            images: applied,
            latest,
            partitions: parts,
        };
        let records = [(b"key".to_vec(), Some(b"value".to_vec()))];
        let wait = ctx.append("t", 0, None, &records);
        assert!(wait.is_ok(), "{:?}", wait.err());
        let written = ctx.write_all("t", [(0, None, &records[..])], BTreeMap::new());
        assert!(written.failed.is_empty() && written.unwritten.is_empty());
    }
}
