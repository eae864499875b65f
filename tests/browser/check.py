#!/usr/bin/env python3
"""Real-browser check of the HTML reports (standard library only).

Runs the fixture study (tests/browser/fixture) with the given orchestrate binary in a temporary
workspace, then opens its run report and its comparison page in headless Chromium, driven over
the DevTools protocol on a pipe (--remote-debugging-pipe: no port, no websocket), with the network
unreachable. Fails unless:
  - the page makes no request but for the report file itself, and no request fails;
  - the console logs no error and no script runs (the page has none);
  - the DOM has the results tables, the ROC figures and the forest plot (the comparison page:
    its sorted tables).
Saves screenshots (full page, and the top of the report) and a PDF print of the report into the
artifact folder.

usage: check.py ORCHESTRATE_BINARY ARTIFACT_DIR [CHROMIUM]
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH = 1200


def high_fd(fd):
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands) and 4 (replies and events)."""

    def __init__(self, chromium, profile):
        # Our pipe ends live at fds >= 10 so that moving them to 3 and 4 in the child never
        # overwrites one with the other.
        to_child_r, self.to_child = (high_fd(fd) for fd in os.pipe())
        self.from_child, from_child_w = (high_fd(fd) for fd in os.pipe())

        def setup():
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            # Any host lookup fails and any proxied request goes nowhere: a report that tried
            # to fetch something would show a failed request.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},900",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            preexec_fn=setup,
            pass_fds=(3, 4, to_child_r, from_child_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium")
            ready, _, _ = select.select([self.from_child], [], [], left)
            if ready:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, timeout=30, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, timeout=30):
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method:
                return m
            if "method" in m:
                self.events.append(m)

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        try:
            while True:
                m = self._read_message(deadline)
                if "method" in m:
                    self.events.append(m)
        except TimeoutError:
            pass

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def open_page(b, url):
    """Navigates a fresh tab to url; returns (requests, failures, console errors)."""
    target = b.call("Target.createTarget", {"url": "about:blank"}, session=False)
    attached = b.call(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False
    )
    b.session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        b.call(f"{domain}.enable")
    b.events.clear()
    b.call("Page.navigate", {"url": url})
    b.wait_event("Page.loadEventFired", timeout=60)
    b.drain(1.0)
    requests, failures, errors = [], [], []
    for e in b.events:
        p = e.get("params", {})
        m = e["method"]
        if m == "Network.requestWillBeSent":
            requests.append(p["request"]["url"])
        elif m == "Network.loadingFailed":
            failures.append(f"{p.get('errorText')} ({p.get('requestId')})")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif m == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
    return requests, failures, errors


def evaluate(b, expression):
    r = b.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
    return r["result"].get("value")


def screenshot(b, path, height=None):
    metrics = b.call("Page.getLayoutMetrics")
    full = int(metrics.get("cssContentSize", metrics.get("contentSize"))["height"])
    h = min(full, 16000) if height is None else min(height, full)
    b.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": h, "deviceScaleFactor": 1, "mobile": False},
    )
    shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    b.call("Emulation.clearDeviceMetricsOverride")
    return h


def check_page(b, url, problems, label):
    requests, failures, errors = open_page(b, url)
    others = [r for r in requests if r != url]
    if others:
        problems.append(f"{label}: requests besides the page itself: {others}")
    if failures:
        problems.append(f"{label}: failed requests: {failures}")
    if errors:
        problems.append(f"{label}: console errors: {errors}")
    if evaluate(b, "document.scripts.length") != 0:
        problems.append(f"{label}: the page has scripts")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    artifacts = os.path.abspath(sys.argv[2])
    chromium = sys.argv[3] if len(sys.argv) > 3 else (shutil.which("chromium") or "chromium")
    os.makedirs(artifacts, exist_ok=True)
    problems = []
    with tempfile.TemporaryDirectory() as ws:
        os.makedirs(os.path.join(ws, "experiments"))
        os.makedirs(os.path.join(ws, "scripts"))
        fixture = os.path.join(HERE, "fixture")
        for name in ("data.awk", "score.awk", "curves.awk"):
            shutil.copy(os.path.join(fixture, name), os.path.join(ws, "scripts", name))
        shutil.copy(
            os.path.join(fixture, "experiment.yaml"), os.path.join(ws, "experiments", "study.yaml")
        )
        env = dict(os.environ, NO_COLOR="1")
        env.pop("ORCHESTRATE_STORE", None)
        subprocess.run([binary, "run", "-q", "experiments/study.yaml"], cwd=ws, env=env, check=True)
        subprocess.run([binary, "compare", "study"], cwd=ws, env=env, check=True)
        run_dir = os.path.realpath(os.path.join(ws, "runs", "study", "latest"))
        report = "file://" + os.path.join(run_dir, "report.html")
        compare = "file://" + os.path.join(run_dir, "compare.html")

        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        b = Browser(chromium, profile)
        try:
            check_page(b, report, problems, "report")
            dom = evaluate(
                b,
                """JSON.stringify({
                  results: document.querySelectorAll('table.results').length,
                  roc: document.querySelectorAll('figure[id$="-roc"] svg polyline').length,
                  forest: document.querySelectorAll('figure[id$="-forest"] svg').length,
                  curves: document.querySelectorAll('#curves svg').length,
                  provenance: !!document.getElementById('provenance'),
                  title: document.querySelector('h1').textContent})""",
            )
            dom = json.loads(dom)
            print(f"report DOM: {dom}")
            if dom["results"] < 2:
                problems.append("report: fewer than two results tables (internal, external)")
            if dom["roc"] < 2:
                problems.append("report: no ROC curves drawn")
            if dom["forest"] < 1:
                problems.append("report: no forest plot")
            if not dom["provenance"]:
                problems.append("report: no provenance section")
            h = screenshot(b, os.path.join(artifacts, "report.png"))
            screenshot(b, os.path.join(artifacts, "report-top.png"), height=2250)
            pdf = b.call("Page.printToPDF", {"printBackground": False, "preferCSSPageSize": True})
            with open(os.path.join(artifacts, "report.pdf"), "wb") as f:
                f.write(base64.b64decode(pdf["data"]))
            print(f"report: screenshot {WIDTH}x{h}, PDF saved")

            check_page(b, compare, problems, "compare")
            tables = evaluate(b, "document.querySelectorAll('table.cells').length")
            if tables != 4:
                problems.append(f"compare: expected 4 sorted tables, found {tables}")
            screenshot(b, os.path.join(artifacts, "compare.png"))
        finally:
            b.close()
            shutil.rmtree(profile, ignore_errors=True)
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        return 1
    print(f"ok: reports render in headless Chromium without requests or errors; artifacts in {artifacts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
