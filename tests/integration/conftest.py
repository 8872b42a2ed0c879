"""Fixtures for the real-client integration tests.

Every test gets its own rafka process (see broker_proc.Broker). After each test the broker log must
not contain `panicked`; on failure the log is attached to the test report.

Environment: see broker_proc.py (RAFKA_BIN, RAFKA_START_TIMEOUT) and RAFKA_KEEP_DATA (keep the
data dirs and logs of failed tests; the path is printed).
"""
from __future__ import annotations

import os
import re
import time

import pytest

from broker_proc import ALL_BROKERS, Broker

# ---- pytest plumbing ---------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    # Attach the broker logs to the failure report (shown under the traceback).
    if rep.failed:
        for b in getattr(item, "_rafka_brokers", []):
            rep.sections.append((f"broker log {b.bootstrap} ({b.log_path})", b.log_tail(300)))


def pytest_sessionfinish(session, exitstatus):
    # Safety net: nothing outlives the session.
    for b in list(ALL_BROKERS):
        b.cleanup()


@pytest.fixture
def make_broker(request):
    """Factory: make_broker(overrides=None, start=True) -> Broker. All are cleaned up after the
    test, and each one's log is checked for panics."""
    brokers: list[Broker] = []
    request.node._rafka_brokers = brokers

    def factory(overrides: dict | None = None, start: bool = True, **kw) -> Broker:
        b = Broker(overrides, **kw)
        brokers.append(b)
        if start:
            b.start()
        return b

    yield factory

    failed = any(getattr(request.node, f"rep_{w}", None) is not None
                 and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    keep = failed and bool(os.environ.get("RAFKA_KEEP_DATA"))
    problems = []
    for b in brokers:
        # Every test ends with a clean shutdown (SIGTERM), so shutdown is exercised everywhere.
        if b.alive():
            try:
                b.stop(timeout=30)
            except AssertionError as e:
                problems.append(f"{b.bootstrap}: {e}")
        b.kill9()
        # Read the log before the data dir goes away.
        panics = b.panic_lines()
        if panics:
            problems.append(f"{b.bootstrap} panicked:\n" + "\n".join(panics)
                            + "\n--- log tail ---\n" + b.log_tail(100))
        b.cleanup(keep=keep)
        if keep:
            print(f"kept broker dir {b.root}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def broker(request, make_broker) -> Broker:
    """A fresh single-node broker. Extra config via
    @pytest.mark.broker_config({"message.max.bytes": 2097152})."""
    marker = request.node.get_closest_marker("broker_config")
    overrides = {}
    if marker:
        for a in marker.args:
            overrides.update(a)
        overrides.update(marker.kwargs)
    return make_broker(overrides)


@pytest.fixture
def unique_topic(request):
    """A topic name unique to this test (valid Kafka characters only)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:120]
    return f"{base}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"
