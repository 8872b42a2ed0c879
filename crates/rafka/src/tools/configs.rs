//! `kafka-configs`: describe and alter topic and broker configs (DescribeConfigs and
//! IncrementalAlterConfigs), with Kafka 4.x's `ConfigCommand` flags and output. Also holds
//! [`describe_configs`], which `kafka-topics --describe` uses.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::client::{error_text, Cluster};
use super::props;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource` id (1 dynamic topic, 2 dynamic broker, 3 dynamic default broker,
    /// 4 static broker, 5 default, ...).
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Kafka's `ConfigEntry.isDefault`.
    pub fn is_default(&self) -> bool {
        self.source == 5
    }
}

/// Kafka's `ConfigSource` enum names (synonym printing).
pub fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// A config with its synonyms (for `kafka-configs --describe`).
#[derive(Debug, Clone)]
pub struct DescribedConfig {
    pub entry: ConfigEntry,
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// DescribeConfigs for several resources of one type; per resource either its entries or the
/// error text. Broker resources go to that broker (Kafka's admin does the same).
pub async fn describe_configs(
    cluster: &mut Cluster,
    resource_type: i8,
    names: &[String],
    synonyms: Option<&mut BTreeMap<String, Vec<DescribedConfig>>>,
) -> anyhow::Result<BTreeMap<String, Result<Vec<ConfigEntry>, String>>> {
    let want_synonyms = synonyms.is_some();
    let mut out = BTreeMap::new();
    let mut syn_out = BTreeMap::new();
    for chunk in names.chunks(if resource_type == RESOURCE_BROKER {
        1
    } else {
        1000
    }) {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(want_synonyms)
            .with_resources(
                chunk
                    .iter()
                    .map(|n| {
                        DescribeConfigsResource::default()
                            .with_resource_type(resource_type)
                            .with_resource_name(StrBytes::from_string(n.clone()))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            );
        let conn = match chunk.first().and_then(|n| n.parse::<i32>().ok()) {
            Some(id) if resource_type == RESOURCE_BROKER => cluster.broker(id).await?,
            _ => cluster.any(),
        };
        let (resp, _) = conn.send(&req).await?;
        for r in resp.results {
            let name = r.resource_name.to_string();
            if r.error_code != 0 {
                out.insert(
                    name,
                    Err(error_text(r.error_code, r.error_message.as_ref())),
                );
                continue;
            }
            let mut entries = Vec::new();
            let mut described = Vec::new();
            for c in r.configs {
                let source = c.config_source;
                let entry = ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    source,
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                };
                described.push(DescribedConfig {
                    entry: entry.clone(),
                    synonyms: c
                        .synonyms
                        .iter()
                        .map(|s| {
                            (
                                s.name.to_string(),
                                s.value.as_ref().map(|v| v.to_string()),
                                s.source,
                            )
                        })
                        .collect(),
                });
                entries.push(entry);
            }
            syn_out.insert(name.clone(), described);
            out.insert(name, Ok(entries));
        }
    }
    if let Some(s) = synonyms {
        *s = syn_out;
    }
    Ok(out)
}

#[derive(Debug, Parser)]
#[command(
    name = "kafka-configs",
    about = "This tool helps to manipulate and describe entity config for a topic, client, user, broker, ip, client-metrics or group",
    disable_version_flag = true
)]
pub struct Args {
    /// The Kafka servers to connect to.
    #[arg(long = "bootstrap-server", value_name = "String: server to connect to")]
    bootstrap_server: Option<String>,
    /// Property file containing configs to be passed to Admin Client.
    #[arg(
        long = "command-config",
        value_name = "String: command config property file"
    )]
    command_config: Option<PathBuf>,
    /// List configs for the given entity.
    #[arg(long)]
    describe: bool,
    /// Alter the configuration for the entity.
    #[arg(long)]
    alter: bool,
    /// Type of entity (topics/brokers/groups).
    #[arg(long = "entity-type", value_name = "String")]
    entity_type: Option<String>,
    /// Name of entity (topic name/broker id/group id).
    #[arg(long = "entity-name", value_name = "String")]
    entity_name: Option<String>,
    /// Default entity name for brokers (applies to corresponding entity type in command line).
    #[arg(long = "entity-default")]
    entity_default: bool,
    /// The topic's name (shortcut for --entity-type topics --entity-name).
    #[arg(long, value_name = "String")]
    topic: Option<String>,
    /// The broker's ID (shortcut for --entity-type brokers --entity-name).
    #[arg(long, value_name = "String")]
    broker: Option<String>,
    /// The group's ID (shortcut for --entity-type groups --entity-name).
    #[arg(long, value_name = "String")]
    group: Option<String>,
    /// The config for the cluster-wide broker default (shortcut for --entity-type brokers
    /// --entity-default).
    #[arg(long = "broker-defaults")]
    broker_defaults: bool,
    /// List all configs for the given topic or broker, including static and defaults.
    #[arg(long)]
    all: bool,
    /// Key Value pairs of configs to add. Square brackets can be used to group values which
    /// contain commas: 'k1=v1,k2=[v1,v2,v2],k3=v3'.
    #[arg(long = "add-config", value_name = "String")]
    add_config: Option<String>,
    /// Path to a properties file with configs to add.
    #[arg(long = "add-config-file", value_name = "String")]
    add_config_file: Option<PathBuf>,
    /// config keys to remove 'k1,k2'
    #[arg(long = "delete-config", value_name = "String")]
    delete_config: Option<String>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// Kafka's `--add-config` syntax: split on commas outside `[...]`, each `k=v`; brackets around a
/// value are dropped (`k=[a,b]` sets `a,b`).
pub fn parse_add_config(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth <= 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.trim().is_empty()) {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            anyhow!("Invalid entity config: all configs to be added must be in the format \"key=val\" or \"key=[val1,val2]\".")
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let target = match check_args(&a) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("{msg}");
            return Ok(1);
        }
    };
    let rt = super::runtime()?;
    match rt.block_on(run(&a, target)) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("{e:#}");
            Ok(1)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// "topics", "brokers" or "groups".
    entity_type: String,
    /// None: every entity of the type; Some(""): the broker default.
    name: Option<String>,
}

fn check_args(a: &Args) -> Result<Target, String> {
    if a.bootstrap_server.is_none() {
        return Err("One of the required --bootstrap-server, --boostrap-controller, or --zookeeper arguments must be specified".into());
    }
    if a.describe == a.alter {
        return Err("Command must include exactly one action: --describe, --alter".into());
    }
    let (entity_type, name) = if let Some(t) = &a.topic {
        ("topics".to_string(), Some(t.clone()))
    } else if let Some(b) = &a.broker {
        ("brokers".to_string(), Some(b.clone()))
    } else if let Some(g) = &a.group {
        ("groups".to_string(), Some(g.clone()))
    } else if a.broker_defaults {
        ("brokers".to_string(), Some(String::new()))
    } else {
        let t = a
            .entity_type
            .clone()
            .ok_or_else(|| "At least one entity type must be specified".to_string())?;
        if t != "topics" && t != "brokers" && t != "groups" {
            return Err(format!(
                "Invalid entity type {t}, the entity type must be one of topics, brokers, groups with a --bootstrap-server argument (this tool supports topics, brokers and groups)"
            ));
        }
        let name = if a.entity_default {
            if t != "brokers" {
                return Err("--entity-default is only supported for brokers here".into());
            }
            Some(String::new())
        } else {
            a.entity_name.clone()
        };
        (t, name)
    };
    if entity_type == "brokers" {
        if let Some(n) = name.as_deref().filter(|n| !n.is_empty()) {
            if n.parse::<i32>().is_err() {
                return Err(format!(
                    "The entity name for brokers must be a valid integer broker id, but it is: {n}"
                ));
            }
        }
    }
    if a.alter {
        if name.is_none() {
            return Err(if entity_type == "brokers" {
                "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips".into()
            } else {
                format!("An entity name must be specified with --alter of {entity_type}")
            });
        }
        if a.add_config.is_some() && a.add_config_file.is_some() {
            return Err("Only one of --add-config or --add-config-file must be specified".into());
        }
        if a.add_config.is_none() && a.add_config_file.is_none() && a.delete_config.is_none() {
            return Err("At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter".into());
        }
    }
    Ok(Target { entity_type, name })
}

async fn run(a: &Args, target: Target) -> anyhow::Result<()> {
    let p = props::merged(a.command_config.as_deref(), &[])?;
    let cfg = props::client_config(
        a.bootstrap_server.as_deref(),
        &p,
        "adminclient-1",
        Duration::from_secs(30),
    )?;
    let mut cluster = Cluster::connect(cfg).await?;
    let resource_type = resource_type_of(&target.entity_type);
    if a.describe {
        let names: Vec<String> = match &target.name {
            Some(n) => vec![n.clone()],
            None if resource_type == RESOURCE_GROUP => super::groups::list_groups(&mut cluster)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            None => {
                let md = cluster.metadata(None, false).await?;
                if resource_type == RESOURCE_TOPIC {
                    let mut v: Vec<String> = md
                        .topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                        .collect();
                    v.sort();
                    v
                } else {
                    let mut v: Vec<String> =
                        md.brokers.iter().map(|b| b.node_id.0.to_string()).collect();
                    v.push(String::new());
                    v
                }
            }
        };
        let mut described = BTreeMap::new();
        let results =
            describe_configs(&mut cluster, resource_type, &names, Some(&mut described)).await?;
        for n in &names {
            if let Some(Err(e)) = results.get(n) {
                bail!("{e}");
            }
            let entries = described.get(n).cloned().unwrap_or_default();
            print!(
                "{}",
                format_describe(&target.entity_type, n, &entries, a.all)
            );
        }
        return Ok(());
    }
    // --alter
    let name = target.name.clone().unwrap_or_default();
    let mut to_add = Vec::new();
    if let Some(f) = &a.add_config_file {
        to_add.extend(props::load_file(f)?);
    }
    if let Some(s) = &a.add_config {
        to_add.extend(parse_add_config(s)?);
    }
    let to_delete: Vec<String> = a
        .delete_config
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !to_delete.is_empty() {
        // Kafka refuses to delete a config that is not set dynamically on the entity.
        let current = describe_configs(
            &mut cluster,
            resource_type,
            std::slice::from_ref(&name),
            None,
        )
        .await?;
        let entries = match current.get(&name) {
            Some(Ok(e)) => e.clone(),
            Some(Err(e)) => bail!("{e}"),
            None => Vec::new(),
        };
        let dynamic = dynamic_source(resource_type, &name);
        let invalid: Vec<&String> = to_delete
            .iter()
            .filter(|k| !entries.iter().any(|e| &e.name == *k && e.source == dynamic))
            .collect();
        if !invalid.is_empty() {
            bail!(
                "Invalid config(s): {}",
                invalid
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    }
    let mut ops: Vec<AlterableConfig> = to_add
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    ops.extend(to_delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    }));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.clone()))
            .with_configs(ops),
    ]);
    let conn = match name.parse::<i32>() {
        Ok(id) if resource_type == RESOURCE_BROKER => cluster.broker(id).await?,
        _ => cluster.any(),
    };
    let (resp, _) = conn.send(&req).await?;
    for r in &resp.responses {
        if r.error_code != 0 {
            bail!("{}", error_text(r.error_code, r.error_message.as_ref()));
        }
    }
    if name.is_empty() {
        println!(
            "Completed updating default config for {} in the cluster.",
            target.entity_type
        );
    } else {
        println!(
            "Completed updating config for {} {name}.",
            singular(&target.entity_type)
        );
    }
    Ok(())
}

fn singular(entity_type: &str) -> &str {
    entity_type.strip_suffix('s').unwrap_or(entity_type)
}

fn resource_type_of(entity_type: &str) -> i8 {
    match entity_type {
        "topics" => RESOURCE_TOPIC,
        "groups" => RESOURCE_GROUP,
        _ => RESOURCE_BROKER,
    }
}

fn dynamic_source(resource_type: i8, name: &str) -> i8 {
    match (resource_type, name.is_empty()) {
        (RESOURCE_TOPIC, _) => 1,
        (RESOURCE_GROUP, _) => 8,
        (_, true) => 3,
        _ => 2,
    }
}

/// The lines Kafka's `describeResourceConfig` prints for one entity.
fn format_describe(
    entity_type: &str,
    name: &str,
    entries: &[DescribedConfig],
    all: bool,
) -> String {
    let mut out = String::new();
    if name.is_empty() {
        out.push_str(&format!(
            "Default configs for {entity_type} in the cluster are:\n"
        ));
    } else {
        out.push_str(&format!(
            "{} configs for {} {name} are:\n",
            if all { "All" } else { "Dynamic" },
            singular(entity_type)
        ));
    }
    let dynamic = dynamic_source(resource_type_of(entity_type), name);
    let mut shown: Vec<&DescribedConfig> = entries
        .iter()
        .filter(|e| all || e.entry.source == dynamic)
        .collect();
    shown.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    for e in shown {
        let synonyms: Vec<String> = e
            .synonyms
            .iter()
            .map(|(n, v, s)| format!("{}:{n}={}", source_name(*s), v.as_deref().unwrap_or("null")))
            .collect();
        out.push_str(&format!(
            "  {}={} sensitive={} synonyms={{{}}}\n",
            e.entry.name,
            e.entry.value.as_deref().unwrap_or("null"),
            e.entry.sensitive,
            synonyms.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_syntax() {
        let v = parse_add_config("a=1,b=[x,y],c=").unwrap_or_default();
        assert_eq!(
            v,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), String::new())
            ]
        );
        assert!(parse_add_config("novalue").is_err());
    }

    #[test]
    fn describe_lines() {
        let e = DescribedConfig {
            entry: ConfigEntry {
                name: "retention.ms".into(),
                value: Some("5".into()),
                source: 1,
                read_only: false,
                sensitive: false,
            },
            synonyms: vec![
                ("retention.ms".into(), Some("5".into()), 1),
                ("log.retention.ms".into(), None, 5),
            ],
        };
        let d = DescribedConfig {
            entry: ConfigEntry {
                name: "segment.ms".into(),
                value: Some("9".into()),
                source: 5,
                read_only: false,
                sensitive: false,
            },
            synonyms: vec![],
        };
        assert_eq!(
            format_describe("topics", "t", &[d.clone(), e.clone()], false),
            "Dynamic configs for topic t are:\n  retention.ms=5 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5, DEFAULT_CONFIG:log.retention.ms=null}\n"
        );
        assert!(format_describe("brokers", "", &[], false)
            .starts_with("Default configs for brokers in the cluster are:"));
        assert_eq!(
            format_describe("topics", "t", &[d, e], true)
                .lines()
                .count(),
            3
        );
    }

    #[test]
    fn arg_checks() {
        let p = |v: &[&str]| {
            let mut all = vec!["kafka-configs"];
            all.extend_from_slice(v);
            Args::try_parse_from(all)
                .map_err(|e| e.to_string())
                .and_then(|a| check_args(&a))
        };
        assert!(p(&[
            "--bootstrap-server",
            "h:1",
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "t"
        ])
        .is_ok());
        assert!(p(&[
            "--bootstrap-server",
            "h:1",
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "t"
        ])
        .is_err());
        assert!(p(&[
            "--bootstrap-server",
            "h:1",
            "--describe",
            "--entity-type",
            "users"
        ])
        .is_err());
        assert!(p(&[
            "--bootstrap-server",
            "h:1",
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "x"
        ])
        .is_err());
        assert_eq!(
            p(&[
                "--bootstrap-server",
                "h:1",
                "--describe",
                "--entity-type",
                "brokers",
                "--entity-default"
            ])
            .ok(),
            Some(Target {
                entity_type: "brokers".into(),
                name: Some(String::new())
            })
        );
    }
}
