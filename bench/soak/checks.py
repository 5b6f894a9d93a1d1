"""The soak's invariants, each a (name, ok, detail) from the database and the fake Kraken."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import asyncpg

from bench.soak.chaos import Sample
from tests.fake_kraken import FakeKraken

UNRESOLVED = ("intent", "placed", "unknown")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def no_order_twice(fake: FakeKraken) -> Check:
    """Every order the fake placed carries a client order id, and no id was placed twice."""
    ids = Counter(o.cl_ord_id for o in fake.placed)
    twice = {coid: n for coid, n in ids.items() if n > 1}
    missing = ids.get(None, 0)
    ok = not twice and not missing
    detail = f"{len(fake.placed)} orders placed, {len(ids)} distinct client order ids"
    if twice:
        detail += f"; placed twice: {sorted(twice)[:5]}"
    if missing:
        detail += f"; {missing} without a client order id"
    return Check("no client order id placed twice", ok, detail)


async def orders_match_intents(pool: asyncpg.Pool, fake: FakeKraken) -> Check:
    """Each placed order has a committed intent that says filled; nothing recorded as
    not placed (or rejected) is at the exchange."""
    rows = await pool.fetch("SELECT client_order_id, status FROM order_intents")
    status = {r["client_order_id"]: r["status"] for r in rows}
    placed = {o.cl_ord_id for o in fake.placed}
    no_intent = sorted(c for c in placed if c not in status)
    wrong = sorted(c for c in placed if status.get(c) not in (None, "filled", *UNRESOLVED))
    ghost = sorted(c for c, s in status.items() if s == "filled" and c not in placed)
    ok = not no_intent and not wrong and not ghost
    detail = (
        f"{len(status)} intents; placed without intent {len(no_intent)}, placed but recorded "
        f"not placed/rejected {len(wrong)}, recorded filled but never placed {len(ghost)}"
    )
    return Check("orders at the exchange match the intents", ok, detail)


async def runs_finished(pool: asyncpg.Pool) -> Check:
    """No open run; every run closed with its history row."""
    row = await pool.fetchrow(
        """SELECT count(*) AS runs,
                  count(*) FILTER (WHERE r.finished_at IS NULL) AS open,
                  count(*) FILTER (WHERE r.finished_at IS NOT NULL AND h.id IS NULL) AS unrecorded,
                  count(*) FILTER (WHERE h.success) AS succeeded,
                  count(*) FILTER (WHERE h.errors::text LIKE '%interrupted%') AS reconciled
             FROM rebalance_runs r LEFT JOIN rebalance_history h ON h.id = r.history_id"""
    )
    ok = row["runs"] > 0 and row["open"] == 0 and row["unrecorded"] == 0
    detail = (
        f"{row['runs']} runs: {row['succeeded']} succeeded, {row['reconciled']} reconciled "
        f"after a kill; open {row['open']}, finished without history {row['unrecorded']}"
    )
    return Check("every run recorded and finished", ok, detail)


async def intents_settled(pool: asyncpg.Pool) -> Check:
    """No order of a finished run is still of unknown outcome."""
    count = await pool.fetchval(
        """SELECT count(*) FROM order_intents i JOIN rebalance_runs r ON r.id = i.run_id
            WHERE r.finished_at IS NOT NULL AND i.status = ANY($1::text[])""",
        list(UNRESOLVED),
    )
    return Check("no order left of unknown outcome", count == 0, f"{count} unresolved intents")


async def none_stuck(pool: asyncpg.Pool, recent_seconds: float) -> Check:
    """Every enabled portfolio is due in the future or ran (started) recently."""
    rows = await pool.fetch(
        """SELECT p.id, p.next_rebalance_at, max(r.started_at) AS last_start
             FROM portfolios p LEFT JOIN rebalance_runs r ON r.portfolio_id = p.id
            WHERE p.rebalance_enabled
            GROUP BY p.id, p.next_rebalance_at
           HAVING NOT (p.next_rebalance_at > now()
                       OR max(r.started_at) > now() - make_interval(secs => $1::float8))""",
        recent_seconds,
    )
    never = await pool.fetchval(
        """SELECT count(*) FROM portfolios p WHERE p.rebalance_enabled AND NOT EXISTS
             (SELECT 1 FROM rebalance_history h WHERE h.portfolio_id = p.id AND h.success)"""
    )
    detail = f"{len(rows)} stuck; {never} never succeeded"
    if rows:
        detail += f"; e.g. {rows[0]['id']} due {rows[0]['next_rebalance_at']}"
    return Check("no portfolio stuck", not rows, detail)


async def run_durations(pool: asyncpg.Pool) -> str:
    """One line: how long runs took (history.duration), to see faults' cost."""
    row = await pool.fetchrow(
        """SELECT count(*) AS n,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS p50,
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY duration) AS p99,
                  max(duration) AS max
             FROM rebalance_history"""
    )
    if not row["n"]:
        return "no runs"
    return (
        f"{row['n']} runs took p50 {row['p50']:.0f} ms, p99 {row['p99']:.0f} ms, "
        f"max {row['max']} ms"
    )


def memory_flat(samples: list[Sample], warmup: float) -> list[Check]:
    """Per daemon process: RSS of the last quarter vs the first quarter after warm-up."""
    series: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        series[s.daemon].append(s)
    checks = []
    for daemon, points in series.items():
        start = points[0].at
        steady = [p for p in points if p.at - start >= warmup]
        if len(steady) < 8:
            continue  # too short-lived to judge
        quarter = len(steady) // 4
        first = statistics.median(p.rss for p in steady[:quarter])
        last = statistics.median(p.rss for p in steady[-quarter:])
        growth = last - first
        slope = _slope(steady) * 3600
        ok = growth <= 5 + 0.05 * first
        detail = (
            f"RSS {first:.1f} -> {last:.1f} MB over {steady[-1].at - steady[0].at:.0f} s "
            f"({growth:+.1f} MB, trend {slope:+.1f} MB/h), peak {max(p.rss for p in points):.1f}"
        )
        checks.append(Check(f"memory flat ({daemon})", ok, detail))
    return checks


def _slope(points: list[Sample]) -> float:
    """Least-squares MB per second."""
    if len({p.at for p in points}) < 2:
        return 0.0
    slope, _ = statistics.linear_regression([p.at for p in points], [p.rss for p in points])
    return slope
