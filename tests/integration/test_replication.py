"""Replication (issue 15): partitions with three replicas on three combined nodes, acks=all
producers with numbered values, and failover. Followers fetch from their leader, the high
watermark is the smallest log end over the ISR, acks=all is answered once it passes the batch,
fencing shrinks the ISR and elects the next in-sync replica, a restarted replica catches up and
rejoins the ISR (AlterPartition), and nothing acknowledged is lost, duplicated or moved.
"""
from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from broker_proc import is_mock
from helpers import wait_until
from test_cluster import FAST_SESSIONS, admin, make_cluster, tool  # noqa: F401

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")

# Short sessions so a killed leader is fenced (and replaced) within seconds; a short lag time so
# a follower that stops fetching leaves the ISR within seconds.
REPLICATION = {**FAST_SESSIONS, "replica.lag.time.max.ms": 4000}


def create_replicated(bootstrap: str, name: str, partitions: int = 1, rf: int = 3,
                      configs: dict | None = None) -> None:
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, partitions, rf, config=configs or {})],
                         operation_timeout=30, request_timeout=30)
    fs[name].result(30)


def partition_state(bootstrap: str, topic: str, p: int = 0) -> tuple[int, list[int], list[int]]:
    """(leader, replicas, isr) as Metadata reports them."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    pm = md.topics[topic].partitions[p]
    return pm.leader, list(pm.replicas), sorted(pm.isrs)


def produce_numbered(bootstrap: str, topic: str, start: int, count: int) -> dict[int, int]:
    """Produces values start..start+count-1 with an idempotent acks=all producer; returns the
    offset each acknowledged value got."""
    acked: dict[int, int] = {}
    errors: list = []

    def on_delivery(err, msg):
        if err is None:
            acked[int(msg.value())] = msg.offset()
        else:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 60000})
    for i in range(start, start + count):
        p.produce(topic, str(i).encode(), partition=0, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(90) == 0, "records left undelivered"
    assert not errors, errors[:5]
    return acked


def read_all(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(offset, value) of every record of partition 0, from the beginning to the end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "replication-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    out: list[tuple[int, int]] = []
    try:
        # A new leader answers OFFSET_NOT_AVAILABLE until its high watermark reaches the start
        # of its epoch (KIP-207); asked again, it answers.
        _, high = wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10),
                             timeout=30, what="the high watermark of the leader")
        c.assign([TopicPartition(topic, 0, 0)])
        while not out or out[-1][0] < high - 1:
            m = c.poll(10)
            assert m is not None, f"no record within 10 s after offset {out[-1:]}, high {high}"
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= high:
                        break
                    continue
                raise AssertionError(f"consumer error {m.error()}")
            out.append((m.offset(), int(m.value())))
    finally:
        c.close()
    return out


def check_log(records: list[tuple[int, int]], acked: dict[int, int]) -> None:
    """Every acknowledged value is there at the offset it was acknowledged with; no value twice;
    offsets increase."""
    offsets = [o for o, _ in records]
    assert offsets == sorted(set(offsets)), "offsets repeat or go back"
    by_value: dict[int, int] = {}
    for o, v in records:
        assert v not in by_value, f"value {v} twice (offsets {by_value[v]} and {o})"
        by_value[v] = o
    lost = [v for v in acked if v not in by_value]
    assert not lost, f"{len(lost)} acknowledged values lost, e.g. {lost[:5]}"
    moved = [(v, o, by_value[v]) for v, o in acked.items() if by_value[v] != o]
    assert not moved, f"acknowledged values at other offsets: {moved[:5]}"


@pytest.mark.timeout(300)
def test_acks_all_survives_the_leader_killed_twice(make_cluster):
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "repl", configs={"min.insync.replicas": "2"})
    leader, replicas, isr = partition_state(b, "repl")
    assert sorted(replicas) == [1, 2, 3] and isr == [1, 2, 3], (leader, replicas, isr)

    acked = produce_numbered(b, "repl", 0, 3000)
    assert len(acked) == 3000
    check_log(read_all(b, "repl"), acked)

    # kill -9 of the leader: fenced, the next in-sync replica leads, with everything acked.
    first = leader
    c.nodes[first].kill9()
    b = c.bootstrap()
    second = wait_until(lambda: (lambda s: s[0] if s[0] not in (-1, first) else None)(
        partition_state(b, "repl")), timeout=30, what="a new leader")
    wait_until(lambda: first not in partition_state(b, "repl")[2], timeout=30,
               what="the killed leader out of the ISR")
    check_log(read_all(b, "repl"), acked)
    # Two in sync of min.insync.replicas 2: acks=all still works.
    acked.update(produce_numbered(b, "repl", 3000, 1000))

    # The old leader comes back as a follower, catches up and rejoins the ISR.
    c.nodes[first].start()
    wait_until(lambda: partition_state(c.bootstrap(), "repl")[2] == [1, 2, 3], timeout=60,
               what="the restarted replica back in the ISR")
    acked.update(produce_numbered(c.bootstrap(), "repl", 4000, 1000))

    # Then the second leader dies too: the data moves on again, nothing lost.
    c.nodes[second].kill9()
    b = c.bootstrap()
    third = wait_until(lambda: (lambda s: s[0] if s[0] not in (-1, second) else None)(
        partition_state(b, "repl")), timeout=30, what="a third leader")
    assert third != second
    check_log(read_all(b, "repl"), acked)
    assert len(acked) == 5000


@pytest.mark.timeout(180)
def test_acks_all_below_min_insync_replicas_is_refused(make_cluster):
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "strict", configs={"min.insync.replicas": "3"})
    acked = produce_numbered(b, "strict", 0, 100)
    assert len(acked) == 100
    leader, _, _ = partition_state(b, "strict")
    follower = next(n for n in (1, 2, 3) if n != leader)
    c.nodes[follower].kill9()
    b = c.bootstrap()
    wait_until(lambda: partition_state(b, "strict")[2] == sorted({1, 2, 3} - {follower}),
               timeout=30, what="the killed follower out of the ISR")
    errors: list = []
    p = Producer({"bootstrap.servers": b, "acks": "all", "message.timeout.ms": 5000,
                  "retries": 0})
    p.produce("strict", b"refused", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors[0]
    # acks=1 does not ask for the ISR.
    p1 = Producer({"bootstrap.servers": b, "acks": 1})
    p1.produce("strict", b"accepted", partition=0)
    assert p1.flush(30) == 0


class _Lines(logging.Handler):
    """Collects librdkafka's log lines (delivered through the consumer's `logger`)."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.timeout(240)
def test_consumer_keeps_its_position_across_a_leader_change(make_cluster):
    """librdkafka validates its position with OffsetForLeaderEpoch (KIP-320) when the leader
    epoch changes; with `auto.offset.reset` = error, any reset would surface as an error."""
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "validated", configs={"min.insync.replicas": "2"})
    acked = produce_numbered(b, "validated", 0, 2000)
    leader, _, _ = partition_state(b, "validated")

    log = logging.getLogger("librdkafka-validate")
    log.setLevel(logging.DEBUG)
    lines = _Lines()
    log.addHandler(lines)
    consumer = Consumer({"bootstrap.servers": b, "group.id": "validating-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "error",
                         "topic.metadata.refresh.interval.ms": 500, "debug": "fetch",
                         "logger": log})
    seen: list[tuple[int, int]] = []

    def take(until: int, what: str, timeout_s: float = 60):
        deadline = time.monotonic() + timeout_s
        while len(seen) < until:
            assert time.monotonic() < deadline, f"{len(seen)} records after {timeout_s} s {what}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            assert not m.error(), f"consumer error {what}: {m.error()}"
            seen.append((m.offset(), int(m.value())))

    def validated() -> bool:
        m = consumer.poll(0.2)
        assert m is None or not m.error(), f"consumer error: {m.error()}"
        return any("validation succeeded" in line for line in lines.lines)

    try:
        consumer.assign([TopicPartition("validated", 0, 0)])
        take(1000, "reading the first half")
        c.nodes[leader].kill9()
        b = c.bootstrap()
        wait_until(lambda: partition_state(b, "validated")[0] not in (-1, leader), timeout=30,
                   what="a new leader")
        acked.update(produce_numbered(b, "validated", 2000, 500))
        take(2500, "reading across the leader change")
        wait_until(validated, timeout=30, what="librdkafka's OffsetForLeaderEpoch validation")
    finally:
        consumer.close()
        log.removeHandler(lines)
    offsets = [o for o, _ in seen]
    assert offsets == list(range(2500)), "the position jumped or went back"
    check_log(seen, acked)


def describe_line(bootstrap: str, topic: str) -> dict[str, list[int]]:
    """Partition 0's Isr, Elr and LastKnownElr as `kafka-topics --describe` prints them."""
    r = tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic)
    assert r.returncode == 0, r
    line = next(x for x in r.stdout.splitlines() if "Partition: 0" in x)
    fields = {k.strip(): v.strip() for k, v in
              (f.split(":", 1) for f in line.split("\t") if ":" in f)}
    return {k: [int(x) for x in fields[k].split(",") if x] for k in ("Isr", "Elr", "LastKnownElr")}


@pytest.mark.timeout(300)
def test_eligible_leader_replicas_keep_a_partition_whose_only_in_sync_replica_died(make_cluster):
    """KIP-966 (Kafka 4.1's default for new clusters). Both followers stall, so the leader
    shrinks the ISR to itself; the replica that leaves the ISR below min.insync.replicas still
    holds everything acknowledged (the high watermark stops below min ISR) and is an eligible
    leader replica. The leader is killed with -9: instead of waiting, leaderless, for the ISR's
    last member (which may have lost acknowledged records with its page cache), the controller
    elects the eligible replica, and every acknowledged record is there. The killed broker comes
    back without a clean-shutdown marker, so the controller treats it as unclean (its previous
    broker epoch does not match) and it rejoins only by catching up."""
    c = make_cluster(controllers=1, brokers=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "elr", configs={"min.insync.replicas": "2"})
    acked = produce_numbered(b, "elr", 0, 300)
    assert len(acked) == 300
    leader, replicas, _ = partition_state(b, "elr")
    followers = [n for n in replicas if n != leader]
    for f in followers:
        c.nodes[f].pause()
    # The stalled followers leave the ISR (by lag or by fencing, whichever comes first).
    wait_until(lambda: partition_state(c.nodes[leader].bootstrap, "elr")[2] == [leader],
               timeout=30, what="the ISR shrunk to the leader")
    # kafka-topics shows the ELR (DescribeTopicPartitions) and lists the partition as
    # under-replicated.
    described = describe_line(c.nodes[leader].bootstrap, "elr")
    elr = described["Elr"]
    assert elr and set(elr) <= set(followers), described
    assert described["Isr"] == [leader] and described["LastKnownElr"] == [], described
    r = tool("kafka-topics", "--bootstrap-server", c.nodes[leader].bootstrap, "--describe",
             "--under-replicated-partitions")
    assert r.returncode == 0 and "Topic: elr\tPartition: 0" in r.stdout, r
    c.nodes[leader].kill9()
    for f in followers:
        c.nodes[f].resume()
    live = ",".join(c.nodes[f].bootstrap for f in followers)
    new_leader = wait_until(
        lambda: (lambda s: s[0] if s[0] in followers else None)(partition_state(live, "elr")),
        timeout=60, what="an eligible leader replica elected")
    check_log(read_all(live, "elr"), acked)
    assert new_leader in elr, (new_leader, elr)

    c.nodes[leader].start()
    wait_until(lambda: f"Broker {leader} registered with previous broker epoch -1"
               in c.nodes[1].log_text(), timeout=30, what="the unclean shutdown noticed")
    b = c.bootstrap()
    wait_until(lambda: partition_state(b, "elr")[2] == sorted(replicas), timeout=60,
               what="every replica back in the ISR")
    more = produce_numbered(b, "elr", 300, 100)
    assert partition_state(b, "elr")[0] == new_leader
    check_log(read_all(b, "elr"), {**acked, **more})

    # A clean stop records the broker epoch in the clean-shutdown marker, which the next
    # registration sends back (no unclean-shutdown handling then).
    node = c.nodes[new_leader]
    node.stop()
    marker = json.loads((node.data_dir / ".kafka_cleanshutdown").read_text())
    assert marker["version"] == 0 and marker["brokerEpoch"] > 0, marker
    node.start()
    wait_until(lambda: partition_state(c.bootstrap(), "elr")[2] == sorted(replicas), timeout=60,
               what="the cleanly restarted broker back in the ISR")
    assert f"Broker {new_leader} registered with previous broker epoch" not in c.nodes[1].log_text()


@pytest.mark.timeout(300)
def test_kafka_leader_election_preferred_and_unclean(make_cluster):
    """ElectLeaders through the binary's kafka-leader-election: a PREFERRED election moves
    leadership back to the first replica once it is in sync again; an UNCLEAN one gives a
    leaderless partition (its only eligible replica down) an out-of-sync leader, which loses
    what only the dead replica had."""
    c = make_cluster(controllers=1, brokers=2, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "pref", rf=2)
    leader, replicas, _ = partition_state(b, "pref")
    preferred, other = replicas[0], replicas[1]
    assert leader == preferred
    acked = produce_numbered(b, "pref", 0, 100)
    c.nodes[preferred].kill9()
    wait_until(lambda: partition_state(c.nodes[other].bootstrap, "pref")[0] == other,
               timeout=30, what="the other replica leading")
    c.nodes[preferred].start()
    b = c.bootstrap()
    wait_until(lambda: partition_state(b, "pref")[2] == sorted(replicas), timeout=60,
               what="the preferred replica back in sync")
    assert partition_state(b, "pref")[0] == other

    def elect(kind: str, topic: str) -> subprocess.CompletedProcess:
        return tool("kafka-leader-election", "--bootstrap-server", c.bootstrap(),
                    "--election-type", kind, "--topic", topic, "--partition", "0")

    r = elect("PREFERRED", "pref")
    assert r.returncode == 0, r
    assert "Successfully completed leader election (PREFERRED) for partitions pref-0" in r.stdout
    assert partition_state(b, "pref")[0] == preferred
    r = elect("preferred", "pref")
    assert r.returncode == 0 and "Valid replica already elected for partitions pref-0" in r.stdout, r
    check_log(read_all(b, "pref"), acked)

    # UNCLEAN: the follower dies, the leader goes on alone (min ISR 1) and then dies too. The
    # follower comes back, but it is not eligible: the partition has no leader until an
    # unclean election, which loses the records only the dead leader had.
    create_replicated(b, "uncl", rf=2, configs={"min.insync.replicas": "1"})
    leader, replicas, _ = partition_state(b, "uncl")
    follower = next(n for n in replicas if n != leader)
    before = produce_numbered(b, "uncl", 0, 50)
    c.nodes[follower].kill9()
    wait_until(lambda: partition_state(c.nodes[leader].bootstrap, "uncl")[2] == [leader],
               timeout=30, what="the dead follower out of the ISR")
    produce_numbered(c.nodes[leader].bootstrap, "uncl", 50, 50)
    c.nodes[leader].kill9()
    c.nodes[follower].start()
    fb = c.nodes[follower].bootstrap
    wait_until(lambda: partition_state(fb, "uncl")[0] == -1, timeout=30,
               what="the partition without a leader")
    r = elect("PREFERRED", "uncl")
    assert r.returncode == 1 and "Error completing leader election (PREFERRED)" in r.stdout, r
    r = tool("kafka-leader-election", "--bootstrap-server", fb, "--election-type", "UNCLEAN",
             "--topic", "uncl", "--partition", "0")
    assert r.returncode == 0, r
    assert "Successfully completed leader election (UNCLEAN) for partitions uncl-0" in r.stdout
    assert partition_state(fb, "uncl")[0] == follower
    records = read_all(fb, "uncl")
    assert [v for _, v in records] == sorted(before), "the follower's log: the first 50 only"


@pytest.mark.timeout(240)
def test_auto_leader_rebalance_moves_leadership_back_to_the_preferred_replica(make_cluster):
    """auto.leader.rebalance.enable (Kafka's default): after a failover and the preferred
    replica's return to the ISR, the controller's periodic check gives it the leadership back."""
    c = make_cluster(combined=3, overrides={**REPLICATION,
                                            "leader.imbalance.check.interval.seconds": 1})
    b = c.bootstrap()
    create_replicated(b, "rebal", partitions=3)
    md = admin(b).list_topics("rebal", timeout=10).topics["rebal"].partitions
    preferred = {i: list(p.replicas)[0] for i, p in md.items()}
    assert all(p.leader == preferred[i] for i, p in md.items())
    victim = preferred[0]
    c.nodes[victim].kill9()
    alive = ",".join(n.bootstrap for i, n in c.nodes.items() if i != victim)
    wait_until(lambda: partition_state(alive, "rebal", 0)[0] not in (victim, -1), timeout=30,
               what="a failover")
    c.nodes[victim].start()

    def balanced() -> bool:
        parts = admin(c.bootstrap()).list_topics("rebal", timeout=10).topics["rebal"].partitions
        return all(p.leader == preferred[i] and len(p.isrs) == 3 for i, p in parts.items())

    wait_until(balanced, timeout=60, what="every partition led by its preferred replica again")
    controller_logs = "".join(n.log_text() for n in c.nodes.values())
    assert "back to their preferred replicas" in controller_logs
