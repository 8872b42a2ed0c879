//! A seeded simulation of the metadata quorum: 3 or 5 voters and one observer in one process,
//! on real log files (in temp dirs, through the fault-injecting storage backend), talking
//! through an in-memory network that drops, delays, duplicates and partitions messages, while
//! nodes crash (losing what they had not fsynced) and restart on their files.
//!
//! Everything random comes from the seed: the faults, the workload, openraft's election
//! timeouts (the quorum's runtime draws them from a seedable generator) and the crash images.
//! All nodes run on one current-thread tokio runtime with paused time, so a run takes no wall
//! time waiting and a failing seed replays. A failure names its seed: rerun it with
//! `RAFKA_SIM_SEED=<seed> cargo test -p rafka-metadata --test simulation -- --nocapture`.
//!
//! Invariants checked:
//! - at most one leader per term (every node's openraft metrics are watched);
//! - committed prefixes are equal everywhere: nodes that applied the same index have the same
//!   running digest of the entries applied;
//! - equal images at equal applied index, observer included;
//! - every write acknowledged to a proposer is in every image at or after its index;
//! - once the faults heal, writes succeed through every node and all nodes converge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rafka_metadata::placement::SplitMix64;
use rafka_metadata::rpc::BoxFuture;
use rafka_metadata::{
    ControllerCommand, MetadataImage, MetadataQuorum, PrivateApi, QuorumConfig, QuorumOptions,
    QuorumRole, QuorumServer, Transport, TransportError,
};
use rafka_storage::FaultyBackend;
use tokio::task::JoinHandle;

const OBSERVER_ID: u64 = 100;

/// How unreliable the network is right now (per mille).
#[derive(Debug, Clone, Copy, Default)]
struct Weather {
    drop: u64,
    duplicate: u64,
    delay_max_ms: u64,
}

#[derive(Default)]
struct NetState {
    servers: BTreeMap<u64, QuorumServer>,
    /// The incarnation of each node allowed to send; older ones are crashed processes.
    alive: BTreeMap<u64, u64>,
    cut: BTreeSet<(u64, u64)>,
    weather: Weather,
}

struct SimNet {
    state: Mutex<NetState>,
    rng: Mutex<SplitMix64>,
}

impl SimNet {
    fn roll(&self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.lock().unwrap().next_u64() % 1000 < per_mille
    }

    fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.rng.lock().unwrap().next_u64() % n
    }
}

struct SimTransport {
    from: u64,
    incarnation: u64,
    net: Arc<SimNet>,
}

fn addr_of(id: u64) -> String {
    format!("node-{id}:9093")
}

fn id_of(addr: &str) -> Option<u64> {
    addr.strip_prefix("node-")?.split(':').next()?.parse().ok()
}

impl Transport for SimTransport {
    fn call<'a>(
        &'a self,
        addr: &'a str,
        api: PrivateApi,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let lost = || TransportError::Timeout {
                addr: addr.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            };
            let Some(to) = id_of(addr) else {
                return Err(TransportError::Unreachable {
                    addr: addr.to_string(),
                    reason: "no such node".into(),
                });
            };
            let net = self.net.clone();
            let from = self.from;
            let incarnation = self.incarnation;
            let exchange = async move {
                let (server, cut, weather) = {
                    let s = net.state.lock().unwrap();
                    if s.alive.get(&from) != Some(&incarnation) {
                        // A crashed process sends nothing.
                        return Err(TransportError::Unreachable {
                            addr: addr.to_string(),
                            reason: "sender crashed".into(),
                        });
                    }
                    (
                        s.servers.get(&to).cloned(),
                        s.cut.contains(&(from, to)),
                        s.weather,
                    )
                };
                tokio::time::sleep(Duration::from_millis(net.below(weather.delay_max_ms + 1)))
                    .await;
                if cut || net.roll(weather.drop) {
                    std::future::pending::<()>().await;
                }
                let Some(server) = server else {
                    return Err(TransportError::Unreachable {
                        addr: addr.to_string(),
                        reason: "connection refused".into(),
                    });
                };
                if net.roll(weather.duplicate) {
                    let (dup, copy) = (server.clone(), body.clone());
                    tokio::spawn(async move {
                        dup.handle(api, &copy).await;
                    });
                }
                let answer = server.handle(api, &body).await;
                let (back_cut, weather) = {
                    let s = net.state.lock().unwrap();
                    (s.cut.contains(&(to, from)), s.weather)
                };
                tokio::time::sleep(Duration::from_millis(net.below(weather.delay_max_ms + 1)))
                    .await;
                if back_cut || net.roll(weather.drop) {
                    std::future::pending::<()>().await;
                }
                Ok(answer)
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(lost()))
        })
    }
}

/// What the checkers saw, shared by every watcher task.
#[derive(Default)]
struct Record {
    /// term -> nodes that were leader in it.
    leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// applied index -> (digest, node that reported it first).
    digests: BTreeMap<u64, (u64, u64)>,
    /// applied index -> (image JSON, node that reported it first).
    images: BTreeMap<u64, (String, u64)>,
    /// Acknowledged writes: config key -> log index.
    acked: BTreeMap<String, u64>,
    violations: Vec<String>,
}

fn image_json(image: &MetadataImage) -> String {
    serde_json::to_string(image).unwrap()
}

fn check_image(record: &mut Record, node: u64, image: &MetadataImage) {
    let index = image.last_applied_index;
    let json = image_json(image);
    match record.images.get(&index) {
        Some((seen, first)) if *seen != json => record.violations.push(format!(
            "node {node} and node {first} have different images at index {index}"
        )),
        Some(_) => {}
        None => {
            record.images.insert(index, (json, node));
        }
    }
    for (key, at) in &record.acked {
        if *at <= index && !image.broker_configs.cluster_default.contains_key(key) {
            let v = format!(
                "node {node}'s image at index {index} lacks write {key} acknowledged at {at}"
            );
            record.violations.push(v);
        }
    }
}

struct SimNode {
    id: u64,
    dir: PathBuf,
    backend: FaultyBackend,
    quorum: Option<Arc<MetadataQuorum>>,
    tasks: Vec<JoinHandle<()>>,
    incarnation: u64,
}

struct Sim {
    seed: u64,
    voters: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, SimNode>,
    net: Arc<SimNet>,
    record: Arc<Mutex<Record>>,
    config: QuorumConfig,
    rng: SplitMix64,
    next_key: Arc<Mutex<u64>>,
    _root: tempfile::TempDir,
}

fn temp_root() -> tempfile::TempDir {
    // tmpfs when there is one: fsync is free there, and the crash model does not care.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

impl Sim {
    fn new(seed: u64, voter_count: u64, snapshot_interval: u64) -> Sim {
        let root = temp_root();
        let voters: BTreeMap<u64, String> = (1..=voter_count).map(|id| (id, addr_of(id))).collect();
        let mut nodes = BTreeMap::new();
        for id in voters.keys().copied().chain([OBSERVER_ID]) {
            let dir = root.path().join(format!("node-{id}"));
            nodes.insert(
                id,
                SimNode {
                    id,
                    dir,
                    backend: FaultyBackend::new(),
                    quorum: None,
                    tasks: Vec::new(),
                    incarnation: 0,
                },
            );
        }
        Sim {
            seed,
            voters,
            nodes,
            net: Arc::new(SimNet {
                state: Mutex::new(NetState::default()),
                rng: Mutex::new(SplitMix64::new(seed ^ 0x5eed)),
            }),
            record: Arc::new(Mutex::new(Record::default())),
            config: QuorumConfig {
                snapshot_interval_entries: snapshot_interval,
                entries_kept_after_snapshot: 10,
                ..QuorumConfig::default()
            },
            rng: SplitMix64::new(seed),
            next_key: Arc::new(Mutex::new(0)),
            _root: root,
        }
    }

    async fn start(&mut self, id: u64) {
        let role = if id == OBSERVER_ID {
            QuorumRole::Observer {
                bootstrap: self.voters.values().cloned().collect(),
            }
        } else {
            QuorumRole::Voter {
                voters: self.voters.clone(),
            }
        };
        let node = self.nodes.get_mut(&id).unwrap();
        node.incarnation += 1;
        if std::env::var("RAFKA_SIM_TRACE").is_ok() {
            eprintln!(
                "{:?} start node {id} incarnation {}",
                tokio::time::Instant::now(),
                node.incarnation
            );
        }
        node.backend = FaultyBackend::new();
        self.net
            .state
            .lock()
            .unwrap()
            .alive
            .insert(id, node.incarnation);
        let quorum = MetadataQuorum::open(QuorumOptions {
            dir: node.dir.clone(),
            node_id: id,
            cluster_id: "sim-cluster".into(),
            role,
            config: self.config.clone(),
            backend: Arc::new(node.backend.clone()),
            transport: Arc::new(SimTransport {
                from: id,
                incarnation: node.incarnation,
                net: self.net.clone(),
            }),
        })
        .await
        .unwrap_or_else(|e| panic!("seed {}: node {id} did not start: {e}", self.seed));
        let quorum = Arc::new(quorum);
        if quorum.is_voter() {
            self.net
                .state
                .lock()
                .unwrap()
                .servers
                .insert(id, quorum.server());
        }
        node.tasks.push(tokio::spawn(watch_images(
            id,
            quorum.clone(),
            self.record.clone(),
        )));
        if let Some(mut metrics) = quorum.metrics() {
            let record = self.record.clone();
            node.tasks.push(tokio::spawn(async move {
                loop {
                    {
                        let m = metrics.borrow_and_update();
                        if std::env::var("RAFKA_SIM_TRACE").is_ok() {
                            eprintln!("{:?} node {id} state {:?} vote {} log {:?} applied {:?} snap {:?} purged {:?} run {:?}", tokio::time::Instant::now(), m.state, m.vote, m.last_log_index, m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index), m.purged.map(|l| l.index), m.running_state);
                        }
                        if m.state == openraft::ServerState::Leader {
                            if std::env::var("RAFKA_SIM_TRACE").is_ok() {
                                eprintln!("{:?} node {id} leads term {} vote {} last_log {:?}", tokio::time::Instant::now(), m.current_term, m.vote, m.last_log_index);
                            }
                            let mut r = record.lock().unwrap();
                            let set = r.leaders.entry(m.current_term).or_default();
                            set.insert(id);
                            if set.len() > 1 {
                                let v = format!("term {} had leaders {set:?}", m.current_term);
                                r.violations.push(v);
                            }
                        }
                    }
                    if metrics.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
        node.tasks.push(tokio::spawn(write_loop(
            quorum.clone(),
            self.record.clone(),
            self.next_key.clone(),
            self.seed ^ (id << 32) ^ node.incarnation,
        )));
        node.quorum = Some(quorum);
    }

    /// The process dies: nothing more is sent or answered, unsynced writes are lost (a seeded
    /// part of each file's unsynced tail may survive).
    async fn crash(&mut self, id: u64) {
        let crash_seed = self.rng.next_u64();
        if std::env::var("RAFKA_SIM_TRACE").is_ok() {
            eprintln!("{:?} crash node {id}", tokio::time::Instant::now());
        }
        let node = self.nodes.get_mut(&id).unwrap();
        {
            let mut s = self.net.state.lock().unwrap();
            s.alive.remove(&id);
            s.servers.remove(&id);
        }
        for t in node.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        node.backend.crash_with_seed(crash_seed).unwrap();
        if let Some(q) = node.quorum.take() {
            // Stops the Raft task; its storage already fails, like a dead process's would.
            let _ = q.shutdown().await;
        }
    }

    /// A clean stop: the node saves what it must (an observer its image) and leaves.
    async fn stop(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        {
            let mut s = self.net.state.lock().unwrap();
            s.alive.remove(&id);
            s.servers.remove(&id);
        }
        for t in node.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(q) = node.quorum.take() {
            q.shutdown().await.unwrap();
        }
    }

    async fn wait_converged(&self, deadline: tokio::time::Instant) -> u64 {
        loop {
            let indexes: BTreeSet<u64> = self
                .live()
                .iter()
                .map(|id| {
                    self.nodes[id]
                        .quorum
                        .as_ref()
                        .unwrap()
                        .image()
                        .last_applied_index
                })
                .collect();
            if indexes.len() == 1 {
                return *indexes.iter().next().unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {}: nodes did not converge: {indexes:?}",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn live(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.quorum.is_some())
            .map(|n| n.id)
            .collect()
    }

    fn heal(&self) {
        let mut s = self.net.state.lock().unwrap();
        s.cut.clear();
        s.weather = Weather::default();
    }

    fn violations(&self) -> Vec<String> {
        self.record.lock().unwrap().violations.clone()
    }
}

async fn watch_images(id: u64, quorum: Arc<MetadataQuorum>, record: Arc<Mutex<Record>>) {
    let mut images = quorum.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        {
            let mut r = record.lock().unwrap();
            check_image(&mut r, id, &image);
            if let Some((Some(index), Some(digest))) = quorum.applied_digest() {
                match r.digests.get(&index) {
                    Some((d, first)) if *d != digest => {
                        let v = format!(
                            "node {id} and node {first} applied different entries up to {index}"
                        );
                        r.violations.push(v);
                    }
                    Some(_) => {}
                    None => {
                        r.digests.insert(index, (digest, id));
                    }
                }
            }
        }
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// Proposes small config writes through `quorum` until aborted; acknowledged ones are recorded.
async fn write_loop(
    quorum: Arc<MetadataQuorum>,
    record: Arc<Mutex<Record>>,
    next_key: Arc<Mutex<u64>>,
    seed: u64,
) {
    let mut rng = SplitMix64::new(seed);
    loop {
        tokio::time::sleep(Duration::from_millis(50 + rng.next_u64() % 400)).await;
        let key = {
            let mut k = next_key.lock().unwrap();
            *k += 1;
            format!("k{}", *k)
        };
        // With a request id, as brokers send them: the quorum's retries then carry copies
        // that apply must recognise (seeded, so a run replays).
        let request_id = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
        let cmd = ControllerCommand::AlterBrokerConfigs {
            node_id: None,
            changes: BTreeMap::from([(key.clone(), Some("v".to_string()))]),
            request_id: Some(request_id),
        };
        if let Ok(outcome) = quorum.write_within(cmd, Duration::from_secs(3)).await {
            record.lock().unwrap().acked.insert(key, outcome.log_index);
        }
    }
}

/// One seeded run: faults for `fault_ms` of simulated time, then heal and check.
async fn run(seed: u64, voter_count: u64, snapshot_interval: u64, fault_ms: u64) {
    rafka_metadata::runtime::seed_thread_rng(seed);
    let mut sim = Sim::new(seed, voter_count, snapshot_interval);
    for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
        sim.start(id).await;
    }
    let minority = (voter_count - 1) / 2;
    let start = tokio::time::Instant::now();
    let mut down: BTreeMap<u64, tokio::time::Instant> = BTreeMap::new();
    let mut crashes = 0;
    while start.elapsed() < Duration::from_millis(fault_ms) {
        tokio::time::sleep(Duration::from_millis(100 + sim.rng.next_u64() % 900)).await;
        let now = tokio::time::Instant::now();
        // Bring back nodes whose downtime is over.
        for id in down.clone().keys() {
            if down[id] <= now {
                down.remove(id);
                sim.start(*id).await;
            }
        }
        let ids: Vec<u64> = sim.nodes.keys().copied().collect();
        let pick = |sim: &mut Sim| ids[(sim.rng.next_u64() % ids.len() as u64) as usize];
        let action = sim.rng.next_u64() % 10;
        match action {
            0 | 1 => {
                // Isolate one node from everyone.
                let victim = pick(&mut sim);
                let mut s = sim.net.state.lock().unwrap();
                for other in &ids {
                    if *other != victim {
                        s.cut.insert((victim, *other));
                        s.cut.insert((*other, victim));
                    }
                }
            }
            2 => {
                // A one-way cut.
                let (a, b) = (pick(&mut sim), pick(&mut sim));
                if a != b {
                    sim.net.state.lock().unwrap().cut.insert((a, b));
                }
            }
            3 | 4 | 8 => {
                let mut victim = pick(&mut sim);
                if action == 8 {
                    // The leader, which is the interesting one to lose.
                    if let Some(l) = sim
                        .live()
                        .iter()
                        .find_map(|id| sim.nodes[id].quorum.as_ref().and_then(|q| q.leader()))
                    {
                        victim = l.node_id;
                    }
                }
                let voters_down = down.keys().filter(|d| **d != OBSERVER_ID).count() as u64;
                let is_voter = victim != OBSERVER_ID;
                if !down.contains_key(&victim) && (!is_voter || voters_down < minority.max(1)) {
                    sim.crash(victim).await;
                    crashes += 1;
                    let back = now + Duration::from_millis(300 + sim.rng.next_u64() % 3000);
                    down.insert(victim, back);
                }
            }
            5 => {
                let weather = Weather {
                    drop: sim.rng.next_u64() % 150,
                    duplicate: sim.rng.next_u64() % 100,
                    delay_max_ms: sim.rng.next_u64() % 60,
                };
                sim.net.state.lock().unwrap().weather = weather;
            }
            6 | 7 => sim.heal(),
            _ => {}
        }
        let v = sim.violations();
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
    // Heal everything and check that the quorum makes progress and converges.
    sim.heal();
    for id in down.keys().copied().collect::<Vec<_>>() {
        sim.start(id).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for id in sim.live() {
        let q = sim.nodes[&id].quorum.clone().unwrap();
        let cmd = ControllerCommand::AlterBrokerConfigs {
            node_id: None,
            changes: BTreeMap::from([(format!("final-{id}"), Some("v".to_string()))]),
            request_id: None,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let outcome = q.write_within(cmd, left).await.unwrap_or_else(|e| {
            panic!("seed {seed}: no progress through node {id} after healing: {e}")
        });
        sim.record
            .lock()
            .unwrap()
            .acked
            .insert(format!("final-{id}"), outcome.log_index);
    }
    let target = loop {
        let indexes: BTreeSet<u64> = sim
            .live()
            .iter()
            .map(|id| {
                sim.nodes[id]
                    .quorum
                    .as_ref()
                    .unwrap()
                    .image()
                    .last_applied_index
            })
            .collect();
        if indexes.len() == 1 {
            break *indexes.iter().next().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: nodes did not converge: {indexes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let images: Vec<String> = sim
        .live()
        .iter()
        .map(|id| image_json(&sim.nodes[id].quorum.as_ref().unwrap().image()))
        .collect();
    assert!(
        images.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: images differ at index {target}"
    );
    let final_image = sim.nodes[&1].quorum.as_ref().unwrap().image();
    let acked = sim.record.lock().unwrap().acked.clone();
    for key in acked.keys() {
        assert!(
            final_image.broker_configs.cluster_default.contains_key(key),
            "seed {seed}: acknowledged write {key} is missing after healing"
        );
    }
    let v = sim.violations();
    assert!(v.is_empty(), "seed {seed}: {v:?}");
    assert!(
        !acked.is_empty(),
        "seed {seed}: no write was acknowledged at all"
    );
    let terms = sim.record.lock().unwrap().leaders.len();
    eprintln!(
        "seed {seed}: {} acknowledged writes, {terms} terms with a leader, converged at index {target}, {crashes} crashes",
        acked.len()
    );
    for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
        if sim.nodes[&id].quorum.is_some() {
            sim.crash(id).await;
        }
    }
}

fn trace() {
    if std::env::var("RAFKA_SIM_TRACE").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=info".into()),
            )
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn seeds(default_count: u64, salt: u64) -> Vec<u64> {
    trace();
    if let Ok(s) = std::env::var("RAFKA_SIM_SEED") {
        return vec![s.parse().expect("RAFKA_SIM_SEED is a number")];
    }
    let count = std::env::var("RAFKA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_count);
    (0..count).map(|i| i * 7919 + salt).collect()
}

fn simulate(voters: u64, snapshot_interval: u64, fault_ms: u64, seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(run(seed, voters, snapshot_interval, fault_ms));
}

#[test]
fn three_voters_under_faults() {
    for seed in seeds(200, 1) {
        eprintln!("seed {seed}");
        simulate(3, 10_000, 20_000, seed);
    }
}

#[test]
fn five_voters_under_faults() {
    for seed in seeds(150, 2) {
        eprintln!("seed {seed}");
        simulate(5, 10_000, 20_000, seed);
    }
}

/// Small snapshot intervals: logs are purged all the time, so restarted voters and the
/// observer catch up by snapshot.
#[test]
fn three_voters_with_frequent_snapshots() {
    for seed in seeds(150, 3) {
        eprintln!("seed {seed}");
        simulate(3, 20, 20_000, seed);
    }
}

/// A voter whose metadata dir is wiped comes back empty and catches up by snapshot (the leader
/// has purged the entries it would need).
#[test]
fn wiped_voter_catches_up_by_snapshot() {
    for seed in seeds(20, 4) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            rafka_metadata::runtime::seed_thread_rng(seed);
            let mut sim = Sim::new(seed, 3, 20);
            for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
                sim.start(id).await;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            // Well past a few snapshot intervals.
            loop {
                let index = sim.nodes[&1]
                    .quorum
                    .as_ref()
                    .unwrap()
                    .image()
                    .last_applied_index;
                if index > 120 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "seed {seed}: no progress"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            sim.crash(3).await;
            std::fs::remove_dir_all(&sim.nodes[&3].dir).unwrap();
            sim.start(3).await;
            sim.wait_converged(deadline).await;
            let q = sim.nodes[&3].quorum.as_ref().unwrap();
            assert_eq!(
                q.applied_digest().unwrap().1,
                None,
                "seed {seed}: the wiped voter replayed entries instead of installing a snapshot"
            );
            let v = sim.violations();
            assert!(v.is_empty(), "seed {seed}: {v:?}");
            for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
                sim.crash(id).await;
            }
        });
    }
}

/// An observer saves its image; restarted while no controller answers, it starts from that
/// image instead of from nothing.
#[test]
fn observer_resumes_from_its_saved_image() {
    for seed in seeds(10, 5) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            rafka_metadata::runtime::seed_thread_rng(seed);
            let mut sim = Sim::new(seed, 3, 10_000);
            for id in sim.nodes.keys().copied().collect::<Vec<_>>() {
                sim.start(id).await;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let observed = loop {
                let index = sim.nodes[&OBSERVER_ID]
                    .quorum
                    .as_ref()
                    .unwrap()
                    .image()
                    .last_applied_index;
                if index > 30 {
                    break index;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "seed {seed}: no progress"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            sim.stop(OBSERVER_ID).await;
            for id in 1..=3 {
                sim.crash(id).await;
            }
            sim.start(OBSERVER_ID).await;
            let image = sim.nodes[&OBSERVER_ID].quorum.as_ref().unwrap().image();
            assert!(
                image.last_applied_index >= observed,
                "seed {seed}: restarted at {} after having applied {observed}",
                image.last_applied_index
            );
            assert!(image.broker_configs.cluster_default.len() as u64 > 0);
            sim.crash(OBSERVER_ID).await;
        });
    }
}
