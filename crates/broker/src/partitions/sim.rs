//! The seeded replication simulation (issue 15): three replicas of one partition on four nodes
//! (reassignments move it among them, cancel moves, add a replica that must copy the log), each a real
//! [`Partitions`] over its own log dir on the fault-injecting backend (a crash loses what was not
//! fsynced), a controller that runs the production `apply` on an in-memory image (fencing,
//! elections, AlterPartition), and a message bus between followers and leaders that drops,
//! delays and duplicates fetch answers. Each node acts on the image it has seen: a new image
//! reaches each node at once or in a later step, and one node at a time may be cut off from the
//! controller for a while (no images; its AlterPartition requests or their answers are lost; the
//! controller fences it when its session times out, so a deposed leader goes on leading by its
//! old image, the zombie of fault-suite seed 625). A follower fetches from the leader it knows,
//! at the epoch it knows; AlterPartition answers also get lost without a cut, and the leader
//! handles every outcome as `cluster::isr` does, sending an unanswered change again. Followers
//! fetch at different rates, and `replica.lag.time.max.ms` is the fault suite's 4 s, so members
//! leave and rejoin the ISR all the time. Producers append on a node that believes it leads,
//! with acks=all; a record is acknowledged once that leader's high watermark passes it, exactly
//! as `handlers::produce::await_replication` decides. Every step is drawn from the seed.
//!
//! Leaders also take DeleteRecords (even seeds), which followers follow through their fetches.
//!
//! Invariants, checked as the run goes and at its end:
//! - every acknowledged batch (not deleted on request) is in the log of every later leader (as
//!   it takes over, by its own image), at its offset, byte for byte, unless that leader came
//!   from an unclean election (KIP-704 marks it RECOVERING: the last known leader after every
//!   replica shut down uncleanly, which Kafka elects too and which may have lost records in a
//!   power loss);
//! - once the network is whole again, every replica reaches the leader's log end, and caught-up
//!   followers end with the leader's high watermark and log start (a follower stuck on an
//!   epoch it began as leader and never wrote in was found this way);
//! - a leader's high watermark never moves back within its epoch, leader epochs only grow;
//! - the in-sync replicas agree byte for byte on everything below the smallest high watermark.
//!
//! At most one node is down or cut off at a time (acks=all with `min.insync.replicas` 2
//! promises to survive the loss of a minority). Each [`Bug`] replays a known wrong rule, and the
//! simulation must catch each within its seed budget, which shows the invariants have teeth:
//! Kafka's pre-KIP-101 truncation to the high watermark, elections without KIP-966's eligible
//! leader replicas, and rafka's own fall-back to the smaller ISR after a lost AlterPartition
//! answer (fault-suite seed 625, also replayed step by step in `epoch_driven`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rafka_metadata::command::apply;
use rafka_metadata::{
    BrokerRegistration, ControllerCommand, Endpoint, MetadataImage, PartitionAssignment,
};
use rafka_replication::{EpochEndOffset, IsrChange};
use rafka_storage::{Backend, FaultyBackend, LogDirs};

use super::*;

/// The brokers; the partition starts on the first three, and reassignments move it among all
/// four.
const NODES: [i32; 4] = [1, 2, 3, 4];
const FIRST_REPLICAS: [i32; 3] = [1, 2, 3];
const STEPS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// Pre-KIP-101: a follower truncates to its high watermark when its leader changes.
    TruncateToHighWatermark,
    /// Pre-KIP-966 (Kafka 4.0's default): no eligible leader replicas, so a leader alone in the
    /// ISR that lost its page cache is elected again as the ISR's last member.
    NoEligibleLeaderReplicas,
    /// Before b410e24: a leader whose AlterPartition went unanswered dropped the change in
    /// flight and went back to the high watermark of the smaller ISR, although the controller
    /// may have committed the change (fault suite, seed 625).
    FallBackAfterLostAnswer,
}

/// The metadata crate's seeded generator, with the two draws the simulation uses.
struct Rng(rafka_metadata::placement::SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0
            .below(usize::try_from(n.max(1)).unwrap_or(usize::MAX)) as u64
    }
}

struct Node {
    id: i32,
    dir: PathBuf,
    backend: FaultyBackend,
    /// `None` while crashed.
    parts: Option<Partitions>,
    broker_epoch: u64,
    /// The newest image this node has seen; it acts on this one, not the controller's.
    image: MetadataImage,
}

/// A fetch answer on its way from a leader to a follower.
#[derive(Clone)]
struct Message {
    to: i32,
    leader_epoch: i32,
    /// The follower's log end and last epoch when it asked: the fetcher drops an answer to a
    /// log that changed since (the bus delays and duplicates answers).
    fetch_offset: i64,
    last_epoch: i32,
    answer: Answer,
}

#[derive(Clone)]
enum Answer {
    Records {
        bytes: Vec<u8>,
        high_watermark: i64,
        log_start_offset: i64,
    },
    Diverging(EpochEndOffset),
}

/// A produce on a leader waiting for its high watermark.
struct Pending {
    leader: i32,
    leader_epoch: i32,
    offset: i64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    bug: Bug,
    /// Which crash of the run (counting from 0) is a power loss, losing what was not fsynced;
    /// the others are kill -9 (the page cache survives). At most one per run: Kafka does not
    /// fsync what it acknowledges, so power losses of every replica in turn, each before the
    /// page cache was written back, lose acknowledged records in Kafka too; what must hold is
    /// that one node's loss costs nothing, however the others crash around it.
    power_loss_at: Option<u32>,
    crashes: u32,
    now_ms: i64,
    image: MetadataImage,
    index: u64,
    nodes: Vec<Node>,
    topic_id: Uuid,
    bus: Vec<Message>,
    pending: Vec<Pending>,
    /// Acknowledged batches by offset, as the leader stored them.
    acked: BTreeMap<i64, Vec<u8>>,
    /// The highest high watermark seen per leader epoch.
    leader_hw: BTreeMap<i32, i64>,
    last_leader_epoch: i32,
    /// The newest leader epoch whose leader has taken over (by its own image) and been checked.
    checked_epoch: i32,
    /// Whether images reach nodes late and AlterPartition messages get lost (off for the
    /// scripted scenarios, which replay Kafka's tests step by step).
    lag: bool,
    /// The node cut off from the controller (it gets no images, its AlterPartitions or their
    /// answers are lost, but it still talks to the other brokers), and whether the controller
    /// has fenced it for missing heartbeats. Counts as the one node down.
    cut: Option<(i32, bool)>,
    /// ISR changes sent and not answered: the leader sends each again while it is in flight.
    unanswered: Vec<(i32, IsrChange)>,
    /// AlterPartition requests or answers the network lost.
    lost_alter_partitions: usize,
    /// Diverging-epoch answers a follower acted on.
    diverging: usize,
    /// Reassignments that completed or were cancelled.
    moves_ended: usize,
    /// The highest log start a DeleteRecords set on a leader.
    deleted_to: i64,
    /// Leaders that came from an unclean election (all replicas shut down uncleanly).
    unclean_elections: usize,
    _root: tempfile::TempDir,
}

fn registration(node_id: i32) -> BrokerRegistration {
    BrokerRegistration {
        node_id,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9000 + node_id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: None,
        fenced: true,
    }
}

fn open_partitions(node_id: i32, dir: &std::path::Path, backend: &FaultyBackend) -> Partitions {
    let backend: Arc<dyn Backend> = Arc::new(backend.clone());
    let log_dirs = LogDirs::new(&[dir.to_path_buf()], backend.clone()).expect("dirs");
    log_dirs.create_all().expect("create");
    let mut props = BTreeMap::new();
    // Small segments, so truncation and reads cross segment boundaries.
    props.insert("log.segment.bytes".to_string(), "4096".to_string());
    // The fault suite's lag time: a few seconds of simulated time (a few dozen steps) without
    // catching up puts a follower out of the ISR, so members leave and join all the time.
    props.insert("replica.lag.time.max.ms".to_string(), "4000".to_string());
    let (config, _) = crate::config::BrokerConfig::from_props(&props).expect("config");
    let broker = Arc::new(DynamicBrokerConfig::new(Arc::new(config)));
    Partitions::open(node_id, log_dirs, backend, broker, &[false]).expect("open")
}

impl Sim {
    fn new(seed: u64, bug: Bug) -> Sim {
        let root = tempfile::tempdir().expect("tempdir");
        let nodes = NODES
            .iter()
            .map(|&id| {
                let dir = root.path().join(format!("node{id}"));
                let backend = FaultyBackend::new();
                Node {
                    id,
                    parts: Some(open_partitions(id, &dir, &backend)),
                    dir,
                    backend,
                    broker_epoch: 0,
                    image: MetadataImage::empty("sim"),
                }
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng: Rng(rafka_metadata::placement::SplitMix64::new(seed)),
            bug,
            // In odd seeds one of the first six crashes is a power loss: the unsynced tail of
            // every file of that node may go.
            power_loss_at: (seed % 2 == 1).then_some((seed / 2 % 6) as u32),
            crashes: 0,
            now_ms: 1_000_000,
            image: MetadataImage::empty("sim"),
            index: 0,
            nodes,
            topic_id: Uuid::from_u64_pair(seed, 7),
            bus: Vec::new(),
            pending: Vec::new(),
            acked: BTreeMap::new(),
            leader_hw: BTreeMap::new(),
            last_leader_epoch: -1,
            checked_epoch: -1,
            lag: false,
            cut: None,
            unanswered: Vec::new(),
            lost_alter_partitions: 0,
            diverging: 0,
            moves_ended: 0,
            deleted_to: 0,
            unclean_elections: 0,
            _root: root,
        };
        // New clusters keep eligible leader replicas (KIP-966), as Kafka 4.1 formats them.
        if bug != Bug::NoEligibleLeaderReplicas {
            sim.command(ControllerCommand::SetFeatureLevel {
                name: rafka_metadata::partition_change::ELR_FEATURE.into(),
                level: 1,
            })
            .expect("feature");
        }
        for id in NODES {
            sim.register(id);
        }
        let mut configs = BTreeMap::new();
        configs.insert("min.insync.replicas".to_string(), "2".to_string());
        configs.insert("segment.bytes".to_string(), "4096".to_string());
        sim.command(ControllerCommand::CreateTopic {
            name: "sim".into(),
            topic_id: sim.topic_id,
            partitions: vec![PartitionAssignment {
                partition: 0,
                replicas: FIRST_REPLICAS.to_vec(),
                isr: FIRST_REPLICAS.to_vec(),
                leader: FIRST_REPLICAS[0],
            }],
            configs,
            placement: None,
        })
        .expect("create topic");
        sim.lag = true;
        sim
    }

    /// A simulation whose images reach every node at once and whose messages to the controller
    /// are never lost, for scripted scenarios.
    fn scripted(seed: u64) -> Sim {
        let mut sim = Sim::new(seed, Bug::None);
        sim.lag = false;
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "replication simulation seed {} ({:?}): {what}",
            self.seed, self.bug
        )
    }

    /// Commits a command and lets every live node follow the new image.
    fn command(&mut self, cmd: ControllerCommand) -> Result<(), rafka_metadata::CommandRejected> {
        self.index += 1;
        let moving = self.moving();
        let (next, result) = apply(&self.image, self.index, &cmd);
        self.image = next;
        if moving && !self.moving() {
            self.moves_ended += 1;
        }
        if std::env::var_os("RAFKA_REPL_SIM_TRACE").is_some() {
            let ends: Vec<String> = NODES
                .iter()
                .map(|&id| match self.partition(id) {
                    Some(p) => format!("{id}:{}/{}", p.high_watermark(), p.log_end_offset()),
                    None => format!("{id}:down"),
                })
                .collect();
            let state = self
                .image
                .topic_by_id(&self.topic_id)
                .and_then(|t| t.partition(0).cloned());
            eprintln!("t={} {cmd:?} -> {state:?} hw/leo {ends:?}", self.now_ms);
        }
        if let Some(state) = self
            .image
            .topic_by_id(&self.topic_id)
            .and_then(|t| t.partition(0))
        {
            if state.leader_epoch < self.last_leader_epoch {
                self.fail("the leader epoch went back");
            }
            self.last_leader_epoch = state.leader_epoch;
        }
        self.publish();
        result.map(|_| ())
    }

    /// The new image reaches each live node now, or (with lag) with three chances in four;
    /// the others catch up in a later [`Sim::metadata`] step, and a node cut off from the
    /// controller only once it is back.
    fn publish(&mut self) {
        for id in NODES {
            if self.node(id).parts.is_none()
                || self.is_cut(id)
                || (self.lag && self.rng.below(4) == 0)
            {
                continue;
            }
            self.catch_up(id);
        }
    }

    fn is_cut(&self, id: i32) -> bool {
        self.cut.is_some_and(|(c, _)| c == id)
    }

    /// Node `id` reads the metadata log to its end and reconciles its partitions.
    fn catch_up(&mut self, id: i32) {
        if self.node(id).parts.is_none() {
            return;
        }
        self.node_mut(id).image = self.image.clone();
        self.reconcile(id);
    }

    /// The controller link: a node is cut off from the controller (when no node is down), the
    /// controller fences the cut node when its session times out, the link heals (the node
    /// catches up and, if fenced, is unfenced as its heartbeats resume), or a random node that
    /// lags catches up.
    fn metadata(&mut self) {
        match (self.cut, self.rng.below(4)) {
            (None, 0 | 1) if self.lag && self.nodes.iter().all(|n| n.parts.is_some()) => {
                // Half the time the leader: the zombie-leader case.
                let id = match self.rng.below(2) {
                    0 => self.state().leader,
                    _ => NODES[self.rng.below(NODES.len() as u64) as usize],
                };
                if id >= 0 {
                    self.cut = Some((id, false));
                }
            }
            (Some((id, false)), 0 | 1) => {
                let broker_epoch = self.node(id).broker_epoch;
                self.cut = Some((id, true));
                self.command(ControllerCommand::FenceBroker {
                    node_id: id,
                    broker_epoch,
                })
                .unwrap_or_else(|e| self.fail(format!("fence {id}: {e:?}")));
            }
            // A fenced zombie stays cut off longer: it goes on leading by its old image.
            (Some((id, false)), 2) => self.heal_cut(id, false),
            (Some((id, true)), 0) => self.heal_cut(id, true),
            _ => {
                let id = NODES[self.rng.below(NODES.len() as u64) as usize];
                if !self.is_cut(id) {
                    self.catch_up(id);
                }
            }
        }
    }

    /// The cut node reaches the controller again.
    fn heal_cut(&mut self, id: i32, fenced: bool) {
        self.cut = None;
        self.catch_up(id);
        if fenced {
            let broker_epoch = self.node(id).broker_epoch;
            self.command(ControllerCommand::UnfenceBroker {
                node_id: id,
                broker_epoch,
            })
            .unwrap_or_else(|e| self.fail(format!("unfence {id}: {e:?}")));
        }
    }

    /// Whether a reassignment is in progress.
    fn moving(&self) -> bool {
        self.image
            .topic_by_id(&self.topic_id)
            .and_then(|t| t.partition(0))
            .is_some_and(|p| p.is_reassigning())
    }

    fn register(&mut self, id: i32) {
        // Every crash here is unclean (kill -9 or power loss): the node registers with no
        // previous broker epoch, as Kafka's brokers do without a clean-shutdown marker.
        if let Some(cmd) = rafka_metadata::lifecycle::unclean_shutdown(&self.image, id, -1) {
            self.command(cmd).expect("unclean shutdown");
        }
        self.command(ControllerCommand::RegisterBroker(registration(id)))
            .expect("register");
        let epoch = self.index;
        self.node_mut(id).broker_epoch = epoch;
        self.command(ControllerCommand::UnfenceBroker {
            node_id: id,
            broker_epoch: epoch,
        })
        .expect("unfence");
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn partition(&self, id: i32) -> Option<Arc<Partition>> {
        if !NODES.contains(&id) {
            return None;
        }
        self.node(id).parts.as_ref()?.get(&self.topic_id, 0)
    }

    fn state(&self) -> rafka_metadata::PartitionImage {
        self.image
            .topic_by_id(&self.topic_id)
            .and_then(|t| t.partition(0))
            .cloned()
            .unwrap_or_else(|| self.fail("the partition is gone"))
    }

    /// Node `id` follows its own image.
    fn reconcile(&mut self, id: i32) {
        let before = self.follows(id);
        let node = self.node(id);
        if let Some(p) = &node.parts {
            if let Err(e) = p.reconcile(&node.image, self.now_ms) {
                self.fail(format!("node {id} reconcile: {e}"));
            }
        }
        if self.bug == Bug::TruncateToHighWatermark {
            let now = self.follows(id);
            if now.is_some() && now != before {
                if let Some(p) = self.partition(id) {
                    p.truncate_to_high_watermark(self.now_ms)
                        .unwrap_or_else(|e| self.fail(e));
                }
            }
        }
        self.check_new_leader(id);
    }

    /// The leader `id` follows and its epoch, by `id`'s own image.
    fn following(&self, id: i32) -> Option<(i32, i32)> {
        let p = self.partition(id)?;
        let inner = lock(&p.inner);
        match inner.role {
            Role::Follower {
                leader_id,
                leader_epoch,
            } if leader_epoch >= 0 && leader_id >= 0 => Some((leader_id, leader_epoch)),
            _ => None,
        }
    }

    /// The epoch `id` leads at, by its own image.
    fn leads(&self, id: i32) -> Option<i32> {
        let p = self.partition(id)?;
        let inner = lock(&p.inner);
        match &inner.role {
            Role::Leader(l) => Some(l.leader_epoch()),
            Role::Follower { .. } => None,
        }
    }

    /// The leader epoch `id` follows at, if it follows.
    fn follows(&self, id: i32) -> Option<i32> {
        let p = self.partition(id)?;
        let inner = lock(&p.inner);
        match inner.role {
            Role::Follower { leader_epoch, .. } if leader_epoch >= 0 => Some(leader_epoch),
            _ => None,
        }
    }

    /// A node that takes over as leader (by its own image) must hold every batch acknowledged
    /// so far: until it knew, it fetched from the old leader, whose high watermark counted it.
    fn check_new_leader(&mut self, id: i32) {
        let Some(epoch) = self.leads(id) else {
            return;
        };
        if epoch <= self.checked_epoch {
            return;
        }
        self.checked_epoch = epoch;
        let Some(p) = self.partition(id) else {
            return;
        };
        let recovered = self
            .node(id)
            .image
            .topic_by_id(&self.topic_id)
            .and_then(|t| t.partition(0))
            .is_none_or(|s| s.leader_recovery_state.is_recovered());
        if recovered {
            self.check_acked_on(id, &p);
        } else {
            // An unclean election (KIP-704 marks it RECOVERING): here the last known leader
            // after every replica's unclean shutdown, which Kafka elects too and which may
            // have lost what it acknowledged (one power loss among kill -9s of the others).
            // Kafka promises nothing for such a leader; its log is the truth from now on.
            self.unclean_elections += 1;
            let kept: BTreeMap<i64, Vec<u8>> = std::mem::take(&mut self.acked)
                .into_iter()
                .filter(|(offset, batch)| self.batch_at(&p, *offset).as_ref() == Some(batch))
                .collect();
            self.acked = kept;
        }
    }

    fn batch_at(&self, p: &Partition, offset: i64) -> Option<Vec<u8>> {
        let inner = lock(&p.inner);
        let end = inner.log.log_end_offset();
        if offset >= end {
            return None;
        }
        let read = inner.log.read(offset, 1, end, true).ok()?;
        let bytes = read.records.to_vec();
        let h = rafka_records::BatchView::parse(&bytes).ok()?;
        (h.header().base_offset == offset).then(|| bytes[..h.total_len()].to_vec())
    }

    fn check_acked_on(&self, id: i32, p: &Partition) {
        for (offset, batch) in &self.acked {
            match self.batch_at(p, *offset) {
                Some(b) if &b == batch => {}
                Some(_) => self.fail(format!(
                    "leader {id} holds another batch at acknowledged offset {offset}"
                )),
                None => self.fail(format!(
                    "leader {id} lost the acknowledged batch at offset {offset} (log end {})",
                    p.log_end_offset()
                )),
            }
        }
    }

    fn step(&mut self) {
        self.now_ms += 1 + self.rng.below(200) as i64;
        match self.rng.below(100) {
            0..=29 => self.produce(),
            30..=64 => self.fetch(),
            65..=69 => self.metadata(),
            70..=84 => self.deliver(),
            85..=86 => self.isr_check(),
            89 => self.checkpoint_high_watermarks(),
            88 => self.reassign(),
            87 => self.delete_records(),
            90..=94 => self.crash(),
            _ => self.restart(),
        }
        self.settle_pending();
    }

    /// The controller's leader, once it knows it leads.
    fn leader(&self) -> Option<(i32, i32, Arc<Partition>)> {
        let state = self.state();
        let p = self.partition(state.leader)?;
        p.leads_at(state.leader_epoch)
            .then_some((state.leader, state.leader_epoch, p))
    }

    /// A producer writes to a node that believes it leads: the controller's leader, or (with
    /// stale metadata on both sides) a deposed one that has not heard yet.
    fn produce(&mut self) {
        let leaders: Vec<(i32, i32)> = NODES
            .iter()
            .filter_map(|&id| Some((id, self.leads(id)?)))
            .collect();
        if leaders.is_empty() {
            return;
        }
        let (leader, epoch) = leaders[self.rng.below(leaders.len() as u64) as usize];
        let Some(p) = self.partition(leader) else {
            return;
        };
        // acks=all: refused up front below min.insync.replicas.
        if p.isr_len().unwrap_or(0) < 2 {
            return;
        }
        let value = format!("{}-{}", self.seed, self.now_ms);
        let mut batch = rafka_records::BatchBuilder::new(0)
            .timestamp(self.now_ms)
            .record(None, Some(value.as_bytes()), &[], self.now_ms)
            .build();
        match p.append(&mut batch, self.now_ms) {
            Ok(info) => self.pending.push(Pending {
                leader,
                leader_epoch: epoch,
                offset: info.base_offset,
            }),
            Err(e) => self.fail(format!("append on leader {leader}: {e}")),
        }
    }

    /// What `await_replication` decides: acknowledged once the high watermark passes the batch
    /// while the broker still leads at the epoch it appended in.
    fn settle_pending(&mut self) {
        let mut still = Vec::new();
        for w in std::mem::take(&mut self.pending) {
            let Some(p) = self.partition(w.leader) else {
                continue; // crashed: the producer hears nothing and retries elsewhere
            };
            if !p.leads_at(w.leader_epoch) {
                continue;
            }
            let hw = p.high_watermark();
            let seen = self.leader_hw.entry(w.leader_epoch).or_insert(hw);
            if hw < *seen {
                self.fail(format!("leader {} high watermark went back", w.leader));
            }
            *seen = hw;
            if hw > w.offset {
                let batch = self
                    .batch_at(&p, w.offset)
                    .unwrap_or_else(|| self.fail("an acknowledged batch is not in its leader"));
                self.acked.insert(w.offset, batch);
            } else {
                still.push(w);
            }
        }
        self.pending = still;
    }

    fn fetch(&mut self) {
        let followers: Vec<i32> = NODES
            .iter()
            .copied()
            .filter(|&id| self.following(id).is_some())
            .collect();
        if followers.is_empty() {
            return;
        }
        // Followers are not equally fast: the lowest-numbered fetches more often, so the others
        // fall behind, leave the ISR and come back (the expansions ISR bugs live in).
        let to = match self.rng.below(3) {
            0 => followers[0],
            _ => followers[self.rng.below(followers.len() as u64) as usize],
        };
        let Some(message) = self.fetch_answer(to) else {
            return;
        };
        // The bus: most answers arrive at once, some later, some twice, some never.
        match self.rng.below(10) {
            0 => {}
            1 => {
                self.bus.push(message.clone());
                self.bus.push(message);
            }
            2 | 3 => self.bus.push(message),
            _ => self.apply_answer(message),
        }
    }

    /// Follower `to` fetches from the leader it knows, at the epoch it knows; the leader's answer
    /// (`None` when there is nothing to deliver: that node does not lead at that epoch, as
    /// FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH / NOT_LEADER answer, or the follower started
    /// over at the leader's log start).
    fn fetch_answer(&mut self, to: i32) -> Option<Message> {
        let (leader_id, leader_epoch) = self.following(to)?;
        let (Some(leader), Some(follower)) = (self.partition(leader_id), self.partition(to)) else {
            return None;
        };
        if leader.check_leader_epoch(leader_epoch).is_err() || !leader.leads_at(leader_epoch) {
            return None;
        }
        let (fetch_offset, log_start, last_epoch) = follower.follower_fetch_state();
        // The leader decides by its own image whether the follower's broker may join.
        let broker = self.node(leader_id).image.broker(to);
        let fetch = ReplicaFetch {
            replica_id: to,
            broker_epoch: self.node(to).broker_epoch as i64,
            fetch_offset,
            log_start_offset: log_start,
            last_fetched_epoch: last_epoch,
            may_join_isr: broker.is_some_and(|b| !b.fenced && !b.in_controlled_shutdown),
        };
        let answer = match leader.replica_fetch(fetch, 2048, true, self.now_ms) {
            Ok(ReplicaRead::Records {
                read,
                high_watermark,
                isr_change,
            }) => {
                if let Some(change) = isr_change {
                    self.alter_partition(leader_id, change);
                }
                Answer::Records {
                    bytes: read.records.to_vec(),
                    high_watermark,
                    log_start_offset: leader.log_start_offset(),
                }
            }
            Ok(ReplicaRead::Diverging(d)) => Answer::Diverging(d),
            // Out of range: the follower starts over at the leader's log start.
            Err(ReplicaFetchError::Storage(StorageError::OffsetOutOfRange { .. })) => {
                let start = leader.log_start_offset();
                if fetch_offset < start {
                    follower
                        .restart_at(leader_epoch, start, self.now_ms)
                        .unwrap_or_else(|e| self.fail(e));
                }
                return None;
            }
            Err(e) => self.fail(format!("fetch from leader {leader_id}: {e}")),
        };
        Some(Message {
            to,
            leader_epoch,
            fetch_offset,
            last_epoch,
            answer,
        })
    }

    fn deliver(&mut self) {
        if self.bus.is_empty() {
            return;
        }
        let i = self.rng.below(self.bus.len() as u64) as usize;
        let m = self.bus.swap_remove(i);
        self.apply_answer(m);
    }

    /// The fetcher's side: an answer to an older request, or from a replaced leader, is dropped.
    fn apply_answer(&mut self, m: Message) {
        let Some(p) = self.partition(m.to) else {
            return;
        };
        let (end, _, epoch) = p.follower_fetch_state();
        if (end, epoch) != (m.fetch_offset, m.last_epoch) {
            return;
        }
        let result = match m.answer {
            Answer::Records {
                bytes,
                high_watermark,
                log_start_offset,
            } => p.append_as_follower(
                m.leader_epoch,
                &bytes,
                high_watermark,
                log_start_offset,
                self.now_ms,
            ),
            Answer::Diverging(d) => {
                self.diverging += 1;
                p.truncate_to_leader(m.leader_epoch, d, self.now_ms)
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            self.fail(format!("follower {} applying an answer: {e}", m.to));
        }
    }

    /// The leader's AlterPartition and its answer, each of which the network may lose (with
    /// lag); the leader acts on the outcome as `cluster::isr::propose` does.
    fn alter_partition(&mut self, leader: i32, change: IsrChange) {
        use crate::cluster::alter_partition::{self, SendError};
        use crate::cluster::isr::{after_failure, AfterFailure};
        let fate = if self.is_cut(leader) {
            // Cut off from the controller: lost on the way there, or its answer is (scripted:
            // the answer).
            if self.lag {
                self.rng.below(4)
            } else {
                1
            }
        } else if !self.lag {
            7
        } else {
            self.rng.below(8)
        };
        if fate == 0 {
            // The request never reached the controller.
            self.lost_alter_partitions += 1;
            self.unanswered(leader, change);
            return;
        }
        let broker_epoch = self.node(leader).broker_epoch;
        let cmd = alter_partition::command(leader, broker_epoch, (self.topic_id, 0), &change);
        let result = self.command(cmd);
        let outcome = if fate <= 3 {
            // Applied or refused, the answer is lost: the leader cannot tell which. Mostly
            // because the leader has just been cut off from the controller (seed 625).
            self.lost_alter_partitions += 1;
            if self.cut.is_none()
                && self.nodes.iter().all(|n| n.parts.is_some())
                && self.rng.below(3) != 0
            {
                self.cut = Some((leader, false));
            }
            SendError::Unanswered("connection closed".into())
        } else {
            match result {
                // A committed change reaches the leader with the image that carries it.
                Ok(()) => return,
                Err(rejected) => SendError::Answered(alter_partition::error_code(
                    &rafka_metadata::MetadataError::Rejected(rejected),
                )),
            }
        };
        if self.bug == Bug::FallBackAfterLostAnswer {
            // The old rule: every failure undid the change in flight.
            if let Some(p) = self.partition(leader) {
                p.isr_change_refused(&change);
            }
            return;
        }
        match after_failure(&outcome) {
            AfterFailure::NotApplied => {
                if let Some(p) = self.partition(leader) {
                    p.isr_change_refused(&change);
                }
            }
            AfterFailure::AwaitImage => {}
            AfterFailure::Retry => self.unanswered(leader, change),
        }
    }

    fn unanswered(&mut self, leader: i32, change: IsrChange) {
        if !self.unanswered.contains(&(leader, change.clone())) {
            self.unanswered.push((leader, change));
        }
    }

    /// Leaders send their unanswered changes again while they are still in flight.
    fn resend_unanswered(&mut self) {
        for (leader, change) in std::mem::take(&mut self.unanswered) {
            if self
                .partition(leader)
                .is_some_and(|p| p.isr_change_pending(&change))
            {
                self.alter_partition(leader, change);
            }
        }
    }

    fn isr_check(&mut self) {
        self.resend_unanswered();
        // Time passes faster here, so lagging followers do leave the ISR.
        self.now_ms += self.rng.below(40_000) as i64;
        let leaders: Vec<i32> = NODES
            .iter()
            .copied()
            .filter(|&id| self.leads(id).is_some())
            .collect();
        for leader in leaders {
            let Some(p) = self.partition(leader) else {
                continue;
            };
            if let Some(change) = p.maybe_shrink_isr(self.now_ms) {
                self.alter_partition(leader, change);
            }
        }
    }

    /// AlterPartitionReassignments: the partition moves to three of the four nodes in a random
    /// order (a reorder, or one replica swapped for the fourth node, which must copy the log
    /// before the move completes), or a move in progress is cancelled.
    fn reassign(&mut self) {
        let target = if self.state().is_reassigning() && self.rng.below(3) == 0 {
            None
        } else {
            let mut pool = NODES.to_vec();
            let mut target = Vec::new();
            for _ in 0..FIRST_REPLICAS.len() {
                target.push(pool.remove(self.rng.below(pool.len() as u64) as usize));
            }
            Some(target)
        };
        // A cancellation that needs an unclean election is refused, as in Kafka.
        let _ = self.command(ControllerCommand::ReassignPartition {
            topic_id: self.topic_id,
            partition: 0,
            target,
            allow_replication_factor_change: true,
        });
    }

    /// DeleteRecords on the leader up to an offset at or below its high watermark: followers
    /// move their log starts after it through their fetches. What is below the new start was
    /// deleted on request, so it no longer counts as acknowledged.
    fn delete_records(&mut self) {
        // Even seeds only: odd seeds have the power loss, whose runs must keep every
        // acknowledged record to check.
        if self.seed % 2 == 1 {
            return;
        }
        let Some((leader, _, p)) = self.leader() else {
            return;
        };
        let (start, hw) = (p.log_start_offset(), p.high_watermark());
        // Rare and short, so most acknowledged batches stay to be checked.
        if hw <= start || self.rng.below(4) != 0 {
            return;
        }
        let offset = start + self.rng.below(((hw - start) / 4 + 1) as u64) as i64;
        match p.delete_records(offset, self.now_ms) {
            Ok(new_start) => {
                self.acked = self.acked.split_off(&new_start);
                self.deleted_to = self.deleted_to.max(new_start);
            }
            Err(e) => self.fail(format!("DeleteRecords on leader {leader}: {e}")),
        }
    }

    /// A node writes its `replication-offset-checkpoint`, which its next start reads.
    fn checkpoint_high_watermarks(&mut self) {
        let id = NODES[self.rng.below(NODES.len() as u64) as usize];
        if let Some(parts) = &self.node(id).parts {
            if let Err(e) = parts.checkpoint_high_watermarks() {
                self.fail(format!("high watermark checkpoint of node {id}: {e}"));
            }
        }
    }

    fn crash(&mut self) {
        if self.nodes.iter().any(|n| n.parts.is_none()) {
            return; // at most one node down: a minority of three
        }
        // A node cut off from the controller counts as the one down: only it may crash.
        let id = match self.cut.take() {
            Some((id, _)) => id,
            None => NODES[self.rng.below(NODES.len() as u64) as usize],
        };
        let power_loss = self.power_loss_at == Some(self.crashes);
        self.crashes += 1;
        self.crash_node(id, power_loss);
    }

    /// kill -9 of `id` (keeps what reached the page cache), or a power loss (keeps only what was
    /// fsynced); the controller fences it.
    fn crash_node(&mut self, id: i32, power_loss: bool) {
        let seed = self.rng.next();
        let node = self.node_mut(id);
        node.parts = None;
        let epoch = node.broker_epoch;
        if power_loss {
            if let Err(e) = node.backend.crash_with_seed(seed) {
                self.fail(format!("crash of node {id}: {e}"));
            }
        }
        self.bus.retain(|m| m.to != id);
        self.command(ControllerCommand::FenceBroker {
            node_id: id,
            broker_epoch: epoch,
        })
        .unwrap_or_else(|e| self.fail(format!("fence {id}: {e:?}")));
    }

    fn restart(&mut self) {
        let Some(id) = self.nodes.iter().find(|n| n.parts.is_none()).map(|n| n.id) else {
            return;
        };
        self.restart_node(id);
    }

    fn restart_node(&mut self, id: i32) {
        let backend = FaultyBackend::new();
        let parts = open_partitions(id, &self.node(id).dir, &backend);
        let node = self.node_mut(id);
        node.backend = backend;
        node.parts = Some(parts);
        self.register(id);
        // A broker reads the metadata log to its end before it serves.
        self.catch_up(id);
    }

    /// Runs the seed; returns (acknowledged batches, leader elections, diverging answers, ended
    /// reassignments, unclean elections, lost AlterPartition messages) to show the run did
    /// something.
    fn run(mut self) -> (usize, i32, usize, usize, usize, usize) {
        for _ in 0..STEPS {
            self.step();
        }
        // Heal: everyone up and caught up with the metadata log, every answer delivered or
        // resent, followers caught up; then compare.
        self.restart();
        if let Some((id, fenced)) = self.cut {
            self.heal_cut(id, fenced);
        }
        // From here the network is whole: images reach every node at once, nothing is lost.
        self.lag = false;
        for id in NODES {
            self.catch_up(id);
        }
        self.resend_unanswered();
        self.bus.clear();
        for _ in 0..200 {
            self.fetch();
            self.settle_pending();
        }
        if std::env::var_os("RAFKA_REPL_SIM_TRACE").is_some() {
            let ends: Vec<String> = NODES
                .iter()
                .map(|&id| match self.partition(id) {
                    Some(p) => format!(
                        "{id}:{}-{}/{}/{}",
                        p.log_start_offset(),
                        p.high_watermark(),
                        p.log_end_offset(),
                        self.follows(id).unwrap_or(-1)
                    ),
                    None => format!("{id}:-"),
                })
                .collect();
            eprintln!("healed: start-hw/leo/follows {ends:?}");
        }
        self.check_agreement();
        if let Some((id, _, p)) = self.leader() {
            self.check_acked_on(id, &p);
            // Caught-up followers have learned the leader's high watermark.
            let hw = p.high_watermark();
            for f in NODES.iter().filter(|&&f| f != id) {
                if let Some(fp) = self.partition(*f) {
                    // Every replica catches up once the network is whole.
                    if fp.log_end_offset() != p.log_end_offset() {
                        self.fail(format!(
                            "follower {f} is stuck at log end {} where its leader has {}",
                            fp.log_end_offset(),
                            p.log_end_offset()
                        ));
                    }
                    if fp.log_end_offset() == p.log_end_offset() && fp.high_watermark() != hw {
                        self.fail(format!(
                            "follower {f} has high watermark {} where its leader has {hw}",
                            fp.high_watermark()
                        ));
                    }
                    // ... and moved its log start up to the leader's (DeleteRecords).
                    if fp.log_end_offset() == p.log_end_offset()
                        && fp.log_start_offset() < p.log_start_offset()
                    {
                        self.fail(format!(
                            "follower {f} starts at {} where its leader starts at {} (deleted to {})",
                            fp.log_start_offset(),
                            p.log_start_offset(),
                            self.deleted_to
                        ));
                    }
                }
            }
        }
        (
            self.acked.len(),
            self.last_leader_epoch,
            self.diverging,
            self.moves_ended,
            self.unclean_elections,
            self.lost_alter_partitions,
        )
    }

    /// In-sync replicas agree byte for byte below the smallest high watermark.
    fn check_agreement(&self) {
        let state = self.state();
        let parts: Vec<(i32, Arc<Partition>)> = state
            .isr
            .iter()
            .filter_map(|&id| Some((id, self.partition(id)?)))
            .collect();
        let Some(hw) = parts.iter().map(|(_, p)| p.high_watermark()).min() else {
            return;
        };
        let start = parts
            .iter()
            .map(|(_, p)| p.log_start_offset())
            .max()
            .unwrap_or(0);
        let mut offset = start;
        while offset < hw {
            let batches: Vec<Option<Vec<u8>>> = parts
                .iter()
                .map(|(_, p)| self.batch_at(p, offset))
                .collect();
            let first = &batches[0];
            if batches.iter().any(|b| b != first) {
                self.fail(format!(
                    "in-sync replicas {:?} disagree at offset {offset} below high watermark {hw}",
                    parts.iter().map(|(id, _)| id).collect::<Vec<_>>()
                ));
            }
            offset += 1;
        }
    }
}

/// `RAFKA_REPL_SIM_SEEDS=N` runs seeds 0..N; `RAFKA_REPL_SIM_SEED=S` runs seed S alone (add
/// `RAFKA_REPL_SIM_TRACE=1` to print every metadata change with each node's hw/log end).
fn seed_range() -> std::ops::Range<u64> {
    if let Some(s) = std::env::var("RAFKA_REPL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s..s + 1;
    }
    0..seeds()
}

fn seeds() -> u64 {
    std::env::var("RAFKA_REPL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

#[test]
fn replication_keeps_every_acknowledged_record() {
    let (mut acked, mut elections, mut truncations, mut moves, mut unclean, mut lost) =
        (0, 0, 0, 0, 0, 0);
    let range = seed_range();
    for seed in range.clone() {
        let (a, e, t, m, u, l) = Sim::new(seed, Bug::None).run();
        acked += a;
        elections += e;
        truncations += t;
        moves += m;
        unclean += u;
        lost += l;
    }
    let n = range.end - range.start;
    eprintln!("{n} seeds: {acked} batches acknowledged, {elections} leader elections, {truncations} diverging-epoch answers, {moves} reassignments ended, {unclean} unclean elections (last known leader), {lost} AlterPartition requests or answers lost");
    // The runs must exercise what the invariants are about.
    assert!(acked as u64 > 10 * n && elections as u64 > n);
    assert!(n < 10 || (truncations > 0 && moves > 0 && lost > 0));
}

/// Whether some seed's invariants fail with `bug` (only an invariant's failure counts, not any
/// panic of the harness).
fn caught(bug: Bug) -> Option<u64> {
    seed_range().find(
        |&seed| match std::panic::catch_unwind(|| Sim::new(seed, bug).run()) {
            Ok(_) => false,
            Err(payload) => payload
                .downcast_ref::<String>()
                .filter(|m| m.starts_with("replication simulation seed"))
                .inspect(|m| eprintln!("caught: {m}"))
                .is_some(),
        },
    )
}

/// The invariants catch Kafka's pre-KIP-101 truncation to the high watermark.
#[test]
fn the_simulation_catches_truncation_to_the_high_watermark() {
    assert!(
        caught(Bug::TruncateToHighWatermark).is_some(),
        "no seed of {} caught the pre-KIP-101 truncation",
        seeds()
    );
}

/// The invariants catch the data loss KIP-966 fixed: without eligible leader replicas, one
/// power loss of a leader alone in the ISR loses acknowledged records.
#[test]
fn the_simulation_catches_a_cluster_without_eligible_leader_replicas() {
    assert!(
        caught(Bug::NoEligibleLeaderReplicas).is_some(),
        "no seed of {} caught the pre-KIP-966 election",
        seeds()
    );
}

/// The invariants catch the acknowledged-record loss of fault-suite seed 625: a leader that
/// dropped its ISR expansion when the AlterPartition answer was lost.
#[test]
fn the_simulation_catches_a_leader_falling_back_after_a_lost_answer() {
    assert!(
        caught(Bug::FallBackAfterLostAnswer).is_some(),
        "no seed of {} caught the fall-back to the smaller ISR",
        seeds()
    );
}

/// Ports of Kafka's `EpochDrivenReplicationProtocolAcceptanceTest` scenarios (same rules, same
/// file formats), scripted on the simulation's nodes instead of drawn from a seed.
mod epoch_driven {
    use super::*;

    impl Sim {
        /// An acks=1 write on the current leader; its offset.
        fn write(&mut self) -> i64 {
            let (leader, _, p) = self.leader().unwrap_or_else(|| self.fail("no leader"));
            let value = format!("w{}", self.now_ms);
            self.now_ms += 1;
            let mut batch = rafka_records::BatchBuilder::new(0)
                .timestamp(self.now_ms)
                .record(None, Some(value.as_bytes()), &[], self.now_ms)
                .build();
            p.append(&mut batch, self.now_ms)
                .unwrap_or_else(|e| self.fail(format!("append on {leader}: {e}")))
                .base_offset
        }

        /// Lets each of `ids` fetch from the leader until it has caught up.
        fn replicate(&mut self, ids: &[i32]) {
            for _ in 0..50 {
                for &id in ids {
                    if let Some(m) = self.fetch_answer(id) {
                        self.apply_answer(m);
                    }
                }
            }
        }

        /// Every batch of `id`'s log, in offset order.
        fn log(&self, id: i32) -> Vec<Vec<u8>> {
            let p = self.partition(id).unwrap_or_else(|| self.fail("node down"));
            (p.log_start_offset()..p.log_end_offset())
                .filter_map(|o| self.batch_at(&p, o))
                .collect()
        }

        fn leader_id(&self) -> i32 {
            self.state().leader
        }
    }

    fn epoch_of(batch: &[u8]) -> i32 {
        rafka_records::BatchView::parse(batch)
            .expect("batch")
            .header()
            .partition_leader_epoch
    }

    /// `shouldNotAllowDivergentLogs` / KIP-101: the leader's tail that no follower had is cut
    /// when it comes back under a new leader, and every replica ends with the same log.
    #[test]
    fn a_returning_leader_cuts_the_tail_nobody_else_had() {
        let mut sim = Sim::scripted(1);
        sim.write();
        sim.replicate(&[2, 3]);
        let old = sim.leader_id();
        let tail = sim.write(); // on the leader only
        sim.crash_node(old, false);
        let new = sim.leader_id();
        assert!(new != old && new >= 0);
        let c = sim.write();
        assert_eq!(
            c, tail,
            "the new leader reuses the offset the old one never replicated"
        );
        sim.restart_node(old);
        sim.replicate(&[1, 2, 3]);
        let logs: Vec<Vec<Vec<u8>>> = FIRST_REPLICAS.iter().map(|&id| sim.log(id)).collect();
        assert_eq!(logs[0].len(), 2);
        assert!(logs.iter().all(|l| *l == logs[0]), "replicas disagree");
        assert!(
            sim.diverging > 0,
            "the old leader truncated by a diverging epoch"
        );
    }

    /// `shouldSurviveFastLeaderChange`: leadership moves at every write; the logs stay one log,
    /// with each batch carrying the epoch it was written in, epochs never going back.
    #[test]
    fn fast_alternating_leader_changes_keep_one_log() {
        let mut sim = Sim::scripted(2);
        for _ in 0..8 {
            sim.write();
            sim.replicate(&[1, 2, 3]);
            let leader = sim.leader_id();
            sim.crash_node(leader, false);
            sim.restart_node(leader);
            sim.replicate(&[1, 2, 3]);
        }
        let logs: Vec<Vec<Vec<u8>>> = FIRST_REPLICAS.iter().map(|&id| sim.log(id)).collect();
        assert_eq!(logs[0].len(), 8);
        assert!(logs.iter().all(|l| *l == logs[0]), "replicas disagree");
        let epochs: Vec<i32> = logs[0].iter().map(|b| epoch_of(b)).collect();
        assert!(epochs.windows(2).all(|w| w[0] < w[1]), "epochs {epochs:?}");
    }

    /// Fault-suite seed 625, scripted: the leader adds a follower that has caught up, the
    /// controller commits it, and the answer is lost as the leader is cut off from the
    /// controller (it keeps its old image). The leader must go on counting the new member in
    /// its high watermark: when it is fenced, the controller may elect that member. With the
    /// old rule (any failure undid the change) the new leader lacks an acknowledged record.
    #[test]
    fn a_lost_answer_to_an_expansion_keeps_the_new_member_in_the_high_watermark() {
        for bug in [Bug::None, Bug::FallBackAfterLostAnswer] {
            let outcome = std::panic::catch_unwind(|| {
                let mut sim = Sim::scripted(4);
                sim.bug = bug;
                let leader = sim.leader_id();
                // The replica elected when the leader goes: first in replica order.
                let order = sim.state().replicas;
                let others: Vec<i32> = order.iter().copied().filter(|&n| n != leader).collect();
                let (joiner, fast) = (others[0], others[1]);
                sim.write();
                sim.replicate(&[joiner, fast]);
                // The joiner drops out of the ISR (it crashes), misses a write, comes back
                // and catches up: its fetch makes the leader propose adding it.
                sim.crash_node(joiner, false);
                sim.write();
                sim.replicate(&[fast]);
                sim.restart_node(joiner);
                assert!(!sim.state().isr.contains(&joiner));
                sim.cut = Some((leader, false));
                sim.replicate(&[joiner]);
                // The joiner falls behind for longer than replica.lag.time.max.ms: only the
                // change in flight still counts it.
                sim.now_ms += 60_000;
                assert!(
                    sim.state().isr.contains(&joiner),
                    "the controller committed the expansion"
                );
                // An acks=all write that only the fast follower copies.
                let epoch = sim.state().leader_epoch;
                let offset = sim.write();
                sim.pending.push(Pending {
                    leader,
                    leader_epoch: epoch,
                    offset,
                });
                sim.replicate(&[fast]);
                sim.settle_pending();
                // The cut-off leader's session times out: the joiner is elected and checked.
                let broker_epoch = sim.node(leader).broker_epoch;
                sim.command(ControllerCommand::FenceBroker {
                    node_id: leader,
                    broker_epoch,
                })
                .expect("fence");
                assert_eq!(sim.leader_id(), joiner);
                sim.acked.contains_key(&offset)
            });
            match (bug, outcome) {
                (Bug::None, Ok(acked)) => {
                    assert!(!acked, "acknowledged before the joiner had it")
                }
                (Bug::FallBackAfterLostAnswer, Err(payload)) => {
                    let m = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_default();
                    assert!(m.contains("lost the acknowledged batch"), "{m}");
                }
                (bug, outcome) => panic!("{bug:?}: unexpected {:?}", outcome.is_ok()),
            }
        }
    }

    /// `logsShouldNotDivergeOnUncleanLeaderElections`: the only replica that has a write dies,
    /// an UNCLEAN election gives the partition an out-of-sync leader that writes at the same
    /// offset, and when the old leader is back it takes the new leader's log.
    #[test]
    fn logs_converge_after_an_unclean_election() {
        let mut sim = Sim::scripted(3);
        sim.write();
        sim.replicate(&[2, 3]);
        let leader = sim.leader_id();
        let others: Vec<i32> = FIRST_REPLICAS
            .iter()
            .copied()
            .filter(|&n| n != leader)
            .collect();
        for &n in &others {
            sim.crash_node(n, false);
        }
        sim.write(); // acks=1, below min ISR: only the leader has it
        sim.crash_node(leader, false);
        for &n in &others {
            sim.restart_node(n);
        }
        assert!(sim.leader_id() < 0, "no replica is eligible");
        sim.command(ControllerCommand::ElectLeaders {
            election: rafka_metadata::command::Election::Unclean,
            partitions: vec![(sim.topic_id, 0)],
        })
        .expect("election");
        let unclean = sim.leader_id();
        assert!(others.contains(&unclean), "leader {unclean}");
        // KIP-704: RECOVERING until the new leader's first ISR change.
        assert!(!sim.state().leader_recovery_state.is_recovered());
        sim.write();
        sim.restart_node(leader);
        sim.replicate(
            &FIRST_REPLICAS
                .iter()
                .copied()
                .filter(|&n| n != unclean)
                .collect::<Vec<_>>(),
        );
        let logs: Vec<Vec<Vec<u8>>> = FIRST_REPLICAS.iter().map(|&id| sim.log(id)).collect();
        assert_eq!(logs[0].len(), 2);
        assert!(logs.iter().all(|l| *l == logs[0]), "replicas disagree");
        let state = sim.state();
        assert!(state.isr.len() > 1 && state.leader_recovery_state.is_recovered());
    }
}
