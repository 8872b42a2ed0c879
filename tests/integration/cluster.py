"""A rafka cluster of processes on loopback, for tests and benchmarks (no pytest dependency).

`Cluster(combined=3)` is three nodes with `process.roles=broker,controller`;
`Cluster(controllers=3, brokers=2)` is three controller-only nodes (ids 1-3) and two broker-only
nodes (ids 4, 5). Every node gets free loopback ports (a PLAINTEXT client listener on brokers, a
CONTROLLER listener on controllers), its own data dir under one temp root, the static voter list
of all controllers and one `CLUSTER_ID`, all through Kafka's own config keys.

All processes are launched before any is waited for: a node can only finish starting once a
quorum of controllers is up (readiness is the `Kafka Server started` line, an event, never a
sleep). Nodes are `broker_proc.Broker`s, so `stop()` (SIGTERM), `kill9()`, `pause()`/`resume()`
(SIGSTOP/SIGCONT) and `start()` work per node, keeping ports and data.

Who leads the metadata quorum is read from the nodes' own logs: every node logs
`Completed transition to Leader(epoch=N)` when it becomes leader, which also lets a test check
that no epoch ever had two leaders.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

from broker_proc import START_TIMEOUT, Broker, free_port

LEADER_LINE = re.compile(r"Completed transition to Leader\(epoch=(\d+)\)")


def new_cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class ClusterNode(Broker):
    """One node of a `Cluster`, configured with Kafka's KRaft keys."""

    def __init__(self, cluster: "Cluster", node_id: int, roles: str):
        super().__init__(node_id=node_id, name=f"rafka-node{node_id}", tmp_root=str(cluster.root))
        self.cluster = cluster
        self.roles = roles
        self.is_broker = "broker" in roles
        self.is_controller = "controller" in roles
        self.controller_port = free_port() if self.is_controller else None
        self.extra_env["CLUSTER_ID"] = cluster.cluster_id

    @property
    def controller_address(self) -> str:
        assert self.controller_port is not None, f"node {self.node_id} is not a controller"
        return f"{self.host}:{self.controller_port}"

    def overrides(self) -> dict:
        listeners = []
        o = {
            "process.roles": self.roles,
            "node.id": str(self.node_id),
            "log.dirs": str(self.data_dir),
            "controller.quorum.voters": self.cluster.voters_text(),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
        if self.is_broker:
            listeners.append(f"PLAINTEXT://{self.host}:{self.port}")
            o["advertised.listeners"] = f"PLAINTEXT://{self.host}:{self.port}"
            o["inter.broker.listener.name"] = "PLAINTEXT"
        if self.is_controller:
            listeners.append(f"CONTROLLER://{self.host}:{self.controller_port}")
        o["listeners"] = ",".join(listeners)
        o.update(self.cluster.common)
        o.update(self.extra)
        return o

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def leader_epochs(self) -> list[int]:
        """The epochs this node has led, from its log (all its starts)."""
        return [int(m.group(1)) for m in LEADER_LINE.finditer(self.log_text())]


class Cluster:
    # What each node is (the fault suite's clusters put nodes in network namespaces).
    node_class = ClusterNode

    def __init__(self, combined: int = 0, controllers: int = 0, brokers: int = 0,
                 overrides: dict | None = None, cluster_id: str | None = None):
        assert (combined > 0) != (controllers > 0), "combined nodes or separate controllers"
        self.root = Path(tempfile.mkdtemp(prefix="rafka-cluster-"))
        self.cluster_id = cluster_id or new_cluster_id()
        # With a quorum configured the coordinators' topics default to Kafka's three replicas
        # (two in sync for transactions); a cluster of fewer brokers sets them as a Kafka user
        # would have to.
        n_brokers = combined or brokers
        internal = {} if n_brokers >= 3 else {
            "offsets.topic.replication.factor": n_brokers,
            "transaction.state.log.replication.factor": n_brokers,
            "transaction.state.log.min.isr": min(2, n_brokers),
        }
        self.common = {k: str(v) for k, v in {**internal, **(overrides or {})}.items()}
        self.nodes: dict[int, ClusterNode] = {}
        if combined:
            for i in range(1, combined + 1):
                self.nodes[i] = self.node_class(self, i, "broker,controller")
        else:
            for i in range(1, controllers + 1):
                self.nodes[i] = self.node_class(self, i, "controller")
            for i in range(controllers + 1, controllers + brokers + 1):
                self.nodes[i] = self.node_class(self, i, "broker")

    # ---- shape ----------------------------------------------------------------------------
    def voters_text(self) -> str:
        return ",".join(f"{n.node_id}@{n.controller_address}"
                        for n in self.nodes.values() if n.is_controller)

    @property
    def controllers(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.is_controller]

    @property
    def brokers(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.is_broker]

    def bootstrap(self, exclude: set[int] | None = None) -> str:
        return ",".join(n.bootstrap for n in self.brokers
                        if n.alive() and n.node_id not in (exclude or set()))

    def controller_bootstrap(self) -> str:
        return ",".join(n.controller_address for n in self.controllers)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> "Cluster":
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_ready(timeout)
        return self

    def restart_all(self, kill: bool = True, timeout: float = START_TIMEOUT) -> None:
        if kill:
            for n in self.nodes.values():
                n.kill9()
        else:
            self.stop_all()
        self.start(timeout)

    def stop_all(self, timeout: float = 30) -> None:
        """SIGTERM to every node at once, so each broker's controlled shutdown still finds a
        quorum of controllers (stopping them one by one leaves the last ones without)."""
        alive = [n for n in self.nodes.values() if n.alive()]
        for n in alive:
            assert n.proc is not None
            try:
                # A paused node ignores SIGTERM until it runs again.
                os.kill(n.proc.pid, signal.SIGCONT)
                n.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for n in alive:
            n.stop(timeout)

    def cleanup(self, keep: bool = False) -> None:
        try:
            self.stop_all()
        except AssertionError:
            pass
        for n in self.nodes.values():
            n.cleanup(keep=True)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- the quorum, from the nodes' logs -------------------------------------------------
    def leaders_by_epoch(self) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for n in self.controllers:
            for e in n.leader_epochs():
                out.setdefault(e, set()).add(n.node_id)
        return out

    def leader(self) -> tuple[int, int] | None:
        """(node id, epoch) of the highest epoch any live controller says it leads."""
        best = None
        for n in self.controllers:
            if not n.alive():
                continue
            for e in n.leader_epochs():
                if best is None or e > best[1]:
                    best = (n.node_id, e)
        return best

    def wait_for_leader(self, timeout: float = 30, newer_than: int = 0,
                        not_on: set[int] | None = None) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while True:
            l = self.leader()
            if l is not None and l[1] > newer_than and l[0] not in (not_on or set()):
                return l
            if time.monotonic() > deadline:
                raise AssertionError(f"no leader newer than epoch {newer_than} within {timeout}s; "
                                     f"epochs seen: {self.leaders_by_epoch()}")
            time.sleep(0.05)

    def assert_one_leader_per_epoch(self) -> None:
        twice = {e: ids for e, ids in self.leaders_by_epoch().items() if len(ids) > 1}
        assert not twice, f"epochs with more than one leader: {twice}"

    def panic_lines(self) -> list[str]:
        return [f"node {n.node_id}: {l}" for n in self.nodes.values() for l in n.panic_lines()]
