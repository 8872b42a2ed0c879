"""A client that pipelines fetches and never reads its answers must not grow the broker's memory
without bound: queued answers are limited per connection (count and bytes)."""
from __future__ import annotations

import socket
import struct
import time

import pytest
from confluent_kafka.admin import NewTopic

from broker_proc import is_mock
from helpers import ck_admin, ck_producer

pytestmark = pytest.mark.skipif(is_mock(), reason="needs the real broker")

PIPELINED_FETCHES = 400
FETCH_BYTES = 1 << 20


def fetch_v4(correlation_id: int, topic: str, max_bytes: int = FETCH_BYTES) -> bytes:
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, max_bytes, 0)  # replica, max_wait, min_bytes, max_bytes, isolation
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes)  # partition 0 from offset 0
    header = struct.pack(">hhi", 1, 4, correlation_id) + struct.pack(">h", -1)
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return bytes(buf)


def rss_growth_mib(broker, rss_before_kib: int, seconds: float = 4) -> float:
    """The broker's largest RSS growth over `seconds`: there is no event for "the broker has
    queued all it will", so the test watches it for a while with the client reading nothing."""
    peak = rss_before_kib
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, broker.rss_kib())
        time.sleep(0.1)
    return (peak - rss_before_kib) / 1024


def read_answers_in_order(s: socket.socket, correlation_ids) -> None:
    for i in correlation_ids:
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        data = recv_exact(s, size)
        assert struct.unpack(">i", data[:4])[0] == i


def test_unread_pipelined_fetches_do_not_grow_memory(broker, unique_topic):
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(unique_topic, 1, 1)])[unique_topic].result(30)
    p = ck_producer(broker, **{"linger.ms": 20})
    for i in range(3000):
        p.produce(unique_topic, value=bytes(1024))
    assert p.flush(30) == 0

    rss_before = broker.rss_kib()
    s = socket.create_connection((broker.host, broker.port))
    s.sendall(b"".join(fetch_v4(i, unique_topic) for i in range(PIPELINED_FETCHES)))
    # Each answer is a fresh 1 MiB read of the active segment; unbounded queueing would hold
    # ~400 MiB. Watch the broker for a few seconds while the client reads nothing.
    growth_mib = rss_growth_mib(broker, rss_before)
    assert growth_mib < 150, f"broker RSS grew by {growth_mib:.0f} MiB"
    # The connection still works once the client reads: every answer arrives, in order.
    s.settimeout(30)
    read_answers_in_order(s, range(PIPELINED_FETCHES))
    s.close()


def test_answers_cut_short_do_not_hold_their_whole_read(broker, unique_topic):
    """A fetch whose next batch does not fit its max bytes answers with the batches before it.
    The broker read max bytes from the active segment to find that out; the answer must not keep
    that whole read alive, or the per-connection bound on unsent answers (which counts answer
    bytes) no longer bounds memory: here 16 KiB answers would each hold 512 KiB."""
    admin = ck_admin(broker)
    admin.create_topics([NewTopic(unique_topic, 1, 1)])[unique_topic].result(30)
    # One producer for both batches, so the second one is not split while metadata is fetched.
    p = ck_producer(broker, **{"linger.ms": 1000, "batch.size": 1_000_000})
    for _ in range(16):
        p.produce(unique_topic, value=bytes(1024), partition=0)
    assert p.flush(30) == 0  # batch 1: 16 records, about 16.5 KiB
    for _ in range(900):
        p.produce(unique_topic, value=bytes(1024), partition=0)
    assert p.flush(30) == 0  # batch 2: 900 records, about 930 KiB

    max_bytes = 512 * 1024
    s = socket.create_connection((broker.host, broker.port))
    s.settimeout(30)
    s.sendall(fetch_v4(0, unique_topic, max_bytes))
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    recv_exact(s, size)
    assert 16 * 1024 < size < 32 * 1024, f"answer of {size} bytes: not just the first batch"

    fetches = 1000
    rss_before = broker.rss_kib()
    s.sendall(b"".join(fetch_v4(i, unique_topic, max_bytes) for i in range(1, fetches + 1)))
    # About 16 MiB of answers: a few MiB fit in the socket buffers, the rest waits in the broker.
    # If each answer held its 512 KiB read, the queue (up to queued.max.requests = 500 answers)
    # would hold about 250 MiB; watch the broker while the client reads nothing.
    growth_mib = rss_growth_mib(broker, rss_before)
    assert growth_mib < 64, f"broker RSS grew by {growth_mib:.0f} MiB"
    read_answers_in_order(s, range(1, fetches + 1))
    s.close()
