"""GET /api/events: server-sent events telling open dashboards that something changed.

Every change this daemon hears of (its own writes, finished runs, other daemons' NOTIFYs, a
scheduler stop) bumps a counter; each stream sends one `change` event per burst of changes and
a comment every HEARTBEAT seconds, so an idle dashboard costs a few bytes a minute and no query.
The page then re-reads the one view it shows. Streams end when the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from rebalancerd.api.http import ApiError

HEARTBEAT = 15.0  # seconds between keep-alive comments (proxies close silent connections)
COALESCE = 0.25  # seconds: a run's several writes become one event


class Changes:
    """A version number bumped on every change, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()
        self.closing = asyncio.Event()  # set at shutdown: every stream ends

    def bump(self) -> None:
        """Something changed: wake every stream."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def after(self, seen: int, timeout: float) -> int:
        """The version once it passes `seen` (or `seen` after `timeout` or at shutdown)."""
        if self.version != seen:
            return self.version
        changed = asyncio.ensure_future(self._changed.wait())
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({changed, closing}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for task in (changed, closing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return self.version


CHANGES = web.AppKey("changes", Changes)


async def events(request: web.Request) -> web.StreamResponse:
    if "text/event-stream" not in request.headers.get("Accept", ""):
        # A client that did not ask for a stream (curl, a fuzzer) would wait on it forever.
        raise ApiError(406, "this route streams events: send Accept: text/event-stream")
    changes = request.app[CHANGES]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    await response.prepare(request)
    seen = changes.version
    await response.write(b"retry: 3000\nevent: hello\ndata: %d\n\n" % seen)
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while not changes.closing.is_set():
            version = await changes.after(seen, HEARTBEAT)
            if version == seen:
                await response.write(b": keep-alive\n\n")
                continue
            await asyncio.sleep(COALESCE)
            seen = changes.version
            await response.write(b"event: change\ndata: %d\n\n" % seen)
    return response


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every stream so a stop does not wait for them."""
    app[CHANGES].closing.set()
