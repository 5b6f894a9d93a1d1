"""The Kraken OHLCVT reader on files in the real format, and each fault as one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancerd.backtest.prices import PriceError
from tests.backtest_support import candles, run, write_csv

T0 = 1704067200  # 2024-01-01 00:00 UTC, a Monday
HOUR, DAY = 3600, 86400
WEIGHTS = ("--weights", "BTC=60,ETH=40", "--strategy", "hold")


def hourly(n: int, first: float, start: int = T0) -> list[list[object]]:
    return candles(start, 60, [first + i for i in range(n)])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_csv(tmp_path / "XBTEUR_60.csv", hourly(24 * 10, 40000.5))
    write_csv(tmp_path / "ETHEUR_60.csv", hourly(24 * 10, 2500.25))
    write_csv(tmp_path / "SOLEUR_60.csv", hourly(3, 100.0))  # another pair: not needed, ignored
    (tmp_path / "README.txt").write_text("not a csv", "ascii")
    return tmp_path


def test_a_folder_of_hourly_files(folder: Path) -> None:
    prices = run("--prices", str(folder), *WEIGHTS).prices
    assert prices.step == HOUR and len(prices) == 240
    assert prices.times[0] == T0 + HOUR  # a candle's close is known at its end
    assert prices.closes["BTC"][:2] == [40000.5, 40001.5]
    assert prices.closes["ETH"][-1] == 2500.25 + 239


def test_files_of_different_steps_are_resampled_to_the_coarsest(tmp_path: Path) -> None:
    btc = write_csv(tmp_path / "XBTEUR_60.csv", hourly(24 * 5, 100.0))
    eth = write_csv(tmp_path / "ETHEUR_1440.csv", candles(T0, 1440, [10.0, 11.0, 12.0, 13.0]))
    prices = run("--prices", str(btc), str(eth), *WEIGHTS).prices
    assert prices.step == DAY
    assert prices.times == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY]
    assert prices.closes["BTC"] == [123.0, 147.0, 171.0, 195.0]  # each day's last hourly close
    assert prices.closes["ETH"] == [10.0, 11.0, 12.0, 13.0]


def test_from_and_to_clip_the_period(folder: Path) -> None:
    prices = run(
        "--prices", str(folder), *WEIGHTS, "--from", "2024-01-03", "--to", "2024-01-04"
    ).prices
    assert prices.times[0] == T0 + 2 * DAY and prices.times[-1] == T0 + 4 * DAY


def test_quarterly_files_of_one_pair_join(tmp_path: Path) -> None:
    write_csv(tmp_path / "XBTEUR_60.csv", hourly(48, 100.0))
    later = tmp_path / "q2"
    later.mkdir()
    write_csv(later / "XBTEUR_60.csv", hourly(48, 148.0, T0 + 48 * HOUR))
    write_csv(tmp_path / "ETHEUR_60.csv", hourly(96, 10.0))
    prices = run("--prices", str(tmp_path), str(later), *WEIGHTS).prices
    assert len(prices) == 96 and prices.closes["BTC"] == [100.0 + i for i in range(96)]


def test_windows_line_ends_and_a_trailing_blank_line_are_read(tmp_path: Path) -> None:
    text = "".join(",".join(map(str, row)) + "\r\n" for row in hourly(24, 100.0)) + "\r\n"
    (tmp_path / "XBTEUR_60.csv").write_bytes(text.encode("ascii"))
    write_csv(tmp_path / "ETHEUR_60.csv", hourly(24, 10.0))
    assert run("--prices", str(tmp_path), *WEIGHTS).prices.closes["BTC"][-1] == 123.0


def test_short_gaps_keep_the_last_close(tmp_path: Path) -> None:
    rows = hourly(48, 100.0)
    del rows[10:15]  # five hours without trades: Kraken writes no candle
    write_csv(tmp_path / "XBTEUR_60.csv", rows)
    write_csv(tmp_path / "ETHEUR_60.csv", hourly(48, 10.0))
    closes = run("--prices", str(tmp_path), *WEIGHTS).prices.closes["BTC"]
    assert len(closes) == 48 and closes[9:16] == [109.0] * 6 + [115.0]


def _fault(tmp_path: Path, name: str) -> list[str]:
    """Files that each break one rule; returns the --prices arguments."""
    eth = write_csv(tmp_path / "ETHEUR_60.csv", hourly(72, 10.0))
    btc_rows = hourly(72, 100.0)
    if name == "gap":
        del btc_rows[20:50]
    elif name == "unsorted":
        btc_rows[5], btc_rows[6] = btc_rows[6], btc_rows[5]
    elif name == "short row":
        btc_rows[7] = btc_rows[7][:5]
    elif name == "not a number":
        btc_rows[3][4] = "n/a"
    elif name == "zero close":
        btc_rows[3][4] = "0.0"
    elif name == "header":
        btc_rows.insert(0, ["time", "open", "high", "low", "close", "volume", "trades"])
    btc = tmp_path / "XBTEUR_60.csv"
    if name == "unknown pair":
        files = [write_csv(tmp_path / "FOOEUR_60.csv", btc_rows)]
    elif name == "not EUR":
        files = [write_csv(tmp_path / "XBTUSD_60.csv", btc_rows)]
    elif name == "bad name":
        files = [write_csv(tmp_path / "bitcoin.csv", btc_rows)]
    elif name == "overlap":
        (tmp_path / "q2").mkdir()
        later = hourly(10, 1.0, T0 + 70 * HOUR)
        files = [write_csv(btc, btc_rows), write_csv(tmp_path / "q2" / "XBTEUR_60.csv", later)]
    elif name == "two intervals":
        daily = candles(T0, 1440, [1.0, 2.0])
        files = [write_csv(btc, btc_rows), write_csv(tmp_path / "XBTEUR_1440.csv", daily)]
    elif name == "missing":
        files = []
    elif name == "apart":
        files = [write_csv(btc, hourly(24, 1.0, T0 + 100 * DAY))]
    elif name == "empty":
        files = [write_csv(btc, [])]
    else:
        files = [write_csv(btc, btc_rows)]
    return [str(p) for p in [*files, eth]]


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            "gap",
            r"XBTEUR_60\.csv: no candles from 2024-01-01 20:00 UTC to 2024-01-03 02:00 UTC "
            r"\(30 h; --max-gap is 24 h\)",
        ),
        ("unsorted", r"XBTEUR_60\.csv line 7: 2024-01-01 05:00 UTC is not after the row before"),
        ("short row", r"XBTEUR_60\.csv line 8: expected 7 fields .* got 5"),
        ("not a number", r"XBTEUR_60\.csv line 4: time or close is not a number"),
        ("zero close", r"line 4: close must be a positive number"),
        ("header", r"line 1: time or close is not a number"),
        ("unknown pair", r"FOOEUR_60\.csv: unknown pair FOOEUR"),
        ("not EUR", r"XBTUSD is not a EUR pair"),
        ("bad name", r"bitcoin\.csv: not named like a Kraken file"),
        ("overlap", r"XBTEUR_60\.csv overlaps another BTC file from 2024-01-03 23:00 UTC"),
        ("two intervals", r"BTC: files of different intervals"),
        ("missing", r"no price file for BTC \(e\.g\. BTCEUR_60\.csv\)"),
        ("apart", r"the price files share no period"),
        ("empty", r"XBTEUR_60\.csv: no rows"),
    ],
)
def test_faults_are_one_clear_line(tmp_path: Path, fault: str, says: str) -> None:
    with pytest.raises(PriceError, match=says) as caught:
        run("--prices", *_fault(tmp_path, fault), *WEIGHTS, "--max-gap", "24")
    assert "\n" not in str(caught.value)


def test_a_longer_max_gap_accepts_the_gap(tmp_path: Path) -> None:
    args = _fault(tmp_path, "gap")
    prices = run("--prices", *args, *WEIGHTS, "--max-gap", "48").prices
    assert len(prices) == 72
