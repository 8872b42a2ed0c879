//! The state machine without sockets: time is a number, replies are values.

use super::*;
use crate::consumer_protocol::encode_subscription_v0;

/// A metadata image without topics, for the classic groups' tests.
struct NoTopics;

impl crate::consumer_group::TopicsView for NoTopics {
    fn topic_id(&self, _: &str) -> Option<uuid::Uuid> {
        None
    }
    fn partition_count(&self, _: &uuid::Uuid) -> Option<i32> {
        None
    }
    fn topic_name(&self, _: &uuid::Uuid) -> Option<String> {
        None
    }
    fn topic_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn version(&self) -> i64 {
        0
    }
}

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn coordinator(initial_delay_ms: i32) -> Coordinator {
    let mut n: u128 = 0;
    let config = GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        num_partitions: 1,
        ..GroupConfig::default()
    };
    let mut c = Coordinator::new(
        config,
        Box::new(move || {
            n += 1;
            n
        }),
    );
    c.begin_load(0);
    c.finish_load(0, 0);
    c
}

fn join_req(member: &str, instance: Option<&str>, version: i16) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(str::to_string),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from(encode_subscription_v0(&["t"])))],
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        version,
    }
}

fn join_reply(out: &Output, id: ReplyId) -> Option<JoinResponse> {
    out.replies.iter().find_map(|r| match &r.reply {
        Reply::Join(j) if r.id == id => Some(j.clone()),
        _ => None,
    })
}

fn sync_reply(out: &Output, id: ReplyId) -> Option<SyncResponse> {
    out.replies.iter().find_map(|r| match &r.reply {
        Reply::Sync(s) if r.id == id => Some(s.clone()),
        _ => None,
    })
}

fn sync_req(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

/// KIP-394 two-step join of a dynamic member; returns its member id. The join stays parked.
fn join_dynamic(c: &mut Coordinator, now: i64, id: ReplyId) -> (String, Output) {
    let out = c.join_group(now, id, join_req("", None, 9), &NoTopics);
    let first = join_reply(&out, id).expect("immediate answer");
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"));
    let out = c.join_group(now, id, join_req(&first.member_id, None, 9), &NoTopics);
    (first.member_id, out)
}

#[test]
fn single_member_joins_syncs_and_heartbeats() {
    let mut c = coordinator(0);
    let (m, out) = join_dynamic(&mut c, 0, 1);
    // The initial delay of 0 still parks the join until the timer runs.
    assert!(join_reply(&out, 1).is_none());
    assert_eq!(
        c.group("g").map(|g| g.state),
        Some(GroupState::PreparingRebalance)
    );
    let out = c.tick(0);
    let j = join_reply(&out, 1).expect("join completes at the initial delay");
    assert_eq!(j.error, None);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, m);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(j.members.len(), 1);

    assert_eq!(c.heartbeat(1, "g", &m, None, 1), Ok(()));
    let out = c.sync_group(
        2,
        2,
        sync_req(&m, 1, vec![(m.clone(), Bytes::from_static(b"A"))]),
        &NoTopics,
    );
    let s = sync_reply(&out, 2).expect("leader sync answers at once");
    assert_eq!(s.assignment, Bytes::from_static(b"A"));
    assert_eq!(out.appends.len(), 1, "group metadata is written");
    assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
    assert_eq!(
        c.heartbeat(3, "g", &m, None, 0),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat(3, "g", "nobody", None, 1),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn second_member_triggers_rebalance_and_both_get_assignments() {
    let mut c = coordinator(0);
    let (a, _) = join_dynamic(&mut c, 0, 1);
    c.tick(0);
    c.sync_group(
        1,
        2,
        sync_req(&a, 1, vec![(a.clone(), Bytes::from_static(b"all"))]),
        &NoTopics,
    );

    let (b, out) = join_dynamic(&mut c, 100, 3);
    assert!(join_reply(&out, 3).is_none(), "b waits for a to rejoin");
    assert_eq!(
        c.group("g").map(|g| g.state),
        Some(GroupState::PreparingRebalance)
    );
    // a learns about the rebalance through its heartbeat, then rejoins.
    assert_eq!(
        c.heartbeat(200, "g", &a, None, 1),
        Err(GroupError::RebalanceInProgress)
    );
    let out = c.join_group(300, 4, join_req(&a, None, 9), &NoTopics);
    let ja = join_reply(&out, 4).expect("all joined: completes");
    let jb = join_reply(&out, 3).expect("b answered too");
    assert_eq!(ja.generation_id, 2);
    assert_eq!(jb.generation_id, 2);
    assert_eq!(ja.leader, a);
    assert_eq!(ja.members.len(), 2);
    assert!(
        jb.members.is_empty(),
        "only the leader gets member metadata"
    );

    // The follower's sync waits for the leader's.
    let out = c.sync_group(400, 5, sync_req(&b, 2, vec![]), &NoTopics);
    assert!(sync_reply(&out, 5).is_none());
    let out = c.sync_group(
        500,
        6,
        sync_req(
            &a,
            2,
            vec![
                (a.clone(), Bytes::from_static(b"pa")),
                (b.clone(), Bytes::from_static(b"pb")),
            ],
        ),
        &NoTopics,
    );
    assert_eq!(
        sync_reply(&out, 5).map(|s| s.assignment),
        Some(Bytes::from_static(b"pb"))
    );
    assert_eq!(
        sync_reply(&out, 6).map(|s| s.assignment),
        Some(Bytes::from_static(b"pa"))
    );
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut c = coordinator(0);
    let (a, _) = join_dynamic(&mut c, 0, 1);
    c.tick(0);
    let (b, _) = join_dynamic(&mut c, 0, 2);
    c.join_group(0, 3, join_req(&a, None, 9), &NoTopics);
    c.sync_group(0, 4, sync_req(&b, 2, vec![]), &NoTopics);
    c.sync_group(0, 5, sync_req(&a, 2, vec![]), &NoTopics);
    assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
    // a keeps heartbeating, b goes silent.
    let mut t = 0;
    while t < i64::from(SESSION) + 1000 {
        t += 1000;
        let _ = c.heartbeat(t, "g", &a, None, 2);
        c.tick(t);
    }
    let g = c.group("g").expect("group");
    assert!(!g.members.contains_key(&b), "b expired");
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let out = c.join_group(t, 6, join_req(&a, None, 9), &NoTopics);
    let j = join_reply(&out, 6).expect("a alone completes the join");
    assert_eq!(j.generation_id, 3);
    assert_eq!(j.members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = coordinator(0);
    let (a, _) = join_dynamic(&mut c, 0, 1);
    c.tick(0);
    let (b, _) = join_dynamic(&mut c, 0, 2);
    c.join_group(0, 3, join_req(&a, None, 9), &NoTopics);
    c.sync_group(0, 4, sync_req(&a, 2, vec![]), &NoTopics);
    c.sync_group(0, 5, sync_req(&b, 2, vec![]), &NoTopics);
    // b rejoins (say, its subscription changed); a keeps heartbeating but never rejoins.
    let mut changed = join_req(&b, None, 9);
    changed.protocols = vec![(
        "range".into(),
        Bytes::from(encode_subscription_v0(&["t", "u"])),
    )];
    let out = c.join_group(10, 6, changed, &NoTopics);
    assert!(join_reply(&out, 6).is_none());
    let mut t = 10;
    let mut answered = None;
    while t < 10 + i64::from(REBALANCE) + 1000 && answered.is_none() {
        t += 1000;
        let _ = c.heartbeat(t, "g", &a, None, 2);
        answered = join_reply(&c.tick(t), 6);
    }
    let j = answered.expect("join completes at the rebalance timeout");
    assert_eq!(j.leader, b, "the leader moves to the member that rejoined");
    assert_eq!(j.members.len(), 1);
    assert!(!c.group("g").expect("g").members.contains_key(&a));
}

#[test]
fn initial_delay_collects_members_into_one_generation() {
    let mut c = coordinator(3000);
    let (a, out) = join_dynamic(&mut c, 0, 1);
    assert!(join_reply(&out, 1).is_none());
    let (b, _) = join_dynamic(&mut c, 1000, 2);
    // Nothing completes before the delay, even though everyone has joined.
    assert!(join_reply(&c.tick(2999), 1).is_none());
    // b joined during the delay, so it is extended once more (rebalance time is left).
    assert!(join_reply(&c.tick(3000), 1).is_none());
    let out = c.tick(6000);
    let ja = join_reply(&out, 1).expect("a");
    let jb = join_reply(&out, 2).expect("b");
    assert_eq!(ja.generation_id, 1);
    assert_eq!(jb.generation_id, 1);
    assert_eq!(ja.members.len() + jb.members.len(), 2);
    assert!(ja.leader == a || ja.leader == b);
}

#[test]
fn join_errors_match_kafka() {
    let mut c = coordinator(0);
    let mut r = join_req("", None, 9);
    r.session_timeout_ms = 10;
    let out = c.join_group(0, 1, r, &NoTopics);
    assert_eq!(
        join_reply(&out, 1).and_then(|j| j.error),
        Some(GroupError::InvalidSessionTimeout)
    );
    let out = c.join_group(0, 2, join_req("ghost", None, 9), &NoTopics);
    assert_eq!(
        join_reply(&out, 2).and_then(|j| j.error),
        Some(GroupError::UnknownMemberId)
    );
    let mut r = join_req("", None, 9);
    r.group_id = String::new();
    let out = c.join_group(0, 3, r, &NoTopics);
    assert_eq!(
        join_reply(&out, 3).and_then(|j| j.error),
        Some(GroupError::InvalidGroupId)
    );
    // A member with a different protocol type cannot join a running group.
    let (_a, _) = join_dynamic(&mut c, 0, 4);
    let mut r = join_req("", None, 3);
    r.protocol_type = "connect".into();
    let out = c.join_group(0, 5, r, &NoTopics);
    assert_eq!(
        join_reply(&out, 5).and_then(|j| j.error),
        Some(GroupError::InconsistentGroupProtocol)
    );
    // Not the coordinator for an unloaded partition; loading answers LOAD_IN_PROGRESS.
    let mut other = Coordinator::new(GroupConfig::default(), Box::new(|| 7));
    let out = other.join_group(0, 6, join_req("", None, 9), &NoTopics);
    assert_eq!(
        join_reply(&out, 6).and_then(|j| j.error),
        Some(GroupError::NotCoordinator)
    );
    other.begin_load(other.partition_of("g"));
    let out = other.join_group(0, 7, join_req("", None, 9), &NoTopics);
    assert_eq!(
        join_reply(&out, 7).and_then(|j| j.error),
        Some(GroupError::CoordinatorLoadInProgress)
    );
    // group.max.size
    let mut small = Coordinator::new(
        GroupConfig {
            max_size: 1,
            initial_rebalance_delay_ms: 0,
            num_partitions: 1,
            ..GroupConfig::default()
        },
        Box::new(|| 9),
    );
    small.begin_load(0);
    small.finish_load(0, 0);
    small.join_group(0, 8, join_req("", None, 3), &NoTopics);
    let out = small.join_group(0, 9, join_req("", None, 3), &NoTopics);
    assert_eq!(
        join_reply(&out, 9).and_then(|j| j.error),
        Some(GroupError::GroupMaxSizeReached)
    );
}

fn stable_static_group(c: &mut Coordinator) -> String {
    let out = c.join_group(0, 1, join_req("", Some("i1"), 9), &NoTopics);
    assert!(join_reply(&out, 1).is_none(), "static members skip KIP-394");
    let j = join_reply(&c.tick(0), 1).expect("joined");
    let out = c.sync_group(
        0,
        2,
        SyncRequest {
            group_instance_id: Some("i1".into()),
            ..sync_req(
                &j.member_id,
                1,
                vec![(j.member_id.clone(), Bytes::from_static(b"p0"))],
            )
        },
        &NoTopics,
    );
    assert!(sync_reply(&out, 2).is_some());
    j.member_id
}

#[test]
fn static_member_rejoin_keeps_generation_and_assignment() {
    let mut c = coordinator(0);
    let old = stable_static_group(&mut c);
    // The process restarts: same instance id, no member id, within the session timeout.
    let out = c.join_group(5000, 3, join_req("", Some("i1"), 9), &NoTopics);
    let j = join_reply(&out, 3).expect("answered at once, no rebalance");
    assert_eq!(j.error, None);
    assert_eq!(j.generation_id, 1);
    assert_ne!(j.member_id, old);
    assert!(
        j.skip_assignment,
        "the returning leader must not reassign (KIP-814)"
    );
    assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
    assert_eq!(out.appends.len(), 1, "the new member id is persisted");
    let out = c.sync_group(
        5001,
        4,
        SyncRequest {
            group_instance_id: Some("i1".into()),
            ..sync_req(&j.member_id, 1, vec![])
        },
        &NoTopics,
    );
    assert_eq!(
        sync_reply(&out, 4).map(|s| s.assignment),
        Some(Bytes::from_static(b"p0"))
    );
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat(5002, "g", &old, Some("i1"), 1),
        Err(GroupError::FencedInstanceId)
    );
    // Before v9 the returning leader is told the old id leads, so it does not assign.
    let out = c.join_group(6000, 5, join_req("", Some("i1"), 5), &NoTopics);
    let j5 = join_reply(&out, 5).expect("answered");
    assert_eq!(j5.leader, j.member_id);
    assert!(j5.members.is_empty());
}

#[test]
fn static_member_expires_after_session_timeout() {
    let mut c = coordinator(0);
    let m = stable_static_group(&mut c);
    c.tick(i64::from(SESSION) + 1);
    let g = c.group("g").expect("g");
    assert!(!g.members.contains_key(&m));
    // Alone, it went through PreparingRebalance to Empty with a new generation.
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation_id, 2);
}

#[test]
fn leave_group_batched_and_by_instance_id() {
    let mut c = coordinator(0);
    let m = stable_static_group(&mut c);
    let out = c.leave_group(
        10,
        9,
        "g",
        vec![
            LeaveMember {
                member_id: String::new(),
                group_instance_id: Some("i1".into()),
            },
            LeaveMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    );
    let Some(Reply::Leave(Ok(results))) = out
        .replies
        .iter()
        .find(|r| r.id == 9)
        .map(|r| r.reply.clone())
    else {
        panic!("leave reply");
    };
    assert_eq!(results[0].1, None);
    assert_eq!(results[1].1, Some(GroupError::UnknownMemberId));
    let g = c.group("g").expect("g");
    assert!(!g.members.contains_key(&m));
    assert_eq!(g.state, GroupState::Empty);
}

fn commit(c: &mut Coordinator, now: i64, member: &str, generation: i32, offset: i64) -> Output {
    c.commit_offsets(
        now,
        50,
        CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            offsets: vec![("t".into(), 0, offset, 3, Some("meta".into()))],
        },
    )
}

fn commit_errors(out: &Output) -> Vec<Option<GroupError>> {
    out.replies
        .iter()
        .find_map(|r| match &r.reply {
            Reply::Commit(p) => Some(p.iter().map(|(_, _, e)| *e).collect()),
            _ => None,
        })
        .expect("commit reply")
}

#[test]
fn offsets_commit_fetch_and_validation() {
    let mut c = coordinator(0);
    // Simple (generation -1) commit creates an offsets-only group.
    let out = commit(&mut c, 1, "", -1, 42);
    assert_eq!(commit_errors(&out), vec![None]);
    assert_eq!(out.appends[0].records.len(), 1);
    let f = c
        .fetch_offsets("g", Some(&[("t".into(), vec![0, 1])]), false)
        .expect("fetch");
    assert_eq!(f[0].offset, 42);
    assert_eq!(f[0].leader_epoch, 3);
    assert_eq!(f[0].metadata.as_deref(), Some("meta"));
    assert_eq!(f[1].offset, -1);
    assert_eq!(c.fetch_offsets("g", None, false).expect("all").len(), 1);
    assert_eq!(c.fetch_offsets("nope", None, false), Ok(vec![]));

    // Commits from group members are checked against member id and generation.
    let (m, _) = join_dynamic(&mut c, 10, 1);
    assert_eq!(
        commit_errors(&commit(&mut c, 10, &m, 0, 1)),
        vec![None],
        "PreparingRebalance accepts commits of the current generation (members commit while revoking)"
    );
    assert_eq!(
        commit_errors(&commit(&mut c, 10, &m, 1, 1)),
        vec![Some(GroupError::IllegalGeneration)]
    );
    c.tick(10);
    assert_eq!(
        commit_errors(&commit(&mut c, 11, &m, 1, 1)),
        vec![Some(GroupError::RebalanceInProgress)],
        "CompletingRebalance"
    );
    c.sync_group(12, 2, sync_req(&m, 1, vec![]), &NoTopics);
    assert_eq!(commit_errors(&commit(&mut c, 13, &m, 1, 7)), vec![None]);
    assert_eq!(
        commit_errors(&commit(&mut c, 13, "", -1, 7)),
        vec![Some(GroupError::UnknownMemberId)],
        "an active group refuses simple commits"
    );
    assert_eq!(
        commit_errors(&commit(&mut c, 13, &m, 5, 7)),
        vec![Some(GroupError::IllegalGeneration)]
    );
    // Unknown group with a generation.
    let out = c.commit_offsets(
        0,
        51,
        CommitRequest {
            group_id: "other".into(),
            generation_id: 3,
            member_id: "x".into(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            offsets: vec![("t".into(), 0, 1, -1, None)],
        },
    );
    assert_eq!(
        commit_errors(&out),
        vec![Some(GroupError::IllegalGeneration)]
    );
    // Oversized metadata.
    let mut big = commit(&mut c, 13, &m, 1, 8);
    big.replies.clear();
    let out = c.commit_offsets(
        14,
        52,
        CommitRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: m.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            offsets: vec![("t".into(), 0, 9, -1, Some("x".repeat(5000)))],
        },
    );
    assert_eq!(
        commit_errors(&out),
        vec![Some(GroupError::OffsetMetadataTooLarge)]
    );
}

#[test]
fn delete_group_and_offsets() {
    let mut c = coordinator(0);
    let (m, _) = join_dynamic(&mut c, 0, 1);
    c.tick(0);
    c.sync_group(0, 2, sync_req(&m, 1, vec![]), &NoTopics);
    commit(&mut c, 1, &m, 1, 5);
    let delete = |c: &mut Coordinator, id| match c.delete_group(2, id, "g").replies.remove(0).reply
    {
        Reply::DeleteGroup(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(delete(&mut c, 3), Err(GroupError::NonEmptyGroup));
    // Subscribed topic offsets cannot be deleted from an active group.
    let out = c.delete_offsets(4, "g", vec![("t".into(), 0), ("u".into(), 0)]);
    let Reply::OffsetDelete(Ok(r)) = &out.replies[0].reply else {
        panic!("offset delete reply");
    };
    assert_eq!(r[0].2, Some(GroupError::GroupSubscribedToTopic));
    assert_eq!(r[1].2, None);
    let out = c.delete_offsets(5, "nope", vec![]);
    assert_eq!(
        out.replies[0].reply,
        Reply::OffsetDelete(Err(GroupError::GroupIdNotFound))
    );

    c.leave_group(
        3,
        6,
        "g",
        vec![LeaveMember {
            member_id: m,
            group_instance_id: None,
        }],
    );
    let out = c.delete_group(4, 7, "g");
    assert_eq!(out.replies[0].reply, Reply::DeleteGroup(Ok(())));
    // One offset tombstone and one group tombstone.
    assert_eq!(out.appends[0].records.len(), 2);
    assert!(out.appends[0].records.iter().all(|(_, v)| v.is_none()));
    assert!(c.group("g").is_none());
    assert_eq!(delete(&mut c, 8), Err(GroupError::GroupIdNotFound));
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention() {
    let mut c = coordinator(0);
    let retention = c.config().offsets_retention_ms;
    let check = c.config().offsets_retention_check_interval_ms;
    commit(&mut c, 0, "", -1, 5);
    // Offsets-only group: expiry counts from the commit.
    let out = c.tick(retention - 1);
    assert!(out.appends.is_empty());
    assert!(c.group("g").is_some());
    let out = c.tick(retention + check);
    assert_eq!(out.appends.len(), 1);
    assert_eq!(
        out.appends[0].records.len(),
        2,
        "offset and group tombstones"
    );
    assert!(c.group("g").is_none());
}

#[test]
fn reload_from_records_restores_groups_and_offsets() {
    let mut c = coordinator(0);
    let (m, _) = join_dynamic(&mut c, 0, 1);
    let mut log = Vec::new();
    log.extend(c.tick(0).appends);
    let out = c.sync_group(
        0,
        2,
        sync_req(&m, 1, vec![(m.clone(), Bytes::from_static(b"asg"))]),
        &NoTopics,
    );
    log.extend(out.appends);
    log.extend(commit(&mut c, 1, &m, 1, 77).appends);

    let mut fresh = Coordinator::new(
        GroupConfig {
            num_partitions: 1,
            ..GroupConfig::default()
        },
        Box::new(|| 1),
    );
    fresh.begin_load(0);
    for a in &log {
        for (k, v) in &a.records {
            let r = records::decode_record(k, v.as_deref()).expect("decodes");
            fresh.replay(r, 100);
        }
    }
    fresh.finish_load(0, 100);
    let g = fresh.group("g").expect("restored");
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.generation_id, 1);
    assert_eq!(
        g.members.get(&m).map(|x| x.assignment.clone()),
        Some(Bytes::from_static(b"asg"))
    );
    assert_eq!(fresh.heartbeat(101, "g", &m, None, 1), Ok(()));
    let f = fresh.fetch_offsets("g", None, false).expect("offsets");
    assert_eq!((f[0].offset, f[0].leader_epoch), (77, 3));
}

#[test]
fn unload_answers_parked_requests_not_coordinator() {
    let mut c = coordinator(3000);
    let (_m, _) = join_dynamic(&mut c, 0, 1);
    let out = c.unload_partition(0);
    assert_eq!(
        join_reply(&out, 1).and_then(|j| j.error),
        Some(GroupError::NotCoordinator)
    );
    assert!(c.group("g").is_none());
    assert_eq!(
        c.next_deadline_ms(),
        Some(c.config().offsets_retention_check_interval_ms)
    );
}

#[test]
fn describe_and_list() {
    let mut c = coordinator(0);
    let (m, _) = join_dynamic(&mut c, 0, 1);
    let d = c.describe_group("g").expect("ok").expect("exists");
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert_eq!(d.protocol_name, "");
    c.tick(0);
    c.sync_group(
        0,
        2,
        sync_req(&m, 1, vec![(m.clone(), Bytes::from_static(b"x"))]),
        &NoTopics,
    );
    let d = c.describe_group("g").expect("ok").expect("exists");
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_name, "range");
    assert_eq!(d.members[0].assignment, Bytes::from_static(b"x"));
    assert_eq!(c.describe_group("nope"), Ok(None));
    assert_eq!(c.list_groups(&[]).len(), 1);
    assert_eq!(c.list_groups(&[GroupState::Empty]).len(), 0);
    assert_eq!(
        c.list_groups(&[GroupState::Stable])[0].protocol_type,
        "consumer"
    );
}

fn txn_commit(c: &mut Coordinator, pid: i64, offset: i64) -> Output {
    c.txn_commit_offsets(
        5,
        60,
        TxnCommitRequest {
            group_id: "g".into(),
            producer_id: pid,
            producer_epoch: 2,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 0, offset, -1, None)],
        },
    )
}

#[test]
fn transactional_offsets_become_visible_at_the_commit_marker() {
    let mut c = coordinator(0);
    commit(&mut c, 1, "", -1, 10);
    let out = txn_commit(&mut c, 7, 20);
    assert_eq!(commit_errors(&out), vec![None]);
    assert_eq!(
        out.appends[0].producer,
        Some((7, 2)),
        "written as a transactional batch"
    );
    let fetch = |c: &Coordinator, stable| c.fetch_offsets("g", None, stable).expect("fetch");
    // Before the marker: the old offset, or UNSTABLE_OFFSET_COMMIT for require_stable.
    assert_eq!(fetch(&c, false)[0].offset, 10);
    assert_eq!(
        fetch(&c, true)[0].error,
        Some(GroupError::UnstableOffsetCommit)
    );
    c.complete_txn(0, 7, true);
    assert_eq!(fetch(&c, true)[0].offset, 20);
    assert_eq!(fetch(&c, true)[0].error, None);
    // An aborted transaction's offsets are dropped.
    txn_commit(&mut c, 8, 30);
    c.complete_txn(0, 8, false);
    assert_eq!(fetch(&c, true)[0].offset, 20);
    assert!(c.group_offsets("g").pending_txn_offsets.is_empty());
}

#[test]
fn replayed_transactional_offsets_wait_for_their_marker() {
    let mut c = coordinator(0);
    let out = txn_commit(&mut c, 7, 20);
    let mut fresh = Coordinator::new(
        GroupConfig {
            num_partitions: 1,
            ..GroupConfig::default()
        },
        Box::new(|| 1),
    );
    fresh.begin_load(0);
    for (k, v) in &out.appends[0].records {
        let r = records::decode_record(k, v.as_deref()).expect("decodes");
        fresh.replay_transactional(r, 7, 0);
    }
    fresh.finish_load(0, 0);
    assert_eq!(fresh.fetch_offsets("g", None, false).expect("f"), vec![]);
    fresh.complete_txn(0, 7, true);
    assert_eq!(
        fresh.fetch_offsets("g", None, false).expect("f")[0].offset,
        20
    );
}

#[test]
fn group_summaries_list_members_and_committed_offsets() {
    let mut c = coordinator(0);
    let (m, _) = join_dynamic(&mut c, 0, 1);
    c.tick(0);
    c.sync_group(0, 2, sync_req(&m, 1, vec![]), &NoTopics);
    assert_eq!(commit_errors(&commit(&mut c, 1, &m, 1, 5)), vec![None]);
    assert_eq!(commit_errors(&simple_commit(&mut c, "solo", 9)), vec![None]);
    let summaries = c.group_summaries();
    let ids: Vec<&str> = summaries.iter().map(|s| s.group_id.as_str()).collect();
    assert_eq!(ids, ["g", "solo"]);
    let g = &summaries[0];
    assert_eq!((g.protocol, g.state), ("classic", "Stable"));
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id, m);
    assert_eq!(g.offsets, vec![("t".to_string(), 0, 5)]);
    // Offsets with no group object (a consumer that assigns itself and commits) are listed too.
    let solo = &summaries[1];
    assert!(solo.members.is_empty());
    assert_eq!(solo.offsets, vec![("t".to_string(), 0, 9)]);
}

fn simple_commit(c: &mut Coordinator, group: &str, offset: i64) -> Output {
    c.commit_offsets(
        1,
        70,
        CommitRequest {
            group_id: group.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            offsets: vec![("t".into(), 0, offset, -1, None)],
        },
    )
}

#[test]
fn unloading_a_partition_drops_exactly_its_groups_offsets() {
    let n = 4;
    let mut c = Coordinator::new(
        GroupConfig {
            num_partitions: n,
            ..GroupConfig::default()
        },
        Box::new(|| 1),
    );
    for p in 0..n {
        c.begin_load(p);
        c.finish_load(p, 0);
    }
    let a = "a".to_string();
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|id| partition_for(id, n) != partition_for(&a, n))
        .expect("a group of another partition");
    simple_commit(&mut c, &a, 1);
    simple_commit(&mut c, &b, 2);
    c.txn_commit_offsets(
        1,
        71,
        TxnCommitRequest {
            group_id: a.clone(),
            producer_id: 7,
            producer_epoch: 0,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 1, 3, -1, None)],
        },
    );

    let pa = partition_for(&a, n);
    c.unload_partition(pa);
    assert!(
        c.group_offsets(&a).is_empty(),
        "committed and pending dropped"
    );
    assert_eq!(c.fetch_offsets(&b, None, false).expect("b")[0].offset, 2);

    // Loaded again with an empty log: nothing of a comes back, not even at its marker.
    c.begin_load(pa);
    c.finish_load(pa, 0);
    c.complete_txn(pa, 7, true);
    assert!(c.group(&a).is_none());
    assert_eq!(c.fetch_offsets(&a, None, true), Ok(vec![]));
}

#[test]
fn a_deleted_groups_offsets_are_gone() {
    let mut c = coordinator(0);
    commit(&mut c, 1, "", -1, 5);
    txn_commit(&mut c, 7, 6);
    let out = c.delete_group(2, 3, "g");
    assert_eq!(out.replies[0].reply, Reply::DeleteGroup(Ok(())));
    assert!(c.group_offsets("g").is_empty());
    // The marker of the transaction opened before the delete finds nothing to commit.
    c.complete_txn(0, 7, true);
    assert!(c.group_offsets("g").is_empty());
    // A new group under the same id starts without offsets.
    simple_commit(&mut c, "g", 9);
    let f = c.fetch_offsets("g", Some(&[("t".into(), vec![0])]), false);
    assert_eq!(f.expect("fetch")[0].offset, 9);
    assert_eq!(c.group_offsets("g").offsets.len(), 1);
}

#[test]
fn an_expired_groups_offsets_entry_goes_with_it() {
    let mut c = coordinator(0);
    let retention = c.config().offsets_retention_ms;
    let check = c.config().offsets_retention_check_interval_ms;
    commit(&mut c, 0, "", -1, 5);
    assert!(!c.group_offsets("g").is_empty());
    c.tick(retention + check);
    assert!(c.group("g").is_none());
    assert!(c.group_offsets("g").is_empty());
}

#[test]
fn a_group_with_pending_transactional_offsets_does_not_expire() {
    let mut c = coordinator(0);
    let retention = c.config().offsets_retention_ms;
    let check = c.config().offsets_retention_check_interval_ms;
    txn_commit(&mut c, 7, 5);
    let out = c.tick(retention + check);
    assert!(out.appends.is_empty());
    assert!(c.group("g").is_some(), "kept for the open transaction");
    c.complete_txn(0, 7, false);
    let out = c.tick(retention + 2 * check);
    assert_eq!(out.appends[0].records.len(), 1, "the group tombstone");
    assert!(c.group("g").is_none());
}

fn replay_all(c: &mut Coordinator, appends: &[Append]) {
    for a in appends {
        for (k, v) in &a.records {
            let r = records::decode_record(k, v.as_deref()).expect("decodes");
            match a.producer {
                Some((pid, _)) => c.replay_transactional(r, pid, 0),
                None => c.replay(r, 0),
            }
        }
    }
}

/// A coordinator that read `log` back, as after a failover.
fn reloaded(log: &[Append]) -> Coordinator {
    let mut c = loading_coordinator();
    replay_all(&mut c, log);
    c.finish_load(0, 0);
    c
}

fn loading_coordinator() -> Coordinator {
    let mut c = Coordinator::new(
        GroupConfig {
            num_partitions: 1,
            ..GroupConfig::default()
        },
        Box::new(|| 1),
    );
    c.begin_load(0);
    c
}

#[test]
fn replaying_a_commit_then_its_tombstone_leaves_no_offsets() {
    let mut c = coordinator(0);
    let mut log = commit(&mut c, 1, "", -1, 5).appends;
    log.extend(c.delete_offsets(2, "g", vec![("t".into(), 0)]).appends);
    let fresh = reloaded(&log);
    assert!(fresh.group_offsets("g").is_empty());
    assert_eq!(fresh.fetch_offsets("g", None, false), Ok(vec![]));
    // The commit created the (simple) group, as it does live.
    assert_eq!(fresh.group("g").map(|g| g.state), Some(GroupState::Empty));
}

#[test]
fn replaying_a_deleted_group_leaves_neither_group_nor_offsets() {
    let mut c = coordinator(0);
    let mut log = commit(&mut c, 1, "", -1, 5).appends;
    log.extend(txn_commit(&mut c, 7, 6).appends);
    log.extend(c.delete_group(2, 3, "g").appends);
    let mut fresh = reloaded(&log);
    assert!(fresh.group("g").is_none());
    assert!(fresh.group_offsets("g").is_empty());
    // As live, the marker of a transaction opened before the delete restores nothing.
    fresh.complete_txn(0, 7, true);
    assert!(fresh.group_offsets("g").is_empty());
}

// ---- KIP-848 consumer groups in the coordinator ------------------------------------------------

mod consumer_groups {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::consumer_group::{
        ConsumerGroupConfig, ConsumerGroups, HeartbeatRequest, TopicsView,
    };
    use crate::consumer_records::TopicPartitions;
    use crate::records::decode_record;

    const SESSION_MS: i32 = 45_000;

    struct Topics;

    impl TopicsView for Topics {
        fn topic_id(&self, name: &str) -> Option<Uuid> {
            (name == "t").then(|| Uuid::from_u128(7))
        }
        fn partition_count(&self, topic_id: &Uuid) -> Option<i32> {
            (*topic_id == Uuid::from_u128(7)).then_some(4)
        }
        fn topic_name(&self, topic_id: &Uuid) -> Option<String> {
            (*topic_id == Uuid::from_u128(7)).then(|| "t".to_string())
        }
        fn topic_names(&self) -> Vec<String> {
            vec!["t".into()]
        }
        fn version(&self) -> i64 {
            1
        }
    }

    /// The records a consumer group coordinator wrote for one member joining group `g`, as
    /// they would be read back from `__consumer_offsets`.
    fn written_records() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut writer = ConsumerGroups::new(ConsumerGroupConfig::default());
        let req = HeartbeatRequest {
            version: 1,
            group_id: "g".into(),
            member_id: "m1".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            topic_partitions: Some(TopicPartitions::new()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..HeartbeatRequest::default()
        };
        let (resp, records) = writer
            .heartbeat(&req, &Topics, 0, || "unused".into())
            .expect("join");
        assert_eq!(resp.member_epoch, 1);
        records
            .iter()
            .map(|r| r.encode().expect("encodable"))
            .collect()
    }

    fn coordinator(num_partitions: i32) -> Coordinator {
        Coordinator::new(
            GroupConfig {
                num_partitions,
                ..GroupConfig::default()
            },
            Box::new(|| 1),
        )
    }

    /// A loaded partition rebuilds the consumer group from its records, arms the member's
    /// session on load, and fences the member when it runs out, writing the records of the
    /// fencing to the group's partition.
    #[test]
    fn a_loaded_consumer_group_is_rebuilt_and_its_sessions_run() {
        let mut c = coordinator(1);
        c.begin_load(0);
        for (key, value) in written_records() {
            let record = decode_record(&key, value.as_deref()).expect("decodes");
            assert!(
                matches!(record, CoordinatorRecord::Consumer(_)),
                "{record:?}"
            );
            c.replay(record, 1_000);
        }
        c.finish_load(0, 1_000);
        let g = c.consumer_group("g").expect("rebuilt");
        assert_eq!(g.epoch, 1);
        assert_eq!(g.members["m1"].assignment.member_epoch, 1);
        let owned: BTreeMap<Uuid, Vec<i32>> = g.target["m1"]
            .iter()
            .map(|(t, ps)| (*t, ps.iter().copied().collect()))
            .collect();
        assert_eq!(owned[&Uuid::from_u128(7)], vec![0, 1, 2, 3]);
        let session_end = 1_000 + i64::from(SESSION_MS);
        assert!(c.next_deadline_ms().is_some_and(|d| d <= session_end));
        // Nothing happens before the session ends...
        let out = c.tick(session_end - 1);
        assert!(out.appends.is_empty());
        assert!(c
            .consumer_group("g")
            .is_some_and(|g| g.members.contains_key("m1")));
        // ... then the member is fenced, in the group's partition.
        let out = c.tick(session_end);
        assert!(!out.appends.is_empty());
        assert!(out.appends.iter().all(|a| a.partition == 0));
        assert!(c.consumer_group("g").is_some_and(|g| g.members.is_empty()));
        // What was written replays to the same state on a fresh coordinator.
        let mut again = coordinator(1);
        again.begin_load(0);
        for (key, value) in written_records()
            .into_iter()
            .chain(out.appends.iter().flat_map(|a| a.records.clone()))
        {
            again.replay(decode_record(&key, value.as_deref()).expect("decodes"), 0);
        }
        again.finish_load(0, 0);
        assert_eq!(again.consumer_group("g"), c.consumer_group("g"));
    }

    /// Unloading the partition drops its consumer groups and their timers; other partitions'
    /// groups stay.
    #[test]
    fn unloading_a_partition_drops_its_consumer_groups() {
        let n = 8;
        let mut c = coordinator(n);
        let p = crate::partition_for("g", n);
        c.begin_load(p);
        for (key, value) in written_records() {
            c.replay(decode_record(&key, value.as_deref()).expect("decodes"), 0);
        }
        c.finish_load(p, 0);
        assert!(c.consumer_group("g").is_some());
        let other = (p + 1) % n;
        c.begin_load(other);
        c.finish_load(other, 0);
        let _ = c.unload_partition(other);
        assert!(c.consumer_group("g").is_some());
        let _ = c.unload_partition(p);
        assert!(c.consumer_group("g").is_none());
        // No session timer is left to fence a member that is not here.
        assert!(c.tick(i64::MAX / 2).appends.is_empty());
    }

    fn heartbeat_req(member: &str, epoch: i32) -> HeartbeatRequest {
        HeartbeatRequest {
            version: 1,
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".into()]),
            topic_partitions: (epoch == 0).then(TopicPartitions::new),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..HeartbeatRequest::default()
        }
    }

    fn heartbeat_reply(out: &Output) -> Result<HeartbeatResponse, HeartbeatFailure> {
        match &out.replies[0].reply {
            Reply::ConsumerHeartbeat(r) => r.clone(),
            other => panic!("not a heartbeat reply: {other:?}"),
        }
    }

    fn member_commit(c: &mut Coordinator, member: &str, epoch: i32, version: i16) -> Output {
        member_commit_to(c, 5, member, epoch, version, "t", 42)
    }

    /// A commit by `member` at `epoch` of `offset` on partition 0 of `topic`.
    fn member_commit_to(
        c: &mut Coordinator,
        now: i64,
        member: &str,
        epoch: i32,
        version: i16,
        topic: &str,
        offset: i64,
    ) -> Output {
        c.commit_offsets(
            now,
            51,
            CommitRequest {
                group_id: "g".into(),
                generation_id: epoch,
                member_id: member.into(),
                group_instance_id: None,
                retention_time_ms: -1,
                api_version: version,
                offsets: vec![(topic.into(), 0, offset, 3, None)],
            },
        )
    }

    /// A heartbeat joins through the coordinator: the records go to the group's partition
    /// before the answer, which carries the assignment; the member then commits with its
    /// epoch (v9), and Kafka's errors answer a stale epoch, an unknown member and an old
    /// OffsetCommit version.
    #[test]
    fn a_member_joins_and_commits_with_its_epoch() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let out = c.consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics);
        assert!(!out.appends.is_empty() && out.appends.iter().all(|a| a.partition == 0));
        assert_eq!(out.replies[0].id, 9);
        let resp = heartbeat_reply(&out).expect("joined");
        assert_eq!(resp.member_epoch, 1);
        let assigned: Vec<i32> = resp.assignment.expect("assignment")[&Uuid::from_u128(7)]
            .iter()
            .copied()
            .collect();
        assert_eq!(assigned, vec![0, 1, 2, 3]);
        let ok = member_commit(&mut c, "m1", 1, 9);
        assert_eq!(commit_errors(&ok), vec![None]);
        assert_eq!(
            c.group_offsets("g").offsets[&("t".to_string(), 0)].offset,
            42
        );
        // No classic group was made for the commit.
        assert!(c.group("g").is_none());
        let stale = member_commit(&mut c, "m1", 0, 9);
        assert_eq!(
            commit_errors(&stale),
            vec![Some(GroupError::StaleMemberEpoch)]
        );
        let unknown = member_commit(&mut c, "nobody", 1, 9);
        assert_eq!(
            commit_errors(&unknown),
            vec![Some(GroupError::UnknownMemberId)]
        );
        let old = member_commit(&mut c, "m1", 1, 8);
        assert_eq!(
            commit_errors(&old),
            vec![Some(GroupError::UnsupportedVersion)]
        );
        // Bad input is the group's error, and the group keeps serving its member.
        let mut bad = heartbeat_req("m1", 1);
        bad.server_assignor = Some("sticky".into());
        assert!(matches!(
            heartbeat_reply(&c.consumer_group_heartbeat(1, 10, &bad, &Topics)),
            Err(HeartbeatFailure::Group(
                HeartbeatError::UnsupportedAssignor(_)
            ))
        ));
        let again = c.consumer_group_heartbeat(2, 11, &heartbeat_req("m1", 1), &Topics);
        assert_eq!(
            heartbeat_reply(&again)
                .expect("still a member")
                .member_epoch,
            1
        );
    }

    /// An empty classic group (here a simple group's offsets) becomes a consumer group and
    /// keeps its offsets, through a reload too; a classic group with members is not a
    /// consumer group (online migration is not there yet).
    #[test]
    fn an_empty_classic_group_becomes_a_consumer_group_with_its_offsets() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let mut log = simple_commit(&mut c, "g", 17).appends;
        assert!(c.group("g").is_some());
        let out = c.consumer_group_heartbeat(3, 9, &heartbeat_req("m1", 0), &Topics);
        heartbeat_reply(&out).expect("joined");
        assert!(c.group("g").is_none(), "the classic group is gone");
        assert!(c.consumer_group("g").is_some());
        assert_eq!(
            c.group_offsets("g").offsets[&("t".to_string(), 0)].offset,
            17
        );
        log.extend(out.appends);
        let fresh = reloaded(&log);
        assert!(fresh.group("g").is_none());
        assert!(fresh.consumer_group("g").is_some());
        assert_eq!(
            fresh.group_offsets("g").offsets[&("t".to_string(), 0)].offset,
            17
        );

        let mut classic = coordinator(1);
        classic.begin_load(0);
        classic.finish_load(0, 0);
        let _ = classic.join_group(0, 1, join_req("", None, 4), &NoTopics);
        assert!(classic
            .group("g")
            .is_some_and(|g| !g.pending_members.is_empty() || !g.members.is_empty()));
        let out = classic.consumer_group_heartbeat(0, 2, &heartbeat_req("m1", 0), &Topics);
        assert!(matches!(
            heartbeat_reply(&out),
            Err(HeartbeatFailure::Group(HeartbeatError::GroupIdNotFound(_)))
        ));
        assert!(out.appends.is_empty());
    }

    /// ConsumerGroupDescribe's view: epochs, the assignor, each member's owned and target
    /// partitions; GROUP_ID_NOT_FOUND with Kafka's message for a classic or unknown id.
    #[test]
    fn a_consumer_group_is_described_and_a_classic_one_is_not() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let _ = c.consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics);
        let d = c
            .describe_consumer_group("g")
            .expect("coordinator")
            .expect("a consumer group");
        assert_eq!(
            (d.state.name(), d.epoch, d.assignment_epoch),
            ("Stable", 1, 1)
        );
        assert_eq!(d.assignor, "uniform");
        assert_eq!(d.members.len(), 1);
        let m = &d.members[0];
        assert_eq!((m.member_id.as_str(), m.member_epoch), ("m1", 1));
        assert_eq!(m.metadata.subscribed_topic_names, vec!["t".to_string()]);
        assert_eq!(m.assigned, m.target);
        assert_eq!(m.assigned[&Uuid::from_u128(7)].len(), 4);
        let _ = simple_commit(&mut c, "classic", 1);
        assert_eq!(
            c.describe_consumer_group("classic").expect("coordinator"),
            Err("Group classic is not a consumer group.".to_string())
        );
        assert_eq!(
            c.describe_consumer_group("nope").expect("coordinator"),
            Err("Group nope not found.".to_string())
        );
        let unloaded = coordinator(1);
        assert_eq!(
            unloaded.describe_consumer_group("g"),
            Err(GroupError::NotCoordinator)
        );
    }

    fn classic_join(member: &str, owned: &[i32]) -> JoinRequest {
        let owned = vec![("t".to_string(), owned.to_vec())];
        JoinRequest {
            protocols: vec![(
                "cooperative-sticky".into(),
                Bytes::from(crate::consumer_protocol::encode_subscription(
                    1,
                    &["t"],
                    &owned,
                )),
            )],
            ..super::join_req(member, None, 9)
        }
    }

    fn classic_sync(member: &str, generation: i32) -> SyncRequest {
        SyncRequest {
            protocol_name: Some("cooperative-sticky".into()),
            ..super::sync_req(member, generation, vec![])
        }
    }

    fn synced_partitions(out: &Output, id: ReplyId) -> Vec<i32> {
        let s = super::sync_reply(out, id).expect("answered");
        assert_eq!(s.error, None);
        let parts = crate::consumer_protocol::decode_assignment(&s.assignment).expect("decodes");
        parts.into_iter().flat_map(|(_, ps)| ps).collect()
    }

    /// A classic member joins a consumer group (online migration): it waits for the
    /// partitions the consumer member still owns (heartbeats answer fine meanwhile), is told to
    /// rejoin once they are free, and then syncs its half; its commits are checked against its
    /// member epoch as a classic generation; it leaves with LeaveGroup. Also after a reload.
    #[test]
    fn a_classic_member_joins_a_consumer_group_and_gets_its_share() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let mut log = c
            .consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics)
            .appends;
        let out = c.join_group(1, 2, classic_join("x", &[]), &Topics);
        let j = super::join_reply(&out, 2).expect("answered at once");
        assert_eq!((j.error, j.generation_id), (None, 2));
        assert_eq!(j.protocol_name.as_deref(), Some("cooperative-sticky"));
        assert!(j.leader.is_empty() && j.members.is_empty());
        log.extend(out.appends);
        let out = c.sync_group(2, 3, classic_sync("x", 2), &Topics);
        assert_eq!(synced_partitions(&out, 3), Vec::<i32>::new());
        assert_eq!(c.heartbeat(3, "g", "x", None, 2), Ok(()), "still waiting");
        assert_eq!(
            c.heartbeat(3, "g", "x", None, 1),
            Err(GroupError::IllegalGeneration)
        );
        // The consumer member learns its new target, and gives up two partitions.
        let resp =
            heartbeat_reply(&c.consumer_group_heartbeat(4, 10, &heartbeat_req("m1", 1), &Topics))
                .expect("heartbeat");
        let kept = resp.assignment.expect("smaller assignment");
        let mut owned = heartbeat_req("m1", 1);
        owned.topic_partitions = Some(kept.clone());
        let out = c.consumer_group_heartbeat(5, 11, &owned, &Topics);
        assert_eq!(heartbeat_reply(&out).expect("revoked").member_epoch, 2);
        log.extend(out.appends);
        assert_eq!(
            c.heartbeat(6, "g", "x", None, 2),
            Err(GroupError::RebalanceInProgress),
            "the freed partitions are waiting"
        );
        let out = c.join_group(7, 4, classic_join("x", &[]), &Topics);
        assert_eq!(
            super::join_reply(&out, 4).expect("answered").generation_id,
            2
        );
        log.extend(out.appends);
        let out = c.sync_group(8, 5, classic_sync("x", 2), &Topics);
        let mine = synced_partitions(&out, 5);
        assert_eq!(mine.len(), 2);
        let theirs: Vec<i32> = kept[&Uuid::from_u128(7)].iter().copied().collect();
        assert!(
            mine.iter().all(|p| !theirs.contains(p)),
            "{mine:?} {theirs:?}"
        );
        assert_eq!(c.heartbeat(9, "g", "x", None, 2), Ok(()));
        let d = c
            .describe_consumer_group("g")
            .expect("coordinator")
            .expect("consumer group");
        assert_eq!(d.state.name(), "Stable");

        // Commits: the generation is the member epoch; any OffsetCommit version will do.
        let commit = |c: &mut Coordinator, generation: i32| {
            c.commit_offsets(
                10,
                60,
                CommitRequest {
                    group_id: "g".into(),
                    generation_id: generation,
                    member_id: "x".into(),
                    group_instance_id: None,
                    retention_time_ms: -1,
                    api_version: 8,
                    offsets: vec![("t".into(), mine[0], 11, 3, None)],
                },
            )
        };
        assert_eq!(commit_errors(&commit(&mut c, 2)), vec![None]);
        assert_eq!(
            commit_errors(&commit(&mut c, 1)),
            vec![Some(GroupError::IllegalGeneration)]
        );

        let mut fresh = reloaded(&log);
        assert_eq!(fresh.consumer_group("g").map(|g| g.members.len()), Some(2));
        assert_eq!(fresh.heartbeat(11, "g", "x", None, 2), Ok(()));

        let out = c.leave_group(
            12,
            7,
            "g",
            vec![LeaveMember {
                member_id: "x".into(),
                group_instance_id: None,
            }],
        );
        assert!(matches!(&out.replies[0].reply, Reply::Leave(Ok(r)) if r[0].1.is_none()));
        assert_eq!(c.consumer_group("g").map(|g| g.members.len()), Some(1));
    }

    /// Online upgrade and downgrade: a classic group of two (generation 1) becomes a consumer
    /// group when a consumer member joins; its members keep their partitions at their epoch
    /// and are told to rejoin; after a reload the group is the same; when the consumer member
    /// leaves, the classic members go on in a classic group at their epoch, rebalancing.
    #[test]
    fn a_classic_group_upgrades_to_a_consumer_group_and_back() {
        let mut c = super::coordinator(0);
        let mut log = Vec::new();
        for i in 0..2 {
            let id = 20 + i;
            let out = c.join_group(0, id, classic_join("", &[]), &Topics);
            let member = super::join_reply(&out, id).expect("member id").member_id;
            log.extend(
                c.join_group(0, id, classic_join(&member, &[]), &Topics)
                    .appends,
            );
        }
        log.extend(c.tick(0).appends);
        let half = |ps: &[i32]| {
            Bytes::from(crate::consumer_protocol::encode_assignment(
                1,
                &[("t".to_string(), ps.to_vec())],
            ))
        };
        let leader = c
            .group("g")
            .and_then(|g| g.leader_id.clone())
            .expect("leader");
        let other = c
            .group("g")
            .and_then(|g| g.members.keys().find(|m| **m != leader).cloned())
            .expect("other");
        let other = other.as_str();
        let out = c.sync_group(
            1,
            30,
            SyncRequest {
                assignments: vec![
                    (leader.clone(), half(&[0, 1])),
                    (other.to_string(), half(&[2, 3])),
                ],
                ..classic_sync(&leader, 1)
            },
            &Topics,
        );
        log.extend(out.appends);
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));

        let out = c.consumer_group_heartbeat(2, 9, &heartbeat_req("m1", 0), &Topics);
        let resp = heartbeat_reply(&out).expect("joined");
        assert!(resp
            .assignment
            .expect("empty")
            .values()
            .all(|ps| ps.is_empty()));
        log.extend(out.appends);
        assert!(c.group("g").is_none(), "the classic group is gone");
        let g = c.consumer_group("g").expect("a consumer group");
        assert_eq!((g.members.len(), g.epoch), (3, 2));
        assert_eq!(g.members[&leader].assignment.member_epoch, 1);
        assert_eq!(
            c.heartbeat(3, "g", &leader, None, 1),
            Err(GroupError::RebalanceInProgress)
        );
        let fresh = reloaded(&log);
        assert_eq!(fresh.consumer_group("g"), c.consumer_group("g"));

        // Both classic members rejoin, giving up what the consumer member gets.
        for (i, m) in [leader.as_str(), other].iter().enumerate() {
            let mine: Vec<i32> = if *m == leader { vec![0, 1] } else { vec![2, 3] };
            let out = c.join_group(4, 40 + i as u64, classic_join(m, &mine), &Topics);
            assert_eq!(
                super::join_reply(&out, 40 + i as u64)
                    .expect("answered")
                    .error,
                None
            );
        }
        let mut leave = heartbeat_req("m1", -1);
        leave.subscribed_topic_names = None;
        let out = c.consumer_group_heartbeat(5, 11, &leave, &Topics);
        heartbeat_reply(&out).expect("left");
        assert!(
            c.consumer_group("g").is_none(),
            "the consumer group is gone"
        );
        let g = c.group("g").expect("a classic group again");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.members.len(), 2);
        let generation = g.generation_id;
        assert_eq!(
            c.heartbeat(6, "g", &leader, None, generation),
            Err(GroupError::RebalanceInProgress)
        );
        log.extend(out.appends);
        let fresh = reloaded(&log);
        assert!(fresh.consumer_group("g").is_none());
        assert_eq!(fresh.group("g").map(|g| g.members.len()), Some(2));
    }

    /// Kafka's `validateOnlineDowngradeWithReplacedMemberId`: a classic static member that
    /// replaces the last consumer-protocol member (same instance id) turns the group back into
    /// a classic group, which rebalances; replayed from the log it is the same.
    #[test]
    fn a_classic_static_member_replacing_the_last_consumer_member_downgrades_the_group() {
        let mut c = super::coordinator(0);
        let mut log = Vec::new();
        let mut join = heartbeat_req("m1", 0);
        join.instance_id = Some("i1".into());
        let out = c.consumer_group_heartbeat(0, 1, &join, &Topics);
        heartbeat_reply(&out).expect("joined");
        log.extend(out.appends);
        let out = c.join_group(1, 2, classic_join("", &[]), &Topics);
        let classic = super::join_reply(&out, 2).expect("member id").member_id;
        log.extend(out.appends);
        let out = c.join_group(1, 3, classic_join(&classic, &[]), &Topics);
        assert_eq!(super::join_reply(&out, 3).expect("joined").error, None);
        log.extend(out.appends);
        assert_eq!(c.consumer_group("g").map(|g| g.members.len()), Some(2));

        // The consumer-protocol member's application restarts with the classic protocol.
        let replacing = JoinRequest {
            group_instance_id: Some("i1".into()),
            ..classic_join("", &[])
        };
        let out = c.join_group(2, 4, replacing, &Topics);
        let joined = super::join_reply(&out, 4).expect("answered");
        assert_eq!(joined.error, None);
        log.extend(out.appends);
        assert!(
            c.consumer_group("g").is_none(),
            "the consumer group is gone"
        );
        let g = c.group("g").expect("a classic group again");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.members.len(), 2);
        assert!(g.members.contains_key(&joined.member_id));
        assert_eq!(g.static_members.get("i1"), Some(&joined.member_id));
        let fresh = reloaded(&log);
        assert!(fresh.consumer_group("g").is_none());
        assert_eq!(fresh.group("g").map(|g| g.members.len()), Some(2));
    }

    /// Offset expiry in a consumer group: an offset of a topic no member subscribes to goes
    /// `offsets.retention.minutes` after its commit; one of a subscribed topic stays while the
    /// member does; once the group is empty and its last offset expired, the group goes too.
    #[test]
    fn a_consumer_groups_offsets_expire_unless_subscribed_and_then_the_group_goes() {
        let mut c = Coordinator::new(
            GroupConfig {
                num_partitions: 1,
                offsets_retention_ms: 10_000,
                offsets_retention_check_interval_ms: 1_000,
                ..GroupConfig::default()
            },
            Box::new(|| 1),
        );
        c.begin_load(0);
        c.finish_load(0, 0);
        let _ = c.consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics);
        let _ = member_commit(&mut c, "m1", 1, 9);
        let other = member_commit_to(&mut c, 5, "m1", 1, 9, "u", 8);
        assert_eq!(commit_errors(&other), vec![None]);
        // Keep the member alive past the retention.
        for now in (1_000..=16_000).step_by(1_000) {
            let _ = c.consumer_group_heartbeat(now, 10, &heartbeat_req("m1", 1), &Topics);
            let _ = c.tick(now);
        }
        let left: Vec<_> = c.group_offsets("g").offsets.keys().cloned().collect();
        assert_eq!(
            left,
            vec![("t".to_string(), 0)],
            "u expired, t is subscribed"
        );
        let mut leave = heartbeat_req("m1", -1);
        leave.subscribed_topic_names = None;
        let _ = c.consumer_group_heartbeat(16_500, 11, &leave, &Topics);
        assert!(c.consumer_group("g").is_some(), "empty, with an offset");
        let out = c.tick(17_000);
        assert!(
            !out.appends.is_empty(),
            "the offset's and the group's tombstones"
        );
        assert!(c.group_offsets("g").is_empty());
        assert!(c.consumer_group("g").is_none());
    }

    /// OffsetDelete on a consumer group (with members): a topic a member subscribes to is
    /// GROUP_SUBSCRIBED_TO_TOPIC, another topic's offsets go; an unknown id is
    /// GROUP_ID_NOT_FOUND.
    #[test]
    fn a_consumer_groups_offsets_of_unsubscribed_topics_can_be_deleted() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let _ = c.consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics);
        let _ = member_commit(&mut c, "m1", 1, 9);
        let other = member_commit_to(&mut c, 1, "m1", 1, 9, "u", 8);
        assert_eq!(commit_errors(&other), vec![None]);
        let out = c.delete_offsets(7, "g", vec![("t".into(), 0), ("u".into(), 0)]);
        assert_eq!(
            out.replies[0].reply,
            Reply::OffsetDelete(Ok(vec![
                ("t".into(), 0, Some(GroupError::GroupSubscribedToTopic)),
                ("u".into(), 0, None),
            ]))
        );
        assert_eq!(out.appends.len(), 1, "one tombstone");
        let left: Vec<_> = c.group_offsets("g").offsets.keys().cloned().collect();
        assert_eq!(left, vec![("t".to_string(), 0)]);
        let unknown = c.delete_offsets(8, "nope", vec![("t".into(), 0)]);
        assert_eq!(
            unknown.replies[0].reply,
            Reply::OffsetDelete(Err(GroupError::GroupIdNotFound))
        );
    }

    /// A heartbeat for a partition that is not loaded here is NOT_COORDINATOR, one loading
    /// is COORDINATOR_LOAD_IN_PROGRESS.
    #[test]
    fn heartbeats_need_the_coordinator() {
        let mut c = coordinator(1);
        let out = c.consumer_group_heartbeat(0, 1, &heartbeat_req("m1", 0), &Topics);
        assert_eq!(
            heartbeat_reply(&out),
            Err(HeartbeatFailure::Coordinator(GroupError::NotCoordinator))
        );
        c.begin_load(0);
        let out = c.consumer_group_heartbeat(0, 1, &heartbeat_req("m1", 0), &Topics);
        assert_eq!(
            heartbeat_reply(&out),
            Err(HeartbeatFailure::Coordinator(
                GroupError::CoordinatorLoadInProgress
            ))
        );
    }

    /// OffsetFetch v9 from a consumer group's member checks its epoch; an admin's is not.
    /// DeleteGroups takes an empty consumer group with its offsets (tombstones, replayed to
    /// nothing) and refuses one with members.
    #[test]
    fn offset_fetch_checks_and_deletion_of_consumer_groups() {
        let mut c = coordinator(1);
        c.begin_load(0);
        c.finish_load(0, 0);
        let mut log = c
            .consumer_group_heartbeat(0, 9, &heartbeat_req("m1", 0), &Topics)
            .appends;
        log.extend(member_commit(&mut c, "m1", 1, 9).appends);
        assert_eq!(c.check_offset_fetch_member("g", Some("m1"), 1), Ok(()));
        assert_eq!(
            c.check_offset_fetch_member("g", Some("m1"), 0),
            Err(GroupError::StaleMemberEpoch)
        );
        assert_eq!(
            c.check_offset_fetch_member("g", Some("m9"), 1),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(c.check_offset_fetch_member("g", None, -1), Ok(()));
        assert_eq!(c.check_offset_fetch_member("classic", Some("x"), 3), Ok(()));
        let busy = c.delete_group(1, 5, "g");
        assert_eq!(
            busy.replies[0].reply,
            Reply::DeleteGroup(Err(GroupError::NonEmptyGroup))
        );
        assert!(busy.appends.is_empty());
        let mut leave = heartbeat_req("m1", -1);
        leave.subscribed_topic_names = None;
        log.extend(c.consumer_group_heartbeat(2, 10, &leave, &Topics).appends);
        let gone = c.delete_group(3, 6, "g");
        assert_eq!(gone.replies[0].reply, Reply::DeleteGroup(Ok(())));
        assert!(c.consumer_group("g").is_none());
        assert!(c.group_offsets("g").is_empty());
        log.extend(gone.appends);
        let fresh = reloaded(&log);
        assert!(fresh.consumer_group("g").is_none());
        assert!(fresh.group_offsets("g").is_empty());
    }
}
