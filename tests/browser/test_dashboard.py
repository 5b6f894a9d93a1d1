"""The dashboard in a real headless Chromium against a real `rebalancerd demo` process.

One daemon and one browser for the module; each test opens its own browser context (so its
own sessionStorage, i.e. its own sign-in). Every page is watched for console errors and for
requests to any other host; the last test checks them all.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import READ_TOKEN, TOKEN, demo_daemon
from tests.browser_support import DESKTOP, PHONE, Watched, assert_clean
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.e2e
SHOTS = Path(__file__).resolve().parents[2] / "tests" / "browser" / "screenshots"
PAGES: list[Watched] = []  # every page the tests opened, checked at the end
# A page that is refused on purpose logs the refusal as a console error; nothing else may.
EXPECTED_REFUSALS = {
    "test_the_token_gate_shows_no_data_before_a_token": "status of 401",
    "test_the_api_validation_error_shows_at_its_field": "status of 400",
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[DaemonProcess]:
    """`rebalancerd demo` with both tokens; the loop stays stopped so only the tests trade."""
    with demo_daemon(tmp_path_factory.mktemp("dash"), pg_base_url) as (proc, _):
        for card in call(proc, "GET", "/api/dashboard")[1]["portfolios"]:
            # Dry runs: a snapshot each, at once (a demo portfolio rests maker orders for minutes)
            body = {"portfolioId": card["portfolio"]["id"], "dryRun": True}
            assert call(proc, "POST", "/api/scheduler/trigger", body)[0] == 200
        yield proc


def call(
    proc: DaemonProcess, method: str, path: str, body: Any = None, token: str = TOKEN
) -> tuple[int, Any]:
    """The API over HTTP, as curl would call it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(proc.url + path, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def open_page(
    browser: Browser, proc: DaemonProcess, request: pytest.FixtureRequest, viewport: Any = DESKTOP
) -> Watched:
    watched = Watched.open(browser, proc.url, viewport, test=request.node.name)
    PAGES.append(watched)
    return watched


def sign_in(watched: Watched, token: str = TOKEN, fragment: str = "") -> None:
    watched.page.goto(watched.origin + "/" + fragment)
    watched.page.get_by_label("API token").fill(token)
    watched.page.get_by_role("button", name="Open dashboard").click()
    watched.page.locator(".card, .empty, #assets, form.edit").first.wait_for()


def portfolios(proc: DaemonProcess) -> list[dict[str, Any]]:
    return call(proc, "GET", "/api/portfolios/manage")[1]["portfolios"]  # type: ignore[no-any-return]


def pct(value: float) -> str:
    return f"{value:.1f}%"


def test_demo_prints_the_dashboard_url(daemon: DaemonProcess) -> None:
    assert f"dashboard at {daemon.url}/" in daemon.log()


def test_page_and_assets_carry_cache_and_security_headers(daemon: DaemonProcess) -> None:
    page = urllib.request.urlopen(daemon.url + "/", timeout=10)  # noqa: S310
    html = page.read().decode()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-cache"
    assert "<script>" not in html and "style=" not in html  # nothing inline: the CSP allows none
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert len(assets) >= 4
    for path in assets:
        req = urllib.request.Request(daemon.url + path, headers={"Accept-Encoding": "gzip"})  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"/assets/app\.[0-9a-f]{12}\.js", [a for a in assets if "app." in a][-1])


def test_the_token_gate_shows_no_data_before_a_token(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    page = watched.page
    page.goto(daemon.url + "/")
    expect(page.get_by_label("API token")).to_have_attribute("type", "password")
    assert not [u for u in watched.requests if "/api/" in u]  # asked before any data request
    expect(page.locator(".card")).to_have_count(0)
    page.get_by_label("API token").fill("not-the-token-at-all-0000")
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.get_by_text("The token was refused")).to_be_visible()
    expect(page.locator(".card")).to_have_count(0)
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Open dashboard").click()
    expect(page.locator(".card")).to_have_count(len(portfolios(daemon)))
    page.reload()  # kept for the browser session
    expect(page.locator(".card")).to_have_count(len(portfolios(daemon)))


def test_every_portfolio_shows_its_name_and_weights_as_the_api_has_them(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    sign_in(watched)
    page = watched.page
    listed = portfolios(daemon)
    assert listed
    for portfolio in listed:
        card = page.locator(f'li.card[data-portfolio="{portfolio["id"]}"]')
        expect(card.locator("h2")).to_have_text(portfolio["name"])
    for portfolio in listed:
        pid = portfolio["id"]
        snaps = call(daemon, "GET", f"/api/portfolios/{pid}/snapshots")[1]["snapshots"]
        current = snaps[-1]["weights"]
        page.goto(f"{daemon.url}/#/p/{pid}")
        expect(page.locator("h1")).to_have_text(portfolio["name"])
        for symbol, target in portfolio["targetWeights"].items():
            row = page.locator(f'#assets tr[data-symbol="{symbol}"]')
            expect(row.locator('[data-col="target"]')).to_have_text(pct(target))
            expect(row.locator('[data-col="current"]')).to_have_text(pct(current[symbol]))


def test_rebalance_now_previews_then_confirms_and_adds_a_history_row(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    pid = portfolios(daemon)[0]["id"]
    before = len(call(daemon, "GET", f"/api/history?portfolioId={pid}")[1]["history"])
    watched = open_page(browser, daemon, request)
    sign_in(watched, fragment=f"#/p/{pid}")
    page = watched.page
    rows = page.locator("#runs > tbody > tr")
    expect(rows).to_have_count(before)
    page.get_by_role("button", name="Rebalance now…").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(re.compile(r"Value €[\d,.]+ · \d+ order"))).to_be_visible()
    dialog.get_by_label("Dry run").check()
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.locator("#run-result")).to_contain_text("Dry run completed")
    dialog.get_by_role("button", name="Close").click()
    expect(rows).to_have_count(before + 1)
    history = call(daemon, "GET", f"/api/history?portfolioId={pid}")[1]["history"]
    assert len(history) == before + 1 and history[0]["dryRun"] is True
    expect(page.locator(f"#run-{history[0]['id']}")).to_be_attached()


def test_a_portfolio_is_created_through_the_form(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    sign_in(watched)
    page = watched.page
    page.get_by_role("link", name="New portfolio").click()
    page.get_by_label("Name").fill("Made in the browser")
    page.get_by_label("Account").select_option("sandbox")
    page.get_by_label("Interval").fill("0 9 * * 1")
    expect(page.locator("#f-rebalanceInterval-next")).to_contain_text("would run at")
    page.get_by_label("Interval").fill("daily")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.locator("h1")).to_have_text("Made in the browser")
    made = [p for p in portfolios(daemon) if p["name"] == "Made in the browser"]
    assert len(made) == 1
    assert made[0]["targetWeights"] == {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}
    assert (made[0]["account"], made[0]["rebalanceInterval"]) == ("sandbox", "daily")
    assert page.url.endswith(f"#/p/{made[0]['id']}")


def test_the_api_validation_error_shows_at_its_field(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    sign_in(watched, fragment="#/new")
    page = watched.page
    page.get_by_label("Name").fill("Not summing to 100")
    page.get_by_label("Asset 1 weight, percent").fill("10")
    page.get_by_label("Interval").fill("every tuesday")
    expect(page.locator("#f-targetWeights-total")).to_contain_text("must reach 100")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.locator("#f-targetWeights-error")).to_contain_text("weights must sum to 100")
    expect(page.locator("#f-rebalanceInterval-error")).to_contain_text("cron expression")
    expect(page.get_by_label("Interval")).to_have_attribute("aria-invalid", "true")
    assert not [p for p in portfolios(daemon) if p["name"] == "Not summing to 100"]


def test_a_change_made_through_the_api_shows_without_a_reload(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    sign_in(watched)
    page = watched.page
    page.evaluate("window.sameDocument = true")
    pid = portfolios(daemon)[0]["id"]
    status, _ = call(
        daemon, "PUT", "/api/portfolios/manage", {"id": pid, "name": "Renamed by curl"}
    )
    assert status == 200
    card = page.locator(f'li.card[data-portfolio="{pid}"] h2')
    expect(card).to_have_text("Renamed by curl", timeout=5000)
    call(daemon, "POST", "/api/scheduler", {"action": "start"})
    expect(page.locator("#status")).to_contain_text("running", timeout=5000)
    call(daemon, "POST", "/api/scheduler", {"action": "stop"})
    expect(page.locator("#status")).to_contain_text("stopped", timeout=5000)
    assert page.evaluate("window.sameDocument") is True  # no reload happened


HIDE = """(hidden) => {
    Object.defineProperty(document, 'visibilityState', {value: hidden ? 'hidden' : 'visible',
                                                        configurable: true});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_a_hidden_tab_closes_its_stream_and_catches_up_when_shown(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, daemon, request)
    sign_in(watched)
    page = watched.page
    pid = portfolios(daemon)[0]["id"]
    with page.expect_event("requestfailed", lambda r: "/api/events" in r.url):
        page.evaluate(HIDE, True)  # the stream is aborted: nothing can make the page fetch
    seen = len(watched.requests)
    call(daemon, "PUT", "/api/portfolios/manage", {"id": pid, "name": "Renamed while hidden"})
    # An absence needs a wait: an open stream brings a change in ~0.3 s; give it 1.5 s.
    page.wait_for_timeout(1500)
    assert watched.requests[seen:] == []
    page.evaluate(HIDE, False)
    expect(page.locator(f'li.card[data-portfolio="{pid}"] h2')).to_have_text(
        "Renamed while hidden", timeout=5000
    )
    assert any("/api/events" in url for url in watched.requests[seen:])


def test_the_read_only_token_sees_everything_and_changes_nothing(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest
) -> None:
    listed = portfolios(daemon)
    pid = listed[0]["id"]
    writes = [
        ("POST", "/api/portfolios/manage", {"name": "x", "targetWeights": {"BTC": 100}}),
        ("PUT", "/api/portfolios/manage", {"id": pid, "name": "x"}),
        ("DELETE", f"/api/portfolios/manage?id={pid}", None),
        ("POST", "/api/scheduler", {"action": "stop"}),
        ("POST", "/api/scheduler/trigger", {"portfolioId": pid}),
    ]
    for method, path, body in writes:
        assert call(daemon, method, path, body, READ_TOKEN)[0] == 403, (method, path)
    assert call(daemon, "GET", "/api/dashboard", token=READ_TOKEN)[1]["access"] == "read"
    watched = open_page(browser, daemon, request)
    sign_in(watched, READ_TOKEN)
    page = watched.page
    expect(page.locator(".card")).to_have_count(len(listed))
    expect(page.get_by_text("read-only")).to_be_visible()
    for name in ("Rebalance now…", "Stop scheduler", "Start scheduler"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("link", name="New portfolio")).to_have_count(0)
    expect(page.get_by_label("Enabled")).to_have_count(0)
    page.goto(f"{daemon.url}/#/p/{pid}")
    expect(page.locator("#assets")).to_be_visible()
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    assert portfolios(daemon) == listed


@pytest.mark.parametrize("where", ["#/", "#/p/{pid}", "#/new"])
def test_a_phone_width_needs_no_horizontal_scrolling(
    browser: Browser, daemon: DaemonProcess, request: pytest.FixtureRequest, where: str
) -> None:
    pid = portfolios(daemon)[0]["id"]
    watched = open_page(browser, daemon, request, PHONE)
    sign_in(watched, fragment=where.format(pid=pid))
    if "{pid}" in where:
        watched.page.locator(".uplot").first.wait_for()  # the charts are the widest things
    assert watched.horizontal_overflow() == 0
    name = where.strip("#/").split("/")[0] or "overview"
    watched.screenshot(SHOTS / f"phone-{name}.png")


def test_no_request_left_for_another_host_and_no_console_error() -> None:
    assert_clean(PAGES, EXPECTED_REFUSALS)
