"""`rebalancerd backtest`: its flags, and a bad value as one line (exit 78, like every flag)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rebalancerd.backtest.strategies import Strategy, parse_strategy
from rebalancerd.exchange.names import ALIASES

# Kraken Pro's taker fees by 30-day volume (USD), kraken.com/features/fee-schedule; check them
# there. `starter` is the daemon's own default until TradeVolume answers (DEFAULT_TAKER_FEE).
FEE_TIERS = {
    "starter": "0.0040", "10k": "0.0035", "50k": "0.0024", "100k": "0.0022",
    "250k": "0.0020", "500k": "0.0018", "1m": "0.0016", "2.5m": "0.0014",
    "5m": "0.0012", "10m": "0.0010",
}  # fmt: skip
EPILOG = """strategies (repeat --strategy; default: periodic:weekly band:5 band-rel:25 hold):
  periodic:weekly|daily|monthly|hourly   at a schedule's slots, anchored at the first step
  periodic:"0 9 * * 1"                   at a cron expression's times (UTC)
  band:N                                 when a weight drifts more than N pp from its target
  band-rel:N                             when a weight drifts more than N % of its target
  hold                                   buy once, never rebalance
prices: Kraken OHLCVT files (PAIR_MINUTES.csv, e.g. XBTEUR_60.csv) or folders of them."""


def add_command(sub: Any) -> None:
    """Add `backtest` to the `rebalancerd` parser."""
    text = "replay prices through the planner: compare schedules and bands, with fees"
    cmd: argparse.ArgumentParser = sub.add_parser(
        "backtest",
        help=text,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--prices", nargs="+", type=Path, metavar="PATH", help="CSV files or folders"
    )
    source.add_argument(
        "--simulate",
        type=_positive_int,
        metavar="DAYS",
        help="offline: correlated random-walk hourly prices for DAYS days",
    )
    cmd.add_argument("--seed", type=int, default=1, help="seed of --simulate (default 1)")
    cmd.add_argument(
        "--weights",
        type=weights,
        required=True,
        metavar="BTC=40,ETH=30,...",
        help="target weights in percent, summing to 100 (EUR=N keeps cash)",
    )
    cmd.add_argument(
        "--strategy",
        action="extend",
        nargs="+",
        type=_strategy,
        metavar="SPEC",
        help="strategies to compare (repeatable; default: the four kinds below)",
    )
    cmd.add_argument("--from", dest="start", type=_date, metavar="YYYY-MM-DD", help="first day")
    cmd.add_argument("--to", dest="end", type=_date, metavar="YYYY-MM-DD", help="last day")
    cmd.add_argument(
        "--value", type=_money, default=Decimal(10000), help="EUR at the start (10000)"
    )
    fee = cmd.add_mutually_exclusive_group()
    fee.add_argument("--fee", type=_fraction, help="taker fee as a fraction (default 0.0040)")
    fee.add_argument("--fee-tier", choices=list(FEE_TIERS), help="Kraken Pro taker fee tier")
    cmd.add_argument("--spread-bps", type=_bps, default=Decimal(10), help="bid-ask spread (10)")
    cmd.add_argument(
        "--threshold",
        type=_money,
        default=Decimal(10),
        help="min EUR gap of an asset before it is traded (10, as the daemon)",
    )
    cmd.add_argument("--max-orders", type=_positive_int, help="max orders per rebalance")
    cmd.add_argument(
        "--no-minimums",
        action="store_true",
        help="ignore ordermin, costmin and lot decimals (the frictionless ideal)",
    )
    cmd.add_argument(
        "--max-gap",
        type=_hours,
        default=24 * 3600,
        metavar="HOURS",
        help="longest run of missing candles taken as an unchanged price (24)",
    )
    cmd.add_argument("--pairs", type=Path, help="pair rules JSON (default: the shipped snapshot)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.add_argument("--report", type=Path, metavar="FILE.html", help="write an HTML report")
    cmd.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from rebalancerd.backtest.run import main

    return main(args)


def weights(text: str) -> dict[str, Decimal]:
    """`BTC=40,ETH=30,...` as percent by plain symbol (XBT reads BTC)."""
    out: dict[str, Decimal] = {}
    for part in text.split(","):
        symbol, sep, number = part.partition("=")
        symbol = ALIASES.get(symbol.strip().upper(), symbol.strip().upper())
        try:
            weight = Decimal(number.strip())
        except InvalidOperation:
            weight = Decimal("NaN")
        if not sep or not symbol.isalnum() or not weight.is_finite() or weight < 0:
            raise argparse.ArgumentTypeError(f"expected SYMBOL=PERCENT,..., not {part.strip()!r}")
        if symbol in out:
            raise argparse.ArgumentTypeError(f"{symbol} is given twice")
        out[symbol] = weight
    if all(symbol == "EUR" for symbol in out):
        raise argparse.ArgumentTypeError("at least one asset besides EUR is needed")
    total = sum(out.values(), Decimal(0))
    if total != 100:
        raise argparse.ArgumentTypeError(f"weights sum to {total}, not 100")
    return out


def _strategy(text: str) -> Strategy:
    try:
        return parse_strategy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
    return value


def _money(text: str) -> Decimal:
    value = _number(text, "expected EUR")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected EUR of 0 or more, not {text!r}")
    return value


def _fraction(text: str) -> Decimal:
    value = _number(text, "expected a fraction such as 0.0040")
    if not Decimal(0) <= value < Decimal("0.1"):
        raise argparse.ArgumentTypeError(
            f"a fee is a fraction in [0, 0.1) (0.0040 = 0.40 %), not {text}"
        )
    return value


def _bps(text: str) -> Decimal:
    value = _number(text, "expected basis points")
    if not Decimal(0) <= value <= Decimal(1000):
        raise argparse.ArgumentTypeError(f"the spread is 0 to 1000 bps, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


def _hours(text: str) -> int:
    value = _number(text, "expected hours")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected hours of 0 or more, not {text!r}")
    return int(value * 3600)


def _date(text: str) -> datetime:
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, not {text!r}") from None
    return day.replace(tzinfo=UTC)
