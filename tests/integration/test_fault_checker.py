"""The fault suite's history checker (tests/fault/checker.py) on synthetic histories: a clean
history gives no anomaly, and each kind of anomaly is found when, and only when, it is there."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fault"))

from checker import (KINDS, Admin, AdminState, Assign, Commit, FinalRead,  # noqa: E402
                     ListOffsets, Poll, ReplicaState, Send, Txn, check, from_json, to_json)

T = "t"


def acked(value: str, offset: int, t: float = 1.0, txn: str | None = None,
          process: str = "p1") -> Send:
    return Send(process, T, 0, value, t, t + 0.01, "ok", offset, txn)


def final(records: list[tuple[int, str]], complete: bool = True, end: float = 100.0) -> FinalRead:
    return FinalRead(T, 0, records, end - 1, end, complete)


def clean_history() -> list:
    """Three acknowledged sends, one failed and one unknown, a committed and an aborted
    transaction, two consumers (one read_committed), ListOffsets, replicas that agree."""
    h = [
        acked("a", 0, 1.0), acked("b", 1, 1.1), acked("c", 2, 1.2),
        Send("p1", T, 0, "failed", 1.3, 1.4, "fail"),
        Send("p1", T, 0, "maybe", 1.5, 9.5, "info"),
        Txn("tx", "tx-1", 2.0, 2.5, 2.6, "commit"),
        acked("x1", 4, 2.1, txn="tx-1", process="tx"),
        acked("x2", 5, 2.2, txn="tx-1", process="tx"),
        Txn("tx", "tx-2", 3.0, 3.5, 3.6, "abort"),
        acked("y1", 7, 3.1, txn="tx-2", process="tx"),
        Assign("c1", T, 0, 0, 0.5),
        Poll("c1", T, 0, [(0, "a"), (1, "b")], 1.5),
        Poll("c1", T, 0, [(2, "c"), (3, "maybe")], 2.0),
        Poll("c1", T, 0, [(4, "x1"), (5, "x2"), (7, "y1")], 4.0),
        Assign("c2", T, 0, 0, 0.5),
        # read_committed: skips the aborted y1 (offset 7) and the markers (6, 8) legitimately.
        Poll("c2", T, 0, [(0, "a"), (1, "b"), (2, "c"), (3, "maybe")], 2.0, "read_committed"),
        Poll("c2", T, 0, [(4, "x1"), (5, "x2")], 2.7, "read_committed"),
        ListOffsets("lo", T, 0, 3, 1.0, 1.3),
        ListOffsets("lo", T, 0, 4, 2.0, 2.1),
        ListOffsets("lo2", T, 0, 3, 2.05, 2.2),  # overlaps the one that saw 4: allowed
        final([(0, "a"), (1, "b"), (2, "c"), (3, "maybe"), (4, "x1"), (5, "x2"), (7, "y1")]),
        ReplicaState(1, T, 0, 9, [(0, 2, 0, 11), (3, 5, 0, 12), (6, 8, 1, 13)]),
        ReplicaState(2, T, 0, 9, [(0, 2, 0, 11), (3, 5, 0, 12), (6, 8, 1, 13)]),
        # Caught up, without having learned the newest high watermark yet.
        ReplicaState(3, T, 0, 6, [(0, 2, 0, 11), (3, 5, 0, 12), (6, 8, 1, 13)]),
    ]
    return h


def only(report, kind: str, n: int = 1) -> None:
    assert report.counts[kind] == n, (kind, report.counts, report.examples)
    others = {k: c for k, c in report.counts.items() if k != kind and c}
    assert not others, (others, report.examples)


def test_a_clean_history_has_no_anomaly():
    r = check(clean_history(), healed_at=95.0, liveness_bound_s=30)
    assert r.ok, (r.counts, r.examples)
    assert r.summary() == "no anomalies"
    assert r.ops["send"] == 8 and r.ops["poll"] == 5 and r.ops["txn"] == 2
    assert set(r.counts) == set(KINDS)


def test_lost_acknowledged_write():
    h = clean_history()
    h[-4] = final([(0, "a"), (2, "c"), (3, "maybe"), (4, "x1"), (5, "x2"), (7, "y1")])
    only(check(h), "lost")
    # A lost write of a committed transaction counts; an unknown or failed send does not.
    h = clean_history()
    h[-4] = final([(0, "a"), (1, "b"), (2, "c"), (5, "x2"), (7, "y1")])
    r = check(h)
    assert r.counts["lost"] == 1 and "x1" in r.examples["lost"][0], r.examples


def test_duplicate_value():
    h = clean_history()
    h[-4] = final([(0, "a"), (1, "b"), (2, "c"), (3, "maybe"), (4, "x1"), (5, "x2"),
                   (7, "y1"), (9, "c")])
    only(check(h), "duplicate")


def test_two_values_at_one_offset():
    h = clean_history()
    h.append(Poll("c3", T, 0, [(1, "zz")], 5.0))
    only(check(h), "inconsistent_offset")
    # An acknowledgement at an offset that holds another value in the log: both kinds, since
    # the value is then also at two offsets.
    h = clean_history()
    h[0] = acked("a", 1)
    r = check(h)
    assert r.counts["inconsistent_offset"] == 1 and r.counts["duplicate"] == 1, r.counts


def test_consumer_position_backwards():
    h = clean_history()
    h.insert(13, Poll("c1", T, 0, [(1, "b")], 3.0))
    only(check(h), "position_backwards")
    # After a new assignment (a rebalance back to the committed offset) re-reading is fine.
    h = clean_history()
    h.insert(13, Assign("c1", T, 0, 1, 2.9))
    h.insert(14, Poll("c1", T, 0, [(1, "b"), (2, "c"), (3, "maybe")], 3.0))
    assert check(h).ok


def test_consumer_position_skip():
    h = clean_history()
    h[12] = Poll("c1", T, 0, [(3, "maybe")], 2.0)  # jumps over offset 2
    only(check(h), "position_skip")
    # read_committed jumping over a committed record is a skip too.
    h = clean_history()
    h[16] = Poll("c2", T, 0, [(5, "x2")], 2.7, "read_committed")
    only(check(h), "position_skip")


def test_read_committed_sees_an_aborted_record():
    h = clean_history()
    h[16] = Poll("c2", T, 0, [(4, "x1"), (5, "x2"), (7, "y1")], 4.0, "read_committed")
    only(check(h), "aborted_read")


def test_read_committed_sees_a_record_before_its_commit():
    h = clean_history()
    h[16] = Poll("c2", T, 0, [(4, "x1"), (5, "x2")], 2.3, "read_committed")
    only(check(h), "uncommitted_read", 2)  # x1 and x2


def test_list_offsets_backwards():
    h = clean_history()
    h.append(ListOffsets("lo2", T, 0, 3, 2.5, 2.6))  # starts after the one that saw 4 ended
    only(check(h), "list_offsets_backwards")


def test_replicas_disagree_below_the_high_watermark():
    h = clean_history()
    h[-2] = ReplicaState(2, T, 0, 9, [(0, 2, 0, 11), (3, 5, 0, 99), (6, 8, 1, 13)])
    only(check(h), "replica_divergence")
    # Above the smallest high watermark they may differ (a follower still catching up).
    h = clean_history()
    h[-2] = ReplicaState(2, T, 0, 9, [(0, 2, 0, 11), (3, 5, 0, 12), (6, 8, 2, 77)])
    assert check(h).ok


def test_a_replica_that_stopped_replicating():
    h = clean_history()
    h[-1] = ReplicaState(3, T, 0, 6, [(0, 2, 0, 11), (3, 5, 0, 12)])
    only(check(h), "replica_behind")
    # A log that reaches the highest high watermark is caught up.
    h = clean_history()
    h[-1] = ReplicaState(3, T, 0, 9, [(0, 2, 0, 11), (3, 5, 0, 12), (6, 8, 1, 13)])
    assert check(h).ok


def test_liveness():
    h = clean_history()
    h[-4] = final(h[-4].records, complete=False)
    only(check(h), "liveness")
    r = check(clean_history(), healed_at=10.0, liveness_bound_s=30)
    only(r, "liveness")
    h = [x for x in clean_history() if not isinstance(x, FinalRead)]
    only(check(h), "liveness")


G = "g"


def group_history(resume_at: int, commits: list[Commit] | None = None) -> list:
    """The clean history plus a group: m1 reads 0-1 and commits 2; the partition moves to m2
    (at t=3.0), which resumes at `resume_at`."""
    if commits is None:
        commits = [Commit("m1", G, T, 0, 2, 2.0, 2.1, "ok")]
    records = {0: "a", 1: "b", 2: "c", 3: "maybe"}
    return clean_history() + [
        Assign("m1", T, 0, -1, 0.5, G),
        Poll("m1", T, 0, [(0, "a"), (1, "b")], 1.9),
        *commits,
        Assign("m2", T, 0, -1, 3.0, G),
        Poll("m2", T, 0, [(o, records[o]) for o in range(resume_at, 4)], 3.5),
    ]


def test_group_member_resumes_at_the_committed_offset():
    assert check(group_history(2)).ok
    # Below an offset the group had committed before the assignment: committed records again.
    only(check(group_history(1)), "position_backwards")
    # Beyond anything the group committed: record 2 was never processed.
    only(check(group_history(3)), "position_skip")
    # A commit of 3 that timed out (outcome unknown) before m2 read may have been written.
    timed_out = [Commit("m1", G, T, 0, 2, 2.0, 2.1, "ok"), Commit("m1", G, T, 0, 3, 2.2, 2.9,
                                                                   "info")]
    assert check(group_history(3, timed_out)).ok
    # No commit at all: the group starts at the log start (auto.offset.reset=earliest).
    h = clean_history() + [Assign("m2", T, 0, -1, 3.0, G), Poll("m2", T, 0, [(1, "b")], 3.5)]
    only(check(h), "position_skip")


def admin_history(topics: list[str], retention: str = "2") -> list:
    """The clean history plus admin operations: x created and configured twice, y created and
    deleted, z's creation of unknown outcome; then the state after the heal."""
    return clean_history() + [
        Admin("admin", "create", "x", 1.0, 1.1, "ok"),
        Admin("admin", "config", "x", 1.2, 1.3, "ok", "retention.ms", "1"),
        Admin("admin", "config", "x", 1.4, 1.5, "ok", "retention.ms", "2"),
        Admin("admin", "create", "y", 2.0, 2.1, "ok"),
        Admin("admin", "delete", "y", 2.2, 2.3, "ok"),
        Admin("admin", "create", "z", 3.0, 9.0, "info"),
        AdminState(topics, {"x": {"retention.ms": retention}}, 99.0),
    ]


def test_acknowledged_admin_operations_hold_after_the_heal():
    assert check(admin_history([T, "x"])).ok
    assert check(admin_history([T, "x", "z"])).ok
    only(check(admin_history([T])), "admin_lost")  # x's creation lost
    only(check(admin_history([T, "x", "y"])), "admin_lost")  # y's deletion lost
    only(check(admin_history([T, "x"], retention="1")), "admin_lost")  # the last change lost
    # A later change of unknown outcome may have won.
    h = admin_history([T, "x"], retention="3")
    h.insert(-1, Admin("admin", "config", "x", 1.6, 5.0, "info", "retention.ms", "3"))
    assert check(h).ok


def test_histories_round_trip_through_json():
    h = clean_history() + group_history(2)[len(clean_history()):] + \
        admin_history([T, "x"])[len(clean_history()):]
    back = from_json(json.loads(json.dumps(to_json(h))))
    assert back == h
