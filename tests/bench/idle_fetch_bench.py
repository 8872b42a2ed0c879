"""Idle replication benchmark program (not a test): the CPU an idle cluster spends replicating.

    tests/.venv/bin/python tests/bench/idle_fetch_bench.py [--partitions 1000] [--seconds 60]

Three combined nodes on loopback, one topic of `--partitions` partitions with three replicas
(so every node leads a third and follows two thirds), nothing produced. Once all partitions
have their three replicas in sync and a 10 s settle has passed, the CPU time (user + system,
from /proc) of each node's process over `--seconds` is printed as a percentage of one core.
The cluster runs twice in the same program: with incremental fetch sessions (KIP-227, the
default) and with them turned off on every node (`max.incremental.fetch.session.cache.slots`
0, so every follower fetch is a full fetch listing all its partitions), to show what the
sessions save. The nodes also run the controller quorum, so the figure is an upper bound on
what follower fetching costs.

Uses the release binary (RAFKA_BIN, default target/release/rafka); prints the settings and the
machine it ran on.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

from cluster_bench import BIN, AdminClient, Cluster, NewTopic
from helpers import wait_until

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / TICKS


def all_in_sync(bootstrap: str, topic: str, partitions: int) -> bool:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    t = md.topics.get(topic)
    return (t is not None and len(t.partitions) == partitions
            and all(len(p.isrs) == 3 and p.leader >= 0 for p in t.partitions.values()))


def run(partitions: int, seconds: float, sessions: bool) -> list[float]:
    overrides = {} if sessions else {"max.incremental.fetch.session.cache.slots": "0"}
    c = Cluster(combined=3, overrides=overrides)
    try:
        c.start()
        b = c.bootstrap()
        a = AdminClient({"bootstrap.servers": b})
        a.create_topics([NewTopic("idle", partitions, 3)], request_timeout=120)["idle"].result(120)
        wait_until(lambda: all_in_sync(b, "idle", partitions), timeout=300,
                   what=f"{partitions} partitions with three in-sync replicas")
        time.sleep(10)
        nodes = list(c.nodes.values())
        before = [cpu_seconds(n.pid) for n in nodes]
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        after = [cpu_seconds(n.pid) for n in nodes]
        assert all_in_sync(b, "idle", partitions), "replicas fell out of sync while idle"
        return [(y - x) / elapsed * 100 for x, y in zip(before, after)]
    finally:
        c.stop_all()
        c.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    print(f"binary {BIN}; {platform.node()}, {os.cpu_count()} cores; "
          f"{args.partitions} partitions, RF 3, 3 combined nodes, idle for {args.seconds:.0f} s")
    print("| fetch sessions | node 1 | node 2 | node 3 | mean |")
    print("|---|---|---|---|---|")
    for sessions in (True, False):
        cpu = run(args.partitions, args.seconds, sessions)
        cells = " | ".join(f"{x:.2f} %" for x in cpu)
        print(f"| {'on (default)' if sessions else 'off (slots 0)'} | {cells} | "
              f"{sum(cpu) / len(cpu):.2f} % |", flush=True)


if __name__ == "__main__":
    main()
