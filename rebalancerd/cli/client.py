"""`rebalancerd status | trigger | portfolios | history | plan`: a running daemon, over HTTP."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from rebalancerd.cli.text import (
    history_text,
    plan_text,
    portfolio_text,
    portfolios_text,
    status_text,
)

DEFAULT_LISTEN = "127.0.0.1:8080"
Handler = Callable[[argparse.Namespace], int]


class ClientError(Exception):
    """What went wrong, in one line for the terminal."""


def add_commands(sub: Any) -> None:
    """Add the client subcommands to the `rebalancerd` parser."""
    command(sub, "status", "show the scheduler and the schedule", show_status)
    trigger = command(sub, "trigger", "rebalance one portfolio now", run_trigger)
    trigger.add_argument("id", help="portfolio id")
    trigger.add_argument("--dry-run", action="store_true", help="plan and record, place nothing")
    trigger.add_argument("--force", action="store_true", help="pass the price-jump guard")
    ports = command(sub, "portfolios", "list, show, create or delete portfolios", portfolios)
    actions = ports.add_subparsers(dest="action", metavar="{list,show,create,delete}")
    _common(actions.add_parser("list", help="list portfolios (the default)"))
    _common(actions.add_parser("show", help="show one portfolio")).add_argument("id")
    create = _common(actions.add_parser("create", help="create a portfolio from a JSON file"))
    create.add_argument("--file", required=True, type=Path, help="JSON body ('-': stdin)")
    _common(actions.add_parser("delete", help="delete a portfolio")).add_argument("id")
    history = command(sub, "history", "list past rebalances, newest first", show_history)
    history.add_argument("--portfolio", help="only this portfolio id")
    history.add_argument("--limit", type=int, default=20, help="how many (max 500, default 20)")
    plan = command(sub, "plan", "what a run would trade now, and why each skip", show_plan)
    plan.add_argument("id", help="portfolio id")


def command(sub: Any, name: str, text: str, handler: Handler) -> argparse.ArgumentParser:
    """A client subcommand with --url, --token and --json, run by `handler`."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    parser.set_defaults(handler=lambda args: _guarded(handler, args))
    return _common(parser)


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # SUPPRESS: a nested parser's default must not overwrite a value given before its name.
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--url", default=hidden, help="daemon URL (default from REBALANCERD_LISTEN)"
    )
    parser.add_argument(
        "--token", default=hidden, help="API token (default $REBALANCERD_API_TOKEN)"
    )
    parser.add_argument("--json", action="store_true", default=hidden, help="print raw JSON")
    return parser


def _guarded(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except ClientError as exc:
        print(f"rebalancerd: {exc}", file=sys.stderr)
        return 1


def default_url(environ: Mapping[str, str]) -> str:
    """The daemon's URL from REBALANCERD_LISTEN (a wildcard address means this host)."""
    host, _, port = (environ.get("REBALANCERD_LISTEN") or DEFAULT_LISTEN).rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host.strip("[]"), host)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port}"


def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None, timeout: float = 30
) -> dict[str, Any]:
    """One request; the decoded JSON answer, or ClientError with the daemon's error."""
    base = (getattr(args, "url", None) or default_url(os.environ)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ClientError(f"--url must start with http:// or https://, not {base!r}")
    token = getattr(args, "token", None) or os.environ.get("REBALANCERD_API_TOKEN")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else orjson.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data, headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return _decoded(response.read())
    except urllib.error.HTTPError as exc:
        raise ClientError(f"HTTP {exc.code}: {_error_of(exc)}") from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach rebalancerd at {base}: {_reason(exc.reason)}") from None
    except (TimeoutError, OSError) as exc:
        raise ClientError(f"cannot reach rebalancerd at {base}: {_reason(exc)}") from None


def _decoded(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientError("the daemon answered something that is not JSON") from None
    if not isinstance(value, dict):
        raise ClientError("the daemon answered something that is not a JSON object")
    return value


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        error = orjson.loads(exc.read()).get("error")
    except (orjson.JSONDecodeError, AttributeError, OSError):
        error = None
    text = str(error or exc.reason)
    if exc.code == 401:
        text += " (give --token or set REBALANCERD_API_TOKEN)"
    return text


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the daemon running?)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason)


def out(args: argparse.Namespace, payload: Mapping[str, Any], text: Callable[[], str]) -> None:
    """Print the answer: `text()` for people, the JSON with --json."""
    if getattr(args, "json", False):
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        print(text())


def show_status(args: argparse.Namespace) -> int:
    """`rebalancerd status`."""
    payload = call(args, "GET", "/api/scheduler")
    out(args, payload, lambda: status_text(payload))
    return 0


def run_trigger(args: argparse.Namespace) -> int:
    """`rebalancerd trigger ID`: exit 1 when the run failed."""
    body: dict[str, Any] = {"portfolioId": args.id}
    if args.dry_run:
        body["dryRun"] = True
    if args.force:
        body["force"] = True
    payload = call(args, "POST", "/api/scheduler/trigger", body, timeout=600)
    if payload.get("history") is None:  # the plan awaits approval (safety controls)
        out(args, payload, lambda: str(payload["message"]))
        return 0
    out(args, payload, lambda: f"{payload['message']}\n" + history_text([payload["history"]]))
    return 0 if payload.get("success") else 1


def portfolios(args: argparse.Namespace) -> int:
    """`rebalancerd portfolios [list|show ID|create --file F|delete ID]`."""
    action = getattr(args, "action", None) or "list"
    if action == "create":
        payload = call(args, "POST", "/api/portfolios/manage", _read_json(args.file))
        out(args, payload, lambda: f"{payload['message']}\n{portfolio_text(payload['portfolio'])}")
    elif action == "delete":
        payload = call(args, "DELETE", "/api/portfolios/manage?id=" + quote(args.id, safe=""))
        out(args, payload, lambda: str(payload["message"]))
    elif action == "show":
        listed = call(args, "GET", "/api/portfolios/manage")["portfolios"]
        found = [p for p in listed if p["id"] == args.id]
        if not found:
            raise ClientError(f"portfolio {args.id} not found")
        out(args, found[0], lambda: portfolio_text(found[0]))
    else:
        payload = call(args, "GET", "/api/portfolios/manage")
        out(args, payload, lambda: portfolios_text(payload["portfolios"]))
    return 0


def show_history(args: argparse.Namespace) -> int:
    """`rebalancerd history [--portfolio ID] [--limit N]`."""
    params = {"limit": str(args.limit)}
    if args.portfolio:
        params["portfolioId"] = args.portfolio
    payload = call(args, "GET", "/api/history?" + urlencode(params))
    out(args, payload, lambda: history_text(payload["history"]))
    return 0


def show_plan(args: argparse.Namespace) -> int:
    """`rebalancerd plan ID`."""
    payload = call(args, "GET", "/api/portfolios/plan?id=" + quote(args.id, safe=""), timeout=120)
    out(args, payload, lambda: plan_text(payload))
    return 0


def _read_json(path: Path) -> Any:
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        return orjson.loads(raw)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"{path} is not valid JSON: {exc}") from None
