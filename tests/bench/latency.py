#!/usr/bin/env python3
"""End-to-end latency at a fixed rate, with confluent-kafka and client defaults.

Why not rdkafka_performance -l: its rate limiter (-r) sleeps coarsely and serves delivery reports
rarely, so its per-message numbers measure the tool (we saw p50 ~60 ms, p99.9 ~1 s for both
produce->ack and end-to-end, against ~4 ms / ~13 ms with a client that polls properly).

  latency.py consume BOOTSTRAP TOPIC N   -> waits for N messages, prints JSON percentiles
  latency.py produce BOOTSTRAP TOPIC RATE SECONDS -> paced producer, prints JSON ack percentiles
Each payload starts with the send wall-clock time (time.time_ns); both sides run on one machine,
so the clocks agree. Run consumer and producer as separate processes (no shared GIL).
"""
from __future__ import annotations

import json
import struct
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

SIZE = 1024


def pct(vals: list[float]) -> dict:
    vals = sorted(vals)
    if not vals:
        return {"n": 0}
    at = lambda q: vals[min(len(vals) - 1, int(q * len(vals)))] * 1000  # noqa: E731
    return {"n": len(vals), "p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999),
            "max_ms": vals[-1] * 1000}


def consume(bootstrap: str, topic: str, n: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rafka-bench-unused",
                  "enable.auto.commit": False, "enable.auto.offset.store": False})
    c.assign([TopicPartition(topic, 0, 0)])
    print("ready", file=sys.stderr, flush=True)
    lats = []
    deadline = time.monotonic() + 600
    while len(lats) < n and time.monotonic() < deadline:
        # One message per call: consume(N, timeout) would wait for N messages and add batching
        # delay to the measurement.
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        (sent,) = struct.unpack(">q", m.value()[:8])
        lats.append((time.time_ns() - sent) / 1e9)
    c.close()
    print(json.dumps(pct(lats)))


def produce(bootstrap: str, topic: str, rate: int, secs: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    p.list_topics(topic, timeout=10)
    acks, failed = [], [0]
    pad = b"\0" * (SIZE - 8)
    n = rate * secs
    start = time.monotonic()
    i = 0
    while i < n:
        # Send what is due by now, then wait in poll() (serving delivery reports) until the
        # next message is due. poll() counts in whole milliseconds, so at rates above 1,000/s
        # messages leave in groups of up to rate/1000; each carries its own send time. Waiting
        # for a sub-millisecond deadline instead would spin a whole core, which on a 2-core
        # machine is taken from the broker and the consumer being measured.
        due = min(n, int((time.monotonic() - start) * rate) + 1)
        while i < due:
            def cb(err, _msg, t0=time.monotonic()):
                if err is None:
                    acks.append(time.monotonic() - t0)
                else:
                    failed[0] += 1

            p.produce(topic, value=struct.pack(">q", time.time_ns()) + pad, partition=0,
                      on_delivery=cb)
            i += 1
        p.poll(0)
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            p.poll(max(wait, 0.001))
    p.flush(60)
    out = pct(acks)
    out.update({"sent": n, "failed": failed[0], "rate": n / (time.monotonic() - start)})
    print(json.dumps(out))


if __name__ == "__main__":
    mode, bootstrap, topic, *rest = sys.argv[1:]
    if mode == "consume":
        consume(bootstrap, topic, int(rest[0]))
    else:
        produce(bootstrap, topic, int(rest[0]), int(rest[1]))
