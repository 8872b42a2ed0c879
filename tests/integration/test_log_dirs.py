"""Several log.dirs and DescribeLogDirs: partitions spread over the dirs (the dir with the fewest
partitions takes the next one, Kafka's LogManager.nextLogDirs), each dir has its own
meta.properties (one cluster.id and node.id, its own directory.id), checkpoints and clean-shutdown
marker; every dir is loaded again after a clean or a kill -9 restart; DescribeLogDirs (through
kafka-python's KafkaAdminClient.describe_log_dirs) reports each partition's size, equal to its
segment files on disk. A partition found in two dirs, or a dir of another cluster, stops the start
with a message that names the dirs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from broker_proc import BrokerStartError, is_mock
from helpers import ck_consume_range, ck_create_topic, ck_produce_all, ck_producer, ck_watermarks

pytestmark = pytest.mark.skipif(is_mock(), reason="needs rafka's log dirs")

PARTITIONS = 6


def two_dir_broker(make_broker, start: bool = True):
    b = make_broker(start=False)
    dirs = [b.root / "dirA", b.root / "dirB"]
    b.extra["log.dirs"] = ",".join(str(d) for d in dirs)
    if start:
        b.start()
    return b, dirs


def meta(d: Path) -> dict:
    out = {}
    for line in (d / "meta.properties").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def partition_dirs(d: Path, topic: str) -> set[int]:
    out = set()
    for p in d.iterdir():
        if p.is_dir() and p.name.startswith(topic + "-"):
            suffix = p.name[len(topic) + 1:]
            if suffix.isdigit():
                out.add(int(suffix))
    return out


def segment_bytes(d: Path, topic: str, partition: int) -> int:
    return sum(f.stat().st_size for f in (d / f"{topic}-{partition}").iterdir()
               if f.name.endswith(".log"))


def describe(broker, topic_partitions=None) -> list[dict]:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        res = admin.describe_log_dirs(topic_partitions)
    finally:
        admin.close()
    assert len(res) == 1 and res[0]["broker"] == broker.node_id, res
    return res[0]["log_dirs"]


def sizes_by_dir(log_dirs: list[dict], topic: str) -> dict[str, dict[int, dict]]:
    """{log_dir: {partition: partition dict}} for `topic`."""
    out: dict[str, dict[int, dict]] = {}
    for r in log_dirs:
        assert r["error_code"] == 0, r
        parts = out.setdefault(r["log_dir"], {})
        for t in r["topics"]:
            if t["name"] == topic:
                for p in t["partitions"]:
                    parts[p["partition_index"]] = p
    return out


def produce(broker, topic: str, per_partition: int, size: int, tag: str) -> None:
    msgs = [(None, (f"{tag}-{i:05d}-".encode() + b"v" * size), p)
            for p in range(PARTITIONS) for i in range(per_partition)]
    ck_produce_all(ck_producer(broker, **{"linger.ms": 5}), topic, msgs)


def check_all_consumable(broker, topic: str, per_partition: int) -> None:
    ends = {p: ck_watermarks(broker, topic, p)[1] for p in range(PARTITIONS)}
    assert all(e == per_partition for e in ends.values()), ends
    got = ck_consume_range(broker, topic, {p: (0, per_partition) for p in range(PARTITIONS)})
    for p, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(per_partition)), p


def test_partitions_spread_over_dirs_and_describe_log_dirs(make_broker, unique_topic):
    broker, dirs = two_dir_broker(make_broker)
    topic = unique_topic
    # Both dirs formatted: one cluster and node id, distinct directory ids.
    ma, mb = meta(dirs[0]), meta(dirs[1])
    assert ma["cluster.id"] == mb["cluster.id"] and ma["node.id"] == mb["node.id"] == "1"
    assert ma["directory.id"] != mb["directory.id"]

    ck_create_topic(broker, topic, PARTITIONS)
    in_a, in_b = partition_dirs(dirs[0], topic), partition_dirs(dirs[1], topic)
    # The fewest-partitions rule splits 6 new partitions 3/3 (the metadata log does not count).
    assert len(in_a) == 3 and len(in_b) == 3 and not in_a & in_b, (in_a, in_b)
    where = {p: dirs[0] if p in in_a else dirs[1] for p in range(PARTITIONS)}

    produce(broker, topic, 50, 100, "a")
    before = sizes_by_dir(describe(broker, [topic]), topic)
    assert set(before) == {str(dirs[0].absolute()), str(dirs[1].absolute())}, before
    assert set(before[str(dirs[0].absolute())]) == in_a
    assert set(before[str(dirs[1].absolute())]) == in_b
    for d, parts in before.items():
        for p, info in parts.items():
            assert info["partition_size"] == segment_bytes(Path(d), topic, p) > 50 * 100
            assert info["offset_lag"] == 0 and info["is_future_key"] is False

    # More data: every size grows by what was written, and still equals the files on disk.
    produce(broker, topic, 30, 1000, "b")
    log_dirs = describe(broker, [topic])
    after = sizes_by_dir(log_dirs, topic)
    for d, parts in after.items():
        for p, info in parts.items():
            assert info["partition_size"] >= before[d][p]["partition_size"] + 30 * 1000
            assert info["partition_size"] == segment_bytes(Path(d), topic, p)
    # v4: the file system's size; usable never exceeds total.
    for r in log_dirs:
        assert 0 < r["usable_bytes"] <= r["total_bytes"], r

    # Only the partitions asked for; unknown topics are simply absent (no error).
    one = describe(broker, {topic: [0], "no-such-topic": [0]})
    listed = [(r["log_dir"], t["name"], p["partition_index"])
              for r in one for t in r["topics"] for p in t["partitions"]]
    assert listed == [(str(where[0].absolute()), topic, 0)], one
    assert all(r["error_code"] == 0 for r in one)

    # Null topics (kafka-python always names topics, so send the request itself): everything.
    from kafka.protocol.admin import DescribeLogDirsRequest
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        async def send_null_topics():
            return await admin._manager.send(DescribeLogDirsRequest(topics=None),
                                             node_id=broker.node_id)
        resp = admin._manager.run(send_null_topics)
    finally:
        admin.close()
    every = {(t.name, p.partition_index) for r in resp.results for t in r.topics
             for p in t.partitions}
    assert {(topic, p) for p in range(PARTITIONS)} <= every, every


def test_restart_loads_every_dir_clean_and_after_kill9(make_broker, unique_topic):
    broker, dirs = two_dir_broker(make_broker)
    topic = unique_topic
    ck_create_topic(broker, topic, PARTITIONS)
    layout = (partition_dirs(dirs[0], topic), partition_dirs(dirs[1], topic))
    assert layout[0] and layout[1]
    produce(broker, topic, 40, 200, "a")

    broker.stop()
    # Each dir has its own checkpoints and clean-shutdown marker, naming only its partitions.
    for d, mine in zip(dirs, layout):
        assert (d / ".kafka_cleanshutdown").exists()
        lines = (d / "recovery-point-offset-checkpoint").read_text().splitlines()[2:]
        listed = {int(line.split()[1]) for line in lines if line.split()[0] == topic}
        assert listed == mine, (d, listed, mine)
    broker.start()
    assert (partition_dirs(dirs[0], topic), partition_dirs(dirs[1], topic)) == layout
    check_all_consumable(broker, topic, 40)

    produce(broker, topic, 20, 200, "b")
    broker.kill9()
    assert not (dirs[0] / ".kafka_cleanshutdown").exists()
    broker.start()
    assert (partition_dirs(dirs[0], topic), partition_dirs(dirs[1], topic)) == layout
    check_all_consumable(broker, topic, 60)
    sizes = sizes_by_dir(describe(broker, [topic]), topic)
    for d, parts in sizes.items():
        for p, info in parts.items():
            assert info["partition_size"] == segment_bytes(Path(d), topic, p)

    # A topic created now goes to the dirs with the fewest partitions: 3/3 before, 1/1 after.
    second = topic + "-2"
    ck_create_topic(broker, second, 2)
    assert len(partition_dirs(dirs[0], second)) == 1 == len(partition_dirs(dirs[1], second))


def test_partition_in_two_dirs_or_foreign_dir_stops_the_start(make_broker, unique_topic):
    broker, dirs = two_dir_broker(make_broker)
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    produce_msgs = [(None, b"x" * 10, p) for p in range(2)]
    ck_produce_all(ck_producer(broker), topic, produce_msgs)
    broker.stop()

    # Copy one partition into the other dir: which copy is current cannot be told.
    src = next(d for d in dirs if (d / f"{topic}-0").exists())
    other = dirs[1] if src == dirs[0] else dirs[0]
    shutil.copytree(src / f"{topic}-0", other / f"{topic}-0")
    with pytest.raises(BrokerStartError) as e:
        broker.start()
    assert "found in both" in str(e.value) and f"{topic}-0" in str(e.value), str(e.value)
    shutil.rmtree(other / f"{topic}-0")

    # A dir formatted for another cluster.
    saved = (dirs[1] / "meta.properties").read_text()
    m = meta(dirs[1])
    (dirs[1] / "meta.properties").write_text(
        saved.replace(f"cluster.id={m['cluster.id']}", "cluster.id=AnotherClusterAAAAAAAAA"))
    with pytest.raises(BrokerStartError) as e:
        broker.start()
    assert "AnotherClusterAAAAAAAAA" in str(e.value) and str(dirs[1]) in str(e.value), str(e.value)
    (dirs[1] / "meta.properties").write_text(saved)

    # Put right, it starts and has the data.
    broker.start()
    assert ck_watermarks(broker, topic, 0)[1] == 1 and ck_watermarks(broker, topic, 1)[1] == 1
    assert os.path.exists(dirs[0] / "meta.properties")
