//! [`LogDir`]: helpers for one `log.dirs` entry: checkpoints, `meta.properties`, the
//! clean-shutdown marker, and the partition directories in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::checkpoint::{self, MetaProperties, TopicPartition};
use crate::error::{Result, StorageError};
use crate::{
    CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_CHECKPOINT_FILE, META_PROPERTIES_FILE,
    RECOVERY_POINT_CHECKPOINT_FILE,
};

/// Suffix of a partition directory scheduled for deletion (`<tp>.<uuid>-delete`).
const DELETE_DIR_SUFFIX: &str = "-delete";
/// Suffixes of directories Kafka uses for moves between log dirs and stray logs; not partitions.
const NON_PARTITION_SUFFIXES: [&str; 3] = ["-delete", "-future", "-stray"];

/// One log directory.
#[derive(Debug, Clone)]
pub struct LogDir {
    path: PathBuf,
    backend: Arc<dyn Backend>,
}

impl LogDir {
    /// A handle; nothing is touched on disk until a method is called.
    pub fn new(path: impl Into<PathBuf>, backend: Arc<dyn Backend>) -> Self {
        LogDir {
            path: path.into(),
            backend,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backend, to open [`crate::Log`]s with.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Creates the directory if missing.
    pub fn create(&self) -> Result<()> {
        self.backend
            .create_dir_all(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// The directory of a partition's log in this log dir.
    pub fn partition_path(&self, tp: &TopicPartition) -> PathBuf {
        self.path.join(tp.dir_name())
    }

    /// Partition directories (`<topic>-<partition>`), skipping directories being deleted or
    /// moved and anything that does not parse.
    pub fn partition_dirs(&self) -> Result<Vec<(TopicPartition, PathBuf)>> {
        let mut out = Vec::new();
        for name in self
            .backend
            .list_dir(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?
        {
            if NON_PARTITION_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let path = self.path.join(&name);
            if !self
                .backend
                .is_dir(&path)
                .map_err(|e| StorageError::io(&path, e))?
            {
                continue;
            }
            if let Some(tp) = TopicPartition::parse_dir_name(&name) {
                out.push((tp, path));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether the last shutdown was clean (the `.kafka_cleanshutdown` marker exists). Read it
    /// before opening logs, then call [`LogDir::clear_clean_shutdown`] before the first write.
    pub fn had_clean_shutdown(&self) -> Result<bool> {
        let p = self.path.join(CLEAN_SHUTDOWN_FILE);
        self.backend.exists(&p).map_err(|e| StorageError::io(&p, e))
    }

    /// The broker epoch the clean-shutdown marker records (KIP-966's previous broker epoch):
    /// `None` without a marker; -1 for a marker without a readable epoch (Kafka's older, empty
    /// markers).
    pub fn clean_shutdown_broker_epoch(&self) -> Result<Option<i64>> {
        let p = self.path.join(CLEAN_SHUTDOWN_FILE);
        let Some(text) = checkpoint::read_file(self.backend.as_ref(), &p)? else {
            return Ok(None);
        };
        let epoch = text
            .split_once("\"brokerEpoch\"")
            .and_then(|(_, rest)| {
                let rest = rest.trim_start().strip_prefix(':')?.trim_start();
                let end = rest
                    .find(|c: char| c != '-' && !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                rest[..end].parse::<i64>().ok()
            })
            .unwrap_or(-1);
        Ok(Some(epoch))
    }

    /// Writes the clean-shutdown marker (Kafka 3.7+/4.x content: JSON with the broker epoch).
    /// Call after every log is closed and the checkpoints are written.
    pub fn mark_clean_shutdown(&self, broker_epoch: i64) -> Result<()> {
        let content = format!("{{\"version\":0,\"brokerEpoch\":{broker_epoch}}}");
        checkpoint::write_atomic(
            self.backend.as_ref(),
            &self.path.join(CLEAN_SHUTDOWN_FILE),
            content.as_bytes(),
        )
    }

    /// Removes the clean-shutdown marker (and makes the removal durable), so a crash from now on
    /// is recovered.
    pub fn clear_clean_shutdown(&self) -> Result<()> {
        let p = self.path.join(CLEAN_SHUTDOWN_FILE);
        crate::segment::remove_if_exists(self.backend.as_ref(), &p)?;
        self.backend
            .sync_dir(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Reads one of the dir's offset checkpoints (missing: empty).
    fn read_offsets(&self, file: &str) -> Result<HashMap<TopicPartition, i64>> {
        let p = self.path.join(file);
        Ok(
            checkpoint::read_offset_checkpoint(self.backend.as_ref(), &p)?
                .into_iter()
                .collect(),
        )
    }

    /// Writes one of the dir's offset checkpoints atomically.
    fn write_offsets(&self, file: &str, entries: &[(TopicPartition, i64)]) -> Result<()> {
        let p = self.path.join(file);
        checkpoint::write_offset_checkpoint(self.backend.as_ref(), &p, entries)
    }

    /// Reads `recovery-point-offset-checkpoint` (missing: empty).
    pub fn read_recovery_points(&self) -> Result<HashMap<TopicPartition, i64>> {
        self.read_offsets(RECOVERY_POINT_CHECKPOINT_FILE)
    }

    /// Writes `recovery-point-offset-checkpoint` atomically.
    pub fn write_recovery_points(&self, entries: &[(TopicPartition, i64)]) -> Result<()> {
        self.write_offsets(RECOVERY_POINT_CHECKPOINT_FILE, entries)
    }

    /// Reads `log-start-offset-checkpoint` (missing: empty).
    pub fn read_log_start_offsets(&self) -> Result<HashMap<TopicPartition, i64>> {
        self.read_offsets(LOG_START_OFFSET_CHECKPOINT_FILE)
    }

    /// Writes `log-start-offset-checkpoint` atomically.
    pub fn write_log_start_offsets(&self, entries: &[(TopicPartition, i64)]) -> Result<()> {
        self.write_offsets(LOG_START_OFFSET_CHECKPOINT_FILE, entries)
    }

    /// Reads `replication-offset-checkpoint` (missing: empty): each replica's high watermark
    /// when it was last written.
    pub fn read_high_watermarks(&self) -> Result<HashMap<TopicPartition, i64>> {
        self.read_offsets(crate::REPLICATION_OFFSET_CHECKPOINT_FILE)
    }

    /// Writes `replication-offset-checkpoint` atomically.
    pub fn write_high_watermarks(&self, entries: &[(TopicPartition, i64)]) -> Result<()> {
        self.write_offsets(crate::REPLICATION_OFFSET_CHECKPOINT_FILE, entries)
    }

    /// Reads `cleaner-offset-checkpoint` (missing: empty): where the cleaner's next pass of
    /// each compacted log starts.
    pub fn read_cleaner_offsets(&self) -> Result<HashMap<TopicPartition, i64>> {
        self.read_offsets(crate::CLEANER_OFFSET_CHECKPOINT_FILE)
    }

    /// Writes `cleaner-offset-checkpoint` atomically.
    pub fn write_cleaner_offsets(&self, entries: &[(TopicPartition, i64)]) -> Result<()> {
        self.write_offsets(crate::CLEANER_OFFSET_CHECKPOINT_FILE, entries)
    }

    /// Reads `meta.properties`, if present.
    pub fn read_meta_properties(&self) -> Result<Option<MetaProperties>> {
        let p = self.path.join(META_PROPERTIES_FILE);
        match checkpoint::read_file(self.backend.as_ref(), &p)? {
            None => Ok(None),
            Some(text) => MetaProperties::parse(&p, &text).map(Some),
        }
    }

    /// Writes `meta.properties` atomically.
    pub fn write_meta_properties(&self, meta: &MetaProperties) -> Result<()> {
        let p = self.path.join(META_PROPERTIES_FILE);
        checkpoint::write_atomic(self.backend.as_ref(), &p, meta.render().as_bytes())
    }

    /// Kafka's deletion convention: rename the partition directory to
    /// `<topic>-<partition>.<unique id, hex, no dashes>-delete` (so it is out of the way at
    /// once and skipped at startup), then remove it. Close or drop the partition's `Log` first.
    pub fn delete_partition_dir(&self, tp: &TopicPartition, unique_id: &[u8; 16]) -> Result<()> {
        let from = self.partition_path(tp);
        let hex: String = unique_id.iter().map(|b| format!("{b:02x}")).collect();
        let to = self
            .path
            .join(format!("{}.{hex}{DELETE_DIR_SUFFIX}", tp.dir_name()));
        self.backend
            .rename(&from, &to)
            .map_err(|e| StorageError::io(&from, e))?;
        self.backend
            .sync_dir(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.backend
            .remove_dir_all(&to)
            .map_err(|e| StorageError::io(&to, e))
    }

    /// Removes directories left behind by an interrupted [`LogDir::delete_partition_dir`].
    pub fn remove_deleted_partition_dirs(&self) -> Result<usize> {
        let mut n = 0;
        for name in self
            .backend
            .list_dir(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?
        {
            if name.ends_with(DELETE_DIR_SUFFIX) {
                let p = self.path.join(&name);
                if self
                    .backend
                    .is_dir(&p)
                    .map_err(|e| StorageError::io(&p, e))?
                {
                    self.backend
                        .remove_dir_all(&p)
                        .map_err(|e| StorageError::io(&p, e))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
