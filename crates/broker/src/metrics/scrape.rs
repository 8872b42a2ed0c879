//! What a scrape (or the status page) reads of the running node: one [`Snapshot`] taken per
//! request, then encoded as gauges. Taking it costs a pass over the hosted partitions (a lock
//! each, briefly), one query to the group coordinator task and, for consumer lag on partitions
//! led by other brokers, one ListOffsets per such broker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rafka_metadata::MetadataImage;
use rafka_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rafka_protocol::kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use rafka_protocol::kafka_protocol::protocol::StrBytes;

use super::process::ProcessStats;
use super::Labels;
use crate::state::Shared;

/// How long a scrape waits for another broker's end offsets before reporting the lag of its
/// partitions as unknown (Prometheus's default scrape timeout is 10 s).
const REMOTE_END_OFFSETS_TIMEOUT: Duration = Duration::from_secs(3);

/// One partition replica hosted here.
#[derive(Debug, Clone)]
pub struct HostedPartition {
    pub topic: Arc<str>,
    pub partition: i32,
    pub size_bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub segments: usize,
    pub min_insync_replicas: i32,
}

/// One group this node coordinates, with the lag of each partition it committed.
#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group_id: String,
    pub protocol: &'static str,
    pub state: &'static str,
    pub members: Vec<rafka_group::MemberSummary>,
    /// (topic, partition, committed offset, the partition's high watermark if known).
    pub partitions: Vec<(String, i32, i64, Option<i64>)>,
}

impl GroupLag {
    /// Kafka's consumer lag: the high watermark minus the committed offset, never negative
    /// (a commit can run ahead of a just-truncated log).
    pub fn lag(committed: i64, end: Option<i64>) -> Option<i64> {
        end.map(|e| (e - committed).max(0))
    }
}

/// The metadata quorum as this node sees it.
#[derive(Debug, Clone, Default)]
pub struct QuorumView {
    /// One past the last committed record (Kafka's raft `high-watermark`).
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub current_leader: i32,
    pub current_epoch: i64,
    pub last_applied_offset: i64,
    /// On the quorum leader: each voter's and observer's lag behind the committed offset.
    pub node_lag: Vec<(i32, i64)>,
    pub voters: Vec<i32>,
}

/// What a scrape or the status page shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub node_id: i32,
    pub is_broker: bool,
    pub is_controller: bool,
    pub active_controller: bool,
    pub image: Arc<MetadataImage>,
    pub partitions: Vec<HostedPartition>,
    pub groups: Vec<GroupLag>,
    pub quorum: QuorumView,
    /// Kafka's `BrokerState` number (3 = RUNNING), brokers only.
    pub broker_state: Option<i64>,
    pub process: ProcessStats,
}

impl Snapshot {
    pub async fn take(shared: &Arc<Shared>, broker_state: Option<i64>) -> Snapshot {
        let image = shared.image();
        let is_broker = shared.config.process_roles.broker;
        let partitions = if is_broker {
            hosted_partitions(shared)
        } else {
            Vec::new()
        };
        let groups = if is_broker {
            group_lags(shared, &image, &partitions).await
        } else {
            Vec::new()
        };
        let quorum = quorum_view(shared, &image);
        Snapshot {
            node_id: shared.node_id,
            is_broker,
            is_controller: shared.quorum.is_voter(),
            active_controller: shared.quorum.is_active_controller(),
            image,
            partitions,
            groups,
            quorum,
            broker_state,
            process: ProcessStats::read(),
        }
    }

    /// Registers every gauge of this snapshot in a scrape's registry.
    pub fn register(&self, r: &mut Registry) {
        if self.is_broker {
            self.register_replica_manager(r);
            self.register_partitions(r);
            self.register_groups(r);
        }
        if let Some(state) = self.broker_state {
            gauge(
                r,
                "kafka_server_kafkaserver_brokerstate",
                "Kafka's BrokerState: 0 NOT_RUNNING, 1 STARTING, 2 RECOVERY, 3 RUNNING, 6 PENDING_CONTROLLED_SHUTDOWN, 7 SHUTTING_DOWN",
                state,
            );
        }
        if self.is_controller {
            self.register_controller(r);
        }
        self.register_quorum(r);
        self.process.register(r);
    }

    fn leader_of(&self, topic: &str, partition: i32) -> Option<&rafka_metadata::PartitionImage> {
        self.image
            .topic_by_name(topic)
            .and_then(|t| t.partition(partition))
    }

    fn register_replica_manager(&self, r: &mut Registry) {
        let (mut leaders, mut under_replicated, mut under_min_isr) = (0, 0, 0);
        for p in &self.partitions {
            let Some(pi) = self.leader_of(&p.topic, p.partition) else {
                continue;
            };
            if pi.leader != self.node_id {
                continue;
            }
            leaders += 1;
            if pi.isr.len() < pi.replicas.len() {
                under_replicated += 1;
            }
            if (pi.isr.len() as i64) < i64::from(p.min_insync_replicas) {
                under_min_isr += 1;
            }
        }
        let prefix = "kafka_server_replicamanager_";
        gauge(
            r,
            &format!("{prefix}leadercount"),
            "Partitions this broker leads",
            leaders,
        );
        gauge(
            r,
            &format!("{prefix}partitioncount"),
            "Partition replicas this broker hosts",
            self.partitions.len() as i64,
        );
        gauge(
            r,
            &format!("{prefix}underreplicatedpartitions"),
            "Partitions led here whose ISR is smaller than their replica set",
            under_replicated,
        );
        gauge(
            r,
            &format!("{prefix}underminisrpartitioncount"),
            "Partitions led here whose ISR is below min.insync.replicas",
            under_min_isr,
        );
    }

    fn register_partitions(&self, r: &mut Registry) {
        let size = Family::<Labels, Gauge>::default();
        let end = Family::<Labels, Gauge>::default();
        let start = Family::<Labels, Gauge>::default();
        let segments = Family::<Labels, Gauge>::default();
        let under_min_isr = Family::<Labels, Gauge>::default();
        let at_min_isr = Family::<Labels, Gauge>::default();
        let replicas = Family::<Labels, Gauge>::default();
        let in_sync = Family::<Labels, Gauge>::default();
        let under_replicated = Family::<Labels, Gauge>::default();
        for p in &self.partitions {
            let labels = partition_labels(&p.topic, p.partition);
            size.get_or_create(&labels)
                .set(saturating_i64(p.size_bytes));
            end.get_or_create(&labels).set(p.log_end_offset);
            start.get_or_create(&labels).set(p.log_start_offset);
            segments
                .get_or_create(&labels)
                .set(saturating_i64(p.segments as u64));
            // Kafka's Partition gauges are 0 on replicas that do not lead.
            let led = self
                .leader_of(&p.topic, p.partition)
                .filter(|pi| pi.leader == self.node_id);
            let (isr, all) =
                led.map_or((0, 0), |pi| (pi.isr.len() as i64, pi.replicas.len() as i64));
            let min = i64::from(p.min_insync_replicas);
            let leads = led.is_some();
            under_min_isr
                .get_or_create(&labels)
                .set(i64::from(leads && isr < min));
            at_min_isr
                .get_or_create(&labels)
                .set(i64::from(leads && isr == min));
            replicas.get_or_create(&labels).set(all);
            in_sync.get_or_create(&labels).set(isr);
            under_replicated
                .get_or_create(&labels)
                .set(i64::from(leads && isr < all));
        }
        let list = [
            ("kafka_log_log_size", "Bytes of a partition's log segments on this broker", size),
            ("kafka_log_log_logendoffset", "Offset of the next record appended to the partition here", end),
            ("kafka_log_log_logstartoffset", "First offset of the partition's log here", start),
            ("kafka_log_log_numlogsegments", "Segments of the partition's log here", segments),
            ("kafka_cluster_partition_underminisr", "1 when the partition (led here) has fewer in-sync replicas than min.insync.replicas", under_min_isr),
            ("kafka_cluster_partition_atminisr", "1 when the partition (led here) has exactly min.insync.replicas in sync", at_min_isr),
            ("kafka_cluster_partition_replicascount", "Replicas of the partition (on its leader; 0 elsewhere)", replicas),
            ("kafka_cluster_partition_insyncreplicascount", "In-sync replicas of the partition (on its leader; 0 elsewhere)", in_sync),
            ("kafka_cluster_partition_underreplicated", "1 when the partition (led here) has replicas out of sync", under_replicated),
        ];
        for (name, help, family) in list {
            r.register(name, help, family);
        }
    }

    fn register_groups(&self, r: &mut Registry) {
        let current = Family::<Labels, Gauge>::default();
        let lag = Family::<Labels, Gauge>::default();
        let lag_sum = Family::<Labels, Gauge>::default();
        let members = Family::<Labels, Gauge>::default();
        for g in &self.groups {
            members
                .get_or_create(&vec![("consumergroup", g.group_id.clone())])
                .set(g.members.len() as i64);
            let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
            for (topic, partition, committed, end) in &g.partitions {
                let labels = vec![
                    ("consumergroup", g.group_id.clone()),
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ];
                current.get_or_create(&labels).set(*committed);
                if let Some(l) = GroupLag::lag(*committed, *end) {
                    lag.get_or_create(&labels).set(l);
                    *sums.entry(topic).or_insert(0) += l;
                }
            }
            for (topic, sum) in sums {
                lag_sum
                    .get_or_create(&vec![
                        ("consumergroup", g.group_id.clone()),
                        ("topic", topic.to_string()),
                    ])
                    .set(sum);
            }
        }
        r.register(
            "kafka_consumergroup_current_offset",
            "Committed offset of a group on a partition (kafka_exporter's name), from its coordinator",
            current,
        );
        r.register(
            "kafka_consumergroup_lag",
            "High watermark minus the committed offset (kafka_exporter's name), from the group's coordinator",
            lag,
        );
        r.register(
            "kafka_consumergroup_lag_sum",
            "Lag of a group summed over a topic's partitions",
            lag_sum,
        );
        r.register("kafka_consumergroup_members", "Members of a group", members);
    }

    fn register_controller(&self, r: &mut Registry) {
        let prefix = "kafka_controller_kafkacontroller_";
        gauge(
            r,
            &format!("{prefix}activecontrollercount"),
            "1 on the active controller, 0 on the other controllers",
            i64::from(self.active_controller),
        );
        // The cluster-wide counts come from the active controller only, so that summing over
        // the controllers does not count a partition three times.
        if !self.active_controller {
            return;
        }
        let image = &self.image;
        let alive = |id: i32| image.broker(id).is_some_and(|b| b.is_active());
        let (mut offline, mut total) = (0i64, 0i64);
        for t in image.topics() {
            for p in t.partitions.values() {
                total += 1;
                if p.leader < 0 || !alive(p.leader) {
                    offline += 1;
                }
            }
        }
        let fenced = image.brokers().filter(|b| b.fenced).count() as i64;
        let active = image.brokers().filter(|b| !b.fenced).count() as i64;
        gauge(
            r,
            &format!("{prefix}offlinepartitionscount"),
            "Partitions without a live leader",
            offline,
        );
        gauge(
            r,
            &format!("{prefix}globaltopiccount"),
            "Topics in the cluster",
            image.topics().count() as i64,
        );
        gauge(
            r,
            &format!("{prefix}globalpartitioncount"),
            "Partitions in the cluster",
            total,
        );
        gauge(
            r,
            &format!("{prefix}activebrokercount"),
            "Registered brokers that are not fenced",
            active,
        );
        gauge(
            r,
            &format!("{prefix}fencedbrokercount"),
            "Registered brokers that are fenced",
            fenced,
        );
    }

    fn register_quorum(&self, r: &mut Registry) {
        let q = &self.quorum;
        let prefix = "kafka_server_raft_metrics_";
        gauge(
            r,
            &format!("{prefix}high_watermark"),
            "One past the last committed record of the metadata log",
            q.high_watermark,
        );
        gauge(
            r,
            &format!("{prefix}log_end_offset"),
            "One past the last record of this node's metadata log",
            q.log_end_offset,
        );
        gauge(
            r,
            &format!("{prefix}current_leader"),
            "Node id of the metadata quorum's leader (-1 when unknown)",
            i64::from(q.current_leader),
        );
        gauge(
            r,
            &format!("{prefix}current_epoch"),
            "The metadata quorum's epoch (Raft term)",
            q.current_epoch,
        );
        if !q.node_lag.is_empty() {
            let lag = Family::<Labels, Gauge>::default();
            for (node, l) in &q.node_lag {
                lag.get_or_create(&vec![("node_id", node.to_string())])
                    .set(*l);
            }
            r.register(
                format!("{prefix}node_lag"),
                "On the quorum leader: records each voter and observer is behind the committed offset",
                lag,
            );
        }
        gauge(
            r,
            "kafka_server_broker_metadata_metrics_last_applied_record_offset",
            "Offset of the last metadata record this node applied",
            q.last_applied_offset,
        );
    }
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: i64) {
    r.register(
        name,
        help,
        prometheus_client::metrics::gauge::ConstGauge::new(value),
    );
}

fn partition_labels(topic: &str, partition: i32) -> Labels {
    vec![
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn hosted_partitions(shared: &Shared) -> Vec<HostedPartition> {
    let mut out: Vec<HostedPartition> = shared
        .partitions
        .all()
        .into_iter()
        .map(|p| HostedPartition {
            topic: p.topic.clone(),
            partition: p.index,
            size_bytes: p.size_bytes(),
            log_start_offset: p.log_start_offset(),
            log_end_offset: p.log_end_offset(),
            high_watermark: p.high_watermark(),
            segments: p.segment_count(),
            min_insync_replicas: p.settings().min_insync_replicas,
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

/// The groups this node coordinates with the high watermark of every partition they
/// committed: read here for partitions this node leads, asked of the leader otherwise.
async fn group_lags(
    shared: &Arc<Shared>,
    image: &Arc<MetadataImage>,
    hosted: &[HostedPartition],
) -> Vec<GroupLag> {
    let Ok(summaries) = shared.groups.query(|c, _| c.group_summaries()).await else {
        return Vec::new();
    };
    let node_id = shared.node_id;
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // Partitions led elsewhere, by leader.
    let mut remote: BTreeMap<i32, BTreeSet<(String, i32)>> = BTreeMap::new();
    for g in &summaries {
        for (topic, partition, _) in &g.offsets {
            let leader = image
                .topic_by_name(topic)
                .and_then(|t| t.partition(*partition))
                .map(|p| p.leader);
            match leader {
                Some(l) if l == node_id => {
                    if let Some(p) = hosted
                        .iter()
                        .find(|h| &*h.topic == topic && h.partition == *partition)
                    {
                        ends.insert((topic.clone(), *partition), p.high_watermark);
                    }
                }
                Some(l) if l >= 0 => {
                    remote
                        .entry(l)
                        .or_default()
                        .insert((topic.clone(), *partition));
                }
                _ => {}
            }
        }
    }
    // One ListOffsets per leader, all at once: a scrape waits for the slowest, not the sum.
    let mut asks = tokio::task::JoinSet::new();
    for (leader, parts) in remote {
        asks.spawn(remote_high_watermarks(
            shared.clone(),
            image.clone(),
            leader,
            parts,
        ));
    }
    while let Some(found) = asks.join_next().await {
        ends.extend(found.unwrap_or_default());
    }
    summaries
        .into_iter()
        .map(|g| GroupLag {
            partitions: g
                .offsets
                .into_iter()
                .map(|(t, p, committed)| {
                    let end = ends.get(&(t.clone(), p)).copied();
                    (t, p, committed, end)
                })
                .collect(),
            group_id: g.group_id,
            protocol: g.protocol,
            state: g.state,
            members: g.members,
        })
        .collect()
}

/// High watermarks (ListOffsets LATEST, read_uncommitted) of partitions led by `leader`.
async fn remote_high_watermarks(
    shared: Arc<Shared>,
    image: Arc<MetadataImage>,
    leader: i32,
    parts: BTreeSet<(String, i32)>,
) -> Vec<((String, i32), i64)> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut topic = ListOffsetsTopic::default();
            topic.name = TopicName(StrBytes::from_string(t.to_string()));
            topic.partitions = ps
                .into_iter()
                .map(|p| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = p;
                    lp.current_leader_epoch = -1;
                    lp.timestamp = -1;
                    lp
                })
                .collect();
            topic
        })
        .collect();
    let Ok(response) = shared
        .brokers
        .send(&image, leader, &request, REMOTE_END_OFFSETS_TIMEOUT)
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.offset >= 0 {
                out.push(((t.name.0.to_string(), p.partition_index), p.offset));
            }
        }
    }
    out
}

fn quorum_view(shared: &Shared, image: &MetadataImage) -> QuorumView {
    let quorum = &shared.quorum;
    let applied = image.last_applied_index as i64;
    let mut view = QuorumView {
        high_watermark: applied + 1,
        log_end_offset: applied + 1,
        current_leader: -1,
        current_epoch: 0,
        last_applied_offset: applied,
        node_lag: Vec::new(),
        voters: quorum.voters().keys().map(|v| *v as i32).collect(),
    };
    if let Some(leader) = quorum.leader() {
        view.current_leader = leader.node_id as i32;
        view.current_epoch = i64::try_from(leader.term).unwrap_or(i64::MAX);
    }
    if let Some(metrics) = quorum.metrics() {
        let m = metrics.borrow().clone();
        view.current_epoch = i64::try_from(m.current_term).unwrap_or(i64::MAX);
        view.log_end_offset = m.last_log_index.map_or(0, |i| i as i64 + 1);
        view.high_watermark = m.last_applied.map_or(0, |l| l.index as i64 + 1);
    }
    if let Ok(d) = quorum.describe() {
        view.high_watermark = d.high_watermark;
        view.node_lag = d
            .voters
            .iter()
            .chain(&d.observers)
            .filter(|r| r.log_end_offset >= 0)
            .map(|r| {
                (
                    r.node_id as i32,
                    (d.high_watermark - r.log_end_offset).max(0),
                )
            })
            .collect();
    }
    view
}
