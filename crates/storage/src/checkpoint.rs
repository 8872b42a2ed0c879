//! Kafka's small text files: offset checkpoints, `leader-epoch-checkpoint`,
//! `partition.metadata`, `meta.properties`, and the atomic write they all use.

use std::path::{Path, PathBuf};

use crate::backend::Backend;
use crate::error::{Result, StorageError};

/// A topic partition, as named by a partition directory `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (may contain '-' and '.').
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds one.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses `<topic>-<partition>`, splitting at the last '-' since topics may contain '-'.
    pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, part) = name.rsplit_once('-')?;
        if topic.is_empty() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(TopicPartition::new(topic, part.parse().ok()?))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Writes `content` to `path` so that a crash leaves either the old or the new file: write a
/// `.tmp` sibling, fsync it, rename it over `path`, fsync the directory (as Kafka's
/// `CheckpointFile` does).
pub(crate) fn write_atomic(backend: &dyn Backend, path: &Path, content: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| StorageError::io(p, e)
    };
    let f = backend.open(&tmp, true).map_err(io(&tmp))?;
    f.set_len(0).map_err(io(&tmp))?;
    f.write_all_at(content, 0).map_err(io(&tmp))?;
    f.sync().map_err(io(&tmp))?;
    drop(f);
    backend.rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        backend.sync_dir(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Reads a whole small file; `None` if it does not exist.
pub(crate) fn read_file(backend: &dyn Backend, path: &Path) -> Result<Option<String>> {
    if !backend
        .exists(path)
        .map_err(|e| StorageError::io(path, e))?
    {
        return Ok(None);
    }
    let f = backend
        .open(path, false)
        .map_err(|e| StorageError::io(path, e))?;
    let len = f.len().map_err(|e| StorageError::io(path, e))?;
    // These files are tiny; refuse absurd sizes instead of allocating them.
    const SMALL_FILE_MAX_BYTES: u64 = 64 << 20;
    if len > SMALL_FILE_MAX_BYTES {
        return Err(StorageError::corrupt(
            path,
            format!("{len} bytes is too large"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| StorageError::io(path, e))?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| StorageError::corrupt(path, "not UTF-8"))
}

/// Parses Kafka's checkpoint format: `<version>\n<count>\n<entry>\n...`, returning the entry
/// lines after checking the version (0) and the count.
fn parse_checkpoint<'a>(path: &Path, text: &'a str) -> Result<Vec<&'a str>> {
    let mut lines = text.lines();
    let version = lines.next().map(str::trim);
    if version != Some("0") {
        return Err(StorageError::corrupt(
            path,
            format!("unsupported version {version:?}"),
        ));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| StorageError::corrupt(path, "bad entry count"))?;
    let entries: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    if entries.len() != count {
        return Err(StorageError::corrupt(
            path,
            format!("expected {count} entries, found {}", entries.len()),
        ));
    }
    Ok(entries)
}

/// Reads `recovery-point-offset-checkpoint` / `log-start-offset-checkpoint` style files
/// (`<topic> <partition> <offset>` entries). A missing file is an empty map.
pub(crate) fn read_offset_checkpoint(
    backend: &dyn Backend,
    path: &Path,
) -> Result<Vec<(TopicPartition, i64)>> {
    let Some(text) = read_file(backend, path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in parse_checkpoint(path, &text)? {
        let mut f = line.split_whitespace();
        let parsed = (|| {
            let topic = f.next()?;
            let partition = f.next()?.parse().ok()?;
            let offset = f.next()?.parse().ok()?;
            f.next()
                .is_none()
                .then(|| (TopicPartition::new(topic, partition), offset))
        })();
        out.push(parsed.ok_or_else(|| StorageError::corrupt(path, format!("bad entry {line:?}")))?);
    }
    Ok(out)
}

/// Writes an offset checkpoint atomically.
pub(crate) fn write_offset_checkpoint(
    backend: &dyn Backend,
    path: &Path,
    entries: &[(TopicPartition, i64)],
) -> Result<()> {
    let mut s = format!("0\n{}\n", entries.len());
    for (tp, off) in entries {
        s.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, off));
    }
    write_atomic(backend, path, s.as_bytes())
}

/// Reads `leader-epoch-checkpoint` (`<epoch> <start offset>` entries). Missing file: empty.
pub(crate) fn read_epoch_checkpoint(backend: &dyn Backend, path: &Path) -> Result<Vec<EpochEntry>> {
    let Some(text) = read_file(backend, path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in parse_checkpoint(path, &text)? {
        let mut f = line.split_whitespace();
        let parsed = (|| {
            let epoch = f.next()?.parse().ok()?;
            let start_offset = f.next()?.parse().ok()?;
            f.next().is_none().then_some(EpochEntry {
                epoch,
                start_offset,
            })
        })();
        out.push(parsed.ok_or_else(|| StorageError::corrupt(path, format!("bad entry {line:?}")))?);
    }
    Ok(out)
}

/// Writes `leader-epoch-checkpoint` atomically.
pub(crate) fn write_epoch_checkpoint(
    backend: &dyn Backend,
    path: &Path,
    entries: &[EpochEntry],
) -> Result<()> {
    let mut s = format!("0\n{}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    write_atomic(backend, path, s.as_bytes())
}

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// First offset appended under that epoch.
    pub start_offset: i64,
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding, the way Kafka prints a `Uuid` (22 characters for 16 bytes).
pub fn uuid_to_base64(id: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Parses Kafka's base64url `Uuid` form.
pub fn uuid_from_base64(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().trim_end_matches('=');
    if s.len() != 22 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(16);
    for c in s.bytes() {
        let v = B64URL.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out.try_into().ok()
}

/// Reads `partition.metadata` (`version: 0` / `topic_id: <base64url>`). Missing file: `None`.
pub fn read_partition_metadata(backend: &dyn Backend, dir: &Path) -> Result<Option<[u8; 16]>> {
    let path = dir.join(crate::PARTITION_METADATA_FILE);
    let Some(text) = read_file(backend, &path)? else {
        return Ok(None);
    };
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "version" => version = Some(v.trim().to_string()),
                "topic_id" => topic_id = uuid_from_base64(v),
                _ => {}
            }
        }
    }
    if version.as_deref() != Some("0") {
        return Err(StorageError::corrupt(&path, "unsupported version"));
    }
    topic_id
        .map(Some)
        .ok_or_else(|| StorageError::corrupt(&path, "missing or bad topic_id"))
}

/// Writes `partition.metadata` atomically.
pub fn write_partition_metadata(
    backend: &dyn Backend,
    dir: &Path,
    topic_id: &[u8; 16],
) -> Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", uuid_to_base64(topic_id));
    write_atomic(
        backend,
        &dir.join(crate::PARTITION_METADATA_FILE),
        text.as_bytes(),
    )
}

/// The KRaft `meta.properties` of a log dir (version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `version` (1 for KRaft).
    pub version: u32,
    /// `cluster.id`.
    pub cluster_id: String,
    /// `node.id`.
    pub node_id: i32,
    /// `directory.id` (KIP-858), base64url in the file.
    pub directory_id: Option<[u8; 16]>,
}

/// Parses Java-properties `key=value` lines (also `key: value`), skipping `#`/`!` comments.
/// Escapes are not interpreted: every value Kafka writes here is plain ASCII.
pub(crate) fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let key = line[..split].trim();
        let value = line.get(split + 1..).unwrap_or("").trim();
        out.push((key.to_string(), value.to_string()));
    }
    out
}

impl MetaProperties {
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self> {
        let props = parse_properties(text);
        let get = |k: &str| {
            props
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let version = get("version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StorageError::corrupt(path, "missing or bad version"))?;
        let cluster_id = get("cluster.id")
            .ok_or_else(|| StorageError::corrupt(path, "missing cluster.id"))?
            .to_string();
        let node_id = get("node.id")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StorageError::corrupt(path, "missing or bad node.id"))?;
        let directory_id = match get("directory.id") {
            None => None,
            Some(v) => Some(
                uuid_from_base64(v)
                    .ok_or_else(|| StorageError::corrupt(path, "bad directory.id"))?,
            ),
        };
        Ok(MetaProperties {
            version,
            cluster_id,
            node_id,
            directory_id,
        })
    }

    pub(crate) fn render(&self) -> String {
        let mut s = String::from("#\n");
        s.push_str(&format!("cluster.id={}\n", self.cluster_id));
        if let Some(id) = &self.directory_id {
            s.push_str(&format!("directory.id={}\n", uuid_to_base64(id)));
        }
        s.push_str(&format!("node.id={}\n", self.node_id));
        s.push_str(&format!("version={}\n", self.version));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_matches_kafka() {
        // Kafka's Uuid.toString of all-zero bytes is "AAAAAAAAAAAAAAAAAAAAAA".
        assert_eq!(uuid_to_base64(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let id: [u8; 16] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(250));
        let s = uuid_to_base64(&id);
        assert_eq!(s.len(), 22);
        assert_eq!(uuid_from_base64(&s), Some(id));
        assert_eq!(uuid_from_base64("short"), None);
    }

    #[test]
    fn dir_name_splits_at_last_dash() {
        let tp = TopicPartition::parse_dir_name("my-topic.v2-13").unwrap();
        assert_eq!(tp, TopicPartition::new("my-topic.v2", 13));
        assert_eq!(TopicPartition::parse_dir_name("nodash"), None);
        assert_eq!(TopicPartition::parse_dir_name("t-x"), None);
        assert_eq!(TopicPartition::parse_dir_name("-3"), None);
    }

    #[test]
    fn meta_properties_round_trip() {
        let m = MetaProperties {
            version: 1,
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".into(),
            node_id: 3,
            directory_id: Some([7; 16]),
        };
        let text = m.render();
        assert_eq!(MetaProperties::parse(Path::new("x"), &text).unwrap(), m);
        let kafka = "#\n#Thu Jan 01 00:00:00 UTC 2024\nnode.id=1\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAA\nversion=1\ncluster.id=abc\n";
        let p = MetaProperties::parse(Path::new("x"), kafka).unwrap();
        assert_eq!(p.node_id, 1);
        assert_eq!(p.cluster_id, "abc");
    }
}
