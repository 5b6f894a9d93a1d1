"""Drift bands: at a check tick, portfolios whose holdings drifted out of their band become due."""

from __future__ import annotations

import logging
from datetime import datetime

from rebalancerd.exchange.protocol import ExchangeError
from rebalancerd.planning import plan as planner
from rebalancerd.runs.lifecycle import RunManager
from rebalancerd.runs.trade import RunPlan
from rebalancerd.store.repository import Store

log = logging.getLogger(__name__)


async def move_drifted(
    store: Store, runs: RunManager, now: datetime, planned: dict[str, RunPlan | None]
) -> int:
    """Make every banded portfolio that drifted out of its band due `now`; how many. Each
    portfolio's planning goes into `planned` (the tick's snapshots reuse it: one read each)."""
    moved = 0
    for portfolio in await store.banded_portfolios(now):
        try:
            made = planned[portfolio.id] = await runs.current_plan(portfolio)
        except ExchangeError as exc:
            log.warning("[Scheduler] Drift check of %s failed: %s", portfolio.id, exc)
            continue
        plan = None if made is None else made.tradable  # None for a row that cannot run
        if plan is None or not planner.out_of_band(
            plan.current_weights,
            plan.target_weights,
            portfolio.drift_band_abs,
            portfolio.drift_band_rel,
        ):
            continue
        log.info(
            "[Scheduler] Portfolio %s (%s) drifted out of its band; rebalancing now",
            portfolio.name,
            portfolio.id,
        )
        await store.set_next_rebalance(None, portfolio.id, now)
        moved += 1
    return moved
