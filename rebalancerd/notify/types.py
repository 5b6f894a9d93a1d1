"""The names of the event types (the contract), importable without anything else."""

from __future__ import annotations

from typing import Literal, get_args

EventType = Literal[
    "run.succeeded",
    "run.failed",
    "order.unknown",
    "run.awaiting_approval",
    "scheduler.started",
    "scheduler.stopped",
    "scheduler.halted",
    "daemon.started",
    "daemon.stopping",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
