//! `kafka-storage`: `random-uuid`, `format` and `info`, as Kafka's `StorageTool`. `format`
//! writes `meta.properties` with the same code the broker runs at startup
//! (`rafka_storage::LogDirs::load_or_format`) on the directories of the same config loading
//! (`load_broker_config`), so the tool and the broker cannot disagree about a directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::{Parser, Subcommand};
use rafka_storage::{uuid_from_base64, uuid_to_base64, Backend, FileBackend, LogDir, LogDirs};

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
    },
    /// Print a random UUID.
    RandomUuid,
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_args(args) {
        Ok(a) => a,
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
        } => {
            let config = crate::load_broker_config(Some(&config), &[])?;
            if standalone
                && !config
                    .value_of("process.roles")
                    .unwrap_or_default()
                    .contains("controller")
            {
                bail!("You can only use --standalone on a controller.");
            }
            let dirs = directories(&config.log_dirs, &config.metadata_log_dir);
            let text = format(
                &dirs,
                &config.metadata_log_dir,
                &cluster_id,
                config.node_id,
                ignore_formatted,
                &mut || *uuid::Uuid::new_v4().as_bytes(),
            )?;
            print!("{text}");
            Ok(0)
        }
    }
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
/// missing. Returns the lines to print.
fn format(
    dirs: &[PathBuf],
    metadata_log_dir: &Path,
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
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
    for d in dirs {
        let dir = LogDir::new(d.clone(), backend.clone());
        match dir.read_meta_properties() {
            Ok(Some(_)) => formatted.push(d.clone()),
            Ok(None) => empty.push(d.clone()),
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
    let log_dirs = LogDirs::new(dirs, backend)?;
    log_dirs.create_all()?;
    // Verifies the formatted dirs against this cluster and node id (Kafka's
    // `MetaPropertiesEnsemble.verify`) and writes the missing ones: the broker's own code.
    let result = log_dirs.load_or_format(Some(cluster_id), node_id, new_id)?;
    if empty.is_empty() {
        return Ok("All of the log directories are already formatted.\n".to_string());
    }
    let mut out = String::new();
    for d in &result.formatted {
        let kind = if d == metadata_log_dir {
            "metadata directory"
        } else {
            "data directory"
        };
        out.push_str(&format!(
            "Formatting {kind} {} with cluster.id {cluster_id}.\n",
            d.display()
        ));
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
        let out = format(&dirs, &a, cid, 1, false, &mut counter()).map_err(|e| e.to_string());
        assert!(
            out.as_ref()
                .is_ok_and(|o| o.contains("Formatting metadata directory")),
            "{out:?}"
        );
        let again = format(&dirs, &a, cid, 1, false, &mut counter()).map_err(|e| e.to_string());
        assert_eq!(
            again.err(),
            Some(format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", a.display()))
        );
        let ignored = format(&dirs, &a, cid, 1, true, &mut counter()).map_err(|e| e.to_string());
        assert_eq!(
            ignored.ok().as_deref(),
            Some("All of the log directories are already formatted.\n")
        );
        // Another cluster id on formatted dirs is refused even with --ignore-formatted.
        assert!(format(&dirs, &a, "AAAAAAAAAAAAAAAAAAAAAQ", 1, true, &mut counter()).is_err());
        let (text, code) = info(&dirs);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("Found log directories:"), "{text}");
        assert!(text.contains(&format!("cluster.id={cid}")), "{text}");
        assert!(format(&dirs, &a, "not-a-uuid", 1, false, &mut counter()).is_err());
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
