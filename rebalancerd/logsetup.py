"""Logging set-up: one stderr handler, journald priority prefixes, and secret redaction."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

REDACTED = "***"


class RedactingFilter(logging.Filter):
    """Replaces every registered secret in a record's message and traceback with ***."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str) -> None:
        """Redact this value (and its whitespace-stripped form) from now on."""
        # Secret files usually end with a newline; the value in use is the stripped one.
        new = {value for value in (secret, secret.strip()) if value} - self._secrets
        if new:
            self._secrets |= new
            self._pattern = None  # compiled on first use: adding N secrets stays O(N)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._secrets:
            # Longest first, so a secret that contains another is replaced whole. Compiled
            # once, not once per secret added.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return self._pattern

    def redact(self, text: str) -> str:
        """The text with every registered secret replaced."""
        pattern = self._compiled()
        return text if pattern is None else pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place with its final, redacted text; never drops it."""
        if self._compiled() is None:
            return True
        record.msg = self.redact(_final_message(record))
        record.args = None
        if record.exc_info and not record.exc_text:
            # Render the traceback now: an exception's message may quote a secret too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _final_message(record: logging.LogRecord) -> str:
    """The %-formatted message; a broken log call is described rather than raised."""
    try:
        return record.getMessage()
    except Exception as exc:
        # Filters run outside logging's own error handling: raising here would hit the caller,
        # and logging's fallback report would print the unredacted arguments.
        return f"[logging] bad log call {record.msg!r} % {record.args!r}: {exc}"


# Secrets are registered where they are loaded (config) and redacted where lines are written
# (this handler); one process-wide filter is what connects the two without passing it around.
_REDACTOR = RedactingFilter()


def register_secret(value: str) -> None:
    """Never let this value reach a log line: it is printed as *** instead."""
    _REDACTOR.add(value)


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald records for a Python log level."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """`<N>message` on every line, no timestamp: journald adds its own and parses <N>."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Prefix each line, tracebacks included, so none is logged at the default priority."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


class PlainFormatter(logging.Formatter):
    """`2025-10-20T10:00:00.000Z message`: the original product's lines, timestamped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO-8601 in UTC with milliseconds, like JavaScript's toISOString()."""
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{int(record.msecs):03d}Z"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The one handler configure_logging owns (and replaces when called again)."""


def configure_logging(
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] = os.environ,
    access_log: bool = False,
) -> logging.Handler:
    """Install the root handler: journald style if $JOURNAL_STREAM is set, else timestamped."""
    levelno = logging.getLevelNamesMapping().get(level.upper())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}")
    # Resolved at call time, not import time, so a replaced sys.stderr is honoured.
    handler = _StderrHandler(sys.stderr if stream is None else stream)
    journal = bool(environ.get("JOURNAL_STREAM"))
    handler.setFormatter(JournalFormatter() if journal else PlainFormatter())
    # On the handler, not the root logger: logger filters skip records from child loggers.
    handler.addFilter(_REDACTOR)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    # One line per HTTP request drowns the scheduler's story; opt in for debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET if access_log else logging.WARNING)
    # Warnings and uncaught exceptions would otherwise reach stderr raw: unprefixed lines.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return handler


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """Report an exception that escaped main() through logging, at error priority."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("rebalancerd").critical("Unhandled exception", exc_info=(exc_type, exc, tb))
