"""Small client helpers shared by the integration tests."""
from __future__ import annotations

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker_proc import is_mock as broker_is_mock

# Consumer groups are not implemented yet: consumers use assign() with explicit offsets and never
# commit. librdkafka insists on a group.id for Consumer objects even then; it is only sent to the
# broker for group operations, which these settings avoid.
CK_CONSUMER_BASE = {
    "group.id": "rafka-tests-unused",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "error",
}


def ck_producer(broker, **extra) -> Producer:
    conf = {"bootstrap.servers": broker.bootstrap}
    conf.update(extra)
    return Producer(conf)


def ck_consumer(broker, **extra) -> Consumer:
    conf = {"bootstrap.servers": broker.bootstrap, **CK_CONSUMER_BASE}
    conf.update(extra)
    return Consumer(conf)


def ck_admin(broker, **extra) -> AdminClient:
    conf = {"bootstrap.servers": broker.bootstrap}
    conf.update(extra)
    return AdminClient(conf)


def wait_until(cond, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    """Polls `cond` until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")


def ck_create_topic(broker, name: str, partitions: int = 1, config: dict | None = None,
                    timeout: float = 30) -> None:
    if broker_is_mock():  # no CreateTopics in librdkafka's mock: auto-create instead
        wait_for_partitions(broker, name, partitions, timeout)
        return
    admin = ck_admin(broker)
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=timeout)
    fs[name].result(timeout)
    wait_for_partitions(broker, name, partitions, timeout)


def wait_for_partitions(broker, name: str, partitions: int, timeout: float = 30) -> None:
    """Waits until metadata shows `partitions` partitions, each with a leader."""
    admin = ck_admin(broker)

    def ready():
        if broker_is_mock():
            # The mock auto-creates on a metadata request for the topic; partition count is its own.
            admin.list_topics(name, timeout=5)
            md = admin.list_topics(name, timeout=5)
            return name in md.topics and md.topics[name].error is None
        md = admin.list_topics(name, timeout=5)
        t = md.topics.get(name)
        return (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values()))

    wait_until(ready, timeout, what=f"topic {name} with {partitions} partitions")


def ck_produce_all(producer: Producer, topic: str, msgs, timeout: float = 60):
    """Produces (key, value[, partition[, timestamp[, headers]]]) tuples; returns the delivered
    Message objects in send order, raising on any delivery error."""
    results: list = [None] * len(msgs)

    def cb_for(i):
        def cb(err, msg):
            results[i] = err if err is not None else msg
        return cb

    for i, m in enumerate(msgs):
        kw = {"key": m[0], "value": m[1], "on_delivery": cb_for(i)}
        if len(m) > 2 and m[2] is not None:
            kw["partition"] = m[2]
        if len(m) > 3 and m[3] is not None:
            kw["timestamp"] = m[3]
        if len(m) > 4 and m[4] is not None:
            kw["headers"] = m[4]
        while True:
            try:
                producer.produce(topic, **kw)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages not delivered within {timeout}s"
    errs = [r for r in results if not hasattr(r, "offset")]
    assert not errs, f"delivery errors: {errs[:5]}"
    return results


def ck_consume_range(broker, topic: str, partitions: dict, timeout: float = 60, **extra):
    """Reads partitions {partition: (start_offset, end_offset_exclusive)}; returns
    {partition: [Message, ...]}. Fails on errors or on reading past the expected end."""
    c = ck_consumer(broker, **extra)
    try:
        c.assign([TopicPartition(topic, p, s) for p, (s, _) in partitions.items()])
        out = {p: [] for p in partitions}
        pending = {p for p, (s, e) in partitions.items() if e > s}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, \
                f"timed out; got {[(p, len(v)) for p, v in out.items()]} expected {partitions}"
            for m in c.consume(1000, 1.0):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        continue
                    raise KafkaException(m.error())
                p = m.partition()
                out[p].append(m)
                if m.offset() + 1 >= partitions[p][1]:
                    pending.discard(p)
        return out
    finally:
        c.close()


def ck_watermarks(broker, topic: str, partition: int = 0, timeout: float = 10):
    c = ck_consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    finally:
        c.close()


# ---- consumer groups ---------------------------------------------------------------------------

# Broker overrides for the consumer-group tests. group.initial.rebalance.delay.ms=0: the first join
# of an empty group does not wait 3 s (tests of other things must not pay it); 5 __consumer_offsets
# partitions instead of 50 (faster start-up; test_groups_kcat.py keeps the defaults); replication
# factor 1 spelled out (rafka's default; Kafka's is 3, its single-node server.properties sets 1).
GROUP_BROKER_CONFIG = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 5,
    "offsets.topic.replication.factor": 1,
}
# The broker's group.min.session.timeout.ms default: the smallest session a member may ask for.
GROUP_SESSION_TIMEOUT_MS = 6000
GROUP_HEARTBEAT_MS = 500


def ck_group_consumer(broker, group: str, **extra) -> Consumer:
    """A librdkafka consumer for subscribe(): short session, manual commits, earliest reset."""
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "session.timeout.ms": GROUP_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": GROUP_HEARTBEAT_MS,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra)
    return Consumer(conf)


def ck_group_generation(consumer) -> tuple[int, str]:
    """(generation id, member id) of a librdkafka group member.

    confluent-kafka returns consumer_group_metadata() as librdkafka's serialized
    rd_kafka_consumer_group_metadata_t: b"CGMDv2:", the generation id as a native-endian int32,
    then NUL-terminated group id and member id (then the instance id)."""
    raw = consumer.consumer_group_metadata()
    assert raw[:7] == b"CGMDv2:", f"unknown consumer group metadata format {raw[:16]!r}"
    generation = int.from_bytes(raw[7:11], sys.byteorder, signed=True)
    _group, member, _rest = raw[11:].split(b"\0", 2)
    return generation, member.decode()


def ck_poll_until(consumers, cond, timeout: float = 30, what: str = "condition", on_message=None):
    """Serves every consumer (rebalance callbacks run inside poll) until cond() is truthy; returns
    its value. Messages go to on_message(consumer, msg) if given, else are dropped."""
    deadline = time.monotonic() + timeout
    while True:
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and on_message is not None:
                on_message(c, m)
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
