//! `kafka-consumer-groups`: list, describe (offsets, members, state), delete and reset the
//! offsets of consumer groups, classic and KIP-848 alike, with Kafka 4.x's `ConsumerGroupCommand`
//! flags and column layout.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    GroupId, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::{error_text, Cluster};
use super::consumer::decode_assignment;
use super::props;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-consumer-groups",
    about = "This tool helps to list all consumer groups, describe a consumer group, delete consumer group info, or reset consumer group offsets.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: The server(s) to connect to.
    #[arg(long = "bootstrap-server", value_name = "String: server to connect to")]
    bootstrap_server: Option<String>,
    /// Property file containing configs to be passed to Admin Client and Consumer.
    #[arg(
        long = "command-config",
        value_name = "String: command config property file"
    )]
    command_config: Option<PathBuf>,
    /// List all consumer groups.
    #[arg(long)]
    list: bool,
    /// Describe consumer group and list offset lag (number of messages not yet processed)
    /// related to given group.
    #[arg(long)]
    describe: bool,
    /// Pass in groups to delete topic partition offsets and ownership information over the
    /// entire consumer group.
    #[arg(long)]
    delete: bool,
    /// Reset offsets of consumer group. Supports one consumer group at the time.
    #[arg(long = "reset-offsets")]
    reset_offsets: bool,
    /// The consumer group we wish to act on (repeat for several).
    #[arg(long, value_name = "String: consumer group")]
    group: Vec<String>,
    /// Apply to all consumer groups.
    #[arg(long = "all-groups")]
    all_groups: bool,
    /// The topic whose consumer group information should be deleted or topic whose should be
    /// included in the reset offset process.
    #[arg(long, value_name = "String: topic")]
    topic: Vec<String>,
    /// Consider all topics assigned to a group in the `reset-offsets` process.
    #[arg(long = "all-topics")]
    all_topics: bool,
    /// Describe members of the group.
    #[arg(long)]
    members: bool,
    /// Provide additional information, if any, when describing the group.
    #[arg(long)]
    verbose: bool,
    /// Describe the group's offsets (the default for --describe).
    #[arg(long)]
    offsets: bool,
    /// When specified with '--describe', includes the state of the group. When specified with
    /// '--list', filters by the given states (comma separated, optional).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "String")]
    state: Option<String>,
    /// Reset offsets to earliest offset.
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    /// Reset offsets to latest offset.
    #[arg(long = "to-latest")]
    to_latest: bool,
    /// Reset offsets to a specific offset.
    #[arg(long = "to-offset", value_name = "Long: offset")]
    to_offset: Option<i64>,
    /// Execute operation.
    #[arg(long)]
    execute: bool,
    /// Only show results without executing changes on Consumer Groups.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// The timeout that can be set for some use cases (ms).
    #[arg(long, value_name = "Long: timeout (ms)")]
    timeout: Option<u64>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

const MISSING: &str = "-";

/// One row of `--describe` (offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRow {
    pub group: String,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub log_end: Option<i64>,
    pub consumer_id: Option<String>,
    pub host: Option<String>,
    pub client_id: Option<String>,
}

/// Java's `%-Ns`.
fn pad(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

/// Kafka's offsets table (header and rows; each line is preceded by a newline as Kafka's
/// format strings start with `\n`).
pub fn format_offsets(rows: &[OffsetRow]) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| MISSING.to_string());
    let num = |o: Option<i64>| {
        o.map(|v| v.to_string())
            .unwrap_or_else(|| MISSING.to_string())
    };
    let mut g = 15;
    let mut t = 15;
    let mut c = 15;
    let mut h = 15;
    for r in rows {
        g = g.max(r.group.len());
        t = t.max(opt(&r.topic).len());
        c = c.max(opt(&r.consumer_id).len());
        h = h.max(opt(&r.host).len());
    }
    let line = |cols: [String; 9]| {
        format!(
            "\n{} {} {} {} {} {} {} {} {}",
            pad(&cols[0], g),
            pad(&cols[1], t),
            pad(&cols[2], 10),
            pad(&cols[3], 15),
            pad(&cols[4], 15),
            pad(&cols[5], 15),
            pad(&cols[6], c),
            pad(&cols[7], h),
            cols[8]
        )
    };
    let mut out = line(
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
        .map(String::from),
    );
    for r in rows {
        let lag = match (r.offset, r.log_end) {
            (Some(o), Some(l)) => Some(l - o),
            _ => None,
        };
        out.push_str(&line([
            r.group.clone(),
            opt(&r.topic),
            r.partition
                .map(|p| p.to_string())
                .unwrap_or_else(|| MISSING.into()),
            num(r.offset),
            num(r.log_end),
            num(lag),
            opt(&r.consumer_id),
            opt(&r.host),
            opt(&r.client_id),
        ]));
    }
    out.push('\n');
    out
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let actions = [a.list, a.describe, a.delete, a.reset_offsets]
        .iter()
        .filter(|x| **x)
        .count();
    let usage = |m: &str| {
        eprintln!("{m}");
        Ok(1)
    };
    if actions != 1 {
        return usage("Command must include exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets");
    }
    if a.bootstrap_server.is_none() {
        return usage("Missing required argument \"[bootstrap-server]\"");
    }
    if (a.describe || a.delete || a.reset_offsets) && a.group.is_empty() && !a.all_groups {
        return usage("Option [describe|delete|reset-offsets] takes one of these options: [all-groups], [group]");
    }
    if a.reset_offsets {
        let scenarios = [a.to_earliest, a.to_latest, a.to_offset.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if scenarios != 1 {
            return usage("Option [reset-offsets] takes exactly one of these options: [to-earliest], [to-latest], [to-offset] (the other reset scenarios are not supported by this tool)");
        }
        if a.topic.is_empty() && !a.all_topics {
            return usage(
                "Option [reset-offsets] takes one of these options: [all-topics], [topic]",
            );
        }
        if a.execute && a.dry_run {
            return usage("Option [reset-offsets] only accepts one of [execute], [dry-run]");
        }
    }
    let rt = super::runtime()?;
    match rt.block_on(run(&a)) {
        Ok(code) => Ok(code),
        Err(e) => {
            println!("\nError: Executing consumer group command failed due to {e:#}");
            Ok(1)
        }
    }
}

async fn run(a: &Args) -> anyhow::Result<u8> {
    let p = props::merged(a.command_config.as_deref(), &[])?;
    let timeout = Duration::from_millis(a.timeout.unwrap_or(30000));
    let cfg = props::client_config(a.bootstrap_server.as_deref(), &p, "adminclient-1", timeout)?;
    let mut cluster = Cluster::connect(cfg).await?;
    if a.list {
        let groups = list_groups(&mut cluster).await?;
        let filter: Option<BTreeSet<String>> =
            a.state.as_ref().filter(|s| !s.is_empty()).map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .collect()
            });
        if a.state.is_some() {
            let shown: Vec<&(String, String)> = groups
                .iter()
                .filter(|(_, st)| {
                    filter
                        .as_ref()
                        .is_none_or(|f| f.contains(&st.to_ascii_lowercase()))
                })
                .collect();
            let w = shown
                .iter()
                .map(|(g, _)| g.len())
                .max()
                .unwrap_or(0)
                .max(15);
            println!("{} STATE", pad("GROUP", w));
            for (g, st) in shown {
                println!("{} {st}", pad(g, w));
            }
        } else {
            for (g, _) in &groups {
                println!("{g}");
            }
        }
        return Ok(0);
    }
    let groups: Vec<String> = if a.all_groups {
        list_groups(&mut cluster)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect()
    } else {
        a.group.clone()
    };
    if a.delete {
        return delete(&mut cluster, &groups).await;
    }
    if a.reset_offsets {
        return reset(&mut cluster, a, &groups).await;
    }
    for g in &groups {
        let coordinator = cluster.find_coordinator(g).await?;
        let desc = describe_group(&mut cluster, coordinator, g).await?;
        if a.state.is_some() {
            if !state_ok(g, &desc.state.clone(), 1) {
                continue;
            }
            let info = cluster.brokers.get(&coordinator).cloned();
            let coord = info
                .map(|b| format!("{}:{}  ({})", b.host, b.port, b.id))
                .unwrap_or_else(|| format!("({coordinator})"));
            let w = coord.len().max(25);
            let line = |c: [&str; 5]| {
                format!(
                    "\n{} {} {} {} {}",
                    pad(c[0], w),
                    pad(c[1], 25),
                    pad(c[2], 20),
                    pad(c[3], 15),
                    c[4]
                )
            };
            let strategy = desc.strategy.clone();
            let n = desc.members.len().to_string();
            print!(
                "{}",
                line([
                    "GROUP",
                    "COORDINATOR (ID)",
                    "ASSIGNMENT-STRATEGY",
                    "STATE",
                    "#MEMBERS"
                ])
            );
            print!("{}", line([g, &coord, &strategy, &desc.state.clone(), &n]));
            println!();
            continue;
        }
        if a.members {
            let state = desc.state.clone();
            if !state_ok(g, &state, desc.members.len()) {
                continue;
            }
            print!("{}", format_members(g, &desc, a.verbose));
            continue;
        }
        let rows = offset_rows(&mut cluster, coordinator, g, &desc).await?;
        if !state_ok(g, &desc.state.clone(), rows.len()) {
            continue;
        }
        print!("{}", format_offsets(&rows));
    }
    Ok(0)
}

/// Kafka's `shouldPrintMemberState`: notes on stderr/stdout, and whether to print the table.
fn state_ok(group: &str, state: &str, rows: usize) -> bool {
    match state {
        "Dead" => {
            println!("\nError: Consumer group '{group}' does not exist.");
            return false;
        }
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    rows > 0
}

fn format_members(group: &str, desc: &GroupDesc, verbose: bool) -> String {
    let members = desc.members.as_slice();
    let (mut g, mut c, mut gi, mut h, mut cl) = (15, 15, 17, 15, 15);
    let mut with_instance = false;
    for m in members {
        g = g.max(group.len());
        c = c.max(m.id.len());
        gi = gi.max(m.instance.len());
        h = h.max(m.host.len());
        cl = cl.max(m.client.len());
        with_instance |= !m.instance.is_empty();
    }
    // Kafka prints the GROUP-INSTANCE-ID column only when some member has an instance id.
    let widths = [g, c, gi, h, cl, 15];
    let row = |cols: [&str; 6]| {
        cols.iter()
            .zip(widths)
            .enumerate()
            .filter(|(i, _)| *i != 2 || with_instance)
            .map(|(_, (col, w))| pad(col, w) + " ")
            .collect::<String>()
    };
    let mut out = format!(
        "\n{}",
        row([
            "GROUP",
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS"
        ])
    );
    if verbose {
        out.push_str("ASSIGNMENT");
    }
    out.push('\n');
    for m in members {
        let n: usize = m.parts.iter().map(|(_, p)| p.len()).sum();
        out.push_str(&row([
            group,
            &m.id,
            &m.instance,
            &m.host,
            &m.client,
            &n.to_string(),
        ]));
        if verbose {
            let mut groups: Vec<String> = m
                .parts
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(t, ps)| {
                    let mut ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                    ps.sort();
                    let _ = t;
                    format!("({})", ps.join(","))
                })
                .collect();
            groups.sort();
            out.push_str(&if groups.is_empty() {
                MISSING.to_string()
            } else {
                groups.join(", ")
            });
        }
        out.push('\n');
    }
    out
}

/// Group ids with their states, from every broker (each coordinates some groups).
pub(super) async fn list_groups(cluster: &mut Cluster) -> anyhow::Result<Vec<(String, String)>> {
    let md = cluster.metadata(Some(&[]), false).await?;
    let ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    let mut out = BTreeMap::new();
    for id in ids {
        let conn = cluster.broker(id).await?;
        let (resp, _) = conn.send(&ListGroupsRequest::default()).await?;
        if resp.error_code != 0 {
            bail!("{}", error_text(resp.error_code, None));
        }
        for g in resp.groups {
            let pt = g.protocol_type.to_string();
            if pt == "consumer" || pt.is_empty() {
                out.insert(g.group_id.0.to_string(), g.group_state.to_string());
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// A group as `--describe` shows it, whichever protocol it uses (Kafka's
/// `ConsumerGroupDescription`).
#[derive(Debug, Clone, Default)]
struct GroupDesc {
    state: String,
    /// The classic protocol's assignor, or a consumer group's server assignor.
    strategy: String,
    members: Vec<MemberDesc>,
}

#[derive(Debug, Clone, Default)]
struct MemberDesc {
    id: String,
    instance: String,
    host: String,
    client: String,
    parts: Vec<(String, Vec<i32>)>,
}

/// As Kafka's admin client: ConsumerGroupDescribe first (a KIP-848 consumer group), then
/// DescribeGroups when the id is not a consumer group or the broker does not serve the new
/// protocol.
async fn describe_group(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
) -> anyhow::Result<GroupDesc> {
    let conn = cluster.broker(coordinator).await?;
    if conn.version_for(ApiKey::ConsumerGroupDescribe).is_ok() {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        let (resp, _) = conn.send(&req).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("empty ConsumerGroupDescribe response"))?;
        // GROUP_ID_NOT_FOUND (69): not a consumer group; UNSUPPORTED_VERSION (35): the
        // protocol is off.
        match g.error_code {
            0 => {
                return Ok(GroupDesc {
                    state: g.group_state.to_string(),
                    strategy: g.assignor_name.to_string(),
                    members: g
                        .members
                        .into_iter()
                        .map(|m| MemberDesc {
                            id: m.member_id.to_string(),
                            instance: m.instance_id.map(|s| s.to_string()).unwrap_or_default(),
                            host: m.client_host.to_string(),
                            client: m.client_id.to_string(),
                            parts: m
                                .assignment
                                .topic_partitions
                                .into_iter()
                                .map(|t| (t.topic_name.0.to_string(), t.partitions))
                                .collect(),
                        })
                        .collect(),
                })
            }
            69 | 35 => {}
            code => bail!("{}", error_text(code, g.error_message.as_ref())),
        }
    }
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let (resp, _) = cluster.broker(coordinator).await?.send(&req).await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("empty DescribeGroups response"))?;
    // GROUP_ID_NOT_FOUND (KIP-1043, DescribeGroups v6): Kafka's admin reports such a group as
    // Dead, which the command prints as "does not exist".
    if g.error_code == 69 {
        return Ok(GroupDesc {
            state: "Dead".into(),
            ..GroupDesc::default()
        });
    }
    if g.error_code != 0 {
        bail!("{}", error_text(g.error_code, g.error_message.as_ref()));
    }
    Ok(GroupDesc {
        state: g.group_state.to_string(),
        strategy: g.protocol_data.to_string(),
        members: g
            .members
            .into_iter()
            .map(|m| MemberDesc {
                id: m.member_id.to_string(),
                instance: m
                    .group_instance_id
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                host: m.client_host.to_string(),
                client: m.client_id.to_string(),
                parts: decode_assignment(m.member_assignment).unwrap_or_default(),
            })
            .collect(),
    })
}

/// Committed offsets of every partition the group has (OffsetFetch with all topics).
async fn committed(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let (resp, v) = cluster.broker(coordinator).await?.send(&req).await?;
    if v >= 2 && resp.error_code != 0 {
        bail!("{}", error_text(resp.error_code, None));
    }
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// Earliest (-2) or latest (-1) offsets of `parts`, from their leaders.
async fn list_offsets(
    cluster: &mut Cluster,
    parts: &BTreeSet<(String, i32)>,
    spec: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    let topics: BTreeSet<String> = parts.iter().map(|(t, _)| t.clone()).collect();
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in &topics {
        let leaders = match cluster
            .partition_leaders(t, false, Duration::from_secs(5))
            .await
        {
            Ok(l) => l,
            Err(_) => continue,
        };
        for (p, l) in leaders {
            if parts.contains(&(t.clone(), p)) {
                by_leader
                    .entry(l)
                    .or_default()
                    .entry(t.clone())
                    .or_default()
                    .push(p);
            }
        }
    }
    for (leader, ts) in by_leader {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                ts.iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(spec)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (resp, _) = cluster.broker(leader).await?.send(&req).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code == 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}

async fn offset_rows(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
    desc: &GroupDesc,
) -> anyhow::Result<Vec<OffsetRow>> {
    let offsets = committed(cluster, coordinator, group).await?;
    let mut assigned: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    let mut idle_members = Vec::new();
    for m in &desc.members {
        let who = (m.id.clone(), m.host.clone(), m.client.clone());
        let mut any = false;
        for (t, ps) in &m.parts {
            for p in ps {
                assigned.insert((t.clone(), *p), who.clone());
                any = true;
            }
        }
        if !any {
            idle_members.push(who);
        }
    }
    let all: BTreeSet<(String, i32)> = assigned.keys().chain(offsets.keys()).cloned().collect();
    let ends = list_offsets(cluster, &all, -1).await?;
    let mut rows = Vec::new();
    // Members' partitions first, then committed partitions nobody owns, as Kafka lists them.
    for ((t, p), (id, host, client)) in &assigned {
        rows.push(OffsetRow {
            group: group.to_string(),
            topic: Some(t.clone()),
            partition: Some(*p),
            offset: offsets.get(&(t.clone(), *p)).copied(),
            log_end: ends.get(&(t.clone(), *p)).copied(),
            consumer_id: Some(id.clone()),
            host: Some(host.clone()),
            client_id: Some(client.clone()),
        });
    }
    for (id, host, client) in idle_members {
        rows.push(OffsetRow {
            group: group.to_string(),
            topic: None,
            partition: None,
            offset: None,
            log_end: None,
            consumer_id: Some(id),
            host: Some(host),
            client_id: Some(client),
        });
    }
    for ((t, p), off) in &offsets {
        if assigned.contains_key(&(t.clone(), *p)) {
            continue;
        }
        rows.push(OffsetRow {
            group: group.to_string(),
            topic: Some(t.clone()),
            partition: Some(*p),
            offset: Some(*off),
            log_end: ends.get(&(t.clone(), *p)).copied(),
            consumer_id: None,
            host: None,
            client_id: None,
        });
    }
    Ok(rows)
}

async fn delete(cluster: &mut Cluster, groups: &[String]) -> anyhow::Result<u8> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for g in groups {
        let coordinator = cluster.find_coordinator(g).await?;
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(g.clone()))]);
        let (resp, _) = cluster.broker(coordinator).await?.send(&req).await?;
        for r in resp.results {
            if r.error_code == 0 {
                ok.push(r.group_id.0.to_string());
            } else {
                failed.push((r.group_id.0.to_string(), error_text(r.error_code, None)));
            }
        }
    }
    if failed.is_empty() {
        println!(
            "Deletion of requested consumer groups ('{}') was successful.",
            ok.join("', '")
        );
        return Ok(0);
    }
    println!("\nError: Deletion of some consumer groups failed:");
    for (g, e) in &failed {
        println!("* Group '{g}' could not be deleted due to: {e}");
    }
    if !ok.is_empty() {
        println!(
            "\nThese consumer groups were deleted successfully: '{}'",
            ok.join("', '")
        );
    }
    Ok(1)
}

async fn reset(cluster: &mut Cluster, a: &Args, groups: &[String]) -> anyhow::Result<u8> {
    if !a.execute && !a.dry_run {
        println!("WARN: No action will be performed as the --execute option is missing. In a future major release, the default behavior of this command will be to prompt the user before executing the reset rather than doing a dry run. You should add the --dry-run option explicitly if you are scripting this command and want to keep the current default behavior without prompting.");
    }
    let mut plan: Vec<(String, String, i32, i64)> = Vec::new();
    for g in groups {
        let coordinator = cluster.find_coordinator(g).await?;
        let desc = describe_group(cluster, coordinator, g).await?;
        let state = desc.state.clone();
        if state != "Empty" && state != "Dead" {
            bail!("Assignments can only be reset if the group '{g}' is inactive, but the current state is {state}.");
        }
        let mut parts: BTreeSet<(String, i32)> = BTreeSet::new();
        if a.all_topics {
            parts.extend(committed(cluster, coordinator, g).await?.into_keys());
        } else {
            for spec in &a.topic {
                // `topic` or `topic:0,1`.
                let (t, ps) = match spec.split_once(':') {
                    Some((t, ps)) => (t.to_string(), Some(ps)),
                    None => (spec.clone(), None),
                };
                match ps {
                    Some(ps) => {
                        for p in ps.split(',') {
                            let p: i32 = p
                                .trim()
                                .parse()
                                .map_err(|_| anyhow!("Invalid partition in {spec}"))?;
                            parts.insert((t.clone(), p));
                        }
                    }
                    None => {
                        let leaders = cluster
                            .partition_leaders(&t, false, Duration::from_secs(5))
                            .await?;
                        parts.extend(leaders.into_iter().map(|(p, _)| (t.clone(), p)));
                    }
                }
            }
        }
        let targets: BTreeMap<(String, i32), i64> = if let Some(o) = a.to_offset {
            let earliest = list_offsets(cluster, &parts, -2).await?;
            let latest = list_offsets(cluster, &parts, -1).await?;
            // Kafka clamps a requested offset into the partition's range.
            parts
                .iter()
                .map(|k| {
                    let lo = earliest.get(k).copied().unwrap_or(0);
                    let hi = latest.get(k).copied().unwrap_or(o);
                    (k.clone(), o.clamp(lo, hi.max(lo)))
                })
                .collect()
        } else {
            list_offsets(cluster, &parts, if a.to_earliest { -2 } else { -1 }).await?
        };
        if a.execute {
            let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
            for ((t, p), o) in &targets {
                by_topic.entry(t.clone()).or_default().push((*p, *o));
            }
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_retention_time_ms(-1)
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.clone())))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, o)| {
                                            OffsetCommitRequestPartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(*o)
                                                .with_committed_leader_epoch(-1)
                                                .with_committed_metadata(Some(
                                                    StrBytes::from_static_str(""),
                                                ))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let (resp, _) = cluster.broker(coordinator).await?.send(&req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code != 0 {
                        bail!("{}", error_text(p.error_code, None));
                    }
                }
            }
        }
        for ((t, p), o) in targets {
            plan.push((g.clone(), t, p, o));
        }
    }
    let line = |c: [String; 4]| {
        format!(
            "\n{} {} {} {}",
            pad(&c[0], 30),
            pad(&c[1], 30),
            pad(&c[2], 10),
            pad(&c[3], 15)
        )
    };
    let mut out = String::new();
    if !plan.is_empty() {
        out.push_str(&line(
            ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"].map(String::from),
        ));
    }
    for (g, t, p, o) in plan {
        out.push_str(&line([g, t, p.to_string(), o.to_string()]));
    }
    println!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_table_shows_the_instance_column_only_when_a_member_has_one() {
        let member = |id: &str, instance: Option<&str>| MemberDesc {
            id: id.into(),
            instance: instance.unwrap_or_default().into(),
            host: "/127.0.0.1".into(),
            client: "c1".into(),
            parts: vec![("t".into(), vec![0, 1])],
        };
        let plain = GroupDesc {
            members: vec![member("m-1", None)],
            ..GroupDesc::default()
        };
        let out = format_members("g", &plain, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            format!(
                "{:<15} {:<15} {:<15} {:<15} {:<15} ",
                "GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{:<15} {:<15} {:<15} {:<15} {:<15} ",
                "g", "m-1", "/127.0.0.1", "c1", "2"
            )
        );
        let statics = GroupDesc {
            members: vec![member("m-1", Some("i-1"))],
            ..GroupDesc::default()
        };
        let out = format_members("g", &statics, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "{:<15} {:<15} {:<17} {:<15} {:<15} {:<15} ",
                "GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
            )
        );
        assert!(lines[2].contains(" i-1 "), "{:?}", lines[2]);
    }

    #[test]
    fn offsets_table_layout() {
        let rows = vec![OffsetRow {
            group: "g".into(),
            topic: Some("t".into()),
            partition: Some(0),
            offset: Some(3),
            log_end: Some(5),
            consumer_id: None,
            host: None,
            client_id: None,
        }];
        let s = format_offsets(&rows);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID"
        );
        assert_eq!(
            lines[2],
            "g               t               0          3               5               2               -               -               -"
        );
    }
}
