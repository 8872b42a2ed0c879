"""Self-test of the observability harness (observability.py) against a stand-in for rafka's HTTP
listener: a tiny http.server with a fixed /metrics and a status page shaped like rafka's (the
data-* attributes of issue 18 and an inline refresh script). Proves that the real Prometheus
scrapes it and query() returns the exact values, that a later scrape is seen after a change,
that the real Chromium loads the page, evaluates JS, writes a screenshot, and reports console
errors when (and only when) the page has them; and that every query of the Grafana dashboard is
PromQL the real Prometheus accepts. No rafka process: fast (a few seconds); skipped when the
prometheus or chromium binaries (or websocket-client) are missing.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from observability import (HeadlessChromium, Prometheus, chromium_binary, http_get, parse_metrics,
                           prometheus_binary)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docker" / "grafana" / "rafka-dashboard.json"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rafka stand-in</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;margin:1em}} td,th{{border:1px solid #999;padding:2px 8px}}</style>
</head><body>
<h1>rafka status (stand-in)</h1>
<div id="content">
<table><tr><th>broker</th></tr><tr class="broker" data-node="1"><td>1</td></tr></table>
<table><tr><th>topic</th><th>partitions</th></tr>
<tr class="topic" data-topic="orders"><td>orders</td><td>3</td></tr></table>
<table><tr><th>group</th><th>topic</th><th>partition</th><th>lag</th></tr>
<tr class="group" data-group="billing"><td>billing</td><td>orders</td><td>0</td>
<td class="lag" data-group="billing" data-topic="orders" data-partition="0">{lag}</td></tr></table>
</div>
<script>
{extra}
setInterval(function () {{
  fetch("/?refresh=1").then(function (r) {{ return r.text(); }}).then(function (t) {{
    var doc = new DOMParser().parseFromString(t, "text/html");
    document.getElementById("content").innerHTML = doc.getElementById("content").innerHTML;
  }});
}}, 2000);
</script>
</body></html>
"""


class StandIn:
    """rafka's HTTP listener as far as the harness cares: /metrics and /."""

    def __init__(self):
        self.messages_in = 42
        self.lag = 7
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/metrics":
                    body = stand_in.metrics().encode()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path.startswith("/?error=1") or self.path.startswith("/?throw=1"):
                    extra = ('console.error("x");' if "error=1" in self.path
                             else 'throw new Error("boom");')
                    body = PAGE.format(lag=stand_in.lag, extra=extra).encode()
                    ctype = "text/html; charset=utf-8"
                elif self.path == "/" or self.path.startswith("/?"):
                    body = PAGE.format(lag=stand_in.lag, extra="").encode()
                    ctype = "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def metrics(self) -> str:
        return (
            "# HELP kafka_server_brokertopicmetrics_messagesin_total Messages in.\n"
            "# TYPE kafka_server_brokertopicmetrics_messagesin_total counter\n"
            f"kafka_server_brokertopicmetrics_messagesin_total {self.messages_in}\n"
            f'kafka_server_brokertopicmetrics_messagesin_total{{topic="orders"}} {self.messages_in}\n'
            "# TYPE kafka_consumergroup_lag gauge\n"
            f'kafka_consumergroup_lag{{consumergroup="billing",topic="orders",partition="0"}} {self.lag}\n'
            'kafka_consumergroup_lag{consumergroup="billing",topic="orders",partition="1"} 0\n'
            "# TYPE kafka_controller_kafkacontroller_activecontrollercount gauge\n"
            "kafka_controller_kafkacontroller_activecontrollercount 1\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes 12345678\n"
        )

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stand_in():
    s = StandIn()
    yield s
    s.stop()


@pytest.fixture(scope="module", autouse=True)
def started_prometheus(stand_in):
    """Started before the first test of the module: Prometheus applies new scrape targets up to
    5 s after it starts, and the browser tests run meanwhile."""
    if prometheus_binary() is None:
        yield None
        return
    p = Prometheus([stand_in.address])
    yield p
    p.stop()


@pytest.fixture
def prometheus(started_prometheus):
    if started_prometheus is None:
        pytest.skip("prometheus binary missing (tests/run.sh installs Debian's `prometheus`)")
    return started_prometheus


@pytest.fixture(scope="module")
def chromium():
    if chromium_binary() is None:
        pytest.skip("chromium binary missing (tests/run.sh installs Debian's `chromium`)")
    pytest.importorskip("websocket", reason="websocket-client missing (tests/requirements.txt)")
    c = HeadlessChromium()
    yield c
    c.close()


def test_parse_metrics_reads_the_stand_in(stand_in):
    status, headers, body = http_get(f"http://{stand_in.address}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    m = parse_metrics(body.decode())
    assert m[("kafka_server_brokertopicmetrics_messagesin_total", (("topic", "orders"),))] == 42
    assert m[("kafka_server_brokertopicmetrics_messagesin_total", ())] == 42
    key = ("kafka_consumergroup_lag",
           (("consumergroup", "billing"), ("partition", "0"), ("topic", "orders")))
    assert m[key] == 7


def test_chromium_loads_the_page_without_errors(chromium, stand_in, tmp_path):
    url = f"http://{stand_in.address}/"
    chromium.open(url)
    assert chromium.evaluate("document.title") == "rafka stand-in"
    assert chromium.evaluate(
        "document.querySelector('tr.topic[data-topic=\"orders\"]') !== null") is True
    assert chromium.evaluate(
        "document.querySelector('tr.group[data-group=\"billing\"]') !== null") is True
    assert chromium.evaluate(
        "document.querySelector('tr.broker[data-node=\"1\"]') !== null") is True
    lag = chromium.evaluate("document.querySelector('td.lag[data-group=\"billing\"]"
                            "[data-topic=\"orders\"][data-partition=\"0\"]').textContent.trim()")
    assert lag == "7"
    # The refresh script runs: wait for its request to finish (an event), then the page still
    # shows the value and reported nothing.
    mark = chromium.page_mark
    req = chromium.wait_event("Network.requestWillBeSent",
                              lambda p: "refresh=1" in p["request"]["url"], after=mark, timeout=10)
    chromium.wait_event("Network.loadingFinished", lambda p: p["requestId"] == req["requestId"],
                        after=mark, timeout=10)
    chromium.wait_js("document.querySelector('td.lag').textContent.trim() === '7'", timeout=5)
    assert chromium.console_errors() == []
    assert all(u.startswith(f"http://{stand_in.address}/") or u.startswith("data:")
               for u in chromium.requested_urls()), chromium.requested_urls()
    shot = chromium.screenshot(tmp_path / "stand-in.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    # Width and height from the IHDR chunk: the window size asked for.
    assert int.from_bytes(data[16:20], "big") == 1280 and int.from_bytes(data[20:24], "big") == 900


def test_chromium_reports_console_errors_and_exceptions(chromium, stand_in):
    chromium.open(f"http://{stand_in.address}/?error=1")
    errs = chromium.console_errors()
    assert errs and any(e == "console.error: x" for e in errs), errs
    chromium.open(f"http://{stand_in.address}/?throw=1")
    errs = chromium.console_errors()
    assert any("boom" in e for e in errs), errs
    # A failed load of a resource the page asks for is an error too.
    chromium.evaluate("(() => { const i = new Image(); i.src = '/nope.png';"
                      " document.body.appendChild(i); return 1; })()")
    chromium.wait_event("Log.entryAdded", lambda p: "nope.png" in p["entry"].get("url", ""),
                        after=chromium.page_mark, timeout=10)
    assert any("nope.png" in e for e in chromium.console_errors()), chromium.console_errors()
    # And a clean page after it starts clean again.
    chromium.open(f"http://{stand_in.address}/")
    assert chromium.console_errors() == []


def test_prometheus_scrapes_exact_values(prometheus, stand_in):
    prometheus.wait_scraped_after(time.time())
    r = prometheus.query('kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}')
    assert len(r) == 1
    labels, value = r[0]
    assert value == 42.0
    assert labels["job"] == "rafka" and labels["instance"] == stand_in.address
    assert prometheus.value('sum(kafka_consumergroup_lag{consumergroup="billing",topic="orders"})') == 7
    assert prometheus.value("kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert prometheus.value("process_resident_memory_bytes") == 12345678
    assert prometheus.query('absent_metric_that_does_not_exist') == []

    # A change is seen by the first scrape after it.
    stand_in.messages_in = 50
    changed = time.time()
    prometheus.wait_scraped_after(changed)
    assert prometheus.value('kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}') == 50
    r = prometheus.wait_for('kafka_server_brokertopicmetrics_messagesin_total{topic="orders"}',
                            lambda r: r and r[0][1] == 50, timeout=5)
    assert r[0][1] == 50


def dashboard_exprs() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(doc["panels"])
    for v in doc.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append((f"variable {v['name']}", q))
    return out


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced as Grafana would for an "all" selection."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s") \
        .replace("$__range", "5m")
    return re.sub(r"\$\{?(job|instance|topic|consumergroup|group)(:regex|:pipe)?\}?", ".*", expr)


def test_dashboard_queries_are_valid_promql(prometheus):
    assert DASHBOARD.exists(), DASHBOARD
    exprs = dashboard_exprs()
    assert len(exprs) >= 15, exprs
    bad = []
    for title, expr in exprs:
        if expr.startswith("label_values("):
            # A Grafana function, not PromQL: check the metric selector inside it.
            inner = expr[len("label_values("):-1].rsplit(",", 1)[0]
            expr = inner
        try:
            prometheus.query(grafana_to_promql(expr))
        except Exception as e:  # noqa: BLE001 - collected and reported together
            bad.append(f"{title}: {expr}: {e}")
    assert not bad, "\n".join(bad)
