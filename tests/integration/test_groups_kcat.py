"""kcat's balanced consumer (-G, librdkafka's KafkaConsumer from Debian) against a broker with
the default configuration: 50 __consumer_offsets partitions, 3 s initial rebalance delay."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from confluent_kafka import TopicPartition

from helpers import ck_create_topic, ck_group_consumer, ck_produce_all, ck_producer, ck_watermarks

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")

PARTITIONS = 2


def produce(broker, topic, first, n):
    ck_produce_all(ck_producer(broker), topic,
                   [(None, f"v{i}".encode(), i % PARTITIONS) for i in range(first, first + n)])


def committed(broker, group, topic):
    c = ck_group_consumer(broker, group)
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        c.close()


def kcat(broker, *args, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = ["kcat", "-b", broker.bootstrap, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd} rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


def group_consume(broker, group, topic, *extra) -> list[dict]:
    # -e: exit once every assigned partition reached its end; kcat then closes the consumer,
    # which commits the offsets it stored (enable.auto.commit is librdkafka's default).
    out = kcat(broker, "-G", group, "-e", "-J", *extra, topic, timeout=90).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_kcat_balanced_consumer_commits_and_resumes(broker, unique_topic):
    topic = unique_topic
    group = f"kcat-{topic}"
    n = 40
    ck_create_topic(broker, topic, PARTITIONS)
    produce(broker, topic, 0, n)

    # A new group has no offsets: auto.offset.reset decides where it starts.
    msgs = group_consume(broker, group, topic, "-X", "auto.offset.reset=earliest")
    assert sorted(m["payload"] for m in msgs) == sorted(f"v{i}" for i in range(n))
    assert {m["partition"] for m in msgs} == set(range(PARTITIONS))
    ends = {p: ck_watermarks(broker, topic, p)[1] for p in range(PARTITIONS)}
    assert committed(broker, group, topic) == ends

    # A second run of the group resumes from the committed offsets: only the new records.
    produce(broker, topic, n, 10)
    msgs = group_consume(broker, group, topic)
    assert sorted(m["payload"] for m in msgs) == sorted(f"v{i}" for i in range(n, n + 10))
    assert all(m["offset"] >= ends[m["partition"]] for m in msgs)
    assert committed(broker, group, topic) == \
        {p: ck_watermarks(broker, topic, p)[1] for p in range(PARTITIONS)}
