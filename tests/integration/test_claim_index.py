"""The due claim must stay an index range scan: at scale a sequential scan costs seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rebalancerd.store.portfolios import claim_due_sql
from rebalancerd.store.repository import Store

PORTFOLIOS = 5000
# 90 % enabled; 1 % due (all of them enabled), the rest due within the next day.
LOAD = """
INSERT INTO portfolios (name, account, target_weights, rebalance_enabled, next_rebalance_at)
SELECT 'p' || i, 'acct-' || i, '{"BTC": 100}', i % 10 <> 9,
       CASE WHEN i % 100 = 0 THEN now() - make_interval(secs => 1 + i)
            ELSE now() + make_interval(secs => 60 + i) END
  FROM generate_series(0, $1::int - 1) AS i
"""


@pytest.fixture
async def loaded(store: Store) -> Store:
    await store.pool.execute(LOAD, PORTFOLIOS)
    await store.pool.execute("ANALYZE portfolios")
    await store.pool.execute("ANALYZE rebalance_runs")
    return store


async def test_claim_query_uses_the_partial_due_index(loaded: Store) -> None:
    # A busy account in the list, as when another run of this daemon holds one.
    rows = await loaded.pool.fetch(
        "EXPLAIN " + claim_due_sql(8), datetime.now(UTC), ["acct-0"], False, "t", 30.0
    )
    plan = "\n".join(r[0] for r in rows)
    assert "portfolios_due_idx" in plan, plan
    assert "Seq Scan on portfolios" not in plan, plan


async def test_generic_plan_of_the_claim_uses_it_too(loaded: Store) -> None:
    # asyncpg keeps the claim as a prepared statement; PostgreSQL may switch it to a generic
    # plan (no parameter values known) after five runs, so that plan must use the index too.
    async with loaded.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(
            "PREPARE claim (timestamptz, text[], boolean, text, float8) AS " + claim_due_sql(8)
        )
        try:
            rows = await conn.fetch("EXPLAIN EXECUTE claim (now(), '{}', false, 't', 30)")
        finally:
            await conn.execute("DEALLOCATE claim")
    plan = "\n".join(r[0] for r in rows)
    assert "portfolios_due_idx" in plan, plan
    assert "Seq Scan on portfolios" not in plan, plan


async def test_the_prepared_claim_is_not_planned_again_at_every_claim(loaded: Store) -> None:
    # With `LIMIT $n` PostgreSQL judged the generic plan dearer and planned every execution.
    async with loaded.pool.acquire() as conn:
        for _ in range(12):
            claim = conn.transaction()  # rolled back: the same rows stay due
            await claim.start()
            try:
                now = datetime.now(UTC)
                assert len(await conn.fetch(claim_due_sql(8), now, [], False, "t", 30.0)) == 8
            finally:
                await claim.rollback()
        [(generic, custom)] = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE NOT from_sql AND statement LIKE '--%FOR UPDATE OF p SKIP LOCKED%'"
        )
    assert generic > custom, (generic, custom)
