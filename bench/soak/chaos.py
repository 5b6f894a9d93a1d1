"""What goes wrong during the soak: faults at the fake Kraken, moving prices, kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bench.support import rss_mb
from tests.daemon_proc import DaemonProcess
from tests.fake_kraken import FakeKraken

# Where faults land, weighted by how much each endpoint matters to a run's safety.
ENDPOINTS = {
    "AddOrder": 4,
    "QueryOrders": 2,
    "BalanceEx": 2,
    "Ticker": 2,
    "TradeVolume": 1,
    "OpenOrders": 1,
    "ClosedOrders": 1,
    "AssetPairs": 1,
    "Assets": 1,
}
KRAKEN_ERRORS = (
    "EService:Unavailable",
    "EService:Busy",
    "EGeneral:Internal error",
    "EAPI:Rate limit exceeded",
)
KINDS = ("error", "http", "hang", "drop", "lost reply")


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but return at once when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))


def random_fault(fake: FakeKraken, rng: random.Random) -> str:
    """Queue one random fault at the fake; what it was."""
    kind = rng.choice(KINDS)
    endpoint = rng.choices(list(ENDPOINTS), weights=list(ENDPOINTS.values()))[0]
    if kind == "lost reply":
        # The order IS placed; its answer is lost: only a look-up may tell.
        how = rng.choice(("drop", "502", "hang"))
        fake.lose_reply("AddOrder", how=how)
        return f"lost reply ({how}) AddOrder"
    if kind == "error":
        fake.inject(endpoint, error=rng.choice(KRAKEN_ERRORS))
    elif kind == "http":
        fake.inject(endpoint, status=rng.choice((502, 504, 520)))
    elif kind == "hang":
        fake.inject(endpoint, hang=True)
    else:
        fake.inject(endpoint, drop=True)
    return f"{kind} {endpoint}"


async def inject_faults(
    fake: FakeKraken, rng: random.Random, every: float, stop: asyncio.Event, log: Counter[str]
) -> None:
    """A fault every `every` seconds on average (Poisson), until stop."""
    while not stop.is_set():
        await pause(stop, rng.expovariate(1 / every))
        if not stop.is_set():
            log[random_fault(fake, rng)] += 1


async def move_prices(
    fake: FakeKraken, rng: random.Random, every: float, stop: asyncio.Event
) -> None:
    """A mean-reverting random walk of every pair, so portfolios drift and keep trading."""
    start = dict(fake.venue.prices)
    while not stop.is_set():
        await pause(stop, every)
        for pair, (bid, ask) in list(fake.venue.prices.items()):
            pull = math.log(float(bid / start[pair][0]))
            factor = Decimal(str(math.exp(rng.gauss(0, 0.01) - 0.1 * pull)))
            tick = Decimal(1).scaleb(-int(fake.venue.pairs[pair]["pair_decimals"]))
            new_bid = (bid * factor).quantize(tick)
            fake.set_price(pair, new_bid, max((ask * factor).quantize(tick), new_bid + tick))


@dataclass
class Sample:
    at: float  # seconds since the soak started
    daemon: str  # "steady" or "victim #n"
    rss: float  # MB


@dataclass
class Daemons:
    """Two daemons on one database: `steady` runs throughout, `victim` is killed and restarted."""

    workdir: Path
    env: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    steady: DaemonProcess | None = None
    victim: DaemonProcess | None = None
    incarnation: int = 0
    kills: int = 0
    samples: list[Sample] = field(default_factory=list)
    all_procs: list[DaemonProcess] = field(default_factory=list)

    async def start(self) -> None:
        self.steady = self._spawn()
        await self.steady.wait_healthy(120)
        await self.restart_victim()

    def _spawn(self) -> DaemonProcess:
        proc = DaemonProcess(self.workdir, self.env).start()
        self.all_procs.append(proc)
        return proc

    async def restart_victim(self) -> None:
        self.incarnation += 1
        self.victim = self._spawn()
        await self.victim.wait_healthy(120)

    def kill_victim(self) -> None:
        """kill -9, whatever it is doing."""
        assert self.victim is not None
        self.victim.kill()
        self.kills += 1

    def steady_died(self) -> int | None:
        """The steady daemon's exit code if it exited (it must not)."""
        assert self.steady is not None and self.steady.proc is not None
        return self.steady.proc.poll()

    def sample_rss(self) -> None:
        now = time.monotonic() - self.started
        for label, proc in (("steady", self.steady), (f"victim #{self.incarnation}", self.victim)):
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.samples.append(Sample(now, label, rss_mb(proc.proc.pid)))

    async def terminate_all(self) -> dict[str, int | None]:
        """SIGTERM both (graceful stop under load); exit codes (None: had to be killed)."""
        codes: dict[str, int | None] = {}
        for label, proc in (("steady", self.steady), ("victim", self.victim)):
            if proc is None or proc.proc is None or proc.proc.poll() is not None:
                continue
            try:
                codes[label] = await asyncio.to_thread(proc.terminate, 30.0)
            except Exception:
                codes[label] = None
        for proc in self.all_procs:
            proc.stop()
        return codes


async def kill_and_restart(
    daemons: Daemons, rng: random.Random, every: float, stop: asyncio.Event
) -> None:
    """Every `every` seconds (+-30 %), kill -9 the victim and start it again a moment later.

    The kill lands 0.5-8 s after a minute boundary, while the 1-minute cron's runs are in
    flight, so it interrupts runs mid-order rather than an idle daemon.
    """
    while not stop.is_set():
        await pause(stop, every * rng.uniform(0.7, 1.3))
        await pause(stop, (60 - time.time() % 60) + rng.uniform(0.5, 8.0))
        if stop.is_set():
            return
        daemons.kill_victim()
        await asyncio.sleep(rng.uniform(1.0, 5.0))
        await daemons.restart_victim()


async def sample_memory(daemons: Daemons, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        daemons.sample_rss()
        await pause(stop, every)
