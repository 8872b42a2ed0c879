"""Exactly-once consume-transform-produce (KIP-98, KIP-447) with confluent-kafka: a pipeline
process (txn_pipeline.py, mode "pipeline") reads an input topic in a consumer group and writes
each batch to an output topic in one transaction together with the consumed offsets
(send_offsets_to_transaction).

Three instances share one transactional.id:
  A1 is SIGKILLed with a transaction open (records in the output log, offsets sent);
  A2 takes over (its init_transactions aborts A1's transaction), commits, then holds a second
     transaction open;
  A3 starts: its init_transactions fences A2 and aborts A2's transaction; A2's commit then fails
     with a fatal fenced error; A3 processes the rest.
A read_committed reader of the output must see every input record exactly once, although the
aborted attempts left duplicates in the log (visible to read_uncommitted), and the group's
committed offsets must be the input's end offsets.
"""
from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka import KafkaError, TopicPartition

from helpers import ck_create_topic, ck_group_consumer, ck_produce_all, ck_producer, wait_until
from txn_pipeline import close_producers, txn_procs  # noqa: F401 - fixtures
from txn_pipeline import (READ_COMMITTED, READ_UNCOMMITTED, TXN_BROKER_CONFIG, ck_read_to,
                          ck_watermarks_iso, tracked)

PARTITIONS = 3
PER_PARTITION = 30
BATCH = 10
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def committed_positions(*procs) -> dict[int, int]:
    """The input offsets the instances have committed in transactions, per partition."""
    pos: dict[int, int] = {}
    for proc in procs:
        for e in proc.snapshot("committed"):
            for p, o in e["offsets"]:
                pos[p] = max(pos.get(p, 0), o)
    return pos


def first_consumed(proc) -> dict[int, int]:
    """The first input offset the instance consumed, per partition."""
    first: dict[int, int] = {}
    for e in proc.snapshot("produced"):
        for p, lo, _hi in e["consumed"]:
            first[p] = min(first.get(p, lo), lo)
    return first


def lso_and_hwm(broker, topic: str) -> dict[int, tuple[int, int]]:
    return {p: (ck_watermarks_iso(broker, topic, p, READ_COMMITTED)[1],
                ck_watermarks_iso(broker, topic, p, READ_UNCOMMITTED)[1])
            for p in range(PARTITIONS)}


@pytest.mark.timeout(240)
@pytest.mark.broker_config(TXN_BROKER_CONFIG)
@pytest.mark.usefixtures("close_producers")
def test_consume_transform_produce_exactly_once_across_sigkill_and_fencing(
        broker, unique_topic, txn_procs):  # noqa: F811 - fixture
    src, dst = f"{unique_topic}-in", f"{unique_topic}-out"
    group, txn_id = f"g-{unique_topic}", f"eos-{unique_topic}"
    ck_create_topic(broker, src, PARTITIONS)
    ck_create_topic(broker, dst, PARTITIONS)
    inputs = [(b"k%d-%d" % (p, i), b"in-%d-%d" % (p, i), p)
              for i in range(PER_PARTITION) for p in range(PARTITIONS)]
    ck_produce_all(tracked(ck_producer(broker)), src, inputs)
    ends = {p: PER_PARTITION for p in range(PARTITIONS)}

    def instance(name: str, **kw):
        return txn_procs({"mode": "pipeline", "name": name, "bootstrap": broker.bootstrap,
                          "txn_id": txn_id, "group": group, "input": src, "output": dst,
                          "batch": BATCH, "transaction_timeout_ms": 60000, **kw})

    # ---- A1: two transactions committed, killed with the third open ----------------------------
    a1 = instance("A1", hold_at=3, hold="forever")
    a1.wait_event("holding", 60)
    a1.kill9()
    assert len(a1.snapshot("committed")) == 2
    held = a1.snapshot("produced")[-1]
    # Its open transaction holds the LSO of every output partition it wrote to.
    marks = lso_and_hwm(broker, dst)
    for p in held["partitions"]:
        lso, hwm = marks[p]
        assert lso < hwm, f"output partition {p}: LSO {lso} not behind the open transaction {marks}"

    # ---- A2: takes over (aborting A1's transaction), commits one, holds the next open -----------
    # (A1's group member stays until its session times out, so A2's first assignment takes ~6 s.)
    a2 = instance("A2", hold_at=2, hold="stdin")
    a2.wait_event("initialized", 60)
    # A1's transaction was aborted by A2's InitProducerId: nothing open in the output any more.
    marks = lso_and_hwm(broker, dst)
    assert all(lso == hwm for lso, hwm in marks.values()), f"after A2's init: {marks}"
    a2.wait_event("holding", 60)
    assert len(a2.snapshot("committed")) == 1
    # A2 resumed from A1's committed offsets (only committed transactions' offsets count).
    a1_pos = committed_positions(a1)
    a2_first = first_consumed(a2)
    assert a2_first and all(o == a1_pos.get(p, 0) for p, o in a2_first.items()), (
        f"A2 started at {a2_first}, A1 committed {a1_pos}")

    # ---- A3: fences A2 ---------------------------------------------------------------------------
    a3 = instance("A3")
    a3.wait_event("initialized", 60)
    a2.release()
    err = a2.wait_event("error", 30)
    assert err["stage"] == "commit_transaction" and err["fatal"] and err["code"] in FENCED, (
        f"the fenced instance's commit: {err}")
    assert a2.wait_exit(30) == 3
    assert len(a2.snapshot("committed")) == 1, "the fenced instance committed its transaction"

    # ---- A3 processes everything left ----------------------------------------------------------
    def a3_done():
        assert a3.alive(), f"A3 exited: {a3.snapshot()[-5:]}\n{a3.stderr_tail()}"
        return committed_positions(a1, a2, a3) == ends
    wait_until(a3_done, 90, interval=0.2, what="A3 committing the input's end offsets")
    # A3 started where A1 and A2 had committed; A2's aborted offsets do not count.
    before = committed_positions(a1, a2)
    a3_first = first_consumed(a3)
    assert a3_first and all(o == before.get(p, 0) for p, o in a3_first.items()), (
        f"A3 started at {a3_first}, committed before: {before}")
    assert a3.terminate() == 0, a3.stderr_tail()
    assert not [e for e in a3.snapshot("error")], a3.snapshot("error")

    # ---- the output holds every input record exactly once for read_committed -------------------
    marks = lso_and_hwm(broker, dst)
    assert all(lso == hwm for lso, hwm in marks.values()), f"something still open: {marks}"
    out_ends = {p: hwm for p, (_lso, hwm) in marks.items()}
    rc = ck_read_to(broker, dst, out_ends, READ_COMMITTED)
    ru = ck_read_to(broker, dst, out_ends, READ_UNCOMMITTED)
    want = Counter(b"out:" + v for _k, v, _p in inputs)
    got = Counter(v for p in rc for _o, _k, v in rc[p])
    missing, dup = want - got, {v: n for v, n in got.items() if n > 1}
    extra = got - want
    assert not missing and not dup and not extra, (
        f"missing {sorted(missing)[:10]}, duplicated {sorted(dup)[:10]}, unexpected {extra}")
    for p in range(PARTITIONS):  # same partition, input order
        assert [v for _o, _k, v in rc[p]] == [b"out:in-%d-%d" % (p, i)
                                              for i in range(PER_PARTITION)]
    # The aborted attempts of A1 and A2 are in the log: read_uncommitted sees their duplicates.
    aborted = sum(len(v) for v in ru.values()) - sum(len(v) for v in rc.values())
    expect_aborted = held["count"] + a2.snapshot("produced")[-1]["count"]
    assert aborted == expect_aborted, (aborted, expect_aborted)

    # ---- the group's offsets are the input's end offsets ----------------------------------------
    c = ck_group_consumer(broker, group)
    try:
        got_offs = {tp.partition: tp.offset for tp in
                    c.committed([TopicPartition(src, p) for p in range(PARTITIONS)], timeout=10)}
    finally:
        c.close()
    assert got_offs == ends
