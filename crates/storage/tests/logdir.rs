#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use common::file_backend;
use rafka_storage::{LogDir, MetaProperties, StorageError, TopicPartition};

fn logdir() -> (tempfile::TempDir, LogDir) {
    let t = tempfile::tempdir().unwrap();
    let d = LogDir::new(t.path().join("data"), file_backend());
    d.create().unwrap();
    (t, d)
}

#[test]
fn offset_checkpoints_round_trip_in_kafka_format() {
    let (_t, d) = logdir();
    assert!(d.read_recovery_points().unwrap().is_empty());
    let entries = vec![
        (TopicPartition::new("my-topic.v1", 0), 42),
        (TopicPartition::new("__consumer_offsets", 49), 7),
    ];
    d.write_recovery_points(&entries).unwrap();
    let text = fs::read_to_string(d.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\nmy-topic.v1 0 42\n__consumer_offsets 49 7\n");
    let back = d.read_recovery_points().unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[&TopicPartition::new("my-topic.v1", 0)], 42);
    d.write_log_start_offsets(&entries[..1]).unwrap();
    assert_eq!(d.read_log_start_offsets().unwrap().len(), 1);
    assert!(!d.path().join("log-start-offset-checkpoint.tmp").exists());
    fs::write(
        d.path().join("log-start-offset-checkpoint"),
        "0\n3\nt 0 1\n",
    )
    .unwrap();
    assert!(matches!(
        d.read_log_start_offsets(),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn meta_properties_and_clean_shutdown_marker() {
    let (_t, d) = logdir();
    assert_eq!(d.read_meta_properties().unwrap(), None);
    let m = MetaProperties {
        version: 1,
        cluster_id: "5L6g3nShT-eMCtK--X86sw".into(),
        node_id: 1,
        directory_id: Some([9; 16]),
    };
    d.write_meta_properties(&m).unwrap();
    assert_eq!(d.read_meta_properties().unwrap(), Some(m));
    let text = fs::read_to_string(d.path().join("meta.properties")).unwrap();
    assert!(text.contains("cluster.id=5L6g3nShT-eMCtK--X86sw\n") && text.contains("version=1\n"));
    assert!(!d.had_clean_shutdown().unwrap());
    d.mark_clean_shutdown(12).unwrap();
    assert!(d.had_clean_shutdown().unwrap());
    assert!(d.path().join(".kafka_cleanshutdown").exists());
    d.clear_clean_shutdown().unwrap();
    assert!(!d.had_clean_shutdown().unwrap());
}

#[test]
fn partition_dirs_and_deletion() {
    let (_t, d) = logdir();
    for name in ["a-b.c-3", "x-0", "x-1.abc-delete", "not_a_partition", "y-1"] {
        fs::create_dir(d.path().join(name)).unwrap();
    }
    fs::write(d.path().join("z-9"), b"a file, not a dir").unwrap();
    let dirs: Vec<_> = d
        .partition_dirs()
        .unwrap()
        .into_iter()
        .map(|(tp, _)| tp)
        .collect();
    assert_eq!(
        dirs,
        vec![
            TopicPartition::new("a-b.c", 3),
            TopicPartition::new("x", 0),
            TopicPartition::new("y", 1)
        ]
    );
    fs::write(d.path().join("x-0").join("00000000000000000000.log"), b"").unwrap();
    d.delete_partition_dir(&TopicPartition::new("x", 0), &[0xab; 16])
        .unwrap();
    assert!(!d.path().join("x-0").exists());
    assert_eq!(d.remove_deleted_partition_dirs().unwrap(), 1);
    assert!(!d.path().join("x-1.abc-delete").exists());
}

/// Checkpoints and the clean-shutdown marker are written atomically and durably: a crash that
/// loses everything not fsynced (`FaultyBackend::crash`) keeps the last version of each.
#[test]
fn checkpoints_survive_a_crash() {
    use std::sync::Arc;

    use rafka_storage::FaultyBackend;

    let t = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new();
    let d = LogDir::new(t.path().join("data"), Arc::new(fb.clone()));
    d.create().unwrap();
    let tp = TopicPartition::new("t", 0);
    d.write_recovery_points(&[(tp.clone(), 1)]).unwrap();
    d.write_recovery_points(&[(tp.clone(), 2)]).unwrap();
    d.write_log_start_offsets(&[(tp.clone(), 1)]).unwrap();
    let m = MetaProperties {
        version: 1,
        cluster_id: "5L6g3nShT-eMCtK--X86sw".into(),
        node_id: 1,
        directory_id: Some([9; 16]),
    };
    d.write_meta_properties(&m).unwrap();
    d.mark_clean_shutdown(3).unwrap();
    d.clear_clean_shutdown().unwrap();
    fb.crash().unwrap();

    let d = LogDir::new(t.path().join("data"), file_backend());
    assert_eq!(d.read_recovery_points().unwrap()[&tp], 2);
    assert_eq!(d.read_log_start_offsets().unwrap()[&tp], 1);
    assert_eq!(d.read_meta_properties().unwrap(), Some(m));
    assert!(!d.had_clean_shutdown().unwrap());
    let mut names: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "log-start-offset-checkpoint",
            "meta.properties",
            "recovery-point-offset-checkpoint"
        ]
    );
}
