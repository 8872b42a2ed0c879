"""Replication (issue 15): partitions with three replicas on three combined nodes, acks=all
producers with numbered values, and failover. Followers fetch from their leader, the high
watermark is the smallest log end over the ISR, acks=all is answered once it passes the batch,
fencing shrinks the ISR and elects the next in-sync replica, a restarted replica catches up and
rejoins the ISR (AlterPartition), and nothing acknowledged is lost, duplicated or moved.
"""
from __future__ import annotations

import json
import logging
import re
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka.protocol.admin import DeleteRecordsRequest, DeleteRecordsResponse

import txn_v2_wire
from broker_proc import is_mock
from helpers import wait_until
from test_cluster import FAST_SESSIONS, admin, make_cluster, tool  # noqa: F401
from txn_v2_wire import Wire

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")

txn_v2_wire.RESPONSES[DeleteRecordsRequest] = DeleteRecordsResponse
REQUEST_TIMED_OUT = 7
NOT_LEADER_OR_FOLLOWER = 6
UNKNOWN_LEADER_EPOCH = 75

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
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
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
def test_fetch_checks_the_leader_epoch_before_the_role(make_cluster):
    """As Kafka's brokers: a replica asked at a newer leader epoch than it has applied answers
    UNKNOWN_LEADER_EPOCH (the fetcher knows of an election this replica has not seen, and
    retries soon) instead of NOT_LEADER_OR_FOLLOWER; a follower asked at its own epoch, or
    without one, answers NOT_LEADER_OR_FOLLOWER."""
    from kafka.protocol.consumer.fetch import FetchRequest, FetchResponse
    txn_v2_wire.RESPONSES[FetchRequest] = FetchResponse
    c = make_cluster(combined=3)
    b = c.bootstrap()
    create_replicated(b, "epochs")
    leader, replicas, _ = partition_state(b, "epochs")
    follower = next(n for n in replicas if n != leader)

    def fetch_error(node: int, epoch: int) -> int:
        host, port = c.nodes[node].bootstrap.rsplit(":", 1)
        w = Wire(host, int(port))
        try:
            part = FetchRequest.FetchTopic.FetchPartition(
                partition=0, current_leader_epoch=epoch, fetch_offset=0, last_fetched_epoch=-1,
                log_start_offset=-1, partition_max_bytes=1 << 20)
            r = w.call(FetchRequest, 12, replica_id=-1, max_wait_ms=0, min_bytes=0,
                       max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                       topics=[FetchRequest.FetchTopic(topic="epochs", partitions=[part])],
                       forgotten_topics_data=[], rack_id="")
            return r.responses[0].partitions[0].error_code
        finally:
            w.close()

    # A new topic's leader epoch is 0 on every replica.
    assert fetch_error(leader, 0) == 0
    assert fetch_error(leader, 1) == UNKNOWN_LEADER_EPOCH
    assert fetch_error(follower, 1) == UNKNOWN_LEADER_EPOCH
    assert fetch_error(follower, 0) == NOT_LEADER_OR_FOLLOWER
    assert fetch_error(follower, -1) == NOT_LEADER_OR_FOLLOWER


def fetcher_lines(node, what: str) -> set[tuple[int, int]]:
    """(leader, fetcher id) of every "<what> the replica fetcher" line in a node's log."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", node.log_text())
    return {(int(m.group(1)), int(m.group(2))) for m in re.finditer(
        what + r" the replica fetcher leader=(\d+) fetcher_id=(\d+)", text)}


def test_num_replica_fetchers_spreads_partitions_and_follows_a_dynamic_change(make_cluster):
    """num.replica.fetchers 2: each follower runs two fetchers per leader (Kafka's fetcher id,
    abs(31 * topic.hashCode() + partition) % 2, so partitions p and p + 3 of one leader land on
    different ones) and everything replicates; set to 1 as a cluster-wide dynamic default, the
    second fetchers stop and their partitions move to the first."""
    c = make_cluster(combined=3, overrides={"num.replica.fetchers": 2})
    b = c.bootstrap()
    create_replicated(b, "spread", partitions=6)
    wait_until(lambda: all(len(partition_state(b, "spread", p)[2]) == 3 for p in range(6)),
               timeout=30, what="every partition with three in-sync replicas")
    for n in c.nodes.values():
        started = fetcher_lines(n, "Starting")
        assert {f for _, f in started} == {0, 1}, (n.node_id, started)
        assert {leader for leader, _ in started} == set(c.nodes) - {n.node_id}, started

    def produce_all(start: int) -> None:
        p = Producer({"bootstrap.servers": b, "acks": "all", "enable.idempotence": True})
        for i in range(start, start + 60):
            p.produce("spread", str(i).encode(), partition=i % 6)
        assert p.flush(30) == 0

    produce_all(0)
    r = tool("kafka-configs", "--bootstrap-server", b, "--alter", "--entity-type", "brokers",
             "--entity-default", "--add-config", "num.replica.fetchers=1")
    assert r.returncode == 0, r.stdout + r.stderr
    for n in c.nodes.values():
        wait_until(lambda: {f for _, f in fetcher_lines(n, "Stopping")} == {1}, timeout=30,
                   what=f"node {n.node_id}'s second fetchers stopped")
    produce_all(60)
    wait_until(lambda: all(len(partition_state(b, "spread", p)[2]) == 3 for p in range(6)),
               timeout=30, what="every partition still with three in-sync replicas")
    cons = Consumer({"bootstrap.servers": b, "group.id": "spread-reader",
                     "enable.auto.commit": False})
    cons.assign([TopicPartition("spread", p, OFFSET_BEGINNING) for p in range(6)])
    got: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < 120 and time.monotonic() < deadline:
            m = cons.poll(1)
            if m is not None and not m.error():
                got.append(int(m.value()))
    finally:
        cons.close()
    assert sorted(got) == list(range(120)), sorted(got)


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


def reassign(bootstrap: str, action: str, plan=None) -> subprocess.CompletedProcess:
    args = ["kafka-reassign-partitions", "--bootstrap-server", bootstrap, f"--{action}"]
    if plan is not None:
        args += ["--reassignment-json-file", str(plan)]
    return tool(*args)


def plan_file(path, topic: str, replicas: list[int]):
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": replicas}]}))
    return path


@pytest.mark.timeout(300)
def test_kafka_reassign_partitions_moves_the_data(make_cluster, tmp_path):
    """AlterPartitionReassignments through the binary's kafka-reassign-partitions: a partition
    moves to two other brokers (they fetch everything, join the ISR, the old replicas are
    dropped and delete their copies) with every acknowledged record; a move to a broker that
    cannot fetch stays in progress, shows in --list and --verify, blocks a second --execute,
    and --cancel returns the partition to its replicas."""
    c = make_cluster(controllers=1, brokers=4, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "move", rf=2)
    _, old, _ = partition_state(b, "move")
    new = [n.node_id for n in c.brokers if n.node_id not in old]
    acked = produce_numbered(b, "move", 0, 3000)

    r = reassign(b, "execute", plan_file(tmp_path / "move.json", "move", new))
    assert r.returncode == 0, r
    assert "Successfully started partition reassignment for move-0" in r.stdout
    rollback = {"version": 1, "partitions": [{"topic": "move", "partition": 0, "replicas": old,
                                              "log_dirs": ["any", "any"]}]}
    assert json.dumps(rollback, separators=(",", ":")) in r.stdout, r.stdout
    wait_until(lambda: "Reassignment of partition move-0 is completed." in
               reassign(b, "verify", tmp_path / "move.json").stdout,
               timeout=60, what="the move completed")
    leader, replicas, isr = partition_state(b, "move")
    assert (replicas, isr) == (new, sorted(new)) and leader in new
    for n in old:
        wait_until(lambda: not (c.nodes[n].data_dir / "move-0").exists(), timeout=30,
                   what=f"node {n} deleting its dropped replica")
    more = produce_numbered(b, "move", 3000, 100)
    check_log(read_all(b, "move"), {**acked, **more})

    # Paused, an old replica cannot fetch: a move back to it stays in progress. It is paused
    # just before --execute, so it is still registered and unfenced when the tool checks.
    stuck = old[0]
    target = [new[0], stuck]
    plan = plan_file(tmp_path / "stuck.json", "move", target)
    c.nodes[stuck].pause()
    # The tools must not bootstrap from the paused node: it accepts connections, never answers.
    b = c.bootstrap(exclude={stuck})
    try:
        r = reassign(b, "execute", plan)
        assert r.returncode == 0, r
        r = reassign(b, "list")
        assert (f"move-0: replicas: {new[0]},{stuck},{new[1]}. adding: {stuck}. "
                f"removing: {new[1]}.") in r.stdout, r.stdout
        assert "Reassignment of partition move-0 is still in progress." in \
            reassign(b, "verify", plan).stdout
        r = reassign(b, "execute", plan)
        assert r.returncode == 1 and "Cannot execute because there is an existing" in r.stdout, r
        r = reassign(b, "cancel", plan)
        assert r.returncode == 0 and \
            "Successfully cancelled partition reassignment for: move-0" in r.stdout, r
        assert "No partition reassignments found." in reassign(b, "list").stdout
        assert partition_state(b, "move")[1] == new
    finally:
        c.nodes[stuck].resume()
    check_log(read_all(b, "move"), {**acked, **more})


@pytest.mark.timeout(240)
def test_delete_records_waits_for_every_replica_and_survives_failover(make_cluster):
    """DeleteRecords on RF 3 answers once every live replica moved its log start (Kafka's
    DelayedDeleteRecords): the followers follow the leader's log start through their fetches,
    so after a kill -9 of the leader the new leader starts at the deleted offset too. With a
    follower stopped (paused, still registered) the answer times out instead."""
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "del", configs={"segment.bytes": "4096"})
    acked = produce_numbered(b, "del", 0, 400)
    a = admin(b)
    done = a.delete_records([TopicPartition("del", 0, 150)], request_timeout=30,
                            operation_timeout=30)
    result = list(done.values())[0].result(timeout=30)
    assert result.low_watermark == 150
    leader, replicas, _ = partition_state(b, "del")
    c.nodes[leader].kill9()
    others = ",".join(c.nodes[n].bootstrap for n in replicas if n != leader)
    wait_until(lambda: partition_state(others, "del")[0] not in (leader, -1), timeout=30,
               what="a new leader")
    new_leader = partition_state(others, "del")[0]

    def earliest() -> int:
        cons = Consumer({"bootstrap.servers": others, "group.id": "del-check"})
        try:
            return cons.get_watermark_offsets(TopicPartition("del", 0), timeout=10)[0]
        finally:
            cons.close()

    assert wait_until(lambda: earliest() == 150 or None, timeout=30,
                      what="the new leader's log start")
    records = read_all(others, "del")
    assert records[0] == (150, acked_value_at(acked, 150))
    check_log(records, {v: o for v, o in acked.items() if o >= 150})

    # A follower that does not fetch holds the low watermark: the request times out.
    c.nodes[leader].start()
    wait_until(lambda: len(partition_state(c.bootstrap(), "del")[2]) == 3, timeout=60,
               what="the ISR back to three")
    follower = next(n for n in replicas if n != new_leader)
    c.nodes[follower].pause()
    try:
        # Over the wire to the leader (librdkafka retries a timed-out DeleteRecords itself).
        host, port = c.nodes[new_leader].bootstrap.rsplit(":", 1)
        wire = Wire(host, int(port))
        try:
            topic = DeleteRecordsRequest.DeleteRecordsTopic(name="del", partitions=[
                DeleteRecordsRequest.DeleteRecordsTopic.DeleteRecordsPartition(
                    partition_index=0, offset=200)])
            resp = wire.call(DeleteRecordsRequest, 2, topics=[topic], timeout_ms=1000)
        finally:
            wire.close()
        p = resp.topics[0].partitions[0]
        assert p.error_code == REQUEST_TIMED_OUT, p
        assert p.low_watermark < 200, p
    finally:
        c.nodes[follower].resume()


def acked_value_at(acked: dict[int, int], offset: int) -> int:
    return next(v for v, o in acked.items() if o == offset)


def log_batches(partition_dir) -> list[tuple[int, int, bytes]]:
    """(base offset, partition leader epoch, bytes) of every batch in the partition's `.log`
    segments, in offset order (Kafka's format: base offset i64, length i32, leader epoch i32)."""
    out: list[tuple[int, int, bytes]] = []
    for seg in sorted(partition_dir.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 17 <= len(data):
            base, length, epoch = struct.unpack_from(">qii", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            out.append((base, epoch, data[pos:pos + 12 + length]))
            pos += 12 + length
    return out


def epoch_checkpoint(partition_dir) -> list[tuple[int, int]]:
    lines = (partition_dir / "leader-epoch-checkpoint").read_text().split("\n")
    count = int(lines[1])
    return [tuple(int(x) for x in l.split()) for l in lines[2:2 + count]]


def checkpointed_high_watermark(data_dir, topic: str) -> int:
    lines = (data_dir / "replication-offset-checkpoint").read_text().split("\n")
    for l in lines[2:]:
        parts = l.split()
        if len(parts) == 3 and parts[0] == topic and parts[1] == "0":
            return int(parts[2])
    raise AssertionError(f"no high watermark for {topic}-0 in {data_dir}")


@pytest.mark.timeout(420)
def test_the_leader_chased_five_times_and_the_active_controller_killed(make_cluster):
    """Issue 15's process test: RF 3, min ISR 2, an idempotent acks=all producer of numbered
    values, a consumer from the beginning and a ListOffsets watcher run throughout, while the
    partition's current leader is stopped five times in turn (kill -9 and SIGTERM alternately)
    and brought back, then the active controller is killed. Nothing acknowledged is lost or
    duplicated, no offset holds two records, the consumer's positions and ListOffsets `latest`
    never go back, the ISR is back to three after each restart, and after a clean stop every
    replica's batches and leader epochs agree up to the high watermark."""
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "chase", configs={"min.insync.replicas": "2", "segment.bytes": "65536"})
    stop = threading.Event()
    acked: dict[int, int] = {}
    failures: list[str] = []
    seen: list[tuple[int, int]] = []
    latest: list[int] = []
    all_nodes = ",".join(n.bootstrap for n in c.nodes.values())

    def on_delivery(err, msg):
        if err is None:
            acked[int(msg.value())] = msg.offset()
        else:
            failures.append(str(err))

    def produce():
        p = Producer({"bootstrap.servers": all_nodes, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 120000})
        i = 0
        while not stop.is_set():
            for _ in range(20):
                p.produce("chase", str(i).encode(), partition=0, on_delivery=on_delivery)
                i += 1
            p.poll(0.02)
        if p.flush(120) != 0:
            failures.append("records left undelivered")

    def consume():
        cons = Consumer({"bootstrap.servers": all_nodes, "group.id": "chase-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        cons.assign([TopicPartition("chase", 0, OFFSET_BEGINNING)])
        try:
            while not stop.is_set():
                m = cons.poll(0.2)
                if m is not None and not m.error():
                    seen.append((m.offset(), int(m.value())))
        finally:
            cons.close()

    def watch():
        cons = Consumer({"bootstrap.servers": all_nodes, "group.id": "chase-watch"})
        try:
            while not stop.is_set():
                try:
                    latest.append(cons.get_watermark_offsets(TopicPartition("chase", 0),
                                                             timeout=5)[1])
                except Exception:  # noqa: BLE001 - no leader for a moment: asked again
                    pass
                time.sleep(0.05)
        finally:
            cons.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (produce, consume, watch)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 500, timeout=60, what="records before the first stop")
        for round_ in range(5):
            leader = partition_state(all_nodes, "chase")[0]
            assert leader in c.nodes, leader
            if round_ % 2 == 0:
                c.nodes[leader].kill9()
            else:
                c.nodes[leader].stop()
            alive = c.bootstrap()
            wait_until(lambda: partition_state(alive, "chase")[0] not in (-1, leader),
                       timeout=30, what=f"a new leader after stopping {leader}")
            before = len(acked)
            wait_until(lambda: len(acked) >= before + 200, timeout=60,
                       what="acknowledgements from the new leader")
            c.nodes[leader].start()
            wait_until(lambda: len(partition_state(c.bootstrap(), "chase")[2]) == 3,
                       timeout=60, what=f"node {leader} back in the ISR")
        controller, epoch = c.wait_for_leader()
        c.nodes[controller].kill9()
        c.wait_for_leader(timeout=30, newer_than=epoch)
        before = len(acked)
        wait_until(lambda: len(acked) >= before + 200, timeout=60,
                   what="acknowledgements after the controller's kill")
        c.nodes[controller].start()
        wait_until(lambda: len(partition_state(c.bootstrap(), "chase")[2]) == 3, timeout=60,
                   what="the ISR back to three")
    finally:
        stop.set()
        for t in threads:
            t.join(150)
    assert not failures, failures[:5]
    records = read_all(c.bootstrap(), "chase")
    check_log(records, acked)
    by_offset = dict(records)
    assert [o for o, _ in seen] == sorted(o for o, _ in seen), "consumer position went back"
    assert all(by_offset.get(o) == v for o, v in seen), "the consumer read a record that changed"
    assert latest == sorted(latest), "ListOffsets latest went back"

    # After a clean stop, every replica holds the same batches and epochs below the high
    # watermark.
    c.stop_all()
    dirs = {i: n.data_dir for i, n in c.nodes.items()}
    hw = min(checkpointed_high_watermark(d, "chase") for d in dirs.values())
    # A follower's checkpointed high watermark may trail the leader's by its last fetch.
    assert hw > len(acked) // 2, (hw, len(acked))
    logs = {i: [x for x in log_batches(d / "chase-0") if x[0] < hw] for i, d in dirs.items()}
    first = next(iter(logs.values()))
    assert all(l == first for l in logs.values()), "replicas disagree below the high watermark"
    epochs_with_batches = {e for _, e, _ in first}
    cps = {i: [(e, o) for e, o in epoch_checkpoint(d / "chase-0")
               if o < hw and e in epochs_with_batches] for i, d in dirs.items()}
    first_cp = next(iter(cps.values()))
    assert len(first_cp) == len(epochs_with_batches) >= 6
    assert all(cp == first_cp for cp in cps.values()), cps


@pytest.mark.timeout(240)
def test_kafka_python_and_aiokafka_keep_consuming_across_a_leader_change(make_cluster):
    """kafka-python and aiokafka consumers halfway through a partition when its leader is
    killed: they find the new leader and read on, every record once, at its offset."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP
    from kafka import KafkaConsumer, TopicPartition as KTP

    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "switch", configs={"min.insync.replicas": "2"})
    acked = produce_numbered(b, "switch", 0, 2000)
    everyone = ",".join(n.bootstrap for n in c.nodes.values())

    kc = KafkaConsumer(bootstrap_servers=everyone, enable_auto_commit=False,
                       auto_offset_reset="earliest", request_timeout_ms=10000)
    kc.assign([KTP("switch", 0)])
    kc.seek_to_beginning()
    kgot: list[tuple[int, int]] = []

    def kread(n: int) -> None:
        deadline = time.monotonic() + 90
        while len(kgot) < n:
            assert time.monotonic() < deadline, f"kafka-python stuck at {len(kgot)}"
            for msgs in kc.poll(timeout_ms=500, max_records=500).values():
                kgot.extend((m.offset, int(m.value)) for m in msgs)

    loop = asyncio.new_event_loop()
    agot: list[tuple[int, int]] = []

    async def astart():
        ac = AIOKafkaConsumer(bootstrap_servers=everyone, enable_auto_commit=False,
                              auto_offset_reset="earliest")
        await ac.start()
        ac.assign([ATP("switch", 0)])
        await ac.seek_to_beginning()
        return ac

    async def aread(ac, n: int) -> None:
        deadline = time.monotonic() + 90
        while len(agot) < n:
            assert time.monotonic() < deadline, f"aiokafka stuck at {len(agot)}"
            for msgs in (await ac.getmany(timeout_ms=500, max_records=500)).values():
                agot.extend((m.offset, int(m.value)) for m in msgs)

    ac = loop.run_until_complete(astart())
    try:
        kread(1000)
        loop.run_until_complete(aread(ac, 1000))
        leader = partition_state(b, "switch")[0]
        c.nodes[leader].kill9()
        alive = c.bootstrap()
        wait_until(lambda: partition_state(alive, "switch")[0] not in (-1, leader), timeout=30,
                   what="a new leader")
        acked.update(produce_numbered(alive, "switch", 2000, 1000))
        kread(3000)
        loop.run_until_complete(aread(ac, 3000))
    finally:
        kc.close()
        loop.run_until_complete(ac.stop())
        loop.close()
    want = sorted((o, v) for v, o in acked.items())
    assert kgot[:3000] == want, "kafka-python read other records"
    assert agot[:3000] == want, "aiokafka read other records"
