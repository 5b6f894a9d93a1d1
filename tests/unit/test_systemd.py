"""sd_notify datagrams over real AF_UNIX sockets, WATCHDOG_USEC parsing, the watchdog loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rebalancerd.systemd import Notifier, watchdog_interval, watchdog_loop


@pytest.fixture
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's, and its NOTIFY_SOCKET value."""
    # A short directory: AF_UNIX paths are limited to 108 bytes, long test names are not.
    path = tmp_path_factory.mktemp("n") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield sock, str(path)


def assert_nothing_sent(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1024)


def test_each_message_is_one_exact_datagram(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    notifier.ready()
    notifier.status("Scheduler running, 2 portfolio(s) due")
    notifier.watchdog()
    notifier.stopping()
    received = [sock.recv(1024) for _ in range(4)]
    notifier.close()
    assert received == [
        b"READY=1",
        b"STATUS=Scheduler running, 2 portfolio(s) due",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]
    assert_nothing_sent(sock)


def test_status_is_folded_onto_one_line(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    with Notifier(address) as notifier:
        notifier.status("first line\nsecond line\n")
    assert sock.recv(1024) == b"STATUS=first line second line"


def test_reloading_carries_the_monotonic_timestamp(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with Notifier(address) as notifier:
        notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, stamp = sock.recv(1024).decode().split("\n")
    assert reloading == "RELOADING=1"
    key, _, usec = stamp.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_abstract_socket_address() -> None:
    name = f"rebalancerd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        notifier.ready()
        assert sock.recv(1024) == b"READY=1"
        notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    notifier.ready()
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    notifier.reloading()
    assert notifier.notify("READY=1") is False


def test_send_failure_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        Notifier(str(tmp_path / "nobody-listens")) as notifier,
        caplog.at_level(logging.WARNING, logger="rebalancerd.systemd"),
    ):
        assert notifier.notify("READY=1") is False
        notifier.watchdog()
        notifier.stopping()
    assert len(caplog.records) == 1
    assert "Cannot notify" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000"}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for another pid
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_defaults_to_this_process() -> None:
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    assert watchdog_interval({**mine, "WATCHDOG_PID": str(os.getpid() + 1)}) is None


class RecordingNotifier(Notifier):
    """Counts watchdog pings instead of sending them."""

    def __init__(self) -> None:
        super().__init__(None)
        self.pings = 0

    def watchdog(self) -> None:
        self.pings += 1


@dataclass
class FakeLoop:
    """A fake clock and scheduler heartbeat; every progress() call is one watchdog iteration."""

    now: float = 1000.0
    heartbeat: float = 1000.0
    iterations: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    def progress(self) -> float:
        self.iterations.put_nowait(None)
        return self.heartbeat

    async def next_iterations(self, count: int) -> None:
        """Return once the watchdog loop has taken `count` more decisions."""
        for _ in range(count):
            await asyncio.wait_for(self.iterations.get(), 2)


async def test_watchdog_pings_only_while_the_loop_makes_progress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    interval = 0.02  # the fake clock decides freshness; this only paces the real waits
    fake, notifier, shutdown = FakeLoop(), RecordingNotifier(), asyncio.Event()
    task = asyncio.create_task(
        watchdog_loop(notifier, fake.progress, shutdown, interval, clock=lambda: fake.now)
    )
    await fake.next_iterations(3)
    assert notifier.pings == 3

    fake.now = fake.heartbeat + interval * 1.5  # the scheduler loop stalled
    await fake.next_iterations(3)
    assert notifier.pings == 3
    assert [r.levelname for r in caplog.records if "[Watchdog]" in r.getMessage()] == ["ERROR"]

    fake.heartbeat = fake.now  # it recovered before systemd pulled the plug
    await fake.next_iterations(2)
    assert notifier.pings == 5

    shutdown.set()
    await asyncio.wait_for(task, 2)
    assert [r.levelname for r in caplog.records if "[Watchdog]" in r.getMessage()] == [
        "ERROR",
        "WARNING",
    ]


async def test_heartbeat_exactly_one_interval_old_still_pings() -> None:
    fake, notifier, shutdown = FakeLoop(), RecordingNotifier(), asyncio.Event()
    fake.now = fake.heartbeat + 10.0
    task = asyncio.create_task(
        watchdog_loop(notifier, fake.progress, shutdown, 10.0, clock=lambda: fake.now)
    )
    await fake.next_iterations(1)
    shutdown.set()
    await asyncio.wait_for(task, 2)
    assert notifier.pings == 1


@pytest.mark.parametrize("interval", [3600.0, None])
async def test_watchdog_loop_sees_shutdown_at_once(interval: float | None) -> None:
    notifier, shutdown = RecordingNotifier(), asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, time.monotonic, shutdown, interval))
    await asyncio.sleep(0)  # let it reach its wait
    shutdown.set()
    # Half of a one-hour interval would be a 30-minute wait: it must not be.
    await asyncio.wait_for(task, 1)
    assert notifier.pings == (0 if interval is None else 1)


async def test_watchdog_loop_pings_a_real_socket_with_a_real_clock(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, address = receiver
    sock.setblocking(False)
    notifier, shutdown = Notifier(address), asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, time.monotonic, shutdown, 0.05))
    loop = asyncio.get_running_loop()
    for _ in range(2):
        assert await asyncio.wait_for(loop.sock_recv(sock, 1024), 2) == b"WATCHDOG=1"
    shutdown.set()
    await asyncio.wait_for(task, 2)
    notifier.close()
