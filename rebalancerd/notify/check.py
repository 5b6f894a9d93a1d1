"""`rebalancerd notify test`: send a test event to every configured webhook, print the answers.

It goes straight out (no outbox, no retry): the point is to see what each receiver says now.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from rebalancerd.config import EXIT_CONFIG, ConfigError, Settings, load_settings
from rebalancerd.notify.deliver import Answer, Hook, attempt
from rebalancerd.notify.events import TEST_EVENT
from rebalancerd.notify.formats import Message
from rebalancerd.notify.service import dashboard_url


def add_commands(sub: Any) -> None:
    """Add `notify test` to the `rebalancerd` parser."""
    text = "webhook notifications"
    notify = sub.add_parser("notify", help=text, description=text)
    actions = notify.add_subparsers(dest="action", required=True, metavar="{test}")
    what = "send a test event to every [[notify.webhook]] and print what each answered"
    test = actions.add_parser("test", help=what, description=what)
    test.add_argument("--config", type=Path, help="TOML file (default $REBALANCERD_CONFIG)")
    test.set_defaults(handler=run_test)


def run_test(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """0 when every hook answered 2xx; 1 otherwise; 78 for a bad configuration."""
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"rebalancerd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    hooks = [Hook.from_settings(w) for w in settings.notify.webhook]
    if not hooks:
        print("no [[notify.webhook]] configured", file=out)
        return 1
    answers = asyncio.run(send_tests(settings, hooks))
    for hook, answer in zip(hooks, answers, strict=True):
        print(describe(hook, answer), file=out)
    return 0 if all(a.status is not None and 200 <= a.status < 300 for a in answers) else 1


async def send_tests(settings: Settings, hooks: Sequence[Hook]) -> list[Answer]:
    """One test event per hook, all at once (a hanging one costs its timeout, no more)."""
    data = {"link": dashboard_url(settings), "test": True}
    timeout = settings.notify.timeout_seconds
    async with aiohttp.ClientSession() as session:
        return list(
            await asyncio.gather(
                *(attempt(session, hook, _message(data), timeout) for hook in hooks)
            )
        )


def _message(data: dict[str, Any]) -> Message:
    return Message(str(uuid.uuid4()), TEST_EVENT, datetime.now(UTC), data)


def describe(hook: Hook, answer: Answer) -> str:
    """One line per hook: its name, format, whether it signs, and what it answered."""
    signed = "signed" if hook.signer is not None else "unsigned"
    head = f"{hook.key} ({hook.format}, {signed}):"
    if answer.status is not None and 200 <= answer.status < 300:
        return f"{head} HTTP {answer.status} OK in {answer.elapsed_ms} ms"
    return f"{head} FAILED in {answer.elapsed_ms} ms: {answer.error}"
