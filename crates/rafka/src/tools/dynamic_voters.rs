//! Kafka's KIP-853 voter syntax, `id@host:port:directoryId[,...]` (`kafka-storage format
//! --initial-controllers`, and what `--standalone` builds), parsed as Kafka's `DynamicVoter.parse`
//! and `DynamicVoters.parse` do, with their messages; and `initial-voters.json`, the file
//! `kafka-storage format` writes for it into `<metadata.log.dir>/__cluster_metadata-0/`, which the
//! node reads when it starts a dynamic quorum:
//!
//! ```json
//! {"voters":[{"id":1,"host":"kafka-1","port":9093,"directory_id":"JEXY6aqzQY-32P5TStzaFg"}]}
//! ```
//!
//! (the format is `rafka_metadata::initial_voters`'s; voters by ascending id; `host` as written, an IPv6 host without
//! its brackets; `directory_id` Kafka's 22-character base64url Uuid).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rafka_storage::{uuid_from_base64, uuid_to_base64};

/// One voter: node id, the host and port of its (first) controller listener, its metadata log
/// directory id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicVoter {
    pub node_id: i32,
    /// As written; an IPv6 host without brackets.
    pub host: String,
    pub port: u16,
    pub directory_id: [u8; 16],
}

/// Java's `String.trim()`: every char up to U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `Uuid.fromString`: at most 24 characters of URL-safe base64 that decode to 16 bytes
/// (22 characters, or 22 and `==`).
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    if s.len() > 24 {
        return None;
    }
    let body = if s.len() == 24 {
        s.strip_suffix("==")?
    } else {
        s
    };
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if body.len() != 22 || !body.bytes().all(alphabet) {
        return None;
    }
    uuid_from_base64(body)
}

impl DynamicVoter {
    /// Kafka's `DynamicVoter.parse`, with its messages.
    pub fn parse(input: &str) -> Result<DynamicVoter, String> {
        let input = java_trim(input);
        let at = match input.find('@') {
            None => return Err("No @ found in dynamic voter string.".into()),
            Some(0) => return Err("Invalid @ at beginning of dynamic voter string.".into()),
            Some(at) => at,
        };
        let node_id: i32 = input[..at]
            .parse()
            .map_err(|_| "Failed to parse node id in dynamic voter string.".to_string())?;
        if node_id < 0 {
            return Err(format!(
                "Invalid negative node id {node_id} in dynamic voter string."
            ));
        }
        let rest = &input[at + 1..];
        if rest.is_empty() {
            return Err("No hostname found after node id.".into());
        }
        let (host, rest) = if let Some(bracketed) = rest.strip_prefix('[') {
            let end = bracketed.find(']').ok_or_else(|| {
                "Hostname began with left bracket, but no right bracket was found.".to_string()
            })?;
            (&bracketed[..end], &bracketed[end + 1..])
        } else {
            let end = rest
                .find(':')
                .ok_or_else(|| "No colon following hostname could be found.".to_string())?;
            (&rest[..end], &rest[end..])
        };
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| "Port section must start with a colon.".to_string())?;
        let end = rest
            .find(':')
            .ok_or_else(|| "No colon following port could be found.".to_string())?;
        let port: i32 = rest[..end]
            .parse()
            .map_err(|_| "Failed to parse port in dynamic voter string.".to_string())?;
        let port = u16::try_from(port)
            .map_err(|_| format!("Invalid port {port} in dynamic voter string."))?;
        let directory_id = parse_uuid(&rest[end + 1..])
            .ok_or_else(|| "Failed to parse directory ID in dynamic voter string.".to_string())?;
        Ok(DynamicVoter {
            node_id,
            host: host.to_string(),
            port,
            directory_id,
        })
    }
}

impl fmt::Display for DynamicVoter {
    /// Kafka's `DynamicVoter.toString()`: `id@host:port:directoryId`, an IPv6 host in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = uuid_to_base64(&self.directory_id);
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}:{dir}", self.node_id, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}:{dir}", self.node_id, self.host, self.port)
        }
    }
}

/// The initial voters, by node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicVoters {
    voters: BTreeMap<i32, DynamicVoter>,
}

impl DynamicVoters {
    /// Kafka's `DynamicVoters.parse`: comma-separated voters, empty entries skipped.
    pub fn parse(input: &str) -> Result<DynamicVoters, String> {
        let voters = java_trim(input)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(DynamicVoter::parse)
            .collect::<Result<Vec<_>, _>>()?;
        DynamicVoters::new(voters)
    }

    /// At least one voter, each node id once (Kafka's messages).
    pub fn new(voters: Vec<DynamicVoter>) -> Result<DynamicVoters, String> {
        if voters.is_empty() {
            return Err("No voters given.".into());
        }
        let mut map = BTreeMap::new();
        for v in voters {
            let id = v.node_id;
            if map.insert(id, v).is_some() {
                return Err(format!("Node id {id} was specified more than once."));
            }
        }
        Ok(DynamicVoters { voters: map })
    }

    /// The voters by ascending node id.
    pub fn voters(&self) -> impl Iterator<Item = &DynamicVoter> {
        self.voters.values()
    }

    pub fn get(&self, node_id: i32) -> Option<&DynamicVoter> {
        self.voters.get(&node_id)
    }

    /// The voters as `initial-voters.json` records them (the metadata crate owns that file).
    pub fn initial_voters(&self) -> Vec<rafka_metadata::initial_voters::InitialVoter> {
        self.voters()
            .map(|v| rafka_metadata::initial_voters::InitialVoter {
                id: u64::try_from(v.node_id).unwrap_or_default(),
                host: v.host.clone(),
                port: v.port,
                directory_id: uuid_to_base64(&v.directory_id),
            })
            .collect()
    }
}

impl fmt::Display for DynamicVoters {
    /// Kafka's `DynamicVoters.toString()`: the voters by id, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.voters().map(ToString::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// Writes `<metadata_log_dir>/__cluster_metadata-0/initial-voters.json` atomically, in the
/// format the node reads at start (`rafka_metadata::initial_voters`). Returns the file's path.
pub fn write_initial_voters(
    metadata_log_dir: &Path,
    voters: &DynamicVoters,
) -> io::Result<PathBuf> {
    rafka_metadata::initial_voters::write(metadata_log_dir, &voters.initial_voters())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "JEXY6aqzQY-32P5TStzaFg";
    const B: &str = "MvDxzVmcRsaTz33bUuRU6A";
    const C: &str = "07R5amHmR32VDA6jHkGbTA";

    fn err(input: &str) -> Option<String> {
        DynamicVoters::parse(input).err()
    }

    #[test]
    fn kafkas_example_parses() {
        let text = format!("2@example.com:8084:{C},0@example.com:8082:{A},1@example.com:8083:{B}");
        let voters = DynamicVoters::parse(&text).map_err(|e| e.to_string());
        let Ok(voters) = voters else {
            panic!("{voters:?}")
        };
        let ids: Vec<i32> = voters.voters().map(|v| v.node_id).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(
            voters.to_string(),
            format!("0@example.com:8082:{A},1@example.com:8083:{B},2@example.com:8084:{C}")
        );
        let v1 = voters.get(1).cloned();
        assert_eq!(
            v1,
            Some(DynamicVoter {
                node_id: 1,
                host: "example.com".into(),
                port: 8083,
                directory_id: uuid_from_base64(B).unwrap_or_default(),
            })
        );
    }

    #[test]
    fn ipv6_empty_entries_padding_and_whitespace() {
        let voters = DynamicVoters::parse(&format!(" ,3@[::1]:9093:{A}==,, 4@h:0:{B} ,"));
        let Ok(voters) = voters else {
            panic!("{voters:?}")
        };
        assert_eq!(voters.get(3).map(|v| v.host.as_str()), Some("::1"));
        assert_eq!(voters.get(4).map(|v| v.port), Some(0));
        assert_eq!(voters.to_string(), format!("3@[::1]:9093:{A},4@h:0:{B}"));
    }

    #[test]
    fn every_kafka_message() {
        let cases: Vec<(String, &str)> = vec![
            (
                format!("1localhost:9093:{A}"),
                "No @ found in dynamic voter string.",
            ),
            (
                format!("@localhost:9093:{A}"),
                "Invalid @ at beginning of dynamic voter string.",
            ),
            (
                format!("x@localhost:9093:{A}"),
                "Failed to parse node id in dynamic voter string.",
            ),
            (
                format!("99999999999@localhost:9093:{A}"),
                "Failed to parse node id in dynamic voter string.",
            ),
            (
                format!("-2@localhost:9093:{A}"),
                "Invalid negative node id -2 in dynamic voter string.",
            ),
            ("1@".to_string(), "No hostname found after node id."),
            (
                format!("1@[::1:9093:{A}"),
                "Hostname began with left bracket, but no right bracket was found.",
            ),
            (
                "1@localhost".to_string(),
                "No colon following hostname could be found.",
            ),
            (
                format!("1@[::1]9093:{A}"),
                "Port section must start with a colon.",
            ),
            (
                "1@localhost:9093".to_string(),
                "No colon following port could be found.",
            ),
            (
                format!("1@localhost:x:{A}"),
                "Failed to parse port in dynamic voter string.",
            ),
            (
                format!("1@localhost:65536:{A}"),
                "Invalid port 65536 in dynamic voter string.",
            ),
            (
                format!("1@localhost:-1:{A}"),
                "Invalid port -1 in dynamic voter string.",
            ),
            (
                "1@localhost:9093:nope".to_string(),
                "Failed to parse directory ID in dynamic voter string.",
            ),
            (
                format!("1@localhost:9093:{A}="),
                "Failed to parse directory ID in dynamic voter string.",
            ),
            (
                format!("1@localhost:9093: {A}"),
                "Failed to parse directory ID in dynamic voter string.",
            ),
            (
                "1@localhost:9093:".to_string(),
                "Failed to parse directory ID in dynamic voter string.",
            ),
            ("".to_string(), "No voters given."),
            (",,".to_string(), "No voters given."),
            (
                format!("1@a:1:{A},2@b:2:{B},1@c:3:{C}"),
                "Node id 1 was specified more than once.",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(err(&input).as_deref(), Some(message), "input {input:?}");
        }
    }

    #[test]
    fn written_in_the_format_the_node_reads() {
        let Ok(tmp) = tempfile::tempdir() else { return };
        let voters = DynamicVoters::parse(&format!("2@kafka-2:9093:{B},1@[::1]:9093:{A}"));
        let Ok(voters) = voters else {
            panic!("{voters:?}")
        };
        assert!(write_initial_voters(tmp.path(), &voters).is_ok());
        let read = rafka_metadata::initial_voters::read(tmp.path()).map_err(|e| e.to_string());
        let expected = [
            (1u64, "[::1]:9093".to_string()),
            (2, "kafka-2:9093".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(read, Ok(Some(expected)));
        // Rewriting replaces it.
        let other = DynamicVoters::parse(&format!("3@h:9093:{B}"));
        let Ok(other) = other else {
            panic!("{other:?}")
        };
        assert!(write_initial_voters(tmp.path(), &other).is_ok());
        let read = rafka_metadata::initial_voters::read(tmp.path()).map_err(|e| e.to_string());
        assert_eq!(read.map(|v| v.map(|m| m.len())), Ok(Some(1)));
    }
}
