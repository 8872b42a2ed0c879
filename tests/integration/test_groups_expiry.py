"""Offset expiration (KIP-211): committed offsets of a group with no members expire
offsets.retention.minutes after the group became empty; offsets of an active group's subscribed
topics do not. The shortest retention Kafka accepts is one minute, so this test waits about that.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from helpers import (GROUP_BROKER_CONFIG, ck_create_topic, ck_group_consumer, ck_poll_until,
                     wait_until)

EXPIRY_CONFIG = {
    **GROUP_BROKER_CONFIG,
    "offsets.retention.minutes": 1,
    "offsets.retention.check.interval.ms": 1000,
}


@pytest.mark.broker_config(EXPIRY_CONFIG)
def test_offsets_of_empty_group_expire_and_active_group_keeps_its(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    tp = TopicPartition(topic, 0, 5)

    # An active member subscribed to the topic: its group's offsets must stay.
    active = ck_group_consumer(broker, f"active-{topic}")
    # A consumer that only stores offsets (generation -1): its group is empty from the start.
    idle = ck_group_consumer(broker, f"idle-{topic}")
    try:
        active.subscribe([topic])
        ck_poll_until([active], lambda: active.assignment(), timeout=30, what="assignment")
        active.commit(offsets=[tp], asynchronous=False)
        idle.commit(offsets=[tp], asynchronous=False)
        committed_at = time.monotonic()
        assert idle.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 5

        def idle_expired():
            active.poll(0.1)  # keeps the active member's session alive
            return idle.committed([TopicPartition(topic, 0)], timeout=10)[0].offset < 0

        wait_until(idle_expired, timeout=120, interval=0.5, what="the empty group's offset to expire")
        waited = time.monotonic() - committed_at
        assert waited >= 55, f"expired after {waited:.1f}s, before offsets.retention.minutes"
        assert active.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 5
    finally:
        active.close()
        idle.close()
