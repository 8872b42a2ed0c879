//! The golden metadata log: a checked-in sequence of log entries and what applying them gives.
//!
//! Every node must turn the same log into the same image, on every version: a change to apply
//! logic (or to how entries decode) that would make a node built today disagree with one built
//! yesterday fails here. The log holds every kind of command, both the forms written before a
//! field existed (a `CreateTopic` with explicit partitions, a `RegisterBroker` without `fenced`)
//! and the current ones, including rejected commands, fencing with its leader moves, and
//! placement computed inside apply.
//!
//! `tests/golden/metadata-log.json` is the log (entries as they are stored);
//! `tests/golden/metadata-log.expected.json` is, per entry, what apply answered and a digest of
//! the image after it, plus the final image. A deliberate change to apply regenerates both with
//! `RAFKA_UPDATE_GOLDEN=1 cargo test -p rafka-metadata --test golden` and must say why in its
//! commit; gating the new behaviour behind a feature level keeps old logs replaying as before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use rafka_metadata::{
    apply_entry, BrokerRegistration, CommandResponse, ControllerCommand, Endpoint, LogEntry,
    MetadataImage, PartitionAssignment, Placement,
};
use uuid::Uuid;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | n)
}

fn registration(
    node_id: i32,
    incarnation: u128,
    fenced: bool,
    rack: Option<&str>,
) -> BrokerRegistration {
    BrokerRegistration {
        node_id,
        incarnation_id: uuid(incarnation),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: format!("broker-{node_id}"),
            port: 9092,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: rack.map(str::to_string),
        fenced,
    }
}

/// The commands of the golden log, in order. Only used to (re)write the golden files.
fn commands() -> Vec<ControllerCommand> {
    use ControllerCommand as C;
    let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        C::SetFeatureLevel {
            name: "transaction.version".into(),
            level: 2,
        },
        // A registration as written before the broker lifecycle: live at once.
        C::RegisterBroker(registration(1, 1, false, Some("a"))),
        // Broker lifecycle: fenced until caught up, then unfenced.
        C::RegisterBroker(registration(2, 2, true, Some("b"))),
        C::UnfenceBroker {
            node_id: 2,
            broker_epoch: 3,
        },
        C::RegisterBroker(registration(3, 3, true, None)),
        C::UnfenceBroker {
            node_id: 3,
            broker_epoch: 5,
        },
        // The old form: partitions chosen by the proposer.
        C::CreateTopic {
            name: "legacy".into(),
            topic_id: uuid(100),
            partitions: vec![
                PartitionAssignment::new(0, vec![1]),
                PartitionAssignment::new(1, vec![2]),
            ],
            configs: configs(&[("cleanup.policy", "compact")]),
            placement: None,
        },
        // Placement inside apply.
        C::CreateTopic {
            name: "striped".into(),
            topic_id: uuid(101),
            partitions: vec![],
            configs: configs(&[("retention.ms", "60000")]),
            placement: Some(Placement::Striped {
                partition_count: 6,
                replication_factor: 1,
                seed: 42,
            }),
        },
        C::CreateTopic {
            name: "manual".into(),
            topic_id: uuid(102),
            partitions: vec![],
            configs: BTreeMap::new(),
            placement: Some(Placement::Manual {
                replicas: vec![vec![3], vec![1]],
            }),
        },
        // Rejected: the name is taken; placement over too few brokers.
        C::CreateTopic {
            name: "striped".into(),
            topic_id: uuid(103),
            partitions: vec![],
            configs: BTreeMap::new(),
            placement: Some(Placement::Striped {
                partition_count: 1,
                replication_factor: 1,
                seed: 1,
            }),
        },
        C::CreateTopic {
            name: "too-wide".into(),
            topic_id: uuid(104),
            partitions: vec![],
            configs: BTreeMap::new(),
            placement: Some(Placement::Striped {
                partition_count: 1,
                replication_factor: 4,
                seed: 1,
            }),
        },
        C::CreatePartitions {
            topic_id: uuid(101),
            new_partitions: vec![],
            placement: Some(Placement::Striped {
                partition_count: 3,
                replication_factor: 1,
                seed: 7,
            }),
        },
        C::AlterTopicConfigs {
            topic_id: uuid(100),
            changes: [(
                "min.cleanable.dirty.ratio".to_string(),
                Some("0.1".to_string()),
            )]
            .into_iter()
            .collect(),
            request_id: None,
        },
        C::AlterBrokerConfigs {
            node_id: None,
            changes: [("log.retention.ms".to_string(), Some("1000".to_string()))]
                .into_iter()
                .collect(),
            request_id: None,
        },
        C::AlterBrokerConfigs {
            node_id: Some(2),
            changes: [("message.max.bytes".to_string(), Some("2000".to_string()))]
                .into_iter()
                .collect(),
            request_id: None,
        },
        C::AllocateProducerIds {
            broker_id: 1,
            first_producer_id: 0,
            count: 1000,
        },
        // Rejected: a stale block.
        C::AllocateProducerIds {
            broker_id: 2,
            first_producer_id: 0,
            count: 1000,
        },
        // Broker 2 is fenced: its partitions lose their leader.
        C::FenceBroker {
            node_id: 2,
            broker_epoch: 3,
        },
        // Rejected: an epoch that is not broker 3's.
        C::FenceBroker {
            node_id: 3,
            broker_epoch: 4,
        },
        // Broker 3 leaves: controlled shutdown, then fenced.
        C::BeginControlledShutdown {
            node_id: 3,
            broker_epoch: 5,
        },
        C::FenceBroker {
            node_id: 3,
            broker_epoch: 5,
        },
        // Broker 2 comes back as a new incarnation and is unfenced: it leads again.
        C::RegisterBroker(registration(2, 20, true, Some("b"))),
        C::UnfenceBroker {
            node_id: 2,
            broker_epoch: 22,
        },
        C::DeleteTopic {
            topic_id: uuid(102),
        },
        C::DeleteTopic {
            topic_id: uuid(102),
        },
        // Config changes with request ids; the third is a late copy of the first and changes
        // nothing.
        retention(1000, 300),
        retention(2000, 301),
        retention(1000, 300),
        // A group's own session timeout, set then deleted; the default group is refused.
        group_session("g", Some("50000"), 302),
        group_session("", Some("50000"), 303),
        group_session("h", Some("55000"), 304),
        group_session("g", None, 305),
    ]
}

fn group_session(group_id: &str, value: Option<&str>, request: u128) -> ControllerCommand {
    ControllerCommand::AlterGroupConfigs {
        group_id: group_id.to_string(),
        changes: [(
            "consumer.session.timeout.ms".to_string(),
            value.map(str::to_string),
        )]
        .into_iter()
        .collect(),
        request_id: Some(uuid(request)),
    }
}

fn retention(ms: u64, request: u128) -> ControllerCommand {
    ControllerCommand::AlterTopicConfigs {
        topic_id: uuid(100),
        changes: [("retention.ms".to_string(), Some(ms.to_string()))].into(),
        request_id: Some(uuid(request)),
    }
}

fn entries_from_commands() -> Vec<LogEntry> {
    // Index 1 holds the first command: index 0 is the initial membership in a real log, and
    // a blank entry stands for the leader's entry of a new term here.
    let mut entries = vec![Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), 0),
        payload: EntryPayload::Blank,
    }];
    for (i, cmd) in commands().into_iter().enumerate() {
        entries.push(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), i as u64 + 1),
            payload: EntryPayload::Normal(cmd),
        });
    }
    entries
}

fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Expected {
    /// Per entry: what apply answered, and the digest of the image JSON after it.
    steps: Vec<(String, String)>,
    final_image: serde_json::Value,
}

fn replay(entries: &[LogEntry]) -> Expected {
    let mut image = MetadataImage::empty("golden-cluster");
    let mut steps = Vec::new();
    for e in entries {
        let answer = match apply_entry(&mut image, e) {
            CommandResponse::Applied(outcome) => {
                format!("applied {} records", outcome.records.len())
            }
            CommandResponse::Rejected(r) => format!("rejected: {r}"),
            CommandResponse::NoCommand => "no command".to_string(),
        };
        steps.push((answer, fnv(&serde_json::to_vec(&image).unwrap())));
    }
    Expected {
        steps,
        final_image: serde_json::to_value(&image).unwrap(),
    }
}

#[test]
fn golden_log_replays_to_the_golden_image() {
    let log_path = golden_dir().join("metadata-log.json");
    let expected_path = golden_dir().join("metadata-log.expected.json");
    if std::env::var("RAFKA_UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        let entries = entries_from_commands();
        std::fs::write(&log_path, serde_json::to_vec_pretty(&entries).unwrap()).unwrap();
        let expected = replay(&entries);
        std::fs::write(
            &expected_path,
            serde_json::to_vec_pretty(&expected).unwrap(),
        )
        .unwrap();
    }
    let entries: Vec<LogEntry> =
        serde_json::from_slice(&std::fs::read(&log_path).expect("golden log")).unwrap();
    let expected: Expected =
        serde_json::from_slice(&std::fs::read(&expected_path).expect("golden results")).unwrap();
    let got = replay(&entries);
    for (i, (g, e)) in got.steps.iter().zip(&expected.steps).enumerate() {
        assert_eq!(
            g, e,
            "entry {i} ({:?}) applies differently",
            entries[i].payload
        );
    }
    assert_eq!(got.steps.len(), expected.steps.len());
    assert_eq!(got.final_image, expected.final_image);
    // The golden log still says what it is meant to pin.
    let fenced = &got.final_image["brokers"]["3"]["fenced"];
    assert_eq!(fenced, &serde_json::Value::Bool(true));
}

/// Apply depends on nothing but the image and the entry: the same entries give the same image
/// whatever order unrelated state was built in and however many times it runs (no hash-order
/// or clock dependence).
#[test]
fn replay_is_deterministic() {
    let entries = entries_from_commands();
    let a = replay(&entries);
    for _ in 0..5 {
        assert_eq!(replay(&entries), a);
    }
}
