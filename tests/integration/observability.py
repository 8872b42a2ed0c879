"""A real Prometheus server and a real headless Chromium for the observability tests (issue 18;
no pytest dependency).

`Prometheus(targets)` runs Debian's `/usr/bin/prometheus` (apt package `prometheus`) on a free
loopback port with its own temp dir (TSDB and a generated config scraping `targets` every second
as job "rafka"); `query(expr)` answers from /api/v1/query and `wait_for(expr, predicate)` polls
until an answer satisfies the predicate. Prometheus scrapes every second, so "wait until a scrape
newer than this event" is an event too: `wait_scraped_after(t)`.

`HeadlessChromium()` runs Debian's `/usr/bin/chromium` (apt package `chromium`) headless and
speaks the DevTools protocol over its websocket (PyPI `websocket-client`): `open(url)` navigates
and waits for the page's load event, `console_errors()` lists what the page reported as errors
(console.error, uncaught exceptions, failed loads), `evaluate(js)` returns a value and
`screenshot(path)` writes a PNG. The browser reaches loopback only: everything else goes to a dead
proxy, so a page that needs an external asset shows it as a failed request.

Both binaries are found on PATH or in /usr/bin; `prometheus_binary()` / `chromium_binary()` return
None when missing so tests can skip. Environment: PROMETHEUS_BIN, CHROMIUM_BIN override the paths.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from broker_proc import free_port


# ---- small HTTP helpers --------------------------------------------------------------------------

def http_get(url: str, headers: dict | None = None, method: str = "GET", timeout: float = 10):
    """(status, headers as a lower-cased dict, body bytes); HTTP errors are answers, not raised."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def wait_until(cond, timeout: float, what: str, interval: float = 0.1):
    """Polls cond() until truthy (returns it) or raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = cond()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def _binary(env: str, name: str) -> str | None:
    p = os.environ.get(env)
    if p:
        return p if os.access(p, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    p = f"/usr/bin/{name}"
    return p if os.access(p, os.X_OK) else None


def prometheus_binary() -> str | None:
    return _binary("PROMETHEUS_BIN", "prometheus")


def chromium_binary() -> str | None:
    return _binary("CHROMIUM_BIN", "chromium")


def _stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # own session: the children go too
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


# ---- Prometheus ----------------------------------------------------------------------------------

class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """A Prometheus server scraping `targets` ("host:port" strings) every second as job "rafka"
    (metrics path /metrics). Use as a context manager or call stop()."""

    def __init__(self, targets: list[str], job: str = "rafka", scrape_interval: str = "1s",
                 start: bool = True, start_timeout: float = 60):
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("prometheus binary not found (apt-get install prometheus)")
        self.binary = binary
        self.targets = list(targets)
        self.job = job
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="rafka-prometheus-"))
        self.config_path = self.root / "prometheus.yml"
        self.log_path = self.root / "prometheus.log"
        self.config_path.write_text(self.config_text(scrape_interval))
        self.proc: subprocess.Popen | None = None
        if start:
            self.start(start_timeout)

    def config_text(self, scrape_interval: str) -> str:
        # JSON is YAML: no quoting questions for the generated file.
        cfg = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "scrape_configs": [{
                "job_name": self.job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": self.targets}],
            }],
        }
        return json.dumps(cfg, indent=2) + "\n"

    def start(self, timeout: float = 60) -> "Prometheus":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary,
                 f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={self.root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 # Debian's defaults point at /etc/prometheus and /usr/share; nothing here needs them.
                 f"--web.console.templates={self.root}",
                 f"--web.console.libraries={self.root}",
                 "--storage.tsdb.retention.time=1h",
                 # Answers for "now" take the newest sample within 5 s: stale series go quickly.
                 "--query.lookback-delta=5s",
                 "--log.level=info"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.root, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited (rc={self.proc.returncode}):\n"
                                      + self.log_tail())
            try:
                status, _, _ = http_get(self.url + "/-/ready", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready within {timeout}s:\n" + self.log_tail())
            time.sleep(0.1)

    def log_tail(self, lines: int = 50) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ---- queries ------------------------------------------------------------------------------
    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, _, body = http_get(url)
        try:
            doc = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{url}: HTTP {status}, not JSON: {body[:200]!r}")
        if doc.get("status") != "success":
            raise PrometheusError(f"{url}: HTTP {status}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        """An instant query at "now": [(labels, value), ...]; a scalar is [({}, value)]."""
        data = self.api("query", query=expr)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [(s["metric"], float(s["value"][1])) for s in result]
        if kind in ("scalar", "string"):
            return [({}, float(result[1]) if kind == "scalar" else result[1])]
        if kind == "matrix":
            return [(s["metric"], [float(v) for _, v in s["values"]]) for s in result]
        raise PrometheusError(f"unknown result type {kind}")

    def value(self, expr: str) -> float | None:
        """The single value of `expr` (None when the answer is empty; error when several)."""
        r = self.query(expr)
        if not r:
            return None
        assert len(r) == 1, f"{expr}: {len(r)} series: {r}"
        return r[0][1]

    def wait_for(self, expr: str, predicate, timeout: float = 30) -> list[tuple[dict, float]]:
        """Polls `expr` until predicate(result list) is true; returns that result. The predicate
        gets the whole [(labels, value)] list, so it can also accept or refuse empty answers."""
        last: object = None

        def ok():
            nonlocal last
            last = self.query(expr)
            return predicate(last)

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ok():
                    return last  # type: ignore[return-value]
            except PrometheusError as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting on {expr!r}; last answer: "
                                     f"{last!r}\ntargets: {self.targets_health()}")
            time.sleep(0.2)

    def wait_scraped_after(self, t: float, timeout: float = 30, min_up: int = 1) -> None:
        """Waits until every target was scraped successfully by a scrape that started after the
        Unix time `t` (so what it saw includes everything done before `t`)."""
        # timestamp() of a plain selector is the sample's own time (the scrape's start); of any
        # other expression (`up == 1`) it would be the evaluation time.
        want = max(min_up, len(self.targets))

        def fresh_and_up(r):
            if len(r) < want or not all(v > t for _, v in r):
                return False
            up = self.query(f'up{{job="{self.job}"}}')
            return len(up) >= want and all(v == 1 for _, v in up)

        self.wait_for(f'timestamp(up{{job="{self.job}"}})', fresh_and_up, timeout)

    def targets_health(self) -> list[dict]:
        try:
            data = self.api("targets")
        except (PrometheusError, OSError) as e:
            return [{"error": str(e)}]
        return [{"scrapeUrl": t.get("scrapeUrl"), "health": t.get("health"),
                 "lastError": t.get("lastError")} for t in data.get("activeTargets", [])]

    # ---- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- headless Chromium ---------------------------------------------------------------------------

class ChromiumError(RuntimeError):
    pass


class HeadlessChromium:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, width: int = 1280, height: int = 900, start_timeout: float = 60):
        import websocket  # PyPI websocket-client (tests/requirements.txt)
        self._websocket = websocket
        binary = chromium_binary()
        if binary is None:
            raise ChromiumError("chromium binary not found (apt-get install chromium)")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="rafka-chromium-"))
        self.log_path = self.root / "chromium.log"
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self._next_id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[int, dict] = {}
        self._events: list[dict] = []  # every event, in arrival order
        self._closed = False
        self._reader: threading.Thread | None = None
        try:
            self._start(width, height, start_timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, width: int, height: int, timeout: float) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary,
                 "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
                 f"--user-data-dir={self.root / 'profile'}",
                 f"--window-size={width},{height}", "--hide-scrollbars",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--mute-audio",
                 "--disable-features=Translate,MediaRouter,OptimizationHints",
                 # Loopback only: everything else goes to a dead proxy (loopback always bypasses).
                 "--proxy-server=http://127.0.0.1:9",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.root, start_new_session=True)
        finally:
            log.close()
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ChromiumError(f"chromium exited (rc={self.proc.returncode}):\n" + self.log_tail())
            try:
                status, _, body = http_get(base + "/json/version", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ChromiumError(f"no DevTools endpoint within {timeout}s:\n" + self.log_tail())
            time.sleep(0.1)
        # A fresh page target of our own (Chromium 111+ wants PUT for /json/new).
        status, _, body = http_get(base + "/json/new?about:blank", method="PUT")
        if status != 200:
            raise ChromiumError(f"/json/new: HTTP {status}: {body[:200]!r}")
        target = json.loads(body)
        self.target_id = target["id"]
        self.ws = self._websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True,
            enable_multithread=True)
        self.ws.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        # The window size includes the (invisible) browser frame: fix the viewport itself.
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def log_tail(self, lines: int = 50) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # ---- protocol -----------------------------------------------------------------------------
    def _read_loop(self) -> None:
        ws = self.ws
        try:
            while True:
                raw = ws.recv()
                if not raw:
                    break
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._responses[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                    self._cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed; waiters see _closed
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def send(self, method: str, timeout: float = 30, **params) -> dict:
        """Sends a command and waits for its answer; returns its `result` (raises on `error`)."""
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._responses:
                if self._closed:
                    raise ChromiumError(f"{method}: DevTools connection closed\n" + self.log_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChromiumError(f"{method}: no answer within {timeout}s")
                self._cond.wait(left)
            msg = self._responses.pop(mid)
        if "error" in msg:
            raise ChromiumError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    def event_mark(self) -> int:
        """A position in the event stream: wait_event(after=mark) sees only later events."""
        with self._cond:
            return len(self._events)

    def wait_event(self, method: str, predicate=None, after: int = 0, timeout: float = 30) -> dict:
        """The first event `method` (matching predicate(params), if given) at or after position
        `after`; its params."""
        deadline = time.monotonic() + timeout
        i = after
        with self._cond:
            while True:
                while i < len(self._events):
                    e = self._events[i]
                    i += 1
                    if e.get("method") == method and (predicate is None
                                                      or predicate(e.get("params", {}))):
                        return e.get("params", {})
                if self._closed:
                    raise ChromiumError(f"waiting for {method}: DevTools connection closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChromiumError(f"no {method} event within {timeout}s")
                self._cond.wait(left)

    def events(self, method: str | None = None, after: int = 0) -> list[dict]:
        with self._cond:
            return [e.get("params", {}) for e in self._events[after:]
                    if method is None or e.get("method") == method]

    # ---- what tests use -----------------------------------------------------------------------
    def open(self, url: str, timeout: float = 30) -> None:
        """Navigates to `url` and waits for the page's load event."""
        mark = self.event_mark()
        r = self.send("Page.navigate", url=url, timeout=timeout)
        if r.get("errorText"):
            raise ChromiumError(f"navigating to {url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired", after=mark, timeout=timeout)
        self.page_mark = mark

    def console_errors(self, after: int | None = None) -> list[str]:
        """Errors the page reported since the last open() (or since `after`): console.error
        calls, uncaught exceptions and error log entries (failed loads among them). A missing
        /favicon.ico is not the page's error (the browser asks for it on its own) and is left
        out."""
        start = getattr(self, "page_mark", 0) if after is None else after
        out = []
        with self._cond:
            events = list(self._events[start:])
        for e in events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = [a.get("value", a.get("description", a.get("type"))) for a in p.get("args", [])]
                out.append("console.error: " + " ".join(str(a) for a in args))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                desc = d.get("exception", {}).get("description") or d.get("text")
                out.append(f"exception: {desc} at {d.get('url', '')}:{d.get('lineNumber')}")
            elif m == "Log.entryAdded":
                entry = p.get("entry", {})
                if entry.get("level") == "error" and not str(entry.get("url", "")).endswith("/favicon.ico"):
                    out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        return out

    def requested_urls(self, after: int | None = None) -> list[str]:
        start = getattr(self, "page_mark", 0) if after is None else after
        return [p["request"]["url"] for p in self.events("Network.requestWillBeSent", start)]

    def evaluate(self, expression: str, timeout: float = 30):
        """Evaluates JS in the page (promises awaited) and returns the value (JSON-able)."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise ChromiumError(f"evaluate {expression!r}: "
                                f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_js(self, expression: str, timeout: float = 15, what: str | None = None):
        """Polls a JS expression until it is truthy; returns its value."""
        return wait_until(lambda: self.evaluate(expression), timeout, what or expression, 0.1)

    def screenshot(self, path: str | os.PathLike) -> Path:
        """Writes a PNG of the page's viewport to `path`."""
        r = self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(r["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.send("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001
                pass
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            _stop_process(self.proc)
            self.proc = None
        if self._reader is not None:
            self._reader.join(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- Prometheus text format ----------------------------------------------------------------------

def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Parses Prometheus text (0.0.4) or OpenMetrics exposition into {(name, sorted label items):
    value}. Enough for the samples rafka writes (no escaped quotes inside label values beyond
    \\" \\\\ \\n, no exemplars)."""
    out: dict[tuple[str, tuple], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        labels: list[tuple[str, str]] = []
        if "{" in line:
            name, rest = line.split("{", 1)
            i = 0
            while True:
                while i < len(rest) and rest[i] in " ,":
                    i += 1
                if rest[i] == "}":
                    rest = rest[i + 1:]
                    break
                eq = rest.index("=", i)
                key = rest[i:eq].strip()
                assert rest[eq + 1] == '"', line
                j = eq + 2
                val = []
                while rest[j] != '"':
                    if rest[j] == "\\":
                        j += 1
                        val.append({"n": "\n"}.get(rest[j], rest[j]))
                    else:
                        val.append(rest[j])
                    j += 1
                labels.append((key, "".join(val)))
                i = j + 1
            fields = rest.split()
        else:
            name, *fields = line.split()
        out[(name.strip(), tuple(sorted(labels)))] = float(fields[0])
    return out
