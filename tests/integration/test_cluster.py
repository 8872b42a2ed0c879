"""rafka as a cluster (issue 13): a controller quorum of three voters, brokers that join it, and
what clients see, with kcat, confluent-kafka, kafka-python and aiokafka; then faults: kill -9
and SIGSTOP of the active controller, kill -9 and SIGTERM of a broker, a restart of every node,
and bad input (another cluster id, a duplicate node id, voter lists that disagree, no reachable
controller).

Topologies: three combined nodes (`process.roles=broker,controller`), three controllers plus two
brokers, and one broker against three controllers (`cluster.Cluster`).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker_proc import BIN, Broker, BrokerStartError, is_mock
from cluster import Cluster
from helpers import wait_until

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")

# Short broker sessions where a test waits for fencing; Kafka's defaults elsewhere.
FAST_SESSIONS = {"broker.session.timeout.ms": 3000, "broker.heartbeat.interval.ms": 500}


@pytest.fixture
def make_cluster(request):
    made: list[Cluster] = []

    def factory(**kw) -> Cluster:
        c = Cluster(**kw)
        made.append(c)
        request.node._rafka_brokers = [n for c in made for n in c.nodes.values()]
        return c.start()

    yield factory
    failed = any(getattr(request.node, f"rep_{w}", None) is not None
                 and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    keep = failed and bool(os.environ.get("RAFKA_KEEP_DATA"))
    problems = []
    for c in made:
        problems += c.panic_lines()
        try:
            c.assert_one_leader_per_epoch()
        except AssertionError as e:
            problems.append(str(e))
        if keep:
            print(f"kept the cluster's data and logs in {c.root}")
        c.cleanup(keep=keep)
    assert not problems, "\n".join(problems)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def metadata(bootstrap: str, timeout: float = 10):
    return admin(bootstrap).list_topics(timeout=timeout)


def broker_ids(bootstrap: str) -> list[int]:
    return sorted(metadata(bootstrap).brokers)


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float = 30) -> None:
    a = admin(bootstrap)  # kept alive until the result is in
    fs = a.create_topics([NewTopic(name, partitions, 1)],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout)


def topic_id(bootstrap: str, name: str):
    from confluent_kafka import TopicCollection
    a = admin(bootstrap)
    return str(a.describe_topics(TopicCollection([name]))[name].result(10).topic_id)


def kcat_metadata(bootstrap: str) -> dict:
    out = subprocess.run(["kcat", "-b", bootstrap, "-L", "-J", "-m", "10"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)


def tool(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def produce_each_partition(bootstrap: str, topic: str, partitions: int, per: int,
                           **conf) -> dict[int, list[bytes]]:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    sent: dict[int, list[bytes]] = {i: [] for i in range(partitions)}
    errors = []
    for part in range(partitions):
        for j in range(per):
            v = f"{topic}-{part}-{j}".encode()
            p.produce(topic, v, partition=part,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
            sent[part].append(v)
    assert p.flush(60) == 0
    assert not errors, errors
    return sent


def kafka_python_read(bootstrap: str, topic: str, partitions: int, expect: int) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=15000, auto_offset_reset="earliest")
    c.assign([KTP(topic, i) for i in range(partitions)])
    got = []
    for m in c:
        got.append(m.value)
        if len(got) >= expect:
            break
    c.close()
    return got


def aiokafka_read(bootstrap: str, topic: str, partitions: int, expect: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([ATP(topic, i) for i in range(partitions)])
            got = []
            deadline = time.monotonic() + 30
            while len(got) < expect and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=1000)
                for msgs in batch.values():
                    got += [m.value for m in msgs]
            return got
        finally:
            await c.stop()

    return asyncio.run(run())


# ---- formation and what clients see -------------------------------------------------------

@pytest.mark.timeout(240)
def test_three_combined_nodes_form_one_cluster(make_cluster):
    c = make_cluster(combined=3)
    ids = set()
    for n in c.brokers:
        md = metadata(n.bootstrap)
        assert sorted(md.brokers) == [1, 2, 3], f"node {n.node_id} lists {sorted(md.brokers)}"
        ids.add(md.cluster_id)
        k = kcat_metadata(n.bootstrap)
        assert sorted(b["id"] for b in k["brokers"]) == [1, 2, 3]
    assert ids == {c.cluster_id}, ids
    # Admin writes through a node that is not the active controller.
    leader, _ = c.wait_for_leader()
    other = next(n for n in c.brokers if n.node_id != leader)
    create_topic(other.bootstrap, "spread", 9)
    # Read-your-writes: the node that took the request knows the topic at once.
    md = metadata(other.bootstrap)
    assert len(md.topics["spread"].partitions) == 9
    leaders = {p.leader for p in md.topics["spread"].partitions.values()}
    assert leaders == {1, 2, 3}, f"partition leaders {leaders}"
    # Every node sees the same assignment.
    for n in c.brokers:
        parts = metadata(n.bootstrap).topics["spread"].partitions
        assert {i: p.leader for i, p in parts.items()} == \
            {i: p.leader for i, p in md.topics["spread"].partitions.items()}
    # Produce to and consume every partition, each client through one node.
    sent = produce_each_partition(c.brokers[0].bootstrap, "spread", 9, 20)
    every = sorted(v for vs in sent.values() for v in vs)
    assert sorted(kafka_python_read(c.brokers[1].bootstrap, "spread", 9, len(every))) == every
    assert sorted(aiokafka_read(c.brokers[2].bootstrap, "spread", 9, len(every))) == every
    out = subprocess.run(["kcat", "-b", c.brokers[2].bootstrap, "-C", "-t", "spread", "-e",
                          "-o", "beginning", "-q", "-f", "%p %s\n"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    by_part: dict[int, list[str]] = {}
    for line in out.splitlines():
        part, v = line.split(" ", 1)
        by_part.setdefault(int(part), []).append(v)
    assert {p: [v.encode() for v in vs] for p, vs in by_part.items()} == sent
    # `kafka-topics --describe` shows the leaders over the three brokers.
    r = tool("kafka-topics", "--bootstrap-server", c.bootstrap(), "--describe", "--topic", "spread")
    assert r.returncode == 0, r.stderr
    described = {int(m.group(1)): int(m.group(2))
                 for m in re.finditer(r"Partition: (\d+)\tLeader: (\d+)", r.stdout)}
    assert set(described.values()) == {1, 2, 3} and len(described) == 9


@pytest.mark.timeout(240)
def test_controllers_and_brokers_groups_and_idempotence(make_cluster):
    c = make_cluster(controllers=3, brokers=2)
    # Clients see the brokers only, and a live broker as controller (KRaft semantics).
    for n in c.brokers:
        md = metadata(n.bootstrap)
        assert sorted(md.brokers) == [4, 5]
        assert md.controller_id in (4, 5)
    create_topic(c.brokers[1].bootstrap, "work", 4)
    md = metadata(c.brokers[0].bootstrap)
    assert {p.leader for p in md.topics["work"].partitions.values()} == {4, 5}
    # An idempotent producer across both brokers: everything once, in order per partition.
    sent = produce_each_partition(c.bootstrap(), "work", 4, 50, **{"enable.idempotence": True})
    # A consumer group with a member on each broker's bootstrap; the coordinator is wherever
    # the group's __consumer_offsets partition lives.
    from helpers import ck_group_consumer, ck_poll_until
    a = ck_group_consumer(c.brokers[0], "g1")
    b = ck_group_consumer(c.brokers[1], "g1")
    a.subscribe(["work"])
    b.subscribe(["work"])
    got: dict[int, list[bytes]] = {}

    def on_message(_consumer, m):
        if m.error() is None:
            got.setdefault(m.partition(), []).append(m.value())

    ck_poll_until([a, b], lambda: sum(len(v) for v in got.values()) >= 200, timeout=60,
                  what="the group to read all 200 records", on_message=on_message)
    assert got == sent
    assert a.assignment() and b.assignment(), "both members got partitions"
    a.commit(asynchronous=False)
    b.commit(asynchronous=False)
    committed = a.committed([TopicPartition("work", i) for i in range(4)], timeout=10)
    assert all(tp.offset == 50 for tp in committed if tp.partition in
               {x.partition for x in a.assignment()})
    a.close()
    b.close()
    # KIP-951: a produce sent to the wrong broker is told who leads, and where.
    on5 = next(i for i, p in metadata(c.brokers[0].bootstrap).topics["work"].partitions.items()
               if p.leader == 5)
    from kafka.protocol.producer import ProduceRequest
    from kafka.record.default_records import DefaultRecordBatchBuilder
    from txn_v2_wire import Wire
    batch = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                      batch_size=1 << 16)
    batch.append(0, timestamp=int(time.time() * 1000), key=b"k", value=b"v", headers=[])
    Topic = ProduceRequest.TopicProduceData
    wire = Wire(c.nodes[4].host, c.nodes[4].port)
    try:
        r = wire.call(ProduceRequest, 12, transactional_id=None, acks=1, timeout_ms=10_000,
                      topic_data=[Topic(name="work", partition_data=[
                          Topic.PartitionProduceData(index=on5, records=bytes(batch.build()))])])
    finally:
        wire.close()
    pr = r.responses[0].partition_responses[0]
    assert pr.error_code == 6, pr  # NOT_LEADER_OR_FOLLOWER
    assert pr.current_leader.leader_id == 5 and pr.current_leader.leader_epoch >= 0
    assert [(n.node_id, n.host, n.port) for n in r.node_endpoints] == \
        [(5, c.nodes[5].host, c.nodes[5].port)]


@pytest.mark.timeout(240)
def test_one_broker_against_three_voters(make_cluster):
    c = make_cluster(controllers=3, brokers=1)
    b = c.brokers[0]
    assert broker_ids(b.bootstrap) == [4]
    create_topic(b.bootstrap, "solo", 3)
    sent = produce_each_partition(b.bootstrap, "solo", 3, 10)
    every = sorted(v for vs in sent.values() for v in vs)
    assert sorted(kafka_python_read(b.bootstrap, "solo", 3, len(every))) == every
    # The quorum as the tools see it: three voters, the broker as an observer.
    r = tool("kafka-metadata-quorum", "--bootstrap-server", b.bootstrap, "describe", "--status")
    assert r.returncode == 0, r.stderr
    status = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert status["ClusterId"].strip() == c.cluster_id
    leader, epoch = c.wait_for_leader()
    assert int(status["LeaderId"]) == leader and int(status["LeaderEpoch"]) == epoch
    assert '"id": 4' in status["CurrentObservers"]
    for v in (1, 2, 3):
        assert f'"id": {v}' in status["CurrentVoters"]
    r = tool("kafka-metadata-quorum", "--bootstrap-controller", c.controller_bootstrap(),
             "describe", "--replication")
    assert r.returncode == 0, r.stderr
    rows = [l.split("\t") for l in r.stdout.splitlines()[1:]]
    statuses = sorted((int(row[0]), row[-2].strip()) for row in rows)
    assert statuses == sorted([(leader, "Leader")] + [(i, "Follower") for i in (1, 2, 3)
                                                      if i != leader] + [(4, "Observer")])


# ---- faults -------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_kill9_active_controller_during_admin_writes(make_cluster):
    c = make_cluster(controllers=3, brokers=2)
    leader, epoch = c.wait_for_leader()
    acked: list[str] = []
    stop = threading.Event()
    failures: list[str] = []

    def writer():
        i = 0
        while not stop.is_set():
            name = f"t{i}"
            try:
                create_topic(c.brokers[i % 2].bootstrap, name, 1, timeout=20)
                acked.append(name)
            except Exception as e:  # noqa: BLE001 - a write may fail around the kill
                failures.append(f"{name}: {e}")
            i += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_until(lambda: len(acked) >= 5, 60, what="writes before the kill")
    before = len(acked)
    killed_at = time.monotonic()
    c.nodes[leader].kill9()
    new_leader, new_epoch = c.wait_for_leader(timeout=15, newer_than=epoch)
    assert new_leader != leader
    wait_until(lambda: len(acked) >= before + 10, 60, what="writes after the kill")
    recovered = time.monotonic() - killed_at
    stop.set()
    t.join(60)
    # A new leader within a few election timeouts (fetch timeout 2 s).
    assert recovered < 20, f"writes resumed {recovered:.1f}s after the kill"
    # Every acknowledged write is on both brokers, and no broker was fenced.
    for b in c.brokers:
        md = metadata(b.bootstrap)
        missing = [n for n in acked if n not in md.topics]
        assert not missing, f"broker {b.node_id} lacks acknowledged topics {missing}"
        assert sorted(md.brokers) == [4, 5]
    for n in c.nodes.values():
        assert "Fencing broker" not in n.log_text()
    # The killed controller comes back as a follower and catches up.
    c.nodes[leader].start()
    assert c.leader()[0] != leader or c.leader()[1] > new_epoch


@pytest.mark.timeout(240)
def test_paused_leader_steps_down(make_cluster):
    c = make_cluster(controllers=3, brokers=2)
    leader, epoch = c.wait_for_leader()
    node = c.nodes[leader]
    node.pause()
    try:
        new_leader, new_epoch = c.wait_for_leader(timeout=20, newer_than=epoch, not_on={leader})
        # Known latency (to be fixed): a write forwarded while the old leader is paused has
        # taken up to ~30 s in CI (usually under 5 s), so the limit here is generous.
        create_topic(c.brokers[0].bootstrap, "while-paused", 2, timeout=90)
    finally:
        node.resume()
    # The old leader learns of the newer epoch and follows: writes keep working, and it never
    # leads an epoch someone else led.
    create_topic(c.brokers[1].bootstrap, "after-resume", 2)
    c.assert_one_leader_per_epoch()
    assert max(node.leader_epochs()) == epoch or c.leader()[0] == leader
    for b in c.brokers:
        md = metadata(b.bootstrap)
        assert "while-paused" in md.topics and "after-resume" in md.topics
        assert sorted(md.brokers) == [4, 5], "no broker was fenced"


@pytest.mark.timeout(240)
def test_kill9_broker_is_fenced_then_returns_with_its_data(make_cluster):
    c = make_cluster(controllers=3, brokers=2, overrides=FAST_SESSIONS)
    b4, b5 = c.nodes[4], c.nodes[5]
    create_topic(b4.bootstrap, "data", 4)
    sent = produce_each_partition(b4.bootstrap, "data", 4, 25)
    on5 = sorted(i for i, p in metadata(b4.bootstrap).topics["data"].partitions.items()
                 if p.leader == 5)
    assert on5, "some partition lives on broker 5"
    b5.kill9()
    wait_until(lambda: broker_ids(b4.bootstrap) == [4], 30, what="broker 5 to be fenced")
    parts = metadata(b4.bootstrap).topics["data"].partitions
    for i in on5:
        assert parts[i].leader == -1 and parts[i].error is not None, parts[i]
    b5.start()
    wait_until(lambda: broker_ids(b4.bootstrap) == [4, 5], 30, what="broker 5 to return")
    wait_until(lambda: all(p.leader == 5 for i, p in
                           metadata(b4.bootstrap).topics["data"].partitions.items() if i in on5),
               30, what="broker 5 to lead its partitions again")
    got = kafka_python_read(c.bootstrap(), "data", 4, 100)
    assert sorted(got) == sorted(v for vs in sent.values() for v in vs)


@pytest.mark.timeout(240)
def test_sigterm_broker_leaves_at_once(make_cluster):
    # A long session: only a controlled shutdown can fence the broker quickly.
    c = make_cluster(controllers=3, brokers=2, overrides={"broker.session.timeout.ms": 60000})
    b4, b5 = c.nodes[4], c.nodes[5]
    create_topic(b4.bootstrap, "moving", 4)
    started = time.monotonic()
    b5.stop(timeout=15)
    wait_until(lambda: broker_ids(b4.bootstrap) == [4], 15, what="broker 5 to leave")
    assert time.monotonic() - started < 15
    parts = metadata(b4.bootstrap).topics["moving"].partitions
    assert {p.leader for p in parts.values()} <= {4, -1}
    assert "The controller has asked us to exit controlled shutdown." in b5.log_text()


@pytest.mark.timeout(300)
def test_every_node_restarted_keeps_the_image(make_cluster):
    c = make_cluster(combined=3)
    create_topic(c.bootstrap(), "keep-a", 3)
    create_topic(c.bootstrap(), "keep-b", 1)
    before = metadata(c.bootstrap()).topics
    ids = {t: topic_id(c.bootstrap(), t) for t in ("keep-a", "keep-b")}
    sent = produce_each_partition(c.bootstrap(), "keep-a", 3, 10)
    # Killed, so the first controller elected gives the old incarnations a whole session and
    # refuses the new ones until it expires (DUPLICATE_BROKER_REGISTRATION), as Kafka does: the
    # nodes take a session timeout (9 s) to come back.
    c.restart_all(kill=True)
    after = metadata(c.bootstrap()).topics
    assert set(before) <= set(after)
    for t in ("keep-a", "keep-b"):
        assert len(after[t].partitions) == len(before[t].partitions)
        assert topic_id(c.bootstrap(), t) == ids[t]
    assert broker_ids(c.bootstrap()) == [1, 2, 3]
    got = kafka_python_read(c.bootstrap(), "keep-a", 3, 30)
    assert sorted(got) == sorted(v for vs in sent.values() for v in vs)


# ---- bad input ----------------------------------------------------------------------------

def extra_broker(c: Cluster, node_id: int, overrides: dict, cluster_id: str | None = None) -> Broker:
    """A broker-only node pointed at `c`'s controllers, not part of `c`."""
    b = Broker({
        "process.roles": "broker",
        "controller.quorum.voters": c.voters_text(),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        **overrides,
    }, node_id=node_id, name=f"rafka-extra{node_id}", tmp_root=str(c.root))
    b.extra_env["CLUSTER_ID"] = cluster_id or c.cluster_id
    return b


def run_to_exit(b: Broker, timeout: float = 60) -> int:
    b.launch()
    assert b.proc is not None
    rc = b.proc.wait(timeout)
    b._reap()
    return rc


@pytest.mark.timeout(240)
def test_bad_input_is_refused_and_nothing_committed_is_lost(make_cluster):
    c = make_cluster(controllers=3, brokers=1)
    create_topic(c.brokers[0].bootstrap, "precious", 2)
    sent = produce_each_partition(c.brokers[0].bootstrap, "precious", 2, 10)
    short = {"initial.broker.registration.timeout.ms": 3000}

    # Another cluster id: the controllers refuse it.
    other = extra_broker(c, 7, short, cluster_id="AAAAAAAAAAAAAAAAAAAAAA")
    assert run_to_exit(other) != 0
    assert "INCONSISTENT_CLUSTER_ID" in other.log_text() or \
        "clusterId in the request does not match" in other.log_text(), other.log_tail()

    # A duplicate node id while broker 4's session lives: DUPLICATE_BROKER_REGISTRATION.
    dup = extra_broker(c, 4, short)
    assert run_to_exit(dup) != 0
    assert "DUPLICATE_BROKER_REGISTRATION" in dup.log_text(), dup.log_tail()
    assert broker_ids(c.brokers[0].bootstrap) == [4]

    # A controller whose voter list disagrees with the log it was started on.
    ctrl = c.nodes[3]
    ctrl.stop()
    ctrl.extra["controller.quorum.voters"] = c.voters_text() + ",9@127.0.0.1:1"
    with pytest.raises(BrokerStartError) as e:
        ctrl.start(timeout=30)
    assert "controller.quorum.voters names voters [1, 2, 3, 9]" in str(e.value)
    del ctrl.extra["controller.quorum.voters"]
    ctrl.start()

    # No controller reachable at start: a clear refusal after the registration timeout.
    lonely = Broker({
        "process.roles": "broker",
        "controller.quorum.voters": "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        **short,
    }, node_id=8, name="rafka-lonely", tmp_root=str(c.root))
    assert run_to_exit(lonely) != 0
    assert "could not register with the controller quorum within initial.broker.registration.timeout.ms" \
        in lonely.log_text(), lonely.log_tail()
    for b in (other, dup, lonely):
        b.cleanup()

    # Nothing committed was lost.
    got = kafka_python_read(c.brokers[0].bootstrap, "precious", 2, 20)
    assert sorted(got) == sorted(v for vs in sent.values() for v in vs)


def test_config_rules_refuse_to_start(tmp_path):
    """Kafka's start-up rules: one clear line and a non-zero exit."""
    cases = {
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=2@127.0.0.1:9093\n"
        "listeners=CONTROLLER://127.0.0.1:9093\ncontroller.listener.names=CONTROLLER\n":
            "must be included in the set of voters",
        "process.roles=broker\nnode.id=1\nlisteners=PLAINTEXT://127.0.0.1:9092\n"
        "controller.listener.names=CONTROLLER\n":
            "controller.quorum.bootstrap.servers must contain the set of bootstrap controllers",
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\n"
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"
        "controller.listener.names=CONTROLLER\n":
            "must only contain KRaft controller listeners",
    }
    for text, message in cases.items():
        props = tmp_path / "server.properties"
        props.write_text(text + f"log.dirs={tmp_path / 'data'}\n")
        r = subprocess.run([BIN, str(props)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        lines = [l for l in r.stderr.splitlines() if l.startswith("rafka: ")]
        assert len(lines) == 1 and message in lines[0], r.stderr
