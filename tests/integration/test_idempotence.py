"""Idempotent producers (KIP-98): InitProducerId hands out producer ids, and the broker's
per-partition producer state answers a retried batch with its original offsets instead of writing
it again, also after a kill -9 (the state is rebuilt from snapshots and the log)."""
from __future__ import annotations

import asyncio

import pytest

from helpers import ck_consume_range, ck_create_topic, ck_producer, ck_watermarks

CYCLES = 3
ACKS_PER_CYCLE = 5000


@pytest.mark.timeout(600)
def test_idempotent_stream_survives_kill9_exactly_once_in_order(broker):
    topic = "idem"
    ck_create_topic(broker, topic)
    # One producer for the whole test: it keeps retrying while the broker is down, which is what
    # makes duplicates likely without idempotence.
    p = ck_producer(broker, **{"enable.idempotence": True, "linger.ms": 5,
                               "message.timeout.ms": 180000, "retry.backoff.ms": 100,
                               "reconnect.backoff.max.ms": 500})
    acked: list[int] = []
    errors: list = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append(int(msg.value()))

    seq = 0

    def produce(n: int):
        nonlocal seq
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, value=b"%012d" % seq, partition=0, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.01)
            seq += 1
            if seq % 100 == 0:
                p.poll(0)

    for cycle in range(CYCLES):
        target = len(acked) + ACKS_PER_CYCLE
        while len(acked) < target:
            produce(200)
        produce(2000)  # queued and in flight when the broker dies
        p.poll(0)
        assert len(p) > 0, "nothing outstanding at kill time: the crash would test nothing"
        broker.kill9()
        broker.start()  # same dir, same port; the producer reconnects and retries
    produce(1000)
    assert p.flush(180) == 0, "not everything was delivered"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert sorted(acked) == list(range(seq)), "every record is acknowledged once"

    low, high = ck_watermarks(broker, topic)
    got = ck_consume_range(broker, topic, {0: (low, high)}, timeout=120)[0]
    values = [int(r.value()) for r in got]
    dups = len(values) - len(set(values))
    assert dups == 0, f"{dups} records were written twice"
    assert values == list(range(seq)), "the log holds every record exactly once, in order"


def test_kafka_python_default_producer_is_idempotent(broker):
    """kafka-python 3 enables idempotence by default (InitProducerId, acks=all)."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        for i in range(10):
            p.send("kp-idem", value=b"%d" % i)
        p.flush(30)
        # The producer really runs idempotent: it holds a producer id from the broker.
        pid = p._transaction_manager.producer_id_and_epoch.producer_id
        assert pid >= 0
    finally:
        p.close(5)
    assert ck_watermarks(broker, "kp-idem") == (0, 10)


def test_aiokafka_idempotent_producer(broker):
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await p.start()
        try:
            for i in range(10):
                await p.send_and_wait("aio-idem", b"%d" % i)
            pid = p._txn_manager.producer_id
        finally:
            await p.stop()
        return pid
    assert asyncio.run(run()) >= 0
    assert ck_watermarks(broker, "aio-idem") == (0, 10)
