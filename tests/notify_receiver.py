"""A webhook receiver over real HTTP (aiohttp's TestServer on a loopback port) that records
every request and answers from a script: statuses per path, or hangs until released."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, as Standard Webhooks' example


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.perf_counter)  # when it arrived

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> Any:
        """The body, once the standardwebhooks library has checked its signature."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    """Answers 200 unless `script[path]` lists statuses to answer first, or `hang` is set."""

    script: dict[str, list[int]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)  # paths that hang until `release` is set
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[Received] = field(default_factory=list)
    hanging: int = 0
    server: TestServer | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.server is not None
        await self.server.close()

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.path, dict(request.headers), await request.read())
        self.received.append(got)
        if request.path in self.hang and not self.release.is_set():
            self.hanging += 1
            try:
                await self.release.wait()
            finally:
                self.hanging -= 1
        statuses = self.script.get(request.path)
        status = statuses.pop(0) if statuses else 200
        if 300 <= status < 400:
            raise web.HTTPFound(self.url("/redirected"))
        return web.Response(status=status, text=f"answered {status}")

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def ids(self, path: str = "/hook") -> list[str]:
        return [r.id for r in self.at(path)]


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    """Wait (bounded) for a condition the system under test must reach."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
