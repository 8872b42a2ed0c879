//! [`LogDirs`]: all `log.dirs` entries of a node together. Each entry is a [`LogDir`] with its
//! own `meta.properties`, checkpoints and clean-shutdown marker; this module holds what needs
//! all of them at once:
//!
//! - formatting and checking `meta.properties` ([`LogDirs::load_or_format`]): every dir carries
//!   the same `cluster.id` and `node.id` and its own `directory.id` (KIP-858), as Kafka's
//!   `MetaPropertiesEnsemble` demands;
//! - finding which dir holds each partition at startup ([`LogDirs::locate_partitions`]), where a
//!   partition found in two dirs stops the start, as it stops Kafka's `LogManager`;
//! - choosing the dir of a new partition ([`Placement`]): the one with the fewest partitions,
//!   Kafka's `LogManager.nextLogDirs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::checkpoint::{uuid_to_base64, MetaProperties, TopicPartition};
use crate::error::StorageError;
use crate::logdir::LogDir;

/// The metadata log's directory (`__cluster_metadata-0`) sits in the first log dir by default;
/// it belongs to the Raft quorum, not to the partition logs (Kafka's `LogManager` skips it too).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Why the log dirs cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum LogDirsError {
    #[error("no log dir configured")]
    NoLogDirs,
    // `error` is not a `source`: the message already says it, and chains would repeat it.
    #[error("log dir {path}: {error}")]
    Storage { path: String, error: StorageError },
    #[error(
        "the cluster id {configured} does not match {stored} in meta.properties of {path}; \
         this directory belongs to another cluster"
    )]
    InconsistentClusterId {
        configured: String,
        stored: String,
        path: String,
    },
    #[error("node.id {configured} does not match node.id {stored} in meta.properties of {path}")]
    InconsistentNodeId {
        configured: i32,
        stored: i32,
        path: String,
    },
    #[error(
        "log dirs {first} and {second} have the same directory.id {id} in meta.properties (was \
         one copied from the other?); remove the directory.id line of one of them and a new one \
         is generated"
    )]
    DuplicateDirectoryId {
        id: String,
        first: String,
        second: String,
    },
    #[error(
        "duplicate log directories for {partition} are found in both {first} and {second}; \
         delete one of the two directories of this partition (the one in the log dir known to \
         have failed recently, or the stale copy) and start again"
    )]
    DuplicatePartition {
        partition: String,
        first: String,
        second: String,
    },
}

impl LogDirsError {
    fn storage(dir: &LogDir, error: StorageError) -> Self {
        LogDirsError::Storage {
            path: dir.path().display().to_string(),
            error,
        }
    }
}

/// What [`LogDirs::load_or_format`] found and settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// The cluster id every dir now carries.
    pub cluster_id: String,
    /// Each dir's `directory.id`, in `log.dirs` order.
    pub directory_ids: Vec<[u8; 16]>,
    /// Dirs that had no `meta.properties` and were formatted now.
    pub formatted: Vec<PathBuf>,
}

/// Kafka reserves directory ids whose high 64 bits are zero and low 64 bits below 100
/// (`DirectoryId.reserved`: UNASSIGNED, LOST, MIGRATING and room for more).
fn reserved_directory_id(id: &[u8; 16]) -> bool {
    id[..8].iter().all(|b| *b == 0)
        && u64::from_be_bytes(id[8..].try_into().unwrap_or([0; 8])) < 100
}

/// The `log.dirs` of a node, in configured order; a dir's index in that order names it
/// elsewhere ([`Placement`], the broker's partitions).
#[derive(Debug, Clone)]
pub struct LogDirs {
    dirs: Vec<LogDir>,
}

impl LogDirs {
    pub fn new(paths: &[PathBuf], backend: Arc<dyn Backend>) -> Result<Self, LogDirsError> {
        if paths.is_empty() {
            return Err(LogDirsError::NoLogDirs);
        }
        Ok(LogDirs {
            dirs: paths
                .iter()
                .map(|p| LogDir::new(p.clone(), backend.clone()))
                .collect(),
        })
    }

    pub fn dirs(&self) -> &[LogDir] {
        &self.dirs
    }

    pub fn get(&self, index: usize) -> Option<&LogDir> {
        self.dirs.get(index)
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Creates every dir that is missing. A dir that cannot be created fails the start: with
    /// one replica per partition here, running without it would hide its partitions' data.
    pub fn create_all(&self) -> Result<(), LogDirsError> {
        for d in &self.dirs {
            d.create().map_err(|e| LogDirsError::storage(d, e))?;
        }
        Ok(())
    }

    /// Reads every dir's `meta.properties` and checks them against each other and the config,
    /// then writes it where it is missing: the stored (or `configured`, or else a new) cluster
    /// id, `node_id`, and a fresh `directory.id` from `new_id` (randomness is passed in). A
    /// stored file without `directory.id` (written before Kafka 3.7) gets one, as Kafka adds it.
    pub fn load_or_format(
        &self,
        configured_cluster_id: Option<&str>,
        node_id: i32,
        new_id: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<Formatted, LogDirsError> {
        let mut stored = Vec::with_capacity(self.dirs.len());
        for d in &self.dirs {
            stored.push(
                d.read_meta_properties()
                    .map_err(|e| LogDirsError::storage(d, e))?,
            );
        }
        // The configured id wins; without one, the first stored id is the one all must match.
        let expected = configured_cluster_id
            .map(str::to_string)
            .or_else(|| stored.iter().flatten().next().map(|m| m.cluster_id.clone()));
        let mut seen_ids: HashMap<[u8; 16], usize> = HashMap::new();
        for (i, (d, m)) in self.dirs.iter().zip(&stored).enumerate() {
            let Some(m) = m else { continue };
            if let Some(c) = &expected {
                if *c != m.cluster_id {
                    return Err(LogDirsError::InconsistentClusterId {
                        configured: c.clone(),
                        stored: m.cluster_id.clone(),
                        path: d.path().display().to_string(),
                    });
                }
            }
            if m.node_id != node_id {
                return Err(LogDirsError::InconsistentNodeId {
                    configured: node_id,
                    stored: m.node_id,
                    path: d.path().display().to_string(),
                });
            }
            if let Some(id) = m.directory_id {
                if let Some(&first) = seen_ids.get(&id) {
                    return Err(LogDirsError::DuplicateDirectoryId {
                        id: uuid_to_base64(&id),
                        first: self.dirs[first].path().display().to_string(),
                        second: d.path().display().to_string(),
                    });
                }
                seen_ids.insert(id, i);
            }
        }
        let cluster_id = expected.unwrap_or_else(|| uuid_to_base64(&new_id()));
        let mut directory_ids = Vec::with_capacity(self.dirs.len());
        let mut formatted = Vec::new();
        for (d, m) in self.dirs.iter().zip(stored) {
            if let Some(id) = m.as_ref().and_then(|m| m.directory_id) {
                directory_ids.push(id);
                continue;
            }
            let id = loop {
                let id = new_id();
                if !reserved_directory_id(&id) && !seen_ids.contains_key(&id) {
                    break id;
                }
            };
            seen_ids.insert(id, directory_ids.len());
            let meta = match m {
                Some(m) => MetaProperties {
                    directory_id: Some(id),
                    ..m
                },
                None => {
                    formatted.push(d.path().to_path_buf());
                    MetaProperties {
                        version: 1,
                        cluster_id: cluster_id.clone(),
                        node_id,
                        directory_id: Some(id),
                    }
                }
            };
            d.write_meta_properties(&meta)
                .map_err(|e| LogDirsError::storage(d, e))?;
            directory_ids.push(id);
        }
        Ok(Formatted {
            cluster_id,
            directory_ids,
            formatted,
        })
    }

    /// Which dir holds each partition directory on disk (the metadata log's is not one). A
    /// partition in two dirs is an error (Kafka refuses to start too): which copy is current
    /// cannot be told from here.
    pub fn locate_partitions(&self) -> Result<HashMap<TopicPartition, usize>, LogDirsError> {
        let mut out: HashMap<TopicPartition, usize> = HashMap::new();
        for (i, d) in self.dirs.iter().enumerate() {
            for (tp, path) in d
                .partition_dirs()
                .map_err(|e| LogDirsError::storage(d, e))?
            {
                if tp.topic == METADATA_TOPIC {
                    continue;
                }
                if let Some(&first) = out.get(&tp) {
                    return Err(LogDirsError::DuplicatePartition {
                        partition: tp.dir_name(),
                        first: self.dirs[first].partition_path(&tp).display().to_string(),
                        second: path.display().to_string(),
                    });
                }
                out.insert(tp, i);
            }
        }
        Ok(out)
    }
}

/// Which log dir holds each partition, and where a new one goes. Sans-IO: it starts from
/// [`LogDirs::locate_partitions`] and is told about every placement and removal.
#[derive(Debug, Clone)]
pub struct Placement {
    dir_of: HashMap<TopicPartition, usize>,
    counts: Vec<usize>,
}

impl Placement {
    /// `dir_count` dirs holding the partitions in `located` (dir indexes below `dir_count`).
    pub fn new(dir_count: usize, located: HashMap<TopicPartition, usize>) -> Self {
        let mut counts = vec![0; dir_count.max(1)];
        let dir_of: HashMap<TopicPartition, usize> = located
            .into_iter()
            .filter(|(_, d)| *d < counts.len())
            .collect();
        for d in dir_of.values() {
            counts[*d] += 1;
        }
        Placement { dir_of, counts }
    }

    /// The dir holding `tp`, if it has one.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<usize> {
        self.dir_of.get(tp).copied()
    }

    /// The dir of `tp`: where it is, or for a new partition the dir with the fewest partitions
    /// (the first such in `log.dirs` order on a tie), which then holds it.
    pub fn place(&mut self, tp: &TopicPartition) -> usize {
        if let Some(d) = self.dir_of(tp) {
            return d;
        }
        let d = self
            .counts
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        self.counts[d] += 1;
        self.dir_of.insert(tp.clone(), d);
        d
    }

    /// Forgets `tp` (its directory was deleted).
    pub fn remove(&mut self, tp: &TopicPartition) {
        if let Some(d) = self.dir_of.remove(tp) {
            self.counts[d] = self.counts[d].saturating_sub(1);
        }
    }

    /// Partitions per dir, in `log.dirs` order.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }
}

/// Total and usable bytes of the file system holding `path` (DescribeLogDirs v4). Usable is
/// what an unprivileged process may still write (`f_bavail`), as Java's `getUsableSpace`.
pub fn filesystem_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    let block = st.f_frsize.max(1);
    Ok((
        st.f_blocks.saturating_mul(block),
        st.f_bavail.saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t.to_string(), p)
    }

    #[test]
    fn new_partitions_go_to_the_dir_with_fewest() {
        let mut located = HashMap::new();
        located.insert(tp("a", 0), 0);
        located.insert(tp("a", 1), 0);
        let mut p = Placement::new(3, located);
        assert_eq!(p.counts(), &[2, 0, 0]);
        assert_eq!(p.place(&tp("b", 0)), 1);
        assert_eq!(p.place(&tp("b", 1)), 2);
        assert_eq!(p.place(&tp("b", 2)), 1);
        assert_eq!(p.place(&tp("b", 3)), 2);
        assert_eq!(p.counts(), &[2, 2, 2]);
        // Ties go to the first dir; a located partition keeps its dir.
        assert_eq!(p.place(&tp("c", 0)), 0);
        assert_eq!(p.place(&tp("a", 1)), 0);
        p.remove(&tp("b", 0));
        assert_eq!(p.counts(), &[3, 1, 2]);
        assert_eq!(p.place(&tp("d", 0)), 1);
        assert_eq!(p.dir_of(&tp("b", 0)), None);
    }

    #[test]
    fn one_dir_takes_everything() {
        let mut p = Placement::new(1, HashMap::new());
        for i in 0..5 {
            assert_eq!(p.place(&tp("x", i)), 0);
        }
    }

    #[test]
    fn reserved_ids_are_kafkas() {
        assert!(reserved_directory_id(&[0; 16]));
        let mut id = [0u8; 16];
        id[15] = 99;
        assert!(reserved_directory_id(&id));
        id[15] = 100;
        assert!(!reserved_directory_id(&id));
        id[15] = 1;
        id[0] = 1;
        assert!(!reserved_directory_id(&id));
    }
}
