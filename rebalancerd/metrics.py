"""Prometheus metrics of one daemon, in their own registry (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Counters the scheduler and executor bump; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "rebalancerd_runs", "Rebalance runs by outcome", ["outcome", "trigger"], registry=r
        )
        self.orders = Counter(
            "rebalancerd_orders", "Orders by outcome", ["outcome", "side"], registry=r
        )
        self.exchange_errors = Counter(
            "rebalancerd_exchange_errors", "Exchange errors by kind", ["kind"], registry=r
        )
        self.nonce_refused = Counter(
            "rebalancerd_kraken_nonce_refused",
            "Kraken calls refused for their nonce (not carried out; signed once more)",
            ["method"],
            registry=r,
        )
        self.last_success = Gauge(
            "rebalancerd_last_success_timestamp_seconds",
            "Unix time of the last successful run",
            ["portfolio"],
            registry=r,
        )
        self.next_due = Gauge(
            "rebalancerd_next_due_timestamp_seconds",
            "Unix time of the earliest due portfolio (0: none)",
            registry=r,
        )
        self.loop_lag = Histogram(
            "rebalancerd_loop_lag_seconds",
            "How late the scheduler woke for a due slot",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
            registry=r,
        )
        self.run_duration = Histogram(
            "rebalancerd_run_duration_seconds",
            "Wall time of one rebalance run",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        # ===== maker execution (issue 16) =====
        self.execution_cost = Histogram(
            "rebalancerd_execution_cost_bps",
            "Fee plus shortfall against the arrival mid of a filled order, in bps, by mode",
            ["mode"],
            buckets=(-20, -10, 0, 10, 20, 25, 30, 35, 40, 45, 50, 60, 75, 100, 200),
            registry=r,
        )
        self.scheduler_running = Gauge(
            "rebalancerd_scheduler_running", "1 while the scheduler loop claims work", registry=r
        )

        # safety controls
        self.halted = Gauge(
            "rebalancerd_halted",
            "1 while the kill switch is set (POST /api/scheduler halt): nothing is placed",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
