//! Several `log.dirs` together: meta.properties formatting and checks, locating partitions,
//! placement of new partitions, and logs reopened from the dir that holds them.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::PathBuf;

use common::{append, batch, file_backend, open_with, small_config};
use rafka_storage::{LogDirs, LogDirsError, MetaProperties, Placement, TopicPartition};

fn dirs(n: usize) -> (tempfile::TempDir, Vec<PathBuf>, LogDirs) {
    let t = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..n).map(|i| t.path().join(format!("d{i}"))).collect();
    let d = LogDirs::new(&paths, file_backend()).unwrap();
    d.create_all().unwrap();
    (t, paths, d)
}

/// Distinct ids from a counter (randomness is passed in).
fn ids() -> impl FnMut() -> [u8; 16] {
    let mut n = 1000u64;
    move || {
        n += 1;
        let mut id = [7u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }
}

#[test]
fn empty_dirs_are_formatted_with_one_cluster_id_and_distinct_directory_ids() {
    let (_t, paths, d) = dirs(3);
    let f = d.load_or_format(None, 4, &mut ids()).unwrap();
    assert_eq!(f.formatted, paths);
    let metas: Vec<MetaProperties> = d
        .dirs()
        .iter()
        .map(|x| x.read_meta_properties().unwrap().unwrap())
        .collect();
    for (m, id) in metas.iter().zip(&f.directory_ids) {
        assert_eq!(m.cluster_id, f.cluster_id);
        assert_eq!(m.node_id, 4);
        assert_eq!(m.version, 1);
        assert_eq!(m.directory_id, Some(*id));
    }
    let mut unique = f.directory_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);

    // A second start keeps everything and formats nothing.
    let again = d.load_or_format(None, 4, &mut ids()).unwrap();
    assert_eq!(again.cluster_id, f.cluster_id);
    assert_eq!(again.directory_ids, f.directory_ids);
    assert!(again.formatted.is_empty());
}

#[test]
fn a_dir_added_later_joins_the_stored_cluster() {
    let t = tempfile::tempdir().unwrap();
    let first = vec![t.path().join("a")];
    let d1 = LogDirs::new(&first, file_backend()).unwrap();
    d1.create_all().unwrap();
    let f1 = d1.load_or_format(Some("clusterA"), 1, &mut ids()).unwrap();
    let both = vec![t.path().join("a"), t.path().join("b")];
    let d2 = LogDirs::new(&both, file_backend()).unwrap();
    d2.create_all().unwrap();
    // No configured id: the stored one is used for the new dir too.
    let f2 = d2.load_or_format(None, 1, &mut ids()).unwrap();
    assert_eq!(f2.cluster_id, "clusterA");
    assert_eq!(f2.formatted, vec![t.path().join("b")]);
    assert_eq!(f2.directory_ids[0], f1.directory_ids[0]);
    assert_ne!(f2.directory_ids[1], f2.directory_ids[0]);
}

#[test]
fn mismatched_meta_properties_fail_and_name_the_dir() {
    let (_t, paths, d) = dirs(2);
    d.load_or_format(Some("clusterA"), 1, &mut ids()).unwrap();
    // Another cluster's meta.properties in the second dir.
    let other = MetaProperties {
        version: 1,
        cluster_id: "clusterB".into(),
        node_id: 1,
        directory_id: Some([5; 16]),
    };
    d.dirs()[1].write_meta_properties(&other).unwrap();
    let e = d.load_or_format(None, 1, &mut ids()).unwrap_err();
    assert!(
        matches!(&e, LogDirsError::InconsistentClusterId { path, .. } if *path == paths[1].display().to_string()),
        "{e}"
    );
    // Configured id differs from both.
    let e = d
        .load_or_format(Some("clusterC"), 1, &mut ids())
        .unwrap_err();
    assert!(matches!(e, LogDirsError::InconsistentClusterId { .. }));
    // Node id mismatch.
    d.dirs()[1]
        .write_meta_properties(&MetaProperties {
            cluster_id: "clusterA".into(),
            node_id: 2,
            ..other.clone()
        })
        .unwrap();
    let e = d.load_or_format(None, 1, &mut ids()).unwrap_err();
    assert!(matches!(
        e,
        LogDirsError::InconsistentNodeId { stored: 2, .. }
    ));
    // A copied dir: same directory id twice.
    let first = d.dirs()[0].read_meta_properties().unwrap().unwrap();
    d.dirs()[1].write_meta_properties(&first).unwrap();
    let e = d.load_or_format(None, 1, &mut ids()).unwrap_err();
    assert!(
        matches!(e, LogDirsError::DuplicateDirectoryId { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("directory.id"));
}

#[test]
fn meta_properties_without_directory_id_gets_one() {
    let (_t, _paths, d) = dirs(1);
    let old = MetaProperties {
        version: 1,
        cluster_id: "c".into(),
        node_id: 1,
        directory_id: None,
    };
    d.dirs()[0].write_meta_properties(&old).unwrap();
    let f = d.load_or_format(None, 1, &mut ids()).unwrap();
    assert!(f.formatted.is_empty());
    let m = d.dirs()[0].read_meta_properties().unwrap().unwrap();
    assert_eq!(m.directory_id, Some(f.directory_ids[0]));
    assert_eq!(m.cluster_id, "c");
}

#[test]
fn reserved_directory_ids_are_never_handed_out() {
    let (_t, _paths, d) = dirs(1);
    // The first two candidates are reserved (UNASSIGNED, LOST); the third is used.
    let mut calls = 0u8;
    let mut gen = || {
        calls += 1;
        let mut id = [0u8; 16];
        id[15] = calls - 1;
        if calls == 3 {
            id[0] = 0x42;
        }
        id
    };
    let f = d.load_or_format(Some("c"), 1, &mut gen).unwrap();
    assert_eq!(f.directory_ids[0][0], 0x42);
}

#[test]
fn partitions_are_located_and_a_duplicate_fails() {
    let (_t, paths, d) = dirs(2);
    fs::create_dir(paths[0].join("a-0")).unwrap();
    fs::create_dir(paths[1].join("a-1")).unwrap();
    fs::create_dir(paths[1].join("b-0")).unwrap();
    // Not partitions: being deleted, a file.
    fs::create_dir(paths[1].join("a-0.0123abcd-delete")).unwrap();
    fs::write(paths[0].join("recovery-point-offset-checkpoint"), "0\n0\n").unwrap();
    // The metadata log's directory is the quorum's, not a partition.
    fs::create_dir(paths[0].join("__cluster_metadata-0")).unwrap();
    let located = d.locate_partitions().unwrap();
    assert_eq!(located.len(), 3);
    assert_eq!(located[&TopicPartition::new("a", 0)], 0);
    assert_eq!(located[&TopicPartition::new("a", 1)], 1);
    assert_eq!(located[&TopicPartition::new("b", 0)], 1);
    let mut p = Placement::new(2, located);
    assert_eq!(p.counts(), &[1, 2]);
    assert_eq!(p.place(&TopicPartition::new("c", 0)), 0);

    fs::create_dir(paths[1].join("a-0")).unwrap();
    let e = d.locate_partitions().unwrap_err();
    match &e {
        LogDirsError::DuplicatePartition {
            partition,
            first,
            second,
        } => {
            assert_eq!(partition, "a-0");
            assert_eq!(*first, paths[0].join("a-0").display().to_string());
            assert_eq!(*second, paths[1].join("a-0").display().to_string());
        }
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("found in both"));
}

/// New partitions spread over the dirs; each dir checkpoints its own partitions; after a
/// restart every log is found again in the dir it was written to, with its data.
#[test]
fn logs_spread_over_dirs_and_reload_from_each() {
    let (_t, _paths, d) = dirs(2);
    let mut placement = Placement::new(2, d.locate_partitions().unwrap());
    let tps: Vec<TopicPartition> = (0..4).map(|i| TopicPartition::new("t", i)).collect();
    let mut ends = Vec::new();
    let mut per_dir: Vec<Vec<(TopicPartition, i64)>> = vec![Vec::new(), Vec::new()];
    for (i, tp) in tps.iter().enumerate() {
        let dir = placement.place(tp);
        let mut log = open_with(
            &d.dirs()[dir].partition_path(tp),
            small_config(),
            file_backend(),
            0,
            0,
            true,
        );
        for _ in 0..=i {
            append(&mut log, batch(3, common::NOW, 100));
        }
        let end = log.log_end_offset();
        log.close().unwrap();
        ends.push(end);
        per_dir[dir].push((tp.clone(), end));
    }
    assert_eq!(placement.counts(), &[2, 2]);
    for (dir, entries) in d.dirs().iter().zip(&per_dir) {
        dir.write_recovery_points(entries).unwrap();
        dir.mark_clean_shutdown(0).unwrap();
    }

    // Restart: locate, then open each log from its dir with that dir's checkpoint.
    let located = d.locate_partitions().unwrap();
    assert_eq!(located.len(), 4);
    let placement = Placement::new(2, located);
    for (tp, end) in tps.iter().zip(&ends) {
        let dir = placement.dir_of(tp).unwrap();
        let ld = &d.dirs()[dir];
        assert!(ld.had_clean_shutdown().unwrap());
        let rp = ld.read_recovery_points().unwrap()[tp];
        assert_eq!(rp, *end);
        let log = open_with(
            &ld.partition_path(tp),
            small_config(),
            file_backend(),
            rp,
            0,
            true,
        );
        assert_eq!(log.log_end_offset(), *end);
        assert!(log.size_bytes() > 0);
    }
}
