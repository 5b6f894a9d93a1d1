"""The sender's Prometheus metrics, registered in the daemon's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.delivered = Counter(
            "rebalancerd_notify_delivered", "Webhook deliveries answered 2xx", ["hook"], registry=r
        )
        self.failed = Counter(
            "rebalancerd_notify_failed",
            "Webhook attempts that failed (each retry counts)",
            ["hook", "reason"],
            registry=r,
        )
        self.given_up = Counter(
            "rebalancerd_notify_given_up",
            "Webhook deliveries given up (4xx, redirect, or past the retry window)",
            ["hook"],
            registry=r,
        )
        self.pending = Gauge(
            "rebalancerd_notify_pending",
            "Deliveries (and events not yet fanned out) waiting to go out, all daemons",
            registry=r,
        )
        self.oldest_pending = Gauge(
            "rebalancerd_notify_oldest_pending_age_seconds",
            "Age of the oldest event still waiting to be delivered (0: none)",
            registry=r,
        )
