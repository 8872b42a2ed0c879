//! `kafka-metadata-quorum describe --status | --replication [--human-readable]`, as Kafka 4.1's
//! `MetadataQuorumCommand` prints it.
//!
//! With `--bootstrap-server` the tool asks a broker: DescribeCluster (endpoint type broker) for the
//! cluster id, then DescribeQuorum for `__cluster_metadata-0`, which the broker forwards to the
//! active controller. With `--bootstrap-controller` it asks a controller: DescribeCluster with
//! endpoint type controller (v1+) names the controllers and the active one, and DescribeQuorum
//! goes to that one; a NOT_LEADER_OR_FOLLOWER answer (leadership moved) is retried after a short
//! backoff, as Kafka's admin client re-discovers the active controller.
//!
//! The output is computed by pure functions ([`format_status`], [`format_replication`]) from the
//! DescribeQuorum response.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_quorum_request;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::argparse;
use super::client::{error_text, uuid_text, ClientConfig, Cluster, Conn};
use super::props::{self, Props};

const PROG: &str = "kafka-metadata-quorum";
const USAGE: &str = "usage: kafka-metadata-quorum [-h]
                             (--bootstrap-server BOOTSTRAP_SERVER | --bootstrap-controller BOOTSTRAP_CONTROLLER)
                             [--command-config COMMAND_CONFIG]
                             {describe} ...";

/// The metadata log's topic; DescribeQuorum always asks for its partition 0.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// NOT_LEADER_OR_FOLLOWER: a controller that is not the quorum leader answered.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// NOT_CONTROLLER: the same, from a path that speaks of controllers.
const NOT_CONTROLLER: i16 = 41;
/// How many times DescribeCluster/DescribeQuorum is tried while leadership moves.
const ATTEMPTS: usize = 10;
/// The pause between two tries.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, Parser)]
#[command(
    name = "kafka-metadata-quorum",
    about = "This tool describes kraft metadata quorum status.",
    disable_version_flag = true
)]
pub struct Args {
    /// A comma-separated list of host:port pairs to use for establishing the connection to the
    /// Kafka cluster.
    #[arg(long = "bootstrap-server", value_name = "BOOTSTRAP_SERVER")]
    bootstrap_server: Option<String>,
    /// A comma-separated list of host:port pairs to use for establishing the connection to the
    /// Kafka controllers.
    #[arg(long = "bootstrap-controller", value_name = "BOOTSTRAP_CONTROLLER")]
    bootstrap_controller: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long = "command-config", value_name = "COMMAND_CONFIG")]
    command_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe the metadata quorum info
    Describe {
        /// A short summary of the quorum status and the other provides detailed information about
        /// the status of replication.
        #[arg(long)]
        status: bool,
        /// Detailed information about the status of replication
        #[arg(long)]
        replication: bool,
        /// Human-readable output
        #[arg(long = "human-readable")]
        human_readable: bool,
    },
}

/// What `describe` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Describe {
    Status,
    Replication { human_readable: bool },
}

/// Kafka's checks of `describe`'s flags, with its messages.
pub fn describe_action(
    status: bool,
    replication: bool,
    human_readable: bool,
) -> Result<Describe, &'static str> {
    match (status, replication) {
        (true, true) => Err(
            "Only one of --status or --replication should be specified with describe sub-command",
        ),
        (false, true) => Ok(Describe::Replication { human_readable }),
        (true, false) if human_readable => {
            Err("The option --human-readable is only supported along with --replication")
        }
        (true, false) => Ok(Describe::Status),
        (false, false) => {
            Err("One of --status or --replication must be specified with describe sub-command")
        }
    }
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let (a, matches) = match argparse::parse_with_matches::<Args>(args) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    // argparse4j's order: a second flag of the group fails as it is read, a missing subcommand
    // when the arguments run out, a missing group member when the subcommand is reached.
    if let Some(msg) = argparse::mutex_violation(
        &matches,
        &[
            ("bootstrap_server", "--bootstrap-server"),
            ("bootstrap_controller", "--bootstrap-controller"),
        ],
    ) {
        return Ok(argparse::usage_error(USAGE, PROG, &msg));
    }
    let Some(Command::Describe {
        status,
        replication,
        human_readable,
    }) = a.command
    else {
        return Ok(argparse::usage_error(USAGE, PROG, "too few arguments"));
    };
    let (bootstrap, to_controllers) = match (&a.bootstrap_server, &a.bootstrap_controller) {
        (Some(b), None) => (b.clone(), false),
        (None, Some(c)) => (c.clone(), true),
        _ => {
            return Ok(argparse::usage_error(
                USAGE,
                PROG,
                "one of the arguments --bootstrap-server --bootstrap-controller is required",
            ))
        }
    };
    let p = match &a.command_config {
        // Kafka 4.0/4.1's text, verbatim.
        Some(path) if !path.exists() => {
            eprintln!("Properties file {} does not exists!", path.display());
            return Ok(1);
        }
        Some(path) => props::load_file(path)?,
        None => Props::new(),
    };
    let cfg = props::client_config(
        Some(&bootstrap),
        &p,
        "adminclient-1",
        Duration::from_secs(30),
    )?;
    let action = match describe_action(status, replication, human_readable) {
        Ok(action) => action,
        Err(msg) => {
            eprintln!("{msg}");
            return Ok(1);
        }
    };
    let rt = super::runtime()?;
    rt.block_on(run(cfg, to_controllers, action))
}

async fn run(cfg: ClientConfig, to_controllers: bool, action: Describe) -> anyhow::Result<u8> {
    let want_cluster_id = action == Describe::Status;
    let (cluster_id, resp) = if to_controllers {
        via_controllers(&cfg).await?
    } else {
        via_broker(&cfg, want_cluster_id).await?
    };
    let text = match action {
        Describe::Status => format_status(&cluster_id, &resp)?,
        Describe::Replication { human_readable } => {
            format_replication(&resp, human_readable.then(now_ms))?
        }
    };
    print!("{text}");
    Ok(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `--bootstrap-server`: the cluster id (when wanted) and the quorum, both from a broker.
async fn via_broker(
    cfg: &ClientConfig,
    want_cluster_id: bool,
) -> anyhow::Result<(String, DescribeQuorumResponse)> {
    let mut cluster = Cluster::connect(cfg.clone()).await?;
    let conn = cluster.any();
    let cluster_id = if want_cluster_id {
        broker_cluster_id(conn).await?
    } else {
        String::new()
    };
    let deadline = Instant::now() + cfg.request_timeout;
    let mut attempt = 1;
    loop {
        let resp = describe_quorum(conn).await?;
        match quorum_partition(&resp) {
            Ok(_) => return Ok((cluster_id, resp)),
            Err(e) if e.retriable() && attempt < ATTEMPTS && Instant::now() < deadline => {
                attempt += 1;
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            Err(e) => bail!("{e}"),
        }
    }
}

/// The cluster id a broker reports: DescribeCluster, or Metadata where the broker has no
/// DescribeCluster (Kafka's admin client falls back the same way).
async fn broker_cluster_id(conn: &mut Conn) -> anyhow::Result<String> {
    if let Ok(v) = conn.version_for(ApiKey::DescribeCluster) {
        let resp = conn.send_at(&DescribeClusterRequest::default(), v).await?;
        if resp.error_code != 0 {
            bail!(
                "{}",
                exception_text(resp.error_code, resp.error_message.as_ref())
            );
        }
        return Ok(resp.cluster_id.to_string());
    }
    let (resp, _) = conn
        .send(&MetadataRequest::default().with_topics(Some(Vec::new())))
        .await?;
    Ok(resp
        .cluster_id
        .map(|c| c.to_string())
        .unwrap_or_else(|| "null".to_string()))
}

/// `--bootstrap-controller`: DescribeCluster (endpoint type controller) to a bootstrap controller
/// names the active controller; DescribeQuorum goes there. Retried while no controller is active
/// or the one named is no longer the leader.
async fn via_controllers(cfg: &ClientConfig) -> anyhow::Result<(String, DescribeQuorumResponse)> {
    let mut bootstrap = Cluster::connect(cfg.clone()).await?;
    let deadline = Instant::now() + cfg.request_timeout;
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        let conn = bootstrap.any();
        let v = conn.version_for(ApiKey::DescribeCluster)?;
        if v < 1 {
            bail!(
                "{}",
                exception_text(
                    35,
                    Some(&StrBytes::from_string(format!(
                        "The node {} does not support DescribeCluster version 1, which describing \
                         controllers needs",
                        conn.addr
                    )))
                )
            );
        }
        let dc = conn
            .send_at(&DescribeClusterRequest::default().with_endpoint_type(2), v)
            .await?;
        if dc.error_code != 0 {
            let e = KafkaError::new(dc.error_code, dc.error_message.as_ref());
            if e.retriable() {
                last_error = e.to_string();
                continue;
            }
            bail!("{e}");
        }
        let active = dc.controller_id.0;
        let Some(node) = dc.brokers.iter().find(|b| b.broker_id.0 == active) else {
            last_error = "org.apache.kafka.common.errors.NotControllerException: No controller \
                          appears to be active."
                .to_string();
            continue;
        };
        let addr = host_port(&node.host, node.port);
        let answer = if addr == conn.addr {
            describe_quorum(conn).await
        } else {
            let mut c = cfg.clone();
            c.request_timeout = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            match Conn::connect(&addr, &c).await {
                Ok(mut leader) => describe_quorum(&mut leader).await,
                Err(e) => Err(e),
            }
        };
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                last_error = format!("{e:#}");
                continue;
            }
        };
        match quorum_partition(&resp) {
            Ok(_) => return Ok((dc.cluster_id.to_string(), resp)),
            Err(e) if e.retriable() => last_error = e.to_string(),
            Err(e) => bail!("{e}"),
        }
    }
    bail!("{last_error}")
}

fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// DescribeQuorum for `__cluster_metadata-0` at the newest version both sides know.
async fn describe_quorum(conn: &mut Conn) -> anyhow::Result<DescribeQuorumResponse> {
    let req = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0)
            ]),
    ]);
    let (resp, _) = conn.send(&req).await?;
    Ok(resp)
}

/// An error answer, printed as Kafka's tool prints the admin client's exception
/// (`org.apache.kafka.common.errors.<Class>: <message>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: String,
}

impl KafkaError {
    fn new(code: i16, message: Option<&StrBytes>) -> Self {
        KafkaError {
            code,
            message: error_text(code, message),
        }
    }

    /// Leadership moved: worth asking again.
    pub fn retriable(&self) -> bool {
        self.code == NOT_LEADER_OR_FOLLOWER || self.code == NOT_CONTROLLER
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match exception_class(self.code) {
            Some(class) => write!(
                f,
                "org.apache.kafka.common.errors.{class}: {}",
                self.message
            ),
            None => f.write_str(&self.message),
        }
    }
}

/// [`KafkaError`]'s text for `code` and the broker's message.
pub fn exception_text(code: i16, message: Option<&StrBytes>) -> String {
    KafkaError::new(code, message).to_string()
}

/// The Java exception class of the errors this tool can meet.
fn exception_class(code: i16) -> Option<&'static str> {
    Some(match code {
        -1 => "UnknownServerException",
        3 => "UnknownTopicOrPartitionException",
        6 => "NotLeaderOrFollowerException",
        7 => "TimeoutException",
        8 => "BrokerNotAvailableException",
        31 => "ClusterAuthorizationException",
        35 => "UnsupportedVersionException",
        41 => "NotControllerException",
        42 => "InvalidRequestException",
        114 => "MismatchedEndpointTypeException",
        115 => "UnsupportedEndpointTypeException",
        _ => return None,
    })
}

/// The one partition a DescribeQuorum answer must hold (`__cluster_metadata-0`), checked as
/// Kafka's admin client checks it, with its messages.
pub fn quorum_partition(resp: &DescribeQuorumResponse) -> Result<&PartitionData, KafkaError> {
    if resp.error_code != 0 {
        return Err(KafkaError::new(
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let unknown = |message: String| KafkaError { code: -1, message };
    let [topic] = resp.topics.as_slice() else {
        return Err(unknown(format!(
            "DescribeMetadataQuorum received {} topics when 1 was expected",
            resp.topics.len()
        )));
    };
    let name = topic.topic_name.0.as_str();
    if name != METADATA_TOPIC {
        return Err(unknown(format!(
            "DescribeMetadataQuorum received a topic with name {name} when {METADATA_TOPIC} was \
             expected"
        )));
    }
    let [partition] = topic.partitions.as_slice() else {
        return Err(unknown(format!(
            "DescribeMetadataQuorum received a topic {name} with {} partitions when 1 was expected",
            topic.partitions.len()
        )));
    };
    if partition.partition_index != 0 {
        return Err(unknown(format!(
            "DescribeMetadataQuorum received a single partition with index {} when 0 was expected",
            partition.partition_index
        )));
    }
    if partition.error_code != 0 {
        return Err(KafkaError::new(
            partition.error_code,
            partition.error_message.as_ref(),
        ));
    }
    Ok(partition)
}

/// Kafka's `RaftVoterEndpoint.toString()`: `NAME://host:port`, an IPv6 host in brackets.
pub fn endpoint_text(name: &str, host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("{name}://[{host}]:{port}")
    } else {
        format!("{name}://{host}:{port}")
    }
}

/// The endpoints of node `id` from the answer's `Nodes` (v2+; only voters are listed there).
fn endpoints_of(resp: &DescribeQuorumResponse, id: i32) -> Vec<String> {
    resp.nodes
        .iter()
        .find(|n| n.node_id.0 == id)
        .map(|n| {
            n.listeners
                .iter()
                .map(|l| endpoint_text(&l.name, &l.host, l.port))
                .collect()
        })
        .unwrap_or_default()
}

/// One replica as Kafka 4.1 prints it in `--status`: `{"id": 1, "directoryId": "...",
/// "endpoints": ["CONTROLLER://host:9093"]}`, `directoryId` left out when it is the zero id and
/// `endpoints` when there are none.
pub fn replica_text(id: i32, directory_id: &uuid::Uuid, endpoints: &[String]) -> String {
    let mut s = format!("{{\"id\": {id}");
    if !directory_id.is_nil() {
        s.push_str(&format!(
            ", \"directoryId\": \"{}\"",
            uuid_text(directory_id)
        ));
    }
    if !endpoints.is_empty() {
        let quoted: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        s.push_str(&format!(", \"endpoints\": [{}]", quoted.join(", ")));
    }
    s.push('}');
    s
}

fn replicas_text(resp: &DescribeQuorumResponse, replicas: &[ReplicaState]) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| {
            replica_text(
                r.replica_id.0,
                &r.replica_directory_id,
                &endpoints_of(resp, r.replica_id.0),
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// `describe --status`: Kafka's eight lines (labels padded to 24 characters).
///
/// MaxFollowerLag is the leader's log end offset minus the smallest among the voters (the leader
/// included; the first smallest in answer order). MaxFollowerLagTimeMs is 0 when that voter is the
/// leader, else the difference of their last caught-up times, or -1 when either is unknown.
pub fn format_status(cluster_id: &str, resp: &DescribeQuorumResponse) -> anyhow::Result<String> {
    let p = quorum_partition(resp).map_err(|e| anyhow!("{e}"))?;
    let voters = &p.current_voters;
    let leader_at = voters
        .iter()
        .position(|v| v.replica_id == p.leader_id)
        // Java's Optional.get() on a missing leader.
        .ok_or_else(|| anyhow!("No value present"))?;
    // Java's `Stream.min`: the first of the smallest.
    let mut min_at = 0;
    for (i, v) in voters.iter().enumerate() {
        if v.log_end_offset < voters[min_at].log_end_offset {
            min_at = i;
        }
    }
    let leader = &voters[leader_at];
    let laggard = &voters[min_at];
    let max_lag = leader.log_end_offset.wrapping_sub(laggard.log_end_offset);
    let max_lag_time = if leader_at == min_at {
        0
    } else if leader.last_caught_up_timestamp != -1 && laggard.last_caught_up_timestamp != -1 {
        leader
            .last_caught_up_timestamp
            .wrapping_sub(laggard.last_caught_up_timestamp)
    } else {
        -1
    };
    let lines = [
        ("ClusterId:", cluster_id.to_string()),
        ("LeaderId:", p.leader_id.0.to_string()),
        ("LeaderEpoch:", p.leader_epoch.to_string()),
        ("HighWatermark:", p.high_watermark.to_string()),
        ("MaxFollowerLag:", max_lag.to_string()),
        ("MaxFollowerLagTimeMs:", max_lag_time.to_string()),
        ("CurrentVoters:", replicas_text(resp, &p.current_voters)),
        ("CurrentObservers:", replicas_text(resp, &p.observers)),
    ];
    let mut out = String::new();
    for (label, value) in lines {
        out.push_str(&format!("{label:<24}{value}\n"));
    }
    Ok(out)
}

/// Kafka's `relativeTimeMs`: how long ago `timestamp_ms` was at `now_ms`; refused when the
/// timestamp is not after the epoch or lies in the future.
pub fn relative_time_ms(timestamp_ms: i64, now_ms: i64, desc: &str) -> anyhow::Result<i64> {
    if timestamp_ms > 0 && timestamp_ms <= now_ms {
        Ok(now_ms - timestamp_ms)
    } else {
        bail!(
            "Error while computing relative time, possible drift in system clock.\nCurrent \
             timestamp is {now_ms}, {desc} timestamp is {timestamp_ms}"
        )
    }
}

fn timestamp_cell(ts: i64, now_ms: Option<i64>, desc: &str) -> anyhow::Result<String> {
    Ok(match now_ms {
        _ if ts == -1 => "-1".to_string(),
        Some(now) => format!("{} ms ago", relative_time_ms(ts, now, desc)?),
        None => ts.to_string(),
    })
}

/// `describe --replication`: the leader, the other voters, then the observers, in Kafka's table.
/// `human_readable_now` is the current time in ms for `--human-readable` (`N ms ago`), `None` to
/// print the timestamps as they are; absent timestamps (-1) print `-1` either way.
pub fn format_replication(
    resp: &DescribeQuorumResponse,
    human_readable_now: Option<i64>,
) -> anyhow::Result<String> {
    let p = quorum_partition(resp).map_err(|e| anyhow!("{e}"))?;
    let leader = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .ok_or_else(|| anyhow!("No value present"))?;
    let followers = p
        .current_voters
        .iter()
        .filter(|v| v.replica_id != p.leader_id);
    let groups = std::iter::once((leader, "Leader"))
        .chain(followers.map(|v| (v, "Follower")))
        .chain(p.observers.iter().map(|o| (o, "Observer")));
    let mut rows = Vec::new();
    for (r, status) in groups {
        rows.push(vec![
            r.replica_id.0.to_string(),
            uuid_text(&r.replica_directory_id),
            r.log_end_offset.to_string(),
            leader
                .log_end_offset
                .wrapping_sub(r.log_end_offset)
                .to_string(),
            timestamp_cell(r.last_fetch_timestamp, human_readable_now, "last fetch")?,
            timestamp_cell(
                r.last_caught_up_timestamp,
                human_readable_now,
                "last caught up",
            )?,
            status.to_string(),
        ]);
    }
    Ok(pretty_table(
        &[
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
        ],
        &rows,
    ))
}

/// Kafka's `ToolsUtils.prettyPrintTable`: every cell left-aligned and padded to its column's
/// width (the widest of header and cells), then a tab; one line per row, header first.
pub fn pretty_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter().zip(row) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
            out.push('\t');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{Listener, Node, TopicData};
    use kafka_protocol::messages::BrokerId;

    fn uuid(text: &str) -> uuid::Uuid {
        uuid::Uuid::from_bytes(rafka_storage::uuid_from_base64(text).unwrap_or([0; 16]))
    }

    fn replica(id: i32, dir: Option<&str>, leo: i64, fetch: i64, caught_up: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_replica_directory_id(dir.map(uuid).unwrap_or_default())
            .with_log_end_offset(leo)
            .with_last_fetch_timestamp(fetch)
            .with_last_caught_up_timestamp(caught_up)
    }

    fn node(id: i32, host: &str, port: u16) -> Node {
        Node::default()
            .with_node_id(BrokerId(id))
            .with_listeners(vec![Listener::default()
                .with_name(StrBytes::from_static_str("CONTROLLER"))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)])
    }

    fn response(
        leader: i32,
        voters: Vec<ReplicaState>,
        observers: Vec<ReplicaState>,
        nodes: Vec<Node>,
    ) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default()
            .with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(7)
                    .with_high_watermark(966)
                    .with_current_voters(voters)
                    .with_observers(observers)])])
            .with_nodes(nodes)
    }

    #[test]
    fn status_of_three_voters_and_observers() {
        let resp = response(
            2,
            vec![
                replica(1, None, 960, 1_000, 990),
                replica(2, None, 966, 1_010, 1_010),
                replica(3, None, 958, 1_000, 900),
            ],
            vec![
                replica(4, None, 966, 1_005, 1_005),
                replica(5, Some("wQWaQMJYpcifUPMBGeRHqg"), 966, 1_005, 1_005),
            ],
            vec![
                node(1, "kafka-1", 9093),
                node(2, "kafka-2", 9093),
                node(3, "kafka-3", 9093),
            ],
        );
        let out = format_status("zuV6tFqAQhSGfFe97O-9cw", &resp).map_err(|e| e.to_string());
        assert_eq!(
            out.as_deref(),
            Ok("ClusterId:              zuV6tFqAQhSGfFe97O-9cw\n\
                LeaderId:               2\n\
                LeaderEpoch:            7\n\
                HighWatermark:          966\n\
                MaxFollowerLag:         8\n\
                MaxFollowerLagTimeMs:   110\n\
                CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://kafka-1:9093\"]}, \
                {\"id\": 2, \"endpoints\": [\"CONTROLLER://kafka-2:9093\"]}, \
                {\"id\": 3, \"endpoints\": [\"CONTROLLER://kafka-3:9093\"]}]\n\
                CurrentObservers:       [{\"id\": 4}, {\"id\": 5, \"directoryId\": \"wQWaQMJYpcifUPMBGeRHqg\"}]\n")
        );
    }

    #[test]
    fn status_of_a_single_voter_matches_kafkas_example() {
        let resp = response(
            1,
            vec![replica(1, None, 19, 5, 5)],
            vec![],
            vec![node(1, "localhost", 9093)],
        );
        let mut resp = resp;
        resp.topics[0].partitions[0].leader_epoch = 1;
        resp.topics[0].partitions[0].high_watermark = 19;
        let out = format_status("zuV6tFqAQhSGfFe97O-9cw", &resp).map_err(|e| e.to_string());
        assert_eq!(
            out.as_deref(),
            Ok("ClusterId:              zuV6tFqAQhSGfFe97O-9cw\n\
                LeaderId:               1\n\
                LeaderEpoch:            1\n\
                HighWatermark:          19\n\
                MaxFollowerLag:         0\n\
                MaxFollowerLagTimeMs:   0\n\
                CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://localhost:9093\"]}]\n\
                CurrentObservers:       []\n")
        );
    }

    #[test]
    fn lag_time_rules() {
        // A follower that never caught up: -1.
        let resp = response(
            1,
            vec![replica(1, None, 10, 5, 5), replica(2, None, 3, 4, -1)],
            vec![],
            vec![],
        );
        let out = format_status("c", &resp).unwrap_or_default();
        assert!(out.contains("MaxFollowerLag:         7\n"), "{out}");
        assert!(out.contains("MaxFollowerLagTimeMs:   -1\n"), "{out}");
        // Ties: the first smallest in answer order wins, so a caught-up follower listed before
        // the leader is the "laggard" (as in Kafka) and its caught-up time difference is shown.
        let resp = response(
            2,
            vec![replica(1, None, 10, 95, 95), replica(2, None, 10, 100, 100)],
            vec![],
            vec![],
        );
        let out = format_status("c", &resp).unwrap_or_default();
        assert!(out.contains("MaxFollowerLag:         0\n"), "{out}");
        assert!(out.contains("MaxFollowerLagTimeMs:   5\n"), "{out}");
        // Without Nodes (v0/v1 answers) voters print without endpoints.
        assert!(
            out.contains("CurrentVoters:          [{\"id\": 1}, {\"id\": 2}]\n"),
            "{out}"
        );
        // A leader that is not among the voters: Java's Optional.get().
        let resp = response(9, vec![replica(1, None, 10, 5, 5)], vec![], vec![]);
        assert_eq!(
            format_status("c", &resp).map_err(|e| e.to_string()).err(),
            Some("No value present".to_string())
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        assert_eq!(
            endpoint_text("CONTROLLER", "::1", 9093),
            "CONTROLLER://[::1]:9093"
        );
        assert_eq!(
            replica_text(
                3,
                &uuid::Uuid::nil(),
                &["A://h:1".to_string(), "B://h:2".to_string()]
            ),
            "{\"id\": 3, \"endpoints\": [\"A://h:1\", \"B://h:2\"]}"
        );
    }

    #[test]
    fn replication_table_matches_kafkas_example() {
        let resp = response(
            1,
            vec![replica(
                1,
                Some("dDo1k_pRSD-VmReEpu383g"),
                966,
                1732367153528,
                1732367153528,
            )],
            vec![replica(
                2,
                Some("wQWaQMJYpcifUPMBGeRHqg"),
                966,
                1732367153304,
                1732367153304,
            )],
            vec![],
        );
        let out = format_replication(&resp, None).map_err(|e| e.to_string());
        assert_eq!(
            out.as_deref(),
            Ok("NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t\n\
                1     \tdDo1k_pRSD-VmReEpu383g\t966         \t0  \t1732367153528     \t1732367153528        \tLeader  \t\n\
                2     \twQWaQMJYpcifUPMBGeRHqg\t966         \t0  \t1732367153304     \t1732367153304        \tObserver\t\n")
        );
    }

    #[test]
    fn replication_orders_leader_followers_observers() {
        let resp = response(
            2,
            vec![
                replica(1, None, 90, 1_000, 900),
                replica(2, None, 100, 1_000, 1_000),
                replica(3, None, -1, -1, -1),
            ],
            vec![replica(4, None, 100, 990, 990)],
            vec![],
        );
        let out = format_replication(&resp, Some(1_500)).map_err(|e| e.to_string());
        assert_eq!(
            out.as_deref(),
            Ok("NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t\n\
                2     \tAAAAAAAAAAAAAAAAAAAAAA\t100         \t0  \t500 ms ago        \t500 ms ago           \tLeader  \t\n\
                1     \tAAAAAAAAAAAAAAAAAAAAAA\t90          \t10 \t500 ms ago        \t600 ms ago           \tFollower\t\n\
                3     \tAAAAAAAAAAAAAAAAAAAAAA\t-1          \t101\t-1                \t-1                   \tFollower\t\n\
                4     \tAAAAAAAAAAAAAAAAAAAAAA\t100         \t0  \t510 ms ago        \t510 ms ago           \tObserver\t\n")
        );
        // A timestamp in the future is Kafka's clock-drift error.
        let e = format_replication(&resp, Some(999)).map_err(|e| e.to_string());
        assert_eq!(
            e.err().as_deref(),
            Some(
                "Error while computing relative time, possible drift in system clock.\n\
                 Current timestamp is 999, last fetch timestamp is 1000"
            )
        );
        assert!(relative_time_ms(0, 10, "last fetch").is_err());
        assert_eq!(relative_time_ms(10, 10, "x").ok(), Some(0));
    }

    #[test]
    fn answers_are_checked_like_kafkas_admin() {
        let ok = response(1, vec![replica(1, None, 1, 1, 1)], vec![], vec![]);
        assert!(quorum_partition(&ok).is_ok());

        let mut not_leader = ok.clone();
        not_leader.topics[0].partitions[0].error_code = 6;
        let e = quorum_partition(&not_leader).err();
        assert!(e.as_ref().is_some_and(KafkaError::retriable), "{e:?}");
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "org.apache.kafka.common.errors.NotLeaderOrFollowerException: For requests \
                 intended only for the leader, this error indicates that the broker is not the \
                 current leader. For requests intended for any replica, this error indicates \
                 that the broker is not a replica of the topic partition."
            )
        );

        let mut denied = ok.clone();
        denied.error_code = 31;
        let e = quorum_partition(&denied).err();
        assert!(e.as_ref().is_some_and(|e| !e.retriable()));
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "org.apache.kafka.common.errors.ClusterAuthorizationException: Cluster \
                 authorization failed."
            )
        );

        let mut empty = ok.clone();
        empty.topics.clear();
        assert_eq!(
            quorum_partition(&empty)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some(
                "org.apache.kafka.common.errors.UnknownServerException: DescribeMetadataQuorum \
                 received 0 topics when 1 was expected"
            )
        );
        let mut wrong_partition = ok;
        wrong_partition.topics[0].partitions[0].partition_index = 1;
        assert!(quorum_partition(&wrong_partition).is_err());
    }

    #[test]
    fn describe_flags() {
        assert_eq!(describe_action(true, false, false), Ok(Describe::Status));
        assert_eq!(
            describe_action(false, true, true),
            Ok(Describe::Replication {
                human_readable: true
            })
        );
        assert_eq!(
            describe_action(true, true, false),
            Err("Only one of --status or --replication should be specified with describe sub-command")
        );
        assert_eq!(
            describe_action(false, false, true),
            Err("One of --status or --replication must be specified with describe sub-command")
        );
        assert_eq!(
            describe_action(true, false, true),
            Err("The option --human-readable is only supported along with --replication")
        );
    }

    #[test]
    fn usage_errors_exit_1() {
        let run = |args: &[&str]| main(args.iter().map(OsString::from).collect()).ok();
        assert_eq!(
            run(&["kafka-metadata-quorum", "describe", "--status"]),
            Some(1)
        );
        assert_eq!(
            run(&[
                "kafka-metadata-quorum",
                "--bootstrap-server",
                "a:1",
                "--bootstrap-controller",
                "b:2",
                "describe",
                "--status"
            ]),
            Some(1)
        );
        assert_eq!(
            run(&["kafka-metadata-quorum", "--bootstrap-server", "a:1"]),
            Some(1)
        );
        assert_eq!(
            run(&[
                "kafka-metadata-quorum",
                "--bootstrap-server",
                "a:1",
                "--command-config",
                "/nonexistent/admin.properties",
                "describe",
                "--status"
            ]),
            Some(1)
        );
        assert_eq!(
            run(&[
                "kafka-metadata-quorum",
                "--bootstrap-server",
                "a:1",
                "describe",
                "--status",
                "--replication"
            ]),
            Some(1)
        );
        assert_eq!(run(&["kafka-metadata-quorum", "--help"]), Some(0));
    }
}
