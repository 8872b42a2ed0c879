"""Every feature across brokers (issue 14): a consumer group whose members bootstrap from two
brokers while its coordinator is a third; a transaction writing to partitions on all three
brokers with `send_offsets_to_transaction` to a group coordinated by another broker than the
transaction (so markers travel as WriteTxnMarkers and produce verification as AddPartitionsToTxn
between brokers); kill -9 of a data partition's broker mid-transaction; InitProducerId on every
broker at once. Three combined nodes on loopback (`cluster.Cluster`).
"""
from __future__ import annotations

import threading

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from broker_proc import is_mock
from helpers import wait_until
from test_cluster import (FAST_SESSIONS, admin, aiokafka_read, create_topic,  # noqa: F401
                          kafka_python_read, make_cluster, metadata, tool)
from test_groups_offsets import offsets_partition_for
from txn_v2_wire import Wire
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.producer.transaction import InitProducerIdRequest

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")

OFFSETS_TOPIC = "__consumer_offsets"
TXN_TOPIC = "__transaction_state"


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return {p: pm.leader for p, pm in md.topics[topic].partitions.items()}


def key_led_by(bootstrap: str, internal_topic: str, prefix: str, node: int) -> str:
    """A group or transactional id whose internal-topic partition `node` leads (Kafka hashes
    both with `abs(hashCode) % partitions`)."""
    led = leaders(bootstrap, internal_topic)
    for i in range(10_000):
        key = f"{prefix}-{i}"
        if led[offsets_partition_for(key, len(led))] == node:
            return key
    raise AssertionError(f"no {prefix} id led by node {node}: {led}")


def spread_topic(bootstrap: str, name: str, partitions: int, nodes: set[int]) -> dict[int, int]:
    create_topic(bootstrap, name, partitions)
    wait_until(lambda: set(leaders(bootstrap, name).values()) == nodes, timeout=30,
               what=f"{name} led by every broker")
    return leaders(bootstrap, name)


def watermarks(bootstrap: str, topic: str, partitions: int, committed: bool) -> dict[int, int]:
    """High watermark, or with `committed` the last stable offset (ListOffsets at
    read_committed), of every partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks",
                  "isolation.level": "read_committed" if committed else "read_uncommitted"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


def ensure_internal_topic(bootstrap: str, which: str) -> None:
    """Makes the brokers create `__consumer_offsets` / `__transaction_state` (on first use)."""
    if which == OFFSETS_TOPIC:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})

        def fetched() -> bool:
            # A coordinator that has not loaded its new partition yet says NOT_COORDINATOR.
            try:
                c.committed([TopicPartition("probe", 0)], timeout=10)
                return True
            except KafkaException:
                return False
        wait_until(fetched, timeout=30, what="an offset fetch from the probe group")
        c.close()
    else:
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "probe"})
        p.init_transactions(30)
    wait_until(lambda: which in admin(bootstrap).list_topics(timeout=10).topics
               and all(l >= 0 for l in leaders(bootstrap, which).values()),
               timeout=30, what=f"{which} led")


# ---- groups ---------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_group_members_on_two_brokers_coordinated_by_a_third(make_cluster):
    c = make_cluster(combined=3)
    n1, n2, n3 = (c.nodes[i].bootstrap for i in (1, 2, 3))
    spread_topic(n1, "shared", 6, {1, 2, 3})
    sent = {p: [f"a-{p}-{j}".encode() for j in range(10)] for p in range(6)}
    prod = Producer({"bootstrap.servers": n2, "linger.ms": 5})
    for p, vs in sent.items():
        for v in vs:
            prod.produce("shared", v, partition=p)
    assert prod.flush(30) == 0
    ensure_internal_topic(n1, OFFSETS_TOPIC)
    group = key_led_by(n1, OFFSETS_TOPIC, "grp", 3)

    def member(bootstrap: str) -> Consumer:
        m = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
        m.subscribe(["shared"])
        return m

    members = [member(n1), member(n2)]
    got: list[bytes] = []

    def settled() -> bool:
        for m in members:
            msg = m.poll(0.1)
            if msg is not None and not msg.error():
                got.append(msg.value())
        a = [{tp.partition for tp in m.assignment()} for m in members]
        return all(a) and not (a[0] & a[1]) and a[0] | a[1] == set(range(6)) \
            and len(got) >= 60
    wait_until(settled, timeout=60, what="both members assigned and every record read")
    assert sorted(got) == sorted(v for vs in sent.values() for v in vs)
    for m in members:
        m.commit(asynchronous=False)
    # FindCoordinator from either member's broker names node 3.
    for b in (n1, n2):
        a = admin(b)  # kept alive until the result is in
        d = a.describe_consumer_groups([group])[group].result(10)
        assert d.coordinator.id == 3, d
    for m in members:
        m.close()

    late = {p: [f"b-{p}-{j}".encode() for j in range(5)] for p in range(6)}
    for p, vs in late.items():
        for v in vs:
            prod.produce("shared", v, partition=p)
    assert prod.flush(30) == 0

    # kafka-consumer-groups (through a broker that is not the coordinator) shows every
    # partition's lag.
    r = tool("kafka-consumer-groups", "--bootstrap-server", n1, "--describe", "--group", group)
    assert r.returncode == 0, r
    rows = sorted(l.split() for l in r.stdout.splitlines()
                  if l.strip() and not l.startswith("GROUP"))
    assert rows == [[group, "shared", str(p), "10", "15", "5", "-", "-", "-"] for p in range(6)], \
        r.stdout

    # A restarted member starts at the committed offsets: only the late records.
    again = member(n2)
    rest: list[bytes] = []

    def read_rest() -> bool:
        msg = again.poll(0.2)
        if msg is not None and not msg.error():
            rest.append(msg.value())
        return len(rest) >= 30
    wait_until(read_rest, timeout=60, what="the late records")
    assert sorted(rest) == sorted(v for vs in late.values() for v in vs)
    again.close()


# ---- transactions ---------------------------------------------------------------------------

def txn_producer(bootstrap: str, txn_id: str, **conf) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                  **conf})
    p.init_transactions(30)
    return p


def produce_round(p: Producer, topic: str, partitions: int, tag: str) -> list[bytes]:
    values = [f"{tag}-{i}".encode() for i in range(partitions)]
    for i, v in enumerate(values):
        p.produce(topic, v, partition=i)
    assert p.flush(30) == 0
    return values


@pytest.mark.timeout(300)
def test_transaction_over_three_brokers_with_offsets(make_cluster):
    c = make_cluster(combined=3)
    n1, n2, n3 = (c.nodes[i].bootstrap for i in (1, 2, 3))
    spread_topic(n1, "txn-data", 6, {1, 2, 3})
    create_topic(n1, "txn-src", 1)
    src = Producer({"bootstrap.servers": n1})
    for i in range(5):
        src.produce("txn-src", f"in-{i}".encode(), partition=0)
    assert src.flush(30) == 0
    ensure_internal_topic(n1, TXN_TOPIC)
    ensure_internal_topic(n1, OFFSETS_TOPIC)
    txn_id = key_led_by(n1, TXN_TOPIC, "txn", 1)
    group = key_led_by(n1, OFFSETS_TOPIC, "txg", 2)

    consumer = Consumer({"bootstrap.servers": n3, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.assign([TopicPartition("txn-src", 0)])
    consumed = []
    wait_until(lambda: (m := consumer.poll(0.2)) is not None and not m.error()
               and consumed.append(m.value()) is None and len(consumed) >= 5,
               timeout=30, what="source records")

    p = txn_producer(n3, txn_id)
    committed: list[bytes] = []

    # 1: commit, with the consumer's position.
    p.begin_transaction()
    values = produce_round(p, "txn-data", 6, "c1")
    open_hw = watermarks(n2, "txn-data", 6, committed=False)
    open_lso = watermarks(n2, "txn-data", 6, committed=True)
    assert all(open_lso[i] < open_hw[i] for i in range(6)), (open_lso, open_hw)
    p.send_offsets_to_transaction(consumer.position([TopicPartition("txn-src", 0)]),
                                  consumer.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    committed += values
    # The last stable offset catches up with the high watermark on every broker.
    wait_until(lambda: watermarks(n2, "txn-data", 6, True) == watermarks(n2, "txn-data", 6, False),
               timeout=30, what="LSO = HWM after commit")
    # The group coordinator (node 2) settled the transactional offset (its marker came from
    # node 1's transaction coordinator).
    wait_until(lambda: consumer.committed([TopicPartition("txn-src", 0)], timeout=10)[0].offset == 5,
               timeout=30, what="offset committed by the transaction")

    # 2: abort.
    p.begin_transaction()
    produce_round(p, "txn-data", 6, "a2")
    assert all(v < h for v, h in zip(watermarks(n1, "txn-data", 6, True).values(),
                                      watermarks(n1, "txn-data", 6, False).values()))
    p.abort_transaction(30)
    wait_until(lambda: watermarks(n1, "txn-data", 6, True) == watermarks(n1, "txn-data", 6, False),
               timeout=30, what="LSO = HWM after abort")

    # 3: commit.
    p.begin_transaction()
    committed += produce_round(p, "txn-data", 6, "c3")
    p.commit_transaction(30)
    wait_until(lambda: watermarks(n3, "txn-data", 6, True) == watermarks(n3, "txn-data", 6, False),
               timeout=30, what="LSO = HWM after the second commit")
    consumer.close()

    # read_committed readers see exactly the committed transactions.
    want = sorted(committed)
    rc = Consumer({"bootstrap.servers": n2, "group.id": "rc", "isolation.level": "read_committed",
                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
    rc.assign([TopicPartition("txn-data", i, 0) for i in range(6)])
    got: list[bytes] = []
    wait_until(lambda: (m := rc.poll(0.2)) is None or m.error() or got.append(m.value()) or
               len(got) >= len(want), timeout=30, what="confluent read_committed")
    rc.close()
    assert sorted(got) == want

    from kafka import KafkaConsumer, TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=n1, enable_auto_commit=False, consumer_timeout_ms=10000,
                       isolation_level="read_committed", auto_offset_reset="earliest")
    kc.assign([KTP("txn-data", i) for i in range(6)])
    kgot = [m.value for m in kc]
    kc.close()
    assert sorted(kgot) == want

    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP
    import asyncio

    async def aio() -> list[bytes]:
        ac = AIOKafkaConsumer(bootstrap_servers=n3, enable_auto_commit=False,
                              isolation_level="read_committed", auto_offset_reset="earliest")
        await ac.start()
        try:
            ac.assign([ATP("txn-data", i) for i in range(6)])
            out: list[bytes] = []
            ends = await ac.end_offsets([ATP("txn-data", i) for i in range(6)])
            while any([await ac.position(tp) < end for tp, end in ends.items()]):
                for msgs in (await ac.getmany(timeout_ms=500)).values():
                    out += [m.value for m in msgs]
            return out
        finally:
            await ac.stop()
    assert sorted(asyncio.run(aio())) == want


@pytest.mark.timeout(300)
def test_kill9_of_a_data_broker_mid_transaction(make_cluster):
    c = make_cluster(combined=3, overrides=FAST_SESSIONS)
    n1 = c.nodes[1].bootstrap
    led = spread_topic(n1, "txn-kill", 6, {1, 2, 3})
    ensure_internal_topic(n1, TXN_TOPIC)
    ensure_internal_topic(n1, OFFSETS_TOPIC)
    txn_id = key_led_by(n1, TXN_TOPIC, "txk", 1)
    orphan_group = key_led_by(n1, OFFSETS_TOPIC, "orphan", 3)
    p = txn_producer(c.bootstrap(), txn_id, **{"message.timeout.ms": 6000,
                                              "transaction.timeout.ms": 20000})
    p.begin_transaction()
    first = produce_round(p, "txn-kill", 6, "k1")
    p.commit_transaction(30)

    p.begin_transaction()
    produce_round(p, "txn-kill", 6, "k2")
    c.nodes[3].kill9()
    # Records for node 3's partitions cannot be delivered: the transaction must abort.
    failed = []
    for i in range(6):
        p.produce("txn-kill", f"k3-{i}".encode(), partition=i,
                  on_delivery=lambda err, msg: failed.append(err) if err else None)
    p.flush(30)
    assert failed, "records for a dead broker's partitions were acknowledged"
    with pytest.raises(KafkaException):
        p.commit_transaction(30)
    p.abort_transaction(60)

    # Node 3 fenced: its single-replica partitions are leaderless, while a group whose
    # coordinator it was moves with its replicated `__consumer_offsets` partition to a live
    # node, and the transaction's coordinator on node 1 serves on.
    wait_until(lambda: all(leaders(n1, "txn-kill")[i] == -1 for i in range(6) if led[i] == 3),
               timeout=30, what="node 3's partitions leaderless")
    host, port = n1.rsplit(":", 1)
    w = Wire(host, int(port))

    def group_coordinator():
        r = w.call(FindCoordinatorRequest, 4, key_type=0, coordinator_keys=[orphan_group])
        return r.coordinators[0].error_code == 0 and r.coordinators[0].node_id in (1, 2)
    wait_until(group_coordinator, timeout=30, what="the group's coordinator on a live node")
    r = w.call(FindCoordinatorRequest, 4, key_type=1, coordinator_keys=[txn_id])
    assert (r.coordinators[0].error_code, r.coordinators[0].node_id) == (0, 1), r
    w.close()

    # While node 3 is away its partitions wait for their markers; back, they get them.
    c.nodes[3].start()
    wait_until(lambda: all(l >= 0 for l in leaders(n1, "txn-kill").values()), timeout=60,
               what="node 3's partitions led again")
    wait_until(lambda: watermarks(n1, "txn-kill", 6, True) == watermarks(n1, "txn-kill", 6, False),
               timeout=60, what="no partition stuck behind the aborted transaction")
    assert sorted(kafka_python_read_committed(n1, "txn-kill", 6)) == sorted(first)
    assert {led[i] for i in range(6)} == {1, 2, 3}

    # The transactional id is usable again. The client may still have to abort once: librdkafka
    # numbers the next batch of a partition whose records timed out unsent past the gap, which
    # the leader refuses (OUT_OF_ORDER_SEQUENCE_NUMBER, as Kafka's does); the abort bumps the
    # producer epoch (KIP-360) and the retry goes through. This is the loop every
    # transactional application runs.
    for attempt in range(3):
        p.begin_transaction()
        try:
            third = produce_round(p, "txn-kill", 6, f"k4.{attempt}")
            p.commit_transaction(60)
            break
        except (KafkaException, AssertionError) as e:
            if isinstance(e, KafkaException) and not e.args[0].txn_requires_abort():
                raise
            p.abort_transaction(60)
    else:
        raise AssertionError("three attempts of the next transaction failed")
    wait_until(lambda: watermarks(n1, "txn-kill", 6, True) == watermarks(n1, "txn-kill", 6, False),
               timeout=30, what="LSO = HWM after the next commit")
    assert sorted(kafka_python_read_committed(n1, "txn-kill", 6)) == sorted(first + third)


def kafka_python_read_committed(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                       consumer_timeout_ms=5000, isolation_level="read_committed",
                       auto_offset_reset="earliest")
    kc.assign([KTP(topic, i) for i in range(partitions)])
    out = [m.value for m in kc]
    kc.close()
    return out


# ---- producer ids ---------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_first_group_commits_on_a_fresh_cluster(make_cluster):
    """The first FindCoordinator creates `__consumer_offsets` (RF 3, 50 partitions) and, as in
    Kafka, answers COORDINATOR_NOT_AVAILABLE: the new partitions' leaders have not opened them
    yet. The commits that follow at once, from groups coordinated by every broker, succeed: a
    leader that has not loaded its partition yet answers COORDINATOR_LOAD_IN_PROGRESS (retried)
    and never NOT_COORDINATOR (which fails a librdkafka commit)."""
    c = make_cluster(combined=3)
    n1 = c.nodes[1].bootstrap
    create_topic(n1, "fresh", 1)
    host, port = n1.rsplit(":", 1)
    w = Wire(host, int(port))
    r = w.call(FindCoordinatorRequest, 4, key_type=0, coordinator_keys=["first"])
    w.close()
    assert r.coordinators[0].error_code == 15, r  # COORDINATOR_NOT_AVAILABLE
    assert "just created" in r.coordinators[0].error_message, r
    groups = [f"fresh-{i}" for i in range(12)]
    for i, g in enumerate(groups):
        m = Consumer({"bootstrap.servers": c.nodes[1 + i % 3].bootstrap, "group.id": g,
                      "enable.auto.commit": False})
        try:
            m.commit(offsets=[TopicPartition("fresh", 0, i + 1)], asynchronous=False)
            assert m.committed([TopicPartition("fresh", 0)], timeout=10)[0].offset == i + 1
        finally:
            m.close()
    led = leaders(n1, OFFSETS_TOPIC)
    coordinators = {led[offsets_partition_for(g, len(led))] for g in groups}
    assert coordinators == {1, 2, 3}, coordinators


def test_init_producer_id_on_every_broker_at_once_is_disjoint(make_cluster):
    c = make_cluster(combined=3)
    per_broker = 30
    ids: dict[int, list[int]] = {}
    errors: list[str] = []
    start = threading.Barrier(3)

    def init_many(node: int) -> None:
        host, port = c.nodes[node].bootstrap.rsplit(":", 1)
        w = Wire(host, int(port))
        try:
            start.wait()
            got = []
            for _ in range(per_broker):
                r = w.call(InitProducerIdRequest, 4, transactional_id=None,
                           transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1)
                if r.error_code != 0:
                    errors.append(f"node {node}: error {r.error_code}")
                    return
                got.append(r.producer_id)
            ids[node] = got
        finally:
            w.close()

    threads = [threading.Thread(target=init_many, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    every = [i for got in ids.values() for i in got]
    assert len(every) == 3 * per_broker and len(set(every)) == len(every), ids

    # A restarted broker takes a fresh block: nothing handed out before comes back.
    c.nodes[2].kill9()
    c.nodes[2].start()
    host, port = c.nodes[2].bootstrap.rsplit(":", 1)
    w = Wire(host, int(port))
    r = w.call(InitProducerIdRequest, 4, transactional_id=None, transaction_timeout_ms=60000,
               producer_id=-1, producer_epoch=-1)
    w.close()
    assert r.error_code == 0 and r.producer_id not in every, (r, ids)
