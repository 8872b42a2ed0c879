"""Incremental fetch sessions (KIP-227) over the wire, as the Java client and Kafka's own
followers use them (librdkafka, kafka-python and aiokafka send sessionless full fetches, which
stay as they were): a full fetch at epoch 0 opens a session; incremental fetches list only what
changed and are answered only with partitions that have something new; wrong epochs, unknown
sessions and closed sessions get Kafka's errors."""
from __future__ import annotations

import pytest
from kafka.protocol.consumer.fetch import FetchRequest, FetchResponse

import txn_v2_wire
from broker_proc import is_mock
from helpers import ck_create_topic, ck_producer
from txn_v2_wire import Wire

pytestmark = pytest.mark.skipif(is_mock(), reason="rafka's fetch sessions")

txn_v2_wire.RESPONSES[FetchRequest] = FetchResponse

VERSION = 12  # topic names; the followers' v15+ sessions use topic ids
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


def partition(p: int, offset: int):
    return FetchRequest.FetchTopic.FetchPartition(
        partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
        log_start_offset=-1, partition_max_bytes=1 << 20)


def fetch(wire: Wire, session_id: int, epoch: int, parts: dict[str, list[tuple[int, int]]],
          forgotten: dict[str, list[int]] | None = None):
    return wire.call(
        FetchRequest, VERSION, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 24,
        isolation_level=0, session_id=session_id, session_epoch=epoch,
        topics=[FetchRequest.FetchTopic(topic=t, partitions=[partition(p, o) for p, o in ps])
                for t, ps in parts.items()],
        forgotten_topics_data=[FetchRequest.ForgottenTopic(topic=t, partitions=ps)
                               for t, ps in (forgotten or {}).items()],
        rack_id="")


def answered(resp) -> dict[tuple[str, int], int]:
    """{(topic, partition): bytes of records} of every partition the answer carries."""
    out = {}
    for t in resp.responses:
        for p in t.partitions:
            assert p.error_code == 0, (t.topic, p.partition_index, p.error_code)
            out[(t.topic, p.partition_index)] = len(p.records or b"")
    return out


def produce(broker, topic: str, partition: int, n: int) -> None:
    p = ck_producer(broker)
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=partition)
    assert p.flush(30) == 0


def test_an_incremental_fetch_session(broker):
    ck_create_topic(broker, "fs", partitions=2)
    produce(broker, "fs", 0, 5)
    host, port = broker.bootstrap.rsplit(":", 1)
    wire = Wire(host, int(port))
    try:
        # Epoch 0 opens a session and answers every partition.
        resp = fetch(wire, 0, 0, {"fs": [(0, 0), (1, 0)]})
        assert resp.error_code == 0 and resp.session_id != 0, resp
        sid = resp.session_id
        got = answered(resp)
        assert set(got) == {("fs", 0), ("fs", 1)} and got[("fs", 0)] > 0, got

        # Partition 0 read to its end; nothing new anywhere: an empty answer.
        resp = fetch(wire, sid, 1, {"fs": [(0, 5)]})
        assert resp.error_code == 0 and resp.session_id == sid
        assert answered(resp) == {}

        # New records on partition 1, which the request does not list: the session does.
        produce(broker, "fs", 1, 3)
        got = answered(fetch(wire, sid, 2, {}))
        assert list(got) == [("fs", 1)] and got[("fs", 1)] > 0, got

        # The same epoch again, and a session nobody opened.
        assert fetch(wire, sid, 2, {}).error_code == INVALID_FETCH_SESSION_EPOCH
        assert fetch(wire, sid + 1, 1, {}).error_code == FETCH_SESSION_ID_NOT_FOUND

        # Forgotten partitions are no longer fetched: new data there is not sent.
        resp = fetch(wire, sid, 3, {"fs": [(1, 3)]}, forgotten={"fs": [0]})
        assert answered(resp) == {}
        produce(broker, "fs", 0, 2)
        assert answered(fetch(wire, sid, 4, {})) == {}
        # Added back, it is answered with what it has.
        got = answered(fetch(wire, sid, 5, {"fs": [(0, 5)]}))
        assert list(got) == [("fs", 0)] and got[("fs", 0)] > 0, got

        # Epoch -1 closes the session (the request is then a sessionless full fetch).
        resp = fetch(wire, sid, -1, {"fs": [(0, 0)]})
        assert resp.error_code == 0 and resp.session_id == 0
        assert answered(resp)[("fs", 0)] > 0
        assert fetch(wire, sid, 6, {}).error_code == FETCH_SESSION_ID_NOT_FOUND

        # Sessionless full fetches (what librdkafka sends) get no session.
        resp = fetch(wire, 0, -1, {"fs": [(0, 0)]})
        assert resp.error_code == 0 and resp.session_id == 0
    finally:
        wire.close()


def test_no_sessions_when_the_cache_has_no_slots(make_broker):
    broker = make_broker(overrides={"max.incremental.fetch.session.cache.slots": "0"})
    ck_create_topic(broker, "nofs")
    host, port = broker.bootstrap.rsplit(":", 1)
    wire = Wire(host, int(port))
    try:
        resp = fetch(wire, 0, 0, {"nofs": [(0, 0)]})
        # A full answer without a session: the client keeps sending full fetches.
        assert resp.error_code == 0 and resp.session_id == 0
        assert set(answered(resp)) == {("nofs", 0)}
    finally:
        wire.close()
