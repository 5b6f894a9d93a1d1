"""What stands in front of the HTTP API's routes: host names, origins, body types, the token.

A browser on the operator's machine is the attacker this module is about. A page it visits can
send "simple" cross-site requests (text/plain or form bodies, no preflight) and can rebind its
own DNS name to 127.0.0.1 to read the answers. So:

- Host: only loopback names, the address the daemon listens on and `[http] allowed_hosts` are
  served; any other name is 421 (a rebound page sends its own name). /healthz and /metrics
  answer any name: probes and scrapers use whatever name they know, and neither route carries
  balances, orders or secrets.
- Origin: a state-changing request that a browser says came from another origin is 403.
- Content-Type: a request body must be application/json (415), which no page can send to
  another origin without a CORS preflight, and this daemon grants none.
- Token: compared in constant time; refusals are logged (never the token), rate-limited. The
  read-only token (`[http] read_token`) passes GET/HEAD/OPTIONS and gets 403 on anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from rebalancerd.api.fields import CONTROL
from rebalancerd.api.http import fail
from rebalancerd.config import HttpSettings

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/metrics"})  # answered whatever the Host (see above)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
LOG_EVERY = 10.0  # seconds between two lines about refused requests of one kind
ACCESS = web.RequestKey("access", str)  # "full" or "read" (the read-only token)


class RateLimitedLog:
    """At most one line per `interval` seconds; the next line admitted counts those held back."""

    def __init__(self, interval: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._next = float("-inf")
        self._held = 0

    def admit(self) -> int | None:
        """None: stay silent. Else log now, saying how many lines were held back (maybe 0)."""
        now = self.clock()
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self.interval
        return held


def held_back(count: int) -> str:
    """The tail of a rate-limited line: how many like it were not logged."""
    return f" (and {count} more since the last report)" if count else ""


def where(request: web.Request) -> str:
    """`METHOD /path from peer`, safe to log: the path stays percent-encoded (no line breaks)."""
    return f"{request.method} {request.rel_url.raw_path[:200]} from {request.remote}"


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header (or authority) as (lower-case name without brackets or final dot, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def allowed_host_names(http: HttpSettings) -> frozenset[str]:
    """Names besides loopback addresses that this daemon answers to."""
    names = {"localhost", *http.allowed_hosts}
    listen = split_host(http.host)[0]
    address = _address(listen)
    if address is None:
        names.add(listen)
    elif not address.is_unspecified:  # 0.0.0.0 and :: are nobody's name
        names.add(str(address))
    return frozenset(names)


def host_is_allowed(host: str, allowed: Collection[str]) -> bool:
    """True for a loopback address or one of the allowed names, with any port."""
    name = split_host(host)[0]
    address = _address(name)
    return (address.is_loopback or str(address) in allowed) if address else name in allowed


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def origin_is_ours(origin: str, host: str, configured: Collection[str]) -> bool:
    """True when `origin` is where the request was sent (name and port) or a configured name.

    A configured name counts with any port, as in the Host check: behind a proxy that rewrites
    Host, the browser's origin (https://name) is the only sign the request is for us.
    """
    try:
        url = URL(origin)
    except ValueError:
        return False
    if url.scheme not in DEFAULT_PORTS or not url.host or url.path not in ("", "/"):
        return False
    name = url.host.lower().rstrip(".")
    if name in configured:
        return True
    host_name, host_port = split_host(host)
    return name == host_name and url.port == (host_port or DEFAULT_PORTS[url.scheme])


def guards(http: HttpSettings, current: Callable[[], HttpSettings] | None = None) -> list[Any]:
    """The middlewares, outermost first: Host (421), Origin (403), token (401), type (415).

    `current`: the settings in force (a reload may change the token); `http` if not given.
    """
    origins = _origins(frozenset(http.allowed_hosts))
    token = current or (lambda: http)
    return [_hosts(allowed_host_names(http)), origins, _auth(token), _json_bodies]


def _hosts(allowed: frozenset[str]) -> Any:
    @web.middleware
    async def hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        # No Host at all cannot come from a browser, so it cannot be a rebinding attack.
        if host is None or request.path in OPEN_PATHS or host_is_allowed(host, allowed):
            return await handler(request)
        return fail(421, "this host name is not served here; list it in http.allowed_hosts")

    return hosts


def _origins(configured: frozenset[str]) -> Any:
    @web.middleware
    async def origins(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or request.method in SAFE_METHODS:
            return await handler(request)
        if origin_is_ours(origin, request.headers.get("Host", ""), configured):
            return await handler(request)
        return fail(403, "cross-origin request refused: the Origin is not this daemon")

    return origins


def _digest(text: str) -> bytes:
    # Comparing fixed-size digests keeps even the token's length out of the timing.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def _auth(current: Callable[[], HttpSettings]) -> Any:
    refusals = RateLimitedLog()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        http = current()  # read per request: a reload may have changed the tokens
        if http.api_token is None or not request.path.startswith("/api/"):
            request[ACCESS] = "full"
            return await handler(request)
        header = request.headers.get("Authorization")
        scheme, _, given = (header or "").partition(" ")
        access = _access(http, _digest(given.strip())) if scheme.lower() == "bearer" else None
        if access == "read" and request.method not in SAFE_METHODS:
            return fail(403, "the read-only token cannot change anything")
        if access is not None:
            request[ACCESS] = access
            return await handler(request)
        held = refusals.admit()
        if held is not None:
            reason = "no bearer token" if header is None else "wrong bearer token"
            log.warning("[API] Refused %s: %s%s", where(request), reason, held_back(held))
        return fail(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    return auth


def _access(http: HttpSettings, given: bytes) -> str | None:
    """ "full" for the API token, "read" for the read-only one, None for anything else."""
    assert http.api_token is not None
    # Both comparisons always run: which token matched must not show in the timing.
    full = hmac.compare_digest(given, _digest(http.api_token.get_secret_value()))
    read_token = http.read_token.get_secret_value() if http.read_token else None
    read = read_token is not None and hmac.compare_digest(given, _digest(read_token))
    return "full" if full else "read" if read else None


@web.middleware
async def _json_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.body_exists and not _is_json(request):
        return fail(415, "request body must be JSON sent as Content-Type: application/json")
    return await handler(request)


def _is_json(request: web.Request) -> bool:
    charset = (request.charset or "utf-8").lower()
    return request.content_type == "application/json" and charset == "utf-8"


class OneLineBadRequests(logging.Filter):
    """aiohttp's report of an unparsable request as one rate-limited line, not a traceback."""

    def __init__(self, limit: RateLimitedLog | None = None) -> None:
        super().__init__()
        self.limit = limit or RateLimitedLog()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a malformed-request record; leave any other record alone."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        held = self.limit.admit()
        if held is None:
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        first = (exc.message or type(exc).__name__).splitlines()[0]
        reason = CONTROL.sub("?", first).rstrip(": ")[:100]  # aiohttp quotes what it got
        record.msg = "[API] Bad request from %s: %s%s"
        record.args = (peer, reason, held_back(held))
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def server_logger() -> logging.Logger:
    """The logger for aiohttp's own connection handling, with malformed requests kept short."""
    logger = logging.getLogger("rebalancerd.http_server")
    if not any(isinstance(f, OneLineBadRequests) for f in logger.filters):
        logger.addFilter(OneLineBadRequests())
    return logger
