"""Issue #21, probed as an attacker would: each finding against a real `rebalancerd run`.

Cross-site requests, DNS rebinding, short tokens, idle sockets, concurrent triggers, control
characters, failed auth, malformed headers, client hang-ups and the one-account rule.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rebalancerd.config import HttpSettings
from tests.api_support import ORIGINAL_BODY
from tests.conftest import _admin, dsn_for, run_sync
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.e2e
TOKEN = "a-token-of-thirty-two-characters"
ALLOWED = "rebalancer.example"
MANAGE = "/api/portfolios/manage"
TRIGGER = "/api/scheduler/trigger"
CONFIG = """\
[paper]
prices = "simulated"
[accounts.default]
mode = "paper"
[accounts.sandbox]
mode = "paper"
balances = { EUR = "5000" }
"""


@pytest.fixture(scope="module")
def module_database_url(pg_base_url: str, pg_template: str) -> Iterator[str]:
    """One migrated database for the daemons of this module."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    yield dsn_for(pg_base_url, name)
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _daemon(directory: Path, database_url: str, config: str, **env: str) -> DaemonProcess:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.toml").write_text(config)
    base = {
        "DATABASE_URL": database_url,
        "REBALANCERD_CONFIG": str(directory / "config.toml"),
        "SCHEDULER_AUTO_START": "false",  # only triggers run: nothing races the tests
    }
    proc = DaemonProcess(directory, {**base, **env}).start()
    try:
        run_sync(proc.wait_healthy())
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[DaemonProcess]:
    """The loopback default: no token; one extra allowed host name."""
    proc = _daemon(
        tmp_path_factory.mktemp("open"),
        module_database_url,
        CONFIG,
        REBALANCERD_ALLOWED_HOSTS=f" {ALLOWED} , other.example",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[DaemonProcess]:
    """A daemon with a token, logging in journald style so priorities show."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name}"))
    proc = _daemon(
        tmp_path_factory.mktemp("locked"),
        dsn_for(pg_base_url, name),
        CONFIG,
        REBALANCERD_API_TOKEN=TOKEN,
        JOURNAL_STREAM="8:1234",
    )
    yield proc
    proc.stop()
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _create(proc: DaemonProcess, **fields: Any) -> dict[str, Any]:
    body = {**ORIGINAL_BODY, "rebalanceEnabled": False, **fields}
    status, answer = await proc.request("POST", MANAGE, json=body)
    assert status == 201, answer
    created: dict[str, Any] = answer["portfolio"]
    return created


async def _history(proc: DaemonProcess, pid: str) -> list[dict[str, Any]]:
    status, answer = await proc.request("GET", f"/api/history?portfolioId={pid}")
    assert status == 200, answer
    records: list[dict[str, Any]] = answer["history"]
    return records


async def _is_running(proc: DaemonProcess) -> bool:
    status, answer = await proc.request("GET", "/api/scheduler")
    assert status == 200, answer
    running: bool = answer["status"]["isRunning"]
    return running


async def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are; everything the server answers until it closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


# -- 1. cross-site requests ----------------------------------------------------------------

SIMPLE_BODIES = [
    ("text/plain", b'{"action":"start"}'),
    ("text/plain;charset=UTF-8", b'{"action":"start"}'),  # what fetch() sends for a string
    ("application/x-www-form-urlencoded", b'{"action":"start"}'),
    ("application/x-www-form-urlencoded", b"action=start"),
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"'
     b"\r\n\r\nstart\r\n--x--\r\n"),
    (None, b'{"action":"start"}'),  # fetch() with a Blob body sends no Content-Type at all
]  # fmt: skip


@pytest.mark.parametrize(("ctype", "body"), SIMPLE_BODIES)
async def test_a_simple_cross_site_post_is_415_and_changes_nothing(
    daemon: DaemonProcess, ctype: str | None, body: bytes
) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session,
        session.post(daemon.url + "/api/scheduler", data=body, headers=headers) as resp,
    ):
        answer = await resp.json(content_type=None)
    assert resp.status == 415, answer
    assert answer["success"] is False and "application/json" in answer["error"]
    assert await _is_running(daemon) is False


async def test_a_simple_cross_site_trigger_runs_nothing(daemon: DaemonProcess) -> None:
    pid = (await _create(daemon))["id"]
    body = f'{{"portfolioId": "{pid}"}}'.encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        status, answer = await daemon.request(
            "POST", TRIGGER, data=body, headers={"Content-Type": ctype}
        )
        assert status == 415, answer
    assert await _history(daemon, pid) == []


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", f"http://{ALLOWED}.evil.example", "http://localhost"]
)
async def test_a_foreign_origin_is_refused_on_every_state_changing_route(
    daemon: DaemonProcess, origin: str
) -> None:
    pid = (await _create(daemon))["id"]
    attempts = [
        ("POST", "/api/scheduler", {"action": "start"}),
        ("POST", TRIGGER, {"portfolioId": pid}),
        ("POST", MANAGE, ORIGINAL_BODY),
        ("PUT", MANAGE, {"id": pid, "name": "taken over"}),
        ("DELETE", f"{MANAGE}?id={pid}", None),
    ]
    for method, path, body in attempts:
        headers = {"Origin": origin}
        status, answer = await daemon.request(method, path, json=body, headers=headers)
        assert status == 403, (method, path, answer)
        assert answer["success"] is False and "Origin" in answer["error"]
    assert await _is_running(daemon) is False
    assert await _history(daemon, pid) == []
    status, answer = await daemon.request("GET", f"/api/portfolios/plan?id={pid}")
    assert status == 200, answer  # neither renamed nor deleted
    # Reading is not changing state: a GET with any Origin is still answered.
    status, _ = await daemon.request("GET", MANAGE, headers={"Origin": origin})
    assert status == 200


async def test_the_daemon_s_own_origin_is_accepted(daemon: DaemonProcess) -> None:
    pid = (await _create(daemon))["id"]
    for origin in (daemon.url, f"http://localhost:{daemon.port}".upper(), f"https://{ALLOWED}"):
        host = origin.split("://", 1)[1].lower()
        headers = {"Origin": origin, "Host": host}
        status, answer = await daemon.request(
            "POST", TRIGGER, json={"portfolioId": pid, "dryRun": True}, headers=headers
        )
        assert status == 200, (origin, answer)
    # Behind a proxy that rewrites Host, an allowed name as the Origin still counts as ours.
    status, answer = await daemon.request(
        "POST",
        TRIGGER,
        json={"portfolioId": pid, "dryRun": True},
        headers={"Origin": f"https://{ALLOWED}"},
    )
    assert status == 200, answer


# -- 2. DNS rebinding ------------------------------------------------------------------------


FOREIGN = ["evil.example", "evil.example:8080", f"{ALLOWED}.evil.example", "127.0.0.1.nip.io",
           "localhost.evil.example", "[::2]:80"]  # fmt: skip


@pytest.mark.parametrize("host", FOREIGN)
async def test_a_foreign_host_name_is_misdirected(daemon: DaemonProcess, host: str) -> None:
    headers = {"Host": host}
    for method, path, body in [
        ("GET", "/api/scheduler", None),
        ("GET", MANAGE, None),
        ("GET", "/api/openapi.json", None),
        ("GET", "/", None),  # the dashboard's page
        ("POST", "/api/scheduler", {"action": "start"}),
    ]:
        status, answer = await daemon.request(method, path, json=body, headers=headers)
        assert status == 421, (method, path, answer)
        assert answer["success"] is False and "allowed_hosts" in answer["error"]
    assert await _is_running(daemon) is False


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:1", "localhost.", "127.0.0.1", "[::1]",
                                  "127.0.0.1:9", "[::1]:8080", ALLOWED, f"{ALLOWED}:443",
                                  "Other.Example"])  # fmt: skip
async def test_loopback_and_allowed_names_are_served(daemon: DaemonProcess, host: str) -> None:
    status, answer = await daemon.request("GET", "/api/scheduler", headers={"Host": host})
    assert status == 200, answer


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_monitoring_answers_any_host_name(daemon: DaemonProcess, path: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(daemon.url + path, headers={"Host": "prometheus.internal"}) as resp,
    ):
        assert resp.status == 200


@pytest.mark.parametrize(
    ("listen", "allowed", "host", "ok"),
    [
        ("127.0.0.1:8080", (), "localhost", True),
        ("127.0.0.1:8080", (), "127.0.0.2", True),
        ("127.0.0.1:8080", (), "192.168.1.5", False),
        ("192.168.1.5:8080", (), "192.168.1.5", True),  # the address it listens on is its own
        ("[fd00::5]:8080", (), "fd00::5", True),
        ("nas.lan:8080", (), "nas.lan", True),
        ("0.0.0.0:8080", (), "0.0.0.0", False),  # a wildcard is nobody's name
        ("0.0.0.0:8080", ("nas.lan", "192.168.1.5"), "nas.lan", True),
        ("0.0.0.0:8080", ("nas.lan",), "evil.example", False),
        ("127.0.0.1:8080", ("NAS.lan.",), "nas.lan", True),
    ],
)
def test_allowed_host_names(listen: str, allowed: tuple[str, ...], host: str, ok: bool) -> None:
    from rebalancerd.api.guard import allowed_host_names, host_is_allowed

    settings = HttpSettings(listen=listen, allowed_hosts=allowed)
    assert host_is_allowed(host, allowed_host_names(settings)) is ok


# -- 3. an empty or short token ------------------------------------------------------------


UNREACHABLE_DB = '[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\nconnect_timeout = 1\n'


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ('[http]\nlisten = "0.0.0.0:8080"\napi_token = ""\n', {}),
        ('[http]\napi_token = ""\n', {}),
        ("", {"REBALANCERD_API_TOKEN": "tiny-secret"}),
        ("", {"REBALANCERD_API_TOKEN": "x" * 15, "REBALANCERD_LISTEN": "0.0.0.0:8080"}),
    ],
)
def test_an_empty_or_short_token_exits_78(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(UNREACHABLE_DB + toml)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REBALANCERD_")},
        "REBALANCERD_STATE_DIR": str(tmp_path / "state"),
        "REBALANCERD_CONFIG": str(config),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "rebalancerd", "run"],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http.api_token" in lines[0], result.stderr
    assert "tiny-secret" not in lines[0] and "x" * 15 not in lines[0]  # never the value


# -- 4. idle connections ---------------------------------------------------------------------


@pytest.fixture
def impatient(tmp_path: Path, database_url: str) -> Iterator[DaemonProcess]:
    config = CONFIG + "[http]\nkeepalive_timeout = 1\nread_timeout = 1\n"
    proc = _daemon(tmp_path, database_url, config)
    yield proc
    proc.stop()


async def test_an_idle_socket_is_closed_by_the_server(impatient: DaemonProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    try:
        assert await asyncio.wait_for(reader.read(), timeout=15) == b""  # EOF: the server hung up
    finally:
        writer.close()


async def test_a_request_that_never_ends_its_headers_is_dropped(impatient: DaemonProcess) -> None:
    head = b"GET /api/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    assert await _raw(impatient.port, head, timeout=15) == b""


async def test_a_body_that_never_arrives_is_408(impatient: DaemonProcess) -> None:
    head = (
        b"POST /api/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"act'
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    try:
        writer.write(head)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=15)
    finally:
        writer.close()
    assert status.startswith(b"HTTP/1.1 408"), status


async def test_a_kept_alive_connection_is_closed_when_idle(impatient: DaemonProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        rest = await asyncio.wait_for(reader.read(), timeout=15)  # the response, then EOF
        assert rest.endswith(b"}")
    finally:
        writer.close()


# -- 5. concurrent triggers ------------------------------------------------------------------


async def test_sixty_concurrent_triggers_run_once_and_never_5xx(daemon: DaemonProcess) -> None:
    for _ in range(3):
        pid = (await _create(daemon))["id"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            statuses = await asyncio.gather(*(_trigger(session, daemon, pid) for _ in range(60)))
        assert set(statuses) <= {200, 409}, statuses  # never a 5xx (the deadlock gave 500)
        assert 409 in statuses, statuses  # triggers during the run are refused, not queued
        # A trigger that arrives after the first run finished may run again (a fast machine
        # finishes a paper run within the burst): each 200 is exactly one recorded run.
        assert statuses.count(200) == len(await _history(daemon, pid)) >= 1, statuses


async def test_triggers_racing_a_finishing_run_never_5xx(daemon: DaemonProcess) -> None:
    # The deadlock needed a trigger to lock the portfolio just as a run was being finished:
    # keep triggers coming while several runs start and finish.
    pid = (await _create(daemon))["id"]
    statuses: list[int] = []

    async def hammer(session: aiohttp.ClientSession) -> None:
        while statuses.count(200) < 8 and len(statuses) < 3000:
            statuses.append(await _trigger(session, daemon, pid))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.wait_for(asyncio.gather(*(hammer(session) for _ in range(20))), 40)
    assert set(statuses) <= {200, 409}, sorted(set(statuses))
    assert statuses.count(200) == len(await _history(daemon, pid)) >= 8


async def _trigger(session: aiohttp.ClientSession, proc: DaemonProcess, pid: str) -> int:
    async with session.post(proc.url + TRIGGER, json={"portfolioId": pid}) as resp:
        await resp.read()
        return resp.status


# -- 6. control characters -------------------------------------------------------------------

CONTROL = ["x\r\n[Scheduler] forged line", "a\nb", "a\rb", "nul\x00", "tab\there", "esc\x1b[31m",
           "del\x7f", "c1\x85next", "bell\x07"]  # fmt: skip


@pytest.mark.parametrize("text", CONTROL)
async def test_control_characters_in_text_fields_are_422(daemon: DaemonProcess, text: str) -> None:
    pid = (await _create(daemon))["id"]
    attempts: list[tuple[str, str, Any]] = [
        ("POST", MANAGE, {**ORIGINAL_BODY, "rebalanceEnabled": False, "name": text}),
        ("POST", MANAGE, {**ORIGINAL_BODY, "rebalanceEnabled": False, "userId": text}),
        ("POST", MANAGE, {**ORIGINAL_BODY, "rebalanceEnabled": False, "account": text}),
        ("PUT", MANAGE, {"id": pid, "name": text}),
        ("PUT", MANAGE, {"id": pid + text}),
        ("POST", TRIGGER, {"portfolioId": text}),
        ("POST", "/api/scheduler", {"action": "update-config", "config": {"checkInterval": text}}),
        ("DELETE", f"{MANAGE}?id={_quoted(text)}", None),
        ("GET", f"/api/history?portfolioId={_quoted(text)}", None),
    ]
    for method, path, body in attempts:
        status, answer = await daemon.request(method, path, json=body)
        assert status == 422, (method, path, answer)
        assert answer["success"] is False and "control character" in answer["error"], answer
    _, listed = await daemon.request("GET", MANAGE)
    assert all(p["name"] != text and p["userId"] != text for p in listed["portfolios"])
    assert "forged line" not in daemon.log()


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


# -- 7. failed auth --------------------------------------------------------------------------


async def test_failed_auth_is_logged_rate_limited_without_the_token(
    locked: DaemonProcess,
) -> None:
    since = len(locked.log())
    wrong = "wrong-token-" + uuid.uuid4().hex
    status, _ = await locked.request(
        "GET", "/api/scheduler", headers={"Authorization": f"Bearer {wrong}"}
    )
    assert status == 401
    line = await locked.wait_for_log("GET /api/scheduler", since=since, timeout=10)
    assert line.startswith("<4>"), line  # warning priority
    assert "127.0.0.1" in line and "bearer token" in line, line
    # A burst of guesses (a brute force) leaves a bounded trace, not one line each.
    async with aiohttp.ClientSession() as session:
        for i in range(30):
            guess = {"Authorization": f"Bearer {wrong}{i}"} if i % 2 else {}
            async with session.post(locked.url + TRIGGER, json={}, headers=guess) as resp:
                assert resp.status == 401
    log = locked.log()
    assert wrong not in log and TOKEN not in log
    refused = [ln for ln in log[since:].splitlines() if "bearer token" in ln]
    assert 1 <= len(refused) <= 2, refused


def test_the_rate_limit_reports_what_it_held_back() -> None:
    from rebalancerd.api.guard import RateLimitedLog

    now = [0.0]
    limiter = RateLimitedLog(interval=10.0, clock=lambda: now[0])
    assert limiter.admit() == 0
    assert [limiter.admit() for _ in range(5)] == [None] * 5
    now[0] = 9.9
    assert limiter.admit() is None
    now[0] = 10.0
    assert limiter.admit() == 6  # this line also says six were held back
    assert limiter.admit() is None
    now[0] = 30.0
    assert limiter.admit() == 1


# -- 8. malformed requests -------------------------------------------------------------------


async def test_a_malformed_header_is_400_with_one_log_line(daemon: DaemonProcess) -> None:
    before = daemon.log()
    request = b"GET /api/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n"
    for _ in range(20):
        answer = await _raw(daemon.port, request)
        assert answer.split(b"\r\n", 1)[0].endswith(b"400 Bad Request"), answer
    await daemon.wait_for_log("Bad request from 127.0.0.1", since=len(before), timeout=10)
    new = daemon.log()[len(before) :]
    assert "Traceback" not in new, new
    assert 1 <= len(new.strip().splitlines()) <= 2, new


# -- 9. a client that hangs up -------------------------------------------------------------


async def test_a_client_hang_up_is_not_a_database_outage(daemon: DaemonProcess) -> None:
    since = len(daemon.log())
    head = (
        b"POST /api/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    writer.write(head)
    await writer.drain()
    # "100 Continue" means the handler has the request: a hang-up now cuts its body short.
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 100")
    writer.write(b'{"act')
    writer.close()
    await writer.wait_closed()
    line = await daemon.wait_for_log(
        "closed the connection", "database unavailable", "failed", since=since, timeout=10
    )
    assert "closed the connection" in line, line
    assert "database unavailable" not in daemon.log()


# -- 10. one account, one enabled portfolio --------------------------------------------------


async def test_a_real_trigger_may_not_trade_an_account_another_portfolio_holds(
    daemon: DaemonProcess,
) -> None:
    holder = await _create(daemon, name="holder", account="sandbox", rebalanceEnabled=True)
    other = await _create(daemon, name="bystander", account="sandbox")
    status, answer = await daemon.request("POST", TRIGGER, json={"portfolioId": other["id"]})
    assert status == 409, answer
    assert "sandbox" in answer["error"] and holder["id"] in answer["error"]
    assert await _history(daemon, other["id"]) == []
    # A dry run trades nothing, so it may plan against the shared balance.
    body = {"portfolioId": other["id"], "dryRun": True}
    status, answer = await daemon.request("POST", TRIGGER, json=body)
    assert status == 200 and answer["history"]["dryRun"] is True, answer
    # The holder itself runs for real.
    status, answer = await daemon.request("POST", TRIGGER, json={"portfolioId": holder["id"]})
    assert status == 200 and answer["history"]["dryRun"] is False, answer
    status, _ = await daemon.request("DELETE", f"{MANAGE}?id={holder['id']}")
    assert status == 200
