"""A short seeded run of every nemesis set of the fault suite (issue 16; tests/fault/run.py):
three combined nodes in network namespaces under the recorded workload while the nemesis kills,
pauses, partitions, or all of them with leader chasing; the checker must find no anomaly of any
kind. Where namespaces cannot be made, the kill and pause runs go on loopback and the others are
skipped. The long runs (docs/reliability.md) use the same program."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from broker_proc import BIN, is_mock

FAULT = Path(__file__).resolve().parents[1] / "fault"
sys.path.insert(0, str(FAULT))

from netcluster import available  # noqa: E402

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker is not a cluster")
NO_NAMESPACES = available()


@pytest.mark.parametrize("nemesis,chase,seed", [
    ("kill", False, 101),
    ("pause", False, 102),
    ("partition", False, 103),
    ("kill,pause,partition,loss", True, 104),
])
def test_short_fault_run_has_no_anomalies(nemesis, chase, seed, tmp_path):
    if NO_NAMESPACES is not None and set(nemesis.split(",")) & {"partition", "loss"}:
        pytest.skip(f"no network namespaces ({NO_NAMESPACES}): partitions need them")
    # Without namespaces, run.py falls back to loopback for kill and pause by itself.
    cmd = [sys.executable, str(FAULT / "run.py"), "--nemesis", nemesis, "--seconds", "15",
           "--seed", str(seed), "--out", str(tmp_path)]
    if chase:
        cmd.append("--chase")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                       env={**os.environ, "RAFKA_BIN": BIN})
    report = "\n".join(line for line in r.stdout.splitlines() if not line.startswith("%"))
    assert r.returncode == 0, report + "\n" + r.stderr[-4000:]
    assert "1 without anomalies, 0 with" in report, report
    # The run did something: acknowledged writes, transactions and faults are in its line.
    row = next(line for line in report.splitlines() if line.startswith("| 1 |"))
    counts = re.search(r"\| (\d+) sends, (\d+) acked, (\d+) transactions .*\| (\d+): ", row)
    assert counts, row
    sends, acked, txns, faults = map(int, counts.groups())
    assert sends > 100 and acked > 100 and txns > 0 and faults > 0, row
