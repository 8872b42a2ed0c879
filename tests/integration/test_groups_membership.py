"""Consumer groups with the three Python clients: balanced assignment, a SIGKILLed member's
partitions moving to the survivors after its session timeout, consumption continuing from the
committed offsets; and the session timeout bounds of JoinGroup.

Members run as subprocesses (group_consumer.py) so that a SIGKILL really is a crash: no
LeaveGroup, no final commit. They commit synchronously after processing each small batch (and in
their revoke callback where the client allows it), so the killed member's last commit is known
from its output.
"""
from __future__ import annotations

import time
from collections import defaultdict

import pytest
from confluent_kafka import KafkaError, TopicPartition

from group_members import member_procs  # noqa: F401 - fixture
from helpers import (GROUP_BROKER_CONFIG, GROUP_HEARTBEAT_MS, GROUP_SESSION_TIMEOUT_MS,
                     ck_create_topic, ck_group_consumer, ck_produce_all,
                     ck_producer, wait_until)

PARTITIONS = 6
CLIENTS = ["confluent", "kafka-python", "aiokafka"]
# After the session timeout the coordinator needs a heartbeat round for the survivors to learn of
# the rebalance, then a join/sync round. That takes well under a second here, but a Python member
# starved of CPU on a loaded 2-core machine can be late to both; the bound only has to catch a
# rebalance that never completes (the lower bound below is the real check), so it is generous.
REBALANCE_MARGIN_S = 30


def produce_numbered(broker, topic: str, per_partition: int, first: int) -> set[tuple[int, int]]:
    """per_partition records into every partition, values "seq-<n>"; returns {(p, offset)}."""
    msgs = []
    seq = first
    for _ in range(per_partition):
        for p in range(PARTITIONS):
            msgs.append((f"k{seq}".encode(), f"seq-{seq}".encode(), p))
            seq += 1
    delivered = ck_produce_all(ck_producer(broker), topic, msgs)
    return {(m.partition(), m.offset()) for m in delivered}


def balanced(members, per_member: int):
    owned = [m.owned() for m in members]
    every = set().union(*owned)
    if all(len(o) == per_member for o in owned) and len(every) == PARTITIONS:
        return owned
    return None


def last_commits(events) -> tuple[dict, dict]:
    """(last committed offset per partition, offsets of a commit still in flight per partition)."""
    done: dict[int, int] = {}
    pending: dict[int, int] = {}
    for e in events:
        if e["ev"] == "committing":
            for _t, p, o in e["offsets"]:
                pending[p] = o
        elif e["ev"] == "committed":
            for _t, p, o in e["offsets"]:
                done[p] = o
                pending.pop(p, None)
        elif e["ev"] == "commit_failed":
            for _t, p, _o in e["offsets"]:
                pending.pop(p, None)
    return done, pending


@pytest.mark.timeout(180)
@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
@pytest.mark.parametrize("client", CLIENTS)
def test_killed_member_partitions_move_and_resume_from_commits(broker, member_procs, unique_topic,
                                                               client):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)

    # Three members; the victim processes slowly so it is killed mid-stream.
    members = [member_procs(broker, client, group, [topic], f"{client}-m{i}",
                            delay_ms=30 if i == 0 else 2, batch=4)
               for i in range(3)]
    victim, survivors = members[0], members[1:]

    # Every member ends up with exactly 2 of the 6 partitions (range and roundrobin agree here).
    wait_until(lambda: balanced(members, 2), 60, what="2 partitions per member")
    gen_before = {m.last_assignment()["generation"] for m in members}
    assert len(gen_before) == 1, f"members disagree on the generation: {gen_before}"

    produced = produce_numbered(broker, topic, 40, 0)

    # Kill the victim once it has committed on both its partitions and is between two commits
    # (it processed records it has not committed yet: those must be the only duplicates).
    def mid_batch(m):
        evs = m.snapshot()
        committed_parts = {p for e in evs if e["ev"] == "committed" for _t, p, _o in e["offsets"]}
        return len(committed_parts) >= 2 and evs[-1]["ev"] == "msg"
    victim.wait_for(mid_batch, 30, "commits on 2 partitions, then more records")
    victim_parts = {p for _t, p in victim.owned()}
    assert len(victim_parts) == 2
    killed_at = victim.kill9()
    v_events = victim.snapshot()
    v_done, v_pending = last_commits(v_events)
    v_max = defaultdict(lambda: -1)
    for e in v_events:
        if e["ev"] == "msg":
            v_max[e["p"]] = max(v_max[e["p"]], e["o"])
    assert any(v_max[p] >= 0 for p in victim_parts), "victim consumed nothing before the kill"

    # The survivors own all 6 (3 each) within the session timeout plus a rebalance margin...
    wait_until(lambda: balanced(survivors, 3), GROUP_SESSION_TIMEOUT_MS / 1000 + REBALANCE_MARGIN_S,
               what="survivors owning all 6 partitions")
    moved_at = max(m.last_assignment()["t"] for m in survivors)
    new_owner = {p: m for m in survivors for _t, p in m.owned()}
    # ...but not before it: a closed connection is not a LeaveGroup in Kafka; the member stays in
    # the group (and keeps its partitions) until its session expires. Its last heartbeat may
    # precede the kill by one heartbeat interval.
    earliest = killed_at + (GROUP_SESSION_TIMEOUT_MS - GROUP_HEARTBEAT_MS) / 1000 - 1.0
    assert moved_at >= earliest, (
        f"partitions moved {moved_at - killed_at:.1f}s after the kill, before the "
        f"{GROUP_SESSION_TIMEOUT_MS} ms session could expire")
    gen_after = {m.last_assignment()["generation"] for m in survivors}
    assert len(gen_after) == 1 and min(gen_after) > max(gen_before), (gen_before, gen_after)

    # Consumption continues: new records go to the survivors too.
    produced |= produce_numbered(broker, topic, 10, 40 * PARTITIONS)

    def all_consumed():
        got = set()
        for m in members:
            got |= set(m.consumed())
        return got >= produced
    wait_until(all_consumed, 60, what=f"all {len(produced)} records consumed")

    # Everything consumed gets committed: the group's offsets reach the log end offsets (read
    # while the survivors still run, so no LeaveGroup rebalance interferes with their commits).
    c = ck_group_consumer(broker, group)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
        assert sum(ends.values()) == len(produced)
        last = {}

        def committed_to_end():
            last.clear()
            last.update({tp.partition: tp.offset for tp in c.committed(tps, timeout=10)})
            return last == ends
        try:
            wait_until(committed_to_end, 30, interval=0.2, what="commits up to the log end")
        except AssertionError:
            raise AssertionError(f"committed {last}, log end offsets {ends}") from None
    finally:
        c.close()
    for m in survivors:
        assert m.stop() == 0, m.stderr_tail()

    # ---- nothing lost; duplicates only after the killed member's last commit -----------------
    consumptions = defaultdict(list)  # (p, o) -> [(t, member name)]
    for m in members:
        for e in m.snapshot("msg"):
            consumptions[(e["p"], e["o"])].append((e["t"], m.name))
    lost = produced - set(consumptions)
    assert not lost, f"{len(lost)} records never consumed, e.g. {sorted(lost)[:10]}"
    assert set(consumptions) == produced, "consumed offsets that were never produced"

    # For each of the victim's partitions: its new owner starts exactly at the victim's last
    # commit (or at the commit in flight when it died), else at 0 (auto.offset.reset=earliest).
    for p in sorted(victim_parts):
        firsts = [e["o"] for e in new_owner[p].snapshot("msg") if e["p"] == p and e["t"] > killed_at]
        assert firsts, f"nobody consumed partition {p} after the kill"
        allowed = {v_done.get(p, 0)} | ({v_pending[p]} if p in v_pending else set())
        assert firsts[0] in allowed, (
            f"partition {p}: new owner started at {firsts[0]}, the killed member's last commit "
            f"was {v_done.get(p)} (in flight: {v_pending.get(p)})")
        # Exactly the records the victim processed after that commit are seen twice.
        dups = {o for (pp, o), who in consumptions.items() if pp == p and len(who) > 1}
        assert dups == set(range(firsts[0], v_max[p] + 1)), (p, sorted(dups), firsts[0], v_max[p])

    # Anywhere else a record may only be consumed twice if the member that read it first had not
    # committed past it before the second read (a commit refused during the rebalance).
    commits_by = {}
    for m in members:
        commits_by[m.name] = [(e["t"], p, o) for e in m.snapshot("committed")
                              for _t, p, o in e["offsets"]]
    other_dups = []
    for (p, o), who in consumptions.items():
        if p in victim_parts or len(who) < 2:
            continue
        who.sort()
        for (t1, first), (t2, _second) in zip(who, who[1:]):
            covered = [c for c in commits_by[first] if c[1] == p and c[2] > o and c[0] < t2]
            assert not covered, f"{(p, o)} read again at {t2} after {first} committed {covered[-1]}"
        other_dups.append((p, o))
    print(f"{client}: partitions moved {moved_at - killed_at:.1f}s after the kill; victim's "
          f"partitions {sorted(victim_parts)} last commits {v_done} in flight {v_pending} "
          f"max consumed {dict(v_max)}; other duplicates {len(other_dups)}")
    if client == "confluent":
        # librdkafka runs the revoke callback before rejoining, and the callback commits: partitions
        # that move between survivors carry no duplicates at all.
        assert not other_dups, f"duplicates outside the killed member's partitions: {other_dups[:10]}"


# ---- session timeout bounds -----------------------------------------------------------------------

@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_session_timeout_outside_broker_bounds_is_rejected(broker, unique_topic):
    """JoinGroup with a session timeout below group.min.session.timeout.ms (6000) or above
    group.max.session.timeout.ms (1800000) gets INVALID_SESSION_TIMEOUT; 6000 itself is fine
    (every other group test uses it)."""
    from kafka import KafkaConsumer
    import kafka.errors as Errors

    topic = unique_topic
    ck_create_topic(broker, topic, 1)

    # librdkafka reports the JoinGroup error as a consumer error from poll() and keeps retrying.
    errors = []
    for session_ms in (GROUP_SESSION_TIMEOUT_MS - 1, 1_800_001):
        c = ck_group_consumer(broker, f"g-short-{topic}", **{
            "session.timeout.ms": session_ms, "heartbeat.interval.ms": 100,
            "max.poll.interval.ms": max(session_ms, 300000)})
        try:
            c.subscribe([topic])

            def got_error(c=c):
                m = c.poll(0.2)
                if m is not None and m.error() is not None:
                    errors.append((session_ms, m.error()))
                    return m.error().code() == KafkaError.INVALID_SESSION_TIMEOUT
                return False
            wait_until(got_error, 20, interval=0, what=f"INVALID_SESSION_TIMEOUT for {session_ms}")
            assert not c.assignment(), "a member with an invalid session timeout got partitions"
        finally:
            c.close()

    # kafka-python raises it from poll().
    kc = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"g-kp-{topic}",
                       session_timeout_ms=1000, heartbeat_interval_ms=300,
                       request_timeout_ms=10000, enable_auto_commit=False)
    try:
        with pytest.raises(Errors.InvalidSessionTimeoutError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                kc.poll(timeout_ms=200)
    finally:
        kc.close()
