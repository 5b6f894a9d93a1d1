"""Log lines: journald priority prefixes, timestamps outside journald, secret redaction."""

from __future__ import annotations

import io
import logging
import re
import secrets
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rebalancerd.logsetup import RedactingFilter, configure_logging, register_secret

JOURNAL = {"JOURNAL_STREAM": "8:123456"}
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")
log = logging.getLogger("rebalancerd.runs.loop")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put all of it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access")
    access_level, excepthook = access.level, sys.excepthook
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    access.setLevel(access_level)
    sys.excepthook = excepthook
    logging.captureWarnings(False)


def configure(level: str = "DEBUG", **environ: str) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, stream=stream, environ=environ)
    return stream


def raise_and_log(message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError:
        log.exception("[Rebalance:p1] ERROR: Rebalance failed")


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.DEBUG, "<7>"),
        (logging.INFO, "<6>"),
        (25, "<6>"),  # a custom level between INFO and WARNING
        (logging.WARNING, "<4>"),
        (logging.ERROR, "<3>"),
        (logging.CRITICAL, "<3>"),
    ],
)
def test_journald_lines_start_with_the_priority_and_carry_no_timestamp(
    level: int, prefix: str
) -> None:
    stream = configure(**JOURNAL)
    log.log(level, "[Rebalance:%s] INFO: Starting portfolio rebalance", "p1")
    assert stream.getvalue() == f"{prefix}[Rebalance:p1] INFO: Starting portfolio rebalance\n"


@pytest.mark.parametrize("environ", [{}, {"JOURNAL_STREAM": ""}])
def test_outside_journald_lines_start_with_a_utc_timestamp(environ: dict[str, str]) -> None:
    stream = configure(**environ)
    before = datetime.now(UTC)
    log.warning("[Scheduler] Found %d portfolio(s) that need rebalancing", 2)
    line = stream.getvalue()
    match = TIMESTAMP.match(line)
    assert match is not None, line
    assert line[match.end() :] == "[Scheduler] Found 2 portfolio(s) that need rebalancing\n"
    stamp = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert before - timedelta(milliseconds=1) <= stamp <= datetime.now(UTC)
    assert not line.startswith("<")


def test_traceback_lines_are_all_prefixed_under_journald() -> None:
    stream = configure(**JOURNAL)
    raise_and_log("boom")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "<3>[Rebalance:p1] ERROR: Rebalance failed"
    assert "<3>Traceback (most recent call last):" in lines
    assert lines[-1] == "<3>ValueError: boom"
    assert all(line.startswith("<3>") for line in lines)


def test_multi_line_message_is_prefixed_on_every_line() -> None:
    stream = configure(**JOURNAL)
    log.warning("[Scheduler] two problems:\n- first\n- second")
    assert stream.getvalue() == "<4>[Scheduler] two problems:\n<4>- first\n<4>- second\n"


def test_uncaught_exception_goes_through_logging() -> None:
    stream = configure(**JOURNAL)
    try:
        raise RuntimeError("escaped main")
    except RuntimeError as exc:
        sys.excepthook(RuntimeError, exc, exc.__traceback__)
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "<3>RuntimeError: escaped main"
    assert all(line.startswith("<3>") for line in lines)


def test_python_warnings_are_logged_with_warning_priority() -> None:
    stream = configure(**JOURNAL)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    lines = stream.getvalue().splitlines()
    assert any("UserWarning: deprecated thing" in line for line in lines)
    assert all(line.startswith("<4>") for line in lines)


def test_level_filters_lower_records() -> None:
    stream = configure("warning")
    log.info("[Scheduler] hidden")
    log.warning("[Scheduler] shown")
    assert "hidden" not in stream.getvalue()
    assert "shown" in stream.getvalue()


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging("LOUD", stream=io.StringIO(), environ={})


def test_configuring_twice_leaves_one_handler() -> None:
    configure(**JOURNAL)
    stream = configure(**JOURNAL)
    log.info("[Scheduler] once")
    assert stream.getvalue() == "<6>[Scheduler] once\n"
    ours = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is stream]
    assert len(ours) == 1


@pytest.mark.parametrize(("access_log", "shown"), [(False, False), (True, True)])
def test_aiohttp_access_log_is_quiet_unless_asked_for(access_log: bool, shown: bool) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, environ=JOURNAL, access_log=access_log)
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /healthz HTTP/1.1" 200')
    logging.getLogger("aiohttp.access").warning("slow request")
    assert ("GET /healthz" in stream.getvalue()) is shown
    assert "slow request" in stream.getvalue()


def test_registered_secret_never_reaches_the_log() -> None:
    token, kraken_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    register_secret(token)
    register_secret(kraken_secret + "\n")  # as read from a credential file
    stream = configure(**JOURNAL)
    log.info("[Scheduler] token=%s", token)
    logging.getLogger("aiohttp.client").warning("signing with %r", {"secret": kraken_secret})
    raise_and_log(f"bad key {kraken_secret}")
    out = stream.getvalue()
    assert token not in out
    assert kraken_secret not in out
    assert "<6>[Scheduler] token=***\n" in out
    assert "<4>signing with {'secret': '***'}\n" in out
    assert "<3>ValueError: bad key ***\n" in out


def test_a_secret_containing_another_is_redacted_whole() -> None:
    redactor = RedactingFilter()
    redactor.add("abcd1234")
    redactor.add("abcd1234efgh")
    redactor.add("")  # ignored: would otherwise match everywhere
    assert redactor.redact("k=abcd1234efgh, j=abcd1234, x=abc") == "k=***, j=***, x=abc"


def test_redaction_covers_stack_info() -> None:
    redactor = RedactingFilter()
    redactor.add("s3cr3t-value")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "m", None, None, sinfo="s3cr3t-value"
    )
    assert redactor.filter(record)
    assert record.stack_info == "***"


def test_a_broken_log_call_is_reported_redacted_instead_of_raising() -> None:
    secret = secrets.token_hex(16)
    register_secret(secret)
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream, environ=JOURNAL)
    # Straight to our handler: pytest's own capture handler would raise on this record first.
    args = (secret,)  # a str for a %d placeholder
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 1, "[Scheduler] %d orders", args, None
    )
    handler.handle(record)
    assert stream.getvalue().startswith(
        "<6>[logging] bad log call '[Scheduler] %d orders' % ('***',)"
    )
    assert secret not in stream.getvalue()


def test_many_secrets_register_fast_and_are_all_redacted() -> None:

    from rebalancerd.logsetup import RedactingFilter

    f = RedactingFilter()
    for i in range(2000):
        f.add(f"secret-value-{i:05d}-xyz")
    assert f.redact("a secret-value-01999-xyz b secret-value-00000-xyz") == "a *** b ***"
