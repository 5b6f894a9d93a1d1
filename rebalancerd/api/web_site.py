"""The dashboard's page and assets, served from the package (rebalancerd/web/).

Assets get content-hashed names (`/assets/app.3f9c2a1b7d04.js`), so they are cached for a year
and a new version is a new name; the page itself is re-validated on every load. Each file is
gzipped once at start. Every response carries the security headers: a CSP of `default-src
'self'` (no inline script or style, nothing from another host), nosniff, no framing.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from rebalancerd.api.http import accepts_gzip

Handler = Callable[[web.Request], Awaitable[web.Response]]
PREFIX = "/assets/"
# name in the package -> (type, placeholder in index.html)
FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "forms.js": "text/javascript; charset=utf-8",
    "safety.js": "text/javascript; charset=utf-8",  # safety controls, execution, notifications
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
}
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, gzip.compress(body, compresslevel=9, mtime=0), content_type)


def hashed_name(name: str, body: bytes) -> str:
    """`vendor/uPlot.min.css` -> `uPlot.min.<12 hex>.css`."""
    base = name.rpartition("/")[2]
    stem, dot, ext = base.rpartition(".")
    digest = hashlib.sha256(body).hexdigest()[:12]
    return f"{stem}.{digest}.{ext}" if dot else f"{base}.{digest}"


class Site:
    """The page and its assets, read and compressed once."""

    def __init__(self) -> None:
        root = resources.files("rebalancerd.web")
        self.assets: dict[str, Asset] = {}
        page = root.joinpath("index.html").read_text("utf-8")
        for name, content_type in FILES.items():
            body = root.joinpath(name).read_bytes()
            url_name = hashed_name(name, body)
            self.assets[url_name] = _asset(body, content_type)
            page = page.replace("{{" + name + "}}", PREFIX + url_name)
        # Two pages: the one for a daemon with a token asks for it before any request (so a
        # first visit shows no 401); which one is served follows a reload of the config.
        self.pages = {
            auth: _asset(page.replace("{{auth}}", auth).encode("utf-8"), "text/html; charset=utf-8")
            for auth in ("token", "open")
        }
        if "{{" in self.pages["open"].body.decode("utf-8"):
            raise RuntimeError("index.html names an asset that FILES does not list")

    def index(self, needs_token: Callable[[], bool]) -> Handler:
        """GET /: the page (it holds no data; the data routes check the token)."""

        async def page(request: web.Request) -> web.Response:
            return _send(request, self.pages["token" if needs_token() else "open"], "no-cache")

        return page

    async def asset(self, request: web.Request) -> web.Response:
        found = self.assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(reason="no such asset")
        return _send(request, found, IMMUTABLE)


def _send(request: web.Request, asset: Asset, cache: str) -> web.Response:
    zipped = accepts_gzip(request)
    headers = {
        "Content-Type": asset.content_type,
        "Cache-Control": cache,
        "Vary": "Accept-Encoding",
    }
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=asset.gzipped if zipped else asset.body, headers=headers)


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the headers every reply carries, streams and errors included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_routes(app: web.Application, needs_token: Callable[[], bool]) -> None:
    """GET / and GET /assets/{name}, and the headers on every response."""
    site = Site()
    app.router.add_route("GET", "/", site.index(needs_token))
    app.router.add_route("GET", PREFIX + "{name}", site.asset)
    app.on_response_prepare.append(security_headers)
