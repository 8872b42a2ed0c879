"""KIP-848 consumer groups across a failover of their coordinator (issue 17, "How it must be
tested"): the coordinator killed with kill -9 mid-rebalance, and the group resumes from the
stored records.

Three combined nodes (`cluster.Cluster`); `__consumer_offsets` has Kafka's three replicas and the
data topic too, so the kill moves both the group's coordinator and some partitions' leadership to
the survivors. The members are subprocesses (group_consumer.py, librdkafka with
`group.protocol=consumer`) bootstrapping from every node. They revoke slowly (`revoke_delay_ms`:
the revoke callback emits `revoking` and then sleeps before it commits), so the coordinator is
killed at a known point of the rebalance: a third member has joined (the group epoch was bumped
and the new target assignment written), an old member is inside its revoke callback, and the
partitions it gives up are not released yet. The revocation is therefore acknowledged to the new
coordinator, which must know the group epoch, every member, its epoch and its pending revocation
from the replicated records to finish the rebalance without fencing anyone.

librdkafka's debug log (`debug=cgrp`) is the members' view of the coordinator: every
ConsumerGroupHeartbeat response with the member id and epoch it carried, and "member fenced -
rejoining" when a response was UNKNOWN_MEMBER_ID or FENCED_MEMBER_EPOCH.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, Producer, TopicPartition
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from broker_proc import is_mock
from group_members import member_procs  # noqa: F401 - fixture
from helpers import ck_produce_all, wait_until
from test_cluster import FAST_SESSIONS, admin, make_cluster  # noqa: F401 - fixture
from test_cluster_features import OFFSETS_TOPIC, ensure_internal_topic, leaders
from test_consumer_protocol import (CONSUMER_PROTOCOL_CONFIG, check_processing,
                                    check_single_owner, owned)
from test_groups_offsets import offsets_partition_for
from test_replication import create_replicated
from txn_v2_wire import Wire

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")

PARTITIONS = 6
PER_PARTITION = 300
LATE = 50

CLUSTER_CONFIG = {
    **CONSUMER_PROTOCOL_CONFIG,
    # Kafka's three replicas (GROUP_BROKER_CONFIG's single replica is for one-node tests).
    "offsets.topic.replication.factor": 3,
    # The controller fences a killed node within 3 s, its partitions' leadership moves then.
    **FAST_SESSIONS,
    "replica.lag.time.max.ms": 4000,
    # The restarted node gets its partitions' leadership back soon after it is in sync again.
    "leader.imbalance.check.interval.seconds": 1,
}

# librdkafka's own log line (rdkafka_cgrp.c) for every ConsumerGroupHeartbeat response; stderr
# lines look like `%7|1700000000.123|HEARTBEAT|c#consumer-1| [thrd:main]: ...`.
HB_RESPONSE = re.compile(r'^%\d+\|(\d+\.\d+)\|.*response received for member id "([^"]*)" '
                         r'with epoch (-?\d+)')
# The reason librdkafka gives when it drops its assignment after UNKNOWN_MEMBER_ID or
# FENCED_MEMBER_EPOCH (it then rejoins with epoch 0 under the same member id).
FENCED = "member fenced - rejoining"


def coordinator_of(bootstrap: str, group: str) -> int:
    """The leader of the group's `__consumer_offsets` partition, as Metadata reports it."""
    led = leaders(bootstrap, OFFSETS_TOPIC)
    return led[offsets_partition_for(group, len(led))]


def find_coordinator(node, group: str) -> tuple[int, int]:
    """(error code, node id) of FindCoordinator for the group, asked of `node`."""
    host, port = node.bootstrap.rsplit(":", 1)
    w = Wire(host, int(port), timeout=10)
    try:
        r = w.call(FindCoordinatorRequest, 4, key_type=0, coordinator_keys=[group])
        return r.coordinators[0].error_code, r.coordinators[0].node_id
    finally:
        w.close()


def all_in_sync(bootstrap: str, topic: str, replicas: int = 3) -> bool:
    md = admin(bootstrap).list_topics(topic, timeout=10).topics[topic]
    return md.error is None and all(pm.leader >= 0 and len(pm.isrs) == replicas
                                    for pm in md.partitions.values())


def heartbeat_epochs(member) -> list[tuple[float, str, int]]:
    """(time, member id, epoch) of every ConsumerGroupHeartbeat response the member got."""
    out = []
    for line in member.stderr_path.read_text(errors="replace").splitlines():
        m = HB_RESPONSE.match(line)
        if m:
            out.append((float(m.group(1)), m.group(2), int(m.group(3))))
    return out


def processed(members, per_partition: int) -> bool:
    seen = {p: set() for p in range(PARTITIONS)}
    for m in members:
        for e in m.snapshot("msg"):
            seen[e["p"]].add(e["o"])
    return all(len(seen[p]) >= per_partition and max(seen[p], default=-1) == per_partition - 1
               for p in range(PARTITIONS))


def shares(members) -> list[int]:
    return sorted(len(owned(m)) for m in members)


def covers_all(members) -> bool:
    return set().union(*(owned(m) for m in members)) == set(range(PARTITIONS))


def assigned_after(member, t: float) -> list[dict]:
    return [e for e in member.snapshot("assigned") if e["t"] > t]


@pytest.mark.timeout(600)
def test_coordinator_killed_mid_rebalance_group_resumes_from_records(make_cluster, member_procs):
    c = make_cluster(combined=3, overrides=CLUSTER_CONFIG)
    boot = c.bootstrap()
    members = []
    try:
        run(c, boot, members, member_procs)
    except BaseException:
        # Kept with the cluster's logs (RAFKA_KEEP_DATA=1): every member's librdkafka log and
        # events.
        dest = c.root / "members"
        dest.mkdir(exist_ok=True)
        for m in members:
            try:
                shutil.copy(m.stderr_path, dest / f"{m.name}.stderr")
                (dest / f"{m.name}.events").write_text(
                    "\n".join(json.dumps(e) for e in m.snapshot()))
            except OSError:
                pass
        print(f"member logs and events in {dest}")
        raise


def run(c, boot: str, members: list, member_procs) -> None:
    topic = "kip848-failover"
    create_replicated(boot, topic, partitions=PARTITIONS)
    wait_until(lambda: all_in_sync(boot, topic), timeout=60, what=f"{topic} fully in sync")
    ensure_internal_topic(boot, OFFSETS_TOPIC)
    wait_until(lambda: all_in_sync(boot, OFFSETS_TOPIC), timeout=60,
               what="__consumer_offsets fully in sync")

    # The coordinator: a node that is not the active controller (so the kill is a group
    # coordinator failover, not also a metadata quorum election), leading some
    # `__consumer_offsets` partition.
    quorum_leader = c.wait_for_leader(timeout=30)[0]
    led = leaders(boot, OFFSETS_TOPIC)
    candidates = [n for n in (3, 2, 1) if n != quorum_leader and n in led.values()]
    assert candidates, f"every __consumer_offsets partition led by the controller: {led}"
    coord_id = candidates[0]
    group = next(f"kip848-{i}" for i in range(10_000)
                 if led[offsets_partition_for(f"kip848-{i}", len(led))] == coord_id)
    offsets_partition = offsets_partition_for(group, len(led))
    preferred = list(admin(boot).list_topics(OFFSETS_TOPIC, timeout=10)
                     .topics[OFFSETS_TOPIC].partitions[offsets_partition].replicas)[0]
    wait_until(lambda: find_coordinator(c.nodes[quorum_leader], group) == (0, coord_id),
               timeout=30, what=f"FindCoordinator answering node {coord_id}")

    producer = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    ck_produce_all(producer, topic, [(None, f"{p}-{n}".encode(), p)
                                     for n in range(PER_PARTITION) for p in range(PARTITIONS)])

    # Members bootstrap from every node, so none depends on the one that is killed.
    everywhere = SimpleNamespace(bootstrap=boot)
    conf = {"protocol": "consumer", "delay_ms": 10, "batch": 10, "revoke_delay_ms": 4000,
            "conf": {"debug": "cgrp"}}

    def member(name):
        m = member_procs(everywhere, "confluent", group, [topic], name, **conf)
        members.append(m)
        return m

    a, b = member("a"), member("b")
    wait_until(lambda: shares([a, b]) == [3, 3] and covers_all([a, b]), timeout=90,
               what="a and b owning three partitions each")
    before = {m.name: m.last_assignment() for m in (a, b)}

    # A third member joins: the group epoch is bumped, a and b must each give up a partition
    # before c can have it. The coordinator dies while a revocation is in progress.
    c_started = time.time()
    x = member("c")
    revoking = wait_until(
        lambda: [m.name for m in (a, b) if any(e["t"] > c_started for e in m.snapshot("revoking"))],
        timeout=60, what="a or b starting to revoke for the new member")
    c.nodes[coord_id].kill9()
    killed_at = time.time()
    assert not any(e["t"] > c_started for m in (a, b) for e in m.snapshot("revoked")), \
        "a revocation completed before the kill; the rebalance was not in progress"
    c_assigned_before_kill = len(x.snapshot("assigned"))
    live = [n for i, n in c.nodes.items() if i != coord_id]
    live_boot = ",".join(n.bootstrap for n in live)

    # A new coordinator: the partition's leadership moves to an in-sync survivor and every live
    # node answers FindCoordinator with it.
    new_coord = wait_until(lambda: (l := coordinator_of(live_boot, group)) not in (-1, coord_id)
                           and l, timeout=60, what="the group's partition led by a survivor")
    wait_until(lambda: all(find_coordinator(n, group) == (0, new_coord) for n in live),
               timeout=60, what=f"FindCoordinator answering node {new_coord} on every live node")

    # The rebalance completes on the new coordinator: two partitions each, all six owned.
    members3 = [a, b, x]
    wait_until(lambda: shares(members3) == [2, 2, 2] and covers_all(members3), timeout=120,
               what="a, b and c owning two partitions each after the failover")
    settled_at = time.time()
    wait_until(lambda: processed(members3, PER_PARTITION), timeout=180,
               what="every record processed")

    # c leaves cleanly: a and b take its partitions, with assignments from the new coordinator
    # under the member ids they had before the failover and later epochs.
    x.stop()
    wait_until(lambda: shares([a, b]) == [3, 3] and covers_all([a, b]), timeout=90,
               what="a and b owning three partitions each after c left")
    for m in (a, b):
        after = assigned_after(m, settled_at)
        assert after, f"{m.name} got no assignment after c left"
        assert after[-1]["member"] == before[m.name]["member"], (before[m.name], after[-1])
        assert after[-1]["generation"] > before[m.name]["generation"], (before[m.name], after[-1])

    # The Admin API's view (ConsumerGroupDescribe) from the new coordinator.
    describe_note = check_described(live_boot, group, new_coord,
                                    {m.name: before[m.name]["member"] for m in (a, b)})

    # The killed node comes back, catches up, and (its preferred replica) takes the group's
    # coordination back: the group resumes on it as well, from the records written meanwhile.
    c.nodes[coord_id].start()
    wait_until(lambda: all_in_sync(c.bootstrap(), OFFSETS_TOPIC)
               and all_in_sync(c.bootstrap(), topic), timeout=120,
               what="the restarted node back in every ISR")
    final_coord = new_coord
    if preferred == coord_id:
        wait_until(lambda: coordinator_of(c.bootstrap(), group) == coord_id, timeout=90,
                   what="the coordination back on the restarted preferred replica")
        wait_until(lambda: all(find_coordinator(n, group) == (0, coord_id)
                               for n in c.nodes.values()),
                   timeout=60, what="FindCoordinator answering the restarted node")
        final_coord = coord_id
    ck_produce_all(producer, topic, [(None, f"late-{p}-{n}".encode(), p)
                                     for n in range(LATE) for p in range(PARTITIONS)])
    wait_until(lambda: processed([a, b, x], PER_PARTITION + LATE), timeout=120,
               what="the late records processed")
    d = member("d")
    members4 = [a, b, d]
    wait_until(lambda: shares(members4) == [2, 2, 2] and covers_all(members4), timeout=120,
               what="a, b and d owning two partitions each")
    for m in (a, b, d):
        m.stop()

    everyone = [a, b, x, d]
    # Nobody was fenced. librdkafka drops its assignment as lost (on_lost) only when a
    # heartbeat is answered UNKNOWN_MEMBER_ID or FENCED_MEMBER_EPOCH (or on a fatal error); a
    # coordinator that is gone or not the coordinator any more just makes it look for the new
    # one and send its full state there. So with the group rebuilt from the records there is no
    # `lost` at all; the replay in check_single_owner would handle one, but it would mean the
    # new coordinator did not know a member.
    lost = {m.name: [e for e in m.snapshot("lost")] for m in everyone}
    assert not any(lost.values()), f"members fenced (lost events): {lost}"
    fatal = {m.name: [e for e in m.snapshot("error") if e.get("fatal")] for m in everyone}
    assert not any(fatal.values()), f"fatal client errors: {fatal}"
    for m in everyone:
        log = m.stderr_path.read_text(errors="replace")
        assert FENCED not in log, f"{m.name} was fenced:\n" + "\n".join(
            [l for l in log.splitlines() if FENCED in l or "HEARTBEAT" in l][-20:])

    # The members' epochs went on from the stored ones: no heartbeat response (from the old,
    # the interim or the restarted coordinator) went back to a lower epoch or to another member
    # id, and the new coordinator answered each member that was up at the kill.
    # (A member id alone would not prove much: librdkafka generates it and keeps it across a
    # fencing; the epoch is the coordinator's.)
    timeline = {}
    for m in (a, b, x, d):
        hb = [(t, mid, e) for t, mid, e in heartbeat_epochs(m) if e >= 0]
        timeline[m.name] = sorted({e for _t, _mid, e in hb})
        assert hb, f"no ConsumerGroupHeartbeat responses in {m.name}'s librdkafka log " \
                   f"(did librdkafka's debug line change?)"
        ids = {mid for _t, mid, _e in hb if mid}
        assert len(ids) == 1, f"{m.name} answered under several member ids: {ids}"
        epochs = [e for _t, _mid, e in hb]
        drops = [(hb[i - 1], hb[i]) for i in range(1, len(hb)) if epochs[i] < epochs[i - 1]]
        assert not drops, f"{m.name}'s epoch went backwards: {drops[:3]}"
        assert 0 not in epochs, f"{m.name} was answered epoch 0: {hb[:5]}"
        if m is not d:
            before_kill = [e for t, _mid, e in hb if t < killed_at]
            after_kill = [e for t, _mid, e in hb if t > killed_at + 1]
            assert before_kill and after_kill, (m.name, before_kill[-3:], after_kill[:3])
            assert after_kill[0] >= before_kill[-1], (m.name, before_kill[-3:], after_kill[:3])
        if m is a or m is b:
            assert ids == {before[m.name]["member"]}, (m.name, ids, before[m.name])

    check_single_owner(everyone)
    check_processing(everyone, {p: PER_PARTITION + LATE for p in range(PARTITIONS)})
    # And the group's offsets, from whichever node coordinates it now, are at the end.
    probe = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group,
                      "enable.auto.commit": False})
    try:
        got = wait_until(lambda: probe.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10), timeout=30,
            what="the group's committed offsets")
    finally:
        probe.close()
    assert {tp.partition: tp.offset for tp in got} == \
        {p: PER_PARTITION + LATE for p in range(PARTITIONS)}, got
    print(f"coordinator {coord_id} killed at revoke of {revoking} (c had "
          f"{c_assigned_before_kill} assignments); new coordinator {new_coord}, settled "
          f"{settled_at - killed_at:.1f}s after the kill; final coordinator {final_coord}; "
          f"{describe_note}; epochs answered per member {timeline}")


def check_described(bootstrap: str, group: str, coordinator: int,
                    member_ids: dict[str, str]) -> str:
    """AdminClient.describe_consumer_groups (ConsumerGroupDescribe) shows the consumer group
    on the new coordinator with the members that stayed up, three partitions each."""
    a = admin(bootstrap)

    def describe():
        return a.describe_consumer_groups([group], request_timeout=15)[group].result(20)
    # The last acknowledgements may still be on their way.
    d = wait_until(lambda: (r := describe()).state.name == "STABLE" and r, timeout=30,
                   what="the group described as Stable")
    assert d.type == ConsumerGroupType.CONSUMER, d
    assert d.coordinator.id == coordinator, d
    assert {m.member_id for m in d.members} == set(member_ids.values()), (d.members, member_ids)
    assert sorted(len(m.assignment.topic_partitions) for m in d.members) == [3, 3], d.members
    return "describe_consumer_groups checked"
