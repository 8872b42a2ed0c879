"""Transactions with kafka-python 3 and aiokafka: their transactional producers (commit, abort,
transactional offset commits, fencing by a newer instance) checked with read_committed consumers
of all three clients, and their read_committed consumers filtering a stream of committed and
aborted transactions written by librdkafka.

aiokafka speaks version 0 of InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
TxnOffsetCommit, so it only knows INVALID_PRODUCER_EPOCH for fencing (PRODUCER_FENCED, KIP-588, is
answered from v2 on in Kafka); kafka-python negotiates newer versions.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import TopicPartition as CkTP

from helpers import ck_create_topic, ck_group_consumer, wait_until
from txn_pipeline import close_producers  # noqa: F401 - fixture
from txn_pipeline import (READ_COMMITTED, READ_UNCOMMITTED, TXN_BROKER_CONFIG, ck_read_to,
                          ck_txn_producer, ck_watermarks_iso, run_txn)

pytestmark = [pytest.mark.broker_config(TXN_BROKER_CONFIG),
              pytest.mark.usefixtures("close_producers")]

# Three transactions per partition: committed (3 records), aborted (3), committed (2); offsets
# 0-2 and marker 3, 4-6 and marker 7, 8-9 and marker 10.
TXNS = [("commit", 3), ("abort", 3), ("commit", 2)]
END = 11


def expected(q: int, committed_only: bool) -> list:
    out, off = [], 0
    for i, (outcome, n) in enumerate(TXNS):
        if outcome == "commit" or not committed_only:
            out += [(off + j, b"t%d-%d-%d" % (i, q, j)) for j in range(n)]
        off += n + 1
    return out


def group_offset(broker, group: str, topic: str, q: int) -> int:
    c = ck_group_consumer(broker, group)
    try:
        return c.committed([CkTP(topic, q)], timeout=10)[0].offset
    finally:
        c.close()


def check_log(broker, topic: str, parts) -> None:
    ends = {q: END for q in parts}
    # The last EndTxn is answered once the outcome is in the transaction log; its markers are
    # written after that (as in Kafka), so the end offsets are waited for, not read once.
    for q in parts:
        wait_until(lambda: (ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1],
                            ck_watermarks_iso(broker, topic, q, READ_UNCOMMITTED)[1]) == (END, END),
                   30, interval=0.1, what=f"partition {q}'s markers (LSO = high watermark = {END})")
    rc = ck_read_to(broker, topic, ends, READ_COMMITTED)
    ru = ck_read_to(broker, topic, ends, READ_UNCOMMITTED)
    for q in parts:
        assert [(o, v) for o, _k, v in rc[q]] == expected(q, True), q
        assert [(o, v) for o, _k, v in ru[q]] == expected(q, False), q


# ---- kafka-python -------------------------------------------------------------------------------

def kp_read(broker, topic: str, ends: dict, isolation: str, timeout: float = 30) -> dict:
    """kafka-python consumer from offset 0 until its position reaches ends[q]; {q: [(o, v)]}."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      isolation_level=isolation, fetch_max_wait_ms=100)
    try:
        tps = {q: TopicPartition(topic, q) for q in ends}
        c.assign(list(tps.values()))
        c.seek_to_beginning()
        # end_offsets uses the consumer's isolation level: the LSO for read_committed.
        got_ends = {tp.partition: o for tp, o in c.end_offsets(list(tps.values())).items()}
        assert got_ends == ends, f"kafka-python end_offsets ({isolation}): {got_ends}"
        out: dict[int, list] = {q: [] for q in ends}
        deadline = time.monotonic() + timeout
        while any(c.position(tps[q]) < ends[q] for q in ends):
            assert time.monotonic() < deadline, (
                f"positions {[c.position(tp) for tp in tps.values()]}, expected {ends}")
            for tp, recs in c.poll(timeout_ms=200).items():
                for r in recs:
                    assert r.offset < ends[tp.partition], (tp, r.offset, r.value)
                    out[tp.partition].append((r.offset, r.value))
        return out
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_kafka_python_transactional_producer(broker, unique_topic):
    from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition
    import kafka.errors as Errors

    topic, group, txn_id = unique_topic, f"g-{unique_topic}", f"tx-{unique_topic}"
    ck_create_topic(broker, topic, 2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=txn_id,
                      max_block_ms=30000)
    new = None
    try:
        p.init_transactions()
        assert p._transaction_manager.producer_id_and_epoch.producer_id >= 0
        for i, (outcome, n) in enumerate(TXNS):
            p.begin_transaction()
            futs = [(q, j, p.send(topic, value=b"t%d-%d-%d" % (i, q, j), partition=q))
                    for q in (0, 1) for j in range(n)]
            p.flush(30)
            base = sum(m + 1 for _o, m in TXNS[:i])
            for q, j, f in futs:
                assert f.get(10).offset == base + j, (i, q, j)
            # The consumed-offsets part of the transaction: group offset 2 + i for partition 0.
            p.send_offsets_to_transaction(
                {TopicPartition(topic, 0): OffsetAndMetadata(2 + i, "", -1)}, group)
            if outcome == "commit":
                p.commit_transaction()
            else:
                p.abort_transaction()
        check_log(broker, topic, (0, 1))
        assert kp_read(broker, topic, {0: END, 1: END}, READ_COMMITTED) == {
            q: expected(q, True) for q in (0, 1)}
        assert kp_read(broker, topic, {0: END, 1: END}, READ_UNCOMMITTED) == {
            q: expected(q, False) for q in (0, 1)}
        # Offsets of the committed transactions count, the aborted one's (3) do not: the last
        # committed transaction wrote 4.
        assert group_offset(broker, group, topic, 0) == 4

        # Fencing: a second instance with the same transactional id aborts the first one's open
        # transaction; the first one's commit fails as fenced.
        p.begin_transaction()
        p.send(topic, value=b"fenced", partition=0).get(10)
        assert ck_watermarks_iso(broker, topic, 0, READ_COMMITTED)[1] == END
        new = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=txn_id,
                            max_block_ms=30000)
        new.init_transactions()
        assert ck_watermarks_iso(broker, topic, 0, READ_COMMITTED)[1] == END + 2  # marker
        with pytest.raises((Errors.ProducerFencedError, Errors.InvalidProducerEpochError)):
            p.commit_transaction()
        new.begin_transaction()
        assert new.send(topic, value=b"from-new", partition=1).get(10).offset == END
        new.commit_transaction()
        rc = ck_read_to(broker, topic, {0: END + 2, 1: END + 2}, READ_COMMITTED)
        assert [v for _o, _k, v in rc[0]] == [v for _o, v in expected(0, True)]
        assert [v for _o, _k, v in rc[1]][-1] == b"from-new"
    finally:
        for prod in (p, new):
            if prod is not None:
                try:
                    prod.close(timeout=5)
                except Exception:  # noqa: BLE001 - a fenced producer may fail to close cleanly
                    pass


# ---- aiokafka -----------------------------------------------------------------------------------

async def aio_read(broker, topic: str, ends: dict, isolation: str, timeout: float = 30) -> dict:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest", isolation_level=isolation,
                         fetch_max_wait_ms=100)
    await c.start()
    try:
        tps = {q: TopicPartition(topic, q) for q in ends}
        c.assign(list(tps.values()))
        await c.seek_to_beginning(*tps.values())
        got_ends = {tp.partition: o for tp, o in (await c.end_offsets(list(tps.values()))).items()}
        assert got_ends == ends, f"aiokafka end_offsets ({isolation}): {got_ends}"
        out: dict[int, list] = {q: [] for q in ends}
        deadline = time.monotonic() + timeout

        async def behind():
            return [q for q in ends if await c.position(tps[q]) < ends[q]]
        while await behind():
            assert time.monotonic() < deadline, f"still behind {await behind()} of {ends}"
            for tp, recs in (await c.getmany(timeout_ms=200)).items():
                for r in recs:
                    assert r.offset < ends[tp.partition], (tp, r.offset, r.value)
                    out[tp.partition].append((r.offset, r.value))
        return out
    finally:
        await c.stop()


@pytest.mark.timeout(120)
def test_aiokafka_transactional_producer(broker, unique_topic):
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.errors import ProducerFenced

    topic, group, txn_id = unique_topic, f"g-{unique_topic}", f"tx-{unique_topic}"
    ck_create_topic(broker, topic, 2)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=txn_id)
        new = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=txn_id)
        await p.start()  # InitProducerId
        try:
            for i, (outcome, n) in enumerate(TXNS):
                await p.begin_transaction()
                futs = [(q, j, await p.send(topic, b"t%d-%d-%d" % (i, q, j), partition=q))
                        for q in (0, 1) for j in range(n)]
                base = sum(m + 1 for _o, m in TXNS[:i])
                for q, j, f in futs:
                    assert (await f).offset == base + j, (i, q, j)
                await p.send_offsets_to_transaction({TopicPartition(topic, 0): 2 + i}, group)
                if outcome == "commit":
                    await p.commit_transaction()
                else:
                    await p.abort_transaction()
            check_log(broker, topic, (0, 1))
            assert await aio_read(broker, topic, {0: END, 1: END}, READ_COMMITTED) == {
                q: expected(q, True) for q in (0, 1)}
            assert await aio_read(broker, topic, {0: END, 1: END}, READ_UNCOMMITTED) == {
                q: expected(q, False) for q in (0, 1)}
            assert group_offset(broker, group, topic, 0) == 4

            # Fencing (the coordinator answers v0 requests with INVALID_PRODUCER_EPOCH).
            await p.begin_transaction()
            await (await p.send(topic, b"fenced", partition=0))
            await new.start()
            # start() only schedules InitProducerId; begin_transaction() waits for its answer.
            await new.begin_transaction()
            assert ck_watermarks_iso(broker, topic, 0, READ_COMMITTED)[1] == END + 2
            with pytest.raises(ProducerFenced):
                await p.commit_transaction()
            await (await new.send(topic, b"from-new", partition=1))
            await new.commit_transaction()
        finally:
            for prod in (p, new):
                try:
                    await prod.stop()
                except Exception:  # noqa: BLE001 - a fenced producer may fail to stop cleanly
                    pass
    asyncio.run(asyncio.wait_for(run(), 90))
    rc = ck_read_to(broker, topic, {0: END + 2, 1: END + 2}, READ_COMMITTED)
    assert [v for _o, _k, v in rc[0]] == [v for _o, v in expected(0, True)]
    assert [v for _o, _k, v in rc[1]][-1] == b"from-new"


# ---- read_committed consumers of kafka-python and aiokafka -------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ["kafka-python", "aiokafka"])
def test_read_committed_consumer_filters_aborted_and_stops_at_lso(broker, unique_topic, client):
    """librdkafka writes committed and aborted transactions, then leaves one open on partition 0;
    the other clients' read_committed consumers see exactly the committed records (they filter
    with the aborted-transactions list of the Fetch response) and stop at the LSO."""
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {0: 0, 1: 0}
    for i, (outcome, n) in enumerate(TXNS):
        run_txn(p, topic, [(None, b"t%d-%d-%d" % (i, q, j), q) for q in (0, 1) for j in range(n)],
                outcome, cursor)
    assert cursor == {0: END, 1: END}
    run_txn(p, topic, [(None, b"open-%d" % j, 0) for j in range(3)], None, cursor)

    if client == "kafka-python":
        rc = kp_read(broker, topic, {0: END, 1: END}, READ_COMMITTED)
        ru = kp_read(broker, topic, {0: END + 3, 1: END}, READ_UNCOMMITTED)
    else:
        rc = asyncio.run(aio_read(broker, topic, {0: END, 1: END}, READ_COMMITTED))
        ru = asyncio.run(aio_read(broker, topic, {0: END + 3, 1: END}, READ_UNCOMMITTED))
    for q in (0, 1):
        assert rc[q] == expected(q, True), (q, rc[q])
    assert ru[0] == expected(0, False) + [(END + j, b"open-%d" % j) for j in range(3)]
    assert ru[1] == expected(1, False)

    p.commit_transaction(30)
    wait_until(lambda: ck_watermarks_iso(broker, topic, 0, READ_COMMITTED)[1] == END + 4, 30,
               what="LSO after the commit")
    if client == "kafka-python":
        rc = kp_read(broker, topic, {0: END + 4}, READ_COMMITTED)
    else:
        rc = asyncio.run(aio_read(broker, topic, {0: END + 4}, READ_COMMITTED))
    assert rc[0] == expected(0, True) + [(END + j, b"open-%d" % j) for j in range(3)]


# ---- admin: DescribeTransactions, ListTransactions, DescribeProducers (kafka-python) ------------

@pytest.mark.timeout(120)
def test_admin_describes_transactions_and_producers(broker, unique_topic):
    from kafka import KafkaAdminClient, TopicPartition
    import kafka.errors as Errors

    topic, txn_id = unique_topic, f"tx-{unique_topic}"
    ck_create_topic(broker, topic, 2)
    p = ck_txn_producer(broker, txn_id, **{"transaction.timeout.ms": 45000})
    p.init_transactions(30)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        # A committed transaction first, so the open one starts at offset 3 of partition 0.
        cursor = {0: 0, 1: 0}
        run_txn(p, topic, [(None, b"a", 0), (None, b"b", 0)], "commit", cursor)
        before = time.time() * 1000
        run_txn(p, topic, [(None, b"c", 0), (None, b"d", 0), (None, b"e", 1)], None, cursor)

        d = admin.describe_transactions([txn_id])[txn_id]
        assert d.state == "Ongoing", d
        assert d.transaction_timeout_ms == 45000, d
        assert d.topic_partitions == {tp0, tp1}, d
        assert before - 5000 <= d.transaction_start_time_ms <= time.time() * 1000 + 5000, d
        assert d.producer_id >= 0 and d.producer_epoch >= 0, d

        listed = [t for ts in admin.list_transactions().values() for t in ts
                  if t.transactional_id == txn_id]
        assert [(t.producer_id, t.state) for t in listed] == [(d.producer_id, "Ongoing")], listed
        ongoing = [t.transactional_id for ts in admin.list_transactions(
            state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id in ongoing
        # ListTransactions v1: only transactions running longer than the duration filter.
        old = [t.transactional_id for ts in admin.list_transactions(
            duration_filter_ms=600000).values() for t in ts]
        assert txn_id not in old

        # The partition leader's producer state: the open transaction's first offset.
        states = admin.describe_producers([tp0, tp1])
        for tp, first, last_seq in ((tp0, 3, 3), (tp1, 0, 0)):
            ps = [s for s in states[tp].active_producers if s.producer_id == d.producer_id]
            assert len(ps) == 1, (tp, states[tp])
            assert ps[0].producer_epoch == d.producer_epoch, (tp, ps)
            assert ps[0].current_transaction_start_offset == first, (tp, ps)
            assert ps[0].last_sequence == last_seq, (tp, ps)

        p.commit_transaction(30)
        d = admin.describe_transactions([txn_id])[txn_id]
        assert d.state == "CompleteCommit" and d.topic_partitions == set(), d
        ongoing = [t.transactional_id for ts in admin.list_transactions(
            state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id not in ongoing
        states = admin.describe_producers([tp0])
        ps = [s for s in states[tp0].active_producers if s.producer_id == d.producer_id]
        assert len(ps) == 1 and ps[0].current_transaction_start_offset == -1, ps

        with pytest.raises(Errors.TransactionalIdNotFoundError):
            admin.describe_transactions([f"no-such-{txn_id}"])
    finally:
        admin.close()
