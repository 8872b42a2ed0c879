"""AlterConfigs / IncrementalAlterConfigs / DescribeConfigs with real admin clients: topic and
broker configs round-trip, invalid values are refused, validate_only changes nothing, changes
take effect without a restart and survive one, dynamic broker configs report their sources, and
the produce-side rules they drive (max.message.bytes, LogAppendTime, KIP-937 timestamp bounds,
min.insync.replicas)."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource)

from helpers import ck_admin, ck_consumer, ck_create_topic, ck_producer

T = 30  # seconds per admin call
TOPIC = ConfigResource.Type.TOPIC
BROKER = ConfigResource.Type.BROKER


def src(entry) -> int:
    return int(getattr(entry.source, "value", entry.source))


def describe(admin, rtype, name, **kw) -> dict:
    res = ConfigResource(rtype, name)
    return admin.describe_configs([res], request_timeout=T, **kw)[res].result(T)


def incremental(admin, rtype, name, ops, validate_only=False):
    """ops: [(key, AlterConfigOpType, value)]; returns None or the KafkaError."""
    res = ConfigResource(rtype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, op, v in ops])
    try:
        admin.incremental_alter_configs([res], request_timeout=T,
                                        validate_only=validate_only)[res].result(T)
        return None
    except KafkaException as e:
        return e.args[0]


def legacy_alter(admin, rtype, name, configs: dict, validate_only=False):
    res = ConfigResource(rtype, name, set_config=configs)
    try:
        admin.alter_configs([res], request_timeout=T, validate_only=validate_only)[res].result(T)
        return None
    except KafkaException as e:
        return e.args[0]


def cluster_default(broker, ops=None, describe_keys=None, name=""):
    """The cluster-wide default broker resource (name ""), which neither librdkafka nor
    kafka-python's high-level admin API can name (nor a broker id other than the node's: they
    route those requests to that broker): the request goes to our broker through kafka-python's
    own protocol classes. `ops`: [(key, op, value)] for IncrementalAlterConfigs; returns (error_code,
    message) of the resource. Without ops: DescribeConfigs, returning {name: (value, source)}."""
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient

    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        if ops is not None:
            res = KConfigResource(ConfigResourceType.BROKER, name,
                                  configs={k: (op, v) for k, op, v in ops})
            req = kadmin._alter_configs_request([res], False, incremental=True)
            resp = kadmin._manager.run(kadmin._manager.send, req)
            (r,) = resp.responses
            return r.error_code, r.error_message
        res = KConfigResource(ConfigResourceType.BROKER, name, configs=describe_keys)
        req = kadmin._describe_configs_request([res], include_synonyms=True)
        resp = kadmin._manager.run(kadmin._manager.send, req)
        (r,) = resp.results
        assert r.error_code == 0, r
        return {c.name: (c.value, c.config_source, [(s.name, s.source) for s in c.synonyms])
                for c in r.configs}
    finally:
        kadmin.close()


def produce_one(broker, topic, value: bytes, timestamp=None, **conf):
    """Produces one record; returns (error or None, message)."""
    p = ck_producer(broker, **conf)
    out = {}

    def cb(err, msg):
        out["err"], out["msg"] = err, msg

    kw = {"value": value, "on_delivery": cb, "partition": 0}
    if timestamp is not None:
        kw["timestamp"] = timestamp
    p.produce(topic, **kw)
    assert p.flush(60) == 0, "delivery report never came"
    return out["err"], out["msg"]


def consume_first(broker, topic):
    c = ck_consumer(broker, **{"auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                return m
        raise AssertionError("no record within 30 s")
    finally:
        c.close()


def test_incremental_round_trip_and_sources(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic, [
        ("retention.ms", AlterConfigOpType.SET, "3600000"),
        ("cleanup.policy", AlterConfigOpType.APPEND, "compact"),
    ]) is None
    e = describe(admin, TOPIC, topic)
    assert e["retention.ms"].value == "3600000"
    assert src(e["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # APPEND starts from the default (delete).
    assert e["cleanup.policy"].value == "delete,compact"
    assert incremental(admin, TOPIC, topic, [
        ("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete"),
        ("retention.ms", AlterConfigOpType.DELETE, None),
    ]) is None
    e = describe(admin, TOPIC, topic)
    assert e["cleanup.policy"].value == "compact"
    assert e["retention.ms"].value == "604800000"
    assert src(e["retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value
    # APPEND / SUBTRACT need a LIST key.
    err = incremental(admin, TOPIC, topic, [("retention.ms", AlterConfigOpType.APPEND, "1")])
    assert err.code() == KafkaError.INVALID_CONFIG, err


def test_legacy_alter_replaces_every_override(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1, {"retention.ms": "100000", "segment.bytes": "1048576"})
    admin = ck_admin(broker)
    assert legacy_alter(admin, TOPIC, topic, {"max.message.bytes": "20000"}) is None
    e = describe(admin, TOPIC, topic)
    assert e["max.message.bytes"].value == "20000"
    assert src(e["max.message.bytes"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Overrides the request did not name are gone, as in Kafka.
    for k in ("retention.ms", "segment.bytes"):
        assert src(e[k]) == ConfigSource.DEFAULT_CONFIG.value, (k, e[k])


@pytest.mark.parametrize("key,value", [
    ("cleanup.policy", "foo"),
    ("compression.type", "foo"),
    ("message.timestamp.type", "foo"),
    ("retention.ms", "soon"),
    ("segment.bytes", "10"),
    ("min.insync.replicas", "0"),
    ("no.such.config", "1"),
])
def test_invalid_topic_values_refused(broker, unique_topic, key, value):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    admin = ck_admin(broker)
    before = {k: v.value for k, v in describe(admin, TOPIC, topic).items()}
    err = incremental(admin, TOPIC, topic, [(key, AlterConfigOpType.SET, value)])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err  # 40
    assert key in err.str(), err.str()
    err = legacy_alter(admin, TOPIC, topic, {key: value})
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err
    assert {k: v.value for k, v in describe(admin, TOPIC, topic).items()} == before


def test_unknown_topic_and_validate_only(broker, unique_topic):
    admin = ck_admin(broker)
    err = incremental(admin, TOPIC, "no-such-topic", [("retention.ms", AlterConfigOpType.SET, "1")])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, err  # 3

    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    assert incremental(admin, TOPIC, topic, [("retention.ms", AlterConfigOpType.SET, "1000")],
                       validate_only=True) is None
    assert legacy_alter(admin, TOPIC, topic, {"segment.bytes": "100000"},
                        validate_only=True) is None
    e = describe(admin, TOPIC, topic)
    assert src(e["retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value
    assert src(e["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value
    # validate_only still validates.
    err = incremental(admin, TOPIC, topic, [("cleanup.policy", AlterConfigOpType.SET, "foo")],
                      validate_only=True)
    assert err.code() == KafkaError.INVALID_CONFIG


def test_max_message_bytes_applies_at_once(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    big = b"x" * 5000
    err, _ = produce_one(broker, topic, big)
    assert err is None, err
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic,
                       [("max.message.bytes", AlterConfigOpType.SET, "1000")]) is None
    err, _ = produce_one(broker, topic, big)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err  # 10
    err, _ = produce_one(broker, topic, b"small")
    assert err is None, err


def test_segment_bytes_applies_to_the_open_log(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    seg_dir = broker.data_dir / f"{topic}-0"

    def segments():
        return sorted(p.name for p in seg_dir.iterdir() if p.name.endswith(".log"))

    p = ck_producer(broker, **{"batch.size": 2048, "linger.ms": 0})
    for i in range(20):
        p.produce(topic, value=b"%04d" % i + b"x" * 1000, partition=0)
        p.flush(30)
    assert len(segments()) == 1, segments()
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic,
                       [("segment.bytes", AlterConfigOpType.SET, "16384")]) is None
    for i in range(40):
        p.produce(topic, value=b"%04d" % i + b"x" * 1000, partition=0)
        p.flush(30)
    # The log that was already open rolls at the new size, without a restart.
    assert len(segments()) >= 3, segments()


def test_log_append_time_applies_at_once(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic,
                       [("message.timestamp.type", AlterConfigOpType.SET, "LogAppendTime")]) is None
    before_ms = int(time.time() * 1000)
    err, _ = produce_one(broker, topic, b"v", timestamp=1_000_000)
    assert err is None, err
    m = consume_first(broker, topic)
    ts_type, ts = m.timestamp()
    assert ts_type == 2, m.timestamp()  # TIMESTAMP_LOG_APPEND_TIME
    assert before_ms - 5000 <= ts <= int(time.time() * 1000) + 5000, ts


def test_timestamp_bounds_refuse_old_and_future_records(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1, {"message.timestamp.before.max.ms": "60000"})
    now = int(time.time() * 1000)
    err, _ = produce_one(broker, topic, b"old", timestamp=now - 3_600_000)
    assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err  # 32
    # message.timestamp.after.max.ms defaults to one hour.
    err, _ = produce_one(broker, topic, b"future", timestamp=now + 2 * 3_600_000)
    assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err
    err, _ = produce_one(broker, topic, b"fine", timestamp=now)
    assert err is None, err
    # Lifting the bound lets the old record in, without a restart.
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic, [
        ("message.timestamp.before.max.ms", AlterConfigOpType.DELETE, None)]) is None
    err, _ = produce_one(broker, topic, b"old", timestamp=now - 3_600_000)
    assert err is None, err


def test_min_insync_replicas_on_a_single_replica(broker, unique_topic):
    """Since Kafka 3.7 (KAFKA-15583) the ISR must reach min(min.insync.replicas, replication
    factor), so on one replica min.insync.replicas=2 does not block acks=all; the refusal with
    fewer in-sync replicas than that is covered by the broker's unit tests (a single node cannot
    have a partition with more replicas than in-sync ones)."""
    topic = unique_topic
    ck_create_topic(broker, topic, 1, {"min.insync.replicas": "2"})
    admin = ck_admin(broker)
    e = describe(admin, TOPIC, topic)
    assert e["min.insync.replicas"].value == "2"
    no_retry = {"retries": 0, "message.timeout.ms": 20000}
    for acks in ("all", 1):
        err, _ = produce_one(broker, topic, b"v", acks=acks, **no_retry)
        assert err is None, (acks, err)
    err = incremental(admin, TOPIC, topic, [("min.insync.replicas", AlterConfigOpType.SET, "0")])
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err


def test_dynamic_broker_configs_sources_and_restart(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    admin = ck_admin(broker)
    # Cluster-wide default.
    assert cluster_default(broker, [("log.retention.ms", 0, "7200000")])[0] == 0
    # This broker only.
    assert incremental(admin, BROKER, "1", [("message.max.bytes", AlterConfigOpType.SET, "3000")]) is None

    def check():
        d = cluster_default(broker)
        dd = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        # A new cluster keeps eligible leader replicas (KIP-966), so, as in Kafka 4.1, its
        # controller wrote its min.insync.replicas as the cluster default at bootstrap.
        assert d == {"log.retention.ms": ("7200000", dd, [("log.retention.ms", dd)]),
                     "min.insync.replicas": ("1", dd, [("min.insync.replicas", dd)])}, d
        b = describe(admin, BROKER, "1")
        assert b["log.retention.ms"].value == "7200000"
        assert src(b["log.retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        assert not b["log.retention.ms"].is_read_only
        assert b["message.max.bytes"].value == "3000"
        assert src(b["message.max.bytes"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        # Synonyms (asked for through kafka-python; librdkafka does not ask): every layer, most
        # specific first.
        raw = cluster_default(broker, describe_keys=["message.max.bytes", "log.retention.hours"],
                              name="1")
        assert raw["message.max.bytes"][2] == [
            ("message.max.bytes", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
            ("message.max.bytes", ConfigSource.DEFAULT_CONFIG.value)], raw
        # Describing log.retention.hours does not list log.retention.ms (Kafka drops those).
        assert raw["log.retention.hours"][2] == [
            ("log.retention.hours", ConfigSource.DEFAULT_CONFIG.value)], raw
        assert b["log.dirs"].is_read_only and b["node.id"].is_read_only
        # Topics without overrides follow the broker.
        t = describe(admin, TOPIC, topic)
        assert t["retention.ms"].value == "7200000"
        assert src(t["retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        assert t["max.message.bytes"].value == "3000"
        assert src(t["max.message.bytes"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value

    check()
    # In effect at once: the topic's limit came down with the broker's.
    err, _ = produce_one(broker, topic, b"x" * 5000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    broker.restart()
    admin = ck_admin(broker)
    check()
    err, _ = produce_one(broker, topic, b"x" * 5000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # Deleting the per-broker value falls back to the default (no static value is set).
    assert incremental(admin, BROKER, "1", [("message.max.bytes", AlterConfigOpType.DELETE, None)]) is None
    b = describe(admin, BROKER, "1")
    assert b["message.max.bytes"].value == "1048588"
    assert src(b["message.max.bytes"]) == ConfigSource.DEFAULT_CONFIG.value
    err, _ = produce_one(broker, topic, b"x" * 5000)
    assert err is None, err


def test_read_only_and_foreign_broker_configs_refused(broker):
    admin = ck_admin(broker)
    for key, value in (("log.dirs", "/tmp/elsewhere"), ("node.id", "7"), ("listeners", "PLAINTEXT://:1")):
        err = incremental(admin, BROKER, "1", [(key, AlterConfigOpType.SET, value)])
        assert err is not None and err.code() == KafkaError.INVALID_REQUEST, (key, err)  # 42
        assert "Cannot update these configs dynamically" in err.str(), err.str()
    code, message = cluster_default(broker, [("log.segment.bytes", 0, "5")])
    assert code == KafkaError.INVALID_REQUEST and "log.segment.bytes" in message, (code, message)
    code, message = cluster_default(broker, [("node.id", 0, "5")])
    assert code == KafkaError.INVALID_REQUEST, (code, message)
    err = legacy_alter(admin, BROKER, "1", {"log.message.timestamp.type": "Sometimes"})
    assert err is not None and err.code() == KafkaError.INVALID_REQUEST, err
    # Another broker's resource: each broker alters only itself.
    code, message = cluster_default(broker, [("message.max.bytes", 0, "5000")], name="2")
    assert code == KafkaError.INVALID_REQUEST and "expected 1" in message, (code, message)
    assert set(cluster_default(broker)) == {"min.insync.replicas"}  # written at bootstrap
    assert src(describe(admin, BROKER, "1")["message.max.bytes"]) == ConfigSource.DEFAULT_CONFIG.value


def test_topic_config_survives_restart(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    admin = ck_admin(broker)
    assert incremental(admin, TOPIC, topic, [("retention.bytes", AlterConfigOpType.SET, "123456789")]) is None
    broker.restart()
    e = describe(ck_admin(broker), TOPIC, topic)
    assert e["retention.bytes"].value == "123456789"
    assert src(e["retention.bytes"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_kafka_python_alter_and_describe(broker, unique_topic):
    from kafka.admin import AlterConfigOp, ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # Legacy AlterConfigs.
        r = kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": "86400000"})],
                                 incremental=False)
        assert r["topic"][topic] == "OK", r
        # IncrementalAlterConfigs.
        r = kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={
            "cleanup.policy": (AlterConfigOp.SET, "compact"),
            "segment.ms": (AlterConfigOp.SET, "3600000"),
        })], incremental=True)
        assert r["topic"][topic] == "OK", r
        d = kadmin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, topic)])
        got = d["topic"][topic]
        assert got["retention.ms"]["value"] == "86400000"
        assert got["cleanup.policy"]["value"] == "compact"
        assert got["segment.ms"]["value"] == "3600000"
        assert got["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        # An invalid value: the per-resource result carries INVALID_CONFIG.
        r = kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={
            "compression.type": (AlterConfigOp.SET, "foo")})], incremental=True)
        assert "InvalidConfiguration" in r["topic"][topic] or "40" in r["topic"][topic], r
        # A per-broker dynamic config.
        r = kadmin.alter_configs([KConfigResource(ConfigResourceType.BROKER, "1", configs={
            "log.retention.bytes": (AlterConfigOp.SET, "1073741824")})], incremental=True)
        assert r["broker"]["1"] == "OK", r
        d = kadmin.describe_configs([KConfigResource(ConfigResourceType.BROKER, "1")],
                                    config_filter="all")
        got = d["broker"]["1"]["log.retention.bytes"]
        assert got["value"] == "1073741824"
        assert got["config_source"] == "DYNAMIC_BROKER_CONFIG"
    finally:
        kadmin.close()
