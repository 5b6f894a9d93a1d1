"""Due claim at scale: N portfolios (default 1 000 000), 1 % due. The real lock_due query inside
a transaction, as Scheduler.claim_due runs it, next to the predecessor's schema and query in
the same database.

    .venv/bin/python bench/bench_claim.py [--portfolios 1000000] [--iterations 500]

Data: 90 % of the portfolios enabled, 1 % (all enabled) due within the last hour, the rest due
in 1 to 25 hours; one finished run per portfolio in rebalance_runs, and open runs on the
8 earliest-due portfolios (a claim must skip them, as while another daemon runs them). The
predecessor's table "Portfolio" (Prisma's camelCase columns, timestamp(3), separate indexes
on "rebalanceEnabled" and "nextRebalanceAt") holds the same rows; its query reads every due
row. Targets: claim < 2 ms and >= 10x faster than the predecessor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import Database, header, median, percentile, scratch_database
from rebalancerd.store.database import QUERIES
from rebalancerd.store.portfolios import lock_due_sql

OPEN_RUNS = 8
ONE_DAY = timedelta(days=1)
LOAD_PORTFOLIOS = """
INSERT INTO portfolios (name, account, target_weights, rebalance_enabled, rebalance_interval,
                        schedule_anchor, next_rebalance_at)
SELECT 'portfolio ' || i, 'acct-' || i, '{"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}',
       i % 10 <> 9, 'daily', due, due
  FROM generate_series(0, $1::int - 1) AS i,
       LATERAL (SELECT CASE WHEN i % 100 = 0
                            THEN now() - make_interval(secs => 1 + i % 3600)
                            ELSE now() + make_interval(secs => 3600 + i % 86400)
                       END AS due) AS d
"""
LOAD_RUNS = """
INSERT INTO rebalance_runs (portfolio_id, account, slot, triggered_by, dry_run, status, owner,
                            lease_expires_at, started_at, finished_at)
SELECT id, account, next_rebalance_at - interval '1 day', 'scheduler', false, 'succeeded',
       'bench', next_rebalance_at - interval '1 day', next_rebalance_at - interval '1 day',
       next_rebalance_at - interval '1 day' + interval '2 seconds'
  FROM portfolios
"""
OPEN_SOME_RUNS = f"""
INSERT INTO rebalance_runs (portfolio_id, account, slot, triggered_by, dry_run, owner,
                            lease_expires_at)
SELECT id, account, NULL, 'api', false, 'other-daemon', now() + interval '1 minute'
  FROM portfolios WHERE rebalance_enabled ORDER BY next_rebalance_at LIMIT {OPEN_RUNS}
"""
PREDECESSOR_SCHEMA = """
CREATE TABLE "Portfolio" (
    "id"                    text PRIMARY KEY,
    "name"                  text NOT NULL,
    "userId"                text,
    "targetWeights"         jsonb NOT NULL,
    "rebalanceEnabled"      boolean NOT NULL DEFAULT false,
    "rebalanceInterval"     text NOT NULL DEFAULT 'weekly',
    "rebalanceThreshold"    double precision NOT NULL DEFAULT 10.0,
    "maxOrdersPerRebalance" integer,
    "lastRebalancedAt"      timestamp(3),
    "nextRebalanceAt"       timestamp(3),
    "createdAt"             timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"             timestamp(3) NOT NULL
);
INSERT INTO "Portfolio"
SELECT id, name, user_id, target_weights, rebalance_enabled, rebalance_interval,
       rebalance_threshold, max_orders_per_rebalance, last_rebalanced_at, next_rebalance_at,
       created_at, updated_at
  FROM portfolios;
CREATE INDEX "Portfolio_rebalanceEnabled_idx" ON "Portfolio" ("rebalanceEnabled");
CREATE INDEX "Portfolio_nextRebalanceAt_idx" ON "Portfolio" ("nextRebalanceAt");
"""
PREDECESSOR_QUERY = """
SELECT * FROM "Portfolio"
 WHERE "rebalanceEnabled" = true AND ("nextRebalanceAt" IS NULL OR "nextRebalanceAt" <= now())
"""


async def load(db: Database, count: int) -> None:
    """Bulk-load both schemas with generate_series, then VACUUM ANALYZE."""
    steps = [
        ("portfolios", LOAD_PORTFOLIOS, (count,)),
        ("rebalance_runs (finished)", LOAD_RUNS, ()),
        ("rebalance_runs (open)", OPEN_SOME_RUNS, ()),
        ('predecessor "Portfolio"', PREDECESSOR_SCHEMA, ()),
        ("VACUUM ANALYZE", "VACUUM ANALYZE", ()),
    ]
    for label, sql, args in steps:
        started = time.perf_counter()
        await db.pool.execute(sql, *args, timeout=1800)
        print(f"   loaded {label} in {time.perf_counter() - started:.1f} s", flush=True)


async def timed(call: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    """Milliseconds per call, after a few warm-up calls."""
    for _ in range(5):
        await call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def timed_claims(
    conn: asyncpg.Connection, limit: int, iterations: int
) -> tuple[list[float], list[float]]:
    """(whole transaction, lock_due alone) in ms per claim, as claim_due makes it: BEGIN,
    lock_due, then (here) ROLLBACK so the same rows stay due."""
    whole: list[float] = []
    query: list[float] = []
    for i in range(iterations + 5):  # 5 to warm up, and to let a generic plan kick in
        started = time.perf_counter()
        tr = conn.transaction()
        await tr.start()
        try:
            sent = time.perf_counter()
            rows = await conn.fetch(lock_due_sql(limit), datetime.now(UTC), [])
            answered = time.perf_counter()
        finally:
            await tr.rollback()
        assert len(rows) == limit
        if i >= 5:
            whole.append((time.perf_counter() - started) * 1000)
            query.append((answered - sent) * 1000)
    return whole, query


async def timed_param_limit(conn: asyncpg.Connection, iterations: int) -> list[float]:
    """ms per BEGIN; lock_due; ROLLBACK with LIMIT as a parameter (the query before 2cdcd42):
    PostgreSQL plans that prepared statement afresh at every execution."""
    sql = lock_due_sql(0).replace("LIMIT 0", "LIMIT $3")
    samples: list[float] = []
    for i in range(iterations + 5):
        started = time.perf_counter()
        tr = conn.transaction()
        await tr.start()
        try:
            assert len(await conn.fetch(sql, datetime.now(UTC), [], 8)) == 8
        finally:
            await tr.rollback()
        if i >= 5:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def one_statement_claim(limit: int) -> str:
    """A prototype (not in the daemon): lock_due and the runs' inserts in one statement."""
    due = lock_due_sql(limit).rstrip().rstrip(";")
    return f"""
WITH due AS ({due}),
     run AS (INSERT INTO rebalance_runs (portfolio_id, account, slot, triggered_by, dry_run,
                                         owner, lease_expires_at)
             SELECT id, account, coalesce(next_rebalance_at, $1), 'scheduler', false, 'bench',
                    now() + interval '30 seconds' FROM due
             ON CONFLICT DO NOTHING
             RETURNING id AS run_id, portfolio_id)
SELECT due.*, run.run_id FROM due LEFT JOIN run ON run.portfolio_id = due.id"""


async def timed_one_statement_claims(
    conn: asyncpg.Connection, limit: int, iterations: int
) -> list[float]:
    """ms per claim with the prototype: BEGIN; lock and insert runs in one statement; every
    set_next_rebalance in one executemany; ROLLBACK (a COMMIT here)."""
    sql = one_statement_claim(limit)
    samples: list[float] = []
    for i in range(iterations + 5):
        started = time.perf_counter()
        tr = conn.transaction()
        await tr.start()
        try:
            rows = await conn.fetch(sql, datetime.now(UTC), [])
            nexts = [(r["id"], r["next_rebalance_at"] + ONE_DAY) for r in rows]
            await conn.executemany(QUERIES["set_next_rebalance"], nexts)
        finally:
            await tr.rollback()
        assert len(rows) == limit and all(r["run_id"] for r in rows)
        if i >= 5:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def timed_loop_claims(conn: asyncpg.Connection, limit: int, iterations: int) -> list[float]:
    """ms per claim as the loop makes it (runs/loop.py claim_due): BEGIN, lock_due, then per row
    insert_run and set_next_rebalance; ROLLBACK here instead of COMMIT (a commit's flush is
    the disk's, ~2 ms on this machine, and would consume the due rows)."""
    samples: list[float] = []
    for i in range(iterations + 5):
        now = datetime.now(UTC)
        started = time.perf_counter()
        tr = conn.transaction()
        await tr.start()
        try:
            for p in await conn.fetch(lock_due_sql(limit), now, []):
                slot = p["next_rebalance_at"]
                await conn.fetchrow(
                    QUERIES["insert_run"], p["id"], p["account"], slot, "scheduler", False,
                    "bench", 30.0,
                )  # fmt: skip
                await conn.execute(QUERIES["set_next_rebalance"], p["id"], slot + ONE_DAY)
        finally:
            await tr.rollback()
        if i >= 5:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def round_trips(conn: asyncpg.Connection, iterations: int) -> list[float]:
    """ms of one `SELECT 1` (a prepared statement): the floor of any statement."""
    return await timed(lambda: conn.fetchval("SELECT 1"), iterations)


def predecessor(conn: asyncpg.Connection, due: int) -> Callable[[], Awaitable[int]]:
    async def once() -> int:
        rows = await conn.fetch(PREDECESSOR_QUERY)
        assert len(rows) == due, len(rows)
        return len(rows)

    return once


async def explain(conn: asyncpg.Connection, sql: str, *args: object) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) with these parameters, inside a rolled-back transaction."""
    tr = conn.transaction()
    await tr.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    finally:
        await tr.rollback()  # ANALYZE really runs FOR UPDATE: release its row locks
    return [r[0] for r in rows]


async def generic_plan(conn: asyncpg.Connection) -> list[str]:
    """The plan a cached prepared statement may switch to after 5 runs, run with ANALYZE."""
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE claim (timestamptz, text[]) AS {lock_due_sql(8)}")
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim (now(), '{}')")
        await conn.execute("DEALLOCATE claim")
    finally:
        await tr.rollback()
    return [r[0] for r in rows]


def row(label: str, samples: list[float]) -> str:
    return (
        f"{label:<52} median {median(samples):8.3f} ms   p99 {percentile(samples, 99):8.3f} ms"
        f"   ({len(samples)} runs)"
    )


async def bench(count: int, iterations: int) -> None:
    async with scratch_database() as db:
        await load(db, count)
        due = await db.pool.fetchval(
            "SELECT count(*) FROM portfolios WHERE rebalance_enabled AND next_rebalance_at <= now()"
        )
        print(f"   {count} portfolios, {due} due ({100 * due / count:.2f} %)")
        print("   " + await db.pool.fetchval("SELECT version()"))
        async with db.pool.acquire() as conn:
            ours = {limit: await timed_claims(conn, limit, iterations) for limit in (1, 8, 64)}
            loop_claim = await timed_loop_claims(conn, 8, iterations)
            param_limit = await timed_param_limit(conn, iterations)
            one_statement = await timed_one_statement_claims(conn, 8, iterations)
            select1 = await round_trips(conn, iterations)
            cached = await conn.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%FOR UPDATE OF p SKIP LOCKED%'"
            )
        async with db.pool.acquire() as conn:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            try:
                generic8 = await timed_claims(conn, 8, iterations)
            finally:
                await conn.execute("RESET plan_cache_mode")
        async with db.pool.acquire() as conn:
            theirs = await timed(predecessor(conn, due), max(20, iterations // 10))
            custom = await explain(conn, lock_due_sql(8), datetime.now(UTC), [])
            plans = {
                "lock_due (LIMIT 8), EXPLAIN (ANALYZE, BUFFERS)": custom,
                "the same, generic plan (a prepared statement's after 5 runs)": await generic_plan(
                    conn
                ),
                "predecessor, EXPLAIN (ANALYZE, BUFFERS)": await explain(conn, PREDECESSOR_QUERY),
            }
    print(row("claim of 8 as the loop makes it (2 + 2 x 8 statements)", loop_claim))
    print(row("claim, LIMIT $3 (before 2cdcd42): BEGIN; lock_due; ROLLBACK", param_limit))
    print(row("claim of 8, prototype: lock + insert runs in 1, set_next 1", one_statement))
    print(row("claim, LIMIT 8, generic plan forced: BEGIN; lock_due; ROLLBACK", generic8[0]))
    print(row("claim, LIMIT 8, generic plan forced: lock_due alone", generic8[1]))
    print("   lock_due's prepared statement(s): " + "; ".join(
        f"generic plans {c['generic_plans']}, custom plans {c['custom_plans']}" for c in cached
    ))  # fmt: skip
    print(row("one round trip (SELECT 1)", select1))
    report(ours, theirs, plans, due)


def report(
    ours: dict[int, tuple[list[float], list[float]]],
    theirs: list[float],
    plans: dict[str, list[str]],
    due: int,
) -> None:
    print()
    for limit, (whole, query) in ours.items():
        print(row(f"claim, LIMIT {limit}: BEGIN; lock_due; ROLLBACK", whole))
        print(row(f"claim, LIMIT {limit}: lock_due alone", query))
    print(row(f"predecessor query ({due} rows fetched)", theirs))
    claim8 = median(ours[8][0])
    speedup = median(theirs) / claim8
    print(
        f"claim of 8: {'met' if claim8 < 2 else 'MISSED'} target < 2 ms ({claim8:.3f} ms); "
        f"{speedup:.0f}x faster than the predecessor ({'met' if speedup >= 10 else 'MISSED'} "
        f"target >= 10x)"
    )
    for title, plan in plans.items():
        print(f"\n{title}:")
        print("\n".join("   " + line for line in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args()
    header(f"bench_claim: due claim over {args.portfolios} portfolios, 1 % due")
    asyncio.run(bench(args.portfolios, args.iterations))


if __name__ == "__main__":
    main()
