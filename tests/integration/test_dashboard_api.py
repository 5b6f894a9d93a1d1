"""The dashboard's data routes over the real app: snapshots, accounts, the overview, the read-only
token, change events, and the page's headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from rebalancerd.config import AccountSettings, HttpSettings, PaperSettings, Settings
from rebalancerd.store.repository import Store
from rebalancerd.store.snapshots import SnapshotFields
from tests.api_support import Api, running_api

TOKEN = "full-access-token-0123456789"
READ = "read-only-token-0123456789"


def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        accounts={
            "default": AccountSettings(mode="paper"),
            "sandbox": AccountSettings(mode="paper", balances={"EUR": Decimal("5000")}),
        },
        paper=PaperSettings(prices="simulated"),
        http=HttpSettings(api_token=SecretStr(TOKEN), read_token=SecretStr(READ)),
    )


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path, TOKEN, settings=settings(tmp_path)) as running:
        yield running


async def test_a_run_writes_a_snapshot_before_and_after(api: Api) -> None:
    pid = (await api.create())["id"]
    status, run = await api.call("POST", "/api/scheduler/trigger", {"portfolioId": pid})
    assert status == 200 and run["success"], run
    status, body = await api.call("GET", f"/api/portfolios/{pid}/snapshots")
    assert status == 200
    kinds = [s["kind"] for s in body["snapshots"]]
    assert kinds == ["before", "after"]
    before, after = body["snapshots"]
    assert before["weights"] == {"ADA": 0, "BTC": 0, "ETH": 0, "SOL": 0, "EUR": 100}
    assert before["value"] == run["history"]["portfolioValue"]
    for symbol, target in {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}.items():
        assert abs(after["weights"][symbol] - target) < 1, after  # the run traded towards them
        assert Decimal(after["holdings"][symbol]["amount"]) > 0
    assert after["runId"] == before["runId"] is not None


async def test_a_dry_run_records_the_same_holdings_after(api: Api) -> None:
    pid = (await api.create())["id"]
    await api.call("POST", "/api/scheduler/trigger", {"portfolioId": pid, "dryRun": True})
    _, body = await api.call("GET", f"/api/portfolios/{pid}/snapshots")
    before, after = body["snapshots"]
    assert (before["weights"], before["value"]) == (after["weights"], after["value"])


async def test_snapshots_filter_by_time_and_keep_the_newest(api: Api) -> None:
    pid = (await api.create())["id"]
    fields = SnapshotFields(Decimal(100), {"BTC": Decimal(100)}, {})
    for _ in range(5):
        await api.store.insert_snapshots([(pid, "tick", fields, None, None)])
    _, body = await api.call("GET", f"/api/portfolios/{pid}/snapshots?limit=2")
    all_ = (await api.call("GET", f"/api/portfolios/{pid}/snapshots"))[1]["snapshots"]
    assert body["count"] == 2 and body["snapshots"] == all_[-2:]  # newest two, oldest first
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, later = await api.call("GET", f"/api/portfolios/{pid}/snapshots?from={future}")
    assert later["snapshots"] == []
    assert (await api.call("GET", "/api/portfolios/nope/snapshots"))[0] == 404
    assert (await api.call("GET", f"/api/portfolios/{pid}/snapshots?limit=0"))[0] == 400


async def test_old_snapshots_are_pruned(api: Api, store: Store) -> None:
    pid = (await api.create())["id"]
    fields = SnapshotFields(Decimal(1), {"BTC": Decimal(100)}, {})
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    await store.insert_snapshots([(pid, "tick", fields, None, ten_days_ago)])
    await store.insert_snapshots([(pid, "tick", fields, None, None)])
    assert await store.prune_snapshots(7) == 1
    assert len(await store.list_snapshots(pid, None, None, 10)) == 1


async def test_a_check_tick_snapshots_every_enabled_portfolio(api: Api) -> None:
    enabled = (await api.create(account="default"))["id"]
    disabled = (await api.create(account="sandbox", rebalanceEnabled=False))["id"]
    assert await api.scheduler.take_snapshots() == 1
    latest = await api.store.latest_snapshots()
    assert latest[enabled].kind == "tick" and disabled not in latest


async def test_accounts_name_their_mode_and_nothing_else(api: Api) -> None:
    status, body = await api.call("GET", "/api/accounts")
    assert status == 200
    assert body["accounts"] == [
        {"name": "default", "mode": "paper"},
        {"name": "sandbox", "mode": "paper"},
    ]


async def test_the_overview_orders_cards_by_attention(api: Api) -> None:
    calm = (await api.create(name="calm", account="default"))["id"]
    broken = await api.create(name="broken", account="sandbox", targetWeights={"BTC": 100})
    await api.call("POST", "/api/scheduler/trigger", {"portfolioId": calm})
    await api.store.pool.execute(  # a symbol with no market, as a hand-written row could hold
        """UPDATE portfolios SET target_weights = '{"NOPE": 100}' WHERE id = $1""", broken["id"]
    )
    await api.call("POST", "/api/scheduler/trigger", {"portfolioId": broken["id"]})
    status, body = await api.call("GET", "/api/dashboard")
    assert status == 200
    assert [c["portfolio"]["name"] for c in body["portfolios"]] == ["broken", "calm"]
    assert [c["attention"] for c in body["portfolios"]] == [0, 3]
    assert body["runs24h"] == {"succeeded": 1, "failed": 1, "rejected": 0}
    assert body["access"] == "full" and body["daemonsSeen"] == 1
    calm_card = body["portfolios"][1]
    assert body["totalValue"] == calm_card["snapshot"]["value"]


async def test_conditional_requests_get_304(api: Api) -> None:
    async with api.client.get("/api/dashboard", headers=_auth(TOKEN)) as first:
        tag = first.headers["ETag"]
    headers = {**_auth(TOKEN), "If-None-Match": tag}
    async with api.client.get("/api/dashboard", headers=headers) as again:
        assert again.status == 304 and await again.read() == b""


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/portfolios/manage", {"name": "x", "targetWeights": {"BTC": 100}}),
        ("PUT", "/api/portfolios/manage", {"id": "x", "name": "y"}),
        ("DELETE", "/api/portfolios/manage?id=x", None),
        ("POST", "/api/scheduler", {"action": "stop"}),
        ("POST", "/api/scheduler/trigger", {"portfolioId": "x"}),
    ],
)
async def test_the_read_only_token_cannot_write(
    api: Api, method: str, path: str, body: object
) -> None:
    status, reply = await api.call(method, path, body, headers=_auth(READ))
    assert (status, reply["error"]) == (403, "the read-only token cannot change anything")


async def test_the_read_only_token_reads(api: Api) -> None:
    for path in ("/api/dashboard", "/api/portfolios/manage", "/api/history", "/api/accounts"):
        assert (await api.call("GET", path, headers=_auth(READ)))[0] == 200, path
    assert (await api.call("GET", "/api/dashboard", headers=_auth(READ)))[1]["access"] == "read"
    assert (await api.call("GET", "/api/dashboard", headers=_auth("x" * 20)))[0] == 401


async def test_a_change_is_announced_on_the_event_stream(api: Api) -> None:
    headers = {**_auth(TOKEN), "Accept": "text/event-stream"}
    async with api.client.get("/api/events", headers=headers) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert b"event: hello" in await stream.content.readuntil(b"\n\n")
        await api.create()
        api.scheduler.wake()  # what the NOTIFY listener does when the write lands
        block = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
        assert block.startswith(b"event: change")
    status, _ = await api.call("GET", "/api/events")
    assert status == 406  # no Accept: text/event-stream, no endless body


async def test_the_page_needs_no_token_and_says_it_asks_for_one(api: Api) -> None:
    async with api.client.get("/") as page:
        html = await page.text()
        assert page.status == 200 and 'data-auth="token"' in html
        assert page.headers["X-Frame-Options"] == "DENY"
    async with api.client.get("/assets/app.000000000000.js") as missing:
        assert missing.status == 404


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ----- safety controls on the overview (the dashboard's approval cards and halt banner) -----


async def test_a_run_awaiting_approval_is_on_its_card_and_sorts_first_after_failed(
    api: Api,
) -> None:
    calm = (await api.create(name="calm", account="default"))["id"]
    manual = await api.create(name="manual", account="sandbox", approval="manual")
    await api.call("POST", "/api/scheduler/trigger", {"portfolioId": calm})
    status, parked = await api.call("POST", "/api/scheduler/trigger", {"portfolioId": manual["id"]})
    assert status == 202, parked
    async with api.client.get("/api/dashboard", headers=_auth(TOKEN)) as first:
        tag, body = first.headers["ETag"], await first.json()
    assert [c["portfolio"]["name"] for c in body["portfolios"]] == ["manual", "calm"]
    waiting, other = body["portfolios"]
    assert (waiting["attention"], other["attention"]) == (1, 3)
    assert other["awaitingRun"] is None
    run = waiting["awaitingRun"]
    assert run["id"] == parked["run"]["id"] and run["status"] == "awaiting_approval"
    assert run["expiresAt"] and run["plan"]["orders"], run
    status, approved = await api.call("POST", f"/api/runs/{run['id']}/approve")
    assert status == 200 and approved["success"], approved
    headers = {**_auth(TOKEN), "If-None-Match": tag}
    async with api.client.get("/api/dashboard", headers=headers) as again:
        assert again.status == 200 and again.headers["ETag"] != tag  # the approval shows
        after = (await again.json())["portfolios"]
    assert [c["awaitingRun"] for c in after] == [None, None]
    assert {c["attention"] for c in after} == {3}


async def test_an_expired_approval_is_not_offered(api: Api) -> None:
    manual = await api.create(name="manual", approval="manual", approvalTtlSeconds=60)
    status, parked = await api.call("POST", "/api/scheduler/trigger", {"portfolioId": manual["id"]})
    assert status == 202, parked
    await api.store.pool.execute(  # as if its hour had passed
        "UPDATE rebalance_runs SET expires_at = now() - interval '1 s' WHERE id = $1",
        parked["run"]["id"],
    )
    body = (await api.call("GET", "/api/dashboard"))[1]
    assert body["portfolios"][0]["awaitingRun"] is None


async def test_the_overview_says_halted(api: Api) -> None:
    assert (await api.call("GET", "/api/dashboard"))[1]["status"]["halted"] is False
    assert (await api.call("POST", "/api/scheduler", {"action": "halt"}))[0] == 200
    assert (await api.call("GET", "/api/dashboard"))[1]["status"]["halted"] is True
    assert (await api.call("POST", "/api/scheduler", {"action": "resume"}))[0] == 200
    assert (await api.call("GET", "/api/dashboard"))[1]["status"]["halted"] is False


async def test_a_rejected_plan_is_not_a_failed_run_on_the_overview(api: Api) -> None:
    manual = await api.create(name="manual", approval="manual")
    parked = (await api.call("POST", "/api/scheduler/trigger", {"portfolioId": manual["id"]}))[1]
    status, rejected = await api.call("POST", f"/api/runs/{parked['run']['id']}/reject")
    assert status == 200 and not rejected["history"]["success"], rejected  # recorded, unplaced
    overview = (await api.call("GET", "/api/dashboard"))[1]
    assert overview["runs24h"] == {"succeeded": 0, "failed": 0, "rejected": 1}
    only = overview["portfolios"][0]
    assert only["lastRun"]["id"] == rejected["history"]["id"]
    assert (only["lastRunRejected"], only["attention"]) == (True, 3)
