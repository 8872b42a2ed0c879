//! `kafka-leader-election`: PREFERRED or UNCLEAN leader elections through ElectLeaders, with
//! Kafka's `LeaderElectionCommand` flags and output.
//!
//! The partitions come from `--all-topic-partitions` (the request names none: every partition),
//! `--topic` with an optional `--partition`, or `--path-to-json-file`
//! (`{"partitions": [{"topic": "t", "partition": 0}]}`). The answer is printed as Kafka prints
//! it: the partitions elected, those whose valid replica was already elected, and one line per
//! failure; any failure makes the exit code 1.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::client::{error_text, Cluster};
use super::props;

/// ELECTION_NOT_NEEDED: the valid replica already leads.
const ELECTION_NOT_NEEDED: i16 = 84;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-leader-election",
    about = "This tool attempts to elect a new leader for a set of topic partitions. The type of elections supported are preferred replicas and unclean replicas.",
    disable_version_flag = true
)]
pub struct Args {
    /// A hostname and port for the broker to connect to, in the form host:port. Multiple
    /// comma separated URLs can be given. REQUIRED.
    #[arg(long = "bootstrap-server", value_name = "host:port")]
    bootstrap_server: Option<String>,
    /// Configuration properties files to pass to the admin client.
    #[arg(long = "admin.config", value_name = "config file")]
    admin_config: Option<PathBuf>,
    /// Type of election to attempt. Possible values are "preferred" for preferred leader
    /// election or "unclean" for unclean leader election.
    #[arg(long = "election-type", value_name = "election type")]
    election_type: Option<String>,
    /// Perform election on all of the eligible topic partitions based on the type of election.
    #[arg(long = "all-topic-partitions")]
    all_topic_partitions: bool,
    /// Name of topic for which to perform an election.
    #[arg(long, value_name = "topic name")]
    topic: Option<String>,
    /// Partition id for which to perform an election. REQUIRED if --topic is specified.
    #[arg(long, value_name = "partition id")]
    partition: Option<i32>,
    /// The JSON file with the list of partitions for which leader elections should be performed.
    #[arg(long = "path-to-json-file", value_name = "Path to JSON file")]
    path_to_json_file: Option<PathBuf>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// The election type flag as Kafka accepts it (case-insensitive).
pub fn election_type(text: &str) -> Result<i8, String> {
    match text.to_ascii_lowercase().as_str() {
        "preferred" => Ok(0),
        "unclean" => Ok(1),
        _ => Err(format!(
            "Unknown election type: {text}. Supported values are preferred and unclean."
        )),
    }
}

/// The `"topic"` and `"partition"` fields of one entry of Kafka's partition files (this tool's
/// and `kafka-reassign-partitions`').
pub fn topic_partition_of(p: &serde_json::Value) -> anyhow::Result<(String, i32)> {
    let topic = p
        .get("topic")
        .and_then(|t| t.as_str())
        .ok_or_else(|| anyhow!("Missing topic field in {p}"))?;
    let partition = p
        .get("partition")
        .and_then(|t| t.as_i64())
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| anyhow!("Missing partition field in {p}"))?;
    Ok((topic.to_string(), partition))
}

/// `{"partitions": [{"topic": "t", "partition": 0}, ...]}`, Kafka's file format.
pub fn parse_partitions_json(text: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let list = v
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or_else(|| anyhow!("Missing partitions field"))?;
    let out = list
        .iter()
        .map(topic_partition_of)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = out.iter().find(|tp| !seen.insert((*tp).clone())) {
        bail!(
            "Replica election data contains duplicate partitions: {}-{}",
            dup.0,
            dup.1
        );
    }
    Ok(out)
}

/// The lines Kafka prints for an answer, and how many partitions failed.
pub fn format_result(kind: &str, response: &ElectLeadersResponse) -> (Vec<String>, usize) {
    let mut succeeded = Vec::new();
    let mut not_needed = Vec::new();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for t in &response.replica_election_results {
        for p in &t.partition_result {
            let name = format!("{}-{}", t.topic.0, p.partition_id);
            match p.error_code {
                0 => succeeded.push(name),
                ELECTION_NOT_NEEDED => not_needed.push(name),
                code => {
                    failed.insert(name, error_text(code, p.error_message.as_ref()));
                }
            }
        }
    }
    let mut lines = Vec::new();
    if !succeeded.is_empty() {
        lines.push(format!(
            "Successfully completed leader election ({kind}) for partitions {}",
            succeeded.join(", ")
        ));
    }
    if !not_needed.is_empty() {
        lines.push(format!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        ));
    }
    for (name, why) in &failed {
        lines.push(format!(
            "Error completing leader election ({kind}) for partition: {name}: {why}"
        ));
    }
    (lines, failed.len())
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let Some(bootstrap) = a.bootstrap_server.clone() else {
        eprintln!("Missing required option(s) [bootstrap-server]");
        return Ok(1);
    };
    let Some(kind) = a.election_type.as_deref() else {
        eprintln!("Missing required option(s) [election-type]");
        return Ok(1);
    };
    let election = match election_type(kind) {
        Ok(e) => e,
        Err(m) => {
            eprintln!("{m}");
            return Ok(1);
        }
    };
    let sources = [
        a.all_topic_partitions,
        a.topic.is_some(),
        a.path_to_json_file.is_some(),
    ];
    if sources.iter().filter(|x| **x).count() != 1 {
        eprintln!("One and only one of the following options is required: all-topic-partitions, topic, path-to-json-file");
        return Ok(1);
    }
    if a.partition.is_some() && a.topic.is_none() {
        eprintln!("Option partition is only allowed with topic");
        return Ok(1);
    }
    let partitions: Option<Vec<(String, i32)>> = if a.all_topic_partitions {
        None
    } else if let Some(path) = &a.path_to_json_file {
        Some(parse_partitions_json(&std::fs::read_to_string(path)?)?)
    } else {
        // --topic: filled in `run` (from Metadata when no --partition is given).
        Some(Vec::new())
    };
    let rt = super::runtime()?;
    rt.block_on(run(&a, bootstrap, election, partitions))
}

async fn run(
    a: &Args,
    bootstrap: String,
    election: i8,
    partitions: Option<Vec<(String, i32)>>,
) -> anyhow::Result<u8> {
    let p = props::merged(a.admin_config.as_deref(), &[])?;
    let cfg = props::client_config(
        Some(&bootstrap),
        &p,
        "adminclient-1",
        Duration::from_secs(60),
    )?;
    let mut cluster = Cluster::connect(cfg).await?;
    // --topic without --partition: every partition of the topic, from Metadata.
    let partitions = match (&a.topic, partitions) {
        (Some(topic), _) => match a.partition {
            Some(p) => Some(vec![(topic.clone(), p)]),
            None => {
                let md = cluster
                    .metadata(Some(std::slice::from_ref(topic)), false)
                    .await?;
                let t = md
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                    .filter(|t| t.error_code == 0)
                    .ok_or_else(|| anyhow!("Topic {topic} does not exist"))?;
                Some(
                    t.partitions
                        .iter()
                        .map(|p| (topic.clone(), p.partition_index))
                        .collect(),
                )
            }
        },
        (None, p) => p,
    };
    let mut req = ElectLeadersRequest::default();
    req.election_type = election;
    req.timeout_ms = 30_000;
    req.topic_partitions = partitions.map(|list| {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in list {
            by_topic.entry(t).or_default().push(p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(t)))
                    .with_partitions(ps)
            })
            .collect()
    });
    let (resp, _) = cluster.any().send(&req).await?;
    if resp.error_code != 0 {
        bail!("{}", error_text(resp.error_code, None));
    }
    let kind = if election == 0 {
        "PREFERRED"
    } else {
        "UNCLEAN"
    };
    let (lines, failed) = format_result(kind, &resp);
    for l in &lines {
        println!("{l}");
    }
    if failed > 0 {
        eprintln!("Error: {failed} replica(s) could not be elected");
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };

    #[test]
    fn flags_and_files_as_kafka_reads_them() {
        assert_eq!(election_type("PREFERRED"), Ok(0));
        assert_eq!(election_type("unclean"), Ok(1));
        assert!(election_type("eager").is_err());
        let parts = parse_partitions_json(
            r#"{"partitions": [{"topic": "a", "partition": 1}, {"topic": "b", "partition": 0}]}"#,
        )
        .unwrap();
        assert_eq!(parts, vec![("a".to_string(), 1), ("b".to_string(), 0)]);
        assert!(parse_partitions_json(
            r#"{"partitions": [{"topic": "a", "partition": 1}, {"topic": "a", "partition": 1}]}"#
        )
        .is_err());
        assert!(parse_partitions_json(r#"{"topics": []}"#).is_err());
    }

    #[test]
    fn output_as_kafka_prints_it() {
        let result = |p: i32, code: i16| {
            let mut r = PartitionResult::default();
            r.partition_id = p;
            r.error_code = code;
            r
        };
        let mut t = ReplicaElectionResult::default();
        t.topic = TopicName(StrBytes::from_static_str("t"));
        t.partition_result = vec![result(0, 0), result(1, 84), result(2, 0), result(3, 80)];
        let mut resp = ElectLeadersResponse::default();
        resp.replica_election_results = vec![t];
        let (lines, failed) = format_result("PREFERRED", &resp);
        assert_eq!(failed, 1);
        assert_eq!(
            lines[0],
            "Successfully completed leader election (PREFERRED) for partitions t-0, t-2"
        );
        assert_eq!(lines[1], "Valid replica already elected for partitions t-1");
        assert!(lines[2]
            .starts_with("Error completing leader election (PREFERRED) for partition: t-3: "));
    }
}
