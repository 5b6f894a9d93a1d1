"""How the client commands print the daemon's answers for people: short lines and tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rebalancerd.decimals import fixed


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns as wide as their widest cell."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        return "(none)"
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    # ISO times to the minute read better in a table: 2025-10-27T10:00:00.123Z -> 2025-10-27 10:00
    if len(text) >= 16 and text[4:5] == "-" and text[10:11] == "T":
        return text[:10] + " " + text[11:16]
    return text


def status_text(payload: Mapping[str, Any]) -> str:
    """`rebalancerd status`."""
    status = payload["status"]
    config = status["config"]
    state = "running" if status["isRunning"] else "stopped"
    head = (
        f"Scheduler {state} (enabled: {_cell(config['enabled'])}, "
        f"check: {config['checkInterval']}, dry run: {_cell(config['dryRunMode'])}); "
        f"{status['activeTasks']} active; next wake {_cell(status.get('nextWakeAt'))}"
    )
    rows = [
        (s["id"], s["name"], s["rebalanceInterval"], s["lastRebalancedAt"], s["nextRebalanceAt"])
        for s in payload["schedule"]
    ]
    return head + "\n\n" + table(("ID", "NAME", "INTERVAL", "LAST", "NEXT"), rows)


def _weights(weights: Mapping[str, Any]) -> str:
    # Heaviest first: jsonb does not keep the order the weights were written in.
    ordered = sorted(weights.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    return " ".join(f"{k}:{v}" for k, v in ordered)


def portfolios_text(items: Sequence[Mapping[str, Any]]) -> str:
    """`rebalancerd portfolios list`."""
    rows = [
        (
            p["id"],
            p["name"],
            p["account"],
            p["rebalanceEnabled"],
            p["rebalanceInterval"],
            _weights(p["targetWeights"]),
            p["nextRebalanceAt"],
        )
        for p in items
    ]
    return table(("ID", "NAME", "ACCOUNT", "ENABLED", "INTERVAL", "WEIGHTS", "NEXT"), rows)


def portfolio_text(portfolio: Mapping[str, Any]) -> str:
    """`rebalancerd portfolios show ID`: one field a line."""
    width = max(len(k) for k in portfolio)
    lines = []
    for key, value in portfolio.items():
        shown = _weights(value) if key == "targetWeights" else _cell(value)
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def history_text(records: Sequence[Mapping[str, Any]]) -> str:
    """`rebalancerd history` (and the run a trigger made)."""
    rows = [
        (
            r["executedAt"],
            r["portfolioId"],
            "ok" if r["success"] else "FAILED",
            r["dryRun"],
            _cents(r["portfolioValue"]),
            f"{r['ordersExecuted']}/{r['ordersPlanned']}",
            _cents(r["totalValueTraded"]),
            r["triggeredBy"],
            f"{r['duration']}ms" if r.get("duration") is not None else None,
            "; ".join(r.get("errors") or []) or None,
        )
        for r in records
    ]
    headers = ("EXECUTED", "PORTFOLIO", "RESULT", "DRY", "VALUE EUR", "ORDERS", "TRADED EUR",
               "BY", "TOOK", "ERRORS")  # fmt: skip
    return table(headers, rows)


def plan_text(payload: Mapping[str, Any]) -> str:
    """`rebalancerd plan ID`: the orders a run would place and why others are skipped."""
    value = _cents(payload["portfolioValue"])
    lines = [f"Portfolio {payload['portfolioId']}: value €{value}"]
    plan = payload.get("plan") or {}
    if plan.get("aborted"):
        lines.append(f"Aborted: {plan['aborted']}")
    if plan.get("targetWeights"):
        lines += ["", "Weights (%):", _weights_table(plan)]
    orders = plan.get("orders") or []
    if plan:
        # Volumes as planned: already on the pair's lot decimals.
        rows = [
            (o["side"], o["symbol"], o["volume"], o["price"], _cents(o["value"]), _cents(o["fee"]))
            for o in orders
        ]
        headers = ("SIDE", "SYMBOL", "VOLUME", "PRICE", "VALUE EUR", "FEE EUR")
        lines += ["", "Orders:", table(headers, rows)]
    skipped = plan.get("skipped") or []
    if skipped:
        why = [(s["side"], s["symbol"], _cents(s["value"]), s["reason"]) for s in skipped]
        lines += ["", "Skipped:", table(("SIDE", "SYMBOL", "VALUE EUR", "WHY"), why)]
    for error in payload.get("errors") or []:
        lines.append(f"Error: {error}")
    return "\n".join(lines)


def _weights_table(plan: Mapping[str, Any]) -> str:
    now, target = plan.get("currentWeights") or {}, plan["targetWeights"]
    after = plan.get("expectedWeights") or {}
    rows = [
        (symbol, _pct(now.get(symbol)), _pct(target[symbol]), _pct(after.get(symbol)))
        for symbol in sorted(target)
    ]
    return table(("SYMBOL", "NOW", "TARGET", "AFTER"), rows)


def _cents(value: Any) -> str | None:
    """EUR to the cent; --json keeps the full precision."""
    return None if value is None else fixed(value, 2)


def _pct(value: Any) -> str | None:
    return None if value is None else fixed(value, 2)
