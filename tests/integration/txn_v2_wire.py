"""A Transactions V2 (KIP-890 part 2) client over a plain socket, for test_transactions_v2.py.

No Python or C client implements Transactions V2 (kafka-python, aiokafka and librdkafka stop at
V1), so the tests speak the protocol themselves: kafka-python 3.0's generated message classes
encode and decode the requests (ApiVersions v3, FindCoordinator v4, InitProducerId v5,
Produce v12, TxnOffsetCommit v5, EndTxn v5, DescribeTransactions v0, OffsetFetch v7), and its
record batch builder writes the transactional batches. The client follows what the Java
producer does with `transaction.version` 2: no AddPartitionsToTxn / AddOffsetsToTxn, the epoch
from each EndTxn response is the one the next transaction uses, and sequences restart at 0 with
every new epoch.
"""
from __future__ import annotations

import socket
import struct
import time

from kafka.protocol.admin.transactions import (DescribeProducersRequest, DescribeProducersResponse,
                                               DescribeTransactionsRequest,
                                               DescribeTransactionsResponse)
from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.producer.transaction import (EndTxnRequest, EndTxnResponse,
                                                 InitProducerIdRequest, InitProducerIdResponse,
                                                 TxnOffsetCommitRequest, TxnOffsetCommitResponse)
from kafka.record.default_records import DefaultRecordBatchBuilder

# Kafka error codes the tests look at.
NONE = 0
NOT_ENOUGH_REPLICAS = 19
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
CONCURRENT_TRANSACTIONS = 51
PRODUCER_FENCED = 90
RETRIABLE = {NOT_ENOUGH_REPLICAS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
             NOT_COORDINATOR, CONCURRENT_TRANSACTIONS}

RESPONSES = {
    ApiVersionsRequest: ApiVersionsResponse,
    FindCoordinatorRequest: FindCoordinatorResponse,
    InitProducerIdRequest: InitProducerIdResponse,
    ProduceRequest: ProduceResponse,
    TxnOffsetCommitRequest: TxnOffsetCommitResponse,
    EndTxnRequest: EndTxnResponse,
    DescribeTransactionsRequest: DescribeTransactionsResponse,
    DescribeProducersRequest: DescribeProducersResponse,
    OffsetFetchRequest: OffsetFetchResponse,
}


class Wire:
    """One connection; requests one at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def call(self, request_cls, version: int, **fields):
        self.correlation_id += 1
        req = request_cls(**fields)
        req.API_VERSION = version
        req.with_header(correlation_id=self.correlation_id, client_id="tv2-test")
        self.sock.sendall(req.encode(version=version, header=True, framed=True))
        size = struct.unpack(">i", self._recv_exact(4))[0]
        data = self._recv_exact(size)
        resp = RESPONSES[request_cls].decode(data, version=version, header=True)
        assert resp.header.correlation_id == self.correlation_id
        return resp


def retry(fn, what: str, timeout: float = 30):
    """Calls fn() until it returns an error code outside RETRIABLE; returns (code, result)."""
    deadline = time.monotonic() + timeout
    while True:
        code, result = fn()
        if code not in RETRIABLE:
            return code, result
        assert time.monotonic() < deadline, f"{what}: still error {code} after {timeout}s"
        time.sleep(0.05)


def transactional_batch(producer_id: int, epoch: int, base_sequence: int,
                        records: list[tuple[bytes, bytes]]) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True,
                                  producer_id=producer_id, producer_epoch=epoch,
                                  base_sequence=base_sequence, batch_size=1 << 20)
    now_ms = int(time.time() * 1000)
    for i, (k, v) in enumerate(records):
        b.append(i, timestamp=now_ms, key=k, value=v, headers=[])
    return bytes(b.build())


class TxnV2Producer:
    """The producer side of Transactions V2 for one transactional id."""

    def __init__(self, wire: Wire, transactional_id: str, timeout_ms: int = 60_000):
        self.wire = wire
        self.txn_id = transactional_id
        self.timeout_ms = timeout_ms
        self.producer_id = -1
        self.epoch = -1
        # Next sequence per (topic, partition) at the current epoch.
        self.seq: dict[tuple[str, int], int] = {}

    def find_coordinator(self, key: str, key_type: int) -> None:
        def once():
            r = self.wire.call(FindCoordinatorRequest, 4, key_type=key_type, coordinator_keys=[key])
            return r.coordinators[0].error_code, r
        code, _ = retry(once, f"FindCoordinator {key}")
        assert code == NONE, code

    def init_once(self):
        return self.wire.call(InitProducerIdRequest, 5, transactional_id=self.txn_id,
                              transaction_timeout_ms=self.timeout_ms,
                              producer_id=self.producer_id, producer_epoch=self.epoch)

    def init(self) -> tuple[int, int]:
        def once():
            r = self.init_once()
            return r.error_code, r
        code, r = retry(once, "InitProducerId")
        assert code == NONE, code
        self.producer_id, self.epoch = r.producer_id, r.producer_epoch
        self.seq.clear()
        return self.producer_id, self.epoch

    def produce_once(self, topic: str, batches: dict[int, list[tuple[bytes, bytes]]],
                     epoch: int | None = None, version: int = 12) -> dict[int, tuple[int, int]]:
        """One Produce request; {partition: (error_code, base_offset)}. Sequences advance only for
        partitions that succeeded."""
        epoch = self.epoch if epoch is None else epoch
        parts = []
        for p, recs in batches.items():
            seq = self.seq.get((topic, p), 0) if epoch == self.epoch else 0
            parts.append({"index": p,
                          "records": transactional_batch(self.producer_id, epoch, seq, recs)})
        Topic = ProduceRequest.TopicProduceData
        Partition = Topic.PartitionProduceData
        r = self.wire.call(ProduceRequest, version, transactional_id=self.txn_id, acks=-1,
                           timeout_ms=30_000,
                           topic_data=[Topic(name=topic, partition_data=[Partition(**d) for d in parts])])
        out = {}
        for t in r.responses:
            for pr in t.partition_responses:
                out[pr.index] = (pr.error_code, pr.base_offset)
                if pr.error_code == NONE and epoch == self.epoch:
                    self.seq[(topic, pr.index)] = (self.seq.get((topic, pr.index), 0)
                                                   + len(batches[pr.index]))
        return out

    def produce(self, topic: str, batches: dict[int, list[tuple[bytes, bytes]]]) -> dict[int, int]:
        """Produces, retrying retriable errors (the previous transaction's markers may still be
        on their way); returns {partition: base_offset}."""
        pending = dict(batches)
        offsets = {}
        deadline = time.monotonic() + 30
        while pending:
            res = self.produce_once(topic, pending)
            for p, (code, base) in res.items():
                if code == NONE:
                    offsets[p] = base
                    pending.pop(p)
                else:
                    assert code in RETRIABLE, f"produce to {topic}-{p}: error {code}"
            assert time.monotonic() < deadline, f"produce still failing: {res}"
            if pending:
                time.sleep(0.05)
        return offsets

    def txn_offset_commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        Topic = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
        Partition = Topic.TxnOffsetCommitRequestPartition
        by_topic: dict[str, list] = {}
        for (t, p), off in offsets.items():
            by_topic.setdefault(t, []).append(Partition(partition_index=p, committed_offset=off,
                                                        committed_leader_epoch=-1,
                                                        committed_metadata=""))

        def once():
            r = self.wire.call(TxnOffsetCommitRequest, 5, transactional_id=self.txn_id,
                               group_id=group, producer_id=self.producer_id,
                               producer_epoch=self.epoch, generation_id=-1, member_id="",
                               group_instance_id=None,
                               topics=[Topic(name=t, partitions=ps) for t, ps in by_topic.items()])
            codes = {pr.error_code for t in r.topics for pr in t.partitions}
            bad = codes - {NONE}
            return (bad.pop() if bad else NONE), r
        code, _ = retry(once, "TxnOffsetCommit")
        assert code == NONE, code

    def end_txn_once(self, commit: bool, producer_id: int | None = None,
                     epoch: int | None = None):
        return self.wire.call(EndTxnRequest, 5, transactional_id=self.txn_id,
                              producer_id=self.producer_id if producer_id is None else producer_id,
                              producer_epoch=self.epoch if epoch is None else epoch,
                              committed=commit)

    def end_txn(self, commit: bool) -> tuple[int, int]:
        """EndTxn v5; adopts the returned producer id and epoch, as a V2 client does."""
        def once():
            r = self.end_txn_once(commit)
            return r.error_code, r
        code, r = retry(once, "EndTxn")
        assert code == NONE, code
        if (r.producer_id, r.producer_epoch) != (self.producer_id, self.epoch):
            self.seq.clear()
        self.producer_id, self.epoch = r.producer_id, r.producer_epoch
        return self.producer_id, self.epoch

    def describe(self):
        r = self.wire.call(DescribeTransactionsRequest, 0, transactional_ids=[self.txn_id])
        return r.transaction_states[0]


def api_versions(wire: Wire):
    return wire.call(ApiVersionsRequest, 3, client_software_name="tv2-test",
                     client_software_version="1")


def offset_fetch(wire: Wire, group: str, topic: str, partitions: list[int],
                 require_stable: bool = False) -> dict[int, tuple[int, int]]:
    """OffsetFetch v7: {partition: (error_code, committed_offset)}."""
    Topic = OffsetFetchRequest.OffsetFetchRequestTopic
    r = wire.call(OffsetFetchRequest, 7, group_id=group,
                  topics=[Topic(name=topic, partition_indexes=partitions)],
                  require_stable=require_stable)
    out = {}
    for t in r.topics:
        for p in t.partitions:
            out[p.partition_index] = (p.error_code, p.committed_offset)
    if r.error_code:
        return {p: (r.error_code, -1) for p in partitions}
    return out


def describe_producers(wire: Wire, topic: str, partition: int) -> list[tuple[int, int]]:
    """DescribeProducers v0: [(producer_id, producer_epoch)] of one partition."""
    r = wire.call(DescribeProducersRequest, 0, topics=[
        DescribeProducersRequest.TopicRequest(name=topic, partition_indexes=[partition])])
    part = r.topics[0].partitions[0]
    assert part.error_code == NONE, part
    return [(s.producer_id, s.producer_epoch) for s in part.active_producers]
