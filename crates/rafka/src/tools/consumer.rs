//! `kafka-console-consumer`: fetches records of one topic and prints them with Kafka's
//! `DefaultMessageFormatter`. With `--partition` it reads that partition from `--offset`;
//! otherwise it is a member of a classic consumer group (JoinGroup/SyncGroup with the `range`
//! assignor, heartbeats, committed offsets as start positions, periodic and final commits,
//! LeaveGroup on exit, rejoining on a rebalance), like Kafka's ConsoleConsumer with the classic
//! protocol.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FetchRequest,
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rafka_records::{batches, TimestampType};

use super::client::{error_text, Cluster};
use super::props::{self, Props};

#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-consumer",
    about = "This tool helps to read data from Kafka topics and outputs it to standard output.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: The server(s) to connect to.
    #[arg(long = "bootstrap-server", value_name = "String: server to connect to")]
    bootstrap_server: Option<String>,
    /// The topic to consume on.
    #[arg(long, value_name = "String: topic")]
    topic: Option<String>,
    /// The partition to consume from. Consumption starts from the end of the partition unless
    /// '--offset' is specified.
    #[arg(long, value_name = "Integer: partition")]
    partition: Option<i32>,
    /// The offset to consume from (a non-negative number), or 'earliest' which means from
    /// beginning, or 'latest' which means from end
    #[arg(long, value_name = "String: consume offset")]
    offset: Option<String>,
    /// If the consumer does not already have an established offset to consume from, start with
    /// the earliest message present in the log rather than the latest message.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// The maximum number of messages to consume before exiting. If not set, consumption is
    /// continual.
    #[arg(long = "max-messages", value_name = "Integer: num_messages")]
    max_messages: Option<u64>,
    /// If specified, exit if no message is available for consumption for the specified interval.
    #[arg(long = "timeout-ms", value_name = "Long: timeout_ms")]
    timeout_ms: Option<u64>,
    /// The consumer group id of the consumer.
    #[arg(long, value_name = "String: consumer group id")]
    group: Option<String>,
    /// Set to read_committed in order to filter out transactional messages which are not
    /// committed. Set to read_uncommitted to read all messages.
    #[arg(long = "isolation-level", value_name = "String")]
    isolation_level: Option<String>,
    /// A mechanism to pass user-defined properties in the form key=value to the consumer.
    #[arg(long = "consumer-property", value_name = "String: consumer_prop")]
    consumer_property: Vec<String>,
    /// Consumer config properties file. Note that [consumer-property] takes precedence over
    /// this config.
    #[arg(long = "consumer.config", value_name = "String: config file")]
    consumer_config: Option<PathBuf>,
    /// The properties to initialize the message formatter (print.timestamp, print.key,
    /// print.offset, print.partition, print.headers, print.value, key.separator,
    /// line.separator, headers.separator, null.literal).
    #[arg(long, value_name = "String: prop")]
    property: Vec<String>,
    /// Config properties file to initialize the message formatter.
    #[arg(long = "formatter-config", value_name = "String: config file")]
    formatter_config: Option<PathBuf>,
    /// The name of a class to use for formatting Kafka messages for display (only the default
    /// formatter is available).
    #[arg(long, value_name = "String: class")]
    formatter: Option<String>,
    /// If there is an error when processing a message, skip it instead of halting.
    #[arg(long = "skip-message-on-error")]
    skip_message_on_error: bool,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// Kafka's `DefaultMessageFormatter` settings.
#[derive(Debug, Clone)]
pub struct Formatter {
    print_timestamp: bool,
    print_key: bool,
    print_offset: bool,
    print_partition: bool,
    print_headers: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_type: TimestampType,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Java's escape handling for separator properties is not applied by Kafka either: the value is
/// used as given (a literal tab must be passed as a tab).
impl Formatter {
    pub fn from_props(p: &Props) -> Formatter {
        let flag = |k: &str, d: bool| {
            p.get(k)
                .map(|v| v.trim().eq_ignore_ascii_case("true"))
                .unwrap_or(d)
        };
        let bytes = |k: &str, d: &str| {
            p.get(k)
                .cloned()
                .unwrap_or_else(|| d.to_string())
                .into_bytes()
        };
        Formatter {
            print_timestamp: flag("print.timestamp", false),
            print_key: flag("print.key", false),
            print_offset: flag("print.offset", false),
            print_partition: flag("print.partition", false),
            print_headers: flag("print.headers", false),
            print_value: flag("print.value", true),
            key_separator: bytes("key.separator", "\t"),
            line_separator: bytes("line.separator", "\n"),
            headers_separator: bytes("headers.separator", ","),
            null_literal: bytes("null.literal", "null"),
        }
    }

    fn sep(&self, out: &mut Vec<u8>, column: bool) {
        out.extend_from_slice(if column {
            &self.key_separator
        } else {
            &self.line_separator
        });
    }

    /// Appends one record as Kafka prints it.
    pub fn write(&self, r: &Consumed<'_>, out: &mut Vec<u8>) {
        if self.print_timestamp {
            let kind = match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            if r.timestamp < 0 {
                out.extend_from_slice(b"NO_TIMESTAMP");
            } else {
                out.extend_from_slice(format!("{kind}:{}", r.timestamp).as_bytes());
            }
            self.sep(
                out,
                self.print_partition
                    || self.print_offset
                    || self.print_headers
                    || self.print_key
                    || self.print_value,
            );
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", r.partition).as_bytes());
            self.sep(
                out,
                self.print_offset || self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            self.sep(
                out,
                self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            }
            for (i, (k, v)) in r.headers.iter().enumerate() {
                out.extend_from_slice(k);
                out.push(b':');
                out.extend_from_slice(v.unwrap_or(&self.null_literal));
                if i + 1 < r.headers.len() {
                    out.extend_from_slice(&self.headers_separator);
                }
            }
            self.sep(out, self.print_key || self.print_value);
        }
        if self.print_key {
            out.extend_from_slice(r.key.unwrap_or(&self.null_literal));
            self.sep(out, self.print_value);
        }
        if self.print_value {
            out.extend_from_slice(r.value.unwrap_or(&self.null_literal));
            out.extend_from_slice(&self.line_separator);
        }
    }
}

/// Kafka's `RangeAssignor` for one topic: members sorted by id, each gets a contiguous range,
/// the first `partitions % members` one extra.
pub fn range_assign(members: &[String], partitions: i32) -> BTreeMap<String, Vec<i32>> {
    let mut sorted = members.to_vec();
    sorted.sort();
    let mut out = BTreeMap::new();
    let n = sorted.len() as i32;
    if n == 0 {
        return out;
    }
    let per = partitions / n;
    let extra = partitions % n;
    for (i, m) in sorted.iter().enumerate() {
        let i = i as i32;
        let start = per * i + i.min(extra);
        let len = per + i32::from(i < extra);
        out.insert(m.clone(), (start..start + len).collect());
    }
    out
}

/// `ConsumerProtocolSubscription` bytes (version prefix, then v0).
pub fn encode_subscription(topics: &[String]) -> anyhow::Result<Bytes> {
    let sub = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).map_err(|e| anyhow!("{e:#}"))?;
    Ok(buf.freeze())
}

/// The topics of a member's subscription (any version up to 3).
pub fn decode_subscription(mut b: Bytes) -> anyhow::Result<Vec<String>> {
    if b.remaining() < 2 {
        bail!("short subscription");
    }
    let v = b.get_i16().clamp(0, 3);
    let sub = ConsumerProtocolSubscription::decode(&mut b, v).map_err(|e| anyhow!("{e:#}"))?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// `ConsumerProtocolAssignment` bytes (version prefix, then v0).
pub fn encode_assignment(topics: &[(String, Vec<i32>)]) -> anyhow::Result<Bytes> {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        topics
            .iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    a.encode(&mut buf, 0).map_err(|e| anyhow!("{e:#}"))?;
    Ok(buf.freeze())
}

/// All (topic, partitions) of an assignment; empty bytes mean no assignment.
pub fn decode_assignment(mut b: Bytes) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
    if b.remaining() < 2 {
        return Ok(Vec::new());
    }
    let v = b.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut b, v).map_err(|e| anyhow!("{e:#}"))?;
    Ok(a.assigned_partitions
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    Earliest,
    Latest,
    Offset(i64),
}

struct Settings {
    topic: String,
    partition: Option<i32>,
    start: StartAt,
    reset: StartAt,
    group: Option<String>,
    auto_commit: bool,
    commit_interval: Duration,
    max_messages: Option<u64>,
    timeout: Option<Duration>,
    isolation: i8,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    heartbeat_interval: Duration,
    skip_on_error: bool,
    fetch_max_wait_ms: i32,
    fetch_max_bytes: i32,
    partition_max_bytes: i32,
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let usage = |m: &str| {
        eprintln!("{m}");
        Ok(1)
    };
    let Some(topic) = a.topic.clone() else {
        return usage("Exactly one of --include/--topic is required.");
    };
    if a.formatter
        .as_deref()
        .is_some_and(|f| !f.ends_with("DefaultMessageFormatter"))
    {
        return usage("Only the default formatter (org.apache.kafka.tools.consumer.DefaultMessageFormatter) is supported by this tool");
    }
    let p = props::merged(a.consumer_config.as_deref(), &a.consumer_property)?;
    if a.bootstrap_server.is_none() && !p.contains_key("bootstrap.servers") {
        return usage("Missing required argument \"[bootstrap-server]\"");
    }
    if a.offset.is_some() && a.partition.is_none() {
        return usage("The partition is required when offset is specified.");
    }
    if a.partition.is_some() && a.group.is_some() {
        return usage("Options group and partition cannot be specified together.");
    }
    if a.from_beginning && a.offset.is_some() {
        return usage("Options from-beginning and offset cannot be specified together.");
    }
    let reset_prop = p.get("auto.offset.reset").map(|s| s.trim().to_string());
    if a.from_beginning && reset_prop.as_deref().is_some_and(|r| r != "earliest") {
        return usage(&format!(
            "Can't simultaneously specify --from-beginning and 'auto.offset.reset={}'",
            reset_prop.unwrap_or_default()
        ));
    }
    let reset = match reset_prop.as_deref() {
        Some("earliest") => StartAt::Earliest,
        Some("latest") | None => {
            if a.from_beginning {
                StartAt::Earliest
            } else {
                StartAt::Latest
            }
        }
        Some(other) => return usage(&format!("Invalid value {other} for configuration auto.offset.reset: String must be one of: latest, earliest, none")),
    };
    let start = match a.offset.as_deref() {
        None => {
            if a.from_beginning {
                StartAt::Earliest
            } else {
                StartAt::Latest
            }
        }
        Some("earliest") => StartAt::Earliest,
        Some("latest") => StartAt::Latest,
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 0 => StartAt::Offset(v),
            _ => return usage(&format!("The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long.")),
        },
    };
    let isolation = match a
        .isolation_level
        .clone()
        .or_else(|| p.get("isolation.level").cloned())
        .as_deref()
        .map(str::trim)
    {
        None | Some("read_uncommitted") => 0,
        Some("read_committed") => 1,
        Some(other) => return usage(&format!("Invalid value {other} for configuration isolation.level: String must be one of: read_committed, read_uncommitted")),
    };
    let mut fmt_props = match &a.formatter_config {
        Some(f) => props::load_file(f)?,
        None => Props::new(),
    };
    for kv in &a.property {
        let (k, v) = props::parse_kv(kv)?;
        fmt_props.insert(k, v);
    }
    let formatter = Formatter::from_props(&fmt_props);
    let num = |k: &str, d: i64| -> anyhow::Result<i64> {
        match p.get(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| anyhow!("Invalid value {v} for configuration {k}")),
            None => Ok(d),
        }
    };
    let group_given = a.group.clone().or_else(|| p.get("group.id").cloned());
    let (group, auto_commit) = match (a.partition, group_given) {
        (Some(_), g) => (g, false),
        (None, Some(g)) => {
            let ac = p
                .get("enable.auto.commit")
                .map(|v| v.trim() != "false")
                .unwrap_or(true);
            (Some(g), ac)
        }
        (None, None) => {
            // Kafka's generated group: no commits unless asked for, to keep the offsets topic small.
            let r = uuid::Uuid::new_v4();
            let b = r.as_bytes();
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let ac = p
                .get("enable.auto.commit")
                .map(|v| v.trim() == "true")
                .unwrap_or(false);
            (Some(format!("console-consumer-{}", n % 100_000)), ac)
        }
    };
    let request_timeout = Duration::from_millis(num("request.timeout.ms", 30000)?.max(1) as u64);
    let settings = Settings {
        topic,
        partition: a.partition,
        start,
        reset,
        group,
        auto_commit,
        commit_interval: Duration::from_millis(
            num("auto.commit.interval.ms", 5000)?.max(100) as u64
        ),
        max_messages: a.max_messages,
        timeout: a.timeout_ms.map(Duration::from_millis),
        isolation,
        session_timeout_ms: num("session.timeout.ms", 45000)? as i32,
        rebalance_timeout_ms: num("max.poll.interval.ms", 300000)? as i32,
        heartbeat_interval: Duration::from_millis(
            num("heartbeat.interval.ms", 3000)?.max(100) as u64
        ),
        skip_on_error: a.skip_message_on_error,
        fetch_max_wait_ms: num("fetch.max.wait.ms", 500)? as i32,
        fetch_max_bytes: num("fetch.max.bytes", 52_428_800)? as i32,
        partition_max_bytes: num("max.partition.fetch.bytes", 1_048_576)? as i32,
    };
    let cfg = props::client_config(
        a.bootstrap_server.as_deref(),
        &p,
        "console-consumer",
        request_timeout,
    )?;
    let rt = super::runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut count = 0u64;
    let result = rt.block_on(async {
        let stop2 = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stop2.store(true, Ordering::SeqCst);
        });
        let mut c = Consumer::new(cfg, settings, formatter, stop).await?;
        let r = c.run(&mut count).await;
        c.close().await;
        r
    });
    eprintln!("Processed a total of {count} messages");
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("ERROR Error processing message, terminating consumer process: {e:#}");
            Ok(1)
        }
    }
}

struct Member {
    group: String,
    coordinator: i32,
    member_id: String,
    generation: i32,
    joined: bool,
    last_heartbeat: Instant,
}

struct Consumer {
    cluster: Cluster,
    s: Settings,
    formatter: Formatter,
    stop: Arc<AtomicBool>,
    /// Assigned partition -> next offset to read.
    positions: BTreeMap<i32, i64>,
    leaders: BTreeMap<i32, i32>,
    member: Option<Member>,
    committed: BTreeMap<i32, i64>,
    last_commit: Instant,
}

impl Consumer {
    async fn new(
        cfg: super::client::ClientConfig,
        s: Settings,
        formatter: Formatter,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Consumer> {
        let cluster = Cluster::connect(cfg).await?;
        let member = match (&s.group, s.partition) {
            (Some(g), None) => Some(Member {
                group: g.clone(),
                coordinator: -1,
                member_id: String::new(),
                generation: -1,
                joined: false,
                last_heartbeat: Instant::now(),
            }),
            _ => None,
        };
        Ok(Consumer {
            cluster,
            s,
            formatter,
            stop,
            positions: BTreeMap::new(),
            leaders: BTreeMap::new(),
            member,
            committed: BTreeMap::new(),
            last_commit: Instant::now(),
        })
    }

    async fn refresh_leaders(&mut self) -> anyhow::Result<()> {
        let wait = self.cluster.cfg.request_timeout;
        let l = self
            .cluster
            .partition_leaders(&self.s.topic, true, wait)
            .await?;
        self.leaders = l.into_iter().collect();
        Ok(())
    }

    async fn run(&mut self, count: &mut u64) -> anyhow::Result<()> {
        self.refresh_leaders().await?;
        if let Some(p) = self.s.partition {
            if !self.leaders.contains_key(&p) {
                bail!("Partition {p} of topic {} does not exist", self.s.topic);
            }
            let off = self.resolve(&[p], self.s.start).await?;
            self.positions = off;
        }
        let mut last_record_at = Instant::now();
        let stdout = std::io::stdout();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if self.member.is_some() {
                self.maintain_group().await?;
            }
            let mut out = Vec::new();
            let remaining = self.s.max_messages.map(|m| m.saturating_sub(*count));
            let n = self.fetch_once(&mut out, remaining).await?;
            if !out.is_empty() {
                let mut lock = stdout.lock();
                if lock.write_all(&out).and_then(|_| lock.flush()).is_err() {
                    // stdout closed (e.g. piped into `head`): stop like Kafka does on a broken pipe.
                    *count += n;
                    return Ok(());
                }
            }
            *count += n;
            if n > 0 {
                last_record_at = Instant::now();
            }
            if self.s.max_messages.is_some_and(|m| *count >= m) {
                return Ok(());
            }
            if let Some(t) = self.s.timeout {
                if last_record_at.elapsed() >= t {
                    eprintln!("ERROR Error processing message, terminating consumer process: org.apache.kafka.common.errors.TimeoutException");
                    return Ok(());
                }
            }
            if self.s.auto_commit && self.last_commit.elapsed() >= self.s.commit_interval {
                self.commit().await;
            }
        }
    }

    /// Start offsets of `parts` per `at` (ListOffsets to each leader).
    async fn resolve(&mut self, parts: &[i32], at: StartAt) -> anyhow::Result<BTreeMap<i32, i64>> {
        let mut out = BTreeMap::new();
        let ts = match at {
            StartAt::Offset(o) => {
                for p in parts {
                    out.insert(*p, o);
                }
                return Ok(out);
            }
            StartAt::Earliest => -2,
            StartAt::Latest => -1,
        };
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in parts {
            by_leader
                .entry(*self.leaders.get(p).unwrap_or(&-1))
                .or_default()
                .push(*p);
        }
        for (leader, ps) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(self.s.isolation)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(self.s.topic.clone())))
                    .with_partitions(
                        ps.iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(ts)
                            })
                            .collect(),
                    )]);
            let conn = self.cluster.broker(leader).await?;
            let (resp, _) = conn.send(&req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code != 0 {
                        bail!("{}", error_text(p.error_code, None));
                    }
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(out)
    }

    /// One fetch round over every leader of the assigned partitions; returns records printed.
    async fn fetch_once(&mut self, out: &mut Vec<u8>, limit: Option<u64>) -> anyhow::Result<u64> {
        if self.positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(0);
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, off) in &self.positions {
            by_leader
                .entry(*self.leaders.get(p).unwrap_or(&-1))
                .or_default()
                .push((*p, *off));
        }
        let mut printed = 0u64;
        let mut refresh = false;
        let mut out_of_range = Vec::new();
        for (leader, parts) in by_leader {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.s.fetch_max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(self.s.fetch_max_bytes)
                .with_isolation_level(self.s.isolation)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(self.s.topic.clone())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, off)| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(*off)
                                    .with_last_fetched_epoch(-1)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(self.s.partition_max_bytes)
                            })
                            .collect(),
                    )]);
            let conn = match self.cluster.broker(leader).await {
                Ok(c) => c,
                Err(_) => {
                    refresh = true;
                    continue;
                }
            };
            let v = conn.version_for(ApiKey::Fetch)?;
            let resp = match conn.send_at(&req, v).await {
                Ok(r) => r,
                Err(_) => {
                    self.cluster.drop_broker(leader);
                    refresh = true;
                    continue;
                }
            };
            for t in resp.responses {
                for pd in t.partitions {
                    let p = pd.partition_index;
                    match pd.error_code {
                        0 => {}
                        1 => {
                            out_of_range.push(p);
                            continue;
                        }
                        _ => {
                            refresh = true;
                            continue;
                        }
                    }
                    let Some(records) = pd.records else { continue };
                    let Some(pos) = self.positions.get(&p).copied() else {
                        continue;
                    };
                    let mut aborted: Vec<(i64, i64)> = pd
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.first_offset, a.producer_id.0))
                        .collect();
                    aborted.sort();
                    let left = limit.map(|l| l.saturating_sub(printed));
                    let (n, next) = self.decode(p, pos, &records, &aborted, out, left)?;
                    printed += n;
                    self.positions.insert(p, next);
                    if limit.is_some_and(|l| printed >= l) {
                        return Ok(printed);
                    }
                }
            }
        }
        if !out_of_range.is_empty() {
            let reset = self.resolve(&out_of_range, self.s.reset).await?;
            self.positions.extend(reset);
        }
        if refresh {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.refresh_leaders().await?;
        }
        Ok(printed)
    }

    /// Formats the records of one partition's fetched bytes from `pos` on; returns how many were
    /// printed and the next position.
    fn decode(
        &self,
        partition: i32,
        mut pos: i64,
        records: &[u8],
        aborted: &[(i64, i64)],
        out: &mut Vec<u8>,
        limit: Option<u64>,
    ) -> anyhow::Result<(u64, i64)> {
        let mut printed = 0u64;
        let mut aborted_pids: HashSet<i64> = HashSet::new();
        let mut next_aborted = 0usize;
        for batch in batches(records) {
            // A partial batch at the end of a fetch response is normal.
            let Ok(batch) = batch else { break };
            let h = *batch.header();
            if h.next_offset() <= pos {
                continue;
            }
            while next_aborted < aborted.len() && aborted[next_aborted].0 <= h.last_offset() {
                aborted_pids.insert(aborted[next_aborted].1);
                next_aborted += 1;
            }
            if h.is_control() {
                aborted_pids.remove(&h.producer_id);
                pos = h.next_offset();
                continue;
            }
            if self.s.isolation == 1
                && h.is_transactional()
                && aborted_pids.contains(&h.producer_id)
            {
                pos = h.next_offset();
                continue;
            }
            let decoded = match batch.decode_records(256 * 1024 * 1024) {
                Ok(d) => d,
                Err(e) if self.s.skip_on_error => {
                    eprintln!("ERROR Error processing message, skipping this message: {e}");
                    pos = h.next_offset();
                    continue;
                }
                Err(e) => bail!("{e}"),
            };
            for r in decoded.iter() {
                let r = match r {
                    Ok(r) => r,
                    Err(e) if self.s.skip_on_error => {
                        eprintln!("ERROR Error processing message, skipping this message: {e}");
                        break;
                    }
                    Err(e) => bail!("{e}"),
                };
                let offset = r.offset(h.base_offset);
                if offset < pos {
                    continue;
                }
                let tt = h.timestamp_type();
                let timestamp = match tt {
                    TimestampType::LogAppendTime => h.max_timestamp,
                    TimestampType::CreateTime => r.timestamp(h.base_timestamp),
                };
                self.formatter.write(
                    &Consumed {
                        partition,
                        offset,
                        timestamp_type: tt,
                        timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.clone(),
                    },
                    out,
                );
                printed += 1;
                pos = offset + 1;
                if limit.is_some_and(|l| printed >= l) {
                    return Ok((printed, pos));
                }
            }
            pos = pos.max(h.next_offset());
        }
        Ok((printed, pos))
    }

    /// Joins the group when not a member, heartbeats when due, and rejoins on a rebalance.
    async fn maintain_group(&mut self) -> anyhow::Result<()> {
        let (joined, due) = match &self.member {
            Some(m) => (
                m.joined,
                m.last_heartbeat.elapsed() >= self.s.heartbeat_interval,
            ),
            None => return Ok(()),
        };
        if !joined {
            return self.join().await;
        }
        if !due {
            return Ok(());
        }
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        m.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(m.group.clone())))
            .with_generation_id(m.generation)
            .with_member_id(StrBytes::from_string(m.member_id.clone()));
        let coordinator = m.coordinator;
        let resp = match self.cluster.broker(coordinator).await {
            Ok(conn) => conn.send(&req).await.map(|(r, _)| r.error_code),
            Err(e) => Err(e),
        };
        match resp {
            Ok(0) => Ok(()),
            Ok(27) => {
                // REBALANCE_IN_PROGRESS: commit what we consumed, then rejoin.
                self.commit().await;
                self.mark_rejoin(false);
                Ok(())
            }
            Ok(25) | Ok(22) => {
                // UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION: our membership is gone.
                self.mark_rejoin(true);
                Ok(())
            }
            Ok(_) | Err(_) => {
                // Coordinator moved or unreachable: find it again.
                self.cluster.drop_broker(coordinator);
                self.mark_rejoin(false);
                if let Some(m) = self.member.as_mut() {
                    m.coordinator = -1;
                }
                Ok(())
            }
        }
    }

    fn mark_rejoin(&mut self, reset_member: bool) {
        if let Some(m) = self.member.as_mut() {
            m.joined = false;
            if reset_member {
                m.member_id.clear();
                m.generation = -1;
            }
        }
        self.positions.clear();
    }

    async fn join(&mut self) -> anyhow::Result<()> {
        let deadline =
            Instant::now() + Duration::from_millis(self.s.rebalance_timeout_ms as u64 + 30_000);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Timed out joining the consumer group");
            }
            let Some(m) = self.member.as_ref() else {
                return Ok(());
            };
            let group = m.group.clone();
            let mut coordinator = m.coordinator;
            if coordinator < 0 {
                coordinator = self.cluster.find_coordinator(&group).await?;
                if let Some(m) = self.member.as_mut() {
                    m.coordinator = coordinator;
                }
            }
            let member_id = self
                .member
                .as_ref()
                .map(|m| m.member_id.clone())
                .unwrap_or_default();
            let meta = encode_subscription(std::slice::from_ref(&self.s.topic))?;
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_session_timeout_ms(self.s.session_timeout_ms)
                .with_rebalance_timeout_ms(self.s.rebalance_timeout_ms)
                .with_member_id(StrBytes::from_string(member_id))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(meta)]);
            let join_timeout = Duration::from_millis(self.s.rebalance_timeout_ms as u64 + 5000);
            let conn = match self.cluster.broker(coordinator).await {
                Ok(c) => c,
                Err(_) => {
                    self.forget_coordinator(coordinator);
                    continue;
                }
            };
            let v = conn.version_for(ApiKey::JoinGroup)?;
            let resp = match conn.send_at_timeout(&req, v, join_timeout).await {
                Ok(r) => r,
                Err(_) => {
                    self.forget_coordinator(coordinator);
                    continue;
                }
            };
            match resp.error_code {
                0 => {}
                79 => {
                    // MEMBER_ID_REQUIRED (KIP-394): rejoin with the id the coordinator gave.
                    if let Some(m) = self.member.as_mut() {
                        m.member_id = resp.member_id.to_string();
                    }
                    continue;
                }
                14..=16 => {
                    self.forget_coordinator(coordinator);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                25 | 22 => {
                    if let Some(m) = self.member.as_mut() {
                        m.member_id.clear();
                    }
                    continue;
                }
                27 => continue,
                code => bail!("{}", error_text(code, None)),
            }
            let my_id = resp.member_id.to_string();
            let generation = resp.generation_id;
            let mut assignments = Vec::new();
            if resp.leader == resp.member_id {
                // We lead: run the range assignor over every member's subscription.
                let mut subs: Vec<(String, Vec<String>)> = Vec::new();
                for mem in &resp.members {
                    let topics = decode_subscription(mem.metadata.clone()).unwrap_or_default();
                    subs.push((mem.member_id.to_string(), topics));
                }
                let mut topics: Vec<String> = subs.iter().flat_map(|(_, t)| t.clone()).collect();
                topics.sort();
                topics.dedup();
                let mut per_member: BTreeMap<String, Vec<(String, Vec<i32>)>> = BTreeMap::new();
                for t in &topics {
                    let count = match self
                        .cluster
                        .partition_leaders(t, false, Duration::from_secs(5))
                        .await
                    {
                        Ok(l) => l.len() as i32,
                        Err(_) => 0,
                    };
                    let members: Vec<String> = subs
                        .iter()
                        .filter(|(_, ts)| ts.contains(t))
                        .map(|(m, _)| m.clone())
                        .collect();
                    for (m, ps) in range_assign(&members, count) {
                        per_member.entry(m).or_default().push((t.clone(), ps));
                    }
                }
                for (mid, _) in &subs {
                    let list = per_member.remove(mid).unwrap_or_default();
                    assignments.push(
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(mid.clone()))
                            .with_assignment(encode_assignment(&list)?),
                    );
                }
            }
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(my_id.clone()))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str("range")))
                .with_assignments(assignments);
            let conn = match self.cluster.broker(coordinator).await {
                Ok(c) => c,
                Err(_) => {
                    self.forget_coordinator(coordinator);
                    continue;
                }
            };
            let v = conn.version_for(ApiKey::SyncGroup)?;
            let sresp = match conn.send_at_timeout(&sync, v, join_timeout).await {
                Ok(r) => r,
                Err(_) => {
                    self.forget_coordinator(coordinator);
                    continue;
                }
            };
            if let Some(m) = self.member.as_mut() {
                m.member_id = my_id.clone();
                m.generation = generation;
            }
            match sresp.error_code {
                0 => {}
                27 => continue,
                25 | 22 => {
                    if let Some(m) = self.member.as_mut() {
                        m.member_id.clear();
                    }
                    continue;
                }
                14..=16 => {
                    self.forget_coordinator(coordinator);
                    continue;
                }
                code => bail!("{}", error_text(code, None)),
            }
            let mine: Vec<i32> = decode_assignment(sresp.assignment.clone())?
                .into_iter()
                .filter(|(t, _)| *t == self.s.topic)
                .flat_map(|(_, ps)| ps)
                .collect();
            if let Some(m) = self.member.as_mut() {
                m.joined = true;
                m.last_heartbeat = Instant::now();
            }
            self.refresh_leaders().await?;
            self.positions = self.start_positions(&group, coordinator, &mine).await?;
            self.committed.retain(|p, _| mine.contains(p));
            return Ok(());
        }
    }

    fn forget_coordinator(&mut self, id: i32) {
        self.cluster.drop_broker(id);
        if let Some(m) = self.member.as_mut() {
            m.coordinator = -1;
        }
    }

    /// Committed offsets of `parts`, with `auto.offset.reset` for the ones without.
    async fn start_positions(
        &mut self,
        group: &str,
        coordinator: i32,
        parts: &[i32],
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let mut out = BTreeMap::new();
        if parts.is_empty() {
            return Ok(out);
        }
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_require_stable(true)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(self.s.topic.clone())))
                .with_partition_indexes(parts.to_vec())]));
        let conn = self.cluster.broker(coordinator).await?;
        let (resp, v) = conn.send(&req).await?;
        if v >= 2 && resp.error_code != 0 {
            bail!("{}", error_text(resp.error_code, None));
        }
        for t in &resp.topics {
            for p in &t.partitions {
                if p.committed_offset >= 0 {
                    out.insert(p.partition_index, p.committed_offset);
                    self.committed.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        let missing: Vec<i32> = parts
            .iter()
            .filter(|p| !out.contains_key(p))
            .copied()
            .collect();
        if !missing.is_empty() {
            let reset = self.resolve(&missing, self.s.reset).await?;
            out.extend(reset);
        }
        Ok(out)
    }

    /// Commits the current positions (errors are printed, not fatal, as Kafka logs them).
    async fn commit(&mut self) {
        self.last_commit = Instant::now();
        if !self.s.auto_commit {
            return;
        }
        let (group, generation, member_id, coordinator) = match &self.member {
            Some(m) if m.joined => (
                m.group.clone(),
                m.generation,
                m.member_id.clone(),
                m.coordinator,
            ),
            _ => return,
        };
        let changed: Vec<(i32, i64)> = self
            .positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect();
        if changed.is_empty() {
            return;
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id))
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(self.s.topic.clone())))
                .with_partitions(
                    changed
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                )]);
        let result = match self.cluster.broker(coordinator).await {
            Ok(conn) => conn.send(&req).await.map(|(r, _)| r),
            Err(e) => Err(e),
        };
        match result {
            Ok(resp) => {
                for t in &resp.topics {
                    for p in &t.partitions {
                        if p.error_code == 0 {
                            if let Some((_, o)) =
                                changed.iter().find(|(q, _)| *q == p.partition_index)
                            {
                                self.committed.insert(p.partition_index, *o);
                            }
                        } else {
                            eprintln!(
                                "WARN Offset commit failed on partition {}-{}: {}",
                                self.s.topic,
                                p.partition_index,
                                error_text(p.error_code, None)
                            );
                        }
                    }
                }
            }
            Err(e) => eprintln!("WARN Offset commit failed: {e:#}"),
        }
    }

    /// Final commit and LeaveGroup.
    async fn close(&mut self) {
        self.commit().await;
        let Some(m) = &self.member else { return };
        if m.member_id.is_empty() || m.coordinator < 0 {
            return;
        }
        let (group, member_id, coordinator) = (m.group.clone(), m.member_id.clone(), m.coordinator);
        if let Ok(conn) = self.cluster.broker(coordinator).await {
            let Ok(v) = conn.version_for(ApiKey::LeaveGroup) else {
                return;
            };
            let mut req =
                LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(group)));
            if v >= 3 {
                req.members = vec![MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_reason(Some(StrBytes::from_static_str(
                        "the consumer is being closed",
                    )))];
            } else {
                req.member_id = StrBytes::from_string(member_id);
            }
            let _ = conn.send_at(&req, v).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_matches_kafka() {
        let a = range_assign(&["c2".into(), "c1".into()], 5);
        assert_eq!(a.get("c1"), Some(&vec![0, 1, 2]));
        assert_eq!(a.get("c2"), Some(&vec![3, 4]));
        let b = range_assign(&["a".into(), "b".into(), "c".into()], 2);
        assert_eq!(b.get("c"), Some(&vec![]));
        assert!(range_assign(&[], 3).is_empty());
    }

    #[test]
    fn protocol_round_trips() {
        let s = encode_subscription(&["t".into()]).ok();
        assert_eq!(
            s.and_then(|s| decode_subscription(s).ok()),
            Some(vec!["t".to_string()])
        );
        let a = encode_assignment(&[("t".to_string(), vec![1, 3])]).ok();
        assert_eq!(
            a.and_then(|a| decode_assignment(a).ok()),
            Some(vec![("t".to_string(), vec![1, 3])])
        );
        assert_eq!(decode_assignment(Bytes::new()).ok(), Some(vec![]));
    }

    fn rec<'a>(key: Option<&'a [u8]>, headers: Vec<(&'a [u8], Option<&'a [u8]>)>) -> Consumed<'a> {
        Consumed {
            partition: 2,
            offset: 7,
            timestamp_type: TimestampType::CreateTime,
            timestamp: 1000,
            key,
            value: Some(b"v"),
            headers,
        }
    }

    #[test]
    fn default_formatter_layout() {
        let mut p = Props::new();
        let f = Formatter::from_props(&p);
        let mut out = Vec::new();
        f.write(&rec(Some(b"k"), vec![]), &mut out);
        assert_eq!(out, b"v\n");
        for k in [
            "print.key",
            "print.timestamp",
            "print.partition",
            "print.offset",
            "print.headers",
        ] {
            p.insert(k.into(), "true".into());
        }
        p.insert("key.separator".into(), "|".into());
        let f = Formatter::from_props(&p);
        let mut out = Vec::new();
        f.write(
            &rec(None, vec![(b"h1", Some(b"x")), (b"h2", None)]),
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "CreateTime:1000|Partition:2|Offset:7|h1:x,h2:null|null|v\n"
        );
        let mut out = Vec::new();
        f.write(&rec(Some(b"k"), vec![]), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "CreateTime:1000|Partition:2|Offset:7|NO_HEADERS|k|v\n"
        );
        p.insert("print.value".into(), "false".into());
        p.remove("print.headers");
        p.remove("print.timestamp");
        p.remove("print.partition");
        p.remove("print.offset");
        let f = Formatter::from_props(&p);
        let mut out = Vec::new();
        f.write(&rec(Some(b"k"), vec![]), &mut out);
        assert_eq!(out, b"k\n");
    }
}
