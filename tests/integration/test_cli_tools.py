"""The Kafka command-line tools built into the rafka binary (`rafka kafka-topics ...` and
symlinks named `kafka-topics.sh` etc.), run as subprocesses against a real broker; every result
is checked independently with confluent_kafka."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource

from broker_proc import BIN, is_mock
from helpers import (GROUP_BROKER_CONFIG, ck_admin, ck_create_topic, ck_group_consumer,
                     ck_producer, ck_watermarks, wait_for_partitions, wait_until)

pytestmark = pytest.mark.skipif(is_mock(), reason="runs the rafka binary's tools")

TOOLS = ["kafka-topics", "kafka-broker-api-versions", "kafka-storage", "kafka-console-producer",
         "kafka-console-consumer", "kafka-consumer-groups", "kafka-configs", "kafka-server-start"]


@pytest.fixture(scope="module")
def bindir():
    """A directory of symlinks named after the tools (as the docker image installs them)."""
    d = tempfile.mkdtemp(prefix="rafka-cli-")
    for t in TOOLS:
        os.symlink(BIN, os.path.join(d, t + ".sh"))
        os.symlink(BIN, os.path.join(d, t))
    yield d
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


def run(cmd: list[str], input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)


def terminate(proc: subprocess.Popen, timeout: float = 30):
    """SIGTERM, then SIGKILL if it has not exited within `timeout`: a cleanup path must not leave
    a process behind (or skip the next one) because the first one hung."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def tool(bindir, name: str, *args, via: str = "symlink", **kw) -> subprocess.CompletedProcess:
    if via == "symlink":
        cmd = [os.path.join(bindir, name + ".sh"), *args]
    else:
        cmd = [BIN, name, *args]
    return run(cmd, **kw)


def test_topics_create_list_describe_alter_delete(make_broker, bindir):
    b = make_broker()
    bs = ["--bootstrap-server", b.bootstrap]
    r = tool(bindir, "kafka-topics", *bs, "--create", "--topic", "cli-a", "--partitions", "3",
             "--replication-factor", "1", "--config", "cleanup.policy=compact",
             "--config", "retention.ms=123456")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "Created topic cli-a."
    md = ck_admin(b).list_topics(timeout=10)
    assert len(md.topics["cli-a"].partitions) == 3
    # Already exists: Kafka's text, exit 1; --if-not-exists: silent success.
    r = tool(bindir, "kafka-topics", *bs, "--create", "--topic", "cli-a", via="rafka")
    assert r.returncode == 1
    assert "Error while executing topic command : Topic 'cli-a' already exists." in r.stdout
    r = tool(bindir, "kafka-topics", *bs, "--create", "--if-not-exists", "--topic", "cli-a")
    assert r.returncode == 0 and r.stdout == "", r
    tool(bindir, "kafka-topics", *bs, "--create", "--topic", "cli-b")
    # --list through both invocation styles.
    for via in ("symlink", "rafka"):
        r = tool(bindir, "kafka-topics", *bs, "--list", via=via)
        assert r.returncode == 0, r
        names = r.stdout.split()
        assert names == sorted(names) and "cli-a" in names and "cli-b" in names
    r = tool(bindir, "kafka-topics", *bs, "--list", "--topic", "cli-.")
    assert r.stdout.split() == ["cli-a", "cli-b"]
    r = tool(bindir, "kafka-topics", *bs, "--describe", "--topic", "cli-a")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert re.match(r"^Topic: cli-a\tTopicId: [A-Za-z0-9_-]{22}\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: .*$", lines[0]), lines
    configs = dict(kv.split("=", 1) for kv in lines[0].split("Configs: ")[1].split(","))
    assert configs["cleanup.policy"] == "compact" and configs["retention.ms"] == "123456"
    # The ELR columns come from DescribeTopicPartitions (empty lists: nothing is eligible
    # outside the ISR), as Kafka 4.1 prints them for a cluster with the ELR feature.
    assert lines[1] == "\tTopic: cli-a\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: "
    assert len(lines) == 4
    # Alter the partition count.
    r = tool(bindir, "kafka-topics", *bs, "--alter", "--topic", "cli-a", "--partitions", "5")
    assert r.returncode == 0, r
    wait_for_partitions(b, "cli-a", 5)
    # Delete by regex; then the topic is gone for confluent_kafka too.
    r = tool(bindir, "kafka-topics", *bs, "--delete", "--topic", "cli-.*")
    assert r.returncode == 0, r
    wait_until(lambda: not ({"cli-a", "cli-b"} & set(ck_admin(b).list_topics(timeout=10).topics)),
               what="topics deleted")
    r = tool(bindir, "kafka-topics", *bs, "--delete", "--topic", "cli-a")
    assert r.returncode == 1 and "does not exist as expected" in r.stdout
    r = tool(bindir, "kafka-topics", *bs, "--delete", "--if-exists", "--topic", "cli-a")
    assert r.returncode == 0, r


def test_bad_flags_and_unreachable(make_broker, bindir):
    r = tool(bindir, "kafka-topics", "--bootstrap-server", "127.0.0.1:1", "--bogus")
    assert r.returncode == 1 and "--bogus" in r.stderr
    r = tool(bindir, "kafka-topics", "--list")
    assert r.returncode == 1 and "bootstrap-server" in r.stderr
    r = tool(bindir, "kafka-topics", "--bootstrap-server", "127.0.0.1:1")
    assert r.returncode == 1 and "exactly one action" in r.stderr
    r = tool(bindir, "kafka-console-producer", "--bootstrap-server", "127.0.0.1:1")
    assert r.returncode == 1 and "topic" in r.stderr
    r = tool(bindir, "kafka-topics", "--help")
    assert r.returncode == 0 and "--bootstrap-server" in r.stdout and "--if-not-exists" in r.stdout
    # An unreachable broker fails within the configured timeout instead of hanging.
    with tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False) as f:
        f.write("request.timeout.ms=1500\n")
    start = time.monotonic()
    r = tool(bindir, "kafka-topics", "--bootstrap-server", "127.0.0.1:1", "--list",
             "--command-config", f.name, timeout=30)
    os.unlink(f.name)
    assert r.returncode == 1 and "Timed out" in r.stdout, r
    assert time.monotonic() - start < 10
    with tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False) as f:
        f.write("security.protocol=SASL_SSL\n")
    r = tool(bindir, "kafka-topics", "--bootstrap-server", "127.0.0.1:1", "--list",
             "--command-config", f.name)
    os.unlink(f.name)
    assert r.returncode == 1 and "not supported by this tool" in r.stdout + r.stderr


def test_broker_api_versions(make_broker, bindir):
    b = make_broker()
    r = tool(bindir, "kafka-broker-api-versions", "--bootstrap-server", b.bootstrap)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == f"{b.bootstrap} (id: 1 rack: null) -> ("
    assert re.match(r"^\tProduce\(0\): 3 to \d+ \[usable: \d+\],$", lines[1]), lines[1]
    assert any(re.match(r"^\tApiVersions\(18\): 0 to \d+ \[usable: \d+\],$", l) for l in lines)
    assert any(l.endswith("UNSUPPORTED,") or l.endswith("UNSUPPORTED") for l in lines)
    assert lines[-1] == ")"


def test_console_producer_consumer_keys_headers(make_broker, bindir):
    b = make_broker()
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-p", partitions=2)
    lines = "".join(f"h1:a{i},h2:b\tkey{i}:value{i}\n" for i in range(20))
    r = tool(bindir, "kafka-console-producer", *bs, "--topic", "cli-p",
             "--property", "parse.key=true", "--property", "key.separator=:",
             "--property", "parse.headers=true", "--compression-codec", "lz4", input=lines)
    assert r.returncode == 0, r
    # Independent check with confluent_kafka: every record with its key and headers.
    c = ck_group_consumer(b, "verify-" + uuid.uuid4().hex)
    c.subscribe(["cli-p"])
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < 20 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        seen[m.key().decode()] = (m.value().decode(), m.headers())
    c.close()
    assert len(seen) == 20
    assert seen["key3"] == ("value3", [("h1", b"a3"), ("h2", b"b")])
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-p", "--from-beginning",
             "--max-messages", "20", "--property", "print.key=true", "--property", "print.partition=true",
             "--property", "print.headers=true", "--timeout-ms", "20000", via="rafka")
    assert r.returncode == 0, r
    assert "Processed a total of 20 messages" in r.stderr
    out = r.stdout.splitlines()
    assert len(out) == 20
    # Same keys land on the same partitions as Kafka's murmur2 partitioner puts them: librdkafka
    # with partitioner=murmur2_random agrees.
    p = ck_producer(b, partitioner="murmur2_random")
    parts = {}
    for i in range(20):
        p.produce("cli-p", key=f"key{i}", value="x",
                  on_delivery=lambda err, msg: parts.__setitem__(msg.key().decode(), msg.partition()))
    p.flush(30)
    for line in out:
        part, headers, key, value = line.split("\t")
        i = key[len("key"):]
        assert part == f"Partition:{parts[key]}"
        assert headers == f"h1:a{i},h2:b" and value == f"value{i}"
    # --partition/--offset and --timeout-ms exit 0.
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-p", "--partition", "0",
             "--offset", "earliest", "--timeout-ms", "1500")
    assert r.returncode == 0, r
    # (the console producer's records and librdkafka's "x" ones)
    assert len(r.stdout.splitlines()) == 2 * sum(1 for v in parts.values() if v == 0)


def test_console_producer_errors(make_broker, bindir):
    b = make_broker({"message.max.bytes": 2000, "auto.create.topics.enable": "false"})
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-small")
    r = tool(bindir, "kafka-console-producer", *bs, "--topic", "cli-small", input="x" * 5000 + "\n")
    assert r.returncode == 1, r
    assert "Error when sending message to topic cli-small" in r.stderr
    r = tool(bindir, "kafka-console-producer", *bs, "--topic", "cli-missing",
             "--max-block-ms", "1500", input="x\n")
    assert r.returncode == 1 and "not present in metadata" in r.stderr, r


def test_console_producer_auto_creates(make_broker, bindir):
    b = make_broker()
    r = tool(bindir, "kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic", "cli-auto",
             "--request-required-acks", "1", input="one\ntwo\n")
    assert r.returncode == 0, r
    assert ck_watermarks(b, "cli-auto")[1] == 2
    r = tool(bindir, "kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic", "cli-auto",
             "--request-required-acks", "1", "--producer-property", "enable.idempotence=true", input="x\n")
    assert r.returncode == 1 and "Must set acks to all" in r.stderr


def test_console_producer_is_idempotent_by_default(make_broker, bindir):
    """acks=all (the default): the batches carry a producer id and sequences, as Kafka's."""
    b = make_broker()
    ck_create_topic(b, "cli-idem")
    r = tool(bindir, "kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic", "cli-idem",
             "--batch-size", "50", input="".join(f"r{i}\n" for i in range(20)))
    assert r.returncode == 0, r
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = KTP("cli-idem", 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    values = [m.value for m in c]
    c.close()
    assert values == [f"r{i}".encode() for i in range(20)]
    # The batches in the log: one producer id, contiguous sequences from 0.
    import struct
    data = (b.data_dir / "cli-idem-0" / "00000000000000000000.log").read_bytes()
    pos, pids, expected_seq = 0, set(), 0
    while pos + 61 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        pid, _epoch, seq, count = struct.unpack_from(">qhii", data, pos + 43)
        pids.add(pid)
        assert seq == expected_seq, (seq, expected_seq)
        expected_seq += count
        pos += 12 + length
    assert expected_seq == 20 and len(pids) == 1 and min(pids) >= 0, pids


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_console_consumer_group_commits_and_describe(make_broker, bindir):
    b = make_broker(GROUP_BROKER_CONFIG)
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-g", partitions=3)
    tool(bindir, "kafka-console-producer", *bs, "--topic", "cli-g",
         input="".join(f"m{i}\n" for i in range(30)))
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-g", "--group", "cli-group",
             "--from-beginning", "--max-messages", "30", "--timeout-ms", "30000")
    assert r.returncode == 0, r
    assert sorted(r.stdout.split()) == sorted(f"m{i}" for i in range(30))
    # Committed offsets are visible to confluent_kafka ...
    a = ck_group_consumer(b, "cli-group")
    committed = a.committed([TopicPartition("cli-g", p) for p in range(3)], timeout=10)
    a.close()
    ends = {p: ck_watermarks(b, "cli-g", p)[1] for p in range(3)}
    assert {tp.partition: tp.offset for tp in committed} == ends
    # ... and to kafka-consumer-groups.
    r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-group")
    assert r.returncode == 0, r
    assert "Consumer group 'cli-group' has no active members." in r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines[0].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET",
                                "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    rows = sorted(l.split() for l in lines[1:])
    assert rows == [["cli-group", "cli-g", str(p), str(ends[p]), str(ends[p]), "0", "-", "-", "-"]
                    for p in range(3)]
    r = tool(bindir, "kafka-consumer-groups", *bs, "--list")
    assert "cli-group" in r.stdout.split()
    # A second run of the group starts at the committed offsets: nothing new to read.
    tool(bindir, "kafka-console-producer", *bs, "--topic", "cli-g", input="late\n")
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-g", "--group", "cli-group",
             "--timeout-ms", "8000")
    assert r.stdout.split() == ["late"], r
    # Reset to earliest (dry run, then execute), checked with confluent_kafka.
    r = tool(bindir, "kafka-consumer-groups", *bs, "--reset-offsets", "--group", "cli-group",
             "--topic", "cli-g", "--to-earliest", "--execute")
    assert r.returncode == 0, r
    assert "NEW-OFFSET" in r.stdout
    a = ck_group_consumer(b, "cli-group")
    committed = a.committed([TopicPartition("cli-g", p) for p in range(3)], timeout=10)
    a.close()
    assert all(tp.offset == 0 for tp in committed)
    r = tool(bindir, "kafka-consumer-groups", *bs, "--delete", "--group", "cli-group")
    assert r.returncode == 0 and "was successful" in r.stdout, r
    r = tool(bindir, "kafka-consumer-groups", *bs, "--list")
    assert "cli-group" not in r.stdout.split()
    r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-group")
    assert "Error: Consumer group 'cli-group' does not exist." in r.stdout, r


def test_two_console_consumers_split_partitions(make_broker, bindir):
    b = make_broker(GROUP_BROKER_CONFIG)
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-two", partitions=4)
    # Each member gets two partitions of five records: --max-messages 10 ends it.
    procs = [subprocess.Popen([os.path.join(bindir, "kafka-console-consumer.sh"), *bs, "--topic", "cli-two",
                               "--group", "cli-two-g", "--property", "print.partition=true",
                               # The records are produced once both members own their partitions,
                               # but a member may only look up its start offset after that:
                               # "latest" would then skip them.
                               "--from-beginning", "--max-messages", "10",
                               "--consumer-property", "heartbeat.interval.ms=500"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        def members():
            r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-two-g", "--members")
            rows = [l.split() for l in r.stdout.splitlines() if l.startswith("cli-two-g")]
            return rows if len(rows) == 2 and all(row[-1] == "2" for row in rows) else None
        wait_until(members, timeout=60, interval=0.5, what="two members with two partitions each")
        p = ck_producer(b)
        for part in range(4):
            for i in range(5):
                p.produce("cli-two", value=f"p{part}-{i}", partition=part)
        p.flush(30)
        outs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                terminate(proc)
    parts = []
    for out, err in outs:
        assert "Processed a total of" in err
        assert "Processed a total of 10 messages" in err
        parts.append({line.split("\t")[0] for line in out.splitlines()})
    # Each consumer read two partitions and together they read all four, without overlap.
    assert parts[0].isdisjoint(parts[1])
    assert len(parts[0] | parts[1]) == 4, outs


def test_configs_describe_alter(make_broker, bindir):
    b = make_broker()
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-c")
    r = tool(bindir, "kafka-configs", *bs, "--alter", "--entity-type", "topics", "--entity-name", "cli-c",
             "--add-config", "retention.ms=1000,cleanup.policy=[compact,delete]")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "Completed updating config for topic cli-c."
    admin = ck_admin(b)
    cfg = list(admin.describe_configs([ConfigResource("topic", "cli-c")]).values())[0].result(timeout=10)
    assert cfg["retention.ms"].value == "1000"
    assert cfg["cleanup.policy"].value == "compact,delete"
    r = tool(bindir, "kafka-configs", *bs, "--describe", "--entity-type", "topics", "--entity-name", "cli-c")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "Dynamic configs for topic cli-c are:"
    assert lines[1].startswith("  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete")
    assert lines[2].startswith("  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000")
    r = tool(bindir, "kafka-configs", *bs, "--alter", "--entity-type", "topics", "--entity-name", "cli-c",
             "--delete-config", "retention.ms")
    assert r.returncode == 0, r
    cfg = list(admin.describe_configs([ConfigResource("topic", "cli-c")]).values())[0].result(timeout=10)
    assert cfg["retention.ms"].value != "1000"
    r = tool(bindir, "kafka-configs", *bs, "--alter", "--entity-type", "topics", "--entity-name", "cli-c",
             "--delete-config", "retention.ms")
    assert r.returncode == 1 and "Invalid config(s): retention.ms" in r.stderr
    # Broker configs, per broker and cluster default.
    r = tool(bindir, "kafka-configs", *bs, "--alter", "--entity-type", "brokers", "--entity-default",
             "--add-config", "log.cleaner.backoff.ms=1234")
    assert r.returncode == 0 and r.stdout.strip() == "Completed updating default config for brokers in the cluster.", r
    r = tool(bindir, "kafka-configs", *bs, "--describe", "--entity-type", "brokers", "--entity-default")
    assert r.stdout.splitlines()[0] == "Default configs for brokers in the cluster are:"
    assert "  log.cleaner.backoff.ms=1234 " in r.stdout
    r = tool(bindir, "kafka-configs", *bs, "--describe", "--entity-type", "brokers", "--entity-name", "1", "--all")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "All configs for broker 1 are:"
    r = tool(bindir, "kafka-configs", *bs, "--describe", "--entity-type", "users")
    assert r.returncode == 1


def test_storage_format_then_broker_uses_cluster_id(make_broker, bindir):
    r = tool(bindir, "kafka-storage", "random-uuid")
    assert r.returncode == 0 and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}\n", r.stdout), r
    cluster_id = r.stdout.strip()
    b = make_broker(start=False)
    props = b.root / "server.properties"
    props.write_text(f"process.roles=broker,controller\nnode.id=1\nlog.dirs={b.data_dir}\n")
    r = tool(bindir, "kafka-storage", "format", "-t", cluster_id, "-c", str(props))
    assert r.returncode == 0, r
    assert f"Formatting metadata directory {b.data_dir}" in r.stdout
    meta = (b.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta and "node.id=1" in meta
    # Already formatted: Kafka's message and exit 1, unless --ignore-formatted.
    r = tool(bindir, "kafka-storage", "format", "--cluster-id", cluster_id, "--config", str(props))
    assert r.returncode == 1
    assert (f"Log directory {b.data_dir} is already formatted. Use --ignore-formatted to ignore "
            "this directory and format the others.") in r.stderr
    r = tool(bindir, "kafka-storage", "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted")
    assert r.returncode == 0 and "All of the log directories are already formatted." in r.stdout
    r = tool(bindir, "kafka-storage", "info", "-c", str(props))
    assert r.returncode == 0 and f"cluster.id={cluster_id}" in r.stdout, r
    b.start()
    md = ck_admin(b).list_topics(timeout=10)
    assert md.cluster_id == cluster_id


def test_kafka_server_start_symlink(bindir, tmp_path):
    from broker_proc import free_port
    port = free_port()
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={tmp_path / 'data'}\n")
    proc = subprocess.Popen([os.path.join(bindir, "kafka-server-start.sh"), str(props),
                             "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                             "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        r = tool(bindir, "kafka-topics", "--bootstrap-server", f"127.0.0.1:{port}", "--list", timeout=60)
        assert r.returncode == 0, r
    finally:
        out, _ = terminate(proc)
    assert "Kafka Server started" in out
    assert proc.returncode == 0, out


def test_console_consumer_rebalance_on_leave(make_broker, bindir):
    """A member that stops (SIGTERM: final commit and LeaveGroup) hands its partitions to the
    other one, which goes on from the committed offsets."""
    b = make_broker(GROUP_BROKER_CONFIG)
    bs = ["--bootstrap-server", b.bootstrap]
    ck_create_topic(b, "cli-rb", partitions=4)

    def start():
        return subprocess.Popen([os.path.join(bindir, "kafka-console-consumer.sh"), *bs, "--topic", "cli-rb",
                                 "--group", "cli-rb-g", "--from-beginning",
                                 "--consumer-property", "heartbeat.interval.ms=300",
                                 "--consumer-property", "auto.commit.interval.ms=200"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def partitions_per_member(n):
        def check():
            r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-rb-g", "--members")
            rows = [l.split() for l in r.stdout.splitlines() if l.startswith("cli-rb-g")]
            counts = sorted(int(row[-1]) for row in rows)
            return counts == n
        return check

    first = start()
    second = None
    out2 = ""
    try:
        wait_until(partitions_per_member([4]), timeout=60, interval=0.5, what="one member with 4 partitions")
        p = ck_producer(b)
        for part in range(4):
            p.produce("cli-rb", value=f"a{part}", partition=part)
        p.flush(30)
        second = start()
        wait_until(partitions_per_member([2, 2]), timeout=60, interval=0.5, what="two members with 2 each")
        r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-rb-g", "--state")
        assert "Stable" in r.stdout and "range" in r.stdout, r
        first.send_signal(signal.SIGTERM)
        out1, err1 = first.communicate(timeout=30)
        assert first.returncode == 0 and "Processed a total of" in err1, err1
        wait_until(partitions_per_member([4]), timeout=60, interval=0.5, what="the survivor takes all 4")
        for part in range(4):
            p.produce("cli-rb", value=f"b{part}", partition=part)
        p.flush(30)
        # Everything ends up committed: the survivor consumed the second round on all partitions.
        def all_committed():
            r = tool(bindir, "kafka-consumer-groups", *bs, "--describe", "--group", "cli-rb-g")
            rows = [l.split() for l in r.stdout.splitlines() if l.startswith("cli-rb-g ")]
            return len(rows) == 4 and all(row[3] == "2" and row[5] == "0" for row in rows)
        wait_until(all_committed, timeout=60, interval=0.5, what="offsets 2 committed on all partitions")
        second.send_signal(signal.SIGTERM)
        out2, _ = second.communicate(timeout=30)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                terminate(proc)
    # The two members together printed every record exactly once for the second round.
    values = out1.split() + out2.split()
    assert sorted(v for v in values if v.startswith("b")) == [f"b{i}" for i in range(4)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_console_producer_compression(make_broker, bindir, codec):
    b = make_broker()
    ck_create_topic(b, "cli-z")
    lines = [f"{codec}-{i}-" + "x" * 200 for i in range(50)]
    r = tool(bindir, "kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic", "cli-z",
             "--compression-codec", codec, input="\n".join(lines) + "\n")
    assert r.returncode == 0, r
    c = ck_group_consumer(b, "z-" + uuid.uuid4().hex)
    c.subscribe(["cli-z"])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 50 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == lines


def test_console_consumer_read_committed(make_broker, bindir):
    from txn_pipeline import TXN_BROKER_CONFIG, ck_txn_producer
    from helpers import ck_produce_all
    b = make_broker(TXN_BROKER_CONFIG)
    ck_create_topic(b, "cli-tx")
    p = ck_txn_producer(b, "cli-tx-producer")
    p.init_transactions(30)
    for i, outcome in enumerate(["commit", "abort", "commit"]):
        p.begin_transaction()
        ck_produce_all(p, "cli-tx", [(None, f"{outcome}{i}-{j}".encode(), 0) for j in range(3)])
        (p.commit_transaction if outcome == "commit" else p.abort_transaction)(30)
    bs = ["--bootstrap-server", b.bootstrap]
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-tx", "--from-beginning",
             "--isolation-level", "read_committed", "--timeout-ms", "3000")
    assert r.returncode == 0, r
    assert r.stdout.split() == [f"commit0-{j}" for j in range(3)] + [f"commit2-{j}" for j in range(3)]
    r = tool(bindir, "kafka-console-consumer", *bs, "--topic", "cli-tx", "--from-beginning",
             "--timeout-ms", "3000", "--property", "print.offset=true")
    # read_uncommitted: all nine records, control records (the markers) never printed.
    assert len(r.stdout.split("\n")) - 1 == 9, r
