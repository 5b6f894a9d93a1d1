"""Run routes (safety controls): list runs, approve or reject a run awaiting approval."""

from __future__ import annotations

from aiohttp import web

from rebalancerd.api.bodies import RunsQuery
from rebalancerd.api.http import CACHE, SCHEDULER, STORE, ApiError, query, reply
from rebalancerd.api.replies import ApprovalReply, HistoryRecord, RunJson, RunList, StaleApproval
from rebalancerd.exchange.protocol import ExchangeError
from rebalancerd.runs.approval import RunNotAwaiting, RunNotFound
from rebalancerd.runs.control import AccountUnavailable, Halted, PortfolioBusy
from rebalancerd.runs.lifecycle import Awaiting
from rebalancerd.store.rows import Run

HALTED = 'halted: the kill switch is set (POST /api/scheduler {"action": "resume"})'


def run_json(run: Run) -> RunJson:
    """A run as the API shows it."""
    return RunJson.model_validate(run, from_attributes=True)


async def list_runs(request: web.Request) -> web.Response:
    wanted = query(request, RunsQuery)
    await request.app[SCHEDULER].expire_approvals()  # a lapsed approval reads as expired
    runs = await request.app[STORE].list_runs(wanted.status, wanted.portfolio_id, wanted.limit)
    return reply(RunList(runs=[run_json(r) for r in runs], count=len(runs)))


def run_id(request: web.Request) -> int:
    """The {id} of the path: a run id is a positive integer."""
    text = request.match_info["id"]
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise ApiError(400, f"id: {text[:30]!r} is not a run id (a positive integer)")
    return int(text)


async def approve_run(request: web.Request) -> web.Response:
    rid = run_id(request)
    scheduler = request.app[SCHEDULER]
    try:
        ended = await scheduler.approve(rid)
    except RunNotFound:
        raise ApiError(404, f"run {rid} not found") from None
    except RunNotAwaiting as exc:
        await scheduler.expire_approvals()
        raise ApiError(409, str(exc)) from None
    except Halted:
        raise ApiError(409, HALTED) from None
    except PortfolioBusy as exc:
        raise ApiError(409, f"portfolio {exc} is being rebalanced right now") from None
    except AccountUnavailable as exc:
        raise ApiError(409, f"account: {exc.account!r} is not configured") from None
    except ExchangeError as exc:
        raise ApiError(502, f"exchange error: {exc}") from None
    finally:
        request.app[CACHE].invalidate()
    if ended is None:
        raise ApiError(409, f"run {rid} was taken over by another daemon")
    if isinstance(ended, Awaiting):  # the plan moved: it waits again, as the new plan
        error = (
            f"prices moved since the plan was approved; approve run {rid} again for the new plan"
        )
        stale = StaleApproval(error=error, changes=list(ended.changes), run=run_json(ended.run))
        return reply(stale, 409)
    return await _ended(request, rid, ended, "approved and executed")


async def reject_run(request: web.Request) -> web.Response:
    rid = run_id(request)
    try:
        record = await request.app[SCHEDULER].reject(rid)
    except RunNotFound:
        raise ApiError(404, f"run {rid} not found") from None
    except RunNotAwaiting as exc:
        raise ApiError(409, str(exc)) from None
    request.app[CACHE].invalidate()
    return await _ended(request, rid, record, "rejected; nothing was placed", success=True)


async def _ended(
    request: web.Request, rid: int, record: object, what: str, success: bool | None = None
) -> web.Response:
    run = await request.app[STORE].get_run(rid)
    assert run is not None
    history = HistoryRecord.model_validate(record, from_attributes=True)
    ok = history.success if success is None else success
    return reply(
        ApprovalReply(success=ok, message=f"Run {rid} {what}", history=history, run=run_json(run))
    )
