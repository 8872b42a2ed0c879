//! Reading metadata files written by rafka 0.1, before the quorum switched openraft to standard
//! Raft (one leader per term, openraft's `single-term-leader`).
//!
//! The only difference on disk is how a leader is written: 0.1 wrote `{"term":T,"node_id":N}`
//! everywhere; now a log id carries just the term (`T`) and a vote carries
//! `{"term":T,"voted_for":N}`. Every reader first tries the current form and, if that fails,
//! rewrites the old form in the parsed JSON and tries again, so a single-node data directory
//! from 0.1 keeps working; the files are written in the current form from then on.

use serde::de::DeserializeOwned;
use serde_json::Value;

fn is_old_leader_id(map: &serde_json::Map<String, Value>) -> bool {
    map.len() == 2 && map.get("term").is_some_and(Value::is_u64) && map.contains_key("node_id")
}

/// Replaces every old leader id object inside a log id with its term.
fn upgrade_log_ids(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "leader_id" {
                    if let Value::Object(inner) = child {
                        if is_old_leader_id(inner) {
                            *child = inner.get("term").cloned().unwrap_or(Value::Null);
                            continue;
                        }
                    }
                }
                upgrade_log_ids(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(upgrade_log_ids),
        _ => {}
    }
}

/// Parses `bytes` as `T`, accepting the 0.1 form of log ids (`vote: false`) or of a vote
/// (`vote: true`).
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8], vote: bool) -> serde_json::Result<T> {
    // An old vote also parses as a new one (the unknown `node_id` is ignored and `voted_for`
    // defaults to none), losing who was voted for; so votes are always checked for the old
    // form. An old log id does not parse as a new one, so those are only rewritten on failure.
    if !vote {
        if let Ok(v) = serde_json::from_slice::<T>(bytes) {
            return Ok(v);
        }
    }
    let mut value = serde_json::from_slice::<Value>(bytes)?;
    if vote {
        if let Some(Value::Object(leader)) = value.get_mut("leader_id") {
            if is_old_leader_id(leader) {
                if let Some(node) = leader.remove("node_id") {
                    leader.insert("voted_for".into(), node);
                }
            }
        }
    } else {
        upgrade_log_ids(&mut value);
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use openraft::{LogId, Vote};

    use super::*;
    use crate::raft_types::{LogEntry, NodeId};

    #[test]
    fn old_log_ids_and_votes_are_read() {
        let entry =
            br#"{"log_id":{"leader_id":{"term":3,"node_id":1},"index":7},"payload":"Blank"}"#;
        let e: LogEntry = from_slice(entry, false).unwrap();
        assert_eq!((e.log_id.leader_id.term, e.log_id.index), (3, 7));
        let vote = br#"{"leader_id":{"term":4,"node_id":1},"committed":true}"#;
        let v: Vote<NodeId> = from_slice(vote, true).unwrap();
        assert_eq!(v, Vote::new_committed(4, 1));
        let committed = br#"{"leader_id":{"term":2,"node_id":1},"index":0}"#;
        let c: Option<LogId<NodeId>> = from_slice(committed, false).unwrap();
        assert_eq!(c.map(|l| l.index), Some(0));
        // The current form reads as is.
        let now = serde_json::to_vec(&e).unwrap();
        assert_eq!(from_slice::<LogEntry>(&now, false).unwrap(), e);
    }
}
