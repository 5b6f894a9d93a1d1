"""Portfolio routes: list/create/update/delete (/api/portfolios/manage) and the plan preview."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from rebalancerd.api.bodies import SAFETY_FIELDS, IdQuery, PortfolioCreate, PortfolioUpdate
from rebalancerd.api.http import (
    CACHE,
    SCHEDULER,
    STORE,
    ApiError,
    json_body,
    query,
    reply,
)
from rebalancerd.api.markets import MARKETS
from rebalancerd.api.plans import PlanJson
from rebalancerd.api.replies import Message, PlanPreview, PortfolioList, PortfolioReply
from rebalancerd.api.replies import Portfolio as PortfolioJson
from rebalancerd.exchange.protocol import ExchangeError
from rebalancerd.runs.control import PortfolioNotFound
from rebalancerd.runs.slots import first_slot
from rebalancerd.store.portfolios import AccountInUseError, PortfolioFields
from rebalancerd.store.rows import Portfolio
from rebalancerd.store.safety import SafetyFields

TIMING = frozenset({"rebalance_interval", "schedule_timezone", "next_rebalance_at"})


def fields_for_create(body: PortfolioCreate, now: datetime) -> PortfolioFields:
    """The row to insert; an enabled portfolio gets its first slot now."""
    values = body.model_dump(exclude={"next_rebalance_at"})
    anchor = first = body.next_rebalance_at
    if body.rebalance_enabled:
        anchor, first = first_slot(
            body.rebalance_interval, body.schedule_timezone, now, body.next_rebalance_at
        )
    return _fields(values, anchor, first)


def fields_for_update(old: Portfolio, patch: PortfolioUpdate, now: datetime) -> PortfolioFields:
    """`old` with the patch applied; the schedule restarts only when enabled or retimed."""
    changes = patch.changes()
    merged = {**_settable(old), **changes}
    anchor, next_at = old.schedule_anchor, old.next_rebalance_at
    enabling = merged["rebalance_enabled"] and not old.rebalance_enabled
    if merged["rebalance_enabled"] and (enabling or TIMING & changes.keys()):
        anchor, next_at = first_slot(
            merged["rebalance_interval"],
            merged["schedule_timezone"],
            now,
            changes.get("next_rebalance_at"),
        )
    elif "next_rebalance_at" in changes:  # disabled: keep the time asked for until enabled
        anchor = next_at = changes["next_rebalance_at"]
    merged.pop("next_rebalance_at", None)
    return _fields(merged, anchor, next_at)


def _settable(portfolio: Portfolio) -> dict[str, Any]:
    return {
        "name": portfolio.name,
        "user_id": portfolio.user_id,
        "account": portfolio.account,
        "target_weights": portfolio.target_weights,
        "rebalance_enabled": portfolio.rebalance_enabled,
        "rebalance_interval": portfolio.rebalance_interval,
        "schedule_timezone": portfolio.schedule_tz,
        "rebalance_threshold": portfolio.rebalance_threshold,
        "max_orders_per_rebalance": portfolio.max_orders_per_rebalance,
        "drift_band_abs": portfolio.drift_band_abs,
        "drift_band_rel": portfolio.drift_band_rel,
        # maker execution (issue 16)
        "execution_mode": portfolio.execution_mode,
        "maker_timeout_seconds": portfolio.maker_timeout_seconds,
        "max_slippage_bps": portfolio.max_slippage_bps,
        **{name: getattr(portfolio, name) for name in SAFETY_FIELDS},  # safety controls
    }


def _fields(
    values: dict[str, Any], anchor: datetime | None, first: datetime | None
) -> PortfolioFields:
    zone = values.pop("schedule_timezone")
    safety = SafetyFields(**{name: values.pop(name) for name in SAFETY_FIELDS})
    return PortfolioFields(
        **values, schedule_tz=zone, schedule_anchor=anchor, next_rebalance_at=first, safety=safety
    )


def require_account(configured: Collection[str], account: str) -> None:
    """422 unless this daemon has the account configured (it could never trade otherwise)."""
    if account not in configured:
        names = ", ".join(sorted(configured)) or "none"
        raise ApiError(422, f"account: {account!r} is not configured (configured: {names})")


async def list_portfolios(request: web.Request) -> web.Response:
    portfolios = [_json(p) for p in await request.app[STORE].list_portfolios()]
    return reply(PortfolioList(portfolios=portfolios, count=len(portfolios)))


async def create_portfolio(request: web.Request) -> web.Response:
    body = PortfolioCreate.model_validate(await json_body(request))
    require_account(request.app[SCHEDULER].accounts, body.account)
    warnings = await request.app[MARKETS].warnings(body.account, body.target_weights)
    fields = fields_for_create(body, request.app[SCHEDULER].clock())
    portfolio = await _save(request, fields, None)
    message = f"Portfolio {portfolio.name!r} created"
    return reply(
        PortfolioReply(portfolio=_json(portfolio), message=message, warnings=warnings), 201
    )


async def update_portfolio(request: web.Request) -> web.Response:
    patch = PortfolioUpdate.model_validate(await json_body(request))
    old = await request.app[STORE].get_portfolio(patch.id)
    if old is None:
        raise ApiError(404, f"portfolio {patch.id} not found")
    fields = fields_for_update(old, patch, request.app[SCHEDULER].clock())
    if patch.account is not None or (fields.rebalance_enabled and not old.rebalance_enabled):
        require_account(request.app[SCHEDULER].accounts, fields.account)
    warnings: list[str] = []
    if patch.account is not None or patch.target_weights is not None:  # a new symbol or market
        warnings = await request.app[MARKETS].warnings(fields.account, fields.target_weights)
    portfolio = await _save(request, fields, old.id)
    message = f"Portfolio {portfolio.name!r} updated"
    return reply(PortfolioReply(portfolio=_json(portfolio), message=message, warnings=warnings))


def _json(portfolio: Portfolio) -> PortfolioJson:
    return PortfolioJson.model_validate(portfolio, from_attributes=True)


async def _save(request: web.Request, fields: PortfolioFields, pid: str | None) -> Portfolio:
    store = request.app[STORE]
    try:
        if pid is None:
            saved: Portfolio | None = await store.create_portfolio(fields)
        else:
            saved = await store.update_portfolio(pid, fields)
    except AccountInUseError:
        raise ApiError(409, await _account_taken(request, fields.account, pid)) from None
    if saved is None:
        raise ApiError(404, f"portfolio {pid} not found")
    request.app[CACHE].invalidate()
    request.app[SCHEDULER].wake()  # a new or retimed slot may be earlier than the loop's sleep
    return saved


async def _account_taken(request: web.Request, account: str, pid: str | None) -> str:
    holders = [
        p
        for p in await request.app[STORE].list_portfolios()
        if p.account == account and p.rebalance_enabled and p.id != pid
    ]
    who = f" by portfolio {holders[0].id} ({holders[0].name!r})" if holders else ""
    return f"account: {account!r} is already used{who}; one enabled portfolio per account"


async def delete_portfolio(request: web.Request) -> web.Response:
    pid = query(request, IdQuery).id
    store = request.app[STORE]
    if await store.get_portfolio(pid) is None:
        raise ApiError(404, f"portfolio {pid} not found")
    if not await store.delete_portfolio(pid):
        if await store.get_portfolio(pid) is None:
            raise ApiError(404, f"portfolio {pid} not found")
        raise ApiError(409, f"portfolio {pid} is being rebalanced right now; try again later")
    request.app[CACHE].invalidate()
    request.app[SCHEDULER].wake()
    return reply(Message(message=f"Portfolio {pid} deleted"))


async def plan_preview(request: web.Request) -> web.Response:
    pid = query(request, IdQuery).id
    try:
        preview = await request.app[SCHEDULER].preview(pid)
    except PortfolioNotFound:
        raise ApiError(404, f"portfolio {pid} not found") from None
    except ExchangeError as exc:
        raise ApiError(502, f"exchange error: {exc}") from None
    except ValueError as exc:  # the planner refuses rules stored before validation was strict
        raise ApiError(422, f"portfolio {pid} cannot be planned: {exc}") from None
    plan = preview.get("plan")
    return reply(
        PlanPreview(
            portfolio_id=pid,
            portfolio_value=Decimal(preview.get("portfolioValue") or 0),
            plan=None if plan is None else PlanJson.model_validate(plan),
            errors=preview.get("errors") or [],
        )
    )
