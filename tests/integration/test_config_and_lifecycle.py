"""Config sources and their precedence (file < environment < --override), a bad value refused at
start-up naming the key, connection limits, and the clean-shutdown marker that lets a restart skip
log recovery (and its absence after kill -9)."""
from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient

from broker_proc import BIN, is_mock

pytestmark = pytest.mark.skipif(is_mock(), reason="needs the real broker")


def partitions_of_auto_created(broker, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "allow.auto.create.topics": True})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # A metadata request for one topic auto-creates it (librdkafka asks with allow=true).
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return len(t.partitions)
        time.sleep(0.1)
    raise AssertionError(f"{topic} was not auto-created")


def test_file_env_and_override_precedence(make_broker, tmp_path):
    props = tmp_path / "server.properties"
    props.write_text(
        "# a Kafka-style file\n"
        "num.partitions=2\n"
        "default.replication.factor=1\n"
        "auto.create.topics.enable=true\n"
    )
    # The file alone decides num.partitions.
    b = make_broker(start=False)
    b.extra_args = ["--config", str(props)]
    b.start()
    assert partitions_of_auto_created(b, "from-file") == 2
    b.stop()
    # The environment (apache/kafka convention) beats the file...
    b.extra_env = {"KAFKA_NUM_PARTITIONS": "3"}
    b.start()
    assert partitions_of_auto_created(b, "from-env") == 3
    b.stop()
    # ...bitnami's spelling is read too, and --override beats both.
    b.extra_env = {"KAFKA_CFG_NUM_PARTITIONS": "4"}
    b.start()
    assert partitions_of_auto_created(b, "from-bitnami-env") == 4
    b.stop()
    b.extra["num.partitions"] = "5"
    b.start()
    assert partitions_of_auto_created(b, "from-override") == 5


def test_bad_value_refuses_to_start_and_names_the_key(tmp_path):
    proc = subprocess.run(
        [BIN, "--override", "num.partitions=many", "--override", f"log.dirs={tmp_path}",
         "--override", "listeners=PLAINTEXT://127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert "num.partitions" in proc.stderr


def test_second_process_on_the_same_dir_is_refused(broker):
    proc = subprocess.run(
        [BIN, "--override", f"log.dirs={broker.data_dir}",
         "--override", "listeners=PLAINTEXT://127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert "Failed to acquire lock" in proc.stderr


@pytest.mark.broker_config({"max.connections": 2})
def test_max_connections(broker):
    def connect():
        s = socket.create_connection((broker.host, broker.port), timeout=5)
        s.settimeout(5)
        return s

    def closed_by_broker(s) -> bool:
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def served(s) -> bool:
        # ApiVersions v0: size, api key 18, version 0, correlation id 7, null client id.
        s.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        body = s.recv(size, socket.MSG_WAITALL)
        return struct.unpack(">i", body[:4])[0] == 7

    a, b = connect(), connect()
    # Both answered: the broker has accepted and counted them before the third arrives.
    assert served(a) and served(b)
    c = connect()
    assert closed_by_broker(c), "third connection should be closed on accept"
    a.close()
    deadline = time.monotonic() + 5
    while True:
        d = connect()
        d.settimeout(0.5)
        try:
            still_open = d.recv(1) != b""
        except socket.timeout:
            still_open = True  # nothing to read and not closed: accepted
        if still_open:
            break
        assert time.monotonic() < deadline, "a freed slot was never reused"
    for s in (b, c, d):
        s.close()


def test_clean_shutdown_skips_recovery_and_kill9_does_not(broker):
    broker.stop()
    broker.start()
    assert "skipping log recovery" in broker.log_text().split("===== start #2")[1]
    broker.kill9()
    broker.start()
    after_kill = broker.log_text().split("===== start #3")[1]
    assert "skipping log recovery" not in after_kill
    assert "recovering logs" in after_kill


def test_zookeeper_era_file_runs_as_one_node_with_one_warning(make_broker, tmp_path):
    """A Kafka 3.x ZooKeeper compose (KAFKA_ZOOKEEPER_CONNECT, KAFKA_BROKER_ID) starts as a single
    node whose id is broker.id, and says once why zookeeper.connect is ignored."""
    b = make_broker(start=False)
    b.extra.pop("node.id", None)
    b.overrides = lambda: {k: v for k, v in type(b).overrides(b).items() if k != "node.id"}
    b.extra_env = {"KAFKA_ZOOKEEPER_CONNECT": "zookeeper:2181", "KAFKA_BROKER_ID": "5"}
    b.start()
    log = b.log_path.read_text()
    assert log.count("zookeeper.connect is set but ZooKeeper mode does not exist") == 1, log
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert list(md.brokers) == [5]
    assert md.controller_id == 5


def test_empty_advertised_host_advertises_this_hosts_address(make_broker):
    """bitnami's `advertised.listeners=PLAINTEXT://:9092`: the broker advertises an address of
    this host that clients can connect to (not an empty host, not 0.0.0.0)."""
    b = make_broker(start=False)
    b.extra["listeners"] = f"PLAINTEXT://:{b.port}"
    b.extra["advertised.listeners"] = f"PLAINTEXT://:{b.port}"
    b.start()
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    host = md.brokers[1].host
    assert host not in ("", "0.0.0.0", "::"), host
    assert md.brokers[1].port == b.port
    # The advertised address really reaches the broker.
    with socket.create_connection((host, b.port), timeout=5):
        pass
    assert "Advertised listeners without a host are advertised as" in b.log_path.read_text()
    # And 0.0.0.0 is refused as Kafka refuses it.
    b.stop()
    b.extra["advertised.listeners"] = f"PLAINTEXT://0.0.0.0:{b.port}"
    proc = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "nonroutable meta-address" in proc.stderr
