"""`rebalancerd runs | approve RUN | reject RUN | halt | resume`: the safety controls of a running
daemon, over HTTP (the same client as cli/client.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from rebalancerd.cli.client import call, command, out
from rebalancerd.cli.text import history_text, table

STATUSES = ("running", "awaiting_approval", "succeeded", "failed", "done", "rejected", "expired")


def add_commands(sub: Any) -> None:
    """Add the safety subcommands to the `rebalancerd` parser."""
    runs = command(
        sub, "runs", "list runs, newest first (plans awaiting approval and more)", list_runs
    )
    runs.add_argument("--status", choices=STATUSES, help="only runs with this status")
    runs.add_argument(
        "--awaiting",
        action="store_true",
        help="only plans awaiting approval (--status awaiting_approval)",
    )
    runs.add_argument("--portfolio", help="only this portfolio id")
    runs.add_argument("--limit", type=int, default=20, help="how many (max 500, default 20)")
    approve = command(
        sub, "approve", "execute a plan awaiting approval if prices still hold", decide
    )
    approve.add_argument("run", type=int, help="run id (see `rebalancerd runs --awaiting`)")
    reject = command(sub, "reject", "reject a plan awaiting approval: nothing is placed", decide)
    reject.add_argument("run", type=int, help="run id")
    command(sub, "halt", "kill switch: every daemon stops placing orders at once", switch)
    command(sub, "resume", "lift the kill switch", switch)


def list_runs(args: argparse.Namespace) -> int:
    """`rebalancerd runs [--awaiting | --status S] [--portfolio ID] [--limit N]`."""
    params = {"limit": str(args.limit)}
    status = "awaiting_approval" if args.awaiting else args.status
    if status:
        params["status"] = status
    if args.portfolio:
        params["portfolioId"] = args.portfolio
    payload = call(args, "GET", "/api/runs?" + urlencode(params))
    out(args, payload, lambda: runs_text(payload["runs"]))
    return 0


def decide(args: argparse.Namespace) -> int:
    """`rebalancerd approve RUN` / `reject RUN`: exit 1 when the approved run failed."""
    action = args.command  # approve | reject
    payload = call(args, "POST", f"/api/runs/{args.run}/{action}", timeout=600)
    out(args, payload, lambda: f"{payload['message']}\n" + history_text([payload["history"]]))
    return 0 if payload.get("success") else 1


def switch(args: argparse.Namespace) -> int:
    """`rebalancerd halt` / `resume`."""
    payload = call(args, "POST", "/api/scheduler", {"action": args.command})
    out(args, payload, lambda: str(payload["message"]))
    return 0


def runs_text(items: Sequence[Mapping[str, Any]]) -> str:
    """`rebalancerd runs`: one run a line, with what its plan trades."""
    rows = [
        (
            r["id"],
            r["portfolioId"],
            r["status"],
            r["createdAt"],
            r["expiresAt"] if r["status"] == "awaiting_approval" else None,
            _orders(r.get("plan")),
        )
        for r in items
    ]
    return table(("RUN", "PORTFOLIO", "STATUS", "CREATED", "EXPIRES", "PLAN"), rows)


def _orders(plan: Mapping[str, Any] | None) -> str | None:
    if not plan:
        return None
    orders = [f"{o['side']} {o['symbol']} €{float(o['value']):.2f}" for o in plan.get("orders", [])]
    notes = " (capped)" if plan.get("notes") else ""
    return ("; ".join(orders) or "nothing to trade") + notes
