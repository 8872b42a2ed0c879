"""Transactions V2 (KIP-890 part 2) over real sockets, with the client side written here
(txn_v2_wire.py: kafka-python 3.0's message classes and record batch builder), since no Python or
C client implements it; stock librdkafka consumers check what became visible.

What a V2 client relies on, each checked against the broker: `transaction.version` 2 finalized in
ApiVersions; Produce v12 adding its partitions to the transaction (no AddPartitionsToTxn) and
TxnOffsetCommit v5 adding the group's offsets partition (no AddOffsetsToTxn); EndTxn v5 bumping
the epoch and returning it; the next transaction at that epoch starting at sequence 0 after the
bumped markers; producers at an old epoch fenced; InitProducerId aborting an ongoing V2
transaction with one bump for fence and abort (KAFKA-19367); and the transaction state (epoch,
partitions, offsets) surviving a clean restart and a kill -9, with the transaction completing
afterwards. V1 clients are covered by test_transactions*.py and test_idempotence.py.
"""
from __future__ import annotations

import pytest

from helpers import ck_create_topic, ck_watermarks, wait_until
from txn_pipeline import READ_COMMITTED, READ_UNCOMMITTED, TXN_BROKER_CONFIG, ck_read_to
from txn_v2_wire import (CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_EPOCH, NONE, PRODUCER_FENCED,
                         TxnV2Producer, Wire, api_versions, describe_producers,
                         offset_fetch)

pytestmark = [pytest.mark.broker_config(TXN_BROKER_CONFIG)]

UNSTABLE_OFFSET_COMMIT = 88
FENCED = {INVALID_PRODUCER_EPOCH, PRODUCER_FENCED}
OFFSETS_TOPIC = "__consumer_offsets"


def records(tag: str, n: int) -> list[tuple[bytes, bytes]]:
    return [(f"{tag}-k{i}".encode(), f"{tag}-v{i}".encode()) for i in range(n)]


def producer(broker, txn_id: str) -> TxnV2Producer:
    w = Wire(broker.host, broker.port)
    p = TxnV2Producer(w, txn_id)
    p.find_coordinator(txn_id, 1)
    return p


def read_values(broker, topic: str, partitions: list[int], isolation: str) -> set[bytes]:
    ends = {p: ck_watermarks(broker, topic, p)[1] for p in partitions}
    got = ck_read_to(broker, topic, ends, isolation)
    return {v for recs in got.values() for (_, _, v) in recs}


def values(tag: str, n: int) -> set[bytes]:
    return {v for _, v in records(tag, n)}


def describe_partitions(p: TxnV2Producer) -> set[tuple[str, int]]:
    d = p.describe()
    assert d.error_code == NONE, d
    return {(t.topic, n) for t in d.topics for n in t.partitions}


def test_features_and_versions_advertised(broker):
    w = Wire(broker.host, broker.port)
    try:
        r = api_versions(w)
        assert r.error_code == NONE
        supported = {f.name: (f.min_version, f.max_version) for f in r.supported_features}
        finalized = {f.name: (f.min_version_level, f.max_version_level)
                     for f in r.finalized_features}
        assert supported.get("transaction.version") == (0, 2), supported
        assert finalized.get("transaction.version") == (2, 2), finalized
        # group.version 1 is KIP-848's consumer protocol: new clusters start with it.
        assert supported.get("group.version") == (0, 1), supported
        assert finalized.get("group.version") == (1, 1), finalized
        assert r.finalized_features_epoch > 0
        maxima = {k.api_key: k.max_version for k in r.api_keys}
        # Produce, AddPartitionsToTxn, EndTxn, TxnOffsetCommit: the versions a V2 client needs.
        assert maxima[0] >= 12 and maxima[24] >= 5 and maxima[26] >= 5 and maxima[28] >= 5
    finally:
        w.close()


def test_commit_abort_offsets_and_fencing(broker, unique_topic):
    topic = unique_topic
    group = f"{topic}-g"
    ck_create_topic(broker, topic, 3)
    p = producer(broker, f"{topic}-txn")
    pid, epoch = p.init()
    assert epoch == 0

    # Transaction 1: three partitions by Produce v12 alone, and offsets by TxnOffsetCommit v5.
    p.produce(topic, {0: records("t1p0", 2), 1: records("t1p1", 3), 2: records("t1p2", 1)})
    assert describe_partitions(p) == {(topic, 0), (topic, 1), (topic, 2)}
    p.find_coordinator(group, 0)
    p.txn_offset_commit(group, {(topic, 0): 42, (topic, 1): 7})
    assert {t for t, _ in describe_partitions(p)} == {topic, OFFSETS_TOPIC}
    assert p.describe().transaction_state == "Ongoing"
    # Pending offsets: invisible, and unstable for require_stable.
    assert offset_fetch(p.wire, group, topic, [0, 1]) == {0: (NONE, -1), 1: (NONE, -1)}
    assert offset_fetch(p.wire, group, topic, [0], require_stable=True)[0][0] == UNSTABLE_OFFSET_COMMIT

    assert p.end_txn(commit=True) == (pid, 1), "EndTxn v5 returns the bumped epoch"
    wait_until(lambda: p.describe().transaction_state == "CompleteCommit", what="CompleteCommit")
    wait_until(lambda: offset_fetch(p.wire, group, topic, [0, 1]) == {0: (NONE, 42), 1: (NONE, 7)},
               what="committed offsets visible")

    # A zombie still at epoch 0 is fenced, in produce and in TxnOffsetCommit alike.
    res = p.produce_once(topic, {0: records("zombie", 1)}, epoch=0)
    assert res[0][0] in FENCED, res

    # Transaction 2 at the new epoch (sequences from 0 after the epoch-1 markers), aborted.
    p.produce(topic, {0: records("t2p0", 2), 1: records("t2p1", 1)})
    assert p.end_txn(commit=False) == (pid, 2)
    wait_until(lambda: p.describe().transaction_state == "CompleteAbort", what="CompleteAbort")
    # The old epoch of transaction 2 is fenced now too.
    assert p.produce_once(topic, {2: records("zombie", 1)}, epoch=1)[2][0] in FENCED

    # Transaction 3 commits again at epoch 2 -> 3.
    p.produce(topic, {2: records("t3p2", 2)})
    assert p.end_txn(commit=True) == (pid, 3)
    wait_until(lambda: p.describe().transaction_state == "CompleteCommit", what="CompleteCommit")

    committed = values("t1p0", 2) | values("t1p1", 3) | values("t1p2", 1) | values("t3p2", 2)
    aborted = values("t2p0", 2) | values("t2p1", 1)
    assert read_values(broker, topic, [0, 1, 2], READ_COMMITTED) == committed
    assert read_values(broker, topic, [0, 1, 2], READ_UNCOMMITTED) == committed | aborted
    # Each partition holds its data and one marker per transaction that touched it.
    assert [ck_watermarks(broker, topic, n)[1] for n in range(3)] == [2 + 1 + 2 + 1, 3 + 1 + 1 + 1,
                                                                        1 + 1 + 2 + 1]
    # The offsets stay committed; the aborted transaction changed nothing there.
    assert offset_fetch(p.wire, group, topic, [0, 1]) == {0: (NONE, 42), 1: (NONE, 7)}
    p.wire.close()


def test_init_producer_id_aborts_an_ongoing_v2_transaction(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    txn_id = f"{topic}-txn"
    old = producer(broker, txn_id)
    pid, _ = old.init()
    old.produce(topic, {0: records("old", 3)})
    # A new instance: the first InitProducerId answers CONCURRENT_TRANSACTIONS while the
    # ongoing transaction is aborted, the retry gets the epoch after that.
    new = producer(broker, txn_id)
    assert new.init_once().error_code == CONCURRENT_TRANSACTIONS
    assert new.init() == (pid, 2), "one bump for fence and abort, one for the new instance"
    # The abort marker went out at epoch 1 (DescribeProducers reports the partition's epoch).
    # (InitProducerId only succeeded once the abort was complete.)
    assert new.describe().transaction_state == "Empty"
    assert describe_producers(new.wire, topic, 0) == [(pid, 1)]
    # The old instance is fenced.
    assert old.produce_once(topic, {0: records("old-late", 1)})[0][0] in FENCED
    r = old.end_txn_once(commit=True)
    assert r.error_code in FENCED, r
    # The new instance works at epoch 2, from sequence 0.
    new.produce(topic, {0: records("new", 2)})
    assert new.end_txn(commit=True) == (pid, 3)
    wait_until(lambda: new.describe().transaction_state == "CompleteCommit", what="commit")
    assert read_values(broker, topic, [0], READ_COMMITTED) == values("new", 2)
    assert read_values(broker, topic, [0], READ_UNCOMMITTED) == values("new", 2) | values("old", 3)
    old.wire.close()
    new.wire.close()


@pytest.mark.parametrize("clean", [True, False], ids=["sigterm", "kill9"])
def test_transaction_state_survives_restarts(broker, unique_topic, clean):
    topic = unique_topic
    group = f"{topic}-g"
    ck_create_topic(broker, topic, 3)
    txn_id = f"{topic}-txn"
    p = producer(broker, txn_id)
    pid, _ = p.init()
    # One committed transaction first, so the open one runs at a bumped epoch.
    p.produce(topic, {0: records("a", 1)})
    assert p.end_txn(commit=True) == (pid, 1)
    p.produce(topic, {0: records("b0", 2), 1: records("b1", 1)})
    p.find_coordinator(group, 0)
    p.txn_offset_commit(group, {(topic, 0): 11})
    before = describe_partitions(p)
    seq = dict(p.seq)
    p.wire.close()

    broker.restart(clean=clean)
    p = producer(broker, txn_id)
    p.producer_id, p.epoch, p.seq = pid, 1, seq
    d = p.describe()
    assert (d.transaction_state, d.producer_id, d.producer_epoch) == ("Ongoing", pid, 1)
    assert describe_partitions(p) == before
    # The feature level is in the metadata log: still finalized after the restart.
    finalized = {f.name: f.max_version_level for f in api_versions(p.wire).finalized_features}
    assert finalized.get("transaction.version") == 2
    # The transaction continues: more records (sequences go on) and a new partition.
    p.produce(topic, {0: records("c0", 1), 2: records("c2", 2)})
    assert offset_fetch(p.wire, group, topic, [0]) == {0: (NONE, -1)}
    assert p.end_txn(commit=True) == (pid, 2)
    # Restart again straight after the EndTxn: the markers are written (again) afterwards.
    p.wire.close()
    broker.restart(clean=clean)
    p = producer(broker, txn_id)
    p.producer_id, p.epoch, p.seq = pid, 2, {}
    wait_until(lambda: p.describe().transaction_state == "CompleteCommit", what="CompleteCommit")
    assert p.describe().producer_epoch == 2
    wait_until(lambda: offset_fetch(p.wire, group, topic, [0]) == {0: (NONE, 11)},
               what="offsets committed")
    expected = values("a", 1) | values("b0", 2) | values("b1", 1) | values("c0", 1) | values("c2", 2)
    assert read_values(broker, topic, [0, 1, 2], READ_COMMITTED) == expected
    # And the producer goes on at epoch 2 from sequence 0.
    p.produce(topic, {1: records("d1", 1)})
    assert p.end_txn(commit=False) == (pid, 3)
    wait_until(lambda: p.describe().transaction_state == "CompleteAbort", what="CompleteAbort")
    assert read_values(broker, topic, [0, 1, 2], READ_COMMITTED) == expected
    p.wire.close()
