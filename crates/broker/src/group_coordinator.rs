//! The I/O shell around the sans-IO group coordinator (`rafka-group`): one task owns the
//! [`Coordinator`], takes requests over a channel, runs its timers, writes the records it
//! produces to `__consumer_offsets` and only then sends the replies that depend on them.
//!
//! Loading follows the metadata image: every `__consumer_offsets` partition this node leads is
//! read back from its log (from the log start to the high watermark) before its groups answer;
//! until then they answer COORDINATOR_LOAD_IN_PROGRESS. A partition whose append fails is
//! unloaded (its clients get NOT_COORDINATOR and look again) and reloaded from the log.

use std::collections::BTreeSet;
use std::time::Duration;

use rafka_group::records::decode_record;
use rafka_group::{Coordinator, GroupConfig, GroupError, Output, Reply};
use rafka_storage::producer_state::TxnMarker;
use tokio::sync::{mpsc, watch};

use crate::coordinator_task::{self, CoordinatorContext, TaskHandle, Waiting};
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
}

async fn run(
    coordinator: Coordinator,
    ctx: CoordinatorContext,
    mut rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = ctx.images.clone();
    let mut shell = Shell {
        coordinator,
        ctx,
        waiting: Waiting::default(),
    };
    shell.sync_partitions();
    loop {
        let sleep = match shell.coordinator.next_deadline_ms() {
            Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => shell.handle(cmd),
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {
                let out = shell.coordinator.tick(now_ms());
                shell.apply(out);
            }
            changed = images.changed() => {
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

    /// Writes the records of `out`, then sends its replies; replies that depend on a failed
    /// write are failed with NOT_COORDINATOR and the partition is unloaded.
    fn apply(&mut self, out: Output) {
        let mut failed_now = BTreeSet::new();
        for append in &out.appends {
            if let Err(e) = self.append(append.partition, append.producer, &append.records) {
                tracing::error!(
                    partition = append.partition,
                    error = %e,
                    "Writing to {OFFSETS_TOPIC} failed; unloading the partition's groups"
                );
                failed_now.insert(append.partition);
            }
        }
        for r in out.replies {
            let reply = if failed_now.contains(&r.partition) {
                r.reply.failed(GroupError::NotCoordinator)
            } else {
                r.reply
            };
            self.waiting.send(r.id, reply);
        }
        // Unloaded partitions are loaded again from the log at the next sync (the clients'
        // FindCoordinator triggers one).
        for p in failed_now {
            let out = self.coordinator.unload_partition(p);
            self.apply(out);
        }
    }

    fn append(
        &self,
        partition: i32,
        producer: Option<(i64, i16)>,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), String> {
        let part = self.ctx.local_leader(OFFSETS_TOPIC, partition)?;
        coordinator_task::append_records(&part, producer, records, now_ms())
    }

    /// Loads partitions the image says this node now leads and unloads the ones it lost.
    fn sync_partitions(&mut self) {
        let image = self.ctx.image();
        let Some(topic) = image.topic_by_name(OFFSETS_TOPIC) else {
            return;
        };
        let led: BTreeSet<i32> = topic
            .partitions
            .iter()
            .filter(|(_, p)| p.leader == self.ctx.node_id)
            .map(|(i, _)| *i)
            .collect();
        for p in 0..self.coordinator.config().num_partitions {
            let owned = self.coordinator.owns_partition(p);
            if owned && !led.contains(&p) {
                let out = self.coordinator.unload_partition(p);
                self.apply(out);
            } else if led.contains(&p) && !owned {
                // Not open here yet (the partitions follow the same image): the next sync loads it.
                let Ok(part) = self.ctx.partitions.leader(topic, p) else {
                    continue;
                };
                if let Err(e) = self.load(&part, p) {
                    tracing::error!(partition = p, error = %e, "Loading {OFFSETS_TOPIC} failed");
                    let out = self.coordinator.unload_partition(p);
                    self.apply(out);
                }
            }
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
