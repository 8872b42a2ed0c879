"""Topics (ids, partition counts, deletions) and data survive a clean restart."""
from __future__ import annotations

from confluent_kafka import KafkaException, TopicCollection

from helpers import (ck_admin, ck_consume_range, ck_create_topic, ck_produce_all, ck_producer,
                     wait_until)

import pytest

TOPICS = {"one": 1, "three": 3, "six": 6, "doomed": 2}


def describe(broker, names):
    admin = ck_admin(broker)
    futs = admin.describe_topics(TopicCollection(list(names)), request_timeout=10)
    out = {}
    for name, f in futs.items():
        d = f.result(15)
        out[name] = (str(d.topic_id), len(d.partitions))
    return out


# No auto-creation: a metadata lookup of the deleted topic must not bring it back.
@pytest.mark.broker_config({"auto.create.topics.enable": "false"})
def test_topics_survive_restart(broker):
    for name, parts in TOPICS.items():
        ck_create_topic(broker, name, parts)
    before = describe(broker, TOPICS)
    ids = {tid for tid, _ in before.values()}
    assert len(ids) == len(TOPICS), f"topic ids not unique: {before}"
    assert "AAAAAAAAAAAAAAAAAAAAAA" not in ids  # Uuid.ZERO_UUID means "no id"
    assert {n: p for n, (_, p) in before.items()} == TOPICS

    p = ck_producer(broker)
    ck_produce_all(p, "one", [(b"k", b"one-%d" % i, 0) for i in range(10)])
    ck_produce_all(p, "six", [(b"k", b"six-%d" % i, 5) for i in range(10)])

    admin = ck_admin(broker)
    admin.delete_topics(["doomed"], operation_timeout=30)["doomed"].result(30)
    wait_until(lambda: "doomed" not in admin.list_topics(timeout=5).topics, 30,
               what="deleted topic to leave metadata")

    broker.restart()  # SIGTERM, wait, start on the same dir and port

    kept = {n: p for n, p in TOPICS.items() if n != "doomed"}
    after = describe(broker, kept)
    assert after == {n: before[n] for n in kept}
    md = ck_admin(broker).list_topics(timeout=10)
    assert "doomed" not in md.topics
    for name, parts in kept.items():
        assert len(md.topics[name].partitions) == parts
    with pytest.raises(KafkaException) as e:
        describe(broker, ["doomed"])
    assert e.value.args[0].code() == 3  # UNKNOWN_TOPIC_OR_PARTITION

    assert [m.value() for m in ck_consume_range(broker, "one", {0: (0, 10)})[0]] == \
        [b"one-%d" % i for i in range(10)]
    assert [m.value() for m in ck_consume_range(broker, "six", {5: (0, 10)})[5]] == \
        [b"six-%d" % i for i in range(10)]
