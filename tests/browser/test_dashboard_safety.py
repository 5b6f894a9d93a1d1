"""The dashboard's safety controls in a real headless Chromium against a real `rebalancerd demo`:
the kill switch, runs awaiting approval, forcing the price-jump guard, the safety fields of the
form, the read-only token, maker execution figures and the notifications view.

The demo's "Balanced crypto" is switched to manual approval; its real runs fill at once on the
paper account. Screenshots go to tests/browser/screenshots (docs/ has the chosen ones).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import READ_TOKEN, TOKEN, demo_daemon
from tests.browser.test_dashboard import SHOTS, call, sign_in
from tests.browser_support import DESKTOP, PHONE, Watched, assert_clean
from tests.conftest import run_sync
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.e2e
PAGES: list[Watched] = []
EXPECTED_REFUSALS = {  # a page refused on purpose logs it as a console error; nothing else may
    "test_a_safety_field_error_shows_at_its_field": "status of 400",
    "test_a_stale_approval_shows_the_new_plan_to_approve_again": "status of 409",
}


class Demo:
    """The daemon, its database and the demo's two portfolios (manual: approval by hand)."""

    def __init__(self, proc: DaemonProcess, dsn: str) -> None:
        self.proc, self.dsn = proc, dsn
        by_name = {
            p["name"]: p["id"] for p in self.call("GET", "/api/portfolios/manage")[1]["portfolios"]
        }
        self.manual, self.maker = by_name["Balanced crypto"], by_name["Majors with cash"]
        self.parked = 0

    def call(self, method: str, path: str, body: Any = None, token: str = TOKEN) -> tuple[int, Any]:
        return call(self.proc, method, path, body, token)

    def park(self) -> int:
        """A real run of the manual portfolio: its plan waits for approval; the run's id. New
        weights each time, so that there is always something to trade."""
        self.parked += 1
        weights = {"BTC": 40 + self.parked, "ETH": 30 - self.parked, "SOL": 20, "ADA": 10}
        update = {"id": self.manual, "targetWeights": weights}
        assert self.call("PUT", "/api/portfolios/manage", update)[0] == 200
        status, body = self.call("POST", "/api/scheduler/trigger", {"portfolioId": self.manual})
        assert status == 202, body
        return int(body["run"]["id"])

    def manual_runs(self) -> list[dict[str, Any]]:
        """The manual portfolio's runs, newest first."""
        return self.call("GET", f"/api/runs?portfolioId={self.manual}")[1]["runs"]  # type: ignore[no-any-return]

    def history(self, pid: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/api/history?portfolioId={pid}")[1]["history"]  # type: ignore[no-any-return]

    def sql(self, statement: str, *args: Any) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(statement, *args)
            finally:
                await conn.close()

        run_sync(go())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[Demo]:
    # A webhook nobody answers: its deliveries stay pending.
    hook = '[[notify.webhook]]\nurl = "http://127.0.0.1:9/hook"\n'
    with demo_daemon(tmp_path_factory.mktemp("safety"), pg_base_url, hook) as (proc, dsn):
        demo = Demo(proc, dsn)
        for pid in (demo.manual, demo.maker):  # a snapshot and the guard's price marks each
            body = {"portfolioId": pid, "dryRun": True}
            assert demo.call("POST", "/api/scheduler/trigger", body)[0] == 200
        update = {"id": demo.manual, "approval": "manual", "approvalTtlSeconds": 1800}
        assert demo.call("PUT", "/api/portfolios/manage", update)[0] == 200
        yield demo


def open_page(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest, viewport: Any = DESKTOP
) -> Watched:
    watched = Watched.open(browser, demo.proc.url, viewport, test=request.node.name)
    PAGES.append(watched)
    return watched


def card(page: Page, pid: str) -> Any:
    return page.locator(f'li.card[data-portfolio="{pid}"]')


def awaiting(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> tuple[int, Watched, Any]:
    """A run of the manual portfolio parked for approval, and a signed-in page: the run's id,
    the page, and the portfolio's card on it."""
    run = demo.park()
    watched = open_page(browser, demo, request)
    sign_in(watched)
    return run, watched, card(watched.page, demo.manual)


def test_halt_from_the_page_shows_the_banner_and_resume_clears_it(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, demo, request)
    sign_in(watched)
    page = watched.page
    expect(page.locator("#halt")).to_be_hidden()
    try:
        page.get_by_role("button", name="Halt all trading…").click()
        page.get_by_role("dialog").get_by_role("button", name="Halt now").click()
        banner = page.locator("#halt")
        expect(banner).to_contain_text("Halted: the kill switch is set")
        expect(page.locator("#halted-badge")).to_be_visible()
        assert demo.call("GET", "/api/scheduler")[1]["status"]["halted"] is True
        expect(page.get_by_role("button", name="Halt all trading…")).to_have_count(0)
        page.goto(f"{demo.proc.url}/#/p/{demo.maker}")  # on every page
        expect(page.locator("h1")).to_have_text("Majors with cash")
        expect(banner).to_be_visible()
        watched.screenshot(SHOTS / "desktop-halted.png")
        page.get_by_role("button", name="Resume trading").click()
        expect(banner).to_be_hidden()
        assert demo.call("GET", "/api/scheduler")[1]["status"]["halted"] is False
    finally:
        demo.call("POST", "/api/scheduler", {"action": "resume"})


def test_approving_a_waiting_plan_from_its_card_runs_it(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    before = len(demo.history(demo.manual))
    run, watched, waiting = awaiting(browser, demo, request)
    page = watched.page
    expect(page.locator("li.card").first).to_have_attribute("data-portfolio", demo.manual)
    expect(waiting).to_contain_text("Awaiting approval")
    expect(waiting.locator("table.plan tbody tr").first).to_be_visible()
    watched.screenshot(SHOTS / "desktop-awaiting.png")
    waiting.get_by_role("button", name="Approve").click()
    expect(waiting.locator(".approval")).to_have_count(0)
    expect(waiting).to_contain_text("✓ ok")
    history = demo.history(demo.manual)
    assert len(history) == before + 1 and not history[0]["dryRun"]
    assert demo.manual_runs()[0]["id"] == run
    page.goto(f"{demo.proc.url}/#/p/{demo.manual}/run/{history[0]['id']}")
    details = page.locator(f"#run-{history[0]['id']}")
    expect(details.locator("td.exec").first).to_contain_text("market")  # execution figures
    watched.page.locator(".uplot").first.wait_for()
    watched.page.evaluate("window.scrollTo(0, 0)")  # the sticky strip at the top of the shot
    watched.screenshot(SHOTS / "desktop-portfolio-run.png")


def test_a_stale_approval_shows_the_new_plan_to_approve_again(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    run, watched, waiting = awaiting(browser, demo, request)
    expect(waiting.locator("table.plan")).to_be_visible()
    weights = {"id": demo.manual, "targetWeights": {"BTC": 25, "ETH": 25, "SOL": 25, "ADA": 25}}
    assert demo.call("PUT", "/api/portfolios/manage", weights)[0] == 200  # the plan moves
    waiting.get_by_role("button", name="Approve").click()
    expect(waiting.locator(".approval")).to_contain_text("approve run")
    again = waiting.get_by_role("button", name="Approve the new plan")
    expect(again).to_be_visible()
    assert demo.manual_runs()[0]["id"] == run
    # The card drops the plan as soon as the run leaves awaiting_approval (it is then running):
    # the run's state is read once the page's approval has been answered.
    approving = f"/api/runs/{run}/approve"
    with watched.page.expect_response(lambda r: r.url.endswith(approving)) as answered:
        again.click()
    assert answered.value.status == 200
    expect(waiting.locator(".approval")).to_have_count(0)
    runs = demo.manual_runs()
    assert (runs[0]["id"], runs[0]["status"]) == (run, "succeeded")


def test_rejecting_a_waiting_plan_places_nothing(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    run, _, waiting = awaiting(browser, demo, request)
    waiting.get_by_role("button", name="Reject").click()
    expect(waiting.locator(".approval")).to_have_count(0)
    expect(waiting).to_contain_text("plan rejected")
    expect(waiting).not_to_have_class(re.compile(r"\battention-0\b"))  # a choice, not a failure
    runs = demo.manual_runs()
    assert (runs[0]["id"], runs[0]["status"]) == (run, "rejected")


def test_the_price_jump_guard_can_be_forced_with_a_warning(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    demo.sql("UPDATE price_marks SET price = price * 2 WHERE portfolio_id = $1", demo.maker)
    watched = open_page(browser, demo, request)
    sign_in(watched, fragment=f"#/p/{demo.maker}")
    page = watched.page
    page.get_by_role("button", name="Rebalance now…").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Dry run").check()
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.locator("#run-result")).to_contain_text("failed")
    expect(dialog).to_contain_text("price-jump guard")
    watched.screenshot(SHOTS / "desktop-force.png")
    expect(dialog).not_to_contain_text("null")
    force = dialog.get_by_role("button", name="Run anyway, passing the guard")
    expect(force).to_be_disabled()  # not before the warning is acknowledged
    dialog.get_by_label("I have checked the prices").check()
    force.click()
    expect(dialog.locator("#run-result")).to_contain_text("Dry run completed")


def test_a_safety_field_error_shows_at_its_field(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, demo, request)
    sign_in(watched, fragment="#/new")
    page = watched.page
    for key in (
        "approval",
        "approvalTtlSeconds",
        "approvalTolerancePct",
        "maxTradePercent",
        "sellMode",
        "priceJumpGuardPct",
    ):
        expect(page.locator(f"#f-{key}-hint")).not_to_be_empty()
    page.get_by_label("Name").fill("Bad guard")
    page.get_by_label("Price-jump guard").fill("5000")
    page.get_by_label("Approval expires after").fill("0")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.locator("#f-priceJumpGuardPct-error")).not_to_be_empty()
    expect(page.locator("#f-approvalTtlSeconds-error")).not_to_be_empty()
    expect(page.get_by_label("Price-jump guard")).to_have_attribute("aria-invalid", "true")
    names = [p["name"] for p in demo.call("GET", "/api/portfolios/manage")[1]["portfolios"]]
    assert "Bad guard" not in names


def test_the_read_only_token_sees_the_plan_but_no_control(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    run = demo.park()
    try:
        assert demo.call("POST", "/api/scheduler", {"action": "halt"})[0] == 200
        watched = open_page(browser, demo, request)
        sign_in(watched, READ_TOKEN)
        page = watched.page
        expect(card(page, demo.manual).locator("table.plan")).to_be_visible()
        expect(page.locator("#halt")).to_contain_text("Halted")
        for name in ("Approve", "Reject", "Resume trading", "Halt all trading…"):
            expect(page.get_by_role("button", name=name)).to_have_count(0)
    finally:
        demo.call("POST", "/api/scheduler", {"action": "resume"})
        demo.call("POST", f"/api/runs/{run}/reject")


def test_notifications_list_the_deliveries_and_their_last_error(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    watched = open_page(browser, demo, request)
    sign_in(watched)
    page = watched.page
    page.get_by_role("link", name="Notifications").click()
    rows = page.locator("#deliveries tbody tr")
    expect(rows.first).to_be_visible()
    listed = demo.call("GET", "/api/notifications?limit=50")[1]["deliveries"]
    expect(rows).to_have_count(len(listed))
    awaiting = rows.filter(has_text="run.awaiting_approval").first
    expect(awaiting).to_contain_text("127.0.0.1")  # the receiver, by host, never its URL
    expect(awaiting.get_by_role("link", name="Balanced crypto")).to_be_visible()
    expect(page.locator("#deliveries")).not_to_contain_text("/hook")
    page.evaluate("window.scrollTo(0, 0)")
    watched.screenshot(SHOTS / "desktop-notifications.png")
    pending = [d for d in listed if d["status"] == "pending" and d["lastError"]]
    if pending:  # an attempt was refused: it says why
        expect(page.locator("#deliveries")).to_contain_text(pending[0]["lastError"][:20])


def test_notifications_without_deliveries_say_how_to_add_a_webhook(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    demo.sql("DELETE FROM notify_deliveries")
    watched = open_page(browser, demo, request)
    sign_in(watched, fragment="#/notifications")
    expect(watched.page.locator("#notifications-empty")).to_contain_text("[[notify.webhook]]")


def test_a_phone_shows_the_halt_banner_and_a_waiting_card_without_scrolling_sideways(
    browser: Browser, demo: Demo, request: pytest.FixtureRequest
) -> None:
    run = demo.park()
    try:
        assert demo.call("POST", "/api/scheduler", {"action": "halt"})[0] == 200
        watched = open_page(browser, demo, request, PHONE)
        sign_in(watched)
        expect(watched.page.locator("#halt")).to_be_visible()
        expect(card(watched.page, demo.manual).locator("table.plan")).to_be_visible()
        assert watched.horizontal_overflow() == 0
        watched.screenshot(SHOTS / "phone-safety.png")
        watched.page.goto(f"{demo.proc.url}/#/notifications")
        expect(watched.page.locator("h1")).to_have_text("Notifications")
        watched.screenshot(SHOTS / "phone-notifications.png")
        assert watched.horizontal_overflow() == 0
    finally:
        demo.call("POST", "/api/scheduler", {"action": "resume"})
        demo.call("POST", f"/api/runs/{run}/reject")


def test_no_console_error_and_no_foreign_request() -> None:
    assert_clean(PAGES, EXPECTED_REFUSALS)
