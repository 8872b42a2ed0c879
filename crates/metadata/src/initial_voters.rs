//! The initial voters of a quorum formatted without a static voter list (`kafka-storage format
//! --standalone` or `--initial-controllers`): `__cluster_metadata-0/initial-voters.json` in the
//! metadata log dir, `{"voters":[{"id":1,"host":"kafka-1","port":9093,"directory_id":"..."}]}`.
//!
//! A controller with `controller.quorum.bootstrap.servers` and no `controller.quorum.voters`
//! takes its voters from here; they are then as static as configured ones (changing voters,
//! KIP-853, is not supported).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::raft_types::NodeId;

pub const FILE_NAME: &str = "initial-voters.json";

/// One initial voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialVoter {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
    /// Kafka's directory id of the voter's metadata log dir (base64), as given at format.
    pub directory_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    voters: Vec<InitialVoter>,
}

/// `<metadata_log_dir>/__cluster_metadata-0/initial-voters.json`.
pub fn path(metadata_log_dir: &Path) -> PathBuf {
    crate::quorum::quorum_dir(metadata_log_dir).join(FILE_NAME)
}

/// Writes the file atomically (a temporary file, fsynced, renamed over it, the directories
/// fsynced); returns its path. Voters are written by ascending id.
pub fn write(metadata_log_dir: &Path, voters: &[InitialVoter]) -> io::Result<PathBuf> {
    let p = path(metadata_log_dir);
    let mut sorted = voters.to_vec();
    sorted.sort_by_key(|v| v.id);
    let json = serde_json::to_vec(&File { voters: sorted })
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let backend = rafka_storage::FileBackend;
    if let Some(dir) = p.parent() {
        let created = !dir.exists();
        std::fs::create_dir_all(dir)?;
        if created {
            // The new directory's own entry must be durable too.
            crate::fsio::sync_parent(&backend, dir)?;
        }
    }
    crate::fsio::write_atomic(&backend, &p, &json)?;
    Ok(p)
}

/// The initial voters as `id -> host:port` (IPv6 in brackets), or `None` when the directory was
/// not formatted with any.
pub fn read(metadata_log_dir: &Path) -> io::Result<Option<BTreeMap<NodeId, String>>> {
    let p = path(metadata_log_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: File = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display())))?;
    if file.voters.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no voters", p.display()),
        ));
    }
    Ok(Some(
        file.voters
            .into_iter()
            .map(|v| {
                let host = if v.host.contains(':') {
                    format!("[{}]", v.host)
                } else {
                    v.host
                };
                (v.id, format!("{host}:{}", v.port))
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kafka_storage_format_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        std::fs::create_dir_all(path(dir.path()).parent().unwrap()).unwrap();
        std::fs::write(
            path(dir.path()),
            br#"{"voters":[{"id":2,"host":"::1","port":9094,"directory_id":"JEXY6aqzQY-32P5TStzaFg"},{"id":1,"host":"kafka-1","port":9093,"directory_id":"MvDxzVmcRsaTz33bUuRU6A"}]}"#,
        )
        .unwrap();
        let voters = read(dir.path()).unwrap().unwrap();
        assert_eq!(voters[&1], "kafka-1:9093");
        assert_eq!(voters[&2], "[::1]:9094");
        // What `write` produces reads back.
        let written = write(
            dir.path(),
            &[InitialVoter {
                id: 3,
                host: "c".into(),
                port: 1,
                directory_id: "MvDxzVmcRsaTz33bUuRU6A".into(),
            }],
        )
        .unwrap();
        assert_eq!(written, path(dir.path()));
        assert_eq!(read(dir.path()).unwrap().unwrap()[&3], "c:1");
        std::fs::write(path(dir.path()), b"{}").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
