"""Garbage on the wire closes that one connection; nothing else is disturbed.

Raw-socket requests are built by hand so nothing in a client library can smooth them over.
"""
from __future__ import annotations

import random
import socket
import struct
import time

import pytest
from confluent_kafka import TopicPartition

from helpers import ck_consumer, ck_create_topic, ck_producer

SEED = 20240601
UNSUPPORTED_VERSION = 35


def connect(broker) -> socket.socket:
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def header_v1(api_key: int, version: int, corr: int, client_id: bytes = b"rafka-bad-input") -> bytes:
    return struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> bytes:
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    assert 0 <= n < 16 * 1024 * 1024, n
    return recv_exact(s, n)


def closed_by_peer(s: socket.socket, timeout: float = 10) -> bool:
    """True if the broker closes the connection within `timeout` (any bytes sent first are
    discarded). False if it is still open when the timeout expires."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def parse_api_versions_v0(body: bytes) -> tuple[int, int, dict]:
    corr, err, n = struct.unpack(">ihi", body[:10])
    apis = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", body[10 + 6 * i: 16 + 6 * i])
        apis[k] = (lo, hi)
    return corr, err, apis


class Canary:
    """A well-behaved librdkafka producer and consumer on their own connections; `check()` sends
    one record and reads it back."""

    def __init__(self, broker):
        self.topic = "canary"
        ck_create_topic(broker, self.topic)
        self.p = ck_producer(broker, **{"linger.ms": 0})
        self.c = ck_consumer(broker, **{"fetch.wait.max.ms": 100})
        self.c.assign([TopicPartition(self.topic, 0, 0)])
        self.n = 0

    def check(self, label: str) -> None:
        errs = []
        self.p.produce(self.topic, value=b"canary-%d" % self.n, partition=0,
                       on_delivery=lambda e, m: errs.append(e) if e else None)
        assert self.p.flush(20) == 0 and not errs, f"produce failed after {label}: {errs}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = self.c.poll(0.5)
            if m is None or m.error():
                continue
            assert m.value() == b"canary-%d" % self.n, (label, m.value())
            self.n += 1
            return
        raise AssertionError(f"consumer got nothing after {label}")

    def close(self):
        self.c.close()
        # Drop the producer now, not at garbage collection after the broker is gone (it would
        # log connection-refused errors into the next test's output).
        self.p.flush(5)
        self.p = None


@pytest.fixture
def canary(broker):
    c = Canary(broker)
    c.check("start")
    yield c
    c.close()


def test_api_versions_unsupported_version_gets_v0_error_response(broker, canary):
    s = connect(broker)
    # Header v2 (flexible, as a client uses for ApiVersions v3+) and a v3-shaped body; the broker
    # must not try to parse the body of a version it does not know.
    body = b"\x0brafka-test\x061.0.0\x00"
    s.sendall(frame(header_v1(18, 127, 4242) + b"\x00" + body))
    corr, err, apis = parse_api_versions_v0(recv_frame(s))
    assert corr == 4242
    assert err == UNSUPPORTED_VERSION
    # The v0 answer still lists what is supported, so the client can pick a version.
    assert 18 in apis and apis[18][1] >= 3, apis
    for key in (0, 1, 2, 3):  # Produce, Fetch, ListOffsets, Metadata
        assert key in apis, apis
    # Same connection still usable: a proper ApiVersions v0 request.
    s.sendall(frame(header_v1(18, 0, 4243)))
    corr, err, apis2 = parse_api_versions_v0(recv_frame(s))
    assert (corr, err) == (4243, 0)
    assert apis2 == apis
    s.close()
    canary.check("ApiVersions v127")


def test_metadata_unsupported_version(broker, canary):
    s = connect(broker)
    s.sendall(frame(header_v1(3, 999, 77) + struct.pack(">i", 0)))
    # Apache Kafka closes the connection here (InvalidRequestException: version not enabled).
    # Also accepted: an error response carrying UNSUPPORTED_VERSION for this correlation id.
    s.settimeout(10)
    try:
        first = s.recv(4)
    except ConnectionResetError:
        first = b""
    except socket.timeout:
        pytest.fail("no response and no close within 10s")
    if first:
        rest = recv_exact(s, 4 - len(first)) if len(first) < 4 else b""
        (n,) = struct.unpack(">i", first + rest)
        body = recv_exact(s, n)
        assert struct.unpack(">i", body[:4])[0] == 77
        assert struct.pack(">h", UNSUPPORTED_VERSION) in body[4:], body
    s.close()
    canary.check("Metadata v999")


@pytest.mark.parametrize("api_key", [9999, 200, -1])
def test_unknown_api_key_closes_connection(broker, canary, api_key):
    s = connect(broker)
    s.sendall(frame(header_v1(api_key, 0, 1)))
    assert closed_by_peer(s), f"api key {api_key}: connection left open"
    s.close()
    canary.check(f"api key {api_key}")


@pytest.mark.parametrize("size", [2**31 - 1, 0x7FFF0000, -1, -(2**31)])
def test_absurd_size_prefix_closes_without_allocating(broker, canary, size):
    rss_before = broker.rss_kib()
    s = connect(broker)
    s.sendall(struct.pack(">i", size) + b"\x00\x12\x00\x00")
    # The broker must refuse on the size alone (socket.request.max.bytes, default 100 MiB),
    # not wait for 2 GiB to arrive.
    assert closed_by_peer(s, 10), f"size {size}: connection left open"
    s.close()
    grown = broker.rss_kib() - rss_before
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB after size prefix {size}"
    canary.check(f"size {size}")


def test_request_just_over_socket_request_max_bytes(broker, canary):
    s = connect(broker)
    s.sendall(struct.pack(">i", 104857600 + 1) + header_v1(18, 0, 1))
    assert closed_by_peer(s, 10)
    s.close()
    canary.check("oversized request")


def test_truncated_frames(broker, canary):
    rng = random.Random(SEED)
    for i, (claimed, sent) in enumerate([(100, 50), (20, 3), (4096, 4095), (10, 0), (1000, 999)]):
        s = connect(broker)
        payload = header_v1(18, 0, i) + bytes(rng.randrange(256) for _ in range(claimed))
        s.sendall(struct.pack(">i", claimed) + payload[:sent])
        s.close()  # the broker sees EOF mid-frame
    # And a size prefix cut in half.
    s = connect(broker)
    s.sendall(b"\x00\x00")
    s.close()
    canary.check("truncated frames")


def test_random_bytes(broker, canary):
    rng = random.Random(SEED)
    for i in range(30):
        n = rng.choice([1, 3, 4, 7, 64, 1000, 65536])
        data = bytes(rng.randrange(256) for _ in range(n))
        if i % 3 == 0:
            # A plausible size prefix followed by garbage, so the header/body parsers see it too.
            data = struct.pack(">i", len(data)) + data
        s = connect(broker)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # EOF: a broker waiting for more must now give up
        except (ConnectionResetError, BrokenPipeError):
            pass  # already refused
        assert closed_by_peer(s, 10), f"random input #{i} ({n} bytes): connection left open"
        s.close()
        if i % 10 == 9:
            canary.check(f"random input #{i}")
    canary.check("random bytes")
    assert broker.alive()


def test_valid_request_after_garbage_on_other_connection(broker, canary):
    # One connection sends garbage while another, raw, one does a proper exchange.
    good = connect(broker)
    bad = connect(broker)
    bad.sendall(b"\xff" * 64)
    good.sendall(frame(header_v1(18, 0, 9)))
    corr, err, apis = parse_api_versions_v0(recv_frame(good))
    assert (corr, err) == (9, 0) and 0 in apis
    assert closed_by_peer(bad, 10)
    good.close()
    bad.close()
    canary.check("mixed connections")
    assert broker.alive()
