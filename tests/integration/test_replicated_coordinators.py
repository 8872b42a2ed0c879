"""Replicated coordinator topics (issue 15 item 8): with a controller quorum configured,
`__consumer_offsets` and `__transaction_state` get Kafka's three replicas (two in sync for
transactions), the coordinators answer a write once it is replicated, and a coordinator killed
with -9 is replaced by the next in-sync replica, which loads the partition to its log end: no
acknowledged commit is lost and no transaction is left half done.
"""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from broker_proc import is_mock
from helpers import wait_until
from test_cluster import admin, make_cluster  # noqa: F401
from test_cluster_features import (OFFSETS_TOPIC, TXN_TOPIC, ensure_internal_topic,
                                   kafka_python_read_committed, key_led_by, leaders,
                                   produce_round, txn_producer, watermarks)
from test_replication import REPLICATION, create_replicated

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")


def replica_sets(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(replicas, in-sync replicas) per partition, as Metadata reports them."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    return [(len(pm.replicas), len(pm.isrs)) for pm in md.topics[topic].partitions.values()]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int] | None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    except KafkaException:
        # A coordinator still loading, or not elected yet: asked again.
        return None
    finally:
        c.close()


@pytest.mark.timeout(300)
def test_group_coordinator_killed_loses_no_acknowledged_commit(make_cluster):
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "work", partitions=3)
    ensure_internal_topic(b, OFFSETS_TOPIC)
    assert set(replica_sets(b, OFFSETS_TOPIC)) == {(3, 3)}, "Kafka's default: three replicas"

    group = key_led_by(b, OFFSETS_TOPIC, "survivor", 2)
    consumer = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    last: dict[int, int] = {}
    for i in range(1, 101):
        offsets = [TopicPartition("work", p, i * 10 + p) for p in range(3)]
        # Synchronous: returns only once the coordinator acknowledged (raises otherwise).
        consumer.commit(offsets=offsets, asynchronous=False)
        last = {p: i * 10 + p for p in range(3)}
    consumer.close()

    c.nodes[2].kill9()
    b = c.bootstrap()
    wait_until(lambda: all(l not in (-1, 2) for l in leaders(b, OFFSETS_TOPIC).values()),
               timeout=30, what="every __consumer_offsets partition led by a live node")
    got = wait_until(lambda: committed(b, group, "work", 3), timeout=30,
                     what="the group's offsets from its new coordinator")
    assert got == last, f"acknowledged commits lost: {got} != {last}"

    # The new coordinator takes commits; the old one rejoins as a follower and catches up.
    consumer = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("work", 0, 5000)], asynchronous=False)
    consumer.close()
    c.nodes[2].start()
    wait_until(lambda: set(replica_sets(c.bootstrap(), OFFSETS_TOPIC)) == {(3, 3)}, timeout=60,
               what="the restarted node back in every __consumer_offsets ISR")
    assert committed(c.bootstrap(), group, "work", 3) == {**last, 0: 5000}


@pytest.mark.timeout(300)
def test_transaction_coordinator_killed_leaves_no_partial_transaction(make_cluster):
    c = make_cluster(combined=3, overrides=REPLICATION)
    b = c.bootstrap()
    create_replicated(b, "txn-data", partitions=3, configs={"min.insync.replicas": "2"})
    ensure_internal_topic(b, TXN_TOPIC)
    assert set(replica_sets(b, TXN_TOPIC)) == {(3, 3)}
    txn_id = key_led_by(b, TXN_TOPIC, "failover", 3)

    p = txn_producer(b, txn_id, **{"transaction.timeout.ms": 15000})
    committed_values: list[bytes] = []
    for n in range(10):
        p.begin_transaction()
        values = produce_round(p, "txn-data", 3, f"c{n}")
        p.commit_transaction(30)
        committed_values += values
    # One more transaction is open, its records written, when its coordinator dies.
    p.begin_transaction()
    produce_round(p, "txn-data", 3, "open")
    c.nodes[3].kill9()
    b = c.bootstrap()
    wait_until(lambda: all(l not in (-1, 3) for l in leaders(b, TXN_TOPIC).values()),
               timeout=30, what="every __transaction_state partition led by a live node")

    # The same transactional id on a new producer: the new coordinator, loaded from the
    # replicated log, knows the open transaction, aborts it and fences the old producer.
    p2 = txn_producer(b, txn_id)
    for n in range(3):
        p2.begin_transaction()
        committed_values += produce_round(p2, "txn-data", 3, f"after{n}")
        p2.commit_transaction(30)
    wait_until(lambda: watermarks(b, "txn-data", 3, True) == watermarks(b, "txn-data", 3, False),
               timeout=60, what="no partition held back by an open transaction")
    seen = kafka_python_read_committed(b, "txn-data", 3)
    assert sorted(seen) == sorted(committed_values), (
        f"read_committed saw {len(seen)} records, expected {len(committed_values)}; "
        f"aborted seen: {[v for v in seen if v.startswith(b'open')][:3]}")
    del p
