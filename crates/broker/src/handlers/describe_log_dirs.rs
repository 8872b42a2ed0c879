//! DescribeLogDirs (key 35, versions 1-4): for each `log.dirs` entry, the partitions it holds
//! with their size on disk and offset lag, and (v4) the file system's total and usable bytes, as
//! `kafka-log-dirs.sh --describe` and `Admin.describeLogDirs` show them.
//!
//! Kafka's `ReplicaManager.describeLogDirs`: every configured dir is listed (absolute path, not
//! canonicalized); a null topic list means every hosted partition; requested partitions this
//! node does not host are simply absent, and so is a topic with none of its partitions in a dir.
//! The size is the bytes of all segments (`UnifiedLog.size`); the lag of a current (not
//! future) replica is `max(high watermark - log end offset, 0)`. rafka has no future replicas
//! (AlterReplicaLogDirs), so `is_future_key` is always false.

use std::collections::{BTreeMap, HashSet};

use rafka_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use rafka_protocol::kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;

use super::groups::text;
use crate::errors;
use crate::partitions::Partitions;

/// Kafka's `adjustForLargeFileSystems`: a size Java cannot represent is reported as i64::MAX.
fn clamp_bytes(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn handle(partitions: &Partitions, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Option<HashSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = text(&t.topic.0);
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect()
    });
    let hosted = partitions.all();
    let mut response = DescribeLogDirsResponse::default();
    for (index, dir) in partitions.log_dirs().iter().enumerate() {
        let path = std::path::absolute(dir.path()).unwrap_or_else(|_| dir.path().to_path_buf());
        let mut result = DescribeLogDirsResult::default();
        result.log_dir = StrBytes::from_string(path.display().to_string());
        let (total_bytes, usable_bytes) = match rafka_storage::filesystem_space(dir.path()) {
            Ok(space) => space,
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot read the log dir's file system space");
                result.error_code = errors::log_dir_io(&e).code();
                response.results.push(result);
                continue;
            }
        };
        result.total_bytes = clamp_bytes(total_bytes);
        result.usable_bytes = clamp_bytes(usable_bytes);
        // Sorted by topic and partition so the answer does not depend on hash order.
        let mut topics: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for p in hosted.iter().filter(|p| p.log_dir == index) {
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(&(p.topic.to_string(), p.index)))
            {
                continue;
            }
            let mut dp = DescribeLogDirsPartition::default();
            dp.partition_index = p.index;
            dp.partition_size = clamp_bytes(p.size_bytes());
            dp.offset_lag = (p.high_watermark() - p.log_end_offset()).max(0);
            dp.is_future_key = false;
            topics.entry(&p.topic).or_default().push(dp);
        }
        for (name, mut parts) in topics {
            parts.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(name.to_string()));
            t.partitions = parts;
            result.topics.push(t);
        }
        response.results.push(result);
    }
    response
}
