"""KIP-848's consumer group protocol (`group.protocol=consumer`) with librdkafka (issue 17).

The broker computes the assignment and hands each member the partitions it may own now, through
ConsumerGroupHeartbeat; a partition goes to its new owner only after the old owner revoked it.
Members here are subprocesses (group_consumer.py) so one can be SIGKILLed; their rebalance
callbacks, records and commits come back as timestamped events, from which the tests check that
no partition is ever owned by two members at once, that every record is processed, and that none
is processed again after its offset was committed.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError

from group_members import member_procs  # noqa: F401 - fixture
from helpers import (GROUP_BROKER_CONFIG, ck_admin, ck_create_topic, ck_produce_all, ck_producer,
                     wait_until)

PARTITIONS = 6
PER_PARTITION = 400

# Short consumer-group sessions so a killed member is noticed within seconds (Kafka's defaults
# are 45 s with a 45 s minimum).
CONSUMER_PROTOCOL_CONFIG = {
    **GROUP_BROKER_CONFIG,
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 1000,
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 100,
}


def owned(member) -> set[int]:
    """The partitions `member` owns after its last rebalance event."""
    last = [e for e in member.snapshot() if e["ev"] in ("assigned", "revoked", "lost")]
    return {p for _t, p in last[-1]["owned"]} if last else set()


def check_single_owner(members) -> None:
    """Replays every member's assign/revoke/lost events in time order: a partition may be
    assigned only when no other member owns it."""
    events = [(e["t"], m.name, e) for m in members for e in m.snapshot()
              if e["ev"] in ("assigned", "revoked", "lost")]
    # A killed member owns nothing from its death on.
    events += [(m.killed_at, m.name, {"ev": "lost", "partitions": [[None, p] for p in owned(m)]})
               for m in members if m.killed_at is not None]
    events.sort(key=lambda x: x[0])
    owner: dict[int, str] = {}
    for t, name, e in events:
        parts = [p for _topic, p in e["partitions"]]
        for p in parts:
            if e["ev"] == "assigned":
                assert owner.get(p) in (None, name), \
                    f"partition {p} assigned to {name} at {t} while {owner[p]} owns it"
                owner[p] = name
            elif owner.get(p) == name:
                del owner[p]


def check_processing(members, expected: dict[int, int]) -> None:
    """Every record up to `expected[p]` was processed, and none again after a member had
    committed past it."""
    seen: dict[int, set[int]] = {p: set() for p in expected}
    committed_at: list[tuple[float, int, int]] = []
    msgs: list[tuple[float, int, int, str]] = []
    for m in members:
        for e in m.snapshot():
            if e["ev"] == "msg":
                msgs.append((e["t"], e["p"], e["o"], m.name))
            elif e["ev"] == "committed":
                committed_at.extend((e["t"], p, o) for _t, p, o in e["offsets"])
    for _t, p, o, _name in msgs:
        seen[p].add(o)
    for p, end in expected.items():
        missing = set(range(end)) - seen[p]
        assert not missing, f"partition {p}: {len(missing)} records never processed, e.g. " \
                            f"{sorted(missing)[:5]}"
    committed_at.sort()
    for t, p, o, name in msgs:
        before = [c for c in committed_at if c[0] < t and c[1] == p]
        high = max((c[2] for c in before), default=0)
        assert o >= high, f"{name} processed {p}@{o} at {t} after offset {high} was committed"


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_members_share_rebalance_on_join_leave_and_kill_and_resume(broker, unique_topic,
                                                                   member_procs):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)
    p = ck_producer(broker)
    ck_produce_all(p, topic, [(None, f"{n}".encode(), n % PARTITIONS)
                              for n in range(PARTITIONS * PER_PARTITION)])
    conf = {"protocol": "consumer", "delay_ms": 3, "batch": 10}
    a = member_procs(broker, "confluent", group, [topic], "a", **conf)
    b = member_procs(broker, "confluent", group, [topic], "b", **conf)
    c = member_procs(broker, "confluent", group, [topic], "c", **conf)
    members = [a, b, c]
    # Three members, two partitions each.
    wait_until(lambda: sorted(len(owned(m)) for m in members) == [2, 2, 2]
               and set().union(*(owned(m) for m in members)) == set(range(PARTITIONS)),
               timeout=30, what="three members owning two partitions each")
    # One leaves (clean close): the other two take its partitions.
    c.stop()
    wait_until(lambda: sorted(len(owned(m)) for m in (a, b)) == [3, 3], timeout=30,
               what="the two remaining members owning three partitions each")
    # One joins: back to two each.
    d = member_procs(broker, "confluent", group, [topic], "d", **conf)
    members.append(d)
    wait_until(lambda: sorted(len(owned(m)) for m in (a, b, d)) == [2, 2, 2], timeout=30,
               what="the new member getting two partitions")
    # One is killed: its partitions move after the session timeout (6 s), not before.
    killed_owned = owned(d)
    d.kill9()
    killed_at = time.monotonic()
    wait_until(lambda: set().union(owned(a), owned(b)) == set(range(PARTITIONS)), timeout=30,
               what="the killed member's partitions reassigned")
    assert time.monotonic() - killed_at > 3, "reassigned before the session could time out"
    assert killed_owned
    # Everything is processed by the survivors.
    expected = {n: PER_PARTITION for n in range(PARTITIONS)}
    wait_until(lambda: all(
        {e["o"] for m in members for e in m.snapshot() if e["ev"] == "msg" and e["p"] == n}
        >= set(range(PER_PARTITION)) for n in range(PARTITIONS)),
        timeout=60, what="every record processed")
    a.stop()
    b.stop()
    check_single_owner(members)
    check_processing(members, expected)
    # Commits and resumption: a new member starts where the group committed.
    ck_produce_all(p, topic, [(None, b"late", n) for n in range(PARTITIONS)])
    e = member_procs(broker, "confluent", group, [topic], "e", **conf)
    wait_until(lambda: len({ev["p"] for ev in e.snapshot() if ev["ev"] == "msg"}) == PARTITIONS,
               timeout=30, what="the new member reading every partition")
    first = {}
    for ev in e.snapshot():
        if ev["ev"] == "msg":
            first.setdefault(ev["p"], ev["o"])
    assert first == {n: PER_PARTITION for n in range(PARTITIONS)}, first
    e.stop()


def consumer(broker, group: str, **extra) -> Consumer:
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group,
            "group.protocol": "consumer", "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    conf.update(extra)
    return Consumer(conf)


def assignment_of(c) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in c.assignment()}


def poll_until(consumers, cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.05)
        if cond():
            return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
@pytest.mark.parametrize("assignor", ["range", "uniform"])
def test_server_side_assignors(broker, unique_topic, assignor):
    """`range` gives each member the same contiguous range of every topic it subscribes to
    (co-partitioned topics stay together); `uniform` balances the partitions. Both share all
    partitions between the two members, each exactly once."""
    t1, t2 = f"{unique_topic}-1", f"{unique_topic}-2"
    ck_create_topic(broker, t1, 4)
    ck_create_topic(broker, t2, 4)
    group = f"g-{unique_topic}"
    cs = [consumer(broker, group, **{"group.remote.assignor": assignor}) for _ in range(2)]
    try:
        for c in cs:
            c.subscribe([t1, t2])
        poll_until(cs, lambda: all(len(assignment_of(c)) == 4 for c in cs), 30,
                   "both members with four partitions")
        a, b = (assignment_of(c) for c in cs)
        assert not a & b and len(a | b) == 8
        if assignor == "range":
            for got in (a, b):
                first = sorted(p for t, p in got if t == t1)
                second = sorted(p for t, p in got if t == t2)
                assert first == second, got
                assert first == list(range(first[0], first[0] + len(first))), got
    finally:
        for c in cs:
            c.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_regex_subscription_picks_up_a_topic_created_later(broker, unique_topic):
    """The broker resolves the member's regular expression (Kafka 4.0's server-side regex)
    and assigns a topic that appears later."""
    prefix = f"rx{int(time.time() * 1000) % 1_000_000}"
    c = consumer(broker, f"g-{unique_topic}")
    try:
        c.subscribe([f"^{prefix}-.*"])
        poll_until([c], lambda: True, 1, "a first poll")
        topic = f"{prefix}-late"
        ck_create_topic(broker, topic, 2)
        ck_produce_all(ck_producer(broker), topic, [(None, b"hello", 1)])
        got = []
        deadline = time.monotonic() + 45
        while not got and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.topic(), m.partition(), m.value()))
        assert got == [(topic, 1, b"hello")]
        assert assignment_of(c) == {(topic, 0), (topic, 1)}
    finally:
        c.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_unknown_assignor_is_refused_and_the_group_keeps_serving(broker, unique_topic):
    """UNSUPPORTED_ASSIGNOR for an assignor the broker does not have (librdkafka makes it
    fatal); the group's other members go on."""
    ck_create_topic(broker, unique_topic, 2)
    group = f"g-{unique_topic}"
    good = consumer(broker, group)
    errors: list[KafkaError] = []
    bad = consumer(broker, group, **{"group.remote.assignor": "sticky",
                                     "error_cb": errors.append})
    try:
        good.subscribe([unique_topic])
        bad.subscribe([unique_topic])
        deadline = time.monotonic() + 30
        while not (errors and len(assignment_of(good)) == 2):
            assert time.monotonic() < deadline, (
                f"errors {[e.str() for e in errors]}, good member has {assignment_of(good)}")
            good.poll(0.05)
            m = bad.poll(0.05)
            if m is not None and m.error():
                errors.append(m.error())
        assert "assignor" in errors[0].str().lower(), errors[0].str()
    finally:
        good.close()
        bad.close()


def test_features_disabled_without_the_consumer_protocol(make_broker, unique_topic):
    """Without `consumer` in group.coordinator.rebalance.protocols the heartbeat answers
    UNSUPPORTED_VERSION, as Kafka does, which librdkafka makes fatal; the member never gets
    partitions."""
    broker = make_broker({**GROUP_BROKER_CONFIG,
                          "group.coordinator.rebalance.protocols": "classic"})
    ck_create_topic(broker, unique_topic, 2)
    c = consumer(broker, "g-disabled")
    errors: list[KafkaError] = []
    try:
        c.subscribe([unique_topic])
        deadline = time.monotonic() + 30
        while not errors:
            assert time.monotonic() < deadline, "no error surfaced"
            m = c.poll(0.1)
            if m is not None and m.error():
                errors.append(m.error())
        assert "API version not supported" in errors[0].str(), errors[0].str()
        assert not c.assignment()
    finally:
        c.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_listed_with_the_consumer_type_and_deleted_when_empty(broker, unique_topic):
    """ListGroups shows a consumer group with the `consumer` type and its state (and filters
    by type); DeleteGroups refuses it while it has members and takes it, offsets included,
    once they left."""
    from confluent_kafka import ConsumerGroupType, TopicPartition

    ck_create_topic(broker, unique_topic, 2)
    group = f"g-{unique_topic}"
    admin = ck_admin(broker)
    c = consumer(broker, group)

    def listed(types=None):
        kw = {"types": set(types)} if types else {}
        r = admin.list_consumer_groups(request_timeout=10, **kw).result()
        return {g.group_id: g for g in r.valid}

    try:
        c.subscribe([unique_topic])
        poll_until([c], lambda: len(assignment_of(c)) == 2, 30, "the assignment")
        c.commit(offsets=[TopicPartition(unique_topic, 0, 5)], asynchronous=False)
        wait_until(lambda: group in listed(), timeout=15, what="the group listed")
        g = listed()[group]
        assert g.type == ConsumerGroupType.CONSUMER, g.type
        assert g.state.name == "STABLE", g.state
        assert group in listed([ConsumerGroupType.CONSUMER])
        assert group not in listed([ConsumerGroupType.CLASSIC])
        busy = admin.delete_consumer_groups([group], request_timeout=10)[group]
        with pytest.raises(Exception, match="NON_EMPTY_GROUP|not empty"):
            busy.result()
    finally:
        c.close()
    admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert group not in listed()
    # Its offsets went with it: a new group under the id starts from the beginning.
    fresh = consumer(broker, group)
    try:
        committed = fresh.committed([TopicPartition(unique_topic, 0)], timeout=10)
        assert committed[0].offset < 0, committed
    finally:
        fresh.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_a_static_member_returns_to_its_partitions_without_a_rebalance(broker, unique_topic):
    """A member with `group.instance.id` that closes leaves with epoch -2: its partitions stay
    reserved until the session times out, and the member coming back under that id gets them
    again while the other member's assignment never changes (no callback on it)."""
    ck_create_topic(broker, unique_topic, PARTITIONS)
    group = f"g-{unique_topic}"
    events: list[tuple[str, frozenset[int]]] = []

    def record(kind):
        return lambda _c, parts: events.append((kind, frozenset(tp.partition for tp in parts)))

    a = consumer(broker, group, **{"group.instance.id": "static-a"})
    b = consumer(broker, group, **{"group.instance.id": "static-b"})
    b.subscribe([unique_topic], on_assign=record("assign"), on_revoke=record("revoke"),
                on_lost=record("lost"))
    a.subscribe([unique_topic])
    try:
        poll_until([a, b], lambda: len(assignment_of(a)) == 3 and len(assignment_of(b)) == 3,
                   30, "three partitions each")
        before_a, before_b = assignment_of(a), assignment_of(b)
        settled = len(events)
        a.close()
        # Several of b's heartbeats (500 ms) pass: a member that left for good (epoch -1)
        # would have its partitions on b by now.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            b.poll(0.1)
        assert assignment_of(b) == before_b
        a = consumer(broker, group, **{"group.instance.id": "static-a"})
        a.subscribe([unique_topic])
        poll_until([a, b], lambda: assignment_of(a) == before_a, 30,
                   "the returning member's old partitions")
        assert assignment_of(b) == before_b
        assert events[settled:] == [], events[settled:]
    finally:
        a.close()
        b.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_described_by_the_admin_api_and_the_tool_then_taken_over_by_a_classic_consumer(
        broker, unique_topic):
    """ConsumerGroupDescribe through librdkafka's admin API and `kafka-consumer-groups
    --describe` (members, state, offsets with lag); once the members left, a classic consumer
    takes the empty group's id over and resumes at the offsets the consumer group committed."""
    import subprocess

    from confluent_kafka import ConsumerGroupType, TopicPartition

    from broker_proc import BIN

    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, 4)
    p = ck_producer(broker)
    ck_produce_all(p, topic, [(None, f"{n}".encode(), n % 4) for n in range(40)])
    admin = ck_admin(broker)
    a = consumer(broker, group, **{"client.id": "member-a"})
    b = consumer(broker, group, **{"client.id": "member-b"})
    try:
        a.subscribe([topic])
        b.subscribe([topic])
        poll_until([a, b], lambda: len(assignment_of(a)) == 2 and len(assignment_of(b)) == 2,
                   45, "two members with two partitions each")
        a_parts = assignment_of(a)
        a.commit(offsets=[TopicPartition(t, part, 4) for t, part in sorted(a_parts)],
                 asynchronous=False)

        def described():
            return admin.describe_consumer_groups([group], request_timeout=10)[group].result()

        wait_until(lambda: described().state.name == "STABLE", timeout=30, what="Stable")
        d = described()
        assert d.type == ConsumerGroupType.CONSUMER, d.type
        assert d.partition_assignor == "uniform", d.partition_assignor
        assert not d.is_simple_consumer_group
        by_client = {m.client_id: m for m in d.members}
        assert set(by_client) == {"member-a", "member-b"}, by_client
        for name, c in (("member-a", a), ("member-b", b)):
            got = {(tp.topic, tp.partition) for tp in by_client[name].assignment.topic_partitions}
            assert got == assignment_of(c), (name, got)

        def tool(*args) -> str:
            r = subprocess.run([BIN, "kafka-consumer-groups", "--bootstrap-server",
                                broker.bootstrap, "--describe", "--group", group, *args],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            return r.stdout

        state = tool("--state").split("\n")
        row = [line for line in state if line.startswith(group)]
        assert row and row[0].split()[3:] == ["uniform", "Stable", "2"], state
        members = [line.split() for line in tool("--members").split("\n")
                   if line.startswith(group)]
        assert sorted((m[3], m[4]) for m in members) == [("member-a", "2"), ("member-b", "2")], \
            members
        offsets = [line.split() for line in tool().split("\n") if line.startswith(group)]
        rows = {int(r[2]): r for r in offsets}
        assert sorted(rows) == [0, 1, 2, 3], offsets
        a_ids = {m.member_id for m in d.members if m.client_id == "member-a"}
        for part in range(4):
            r = rows[part]
            assert r[4] == "10", r  # LOG-END-OFFSET
            if (topic, part) in a_parts:
                assert (r[3], r[5], r[6] in a_ids) == ("4", "6", True), r
            else:
                assert r[3] == "-" and r[8] == "member-b", r

    finally:
        a.close()
        b.close()
    wait_until(lambda: described().state.name == "EMPTY", timeout=30, what="Empty")
    classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                        "auto.offset.reset": "earliest", "enable.auto.commit": False,
                        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:
        classic.subscribe([topic])
        seen: dict[int, int] = {}

        def read_all() -> bool:
            m = classic.poll(0.2)
            if m is not None and not m.error():
                seen.setdefault(m.partition(), m.offset())
            return len(seen) == 4

        wait_until(read_all, timeout=45, what="the classic consumer reading every partition")
        resumed = {part: (4 if (topic, part) in a_parts else 0) for part in range(4)}
        assert seen == resumed, (seen, resumed)
        d = described()
        assert d.type == ConsumerGroupType.CLASSIC, d.type
    finally:
        classic.close()


def first_error(c: Consumer, others, errors: list, timeout: float = 30) -> KafkaError:
    """Polls `c` (and keeps `others` polling) until an error reaches the error callback or a
    poll, and returns it."""
    deadline = time.monotonic() + timeout
    while not errors:
        assert time.monotonic() < deadline, "no error surfaced"
        for o in others:
            o.poll(0.05)
        m = c.poll(0.05)
        if m is not None and m.error():
            errors.append(m.error())
    return errors[0]


@pytest.mark.broker_config({**CONSUMER_PROTOCOL_CONFIG, "group.consumer.max.size": 2})
def test_a_member_over_the_group_size_is_refused_and_the_others_keep_their_partitions(
        broker, unique_topic):
    """`group.consumer.max.size`: a third member gets GROUP_MAX_SIZE_REACHED (librdkafka makes
    it fatal) and no partition; the two members keep theirs and keep consuming."""
    ck_create_topic(broker, unique_topic, 4)
    group = f"g-{unique_topic}"
    a, b = consumer(broker, group), consumer(broker, group)
    errors: list[KafkaError] = []
    c = consumer(broker, group, **{"error_cb": errors.append})
    try:
        a.subscribe([unique_topic])
        b.subscribe([unique_topic])
        poll_until([a, b], lambda: len(assignment_of(a)) == 2 and len(assignment_of(b)) == 2,
                   30, "two members with two partitions each")
        c.subscribe([unique_topic])
        e = first_error(c, [a, b], errors)
        # librdkafka makes it fatal: the code is _FATAL, the broker's error in the text.
        assert e.code() == KafkaError._FATAL and "maximum size" in e.str(), e.str()
        assert not c.assignment()
        ck_produce_all(ck_producer(broker), unique_topic,
                       [(None, b"after", p) for p in range(4)])
        got: set[int] = set()

        def read(m):
            if m is not None and not m.error():
                got.add(m.partition())
        deadline = time.monotonic() + 30
        while got != set(range(4)):
            assert time.monotonic() < deadline, f"read from {got}"
            read(a.poll(0.05))
            read(b.poll(0.05))
        assert len(assignment_of(a)) == 2 and len(assignment_of(b)) == 2
    finally:
        for x in (a, b, c):
            x.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_an_invalid_regex_is_refused_and_the_group_keeps_serving(broker, unique_topic):
    """A subscription pattern the broker cannot compile is INVALID_REGULAR_EXPRESSION for that
    member; the group's other member keeps its partitions. (librdkafka checks patterns itself
    before it subscribes; a backreference passes its check, and neither Kafka's RE2/J nor the
    broker's engine has them.)"""
    ck_create_topic(broker, unique_topic, 2)
    group = f"g-{unique_topic}"
    good = consumer(broker, group)
    errors: list[KafkaError] = []
    bad = consumer(broker, group, **{"error_cb": errors.append})
    try:
        good.subscribe([unique_topic])
        poll_until([good], lambda: len(assignment_of(good)) == 2, 30, "the assignment")
        bad.subscribe(["^(a)\\1$"])
        e = first_error(bad, [good], errors)
        assert "regular expression" in e.str().lower(), e.str()
        assert not bad.assignment()
        poll_until([good], lambda: len(assignment_of(good)) == 2, 10, "the assignment kept")
    finally:
        good.close()
        bad.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_rolling_upgrade_from_classic_to_consumer_and_back(broker, unique_topic, member_procs):
    """KIP-848's online migration with librdkafka: a classic cooperative group of three is
    replaced member by member by consumer-protocol members while a producer streams numbered
    records (the group becomes a consumer group with classic members when the first one joins),
    then replaced back (it becomes a classic group again when the last consumer-protocol member
    leaves). No partition is ever owned by two members, every record is processed, none again
    after its offset was committed, and the group kind follows the members."""
    import threading

    from confluent_kafka import ConsumerGroupType

    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, PARTITIONS)
    produced = {p: 0 for p in range(PARTITIONS)}
    stop = threading.Event()

    def produce():
        p = ck_producer(broker, **{"linger.ms": 5})
        n = 0
        while not stop.is_set():
            part = n % PARTITIONS
            p.produce(topic, value=str(n).encode(), partition=part)
            produced[part] += 1
            n += 1
            if n % 60 == 0:
                p.poll(0)
                time.sleep(0.05)
        assert p.flush(30) == 0

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    admin = ck_admin(broker)

    def kind():
        return admin.describe_consumer_groups([group], request_timeout=10)[group].result().type

    classic = {"strategy": "cooperative-sticky", "delay_ms": 2, "batch": 10}
    modern = {"protocol": "consumer", "delay_ms": 2, "batch": 10}
    everyone = []

    def start(name, conf):
        m = member_procs(broker, "confluent", group, [topic], name, **conf)
        everyone.append(m)
        return m

    def settled(live):
        counts = [len(owned(m)) for m in live]
        return sorted(counts) == [2, 2, 2] and \
            set().union(*(owned(m) for m in live)) == set(range(PARTITIONS))

    try:
        live = [start(f"classic-{i}", classic) for i in range(3)]
        wait_until(lambda: settled(live), timeout=60, what="the classic group settled")
        assert kind() == ConsumerGroupType.CLASSIC
        for i in range(3):
            old = live.pop(0)
            old.stop()
            live.append(start(f"consumer-{i}", modern))
            wait_until(lambda: settled(live), timeout=60,
                       what=f"settled after consumer-{i} replaced {old.name}")
            wait_until(lambda: kind() == ConsumerGroupType.CONSUMER, timeout=15,
                       what="a consumer group")
        for i in range(3):
            old = live.pop(0)
            old.stop()
            live.append(start(f"classic-again-{i}", classic))
            wait_until(lambda: settled(live), timeout=60,
                       what=f"settled after classic-again-{i} replaced {old.name}")
        wait_until(lambda: kind() == ConsumerGroupType.CLASSIC, timeout=15,
                   what="a classic group again")
    finally:
        stop.set()
        producer.join(60)
    expected = dict(produced)

    def all_processed() -> bool:
        seen: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
        for m in everyone:
            for e in m.snapshot("msg"):
                seen[e["p"]].add(e["o"])
        return all(seen[p] >= set(range(expected[p])) for p in range(PARTITIONS))

    wait_until(all_processed, timeout=60, what="every record processed")
    for m in live:
        m.stop()
    check_single_owner(everyone)
    check_processing(everyone, expected)
    errors = [e for m in everyone for e in m.snapshot("error") if e.get("fatal")]
    assert not errors, errors


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_partition_growth_and_topic_deletion_change_the_assignment(broker, unique_topic):
    """The broker's assignment follows the metadata: partitions added to a subscribed topic
    are handed out, and a deleted topic's partitions are taken back, with no rejoin."""
    from confluent_kafka.admin import NewPartitions

    grow, gone = f"{unique_topic}-grow", f"{unique_topic}-gone"
    ck_create_topic(broker, grow, 2)
    ck_create_topic(broker, gone, 2)
    admin = ck_admin(broker)
    c = consumer(broker, f"g-{unique_topic}")
    try:
        c.subscribe([grow, gone])
        poll_until([c], lambda: assignment_of(c) == {(grow, 0), (grow, 1), (gone, 0), (gone, 1)},
                   30, "both topics assigned")
        admin.create_partitions([NewPartitions(grow, 4)])[grow].result(15)
        poll_until([c], lambda: {(grow, p) for p in range(4)} <= assignment_of(c), 30,
                   "the new partitions assigned")
        admin.delete_topics([gone])[gone].result(15)
        poll_until([c], lambda: assignment_of(c) == {(grow, p) for p in range(4)}, 30,
                   "the deleted topic's partitions taken back")
    finally:
        c.close()


@pytest.mark.broker_config(CONSUMER_PROTOCOL_CONFIG)
def test_a_group_config_sets_the_session_of_its_members(broker, unique_topic, member_procs):
    """Dynamic GROUP configs (KIP-848's `consumer.session.timeout.ms` and
    `consumer.heartbeat.interval.ms`, resource type 32) through the admin API and
    `kafka-configs --entity-type groups`: checked against the broker's bounds with Kafka's
    messages, described with their source, and acted on: a killed member of a group whose own
    session is 12 s keeps its partitions past the broker's 6 s, then loses them."""
    import subprocess

    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, ResourceType)
    from broker_proc import BIN

    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, 2)
    admin = ck_admin(broker)

    def alter(*pairs, op=AlterConfigOpType.SET):
        res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=op) for k, v in pairs])
        return admin.incremental_alter_configs([res])[res]

    def describe() -> dict:
        res = ConfigResource(ResourceType.GROUP, group)
        return admin.describe_configs([res])[res].result(timeout=30)

    # Defaults: the broker's values, from any group (it need not exist).
    d = describe()
    assert set(d) == {"consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"}, d
    assert d["consumer.session.timeout.ms"].value == "6000"
    assert d["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    # Bad values: Kafka's INVALID_CONFIG and messages; nothing written.
    for pairs, message in [
        ([("consumer.session.timeout.ms", "500")],
         "consumer.session.timeout.ms must be greater than or equal to "
         "group.consumer.min.session.timeout.ms"),
        ([("consumer.heartbeat.interval.ms", "7000")],
         "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"),
        ([("share.session.timeout.ms", "7000")], "Unknown group config name: share.session.timeout.ms"),
        ([("consumer.session.timeout.ms", "soon")], "Not a number of type INT"),
    ]:
        with pytest.raises(Exception) as e:
            alter(*pairs).result(timeout=30)
        err = e.value.args[0]
        assert err.code() == KafkaError.INVALID_CONFIG and message in err.str(), err
    assert describe()["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    alter(("consumer.session.timeout.ms", "12000")).result(timeout=30)
    d = describe()
    assert d["consumer.session.timeout.ms"].value == "12000"
    assert d["consumer.session.timeout.ms"].source == ConfigSource.GROUP_CONFIG.value
    r = subprocess.run([BIN, "kafka-configs", "--bootstrap-server", broker.bootstrap,
                        "--describe", "--entity-type", "groups", "--entity-name", group],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"Dynamic configs for group {group} are:" in r.stdout, r.stdout
    assert "consumer.session.timeout.ms=12000 sensitive=false " \
           "synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=12000}" in r.stdout, r.stdout
    assert "heartbeat" not in r.stdout, r.stdout

    conf = {"protocol": "consumer", "delay_ms": 0, "batch": 10}
    a = member_procs(broker, "confluent", group, [topic], "a", **conf)
    b = member_procs(broker, "confluent", group, [topic], "b", **conf)
    wait_until(lambda: len(owned(a)) == 1 and len(owned(b)) == 1, timeout=30,
               what="two members owning one partition each")
    killed_at = b.kill9()
    wait_until(lambda: owned(a) == {0, 1}, timeout=40, what="the killed member's partition moving")
    moved_at = max(e["t"] for e in a.snapshot() if e["ev"] == "assigned")
    # Fenced at the group's 12 s, not the broker's 6 s (nor much later).
    assert 11 <= moved_at - killed_at <= 20, moved_at - killed_at
    a.stop()
    check_single_owner([a, b])

    # Deleted through the tool: the broker's value again.
    r = subprocess.run([BIN, "kafka-configs", "--bootstrap-server", broker.bootstrap,
                        "--alter", "--group", group, "--delete-config",
                        "consumer.session.timeout.ms"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"Completed updating config for group {group}." in r.stdout, r.stdout
    d = describe()
    assert d["consumer.session.timeout.ms"].value == "6000"
    assert d["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
