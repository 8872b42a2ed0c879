//! `kafka-reassign-partitions`: moves partitions between brokers through
//! AlterPartitionReassignments / ListPartitionReassignments, with Kafka's
//! `ReassignPartitionsCommand` actions, file formats and output.
//!
//! - `--generate --topics-to-move-json-file F --broker-list 1,2,3` prints the current assignment
//!   of those topics and a proposal that spreads them over the listed brokers (Kafka's
//!   rack-unaware round robin; nothing changes).
//! - `--execute --reassignment-json-file F` prints the current assignment (to keep for a
//!   rollback) and starts the moves; refused while other reassignments run, unless
//!   `--additional`.
//! - `--verify --reassignment-json-file F` prints, per partition, whether its move is done.
//! - `--cancel --reassignment-json-file F` cancels the moves of those partitions still running.
//! - `--list` prints the reassignments in progress.
//!
//! Not offered: replication throttles (`--throttle`, `--replica-alter-log-dirs-throttle`: the
//! brokers have no replication quotas yet) and moves between log dirs (`log_dirs` other than
//! "any"); both are refused with a message instead of being ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::{error_text, ids, Cluster};
use super::props;

/// A partition and its replicas, in Kafka's `topic-partition` order.
type Assignment = BTreeMap<(String, i32), Vec<i32>>;

/// The entries of a reassignment file, in file order: (topic, partition) and target replicas.
type Targets = Vec<((String, i32), Vec<i32>)>;

const CANNOT_EXECUTE_BECAUSE_OF_EXISTING_MESSAGE: &str = "Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment.";

#[derive(Debug, Parser)]
#[command(
    name = "kafka-reassign-partitions",
    about = "This tool helps to move topic partitions between replicas.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: the server(s) to use for bootstrapping.
    #[arg(
        long = "bootstrap-server",
        value_name = "Server(s) to use for bootstrapping"
    )]
    bootstrap_server: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(long = "command-config", value_name = "Admin client property file")]
    command_config: Option<PathBuf>,
    /// Generate a candidate partition reassignment configuration.
    #[arg(long)]
    generate: bool,
    /// Kick off the reassignment as specified by the --reassignment-json-file option.
    #[arg(long)]
    execute: bool,
    /// Verify if the reassignment completed as specified by the --reassignment-json-file option.
    #[arg(long)]
    verify: bool,
    /// Cancel an active reassignment.
    #[arg(long)]
    cancel: bool,
    /// List all active partition reassignments.
    #[arg(long)]
    list: bool,
    /// The JSON file with the partition reassignment configuration.
    #[arg(
        long = "reassignment-json-file",
        value_name = "manual assignment json file path"
    )]
    reassignment_json_file: Option<PathBuf>,
    /// Generate a reassignment configuration to move the partitions of the specified topics to
    /// the list of brokers specified by the --broker-list option.
    #[arg(
        long = "topics-to-move-json-file",
        value_name = "topics to reassign json file path"
    )]
    topics_to_move_json_file: Option<PathBuf>,
    /// The list of brokers to which the partitions need to be reassigned in the form "0,1,2".
    #[arg(long = "broker-list", value_name = "brokerlist")]
    broker_list: Option<String>,
    /// Disable rack aware replica assignment (rafka's proposal is rack-unaware either way).
    #[arg(long = "disable-rack-aware")]
    disable_rack_aware: bool,
    /// Execute this reassignment in addition to any other ongoing ones.
    #[arg(long)]
    additional: bool,
    /// Do not modify broker or topic throttles.
    #[arg(long = "preserve-throttles")]
    preserve_throttles: bool,
    /// Replication throttle in B/s (not supported by rafka).
    #[arg(long, value_name = "throttle")]
    throttle: Option<i64>,
    /// Log dir move throttle in B/s (not supported by rafka).
    #[arg(
        long = "replica-alter-log-dirs-throttle",
        value_name = "replicaAlterLogDirsThrottle"
    )]
    replica_alter_log_dirs_throttle: Option<i64>,
    /// The maximum time in ms to wait for the reassignment to be accepted.
    #[arg(long, value_name = "timeout", default_value_t = 10_000)]
    timeout: i64,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// Kafka's reassignment file: `{"version":1,"partitions":[{"topic":"t","partition":0,
/// "replicas":[1,2],"log_dirs":["any","any"]}]}`, checked as Kafka checks it.
pub fn parse_reassignment_json(text: &str) -> anyhow::Result<Targets> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| anyhow!("The input string is not a valid JSON"))?;
    if let Some(version) = v.get("version") {
        if version.as_i64() != Some(1) {
            bail!("Not supported version field value {version}");
        }
    }
    let list = v
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or_else(|| anyhow!("Partition reassignment list cannot be empty"))?;
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let (topic, partition) = super::leader_election::topic_partition_of(p)?;
        let replicas: Vec<i32> = p
            .get("replicas")
            .and_then(|r| r.as_array())
            .ok_or_else(|| anyhow!("Missing replicas field in {p}"))?
            .iter()
            .map(|r| {
                r.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| anyhow!("Replica {r} of {topic}-{partition} is not a broker id"))
            })
            .collect::<anyhow::Result<_>>()?;
        if let Some(dirs) = p.get("log_dirs").and_then(|d| d.as_array()) {
            if dirs.len() != replicas.len() {
                bail!("Size of replicas list {replicas:?} is different from size of log dirs list {dirs:?} for partition {topic}-{partition}");
            }
            if dirs.iter().any(|d| d.as_str() != Some("any")) {
                bail!("Moving replicas between log dirs is not supported by rafka: use \"any\" in log_dirs");
            }
        }
        out.push(((topic, partition), replicas));
    }
    if out.is_empty() {
        bail!("Partition reassignment list cannot be empty");
    }
    if out.iter().any(|(_, r)| r.is_empty()) {
        bail!("Partition replica list cannot be empty");
    }
    let mut seen = BTreeSet::new();
    let dups: Vec<String> = out
        .iter()
        .filter(|(tp, _)| !seen.insert(tp.clone()))
        .map(|(tp, _)| format!("{}-{}", tp.0, tp.1))
        .collect();
    if !dups.is_empty() {
        bail!(
            "Partition reassignment contains duplicate topic partitions: {}",
            dups.join(",")
        );
    }
    let dup_replicas: Vec<String> = out
        .iter()
        .filter_map(|((t, p), r)| {
            let mut seen = BTreeSet::new();
            let d: BTreeSet<i32> = r.iter().copied().filter(|b| !seen.insert(*b)).collect();
            (!d.is_empty()).then(|| format!("{t}-{p} contains multiple entries for {}", join(d)))
        })
        .collect();
    if !dup_replicas.is_empty() {
        bail!(
            "Partition replica lists may not contain duplicate entries: {}",
            dup_replicas.join(". ")
        );
    }
    Ok(out)
}

/// `{"topics":[{"topic":"t"}],"version":1}`, the `--topics-to-move-json-file` format.
pub fn parse_topics_json(text: &str) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| anyhow!("The input string is not a valid JSON"))?;
    let topics: Vec<String> = v
        .get("topics")
        .and_then(|t| t.as_array())
        .ok_or_else(|| anyhow!("Missing topics field"))?
        .iter()
        .map(|t| {
            t.get("topic")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("Missing topic field in {t}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut seen = BTreeSet::new();
    let dups: Vec<&String> = topics.iter().filter(|t| !seen.insert(*t)).collect();
    if !dups.is_empty() {
        bail!(
            "List of topics to reassign contains duplicate entries: {}",
            dups.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    Ok(topics)
}

/// `--broker-list 1,2,3`.
pub fn parse_broker_list(text: &str) -> anyhow::Result<Vec<i32>> {
    let brokers: Vec<i32> = text
        .split(',')
        .map(|b| {
            b.trim()
                .parse::<i32>()
                .map_err(|_| anyhow!("Invalid broker id {b:?} in --broker-list"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<i32> = brokers
        .iter()
        .copied()
        .filter(|b| !seen.insert(*b))
        .collect();
    if !dups.is_empty() {
        bail!("Broker list contains duplicate entries: {}", join(dups));
    }
    Ok(brokers)
}

fn join(v: impl IntoIterator<Item = i32>) -> String {
    v.into_iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's reassignment JSON for `parts` (every replica in log dir "any"), with its key order.
pub fn format_json(parts: &Assignment) -> String {
    let partitions: Vec<String> = parts
        .iter()
        .map(|((t, p), r)| {
            format!(
                "{{\"topic\":{},\"partition\":{p},\"replicas\":[{}],\"log_dirs\":[{}]}}",
                serde_json::Value::String(t.clone()),
                join(r.iter().copied()),
                vec!["\"any\""; r.len()].join(",")
            )
        })
        .collect();
    format!(
        "{{\"version\":1,\"partitions\":[{}]}}",
        partitions.join(",")
    )
}

/// Kafka's rack-unaware placement (`assignReplicasToBrokersRackUnaware`): partition `p`'s first
/// replica is broker `(start + p) % n`, the others follow at a shift that changes every `n`
/// partitions, so leaders and followers spread evenly.
pub fn propose(
    current: &Assignment,
    brokers: &[i32],
    start: usize,
    shift: usize,
) -> anyhow::Result<Assignment> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, usize)>> = BTreeMap::new();
    for ((t, p), r) in current {
        by_topic.entry(t).or_default().push((*p, r.len()));
    }
    let n = brokers.len();
    let mut out = Assignment::new();
    for (topic, parts) in by_topic {
        let factor = parts.first().map_or(0, |(_, f)| *f);
        if factor > n {
            bail!("Replication factor: {factor} larger than available brokers: {n}.");
        }
        let mut next_shift = shift % n.max(1);
        for (i, (p, _)) in parts.iter().enumerate() {
            if i > 0 && i % n == 0 {
                next_shift += 1;
            }
            let first = (i + start) % n;
            let mut replicas = vec![brokers[first]];
            for j in 0..factor.saturating_sub(1) {
                let step = 1 + (next_shift + j) % (n - 1).max(1);
                replicas.push(brokers[(first + step) % n]);
            }
            out.insert((topic.to_string(), *p), replicas);
        }
    }
    Ok(out)
}

/// The lines of `--verify`: per partition, done (and whether it ended where the file says) or
/// still moving.
pub fn verify_lines(
    targets: &[((String, i32), Vec<i32>)],
    moving: &Assignment,
    current: &Assignment,
) -> Vec<String> {
    let mut lines = vec!["Status of partition reassignment:".to_string()];
    let mut sorted: Vec<_> = targets.iter().collect();
    sorted.sort();
    for ((t, p), target) in sorted {
        let key = (t.clone(), *p);
        if moving.contains_key(&key) {
            lines.push(format!(
                "Reassignment of partition {t}-{p} is still in progress."
            ));
            continue;
        }
        match current.get(&key) {
            Some(replicas) if replicas == target => {
                lines.push(format!("Reassignment of partition {t}-{p} is completed."));
            }
            Some(replicas) => lines.push(format!(
                "There is no active reassignment of partition {t}-{p}, but replica set is {} rather than {}.",
                join(replicas.iter().copied()),
                join(target.iter().copied())
            )),
            None => lines.push(format!(
                "There is no active reassignment of partition {t}-{p}, and the partition does not exist."
            )),
        }
    }
    lines
}

/// The lines of `--list`.
pub fn list_lines(resp: &ListPartitionReassignmentsResponse) -> Vec<String> {
    let mut rows = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            let mut line = format!(
                "{}-{}: replicas: {}.",
                t.name.0,
                p.partition_index,
                join(ids(&p.replicas))
            );
            if !p.adding_replicas.is_empty() {
                line.push_str(&format!(" adding: {}.", join(ids(&p.adding_replicas))));
            }
            if !p.removing_replicas.is_empty() {
                line.push_str(&format!(" removing: {}.", join(ids(&p.removing_replicas))));
            }
            rows.insert((t.name.0.to_string(), p.partition_index), line);
        }
    }
    if rows.is_empty() {
        return vec!["No partition reassignments found.".into()];
    }
    let mut lines = vec!["Current partition reassignments:".to_string()];
    lines.extend(rows.into_values());
    lines
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let actions = [a.generate, a.execute, a.verify, a.cancel, a.list];
    if actions.iter().filter(|x| **x).count() != 1 {
        eprintln!("Command must include exactly one action: --generate, --execute, --verify, --cancel, --list");
        return Ok(1);
    }
    let Some(bootstrap) = a.bootstrap_server.clone() else {
        eprintln!("Please specify --bootstrap-server");
        return Ok(1);
    };
    if a.throttle.is_some() || a.replica_alter_log_dirs_throttle.is_some() {
        eprintln!("Replication throttles are not supported by rafka: run the reassignment without --throttle / --replica-alter-log-dirs-throttle");
        return Ok(1);
    }
    let needs_file = a.execute || a.verify || a.cancel;
    if needs_file && a.reassignment_json_file.is_none() {
        eprintln!("Missing required argument \"[reassignment-json-file]\"");
        return Ok(1);
    }
    if a.generate && (a.topics_to_move_json_file.is_none() || a.broker_list.is_none()) {
        eprintln!("Missing required argument \"[topics-to-move-json-file, broker-list]\"");
        return Ok(1);
    }
    let rt = super::runtime()?;
    match rt.block_on(run(&a, bootstrap)) {
        Ok(code) => Ok(code),
        Err(e) => {
            println!("Error: {e:#}");
            Ok(1)
        }
    }
}

async fn run(a: &Args, bootstrap: String) -> anyhow::Result<u8> {
    let p = props::merged(a.command_config.as_deref(), &[])?;
    let cfg = props::client_config(
        Some(&bootstrap),
        &p,
        "reassign-partitions-tool",
        Duration::from_secs(60),
    )?;
    let mut cluster = Cluster::connect(cfg).await?;
    let file = |path: &Option<PathBuf>| -> anyhow::Result<String> {
        let path = path.as_ref().ok_or_else(|| anyhow!("missing file"))?;
        std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))
    };
    if a.list {
        let resp = list(&mut cluster, None).await?;
        for l in list_lines(&resp) {
            println!("{l}");
        }
        return Ok(0);
    }
    if a.generate {
        let topics = parse_topics_json(&file(&a.topics_to_move_json_file)?)?;
        let brokers = parse_broker_list(a.broker_list.as_deref().unwrap_or_default())?;
        let current = assignment_of_topics(&mut cluster, &topics).await?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0);
        let proposed = propose(&current, &brokers, seed % 7919, seed / 7919)?;
        println!(
            "Current partition replica assignment\n{}\n",
            format_json(&current)
        );
        println!(
            "Proposed partition reassignment configuration\n{}",
            format_json(&proposed)
        );
        return Ok(0);
    }
    let targets = parse_reassignment_json(&file(&a.reassignment_json_file)?)?;
    let topics: Vec<String> = targets
        .iter()
        .map(|((t, _), _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if a.verify {
        let moving = moving(&list(&mut cluster, None).await?);
        let current = assignment_of_topics(&mut cluster, &topics).await?;
        for l in verify_lines(&targets, &moving, &current) {
            println!("{l}");
        }
        return Ok(0);
    }
    if a.execute {
        if !a.additional && !list(&mut cluster, None).await?.topics.is_empty() {
            println!("{CANNOT_EXECUTE_BECAUSE_OF_EXISTING_MESSAGE}");
            return Ok(1);
        }
        let live: BTreeSet<i32> = {
            cluster.metadata(Some(&[]), false).await?;
            cluster.brokers.keys().copied().collect()
        };
        if let Some(b) = targets
            .iter()
            .flat_map(|(_, r)| r.iter())
            .find(|b| !live.contains(b))
        {
            bail!("Unknown broker id {b}");
        }
        let current = assignment_of_topics(&mut cluster, &topics).await?;
        let before: Assignment = targets
            .iter()
            .filter_map(|(tp, _)| current.get(tp).map(|r| (tp.clone(), r.clone())))
            .collect();
        println!(
            "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback",
            format_json(&before)
        );
        let failed = alter(&mut cluster, &targets, a.timeout, true).await?;
        if !failed.is_empty() {
            bail!("Error reassigning partition(s):\n{}", failed.join("\n"));
        }
        let mut names: Vec<String> = targets
            .iter()
            .map(|((t, p), _)| format!("{t}-{p}"))
            .collect();
        names.sort();
        println!(
            "Successfully started partition reassignment{} for {}",
            if names.len() == 1 { "" } else { "s" },
            names.join(",")
        );
        return Ok(0);
    }
    // --cancel: only the listed partitions that are still moving.
    let moving = moving(&list(&mut cluster, None).await?);
    let active: Targets = targets
        .into_iter()
        .filter(|(tp, _)| moving.contains_key(tp))
        .collect();
    if active.is_empty() {
        println!("None of the specified partition reassignments are active.");
        return Ok(0);
    }
    let failed = alter(&mut cluster, &active, a.timeout, false).await?;
    if !failed.is_empty() {
        bail!(
            "Error cancelling partition reassignment{} for:\n{}",
            if failed.len() == 1 { "" } else { "s" },
            failed.join("\n")
        );
    }
    let names: Vec<String> = active
        .iter()
        .map(|((t, p), _)| format!("{t}-{p}"))
        .collect();
    println!(
        "Successfully cancelled partition reassignment{} for: {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(",")
    );
    Ok(0)
}

async fn list(
    cluster: &mut Cluster,
    topics: Option<Vec<ListPartitionReassignmentsTopics>>,
) -> anyhow::Result<ListPartitionReassignmentsResponse> {
    let mut req = ListPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.topics = topics;
    let (resp, _) = cluster.any().send(&req).await?;
    if resp.error_code != 0 {
        bail!(
            "{}",
            error_text(resp.error_code, resp.error_message.as_ref())
        );
    }
    Ok(resp)
}

/// The partitions a List answer shows as moving, with their current replica lists.
fn moving(resp: &ListPartitionReassignmentsResponse) -> Assignment {
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.name.0.to_string(), p.partition_index), ids(&p.replicas)))
        })
        .collect()
}

/// The replicas of every partition of `topics`, from Metadata.
async fn assignment_of_topics(
    cluster: &mut Cluster,
    topics: &[String],
) -> anyhow::Result<Assignment> {
    let md = cluster.metadata(Some(topics), false).await?;
    let mut out = Assignment::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            bail!("Topic {name}: {}", error_text(t.error_code, None));
        }
        for p in &t.partitions {
            out.insert((name.clone(), p.partition_index), ids(&p.replica_nodes));
        }
    }
    Ok(out)
}

/// Sends one AlterPartitionReassignments for `targets` (to move) or for their cancellation;
/// returns `topic-partition: error` lines for the partitions that failed.
async fn alter(
    cluster: &mut Cluster,
    targets: &[((String, i32), Vec<i32>)],
    timeout_ms: i64,
    move_them: bool,
) -> anyhow::Result<Vec<String>> {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((t, p), replicas) in targets {
        let mut rp = ReassignablePartition::default();
        rp.partition_index = *p;
        rp.replicas = move_them.then(|| replicas.iter().map(|b| BrokerId(*b)).collect());
        by_topic.entry(t).or_default().push(rp);
    }
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = i32::try_from(timeout_ms.clamp(1, i64::from(i32::MAX))).unwrap_or(i32::MAX);
    req.allow_replication_factor_change = true;
    req.topics = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            let mut rt = ReassignableTopic::default();
            rt.name = TopicName(StrBytes::from_string(t.to_string()));
            rt.partitions = partitions;
            rt
        })
        .collect();
    let (resp, _) = cluster.any().send(&req).await?;
    if resp.error_code != 0 {
        bail!(
            "{}",
            error_text(resp.error_code, resp.error_message.as_ref())
        );
    }
    let mut failed = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                failed.push(format!(
                    "{}-{}: {}",
                    t.name.0,
                    p.partition_index,
                    error_text(p.error_code, p.error_message.as_ref())
                ));
            }
        }
    }
    failed.sort();
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignment_files_are_checked_as_kafka_checks_them() {
        let parts = parse_reassignment_json(
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[3,2],"log_dirs":["any","any"]},{"topic":"b","partition":0,"replicas":[1]}]}"#,
        )
        .unwrap();
        assert_eq!(
            parts,
            vec![(("a".into(), 1), vec![3, 2]), (("b".into(), 0), vec![1])]
        );
        let err = |text: &str| parse_reassignment_json(text).unwrap_err().to_string();
        assert_eq!(err("{"), "The input string is not a valid JSON");
        assert_eq!(
            err(r#"{"version":1,"partitions":[]}"#),
            "Partition reassignment list cannot be empty"
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[]}]}"#),
            "Partition replica list cannot be empty"
        );
        assert_eq!(
            err(
                r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#
            ),
            "Partition reassignment contains duplicate topic partitions: a-0"
        );
        assert_eq!(
            err(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#),
            "Partition replica lists may not contain duplicate entries: a-0 contains multiple entries for 1"
        );
        assert!(err(
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#
        )
        .contains("log dirs"));
        assert_eq!(
            parse_topics_json(r#"{"topics":[{"topic":"x"}],"version":1}"#).unwrap(),
            vec!["x"]
        );
        assert_eq!(parse_broker_list("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_broker_list("1,1").is_err());
    }

    #[test]
    fn output_as_kafka_prints_it() {
        let mut a = Assignment::new();
        a.insert(("t".into(), 0), vec![1, 2]);
        assert_eq!(
            format_json(&a),
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}"#
        );
        let targets = vec![
            (("t".to_string(), 0), vec![2, 3]),
            (("t".to_string(), 1), vec![1]),
        ];
        let mut moving = Assignment::new();
        moving.insert(("t".into(), 1), vec![1, 2]);
        let mut current = Assignment::new();
        current.insert(("t".into(), 0), vec![2, 3]);
        assert_eq!(
            verify_lines(&targets, &moving, &current),
            vec![
                "Status of partition reassignment:",
                "Reassignment of partition t-0 is completed.",
                "Reassignment of partition t-1 is still in progress.",
            ]
        );
        current.insert(("t".into(), 0), vec![3, 2]);
        assert!(verify_lines(&targets, &Assignment::new(), &current)[1]
            .contains("but replica set is 3,2 rather than 2,3."));
    }

    #[test]
    fn proposals_spread_partitions_over_the_brokers() {
        let mut current = Assignment::new();
        for p in 0..6 {
            current.insert(("t".into(), p), vec![1, 2]);
        }
        let proposed = propose(&current, &[4, 5, 6], 0, 0).unwrap();
        let mut leaders = BTreeMap::new();
        for r in proposed.values() {
            assert_eq!(r.len(), 2);
            assert_ne!(r[0], r[1]);
            assert!(r.iter().all(|b| [4, 5, 6].contains(b)));
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        assert!(propose(&current, &[4], 0, 0).is_err());
    }
}
