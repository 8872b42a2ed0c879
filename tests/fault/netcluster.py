"""A rafka cluster whose nodes each live in a network namespace of their own (issue 16), so a
fault run can cut, drop and heal the network between them with iptables.

Layout of one `Network` (`10.213.<n>.0/24`; `<n>` is the first number from the one asked for
whose bridge name is free, so runs on one kernel at once, such as a session's and a CI run's,
or the leftovers of a killed run, never collide):

- a bridge `rfk<n>` in the root namespace holding `10.213.<n>.1`: the clients (this process)
  reach every node through it;
- per node a namespace `rfk<n>-<id>` with `eth0` (a veth whose other end is on the bridge) at
  `10.213.<n>.<10 + id>`, and `lo`;
- an ACCEPT rule for the bridge in the root FORWARD chain (Docker's FORWARD policy is DROP and
  bridged traffic passes through it);
- a `blackhole` route for `10.213.0.0/16` in the root namespace, installed before anything
  else and removed last: while the bridge is up its /24 is more specific; after teardown a
  client still retrying cannot send its connects out through the default route. No packet of
  a run ever leaves the machine.

Partitions are iptables DROP rules in the nodes' namespaces (`cut`, one direction at a time),
random loss a `statistic` match; `heal()` flushes them all. Requires root, iproute2, iptables.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from cluster import Cluster, ClusterNode  # noqa: E402

SUPERNET = "10.213.0.0/16"
# Inside its own namespace a node has every port to itself.
CLIENT_PORT = 9092
CONTROLLER_PORT = 9093


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        # The exit code alone (iproute2 answers 2 for every RTNETLINK error) says nothing.
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def available() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    import os
    import shutil
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} missing"
    probe = "rfkprobe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


class Network:
    """The bridge, the namespaces and the routes of one run."""

    def __init__(self, n: int, node_ids: list[int]):
        assert 0 < n < 255
        self.n = n
        self.bridge = f"rfk{n}"
        self.node_ids = list(node_ids)
        self.up = False

    def address(self, node_id: int) -> str:
        return f"10.213.{self.n}.{10 + node_id}"

    def namespace(self, node_id: int) -> str:
        return f"rfk{self.n}-{node_id}"

    def create(self) -> "Network":
        # The blackhole first, so nothing can leak even if the rest fails half way.
        routes = sh("ip", "route", "show", "type", "blackhole").stdout
        if SUPERNET not in routes:
            sh("ip", "route", "add", "blackhole", SUPERNET)
        self._claim_bridge()
        self.up = True
        sh("ip", "addr", "add", f"10.213.{self.n}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        sh("iptables", "-I", "FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT")
        for i in self.node_ids:
            ns = self.namespace(i)
            veth = f"{self.bridge}v{i}"
            # Owning the bridge means owning `n`: a namespace of that name is a killed run's.
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def _claim_bridge(self) -> None:
        """Creates the bridge of the first free `n` from the one asked for. `ip link add` is
        atomic, so two runs can never both get one `n`."""
        first = self.n
        for k in range(254):
            self.n = 1 + (first - 1 + k) % 254
            self.bridge = f"rfk{self.n}"
            r = sh("ip", "link", "add", self.bridge, "type", "bridge", check=False)
            if r.returncode == 0:
                return
            if "exists" not in r.stderr:
                raise RuntimeError(f"ip link add {self.bridge} type bridge: {r.stderr.strip()}")
        raise RuntimeError("no free 10.213.<n>.0/24 network: every rfk<n> bridge exists")

    def destroy(self, keep_blackhole: bool = False) -> None:
        """Removes the namespaces (their veths go with them), the bridge and the FORWARD rule,
        then the blackhole route, unless `keep_blackhole` or another run's bridge is still up.
        Callers stop every node and client first."""
        if not self.up:
            return
        for i in self.node_ids:
            sh("ip", "netns", "del", self.namespace(i), check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        sh("iptables", "-D", "FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT",
           check=False)
        # Another run's bridge still up (a concurrent run on this kernel) keeps the route.
        others = sh("ip", "-o", "link", "show", "type", "bridge").stdout
        if not keep_blackhole and not re.search(r"^\d+: rfk\d+:", others, re.M):
            sh("ip", "route", "del", "blackhole", SUPERNET, check=False)
        self.up = False

    # ---- faults -------------------------------------------------------------------------
    def _ipt(self, node_id: int, *args: str) -> None:
        sh("ip", "netns", "exec", self.namespace(node_id), "iptables", *args)

    def cut(self, src: int, dst: int) -> None:
        """Packets from `src` no longer reach `dst` (one direction: `dst` drops what comes from
        `src`, so replies to connections `dst` opens are lost too)."""
        self._ipt(dst, "-A", "INPUT", "-s", self.address(src), "-j", "DROP")

    def cut_both(self, a: int, b: int) -> None:
        self.cut(a, b)
        self.cut(b, a)

    def isolate(self, groups: list[set[int]]) -> None:
        """Nodes in different groups cannot talk to each other; clients reach every node."""
        for ga in groups:
            for gb in groups:
                if ga is gb:
                    continue
                for a in ga:
                    for b in gb:
                        self.cut(a, b)

    def loss(self, node_id: int, probability: float) -> None:
        """`node_id` drops each packet from the other nodes with `probability`."""
        for other in self.node_ids:
            if other != node_id:
                self._ipt(node_id, "-A", "INPUT", "-s", self.address(other), "-m", "statistic",
                          "--mode", "random", "--probability", f"{probability:.3f}",
                          "-j", "DROP")

    def heal(self) -> None:
        for i in self.node_ids:
            sh("ip", "netns", "exec", self.namespace(i), "iptables", "-F", "INPUT", check=False)


class NetNode(ClusterNode):
    """A cluster node that runs inside its network namespace at its own address."""

    def __init__(self, cluster: "NetCluster", node_id: int, roles: str):
        super().__init__(cluster, node_id, roles)
        self.network = cluster.network
        self.host = self.network.address(node_id)
        self.port = CLIENT_PORT
        if self.is_controller:
            self.controller_port = CONTROLLER_PORT

    def command(self) -> list[str]:
        # `ip netns exec` execs the broker in place, so the pid is the broker's own: kill -9,
        # SIGSTOP and SIGTERM reach it directly.
        return ["ip", "netns", "exec", self.network.namespace(self.node_id), *super().command()]


class NetCluster(Cluster):
    node_class = NetNode

    def __init__(self, n: int, combined: int = 0, controllers: int = 0, brokers: int = 0,
                 overrides: dict | None = None):
        ids = list(range(1, (combined or controllers + brokers) + 1))
        self.network = Network(n, ids).create()
        try:
            super().__init__(combined=combined, controllers=controllers, brokers=brokers,
                             overrides=overrides)
        except BaseException:
            self.network.destroy()
            raise

    def cleanup(self, keep: bool = False) -> None:
        try:
            super().cleanup(keep)
        finally:
            self.network.destroy()
