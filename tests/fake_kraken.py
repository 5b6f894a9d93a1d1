"""A fake Kraken REST server on 127.0.0.1 that checks and answers like the real one.

Usage (tests and bench scripts):

    async with FakeKraken(latency=0.05) as fake:
        client = KrakenClient(fake.url, fake.api_key, fake.api_secret)
        fake.inject("AddOrder", Fault(after=True, drop=True))  # placed, reply lost
        ...
        assert len(fake.placed) == 1

It verifies API-Key/API-Sign over the raw body and strictly increasing nonces per key, models
Kraken's REST and per-pair trading counters, enforces ordermin/costmin/lot decimals/market
status/funds, fills market orders at bid/ask with fee = cost x rate, records every request,
and injects faults per endpoint (Kraken errors, HTTP statuses, hangs, latency, lost replies).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

from tests import fake_kraken_data as data
from tests.fake_kraken_book import Account, KrakenError, Order, Venue
from tests.fake_kraken_calls import Endpoints

__all__ = ["FakeKraken", "FastTime", "Fault", "KrakenError", "Order", "Recorded"]


@dataclass
class Fault:
    """What goes wrong with the next `times` calls of one endpoint (None: every call)."""

    error: str | None = None  # answer this Kraken error string
    status: int | None = None  # answer this HTTP status with an HTML body (502, 504, 520...)
    hang: bool = False  # never answer (until the server stops)
    drop: bool = False  # close the connection without an answer
    delay: float = 0.0  # extra latency, seconds
    after: bool = False  # do the real work first (the order IS placed), then fail the reply
    times: int | None = 1


@dataclass
class Recorded:
    """One request the fake received, and what it answered."""

    endpoint: str
    private: bool
    params: dict[str, str]
    api_key: str | None
    user_agent: str
    at: float
    errors: list[str] = field(default_factory=list)
    status: int = 200
    answered: bool = True
    peer: str = ""  # the client's host:port: requests on one kept-alive connection share it
    done_at: float | None = None  # time.monotonic() when the answer was ready (None: never)


class FastTime:
    """A clock running `factor` times faster than real time, and a sleep that matches it.

    Give the same one to the fake (clock) and the client (clock, sleep): rate-limit decay,
    backoff and look-up waits then take 1/factor of their real duration, with the real maths.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._origin) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.factor)


def _secret() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def expected_sign(path: str, raw_body: bytes, nonce: str, secret: str) -> str:
    """Kraken's API-Sign of a request, written apart from the client's code on purpose."""
    digest = hashlib.sha256(nonce.encode() + raw_body).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class FakeKraken:
    """The fake server. Start with `async with`, point clients at `.url`."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        tier: str = "starter",
        clock: Callable[[], float] = time.monotonic,
        fee_rate: Decimal = Decimal("0.0026"),
        balances: Mapping[str, str | Decimal] | None = None,
        pairs: Mapping[str, Mapping[str, Any]] | None = None,
        prices: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.venue = Venue(clock, fee_rate)
        if pairs is not None:  # Kraken AssetPairs rows by pair key (see fake_kraken_data)
            self.venue.pairs = {key: dict(row) for key, row in pairs.items()}
        for pair, (bid, ask) in (prices or {}).items():
            self.set_price(pair, bid, ask)
        self.endpoints = Endpoints(self.venue)
        self.latency = latency
        self.requests: list[Recorded] = []
        self._faults: dict[str, list[Fault]] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.api_key, self.api_secret = self.add_account(balances or data.BALANCES, tier=tier)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on 127.0.0.1 at a free port; sets `.url`."""
        app = web.Application()
        app.router.add_get("/0/public/{method}", self._public)
        app.router.add_post("/0/private/{method}", self._private)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        """Release hung requests and stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- set-up ------------------------------------------------------------------------------

    def add_account(
        self, balances: Mapping[str, str | Decimal], *, tier: str = "starter"
    ) -> tuple[str, str]:
        """A new API key with its own balances, nonces and counters; returns (key, secret)."""
        key = base64.b64encode(secrets.token_bytes(42)).decode()
        amounts = {asset: Decimal(amount) for asset, amount in balances.items()}
        self.venue.accounts[key] = Account(key, _secret(), amounts, tier)
        return key, self.venue.accounts[key].secret

    def account(self, key: str | None = None) -> Account:
        """The account of `key` (default: the first one)."""
        return self.venue.accounts[key or self.api_key]

    def set_price(self, pair: str, bid: str | Decimal, ask: str | Decimal) -> None:
        """Set a pair's best bid and ask; resting limit orders they reach fill at their price."""
        self.venue.prices[pair] = (Decimal(bid), Decimal(ask))
        if hasattr(self, "endpoints"):
            self.endpoints.matcher.limits.cross(pair)

    def resting(self) -> list[Order]:
        """Orders still on the book (maker execution: none may be left behind)."""
        return [o for o in self.venue.orders if o.status in ("open", "pending")]

    def order_by_client_id(self, cl_ord_id: str) -> Order:
        """The newest order carrying `cl_ord_id`."""
        return [o for o in self.venue.orders if o.cl_ord_id == cl_ord_id][-1]

    def set_status(self, pair: str, status: str) -> None:
        """Set a pair's market status (online, cancel_only, post_only, limit_only...)."""
        self.venue.pairs[pair]["status"] = status

    def inject(self, endpoint: str, fault: Fault | None = None, **kwargs: Any) -> Fault:
        """Queue a fault for `endpoint` ("*" for any): inject("AddOrder", status=502)."""
        fault = fault or Fault(**kwargs)
        self._faults.setdefault(endpoint, []).append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        self._faults.clear()

    def lose_reply(self, endpoint: str = "AddOrder", how: str = "drop") -> Fault:
        """The call is carried out, but its answer is lost: how = drop | 502 | hang."""
        if how == "drop":
            return self.inject(endpoint, after=True, drop=True)
        if how == "hang":
            return self.inject(endpoint, after=True, hang=True)
        return self.inject(endpoint, after=True, status=int(how))

    # --- inspection ----------------------------------------------------------------------------

    @property
    def placed(self) -> list[Order]:
        """Every order placed (validate-only orders are not)."""
        return list(self.venue.orders)

    def calls(self, endpoint: str | None = None) -> list[Recorded]:
        """Requests received, all or for one endpoint."""
        return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]

    def errors(self, prefix: str = "") -> list[str]:
        """Kraken error strings answered (injected ones included), optionally by prefix."""
        return [e for r in self.requests for e in r.errors if e.startswith(prefix)]

    # --- HTTP ----------------------------------------------------------------------------------

    async def _public(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = dict(request.query)
        record = self._record(request, method, params, None)
        return await self._answer(request, record, lambda: self.endpoints.public(method, params))

    async def _private(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        params = _parse_body(raw, request.content_type)
        record = self._record(request, method, params, request.headers.get("API-Key"))

        def work() -> Any:
            account = self._authenticate(request, raw, params)
            self.venue.charge(account, method, params)
            return self.endpoints.private(account, method, params)

        return await self._answer(request, record, work)

    def _record(
        self, request: web.Request, method: str, params: dict[str, str], key: str | None
    ) -> Recorded:
        private = request.path.startswith("/0/private/")
        agent = request.headers.get("User-Agent", "")
        record = Recorded(method, private, params, key, agent, time.monotonic())
        if request.transport is not None:
            host, port = request.transport.get_extra_info("peername")[:2]
            record.peer = f"{host}:{port}"
        self.requests.append(record)
        return record

    def _authenticate(self, request: web.Request, raw: bytes, params: Mapping[str, str]) -> Account:
        """Key, then signature over the raw body, then a nonce above the key's last one."""
        account = self.venue.accounts.get(request.headers.get("API-Key", ""))
        if account is None:
            raise KrakenError("EAPI:Invalid key")
        nonce = params.get("nonce", "")
        expected = expected_sign(request.path, raw, nonce, account.secret)
        if not hmac.compare_digest(expected, request.headers.get("API-Sign", "")):
            raise KrakenError("EAPI:Invalid signature")
        if not nonce.isdigit() or int(nonce) <= account.last_nonce:
            raise KrakenError("EAPI:Invalid nonce")
        account.last_nonce = int(nonce)
        return account

    def _take_fault(self, endpoint: str) -> Fault | None:
        for name in (endpoint, "*"):
            queue = self._faults.get(name)
            if queue:
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                return fault
        return None

    async def _answer(
        self, request: web.Request, record: Recorded, work: Callable[[], Any]
    ) -> web.StreamResponse:
        fault = self._take_fault(record.endpoint)
        delay = self.latency + (fault.delay if fault else 0.0)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None and not fault.after and _fails(fault):
            return await self._fail(request, record, fault)
        try:
            body: dict[str, Any] = {"error": [], "result": work()}
        except KrakenError as exc:
            body = {"error": [exc.code]}
            record.errors.append(exc.code)
        if fault is not None and fault.after:
            return await self._fail(request, record, fault)
        record.done_at = time.monotonic()
        return web.json_response(body)

    async def _fail(
        self, request: web.Request, record: Recorded, fault: Fault
    ) -> web.StreamResponse:
        if fault.hang:
            record.answered = False
            await self._release.wait()
            return web.Response(status=504)
        if fault.drop:
            record.answered = False
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if fault.status is not None:
            record.status = fault.status
            html = f"<html><body><h1>{fault.status} Bad Gateway</h1></body></html>"
            return web.Response(status=fault.status, text=html, content_type="text/html")
        assert fault.error is not None
        record.errors.append(fault.error)
        return web.json_response({"error": [fault.error]})


def _fails(fault: Fault) -> bool:
    return fault.hang or fault.drop or fault.status is not None or fault.error is not None


def _parse_body(raw: bytes, content_type: str) -> dict[str, str]:
    """Form-encoded or JSON body as strings (Kraken accepts both)."""
    if content_type == "application/json":
        doc = json.loads(raw or b"{}", parse_float=Decimal)
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    return dict(parse_qsl(raw.decode(), keep_blank_values=True))
