"""Produce N keyed messages with each Python client and codec, read them all back, check them.

Every client creates the topic with its own admin client, produces with batching (so the broker
sees real multi-record, compressed batches), and consumes with manual assignment from offset 0
(no consumer groups yet).
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import pytest

from broker_proc import is_mock
from helpers import ck_admin, ck_consumer, ck_producer, ck_watermarks, wait_for_partitions

N = int(os.environ.get("RAFKA_ROUNDTRIP_N", "100000"))
# librdkafka's mock cluster (tests/tools/mock_broker.py) has no CreateTopics and auto-creates
# topics with 4 partitions; only used when working on this file without rafka.
MOCK = is_mock()
PARTITIONS = 4 if MOCK else 6
KEYS = 1000
CLIENTS = ["confluent-kafka", "kafka-python", "aiokafka"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Filler makes batches compressible and the payload realistic (~90 bytes).
FILLER = b"|" + b"rafka-roundtrip-" * 5


def key_of(i: int) -> bytes:
    return f"k{i % KEYS}".encode()


def value_of(i: int) -> bytes:
    return f"{i:09d}".encode() + FILLER


def verify(records: list[tuple[int, int, bytes, bytes]], n: int) -> None:
    """records: (partition, offset, key, value) in consumption order."""
    assert len(records) == n, f"expected {n} records, got {len(records)}"
    seqs = [int(v[:9]) for _, _, _, v in records]
    seen = set(seqs)
    assert len(seen) == n, f"{n - len(seen)} duplicates"
    missing = set(range(n)) - seen
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:10]}"
    by_part: dict[int, list[tuple[int, int]]] = defaultdict(list)
    key_parts: dict[bytes, set[int]] = defaultdict(set)
    for (p, off, k, v), seq in zip(records, seqs):
        assert k == key_of(seq), f"key {k!r} does not belong to seq {seq}"
        assert v == value_of(seq), f"value corrupted at {p}/{off}"
        by_part[p].append((off, seq))
        key_parts[k].add(p)
    split = {k: ps for k, ps in key_parts.items() if len(ps) > 1}
    assert not split, f"keys on more than one partition: {list(split.items())[:5]}"
    assert set(by_part) <= set(range(PARTITIONS))
    # With 1000 keys every partition gets data under any sane partitioner.
    assert len(by_part) == PARTITIONS, f"only partitions {sorted(by_part)} got data"
    for p, rows in by_part.items():
        rows.sort()
        offs = [o for o, _ in rows]
        assert offs == list(range(len(offs))), f"partition {p}: offsets not contiguous from 0"
        s = [seq for _, seq in rows]
        assert all(a < b for a, b in zip(s, s[1:])), f"partition {p}: order not preserved"


# ---- confluent-kafka ------------------------------------------------------------------------

def roundtrip_confluent(broker, topic: str, codec: str) -> list:
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import NewTopic

    if not MOCK:
        admin = ck_admin(broker)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                            operation_timeout=30)[topic].result(30)
    wait_for_partitions(broker, topic, PARTITIONS)

    p = ck_producer(broker, **{"compression.type": codec, "linger.ms": 5, "acks": 1,
                               "batch.size": 256 * 1024})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(N):
        while True:
            try:
                p.produce(topic, key=key_of(i), value=value_of(i), on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports and retry
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(120) == 0, "not all messages delivered"
    assert not errors, f"{len(errors)} delivery errors, e.g. {errors[:3]}"

    c = ck_consumer(broker)
    out = []
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(PARTITIONS)])
        deadline = time.monotonic() + 120
        while len(out) < N and time.monotonic() < deadline:
            for m in c.consume(10000, 1.0):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        continue
                    raise KafkaException(m.error())
                out.append((m.partition(), m.offset(), m.key(), m.value()))
        # Nothing beyond N: the log end offsets add up to exactly N.
        ends = sum(c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)[1]
                   for part in range(PARTITIONS))
        assert ends == N, f"high watermarks sum to {ends}"
    finally:
        c.close()
    return out


# ---- kafka-python ---------------------------------------------------------------------------

def roundtrip_kafka_python(broker, topic: str, codec: str) -> list:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient

    if not MOCK:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        try:
            admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}})
        finally:
            admin.close()
    wait_for_partitions(broker, topic, PARTITIONS)

    # kafka-python 3 defaults to the idempotent producer (InitProducerId); that is not what this
    # test is about, so acks=1 without idempotence. Big batches + linger keep it fast enough.
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, enable_idempotence=False,
                         compression_type=None if codec == "none" else codec,
                         linger_ms=20, batch_size=512 * 1024,
                         max_request_size=4 * 1024 * 1024)
    futs = []
    try:
        for i in range(N):
            futs.append(prod.send(topic, key=key_of(i), value=value_of(i)))
        prod.flush(120)
        for f in futs:
            f.get(timeout=60)  # raises on delivery error
    finally:
        prod.close(30)

    cons = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         max_poll_records=10000, fetch_max_wait_ms=200)
    out = []
    try:
        tps = [TopicPartition(topic, part) for part in range(PARTITIONS)]
        cons.assign(tps)
        for tp in tps:
            cons.seek(tp, 0)
        deadline = time.monotonic() + 180
        while len(out) < N and time.monotonic() < deadline:
            for tp, recs in cons.poll(timeout_ms=1000).items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in recs)
        ends = cons.end_offsets(tps)
        assert sum(ends.values()) == N, f"end offsets: {ends}"
    finally:
        cons.close()
    return out


# ---- aiokafka -------------------------------------------------------------------------------

def roundtrip_aiokafka(broker, topic: str, codec: str) -> list:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run():
        if not MOCK:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                                    replication_factor=1)])
            finally:
                await admin.close()
        await asyncio.get_running_loop().run_in_executor(
            None, wait_for_partitions, broker, topic, PARTITIONS)

        prod = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks=1,
                                compression_type=None if codec == "none" else codec,
                                linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=4 * 1024 * 1024)
        await prod.start()
        try:
            futs = []
            for i in range(N):
                # send() waits only for buffer space and returns the delivery future.
                futs.append(await prod.send(topic, key=key_of(i), value=value_of(i)))
            await prod.flush()
            await asyncio.gather(*futs)  # raises on delivery error
        finally:
            await prod.stop()

        cons = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=200)
        await cons.start()
        out = []
        try:
            tps = [TopicPartition(topic, part) for part in range(PARTITIONS)]
            cons.assign(tps)
            for tp in tps:
                cons.seek(tp, 0)
            deadline = time.monotonic() + 180
            while len(out) < N and time.monotonic() < deadline:
                batch = await cons.getmany(timeout_ms=1000, max_records=10000)
                for tp, recs in batch.items():
                    out.extend((tp.partition, r.offset, r.key, r.value) for r in recs)
            ends = await cons.end_offsets(tps)
            assert sum(ends.values()) == N, f"end offsets: {ends}"
        finally:
            await cons.stop()
        return out

    return asyncio.run(run())


RUNNERS = {
    "confluent-kafka": roundtrip_confluent,
    "kafka-python": roundtrip_kafka_python,
    "aiokafka": roundtrip_aiokafka,
}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_roundtrip(broker, client, codec):
    topic = f"rt-{client}-{codec}"
    t0 = time.monotonic()
    records = RUNNERS[client](broker, topic, codec)
    elapsed = time.monotonic() - t0
    verify(records, N)
    print(f"{client}/{codec}: {N} messages produced+consumed in {elapsed:.1f}s")


# ---- default client settings ------------------------------------------------------------------

@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka"])
def test_producer_with_default_settings(broker, client):
    """Users do not tune clients for us: a producer with no settings but bootstrap works."""
    topic = "defaults"
    if client == "confluent-kafka":
        p = ck_producer(broker)
        p.produce(topic, key=b"k", value=b"v")
        assert p.flush(30) == 0
    elif client == "kafka-python":
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=broker.bootstrap)
        try:
            p.send(topic, key=b"k", value=b"v").get(timeout=30)
        finally:
            p.close(5)
    else:
        from aiokafka import AIOKafkaProducer

        async def run():
            p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await p.start()
            try:
                await p.send_and_wait(topic, b"v", key=b"k")
            finally:
                await p.stop()
        asyncio.run(run())
    assert ck_watermarks(broker, topic) == (0, 1)
