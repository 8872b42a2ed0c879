"""Message size limits: message.max.bytes on the broker, MESSAGE_TOO_LARGE (10) on the wire."""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from helpers import ck_consume_range, ck_create_topic, ck_producer, ck_watermarks

MiB = 1024 * 1024


@pytest.mark.broker_config({"message.max.bytes": 2 * MiB})
def test_one_mib_message_round_trips(broker):
    topic = "large"
    ck_create_topic(broker, topic)
    value = bytes(range(256)) * (MiB // 256)  # exactly 1 MiB, not compressible to nothing
    # The client refuses locally above its own message.max.bytes (1000000 by default).
    p = ck_producer(broker, **{"message.max.bytes": 3 * MiB})
    delivered = []
    p.produce(topic, key=b"big", value=value, on_delivery=lambda e, m: delivered.append((e, m)))
    assert p.flush(60) == 0
    (err, msg), = delivered
    assert err is None, err
    assert msg.offset() == 0
    # Default consumer fetch sizes (max.partition.fetch.bytes 1 MiB) are smaller than this
    # batch: like Kafka, the broker must still return the first batch whole (KIP-74).
    got = ck_consume_range(broker, topic, {0: (0, 1)})[0]
    assert len(got) == 1
    assert got[0].key() == b"big"
    assert got[0].value() == value


def test_oversized_message_refused_then_producer_keeps_working(broker):
    topic = "limits"
    ck_create_topic(broker, topic)
    # Broker default message.max.bytes is 1048588; 1.5 MiB must be refused by the broker, so
    # the client limit is raised above it.
    p = ck_producer(broker, **{"message.max.bytes": 4 * MiB, "linger.ms": 0})
    results = []

    def cb(err, msg):
        results.append((err, msg))

    p.produce(topic, value=b"x" * (3 * MiB // 2), on_delivery=cb)
    assert p.flush(60) == 0
    (err, _), = results
    assert err is not None, "1.5 MiB message accepted despite message.max.bytes=1048588"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err  # MESSAGE_TOO_LARGE, code 10

    # Same producer, same connection: the refusal must not have broken anything.
    results.clear()
    p.produce(topic, value=b"small", on_delivery=cb)
    assert p.flush(30) == 0
    (err, msg), = results
    assert err is None, err
    assert msg.offset() == 0, "the refused batch must not have consumed offsets"
    assert ck_watermarks(broker, topic) == (0, 1)
    got = ck_consume_range(broker, topic, {0: (0, 1)})[0]
    assert [m.value() for m in got] == [b"small"]
