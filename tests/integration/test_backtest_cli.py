"""`rebalancerd backtest` in-process: table, JSON, report file, bad input; the pair refresh."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from rebalancerd.backtest import pairs
from rebalancerd.cli.main import main
from tests import fake_kraken_data as data
from tests.fake_kraken import FakeKraken

SIM = ("backtest", "--simulate", "30", "--seed", "5", "--weights", "BTC=40,ETH=30,SOL=20,ADA=10")


def test_the_table_names_every_default_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(list(SIM)) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar when stderr is not a terminal
    rows = {line.split()[0] for line in out.splitlines()[4:]}
    assert rows == {"STRATEGY", "periodic:weekly", "band:5", "band-rel:25", "hold"}


def test_json_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "out.html"
    code = main([*SIM, "--json", "--fee-tier", "50k", "--strategy", "band:2", "hold",
                 "--strategy", "periodic:0 9 * * 1", "--report", str(report)])  # fmt: skip
    assert code == 0
    body = orjson.loads(capsys.readouterr().out)
    assert body["settings"]["fee"] == "0.0024"
    labels = [s["strategy"] for s in body["strategies"]]
    assert labels == ["band:2", "hold", "periodic:0 9 * * 1"]
    first = body["strategies"][0]
    assert Decimal(first["finalValue"]) > 0 and first["rebalances"] > 0
    assert first["maxDrift"] >= first["meanDrift"] > 0
    page = report.read_text("utf-8")
    assert (
        page.count("<figure>") == 2 + 3
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--weights", "BTC=40,ETH=30"], "weights sum to 70, not 100"),
        (["--weights", "BTC=50,BTC=50"], "BTC is given twice"),
        (["--weights", "BTC:100"], "expected SYMBOL=PERCENT"),
        (["--weights", "BTC=100", "--strategy", "monthly"], "expected periodic:"),
        (["--weights", "BTC=100", "--fee", "0.5"], "a fee is a fraction"),
        (["--weights", "BTC=100", "--fee", "0.001", "--fee-tier", "starter"], "not allowed with"),
        (["--weights", "BTC=100", "--from", "2024-13-01"], "expected YYYY-MM-DD"),
        (["--weights", "NOPE=100"], "no EUR pair rules for NOPE"),
        (["--weights", "EUR=100"], "at least one asset besides EUR"),
        (["--weights", "BTC=100", "--to", "2024-01-01"], "--to does not apply to --simulate"),
        (["--weights", "BTC=100", "--prices", "/nonexistent"], "not allowed with|no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_78(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["backtest", "--simulate", "10", *flags])
    except SystemExit as exited:  # argparse's refusals exit from inside the parser
        code = exited.code  # type: ignore[assignment]
    assert code == 78
    err = capsys.readouterr().err
    assert err.startswith("rebalancerd: ") and err.count("\n") == 1
    assert re.search(says, err), err


def test_a_missing_price_folder_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--prices", "/nonexistent", "--weights", "BTC=100"]) == 78
    assert (
        capsys.readouterr().err == "rebalancerd: backtest: /nonexistent: no such file or folder\n"
    )


def test_no_minimums_takes_any_symbol(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", "--simulate", "10", "--weights", "NEWCOIN=50,BTC=50", "--no-minimums",
                 "--json"])  # fmt: skip
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)["strategies"]) == 4


async def test_pair_rules_refresh_from_asset_pairs(tmp_path: Path) -> None:
    target = tmp_path / "pairs.json"
    async with FakeKraken() as fake:
        code = await asyncio.to_thread(
            pairs.main, ["--refresh", "--url", fake.url, "--output", str(target)]
        )
    assert code == 0
    book = pairs.load_book(target)
    eur = {k: row for k, row in data.PAIRS.items() if row["quote"] == "ZEUR"}
    assert {r.pair for r in book.rules.values()} == set(eur)
    assert book.rules["BTC"].ordermin == Decimal(eur["XXBTZEUR"]["ordermin"])
    assert book.rules["DOGE"].lot_decimals == eur["XDGEUR"]["lot_decimals"]
    assert book.symbol_of("XBTEUR") == "BTC" and book.symbol_of("XDGEUR") == "DOGE"
    assert book.refreshed_at
    shipped = pairs.load_book()  # the snapshot in the package reads the same way
    assert shipped.rules == book.rules


def test_the_readme_example_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    section = readme[readme.index("\n## Backtest\n") :]
    command = re.findall(r"```sh\n(.*?)```", section, re.S)[0].strip()
    words = shlex.split(command)
    assert words[:2] == ["rebalancerd", "backtest"] and "--simulate" in words
    words[words.index("--simulate") + 1] = "60"  # the same command, shorter
    words[words.index("--report") + 1] = str(tmp_path / "backtest.html")
    assert main(words[1:]) == 0
    assert "periodic:weekly" in capsys.readouterr().out
    assert (tmp_path / "backtest.html").stat().st_size > 10_000


def test_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rebalancerd", *SIM[:2], "400", *SIM[3:]],
            stdout=subprocess.PIPE, stderr=terminal, timeout=60, check=True,
        )  # fmt: skip
        os.close(terminal)
        drawn = b""
        while chunk := _read(controller):
            drawn += chunk
    finally:
        os.close(controller)
    assert b"\rbacktest [" in drawn and b"%" in drawn
    assert b"backtest [" not in done.stdout and b"periodic:weekly" in done.stdout


def _read(fd: int) -> bytes:
    import os

    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's other end is closed and drained
        return b""
