//! The quorum end to end on real files: openraft's storage suite, restarts, snapshots, torn tails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use rafka_metadata::{
    BrokerRegistration, CommandRejected, ControllerCommand, Endpoint, FileLogStore, MetadataError,
    MetadataImage, MetadataQuorum, MetadataStateMachine, NodeId, PartitionAssignment, QuorumConfig,
    TypeConfig,
};
use tempfile::TempDir;
use uuid::Uuid;

struct FileStoreBuilder;

impl StoreBuilder<TypeConfig, FileLogStore, MetadataStateMachine, TempDir> for FileStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, FileLogStore, MetadataStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = FileLogStore::open(dir.path()).expect("open log");
        let (sm, _images) =
            MetadataStateMachine::open(dir.path(), "suite-cluster").expect("open sm");
        Ok((dir, log, sm))
    }
}

#[test]
fn file_store_passes_openraft_suite() {
    Suite::test_all(FileStoreBuilder).unwrap();
}

/// Reopening after each suite-style operation sees the same state: the store is not just memory.
#[tokio::test]
async fn log_store_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = FileLogStore::open(dir.path()).unwrap();
    let vote = openraft::Vote::new_committed(3, 1);
    log.save_vote(&vote).await.unwrap();
    let committed = Some(openraft::LogId::new(
        openraft::CommittedLeaderId::new(3, 1),
        0,
    ));
    log.save_committed(committed).await.unwrap();
    drop(log);
    let mut log = FileLogStore::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    // No entry 0 exists, so the committed pointer is lowered to the (empty) end of the log.
    assert_eq!(log.read_committed().await.unwrap(), None);
}

fn config() -> QuorumConfig {
    QuorumConfig {
        node_addr: "localhost:9093".into(),
        ..QuorumConfig::default()
    }
}

fn broker(node_id: i32) -> ControllerCommand {
    ControllerCommand::RegisterBroker(BrokerRegistration {
        node_id,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: None,
        fenced: false,
    })
}

fn create(name: &str, id: Uuid, partitions: i32) -> ControllerCommand {
    ControllerCommand::CreateTopic {
        name: name.into(),
        topic_id: id,
        partitions: (0..partitions)
            .map(|p| PartitionAssignment::new(p, vec![1]))
            .collect(),
        configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        placement: None,
    }
}

/// One topic as the broker sees it: name, id, partition count, (leader, leader epoch,
/// partition epoch) per partition, configs.
type TopicSummary = (
    String,
    Uuid,
    usize,
    Vec<(i32, i32, i32)>,
    BTreeMap<String, String>,
);

/// The parts of an image the broker relies on, comparable across restarts.
fn summary(image: &MetadataImage) -> Vec<TopicSummary> {
    image
        .topics()
        .map(|t| {
            let parts = t
                .partitions
                .values()
                .map(|p| (p.leader, p.leader_epoch, p.partition_epoch))
                .collect();
            (
                t.name.clone(),
                t.topic_id,
                t.partition_count(),
                parts,
                t.configs.clone(),
            )
        })
        .collect()
}

async fn start(dir: &Path, config: QuorumConfig) -> MetadataQuorum {
    tokio::time::timeout(
        Duration::from_secs(30),
        MetadataQuorum::start(dir, 1, "cluster-a".into(), config),
    )
    .await
    .expect("start within 30s")
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let q = start(dir.path(), config()).await;
    let updates = q.subscribe();
    q.write(broker(1)).await.unwrap();
    assert!(updates.has_changed().unwrap());
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    q.write(create("a", a, 3)).await.unwrap();
    let outcome = q.write(create("b", b, 1)).await.unwrap();
    assert!(q.image().last_applied_index >= outcome.log_index);
    q.write(create("c", c, 2)).await.unwrap();

    let err = q.write(create("a", Uuid::new_v4(), 1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            MetadataError::Rejected(CommandRejected::TopicAlreadyExists { .. })
        ),
        "{err}"
    );
    q.write(ControllerCommand::DeleteTopic { topic_id: b })
        .await
        .unwrap();
    q.write(ControllerCommand::CreatePartitions {
        topic_id: c,
        new_partitions: vec![
            PartitionAssignment::new(2, vec![1]),
            PartitionAssignment::new(3, vec![1]),
        ],
        placement: None,
    })
    .await
    .unwrap();
    q.write(ControllerCommand::AlterTopicConfigs {
        topic_id: a,
        changes: BTreeMap::from([
            ("cleanup.policy".to_string(), None),
            ("retention.ms".to_string(), Some("9".into())),
        ]),
        request_id: None,
    })
    .await
    .unwrap();

    let before = q.image();
    assert_eq!(before.topic_by_name("c").unwrap().partition_count(), 4);
    assert!(before.topic_by_name("b").is_none());
    assert_eq!(before.cluster_id, "cluster-a");
    q.shutdown().await.unwrap();

    let q = start(dir.path(), config()).await;
    let after = q.image();
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(after.brokers, before.brokers);
    assert!(after.last_applied_index >= before.last_applied_index);
    // Writes continue after a restart.
    q.write(create("d", Uuid::new_v4(), 1)).await.unwrap();
    q.shutdown().await.unwrap();

    // Another cluster's id, or another node id, is refused.
    let err = MetadataQuorum::start(dir.path(), 1, "cluster-b".into(), config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetadataError::IdentityMismatch { .. }),
        "{err}"
    );
    let err = MetadataQuorum::start(dir.path(), 2, "cluster-a".into(), config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetadataError::IdentityMismatch { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_purge_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QuorumConfig {
        snapshot_interval_entries: 20,
        entries_kept_after_snapshot: 0,
        ..config()
    };
    let q = start(dir.path(), cfg.clone()).await;
    q.write(broker(1)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        let id = Uuid::new_v4();
        q.write(create(&format!("t{i}"), id, 1 + i % 3))
            .await
            .unwrap();
        ids.push(id);
    }
    for id in ids.iter().step_by(5) {
        q.write(ControllerCommand::DeleteTopic { topic_id: *id })
            .await
            .unwrap();
    }
    let mut metrics = q.metrics().expect("a voter has metrics");
    let m = tokio::time::timeout(
        Duration::from_secs(30),
        metrics.wait_for(|m| {
            m.snapshot.is_some_and(|s| s.index >= 40) && m.purged.is_some_and(|p| p.index >= 40)
        }),
    )
    .await
    .expect("snapshot and purge within 30s")
    .unwrap()
    .clone();
    assert!(dir.path().join("snapshot").exists());
    let log_bytes = std::fs::metadata(dir.path().join("raft.log"))
        .unwrap()
        .len();
    let before = q.image();
    assert_eq!(before.topic_count(), 40);
    q.shutdown().await.unwrap();

    // The log holds only what came after the purge point.
    let mut log = FileLogStore::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(
        state.last_purged_log_id.map(|l| l.index),
        m.purged.map(|l| l.index)
    );
    let remaining = state.last_log_id.unwrap().index - state.last_purged_log_id.unwrap().index;
    assert!(
        remaining < 25,
        "{remaining} entries left after purge ({log_bytes} bytes)"
    );
    drop(log);

    let q = start(dir.path(), cfg).await;
    let after = q.image();
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(after.brokers, before.brokers);
    q.write(create("after-restart", Uuid::new_v4(), 1))
        .await
        .unwrap();
    q.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_recovers_to_last_whole_entry() {
    let dir = tempfile::tempdir().unwrap();
    let q = start(dir.path(), config()).await;
    q.write(broker(1)).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    q.write(create("a", a, 1)).await.unwrap();
    q.write(create("b", b, 1)).await.unwrap();
    let with_both = q.image();
    q.shutdown().await.unwrap();
    let log_path = dir.path().join("raft.log");

    // Half-written append after the last entry: recovered as if it never happened.
    let mut bytes = std::fs::read(&log_path).unwrap();
    let whole_len = bytes.len();
    bytes.extend_from_slice(&[0, 0, 1, 0, 0xab, 0xcd, 0xef, 0x01, b'{', b'"']);
    std::fs::write(&log_path, &bytes).unwrap();
    let q = start(dir.path(), config()).await;
    assert_eq!(summary(&q.image()), summary(&with_both));
    q.shutdown().await.unwrap();

    // Cut the file inside the entry that created "b" (the last command, followed only by the
    // restart's blank entry, which goes too): the image falls back to before "b".
    let bytes = std::fs::read(&log_path).unwrap();
    assert!(bytes.len() >= whole_len);
    let b_json = b.to_string();
    let pos = bytes
        .windows(b_json.len())
        .position(|w| w == b_json.as_bytes())
        .expect("b in log");
    std::fs::write(&log_path, &bytes[..pos]).unwrap();
    let q = start(dir.path(), config()).await;
    let image = q.image();
    assert!(image.topic_by_id(&a).is_some());
    assert!(
        image.topic_by_id(&b).is_none(),
        "the torn entry must not be applied"
    );
    // The log is usable again: "b" can be created anew.
    q.write(create("b", Uuid::new_v4(), 1)).await.unwrap();
    q.shutdown().await.unwrap();
    let q = start(dir.path(), config()).await;
    assert_eq!(q.image().topic_count(), 2);
    q.shutdown().await.unwrap();
}
