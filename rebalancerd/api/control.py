"""Scheduler routes: status (GET /api/scheduler), control (POST) and a manual trigger."""

from __future__ import annotations

from aiohttp import web

from rebalancerd.api.bodies import SchedulerControl, TriggerRequest
from rebalancerd.api.http import (
    CACHE,
    SCHEDULER,
    ApiError,
    accepts_gzip,
    dumps,
    json_body,
    raw_reply,
    reply,
)
from rebalancerd.api.replies import (
    ControlReply,
    HistoryRecord,
    SchedulerConfigState,
    SchedulerState,
    TriggerReply,
)
from rebalancerd.api.runs import HALTED, run_json
from rebalancerd.runs.control import (
    ACTIONS,
    AccountTaken,
    AccountUnavailable,
    Halted,
    PortfolioBusy,
    PortfolioNotFound,
)
from rebalancerd.runs.lifecycle import Awaiting
from rebalancerd.runs.loop import Scheduler


def scheduler_state(scheduler: Scheduler) -> SchedulerState:
    """The status object of GET /api/scheduler and of every control reply."""
    return SchedulerState(
        is_running=scheduler.config.running,
        config=SchedulerConfigState.model_validate(scheduler.config, from_attributes=True),
        active_tasks=scheduler.active_runs,
        next_wake_at=scheduler.next_wake,
        instance=scheduler.owner,
        halted=scheduler.config.halted,
    )


async def scheduler_status(request: web.Request) -> web.Response:
    status = dumps(scheduler_state(request.app[SCHEDULER]).body())
    gzipped = accepts_gzip(request)
    response = raw_reply(await request.app[CACHE].status_reply(status, gzipped))
    response.headers["Vary"] = "Accept-Encoding"
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    return response


async def scheduler_control(request: web.Request) -> web.Response:
    body = SchedulerControl.model_validate(await json_body(request))
    patch = body.config.model_dump(by_alias=True, exclude_unset=True) if body.config else None
    scheduler = request.app[SCHEDULER]
    config = await scheduler.control(body.action, patch)
    return reply(
        ControlReply(
            message=ACTIONS[body.action],
            config=SchedulerConfigState.model_validate(config, from_attributes=True),
            status=scheduler_state(scheduler),
        )
    )


async def scheduler_trigger(request: web.Request) -> web.Response:
    body = TriggerRequest.model_validate(await json_body(request))
    pid = body.portfolio_id
    try:
        record = await request.app[SCHEDULER].trigger(pid, body.dry_run, "api", body.force)
    except Halted:
        raise ApiError(409, HALTED) from None
    except PortfolioNotFound:
        raise ApiError(404, f"portfolio {pid} not found") from None
    except PortfolioBusy:
        raise ApiError(409, f"portfolio {pid} is being rebalanced right now") from None
    except AccountUnavailable as exc:
        raise ApiError(
            409, f"account: {exc.account!r} of portfolio {pid} is not configured"
        ) from None
    except AccountTaken as exc:
        raise ApiError(
            409,
            f"account: {exc.account!r} is used by enabled portfolio {exc.holder_id} "
            f"({exc.holder_name!r}); a real run of {pid} would trade its balance "
            "(a dry run is allowed)",
        ) from None
    finally:
        request.app[CACHE].invalidate()  # lastRebalancedAt moved
    if record is None:
        raise ApiError(409, f"the run of portfolio {pid} was taken over by another daemon")
    if isinstance(record, Awaiting):  # safety controls: approval before trading
        run = record.run
        message = f"Plan awaiting approval: run {run.id} (POST /api/runs/{run.id}/approve)"
        return reply(
            TriggerReply(success=True, message=message, history=None, run=run_json(run)), 202
        )
    message = "Rebalance completed" if record.success else "Rebalance failed"
    if record.success and record.dry_run:
        message = "Dry run completed: orders planned, none placed"
    history = HistoryRecord.model_validate(record, from_attributes=True)
    return reply(TriggerReply(success=record.success, message=message, history=history))
