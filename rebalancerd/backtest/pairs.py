"""Kraken pair rules for backtests: a snapshot shipped in the package, and how to refresh it.

The snapshot keeps AssetPairs rows (ordermin, costmin, lot and pair decimals) of EUR pairs and
the Assets altnames that name them, so a backtest needs no network. Refresh it with
`python -m rebalancerd.backtest.pairs --refresh` (public endpoints, no key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from rebalancerd.exchange.kraken.parse import pair_rules
from rebalancerd.exchange.names import ALIASES, AssetNames
from rebalancerd.exchange.protocol import PairRules

SNAPSHOT = "pairs.json"
KEPT = (
    "altname", "wsname", "base", "quote", "ordermin", "costmin", "lot_decimals",
    "pair_decimals", "cost_decimals", "tick_size", "status",
)  # fmt: skip
# --no-minimums: no ordermin, no costmin and volumes to 16 places, the frictionless ideal.
FREE_LOT_DECIMALS = 16


@dataclass(frozen=True)
class PairBook:
    """Pair rules by plain base symbol (all quoted in EUR), and the names files may use."""

    rules: Mapping[str, PairRules]
    names: Mapping[str, str]  # XBTEUR, XXBTZEUR, BTCEUR, XBT/EUR -> BTC
    refreshed_at: str

    def symbol_of(self, pair_name: str) -> str | None:
        """The plain base symbol of a pair named like a Kraken file (XBTEUR -> BTC)."""
        return self.names.get(pair_name.upper().replace("/", ""))

    def for_symbols(self, symbols: Sequence[str], minimums: bool) -> dict[str, PairRules]:
        """Rules of these symbols; without minimums, none and fine lots (unknown symbols too)."""
        out: dict[str, PairRules] = {}
        for symbol in symbols:
            known = self.rules.get(symbol)
            if not minimums:
                out[symbol] = _free(symbol, known)
            elif known is None:
                raise KeyError(symbol)
            else:
                out[symbol] = known
        return out


def _free(symbol: str, known: PairRules | None) -> PairRules:
    base = known or PairRules(
        f"{symbol}EUR", f"{symbol}EUR", symbol, "EUR", Decimal(0), Decimal(0),
        FREE_LOT_DECIMALS, 8, Decimal("1E-8"), "online",
    )  # fmt: skip
    return replace(base, ordermin=Decimal(0), costmin=Decimal(0), lot_decimals=FREE_LOT_DECIMALS)


def load_book(path: Path | None = None, quote: str = "EUR") -> PairBook:
    """The shipped snapshot (or `path`) as a PairBook of the pairs quoted in `quote`."""
    if path is None:
        text = resources.files(__package__).joinpath(SNAPSHOT).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    data = json.loads(text, parse_float=Decimal)
    names = AssetNames(data["assets"])
    rules: dict[str, PairRules] = {}
    aliases: dict[str, str] = {}
    for key, row in data["pairs"].items():
        base, quoted = names.plain(row["base"]), names.plain(row["quote"])
        if quoted != quote:
            continue
        # Today's market status says nothing about the past: history replays as tradable.
        rules[base] = replace(pair_rules(key, row, base, quoted), status="online")
        for name in (key, row.get("altname", key), row.get("wsname", ""), base + quoted):
            aliases[str(name).upper().replace("/", "")] = base
    for alias, plain in ALIASES.items():  # XBTEUR is a file name; BTC is the symbol
        if plain in rules:
            aliases.setdefault(alias + quote, plain)
    return PairBook(rules, aliases, str(data.get("refreshedAt", "")))


def fetch_snapshot(url: str, quote: str = "EUR", timeout: float = 20.0) -> dict[str, Any]:
    """Read Kraken's public Assets and AssetPairs and keep the `quote` pairs' rules."""
    assets = _public(url, "Assets", timeout)
    pairs = _public(url, "AssetPairs", timeout)
    names = AssetNames.from_assets(assets)
    kept = {
        key: {k: row[k] for k in KEPT if k in row}
        for key, row in sorted(pairs.items())
        if names.plain(str(row.get("quote", ""))) == quote and "." not in key
    }
    used = {row[side] for row in kept.values() for side in ("base", "quote")}
    return {
        "source": f"{url}/0/public/AssetPairs",
        "refreshedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "assets": {a: str(assets[a].get("altname", a)) for a in sorted(used) if a in assets},
        "pairs": kept,
    }


def _public(url: str, method: str, timeout: float) -> dict[str, Any]:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        f"{url.rstrip('/')}/0/public/{method}", headers={"User-Agent": "rebalancerd-backtest"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
        body = json.loads(reply.read(), parse_float=str, parse_int=int)
    if body.get("error"):
        raise RuntimeError(f"{method}: {', '.join(body['error'])}")
    result: dict[str, Any] = body["result"]
    return result


def write_snapshot(snapshot: Mapping[str, Any], path: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot, indent=1, sort_keys=True, default=str) + "\n", "utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rebalancerd.backtest.pairs --refresh [--url URL] [--output FILE]`."""
    parser = argparse.ArgumentParser(
        prog="python -m rebalancerd.backtest.pairs", description=main.__doc__
    )
    parser.add_argument("--refresh", action="store_true", help="read Kraken's AssetPairs now")
    parser.add_argument("--url", default="https://api.kraken.com", help="Kraken REST base URL")
    parser.add_argument("--output", type=Path, help="where to write (default: the shipped file)")
    args = parser.parse_args(argv)
    if not args.refresh:
        book = load_book(args.output)
        print(f"{len(book.rules)} EUR pairs, refreshed {book.refreshed_at or 'never'}")
        return 0
    target = args.output or Path(str(resources.files(__package__).joinpath(SNAPSHOT)))
    try:
        snapshot = fetch_snapshot(args.url)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"pairs: cannot read {args.url}: {exc}", file=sys.stderr)
        return 1
    write_snapshot(snapshot, target)
    print(f"wrote {len(snapshot['pairs'])} EUR pairs to {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
