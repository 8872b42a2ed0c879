"""Transactions (KIP-98, Transactions V1 as Kafka 4.1 serves clients without KIP-890 part 2) with
confluent-kafka: commit and abort across partitions, read_committed against read_uncommitted, the
last stable offset while a transaction is open (also with two producers interleaving), the broker
aborting a transaction past its timeout, fencing by a newer instance, transactional offset
commits (UNSTABLE_OFFSET_COMMIT while pending), InitProducerId's timeout limit, and transaction
state across a broker kill -9 or clean restart (also with an aborted transaction spanning
segments). The exactly-once pipeline is in test_transactions_eos.py, kafka-python and aiokafka
in test_transactions_clients.py.

Offsets are predicted exactly: every transaction ends with one control record (the commit or abort
marker) in each partition it wrote to, which takes one offset and is never returned to
applications. A read_committed consumer reaches end of partition at the last stable offset (LSO):
the first offset of the earliest transaction still open in the partition, or the high watermark.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import (IsolationLevel, KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import OffsetSpec

from helpers import ck_admin, ck_consumer, ck_create_topic, ck_produce_all, ck_producer, wait_until
from txn_pipeline import close_producers, txn_procs  # noqa: F401 - fixtures
from txn_pipeline import (READ_COMMITTED, READ_UNCOMMITTED, TXN_BROKER_CONFIG, ck_read_to,
                          ck_txn_producer, ck_watermarks_iso, run_txn, tracked)

# The errors a fenced librdkafka producer reports: librdkafka turns PRODUCER_FENCED and
# INVALID_PRODUCER_EPOCH into its fatal _FENCED (rd_kafka_txn_normalize_err).
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}

pytestmark = [pytest.mark.broker_config(TXN_BROKER_CONFIG),
              pytest.mark.usefixtures("close_producers")]


def fatal_error_of(excinfo) -> KafkaError:
    err = excinfo.value.args[0]
    assert isinstance(err, KafkaError), excinfo.value
    return err


def produce_expecting_fatal(producer, topic: str, value: bytes, error_cb_errors: list) -> list:
    """Produces one record to partition 0 and flushes; returns the fatal errors reported (raised
    by flush() or passed to error_cb). No delivery callback: confluent-kafka raises a fatal error
    from flush() and would then call the callback with that exception pending."""
    producer.produce(topic, value=value, partition=0)
    raised = []
    try:
        producer.flush(30)
    except KafkaException as e:
        raised.append(e.args[0])
    # Deduplicate: the same fatal error may be both raised and passed to error_cb.
    seen, out = set(), []
    for e in raised + list(error_cb_errors):
        if e.fatal() and (e.code(), e.str()) not in seen:
            seen.add((e.code(), e.str()))
            out.append(e)
    return out


def values(read: dict, p: int) -> list:
    return [v for _o, _k, v in read[p]]


def assert_watermarks(broker, topic: str, expect: dict, timeout: float = 30) -> None:
    """expect {p: (last stable offset, high watermark)} from ListOffsets with read_committed and
    read_uncommitted, within `timeout`: EndTxn is answered once the outcome is in the transaction
    log and the markers are written after that (as in Kafka), so a check right after
    commit_transaction() or abort_transaction() may have to wait for them."""
    got = {}

    def reached():
        got.update({p: (ck_watermarks_iso(broker, topic, p, READ_COMMITTED)[1],
                        ck_watermarks_iso(broker, topic, p, READ_UNCOMMITTED)[1]) for p in expect})
        return got == expect

    deadline = time.monotonic() + timeout
    while not reached() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got == expect, (
        f"(read_committed, read_uncommitted) high offsets {got}, expected {expect}")


# ---- 1. commit and abort, read_committed and read_uncommitted ----------------------------------

PLAN = [("commit", (0, 1, 2)), ("abort", (0, 1, 2)), ("commit", (1,)), ("abort", (0, 2)),
        ("commit", (0, 1, 2)), ("abort", (2,))]
PER_PARTITION = 4


def test_committed_and_aborted_transactions_across_partitions(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 3)
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {q: 0 for q in range(3)}
    written: dict[int, list] = {q: [] for q in range(3)}  # (offset, value, committed)
    for i, (outcome, parts) in enumerate(PLAN):
        recs = [(b"t%d" % i, b"t%d-p%d-%d" % (i, q, j), q) for q in parts
                for j in range(PER_PARTITION)]
        for q, off, v in run_txn(p, topic, recs, outcome, cursor):
            written[q].append((off, v, outcome == "commit"))
    for q in written:
        written[q].sort()

    # Each partition: its records plus one marker per transaction that touched it; nothing open,
    # so the last stable offset is the high watermark.
    expect_end = {q: sum(PER_PARTITION + 1 for _o, parts in PLAN if q in parts) for q in range(3)}
    assert cursor == expect_end
    assert_watermarks(broker, topic, {q: (e, e) for q, e in expect_end.items()})
    for q in range(3):
        assert ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[0] == 0

    # read_uncommitted: every record, committed or aborted, at the offsets the producer was told;
    # the markers are skipped, never delivered as messages.
    ru = ck_read_to(broker, topic, expect_end, READ_UNCOMMITTED)
    for q in range(3):
        assert [(o, v) for o, _k, v in ru[q]] == [(o, v) for o, v, _c in written[q]], q
    # read_committed: exactly the committed records.
    rc = ck_read_to(broker, topic, expect_end, READ_COMMITTED)
    for q in range(3):
        assert [(o, v) for o, _k, v in rc[q]] == [(o, v) for o, v, c in written[q] if c], (
            f"partition {q}: read_committed got {values(rc, q)}")
    # librdkafka's default isolation level is read_committed.
    assert ck_read_to(broker, topic, expect_end, None) == rc


# ---- 1b. the last stable offset while a transaction is open ------------------------------------

def test_open_transaction_holds_last_stable_offset(broker, unique_topic):
    topic = unique_topic
    ck_create_topic(broker, topic, 3)
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {q: 0 for q in range(3)}
    run_txn(p, topic, [(None, b"c-%d-%d" % (q, j), q) for q in range(3) for j in range(3)],
            "commit", cursor)
    assert cursor == {0: 4, 1: 4, 2: 4}
    # An open transaction on partitions 0 and 1 (offsets 4..8), then two non-transactional
    # records on partition 0 (9, 10): those are behind the open transaction, so not stable either.
    open_recs = run_txn(p, topic, [(None, b"o-%d-%d" % (q, j), q) for q in (0, 1)
                                   for j in range(5)], None, cursor)
    assert {(q, o) for q, o, _v in open_recs} == {(q, o) for q in (0, 1) for o in range(4, 9)}
    plain = ck_produce_all(tracked(ck_producer(broker)), topic,
                           [(None, b"plain-0", 0), (None, b"plain-1", 0)])
    assert [m.offset() for m in plain] == [9, 10]

    # ListOffsets: read_committed stops at the first offset of the open transaction (4), per
    # partition; read_uncommitted at the high watermark. Partition 2 has nothing open.
    assert_watermarks(broker, topic, {0: (4, 11), 1: (4, 9), 2: (4, 4)})
    admin = ck_admin(broker)
    for iso, want in ((IsolationLevel.READ_COMMITTED, {0: 4, 1: 4, 2: 4}),
                      (IsolationLevel.READ_UNCOMMITTED, {0: 11, 1: 9, 2: 4})):
        fs = admin.list_offsets({TopicPartition(topic, q): OffsetSpec.latest() for q in range(3)},
                                isolation_level=iso, request_timeout=10)
        got = {tp.partition: f.result(10).offset for tp, f in fs.items()}
        assert got == want, f"AdminClient.list_offsets({iso}): {got}, expected {want}"

    # A read_committed consumer reaches end of partition at the LSO and gets nothing of the open
    # transaction (nor of the plain records after it) while it stays open.
    c = ck_consumer(broker, **{"isolation.level": READ_COMMITTED, "enable.partition.eof": True,
                               "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, q, 0) for q in range(3)])
        seen: dict[int, list] = {q: [] for q in range(3)}
        eof: dict[int, int] = {}

        def pump(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for m in c.consume(100, 0.1):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            eof[m.partition()] = m.offset()
                            continue
                        raise KafkaException(m.error())
                    seen[m.partition()].append((m.offset(), m.value()))

        wait_until(lambda: pump(0.2) or eof == {0: 4, 1: 4, 2: 4}, 30,
                   what=f"end of partition at the LSO (eof {eof})")
        # Keep fetching for a while: the open transaction must stay invisible (a bounded
        # observation window for a negative check, not synchronisation).
        pump(1.5)
        assert eof == {0: 4, 1: 4, 2: 4}
        assert {q: [o for o, _v in s] for q, s in seen.items()} == {q: [0, 1, 2] for q in range(3)}
        # read_uncommitted sees it all right now.
        ru = ck_read_to(broker, topic, {0: 11, 1: 9}, READ_UNCOMMITTED)
        assert values(ru, 0)[3:] == [b"o-0-%d" % j for j in range(5)] + [b"plain-0", b"plain-1"]

        p.commit_transaction(30)
        # Now the same consumer gets the transaction's records and the plain ones after it, then
        # end of partition at the new high watermarks (commit markers at 11 and 9).
        wait_until(lambda: pump(0.2) or (eof.get(0) == 12 and eof.get(1) == 10), 30,
                   what=f"the committed records (eof {eof})")
    finally:
        c.close()
    assert [o for o, _v in seen[0]] == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert [v for _o, v in seen[0]][3:] == [b"o-0-%d" % j for j in range(5)] + [b"plain-0",
                                                                                  b"plain-1"]
    assert [o for o, _v in seen[1]] == [0, 1, 2, 4, 5, 6, 7, 8]
    assert [o for o, _v in seen[2]] == [0, 1, 2]
    assert_watermarks(broker, topic, {0: (12, 12), 1: (10, 10), 2: (4, 4)})


# ---- 2 (in process). fencing by a newer instance ------------------------------------------------

@pytest.mark.parametrize("next_call", ["commit", "produce"])
def test_new_instance_fences_the_old_one_and_aborts_its_transaction(broker, unique_topic,
                                                                    next_call):
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    txn_id = f"tx-{topic}"
    old_errors: list = []
    old = ck_txn_producer(broker, txn_id, old_errors)
    old.init_transactions(30)
    cursor = {0: 0, 1: 0}
    run_txn(old, topic, [(None, b"old-%d-%d" % (q, j), q) for q in (0, 1) for j in range(3)],
            None, cursor)
    assert_watermarks(broker, topic, {0: (0, 3), 1: (0, 3)})

    # InitProducerId of the new instance bumps the epoch and aborts the old instance's open
    # transaction before it returns: the abort markers are in place when init_transactions ends.
    new = ck_txn_producer(broker, txn_id)
    new.init_transactions(30)
    assert_watermarks(broker, topic, {0: (4, 4), 1: (4, 4)}, timeout=0)  # one read: no waiting

    # The old instance learns it is fenced the next time it uses the transaction: a fatal error.
    if next_call == "produce":
        # Produce with the old epoch: Kafka answers INVALID_PRODUCER_EPOCH (the partition's
        # producer state has the newer epoch from the abort marker; a transaction verification
        # answered PRODUCER_FENCED is turned into INVALID_PRODUCER_EPOCH for Produce too), which
        # librdkafka treats as fatal _FENCED.
        errs = produce_expecting_fatal(old, topic, b"old-late", old_errors)
        assert [e.code() for e in errs] == [KafkaError._FENCED], errs
        assert_watermarks(broker, topic, {0: (4, 4), 1: (4, 4)})
    with pytest.raises(KafkaException) as ei:
        old.commit_transaction(30)
    err = fatal_error_of(ei)
    assert err.code() in FENCED and err.fatal(), f"commit of the fenced producer: {err}"
    with pytest.raises(KafkaException) as ei:
        old.begin_transaction()
    assert fatal_error_of(ei).fatal()

    cursor = {0: 4, 1: 4}
    run_txn(new, topic, [(None, b"new-0-%d" % j, 0) for j in range(2)], "commit", cursor)
    rc = ck_read_to(broker, topic, {0: 7, 1: 4}, READ_COMMITTED)
    assert values(rc, 0) == [b"new-0-0", b"new-0-1"] and values(rc, 1) == []
    ru = ck_read_to(broker, topic, {0: 7, 1: 4}, READ_UNCOMMITTED)
    assert values(ru, 0) == [b"old-0-0", b"old-0-1", b"old-0-2", b"new-0-0", b"new-0-1"]


# ---- 3. the broker aborts a transaction past its timeout ----------------------------------------

TXN_TIMEOUT_MS = 3000


@pytest.mark.parametrize("next_call", ["commit", "produce"])
def test_timed_out_transaction_is_aborted_by_the_broker(broker, unique_topic, next_call):
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    txn_id = f"tx-{topic}"
    p_errors: list = []
    p = ck_txn_producer(broker, txn_id, p_errors, **{"transaction.timeout.ms": TXN_TIMEOUT_MS})
    p.init_transactions(30)
    t0 = time.monotonic()
    cursor = {0: 0, 1: 0}
    run_txn(p, topic, [(None, b"late-%d-%d" % (q, j), q) for q in (0, 1) for j in range(5)],
            None, cursor)
    # Open: the LSO stays at 0. Read first, judge after: the reading is only meaningful if the
    # transaction's timeout had not passed by the time it was done.
    open_state = {q: (ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1],
                      ck_watermarks_iso(broker, topic, q, READ_UNCOMMITTED)[1]) for q in (0, 1)}
    if time.monotonic() - t0 < TXN_TIMEOUT_MS / 1000:
        assert open_state == {0: (0, 5), 1: (0, 5)}, open_state

    # The coordinator's scan (every 1 s here) aborts it once it is older than its timeout: abort
    # markers at offset 5, the LSO moves to the high watermark.
    def aborted():
        return all(ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1] == 6 for q in (0, 1))
    wait_until(aborted, TXN_TIMEOUT_MS / 1000 + 15, interval=0.1,
               what="the timed-out transaction to be aborted")
    elapsed = time.monotonic() - t0
    assert elapsed >= TXN_TIMEOUT_MS / 1000 - 0.1, (
        f"aborted {elapsed:.2f}s after it began, before its {TXN_TIMEOUT_MS} ms timeout")
    assert_watermarks(broker, topic, {0: (6, 6), 1: (6, 6)})
    assert ck_read_to(broker, topic, {0: 6, 1: 6}, READ_COMMITTED) == {0: [], 1: []}
    ru = ck_read_to(broker, topic, {0: 6, 1: 6}, READ_UNCOMMITTED)
    assert [len(v) for v in ru.values()] == [5, 5]

    # The abort bumped the producer epoch (Kafka fences a timed-out producer), so the producer's
    # next use of the transaction fails fatally as fenced.
    if next_call == "produce":
        # The partition's producer state holds the bumped epoch (from the abort marker): the
        # Produce with the old epoch is refused (INVALID_PRODUCER_EPOCH).
        errs = produce_expecting_fatal(p, topic, b"after-timeout", p_errors)
        assert [e.code() for e in errs] == [KafkaError._FENCED], errs
        assert_watermarks(broker, topic, {0: (6, 6), 1: (6, 6)})
    with pytest.raises(KafkaException) as ei:
        p.commit_transaction(30)
    err = fatal_error_of(ei)
    assert err.code() in FENCED and err.fatal(), f"commit after the broker's abort: {err}"

    # The transactional id is usable again by a new instance.
    p2 = ck_txn_producer(broker, txn_id)
    p2.init_transactions(30)
    cursor = {0: 6, 1: 6}
    run_txn(p2, topic, [(None, b"fresh-%d" % j, 0) for j in range(2)], "commit", cursor)
    rc = ck_read_to(broker, topic, {0: 9, 1: 6}, READ_COMMITTED)
    assert values(rc, 0) == [b"fresh-0", b"fresh-1"] and values(rc, 1) == []


# ---- 4. transaction and producer state across a broker kill -9 ---------------------------------

def wait_watermarks_after_restart(broker, topic: str, q: int) -> tuple[int, int]:
    """(LSO, high watermark) once the restarted broker answers ListOffsets for the partition."""
    def both():
        return (ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1],
                ck_watermarks_iso(broker, topic, q, READ_UNCOMMITTED)[1])
    return wait_until(both, 30, interval=0.2, what=f"ListOffsets of partition {q} after restart")


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_open_transaction_survives_broker_kill9(broker, unique_topic, outcome):
    """The producer outlives the broker: committed, aborted and open transactions keep their
    meaning through a kill -9, and the same producer finishes the open one afterwards."""
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {0: 0, 1: 0}
    run_txn(p, topic, [(None, b"c1-%d-%d" % (q, j), q) for q in (0, 1) for j in range(3)],
            "commit", cursor)
    run_txn(p, topic, [(None, b"a2-%d-%d" % (q, j), q) for q in (0, 1) for j in range(3)],
            "abort", cursor)
    run_txn(p, topic, [(None, b"o3-%d-%d" % (q, j), q) for q in (0, 1) for j in range(4)],
            None, cursor)
    assert cursor == {0: 12, 1: 12}
    assert_watermarks(broker, topic, {0: (8, 12), 1: (8, 12)})

    broker.kill9()
    broker.start()

    # The open transaction is rebuilt from the log: the LSO is where it was.
    for q in (0, 1):
        assert wait_watermarks_after_restart(broker, topic, q) == (8, 12), q
    # The aborted transaction stays aborted for read_committed (aborted-transaction index).
    rc = ck_read_to(broker, topic, {0: 8, 1: 8}, READ_COMMITTED)
    for q in (0, 1):
        assert values(rc, q) == [b"c1-%d-%d" % (q, j) for j in range(3)], q

    # The coordinator still knows the transaction: the same producer completes it.
    if outcome == "commit":
        p.commit_transaction(60)
    else:
        p.abort_transaction(60)
    wait_until(lambda: all(ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1] == 13
                           for q in (0, 1)), 30, what="the LSO past the marker at 12")
    rc = ck_read_to(broker, topic, {0: 13, 1: 13}, READ_COMMITTED)
    for q in (0, 1):
        want = [b"c1-%d-%d" % (q, j) for j in range(3)]
        if outcome == "commit":
            want += [b"o3-%d-%d" % (q, j) for j in range(4)]
        assert values(rc, q) == want, (q, values(rc, q))

    # Its producer id, epoch and sequences are still valid: another transaction goes through.
    cursor = {0: 13, 1: 13}
    run_txn(p, topic, [(None, b"t4-%d" % q, q) for q in (0, 1)], "commit", cursor)
    rc = ck_read_to(broker, topic, {0: 15, 1: 15}, READ_COMMITTED)
    for q in (0, 1):
        assert values(rc, q)[-1] == b"t4-%d" % q


def test_crashed_producers_open_transaction_pins_lso_across_kill9_until_fenced(
        broker, unique_topic, txn_procs):
    """Producer application and broker both crash mid-transaction. After the restart the open
    transaction keeps the LSO where it was; a new instance with the same transactional.id aborts
    it in init_transactions, and only then do read_committed consumers move past it."""
    topic = unique_topic
    ck_create_topic(broker, topic, 2)
    txn_id = f"tx-{topic}"
    app = txn_procs({"mode": "open", "name": "crashing-app", "bootstrap": broker.bootstrap,
                     "txn_id": txn_id, "topic": topic, "partitions": [0, 1], "committed": 3,
                     "open": 4})
    ev = app.wait_event("open", 60)
    assert ev["offsets"] == {"0": [4, 7], "1": [4, 7]}, ev
    app.kill9()
    assert_watermarks(broker, topic, {0: (4, 8), 1: (4, 8)})

    broker.kill9()
    broker.start()
    for q in (0, 1):
        assert wait_watermarks_after_restart(broker, topic, q) == (4, 8), q
    rc = ck_read_to(broker, topic, {0: 4, 1: 4}, READ_COMMITTED)
    assert [values(rc, q) for q in (0, 1)] == [[b"committed-%d-%d" % (q, j) for j in range(3)]
                                               for q in (0, 1)]

    p = ck_txn_producer(broker, txn_id)
    p.init_transactions(60)
    # The crashed transaction was aborted before InitProducerId answered: markers at 8.
    assert_watermarks(broker, topic, {0: (9, 9), 1: (9, 9)})
    rc = ck_read_to(broker, topic, {0: 9, 1: 9}, READ_COMMITTED)
    ru = ck_read_to(broker, topic, {0: 9, 1: 9}, READ_UNCOMMITTED)
    for q in (0, 1):
        assert values(rc, q) == [b"committed-%d-%d" % (q, j) for j in range(3)]
        assert values(ru, q) == ([b"committed-%d-%d" % (q, j) for j in range(3)]
                                 + [b"open-%d-%d" % (q, j) for j in range(4)])
    cursor = {0: 9, 1: 9}
    run_txn(p, topic, [(None, b"new-%d" % q, q) for q in (0, 1)], "commit", cursor)
    rc = ck_read_to(broker, topic, {0: 11, 1: 11}, READ_COMMITTED)
    for q in (0, 1):
        assert values(rc, q)[-1] == b"new-%d" % q and len(values(rc, q)) == 4


def test_commit_completes_after_kill9_right_after_commit(broker, unique_topic):
    """EndTxn is answered once the decision is in the transaction log; the markers may still be
    on their way. A kill -9 right after commit_transaction returns must not lose the commit: the
    restarted coordinator finishes writing the markers on its own."""
    topic = unique_topic
    ck_create_topic(broker, topic, 3)
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {q: 0 for q in range(3)}
    run_txn(p, topic, [(None, b"v-%d-%d" % (q, j), q) for q in range(3) for j in range(20)],
            "commit", cursor)
    broker.kill9()
    broker.start()

    def stable():
        return all(ck_watermarks_iso(broker, topic, q, READ_COMMITTED)[1] == 21 for q in range(3))
    wait_until(stable, 30, interval=0.2, what="LSO at 21 (the commit markers) after restart")
    assert_watermarks(broker, topic, {q: (21, 21) for q in range(3)})
    rc = ck_read_to(broker, topic, {q: 21 for q in range(3)}, READ_COMMITTED)
    for q in range(3):
        assert values(rc, q) == [b"v-%d-%d" % (q, j) for j in range(20)], q

    # And the producer goes on.
    run_txn(p, topic, [(None, b"next-%d" % q, q) for q in range(3)], "commit", cursor)
    assert cursor == {q: 23 for q in range(3)}
    assert_watermarks(broker, topic, {q: (23, 23) for q in range(3)})


# ---- transactional offset commits (KIP-98 / KIP-447) -------------------------------------------

def test_transactional_offsets_are_visible_only_after_commit(broker, unique_topic):
    """Offsets sent with send_offsets_to_transaction are pending until the commit marker: a
    read_committed consumer (OffsetFetch require_stable) is told UNSTABLE_OFFSET_COMMIT while the
    transaction is open, a read_uncommitted one sees the last stable offset; an abort drops them."""
    from helpers import ck_group_consumer

    topic, group = unique_topic, f"g-{unique_topic}"
    ck_create_topic(broker, topic, 1)
    ck_produce_all(tracked(ck_producer(broker)), topic,
                   [(None, b"r%d" % i, 0) for i in range(10)])
    meta = ck_group_consumer(broker, group)
    c_rc = ck_group_consumer(broker, group)  # isolation.level defaults to read_committed
    c_ru = ck_group_consumer(broker, group, **{"isolation.level": READ_UNCOMMITTED})
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)

    def committed(c, timeout: float = 10):
        try:
            tp = c.committed([TopicPartition(topic, 0)], timeout=timeout)[0]
        except KafkaException as e:
            return ("error", e.args[0].code())
        return ("error", tp.error.code()) if tp.error is not None else ("offset", tp.offset)

    def txn_offsets(offset: int, outcome: str | None) -> None:
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, offset)],
                                      meta.consumer_group_metadata(), 30)
        if outcome == "commit":
            p.commit_transaction(30)
        elif outcome == "abort":
            p.abort_transaction(30)

    try:
        txn_offsets(3, "commit")
        assert committed(c_rc) == ("offset", 3) and committed(c_ru) == ("offset", 3)
        txn_offsets(7, None)
        assert committed(c_ru) == ("offset", 3), "a pending offset leaked to require_stable=false"
        got = committed(c_rc, timeout=3)
        assert got[0] == "error" and got[1] in (KafkaError.UNSTABLE_OFFSET_COMMIT,
                                                KafkaError._TIMED_OUT), (
            f"read_committed committed() while the offset commit is pending: {got}")
        p.commit_transaction(30)
        assert committed(c_rc) == ("offset", 7) and committed(c_ru) == ("offset", 7)
        txn_offsets(9, "abort")
        assert committed(c_rc) == ("offset", 7) and committed(c_ru) == ("offset", 7)
    finally:
        for c in (meta, c_rc, c_ru):
            c.close()


@pytest.mark.parametrize("restart", ["kill9", "clean"])
def test_aborted_transaction_spanning_segments_survives_restart(broker, unique_topic, restart):
    """An aborted transaction of ~1.5 MB spans segment rolls (segment.bytes 1 MiB, Kafka's
    minimum); after a kill -9 (state rebuilt from the log) or a clean restart (state from the
    snapshots written at shutdown) read_committed still filters it, and the open transaction
    after it still holds the LSO."""
    topic = unique_topic
    ck_create_topic(broker, topic, 1, config={"segment.bytes": "1048576"})
    p = ck_txn_producer(broker, f"tx-{topic}")
    p.init_transactions(30)
    cursor = {0: 0}
    big = b"x" * 1000
    run_txn(p, topic, [(None, b"c1-%d" % j, 0) for j in range(10)], "commit", cursor)
    run_txn(p, topic, [(None, b"a2-%d-" % j + big, 0) for j in range(1500)], "abort", cursor)
    run_txn(p, topic, [(None, b"c3-%d" % j, 0) for j in range(10)], "commit", cursor)
    open_from = cursor[0]
    run_txn(p, topic, [(None, b"o4-%d" % j, 0) for j in range(5)], None, cursor)
    end = cursor[0]
    segments = sorted(broker.data_dir.glob(f"{topic}-0/*.log"))
    assert len(segments) >= 2, f"the aborted transaction did not span segments: {segments}"
    assert_watermarks(broker, topic, {0: (open_from, end)})

    broker.restart(clean=(restart == "clean"))
    assert wait_watermarks_after_restart(broker, topic, 0) == (open_from, end)
    committed = [b"c1-%d" % j for j in range(10)] + [b"c3-%d" % j for j in range(10)]
    rc = ck_read_to(broker, topic, {0: open_from}, READ_COMMITTED)
    assert values(rc, 0) == committed
    ru = ck_read_to(broker, topic, {0: end}, READ_UNCOMMITTED)
    assert len(ru[0]) == 10 + 1500 + 10 + 5

    p.commit_transaction(60)
    wait_until(lambda: ck_watermarks_iso(broker, topic, 0, READ_COMMITTED)[1] == end + 1, 30,
               what="the LSO past the commit marker")
    rc = ck_read_to(broker, topic, {0: end + 1}, READ_COMMITTED)
    assert values(rc, 0) == committed + [b"o4-%d" % j for j in range(5)]


def test_interleaved_transactions_of_two_producers(broker, unique_topic):
    """Two producers' transactions interleave in one partition: the LSO is the first offset of
    the earliest open transaction whoever else commits; read_committed filters the aborted one by
    producer id, also when it starts fetching in the middle of the aborted transaction."""
    topic = unique_topic
    ck_create_topic(broker, topic, 1)
    a = ck_txn_producer(broker, f"txa-{topic}")
    b = ck_txn_producer(broker, f"txb-{topic}")
    a.init_transactions(30)
    b.init_transactions(30)
    a.begin_transaction()
    b.begin_transaction()
    for j in range(3):  # a0 b0 a1 b1 a2 b2 at offsets 0..5
        ck_produce_all(a, topic, [(None, b"a%d" % j, 0)])
        ck_produce_all(b, topic, [(None, b"b%d" % j, 0)])
    assert_watermarks(broker, topic, {0: (0, 6)})
    b.commit_transaction(30)  # marker at 6; a is still open from offset 0
    assert_watermarks(broker, topic, {0: (0, 7)})
    assert ck_read_to(broker, topic, {0: 0}, READ_COMMITTED) == {0: []}
    a.abort_transaction(30)  # marker at 7
    assert_watermarks(broker, topic, {0: (8, 8)})

    rc = ck_read_to(broker, topic, {0: 8}, READ_COMMITTED)
    assert [(o, v) for o, _k, v in rc[0]] == [(1, b"b0"), (3, b"b1"), (5, b"b2")]
    ru = ck_read_to(broker, topic, {0: 8}, READ_UNCOMMITTED)
    assert values(ru, 0) == [b"a0", b"b0", b"a1", b"b1", b"a2", b"b2"]

    # Starting at offset 2 (a1, inside a's aborted transaction): the Fetch answer must still list
    # that transaction as aborted.
    c = ck_consumer(broker, **{"isolation.level": READ_COMMITTED, "enable.partition.eof": True,
                               "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, 0, 2)])
        got, eof = [], None
        deadline = time.monotonic() + 30
        while eof is None:
            assert time.monotonic() < deadline, got
            for m in c.consume(100, 0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof = m.offset()
                        continue
                    raise KafkaException(m.error())
                got.append((m.offset(), m.value()))
    finally:
        c.close()
    assert eof == 8 and got == [(3, b"b1"), (5, b"b2")], (eof, got)


@pytest.mark.broker_config({**TXN_BROKER_CONFIG, "transaction.max.timeout.ms": 10000})
def test_transaction_timeout_above_broker_maximum_is_refused(broker, unique_topic):
    """InitProducerId with a transaction timeout above transaction.max.timeout.ms answers
    INVALID_TRANSACTION_TIMEOUT (fatal in librdkafka); at the maximum it is accepted."""
    p = ck_txn_producer(broker, f"tx-{unique_topic}", **{"transaction.timeout.ms": 10001})
    with pytest.raises(KafkaException) as ei:
        p.init_transactions(30)
    err = fatal_error_of(ei)
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err
    ok = ck_txn_producer(broker, f"tx2-{unique_topic}", **{"transaction.timeout.ms": 10000})
    ok.init_transactions(30)
