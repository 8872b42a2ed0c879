"""Transactional confluent-kafka (librdkafka) clients as their own processes, for the transaction
tests that SIGKILL a producer application in the middle of a transaction, plus the test-side
handle for them and the small read helpers the test_transactions*.py files share.

    python txn_pipeline.py '<json config>'

Modes (config key "mode"):

  pipeline  consume-transform-produce with exactly-once semantics: a group consumer (subscribe,
            enable.auto.commit=false, isolation.level=read_committed) reads `input`; each batch of
            up to `batch` records becomes one transaction that writes b"out:" + value (same key,
            same partition number) to `output` and commits the consumed offsets with
            send_offsets_to_transaction (consumer group metadata, KIP-447).
            `hold_at`: in transaction number hold_at (1-based), after the records are delivered
            and the offsets sent, stop before commit_transaction: emit "holding", then either
            block forever (hold="forever": the test SIGKILLs the process) or until a line arrives
            on stdin (hold="stdin"), then try to commit.
  open      commit one transaction with `committed` records per partition in `partitions`, then
            open a second one with `open` records per partition, wait until they are delivered
            (in the log), emit "open" and block until killed.

Config keys: mode, bootstrap, txn_id, name, and per mode: group, input, output, batch, hold_at,
hold, transaction_timeout_ms; topic, partitions, committed, open.

Events, one JSON object per line on stdout, each with "ev" and "t" (time.time()):
  initialized                 init_transactions() returned
  assigned / revoked          partitions=[p...] (pipeline)
  produced   n, count, partitions=[p...], consumed=[[p, first, last]...]
                                                records of transaction n delivered (in the log)
  offsets_sent n, offsets=[[p, next_offset]...] send_offsets_to_transaction() returned
  holding    n                                  about to block before commit_transaction()
  committed  n, offsets                         commit_transaction() returned
  open       offsets={p: [first, last]}         (open mode) the open transaction is in the log
  error      stage, code, name, fatal, retriable, txn_requires_abort, str
  exit       rc
A fatal error ends the process with exit code 3 after a clean consumer close; SIGTERM ends a
pipeline between transactions with exit code 0.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STOP = threading.Event()
SCRIPT = Path(__file__).resolve()


def emit(ev: str, **kw) -> None:
    sys.stdout.write(json.dumps({"ev": ev, "t": time.time(), **kw}) + "\n")
    sys.stdout.flush()


def err_fields(e) -> dict:
    """The fields of a confluent_kafka.KafkaError (or of the first argument of a KafkaException)."""
    from confluent_kafka import KafkaError, KafkaException
    if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
        e = e.args[0]
    if isinstance(e, KafkaError):
        return {"code": e.code(), "name": e.name(), "fatal": e.fatal(), "retriable": e.retriable(),
                "txn_requires_abort": e.txn_requires_abort(), "str": e.str()}
    return {"code": None, "name": type(e).__name__, "fatal": True, "retriable": False,
            "txn_requires_abort": False, "str": repr(e)}


# ---- subprocess side ----------------------------------------------------------------------------

def _producer(cfg: dict):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": cfg["bootstrap"],
        "transactional.id": cfg["txn_id"],
        "client.id": cfg.get("name", "txn"),
        "linger.ms": 5,
        "reconnect.backoff.max.ms": 500,
    }
    if cfg.get("transaction_timeout_ms"):
        conf["transaction.timeout.ms"] = cfg["transaction_timeout_ms"]
    return Producer(conf)


def _deliver(producer, records, topic: str) -> list:
    """Produces (key, value, partition) and waits until every one is acknowledged; returns the
    delivered messages. Raises on a delivery error."""
    results: list = []

    def cb(err, msg):
        results.append((err, msg))

    for key, value, p in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, partition=p, on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"{left} records not delivered within 30 s")
    errs = [e for e, _m in results if e is not None]
    if errs:
        from confluent_kafka import KafkaException
        raise KafkaException(errs[0])
    return [m for _e, m in results]


def _block(cfg: dict) -> None:
    if cfg.get("hold", "forever") == "stdin":
        sys.stdin.readline()
    else:
        while True:
            time.sleep(3600)


def run_pipeline(cfg: dict) -> int:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": cfg["bootstrap"],
        "group.id": cfg["group"],
        "client.id": cfg.get("name", "pipeline"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
    })
    producer = _producer(cfg)
    stage = "init_transactions"
    rc = 0
    try:
        producer.init_transactions(60)
        emit("initialized")

        def on_assign(_c, parts):
            emit("assigned", partitions=sorted(tp.partition for tp in parts))

        def on_revoke(_c, parts):
            emit("revoked", partitions=sorted(tp.partition for tp in parts))

        consumer.subscribe([cfg["input"]], on_assign=on_assign, on_revoke=on_revoke)
        n = 0
        while not STOP.is_set():
            stage = "consume"
            msgs = []
            for m in consumer.consume(cfg.get("batch", 10), 0.2):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        emit("error", stage="consume", **err_fields(m.error()))
                    continue
                msgs.append(m)
            if not msgs:
                continue
            n += 1
            stage = "begin_transaction"
            producer.begin_transaction()
            stage = "produce"
            out = [(m.key(), b"out:" + m.value(), m.partition()) for m in msgs]
            _deliver(producer, out, cfg["output"])
            nxt: dict[int, int] = {}
            first: dict[int, int] = {}
            for m in msgs:
                nxt[m.partition()] = max(nxt.get(m.partition(), 0), m.offset() + 1)
                first[m.partition()] = min(first.get(m.partition(), m.offset()), m.offset())
            emit("produced", n=n, count=len(out), partitions=sorted({p for _k, _v, p in out}),
                 consumed=sorted([p, first[p], nxt[p] - 1] for p in nxt))
            offsets = [TopicPartition(cfg["input"], p, o) for p, o in sorted(nxt.items())]
            stage = "send_offsets_to_transaction"
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            emit("offsets_sent", n=n, offsets=sorted(nxt.items()))
            if n == cfg.get("hold_at"):
                emit("holding", n=n)
                _block(cfg)
            stage = "commit_transaction"
            producer.commit_transaction(30)
            emit("committed", n=n, offsets=sorted(nxt.items()))
    except KafkaException as e:
        emit("error", stage=stage, **err_fields(e))
        rc = 3
    finally:
        consumer.close()
    emit("exit", rc=rc)
    return rc


def run_open(cfg: dict) -> int:
    producer = _producer(cfg)
    producer.init_transactions(60)
    emit("initialized")
    topic, parts = cfg["topic"], cfg["partitions"]
    if cfg.get("committed", 0):
        producer.begin_transaction()
        _deliver(producer, [(b"c", b"committed-%d-%d" % (p, i), p)
                            for p in parts for i in range(cfg["committed"])], topic)
        producer.commit_transaction(30)
        emit("committed", n=1)
    producer.begin_transaction()
    delivered = _deliver(producer, [(b"o", b"open-%d-%d" % (p, i), p)
                                    for p in parts for i in range(cfg["open"])], topic)
    offs: dict[int, list[int]] = {}
    for m in delivered:
        lo_hi = offs.setdefault(m.partition(), [m.offset(), m.offset()])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], m.offset()), max(lo_hi[1], m.offset())
    emit("open", offsets={str(p): v for p, v in offs.items()})
    _block({"hold": "forever"})
    return 0


def main() -> int:
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    return {"pipeline": run_pipeline, "open": run_open}[cfg["mode"]](cfg)


# ---- test side ----------------------------------------------------------------------------------

class TxnProc:
    """One txn_pipeline.py process; its JSON events are collected by a reader thread."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.name = cfg.get("name", cfg["mode"])
        self.events: list[dict] = []
        self._lock = threading.Lock()
        fd, path = tempfile.mkstemp(prefix=f"txnproc-{self.name}-", suffix=".stderr")
        os.close(fd)
        self.stderr_path = Path(path)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "bad_line", "line": line}
            with self._lock:
                self.events.append(ev)

    def snapshot(self, ev: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.events if ev is None or e["ev"] == ev]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_event(self, ev: str, timeout: float = 30, cond=None) -> dict:
        """The first event named `ev` (satisfying cond), waiting for it with a deadline."""
        from helpers import wait_until

        def find():
            for e in self.snapshot(ev):
                if cond is None or cond(e):
                    return e
            if not self.alive():
                self._reader.join(5)
                for e in self.snapshot(ev):  # printed just before exiting
                    if cond is None or cond(e):
                        return e
                raise AssertionError(
                    f"{self.name} exited (rc={self.proc.returncode}) without {ev!r}; "
                    f"events {self.snapshot()[-10:]}\n{self.stderr_tail()}")
            return None
        return wait_until(find, timeout, what=f"{self.name}: event {ev}")

    def release(self) -> None:
        """Unblocks a process holding with hold="stdin"."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM\n"
                                 + self.stderr_tail())
        self._reader.join(10)
        return rc

    def wait_exit(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def cleanup(self) -> None:
        if self.alive():
            self.kill9()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.stderr_path.unlink(missing_ok=True)

    def stderr_tail(self, n: int = 40) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return f"--- {self.name} stderr ---\n" + "\n".join(lines[-n:])


try:  # the test side; the subprocess does without pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.fixture
    def txn_procs(request):
        """Factory: txn_procs(cfg) -> TxnProc. All are killed after the test; stderr and the last
        events are printed if it failed."""
        procs: list[TxnProc] = []

        def factory(cfg: dict) -> TxnProc:
            p = TxnProc(cfg)
            procs.append(p)
            return p

        yield factory
        rep = getattr(request.node, "rep_call", None)
        for p in procs:
            if rep is not None and rep.failed:
                print(p.stderr_tail(80))
                print(f"--- {p.name} events ---")
                for e in p.snapshot()[-30:]:
                    print(e)
            p.cleanup()


# Broker overrides for the transaction tests: the consumer-group settings of helpers.py, a small
# __transaction_state (5 partitions, replication factor 1 / min ISR 1 as on a single node), and a
# 1 s scan for transactions past their timeout (Kafka's default is 10 s).
TXN_BROKER_CONFIG = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 5,
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.num.partitions": 5,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}

READ_COMMITTED = "read_committed"
READ_UNCOMMITTED = "read_uncommitted"


# librdkafka producers made by a test, closed by the close_producers fixture before the broker
# stops (a failed test's traceback keeps them alive, and they would keep reconnecting).
_PRODUCERS: list = []


def tracked(producer):
    _PRODUCERS.append(producer)
    return producer


if pytest is not None:
    @pytest.fixture
    def close_producers(broker):
        """Closes the producers registered with tracked() at the end of the test (before the
        broker fixture stops the broker): purges what is still queued, then close() (which also
        tries to abort an open transaction, and warns if the producer is fenced)."""
        import warnings

        _PRODUCERS.clear()
        yield
        while _PRODUCERS:
            p = _PRODUCERS.pop()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    if len(p):
                        p.purge()
                    p.close()
            except Exception:  # noqa: BLE001 - best effort; a fatal producer may refuse
                pass


def ck_txn_producer(broker, txn_id: str, errors: list | None = None, **extra):
    """A transactional librdkafka producer. Client errors (error_cb) go to `errors`: with an
    error_cb, a fatal error is reported there instead of being raised from poll()/flush()."""
    from helpers import ck_producer
    sink = errors if errors is not None else []

    def on_error(err):
        sink.append(err)

    conf = {"transactional.id": txn_id, "linger.ms": 5, "reconnect.backoff.max.ms": 500,
            "error_cb": on_error}
    conf.update(extra)
    return tracked(ck_producer(broker, **conf))


def run_txn(producer, topic: str, records, outcome: str | None, cursor: dict) -> list:
    """One transaction: begin, produce (key, value, partition) records and wait for their
    delivery (so they are in the log even if the transaction is aborted), then commit, abort or
    (outcome None) leave it open. Checks that each partition's records got the offsets right
    after the previous transaction's marker and advances `cursor` ({p: next offset}) past this
    transaction's marker. Returns [(partition, offset, value)]."""
    from helpers import ck_produce_all

    producer.begin_transaction()
    delivered = ck_produce_all(producer, topic, records)
    got: dict[int, list[int]] = {}
    for m in delivered:
        got.setdefault(m.partition(), []).append(m.offset())
    for p, offs in got.items():
        assert sorted(offs) == list(range(cursor[p], cursor[p] + len(offs))), (
            f"partition {p}: transactional records at {sorted(offs)}, expected from {cursor[p]} "
            "(one offset per record, one per earlier marker)")
        cursor[p] += len(offs)
    if outcome == "commit":
        producer.commit_transaction(30)
    elif outcome == "abort":
        producer.abort_transaction(30)
    if outcome is not None:
        for p in got:
            cursor[p] += 1  # the marker
    return [(m.partition(), m.offset(), m.value()) for m in delivered]


def ck_watermarks_iso(broker, topic: str, partition: int, isolation: str,
                      timeout: float = 10) -> tuple[int, int]:
    """(low, high) from ListOffsets with the consumer's isolation level: with read_committed the
    high mark is the last stable offset."""
    from confluent_kafka import TopicPartition

    from helpers import ck_consumer
    c = ck_consumer(broker, **{"isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout,
                                       cached=False)
    finally:
        c.close()


def ck_read_to(broker, topic: str, ends: dict, isolation: str | None, timeout: float = 30,
               **extra) -> dict:
    """Reads partitions {p: end} from offset 0 with a librdkafka consumer of the given isolation
    level until it reports end of partition at `end` (for read_committed: the last stable offset
    or beyond it, for read_uncommitted: the high watermark); returns {p: [(offset, key, value)]}.
    Fails on consume errors and on any record at or past `end`."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    from helpers import ck_consumer
    conf = {"enable.partition.eof": True, "fetch.wait.max.ms": 100, **extra}
    if isolation is not None:  # None: the client's default (read_committed in librdkafka)
        conf["isolation.level"] = isolation
    c = ck_consumer(broker, **conf)
    try:
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out: dict[int, list] = {p: [] for p in ends}
        pending = set(ends)
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"{isolation}: no end of partition at {ends} within {timeout}s; read "
                f"{ {p: (len(v), v[-1][0] if v else None) for p, v in out.items()} }")
            for m in c.consume(500, 0.2):
                p = m.partition()
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= ends[p]:
                            pending.discard(p)
                        continue
                    raise KafkaException(m.error())
                assert m.offset() < ends[p], (
                    f"{isolation}: record at offset {m.offset()} of partition {p}, at or past the "
                    f"expected end {ends[p]}: {m.value()!r}")
                out[p].append((m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
