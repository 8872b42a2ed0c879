"""Produce semantics beyond the round trips: acks=0 and acks=all, LogAppendTime topics, and a
listener on IPv6 loopback."""
from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from confluent_kafka.admin import NewTopic

from helpers import ck_admin, ck_consumer, ck_producer


def consume_all(broker, topic, n, timeout=30.0):
    c = ck_consumer(broker)
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append(m)
    c.close()
    return got


def create(broker, topic, config=None):
    admin = ck_admin(broker)  # keep the handle alive until the future resolves
    admin.create_topics([NewTopic(topic, 1, 1, config=config or {})])[topic].result(30)


@pytest.mark.parametrize("acks", ["0", "all"])
def test_acks_zero_and_all_store_every_message(broker, unique_topic, acks):
    create(broker, unique_topic)
    p = ck_producer(broker, acks=acks, **{"linger.ms": 5})
    delivered = []
    for i in range(1000):
        p.produce(unique_topic, value=str(i).encode(), on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(30) == 0
    assert len(delivered) == 1000 and all(e is None for e in delivered)
    got = consume_all(broker, unique_topic, 1000)
    assert [int(m.value()) for m in got] == list(range(1000))
    assert [m.offset() for m in got] == list(range(1000))


def test_log_append_time_topic_stamps_broker_time(broker, unique_topic):
    create(broker, unique_topic, {"message.timestamp.type": "LogAppendTime"})
    p = ck_producer(broker)
    before = int(time.time() * 1000)
    p.produce(unique_topic, value=b"old", timestamp=1_000)
    assert p.flush(30) == 0
    after = int(time.time() * 1000)
    (m,) = consume_all(broker, unique_topic, 1)
    ts_type, ts = m.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= after + 1000, (before, ts, after)


def test_create_time_topic_keeps_producer_timestamp(broker, unique_topic):
    create(broker, unique_topic)
    p = ck_producer(broker)
    p.produce(unique_topic, value=b"old", timestamp=1_000)
    assert p.flush(30) == 0
    (m,) = consume_all(broker, unique_topic, 1)
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, 1_000)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener(make_broker, unique_topic):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    b = make_broker(
        overrides={
            "listeners": f"PLAINTEXT://[::1]:{port}",
            "advertised.listeners": f"PLAINTEXT://[::1]:{port}",
        },
        start=False,
    )
    b.host = "[::1]"
    b.port = port
    b.start()
    p = ck_producer(b)
    p.produce(unique_topic, value=b"over ipv6")
    assert p.flush(30) == 0
    (m,) = consume_all(b, unique_topic, 1)
    assert m.value() == b"over ipv6"
