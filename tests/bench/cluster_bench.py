"""Cluster benchmark program (not a test): prints numbers for issue 13's targets.

    tests/.venv/bin/python tests/bench/cluster_bench.py [--kills 20] [--starts 5]
        [--single-runs 5] [--single-only]

1. Controller failover: three controller-only nodes and two brokers with Kafka's default
   timeouts. Twenty times: kill -9 the active controller, then time from the kill to the first
   successful CreateTopics (sent through a broker, which forwards it and retries until a new
   controller commits it); restart the killed controller. Prints p50/p99/max.
2. Three combined nodes from launch to the first acknowledged produce (acks=all, a topic created
   on first use), over fresh clusters.
3. Idle RSS per node of a three-node cluster (combined nodes, and controllers + brokers), after
   start-up allocations settled.
4. The zero-config single node: launch to `Kafka Server started`, and idle RSS.

Uses the release binary (RAFKA_BIN, default target/release/rafka); prints the settings and the
machine it ran on.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from broker_proc import BIN, Broker  # noqa: E402
from cluster import Cluster  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def failover(kills: int) -> list[float]:
    c = Cluster(controllers=3, brokers=2)
    c.start()
    out = []
    try:
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        for i in range(kills):
            leader, epoch = c.wait_for_leader()
            # Every broker is caught up and a topic was created just before the kill.
            admin.create_topics([NewTopic(f"warm-{i}", 1, 1)])[f"warm-{i}"].result(30)
            killed = time.monotonic()
            c.nodes[leader].kill9()
            name = f"after-kill-{i}"
            while True:
                fs = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=30,
                                         request_timeout=30)
                try:
                    fs[name].result(60)
                    break
                except Exception as e:  # noqa: BLE001 - retried like a client would
                    if "already exists" in str(e):
                        break
            took = time.monotonic() - killed
            out.append(took)
            print(f"  kill {i + 1}: leader {leader} (epoch {epoch}) -> CreateTopics ok after "
                  f"{took * 1000:.0f} ms", flush=True)
            c.nodes[leader].start()
            c.wait_for_leader(newer_than=epoch)
    finally:
        c.cleanup()
    return out


def start_to_produce(starts: int) -> list[float]:
    out = []
    for i in range(starts):
        c = Cluster(combined=3)
        try:
            launched = time.monotonic()
            for n in c.nodes.values():
                n.launch()
            delivered = []
            p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in c.nodes.values()),
                          "acks": "all", "linger.ms": 0, "retry.backoff.ms": 10,
                          "retry.backoff.max.ms": 50, "reconnect.backoff.ms": 10,
                          "reconnect.backoff.max.ms": 50, "topic.metadata.refresh.interval.ms": 50})
            p.produce("first", b"hello",
                      on_delivery=lambda err, msg: delivered.append((err, time.monotonic())))
            while not delivered:
                p.poll(0.001)
            err, at = delivered[0]
            assert err is None, err
            out.append(at - launched)
            print(f"  start {i + 1}: first produce acknowledged {1000 * (at - launched):.0f} ms "
                  f"after launch", flush=True)
            for n in c.nodes.values():
                n.wait_ready()
            # Destroy the client before its cluster goes, or it logs reconnect failures.
            p.flush(5)
            del p
        finally:
            c.cleanup()
    return out


def idle_rss(**shape) -> dict[int, float]:
    c = Cluster(**shape)
    c.start()
    try:
        time.sleep(3.0)  # start-up allocations settle; the quorum's heartbeats keep running
        return {n.node_id: n.rss_kib() / 1024 for n in c.nodes.values()}
    finally:
        c.cleanup()


def single_node(runs: int) -> tuple[list[float], list[float]]:
    starts, rss = [], []
    for _ in range(runs):
        b = Broker()
        try:
            t0 = time.monotonic()
            b.start()
            starts.append(time.monotonic() - t0)
            time.sleep(1.0)
            rss.append(b.rss_kib() / 1024)
        finally:
            b.cleanup()
    return starts, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--single-runs", type=int, default=5)
    ap.add_argument("--single-only", action="store_true",
                    help="only part 4 (to compare binaries: RAFKA_BIN=<old> ... --single-only)")
    args = ap.parse_args()
    print(f"binary: {BIN}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}")
    print("settings: Kafka's default timeouts (controller.quorum.election.timeout.ms=1000, "
          "fetch.timeout.ms=2000, broker.session.timeout.ms=9000), loopback, one host")

    if not args.single_only:
        print(f"\n1. controller failover ({args.kills} kills, 3 controllers + 2 brokers):")
        f = failover(args.kills)
        print(f"   kill -9 -> next CreateTopics: p50 {1000 * pct(f, .5):.0f} ms, "
              f"p99 {1000 * pct(f, .99):.0f} ms, max {1000 * max(f):.0f} ms, "
              f"mean {1000 * statistics.mean(f):.0f} ms")

        print(f"\n2. three combined nodes, launch -> first acknowledged produce ({args.starts} runs):")
        s = start_to_produce(args.starts)
        print(f"   p50 {1000 * pct(s, .5):.0f} ms, max {1000 * max(s):.0f} ms")

        print("\n3. idle RSS per node:")
        for name, shape in (("3 combined", {"combined": 3}),
                            ("3 controllers + 2 brokers", {"controllers": 3, "brokers": 2})):
            r = idle_rss(**shape)
            print(f"   {name}: " + ", ".join(f"node {k} {v:.1f} MiB" for k, v in r.items()))

    print(f"\n4. zero-config single node ({args.single_runs} runs):")
    st, rs = single_node(args.single_runs)
    print(f"   launch -> 'Kafka Server started': p50 {1000 * pct(st, .5):.0f} ms, "
          f"max {1000 * max(st):.0f} ms; idle RSS {min(rs):.1f}-{max(rs):.1f} MiB")


if __name__ == "__main__":
    main()
