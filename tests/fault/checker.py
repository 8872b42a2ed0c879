"""The fault suite's history checker (issue 16): reads what the clients did and saw during a run
and counts anomalies. Pure functions over plain data, so every anomaly kind is proven on
synthetic histories (tests/integration/test_fault_checker.py) before a real run relies on it.

A history is a list of operations, recorded by the workload as they complete:

- `Send`: one produce of a unique value, with its outcome: "ok" (acknowledged, at `offset`),
  "fail" (the client was told it was not written) or "info" (unknown: a timeout, a lost
  connection). Values written inside a transaction name it in `txn`.
- `Txn`: one transaction attempt: when its commit (or abort) was asked for, and its outcome
  ("commit", "abort" or "info").
- `Assign`: a consumer was given a partition (or seeked) at `position`; position checks start
  again from there. A member of a consumer group names its `group` and gives position -1: it
  resumes from the group's committed offset, which the group's `Commit`s bound.
- `Commit`: one OffsetCommit of a group member for one partition, with its outcome ("ok", or
  "info" for any error: a commit that timed out may still have been written).
- `Poll`: records one consumer read from one partition, in order, with its isolation level.
- `ListOffsets`: a `latest` offset (the high watermark, or the last stable offset) seen.
- `FinalRead`: everything read from a partition after the last heal (read_uncommitted, from the
  log start to the high watermark), and whether that read finished.
- `Admin`: one admin operation during the run: `create` or `delete` of a topic, or `config`
  (IncrementalAlterConfigs setting `key` to `value`), with its outcome ("ok" or "info").
- `AdminState`: the topics and their configs as the cluster reports them after the heal.
- `ReplicaState`: one replica's batches (base offset, last offset, leader epoch, CRC) and high
  watermark, taken after the cluster was stopped cleanly.

`check(history, ...)` returns a `Report`: for each anomaly kind, how many and a few examples.
A correct broker gives zero of every kind. The kinds:

- lost: an acknowledged value (outside a transaction, or in a committed one) missing from the
  final read.
- duplicate: one value at two offsets.
- inconsistent_offset: two values at one offset (an acknowledgement counts as an observation of
  its offset).
- position_backwards / position_skip: a consumer reading an offset at or below one it read
  before, or jumping over a record it should have seen (without a new assignment in between);
  for a group member after an assignment: starting below an offset the group had committed
  (acknowledged before the assignment), or beyond every offset the group may have committed.
- aborted_read: a read_committed consumer returning a value of an aborted transaction.
- uncommitted_read: a read_committed consumer returning a value of a transaction before its
  commit was even asked for.
- list_offsets_backwards: a `latest` smaller than one seen by an operation that had finished
  before this one started.
- replica_divergence: replicas that disagree on a batch below the smallest high watermark.
- replica_behind: a replica whose log ends below the highest high watermark any replica had at
  the clean stop, which the runner makes after waiting (up to 30 s) for every replica to be in
  the ISR again: a follower that stopped replicating (as one stuck on an epoch it began as
  leader and never wrote in would).
- liveness: the final read did not get everything within `liveness_bound_s` of the last heal.
- admin_lost: an acknowledged admin operation not in the state after the heal: a created topic
  (never deleted) missing, a deleted topic still there, or a config value other than the last
  acknowledged one (or one set later by an operation of unknown outcome).
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Union

KINDS = (
    "lost",
    "duplicate",
    "inconsistent_offset",
    "position_backwards",
    "position_skip",
    "aborted_read",
    "uncommitted_read",
    "list_offsets_backwards",
    "replica_divergence",
    "replica_behind",
    "liveness",
    "admin_lost",
)

# Examples kept per kind: enough to debug, bounded so a broken run's report stays readable.
EXAMPLES_MAX = 5

TP = tuple[str, int]


@dataclass
class Send:
    process: str
    topic: str
    partition: int
    value: str
    start: float
    end: float
    outcome: str  # "ok" | "fail" | "info"
    offset: int | None = None
    txn: str | None = None
    type: str = "send"
    # Why a send is not "ok", as the client said it (for reading a history, not checked).
    error: str | None = None


@dataclass
class Txn:
    process: str
    txn: str
    start: float
    commit_start: float  # when the commit (or abort) was asked for
    end: float
    outcome: str  # "commit" | "abort" | "info"
    type: str = "txn"


@dataclass
class Assign:
    process: str
    topic: str
    partition: int
    position: int  # -1: a group member resuming from its group's committed offset
    time: float
    group: str | None = None
    type: str = "assign"


@dataclass
class Commit:
    process: str
    group: str
    topic: str
    partition: int
    offset: int
    start: float
    end: float
    outcome: str  # "ok" | "info"
    type: str = "commit"


@dataclass
class Poll:
    process: str
    topic: str
    partition: int
    records: list[tuple[int, str]]
    time: float
    isolation: str = "read_uncommitted"  # or "read_committed"
    type: str = "poll"


@dataclass
class ListOffsets:
    process: str
    topic: str
    partition: int
    latest: int
    start: float
    end: float
    isolation: str = "read_uncommitted"
    type: str = "list_offsets"


@dataclass
class FinalRead:
    topic: str
    partition: int
    records: list[tuple[int, str]]
    start: float
    end: float
    complete: bool
    type: str = "final_read"


@dataclass
class Admin:
    process: str
    action: str  # "create" | "delete" | "config"
    topic: str
    start: float
    end: float
    outcome: str  # "ok" | "info"
    key: str | None = None
    value: str | None = None
    type: str = "admin"


@dataclass
class AdminState:
    topics: list[str]
    configs: dict[str, dict[str, str]]  # topic -> the configs `Admin` operations set
    time: float
    type: str = "admin_state"


@dataclass
class ReplicaState:
    node: int
    topic: str
    partition: int
    high_watermark: int
    # (base offset, last offset, partition leader epoch, crc) in offset order
    batches: list[tuple[int, int, int, int]]
    type: str = "replica_state"


Op = Union[Send, Txn, Assign, Commit, Poll, ListOffsets, FinalRead, Admin, AdminState,
           ReplicaState]

_TYPES = {c.__dataclass_fields__["type"].default: c
          for c in (Send, Txn, Assign, Commit, Poll, ListOffsets, FinalRead, Admin, AdminState,
                    ReplicaState)}


def to_json(history: Iterable[Op]) -> list[dict]:
    """The history as plain dicts (for writing a failing run's history to disk)."""
    return [asdict(op) for op in history]


def from_json(items: Iterable[dict]) -> list[Op]:
    out: list[Op] = []
    for d in items:
        cls = _TYPES[d["type"]]
        d = dict(d)
        for key in ("records", "batches"):
            if key in d:
                d[key] = [tuple(x) for x in d[key]]
        out.append(cls(**d))
    return out


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    ops: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_MAX:
            self.examples[kind].append(example)

    @property
    def anomalies(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.anomalies == 0

    def summary(self) -> str:
        found = [f"{k} {n}" for k, n in self.counts.items() if n]
        return "no anomalies" if not found else ", ".join(found)


def check(history: Iterable[Op], healed_at: float | None = None,
          liveness_bound_s: float = 60.0) -> Report:
    history = list(history)
    report = Report()
    for op in history:
        report.ops[op.type] = report.ops.get(op.type, 0) + 1
    txns = {op.txn: op for op in history if isinstance(op, Txn)}
    sends = [op for op in history if isinstance(op, Send)]
    finals = {(op.topic, op.partition): op for op in history if isinstance(op, FinalRead)}

    _check_offsets(history, report)
    _check_lost(sends, txns, finals, report)
    _check_transactions(history, sends, txns, report)
    _check_positions(history, sends, txns, finals, report)
    _check_list_offsets(history, report)
    _check_replicas(history, report)
    _check_liveness(finals, healed_at, liveness_bound_s, report)
    _check_admin(history, report)
    for topic, p in sorted({(s.topic, s.partition) for s in sends
                            if _counts_as_written(s, txns)} - set(finals)):
        report.add("liveness", f"{topic}-{p}: acknowledged writes, but never read back")
    return report


def _observations(history: list[Op]) -> Iterable[tuple[TP, int, str, str]]:
    """Every (partition, offset, value, who) anyone saw: acknowledgements, polls, final reads."""
    for op in history:
        if isinstance(op, Send) and op.outcome == "ok" and op.offset is not None:
            yield (op.topic, op.partition), op.offset, op.value, f"ack to {op.process}"
        elif isinstance(op, (Poll, FinalRead)):
            who = f"poll by {op.process}" if isinstance(op, Poll) else "final read"
            for offset, value in op.records:
                yield (op.topic, op.partition), offset, value, who


def _check_offsets(history: list[Op], report: Report) -> None:
    at_offset: dict[tuple[TP, int], dict[str, str]] = defaultdict(dict)
    offsets_of: dict[tuple[TP, str], dict[int, str]] = defaultdict(dict)
    for tp, offset, value, who in _observations(history):
        at_offset[(tp, offset)].setdefault(value, who)
        offsets_of[(tp, value)].setdefault(offset, who)
    for ((topic, p), offset), values in sorted(at_offset.items()):
        if len(values) > 1:
            seen = "; ".join(f"{v!r} ({w})" for v, w in sorted(values.items()))
            report.add("inconsistent_offset", f"{topic}-{p} offset {offset}: {seen}")
    for ((topic, p), value), offsets in sorted(offsets_of.items()):
        if len(offsets) > 1:
            seen = "; ".join(f"{o} ({w})" for o, w in sorted(offsets.items()))
            report.add("duplicate", f"{topic}-{p} value {value!r} at offsets {seen}")


def _counts_as_written(send: Send, txns: dict[str, Txn]) -> bool:
    """Whether an acknowledged send must be in the log: outside a transaction, or in one whose
    commit was acknowledged."""
    if send.outcome != "ok":
        return False
    if send.txn is None:
        return True
    t = txns.get(send.txn)
    return t is not None and t.outcome == "commit"


def _check_lost(sends: list[Send], txns: dict[str, Txn], finals: dict[TP, FinalRead],
                report: Report) -> None:
    present: dict[TP, set[str]] = {tp: {v for _, v in f.records} for tp, f in finals.items()}
    for s in sends:
        if not _counts_as_written(s, txns):
            continue
        tp = (s.topic, s.partition)
        if tp not in finals:
            # Nothing read back from this partition: the liveness check reports that.
            continue
        if s.value not in present[tp]:
            report.add("lost", f"{s.topic}-{s.partition} value {s.value!r} acknowledged to "
                               f"{s.process} at offset {s.offset} (t={s.end:.3f})")


def _check_transactions(history: list[Op], sends: list[Send], txns: dict[str, Txn],
                        report: Report) -> None:
    txn_of = {(s.topic, s.partition, s.value): s.txn for s in sends if s.txn is not None}
    for op in history:
        if not isinstance(op, Poll) or op.isolation != "read_committed":
            continue
        for offset, value in op.records:
            t = txns.get(txn_of.get((op.topic, op.partition, value), ""))
            if t is None:
                continue
            where = f"{op.topic}-{op.partition} offset {offset} value {value!r}"
            if t.outcome == "abort":
                report.add("aborted_read", f"{where} of aborted {t.txn} read by {op.process}")
            elif op.time < t.commit_start:
                report.add("uncommitted_read", f"{where} of {t.txn} read by {op.process} at "
                                               f"t={op.time:.3f}, before its commit was asked "
                                               f"for at t={t.commit_start:.3f}")


def _visible(tp: TP, final: FinalRead | None, isolation: str, sends_by_value: dict,
             txns: dict[str, Txn]) -> list[int] | None:
    """Offsets a consumer at `isolation` must not skip, from the final read: every record,
    except, for read_committed, those of transactions that did not commit (or whose outcome is
    unknown), sorted. `None` without a final read."""
    if final is None:
        return None
    out = []
    for offset, value in final.records:
        s = sends_by_value.get((tp, value))
        if isolation == "read_committed" and s is not None and s.txn is not None:
            t = txns.get(s.txn)
            if t is None or t.outcome != "commit":
                continue
        out.append(offset)
    return sorted(out)


def _check_positions(history: list[Op], sends: list[Send], txns: dict[str, Txn],
                     finals: dict[TP, FinalRead], report: Report) -> None:
    sends_by_value = {((s.topic, s.partition), s.value): s for s in sends}
    commits: dict[tuple[str, TP], list[Commit]] = defaultdict(list)
    for op in history:
        if isinstance(op, Commit):
            commits[(op.group, (op.topic, op.partition))].append(op)
    # (process, partition) -> the next offset it may read: its last read + 1, or its assignment.
    position: dict[tuple[str, TP], int] = {}
    # (process, partition) -> the group assignment whose first read is still to come.
    resuming: dict[tuple[str, TP], Assign] = {}
    visible_cache: dict[tuple[TP, str], list[int] | None] = {}
    for op in history:
        if isinstance(op, Assign):
            key = (op.process, (op.topic, op.partition))
            if op.group is not None and op.position < 0:
                resuming[key] = op
                position.pop(key, None)
            else:
                resuming.pop(key, None)
                position[key] = op.position
            continue
        if not isinstance(op, Poll):
            continue
        tp = (op.topic, op.partition)
        key = (op.process, tp)
        if (tp, op.isolation) not in visible_cache:
            visible_cache[(tp, op.isolation)] = _visible(
                tp, finals.get(tp), op.isolation, sends_by_value, txns)
        visible = visible_cache[(tp, op.isolation)]
        for offset, value in op.records:
            assign = resuming.pop(key, None)
            if assign is not None:
                _check_resume(assign, commits[(assign.group, tp)], op, offset, visible, report)
                position[key] = offset + 1
                continue
            expected = position.get(key)
            if expected is not None and offset < expected:
                report.add("position_backwards", f"{op.process} read {op.topic}-{op.partition} "
                                                 f"offset {offset} after reaching {expected - 1}")
            elif expected is not None and visible is not None:
                skipped = _between(visible, expected, offset)
                if skipped:
                    report.add("position_skip", f"{op.process} jumped from {expected} to "
                                                f"{offset} in {op.topic}-{op.partition}, over "
                                                f"{skipped[:5]}")
            position[key] = max(offset + 1, expected or 0)


def _between(offsets: list[int], low: int, high: int) -> list[int]:
    """The offsets in [low, high) of a sorted list (a run reads tens of thousands of records:
    a scan per record would make the check quadratic)."""
    return offsets[bisect_left(offsets, low):bisect_left(offsets, high)]


def _check_resume(assign: Assign, commits: list[Commit], poll: Poll, offset: int,
                  visible: list[int] | None, report: Report) -> None:
    """A group member's first read after an assignment. The group's committed offset at that
    moment is at least every commit acknowledged before the assignment, and at most the largest
    commit started before the read (one of unknown outcome may have been written); with no
    commit at all the member starts at the log start (auto.offset.reset=earliest)."""
    lower = max((c.offset for c in commits if c.outcome == "ok" and c.end < assign.time),
                default=0)
    upper = max([lower] + [c.offset for c in commits if c.start < poll.time])
    where = f"{poll.process} (group {assign.group}) resumed {poll.topic}-{poll.partition}"
    if offset < lower:
        report.add("position_backwards", f"{where} at {offset}, below offset {lower} the group "
                                         f"had committed before t={assign.time:.3f}")
    elif visible is not None:
        skipped = _between(visible, upper, offset)
        if skipped:
            report.add("position_skip", f"{where} at {offset}, beyond any offset the group "
                                        f"committed (at most {upper}), over {skipped[:5]}")


def _check_list_offsets(history: list[Op], report: Report) -> None:
    by_tp: dict[tuple[TP, str], list[ListOffsets]] = defaultdict(list)
    for op in history:
        if isinstance(op, ListOffsets):
            by_tp[((op.topic, op.partition), op.isolation)].append(op)
    for ((topic, p), _), ops in by_tp.items():
        ops.sort(key=lambda o: o.end)
        # The largest `latest` among operations that finished before each one started.
        best: tuple[int, ListOffsets] | None = None
        finished = 0
        for op in sorted(ops, key=lambda o: o.start):
            while finished < len(ops) and ops[finished].end < op.start:
                o = ops[finished]
                if best is None or o.latest > best[0]:
                    best = (o.latest, o)
                finished += 1
            if best is not None and op.latest < best[0]:
                report.add("list_offsets_backwards",
                           f"{topic}-{p} latest {op.latest} by {op.process} at "
                           f"t={op.start:.3f} after {best[0]} by {best[1].process} at "
                           f"t={best[1].end:.3f}")


def _check_replicas(history: list[Op], report: Report) -> None:
    by_tp: dict[TP, list[ReplicaState]] = defaultdict(list)
    for op in history:
        if isinstance(op, ReplicaState):
            by_tp[(op.topic, op.partition)].append(op)
    for (topic, p), states in sorted(by_tp.items()):
        if len(states) < 2:
            continue
        highest = max(s.high_watermark for s in states)
        for s in states:
            end = s.batches[-1][1] + 1 if s.batches else 0
            if end < highest:
                report.add("replica_behind",
                           f"{topic}-{p}: node {s.node}'s log ends at {end}, below the high "
                           f"watermark {highest}")
        hw = min(s.high_watermark for s in states)
        # Compare where every replica still has data (log starts may differ after retention).
        start = max((s.batches[0][0] for s in states if s.batches), default=0)
        below = {s.node: [b for b in s.batches if b[0] >= start and b[1] < hw] for s in states}
        reference_node, reference = next(iter(sorted(below.items())))
        for node, batches in sorted(below.items()):
            if batches != reference:
                first = next((i for i, (a, b) in enumerate(zip(batches, reference)) if a != b),
                             min(len(batches), len(reference)))
                mine = batches[first] if first < len(batches) else None
                theirs = reference[first] if first < len(reference) else None
                report.add("replica_divergence",
                           f"{topic}-{p} below high watermark {hw}: node {node} has {mine}, "
                           f"node {reference_node} has {theirs}")


def _check_liveness(finals: dict[TP, FinalRead], healed_at: float | None, bound_s: float,
                    report: Report) -> None:
    for (topic, p), f in sorted(finals.items()):
        if not f.complete:
            report.add("liveness", f"{topic}-{p}: the final read did not reach the high "
                                   f"watermark")
        elif healed_at is not None and f.end - healed_at > bound_s:
            report.add("liveness", f"{topic}-{p}: the final read finished "
                                   f"{f.end - healed_at:.1f} s after the heal (bound "
                                   f"{bound_s:.0f} s)")


def _check_admin(history: list[Op], report: Report) -> None:
    for violation in admin_violations(history):
        report.add("admin_lost", violation)


def admin_violations(history: list[Op]) -> list[str]:
    """What the last `AdminState` lacks of the acknowledged `Admin` operations (none without an
    `AdminState`). The workload also uses it to know when the state has settled."""
    out: list[str] = []
    states = [op for op in history if isinstance(op, AdminState)]
    if not states:
        return out
    state = states[-1]
    existing = set(state.topics)
    by_topic: dict[str, list[Admin]] = defaultdict(list)
    for op in history:
        if isinstance(op, Admin):
            by_topic[op.topic].append(op)
    for topic, ops in sorted(by_topic.items()):
        ops.sort(key=lambda o: o.start)
        created = any(o.action == "create" and o.outcome == "ok" for o in ops)
        deleted = any(o.action == "delete" and o.outcome == "ok" for o in ops)
        delete_tried = any(o.action == "delete" for o in ops)
        if created and not delete_tried and topic not in existing:
            out.append(f"topic {topic} created (acknowledged) but missing after the heal")
        if deleted and topic in existing:
            out.append(f"topic {topic} deleted (acknowledged) but still there after the "
                       f"heal")
        if topic not in existing:
            continue
        for key in sorted({o.key for o in ops if o.action == "config" and o.key}):
            changes = [o for o in ops if o.action == "config" and o.key == key]
            acked = [o for o in changes if o.outcome == "ok"]
            if not acked:
                continue
            last = max(acked, key=lambda o: o.end)
            # The last acknowledged value, or one an unknown-outcome change may have set later.
            allowed = {last.value} | {o.value for o in changes
                                      if o.outcome != "ok" and o.end > last.start}
            seen = state.configs.get(topic, {}).get(key)
            if seen not in allowed:
                out.append(f"topic {topic} {key}={seen!r} after the heal, but {last.value!r} "
                           f"was acknowledged at t={last.end:.3f}")
    return out
