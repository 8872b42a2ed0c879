//! The I/O shell around the sans-IO transaction coordinator (`rafka-txn`), built like
//! [`crate::group_coordinator`]: one task owns the [`TxnCoordinator`], takes requests over a
//! channel, runs its timers (timed-out transactions, expired transactional ids), writes its
//! records to `__transaction_state` before sending the replies that depend on them, and writes
//! the transaction markers it asks for.
//!
//! Markers: every partition of a finished transaction gets a control batch (COMMIT or ABORT).
//! A partition this node leads gets it here, directly; the others are sent to their leaders
//! with WriteTxnMarkers, one request per broker for everything owed to it (Kafka's
//! `TransactionMarkerChannelManager`). Sends run in their own tasks so that a dead broker
//! stalls only its own markers, never the coordinator; their answers come back over a channel.
//! A marker on a `__consumer_offsets` partition also settles the transaction's offsets in the
//! group coordinator that leads it (here, or in the receiving broker's WriteTxnMarkers
//! handler). When every partition has its marker the coordinator completes the transaction. A
//! marker that failed (no leader, the leader moved, a timeout) is retried on the next tick with
//! the leader the image names then; one refused for good (a newer producer or coordinator
//! epoch) ends the attempt for that transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use rafka_protocol::kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;
use rafka_txn::records::decode_record;
use rafka_txn::{
    Output, Reply, TxnConfig, TxnCoordinator, TxnError, WriteMarkers, CONSUMER_OFFSETS_TOPIC,
    TRANSACTION_STATE_TOPIC,
};
use tokio::sync::{mpsc, watch};

use crate::cluster::broker_client::BrokerClient;
use crate::coordinator_task::{
    self, CoordinatorContext, Held, TaskHandle, Waiting, WriteError, Written,
};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;
use crate::now_ms;
use crate::partitions::{Partition, Partitions, ReplicationError, ReplicationWait};
use crate::producer_ids::ProducerIds;

/// Marker writes that failed are retried this often.
const MARKER_RETRY_MS: u64 = 1000;

type Command = coordinator_task::Command<TxnCoordinator, Output, Reply>;

/// Handle the API handlers use. Cheap to clone.
pub type TxnCoordinatorHandle = TaskHandle<TxnCoordinator, Output, Reply, TxnError>;

/// The receiving end of a [`TxnCoordinatorHandle`], until [`spawn`] starts its task.
pub type Inbox = mpsc::Receiver<Command>;

/// How the coordinator reaches other brokers for their markers.
pub struct MarkerSender {
    pub brokers: Arc<BrokerClient>,
    /// Each WriteTxnMarkers request's timeout (`request.timeout.ms`).
    pub request_timeout: Duration,
}

/// Starts the coordinator task; it runs until `shutdown` changes (or its sender is dropped).
/// Besides what every shell sees (`ctx`), it takes producer ids from the broker's allocator,
/// settles transactional offsets through the group coordinator when it marks
/// `__consumer_offsets`, and sends markers to other brokers through `sender`.
pub fn spawn(
    inbox: Inbox,
    config: TxnConfig,
    ctx: CoordinatorContext,
    producer_ids: Arc<ProducerIds>,
    groups: GroupCoordinator,
    sender: MarkerSender,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let ids = producer_ids.clone();
    // Ids come from the broker's current block; the task makes sure one is available before
    // each InitProducerId, so running dry here is a rare race the client retries.
    let next_id = Box::new(move || ids.try_take().ok_or(TxnError::CoordinatorLoadInProgress));
    let coordinator = TxnCoordinator::new(config, next_id);
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let (held_tx, held) = mpsc::unbounded_channel();
    let shell = Shell {
        coordinator,
        ctx,
        producer_ids,
        groups,
        waiting: Waiting::default(),
        markers: Vec::new(),
        in_flight: BTreeSet::new(),
        warned: BTreeSet::new(),
        sender,
        answers_tx,
        held_tx,
        generations: BTreeMap::new(),
    };
    tokio::spawn(run(shell, inbox, answers, held, shutdown))
}

struct Shell {
    coordinator: TxnCoordinator,
    ctx: CoordinatorContext,
    producer_ids: Arc<ProducerIds>,
    groups: GroupCoordinator,
    waiting: Waiting<Reply>,
    /// Transactions whose markers are not all written: their partitions still owed one
    /// (failed ones are retried, those sent to another broker await its answer).
    markers: Vec<Pending>,
    /// Partitions whose marker is on its way to another broker.
    in_flight: BTreeSet<MarkerKey>,
    /// Markers whose failure was logged at WARN already.
    warned: BTreeSet<MarkerKey>,
    sender: MarkerSender,
    /// Where the send tasks report their brokers' answers.
    answers_tx: mpsc::UnboundedSender<Vec<(MarkerKey, MarkerResult)>>,
    /// Where the tasks waiting for a write's replication hand its replies and markers back.
    held_tx: mpsc::UnboundedSender<Held<HeldWork>>,
    /// Unloads per partition (see [`Shell::generation`]).
    generations: BTreeMap<i32, u64>,
}

/// The replies and the markers of the transactions a `__transaction_state` write prepared.
type HeldAnswers = (Vec<(u64, Reply)>, Vec<WriteMarkers>);

/// What waits for a `__transaction_state` write: its answers, and the partition's generation
/// when it was written.
type HeldWork = (Vec<(u64, Reply)>, Vec<WriteMarkers>, u64);

/// Kafka's transaction coordinator answers (`TransactionStateManager.appendTransactionToLog`):
/// NOT_COORDINATOR when leadership moved or the log failed, COORDINATOR_NOT_AVAILABLE when the
/// write was not replicated (the client retries here).
fn write_error(e: &WriteError) -> TxnError {
    if e.moved() {
        TxnError::NotCoordinator
    } else {
        TxnError::CoordinatorNotAvailable
    }
}

/// One transaction's markers still owed.
struct Pending {
    markers: WriteMarkers,
    /// A partition refused the marker for good: send no more, complete once the ones in flight
    /// have answered.
    given_up: bool,
}

/// A partition's marker of one transaction: transactional id, producer id and epoch, topic,
/// partition.
type MarkerKey = (String, i64, i16, String, i32);

/// How a partition's marker write went.
enum MarkerResult {
    Written,
    Fenced(String),
    Retry(String),
}

impl Pending {
    fn key(&self, topic: &str, partition: i32) -> MarkerKey {
        (
            self.markers.transactional_id.clone(),
            self.markers.producer_id,
            self.markers.producer_epoch,
            topic.to_string(),
            partition,
        )
    }

    fn owns(&self, key: &MarkerKey) -> bool {
        key.0 == self.markers.transactional_id
            && key.1 == self.markers.producer_id
            && key.2 == self.markers.producer_epoch
    }
}

async fn run(
    mut shell: Shell,
    mut rx: mpsc::Receiver<Command>,
    mut answers: mpsc::UnboundedReceiver<Vec<(MarkerKey, MarkerResult)>>,
    mut held: mpsc::UnboundedReceiver<Held<HeldWork>>,
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
            Some(answer) = answers.recv() => shell.remote_answered(answer).await,
            Some(done) = held.recv() => shell.replicated(done).await,
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
        self.apply_after(out, BTreeMap::new()).await;
    }

    /// [`Shell::apply`], where the replies and markers of a partition also wait for `waits`
    /// (a loaded partition's log end). Replies and markers that depend on a write wait for its
    /// replication (at once on a single replica; otherwise a task waits and hands them back
    /// through `held_tx`): a marker must never be written for a PrepareCommit or PrepareAbort
    /// that a failover could lose.
    async fn apply_after(&mut self, out: Output, waits: BTreeMap<i32, ReplicationWait>) {
        let Written { waits, failed, .. } = self.ctx.write_all(
            TRANSACTION_STATE_TOPIC,
            out.appends
                .iter()
                .map(|a| (a.partition, None, a.records.as_slice())),
            waits,
        );
        let mut held: BTreeMap<i32, HeldAnswers> = BTreeMap::new();
        for r in out.replies {
            match r.partition {
                Some(p) if failed.contains_key(&p) => {
                    let reply = r.reply.failed(write_error(&failed[&p]));
                    self.waiting.send(r.id, reply);
                }
                Some(p) if waits.contains_key(&p) => {
                    held.entry(p).or_default().0.push((r.id, r.reply));
                }
                _ => self.waiting.send(r.id, r.reply),
            }
        }
        for m in out.markers {
            let p = m.txn_partition;
            if failed.contains_key(&p) {
                continue;
            }
            if waits.contains_key(&p) {
                held.entry(p).or_default().1.push(m);
            } else {
                self.markers.push(Pending {
                    markers: m,
                    given_up: false,
                });
            }
        }
        for (p, wait) in waits {
            let (replies, markers) = held.remove(&p).unwrap_or_default();
            let generation = self.generation(p);
            // Kafka's transaction log appends wait up to `request.timeout.ms`.
            coordinator_task::hold(
                wait,
                self.sender.request_timeout,
                p,
                (replies, markers, generation),
                self.held_tx.clone(),
            );
        }
        // A partition that failed no longer matches what was decided: it is loaded again from
        // its log at the next sync (the clients' FindCoordinator triggers one), and the
        // markers of its prepared transactions are written once its log end is replicated.
        for p in failed.into_keys() {
            self.unload(p);
        }
        self.write_markers().await;
    }

    /// The replies and markers a replicated (or failed) write held back.
    async fn replicated(&mut self, held: Held<HeldWork>) {
        let (replies, markers, generation) = held.items;
        tracing::debug!(partition = held.partition, result = ?held.result,
            replies = replies.len(), markers = markers.len(),
            "A held {TRANSACTION_STATE_TOPIC} write finished");
        // Unloaded since (and maybe loaded again): its markers are the load's to write.
        let current = generation == self.generation(held.partition)
            && self.coordinator.owns_partition(held.partition);
        match held.result {
            Ok(()) => {
                for (id, reply) in replies {
                    self.waiting.send(id, reply);
                }
                if current {
                    self.markers
                        .extend(markers.into_iter().map(|markers| Pending {
                            markers,
                            given_up: false,
                        }));
                    self.write_markers().await;
                }
            }
            Err(e) => {
                let e = WriteError::Replication(e);
                tracing::warn!(
                    partition = held.partition,
                    error = %e,
                    "A write to {TRANSACTION_STATE_TOPIC} was not replicated; unloading the partition"
                );
                for (id, reply) in replies {
                    self.waiting.send(id, reply.failed(write_error(&e)));
                }
                if current {
                    self.unload(held.partition);
                }
            }
        }
    }

    /// Writes the pending markers this node's partitions owe, sends the others to their
    /// leaders, and completes the transactions whose partitions all have theirs.
    async fn write_markers(&mut self) {
        let image = self.ctx.image();
        let mut remote: BTreeMap<i32, Vec<(MarkerKey, Marker)>> = BTreeMap::new();
        for i in 0..self.markers.len() {
            let pending = &mut self.markers[i];
            let marker = Marker::of(&pending.markers);
            let mut left = Vec::new();
            for (topic, partition) in std::mem::take(&mut pending.markers.partitions) {
                let key = pending.key(&topic, partition);
                if self.in_flight.contains(&key) {
                    left.push((topic, partition));
                    continue;
                }
                if pending.given_up {
                    continue;
                }
                let leader = image
                    .topic_by_name(&topic)
                    .and_then(|t| t.partition(partition))
                    .map(|p| p.leader);
                match leader {
                    // The topic or partition is gone: nothing to mark.
                    None => {}
                    Some(l) if l == self.ctx.node_id => {
                        let written = write_marker_to(
                            &image,
                            &self.ctx.partitions,
                            &self.groups,
                            marker,
                            &topic,
                            partition,
                        )
                        .await;
                        match written {
                            Ok(wait) => match wait.outcome() {
                                Some(Ok(())) => {}
                                // Followers must have it before the transaction completes:
                                // a task waits and answers like another broker would.
                                _ => {
                                    self.in_flight.insert(key.clone());
                                    left.push((topic.clone(), partition));
                                    let answers = self.answers_tx.clone();
                                    let timeout = self.sender.request_timeout;
                                    tokio::spawn(async move {
                                        let deadline = tokio::time::Instant::now() + timeout;
                                        let result =
                                            match marker_replicated(wait.wait(deadline).await) {
                                                Ok(()) => MarkerResult::Written,
                                                Err(e) => MarkerResult::Retry(format!(
                                                    "{:?} ({:?})",
                                                    e.code(),
                                                    wait.partition()
                                                )),
                                            };
                                        let _ = answers.send(vec![(key, result)]);
                                    });
                                }
                            },
                            Err(MarkerError::Gone) => {}
                            Err(MarkerError::Fenced(_, e)) => {
                                give_up(pending, &topic, partition, &e);
                            }
                            Err(MarkerError::Retry(_, e)) => {
                                tracing::warn!(txn = %pending.markers.transactional_id, %topic,
                                    partition, error = %e,
                                    "Writing a transaction marker failed; retrying");
                                left.push((topic, partition));
                            }
                        }
                    }
                    Some(l) if l >= 0 => {
                        self.in_flight.insert(key.clone());
                        remote.entry(l).or_default().push((key, marker));
                        left.push((topic, partition));
                    }
                    // Leaderless for now: the next tick looks again.
                    Some(_) => left.push((topic, partition)),
                }
            }
            if pending.given_up {
                left.retain(|(t, p)| self.in_flight.contains(&pending.key(t, *p)));
            }
            pending.markers.partitions = left;
        }
        for (broker, markers) in remote {
            self.send_markers(&image, broker, markers);
        }
        self.complete_written().await;
    }

    /// Sends `markers` to `broker` in one WriteTxnMarkers request, in a task of its own; the
    /// answers come back through `answers_tx`.
    fn send_markers(
        &self,
        image: &Arc<MetadataImage>,
        broker: i32,
        markers: Vec<(MarkerKey, Marker)>,
    ) {
        let request = marker_request(&markers);
        let brokers = self.sender.brokers.clone();
        let timeout = self.sender.request_timeout;
        let image = image.clone();
        let answers = self.answers_tx.clone();
        tokio::spawn(async move {
            let results = match brokers.send(&image, broker, &request, timeout).await {
                Ok(response) => marker_results(&response, markers),
                Err(e) => markers
                    .into_iter()
                    .map(|(key, _)| (key, MarkerResult::Retry(e.to_string())))
                    .collect(),
            };
            // The coordinator may have stopped meanwhile; then nobody waits for these.
            let _ = answers.send(results);
        });
    }

    /// Another broker answered for some markers.
    async fn remote_answered(&mut self, answer: Vec<(MarkerKey, MarkerResult)>) {
        for (key, result) in answer {
            if !self.in_flight.remove(&key) {
                // The transaction's partition was unloaded meanwhile.
                continue;
            }
            let Some(pending) = self.markers.iter_mut().find(|p| p.owns(&key)) else {
                continue;
            };
            let (topic, partition) = (&key.3, key.4);
            match result {
                MarkerResult::Written => pending
                    .markers
                    .partitions
                    .retain(|(t, p)| !(t == topic && *p == partition)),
                MarkerResult::Fenced(e) => {
                    pending
                        .markers
                        .partitions
                        .retain(|(t, p)| !(t == topic && *p == partition));
                    give_up(pending, topic, partition, &e);
                    let in_flight = &self.in_flight;
                    let owner = pending.markers.transactional_id.clone();
                    pending.markers.partitions.retain(|(t, p)| {
                        in_flight.contains(&(owner.clone(), key.1, key.2, t.clone(), *p))
                    });
                }
                MarkerResult::Retry(e) => {
                    // Once per marker at WARN: a broker that is down fails the same marker
                    // every tick until it returns.
                    if self.warned.insert(key.clone()) {
                        tracing::warn!(txn = %key.0, %topic, partition, error = %e,
                            "Writing a transaction marker on another broker failed; retrying");
                    } else {
                        tracing::debug!(txn = %key.0, %topic, partition, error = %e,
                            "Writing a transaction marker on another broker failed again");
                    }
                }
            }
        }
        self.complete_written().await;
    }

    /// Completes every transaction whose partitions all have their marker.
    async fn complete_written(&mut self) {
        let (done, pending): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.markers)
            .into_iter()
            .partition(|p| p.markers.partitions.is_empty());
        self.markers = pending;
        let markers = &self.markers;
        self.warned.retain(|k| markers.iter().any(|m| m.owns(k)));
        for p in done {
            let m = p.markers;
            let out = self.coordinator.markers_written(
                now_ms(),
                &m.transactional_id,
                m.producer_id,
                m.producer_epoch,
                m.coordinator_epoch,
            );
            // Completing writes one more record and never asks for markers again.
            Box::pin(self.apply(out)).await;
        }
    }

    /// How many times partition `p` was unloaded: held work from before an unload is stale.
    fn generation(&self, p: i32) -> u64 {
        self.generations.get(&p).copied().unwrap_or(0)
    }

    /// Stops coordinating `__transaction_state` partition `p`: its transactions' markers are
    /// the next coordinator's to write.
    fn unload(&mut self, p: i32) {
        *self.generations.entry(p).or_default() += 1;
        self.coordinator.unload_partition(p);
        self.markers.retain(|m| m.markers.txn_partition != p);
        let markers = &self.markers;
        self.in_flight.retain(|k| markers.iter().any(|m| m.owns(k)));
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
                self.unload(p);
            } else if led && !owned {
                let Ok(part) = self.ctx.partitions.named_leader(topic, p) else {
                    continue;
                };
                let replicas = topic.partition(p).map_or(1, |pi| pi.replicas.len());
                match self.load(&part, p) {
                    Ok(out) => {
                        // Loaded to the log end: what it decides (markers of prepared
                        // transactions) waits until the followers have that much.
                        let end = ReplicationWait::new(
                            part.clone(),
                            part.log_end_offset(),
                            part.leader_epoch(),
                            replicas,
                        );
                        self.apply_after(out, BTreeMap::from([(p, end)])).await;
                    }
                    Err(e) => {
                        tracing::error!(partition = p, error = %e, "Loading {TRANSACTION_STATE_TOPIC} failed");
                        self.unload(p);
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

/// A partition refused `pending`'s marker for good: a newer coordinator or producer owns the
/// transaction now, so no more of its markers are sent.
fn give_up(pending: &mut Pending, topic: &str, partition: i32, error: &str) {
    tracing::info!(txn = %pending.markers.transactional_id, %topic, partition, %error,
        "Transaction marker refused; giving up on this transaction");
    pending.given_up = true;
}

/// One WriteTxnMarkers request for `markers`, grouped by transaction and topic.
fn marker_request(markers: &[(MarkerKey, Marker)]) -> WriteTxnMarkersRequest {
    let mut request = WriteTxnMarkersRequest::default();
    for ((_, _, _, topic, partition), m) in markers {
        let at = request.markers.iter().position(|w| {
            w.producer_id.0 == m.producer_id
                && w.producer_epoch == m.producer_epoch
                && w.coordinator_epoch == m.coordinator_epoch
                && w.transaction_result == m.commit
        });
        let w = match at {
            Some(at) => &mut request.markers[at],
            None => {
                let mut w = WritableTxnMarker::default();
                w.producer_id = ProducerId(m.producer_id);
                w.producer_epoch = m.producer_epoch;
                w.coordinator_epoch = m.coordinator_epoch;
                w.transaction_result = m.commit;
                request.markers.push(w);
                request.markers.last_mut().expect("just pushed")
            }
        };
        match w.topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partition_indexes.push(*partition),
            None => {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = TopicName(StrBytes::from_string(topic.clone()));
                t.partition_indexes = vec![*partition];
                w.topics.push(t);
            }
        }
    }
    request
}

/// Each marker's result from the leader's answer (Kafka's
/// `TransactionMarkerRequestCompletionHandler`): a stale producer or coordinator epoch is final;
/// anything else, a partition left unanswered included, is tried again.
fn marker_results(
    response: &WriteTxnMarkersResponse,
    markers: Vec<(MarkerKey, Marker)>,
) -> Vec<(MarkerKey, MarkerResult)> {
    markers
        .into_iter()
        .map(|(key, m)| {
            let code = response
                .markers
                .iter()
                .filter(|r| r.producer_id.0 == m.producer_id)
                .flat_map(|r| &r.topics)
                .filter(|t| t.name.0.as_str() == key.3)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == key.4)
                .map(|p| p.error_code);
            let result = match code {
                Some(0) => MarkerResult::Written,
                Some(c)
                    if c == ResponseError::InvalidProducerEpoch.code()
                        || c == ResponseError::TransactionCoordinatorFenced.code() =>
                {
                    MarkerResult::Fenced(format!("error code {c}"))
                }
                Some(c) => MarkerResult::Retry(format!("error code {c}")),
                None => MarkerResult::Retry("the partition is missing from the answer".into()),
            };
            (key, result)
        })
        .collect()
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
/// for one partition), looked up in `image` among the hosted `partitions`, with acks=all as
/// Kafka writes markers: refused before the append when the ISR is below
/// `min.insync.replicas`; the returned wait says when the followers have it. A marker on
/// `__consumer_offsets` also settles the producer's pending transactional offsets in `groups`.
pub async fn write_marker_to(
    image: &MetadataImage,
    partitions: &Partitions,
    groups: &GroupCoordinator,
    marker: Marker,
    topic: &str,
    partition: i32,
) -> Result<ReplicationWait, MarkerError> {
    let Marker {
        producer_id,
        producer_epoch,
        coordinator_epoch,
        commit,
    } = marker;
    let Some(t) = image.topic_by_name(topic) else {
        return Err(MarkerError::Gone);
    };
    let Some(assigned) = t.partition(partition) else {
        return Err(MarkerError::Gone);
    };
    let part = partitions
        .leader(t, partition)
        .map_err(|u| MarkerError::Retry(errors::unavailable(u), format!("{u:?}")))?;
    let replicas = assigned.replicas.len();
    if !part.settings().enough_in_sync(assigned.isr.len(), replicas) {
        let e = ReplicationError::NotEnoughReplicas;
        return Err(MarkerError::Retry(errors::replication(e), e.to_string()));
    }
    let leader_epoch = part.leader_epoch();
    let end = match part.append_txn_marker(
        producer_id,
        producer_epoch,
        coordinator_epoch,
        commit,
        now_ms(),
    ) {
        Ok(end) => end,
        Err(e) => {
            let code = errors::storage(&e);
            return Err(match e {
                rafka_storage::StorageError::InvalidProducerEpoch { .. }
                | rafka_storage::StorageError::TransactionCoordinatorFenced { .. } => {
                    MarkerError::Fenced(code, e.to_string())
                }
                _ => MarkerError::Retry(code, e.to_string()),
            });
        }
    };
    if topic == CONSUMER_OFFSETS_TOPIC {
        groups
            .query(move |c, _| c.complete_txn(partition, producer_id, commit))
            .await
            .map_err(|e| MarkerError::Retry(errors::group(e), e.to_string()))?;
    }
    Ok(ReplicationWait::new(part, end, leader_epoch, replicas))
}

/// A written marker's replication, as a coordinator or a WriteTxnMarkers answer sees it.
pub fn marker_replicated(result: Result<(), ReplicationError>) -> Result<(), MarkerError> {
    result.map_err(|e| MarkerError::Retry(errors::replication(e), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_protocol::kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };

    fn marker(producer_id: i64, commit: bool) -> Marker {
        Marker {
            producer_id,
            producer_epoch: 2,
            coordinator_epoch: 5,
            commit,
        }
    }

    fn key(txn: &str, producer_id: i64, topic: &str, partition: i32) -> MarkerKey {
        (
            txn.to_string(),
            producer_id,
            2,
            topic.to_string(),
            partition,
        )
    }

    #[test]
    fn one_request_groups_markers_by_transaction_and_topic() {
        let markers = vec![
            (key("a", 1, "t", 0), marker(1, true)),
            (key("a", 1, "u", 3), marker(1, true)),
            (key("a", 1, "t", 2), marker(1, true)),
            (key("b", 7, "t", 1), marker(7, false)),
        ];
        let r = marker_request(&markers);
        assert_eq!(r.markers.len(), 2);
        let a = &r.markers[0];
        assert_eq!((a.producer_id.0, a.transaction_result), (1, true));
        assert_eq!((a.producer_epoch, a.coordinator_epoch), (2, 5));
        let topics: Vec<(&str, &[i32])> = a
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partition_indexes.as_slice()))
            .collect();
        assert_eq!(topics, vec![("t", &[0, 2][..]), ("u", &[3][..])]);
        assert_eq!(
            (r.markers[1].producer_id.0, r.markers[1].transaction_result),
            (7, false)
        );
    }

    #[test]
    fn results_tell_written_from_fenced_from_retry() {
        let markers = vec![
            (key("a", 1, "t", 0), marker(1, true)),
            (key("a", 1, "t", 1), marker(1, true)),
            (key("a", 1, "t", 2), marker(1, true)),
            (key("a", 1, "t", 3), marker(1, true)),
        ];
        let partition = |index, code: ResponseError| {
            let mut p = WritableTxnMarkerPartitionResult::default();
            p.partition_index = index;
            p.error_code = if index == 0 { 0 } else { code.code() };
            p
        };
        let mut t = WritableTxnMarkerTopicResult::default();
        t.name = TopicName(StrBytes::from_static_str("t"));
        t.partitions = vec![
            partition(0, ResponseError::UnknownServerError),
            partition(1, ResponseError::InvalidProducerEpoch),
            partition(2, ResponseError::NotLeaderOrFollower),
        ];
        let mut m = WritableTxnMarkerResult::default();
        m.producer_id = ProducerId(1);
        m.topics = vec![t];
        let mut response = WriteTxnMarkersResponse::default();
        response.markers = vec![m];
        let results = marker_results(&response, markers);
        assert!(matches!(results[0].1, MarkerResult::Written));
        assert!(matches!(results[1].1, MarkerResult::Fenced(_)));
        assert!(matches!(results[2].1, MarkerResult::Retry(_)));
        // Left out of the answer: tried again.
        assert!(matches!(results[3].1, MarkerResult::Retry(_)));
    }
}
