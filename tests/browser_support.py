"""Real headless Chromium for tests: pip's Playwright driving Debian's `chromium` package.

No browser is downloaded: Playwright launches the executable at CHROMIUM (override with
$CHROMIUM_PATH). `.ci/run` installs the package when it is missing. Use `launch()` for a
browser per module and `Watched` for a page that records console errors and every request
that left for another host.

    with launch() as browser:                       # one per module: it takes ~0.5 s to start
        watched = Watched.open(browser, "http://127.0.0.1:8080")   # or "file://" for a file
        watched.page.goto(...)
        assert watched.console_errors == [] and watched.foreign == []
        assert watched.horizontal_overflow() == 0    # e.g. at PHONE width
        watched.close()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",  # no calls home: a foreign request is then the page's
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def launch() -> Iterator[Browser]:
    """A headless Chromium for the duration of the block; skips the test without one."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page in a fresh context (its own sessionStorage), with what it logged and fetched."""

    context: BrowserContext
    page: Page
    origin: str
    console_errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # requests to any other host
    requests: list[str] = field(default_factory=list)
    test: str = ""  # the test that opened it, for refusals that test makes on purpose

    @classmethod
    def open(
        cls, browser: Browser, origin: str, viewport: dict[str, int] = DESKTOP, test: str = ""
    ) -> Watched:
        context = browser.new_context(viewport=viewport)
        watched = cls(context, context.new_page(), origin, test=test)
        watched.page.on("console", watched._console)
        watched.page.on("pageerror", lambda exc: watched.console_errors.append(f"pageerror: {exc}"))
        watched.page.on("request", watched._request)
        return watched

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        local = parts.scheme in ("data", "blob", "about") or (
            parts.scheme == "file" and self.origin == "file://"  # a report opened from disk
        )
        if not local and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def close(self) -> None:
        self.context.close()

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: no horizontal scroll)."""
        width: int = self.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        return width

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path


def assert_clean(pages: list[Watched], expected_refusals: dict[str, str]) -> None:
    """No page asked another host for anything, and none logged a console error but the
    refusal its test provoked on purpose (`expected_refusals`: test name → text); closes them."""
    assert pages, "run with the other tests of this module"
    for watched in pages:
        assert watched.foreign == [], watched.foreign
        allowed = expected_refusals.get(watched.test)
        errors = [e for e in watched.console_errors if not (allowed and allowed in e)]
        assert errors == [], (watched.test, errors)
        watched.close()
