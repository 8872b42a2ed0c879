"""A consumer-group member as its own process, for tests that SIGKILL members (a killed process
sends no LeaveGroup, so the broker has to notice through the session timeout).

    python group_consumer.py '<json config>'

Config keys: client ("confluent" | "kafka-python" | "aiokafka"), bootstrap, group, topics,
name (used as client id), session_timeout_ms, heartbeat_ms, batch (records per poll, committed
together after processing), delay_ms (processing time per record), instance_id (static
membership), strategy (librdkafka partition.assignment.strategy), protocol ("consumer" for
KIP-848's group.protocol=consumer), remote_assignor (its group.remote.assignor), conf (extra
librdkafka properties, confluent only, e.g. {"debug": "cgrp"}: librdkafka logs to stderr),
revoke_delay_ms (confluent only: the revoke callback of a running member emits `revoking` and
sleeps this long before it commits, so a test can act while a revocation is in progress).

Writes one JSON object per line to stdout, flushed per line, each with "ev" and "t" (time.time()):
  ready                                   the client is constructed and subscribed
  assigned   partitions=[[topic, p]...]   the partitions a rebalance added (incremental)
             owned=[...], generation, member
  revoking   partitions                   a revoke callback started (with revoke_delay_ms)
  revoked    partitions, owned            partitions given up in a rebalance (or on close)
  lost       partitions, owned            partitions lost without a clean revoke
  msg        topic, p, o, key, value
  committing offsets=[[topic, p, next_offset]...]   before a synchronous commit is sent
  committed  offsets                      the commit succeeded
  commit_failed offsets, error
  error      code, name, fatal, str       a client error (librdkafka error_cb / consume errors)
  closed                                  after a clean close (SIGTERM)
Commits happen after each processed batch and, for confluent and aiokafka, in the revoke
callback; kafka-python 3's synchronous listener may not call commit() (it runs on the client's IO
thread), so its revokes only drop the uncommitted offsets of the revoked partitions.
"""
from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time

STOP = threading.Event()


def emit(ev: str, **kw) -> None:
    kw = {"ev": ev, "t": time.time(), **kw}
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def tps(parts) -> list:
    return sorted([tp.topic, tp.partition] for tp in parts)


def dec(b):
    return None if b is None else b.decode("utf-8", "replace")


class Tracker:
    """Owned partitions and processed-but-uncommitted offsets, shared by all three clients."""

    def __init__(self):
        self.owned: set[tuple[str, int]] = set()
        self.pending: dict[tuple[str, int], int] = {}

    def processed(self, topic, p, o):
        self.pending[(topic, p)] = o + 1

    def take(self, only=None) -> dict:
        """The pending offsets of owned partitions (or of `only`), removed from pending."""
        keys = [k for k in self.pending if (k in self.owned if only is None else k in only)]
        return {k: self.pending.pop(k) for k in keys}

    def restore(self, offsets: dict) -> None:
        """A failed commit: retry it with the next one, for partitions still owned."""
        for k, o in offsets.items():
            if k in self.owned and self.pending.get(k, -1) < o:
                self.pending[k] = o

    def drop(self, parts):
        for k in parts:
            self.pending.pop(k, None)


def as_list(offsets: dict) -> list:
    return sorted([t, p, o] for (t, p), o in offsets.items())


# ---- confluent-kafka (librdkafka) ---------------------------------------------------------------

def run_confluent(cfg: dict) -> int:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    tr = Tracker()

    def on_error(err):
        emit("error", code=err.code(), name=err.name(), fatal=err.fatal(), str=err.str())

    conf = {
        "bootstrap.servers": cfg["bootstrap"],
        "group.id": cfg["group"],
        "client.id": cfg.get("name", "member"),
        "session.timeout.ms": cfg.get("session_timeout_ms", 6000),
        "heartbeat.interval.ms": cfg.get("heartbeat_ms", 500),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "error_cb": on_error,
    }
    if cfg.get("instance_id"):
        conf["group.instance.id"] = cfg["instance_id"]
    if cfg.get("strategy"):
        conf["partition.assignment.strategy"] = cfg["strategy"]
    if cfg.get("protocol") == "consumer":
        # KIP-848: the broker owns session, heartbeat and assignment; librdkafka refuses the
        # classic settings with this protocol.
        conf["group.protocol"] = "consumer"
        for key in ("session.timeout.ms", "heartbeat.interval.ms",
                    "partition.assignment.strategy"):
            conf.pop(key, None)
        if cfg.get("remote_assignor"):
            conf["group.remote.assignor"] = cfg["remote_assignor"]
    conf.update(cfg.get("conf") or {})
    c = Consumer(conf)

    def commit(only=None) -> None:
        offs = tr.take(only)
        if not offs:
            return
        emit("committing", offsets=as_list(offs))
        try:
            res = c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offs.items()],
                           asynchronous=False)
            errs = [str(r.error) for r in res or [] if r.error is not None]
            if errs:
                emit("commit_failed", offsets=as_list(offs), error="; ".join(errs))
                tr.restore(offs)
            else:
                emit("committed", offsets=as_list(offs))
        except Exception as e:  # noqa: BLE001 - reported, the test decides
            emit("commit_failed", offsets=as_list(offs), error=repr(e))
            tr.restore(offs)

    def on_assign(consumer, parts):
        tr.owned |= {(tp.topic, tp.partition) for tp in parts}
        gen, member = member_of(consumer)
        emit("assigned", partitions=tps(parts), owned=sorted(map(list, tr.owned)),
             generation=gen, member=member)

    def on_revoke(consumer, parts):
        keys = {(tp.topic, tp.partition) for tp in parts}
        if cfg.get("revoke_delay_ms") and not STOP.is_set():
            emit("revoking", partitions=tps(parts))
            time.sleep(cfg["revoke_delay_ms"] / 1000)
        commit(only=keys)
        tr.owned -= keys
        tr.drop(keys)
        emit("revoked", partitions=tps(parts), owned=sorted(map(list, tr.owned)))

    def on_lost(consumer, parts):
        keys = {(tp.topic, tp.partition) for tp in parts}
        tr.owned -= keys
        tr.drop(keys)
        emit("lost", partitions=tps(parts), owned=sorted(map(list, tr.owned)))

    def member_of(consumer):
        raw = consumer.consumer_group_metadata()  # see helpers.ck_group_generation
        gen = int.from_bytes(raw[7:11], sys.byteorder, signed=True)
        member = raw[11:].split(b"\0", 2)[1].decode()
        return gen, member

    c.subscribe(cfg["topics"], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit("ready")
    delay = cfg.get("delay_ms", 0) / 1000
    batch = cfg.get("batch", 5)
    while not STOP.is_set():
        msgs = c.consume(batch, 0.1)
        for m in msgs:
            if m.error():
                e = m.error()
                if e.code() == KafkaError._PARTITION_EOF:
                    continue
                emit("error", code=e.code(), name=e.name(), fatal=e.fatal(), str=e.str())
                continue
            emit("msg", topic=m.topic(), p=m.partition(), o=m.offset(), key=dec(m.key()),
                 value=dec(m.value()))
            if delay:
                time.sleep(delay)
            tr.processed(m.topic(), m.partition(), m.offset())
        commit()
    commit()
    c.close()  # eager: revoke (commits) then LeaveGroup; a static member does not leave
    emit("closed")
    return 0


# ---- kafka-python -----------------------------------------------------------------------------

def run_kafka_python(cfg: dict) -> int:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
    import kafka.errors as Errors

    tr = Tracker()
    c = KafkaConsumer(
        bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
        client_id=cfg.get("name", "member"),
        group_instance_id=cfg.get("instance_id") or None,
        session_timeout_ms=cfg.get("session_timeout_ms", 6000),
        heartbeat_interval_ms=cfg.get("heartbeat_ms", 500),
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )  # api_version=None: auto-detected from ApiVersions

    def member_of():
        # The coordinator's current Generation, read without its lock: the listener runs on
        # kafka-python's IO thread, and group_metadata() (which takes the lock) can deadlock
        # there against the application thread blocked in poll().
        g = c._coordinator._generation
        return g.generation_id, g.member_id

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            keys = {(tp.topic, tp.partition) for tp in revoked}
            tr.owned -= keys
            tr.drop(keys)
            emit("revoked", partitions=tps(revoked), owned=sorted(map(list, tr.owned)))

        def on_partitions_assigned(self, assigned):
            tr.owned |= {(tp.topic, tp.partition) for tp in assigned}
            gen, member = member_of()
            emit("assigned", partitions=tps(assigned), owned=sorted(map(list, tr.owned)),
                 generation=gen, member=member)

        def on_partitions_lost(self, lost):
            keys = {(tp.topic, tp.partition) for tp in lost}
            tr.owned -= keys
            tr.drop(keys)
            emit("lost", partitions=tps(lost), owned=sorted(map(list, tr.owned)))

    from kafka import TopicPartition

    def commit() -> None:
        offs = tr.take()
        if not offs:
            return
        emit("committing", offsets=as_list(offs))
        try:
            c.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                      for (t, p), o in offs.items()})
            emit("committed", offsets=as_list(offs))
        except Exception as e:  # noqa: BLE001 - reported
            emit("commit_failed", offsets=as_list(offs), error=repr(e))
            tr.restore(offs)

    # Topic metadata first: a group leader without it assigns nothing, and the metadata arriving
    # right after triggers a second rebalance (during which kafka-python 3.0.12 can lose a
    # SyncGroup response the broker did send; seen in packet captures).
    for t in cfg["topics"]:
        deadline = time.monotonic() + 30
        while not c.partitions_for_topic(t) and time.monotonic() < deadline:
            time.sleep(0.05)
    c.subscribe(cfg["topics"], listener=Listener())
    emit("ready")
    delay = cfg.get("delay_ms", 0) / 1000
    batch = cfg.get("batch", 5)
    while not STOP.is_set():
        try:
            # A long poll: kafka-python 3.0.12 re-enters a JoinGroup/SyncGroup that outlived the
            # previous poll() through a cached task, and with short polls the group leader now
            # and then never completes its rebalance (the broker's SyncGroup answer is on the
            # wire; the client never acts on it). poll() still returns as soon as records arrive.
            got = c.poll(timeout_ms=1000, max_records=batch)
        except Errors.KafkaError as e:
            emit("error", code=getattr(e, "errno", None), name=type(e).__name__,
                 fatal=not getattr(e, "retriable", False), str=str(e))
            if isinstance(e, (Errors.FencedInstanceIdError, Errors.InvalidSessionTimeoutError)):
                time.sleep(0.2)
            continue
        for tp, recs in sorted(got.items()):
            for r in recs:
                emit("msg", topic=tp.topic, p=tp.partition, o=r.offset, key=dec(r.key),
                     value=dec(r.value))
                if delay:
                    time.sleep(delay)
                tr.processed(tp.topic, tp.partition, r.offset)
        commit()
    commit()
    c.close()
    emit("closed")
    return 0


# ---- aiokafka -----------------------------------------------------------------------------------

def run_aiokafka(cfg: dict) -> int:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

    async def main() -> int:
        tr = Tracker()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        c = AIOKafkaConsumer(
            bootstrap_servers=cfg["bootstrap"], group_id=cfg["group"],
            client_id=cfg.get("name", "member"),
            group_instance_id=cfg.get("instance_id") or None,
            session_timeout_ms=cfg.get("session_timeout_ms", 6000),
            heartbeat_interval_ms=cfg.get("heartbeat_ms", 500),
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )

        async def commit(only=None) -> None:
            offs = tr.take(only)
            if not offs:
                return
            emit("committing", offsets=as_list(offs))
            try:
                await c.commit({TopicPartition(t, p): o for (t, p), o in offs.items()})
                emit("committed", offsets=as_list(offs))
            except Exception as e:  # noqa: BLE001 - reported
                emit("commit_failed", offsets=as_list(offs), error=repr(e))
                tr.restore(offs)

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                keys = {(tp.topic, tp.partition) for tp in revoked}
                await commit(only=keys)
                tr.owned -= keys
                tr.drop(keys)
                emit("revoked", partitions=tps(revoked), owned=sorted(map(list, tr.owned)))

            async def on_partitions_assigned(self, assigned):
                tr.owned |= {(tp.topic, tp.partition) for tp in assigned}
                # aiokafka's coordinator keeps the joined generation and member id.
                co = c._coordinator
                emit("assigned", partitions=tps(assigned), owned=sorted(map(list, tr.owned)),
                     generation=co.generation, member=co.member_id)

        await c.start()
        c.subscribe(cfg["topics"], listener=Listener())
        emit("ready")
        delay = cfg.get("delay_ms", 0) / 1000
        batch = cfg.get("batch", 5)
        try:
            while not stop.is_set():
                got = await c.getmany(timeout_ms=100, max_records=batch)
                for tp, recs in sorted(got.items()):
                    for r in recs:
                        emit("msg", topic=tp.topic, p=tp.partition, o=r.offset, key=dec(r.key),
                             value=dec(r.value))
                        if delay:
                            await asyncio.sleep(delay)
                        tr.processed(tp.topic, tp.partition, r.offset)
                await commit()
            await commit()
        finally:
            await c.stop()
        emit("closed")
        return 0

    return asyncio.run(main())


RUNNERS = {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}


def main() -> int:
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    # SIGUSR1 dumps every thread's stack to stderr (the test fixture does it on failure).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Client logs to stderr: warnings always, more with RAFKA_MEMBER_LOG=DEBUG|INFO.
    logging.basicConfig(level=os.environ.get("RAFKA_MEMBER_LOG", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    return RUNNERS[cfg["client"]](cfg)


if __name__ == "__main__":
    sys.exit(main())
