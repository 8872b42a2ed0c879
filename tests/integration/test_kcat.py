"""kcat (librdkafka from Debian) against rafka with default client settings."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from helpers import wait_until

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")


def kcat(broker, *args, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = ["kcat", "-b", broker.bootstrap, *args]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd} rc={p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


def metadata(broker, *args) -> dict:
    return json.loads(kcat(broker, "-L", "-J", *args).stdout)


def test_list_brokers(broker):
    md = metadata(broker)
    assert [b["id"] for b in md["brokers"]] == [1]
    # The advertised listener, verbatim (never resolved).
    assert md["brokers"][0]["name"] == f"127.0.0.1:{broker.port}"
    assert md["originating_broker"]["id"] == 1
    assert isinstance(md["topics"], list)


def test_produce_consume_headers_keys(broker):
    topic = "auto_topic"
    n = 50
    lines = "".join(f"key{i % 7}:value-{i}\n" for i in range(n))
    t0 = int(time.time() * 1000)
    # Producing to a missing topic auto-creates it (auto.create.topics.enable defaults to true).
    kcat(broker, "-P", "-K:", "-H", "h1=v1", "-H", "h2=v2", "-t", topic, input=lines)
    t1 = int(time.time() * 1000)

    out = kcat(broker, "-C", "-o", "beginning", "-e", "-J", "-t", topic).stdout
    msgs = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert len(msgs) == n, out[-2000:]
    for i, m in enumerate(msgs):
        assert m["topic"] == topic
        assert m["partition"] == 0  # num.partitions defaults to 1
        assert m["offset"] == i
        assert m["key"] == f"key{i % 7}"
        assert m["payload"] == f"value-{i}"
        assert m["headers"] == ["h1", "v1", "h2", "v2"]
        assert m["tstype"] == "create"
        # CreateTime set by the client while we were producing (1 s slack for clock granularity).
        assert t0 - 1000 <= m["ts"] <= t1 + 1000, (m["ts"], t0, t1)

    md = metadata(broker)
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    assert [p["partition"] for p in topics[topic]["partitions"]] == [0]
    assert topics[topic]["partitions"][0]["leader"] == 1


@pytest.mark.broker_config({"num.partitions": 3})
def test_metadata_auto_creates_with_num_partitions(broker):
    topic = "fresh_topic_from_metadata"

    # Kafka may answer the first request with LEADER_NOT_AVAILABLE while it creates the topic.
    def created():
        md = metadata(broker, "-t", topic)
        t = [t for t in md["topics"] if t["topic"] == topic]
        if t and "error" not in t[0] and len(t[0]["partitions"]) == 3:
            return t[0]
        return None

    t = wait_until(created, 30, what="auto-created topic")
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == 1 for p in t["partitions"])
    # And the plain listing shows it too.
    assert topic in {t["topic"] for t in metadata(broker)["topics"]}
