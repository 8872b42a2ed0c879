"""The fault suite's Transactions V2 (KIP-890 part 2) producers: transactional writers that
speak the protocol themselves and record every operation into the run's history, as
`workload.TxnProducers` does for librdkafka's Transactions V1.

Why a client of our own: no Python or C client implements Transactions V2 (kafka-python,
aiokafka and librdkafka stop at V1), and V2 is what closes the delayed-marker hole Jepsen found
in Bufstream: a produce held up in the network that lands after its transaction ended. In V1
the epoch stays the same across transactions, so such a late write joins whatever comes next;
in V2 every EndTxn bumps the epoch, so the broker must fence it. Under kill -9, SIGSTOP and
partitions this client abandons requests it timed out on (and sends them again elsewhere) while
the originals may still be on their way, and the checker tells whether any of them surfaced.

Each process (`txnv2-<i>`, transactional id `fault-txnv2-<i>`) runs transactions one after the
other: 1-5 unique values (`<process>-<n>`), one single-record batch per value to a random
partition (Produce v12, acks=-1; no AddPartitionsToTxn in V2), sequences per partition from 0 at
every epoch; then EndTxn v5, committing four in five and aborting the rest on purpose. The
client routes by itself: Metadata for partition leaders, FindCoordinator for the coordinator,
one lazily opened connection per broker, dropped on any socket error or timeout.

What is recorded, erring towards "unknown" ("info") whenever the broker did not say:
- a `Send` "ok" at its offset for a value whose produce was answered NONE (or
  DUPLICATE_SEQUENCE_NUMBER: written before), "info" for any other;
- a `Txn` per attempt: "commit" / "abort" only when EndTxn at that epoch was answered NONE,
  "info" otherwise (the producer then re-initialises, fencing and aborting what is left).
"""
from __future__ import annotations

import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest  # noqa: E402
from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse  # noqa: E402
from kafka.protocol.producer import ProduceRequest  # noqa: E402
from kafka.protocol.producer.transaction import EndTxnRequest, InitProducerIdRequest  # noqa: E402
from txn_v2_wire import (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,  # noqa: E402
                         CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_EPOCH, NONE, NOT_COORDINATOR,
                         NOT_ENOUGH_REPLICAS, PRODUCER_FENCED, RESPONSES, Wire,
                         transactional_batch)

from checker import Send, Txn  # noqa: E402
from workload import History, Worker  # noqa: E402

# txn_v2_wire decodes only the responses its tests need; Metadata is needed here too (the same
# extension test_replication.py makes for DeleteRecords).
RESPONSES.setdefault(MetadataRequest, MetadataResponse)

UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
DUPLICATE_SEQUENCE_NUMBER = 46
# Produce errors after which the very same batch is sent again (to the leader Metadata names
# then): the broker deduplicates by sequence, so a resend never writes a value twice.
PRODUCE_RETRIABLE = {UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
                     REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND}
# Answers after which a coordinator request is sent again unchanged: to the coordinator found
# anew when it moved, to the same one while it loads or completes the previous transaction.
COORDINATOR_MOVED = {NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE}
COORDINATOR_RETRIABLE = COORDINATOR_MOVED | {COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS}

# Shorter than most of the suite's faults (2-8 s): a request to a paused or cut-off node is
# abandoned while it may still be processed later, which is the late produce V2 must fence.
SOCKET_TIMEOUT_S = 5.0
# A live leader answers an acks=-1 produce by then, before the socket gives up on it.
PRODUCE_TIMEOUT_MS = 3000
OPERATION_TIMEOUT_S = 30.0
BACKOFF_S = 0.1
TRANSACTION_TIMEOUT_MS = 20000
ABORT_ONE_IN = 5


class Unanswered(Exception):
    """A request whose response was not read: the broker may or may not have acted on it."""


class _Producer:
    """One transactional id, run by one thread: its routing, connections and producer state."""

    def __init__(self, worker: TxnV2Producers, process: str, bootstrap: str, topic: str,
                 partitions: int, seed: int) -> None:
        self.stopping = worker.stopping
        self.h: History = worker.history
        self.process = process
        self.txn_id = f"fault-{process}"
        self.topic = topic
        self.partitions = partitions
        self.rng = random.Random(seed)
        self.bootstrap = [(host, int(port)) for host, port in
                          (a.rsplit(":", 1) for a in bootstrap.split(",") if a)]
        self.brokers: dict[int, tuple[str, int]] = {}
        self.leaders: dict[int, int] = {}
        self.coordinator: tuple[str, int] | None = None
        self.conns: dict[tuple[str, int], Wire] = {}
        # -1/-1 until the first InitProducerId; kept after a failure so the next one fences
        # this producer's own stuck transaction as the same producer (KIP-360).
        self.producer_id = -1
        self.epoch = -1
        self.ready = False
        # Next sequence per partition at the current epoch.
        self.seq: dict[int, int] = {}

    # ---- connections and routing ---------------------------------------------------------
    def call(self, address: tuple[str, int], request_cls, version: int, **fields):
        wire = self.conns.get(address)
        try:
            if wire is None:
                wire = self.conns[address] = Wire(*address, timeout=SOCKET_TIMEOUT_S)
            return wire.call(request_cls, version, **fields)
        except (OSError, AssertionError) as e:
            # A socket error or timeout, or Wire's correlation id check: the stream may hold
            # the rest of a response, so it is never read from again.
            self.conns.pop(address, None)
            if wire is not None:
                wire.close()
            raise Unanswered(f"{request_cls.__name__} to {address}: {e!r}") from e

    def any_broker(self) -> list[tuple[str, int]]:
        """Every address known, in random order, so a dead node is not always asked first."""
        known = list(dict.fromkeys([*self.brokers.values(), *self.bootstrap]))
        self.rng.shuffle(known)
        return known

    def refresh_metadata(self) -> None:
        for address in self.any_broker():
            try:
                r = self.call(address, MetadataRequest, 12, topics=[
                    MetadataRequest.MetadataRequestTopic(topic_id=uuid.UUID(int=0),
                                                         name=self.topic)],
                    allow_auto_topic_creation=False,
                    include_topic_authorized_operations=False)
            except Unanswered:
                continue
            self.brokers = {b.node_id: (b.host, b.port) for b in r.brokers}
            self.leaders = {p.partition_index: p.leader_id for t in r.topics
                            if t.name == self.topic for p in t.partitions
                            if p.error_code == NONE and p.leader_id >= 0}
            return

    def find_coordinator(self) -> None:
        for address in self.any_broker():
            try:
                r = self.call(address, FindCoordinatorRequest, 4, key_type=1,
                              coordinator_keys=[self.txn_id])
            except Unanswered:
                continue
            c = r.coordinators[0]
            if c.error_code == NONE:
                self.coordinator = (c.host, c.port)
                return

    def expired(self, deadline: float) -> bool:
        # Stopping cuts every retry short: a thread then finishes what it has in flight only.
        return time.monotonic() >= deadline or self.stopping.is_set()

    def coordinator_call(self, request_cls, version: int, **fields):
        """Sends one request to the transaction coordinator, again (unchanged) while it is
        unanswered or answered with a retriable error; the last answer, or None."""
        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while True:
            r = None
            if self.coordinator is None:
                self.find_coordinator()
            if self.coordinator is not None:
                try:
                    r = self.call(self.coordinator, request_cls, version, **fields)
                except Unanswered:
                    self.coordinator = None
            if r is not None and r.error_code in COORDINATOR_MOVED:
                self.coordinator = None
            if r is not None and r.error_code not in COORDINATOR_RETRIABLE:
                return r
            if self.expired(deadline):
                return None
            self.stopping.wait(BACKOFF_S)

    # ---- the producer --------------------------------------------------------------------
    def adopt(self, producer_id: int, epoch: int) -> None:
        if (producer_id, epoch) != (self.producer_id, self.epoch):
            self.seq.clear()
        self.producer_id, self.epoch = producer_id, epoch

    def init(self) -> bool:
        while True:
            r = self.coordinator_call(InitProducerIdRequest, 5, transactional_id=self.txn_id,
                                      transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
                                      producer_id=self.producer_id, producer_epoch=self.epoch)
            if r is None:
                return False
            if r.error_code == NONE:
                self.adopt(r.producer_id, r.producer_epoch)
                self.ready = True
                return True
            if r.error_code in (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH) and self.epoch >= 0:
                # Our id and epoch are no longer the coordinator's (it timed the transaction
                # out, or an earlier answer was lost): start over as a new producer, which
                # fences the old one all the same.
                self.producer_id, self.epoch = -1, -1
                continue
            return False

    def produce_once(self, partition: int, batch: bytes) -> tuple[int, int] | None:
        """(error code, base offset) of one Produce, or None when it was not answered."""
        if partition not in self.leaders:
            self.refresh_metadata()
        address = self.brokers.get(self.leaders.get(partition, -1))
        if address is None:
            return None
        Topic = ProduceRequest.TopicProduceData
        try:
            r = self.call(address, ProduceRequest, 12, transactional_id=self.txn_id, acks=-1,
                          timeout_ms=PRODUCE_TIMEOUT_MS, topic_data=[Topic(
                              name=self.topic, partition_data=[Topic.PartitionProduceData(
                                  index=partition, records=batch)])])
        except Unanswered:
            return None
        for t in r.responses:
            for pr in t.partition_responses:
                if pr.index == partition:
                    return pr.error_code, pr.base_offset
        return None

    def produce(self, txn: str, partition: int, value: str) -> bool:
        """Writes one value in the open transaction; whether it was written (and recorded
        "ok"). The batch is built once: every resend has the same sequence and bytes."""
        seq = self.seq.get(partition, 0)
        batch = transactional_batch(self.producer_id, self.epoch, seq, [(None, value.encode())])
        start = self.h.now()
        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while True:
            answer = self.produce_once(partition, batch)
            code, base = answer if answer is not None else (None, -1)
            if code in (NONE, DUPLICATE_SEQUENCE_NUMBER):
                self.seq[partition] = seq + 1
                self.h.add(Send(self.process, self.topic, partition, value, start, self.h.now(),
                                "ok", base if base >= 0 else None, txn))
                return True
            if (code is not None and code not in PRODUCE_RETRIABLE) or self.expired(deadline):
                # Fenced, out of sequence or out of time: one of the attempts may still have
                # been written (or may be, late), so the value's fate is unknown.
                self.h.add(Send(self.process, self.topic, partition, value, start, self.h.now(),
                                "info", None, txn,
                                error="unanswered" if code is None else f"error code {code}"))
                return False
            self.leaders.pop(partition, None)
            self.stopping.wait(BACKOFF_S)

    def end_txn(self, commit: bool) -> bool:
        """EndTxn, retried at the same epoch (the coordinator recognises a V2 retry of an
        EndTxn that already bumped the epoch); whether it was answered NONE."""
        r = self.coordinator_call(EndTxnRequest, 5, transactional_id=self.txn_id,
                                  producer_id=self.producer_id, producer_epoch=self.epoch,
                                  committed=commit)
        if r is None or r.error_code != NONE:
            return False
        # V2: the next transaction runs at the epoch (or producer id) the coordinator returns.
        self.adopt(r.producer_id, r.producer_epoch)
        return True

    def run(self) -> None:
        h = self.h
        n = 0
        attempt = 0
        while not self.stopping.is_set():
            if not self.ready and not self.init():
                self.stopping.wait(1)
                continue
            attempt += 1
            txn = f"{self.process}-t{attempt}"
            start = h.now()
            written = True
            for _ in range(self.rng.randint(1, 5)):
                value = f"{self.process}-{n}"
                n += 1
                if not self.produce(txn, self.rng.randrange(self.partitions), value):
                    written = False
                    break
            # Aborted on purpose, or because a value may be missing: EndTxn abort either way.
            commit = written and self.rng.randrange(ABORT_ONE_IN) != 0
            commit_start = h.now()
            outcome = "info"
            if self.end_txn(commit):
                outcome = "commit" if commit else "abort"
            else:
                self.ready = False
            h.add(Txn(self.process, txn, start, commit_start, h.now(), outcome))
            self.stopping.wait(0.02)
        for wire in self.conns.values():
            wire.close()


class TxnV2Producers(Worker):
    """`count` V2 transactional producers, `txnv2-0` up: `TxnProducers`' interface."""
    writes = True

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int,
                 count: int = 1, seed: int = 0) -> None:
        super().__init__(history)
        for i in range(count):
            producer = _Producer(self, f"txnv2-{i}", bootstrap, topic, partitions, seed + i)
            self.spawn(producer.run)
