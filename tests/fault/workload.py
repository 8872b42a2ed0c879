"""The fault suite's workload (issue 16): stock clients (confluent-kafka, i.e. librdkafka) that
record every operation into a history for `checker.check`.

- `Producers`: idempotent acks=all producers of unique values (`<process>-<n>`), one produce
  every `interval_s` per producer, round-robin over the partitions. A delivery report with an
  offset is an acknowledged `Send`; any error leaves the outcome unknown ("info"): a timed-out
  idempotent produce may still have been written.
- `TxnProducers`: transactional producers (`transactional.id` per process) writing 1-5 unique
  values per transaction to random partitions, committing most and aborting one in five on
  purpose. Each attempt is a `Txn` ("commit" once `commit_transaction` returned, "abort" once
  `abort_transaction` did, "info" when a commit failed without saying how) with its values'
  `Send`s; an abortable error aborts; a fatal one starts a new producer (fencing the old).
- `Consumers`: assigned consumers reading every partition from the beginning, one at
  read_uncommitted and one at read_committed; each `consume()` batch becomes `Poll`s.
- `GroupConsumers`: members of one consumer group (read_committed), each committing what it
  read after every batch (synchronously) and leaving and rejoining now and then; assignments
  become group `Assign`s and commits `Commit`s, so the checker can tell whether a new owner
  resumed where the group left off.
- `AdminOps`: one topic after another created, reconfigured (`retention.ms`) and, every other
  one, deleted, while the faults go on; `admin_state` reads the outcome back after the heal.
- `Watermarks`: ListOffsets (`get_watermark_offsets`, uncached) of every partition in turn.
- `final_read`: after the last heal, every partition read from the beginning up to the high
  watermark by a fresh consumer, within a time bound.

All threads stop on `stop()`; `join()` waits for them (producers flush what they still hold).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

from checker import (Admin, AdminState, Assign, Commit, FinalRead, ListOffsets, Op, Poll, Send,
                     Txn, admin_violations)


class History:
    """The operations of one run, in the order they completed, with times in seconds since the
    run started (monotonic)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._ops: list[Op] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, op: Op) -> None:
        with self._lock:
            self._ops.append(op)

    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)


class Worker:
    # Whether the worker writes (sends, commits transactions, changes topics): the final read
    # must wait for writers, since it is compared with everything they had acknowledged.
    # Readers are drained after it, so a reader's client call that is slow to return (a
    # consumer's close() waiting on a request sent during a fault) is not counted against
    # the cluster's liveness.
    writes = False

    def __init__(self, history: History) -> None:
        self.history = history
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def spawn(self, target: Callable, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


class Producers(Worker):
    writes = True
    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int,
                 count: int = 2, interval_s: float = 0.01,
                 client_log: logging.Logger | None = None) -> None:
        super().__init__(history)
        self.fatal_errors: list[str] = []
        for i in range(count):
            self.spawn(self._run, f"producer{i}", bootstrap, topic, partitions, interval_s,
                       client_log)

    def _run(self, process: str, bootstrap: str, topic: str, partitions: int,
             interval_s: float, client_log: logging.Logger | None) -> None:
        # One request in flight per connection: with more, librdkafka answers a sequence gap
        # (OUT_OF_ORDER_SEQUENCE_NUMBER after an earlier batch was refused with
        # NOT_ENOUGH_REPLICAS) by bumping the epoch and sending again, under the new epoch, a
        # message whose first attempt may already be in the log: a duplicate by design
        # (librdkafka issue #4953; the Java producer fails such messages instead). Found by
        # this suite; docs/reliability.md.
        config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "max.in.flight.requests.per.connection": 1,
                  "linger.ms": 1, "message.timeout.ms": 30000, "request.timeout.ms": 10000,
                  "log_level": 0}
        if client_log is not None:
            # librdkafka's idempotence log (epoch bumps and why, sequence resets): what a
            # duplicate or a gap in a run's history needs to be explained.
            config.update({"client.id": process, "debug": "eos", "log_level": 7,
                           "logger": client_log})
        h = self.history
        n = 0

        def report(value: str, partition: int, start: float):
            def cb(err, msg):
                end = h.now()
                if err is None:
                    h.add(Send(process, topic, partition, value, start, end, "ok", msg.offset()))
                else:
                    h.add(Send(process, topic, partition, value, start, end, "info",
                               error=str(err)))
            return cb

        while not self.stopping.is_set():
            p = Producer(config)
            try:
                while not self.stopping.is_set():
                    value = f"{process}-{n}"
                    partition = n % partitions
                    try:
                        p.produce(topic, value.encode(), partition=partition,
                                  on_delivery=report(value, partition, h.now()))
                    except BufferError:
                        p.poll(0.1)
                        continue
                    n += 1
                    p.poll(interval_s)
            except KafkaException as e:
                # A fatal idempotence error (librdkafka gives up on the producer id): counted
                # and logged, and a new producer goes on. What it had in flight stays unknown.
                self.fatal_errors.append(f"{process}: {e.args[0]}")
                if client_log is not None:
                    client_log.error("FATAL %s: %s", process, e.args[0])
            finally:
                p.flush(30)


class TxnProducers(Worker):
    writes = True
    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int,
                 count: int = 1, seed: int = 0) -> None:
        super().__init__(history)
        for i in range(count):
            self.spawn(self._run, f"txn{i}", bootstrap, topic, partitions, seed + i)

    def _producer(self, process: str, bootstrap: str) -> Producer:
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"fault-{process}",
                      "transaction.timeout.ms": 20000, "message.timeout.ms": 20000,
                      "request.timeout.ms": 10000, "log_level": 0})
        p.init_transactions(30)
        return p

    def _run(self, process: str, bootstrap: str, topic: str, partitions: int,
             seed: int) -> None:
        import random
        rng = random.Random(seed)
        h = self.history
        p = None
        n = 0
        attempt = 0
        while not self.stopping.is_set():
            try:
                if p is None:
                    p = self._producer(process, bootstrap)
            except KafkaException:
                self.stopping.wait(1)
                continue
            attempt += 1
            txn = f"{process}-t{attempt}"
            start = h.now()
            outcome = "info"
            commit_start = start
            try:
                p.begin_transaction()
                for _ in range(rng.randint(1, 5)):
                    value = f"{process}-{n}"
                    n += 1
                    partition = rng.randrange(partitions)

                    def cb(err, msg, value=value, partition=partition, sent=h.now()):
                        if err is None:
                            h.add(Send(process, topic, partition, value, sent, h.now(), "ok",
                                       msg.offset(), txn))
                        else:
                            h.add(Send(process, topic, partition, value, sent, h.now(), "info",
                                       None, txn, error=str(err)))
                    p.produce(topic, value.encode(), partition=partition, on_delivery=cb)
                p.flush(30)
                commit_start = h.now()
                if rng.random() < 0.2:
                    p.abort_transaction(30)
                    outcome = "abort"
                else:
                    p.commit_transaction(30)
                    outcome = "commit"
            except KafkaException as e:
                err = e.args[0]
                if err.txn_requires_abort():
                    try:
                        p.abort_transaction(30)
                        outcome = "abort"
                    except KafkaException:
                        p = None
                elif err.fatal():
                    p = None
                else:
                    # A commit that timed out or failed retriably: its outcome is unknown, and
                    # the producer cannot start another transaction until it is settled.
                    p = None
            finally:
                h.add(Txn(process, txn, start, commit_start, h.now(), outcome))
            self.stopping.wait(0.02)


def poll(h: History, c: Consumer, process: str, topic: str, isolation: str,
         max_messages: int) -> dict[int, list[tuple[int, str]]]:
    """One `consume()`, recorded as a `Poll` per partition; the records by partition."""
    msgs = c.consume(num_messages=max_messages, timeout=0.2)
    at = h.now()
    by_partition: dict[int, list[tuple[int, str]]] = {}
    for m in msgs:
        if m.error() is None and m.value() is not None:
            by_partition.setdefault(m.partition(), []).append((m.offset(), m.value().decode()))
    for p, records in by_partition.items():
        h.add(Poll(process, topic, p, records, at, isolation))
    return by_partition


class Consumers(Worker):
    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(history)
        for isolation in ("read_uncommitted", "read_committed"):
            self.spawn(self._run, f"consumer-{isolation}", bootstrap, topic, partitions,
                       isolation)

    def _run(self, process: str, bootstrap: str, topic: str, partitions: int,
             isolation: str) -> None:
        h = self.history
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fault-{process}",
                      "enable.auto.commit": False, "isolation.level": isolation,
                      "auto.offset.reset": "earliest", "log_level": 0})
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        for p in range(partitions):
            h.add(Assign(process, topic, p, 0, h.now()))
        try:
            while not self.stopping.is_set():
                poll(h, c, process, topic, isolation, 500)
        finally:
            c.close()


class GroupConsumers(Worker):
    GROUP = "fault-group"

    def __init__(self, history: History, bootstrap: str, topic: str, members: int = 3,
                 seed: int = 0) -> None:
        super().__init__(history)
        for i in range(members):
            self.spawn(self._run, f"member{i}", bootstrap, topic, seed + i)

    def _run(self, process: str, bootstrap: str, topic: str, seed: int) -> None:
        import random
        rng = random.Random(seed)
        while not self.stopping.is_set():
            # Members leave and join again every 10-30 s, so partitions keep moving between
            # them and every move is a resume from the group's committed offset to check.
            self._member(process, bootstrap, topic, time.monotonic() + rng.uniform(10, 30))

    def _member(self, process: str, bootstrap: str, topic: str, leave_at: float) -> None:
        h = self.history
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": self.GROUP,
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                      "heartbeat.interval.ms": 1000, "log_level": 0})

        def on_assign(consumer, partitions):
            at = h.now()
            for tp in partitions:
                h.add(Assign(process, tp.topic, tp.partition, -1, at, self.GROUP))

        c.subscribe([topic], on_assign=on_assign)
        try:
            while not self.stopping.is_set() and time.monotonic() < leave_at:
                by_partition = poll(h, c, process, topic, "read_committed", 200)
                if by_partition:
                    self._commit(c, process, topic, {p: r[-1][0] + 1
                                                     for p, r in by_partition.items()})
        finally:
            c.close()

    def _commit(self, c: Consumer, process: str, topic: str, offsets: dict[int, int]) -> None:
        h = self.history
        start = h.now()
        outcomes = {p: "info" for p in offsets}
        try:
            for tp in c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                               asynchronous=False):
                if tp.error is None:
                    outcomes[tp.partition] = "ok"
        except KafkaException:
            pass  # every outcome stays unknown: a timed-out commit may still be written
        end = h.now()
        for p, o in offsets.items():
            h.add(Commit(process, self.GROUP, topic, p, o, start, end, outcomes[p]))


class AdminOps(Worker):
    """Topic after topic: create (1 partition, RF 3), set `retention.ms` twice, delete every
    other one. Each operation's outcome is "ok" only when the cluster acknowledged it."""
    writes = True

    def __init__(self, history: History, bootstrap: str, prefix: str = "fault-admin") -> None:
        super().__init__(history)
        self.prefix = prefix
        self.spawn(self._run, bootstrap)

    def _run(self, bootstrap: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        n = 0
        while not self.stopping.is_set():
            topic = f"{self.prefix}-{n}"
            ok = self._op(admin, "create", topic, lambda: admin.create_topics(
                [NewTopic(topic, 1, 3)], request_timeout=15)[topic].result(20))
            if ok:
                for i in range(2):
                    value = str(3_600_000 * (n + 1) + i)
                    res = ConfigResource("topic", topic, incremental_configs=[ConfigEntry(
                        "retention.ms", value, incremental_operation=AlterConfigOpType.SET)])
                    self._op(admin, "config", topic, lambda res=res: admin
                             .incremental_alter_configs([res], request_timeout=15)[res]
                             .result(20), key="retention.ms", value=value)
                if n % 2 == 1:
                    self._op(admin, "delete", topic, lambda: admin.delete_topics(
                        [topic], request_timeout=15)[topic].result(20))
            n += 1
            self.stopping.wait(2)

    def _op(self, admin: AdminClient, action: str, topic: str, call: Callable,
            key: str | None = None, value: str | None = None) -> bool:
        h = self.history
        start = h.now()
        try:
            call()
            outcome = "ok"
        except Exception:  # noqa: BLE001 - a failed or timed-out operation may still be applied
            outcome = "info"
        h.add(Admin("admin", action, topic, start, h.now(), outcome, key, value))
        return outcome == "ok"


def admin_state(history: History, bootstrap: str, bound_s: float) -> None:
    """Reads the topics and the configs the admin operations set, until they match what the
    acknowledged operations promise or `bound_s` passes (metadata reaches every broker a little
    after the controller acknowledged it); records the last reading."""
    h = history
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + bound_s
    while True:
        state = None
        try:
            topics = sorted(admin.list_topics(timeout=5).topics)
            wanted = {op.topic for op in h.ops()
                      if isinstance(op, Admin) and op.action == "config"} & set(topics)
            configs: dict[str, dict[str, str]] = {}
            for topic in sorted(wanted):
                res = ConfigResource("topic", topic)
                entries = admin.describe_configs([res], request_timeout=5)[res].result(10)
                configs[topic] = {"retention.ms": entries["retention.ms"].value}
            state = AdminState(topics, configs, h.now())
        except Exception:  # noqa: BLE001 - the cluster may still be settling
            pass
        if state is not None and (not admin_violations(h.ops() + [state])
                                  or time.monotonic() > deadline):
            h.add(state)
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


class Watermarks(Worker):
    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(history)
        self.spawn(self._run, bootstrap, topic, partitions)

    def _run(self, bootstrap: str, topic: str, partitions: int) -> None:
        h = self.history
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-watermarks",
                      "isolation.level": "read_uncommitted", "log_level": 0})
        try:
            p = 0
            while not self.stopping.is_set():
                start = h.now()
                try:
                    _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5,
                                                      cached=False)
                    h.add(ListOffsets("watermarks", topic, p, high, start, h.now()))
                except Exception:  # noqa: BLE001 - an unanswered ListOffsets says nothing
                    pass
                p = (p + 1) % partitions
                self.stopping.wait(0.05)
        finally:
            c.close()


def final_read(history: History, bootstrap: str, topic: str, partitions: int,
               bound_s: float) -> None:
    """Reads every partition from the beginning to its high watermark (read_uncommitted, so
    every record the log holds), giving up at `bound_s`."""
    h = history
    deadline = time.monotonic() + bound_s
    # librdkafka's default isolation is read_committed: say read_uncommitted, so the read gets
    # every record the log holds (aborted ones too) and stops at the high watermark.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-final",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_uncommitted", "log_level": 0})
    try:
        for p in range(partitions):
            start = h.now()
            high = None
            while high is None and time.monotonic() < deadline:
                try:
                    high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5,
                                                   cached=False)[1]
                except Exception:  # noqa: BLE001 - the cluster may still be settling
                    time.sleep(0.5)
            records: list[tuple[int, str]] = []
            position = 0
            if high is not None:
                c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
                while time.monotonic() < deadline:
                    msgs = c.consume(num_messages=1000, timeout=0.5)
                    for m in msgs:
                        if m.error() is None:
                            records.append((m.offset(), m.value().decode()))
                    pos = c.position([TopicPartition(topic, p)])[0].offset
                    position = max(position, pos if pos >= 0 else 0)
                    if position >= high:
                        break
                c.unassign()
            complete = high is not None and position >= high
            h.add(FinalRead(topic, p, records, start, h.now(), complete))
    finally:
        c.close()
