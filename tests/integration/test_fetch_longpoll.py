"""Fetch long poll: a fetch parked at the log end is answered as soon as a record is appended."""
from __future__ import annotations

import statistics
import time

from confluent_kafka import TopicPartition

from helpers import ck_consumer, ck_create_topic, ck_producer

ROUNDS = 5


def test_append_wakes_parked_fetch(broker):
    topic = "longpoll"
    ck_create_topic(broker, topic)
    p = ck_producer(broker, **{"linger.ms": 0})
    p.list_topics(topic, timeout=10)  # connection and metadata ready before timing anything
    # A long fetch.wait.max.ms, so that a woken fetch (milliseconds) and one that waited out its
    # timeout (30 s) stay far apart even when this machine stalls for a second or two.
    c = ck_consumer(broker, **{"fetch.wait.max.ms": 30000, "fetch.min.bytes": 1,
                               "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        latencies = []
        for i in range(ROUNDS):
            # Let the consumer reach the log end and park a fetch there (nothing to read, so this
            # poll must come back empty).
            assert c.poll(1.0) is None
            t0 = time.monotonic()
            p.produce(topic, value=b"wake-%d" % i, partition=0)
            p.poll(0)
            m = None
            while m is None and time.monotonic() - t0 < 40:
                m = c.poll(0.05)
            assert m is not None and not m.error(), m and m.error()
            assert m.value() == b"wake-%d" % i and m.offset() == i
            latencies.append(time.monotonic() - t0)
            assert latencies[-1] < 10, latencies  # fail in the first round, not after five
            assert p.flush(10) == 0
        print("append -> consumer latencies (s):", [round(x, 4) for x in latencies])
        # Waiting out fetch.wait.max.ms would take ~30 s each time.
        assert max(latencies) < 10, latencies
        assert statistics.median(latencies) < 2, latencies
    finally:
        c.close()
