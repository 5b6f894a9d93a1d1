"""The `rebalancerd` command: run, migrate, demo (and client commands talking to a daemon)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rebalancerd.config import EXIT_CONFIG, ConfigError, Settings, load_settings


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is a config error: one line, exit 78."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"rebalancerd: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rebalancerd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (
        ("run", "run the daemon (under systemd, or in a terminal)"),
        ("migrate", "apply pending database migrations and exit"),
        ("demo", "run with an embedded database, paper accounts and simulated prices"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", type=Path, help="TOML file (default $REBALANCERD_CONFIG)")
    from rebalancerd.cli import client, safety

    client.add_commands(sub)
    safety.add_commands(sub)  # runs, approve, reject, halt, resume
    # ===== backtest (issue 18) =====
    from rebalancerd.backtest.command import add_command as add_backtest

    add_backtest(sub)
    # ===== end backtest =====
    from rebalancerd.notify import check

    check.add_commands(sub)  # notify test
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command in ("run", "migrate", "demo"):
        return _local(args)
    code: int = args.handler(args)
    return code


def _local(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, demo=args.command == "demo")
    except ConfigError as exc:
        print(f"rebalancerd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from rebalancerd.logsetup import configure_logging

    configure_logging(settings.log_level)
    _register_secrets(settings)
    try:
        if args.command == "migrate":
            return _run(_migrate(settings))
        from rebalancerd.daemon import Daemon

        daemon = Daemon(settings, config_path=args.config, demo=args.command == "demo")
        if args.command == "demo":
            print(f"rebalancerd demo: http://{settings.http.listen}/api/scheduler", flush=True)
            print(f"rebalancerd demo: dashboard at http://{settings.http.listen}/", flush=True)
        return _run(daemon.run())
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # one line for people; the journal gets the same
        print(f"rebalancerd: {type(exc).__name__}: {_safe(exc, settings)}", file=sys.stderr)
        return 1


def _run(coro: object) -> int:
    try:
        import uvloop

        result: int = uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        result = asyncio.run(coro)  # type: ignore[arg-type]
    return result


async def _migrate(settings: Settings) -> int:
    from rebalancerd.daemon import Daemon
    from rebalancerd.store.embedded import connect_pool
    from rebalancerd.store.migrations import load_migrations, migrate

    daemon = Daemon(settings)
    dsn = await daemon._database_url()
    pool = await connect_pool(dsn, timeout=settings.database.connect_timeout, size=2)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn, load_migrations())
    finally:
        await pool.close()
        if daemon.embedded is not None:
            await asyncio.to_thread(daemon.embedded.stop)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _register_secrets(settings: Settings) -> None:
    from rebalancerd.logsetup import register_secret

    secrets = [settings.http.api_token, settings.database.url]
    secrets += [hook.secret for hook in settings.notify.webhook]  # and the URLs: Slack's are keys
    for hook in settings.notify.webhook:
        register_secret(hook.url)
    for account in settings.accounts.values():
        secrets += [account.api_key, account.api_secret]
    for secret in secrets:
        if secret is not None:
            register_secret(secret.get_secret_value())


def _safe(exc: Exception, settings: Settings) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    url = settings.database.url
    if url is not None:
        text = text.replace(url.get_secret_value(), "***")
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
