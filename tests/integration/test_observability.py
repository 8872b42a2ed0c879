"""rafka's HTTP listener (issue 18), end to end: a known workload on a broker started with
`http.listener`, then a real Prometheus scraping it (exact counts for records, bytes, lag and
offsets), the status page in a real headless Chromium (no console errors, the rows and the lag
cell, a screenshot kept under tests/integration/artifacts/), OpenMetrics negotiation, /livez and
/readyz (during start-up, when the broker is fenced because its controllers are paused, and
back), and bad HTTP input that must leave both the HTTP and the Kafka side serving.

Harness: observability.py (self-tested by test_observability_harness.py). Tests that need
Prometheus or Chromium skip when the binaries are missing; tests/run.sh installs them.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from broker_proc import free_port, is_mock
from cluster import Cluster
from helpers import (GROUP_BROKER_CONFIG, ck_consume_range, ck_create_topic, ck_group_consumer,
                     ck_poll_until, ck_produce_all, ck_producer)
from observability import (HeadlessChromium, Prometheus, chromium_binary, http_get, parse_metrics,
                           prometheus_binary, wait_until)

pytestmark = pytest.mark.skipif(is_mock(), reason="the mock broker has no HTTP listener")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"   # git-ignored (tests/integration/.gitignore)
DASHBOARD = REPO / "docker" / "grafana" / "rafka-dashboard.json"

# The workload: 3 partitions, 10 records each; the group commits 10, 7 and 5, leaving 0 + 3 + 5.
PARTITIONS = 3
PER_PARTITION = 10
N = PARTITIONS * PER_PARTITION
COMMITS = {0: 10, 1: 7, 2: 5}
LAGS = {p: PER_PARTITION - o for p, o in COMMITS.items()}
K = sum(LAGS.values())
KEY_LEN = 8
VALUE_LEN = 100
PAYLOAD = KEY_LEN + VALUE_LEN


# Requested before obs_broker, so a missing binary skips before any broker starts.
@pytest.fixture
def need_prometheus():
    if prometheus_binary() is None:
        pytest.skip("prometheus binary missing (tests/run.sh installs Debian's `prometheus`)")


@pytest.fixture
def need_chromium():
    if chromium_binary() is None:
        pytest.skip("chromium binary missing (tests/run.sh installs Debian's `chromium`)")
    pytest.importorskip("websocket", reason="websocket-client missing (tests/requirements.txt)")


def http_overrides() -> tuple[dict, str]:
    addr = f"127.0.0.1:{free_port()}"
    return {"http.listener": addr}, addr


@pytest.fixture
def obs_broker(make_broker):
    """A single node with the HTTP listener on a free loopback port: (broker, "host:port")."""
    o, addr = http_overrides()
    b = make_broker({**GROUP_BROKER_CONFIG, **o})
    wait_until(lambda: http_get(f"http://{addr}/livez", timeout=2)[0] == 200, 30, "/livez")
    return b, addr


def metrics(addr: str) -> dict:
    status, headers, body = http_get(f"http://{addr}/metrics")
    assert status == 200, (status, body[:300])
    return parse_metrics(body.decode())


def series(m: dict, name: str, **labels) -> list[tuple[dict, float]]:
    """The samples of `name` whose labels include `labels`."""
    out = []
    for (n, ls), v in m.items():
        d = dict(ls)
        if n == name and all(d.get(k) == str(val) for k, val in labels.items()):
            out.append((d, v))
    return out


def run_workload(broker, topic: str, group: str, addr: str) -> None:
    """N records of known size into `topic` (PER_PARTITION per partition, uncompressed,
    acks=all); group `group` joins, commits COMMITS and leaves."""
    ck_create_topic(broker, topic, PARTITIONS)
    msgs = [(f"k{p}-{i:05d}".encode(), bytes([65 + i % 26]) * VALUE_LEN, p)
            for p in range(PARTITIONS) for i in range(PER_PARTITION)]
    assert all(len(k) == KEY_LEN for k, _, _ in msgs)
    delivered = ck_produce_all(ck_producer(broker, acks="all", **{"compression.type": "none"}),
                               topic, msgs)
    assert sorted((m.partition(), m.offset()) for m in delivered) == \
        [(p, i) for p in range(PARTITIONS) for i in range(PER_PARTITION)]

    assigned: list = []
    c = ck_group_consumer(broker, group)
    try:
        c.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
        ck_poll_until([c], lambda: len(assigned) == PARTITIONS, 30, "the group's assignment")
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in COMMITS.items()],
                 asynchronous=False)
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        assert {tp.partition: tp.offset for tp in got} == COMMITS
        # While the member is in: the group's coordinator reports one member.
        wait_until(lambda: [v for _, v in series(metrics(addr), "kafka_consumergroup_members",
                                                 consumergroup=group)] == [1],
                   15, "kafka_consumergroup_members == 1")
    finally:
        c.close()


# ---- metrics through a real Prometheus ------------------------------------------------------

@pytest.mark.timeout(180)
def test_prometheus_sees_the_workload_exactly(need_prometheus, obs_broker, unique_topic):
    broker, addr = obs_broker
    topic, group = unique_topic, f"g-{unique_topic}"
    prom = Prometheus([addr])
    try:
        run_workload(broker, topic, group, addr)
        done = time.time()
        prom.wait_scraped_after(done, timeout=60)

        T, G = json.dumps(topic), json.dumps(group)  # PromQL string literals

        def one(expr):
            v = prom.value(expr)
            assert v is not None, f"no series for {expr}; targets: {prom.targets_health()}"
            return v

        assert one('up{job="rafka"}') == 1
        # Records and bytes in.
        assert one(f"kafka_server_brokertopicmetrics_messagesin_total{{topic={T}}}") == N
        assert one(f"kafka_server_brokertopicmetrics_totalproducerequests_total{{topic={T}}}") >= 1
        assert one(f"kafka_server_brokertopicmetrics_failedproducerequests_total{{topic={T}}}") == 0
        bytes_in = one(f"kafka_server_brokertopicmetrics_bytesin_total{{topic={T}}}")
        assert bytes_in > N * PAYLOAD
        # The all-topics series: the same names without labels.
        assert one("kafka_server_brokertopicmetrics_messagesin_total{topic=\"\"}") >= N
        # The log stores the batches as received (uncompressed, no recompression).
        assert one(f"sum(kafka_log_log_size{{topic={T}}})") == bytes_in
        ends = {l["partition"]: v for l, v in prom.query(f"kafka_log_log_logendoffset{{topic={T}}}")}
        assert ends == {str(p): PER_PARTITION for p in range(PARTITIONS)}
        starts = prom.query(f"kafka_log_log_logstartoffset{{topic={T}}}")
        assert sorted(v for _, v in starts) == [0] * PARTITIONS
        assert all(v >= 1 for _, v in prom.query(f"kafka_log_log_numlogsegments{{topic={T}}}"))
        # Consumer group lag (high watermark - committed) and committed offsets.
        assert one(f"sum(kafka_consumergroup_lag{{consumergroup={G},topic={T}}})") == K
        lags = {l["partition"]: v for l, v in
                prom.query(f"kafka_consumergroup_lag{{consumergroup={G},topic={T}}}")}
        assert lags == {str(p): lag for p, lag in LAGS.items()}
        offsets = {l["partition"]: v for l, v in
                   prom.query(f"kafka_consumergroup_current_offset{{consumergroup={G},topic={T}}}")}
        assert offsets == {str(p): o for p, o in COMMITS.items()}
        assert one(f"kafka_consumergroup_lag_sum{{consumergroup={G},topic={T}}}") == K
        # Replica manager, controller, requests, connections, quorum, process.
        assert one("kafka_server_replicamanager_partitioncount") >= PARTITIONS
        assert one("kafka_server_replicamanager_leadercount") >= PARTITIONS
        assert one("kafka_server_replicamanager_underreplicatedpartitions") == 0
        assert one("kafka_server_replicamanager_underminisrpartitioncount") == 0
        assert one("kafka_controller_kafkacontroller_activecontrollercount") == 1
        assert one("kafka_controller_kafkacontroller_offlinepartitionscount") == 0
        assert one("kafka_controller_kafkacontroller_globaltopiccount") >= 1
        assert one("kafka_controller_kafkacontroller_globalpartitioncount") >= PARTITIONS
        assert one("kafka_controller_kafkacontroller_activebrokercount") == 1
        assert one("kafka_controller_kafkacontroller_fencedbrokercount") == 0
        replicas = prom.query(f"kafka_cluster_partition_replicascount{{topic={T}}}")
        assert sorted(v for _, v in replicas) == [1] * PARTITIONS
        assert one(f"sum(kafka_cluster_partition_underreplicated{{topic={T}}})") == 0
        assert one('sum(kafka_network_requestmetrics_requests_total{request="Produce"})') >= 1
        assert one('sum(kafka_network_requestmetrics_requests_total{request="Metadata"})') >= 1
        assert one('sum(kafka_network_requestmetrics_totaltimems_count{request="Produce"})') >= 1
        assert one('sum(kafka_network_requestmetrics_totaltimems_bucket{request="Produce",le="+Inf"})') \
            == one('sum(kafka_network_requestmetrics_totaltimems_count{request="Produce"})')
        assert one("sum(kafka_server_socket_server_metrics_connection_creation_total)") >= 1
        assert one("sum(kafka_server_socket_server_metrics_connection_count)") >= 0
        assert one("kafka_server_raft_metrics_high_watermark") >= 1
        assert one("kafka_server_raft_metrics_log_end_offset") >= one("kafka_server_raft_metrics_high_watermark")
        assert one("kafka_server_broker_metadata_metrics_last_applied_record_offset") >= 0
        assert one("kafka_server_kafkaserver_brokerstate") == 3
        assert one("process_resident_memory_bytes") > 0
        assert one("process_virtual_memory_bytes") > 0
        assert one("process_open_fds") > 0
        assert one("process_max_fds") >= one("process_open_fds")
        assert 0 < one("process_start_time_seconds") <= time.time()
        assert one("process_cpu_seconds_total") >= 0

        # The dashboard's single-value panels find their series on a real rafka.
        doc = json.loads(DASHBOARD.read_text())
        empty = []
        for p in doc["panels"]:
            if p.get("type") != "stat":
                continue
            for t in p["targets"]:
                expr = t["expr"].replace('job=~"$job",instance=~"$instance"', 'job="rafka"')
                if not prom.query(expr):
                    empty.append(f"{p['title']}: {expr}")
        assert not empty, "dashboard panels without data:\n" + "\n".join(empty)
    finally:
        prom.stop()


def test_openmetrics_on_request_and_text_format_by_default(obs_broker, unique_topic):
    broker, addr = obs_broker
    ck_create_topic(broker, unique_topic, 1)
    ck_produce_all(ck_producer(broker), unique_topic, [(None, b"x", 0)])
    status, headers, body = http_get(f"http://{addr}/metrics",
                                     {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text"), headers
    text = body.decode()
    assert text.rstrip("\n").endswith("# EOF"), text[-200:]
    m = parse_metrics(text)
    assert series(m, "kafka_server_brokertopicmetrics_messagesin_total", topic=unique_topic)[0][1] == 1

    status, headers, body = http_get(f"http://{addr}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain"), headers
    assert "version=0.0.4" in headers["content-type"], headers
    m = parse_metrics(body.decode())
    assert series(m, "kafka_server_brokertopicmetrics_messagesin_total", topic=unique_topic)[0][1] == 1
    # HEAD: the same headers, no body.
    status, headers, body = http_get(f"http://{addr}/metrics", method="HEAD")
    assert status == 200 and body == b""


# ---- the status page in a real browser ------------------------------------------------------

@pytest.mark.timeout(180)
def test_status_page_in_chromium(need_chromium, obs_broker, unique_topic):
    broker, addr = obs_broker
    topic, group = unique_topic, f"g-{unique_topic}"
    run_workload(broker, topic, group, addr)
    url = f"http://{addr}/"
    status, headers, body = http_get(url)
    assert status == 200 and headers["content-type"].startswith("text/html"), (status, headers)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    js_t, js_g = json.dumps(topic), json.dumps(group)

    def cell(p):
        return (f"(() => {{ const c = [...document.querySelectorAll('td.lag')].find(e => "
                f"e.dataset.group === {js_g} && e.dataset.topic === {js_t} && "
                f"e.dataset.partition === '{p}'); return c ? c.textContent.trim() : null; }})()")

    with HeadlessChromium() as browser:
        browser.open(url)
        assert browser.evaluate(
            f"[...document.querySelectorAll('tr.topic')].some(e => e.dataset.topic === {js_t})"), \
            "no topic row for " + topic
        assert browser.evaluate(
            f"[...document.querySelectorAll('tr.group')].some(e => e.dataset.group === {js_g})"), \
            "no group row for " + group
        assert browser.evaluate(
            "[...document.querySelectorAll('tr.broker')].some(e => e.dataset.node === '1')"), \
            "no broker row for node 1"
        for p, lag in LAGS.items():
            assert browser.evaluate(cell(p)) == str(lag), (p, browser.evaluate(cell(p)))
        # The inline script refreshes the page every 2 s: wait for its first request after the
        # load to finish, then the content is still right and nothing was reported.
        mark = browser.page_mark
        document = browser.wait_event("Network.requestWillBeSent", after=mark)  # the page itself
        req = browser.wait_event(
            "Network.requestWillBeSent",
            lambda p: p["requestId"] != document["requestId"]
            and not p["request"]["url"].endswith("/favicon.ico"), after=mark, timeout=15)
        browser.wait_event("Network.loadingFinished",
                           lambda p: p["requestId"] == req["requestId"], after=mark, timeout=15)
        browser.wait_js(cell(1) + " === " + json.dumps(str(LAGS[1])), timeout=10,
                        what="the lag cell after a refresh")
        browser.screenshot(shot)
        print(f"status page screenshot: {shot}")
        errors = browser.console_errors()
        assert errors == [], errors
        outside = [u for u in browser.requested_urls()
                   if not (u.startswith(f"http://{addr}/") or u.startswith("data:"))]
        assert outside == [], f"the page loads external assets: {outside}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


# ---- health ---------------------------------------------------------------------------------

def test_livez_and_readyz_on_a_single_node(obs_broker):
    _, addr = obs_broker
    status, _, body = http_get(f"http://{addr}/livez")
    assert status == 200 and body.strip() == b"ok", (status, body)
    status, _, body = http_get(f"http://{addr}/readyz")
    assert status == 200, (status, body)
    status, _, body = http_get(f"http://{addr}/livez", method="HEAD")
    assert status == 200 and body == b""


FAST_SESSIONS = {"broker.session.timeout.ms": 3000, "broker.heartbeat.interval.ms": 500}


@pytest.fixture
def http_cluster(request):
    """Three controllers and one broker, not started, each node with an HTTP listener
    (node.http). Cleaned up (and checked for panics) after the test."""
    c = Cluster(controllers=3, brokers=1, overrides=FAST_SESSIONS)
    for n in c.nodes.values():
        o, addr = http_overrides()
        n.extra.update(o)
        n.http = addr
    request.node._rafka_brokers = list(c.nodes.values())
    yield c
    panics = c.panic_lines()
    keep = bool(os.environ.get("RAFKA_KEEP_DATA")) and any(
        getattr(request.node, f"rep_{w}", None) is not None
        and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    if keep:
        print(f"kept the cluster's data and logs in {c.root}")
    c.cleanup(keep=keep)
    assert not panics, "\n".join(panics)


def status_of(addr: str, path: str) -> tuple[int, bytes]:
    status, _, body = http_get(f"http://{addr}{path}", timeout=5)
    return status, body


@pytest.mark.timeout(240)
def test_readyz_during_start_and_while_fenced(http_cluster):
    c = http_cluster
    broker = c.brokers[0]
    # The broker alone: alive (its HTTP listener answers) but not ready, no controller answers.
    broker.launch()
    wait_until(lambda: status_of(broker.http, "/livez")[0] == 200, 30, "the broker's /livez")
    status, body = status_of(broker.http, "/readyz")
    assert status == 503, (status, body)
    assert body.strip() and b"\n" not in body.strip(), f"one-line reason expected: {body!r}"
    assert status_of(broker.http, "/livez")[0] == 200

    # The controllers come up: the broker registers, is unfenced and becomes ready.
    for n in c.controllers:
        n.launch()
    for n in c.nodes.values():
        n.wait_ready()
    wait_until(lambda: status_of(broker.http, "/readyz")[0] == 200, 60, "the broker's /readyz 200")
    c.wait_for_leader()
    for n in c.controllers:
        wait_until(lambda n=n: status_of(n.http, "/readyz")[0] == 200, 30,
                   f"controller {n.node_id}'s /readyz 200")
        assert status_of(n.http, "/livez")[0] == 200

    # Every controller paused: no heartbeat answers, so after broker.session.timeout.ms (3 s)
    # the broker is not ready, though still alive.
    for n in c.controllers:
        n.pause()
    try:
        paused = time.monotonic()
        wait_until(lambda: status_of(broker.http, "/readyz")[0] == 503, 20,
                   "the broker's /readyz 503 with its controllers paused")
        took = time.monotonic() - paused
        assert took >= 2.0, f"not ready after {took:.1f}s: sooner than the 3 s session timeout?"
        status, body = status_of(broker.http, "/readyz")
        assert status == 503 and body.strip() and b"\n" not in body.strip(), (status, body)
        assert status_of(broker.http, "/livez")[0] == 200
    finally:
        for n in c.controllers:
            n.resume()
    # Back: heartbeats answered again (the broker may be fenced and unfenced on the way).
    wait_until(lambda: status_of(broker.http, "/readyz")[0] == 200, 60,
               "the broker's /readyz 200 after the controllers resume")


# ---- bad input ------------------------------------------------------------------------------

def raw_exchange(addr: str, data: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Sends raw bytes; returns (everything the server sent, whether it closed the connection
    within `timeout`). A reset counts as closed; a send cut short by the server closing is fine."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    got = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        s.close()
    return got, closed


def status_line(resp: bytes) -> str:
    return resp.split(b"\r\n", 1)[0].decode("latin-1")


def test_bad_http_input_leaves_the_broker_serving(obs_broker, unique_topic):
    broker, addr = obs_broker
    status, _, _ = http_get(f"http://{addr}/no/such/path")
    assert status == 404
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = http_get(f"http://{addr}/metrics", method=method)
        assert status == 405, (method, status)

    resp, closed = raw_exchange(addr, b"THIS IS NOT HTTP AT ALL\r\n\r\n")
    assert status_line(resp).startswith("HTTP/1.") and " 400" in status_line(resp), resp[:200]
    assert closed, "the connection stays open after a malformed request"

    resp, closed = raw_exchange(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)
                                + b"\r\n\r\n")
    assert resp == b"" or " 400" in status_line(resp), resp[:200]
    assert closed

    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    resp, closed = raw_exchange(addr, big)
    assert resp == b"" or " 431" in status_line(resp), resp[:200]
    assert closed, "the connection stays open after a 64 KiB request head"

    # Still serving: HTTP and Kafka.
    status, _, body = http_get(f"http://{addr}/livez")
    assert status == 200
    ck_create_topic(broker, unique_topic, 1)
    ck_produce_all(ck_producer(broker), unique_topic, [(None, f"v{i}".encode(), 0) for i in range(5)])
    got = ck_consume_range(broker, unique_topic, {0: (0, 5)})
    assert [m.value() for m in got[0]] == [f"v{i}".encode() for i in range(5)]
    m = metrics(addr)
    assert series(m, "kafka_server_brokertopicmetrics_messagesin_total", topic=unique_topic)[0][1] == 5


# ---- a cluster: each node reports its share ---------------------------------------------------

@pytest.mark.timeout(240)
def test_cluster_nodes_report_their_share_and_the_coordinator_reports_lag(request):
    """One controller and three brokers, each with an HTTP listener. A topic whose partitions
    are led by different brokers: the group's coordinator reports the lag of every partition,
    reading the high watermarks of the partitions it does not lead from their leaders; the
    brokers' topic counters add up to the records produced; one active controller."""
    c = Cluster(controllers=1, brokers=3)
    for n in c.nodes.values():
        o, addr = http_overrides()
        n.extra.update(o)
        n.http = addr
    request.node._rafka_brokers = list(c.nodes.values())
    topic, group = "lagged", "lag-group"
    try:
        c.start()
        for n in c.nodes.values():
            wait_until(lambda n=n: http_get(f"http://{n.http}/readyz", timeout=2)[0] == 200, 60,
                       f"node {n.node_id}'s /readyz")
        client = type("Bootstrap", (), {"bootstrap": c.bootstrap()})()
        ck_create_topic(client, topic, PARTITIONS)
        msgs = [(f"k{p}-{i:05d}".encode(), b"v" * VALUE_LEN, p)
                for p in range(PARTITIONS) for i in range(PER_PARTITION)]
        ck_produce_all(ck_producer(client, acks="all"), topic, msgs)
        # Offsets committed by a consumer that assigns its partitions (a group with no members).
        consumer = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group,
                             "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in COMMITS.items()],
                            asynchronous=False)
        finally:
            consumer.close()

        brokers = {b.node_id: b.http for b in c.brokers}
        # Which broker hosts which partition (replication factor 1: the leader).
        hosts = {}
        for node_id, addr in brokers.items():
            for labels, _ in series(metrics(addr), "kafka_log_log_size", topic=topic):
                hosts[int(labels["partition"])] = node_id
        assert sorted(hosts) == list(range(PARTITIONS)), hosts
        assert len(set(hosts.values())) >= 2, f"all partitions on one broker: {hosts}"

        def lag_reports():
            found = {}
            for node_id, addr in brokers.items():
                m = metrics(addr)
                lags = {int(ls["partition"]): v for ls, v in
                        series(m, "kafka_consumergroup_lag", consumergroup=group, topic=topic)}
                if lags:
                    found[node_id] = lags
            return found
        reports = wait_until(lambda: (r := lag_reports()) and
                             any(len(v) == PARTITIONS for v in r.values()) and r,
                             30, "the coordinator's lag for every partition")
        assert len(reports) == 1, f"more than one node reports the group: {reports}"
        coordinator, lags = next(iter(reports.items()))
        assert lags == LAGS, lags
        assert any(h != coordinator for h in hosts.values()), \
            "the coordinator leads every partition: the remote high watermark path went untested"
        m = metrics(brokers[coordinator])
        assert series(m, "kafka_consumergroup_lag_sum", consumergroup=group,
                      topic=topic)[0][1] == K
        offsets = {int(ls["partition"]): v for ls, v in
                   series(m, "kafka_consumergroup_current_offset", consumergroup=group)}
        assert offsets == COMMITS
        status, _, page = http_get(f"http://{brokers[coordinator]}/")
        assert status == 200
        for p, lag in LAGS.items():
            cell = (f'data-group="{group}" data-topic="{topic}" data-partition="{p}">{lag}<')
            assert cell.encode() in page, cell

        # Each broker counts what it appended; together, every record once.
        messages_in = sum(series(metrics(a), "kafka_server_brokertopicmetrics_messagesin_total",
                                 topic=topic)[0][1]
                          for n, a in brokers.items() if n in hosts.values())
        assert messages_in == N
        # One active controller; every node knows it and how far the metadata log is committed.
        everyone = [metrics(n.http) for n in c.nodes.values()]
        active = [series(m, "kafka_controller_kafkacontroller_activecontrollercount")
                  for m in everyone]
        assert sum(s[0][1] for s in active if s) == 1
        controller_id = c.controllers[0].node_id
        for m in everyone:
            assert series(m, "kafka_server_raft_metrics_current_leader")[0][1] == controller_id
        ctrl = metrics(c.controllers[0].http)
        lagging = {int(ls["node_id"]) for ls, _ in series(ctrl, "kafka_server_raft_metrics_node_lag")}
        assert set(brokers) <= lagging, f"the quorum leader reports no lag for {set(brokers) - lagging}"
        assert series(ctrl, "kafka_controller_kafkacontroller_activebrokercount")[0][1] == 3
    finally:
        panics = c.panic_lines()
        c.cleanup()
    assert not panics, "\n".join(panics)
