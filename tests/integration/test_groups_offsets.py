"""Committed offsets: durable across kill -9, metadata strings and leader epochs round-trip, and
__consumer_offsets holds Kafka's own record formats (read here with a stock consumer and decoded
by a small decoder written from Kafka's OffsetCommitKey/Value and GroupMetadataKey/Value schemas).
"""
from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from helpers import (GROUP_BROKER_CONFIG, GROUP_SESSION_TIMEOUT_MS, ck_admin, ck_consume_range,
                     ck_create_topic, ck_group_consumer, ck_group_generation, ck_poll_until,
                     ck_produce_all, ck_producer, ck_watermarks, wait_until)

OFFSETS_TOPIC = "__consumer_offsets"


def produce(broker, topic: str, partitions: int, per_partition: int):
    ck_produce_all(ck_producer(broker), topic,
                   [(None, f"{p}-{i}".encode(), p) for p in range(partitions)
                    for i in range(per_partition)])


def committed(consumer, topic: str, partitions: int) -> list[TopicPartition]:
    return consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_consumer_resumes_at_commits_after_broker_kill9(broker, unique_topic):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, 3)
    produce(broker, topic, 3, 20)

    seen = {}
    c = ck_group_consumer(broker, group)
    try:
        c.subscribe([topic])
        ck_poll_until([c], lambda: len(seen) == 60, 30, "all 60 records",
                      on_message=lambda _c, m: m.error() or seen.setdefault(
                          (m.partition(), m.offset()), m))
        # Commit "processed up to here" through the messages themselves (offset + 1, with the
        # message's leader epoch): p0 after offset 4, p1 after 11, p2 completely.
        for p, o in ((0, 4), (1, 11), (2, 19)):
            c.commit(message=seen[(p, o)], asynchronous=False)
        assert [tp.offset for tp in committed(c, topic, 3)] == [5, 12, 20]
    finally:
        c.close()

    broker.kill9()
    broker.start()

    got = []
    eof = set()

    def on_message(_c, m):
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                return
            raise KafkaException(m.error())
        got.append((m.partition(), m.offset(), m.value()))

    c = ck_group_consumer(broker, group, **{"enable.partition.eof": True})
    try:
        c.subscribe([topic])
        ck_poll_until([c], lambda: eof == {0, 1, 2}, 60, "end of all 3 partitions",
                      on_message=on_message)
        assert [tp.offset for tp in committed(c, topic, 3)] == [5, 12, 20]
    finally:
        c.close()
    want = [(0, o, f"0-{o}".encode()) for o in range(5, 20)] + \
           [(1, o, f"1-{o}".encode()) for o in range(12, 20)]
    assert sorted(got) == want, f"resumed at the wrong place: {sorted(got)[:5]}..."


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_commit_metadata_and_leader_epoch_roundtrip(broker, unique_topic):
    topic = unique_topic
    group = f"g-{topic}"
    ck_create_topic(broker, topic, 3)
    produce(broker, topic, 3, 10)
    long_meta = "ünïcødé ✓ " + "m" * 300

    c = ck_group_consumer(broker, group)
    try:
        c.subscribe([topic])
        ck_poll_until([c], lambda: len(c.assignment()) == 3, 30, "3 partitions assigned")
        res = c.commit(offsets=[TopicPartition(topic, 0, 3, metadata="first", leader_epoch=0),
                                TopicPartition(topic, 1, 7, metadata=long_meta, leader_epoch=3),
                                TopicPartition(topic, 2, 10)], asynchronous=False)
        assert all(tp.error is None for tp in res), res

        def check(tps, when):
            got = [(tp.partition, tp.offset, tp.metadata or "", tp.leader_epoch) for tp in tps]
            assert got == [(0, 3, "first", 0), (1, 7, long_meta, 3), (2, 10, "", None)], \
                f"{when}: {got}"
        check(committed(c, topic, 3), "before the restart")

        # Metadata over offset.metadata.max.bytes (4096) is refused and changes nothing.
        try:
            res = c.commit(offsets=[TopicPartition(topic, 0, 4, metadata="x" * 4097)],
                           asynchronous=False)
            codes = {tp.error.code() for tp in res if tp.error is not None}
        except KafkaException as e:
            codes = {e.args[0].code()}
        assert codes == {KafkaError.OFFSET_METADATA_TOO_LARGE}, codes
        check(committed(c, topic, 3), "after the refused commit")

        # kill -9 with the member still in the group; a fresh client reads the same answers.
        broker.kill9()
        broker.start()
        other = ck_group_consumer(broker, group)
        try:
            check(committed(other, topic, 3), "after kill -9")
        finally:
            other.close()
    finally:
        c.close()


# ---- __consumer_offsets ---------------------------------------------------------------------------

class Reader:
    """Kafka's schema primitives: big-endian ints, i16-length strings and i32-length bytes (-1 is
    null); flexible versions use unsigned-varint lengths + 1 (0 is null) and tagged fields."""

    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.i)[0]
        self.i += struct.calcsize(fmt)
        return v

    def i16(self): return self._take(">h")
    def i32(self): return self._take(">i")
    def i64(self): return self._take(">q")

    def uvarint(self):
        shift = v = 0
        while True:
            byte = self.b[self.i]
            self.i += 1
            v |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return v
            shift += 7

    def _raw(self, n):
        if n < 0:
            return None
        v = self.b[self.i:self.i + n]
        assert len(v) == n, "truncated"
        self.i += n
        return v

    def string(self, flexible=False):
        raw = self._raw(self.uvarint() - 1 if flexible else self.i16())
        return None if raw is None else raw.decode("utf-8")

    def bytes_(self, flexible=False):
        return self._raw(self.uvarint() - 1 if flexible else self.i32())

    def array_len(self, flexible=False):
        return self.uvarint() - 1 if flexible else self.i32()

    def tagged_fields(self, flexible):
        if flexible:
            for _ in range(self.uvarint()):
                self.uvarint()                 # tag
                self._raw(self.uvarint())      # value

    def end(self):
        assert self.i == len(self.b), f"{len(self.b) - self.i} trailing bytes"


def decode_key(key: bytes):
    r = Reader(key)
    version = r.i16()
    if version in (0, 1):  # OffsetCommitKey
        out = ("offset", r.string(), r.string(), r.i32())
    elif version == 2:     # GroupMetadataKey
        out = ("group", r.string())
    else:                  # the new (KIP-848/932) coordinators' record types
        return ("other", version)
    r.end()
    return out


def decode_offset_value(value: bytes) -> dict:
    r = Reader(value)
    v = r.i16()
    assert 0 <= v <= 4, f"OffsetCommitValue version {v}"
    flex = v >= 4
    out = {"version": v, "offset": r.i64(), "leader_epoch": r.i32() if v >= 3 else -1}
    out["metadata"] = r.string(flex)
    out["commit_timestamp"] = r.i64()
    if v == 1:
        out["expire_timestamp"] = r.i64()
    r.tagged_fields(flex)
    r.end()
    return out


def decode_group_value(value: bytes) -> dict:
    r = Reader(value)
    v = r.i16()
    assert 0 <= v <= 4, f"GroupMetadataValue version {v}"
    flex = v >= 4
    out = {"version": v, "protocol_type": r.string(flex), "generation": r.i32(),
           "protocol": r.string(flex), "leader": r.string(flex)}
    if v >= 2:
        out["current_state_timestamp"] = r.i64()
    members = []
    for _ in range(r.array_len(flex)):
        m = {"member_id": r.string(flex)}
        m["group_instance_id"] = r.string(flex) if v >= 3 else None
        m["client_id"] = r.string(flex)
        m["client_host"] = r.string(flex)
        m["rebalance_timeout"] = r.i32() if v >= 1 else -1
        m["session_timeout"] = r.i32()
        m["subscription"] = r.bytes_(flex)
        m["assignment"] = r.bytes_(flex)
        r.tagged_fields(flex)
        members.append(m)
    out["members"] = members
    r.tagged_fields(flex)
    r.end()
    return out


def decode_subscription(b: bytes) -> tuple[int, list[str]]:
    """ConsumerProtocolSubscription (any version): (version, topics)."""
    r = Reader(b)
    v = r.i16()
    return v, [r.string() for _ in range(r.i32())]


def decode_assignment(b: bytes) -> dict[str, list[int]]:
    """ConsumerProtocolAssignment: {topic: [partitions]}."""
    r = Reader(b)
    r.i16()
    out = {}
    for _ in range(r.i32()):
        t = r.string()
        out[t] = [r.i32() for _ in range(r.i32())]
    return out


def java_string_hash(s: str) -> int:
    h = 0
    for unit in struct.unpack(f"<{len(s.encode('utf-16-le')) // 2}H", s.encode("utf-16-le")):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition_for(group: str, partitions: int) -> int:
    """Kafka: Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def read_offsets_topic(broker) -> list[tuple[int, tuple, dict | None]]:
    """Every record of __consumer_offsets as (partition, decoded key, decoded value or None)."""
    md = ck_admin(broker).list_topics(OFFSETS_TOPIC, timeout=10)
    parts = sorted(md.topics[OFFSETS_TOPIC].partitions)
    ranges = {p: (0, ck_watermarks(broker, OFFSETS_TOPIC, p)[1]) for p in parts}
    out = []
    for p, msgs in ck_consume_range(broker, OFFSETS_TOPIC, ranges).items():
        for m in msgs:
            key = decode_key(m.key())
            if m.value() is None:
                value = None
            elif key[0] == "offset":
                value = decode_offset_value(m.value())
            elif key[0] == "group":
                value = decode_group_value(m.value())
            else:
                value = {"raw": m.value()}
            out.append((p, key, value))
    return out


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_consumer_offsets_topic_holds_kafka_records(broker, unique_topic):
    topic = unique_topic
    group = f"g-{topic}"
    num_offsets_partitions = GROUP_BROKER_CONFIG["offsets.topic.num.partitions"]
    ck_create_topic(broker, topic, 2)
    produce(broker, topic, 2, 10)

    c = ck_group_consumer(broker, group, **{"client.id": "decoder-test"})
    closed = False
    try:
        c.subscribe([topic])
        ck_poll_until([c], lambda: len(c.assignment()) == 2, 30, "2 partitions assigned")
        generation, member = ck_group_generation(c)
        t0 = int(time.time() * 1000)
        c.commit(offsets=[TopicPartition(topic, 0, 4, metadata="m0", leader_epoch=0),
                          TopicPartition(topic, 1, 9, metadata="m1")], asynchronous=False)
        t1 = int(time.time() * 1000)

        md = ck_admin(broker).list_topics(OFFSETS_TOPIC, timeout=10)
        assert len(md.topics[OFFSETS_TOPIC].partitions) == num_offsets_partitions

        records = read_offsets_topic(broker)
        mine = [r for r in records if r[1][1] == group]
        assert mine, f"no records of {group} in {OFFSETS_TOPIC}"
        # The group's records live in the partition Kafka's coordinator lookup points at.
        assert {p for p, _, _ in mine} == {offsets_partition_for(group, num_offsets_partitions)}

        commits = {}
        for _p, key, value in mine:
            if key[0] == "offset" and key[2] == topic:
                commits[key[3]] = value  # the last record per key wins, as in a compacted topic
        assert set(commits) == {0, 1}
        # confluent-kafka sends metadata as a C string *with* its NUL terminator (metadata_size =
        # strlen + 1), and the broker stores what it got, as Kafka does; committed() hides it again.
        assert (commits[0]["offset"], commits[0]["metadata"], commits[0]["leader_epoch"]) \
            == (4, "m0\0", 0)
        assert (commits[1]["offset"], commits[1]["metadata"], commits[1]["leader_epoch"]) \
            == (9, "m1\0", -1)
        for v in commits.values():
            assert t0 - 1000 <= v["commit_timestamp"] <= t1 + 1000, (v, t0, t1)

        groups = [v for _p, key, v in mine if key[0] == "group" and v is not None]
        assert groups, "no GroupMetadata record"
        g = groups[-1]
        assert g["protocol_type"] == "consumer"
        assert g["generation"] == generation
        assert g["protocol"] == "range"
        assert g["leader"] == member
        assert [m["member_id"] for m in g["members"]] == [member]
        m = g["members"][0]
        assert m["client_id"] == "decoder-test"
        assert m["client_host"] == "/127.0.0.1"
        assert m["group_instance_id"] is None
        assert m["session_timeout"] == GROUP_SESSION_TIMEOUT_MS
        assert m["rebalance_timeout"] == 300000  # librdkafka: max.poll.interval.ms
        assert decode_subscription(m["subscription"])[1] == [topic]
        assert decode_assignment(m["assignment"]) == {topic: [0, 1]}

        # The member leaves: the next generation of the group is empty.
        c.close()
        closed = True

        def empty_generation():
            gs = [v for _p, key, v in read_offsets_topic(broker)
                  if key == ("group", group) and v is not None]
            return gs[-1] if gs and gs[-1]["generation"] > generation else None
        g = wait_until(empty_generation, 15, interval=0.2, what="the empty group's record")
        assert g["generation"] == generation + 1
        assert g["members"] == []
        assert g["protocol"] is None and g["leader"] is None
        assert g["protocol_type"] == "consumer"
    finally:
        if not closed:
            c.close()
