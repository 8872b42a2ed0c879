//! The I/O shell around the sans-IO group coordinator (`rafka-group`): one task owns the
//! [`Coordinator`], takes requests over a channel, runs its timers, writes the records it
//! produces to `__consumer_offsets` and only then sends the replies that depend on them.
//!
//! Loading follows the metadata image: every `__consumer_offsets` partition this node leads is
//! read back from its log (from the log start to the high watermark) before its groups answer;
//! until then they answer COORDINATOR_LOAD_IN_PROGRESS. A partition whose append fails is
//! unloaded (its clients get NOT_COORDINATOR and look again) and reloaded from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rafka_group::records::decode_record;
use rafka_group::{Coordinator, GroupConfig, GroupError, Output, Reply};
use rafka_storage::producer_state::TxnMarker;
use tokio::sync::{mpsc, watch};

use crate::config::consumer_group::ConsumerGroupSettings;
use crate::coordinator_task::{
    self, CoordinatorContext, Held, TaskHandle, Waiting, WriteError, Written,
};
use crate::now_ms;
use crate::partitions::Partition;

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's internal topics: clients may read them but never produce to them.
pub fn is_internal_topic(name: &str) -> bool {
    matches!(
        name,
        OFFSETS_TOPIC | "__transaction_state" | "__share_group_state"
    )
}

type Command = coordinator_task::Command<Coordinator, Output, Reply>;

/// How long a write to `__consumer_offsets` may wait for its followers before the client is
/// told to retry: Kafka's `offsets.commit.timeout.ms` default.
const WRITE_TIMEOUT: Duration = Duration::from_millis(5000);

/// How often partitions marked loading are checked for a log that has become theirs.
const AWAITING_LOG_RECHECK: Duration = Duration::from_millis(20);

/// Handle the API handlers use. Cheap to clone.
pub type GroupCoordinator = TaskHandle<Coordinator, Output, Reply, GroupError>;

/// The receiving end of a [`GroupCoordinator`], until [`spawn`] starts its task.
pub type Inbox = mpsc::Receiver<Command>;

/// Starts the coordinator task; it runs until `shutdown` changes (or its sender is dropped).
pub fn spawn(
    inbox: Inbox,
    config: GroupConfig,
    ctx: CoordinatorContext,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let coordinator = Coordinator::new(config, Box::new(|| uuid::Uuid::new_v4().as_u128()));
    tokio::spawn(run(coordinator, ctx, inbox, shutdown))
}

struct Shell {
    coordinator: Coordinator,
    ctx: CoordinatorContext,
    waiting: Waiting<Reply>,
    /// Where the tasks waiting for a write's replication hand its replies back.
    held_tx: mpsc::UnboundedSender<Held<Vec<(u64, Reply)>>>,
    /// Partitions marked loading because the newest image names this node their leader while
    /// their log is not open here yet: their groups answer COORDINATOR_LOAD_IN_PROGRESS (which
    /// clients retry) instead of NOT_COORDINATOR (which fails a librdkafka commit).
    awaiting_log: BTreeSet<i32>,
    /// The leader epoch each loaded or loading partition was marked for.
    loaded_for: BTreeMap<i32, i32>,
    /// The group configs last handed to the coordinator (from the newest image).
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Kafka's group coordinator answers (`CoordinatorRuntime`'s normalisation): NOT_COORDINATOR
/// when leadership moved or the log failed, COORDINATOR_NOT_AVAILABLE when the write was not
/// replicated (the client retries here).
fn write_error(e: &WriteError) -> GroupError {
    if e.moved() {
        GroupError::NotCoordinator
    } else {
        GroupError::CoordinatorNotAvailable
    }
}

async fn run(
    coordinator: Coordinator,
    ctx: CoordinatorContext,
    mut rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = ctx.images.clone();
    let mut latest = ctx.latest.clone();
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let mut shell = Shell {
        coordinator,
        ctx,
        waiting: Waiting::default(),
        held_tx,
        awaiting_log: BTreeSet::new(),
        loaded_for: BTreeMap::new(),
        group_configs: BTreeMap::new(),
    };
    shell.sync_partitions();
    let mut recheck_at = tokio::time::Instant::now() + AWAITING_LOG_RECHECK;
    loop {
        let sleep = match shell.coordinator.next_deadline_ms() {
            Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        // Partitions waiting for their log are looked at often: the node opens a new topic's
        // partitions one by one, and the whole image may take seconds (fifty partitions with
        // their fsyncs), longer than a client retries COORDINATOR_LOAD_IN_PROGRESS. A fixed
        // instant, not a fresh sleep each turn: requests arriving more often than the period
        // (clients retrying) would otherwise put the recheck off for good.
        let recheck = if shell.awaiting_log.is_empty() {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        } else {
            recheck_at
        };
        tokio::select! {
            _ = tokio::time::sleep_until(recheck) => {
                shell.load_opened();
                recheck_at = tokio::time::Instant::now() + AWAITING_LOG_RECHECK;
            }
            cmd = rx.recv() => match cmd {
                Some(cmd) => shell.handle(cmd),
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {
                let out = shell.coordinator.tick(now_ms());
                shell.apply(out);
            }
            Some(held) = held_rx.recv() => shell.replicated(held),
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                shell.sync_partitions();
            }
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
                shell.sync_partitions();
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Shell {
    fn handle(&mut self, cmd: Command) {
        let now = now_ms();
        match cmd {
            Command::Change(op, reply) => {
                let id = self.waiting.register(reply);
                let out = op(&mut self.coordinator, now, id);
                self.apply(out);
            }
            Command::Direct(op) => op(&mut self.coordinator, now),
            Command::Sync(done) => {
                self.sync_partitions();
                let _ = done.send(());
            }
        }
    }

    /// Writes the records of `out`, then sends its replies once the writes they depend on are
    /// replicated (at once on a single replica; otherwise a task waits and hands the replies
    /// back through `held_tx`). Replies that depend on a failed write are failed as Kafka's
    /// coordinator fails them.
    fn apply(&mut self, out: Output) {
        let Written {
            waits,
            failed,
            unwritten,
        } = self.ctx.write_all(
            OFFSETS_TOPIC,
            out.appends
                .iter()
                .map(|a| (a.partition, a.producer, a.records.as_slice())),
            BTreeMap::new(),
        );
        let mut held: BTreeMap<i32, Vec<(u64, Reply)>> = BTreeMap::new();
        for r in out.replies {
            if let Some(e) = failed.get(&r.partition) {
                self.waiting.send(r.id, r.reply.failed(write_error(e)));
            } else if waits.contains_key(&r.partition) {
                held.entry(r.partition).or_default().push((r.id, r.reply));
            } else {
                self.waiting.send(r.id, r.reply);
            }
        }
        for (p, wait) in waits {
            let replies = held.remove(&p).unwrap_or_default();
            coordinator_task::hold(wait, WRITE_TIMEOUT, p, replies, self.held_tx.clone());
        }
        // A partition whose records were not written no longer matches its log: it is unloaded
        // and loaded again from the log at the next sync (the clients' FindCoordinator
        // triggers one). Records written but not replicated stay: the log has them.
        for p in unwritten {
            let out = self.coordinator.unload_partition(p);
            self.apply(out);
        }
    }

    /// The replies a replicated (or failed) write held back.
    fn replicated(&mut self, held: Held<Vec<(u64, Reply)>>) {
        match held.result {
            Ok(()) => {
                for (id, reply) in held.items {
                    self.waiting.send(id, reply);
                }
            }
            Err(e) => {
                let e = WriteError::Replication(e);
                tracing::warn!(
                    partition = held.partition,
                    error = %e,
                    "A write to {OFFSETS_TOPIC} was not replicated"
                );
                for (id, reply) in held.items {
                    self.waiting.send(id, reply.failed(write_error(&e)));
                }
            }
        }
    }

    /// Follows the newest image: a partition it names this node leader of is marked loading
    /// (its groups answer COORDINATOR_LOAD_IN_PROGRESS, which clients retry) and read back as
    /// soon as its log leads here at that leader epoch; one it takes away, or gives back at
    /// another leader epoch (its log may have changed under the other leader), is unloaded.
    /// Kafka's coordinator likewise loads once per leader epoch. An earlier rule followed the
    /// applied image for unloading, which comes only once every partition of the image is open:
    /// a sync in between (any FindCoordinator) unloaded the partitions already read back and
    /// loaded them again, so groups that had answered answered COORDINATOR_LOAD_IN_PROGRESS.
    fn sync_partitions(&mut self) {
        let latest = self.ctx.latest.borrow().clone();
        if latest.group_configs != self.group_configs {
            // Groups' own `consumer.*` timeouts: in effect from each member's next heartbeat.
            self.group_configs = latest.group_configs.clone();
            let timeouts = self
                .group_configs
                .iter()
                .map(|(g, c)| (g.clone(), ConsumerGroupSettings::group_timeouts(c)))
                .collect();
            self.coordinator.set_group_timeouts(timeouts);
        }
        let topic = latest.topic_by_name(OFFSETS_TOPIC);
        for p in 0..self.coordinator.config().num_partitions {
            let wanted = topic
                .and_then(|t| t.partition(p))
                .filter(|pi| pi.leader == self.ctx.node_id)
                .map(|pi| pi.leader_epoch);
            if self.coordinator.owns_partition(p) && self.loaded_for.get(&p) != wanted.as_ref() {
                self.awaiting_log.remove(&p);
                self.loaded_for.remove(&p);
                let out = self.coordinator.unload_partition(p);
                self.apply(out);
            }
            if let Some(epoch) = wanted {
                if !self.coordinator.owns_partition(p) {
                    self.coordinator.begin_load(p);
                    self.awaiting_log.insert(p);
                    self.loaded_for.insert(p, epoch);
                }
            }
        }
        self.load_opened();
    }

    /// Loads the partitions marked loading whose log already leads here at the leader epoch
    /// they were marked for (the node opens a new image's partitions one by one; the applied
    /// image comes once all are done).
    fn load_opened(&mut self) {
        let latest = self.ctx.latest.borrow().clone();
        let Some(topic) = latest.topic_by_name(OFFSETS_TOPIC) else {
            return;
        };
        for p in self.awaiting_log.clone() {
            let Some(&epoch) = self.loaded_for.get(&p) else {
                continue;
            };
            match self.ctx.partitions.leader(topic, p) {
                Ok(part) if part.leader_epoch() >= epoch => self.load_or_unload(&part, p),
                _ => {}
            }
        }
    }

    /// Loads `partition` from its log; a load that fails leaves it unloaded (NOT_COORDINATOR,
    /// and the next sync tries again).
    fn load_or_unload(&mut self, part: &Partition, partition: i32) {
        self.awaiting_log.remove(&partition);
        if let Err(e) = self.load(part, partition) {
            tracing::error!(partition, error = %e, "Loading {OFFSETS_TOPIC} failed");
            let out = self.coordinator.unload_partition(partition);
            self.apply(out);
        }
    }

    fn load(&mut self, part: &Partition, partition: i32) -> Result<(), String> {
        let started = std::time::Instant::now();
        self.coordinator.begin_load(partition);
        let now = now_ms();
        let mut records = 0usize;
        coordinator_task::replay_log(part, |batch| {
            let header = *batch.header();
            if header.is_control() {
                // A transaction marker settles the offsets that producer committed here.
                if let Some(marker) = TxnMarker::from_control_batch(batch.bytes()) {
                    self.coordinator
                        .complete_txn(partition, header.producer_id, marker.commit);
                }
                return Ok(());
            }
            for r in batch.records() {
                let r = r.map_err(|e| e.to_string())?;
                let Some(key) = r.key else { continue };
                match decode_record(key, r.value) {
                    Ok(rec) => {
                        if header.is_transactional() {
                            self.coordinator
                                .replay_transactional(rec, header.producer_id, now);
                        } else {
                            self.coordinator.replay(rec, now);
                        }
                        records += 1;
                    }
                    Err(e) => tracing::warn!(
                        partition,
                        offset = r.offset(header.base_offset),
                        error = %e,
                        "Skipping an unreadable record in {OFFSETS_TOPIC}"
                    ),
                }
            }
            Ok(())
        })?;
        self.coordinator.finish_load(partition, now_ms());
        tracing::info!(
            "Finished loading offsets and group metadata from {OFFSETS_TOPIC}-{partition} in {} milliseconds ({records} records)",
            started.elapsed().as_millis()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rafka_metadata::{MetadataImage, MetadataRecord, PartitionRecord};

    use super::*;
    use crate::partitions::tests::partitions;

    /// An image with `__consumer_offsets` of one partition led by `leader` at `leader_epoch`.
    fn offsets_image(topic_id: uuid::Uuid, leader: i32, leader_epoch: i32) -> MetadataImage {
        let mut image = MetadataImage::empty("c");
        image.apply_record(&MetadataRecord::Topic {
            name: OFFSETS_TOPIC.into(),
            topic_id,
        });
        image.apply_record(&MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch,
            partition_epoch: leader_epoch,
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }));
        image.last_applied_index = 1 + leader_epoch as u64;
        image
    }

    /// Whether partition 0 is (loaded or loading, loading).
    async fn state(handle: &GroupCoordinator) -> (bool, bool) {
        handle
            .query(|c: &mut Coordinator, _| (c.owns_partition(0), c.is_loading()))
            .await
            .expect("task")
    }

    /// Asks for the state every few milliseconds, as clients retrying do: the load must not
    /// wait for a quiet moment.
    async fn until_loaded(handle: &GroupCoordinator) {
        for _ in 0..1000 {
            if state(handle).await == (true, false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never loaded: {:?}", state(handle).await);
    }

    /// A partition read back because the newest image names this node its leader stays
    /// loaded through syncs made before that image is applied (one load per leader epoch);
    /// a new leader epoch loads it again, and an image naming another leader unloads it.
    #[tokio::test]
    async fn a_partition_is_loaded_once_per_leader_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = Arc::new(partitions(dir.path()));
        let topic_id = uuid::Uuid::new_v4();
        let first = offsets_image(topic_id, 1, 0);
        parts.reconcile(&first, 0).expect("reconcile");
        let (_applied_tx, applied) = watch::channel(Arc::new(MetadataImage::empty("c")));
        let (latest_tx, latest) = watch::channel(Arc::new(first));
        let ctx = CoordinatorContext {
            node_id: 1,
            images: applied,
            latest,
            partitions: parts.clone(),
        };
        let (handle, inbox) = GroupCoordinator::new();
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let config = GroupConfig {
            num_partitions: 1,
            ..GroupConfig::default()
        };
        let task = spawn(inbox, config, ctx, shutdown);
        until_loaded(&handle).await;

        // The applied image still lacks the topic: syncs (FindCoordinator's) keep the load.
        for _ in 0..3 {
            handle.sync_partitions().await;
            assert_eq!(state(&handle).await, (true, false), "loaded again");
        }

        // Led again at a new leader epoch: read back again (marked loading until its log
        // leads at that epoch).
        let second = offsets_image(topic_id, 1, 1);
        latest_tx.send(Arc::new(second.clone())).expect("send");
        handle.sync_partitions().await;
        assert_eq!(state(&handle).await, (true, true), "not reloaded");
        parts.reconcile(&second, 0).expect("reconcile");
        until_loaded(&handle).await;

        // Another leader: unloaded at once.
        latest_tx
            .send(Arc::new(offsets_image(topic_id, 2, 2)))
            .expect("send");
        handle.sync_partitions().await;
        assert_eq!(state(&handle).await, (false, false));
        task.abort();
    }
}
