"""The daemon's side of systemd: sd_notify datagrams and a progress-gated watchdog."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET; every method is a no-op without one."""

    def __init__(self, address: str | None) -> None:
        self._address = _socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self._failure_logged = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """A notifier for the socket systemd gave us, or a silent one outside systemd."""
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """True when messages actually go somewhere."""
        return self._address is not None

    def ready(self) -> None:
        """Startup (or a reload) is complete: systemd marks the unit active."""
        self.notify("READY=1")

    def status(self, text: str) -> None:
        """Free-form one-line status shown by `systemctl status`."""
        self.notify("STATUS=" + " ".join(text.split()))

    def watchdog(self) -> None:
        """Keep-alive ping; must come more often than WatchdogSec."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.notify("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; send ready() when it is done."""
        # systemd >= 253 requires the timestamp to tell this reload from an earlier one.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def notify(self, *fields: str) -> bool:
        """Send one datagram of `KEY=value` lines; False if it was not delivered."""
        if self._address is None:
            return False
        try:
            self._socket().sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            # Losing a status or one watchdog ping is harmless (the next one follows within
            # half the interval); crashing the daemon over it, or flooding the log, is not.
            if not self._failure_logged:
                self._failure_logged = True
                logger.warning(
                    "[systemd] Cannot notify %s: %s (further errors not logged)", self._address, exc
                )
            return False
        return True

    def close(self) -> None:
        """Release the socket; later messages open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the event loop on a full receive queue: EAGAIN is an ordinary failure.
            sock.setblocking(False)
            self._sock = sock
        return self._sock


def _socket_address(address: str) -> str | bytes:
    """A filesystem path as is; `@name` as the abstract socket `\\0name`."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, pid: int | None = None
) -> float | None:
    """WatchdogSec in seconds if systemd expects pings from this process, else None."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    # Set by systemd for the main process; a child that inherited the variable must not ping.
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    return usec / 1_000_000


async def watchdog_loop(
    notifier: Notifier,
    progress: Callable[[], float],
    shutdown: asyncio.Event,
    interval: float | None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Ping WATCHDOG=1 every interval/2 while progress() is fresher than interval; until shutdown.

    progress() returns the clock() time of the scheduler loop's last heartbeat. When it goes
    stale the pings stop, so systemd kills and restarts a daemon whose loop is stuck. With no
    interval (no watchdog configured) this just waits for shutdown, so callers can run it
    unconditionally as a supervised task without it "dying" early.
    """
    stalled = False
    while True:
        if interval is not None:
            age = clock() - progress()
            if age <= interval:
                notifier.watchdog()
            if (age > interval) != stalled:
                stalled = not stalled
                _log_watchdog_change(stalled, age)
        try:
            await asyncio.wait_for(shutdown.wait(), None if interval is None else interval / 2)
        except TimeoutError:
            continue
        return


def _log_watchdog_change(stalled: bool, age: float) -> None:
    """Say once per episode that pings stopped or resumed, and why."""
    if stalled:
        logger.error(
            "[Watchdog] Scheduler loop made no progress for %.1fs: "
            "withholding watchdog pings so systemd restarts the daemon",
            age,
        )
    else:
        logger.warning("[Watchdog] Scheduler loop is making progress again: pinging resumed")
