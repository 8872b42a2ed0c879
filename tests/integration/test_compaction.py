"""Log compaction (cleanup.policy=compact): the log cleaner keeps the latest record of each key,
removes tombstones after delete.retention.ms, keeps offsets, shrinks the log on disk, and a
broker killed (SIGKILL) in the middle of a cleaning pass restarts with a consistent log."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from helpers import ck_consumer, ck_create_topic, ck_produce_all, ck_producer, ck_watermarks, wait_until

KEYS = 1000
ROUNDS = 100  # 100,000 records
DELETED = 100  # keys 0..99 get a tombstone
FILLER = 3000  # records after the tombstones, so they leave the active segment
PAD = b"p" * 40

COMPACT_BROKER = {
    "log.cleaner.backoff.ms": 200,
}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "262144",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
}


def key(k: int) -> bytes:
    return b"key-%04d" % k


def value(k: int, r: int) -> bytes:
    return b"v-%03d-%04d-" % (r, k) + PAD


def produce_workload(broker, topic: str) -> None:
    # Odd rounds lz4-compressed, even rounds plain: the cleaner rewrites both kinds of batches.
    p = ck_producer(broker, **{"linger.ms": 5, "compression.type": "lz4"})
    plain = ck_producer(broker, **{"linger.ms": 5})
    for r in range(ROUNDS):
        ck_produce_all(p if r % 2 else plain, topic, [(key(k), value(k, r), 0) for k in range(KEYS)],
                       timeout=120)
    ck_produce_all(p, topic, [(key(k), None, 0) for k in range(DELETED)])
    # Filler under keys of their own (uncompressed, so it takes room) pushes the tombstones into
    # sealed, cleanable segments.
    ck_produce_all(ck_producer(broker, **{"linger.ms": 5}), topic,
                   [(b"filler-%02d" % (i % 10), PAD * 5, 0) for i in range(FILLER)])


def log_bytes(broker, topic: str) -> int:
    d = broker.data_dir / f"{topic}-0"
    return sum(p.stat().st_size for p in d.iterdir() if p.name.endswith(".log"))


def read_all(broker, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of everything from the beginning to the high watermark."""
    _, high = ck_watermarks(broker, topic)
    c = ck_consumer(broker, **{"enable.partition.eof": True})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "reading the topic took over 60 s"
            msgs = c.consume(10000, 1.0)
            done = False
            for m in msgs:
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        done = True
                        continue
                    raise AssertionError(f"consumer error {m.error()}")
                out.append((m.offset(), m.key(), m.value()))
            if done and (not out or out[-1][0] + 1 >= high):
                return out
    finally:
        c.close()


def check_compacted(records) -> None:
    """Exactly the latest value of each live key, no deleted key, offsets strictly increasing."""
    offsets = [o for o, _, _ in records]
    assert all(a < b for a, b in zip(offsets, offsets[1:])), "offsets not strictly increasing"
    data = [(o, k, v) for o, k, v in records if k.startswith(b"key-")]
    seen: dict[bytes, bytes | None] = {}
    for _, k, v in data:
        assert k not in seen, f"key {k!r} appears twice"
        seen[k] = v
    deleted = {key(k) for k in range(DELETED)}
    assert not deleted & seen.keys(), f"deleted keys still present: {sorted(deleted & seen.keys())[:5]}"
    want = {key(k): value(k, ROUNDS - 1) for k in range(DELETED, KEYS)}
    assert seen == want


def compacted_now(broker, topic: str) -> bool:
    recs = read_all(broker, topic)
    try:
        check_compacted(recs)
        return True
    except AssertionError:
        return False


@pytest.mark.broker_config(COMPACT_BROKER)
def test_compaction_keeps_the_latest_value_of_each_live_key(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1, TOPIC_CONFIG)
    produce_workload(broker, topic)
    low, high = ck_watermarks(broker, topic)
    total = KEYS * ROUNDS + DELETED + FILLER
    assert (low, high) == (0, total)
    # The plain rounds alone took at least this much before compaction.
    size_before = KEYS * (ROUNDS // 2) * (len(key(0)) + len(value(0, 0)))

    # The cleaner runs on its own: wait for the footprint to shrink, then for the tombstones'
    # delete horizon to pass and a later pass to remove them.
    wait_until(lambda: log_bytes(broker, topic) < size_before // 3, timeout=40, interval=0.2,
               what="the cleaner to shrink the log")
    assert f"Cleaning log {topic}-0" in broker.log_text()
    wait_until(lambda: compacted_now(broker, topic), timeout=40, interval=0.5,
               what="the compacted log to hold only the latest live values")
    recs = read_all(broker, topic)
    check_compacted(recs)
    # Offsets were kept: the latest records keep the offsets they were written at.
    by_key = {k: o for o, k, _ in recs}
    assert by_key[key(KEYS - 1)] == (ROUNDS - 1) * KEYS + KEYS - 1
    # The high watermark and log end did not move.
    assert ck_watermarks(broker, topic)[1] == total
    assert (broker.data_dir / "cleaner-offset-checkpoint").exists()

    # The compacted log survives a clean restart.
    broker.restart(clean=True)
    check_compacted(read_all(broker, topic))


@pytest.mark.broker_config({**COMPACT_BROKER, "log.cleaner.io.max.bytes.per.second": 1500000})
def test_a_broker_killed_during_compaction_restarts_consistent(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1, TOPIC_CONFIG)
    produce_workload(broker, topic)
    part = broker.data_dir / f"{topic}-0"
    # The throttled pass takes seconds: kill the broker while it is writing .cleaned files.
    wait_until(lambda: any(p.name.endswith(".cleaned") for p in part.iterdir()), timeout=30,
               interval=0.01, what="a cleaning pass to be under way")
    broker.kill9()

    broker.extra.pop("log.cleaner.io.max.bytes.per.second")
    log_before = len(broker.log_text())
    broker.start()
    # Recovery removed the interrupted pass's files (or completed its swap).
    restart_log = broker.log_text()[log_before:]
    assert ("removing leftover temporary file" in restart_log
            or "completing an interrupted cleaner swap" in restart_log), restart_log[-3000:]
    # Nothing lost, nothing duplicated: the log reads back consistent...
    recs = read_all(broker, topic)
    offsets = [o for o, _, _ in recs]
    assert all(a < b for a, b in zip(offsets, offsets[1:]))
    latest = {}
    for _, k, v in recs:
        latest[k] = v
    want = {key(k): value(k, ROUNDS - 1) for k in range(DELETED, KEYS)}
    assert {k: v for k, v in latest.items() if k.startswith(b"key-") and v is not None} == want
    assert all(latest[key(k)] is None for k in range(DELETED) if key(k) in latest)
    # ... and, once the restarted cleaner has finished, is compacted as in the first test.
    wait_until(lambda: compacted_now(broker, topic), timeout=40, interval=0.5,
               what="the restarted cleaner to compact the log")
    check_compacted(read_all(broker, topic))


@pytest.mark.broker_config({**COMPACT_BROKER, "offsets.topic.num.partitions": 1,
                            "offsets.topic.segment.bytes": 16384,
                            "group.initial.rebalance.delay.ms": 0})
def test_consumer_offsets_is_compacted(broker, unique_topic):
    """__consumer_offsets is a compacted topic: many commits of one group shrink to the latest
    one, which survives a restart."""
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    ck_produce_all(ck_producer(broker), topic, [(b"k", b"v", 0)])
    group = f"{topic}-group"
    c = ck_consumer(broker, **{"group.id": group, "enable.auto.commit": False})
    try:
        for i in range(1, 1501):
            c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    finally:
        c.close()
    part = broker.data_dir / "__consumer_offsets-0"
    wait_until(lambda: "Cleaning log __consumer_offsets-0" in broker.log_text(), timeout=30,
               interval=0.2, what="the cleaner to clean __consumer_offsets-0")
    # 1,500 commits took ~175 kB; compacted, the sealed part holds one commit (plus the group's
    # metadata) and the active segment at most 16 kB.
    wait_until(lambda: sum(p.stat().st_size for p in part.iterdir() if p.name.endswith(".log"))
               < 40_000, timeout=30, interval=0.2, what="__consumer_offsets-0 to shrink")

    def committed():
        c = ck_consumer(broker, **{"group.id": group})
        try:
            return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        finally:
            c.close()

    assert committed() == 1500
    broker.restart(clean=False)
    assert committed() == 1500
