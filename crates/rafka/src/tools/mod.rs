//! Kafka's command-line tools as subcommands of the `rafka` binary (a multi-call binary: invoked
//! as `kafka-topics.sh` through a symlink it acts as that tool). Each tool talks to brokers over
//! the Kafka protocol only, so it works against any Kafka cluster.
//!
//! Layout: [`client`] is the shared async client (connections, version negotiation, Metadata,
//! coordinator lookup); [`props`] reads Java properties files and client settings; one module per
//! tool ([`topics`], [`api_versions`], [`storage`], [`producer`], [`consumer`], [`groups`],
//! [`configs`], [`metadata_quorum`], [`leader_election`], [`reassign_partitions`]) with its flags (clap, in Kafka's spelling), its pure
//! parsing/formatting parts (unit-tested) and its I/O; [`argparse`] gives the argparse4j messages
//! of the tools Kafka parses with argparse4j, [`dynamic_voters`] Kafka's `--initial-controllers`
//! syntax.

pub mod api_versions;
pub mod argparse;
pub mod client;
pub mod configs;
pub mod consumer;
pub mod dynamic_voters;
pub mod groups;
pub mod leader_election;
pub mod metadata_quorum;
pub mod producer;
pub mod props;
pub mod reassign_partitions;
pub mod storage;
pub mod topics;

use std::ffi::OsString;

/// The tool names this binary answers to (also with a `.sh` suffix).
pub const TOOLS: &[&str] = &[
    "kafka-topics",
    "kafka-broker-api-versions",
    "kafka-storage",
    "kafka-console-producer",
    "kafka-console-consumer",
    "kafka-consumer-groups",
    "kafka-configs",
    "kafka-metadata-quorum",
    "kafka-leader-election",
    "kafka-reassign-partitions",
];

/// The tool a name refers to (`kafka-topics`, `kafka-topics.sh`, `/opt/kafka/bin/kafka-topics.sh`).
pub fn tool_name(arg0: &str) -> Option<&'static str> {
    let base = arg0.rsplit('/').next().unwrap_or(arg0);
    let base = base.strip_suffix(".sh").unwrap_or(base);
    TOOLS.iter().copied().find(|t| *t == base)
}

/// Runs tool `name` with `args` (args[0] is the tool name); returns the process exit code.
pub fn run_tool(name: &str, args: Vec<OsString>) -> u8 {
    let result = match name {
        "kafka-topics" => topics::main(args),
        "kafka-broker-api-versions" => api_versions::main(args),
        "kafka-storage" => storage::main(args),
        "kafka-console-producer" => producer::main(args),
        "kafka-console-consumer" => consumer::main(args),
        "kafka-consumer-groups" => groups::main(args),
        "kafka-configs" => configs::main(args),
        "kafka-metadata-quorum" => metadata_quorum::main(args),
        "kafka-leader-election" => leader_election::main(args),
        "kafka-reassign-partitions" => reassign_partitions::main(args),
        other => {
            eprintln!("unknown tool {other}");
            return 1;
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// Parses a tool's flags; `--help` prints usage and exits 0, a usage error prints it and gives
/// exit code 1 (Kafka's tools exit 1 on bad flags; clap's own default would be 2).
pub fn parse_args<T: clap::Parser>(args: Vec<OsString>) -> Result<T, u8> {
    match T::try_parse_from(args) {
        Ok(t) => Ok(t),
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            Err(code)
        }
    }
}

/// [`parse_args`], then Kafka's `--version` (every tool has the flag): `Err(exit code)` when the
/// run is over (usage, help or version printed).
pub fn parse_tool_args<T: clap::Parser>(
    args: Vec<OsString>,
    version_flag: impl Fn(&T) -> bool,
) -> Result<T, u8> {
    let a = parse_args::<T>(args)?;
    if version_flag(&a) {
        println!("{} (rafka)", env!("CARGO_PKG_VERSION"));
        return Err(0);
    }
    Ok(a)
}

/// A current-thread tokio runtime for one tool run.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_image_links_every_tool() {
        // The Dockerfile makes one symlink per name; a tool missing there is missing in the image.
        let dockerfile = include_str!("../../../../docker/Dockerfile");
        let start = dockerfile
            .find("tools=\"")
            .expect("tools list in the Dockerfile");
        let list = &dockerfile[start + 7..];
        let list = &list[..list.find('"').expect("end of the tools list")];
        let linked: Vec<&str> = list.split_whitespace().filter(|w| *w != "\\").collect();
        for tool in TOOLS {
            assert!(
                linked.contains(tool),
                "{tool} is not linked in docker/Dockerfile"
            );
        }
    }

    use super::*;

    #[test]
    fn names_resolve_with_and_without_sh() {
        assert_eq!(tool_name("kafka-topics"), Some("kafka-topics"));
        assert_eq!(
            tool_name("/opt/kafka/bin/kafka-topics.sh"),
            Some("kafka-topics")
        );
        assert_eq!(tool_name("kafka-storage.sh"), Some("kafka-storage"));
        assert_eq!(
            tool_name("kafka-metadata-quorum.sh"),
            Some("kafka-metadata-quorum")
        );
        assert_eq!(tool_name("rafka"), None);
        assert_eq!(tool_name("kafka-server-start.sh"), None);
    }
}
