"""Kraken REST over aiohttp: signing, nonces, one private call at a time per key, timeouts."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp

from rebalancerd.exchange.kraken.errors import ErrorReply, NoReply, normalise
from rebalancerd.exchange.kraken.nonce import NonceSource
from rebalancerd.exchange.kraken.ratelimit import Clock, RateLimiter
from rebalancerd.exchange.protocol import FatalError

logger = logging.getLogger(__name__)

USER_AGENT = "rebalancerd/0.1 (+https://github.com/rebalancerd)"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# One daemon's connections to Kraken, all accounts together: private calls go one at a time per
# key and runs are few at once, so this only bounds a burst (connections are kept alive).
CONNECTIONS = 100


def open_session() -> aiohttp.ClientSession:
    """The HTTP session a daemon's Kraken clients share (one connection pool, kept alive)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS))


def sign(urlpath: str, nonce: int | str, postdata: str, secret: bytes) -> str:
    """API-Sign: base64(HMAC-SHA512(secret, urlpath + SHA256(nonce + postdata)))."""
    inner = hashlib.sha256((str(nonce) + postdata).encode()).digest()
    mac = hmac.new(secret, urlpath.encode() + inner, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def decode_secret(api_secret: str) -> bytes:
    """The raw HMAC key from Kraken's base64 API secret."""
    try:
        return base64.b64decode(api_secret, validate=True)
    except (binascii.Error, ValueError):
        # Never echo the secret, not even a part of it.
        raise FatalError("the Kraken API secret is not valid base64") from None


class KrakenTransport:
    """Sends public GETs and signed private POSTs; private calls on the key go one at a time."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        api_secret: str,
        limiter: RateLimiter,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        nonces: NonceSource | None = None,
        on_nonce_refused: Callable[[str], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._key = api_key
        self._secret = decode_secret(api_secret) if api_secret else b""
        self._limiter = limiter
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._nonces = nonces or NonceSource()
        # Told the method of every call refused for its nonce (it was not carried out, and the
        # caller signs it once more): the daemon counts these in /metrics.
        self._on_nonce_refused = on_nonce_refused
        # Held from nonce generation until the reply, so nonces reach Kraken in order.
        self._private_lock = asyncio.Lock()
        self._clock = clock
        self._private_busy = 0  # private calls waiting for the key or in flight
        self._private_done_at = clock()

    def quiet_for(self) -> float:
        """Seconds since the key's last private call ended (0 while one waits or runs)."""
        return 0.0 if self._private_busy else self._clock() - self._private_done_at

    def __repr__(self) -> str:
        return f"KrakenTransport(api_url={self._base!r}, api_key=<redacted>)"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or (self._session.closed and self._owns_session):
            self._session = aiohttp.ClientSession()
        return self._session

    async def public(self, method: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /0/public/<method>; returns `result` or raises ErrorReply / NoReply."""
        url = f"{self._base}/0/public/{method}"
        status, body = await self._send(method, "GET", url, params=dict(params or {}))
        return self._decode(method, status, body)

    async def private(
        self,
        method: str,
        params: Mapping[str, str] | None = None,
        *,
        pair: str | None = None,
        cost: float | None = None,
    ) -> Any:
        """Signed POST /0/private/<method>; returns `result` or raises ErrorReply / NoReply."""
        if not self._key or not self._secret:
            raise FatalError(f"{method}: no Kraken API credentials configured")
        self._private_busy += 1
        try:
            status, raw = await self._signed(method, params, pair, cost)
        finally:
            self._private_busy -= 1
            self._private_done_at = self._clock()
        try:
            return self._decode(method, status, raw)
        except ErrorReply as reply:
            for error in map(normalise, reply.errors):
                if error == "EAPI:Invalid nonce" and self._on_nonce_refused is not None:
                    # Another process using this key sent a higher nonce first.
                    self._on_nonce_refused(method)
                if error.endswith("Rate limit exceeded"):
                    # EOrder: the pair's trading counter is full; EAPI: the REST counter is.
                    counter = method if error.startswith("EOrder:") else "REST"
                    self._limiter.saturate(counter, pair)
            raise

    async def _signed(
        self,
        method: str,
        params: Mapping[str, str] | None,
        pair: str | None,
        cost: float | None = None,
    ) -> tuple[int, bytes]:
        """Status and body of one signed call, sent while holding the key: nonces stay ordered."""
        path = f"/0/private/{method}"
        async with self._private_lock:
            await self._limiter.acquire(method, pair, cost)
            nonce = self._nonces.next()
            body = urlencode({"nonce": str(nonce), **(params or {})})
            headers = {
                "API-Key": self._key,
                "API-Sign": sign(path, nonce, body, self._secret),
                "Content-Type": FORM,
            }
            return await self._send(
                method, "POST", self._base + path, data=body.encode(), headers=headers
            )

    async def _send(self, method: str, verb: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
        logger.debug("kraken %s %s", verb, method)
        kwargs["headers"] = {"User-Agent": USER_AGENT, **kwargs.get("headers", {})}
        try:
            async with self._client().request(verb, url, timeout=self._timeout, **kwargs) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection never opened, so the request surely never reached Kraken.
            raise NoReply(method, f"cannot connect ({type(exc).__name__})", sent=False) from None
        except TimeoutError:
            raise NoReply(method, f"no reply within {self._timeout.total}s", sent=True) from None
        except aiohttp.ClientError as exc:
            # `from None`: aiohttp errors carry the request headers (API-Key) along.
            raise NoReply(method, f"connection failed ({type(exc).__name__})", sent=True) from None

    def _decode(self, method: str, status: int, body: bytes) -> Any:
        if status != 200:
            raise NoReply(method, f"HTTP {status}", sent=True, status=status)
        try:
            # parse_float=Decimal: money never passes through a float.
            doc = json.loads(body, parse_float=Decimal)
        except ValueError:
            raise NoReply(method, "reply is not JSON", sent=True, status=status) from None
        if not isinstance(doc, dict):
            raise NoReply(method, "reply is not a JSON object", sent=True, status=status)
        raw_errors = doc.get("error") or []
        # Some gateways answer `"error": "EService:..."`: one error, not one per character.
        messages = [raw_errors] if isinstance(raw_errors, str) else [str(e) for e in raw_errors]
        errors = [e for e in messages if not e.startswith("W")]
        for warning in set(messages) - set(errors):
            logger.warning("kraken %s warning: %s", method, warning)
        if errors:
            raise ErrorReply(method, errors)
        if "result" not in doc:
            raise NoReply(method, "reply has no result", sent=True, status=status)
        return doc["result"]

    async def close(self) -> None:
        """Close the HTTP session if this transport opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
