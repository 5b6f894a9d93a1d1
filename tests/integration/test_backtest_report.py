"""The HTML report in headless Chromium: one chart per figure, no console error, no network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from rebalancerd.cli.main import main
from tests.browser_support import launch

STRATEGIES = ["periodic:weekly", "band:5", "band-rel:25", "hold", "periodic:0 9 * * 1"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as chromium:  # Debian's chromium; skips without one
        yield chromium


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "backtest.html"
    flags = [f"--strategy={s}" for s in STRATEGIES]
    code = main(["backtest", "--simulate", "400", "--seed", "2", "--weights",
                 "BTC=40,ETH=30,SOL=20,ADA=10", *flags, "--report", str(path)])  # fmt: skip
    assert code == 0
    return path


@pytest.mark.parametrize("width", [1280, 390])
def test_every_figure_shows_one_chart(browser: Browser, report: Path, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 800})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith("file:") else problems.append(r.url))
    page.goto(report.as_uri())
    figures = page.locator("figure")
    assert figures.count() == 2 + len(STRATEGIES)  # value, drawdown, one drift per strategy
    for i in range(figures.count()):
        figure = figures.nth(i)
        assert figure.locator("svg").count() == 1
        box = figure.locator("svg").bounding_box()
        assert box is not None and box["width"] > 0.8 * min(width, 1100) / (2 if width > 900 else 1)
        lines = figure.locator("polyline")
        assert lines.count() >= 1
        assert all(len((lines.nth(j).get_attribute("points") or "").split()) > 100
                   for j in range(lines.count()))  # fmt: skip
    # Every strategy is in the value chart; nothing is wider than a phone's screen.
    assert figures.first.locator("polyline").count() == len(STRATEGIES)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.locator("table tbody tr").count() == len(STRATEGIES)
    assert problems == []
    page.close()
