//! `kafka-topics`: list, create, describe, alter (partition count) and delete topics, with
//! Apache Kafka 4.x's flags, output lines and error texts (`TopicCommand`).

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use regex_automata::meta::Regex;

use super::client::{error_text, ids, uuid_text, Cluster};
use super::configs::{describe_configs, ConfigEntry, RESOURCE_TOPIC};
use super::props;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-topics",
    about = "Create, delete, describe, or change a topic.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: The Kafka server to connect to.
    #[arg(long = "bootstrap-server", value_name = "String: server to connect to")]
    bootstrap_server: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(
        long = "command-config",
        value_name = "String: command config property file"
    )]
    command_config: Option<PathBuf>,
    /// List all available topics.
    #[arg(long)]
    list: bool,
    /// Create a new topic.
    #[arg(long)]
    create: bool,
    /// Delete a topic.
    #[arg(long)]
    delete: bool,
    /// Alter the number of partitions of a topic.
    #[arg(long)]
    alter: bool,
    /// List details for the given topics.
    #[arg(long)]
    describe: bool,
    /// The topic to create, alter, describe or delete. It also accepts a regular expression,
    /// except for --create option. Put topic name in double quotes and use the '\' prefix to
    /// escape regular expression symbols; e.g. "test\.topic".
    #[arg(long, value_name = "String: topic")]
    topic: Option<String>,
    /// The topic-id to describe. This is used only with --describe option.
    #[arg(long = "topic-id", value_name = "String: topic-id")]
    topic_id: Option<String>,
    /// A topic configuration override for the topic being created (repeat for several).
    #[arg(long, value_name = "String: name=value")]
    config: Vec<String>,
    /// The number of partitions for the topic being created or altered. If not supplied for
    /// create, defaults to the cluster default.
    #[arg(long, value_name = "Integer: # of partitions")]
    partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created. If not supplied,
    /// the topic uses the cluster default.
    #[arg(
        long = "replication-factor",
        value_name = "Integer: replication factor"
    )]
    replication_factor: Option<i32>,
    /// A list of manual partition-to-broker assignments (broker_id_for_part1_replica1 :
    /// broker_id_for_part1_replica2 , ...).
    #[arg(long = "replica-assignment", value_name = "String")]
    replica_assignment: Option<String>,
    /// if set when describing topics, only show under replicated partitions
    #[arg(long = "under-replicated-partitions")]
    under_replicated: bool,
    /// if set when describing topics, only show partitions whose leader is not available
    #[arg(long = "unavailable-partitions")]
    unavailable: bool,
    /// if set when describing topics, only show partitions whose isr count is less than the
    /// configured minimum.
    #[arg(long = "under-min-isr-partitions")]
    under_min_isr: bool,
    /// if set when describing topics, only show partitions whose isr count is equal to the
    /// configured minimum.
    #[arg(long = "at-min-isr-partitions")]
    at_min_isr: bool,
    /// if set when describing topics, only show topics that have overridden configs
    #[arg(long = "topics-with-overrides")]
    with_overrides: bool,
    /// if set when altering or deleting or describing topics, the action will only execute if
    /// the topic exists.
    #[arg(long = "if-exists")]
    if_exists: bool,
    /// if set when creating topics, the action will only execute if the topic does not already
    /// exist.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// exclude internal topics when running list or describe command. The internal topics will
    /// be listed by default
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
    /// The maximum partition size to be included in one DescribeTopicPartitions response.
    #[arg(long = "partition-size-limit-per-response", value_name = "Integer")]
    partition_size_limit: Option<i32>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    List,
    Create,
    Delete,
    Alter,
    Describe,
}

/// Kafka's option checks (`TopicCommandOptions.checkArgs`), as usage errors.
fn check_args(a: &Args) -> Result<Action, String> {
    let actions: Vec<Action> = [
        (a.list, Action::List),
        (a.create, Action::Create),
        (a.delete, Action::Delete),
        (a.alter, Action::Alter),
        (a.describe, Action::Describe),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, act)| *act)
    .collect();
    if actions.len() != 1 {
        return Err(
            "Command must include exactly one action: --list, --describe, --create, --alter or --delete"
                .into(),
        );
    }
    let action = actions[0];
    if a.bootstrap_server.is_none() {
        return Err("Missing required argument \"[bootstrap-server]\"".into());
    }
    if matches!(action, Action::Create | Action::Alter | Action::Delete) && a.topic.is_none() {
        return Err("Missing required argument \"[topic]\"".into());
    }
    if action == Action::Alter && a.partitions.is_none() && a.replica_assignment.is_none() {
        return Err("Missing required argument \"[partitions]\"".into());
    }
    if a.if_not_exists && action != Action::Create {
        return Err("Option \"[if-not-exists]\" can't be used with option \"[list], [describe], [alter], [delete]\"".into());
    }
    if a.if_exists && !matches!(action, Action::Alter | Action::Delete | Action::Describe) {
        return Err("Option \"[if-exists]\" can't be used with option \"[list], [create]\"".into());
    }
    if !a.config.is_empty() && action != Action::Create {
        return Err("Option \"[config]\" can't be used with option \"[list], [describe], [alter], [delete]\"".into());
    }
    if a.replication_factor.is_some() && action != Action::Create {
        return Err("Option \"[replication-factor]\" can't be used with option \"[alter], [list], [describe], [delete]\"".into());
    }
    if a.partitions.is_some() && !matches!(action, Action::Create | Action::Alter) {
        return Err(
            "Option \"[partitions]\" can't be used with option \"[list], [describe], [delete]\""
                .into(),
        );
    }
    if a.replica_assignment.is_some() {
        return Err("--replica-assignment is not supported by this tool".into());
    }
    Ok(action)
}

/// Kafka's `IncludeList`: the `--topic` value is a regex that must match the whole name.
pub fn topic_filter(pattern: &str) -> anyhow::Result<Regex> {
    // Kafka 4.x treats a comma list like a regex alternation too (`IncludeList` replaces ','
    // with '|').
    let p = pattern.trim().replace(',', "|");
    Regex::new(&format!("^(?:{p})$")).map_err(|e| anyhow!("Invalid topic regex {pattern}: {e}"))
}

/// The names to act on, sorted (Kafka's `getTopics`).
fn select_topics(
    all: &[(String, bool)],
    pattern: Option<&str>,
    exclude_internal: bool,
) -> anyhow::Result<Vec<String>> {
    let filter = pattern.map(topic_filter).transpose()?;
    let mut out: Vec<String> = all
        .iter()
        .filter(|(name, internal)| {
            if let Some(f) = &filter {
                // A pattern includes internal topics only when not excluded, like Kafka.
                f.is_match(name.as_str()) && !(exclude_internal && *internal)
            } else {
                !(exclude_internal && *internal)
            }
        })
        .map(|(n, _)| n.clone())
        .collect();
    out.sort();
    Ok(out)
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let action = match check_args(&a) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("{msg}");
            eprintln!("Run with --help for the list of options.");
            return Ok(1);
        }
    };
    let rt = super::runtime()?;
    match rt.block_on(run(&a, action)) {
        Ok(()) => Ok(0),
        Err(e) => {
            println!("Error while executing topic command : {e:#}");
            Ok(1)
        }
    }
}

async fn run(a: &Args, action: Action) -> anyhow::Result<()> {
    let p = props::merged(a.command_config.as_deref(), &[])?;
    let cfg = props::client_config(
        a.bootstrap_server.as_deref(),
        &p,
        "adminclient-1",
        Duration::from_secs(30),
    )?;
    let mut cluster = Cluster::connect(cfg).await?;
    let timeout_ms = i32::try_from(cluster.cfg.request_timeout.as_millis()).unwrap_or(i32::MAX);
    match action {
        Action::Create => create(&mut cluster, a, timeout_ms).await,
        Action::List => {
            let all = all_topics(&mut cluster).await?;
            let names = select_topics(&all, a.topic.as_deref(), a.exclude_internal)?;
            // Kafka prints the joined names even when there are none (an empty line).
            println!("{}", names.join("\n"));
            Ok(())
        }
        Action::Describe => describe(&mut cluster, a).await,
        Action::Delete => {
            let all = all_topics(&mut cluster).await?;
            let names = select_topics(&all, a.topic.as_deref(), a.exclude_internal)?;
            ensure_exists(&names, a.topic.as_deref(), !a.if_exists)?;
            if names.is_empty() {
                return Ok(());
            }
            let conn = cluster.controller().await?;
            let v = conn.version_for(kafka_protocol::messages::ApiKey::DeleteTopics)?;
            let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
            if v >= 6 {
                req.topics = names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect();
            } else {
                req.topic_names = names.iter().map(|n| topic_name(n)).collect();
            }
            let resp = conn.send_at(&req, v).await?;
            for r in &resp.responses {
                if r.error_code != 0 {
                    bail!("{}", error_text(r.error_code, r.error_message.as_ref()));
                }
            }
            Ok(())
        }
        Action::Alter => {
            let all = all_topics(&mut cluster).await?;
            let names = select_topics(&all, a.topic.as_deref(), a.exclude_internal)?;
            ensure_exists(&names, a.topic.as_deref(), !a.if_exists)?;
            if names.is_empty() {
                return Ok(());
            }
            let count = a.partitions.unwrap_or(0);
            let req = CreatePartitionsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_topics(
                    names
                        .iter()
                        .map(|n| {
                            CreatePartitionsTopic::default()
                                .with_name(topic_name(n))
                                .with_count(count)
                                .with_assignments(None)
                        })
                        .collect(),
                );
            let (resp, _) = cluster.controller().await?.send(&req).await?;
            for r in &resp.results {
                if r.error_code != 0 {
                    bail!("{}", error_text(r.error_code, r.error_message.as_ref()));
                }
            }
            Ok(())
        }
    }
}

fn topic_name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn ensure_exists(found: &[String], requested: Option<&str>, required: bool) -> anyhow::Result<()> {
    if let Some(t) = requested.filter(|t| !t.is_empty()) {
        if required && found.is_empty() {
            // Kafka formats the Optional here, hence the odd-looking text.
            bail!("Topic 'Optional[{t}]' does not exist as expected");
        }
    }
    Ok(())
}

/// Every topic with its internal flag.
async fn all_topics(cluster: &mut Cluster) -> anyhow::Result<Vec<(String, bool)>> {
    let md = cluster.metadata(None, false).await?;
    Ok(md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| (n.0.to_string(), t.is_internal)))
        .collect())
}

async fn create(cluster: &mut Cluster, a: &Args, timeout_ms: i32) -> anyhow::Result<()> {
    let name = a.topic.clone().unwrap_or_default();
    if let Some(rf) = a.replication_factor {
        if !(1..=i32::from(i16::MAX)).contains(&rf) {
            bail!("The replication factor must be between 1 and 32767 inclusive");
        }
    }
    if let Some(p) = a.partitions {
        if p < 1 {
            bail!("The partitions must be greater than 0");
        }
    }
    if name.contains('.') || name.contains('_') {
        println!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
    }
    let mut configs = Vec::new();
    for c in &a.config {
        let (k, v) = parse_topic_config(c)?;
        configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    let topic = CreatableTopic::default()
        .with_name(topic_name(&name))
        .with_num_partitions(a.partitions.unwrap_or(-1))
        .with_replication_factor(a.replication_factor.map(|r| r as i16).unwrap_or(-1))
        .with_configs(configs);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(timeout_ms);
    let (resp, _) = cluster.controller().await?.send(&req).await?;
    let r = resp
        .topics
        .first()
        .ok_or_else(|| anyhow!("empty CreateTopics response"))?;
    match r.error_code {
        0 => {
            println!("Created topic {name}.");
            Ok(())
        }
        36 if a.if_not_exists => Ok(()),
        36 => bail!(
            "{}",
            r.error_message
                .as_ref()
                .filter(|m| !m.is_empty())
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("Topic '{name}' already exists."))
        ),
        code => bail!("{}", error_text(code, r.error_message.as_ref())),
    }
}

/// `--config k=v` for a topic (Kafka splits on the first `=`).
pub fn parse_topic_config(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s.split_once('=').ok_or_else(|| {
        anyhow!("requirement failed: Invalid topic config: all configs to be added must be in the format \"key=val\".")
    })?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

struct DescribeOpts {
    configs: bool,
    partitions: bool,
    under_replicated: bool,
    unavailable: bool,
    under_min_isr: bool,
    at_min_isr: bool,
    with_overrides: bool,
}

async fn describe(cluster: &mut Cluster, a: &Args) -> anyhow::Result<()> {
    let md = cluster.metadata(None, false).await?;
    let all: Vec<(String, bool)> = md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| (n.0.to_string(), t.is_internal)))
        .collect();
    let names: Vec<String> = if let Some(id) = &a.topic_id {
        let found: Vec<String> = md
            .topics
            .iter()
            .filter(|t| uuid_text(&t.topic_id) == *id)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        if found.is_empty() && !a.if_exists {
            bail!("TopicId '{id}' does not exist as expected");
        }
        found
    } else {
        let names = select_topics(&all, a.topic.as_deref(), a.exclude_internal)?;
        ensure_exists(&names, a.topic.as_deref(), !a.if_exists)?;
        names
    };
    if names.is_empty() {
        return Ok(());
    }
    let live: HashSet<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    let by_name: BTreeMap<String, &MetadataResponseTopic> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| (n.0.to_string(), t)))
        .collect();
    let configs = describe_configs(cluster, RESOURCE_TOPIC, &names, None).await?;
    // Kafka 4.x's admin describes partitions with DescribeTopicPartitions when the broker has it
    // (that is where ELR comes from) and falls back to Metadata (ELR printed as N/A).
    let elr = if cluster
        .any()
        .version_for(kafka_protocol::messages::ApiKey::DescribeTopicPartitions)
        .is_ok()
    {
        Some(describe_elr(cluster, &names, a.partition_size_limit.unwrap_or(2000)).await?)
    } else {
        None
    };
    let report = a.under_replicated || a.unavailable || a.under_min_isr || a.at_min_isr;
    let opts = DescribeOpts {
        configs: !report,
        partitions: !a.with_overrides,
        under_replicated: a.under_replicated,
        unavailable: a.unavailable,
        under_min_isr: a.under_min_isr,
        at_min_isr: a.at_min_isr,
        with_overrides: a.with_overrides,
    };
    for name in &names {
        let Some(t) = by_name.get(name) else { continue };
        let entries = match configs.get(name) {
            Some(Ok(e)) => e.clone(),
            Some(Err(e)) => bail!("{e}"),
            None => Vec::new(),
        };
        let mut out = String::new();
        describe_topic(name, t, &entries, &live, &opts, elr.as_ref(), &mut out);
        print!("{out}");
    }
    Ok(())
}

/// (topic, partition) -> (ELR, last known ELR) from DescribeTopicPartitions.
type ElrMap = BTreeMap<(String, i32), (Option<Vec<i32>>, Option<Vec<i32>>)>;

/// DescribeTopicPartitions for `names`, following the response cursor.
async fn describe_elr(
    cluster: &mut Cluster,
    names: &[String],
    limit: i32,
) -> anyhow::Result<ElrMap> {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use kafka_protocol::messages::DescribeTopicPartitionsRequest;
    let mut out = ElrMap::new();
    let mut cursor: Option<Cursor> = None;
    // Bounded: each round returns at least one partition or ends.
    for _ in 0..100_000 {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(topic_name(n)))
                    .collect(),
            )
            .with_response_partition_limit(limit.max(1))
            .with_cursor(cursor.take());
        let (resp, _) = cluster.any().send(&req).await?;
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            for p in &t.partitions {
                out.insert(
                    (name.clone(), p.partition_index),
                    (
                        p.eligible_leader_replicas.as_deref().map(ids),
                        p.last_known_elr.as_deref().map(ids),
                    ),
                );
            }
        }
        match resp.next_cursor {
            Some(c) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(c.topic_name)
                        .with_partition_index(c.partition_index),
                );
            }
            None => break,
        }
    }
    Ok(out)
}

/// The describe lines of one topic (pure: metadata and configs in, text out).
fn describe_topic(
    name: &str,
    t: &MetadataResponseTopic,
    entries: &[ConfigEntry],
    live: &HashSet<i32>,
    opts: &DescribeOpts,
    elr: Option<&ElrMap>,
    out: &mut String,
) {
    let mut parts = t.partitions.clone();
    parts.sort_by_key(|p| p.partition_index);
    if opts.configs {
        let has_override = entries.iter().any(|e| !e.is_default());
        if !opts.with_overrides || has_override {
            let configs: Vec<String> = entries
                .iter()
                .filter(|e| !e.is_default())
                .map(|e| {
                    format!(
                        "{}={}",
                        e.name,
                        e.value.clone().unwrap_or_else(|| "null".into())
                    )
                })
                .collect();
            let rf = parts.first().map(|p| p.replica_nodes.len()).unwrap_or(0);
            out.push_str(&format!("Topic: {name}"));
            if !t.topic_id.is_nil() {
                out.push_str(&format!("\tTopicId: {}", uuid_text(&t.topic_id)));
            }
            out.push_str(&format!(
                "\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}\n",
                parts.len(),
                configs.join(",")
            ));
        }
    }
    if !opts.partitions {
        return;
    }
    let min_isr: usize = entries
        .iter()
        .find(|e| e.name == "min.insync.replicas")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for p in &parts {
        let leader = p.leader_id.0;
        let has_leader = leader >= 0;
        let isr = p.isr_nodes.len();
        let show = opts.configs
            || (opts.under_replicated && isr < p.replica_nodes.len())
            || (opts.unavailable && (!has_leader || !live.contains(&leader)))
            || (opts.under_min_isr && isr < min_isr)
            || (opts.at_min_isr && isr == min_isr);
        if !show {
            continue;
        }
        let join = |v: &[kafka_protocol::messages::BrokerId]| {
            ids(v)
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        // Metadata carries no ELR; Kafka's admin prints N/A when it had to use Metadata.
        let (e, lk) = elr
            .and_then(|m| m.get(&(name.to_string(), p.partition_index)))
            .cloned()
            .unwrap_or((None, None));
        let text = |v: Option<Vec<i32>>| match v {
            Some(ids) => ids.iter().map(i32::to_string).collect::<Vec<_>>().join(","),
            None => "N/A".to_string(),
        };
        out.push_str(&format!(
            "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: {}\tLastKnownElr: {}\n",
            p.partition_index,
            if has_leader { leader.to_string() } else { "none".to_string() },
            join(&p.replica_nodes),
            join(&p.isr_nodes),
            text(e),
            text(lk),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
    use kafka_protocol::messages::BrokerId;

    fn args(v: &[&str]) -> Args {
        let mut all = vec!["kafka-topics"];
        all.extend_from_slice(v);
        match Args::try_parse_from(all) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn action_checks() {
        assert!(check_args(&args(&["--bootstrap-server", "h:1", "--list"])).is_ok());
        assert!(check_args(&args(&["--bootstrap-server", "h:1"])).is_err());
        assert!(check_args(&args(&["--bootstrap-server", "h:1", "--list", "--create"])).is_err());
        assert!(check_args(&args(&["--bootstrap-server", "h:1", "--create"])).is_err());
        assert!(check_args(&args(&["--list"])).is_err());
        assert!(check_args(&args(&[
            "--bootstrap-server",
            "h:1",
            "--list",
            "--if-not-exists"
        ]))
        .is_err());
        assert!(check_args(&args(&[
            "--bootstrap-server",
            "h:1",
            "--alter",
            "--topic",
            "t"
        ]))
        .is_err());
        assert!(Args::try_parse_from(["kafka-topics", "--bogus"]).is_err());
    }

    #[test]
    fn regex_selection() {
        let all = vec![
            ("a".to_string(), false),
            ("ab".to_string(), false),
            ("__consumer_offsets".to_string(), true),
        ];
        assert_eq!(
            select_topics(&all, Some("a"), false).ok(),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            select_topics(&all, Some("a.*"), false).ok(),
            Some(vec!["a".to_string(), "ab".to_string()])
        );
        assert_eq!(
            select_topics(&all, None, true).ok().map(|v| v.len()),
            Some(2)
        );
        assert_eq!(
            select_topics(&all, None, false).ok().map(|v| v.len()),
            Some(3)
        );
        assert!(select_topics(&all, Some("("), false).is_err());
    }

    #[test]
    fn describe_format() {
        let t = MetadataResponseTopic::default().with_partitions(vec![
            MetadataResponsePartition::default()
                .with_partition_index(1)
                .with_leader_id(BrokerId(-1))
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![]),
            MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(1)]),
        ]);
        let entries = vec![
            ConfigEntry {
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
                source: 1,
                read_only: false,
                sensitive: false,
            },
            ConfigEntry {
                name: "retention.ms".into(),
                value: Some("1".into()),
                source: 5,
                read_only: false,
                sensitive: false,
            },
        ];
        let opts = DescribeOpts {
            configs: true,
            partitions: true,
            under_replicated: false,
            unavailable: false,
            under_min_isr: false,
            at_min_isr: false,
            with_overrides: false,
        };
        let mut out = String::new();
        describe_topic(
            "t",
            &t,
            &entries,
            &HashSet::from([1]),
            &opts,
            None,
            &mut out,
        );
        let mut elr = ElrMap::new();
        elr.insert(("t".into(), 0), (Some(vec![]), Some(vec![2, 3])));
        let mut with_elr = String::new();
        describe_topic(
            "t",
            &t,
            &entries,
            &HashSet::from([1]),
            &opts,
            Some(&elr),
            &mut with_elr,
        );
        assert!(
            with_elr.contains(
                "\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: 2,3\n"
            ),
            "{with_elr}"
        );
        assert!(
            with_elr.contains(
                "\tPartition: 1\tLeader: none\tReplicas: 1\tIsr: \tElr: N/A\tLastKnownElr: N/A\n"
            ),
            "{with_elr}"
        );
        assert_eq!(
            out,
            "Topic: t\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: cleanup.policy=compact\n\
             \tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A\n\
             \tTopic: t\tPartition: 1\tLeader: none\tReplicas: 1\tIsr: \tElr: N/A\tLastKnownElr: N/A\n"
        );
    }
}
