"""Replication benchmark program (not a test): prints numbers for issue 15's targets.

    tests/.venv/bin/python tests/bench/replication_bench.py [--rate 10000] [--seconds 10]
        [--kills 5]

1. End-to-end latency at a fixed rate: a confluent-kafka producer sends `--rate` messages per
   second for `--seconds` to one partition, and the time from `produce()` to the delivery report
   is recorded for every message. Once with acks=all to a topic with three replicas
   (`min.insync.replicas` 2) on three combined nodes, once with acks=1 to a single-replica topic
   on the same cluster. Prints p50/p99/max and the rate reached.
   Each run is preceded by a 2 s warm-up of the same producer at 1,000 msg/s (not measured).
2. Unavailability after kill -9 of a partition's leader: an acks=all producer sends a numbered
   message every 5 ms; the longest silence between two acknowledgements around the kill is the
   unavailable time (with `broker.session.timeout.ms` 9000, Kafka's
   default, so the goal is under 10 s). The killed node is restarted and waited back into the
   ISR before the next kill. Then the same with `--stops` controlled shutdowns (SIGTERM: the
   node asks the controller to move its leaderships before it stops; goal under 1 s).

Uses the release binary (RAFKA_BIN, default target/release/rafka); prints the settings and the
machine it ran on.
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time

# cluster_bench puts tests/integration on the path; its percentile is the one used here too.
from cluster_bench import BIN, AdminClient, Cluster, NewTopic, Producer, pct
from helpers import wait_until


def create(bootstrap: str, name: str, rf: int, configs: dict | None = None) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, 1, rf, config=configs or {})])[name].result(30)


def state(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    p = md.topics[topic].partitions[0]
    return p.leader, sorted(p.isrs)


def latency(p: Producer, topic: str, rate: int, seconds: float) -> tuple:
    lat: list[float] = []
    errors: list = []

    def report(sent: float):
        def cb(err, _msg):
            if err:
                errors.append(err)
            else:
                lat.append((time.perf_counter() - sent) * 1000)
        return cb

    payload = b"x" * 100
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        while time.perf_counter() < due:
            p.poll(0)
        p.produce(topic, payload, partition=0, on_delivery=report(time.perf_counter()))
        p.poll(0)
    p.flush(60)
    elapsed = time.perf_counter() - start
    return lat, errors, total / elapsed


def unavailability(c: Cluster, topic: str, kills: int, clean: bool = False) -> list[float]:
    """kill -9 of the partition's leader `kills` times (with `clean`: a SIGTERM, which runs the
    controlled shutdown that moves its leaderships first)."""
    gaps = []
    for _ in range(kills):
        b = c.bootstrap()
        leader, _ = state(b, topic)
        active = c.leader()
        also_controller = active is not None and active[0] == leader
        acks: list[float] = []
        stop = threading.Event()
        p = Producer({"bootstrap.servers": b, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 0, "message.timeout.ms": 60000})

        def on_delivery(err, _msg):
            if err is None:
                acks.append(time.monotonic())

        def run():
            while not stop.is_set():
                p.produce(topic, b"v", partition=0, on_delivery=on_delivery)
                p.poll(0.005)
            p.flush(60)

        t = threading.Thread(target=run)
        t.start()
        wait_until(lambda: len(acks) > 50, timeout=30, what="acks before the kill")
        killed = time.monotonic()
        if clean:
            threading.Thread(target=c.nodes[leader].stop, daemon=True).start()
        else:
            c.nodes[leader].kill9()
        # Answers already on their way when the leader died still arrive after the kill: the
        # outage is the longest silence between two acknowledgements around it.
        wait_until(lambda: any(a > killed + 0.5 for a in acks), timeout=60,
                   what="acks after the kill")
        time.sleep(0.5)
        stop.set()
        t.join()
        around = sorted(a for a in acks if a >= killed - 1)
        gaps.append((max(b - a for a, b in zip(around, around[1:])) * 1000, also_controller))
        print(f"  {'stopped' if clean else 'killed'} leader {leader}"
              f"{' (also the active controller)' if also_controller else ''}: unavailable "
              f"{gaps[-1][0]:.0f} ms, now led by {state(c.bootstrap(), topic)[0]}")
        wait_until(lambda: not c.nodes[leader].alive(), timeout=60, what="the node stopped")
        c.nodes[leader].start()
        wait_until(lambda: state(c.bootstrap(), topic)[1] == [1, 2, 3], timeout=60,
                   what="the restarted node back in the ISR")
    return gaps


def report(what: str, gaps: list[tuple[float, bool]]) -> None:
    """Prints the outages apart for leaders that were not and were the active controller
    too: killing that node also costs a quorum election, and the new controller gives every
    broker a whole new session (as Kafka's does), so it is a different case."""
    for label, also in (("", False), (", node also the active controller", True)):
        ms = [g for g, a in gaps if a == also]
        if ms:
            print(f"{what}{label}, {len(ms)} times: unavailable ms p50 {pct(ms, 0.5):.0f} "
                  f"max {max(ms):.0f} (all: {[round(g) for g in ms]})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--stops", type=int, default=5,
                    help="controlled shutdowns (SIGTERM) of the leader")
    ap.add_argument("--outages-only", action="store_true",
                    help="skip the latency runs")
    args = ap.parse_args()
    print(f"binary {BIN}; {platform.machine()} {os.cpu_count()} cores; {platform.platform()}")
    c = Cluster(combined=3)
    c.start()
    try:
        b = c.bootstrap()
        create(b, "rf3", 3, {"min.insync.replicas": "2"})
        create(b, "rf1", 1)
        for topic, acks in () if args.outages_only else (("rf3", "all"), ("rf1", "1")):
            p = Producer({"bootstrap.servers": b, "acks": acks, "linger.ms": 1,
                          "enable.idempotence": acks == "all"})
            # Warm-up with the same producer: its start (an idempotent one waits ~0.5 s for
            # its producer id) and a follower that fetched before its leader knew the new topic
            # (it backs off replica.fetch.backoff.ms, 1 s, as Kafka's does) are not measured.
            latency(p, topic, 1000, 2)
            lat, errors, reached = latency(p, topic, args.rate, args.seconds)
            print(f"{topic} acks={acks}: {len(lat)} delivered, {len(errors)} errors, "
                  f"{reached:.0f} msg/s; e2e ms p50 {pct(lat, 0.5):.2f} p99 {pct(lat, 0.99):.2f} "
                  f"max {max(lat):.2f}")
        if args.kills:
            report("kill -9 of the leader", unavailability(c, "rf3", args.kills))
        if args.stops:
            report("controlled shutdown of the leader",
                   unavailability(c, "rf3", args.stops, clean=True))
    finally:
        c.cleanup()


if __name__ == "__main__":
    main()
