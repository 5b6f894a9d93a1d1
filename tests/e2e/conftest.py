"""Fixtures of the end-to-end tests: a fake Kraken over HTTP and the daemons a test started."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.daemon_proc import DaemonProcess
from tests.fake_kraken import FakeKraken


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


@pytest.fixture
def procs() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; each is stopped (and waited for) when the test ends."""
    started: list[DaemonProcess] = []
    yield started
    for proc in started:
        proc.stop()
