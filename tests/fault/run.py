"""The fault suite's runner (issue 16): a rafka cluster in network namespaces under a recorded
client workload while a nemesis injects faults on a seeded schedule; then a heal, a final read,
a clean stop, the replicas' logs, and `checker.check` on the history.

    tests/.venv/bin/python tests/fault/run.py --nemesis kill,pause,partition \\
        [--chase] [--runs N] [--seconds S] [--seed X] [--topology combined|split] [--out DIR]

Nemeses (each fault lasts 2-8 s, then is healed; one fault at a time, 1-4 s apart):
- kill: kill -9 of a node, restarted when the fault ends;
- pause: SIGSTOP, then SIGCONT;
- partition: iptables cuts between the nodes' namespaces: a random majority/minority split,
  the active controller isolated, the partition leader isolated, a bridge (two halves that
  both see one node), or one direction only;
- loss: one node drops 30 % of the packets from the others.
`--chase` aims kill and pause at the leader of a data partition or the active controller
(alternately) instead of a random node.

Where network namespaces cannot be made (not root, no iproute2/iptables), or with
`--loopback`, the nodes run on 127.0.0.1 and only kill and pause are available.

Per run a line with the seed, the operations, the faults and the checker's verdict; the history
of a run with anomalies is written to `--out` as JSON (`checker.from_json` reads it back) with
the seed to replay it. Exit status 1 when any run had an anomaly. Needs root (namespaces).
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import random
import struct
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from checker import ReplicaState, check, to_json  # noqa: E402
from netcluster import NetCluster, available  # noqa: E402 (puts tests/integration on the path)

from cluster import Cluster  # noqa: E402
from txn_v2_workload import TxnV2Producers  # noqa: E402
from workload import (AdminOps, Consumers, GroupConsumers, History, Producers,  # noqa: E402
                      TxnProducers, Watermarks, admin_state, final_read)

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "fault"
PARTITIONS = 3
NEMESES = ("kill", "pause", "partition", "loss")
# The cluster's timeouts, short enough that a fault's effects play out within a run.
OVERRIDES = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "4000",
    "unclean.leader.election.enable": "false",
}
LIVENESS_BOUND_S = 60.0
# A run still going this long after its faults should have ended prints every thread's stack.
HANG_REPORT_AFTER_S = 300.0
# How long after the heal every replica has to be back in the ISR before the nodes stop.
ISR_BOUND_S = 30.0


def wait_for_full_isr(bootstrap: str, topic: str, partitions: int, bound_s: float) -> str:
    """Waits up to `bound_s` until every replica of `topic` is in the ISR again; " (not all
    after N s)" when they are not, for the phase line."""
    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            md = a.list_topics(topic, timeout=5).topics[topic]
            if len(md.partitions) == partitions and all(
                    set(p.isrs) == set(p.replicas) for p in md.partitions.values()):
                return ""
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(0.2)
    return f" (not all after {bound_s:.0f} s)"


def leader_of(bootstrap: str, topic: str, partition: int) -> int | None:
    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        md = a.list_topics(topic, timeout=5)
        return md.topics[topic].partitions[partition].leader
    except Exception:  # noqa: BLE001 - no answer during a fault is normal
        return None


class Nemesis:
    def __init__(self, cluster: Cluster, kinds: list[str], chase: bool, rng: random.Random):
        self.c = cluster
        self.kinds = kinds
        self.chase = chase
        self.rng = rng
        self.faults: list[str] = []
        self.killed: set[int] = set()
        self.paused: set[int] = set()
        self.stopping = threading.Event()
        self._chase_controller = False

    def target(self) -> int:
        ids = sorted(self.c.nodes)
        if self.chase:
            self._chase_controller = not self._chase_controller
            if self._chase_controller:
                active = self.c.leader()
                if active is not None:
                    return active[0]
            led = leader_of(self.c.bootstrap(), TOPIC, self.rng.randrange(PARTITIONS))
            if led is not None and led in self.c.nodes:
                return led
        return self.rng.choice(ids)

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.stopping.wait(self.rng.uniform(1, 4))
            if time.monotonic() >= deadline:
                break
            kind = self.rng.choice(self.kinds)
            self.inject(kind)
            self.stopping.wait(self.rng.uniform(2, 8))
            self.heal()

    def inject(self, kind: str) -> None:
        ids = sorted(self.c.nodes)
        # Only partition and loss touch the network, which exists only in namespaces.
        net = self.c.network if isinstance(self.c, NetCluster) else None
        if kind == "kill":
            n = self.target()
            self.c.nodes[n].kill9()
            self.killed.add(n)
            self.faults.append(f"kill {n}")
        elif kind == "pause":
            n = self.target()
            self.c.nodes[n].pause()
            self.paused.add(n)
            self.faults.append(f"pause {n}")
        elif kind == "partition":
            mode = self.rng.choice(["halves", "controller", "leader", "bridge", "one-way"])
            if mode == "halves":
                shuffled = self.rng.sample(ids, len(ids))
                k = len(ids) // 2
                groups = [set(shuffled[:k]), set(shuffled[k:])]
                net.isolate(groups)
                self.faults.append(f"partition {sorted(groups[0])}|{sorted(groups[1])}")
            elif mode in ("controller", "leader"):
                if mode == "controller":
                    active = self.c.leader()
                    n = active[0] if active else self.rng.choice(ids)
                else:
                    led = leader_of(self.c.bootstrap(), TOPIC, self.rng.randrange(PARTITIONS))
                    n = led if led in self.c.nodes else self.rng.choice(ids)
                net.isolate([{n}, set(ids) - {n}])
                self.faults.append(f"isolate {mode} {n}")
            elif mode == "bridge":
                shuffled = self.rng.sample(ids, len(ids))
                mid = shuffled[0]
                rest = shuffled[1:]
                left, right = set(rest[: len(rest) // 2]), set(rest[len(rest) // 2:])
                for a in left:
                    for b in right:
                        net.cut_both(a, b)
                self.faults.append(f"bridge {sorted(left)}-{mid}-{sorted(right)}")
            else:
                a, b = self.rng.sample(ids, 2)
                net.cut(a, b)
                self.faults.append(f"one-way {a}->{b} cut")
        elif kind == "loss":
            n = self.rng.choice(ids)
            net.loss(n, 0.3)
            self.faults.append(f"loss 30% at {n}")

    def heal(self) -> None:
        if isinstance(self.c, NetCluster):
            self.c.network.heal()
        for n in sorted(self.paused):
            self.c.nodes[n].resume()
        self.paused.clear()
        for n in sorted(self.killed):
            self.c.nodes[n].start()
        self.killed.clear()


def replica_states(cluster: Cluster, topic: str, partitions: int) -> list[ReplicaState]:
    """Every replica's batches (base offset, last offset, leader epoch, CRC) from its `.log`
    segments, and its high watermark from `replication-offset-checkpoint` (written at the clean
    stop), in Kafka's formats."""
    out = []
    for node in cluster.nodes.values():
        if not node.is_broker:
            continue
        hws = {}
        ckpt = node.data_dir / "replication-offset-checkpoint"
        if ckpt.exists():
            for line in ckpt.read_text().splitlines()[2:]:
                t, p, off = line.split()
                hws[(t, int(p))] = int(off)
        for p in range(partitions):
            d = node.data_dir / f"{topic}-{p}"
            if not d.exists():
                continue
            batches = []
            for seg in sorted(d.glob("*.log")):
                data = seg.read_bytes()
                pos = 0
                # base offset i64, length i32, leader epoch i32, magic i8, crc u32, attributes
                # i16, last offset delta i32
                while pos + 27 <= len(data):
                    base, length, epoch, _magic, crc, _attrs, delta = struct.unpack_from(
                        ">qiibIhi", data, pos)
                    if length <= 0 or pos + 12 + length > len(data):
                        break
                    batches.append((base, base + delta, epoch, crc))
                    pos += 12 + length
            out.append(ReplicaState(node.node_id, topic, p, hws.get((topic, p), 0), batches))
    return out


def drain(workers: list) -> str:
    """Joins `workers` (each stopped already); names the ones slow to finish, as " (...)"."""
    slow = []
    for w in workers:
        started = time.monotonic()
        w.join()
        if time.monotonic() - started > 5:
            # A worker still busy long after the heal is worth knowing about: its requests
            # were not answered, or the client hung.
            slow.append(f"{type(w).__name__} {time.monotonic() - started:.1f} s")
    return f" ({', '.join(slow)})" if slow else ""


def one_run(run: int, seed: int, kinds: list[str], chase: bool, seconds: float,
            topology: str, out_dir: Path, keep_history: bool = False,
            loopback: bool = False) -> bool:
    rng = random.Random(seed)
    # A run takes its seconds plus about a minute; one that takes far longer is stuck in the
    # harness or a client (third round: a timed wait of the nemesis thread that never timed
    # out), and every thread's stack goes to stderr to show where.
    faulthandler.dump_traceback_later(seconds + HANG_REPORT_AFTER_S, repeat=True)
    shape = {"combined": 3} if topology == "combined" else {"controllers": 3, "brokers": 3}
    if loopback:
        c: Cluster = Cluster(overrides=OVERRIDES, **shape)
    else:
        c = NetCluster(100 + (seed % 150), overrides=OVERRIDES, **shape)
    h = History()
    out_dir.mkdir(parents=True, exist_ok=True)
    client_log_path = out_dir / f"rdkafka-seed{seed}.log"
    client_log = logging.getLogger(f"rdkafka-seed{seed}")
    client_log.propagate = False
    handler = logging.FileHandler(client_log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    client_log.addHandler(handler)
    client_log.setLevel(logging.DEBUG)
    workers = []
    producers = None
    nemesis = Nemesis(c, kinds, chase, rng)
    report = None
    # Where a run's wall time goes, printed under its row.
    phases: list[tuple[str, float]] = []
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases.append((name, now - mark))
        mark = now

    try:
        c.start()
        b = c.bootstrap()
        admin = AdminClient({"bootstrap.servers": b, "log_level": 0})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={
            "min.insync.replicas": "2"})])[TOPIC].result(30)
        producers = Producers(h, b, TOPIC, PARTITIONS, client_log=client_log)
        workers = [producers,
                   TxnProducers(h, b, TOPIC, PARTITIONS, seed=seed),
                   TxnV2Producers(h, b, TOPIC, PARTITIONS, seed=seed),
                   Consumers(h, b, TOPIC, PARTITIONS), GroupConsumers(h, b, TOPIC, seed=seed),
                   Watermarks(h, b, TOPIC, PARTITIONS), AdminOps(h, b)]
        phase("start")
        nemesis.run(seconds)
        nemesis.heal()
        healed_at = h.now()
        phase("faults")
        # A quiet spell after the heal: the cluster settles and the workload goes on.
        time.sleep(5)
        for w in workers:
            w.stop()
        phase("quiet and drain writers" + drain([w for w in workers if w.writes]))
        final_read(h, b, TOPIC, PARTITIONS, LIVENESS_BOUND_S)
        phase("final read")
        phase("drain readers" + drain([w for w in workers if not w.writes]))
        admin_state(h, b, LIVENESS_BOUND_S)
        phase("admin state")
        # A follower cut off by the last fault may need a few seconds after the heal (TCP
        # retransmission backoff) to fetch again; one that never does is a stuck follower,
        # which the checker reports from the logs taken after this wait (replica_behind).
        phase("replicas in sync" + wait_for_full_isr(b, TOPIC, PARTITIONS, ISR_BOUND_S))
        c.stop_all()
        for state in replica_states(c, TOPIC, PARTITIONS):
            h.add(state)
        phase("stop")
        report = check(h.ops(), healed_at=healed_at, liveness_bound_s=LIVENESS_BOUND_S)
        phase("check")
    finally:
        # Clients first, then the nodes, then the namespaces and, last, the blackhole route.
        for w in workers:
            w.stop()
        for w in workers:
            w.join(30)
        c.cleanup(keep=report is None or not report.ok)
        client_log.removeHandler(handler)
        handler.close()
        fatal = producers.fatal_errors if producers is not None else []
        if report is not None and report.ok and not keep_history and not fatal:
            client_log_path.unlink(missing_ok=True)
        phase("cleanup")
    faulthandler.cancel_dump_traceback_later()
    ops = h.ops()
    sends = [op for op in ops if op.type == "send"]
    acked = sum(1 for s in sends if s.outcome == "ok")
    read_back = sum(len(op.records) for op in ops if op.type == "final_read")
    txns = [op for op in ops if op.type == "txn"]
    committed = sum(1 for t in txns if t.outcome == "commit")
    v2 = [t for t in txns if t.process.startswith("txnv2-")]
    v2_committed = sum(1 for t in v2 if t.outcome == "commit")
    print(f"| {run} | {seed} | {','.join(kinds)}{' chase' if chase else ''} | {len(sends)} "
          f"sends, {acked} acked, {len(txns)} transactions ({committed} committed; "
          f"V2 {len(v2)}, {v2_committed} committed), "
          f"{report.ops.get('poll', 0)} polls, {report.ops.get('commit', 0)} group commits, "
          f"{report.ops.get('admin', 0)} admin operations, "
          f"{report.ops.get('list_offsets', 0)} list offsets, {read_back} read back, "
          f"{report.ops.get('replica_state', 0)} replica logs | {len(nemesis.faults)}: "
          f"{'; '.join(nemesis.faults)} | {report.summary()} |", flush=True)
    print("  time: " + ", ".join(f"{name} {s:.1f} s" for name, s in phases), flush=True)
    if fatal:
        # Not an anomaly of the history, but a client that gave up: the log says why.
        print(f"  fatal client errors: {'; '.join(fatal)}; librdkafka log: {client_log_path}",
              flush=True)
    if not report.ok or keep_history:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"history-seed{seed}.json"
        path.write_text(json.dumps({"seed": seed, "nemesis": kinds, "chase": chase,
                                    "faults": nemesis.faults, "counts": report.counts,
                                    "examples": report.examples, "history": to_json(h.ops())}))
        if not report.ok:
            print(f"  anomalies: {json.dumps(report.examples)}", flush=True)
        print(f"  history: {path}", flush=True)
    if not report.ok:
        print(f"  nodes' data and logs: {c.root}; the producers' librdkafka log: "
              f"{client_log_path}", flush=True)
    return report.ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nemesis", default="kill,pause,partition")
    ap.add_argument("--chase", action="store_true")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--topology", choices=("combined", "split"), default="combined")
    ap.add_argument("--out", type=Path, default=Path(".fault-runs"))
    ap.add_argument("--keep-histories", action="store_true",
                    help="write every run's history, not only those with anomalies")
    ap.add_argument("--loopback", action="store_true",
                    help="run the nodes on 127.0.0.1 (kill and pause only); the default where "
                         "network namespaces cannot be made")
    args = ap.parse_args()
    kinds = [k for k in args.nemesis.split(",") if k]
    unknown = set(kinds) - set(NEMESES)
    if unknown or not kinds:
        ap.error(f"unknown nemesis {sorted(unknown)}; choose from {', '.join(NEMESES)}")
    loopback = args.loopback
    why = None if loopback else available()
    if why:
        print(f"network namespaces are not available here ({why}): the nodes run on loopback",
              file=sys.stderr)
        loopback = True
    if loopback and set(kinds) & {"partition", "loss"}:
        print("the partition and loss nemeses need network namespaces (root, iproute2, "
              "iptables); on loopback use kill and pause", file=sys.stderr)
        return 2
    print("| run | seed | nemesis | operations | faults | anomalies |")
    print("|---|---|---|---|---|---|")
    ok = 0
    for i in range(args.runs):
        if one_run(i + 1, args.seed + i, kinds, args.chase, args.seconds, args.topology,
                   args.out, args.keep_histories, loopback):
            ok += 1
    print(f"\n{args.runs} runs ({args.topology}{', loopback' if loopback else ''}, "
          f"{args.seconds:.0f} s each, seeds {args.seed}-"
          f"{args.seed + args.runs - 1}): {ok} without anomalies, {args.runs - ok} with")
    return 0 if ok == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
