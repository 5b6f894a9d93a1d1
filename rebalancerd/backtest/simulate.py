"""Offline prices: correlated geometric random walks, hourly, from a seed (`--simulate DAYS`)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from rebalancerd.backtest.prices import Prices

HOUR = 3600
YEAR = 365.25 * 86400
# Rough annual volatilities and start prices (EUR); unknown coins get DEFAULT_VOL and 10 EUR.
VOLATILITY = {
    "BTC": 0.60, "ETH": 0.75, "SOL": 1.00, "ADA": 0.90, "DOGE": 1.10, "XRP": 0.90,
    "DOT": 0.90, "XTZ": 0.90, "USDT": 0.03,
}  # fmt: skip
START_PRICE = {
    "BTC": 40000.0, "ETH": 2500.0, "SOL": 100.0, "ADA": 0.5, "DOGE": 0.1, "XRP": 0.6,
    "DOT": 7.0, "XTZ": 1.0, "USDT": 0.92,
}  # fmt: skip
DEFAULT_VOL = 0.80
STABLE_VOL = 0.10  # below this a coin moves on its own, not with the market
CORRELATION = 0.6  # between any two non-stable coins, through one common market factor


def simulate(symbols: Sequence[str], days: int, seed: int, start: int, step: int = HOUR) -> Prices:
    """Driftless correlated log-normal walks of `symbols`, `days` long, closes every `step`."""
    rng = random.Random(seed)
    steps = max(1, round(days * 86400 / step))
    dt = step / YEAR
    vols = [VOLATILITY.get(s, DEFAULT_VOL) for s in symbols]
    betas = [math.sqrt(CORRELATION) if v >= STABLE_VOL else 0.0 for v in vols]
    logs = [math.log(START_PRICE.get(s, 10.0)) for s in symbols]
    closes: list[list[float]] = [[] for _ in symbols]
    for _ in range(steps + 1):
        for i, log_price in enumerate(logs):
            closes[i].append(float(f"{math.exp(log_price):.6g}"))  # 6 digits, like a ticker
        market = rng.gauss(0.0, 1.0)
        for i, (vol, beta) in enumerate(zip(vols, betas, strict=True)):
            shock = beta * market + math.sqrt(1 - beta * beta) * rng.gauss(0.0, 1.0)
            logs[i] += vol * math.sqrt(dt) * shock - 0.5 * vol * vol * dt
    first = -(-start // step) * step
    times = [first + k * step for k in range(steps + 1)]
    return Prices(step, times, dict(zip(symbols, closes, strict=True)))
