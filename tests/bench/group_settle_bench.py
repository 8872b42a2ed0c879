"""Consumer-group settle-time benchmark (not a test): prints numbers for issue 17.

    tests/.venv/bin/python tests/bench/group_settle_bench.py [--rounds 5] [--fast]
        [--partitions 100] [--members 10] [--timeout 120]

What it measures, in one run against one broker: a group of `--members - 1` (default 9)
confluent-kafka consumers that share a topic of `--partitions` (default 100) partitions and have
settled; then a 10th member joins, and the program times how long the group takes to settle
around it. Each member is its own process (tests/integration/group_consumer.py, unchanged),
polling all the time and reporting its rebalance callbacks as timestamped JSON events; no records
are produced.

Two modes, alternating (classic, consumer, classic, ...), `--rounds` each, a fresh group id per
round:
  classic   group.protocol=classic, partition.assignment.strategy=cooperative-sticky
  consumer  KIP-848: group.protocol=consumer, group.remote.assignor=uniform (librdkafka refuses
            session.timeout.ms, heartbeat.interval.ms and partition.assignment.strategy there;
            the broker's group.consumer.heartbeat.interval.ms sets the pace)

Per round:
  1. start the 9 members at once; wait until they own every partition exactly once, each owns
     11 or 12 (floor/ceil of 100/9), and no callback has run for a quiet period (one heartbeat
     interval + 1 s); none of this is timed;
  2. start the 10th member's process; t0 is its `ready` event, which group_consumer.py emits
     right after `subscribe()` returns (librdkafka's subscribe is asynchronous: it returns within
     a millisecond, so t0 is the moment subscribe() was called to that precision; process start
     and Consumer construction come before t0 and are not counted);
  3. replay every member's assign/revoke/lost callbacks (incremental partition lists) in time
     order and report, relative to t0:
       settled   the first moment every partition is owned by exactly one member, none by two,
                 and the new member owns at least one (the issue's definition)
       balanced  the first moment, at or after `settled`, that also has every member owning its
                 final share (10 each with the defaults): the rebalance is over
       first     the new member's first non-empty assignment
     It waits until `balanced` held for a quiet period (so a late change would be seen), or
     `--timeout` seconds.
A partition assigned to a member while another member owns it is reported as an anomaly (group
id and events), in any phase; so is a member's `owned` list that disagrees with the replay.

Settings: client and broker defaults unless `--fast`: classic members use librdkafka's defaults
(session.timeout.ms 45000, heartbeat.interval.ms 3000, read from the library and passed
explicitly, since group_consumer.py otherwise uses 6000/500), the broker its defaults
(group.consumer.heartbeat.interval.ms 5000). `--fast`: classic members heartbeat.interval.ms 500
and session.timeout.ms 6000; the broker is started with group.consumer.heartbeat.interval.ms=500
(and group.consumer.min.heartbeat.interval.ms=500, since the minimum defaults to 5000).

Uses the release binary (RAFKA_BIN, default target/release/rafka) on a free loopback port with a
temporary data dir; every process it starts is stopped on exit, Ctrl-C or error. The broker's
dir (with its log) is kept and printed when an anomaly or a timeout was seen.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "integration"))

import confluent_kafka  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from broker_proc import BIN, Broker  # noqa: E402
from group_members import MemberProc  # noqa: E402

MEMBER_SCRIPT = HERE.parent / "integration" / "group_consumer.py"
TOPIC = "settle"
REBALANCE_EVENTS = ("assigned", "revoked", "lost")


# ---- librdkafka's own defaults ------------------------------------------------------------------

def librdkafka_defaults(keys: list[str]) -> dict[str, str]:
    """The defaults of the librdkafka that confluent-kafka loads (its bundled copy when there is
    one), read with rd_kafka_conf_get on a fresh conf object."""
    pkg = Path(confluent_kafka.__file__).resolve().parent
    libs = sorted(glob.glob(str(pkg.parent / "confluent_kafka.libs" / "librdkafka*.so*")))
    lib = ctypes.CDLL(libs[0] if libs else "librdkafka.so.1")
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.c_size_t)]
    lib.rd_kafka_conf_destroy.argtypes = [ctypes.c_void_p]
    conf = lib.rd_kafka_conf_new()
    out = {}
    try:
        for k in keys:
            buf = ctypes.create_string_buffer(512)
            n = ctypes.c_size_t(len(buf))
            rc = lib.rd_kafka_conf_get(conf, k.encode(), buf, ctypes.byref(n))
            out[k] = buf.value.decode() if rc == 0 else f"? (rc {rc})"
    finally:
        lib.rd_kafka_conf_destroy(conf)
    return out


# ---- members ------------------------------------------------------------------------------------

ALL_MEMBERS: "list[Member]" = []


class Member(MemberProc):
    """One group_consumer.py process (tests/integration/group_members.py's MemberProc: its JSON
    events are collected by a reader thread), reaped at exit through ALL_MEMBERS."""

    def __init__(self, name: str, cfg: dict):
        rest = {k: v for k, v in cfg.items()
                if k not in ("client", "bootstrap", "group", "topics", "name")}
        super().__init__(SimpleNamespace(bootstrap=cfg["bootstrap"]), cfg["client"],
                         cfg["group"], cfg["topics"], name, **rest)
        ALL_MEMBERS.append(self)

    def ready_at(self) -> float | None:
        for e in self.snapshot("ready"):
            return e["t"]
        return None

    def finish(self) -> None:
        """Kills the process if it still runs, joins the reader, removes the stderr file."""
        self.cleanup()
        if self in ALL_MEMBERS:
            ALL_MEMBERS.remove(self)


def stop_members(members: list[Member], timeout: float = 30) -> None:
    """SIGTERM to all at once (each closes its consumer: revoke, leave), then wait; SIGKILL to
    any still running after `timeout`."""
    for m in members:
        if m.alive():
            m.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for m in members:
        if m.proc is not None:
            try:
                m.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"    member {m.name} did not exit within {timeout}s of SIGTERM; killed",
                      flush=True)
        m.finish()


# ---- replaying the callbacks --------------------------------------------------------------------

def timeline(members: list[Member]) -> list[tuple[float, str, dict]]:
    evs = [(e["t"], m.name, e) for m in members for e in m.snapshot()
           if e["ev"] in REBALANCE_EVENTS]
    evs.sort(key=lambda x: x[0])
    return evs


class Replay:
    """Owned sets rebuilt from the incremental callback lists, in time order."""

    def __init__(self, names: list[str], partitions: int):
        self.partitions = partitions
        self.owned: dict[str, set[int]] = {n: set() for n in names}
        self.owner: dict[int, set[str]] = {p: set() for p in range(partitions)}
        self.anomalies: list[str] = []

    def apply(self, t: float, name: str, e: dict) -> None:
        parts = [p for topic, p in e["partitions"] if topic == TOPIC]
        if e["ev"] == "assigned":
            for p in parts:
                others = self.owner[p] - {name}
                if others:
                    self.anomalies.append(
                        f"t={t:.3f}: partition {p} assigned to {name} while "
                        f"{sorted(others)} own(s) it")
                self.owner[p].add(name)
                self.owned[name].add(p)
        else:
            for p in parts:
                self.owner[p].discard(name)
                self.owned[name].discard(p)
        reported = {p for topic, p in e.get("owned", []) if topic == TOPIC}
        if reported != self.owned[name]:
            self.anomalies.append(
                f"t={t:.3f}: {name}'s callback reports owning {sorted(reported)}, the replay "
                f"gives {sorted(self.owned[name])}")

    def exact_cover(self) -> bool:
        return all(len(o) == 1 for o in self.owner.values())

    def balanced(self, names: list[str]) -> bool:
        lo = self.partitions // len(names)
        hi = -(-self.partitions // len(names))
        return all(lo <= len(self.owned[n]) <= hi for n in names)


def analyse(members: list[Member], joiner: str | None, t0: float | None,
            partitions: int) -> dict:
    """Replays the callbacks; with a joiner, the settle/balanced/first times after t0."""
    names = [m.name for m in members]
    r = Replay(names, partitions)
    out: dict = {"settled": None, "balanced": None, "first": None, "last_event": None,
                 "assigns_after": 0, "revokes_after": 0, "lost_after": 0}
    for t, name, e in timeline(members):
        r.apply(t, name, e)
        out["last_event"] = t
        if joiner is None:
            continue
        if t < t0:
            continue
        if e["partitions"]:  # librdkafka also calls back with empty lists
            out[{"assigned": "assigns_after", "revoked": "revokes_after",
                 "lost": "lost_after"}[e["ev"]]] += 1
        if name == joiner and e["ev"] == "assigned" and e["partitions"] and out["first"] is None:
            out["first"] = t - t0
        settled_now = r.exact_cover() and len(r.owned[joiner]) >= 1
        if settled_now and out["settled"] is None:
            out["settled"] = t - t0
            out["joiner_at_settle"] = len(r.owned[joiner])
        if settled_now and r.balanced(names):
            if out["balanced"] is None:
                out["balanced"] = t - t0
        elif out["balanced"] is not None:
            # It was balanced and changed again: the later moment counts.
            out["balanced"] = None
            out["unbalanced_again"] = out.get("unbalanced_again", 0) + 1
    out["replay"] = r
    out["anomalies"] = list(r.anomalies)
    out["final_counts"] = {n: len(r.owned[n]) for n in names}
    out["initial_ok"] = r.exact_cover() and r.balanced(names) and all(r.owned[n] for n in names)
    return out


def wait_quiet(members: list[Member], cond, quiet: float, timeout: float) -> bool:
    """Waits until cond(analysis) holds and no callback ran for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if not m.alive():
                raise RuntimeError(f"member {m.name} exited (rc={m.proc.returncode}):\n"
                                   + m.stderr_tail())
        a = cond()
        if a is not None:
            last = a["last_event"] or 0
            if time.time() - last >= quiet:
                return True
        time.sleep(0.05)
    return False


def dump_events(members: list[Member], since: float | None = None, limit: int = 80) -> str:
    lines = []
    for t, name, e in timeline(members):
        if since is not None and t < since - 1:
            continue
        parts = [p for _topic, p in e["partitions"]]
        lines.append(f"      {t:.3f} {name:>9} {e['ev']:<8} {parts} gen={e.get('generation')}"
                     f" owned={len(e['owned'])}")
    for m in members:
        for e in m.snapshot():
            if e["ev"] == "error":
                lines.append(f"      {e['t']:.3f} {m.name:>9} error {e.get('name')}: "
                             f"{e.get('str')}")
    return "\n".join(lines[-limit:])


# ---- one round ----------------------------------------------------------------------------------

def run_round(broker: Broker, mode: str, rnd: int, args, member_cfg: dict,
              quiet: float) -> dict:
    group = f"settle-{mode}-{rnd}-{uuid.uuid4().hex[:8]}"
    cfg = {"client": "confluent", "bootstrap": broker.bootstrap, "group": group,
           "topics": [TOPIC], **member_cfg}
    n0 = args.members - 1
    members = [Member(f"m{i + 1}", cfg) for i in range(n0)]
    result = {"mode": mode, "round": rnd, "group": group}
    try:
        for m in members:
            m.start()

        def initial_settled():
            a = analyse(members, None, None, args.partitions)
            return a if a["initial_ok"] else None

        started = time.monotonic()
        if not wait_quiet(members, initial_settled, quiet, args.timeout):
            a = analyse(members, None, None, args.partitions)
            result["error"] = (f"the first {n0} members did not settle within {args.timeout}s; "
                               f"counts {a['final_counts']}")
            result["events"] = dump_events(members)
            result["anomalies"] = a["anomalies"]
            return result
        result["initial_s"] = time.monotonic() - started

        joiner = Member(f"m{args.members}", cfg)
        members.append(joiner)
        joiner.start()
        deadline = time.monotonic() + 60
        while joiner.ready_at() is None:
            if not joiner.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"joiner never subscribed:\n{joiner.stderr_tail()}")
            time.sleep(0.01)
        t0 = joiner.ready_at()

        def joined_balanced():
            a = analyse(members, joiner.name, t0, args.partitions)
            return a if a["balanced"] is not None else None

        ok = wait_quiet(members, joined_balanced, quiet, args.timeout)
        a = analyse(members, joiner.name, t0, args.partitions)
        result.update({k: a.get(k) for k in ("settled", "balanced", "first", "assigns_after",
                                             "joiner_at_settle",
                                         "revokes_after", "lost_after", "final_counts",
                                         "anomalies")})
        result["unbalanced_again"] = a.get("unbalanced_again", 0)
        if not ok:
            result["error"] = (f"not balanced within {args.timeout}s of the join; counts "
                               f"{a['final_counts']}")
        if not ok or a["anomalies"] or args.verbose:
            result["events"] = dump_events(members, since=t0)
        return result
    finally:
        stop_members(members)


def fmt_ms(v: float | None) -> str:
    return "never" if v is None else f"{v * 1000:.0f} ms"


def print_round(r: dict) -> None:
    head = f"  round {r['round']} {r['mode']:<8} group {r['group']}:"
    if r.get("settled") is not None or r.get("balanced") is not None:
        print(f"{head} settled {fmt_ms(r['settled'])}, balanced {fmt_ms(r['balanced'])}, "
              f"new member's first partitions at {fmt_ms(r['first'])} (owns "
              f"{r['joiner_at_settle']} at settled); after the join non-empty callbacks: "
              f"{r['revokes_after']} revoke, {r['assigns_after']} assign, {r['lost_after']} lost; "
              f"first {len(r['final_counts']) - 1} settled in "
              f"{r['initial_s']:.1f} s (not timed)", flush=True)
    else:
        print(head, flush=True)
    if r.get("unbalanced_again"):
        print(f"    note: balanced, then changed again {r['unbalanced_again']} time(s)")
    if r.get("error"):
        print(f"    ERROR: {r['error']}", flush=True)
    for an in r.get("anomalies") or []:
        print(f"    ANOMALY: {an}", flush=True)
    if r.get("events"):
        print(f"    callbacks (t, member, event, partitions):\n{r['events']}", flush=True)


def summary(results: list[dict], mode: str, key: str) -> str:
    vals = [r[key] for r in results if r["mode"] == mode and r.get(key) is not None]
    missing = sum(1 for r in results if r["mode"] == mode and r.get(key) is None)
    if not vals:
        return f"no value ({missing} rounds without)"
    s = (f"median {1000 * statistics.median(vals):.0f} ms, min {1000 * min(vals):.0f} ms, "
         f"max {1000 * max(vals):.0f} ms over {len(vals)} rounds")
    return s + (f" ({missing} rounds without a value)" if missing else "")


# ---- main ---------------------------------------------------------------------------------------

def shell(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception as e:  # noqa: BLE001 - informational only
        return f"? ({e})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per mode (default 5)")
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--members", type=int, default=10,
                    help="group size after the join (default 10: 9 settled, then 1 joins)")
    ap.add_argument("--fast", action="store_true",
                    help="heartbeats of 500 ms: classic heartbeat.interval.ms=500 and "
                         "session.timeout.ms=6000, broker group.consumer.heartbeat.interval.ms"
                         "=500")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds to wait for each phase to settle (default 120)")
    ap.add_argument("--modes", default="classic,consumer",
                    help="comma-separated, in the order they alternate (default classic,consumer)")
    ap.add_argument("--verbose", action="store_true",
                    help="print every round's callbacks from the join on")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    assert set(modes) <= {"classic", "consumer"}, modes

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    # Also when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    rdk = librdkafka_defaults(["session.timeout.ms", "heartbeat.interval.ms"])
    if args.fast:
        classic_hb, classic_session = 500, 6000
        broker_overrides = {"group.consumer.heartbeat.interval.ms": 500,
                            "group.consumer.min.heartbeat.interval.ms": 500}
        consumer_hb = 500
    else:
        classic_hb, classic_session = int(rdk["heartbeat.interval.ms"]), \
            int(rdk["session.timeout.ms"])
        broker_overrides = {}
        consumer_hb = 5000  # rafka's default, as Kafka's (docs/configuration.md)
    member_cfgs = {
        "classic": {"strategy": "cooperative-sticky", "heartbeat_ms": classic_hb,
                    "session_timeout_ms": classic_session},
        "consumer": {"protocol": "consumer", "remote_assignor": "uniform"},
    }
    # Quiet period before a phase counts as over: one heartbeat interval plus a second.
    quiet = {"classic": classic_hb / 1000 + 1, "consumer": consumer_hb / 1000 + 1}

    dirty = shell(["git", "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"],
                  REPO)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
          f"Linux {platform.release()}, python {platform.python_version()}")
    print(f"broker: {BIN} ({shell([BIN, '--version'])}); repository HEAD "
          f"{shell(['git', 'rev-parse', '--short', 'HEAD'], REPO)}"
          + (" (crates/ has uncommitted changes; the binary's exact source is not known "
             "to this program)" if dirty else ""))
    ck = confluent_kafka.version()
    ck = ck if isinstance(ck, str) else ck[0]
    print(f"client: confluent-kafka {ck}, librdkafka "
          f"{confluent_kafka.libversion()[0]} (defaults there: session.timeout.ms "
          f"{rdk['session.timeout.ms']}, heartbeat.interval.ms {rdk['heartbeat.interval.ms']})")
    print(f"shape: topic of {args.partitions} partitions (replication 1), nothing produced; "
          f"{args.members - 1} members settle, then member {args.members} joins; "
          f"{args.rounds} rounds per mode, alternating {', '.join(modes)}")
    print(f"settings ({'--fast' if args.fast else 'defaults'}):")
    print(f"  classic:  partition.assignment.strategy=cooperative-sticky, heartbeat.interval.ms="
          f"{classic_hb}, session.timeout.ms={classic_session}"
          + ("" if args.fast else " (librdkafka's defaults)"))
    print(f"  consumer: group.protocol=consumer, group.remote.assignor=uniform; broker "
          f"group.consumer.heartbeat.interval.ms={consumer_hb}"
          + (" (set with --override, and group.consumer.min.heartbeat.interval.ms=500)"
             if args.fast else " (the broker's default)")
          + ", group.consumer.session.timeout.ms 45000 (default)")
    print(f"  broker overrides: {broker_overrides or 'none'}", flush=True)

    broker = Broker(overrides=broker_overrides, name="rafka-settle")
    results: list[dict] = []
    keep = False
    try:
        broker.start()
        print(f"broker on {broker.bootstrap}, dir {broker.root}", flush=True)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])[TOPIC].result(30)
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
            if md is not None and md.error is None and len(md.partitions) == args.partitions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {TOPIC} has no {args.partitions} partitions")
            time.sleep(0.1)
        del admin  # its client would keep reconnecting to the stopped broker until exit

        print("\nrounds (times from the new member's subscribe()):", flush=True)
        for rnd in range(1, args.rounds + 1):
            for mode in modes:
                r = run_round(broker, mode, rnd, args, member_cfgs[mode], quiet[mode])
                results.append(r)
                print_round(r)
                if r.get("error") or r.get("anomalies"):
                    keep = True
                if not broker.alive():
                    raise RuntimeError("broker exited:\n" + broker.log_tail(40))

        print("\nsummary (from the new member's subscribe()):")
        for mode in modes:
            print(f"  {mode:<8} settled:  {summary(results, mode, 'settled')}")
            print(f"  {mode:<8} balanced: {summary(results, mode, 'balanced')}")
            print(f"  {mode:<8} first:    {summary(results, mode, 'first')}")
        bad = [r for r in results if r.get("error") or r.get("anomalies")]
        print(f"\nanomalies: {len(bad)} round(s)"
              + "".join(f"\n  {r['mode']} round {r['round']} group {r['group']}: "
                        f"{r.get('error') or ''} {'; '.join(r.get('anomalies') or [])}"
                        for r in bad))
        panics = broker.panic_lines()
        if panics:
            keep = True
            print("broker panics:\n" + "\n".join(panics[:20]))
        return 1 if bad or panics else 0
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e or 'SIGINT'}); stopping everything", file=sys.stderr,
              flush=True)
        return 130
    finally:
        for m in list(ALL_MEMBERS):
            m.finish()
        broker.cleanup(keep=keep)
        if keep:
            print(f"broker dir kept for inspection: {broker.root} (log: {broker.log_path})")


if __name__ == "__main__":
    sys.exit(main())
