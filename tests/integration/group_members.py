"""Consumer-group members as subprocesses (group_consumer.py) and a fixture that reaps them.

A MemberProc collects the member's JSON-lines events in a reader thread; tests wait on them with
wait_for() (polling with a deadline) and inspect them after the fact. Processes are started with
this interpreter (the venv's python when pytest runs from tests/.venv).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import GROUP_HEARTBEAT_MS, GROUP_SESSION_TIMEOUT_MS, wait_until

SCRIPT = Path(__file__).resolve().parent / "group_consumer.py"


class MemberProc:
    def __init__(self, broker, client: str, group: str, topics: list[str], name: str, **cfg):
        self.name = name
        self.cfg = {
            "client": client, "bootstrap": broker.bootstrap, "group": group, "topics": topics,
            "name": name, "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
            "heartbeat_ms": GROUP_HEARTBEAT_MS, **cfg,
        }
        self.events: list[dict] = []
        self.bad_lines: list[str] = []
        self._lock = threading.Lock()
        fd, path = tempfile.mkstemp(prefix=f"member-{name}-", suffix=".stderr")
        os.close(fd)
        self.stderr_path = Path(path)
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self.killed_at: float | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> "MemberProc":
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), json.dumps(self.cfg)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                self.bad_lines.append(line)
                continue
            with self._lock:
                self.events.append(ev)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> float:
        """SIGKILL: no LeaveGroup, no final commit. Returns the kill time (time.time())."""
        assert self.alive(), f"{self.name} is not running"
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)
        return self.killed_at

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: the member commits, closes its consumer (LeaveGroup unless static), exits."""
        if self.proc is None:
            return 0
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"member {self.name} did not exit within {timeout}s of SIGTERM\n"
                                 + self.stderr_tail())
        if self._reader is not None:
            self._reader.join(10)
        return rc

    def cleanup(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            if self._reader is not None:
                self._reader.join(5)
            self.proc.stdout.close()
        self.stderr_path.unlink(missing_ok=True)

    # ---- events ---------------------------------------------------------------------------
    def snapshot(self, ev: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.events if ev is None or e["ev"] == ev]

    def owned(self) -> set[tuple[str, int]]:
        """The partitions the member owns after its last assign/revoke/lost callback."""
        for e in reversed(self.snapshot()):
            if e["ev"] in ("assigned", "revoked", "lost"):
                return {tuple(x) for x in e["owned"]}
        return set()

    def last_assignment(self) -> dict | None:
        a = self.snapshot("assigned")
        return a[-1] if a else None

    def consumed(self) -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for e in self.snapshot("msg")]

    def wait_for(self, cond, timeout: float = 30, what: str = "condition"):
        def check():
            if not self.alive() and self.proc is not None and self.proc.poll() is not None:
                # One last look: the process may have printed what we wait for and exited.
                v = cond(self)
                if v:
                    return v
                raise AssertionError(f"member {self.name} exited (rc={self.proc.returncode})\n"
                                     + self.stderr_tail())
            return cond(self)
        return wait_until(check, timeout, what=f"{self.name}: {what}")

    def stderr_tail(self, n: int = 40) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return f"--- {self.name} stderr ---\n" + "\n".join(lines[-n:])

    def __repr__(self) -> str:
        return f"MemberProc({self.name}, pid={self.proc.pid if self.proc else None})"


@pytest.fixture
def member_procs(request):
    """Factory: member_procs(broker, client, group, topics, name, **cfg) -> started MemberProc.
    Every process still running at the end of the test is killed; stderr of all members is
    attached to a failure report."""
    procs: list[MemberProc] = []

    def factory(broker, client, group, topics, name, **cfg) -> MemberProc:
        m = MemberProc(broker, client, group, topics, name, **cfg)
        procs.append(m)
        return m.start()

    yield factory

    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for m in procs:
            if m.alive():  # stacks of all its threads to its stderr (faulthandler)
                m.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)  # let faulthandler write; diagnostics only
        for m in procs:
            print(m.stderr_tail(150))
            print(f"--- {m.name} events (without records and commits) ---")
            for e in [e for e in m.snapshot()
                      if e["ev"] not in ("msg", "committing", "committed")][-30:]:
                print(json.dumps(e))
    for m in procs:
        m.cleanup()
