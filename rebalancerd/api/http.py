"""Shared by the HTTP routes: app keys, JSON replies, body/query parsing, the schedule cache."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from rebalancerd.api.fields import CONTROL_CHARACTERS
from rebalancerd.api.replies import Error, Reply, schedule_item
from rebalancerd.config import Settings
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.repository import Store

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """A client mistake, answered as {"success": false, "error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client hung up before its request body was read: nobody to answer."""


class ScheduleCache:
    """The status route's schedule list as JSON bytes, read at most once per `ttl` seconds.

    Status is polled far more often than portfolios change: one query serves every request
    within the TTL, and concurrent misses share a single query. Our own writes invalidate it;
    changes made elsewhere (runs, other daemons) show within the TTL.
    """

    def __init__(
        self, store: Store, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock  # tests step it instead of sleeping past the TTL
        self._body: bytes | None = None
        self._expires = 0.0
        self._generation = 0
        self._loading: asyncio.Task[bytes] | None = None
        self._made: tuple[bytes, bytes | None] = (b"", None)  # (status, schedule) of _reply
        self._reply = b""
        self._gzipped: bytes | None = None

    def invalidate(self) -> None:
        """Forget the cached list (a portfolio or its schedule changed)."""
        self._generation += 1
        self._expires = 0.0
        self._loading = None  # a read already under way may predate the change: start anew

    async def get(self) -> bytes:
        """The schedule list, from the cache while it is fresh."""
        if self._body is not None and self.clock() < self._expires:
            return self._body
        if self._loading is None:
            self._loading = asyncio.create_task(self._load(), name="schedule-cache")
            self._loading.add_done_callback(self._loaded)
        # shield: a client that hangs up must not cancel the query others are waiting for.
        return await asyncio.shield(self._loading)

    def _loaded(self, task: asyncio.Task[bytes]) -> None:
        if self._loading is task:
            self._loading = None

    async def status_reply(self, status: bytes, gzipped: bool) -> bytes:
        """The whole /api/scheduler body around `status`, built (and gzipped) once per change.

        With 1 000 portfolios the body is ~190 kB and moving those bytes, not building them,
        bounds the rate; gzip (level 1, ~1 ms, once per change) cuts it to ~14 kB.
        """
        schedule = await self.get()
        if self._made[0] != status or self._made[1] is not schedule:
            self._made = (status, schedule)
            self._reply = b'{"success":true,"status":' + status + b',"schedule":' + schedule + b"}"
            self._gzipped = None
        if not gzipped:
            return self._reply
        if self._gzipped is None:
            self._gzipped = gzip.compress(self._reply, compresslevel=1, mtime=0)
        return self._gzipped

    async def _load(self) -> bytes:
        generation = self._generation
        rows = await self.store.schedule()
        body = dumps([schedule_item(row).body() for row in rows])
        if generation == self._generation:  # else a write landed meanwhile: do not keep these
            self._body, self._expires = body, self.clock() + self.ttl
        return body


STORE = web.AppKey("store", Store)
SCHEDULER = web.AppKey("scheduler", Scheduler)
METRICS = web.AppKey("metrics", Metrics)
SETTINGS = web.AppKey("settings", Settings)
CACHE = web.AppKey("schedule_cache", ScheduleCache)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never scientific notation
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes; datetimes in UTC end in Z as the original's did."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)


def reply(body: Reply, status: int = 200) -> web.Response:
    """A JSON response from its model."""
    return raw_reply(dumps(body.body()), status)


def raw_reply(body: bytes, status: int = 200) -> web.Response:
    """A response from JSON bytes already made."""
    return web.Response(body=body, status=status, content_type="application/json")


def accepts_gzip(request: web.Request) -> bool:
    """True when the client takes a gzip body (and did not refuse it with q=0)."""
    for part in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def fail(status: int, error: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The error shape of every route: {"success": false, "error": "..."}."""
    response = reply(Error(error=error), status)
    response.headers.update(headers or {})
    return response


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, numbers with a fraction as Decimals.

    The content type was checked already (api_guard): anything but application/json is 415.
    """
    raw = await _read(request, request.app[SETTINGS].http.read_timeout)
    if not raw.strip():
        return {}
    try:
        orjson.loads(raw)  # strict first: refuses NaN, lone surrogates and deep nesting
        body = json.loads(raw, parse_float=Decimal)  # then again, keeping decimals exact
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body is not valid JSON: {_first_line(exc)}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be a JSON object, not {type(body).__name__}")
    return body


async def _read(request: web.Request, timeout: float) -> bytes:
    """The whole body within `timeout` seconds (a trickling client must not hold a socket)."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()  # over client_max_size: HTTPRequestEntityTooLarge, 413
    except TimeoutError:
        raise ApiError(408, f"request body not received within {timeout:g} seconds") from None
    except ConnectionResetError:
        raise ClientGone from None
    except RequestPayloadError as exc:  # e.g. broken chunked encoding
        raise ApiError(400, f"request body could not be read: {_first_line(exc)}") from None


def query(request: web.Request, model: type[M]) -> M:
    """The query string validated by `model`; a repeated parameter is refused."""
    params = request.query
    repeated = sorted({k for k in params if len(params.getall(k)) > 1})
    if repeated:
        raise ApiError(400, f"{repeated[0]}: given more than once")
    return model.model_validate(dict(params))


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def validation_status(exc: ValidationError) -> int:
    """422 when a text field holds control characters (see api_types), else 400."""
    kinds = {err["type"] for err in exc.errors(include_url=False, include_input=False)}
    return 422 if CONTROL_CHARACTERS in kinds else 400


def describe(exc: ValidationError) -> str:
    """One line naming each bad field, never echoing a long input back."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)
