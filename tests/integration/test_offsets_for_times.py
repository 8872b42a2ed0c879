"""ListOffsets: by timestamp (offsets_for_times), earliest, latest, max-timestamp."""
from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

from helpers import ck_admin, ck_consumer, ck_create_topic, ck_produce_all

# Timestamps close to now: ancient ones would be eligible for time-based retention.
BASE = (int(time.time() * 1000) // 1000) * 1000 - 600_000
# Offsets 0..9 carry BASE+1000 .. BASE+10000. Two produce calls so the log has more than one
# batch (the lookup must search inside batches, not just batch boundaries); offset 10 goes back in
# time (BASE+500) so that the max timestamp is not at the end.
TS = [BASE + 1000 * (i + 1) for i in range(10)] + [BASE + 500]

# target -> first offset with timestamp >= target (None: no such offset)
CASES = {
    BASE: 0,                # before everything
    BASE + 500: 0,          # equal to offset 10's timestamp, but offset 0 comes first and is >=
    BASE + 1000: 0,         # equal to first
    BASE + 1500: 1,         # between
    BASE + 3000: 2,         # equal
    BASE + 5001: 5,         # between batches
    BASE + 10000: 9,        # equal to the max
    BASE + 10001: None,     # after everything
}


def produce(broker, topic):
    from helpers import ck_producer
    p = ck_producer(broker, **{"linger.ms": 50})
    msgs = [(f"k{i}".encode(), f"v{i}".encode(), 0, ts) for i, ts in enumerate(TS)]
    out = ck_produce_all(p, topic, msgs[:5]) + ck_produce_all(p, topic, msgs[5:10]) \
        + ck_produce_all(p, topic, msgs[10:])
    assert [m.offset() for m in out] == list(range(11))


def test_confluent_offsets_for_times(broker):
    topic = "times"
    ck_create_topic(broker, topic)
    produce(broker, topic)
    c = ck_consumer(broker)
    try:
        for target, want in CASES.items():
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert tp.error is None, tp.error
            # librdkafka reports "no such offset" as -1 (OFFSET_END).
            assert tp.offset == (-1 if want is None else want), (target - BASE, tp.offset)
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 11)
        # The consumer sees the timestamps we set (CreateTime, stored as sent).
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        while len(got) < 11:
            for m in c.consume(100, 5.0):
                if not m.error():
                    got.append(m.timestamp()[1])
        assert got == TS
    finally:
        c.close()


def test_admin_list_offsets_specs(broker):
    topic = "specs"
    ck_create_topic(broker, topic)
    produce(broker, topic)
    admin = ck_admin(broker)
    tp = TopicPartition(topic, 0)

    def ask(spec):
        return admin.list_offsets({tp: spec}, request_timeout=10)[tp].result(10)

    assert ask(OffsetSpec.earliest()).offset == 0
    assert ask(OffsetSpec.latest()).offset == 11
    r = ask(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (9, BASE + 10000)
    r = ask(OffsetSpec.for_timestamp(BASE + 1500))
    assert (r.offset, r.timestamp) == (1, BASE + 2000)


def test_kafka_python_offsets_for_times(broker):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    topic = "times_kp"
    ck_create_topic(broker, topic)
    produce(broker, topic)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KTP(topic, 0)
        for target, want in CASES.items():
            res = c.offsets_for_times({tp: target})[tp]
            if want is None:
                assert res is None, (target - BASE, res)
            else:
                assert res is not None and res.offset == want, (target - BASE, res)
                assert res.timestamp == TS[want]
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 11}
    finally:
        c.close()
