//! `kafka-storage`: `random-uuid`, `format` and `info`, as Kafka's `StorageTool`. `format`
//! writes `meta.properties` with the same code the broker runs at startup
//! (`rafka_storage::LogDirs::load_or_format`) on the directories of the same config loading
//! (`load_broker_config`), so the tool and the broker cannot disagree about a directory.
//!
//! The KIP-853 forms of `format` (`--standalone`, `--initial-controllers`) also write the initial
//! voters to `<metadata.log.dir>/__cluster_metadata-0/initial-voters.json` (see
//! [`super::dynamic_voters`]), where Kafka writes its bootstrap voters snapshot; as in Kafka, the
//! metadata directory of a node among them gets the directory id given for it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use rafka_broker::config::{BrokerConfig, QuorumMode};
use rafka_storage::{uuid_from_base64, uuid_to_base64, Backend, FileBackend, LogDir, LogDirs};

use super::argparse;
use super::dynamic_voters::{write_initial_voters, DynamicVoter, DynamicVoters};

/// The `metadata.version` Kafka 4.1 formats with, which its `Formatting dynamic ...` lines name.
const KAFKA_METADATA_VERSION: &str = "4.1-IV1";

const FORMAT_USAGE: &str = "usage: kafka-storage format [-h] --config CONFIG --cluster-id CLUSTER_ID
                            [--ignore-formatted]
                            [--standalone | --no-initial-controllers | --initial-controllers INITIAL_CONTROLLERS]";

#[derive(Debug, Parser)]
#[command(
    name = "kafka-storage",
    about = "The Kafka storage tool.",
    disable_version_flag = true
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Get information about the Kafka log directories on this node.
    Info {
        /// The Kafka configuration file to use.
        #[arg(short = 'c', long = "config", required = true)]
        config: PathBuf,
    },
    /// Format the Kafka log directories on this node.
    Format {
        /// The Kafka configuration file to use.
        #[arg(short = 'c', long = "config", required = true)]
        config: PathBuf,
        /// The cluster ID to use.
        #[arg(short = 't', long = "cluster-id", required = true)]
        cluster_id: String,
        /// When this option is passed, the format command will skip over already formatted
        /// directories rather than failing.
        #[arg(short = 'g', long = "ignore-formatted")]
        ignore_formatted: bool,
        /// Used to initialize a controller as a single-node dynamic quorum.
        #[arg(short = 's', long = "standalone")]
        standalone: bool,
        /// Used to initialize a server without a dynamic quorum topology.
        #[arg(short = 'N', long = "no-initial-controllers")]
        no_initial_controllers: bool,
        /// Used to initialize a server with a specific dynamic quorum topology. The argument is a
        /// comma-separated list of id@hostname:port:directory. The same values must be used to
        /// format all nodes. For example:
        /// 0@example.com:8082:JEXY6aqzQY-32P5TStzaFg,1@example.com:8083:MvDxzVmcRsaTz33bUuRU6A,2@example.com:8084:07R5amHmR32VDA6jHkGbTA
        #[arg(
            short = 'I',
            long = "initial-controllers",
            value_name = "INITIAL_CONTROLLERS"
        )]
        initial_controllers: Option<String>,
    },
    /// Print a random UUID.
    RandomUuid,
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let (a, matches) = match argparse::parse_with_matches::<Args>(args) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    match a.command {
        Command::RandomUuid => {
            println!("{}", random_uuid(&mut || *uuid::Uuid::new_v4().as_bytes()));
            Ok(0)
        }
        Command::Info { config } => {
            let config = crate::load_broker_config(Some(&config), &[])?;
            let dirs = directories(&config.log_dirs, &config.metadata_log_dir);
            let (text, code) = info(&dirs);
            print!("{text}");
            Ok(code)
        }
        Command::Format {
            config,
            cluster_id,
            ignore_formatted,
            standalone,
            no_initial_controllers: _,
            initial_controllers,
        } => {
            if let Some(msg) = quorum_flags_conflict(&matches) {
                return Ok(argparse::usage_error(
                    FORMAT_USAGE,
                    "kafka-storage format",
                    &msg,
                ));
            }
            let config = crate::load_broker_config(Some(&config), &[])?;
            let mut rng = || *uuid::Uuid::new_v4().as_bytes();
            let initial_voters = match (&initial_controllers, standalone) {
                (Some(text), _) => Some(DynamicVoters::parse(text).map_err(|e| anyhow!(e))?),
                (None, true) => standalone_voters(&config, &mut rng)?,
                (None, false) => None,
            };
            let dirs = directories(&config.log_dirs, &config.metadata_log_dir);
            let text = format(
                &dirs,
                &config.metadata_log_dir,
                &cluster_id,
                config.node_id,
                ignore_formatted,
                initial_voters.as_ref(),
                &mut rng,
            )?;
            print!("{text}");
            Ok(0)
        }
    }
}

/// argparse4j's mutually exclusive group of `format`'s quorum flags: the message for the second
/// one given (`argument --standalone/-s: not allowed with argument --no-initial-controllers/-N`).
fn quorum_flags_conflict(matches: &clap::ArgMatches) -> Option<String> {
    matches.subcommand_matches("format").and_then(|m| {
        argparse::mutex_violation(
            m,
            &[
                ("standalone", "--standalone/-s"),
                ("no_initial_controllers", "--no-initial-controllers/-N"),
                ("initial_controllers", "--initial-controllers/-I"),
            ],
        )
    })
}

/// The first controller listener as other nodes reach it (Kafka's
/// `effectiveAdvertisedControllerListeners.head`): for each name of `controller.listener.names`
/// in order, its `advertised.listeners` entry, else its `listeners` entry. Host and port.
fn first_controller_endpoint(config: &BrokerConfig) -> Option<(String, u16)> {
    let advertised: Vec<(String, String, u16)> = config
        .explicit
        .get("advertised.listeners")
        .map(|text| parse_endpoints(text))
        .unwrap_or_default();
    config.controller_listener_names.iter().find_map(|name| {
        advertised
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h, p)| (h.clone(), *p))
            .or_else(|| {
                config
                    .controller_listeners
                    .iter()
                    .find(|l| &l.name == name)
                    .map(|l| (l.host.clone(), l.port))
            })
    })
}

/// `NAME://host:port` entries (an IPv6 host in brackets), the ones that parse.
fn parse_endpoints(text: &str) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, rest)) = entry.split_once("://") else {
            continue;
        };
        let parsed = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:"),
            None => rest.rsplit_once(':'),
        };
        if let Some((host, port)) = parsed {
            if let Ok(port) = port.parse::<u16>() {
                out.push((name.to_string(), host.to_string(), port));
            }
        }
    }
    out
}

/// `--standalone`: this controller alone, `<node.id>@<host>:<port>:<random directory id>` from
/// its first controller listener (a wildcard or empty host becomes `localhost`), as Kafka's
/// `createStandaloneDynamicVoters`. `None` for a rafka standalone node (neither voters nor
/// bootstrap servers) without a controller listener: it is a quorum of itself and reads no
/// initial voters.
fn standalone_voters(
    config: &BrokerConfig,
    new_id: &mut dyn FnMut() -> [u8; 16],
) -> anyhow::Result<Option<DynamicVoters>> {
    if !config.process_roles.controller {
        bail!("You can only use --standalone on a controller.");
    }
    let Some((host, port)) = first_controller_endpoint(config) else {
        if config.quorum_mode() == QuorumMode::Standalone {
            return Ok(None);
        }
        bail!("No controller listeners found.");
    };
    let host = match host.as_str() {
        "" | "0.0.0.0" | "::" => "localhost".to_string(),
        _ => host,
    };
    let directory_id = uuid_from_base64(&random_uuid(new_id)).unwrap_or_default();
    let voter = DynamicVoter {
        node_id: config.node_id,
        host,
        port,
        directory_id,
    };
    DynamicVoters::new(vec![voter])
        .map(Some)
        .map_err(|e| anyhow!(e))
}

/// Kafka's `Uuid.randomUuid`: never the zero or metadata-topic id, never starting with '-'
/// (so it cannot be mistaken for a flag).
pub fn random_uuid(rng: &mut dyn FnMut() -> [u8; 16]) -> String {
    loop {
        let id = rng();
        let zero_or_meta = id[..15].iter().all(|b| *b == 0) && id[15] <= 1;
        let text = uuid_to_base64(&id);
        if !zero_or_meta && !text.starts_with('-') {
            return text;
        }
    }
}

/// The log dirs plus the metadata log dir when it is not one of them, in config order.
fn directories(log_dirs: &[PathBuf], metadata_log_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = log_dirs.to_vec();
    if !dirs.iter().any(|d| d == metadata_log_dir) {
        dirs.push(metadata_log_dir.to_path_buf());
    }
    dirs
}

/// `format`: checks the cluster id and every dir, then writes `meta.properties` where it is
/// missing, and with `initial_voters` (`--standalone`, `--initial-controllers`) the metadata
/// directory's `__cluster_metadata-0/initial-voters.json` when that directory is formatted now.
/// Returns the lines to print.
fn format(
    dirs: &[PathBuf],
    metadata_log_dir: &Path,
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
    initial_voters: Option<&DynamicVoters>,
    new_id: &mut dyn FnMut() -> [u8; 16],
) -> anyhow::Result<String> {
    if uuid_from_base64(cluster_id).is_none() {
        bail!("Cluster ID string {cluster_id} does not appear to be a valid UUID: Input string `{cluster_id}` decoded as {} bytes, which is not equal to the expected 16 bytes of a base64-encoded UUID", cluster_id.len() * 3 / 4);
    }
    if node_id < 0 {
        bail!("You must specify a valid non-negative node ID.");
    }
    let backend: Arc<dyn Backend> = Arc::new(FileBackend);
    let mut formatted = Vec::new();
    let mut empty = Vec::new();
    // Which dirs `load_or_format` asks a new directory id for, in order: the unformatted ones
    // and the formatted ones written before directory ids existed.
    let mut needs_id = Vec::new();
    for d in dirs {
        let dir = LogDir::new(d.clone(), backend.clone());
        match dir.read_meta_properties() {
            Ok(Some(m)) => {
                needs_id.push(m.directory_id.is_none());
                formatted.push(d.clone());
            }
            Ok(None) => {
                needs_id.push(true);
                empty.push(d.clone());
            }
            Err(e) => bail!(
                "I/O error trying to read log directory {}: {e}",
                d.display()
            ),
        }
    }
    if let Some(first) = formatted.first() {
        if !ignore_formatted {
            bail!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                first.display()
            );
        }
    }
    let metadata_formatted_now = empty.iter().any(|d| d == metadata_log_dir);
    let initial_voters = initial_voters.filter(|_| metadata_formatted_now);
    // Kafka writes the voters before meta.properties, so that a directory that looks formatted
    // always has them.
    let voters_file = match initial_voters {
        Some(v) => Some(write_initial_voters(metadata_log_dir, v).map_err(|e| {
            anyhow!(
                "Unable to write the initial voters in {}: {e}",
                metadata_log_dir.display()
            )
        })?),
        None => None,
    };
    // A voter's metadata directory gets the directory id the voter was given (Kafka's
    // `Formatter`): it is the `load_or_format` call for that directory that returns it.
    let voter_directory_id = initial_voters
        .and_then(|v| v.get(node_id))
        .map(|v| v.directory_id);
    let metadata_call = dirs
        .iter()
        .position(|d| d == metadata_log_dir)
        .map(|at| needs_id[..at].iter().filter(|n| **n).count());
    let mut calls = 0usize;
    let mut ids = || {
        let call = calls;
        calls += 1;
        match voter_directory_id {
            Some(id) if metadata_call == Some(call) => id,
            _ => new_id(),
        }
    };
    // Verifies the formatted dirs against this cluster and node id (Kafka's
    // `MetaPropertiesEnsemble.verify`) and writes the missing ones: the broker's own code.
    let result = LogDirs::new(dirs, backend).and_then(|log_dirs| {
        log_dirs.create_all()?;
        log_dirs.load_or_format(Some(cluster_id), node_id, &mut ids)
    });
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(path) = &voters_file {
                let _ = std::fs::remove_file(path);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return Err(e.into());
        }
    };
    if empty.is_empty() {
        return Ok("All of the log directories are already formatted.\n".to_string());
    }
    let mut out = String::new();
    for d in &result.formatted {
        let line = if d != metadata_log_dir {
            format!(
                "Formatting data directory {} with cluster.id {cluster_id}.\n",
                d.display()
            )
        } else {
            match initial_voters {
                None => format!(
                    "Formatting metadata directory {} with cluster.id {cluster_id}.\n",
                    d.display()
                ),
                Some(v) => {
                    let kind = if v.get(node_id).is_some() {
                        "dynamic metadata voter directory"
                    } else {
                        "dynamic metadata directory"
                    };
                    format!(
                        "Formatting {kind} {} with metadata.version {KAFKA_METADATA_VERSION}.\n",
                        d.display()
                    )
                }
            }
        };
        out.push_str(&line);
    }
    Ok(out)
}

/// `info`: what Kafka's `infoCommand` prints, and its exit code.
fn info(dirs: &[PathBuf]) -> (String, u8) {
    let backend: Arc<dyn Backend> = Arc::new(FileBackend);
    let mut sorted = dirs.to_vec();
    sorted.sort();
    let mut problems = Vec::new();
    let mut found = Vec::new();
    let mut first: Option<rafka_storage::MetaProperties> = None;
    for d in &sorted {
        if !d.is_dir() {
            if d.exists() {
                problems.push(format!("{} is not a directory", d.display()));
            } else {
                problems.push(format!("{} does not exist", d.display()));
            }
            continue;
        }
        found.push(d.display().to_string());
        match LogDir::new(d.clone(), backend.clone()).read_meta_properties() {
            Ok(None) => problems.push(format!("{} is not formatted.", d.display())),
            Ok(Some(m)) => match &first {
                None => first = Some(m),
                Some(prev) => {
                    if prev.cluster_id != m.cluster_id {
                        problems.push("Mismatched cluster IDs between storage directories.".into());
                    } else if prev.node_id != m.node_id {
                        problems.push("Mismatched node IDs between storage directories.".into());
                    }
                }
            },
            Err(e) => problems.push(format!(
                "Error loading {}: {e}",
                d.join("meta.properties").display()
            )),
        }
    }
    let mut out = String::new();
    if sorted.is_empty() {
        return ("No directories specified.\n".into(), 0);
    }
    if !found.is_empty() {
        out.push_str(if found.len() == 1 {
            "Found log directory:\n"
        } else {
            "Found log directories:\n"
        });
        for d in &found {
            out.push_str(&format!("  {d}\n"));
        }
        out.push('\n');
    }
    if let Some(m) = &first {
        let mut props = BTreeMap::new();
        props.insert("cluster.id", m.cluster_id.clone());
        if let Some(id) = &m.directory_id {
            props.insert("directory.id", uuid_to_base64(id));
        }
        props.insert("node.id", m.node_id.to_string());
        props.insert("version", m.version.to_string());
        let body: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("Found metadata: {{{}}}\n\n", body.join(", ")));
    }
    if problems.is_empty() {
        return (out, 0);
    }
    out.push_str(if problems.len() == 1 {
        "Found problem:\n"
    } else {
        "Found problems:\n"
    });
    for p in &problems {
        out.push_str(&format!("  {p}\n"));
    }
    out.push('\n');
    (out, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> [u8; 16] {
        let mut n = 1000u128;
        move || {
            n += 1;
            n.to_be_bytes()
        }
    }

    #[test]
    fn uuids_skip_reserved_and_dash() {
        let mut seq = vec![[0u8; 16], [0xf8; 16], [7u8; 16]].into_iter();
        let mut rng = move || seq.next().unwrap_or([9u8; 16]);
        let id = random_uuid(&mut rng);
        assert_eq!(id, uuid_to_base64(&[7u8; 16]));
        assert_eq!(id.len(), 22);
    }

    #[test]
    fn format_then_refuse_then_ignore() {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(tmp) = tmp else { return };
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let dirs = vec![a.clone(), b.clone()];
        let cid = "5L6g3nShT-eMCtK--X86sw";
        let out = format(&dirs, &a, cid, 1, false, None, &mut counter()).map_err(|e| e.to_string());
        assert!(
            out.as_ref()
                .is_ok_and(|o| o.contains("Formatting metadata directory")),
            "{out:?}"
        );
        let again =
            format(&dirs, &a, cid, 1, false, None, &mut counter()).map_err(|e| e.to_string());
        assert_eq!(
            again.err(),
            Some(format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", a.display()))
        );
        let ignored =
            format(&dirs, &a, cid, 1, true, None, &mut counter()).map_err(|e| e.to_string());
        assert_eq!(
            ignored.ok().as_deref(),
            Some("All of the log directories are already formatted.\n")
        );
        // Another cluster id on formatted dirs is refused even with --ignore-formatted.
        assert!(format(
            &dirs,
            &a,
            "AAAAAAAAAAAAAAAAAAAAAQ",
            1,
            true,
            None,
            &mut counter()
        )
        .is_err());
        let (text, code) = info(&dirs);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("Found log directories:"), "{text}");
        assert!(text.contains(&format!("cluster.id={cid}")), "{text}");
        assert!(format(&dirs, &a, "not-a-uuid", 1, false, None, &mut counter()).is_err());
    }

    const A: &str = "JEXY6aqzQY-32P5TStzaFg";
    const B: &str = "MvDxzVmcRsaTz33bUuRU6A";
    const C: &str = "07R5amHmR32VDA6jHkGbTA";
    const CID: &str = "5L6g3nShT-eMCtK--X86sw";

    fn three_voters() -> DynamicVoters {
        let text = format!("3@kafka-3:9093:{C},1@kafka-1:9093:{A},2@kafka-2:9093:{B}");
        DynamicVoters::parse(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn directory_id_of(dir: &Path) -> Option<String> {
        let meta = LogDir::new(dir.to_path_buf(), Arc::new(FileBackend)).read_meta_properties();
        meta.ok()
            .flatten()
            .and_then(|m| m.directory_id)
            .map(|id| uuid_to_base64(&id))
    }

    #[test]
    fn initial_controllers_write_the_voters_file() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let data = tmp.path().join("data");
        let meta = tmp.path().join("meta");
        let dirs = vec![data.clone(), meta.clone()];
        let voters = three_voters();
        let out = format(&dirs, &meta, CID, 1, false, Some(&voters), &mut counter())
            .map_err(|e| e.to_string());
        assert_eq!(
            out,
            Ok(format!(
                "Formatting data directory {} with cluster.id {CID}.\n\
                 Formatting dynamic metadata voter directory {} with metadata.version 4.1-IV1.\n",
                data.display(),
                meta.display()
            ))
        );
        let json = std::fs::read_to_string(meta.join("__cluster_metadata-0/initial-voters.json"))
            .unwrap_or_default();
        assert_eq!(
            json,
            format!(
                "{{\"voters\":[\
                 {{\"id\":1,\"host\":\"kafka-1\",\"port\":9093,\"directory_id\":\"{A}\"}},\
                 {{\"id\":2,\"host\":\"kafka-2\",\"port\":9093,\"directory_id\":\"{B}\"}},\
                 {{\"id\":3,\"host\":\"kafka-3\",\"port\":9093,\"directory_id\":\"{C}\"}}]}}"
            )
        );
        // The voter's metadata directory carries its directory id; the data dir a fresh one.
        assert_eq!(directory_id_of(&meta).as_deref(), Some(A));
        assert!(directory_id_of(&data).is_some_and(|id| id != A));
        // Nothing is left behind but the file.
        let names: Vec<String> = std::fs::read_dir(meta.join("__cluster_metadata-0"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, vec!["initial-voters.json".to_string()]);
    }

    #[test]
    fn metadata_log_dir_among_the_log_dirs_gets_the_voter_id() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let dirs = vec![a.clone(), b.clone()];
        let voters = three_voters();
        let out = format(&dirs, &b, CID, 2, false, Some(&voters), &mut counter())
            .map_err(|e| e.to_string());
        assert!(
            out.as_ref().is_ok_and(|o| o.contains(&format!(
                "Formatting dynamic metadata voter directory {} with metadata.version 4.1-IV1.",
                b.display()
            ))),
            "{out:?}"
        );
        assert_eq!(directory_id_of(&b).as_deref(), Some(B));
        assert!(b.join("__cluster_metadata-0/initial-voters.json").is_file());
        assert!(!a.join("__cluster_metadata-0").exists());
    }

    #[test]
    fn a_node_outside_the_initial_controllers_gets_a_dynamic_metadata_directory() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let meta = tmp.path().join("meta");
        let voters = three_voters();
        let out = format(
            std::slice::from_ref(&meta),
            &meta,
            CID,
            4,
            false,
            Some(&voters),
            &mut counter(),
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            out,
            Ok(format!(
                "Formatting dynamic metadata directory {} with metadata.version 4.1-IV1.\n",
                meta.display()
            ))
        );
        let written = rafka_metadata::initial_voters::read(&meta).map_err(|e| e.to_string());
        let expected: std::collections::BTreeMap<u64, String> = voters
            .voters()
            .map(|v| (v.node_id as u64, format!("{}:{}", v.host, v.port)))
            .collect();
        assert_eq!(written, Ok(Some(expected)));
        assert!(directory_id_of(&meta).is_some_and(|id| ![A, B, C].contains(&id.as_str())));
    }

    #[test]
    fn no_voters_file_without_initial_controllers_or_when_already_formatted() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let meta = tmp.path().join("meta");
        let dirs = vec![meta.clone()];
        // --no-initial-controllers (or no flag): the plain line, nothing extra.
        let out =
            format(&dirs, &meta, CID, 1, false, None, &mut counter()).map_err(|e| e.to_string());
        assert_eq!(
            out,
            Ok(format!(
                "Formatting metadata directory {} with cluster.id {CID}.\n",
                meta.display()
            ))
        );
        assert!(!meta.join("__cluster_metadata-0").exists());
        // An already formatted metadata directory is skipped with -g, voters file included.
        let voters = three_voters();
        let again = format(&dirs, &meta, CID, 1, true, Some(&voters), &mut counter())
            .map_err(|e| e.to_string());
        assert_eq!(
            again.as_deref(),
            Ok("All of the log directories are already formatted.\n")
        );
        assert!(!meta.join("__cluster_metadata-0").exists());
    }

    #[test]
    fn a_failed_format_removes_the_voters_file() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let a = tmp.path().join("a");
        let meta = tmp.path().join("meta");
        // `a` belongs to another cluster: formatting fails after the checks of its own.
        assert!(format(
            std::slice::from_ref(&a),
            &a,
            "AAAAAAAAAAAAAAAAAAAAAQ",
            1,
            false,
            None,
            &mut counter()
        )
        .is_ok());
        let dirs = vec![a.clone(), meta.clone()];
        let voters = three_voters();
        let out = format(&dirs, &meta, CID, 1, true, Some(&voters), &mut counter());
        assert!(out.is_err());
        assert!(!meta.join("__cluster_metadata-0").exists());
    }

    fn config(lines: &[(&str, &str)]) -> BrokerConfig {
        let props: BTreeMap<String, String> = lines
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::from_props(&props)
            .map(|(c, _)| c)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn standalone_builds_this_controller_from_its_first_controller_listener() {
        let base = [
            ("process.roles", "controller"),
            ("node.id", "7"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "CONTROLLER://:9093"),
        ];
        let mut seq = vec![[7u8; 16]].into_iter();
        let mut rng = move || seq.next().unwrap_or([9u8; 16]);
        let voters = standalone_voters(&config(&base), &mut rng).map_err(|e| e.to_string());
        let expected = format!("7@localhost:9093:{}", uuid_to_base64(&[7u8; 16]));
        assert_eq!(voters.map(|v| v.map(|v| v.to_string())), Ok(Some(expected)));
        // The advertised controller listener wins over the bound one.
        let mut advertised = base.to_vec();
        advertised.push(("advertised.listeners", "CONTROLLER://ctrl-7.example:19093"));
        let voters = standalone_voters(&config(&advertised), &mut counter())
            .ok()
            .flatten();
        let v = voters.as_ref().and_then(|v| v.get(7));
        assert_eq!(
            v.map(|v| (v.host.as_str(), v.port)),
            Some(("ctrl-7.example", 19093))
        );
        // A bound wildcard host is advertised as localhost.
        let mut wildcard = base.to_vec();
        wildcard[4] = ("listeners", "CONTROLLER://0.0.0.0:9094");
        let voters = standalone_voters(&config(&wildcard), &mut counter())
            .ok()
            .flatten();
        let v = voters.as_ref().and_then(|v| v.get(7));
        assert_eq!(
            v.map(|v| (v.host.as_str(), v.port)),
            Some(("localhost", 9094))
        );
    }

    #[test]
    fn standalone_is_only_for_controllers() {
        let broker = config(&[
            ("process.roles", "broker"),
            ("node.id", "2"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9092"),
        ]);
        assert_eq!(
            standalone_voters(&broker, &mut counter())
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("You can only use --standalone on a controller.")
        );
        // rafka's standalone node with no controller listener: a quorum of itself, nothing to
        // write (the plain format).
        let single = config(&[]);
        assert!(matches!(
            standalone_voters(&single, &mut counter()),
            Ok(None)
        ));
    }

    fn conflict(args: &[&str]) -> Option<String> {
        let mut all = vec!["kafka-storage", "format", "-c", "x.properties", "-t", CID];
        all.extend_from_slice(args);
        let args: Vec<OsString> = all.iter().map(OsString::from).collect();
        let (_, m) = argparse::parse_with_matches::<Args>(args).ok()?;
        quorum_flags_conflict(&m)
    }

    #[test]
    fn quorum_flags_are_mutually_exclusive() {
        let ic = format!("1@h:9093:{A}");
        assert_eq!(conflict(&["-s"]), None);
        assert_eq!(conflict(&["-N"]), None);
        assert_eq!(conflict(&["-I", &ic]), None);
        assert_eq!(
            conflict(&["--no-initial-controllers", "--standalone"]).as_deref(),
            Some("argument --standalone/-s: not allowed with argument --no-initial-controllers/-N")
        );
        assert_eq!(
            conflict(&["--no-initial-controllers", "--initial-controllers", &ic]).as_deref(),
            Some(
                "argument --initial-controllers/-I: not allowed with argument \
                 --no-initial-controllers/-N"
            )
        );
        assert_eq!(
            conflict(&["-I", &ic, "-s"]).as_deref(),
            Some("argument --standalone/-s: not allowed with argument --initial-controllers/-I")
        );
    }

    #[test]
    fn info_reports_unformatted() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let (text, code) = info(&[tmp.path().to_path_buf(), tmp.path().join("missing")]);
        assert_eq!(code, 1);
        assert!(text.contains("is not formatted."), "{text}");
        assert!(text.contains("does not exist"), "{text}");
    }
}
