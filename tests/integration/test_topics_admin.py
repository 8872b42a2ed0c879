"""CreateTopics / DeleteTopics / CreatePartitions / DescribeConfigs error codes and effects."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic

from helpers import ck_admin, ck_create_topic, wait_for_partitions, wait_until

T = 30  # seconds per admin call


def create_error(admin, topic: NewTopic, validate_only: bool = False):
    """Returns the KafkaError code for one CreateTopics entry, or None on success."""
    f = admin.create_topics([topic], operation_timeout=T, validate_only=validate_only)[topic.topic]
    try:
        f.result(T)
        return None
    except KafkaException as e:
        return e.args[0].code()


def src(entry) -> int:
    """ConfigEntry.source as an int (the C layer may hand over an int or a ConfigSource)."""
    return int(getattr(entry.source, "value", entry.source))


def topic_names(admin) -> set:
    return set(admin.list_topics(timeout=10).topics)


@pytest.mark.parametrize("name", ["bad name", "bad/name", "bäd", "a" * 250, ".", ".."])
def test_invalid_topic_names(broker, name):
    admin = ck_admin(broker)
    assert create_error(admin, NewTopic(name, 1, 1)) == KafkaError.TOPIC_EXCEPTION  # 17
    assert name not in topic_names(admin)


def test_longest_valid_name_and_legal_chars(broker):
    admin = ck_admin(broker)
    for name in ["a" * 249, "A.b_c-9"]:
        assert create_error(admin, NewTopic(name, 1, 1)) is None
        wait_for_partitions(broker, name, 1)


def test_duplicate_topic(broker):
    admin = ck_admin(broker)
    assert create_error(admin, NewTopic("dup", 2, 1)) is None
    assert create_error(admin, NewTopic("dup", 2, 1)) == KafkaError.TOPIC_ALREADY_EXISTS  # 36
    assert create_error(admin, NewTopic("dup", 5, 1), validate_only=True) == \
        KafkaError.TOPIC_ALREADY_EXISTS
    wait_for_partitions(broker, "dup", 2)  # the original is untouched


def test_replication_factor_larger_than_cluster(broker):
    admin = ck_admin(broker)
    assert create_error(admin, NewTopic("rf3", 1, 3)) == KafkaError.INVALID_REPLICATION_FACTOR  # 38
    assert "rf3" not in topic_names(admin)


def test_zero_partitions(broker):
    # librdkafka refuses num_partitions=0 locally, so this goes through kafka-python.
    from kafka.admin import KafkaAdminClient
    from kafka.errors import InvalidPartitionsError

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with pytest.raises(InvalidPartitionsError):  # 37
            admin.create_topics({"zero": {"num_partitions": 0, "replication_factor": 1}})
        # Broker defaults (-1/-1) are fine and give num.partitions.
        admin.create_topics({"dflt": {}})
    finally:
        admin.close()
    assert "zero" not in topic_names(ck_admin(broker))
    wait_for_partitions(broker, "dflt", 1)


def test_validate_only_creates_nothing(broker):
    admin = ck_admin(broker)
    assert create_error(admin, NewTopic("dry", 3, 1), validate_only=True) is None
    assert create_error(admin, NewTopic("dry bad", 3, 1), validate_only=True) == \
        KafkaError.TOPIC_EXCEPTION
    assert "dry" not in topic_names(admin)
    # ... and the name is still free.
    assert create_error(admin, NewTopic("dry", 3, 1)) is None
    wait_for_partitions(broker, "dry", 3)


def test_topic_configs_in_describe_configs(broker):
    admin = ck_admin(broker)
    cfg = {"retention.ms": "123456789", "cleanup.policy": "compact", "segment.bytes": "1048576"}
    assert create_error(admin, NewTopic("configured", 1, 1, config=cfg)) is None
    wait_for_partitions(broker, "configured", 1)
    res = ConfigResource(ConfigResource.Type.TOPIC, "configured")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(T)
    for k, v in cfg.items():
        assert entries[k].value == v, (k, entries[k])
        assert src(entries[k]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (k, entries[k])
    # A key not set on the topic comes from the default.
    assert entries["max.message.bytes"].value == "1048588"
    assert src(entries["max.message.bytes"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_bad_topic_config_refused(broker):
    admin = ck_admin(broker)
    code = create_error(admin, NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"}))
    assert code == KafkaError.INVALID_CONFIG  # 40
    assert "badcfg" not in topic_names(admin)


def test_delete_by_name(broker):
    ck_create_topic(broker, "gone", 2)
    admin = ck_admin(broker)
    admin.delete_topics(["gone"], operation_timeout=T)["gone"].result(T)
    wait_until(lambda: "gone" not in topic_names(admin), 30, what="topic to disappear")
    with pytest.raises(KafkaException) as e:
        admin.delete_topics(["gone"], operation_timeout=T)["gone"].result(T)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART  # 3
    # The name can be reused, with a new id.
    ck_create_topic(broker, "gone", 1)


def test_delete_by_id(broker):
    from kafka.admin import KafkaAdminClient

    ck_create_topic(broker, "byid", 1)
    admin = ck_admin(broker)
    (d,) = [f.result(T) for f in
            admin.describe_topics(TopicCollection(["byid"]), request_timeout=T).values()]
    tid = uuid.UUID(bytes=d.topic_id.get_most_significant_bits().to_bytes(8, "big", signed=True)
                    + d.topic_id.get_least_significant_bits().to_bytes(8, "big", signed=True))
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        kadmin.delete_topics([tid])
    finally:
        kadmin.close()
    wait_until(lambda: "byid" not in topic_names(admin), 30, what="topic to disappear")


def test_create_partitions(broker):
    ck_create_topic(broker, "grow", 2)
    admin = ck_admin(broker)
    admin.create_partitions([NewPartitions("grow", 5)], operation_timeout=T)["grow"].result(T)
    wait_for_partitions(broker, "grow", 5)

    for bad in (3, 5):  # shrinking, and "growing" to the current count, are both refused
        with pytest.raises(KafkaException) as e:
            admin.create_partitions([NewPartitions("grow", bad)],
                                    operation_timeout=T)["grow"].result(T)
        assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS, bad  # 37
    wait_for_partitions(broker, "grow", 5)

    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions("nosuch", 4)], operation_timeout=T)["nosuch"].result(T)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(broker):
    admin = ck_admin(broker)
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    entries = admin.describe_configs([res], request_timeout=T)[res].result(T)
    # Set on the command line (--override) = static broker config, like server.properties.
    assert entries["log.dirs"].value == str(broker.data_dir)
    assert src(entries["log.dirs"]) == ConfigSource.STATIC_BROKER_CONFIG.value
    assert entries["node.id"].value == "1"
    # Untouched keys report Kafka's defaults.
    assert entries["message.max.bytes"].value == "1048588"
    assert src(entries["message.max.bytes"]) == ConfigSource.DEFAULT_CONFIG.value
    assert entries["num.partitions"].value == "1"
    assert entries["auto.create.topics.enable"].value == "true"
    for e in entries.values():
        assert src(e) in {s.value for s in ConfigSource}, e

