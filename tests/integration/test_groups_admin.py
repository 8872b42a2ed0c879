"""Group administration with stock admin clients: DescribeGroups, ListGroups (with the states
filter), OffsetFetch (list offsets, lag), OffsetCommit from an admin (alter offsets), DeleteGroups
and OffsetDelete, with the answers Kafka 4.1 gives.

Three groups are set up the ways groups come to exist:
  active  two live librdkafka members subscribed to T1 (Stable), with commits on T1 and T2
  idle    had a member, which committed and left (Empty, protocol type still "consumer")
  simple  never had a member; offsets were committed by an admin client (Empty, no protocol type)

confluent-kafka 2.16 has no delete_consumer_group_offsets, so OffsetDelete goes through
kafka-python's KafkaAdminClient.delete_group_offsets.
"""
from __future__ import annotations

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType,
                             KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import AdminClient

from helpers import (GROUP_BROKER_CONFIG, ck_admin, ck_create_topic, ck_group_consumer,
                     ck_poll_until, ck_produce_all, ck_producer)

T1_PARTITIONS = 4
T1_RECORDS = 10     # per partition
T2_RECORDS = 5
OFFSET_INVALID = -1001  # librdkafka's RD_KAFKA_OFFSET_INVALID: "no committed offset"


class Setup:
    def __init__(self, broker, topic: str):
        self.broker = broker
        self.t1 = f"{topic}-t1"
        self.t2 = f"{topic}-t2"
        self.active = f"active-{topic}"
        self.idle = f"idle-{topic}"
        self.simple = f"simple-{topic}"
        self.unknown = f"unknown-{topic}"
        self.admin: AdminClient = ck_admin(broker)
        self.members = []

    def start(self):
        ck_create_topic(self.broker, self.t1, T1_PARTITIONS)
        ck_create_topic(self.broker, self.t2, 1)
        ck_produce_all(ck_producer(self.broker), self.t1,
                       [(None, b"x", p) for p in range(T1_PARTITIONS) for _ in range(T1_RECORDS)])
        ck_produce_all(ck_producer(self.broker), self.t2, [(None, b"y", 0)] * T2_RECORDS)

        # active: two members, 2 partitions each; each commits offset 2p+1 for its partitions,
        # and the first also commits T2 (which nobody in the group subscribes to).
        self.members = [ck_group_consumer(self.broker, self.active, **{"client.id": f"adm-{i}"})
                        for i in (1, 2)]
        for c in self.members:
            c.subscribe([self.t1])
        ck_poll_until(self.members, lambda: all(len(c.assignment()) == 2 for c in self.members),
                      30, "2 + 2 partitions")
        for c in self.members:
            commit(c, [TopicPartition(self.t1, tp.partition, 2 * tp.partition + 1)
                       for tp in c.assignment()])
        commit(self.members[0], [TopicPartition(self.t2, 0, 4)])

        # idle: a member that committed everything and left.
        c = ck_group_consumer(self.broker, self.idle, **{"client.id": "idle-member"})
        c.subscribe([self.t1])
        ck_poll_until([c], lambda: len(c.assignment()) == T1_PARTITIONS, 30, "idle member assigned")
        commit(c, [TopicPartition(self.t1, p, T1_RECORDS) for p in range(T1_PARTITIONS)])
        c.close()

        # simple: offsets from an admin client only.
        res = self.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            self.simple, [TopicPartition(self.t1, 0, 2), TopicPartition(self.t1, 1, 3)])])
        assert_no_partition_errors(res[self.simple].result(10))
        return self

    def close(self):
        for c in self.members:
            c.close()

    def describe(self, *groups) -> dict:
        fs = self.admin.describe_consumer_groups(list(groups), request_timeout=10)
        return {g: f.result(10) for g, f in fs.items()}

    def list_groups(self, states=None) -> dict:
        kw = {"request_timeout": 10}
        if states is not None:
            kw["states"] = set(states)
        res = self.admin.list_consumer_groups(**kw).result(10)
        assert not res.errors, res.errors
        return {g.group_id: g for g in res.valid}

    def offsets(self, group, partitions=None) -> dict:
        req = ConsumerGroupTopicPartitions(group, partitions)
        res = self.admin.list_consumer_group_offsets([req], request_timeout=10)[group].result(10)
        assert res.group_id == group
        assert_no_partition_errors(res)
        return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


def commit(consumer, offsets):
    res = consumer.commit(offsets=offsets, asynchronous=False)
    errs = [tp for tp in res if tp.error is not None]
    assert not errs, errs


def assert_no_partition_errors(res):
    errs = [(tp.topic, tp.partition, tp.error) for tp in res.topic_partitions if tp.error is not None]
    assert not errs, errs


def expect_error(fut, code):
    with pytest.raises(KafkaException) as ei:
        fut.result(10)
    assert ei.value.args[0].code() == code, ei.value


@pytest.fixture
def groups(broker, unique_topic):
    s = Setup(broker, unique_topic)
    try:
        yield s.start()
    finally:
        s.close()


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_describe_list_and_offsets(broker, groups):
    s = groups
    d = s.describe(s.active, s.idle, s.simple, s.unknown)

    # active: Stable, the range assignor, both members with their ids, client ids, host and the
    # partitions each consumer was given.
    active = d[s.active]
    assert active.group_id == s.active
    assert active.state == ConsumerGroupState.STABLE
    assert not active.is_simple_consumer_group
    assert active.partition_assignor == "range"
    assert active.coordinator.id == 1
    assert (active.coordinator.host, active.coordinator.port) == (broker.host, broker.port)
    want = {c.memberid(): (f"adm-{i}", {tp.partition for tp in c.assignment()})
            for i, c in zip((1, 2), s.members)}
    got = {m.member_id: (m.client_id, {tp.partition for tp in m.assignment.topic_partitions})
           for m in active.members}
    assert got == want
    for m in active.members:
        assert m.host == "/127.0.0.1", m.host  # Kafka reports the client address as InetAddress.toString()
        assert m.group_instance_id is None
        assert {tp.topic for tp in m.assignment.topic_partitions} == {s.t1}

    # idle: Empty, no members; still a "consumer" protocol group, so not a simple one.
    idle = d[s.idle]
    assert idle.state == ConsumerGroupState.EMPTY
    assert idle.members == []
    assert not idle.is_simple_consumer_group
    assert idle.partition_assignor == ""

    # simple: Empty with no protocol type at all.
    simple = d[s.simple]
    assert simple.state == ConsumerGroupState.EMPTY
    assert simple.members == []
    assert simple.is_simple_consumer_group

    # A group that does not exist is described as Dead without members (DescribeGroups <= v5,
    # which is what librdkafka sends, has no GROUP_ID_NOT_FOUND for it).
    unknown = d[s.unknown]
    assert unknown.state == ConsumerGroupState.DEAD
    assert unknown.members == []

    # ListGroups, unfiltered and with the states filter.
    everything = s.list_groups()
    assert set(everything) == {s.active, s.idle, s.simple}
    assert everything[s.active].state == ConsumerGroupState.STABLE
    assert everything[s.idle].state == ConsumerGroupState.EMPTY
    assert everything[s.simple].state == ConsumerGroupState.EMPTY
    assert [g for g, v in everything.items() if v.is_simple_consumer_group] == [s.simple]
    assert all(v.type == ConsumerGroupType.CLASSIC for v in everything.values()), \
        {g: v.type for g, v in everything.items()}
    assert set(s.list_groups([ConsumerGroupState.STABLE])) == {s.active}
    assert set(s.list_groups([ConsumerGroupState.EMPTY])) == {s.idle, s.simple}
    assert set(s.list_groups([ConsumerGroupState.EMPTY, ConsumerGroupState.STABLE])) \
        == {s.active, s.idle, s.simple}
    assert set(s.list_groups([ConsumerGroupState.PREPARING_REBALANCING])) == set()
    assert set(s.list_groups([ConsumerGroupState.DEAD])) == set()

    # Committed offsets: all of the group's (no partitions given), and chosen ones.
    active_offsets = s.offsets(s.active)
    assert active_offsets == {**{(s.t1, p): 2 * p + 1 for p in range(T1_PARTITIONS)},
                              (s.t2, 0): 4}
    assert s.offsets(s.idle) == {(s.t1, p): T1_RECORDS for p in range(T1_PARTITIONS)}
    assert s.offsets(s.simple) == {(s.t1, 0): 2, (s.t1, 1): 3}
    assert s.offsets(s.simple, [TopicPartition(s.t1, 1), TopicPartition(s.t1, 3),
                                TopicPartition(s.t2, 0)]) \
        == {(s.t1, 1): 3, (s.t1, 3): OFFSET_INVALID, (s.t2, 0): OFFSET_INVALID}
    # An unknown group has no offsets: all of them is none, asked ones are "no offset", no error.
    assert s.offsets(s.unknown) == {}
    assert s.offsets(s.unknown, [TopicPartition(s.t1, 0)]) == {(s.t1, 0): OFFSET_INVALID}

    # Lag = high watermark - committed offset.
    c = s.members[0]
    lag = {p: c.get_watermark_offsets(TopicPartition(s.t1, p), timeout=10)[1]
           - active_offsets[(s.t1, p)] for p in range(T1_PARTITIONS)}
    assert lag == {p: T1_RECORDS - (2 * p + 1) for p in range(T1_PARTITIONS)}


@pytest.mark.broker_config(GROUP_BROKER_CONFIG)
def test_delete_groups_delete_offsets_and_alter_offsets(broker, groups):
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    import kafka.errors as Errors

    s = groups

    # DeleteGroups: a group with members is NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND,
    # an empty one goes (with its offsets).
    fs = s.admin.delete_consumer_groups([s.active, s.unknown, s.idle], request_timeout=10)
    expect_error(fs[s.active], KafkaError.NON_EMPTY_GROUP)
    expect_error(fs[s.unknown], KafkaError.GROUP_ID_NOT_FOUND)
    fs[s.idle].result(10)
    assert s.describe(s.idle)[s.idle].state == ConsumerGroupState.DEAD
    assert s.idle not in s.list_groups()
    assert s.offsets(s.idle) == {}
    assert s.describe(s.active)[s.active].state == ConsumerGroupState.STABLE

    # OffsetDelete (kafka-python's admin): not for a topic the active group is subscribed to...
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        res = kadmin.delete_group_offsets(s.active, [KTP(s.t1, 0), KTP(s.t1, 1)])
        assert res == {KTP(s.t1, 0): Errors.GroupSubscribedToTopicError,
                       KTP(s.t1, 1): Errors.GroupSubscribedToTopicError}, res
        # ...but for one it is not subscribed to.
        res = kadmin.delete_group_offsets(s.active, [KTP(s.t2, 0)])
        assert res == {KTP(s.t2, 0): Errors.NoError}, res
        assert s.offsets(s.active) == {(s.t1, p): 2 * p + 1 for p in range(T1_PARTITIONS)}
        # An empty group has no subscriptions: anything goes.
        res = kadmin.delete_group_offsets(s.simple, [KTP(s.t1, 0)])
        assert res == {KTP(s.t1, 0): Errors.NoError}, res
        assert s.offsets(s.simple) == {(s.t1, 1): 3}
        # Unknown group: a top-level GROUP_ID_NOT_FOUND.
        with pytest.raises(Errors.GroupIdNotFoundError):
            kadmin.delete_group_offsets(s.unknown, [KTP(s.t1, 0)])
    finally:
        kadmin.close()

    # AlterConsumerGroupOffsets is an OffsetCommit without member id or generation: Kafka takes it
    # for an empty group and refuses it (UNKNOWN_MEMBER_ID) for one with members.
    res = s.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        s.simple, [TopicPartition(s.t1, 1, 7, metadata="reset by admin")])])
    assert_no_partition_errors(res[s.simple].result(10))
    assert s.offsets(s.simple) == {(s.t1, 1): 7}
    res = s.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        s.active, [TopicPartition(s.t1, 0, 9)])])
    try:
        out = res[s.active].result(10)
        codes = {tp.error.code() for tp in out.topic_partitions if tp.error is not None}
    except KafkaException as e:
        codes = {e.args[0].code()}
    assert codes == {KafkaError.UNKNOWN_MEMBER_ID}, codes
    assert s.offsets(s.active)[(s.t1, 0)] == 1

    # Once the members leave, the group is Empty and can be deleted.
    s.close()
    s.members = []
    fs = s.admin.delete_consumer_groups([s.active], request_timeout=10)
    fs[s.active].result(10)
    assert set(s.list_groups()) == {s.simple}
