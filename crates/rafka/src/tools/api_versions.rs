//! `kafka-broker-api-versions`: every broker's ApiVersions, printed as Kafka's
//! `BrokerApiVersionsCommand` prints `NodeApiVersions` (including the `[usable: N]` version
//! this client would pick and `UNSUPPORTED` for client APIs the broker lacks).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kafka_protocol::messages::ApiKey;
use rafka_client::PeerVersions;

use super::client::{client_max_version, BrokerInfo, Cluster, Conn};
use super::props;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-broker-api-versions",
    about = "This tool helps to retrieve broker version information.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: The server to connect to.
    #[arg(
        long = "bootstrap-server",
        value_name = "String: server(s) to use for bootstrapping"
    )]
    bootstrap_server: Option<String>,
    /// A property file containing configs to be passed to Admin Client.
    #[arg(
        long = "command-config",
        value_name = "String: command config property file"
    )]
    command_config: Option<PathBuf>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// APIs only a controller (or a ZooKeeper-era broker) serves; Kafka's `ApiKeys.clientApis()`
/// leaves them out, so their absence is not reported as UNSUPPORTED.
const NOT_CLIENT_APIS: &[i16] = &[4, 5, 6, 7, 52, 53, 54, 56, 58, 59, 62, 63, 67, 70, 73, 82];

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    if a.bootstrap_server.is_none() {
        eprintln!("Missing required argument \"[bootstrap-server]\"");
        return Ok(1);
    }
    let rt = super::runtime()?;
    rt.block_on(run(&a))
}

async fn run(a: &Args) -> anyhow::Result<u8> {
    let p = props::merged(a.command_config.as_deref(), &[])?;
    let cfg = props::client_config(
        a.bootstrap_server.as_deref(),
        &p,
        "adminclient-1",
        Duration::from_secs(30),
    )?;
    let mut cluster = Cluster::connect(cfg.clone()).await?;
    let md = cluster.metadata(Some(&[]), false).await?;
    let mut brokers: Vec<BrokerInfo> = md
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    for b in &brokers {
        let node = format!(
            "{}:{} (id: {} rack: {})",
            b.host,
            b.port,
            b.id,
            b.rack.as_deref().unwrap_or("null")
        );
        match Conn::connect(&b.addr(), &cfg).await {
            Ok(conn) => println!("{node} -> {}", format_versions(&conn.broker_versions)),
            Err(e) => println!("{node} -> ERROR: {e:#}"),
        }
    }
    Ok(0)
}

/// Kafka's `NodeApiVersions.toString(true)`.
pub fn format_versions(broker: &PeerVersions) -> String {
    let mut lines: BTreeMap<i16, String> = BTreeMap::new();
    for (key, (min, max)) in broker.iter() {
        let range = if min == max {
            min.to_string()
        } else {
            format!("{min} to {max}")
        };
        let text = match ApiKey::try_from(key) {
            Ok(k) => {
                let ours = k.valid_versions();
                let ours_max = client_max_version(k);
                let usable = if ours_max < min {
                    " [unusable: node too new]".to_string()
                } else if max < ours.min {
                    " [unusable: node too old]".to_string()
                } else {
                    format!(" [usable: {}]", ours_max.min(max))
                };
                format!("{k:?}({key}): {range}{usable}")
            }
            Err(()) => format!("UNKNOWN({key}): {range}"),
        };
        lines.insert(key, text);
    }
    for k in ApiKey::iter() {
        let id = k as i16;
        if !NOT_CLIENT_APIS.contains(&id) && !lines.contains_key(&id) {
            lines.insert(id, format!("{k:?}({id}): UNSUPPORTED"));
        }
    }
    let body: Vec<String> = lines.into_values().collect();
    format!("(\n\t{}\n)", body.join(",\n\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_layout() {
        let m = PeerVersions::from_ranges([(0, (3, 11)), (18, (0, 4)), (999, (1, 1))]);
        let s = format_versions(&m);
        assert!(
            s.starts_with("(\n\tProduce(0): 3 to 11 [usable: 11],\n\tFetch(1): UNSUPPORTED,"),
            "{s}"
        );
        assert!(
            s.contains("\n\tApiVersions(18): 0 to 4 [usable: 4],"),
            "{s}"
        );
        assert!(s.ends_with("\tUNKNOWN(999): 1\n)"), "{s}");
        assert!(!s.contains("Vote(52)"));
    }
}
