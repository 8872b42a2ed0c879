"""A rafka process for tests and benchmarks (no pytest dependency).

Each Broker gets a free loopback port and its own data directory. The broker's stdout/stderr is
copied to a log file by a reader thread, which also signals readiness when the
`Kafka Server started` line appears (so start-up is an event, not a sleep).

Environment:
  RAFKA_BIN            broker binary (default: <repo>/target/release/rafka). A `.py` path is run
                       with this interpreter (see tests/tools/mock_broker.py).
  RAFKA_START_TIMEOUT  seconds to wait for `Kafka Server started` (default 60).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.path.abspath(os.environ.get("RAFKA_BIN", str(REPO / "target" / "release" / "rafka")))
START_TIMEOUT = float(os.environ.get("RAFKA_START_TIMEOUT", "60"))
STARTED_LINE = "Kafka Server started"
# Lines with this marker in the broker log fail the test that produced them.
PANIC_MARKER = "panicked"

ALL_BROKERS: "set[Broker]" = set()


# Every port free_port() handed out in this process: the kernel may offer a port again once the
# probe socket is closed, before whoever asked for it has bound it (a cluster picks all its
# nodes' ports before any node starts), so a port is never handed out twice.
_ISSUED_PORTS: set[int] = set()


def free_port() -> int:
    """A port that was free a moment ago and that no earlier call returned. Binding to 0 and
    closing leaves a tiny race with other processes, which is acceptable on a test machine; the
    broker must use SO_REUSEADDR so restarts get the same port."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def is_mock() -> bool:
    return BIN.endswith(".py")


class BrokerStartError(RuntimeError):
    pass


class Broker:
    """One rafka process; data dir and port survive restarts."""

    def __init__(self, overrides: dict | None = None, node_id: int = 1, name: str = "rafka",
                 tmp_root: str | None = None):
        self.name = name
        self.node_id = node_id
        self.port = free_port()
        self.host = "127.0.0.1"
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-test-", dir=tmp_root))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.log_path = self.root / "broker.log"
        self.extra = {k: str(v) for k, v in (overrides or {}).items()}
        # Extra environment variables and command-line arguments (before the overrides), for
        # tests of the config sources.
        self.extra_env: dict[str, str] = {}
        self.extra_args: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_returncode: int | None = None
        self._reader: threading.Thread | None = None
        self._started = threading.Event()
        self._eof = threading.Event()
        ALL_BROKERS.add(self)

    # ---- addressing -----------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def overrides(self) -> dict:
        o = {
            "listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "log.dirs": str(self.data_dir),
            "node.id": str(self.node_id),
        }
        o.update(self.extra)
        return o

    def command(self) -> list[str]:
        cmd = [sys.executable, BIN] if is_mock() else [BIN]
        cmd += self.extra_args
        for k, v in self.overrides().items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> "Broker":
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> "Broker":
        """Starts the process without waiting for it to be ready (cluster nodes must all be
        running before any of them can finish starting)."""
        assert not self.alive(), "broker already running"
        if not is_mock() and not os.access(BIN, os.X_OK):
            raise BrokerStartError(f"broker binary {BIN} missing; run `cargo build --release -p rafka`")
        self.starts += 1
        self._started.clear()
        self._eof.clear()
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"===== start #{self.starts}: {' '.join(self.command())}\n")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            # Own process group: a Ctrl-C on pytest must not race our own shutdown handling.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> "Broker":
        """Waits for the `Kafka Server started` line of the current start."""
        assert self.proc is not None, "broker not launched"
        deadline = time.monotonic() + timeout
        while not self._started.is_set():
            if self._eof.is_set() or self.proc.poll() is not None:
                self._reader.join(5)
                raise BrokerStartError(
                    f"broker exited during start-up (rc={self.proc.wait()}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise BrokerStartError(
                    f"no '{STARTED_LINE}' line within {timeout}s:\n{self.log_tail()}")
            self._started.wait(0.05)
        return self

    def _pump(self, proc: subprocess.Popen) -> None:
        # Copies the broker's output to the log file line by line and flags readiness.
        assert proc.stdout is not None
        with open(self.log_path, "ab") as f:
            for line in proc.stdout:
                f.write(line)
                f.flush()
                if STARTED_LINE.encode() in line:
                    self._started.set()
        self._eof.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """Clean shutdown with SIGTERM. Fails if the broker needs longer than `timeout` or was
        terminated by the signal instead of handling it."""
        if not self.alive():
            return self._reap()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"broker did not shut down within {timeout}s of SIGTERM")
        rc = self._reap()
        # A negative return code means the default signal action killed it: no clean shutdown.
        assert rc >= 0, f"broker did not handle SIGTERM (rc={rc})"
        return rc

    def kill9(self) -> int:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        return self._reap()

    def restart(self, clean: bool = True, timeout: float = START_TIMEOUT) -> "Broker":
        if clean:
            self.stop()
        else:
            self.kill9()
        return self.start(timeout)

    def _reap(self) -> int:
        if self.proc is None:
            return self.last_returncode if self.last_returncode is not None else 0
        rc = self.proc.wait()
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.last_returncode = rc
        self.proc = None
        return rc

    def cleanup(self, keep: bool = False) -> None:
        try:
            if self.alive():
                try:
                    self.stop(timeout=15)
                except AssertionError:
                    pass
            self.kill9()
        finally:
            ALL_BROKERS.discard(self)
            if not keep:
                shutil.rmtree(self.root, ignore_errors=True)

    # ---- inspection -----------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def panic_lines(self) -> list[str]:
        return [l for l in self.log_text().splitlines() if PANIC_MARKER in l]

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, dir={self.data_dir})"
