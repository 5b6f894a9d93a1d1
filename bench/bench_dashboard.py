"""The dashboard's cost: first load's transferred bytes, time to a usable page, and the daemon's
CPU with 10 dashboards open and idle. Targets (issue 15): < 300 KB; <= 1 % of a core.

    .venv/bin/python bench/bench_dashboard.py [--loads 5] [--pages 10] [--seconds 60]

Starts the real `rebalancerd demo` (embedded PostgreSQL, two paper portfolios, check tick every
minute) and a headless Debian Chromium through Playwright (tests/browser_support.py).
- Bytes: every response of a cold first load (fresh browser context, no cache), headers and
  compressed bodies, as Chromium's network layer counts them (CDP encodedDataLength); the event
  stream, which stays open, is counted up to the moment the page is usable.
- Usable: from navigation start to the overview's cards drawn (and, for the portfolio view, to
  its charts drawn); median and max of --loads cold loads.
- Idle CPU: the daemon process's CPU (threads' schedstat, ns) over --seconds with no page open,
  then with --pages pages open on the overview (each holds one event stream and re-reads its
  view when something changes: here, the demo's check tick every minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import cpu_seconds_fine, header
from tests.browser_support import DESKTOP, launch
from tests.daemon_proc import DaemonProcess


def cold_load(browser: Any, url: str, fragment: str, ready: str) -> tuple[int, float, int]:
    """(bytes transferred, seconds to usable, requests) of one load in a fresh context."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    finished: dict[str, int] = {}
    streaming: dict[str, int] = {}
    cdp.on(
        "Network.loadingFinished",
        lambda e: finished.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    cdp.on("Network.dataReceived", lambda e: streaming.__setitem__(
        e["requestId"], streaming.get(e["requestId"], 0) + e["encodedDataLength"]))  # fmt: skip
    started = time.perf_counter()
    page.goto(url + "/" + fragment)
    page.wait_for_selector(ready)
    seconds = time.perf_counter() - started
    page.wait_for_timeout(300)  # let the last responses finish being counted
    total = sum(finished.values()) + sum(n for r, n in streaming.items() if r not in finished)
    requests = len(set(finished) | set(streaming))
    context.close()
    return total, seconds, requests


def idle_cpu(pid: int, seconds: float) -> float:
    """Share of one core the process used over `seconds`."""
    before, started = cpu_seconds_fine(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds_fine(pid) - before) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    header("bench_dashboard: first load, time to usable, idle CPU with open dashboards")
    with tempfile.TemporaryDirectory(prefix="rbd-dash-") as tmp:
        daemon = DaemonProcess(Path(tmp), {}, args=("demo",)).start()
        try:
            asyncio.run(daemon.wait_healthy(60))
            assert daemon.proc is not None
            with launch() as browser:
                measure(browser, daemon, args)
        finally:
            daemon.terminate()


def measure(browser: Any, daemon: DaemonProcess, args: argparse.Namespace) -> None:
    cold_load(browser, daemon.url, "", ".card")  # warm the daemon (first queries, gzip caches)
    overview = [cold_load(browser, daemon.url, "", ".card") for _ in range(args.loads)]
    pid = daemon_portfolio(daemon)
    detail = [cold_load(browser, daemon.url, f"#/p/{pid}", ".uplot") for _ in range(args.loads)]
    for name, loads in (("overview", overview), ("portfolio (charts drawn)", detail)):
        size = max(n for n, _, _ in loads)
        times = [s for _, s, _ in loads]
        print(
            f"first load, {name}: {size / 1024:.1f} KB in {loads[0][2]} requests "
            f"(target < 300 KB: {'met' if size < 300 * 1024 else 'MISSED'}); usable in "
            f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
        )
    assert daemon.proc is not None
    base = idle_cpu(daemon.proc.pid, args.seconds)
    print(f"daemon CPU, no dashboard open: {base * 100:.2f} % of a core over {args.seconds:.0f} s")
    contexts = []
    for _ in range(args.pages):
        context = browser.new_context(viewport=DESKTOP)
        context.new_page().goto(daemon.url + "/")
        contexts.append(context)
    for context in contexts:
        context.pages[0].wait_for_selector(".card")
    time.sleep(2)
    used = idle_cpu(daemon.proc.pid, args.seconds)
    print(
        f"daemon CPU, {args.pages} dashboards open and idle: {used * 100:.2f} % of a core over "
        f"{args.seconds:.0f} s ({(used - base) * 100:+.2f} points for the dashboards; "
        f"target <= 1 %: {'met' if used <= 0.01 else 'MISSED'})"
    )
    for context in contexts:
        context.close()


def daemon_portfolio(daemon: DaemonProcess) -> str:
    with urllib.request.urlopen(daemon.url + "/api/dashboard", timeout=10) as resp:  # noqa: S310
        body = json.loads(resp.read())
    ran = [c for c in body["portfolios"] if c["lastRun"]]  # a run took two snapshots: charts
    return str((ran or body["portfolios"])[0]["portfolio"]["id"])


if __name__ == "__main__":
    main()
