"""Log retention (retention.ms / retention.bytes delete whole old segments and move the log start
offset) and DeleteRecords (moves the log start offset on request). Consumers asking for an offset
below the new start are reset by their auto.offset.reset policy."""
from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from helpers import (ck_admin, ck_consumer, ck_create_topic, ck_produce_all, ck_producer,
                     ck_watermarks, wait_until)

RETENTION_BROKER = {
    "log.retention.check.interval.ms": 500,
    "log.segment.delete.delay.ms": 1000,
}
PAD = b"x" * 500
# Small batches: a segment only rolls between batches, so big batches would make one segment.
SMALL_BATCHES = {"batch.size": 4096, "linger.ms": 0}


def set_topic_config(broker, topic: str, key: str, value: str) -> None:
    """Turns retention on once the data is written: a retention pass that ran while the producer
    was still writing would see only part of the log, and what the test then reads would depend on
    when the broker's check interval fell."""
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    admin = ck_admin(broker)
    admin.incremental_alter_configs([res], request_timeout=30)[res].result(30)


def segment_files(broker, topic: str, partition: int = 0) -> list[str]:
    d = broker.data_dir / f"{topic}-{partition}"
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".log"))


def first_record_offset(broker, topic: str, reset: str, start: int) -> int:
    """Where a consumer that asks for `start` ends up reading, under `reset`."""
    c = ck_consumer(broker, **{"auto.offset.reset": reset, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, start)])
        while True:
            m = c.poll(10)
            assert m is not None, "no record and no end-of-partition within 10 s"
            if m.error() is None:
                return m.offset()
            if m.error().code() == -191:  # _PARTITION_EOF: nothing to read at the reset position
                return m.offset()
            raise AssertionError(f"consumer error {m.error()}")
    finally:
        c.close()


@pytest.mark.broker_config(RETENTION_BROKER)
def test_time_retention_deletes_old_segments_and_consumers_reset(broker, unique_topic):
    topic = unique_topic
    # Small segments so the data spans many; no retention while it is written.
    ck_create_topic(broker, topic, 1, {"segment.bytes": "16384", "retention.ms": "-1"})
    ck_produce_all(ck_producer(broker, **SMALL_BATCHES), topic,
                   [(None, b"%06d" % i + PAD, 0) for i in range(400)])
    assert ck_watermarks(broker, topic) == (0, 400)
    before = segment_files(broker, topic)
    assert len(before) > 5, f"expected many segments, got {before}"
    # Then retention by time of 3 s.
    set_topic_config(broker, topic, "retention.ms", "3000")

    # Retention runs on its own: the earliest offset moves past the old records.
    low = wait_until(lambda: ck_watermarks(broker, topic)[0] or None, timeout=30, interval=0.2,
                     what="retention to move the log start offset")
    assert low > 0
    # Whole segments went from disk (after log.segment.delete.delay.ms).
    wait_until(lambda: len(segment_files(broker, topic)) < len(before), timeout=30,
               what="deleted segment files to be removed")

    # A consumer asking for offset 0 is below the log start: earliest resets to the start,
    # latest to the end.
    ck_produce_all(ck_producer(broker), topic, [(None, b"fresh", 0)])
    low, high = ck_watermarks(broker, topic)
    assert first_record_offset(broker, topic, "earliest", 0) == low
    assert first_record_offset(broker, topic, "latest", 0) == high


@pytest.mark.broker_config(RETENTION_BROKER)
def test_size_retention_keeps_the_newest_data(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1, {"segment.bytes": "16384", "retention.ms": "-1"})
    ck_produce_all(ck_producer(broker, **SMALL_BATCHES), topic,
                   [(None, b"%06d" % i + PAD, 0) for i in range(400)])
    assert ck_watermarks(broker, topic) == (0, 400)
    # One retention pass over the whole log then deletes all it will.
    set_topic_config(broker, topic, "retention.bytes", "50000")
    low = wait_until(lambda: ck_watermarks(broker, topic)[0] or None, timeout=30, interval=0.2,
                     what="size retention to move the log start offset")
    high = ck_watermarks(broker, topic)[1]
    assert high == 400
    # Roughly retention.bytes of the newest records remain (whole segments).
    kept = high - low
    assert 40 <= kept <= 200, f"kept {kept} records"
    # The newest record is still there.
    c = ck_consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, high - 1)])
        m = c.poll(10)
        assert m is not None and m.error() is None and m.value().startswith(b"000399")
    finally:
        c.close()


def test_delete_records_moves_the_log_start(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 2, {"segment.bytes": "16384"})
    ck_produce_all(ck_producer(broker), topic,
                   [(None, b"%06d" % i + PAD, i % 2) for i in range(200)])
    admin = ck_admin(broker)
    futures = admin.delete_records([TopicPartition(topic, 0, 42), TopicPartition(topic, 1, -1)])
    results = {tp.partition: f.result(timeout=30) for tp, f in futures.items()}
    assert results[0].low_watermark == 42
    assert results[1].low_watermark == 100  # -1: up to the high watermark
    assert ck_watermarks(broker, topic, 0) == (42, 100)
    assert ck_watermarks(broker, topic, 1) == (100, 100)
    # Reading from the beginning now starts at 42.
    assert first_record_offset(broker, topic, "earliest", OFFSET_BEGINNING) == 42
    # Above the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    bad = admin.delete_records([TopicPartition(topic, 0, 1000)])
    with pytest.raises(Exception) as e:
        list(bad.values())[0].result(timeout=30)
    assert "OFFSET_OUT_OF_RANGE" in str(e.value) or "out of range" in str(e.value).lower()
    assert ck_watermarks(broker, topic, 0) == (42, 100)
    # The new start survives a restart.
    broker.stop()
    broker.start()
    assert ck_watermarks(broker, topic, 0) == (42, 100)
