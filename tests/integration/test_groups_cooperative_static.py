"""Incremental (cooperative-sticky) rebalancing and static membership (KIP-345) with librdkafka.

Cooperative rebalancing is a client protocol on top of the classic JoinGroup/SyncGroup: the
broker only has to carry the members' owned partitions (in the subscription metadata) to the
leader and run the extra rebalance the leader asks for. Static membership is the broker's: a
member that rejoins with a known group.instance.id takes over the old member's place (and
assignment) without a rebalance; the old member id is fenced.

The group generation is read from librdkafka's consumer_group_metadata() (see
helpers.ck_group_generation); a rebalance would also show as callbacks on the other member.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from group_members import member_procs  # noqa: F401 - fixture
from helpers import (GROUP_BROKER_CONFIG, ck_admin, ck_create_topic, ck_group_consumer,
                     ck_group_generation, ck_poll_until, wait_until)

PARTITIONS = 6


class Recorder:
    """Rebalance callbacks of one consumer, in order: ("assign"|"revoke"|"lost", {partitions})."""

    def __init__(self):
        self.events: list[tuple[str, frozenset[int]]] = []

    def on_assign(self, consumer, parts):
        self.events.append(("assign", frozenset(tp.partition for tp in parts)))

    def on_revoke(self, consumer, parts):
        self.events.append(("revoke", frozenset(tp.partition for tp in parts)))

    def on_lost(self, consumer, parts):
        self.events.append(("lost", frozenset(tp.partition for tp in parts)))

    def since(self, i: int, kind: str) -> list[frozenset[int]]:
        return [p for k, p in self.events[i:] if k == kind]


def subscribe(consumer, topic, rec: Recorder):
    consumer.subscribe([topic], on_assign=rec.on_assign, on_revoke=rec.on_revoke,
                       on_lost=rec.on_lost)


def assigned(consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_cooperative_sticky_moves_only_what_must_move(broker, unique_topic):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)
    everything = set(range(PARTITIONS))
    conf = {"partition.assignment.strategy": "cooperative-sticky"}

    a, ra = ck_group_consumer(broker, group, **{"client.id": "A", **conf}), Recorder()
    b, rb = ck_group_consumer(broker, group, **{"client.id": "B", **conf}), Recorder()
    try:
        subscribe(a, topic, ra)
        ck_poll_until([a], lambda: assigned(a) == everything, 30, "A owning all 6")
        assert ra.events == [("assign", frozenset(everything))]

        # B joins: A gives up exactly half and keeps the rest; B gets exactly what A gave up.
        mark_a = len(ra.events)
        subscribe(b, topic, rb)
        ck_poll_until([a, b], lambda: len(assigned(a)) == 3 and len(assigned(b)) == 3, 30,
                      "3 + 3 after B joined")
        revoked = ra.since(mark_a, "revoke")
        assert len(revoked) == 1 and len(revoked[0]) == 3, f"A's revokes: {revoked}"
        kept = everything - revoked[0]
        assert assigned(a) == kept
        # Incremental: A is told about no partition it did not already own.
        assert all(not p for p in ra.since(mark_a, "assign")), ra.events[mark_a:]
        assert not ra.since(mark_a, "lost")
        assert [k for k, _ in rb.events if k != "assign"] == [], rb.events
        assert set().union(*rb.since(0, "assign")) == revoked[0] == assigned(b)

        # B leaves (close sends LeaveGroup): A is assigned B's partitions and revokes nothing.
        mark_a = len(ra.events)
        b.close()
        b = None
        ck_poll_until([a], lambda: assigned(a) == everything, 30, "A owning all 6 again")
        assert not ra.since(mark_a, "revoke"), ra.events[mark_a:]
        assert not ra.since(mark_a, "lost"), ra.events[mark_a:]
        assert set().union(*ra.since(mark_a, "assign")) == revoked[0]
    finally:
        for c in (a, b):
            if c is not None:
                c.close()


# ---- static membership ----------------------------------------------------------------------------

def describe(broker, group: str):
    admin = ck_admin(broker)  # must outlive the future: a destroyed client never completes it
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
@pytest.mark.parametrize("restart", ["close", "kill9"])
def test_static_member_restart_keeps_partitions_and_generation(broker, member_procs, unique_topic,
                                                               restart):
    """A static member that goes away without LeaveGroup (librdkafka's close() of a static member
    does not send one; SIGKILL sends nothing) and comes back with the same group.instance.id
    within the session timeout gets its old partitions back in the same generation, and the other
    member sees no rebalance at all."""
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)
    # The restarted process must start Python, connect and rejoin within the session timeout; the
    # group tests' 6 s leaves too little of that on a loaded CI machine, and the test only needs
    # "came back before the session expired" to differ from "waited for the expiry".
    session_s = 12

    def start(name):
        return member_procs(broker, "confluent", group, [topic], name, instance_id=f"static-{name}",
                            session_timeout_ms=session_s * 1000)

    a, b = start("a"), start("b")
    wait_until(lambda: len(a.owned()) == 3 and len(b.owned()) == 3, 30, what="3 + 3")
    gen = a.last_assignment()["generation"]
    assert b.last_assignment()["generation"] == gen
    a_parts = a.owned()
    a_member = a.last_assignment()["member"]
    b_events = len(b.snapshot())

    before = describe(broker, group)
    assert {m.group_instance_id for m in before.members} == {"static-a", "static-b"}

    if restart == "close":
        assert a.stop() == 0
        gone_at = time.time()
    else:
        gone_at = a.kill9()
    a2 = start("a")
    a2.wait_for(lambda m: m.last_assignment() is not None, session_s,
                "assignment within the session timeout")
    back = a2.last_assignment()
    assert back["t"] - gone_at < session_s, \
        "the rejoin waited for the old member's session to expire"
    assert {tuple(p) for p in back["partitions"]} == a_parts, "static member got other partitions"
    assert back["generation"] == gen, f"generation changed {gen} -> {back['generation']}"
    assert back["member"] != a_member, "the broker must give the new process a new member id"

    # No rebalance: B saw no callbacks, and the old member id is not in the group any more.
    def b_rebalances():
        return [e for e in b.snapshot()[b_events:] if e["ev"] in ("assigned", "revoked", "lost")]
    assert not b_rebalances()
    after = describe(broker, group)
    by_instance = {m.group_instance_id: m for m in after.members}
    assert set(by_instance) == {"static-a", "static-b"}, [m.member_id for m in after.members]
    assert by_instance["static-a"].member_id == back["member"]
    assert {(tp.topic, tp.partition) for tp in by_instance["static-a"].assignment.topic_partitions} \
        == a_parts

    if restart == "kill9":
        # The killed process's session would have expired by now + a heartbeat round; since its
        # member id was replaced, that expiry must not remove anyone or start a rebalance. (This
        # waits out a time window in which nothing may happen; there is no event to wait for.)
        time.sleep(max(0.0, gone_at + session_s + 2 - time.time()))
        assert not b_rebalances()
        assert not [e for e in a2.snapshot() if e["ev"] in ("revoked", "lost", "error")]
        assert {m.group_instance_id for m in describe(broker, group).members} \
            == {"static-a", "static-b"}


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_second_member_with_same_instance_id_fences_the_first(broker, unique_topic):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)
    everything = set(range(PARTITIONS))

    errors_1, errors_2 = [], []
    c1 = ck_group_consumer(broker, group, **{"group.instance.id": "dup", "client.id": "first",
                                             "error_cb": errors_1.append})
    c2 = ck_group_consumer(broker, group, **{"group.instance.id": "dup", "client.id": "second",
                                             "error_cb": errors_2.append})
    polled_1 = []
    try:
        c1.subscribe([topic])
        ck_poll_until([c1], lambda: assigned(c1) == everything, 30, "first owning all 6")
        gen1, member1 = ck_group_generation(c1)

        c2.subscribe([topic])

        # librdkafka raises FENCED_INSTANCE_ID as a fatal error: error_cb gets it with fatal()
        # set, and poll() returns an error event with code _FATAL naming the cause.
        def fenced(e) -> bool:
            fatal = e.fatal() or e.code() == KafkaError._FATAL
            return (e.code() == KafkaError.FENCED_INSTANCE_ID
                    or (fatal and "fenced" in (e.str() or "").lower()))

        def on_message(c, m):
            if c is c1 and m.error() is not None:
                polled_1.append(m.error())

        try:
            ck_poll_until([c1, c2], lambda: assigned(c2) == everything
                          and any(fenced(e) for e in errors_1 + polled_1), 30,
                          "second owning all 6 and the first fenced", on_message=on_message)
        except AssertionError as e:
            raise AssertionError(f"{e}: second owns {assigned(c2)}, first owns {assigned(c1)}, "
                                 f"errors of the first {errors_1 + polled_1}, "
                                 f"of the second {errors_2}") from None
        fatal = [e for e in errors_1 + polled_1 if fenced(e)]
        assert all(e.fatal() or e.code() == KafkaError._FATAL for e in fatal), fatal
        assert not [e for e in errors_2 if e.fatal()], errors_2
        gen2, member2 = ck_group_generation(c2)
        assert member2 != member1
        # The newcomer replaced the old member without a rebalance.
        assert gen2 == gen1, (gen1, gen2)
        d = describe(broker, group)
        assert [(m.member_id, m.group_instance_id) for m in d.members] == [(member2, "dup")]
    finally:
        c1.close()
        c2.close()
