use super::*;

/// Topics by name: id and partition count; the version is the number of topics.
#[derive(Default, Clone)]
struct Topics(BTreeMap<String, (Uuid, i32)>);

impl Topics {
    fn with(pairs: &[(&str, u128, i32)]) -> Self {
        Topics(
            pairs
                .iter()
                .map(|(n, id, c)| (n.to_string(), (Uuid::from_u128(*id), *c)))
                .collect(),
        )
    }
}

impl TopicsView for Topics {
    fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.0.get(name).map(|(id, _)| *id)
    }
    fn partition_count(&self, topic_id: &Uuid) -> Option<i32> {
        self.0
            .values()
            .find(|(id, _)| id == topic_id)
            .map(|(_, c)| *c)
    }
    fn topic_name(&self, topic_id: &Uuid) -> Option<String> {
        self.0
            .iter()
            .find(|(_, (id, _))| id == topic_id)
            .map(|(n, _)| n.clone())
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
    fn version(&self) -> i64 {
        self.0.len() as i64
    }
}

fn t(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

use crate::consumer_records::tp;

fn join(member: &str, topics: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
        topic_partitions: Some(TopicPartitions::new()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<TopicPartitions>) -> HeartbeatRequest {
    HeartbeatRequest {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        topic_partitions: owned,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        ..HeartbeatRequest::default()
    }
}

/// Coordinator plus the log it wrote, so a test can replay it.
struct Harness {
    groups: ConsumerGroups,
    topics: Topics,
    log: Vec<ConsumerGroupRecord>,
}

impl Harness {
    fn new(topics: Topics) -> Self {
        Harness {
            groups: ConsumerGroups::new(ConsumerGroupConfig::default()),
            topics,
            log: Vec::new(),
        }
    }

    fn send(
        &mut self,
        req: HeartbeatRequest,
        now: i64,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let (resp, records) = self
            .groups
            .heartbeat(&req, &self.topics, now, || "generated".to_string())?;
        self.log.extend(records);
        Ok(resp)
    }

    fn ok(&mut self, req: HeartbeatRequest, now: i64) -> HeartbeatResponse {
        self.send(req, now).expect("heartbeat")
    }

    fn member(&self, id: &str) -> &Member {
        &self.groups.group("g").expect("group").members[id]
    }

    /// The log through the codec into a new coordinator: the same groups.
    fn check_replay(&self) {
        let mut fresh = ConsumerGroups::new(ConsumerGroupConfig::default());
        for r in &self.log {
            let (k, v) = r.encode().expect("encode");
            let back = ConsumerGroupRecord::decode(&k, v.as_deref())
                .expect("decode")
                .expect("a consumer group record");
            fresh.replay(&back);
        }
        let a: Vec<_> = self.groups.groups().collect();
        let b: Vec<_> = fresh.groups().collect();
        assert_eq!(a, b, "replaying the log gives another state");
    }
}

#[test]
fn the_front_door_refuses_what_kafka_refuses() {
    let mut h = Harness::new(Topics::default());
    let cases: Vec<(HeartbeatRequest, &str)> = vec![
        (beat("", 3, None), "MemberId can't be empty."),
        (
            HeartbeatRequest {
                group_id: " ".into(),
                ..join("m", &[])
            },
            "GroupId can't be empty.",
        ),
        (
            HeartbeatRequest {
                instance_id: Some("".into()),
                ..join("m", &[])
            },
            "InstanceId can't be empty.",
        ),
        (
            HeartbeatRequest {
                rebalance_timeout_ms: -1,
                ..join("m", &[])
            },
            "RebalanceTimeoutMs must be provided in first request.",
        ),
        (
            HeartbeatRequest {
                topic_partitions: Some(tp(&[(1, &[0])])),
                ..join("m", &[])
            },
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            HeartbeatRequest {
                subscribed_topic_names: None,
                ..join("m", &[])
            },
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
        ),
        (beat("m", -2, None), "InstanceId can't be null."),
        (beat("m", -3, None), "MemberEpoch is invalid."),
    ];
    for (req, message) in cases {
        assert_eq!(
            h.send(req, 0),
            Err(HeartbeatError::InvalidRequest(message.to_string()))
        );
    }
    let bad_assignor = HeartbeatRequest {
        server_assignor: Some("sticky".into()),
        ..join("m", &[])
    };
    assert_eq!(
        h.send(bad_assignor, 0),
        Err(HeartbeatError::UnsupportedAssignor(
            "ServerAssignor sticky is not supported. Supported assignors: uniform, range.".into()
        ))
    );
    assert!(matches!(
        h.send(beat("m", 1, None), 0),
        Err(HeartbeatError::GroupIdNotFound(_))
    ));
    assert!(h.log.is_empty());
}

#[test]
fn a_first_member_gets_every_partition_at_epoch_one() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 4)]));
    let r = h.ok(join("a", &["orders"]), 0);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(r.assignment, Some(tp(&[(1, &[0, 1, 2, 3])])));
    let kinds: Vec<i16> = h
        .log
        .iter()
        .map(|r| r.encode().unwrap().0[1] as i16)
        .collect();
    // Member metadata, group epoch, target member, target epoch, current assignment.
    assert_eq!(kinds, vec![5, 3, 7, 6, 8]);
    let g = h.groups.group("g").unwrap();
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    // A heartbeat that changes nothing writes nothing and sends no assignment.
    let before = h.log.len();
    let r = h.ok(beat("a", 1, None), 1000);
    assert_eq!((r.member_epoch, r.assignment), (1, None));
    assert_eq!(h.log.len(), before);
    h.check_replay();
}

/// docs/design/kip-848.md §3.6: a second member joins; the first revokes half before the
/// second gets anything.
#[test]
fn partitions_move_only_after_the_previous_owner_revoked_them() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 4)]));
    h.ok(join("a", &["orders"]), 0);
    let b = h.ok(join("b", &["orders"]), 10);
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment, Some(TopicPartitions::new()));
    assert_eq!(
        h.member("b").assignment.state,
        MemberState::UnreleasedPartitions
    );
    assert_eq!(
        h.groups.group("g").unwrap().state(),
        ConsumerGroupState::Reconciling
    );

    // A's heartbeat without its owned partitions: revoke two, keep two, still epoch 1.
    let a = h.ok(beat("a", 1, None), 20);
    assert_eq!(a.member_epoch, 1);
    let kept = a.assignment.clone().expect("changed assignment");
    assert_eq!(kept.values().map(BTreeSet::len).sum::<usize>(), 2);
    assert_eq!(
        h.member("a").assignment.state,
        MemberState::UnrevokedPartitions
    );
    // B asks again: still nothing, A holds them.
    let b = h.ok(beat("b", 2, Some(TopicPartitions::new())), 30);
    assert_eq!(b.assignment, None);
    // A reports it let go: epoch 2.
    let a = h.ok(beat("a", 1, Some(kept.clone())), 40);
    assert_eq!(a.member_epoch, 2);
    // Now B gets the other two.
    let b = h.ok(beat("b", 2, Some(TopicPartitions::new())), 50);
    let got = b.assignment.expect("B's partitions");
    assert_eq!(got.values().map(BTreeSet::len).sum::<usize>(), 2);
    assert!(got[&t(1)].is_disjoint(&kept[&t(1)]));
    assert_eq!(
        h.groups.group("g").unwrap().state(),
        ConsumerGroupState::Stable
    );
    h.check_replay();
}

#[test]
fn a_leaving_member_is_removed_and_the_rest_take_over() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    h.ok(join("a", &["orders"]), 0);
    h.ok(join("b", &["orders"]), 0);
    let a = h.ok(beat("a", 1, None), 0);
    h.ok(beat("a", 1, a.assignment.clone()), 0);
    h.ok(beat("b", 2, Some(TopicPartitions::new())), 0);
    let left = h.ok(beat("b", -1, None), 0);
    assert_eq!((left.member_epoch, left.assignment), (-1, None));
    let g = h.groups.group("g").unwrap();
    assert!(!g.members.contains_key("b") && !g.target.contains_key("b"));
    assert_eq!(g.epoch, 3);
    let a = h.ok(beat("a", 2, Some(tp(&[(1, &[0])]))), 0);
    assert_eq!(a.member_epoch, 3);
    assert_eq!(a.assignment, Some(tp(&[(1, &[0, 1])])));
    assert!(matches!(
        h.send(beat("b", 2, None), 0),
        Err(HeartbeatError::UnknownMemberId(_))
    ));
    h.check_replay();
}

#[test]
fn sessions_and_rebalances_time_out() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    h.ok(join("a", &["orders"]), 0);
    h.ok(join("b", &["orders"]), 1_000);
    assert_eq!(h.groups.next_deadline_ms(), Some(45_000));
    // A must revoke one partition; it never does: fenced after its rebalance timeout (30 s).
    h.ok(beat("a", 1, None), 2_000);
    assert!(h.groups.expire(31_999).is_empty());
    let fenced = h.groups.expire(32_000);
    assert!(!fenced.is_empty());
    h.log.extend(fenced);
    assert!(!h.groups.group("g").unwrap().members.contains_key("a"));
    // B's session: 45 s after its last heartbeat.
    h.ok(beat("b", 2, Some(TopicPartitions::new())), 40_000);
    assert!(h.groups.expire(84_999).is_empty());
    h.log.extend(h.groups.expire(85_000));
    assert_eq!(
        h.groups.group("g").unwrap().state(),
        ConsumerGroupState::Empty
    );
    h.check_replay();
}

/// A group's own `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` apply from
/// each member's next heartbeat; other groups keep the broker's.
#[test]
fn a_group_config_sets_its_session_and_heartbeat_interval() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    let a = h.ok(join("a", &["orders"]), 0);
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(h.groups.next_deadline_ms(), Some(45_000));
    h.groups.set_timeouts(BTreeMap::from([(
        "g".to_string(),
        GroupTimeouts {
            session_timeout_ms: Some(10_000),
            heartbeat_interval_ms: Some(2_000),
        },
    )]));
    // Until its next heartbeat the member keeps the deadline it has.
    assert_eq!(h.groups.next_deadline_ms(), Some(45_000));
    let a = h.ok(beat("a", 1, a.assignment.clone()), 1_000);
    assert_eq!(a.heartbeat_interval_ms, 2_000);
    assert_eq!(h.groups.next_deadline_ms(), Some(11_000));
    assert!(h.groups.expire(10_999).is_empty());
    h.log.extend(h.groups.expire(11_000));
    assert_eq!(
        h.groups.group("g").unwrap().state(),
        ConsumerGroupState::Empty
    );
    // Deleted again: the broker's values.
    h.groups.set_timeouts(BTreeMap::new());
    let a = h.ok(join("a", &["orders"]), 20_000);
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(h.groups.next_deadline_ms(), Some(65_000));
    h.check_replay();
}

#[test]
fn epochs_are_checked() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    h.ok(join("a", &["orders"]), 0);
    assert_eq!(
        h.send(beat("a", 5, None), 0),
        Err(HeartbeatError::FencedMemberEpoch)
    );
    h.ok(join("b", &["orders"]), 0);
    let a = h.ok(beat("a", 1, None), 0);
    let kept = a.assignment.unwrap();
    let a = h.ok(beat("a", 1, Some(kept.clone())), 0);
    assert_eq!(a.member_epoch, 2);
    // The answer was lost: the previous epoch with a subset of the assignment is accepted.
    let again = h.ok(beat("a", 1, Some(kept.clone())), 0);
    assert_eq!(again.member_epoch, 2);
    // Not with a partition it was not given.
    assert_eq!(
        h.send(beat("a", 1, Some(tp(&[(1, &[0, 1])]))), 0),
        Err(HeartbeatError::FencedMemberEpoch)
    );
    // A rejoin with epoch 0 is always accepted and answers the whole assignment.
    let rejoin = h.ok(join("a", &["orders"]), 0);
    assert_eq!(rejoin.member_epoch, 2);
    assert_eq!(rejoin.assignment, Some(kept));
}

#[test]
fn a_static_member_returns_without_a_rebalance() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    let with_instance = |member: &str| HeartbeatRequest {
        instance_id: Some("app-1".into()),
        ..join(member, &["orders"])
    };
    h.ok(with_instance("a1"), 0);
    h.ok(join("b", &["orders"]), 0);
    let a = h.ok(
        HeartbeatRequest {
            instance_id: Some("app-1".into()),
            ..beat("a1", 1, None)
        },
        0,
    );
    h.ok(
        HeartbeatRequest {
            instance_id: Some("app-1".into()),
            ..beat("a1", 1, a.assignment.clone())
        },
        0,
    );
    h.ok(beat("b", 2, Some(TopicPartitions::new())), 0);
    let epoch = h.groups.group("g").unwrap().epoch;
    let held = h.member("a1").assignment.assigned.clone();

    // A new process with the same instance id while the old one is still in: refused.
    assert_eq!(
        h.send(with_instance("a2"), 0),
        Err(HeartbeatError::UnreleasedInstanceId("app-1".into()))
    );
    // The old one leaves for now (-2): it keeps its partitions.
    let left = h.ok(
        HeartbeatRequest {
            instance_id: Some("app-1".into()),
            ..beat("a1", -2, None)
        },
        0,
    );
    assert_eq!(left.member_epoch, -2);
    assert_eq!(h.member("a1").assignment.assigned, held);
    // The new process takes over its assignment at once; the group epoch does not move.
    let back = h.ok(with_instance("a2"), 0);
    assert_eq!(back.assignment, Some(held));
    let g = h.groups.group("g").unwrap();
    assert_eq!(g.epoch, epoch);
    assert!(!g.members.contains_key("a1"));
    h.check_replay();
}

#[test]
fn a_topic_growing_or_appearing_starts_a_new_assignment() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 2)]));
    h.ok(join("a", &["orders", "later"]), 0);
    h.topics = Topics::with(&[("orders", 1, 3), ("later", 2, 1)]);
    let r = h.ok(beat("a", 1, Some(tp(&[(1, &[0, 1])]))), 0);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(tp(&[(1, &[0, 1, 2]), (2, &[0])])));
    h.check_replay();
}

#[test]
fn the_group_size_is_bounded() {
    let mut h = Harness::new(Topics::default());
    h.groups = ConsumerGroups::new(ConsumerGroupConfig {
        max_size: 1,
        ..ConsumerGroupConfig::default()
    });
    h.ok(join("a", &[]), 0);
    assert_eq!(
        h.send(join("b", &[]), 0),
        Err(HeartbeatError::GroupMaxSizeReached)
    );
    h.ok(beat("a", 1, None), 0);
}

#[test]
fn the_most_requested_assignor_is_used() {
    let mut h = Harness::new(Topics::with(&[("x", 1, 4), ("y", 2, 4)]));
    let ranged = |m: &str| HeartbeatRequest {
        server_assignor: Some("range".into()),
        ..join(m, &["x", "y"])
    };
    h.ok(ranged("a"), 0);
    h.ok(ranged("b"), 0);
    // range co-partitions: a holds the same partition numbers of x and y.
    let target = &h.groups.group("g").unwrap().target["a"];
    assert_eq!(target[&t(1)], target[&t(2)]);
}

fn by_regex(member: &str, regex: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some(regex.into()),
        ..join(member, &[])
    }
}

#[test]
fn a_regex_subscription_follows_the_topics_it_matches() {
    let mut h = Harness::new(Topics::with(&[("orders-eu", 1, 1), ("payments", 2, 1)]));
    // A new pattern is resolved at the group's next heartbeat (Kafka resolves it in the
    // background): the joining heartbeat is answered without its topics.
    let r = h.ok(by_regex("a", "orders-.*"), 0);
    assert_eq!((r.member_epoch, r.assignment), (1, Some(tp(&[]))));
    assert!(h.groups.group("g").unwrap().regexes.is_empty());
    let r = h.ok(beat("a", 1, Some(tp(&[]))), 100);
    assert_eq!((r.member_epoch, r.assignment), (2, Some(tp(&[(1, &[0])]))));
    // The whole name must match: "xorders-eu" does not.
    h.topics = Topics::with(&[
        ("orders-eu", 1, 1),
        ("payments", 2, 1),
        ("orders-us", 3, 2),
        ("xorders-eu", 4, 1),
    ]);
    // Within 10 s of the last resolution a new topic waits.
    let r = h.ok(beat("a", 2, Some(tp(&[(1, &[0])]))), 5_000);
    assert_eq!((r.member_epoch, r.assignment), (2, None));
    let r = h.ok(beat("a", 2, Some(tp(&[(1, &[0])]))), 10_100);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(r.assignment, Some(tp(&[(1, &[0]), (3, &[0, 1])])));
    assert_eq!(
        h.groups.group("g").unwrap().regexes["orders-.*"].topics,
        vec!["orders-eu".to_string(), "orders-us".to_string()]
    );
    h.check_replay();
    // The last subscriber leaves: the pattern goes too.
    h.ok(beat("a", -1, None), 11_100);
    assert!(h.groups.group("g").unwrap().regexes.is_empty());
    h.check_replay();
}

#[test]
fn an_invalid_regex_is_refused_and_names_and_a_regex_combine() {
    let mut h = Harness::new(Topics::with(&[("a1", 1, 1), ("b", 2, 1)]));
    assert!(matches!(
        h.send(by_regex("m", "a("), 0),
        Err(HeartbeatError::InvalidRegularExpression(m))
            if m.starts_with("SubscribedTopicRegex `a(` is not a valid regular expression")
    ));
    assert!(h.log.is_empty());
    let both = HeartbeatRequest {
        subscribed_topic_names: Some(vec!["b".into()]),
        ..by_regex("m", "a.")
    };
    // The literal topic first, the pattern's at the next heartbeat.
    let r = h.ok(both, 0);
    assert_eq!(r.assignment, Some(tp(&[(2, &[0])])));
    let r = h.ok(beat("m", 1, Some(tp(&[(2, &[0])]))), 1);
    assert_eq!(r.assignment, Some(tp(&[(1, &[0]), (2, &[0])])));
    // An empty pattern clears it: a1 is to be revoked.
    let r = h.ok(
        HeartbeatRequest {
            subscribed_topic_regex: Some(String::new()),
            ..beat("m", 2, Some(tp(&[(1, &[0]), (2, &[0])])))
        },
        2,
    );
    assert_eq!(r.member_epoch, 2);
    assert_eq!(
        h.member("m").assignment.pending_revocation,
        tp(&[(1, &[0])])
    );
    h.check_replay();
}

#[test]
fn offsets_are_checked_against_member_epochs() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 1)]));
    assert_eq!(
        h.groups.validate_offset_commit("g", "a", 1, 9),
        None,
        "not a consumer group"
    );
    h.ok(join("a", &["orders"]), 0);
    let g = &h.groups;
    assert_eq!(g.validate_offset_commit("g", "a", 1, 9), Some(Ok(())));
    assert_eq!(
        g.validate_offset_commit("g", "a", 0, 9),
        Some(Err(OffsetError::StaleMemberEpoch))
    );
    assert_eq!(
        g.validate_offset_commit("g", "x", 1, 9),
        Some(Err(OffsetError::UnknownMemberId))
    );
    assert!(matches!(
        g.validate_offset_commit("g", "a", 1, 8),
        Some(Err(OffsetError::UnsupportedVersion(_)))
    ));
    // An admin's commit (negative epoch) only passes while the group has no members.
    assert_eq!(
        g.validate_offset_commit("g", "", -1, 9),
        Some(Err(OffsetError::UnknownMemberId))
    );
    assert_eq!(
        g.validate_txn_offset_commit("g", "a", 0, None),
        Some(Err(OffsetError::IllegalGeneration))
    );
    assert_eq!(
        g.validate_txn_offset_commit("g", "", -1, None),
        Some(Ok(()))
    );
    assert_eq!(g.validate_offset_fetch("g", None, -1), Some(Ok(())));
    assert_eq!(g.validate_offset_fetch("g", Some("a"), 1), Some(Ok(())));
    assert_eq!(
        g.validate_offset_fetch("g", Some("a"), 3),
        Some(Err(OffsetError::StaleMemberEpoch))
    );
    h.ok(beat("a", -1, None), 0);
    assert_eq!(
        h.groups.validate_offset_commit("g", "", -1, 9),
        Some(Ok(()))
    );
}

#[test]
fn only_an_empty_group_is_deleted() {
    let mut h = Harness::new(Topics::with(&[("orders", 1, 1)]));
    assert_eq!(h.groups.delete_group("g"), None);
    h.ok(by_regex("a", "ord.*"), 0);
    assert_eq!(h.groups.delete_group("g"), Some(Err(NonEmptyGroup)));
    h.ok(beat("a", -1, None), 0);
    let records = h.groups.delete_group("g").unwrap().unwrap();
    let kinds: Vec<u8> = records.iter().map(|r| r.encode().unwrap().0[1]).collect();
    assert_eq!(kinds, vec![6, 4, 3]);
    assert!(h.groups.group("g").is_none());
    h.log.extend(records);
    h.check_replay();
}
