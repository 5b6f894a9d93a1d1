-- Every query rebalancerd runs, each under a `-- name: NAME` header. Only rebalancerd/store runs them.

-- name: list_portfolios
SELECT * FROM portfolios ORDER BY created_at, id;

-- name: get_portfolio
SELECT * FROM portfolios WHERE id = $1;

-- name: insert_portfolio
INSERT INTO portfolios (name, user_id, account, target_weights, rebalance_enabled,
                        rebalance_interval, rebalance_threshold, max_orders_per_rebalance,
                        schedule_tz, drift_band_abs, drift_band_rel, schedule_anchor,
                        next_rebalance_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: update_portfolio
UPDATE portfolios
   SET name = $2, user_id = $3, account = $4, target_weights = $5, rebalance_enabled = $6,
       rebalance_interval = $7, rebalance_threshold = $8, max_orders_per_rebalance = $9,
       schedule_tz = $10, drift_band_abs = $11, drift_band_rel = $12, schedule_anchor = $13,
       next_rebalance_at = $14, updated_at = now()
 WHERE id = $1
RETURNING *;

-- name: lock_portfolio
-- Lock order, everywhere: a portfolio's row first, then its runs. A transaction that touches
-- both in the other order can deadlock with a trigger (which locks the row, then inserts a run
-- that waits for the run being finished).
SELECT * FROM portfolios WHERE id = $1 FOR UPDATE;

-- name: try_lock_portfolio
-- A trigger does not queue behind another trigger, a claim or a finishing run: locked is busy.
SELECT * FROM portfolios WHERE id = $1 FOR UPDATE SKIP LOCKED;

-- name: lock_portfolio_to_finish
SELECT id FROM portfolios WHERE id = $1 FOR NO KEY UPDATE;

-- name: account_holder
-- The enabled portfolio (other than $2) that trades account $1, if any.
SELECT * FROM portfolios WHERE account = $1 AND rebalance_enabled AND id <> $2 LIMIT 1;

-- name: delete_portfolio
DELETE FROM portfolios WHERE id = $1
   AND NOT EXISTS (SELECT 1 FROM rebalance_runs r WHERE r.portfolio_id = $1 AND r.finished_at IS NULL)
RETURNING id;

-- name: schedule
SELECT id, name, rebalance_interval, last_rebalanced_at, next_rebalance_at
  FROM portfolios WHERE rebalance_enabled ORDER BY next_rebalance_at NULLS FIRST, id;

-- name: claim_due
-- The due claim, one statement: lock what is enabled, due and not running (SKIP LOCKED lets
-- every daemon take different rows at once; the partial index portfolios_due_idx serves the
-- range and order), and open a run of its slot for each. A row whose slot ran already, or
-- that another daemon opened a run for meanwhile, comes back without a run (ON CONFLICT: the
-- slot key, the one-open index); its next slot still moves on.
-- {limit} is a literal integer the store writes in (one prepared statement per limit): with
-- `LIMIT $n` a generic plan assumes 10 % of the due rows and looks 400x dearer than a custom
-- one, so PostgreSQL planned this prepared statement afresh on every claim (~0.1 ms each).
-- (Committing it without waiting for the disk was tried: the claim was 0.3 ms quicker, the
-- drain of bench_drain.py 4 % slower, the WAL writer's extra flushes delaying the runs'.)
WITH due AS (
    SELECT p.* FROM portfolios p
     WHERE p.rebalance_enabled AND p.next_rebalance_at <= $1
       AND NOT EXISTS (SELECT 1 FROM rebalance_runs r
                        WHERE r.portfolio_id = p.id AND r.finished_at IS NULL)
       AND p.account <> ALL($2::text[])
     ORDER BY p.next_rebalance_at
     LIMIT {limit}
     FOR UPDATE OF p SKIP LOCKED
), run AS (
    INSERT INTO rebalance_runs (portfolio_id, account, slot, triggered_by, dry_run, owner,
                                lease_expires_at)
    SELECT id, account, next_rebalance_at, 'scheduler', $3, $4, now() + make_interval(secs => $5)
      FROM due
    ON CONFLICT DO NOTHING
    RETURNING id AS run_id, portfolio_id AS run_portfolio_id, account AS run_account,
              slot AS run_slot, triggered_by AS run_triggered_by, dry_run AS run_dry_run,
              status AS run_status, owner AS run_owner, lease_expires_at AS run_lease_expires_at,
              started_at AS run_started_at, finished_at AS run_finished_at,
              history_id AS run_history_id, error AS run_error, plan AS run_plan,
              expires_at AS run_expires_at
)
SELECT due.*, run.*
  FROM due LEFT JOIN run ON run.run_portfolio_id = due.id
 ORDER BY due.next_rebalance_at;

-- name: advance_slots
-- The claimed portfolios' next slots ($1 ids, $2 the slots claimed, $3 the next ones), each
-- only while it still holds the slot claimed: a schedule edited since the claim keeps its new
-- slot. (A crash before this statement leaves the old slot: the next claim finds it, opens no
-- second run of it, and moves it on here.)
UPDATE portfolios p SET next_rebalance_at = v.next
  FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS v(id, slot, next)
 WHERE p.id = v.id AND p.next_rebalance_at = v.slot;

-- name: wake_times
-- What the loop wakes for, in one round trip: the earliest slot of an enabled portfolio that is
-- not running, the earliest lease expiry of a run held by another owner than $1 (NULL: no
-- other daemon's run is open), and the earliest expiry of an approval awaited.
SELECT (SELECT min(p.next_rebalance_at) FROM portfolios p
         WHERE p.rebalance_enabled
           AND NOT EXISTS (SELECT 1 FROM rebalance_runs r
                            WHERE r.portfolio_id = p.id AND r.finished_at IS NULL)) AS due,
       (SELECT min(lease_expires_at) FROM rebalance_runs
         WHERE finished_at IS NULL AND owner <> $1 AND status <> 'awaiting_approval') AS lease,
       (SELECT min(expires_at) FROM rebalance_runs
         WHERE status = 'awaiting_approval' AND finished_at IS NULL) AS lapse;

-- name: due_accounts
-- Accounts with an enabled portfolio due by $1 that is not running, and that portfolio's slot
-- (the loop warms their exchanges just ahead of it).
SELECT p.account, min(p.next_rebalance_at) AS slot FROM portfolios p
 WHERE p.rebalance_enabled AND p.next_rebalance_at <= $1
   AND NOT EXISTS (SELECT 1 FROM rebalance_runs r
                    WHERE r.portfolio_id = p.id AND r.finished_at IS NULL)
 GROUP BY p.account;

-- name: banded_portfolios
-- Enabled portfolios with a drift band whose next slot is not due yet and that are not running.
SELECT p.* FROM portfolios p
 WHERE p.rebalance_enabled AND (p.drift_band_abs IS NOT NULL OR p.drift_band_rel IS NOT NULL)
   AND p.next_rebalance_at > $1
   AND NOT EXISTS (SELECT 1 FROM rebalance_runs r
                    WHERE r.portfolio_id = p.id AND r.finished_at IS NULL)
 ORDER BY p.id;

-- name: insert_run
INSERT INTO rebalance_runs (portfolio_id, account, slot, triggered_by, dry_run, owner,
                            lease_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
ON CONFLICT DO NOTHING
RETURNING *;

-- name: set_next_rebalance
UPDATE portfolios SET next_rebalance_at = $2 WHERE id = $1;

-- name: extend_lease
UPDATE rebalance_runs SET lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = $1 AND owner = $2 AND finished_at IS NULL
RETURNING id;

-- name: finish_run
-- A finished run's history row ($1..$13, as insert_history) and the run closed with it, in one
-- statement, fenced: the run ($14) closes only while $15 owns it; closed_run comes back NULL
-- when it does not, and the caller rolls the history row back. The NOTIFY goes out with the
-- commit, and not at all without one.
WITH h AS (
    INSERT INTO rebalance_history (portfolio_id, success, dry_run, portfolio_value,
                                   orders_planned, orders_executed, orders_failed,
                                   total_value_traded, orders, errors, triggered_by, duration,
                                   execution_cost_bps)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING *
), closed AS (
    UPDATE rebalance_runs r
       SET status = $16, finished_at = now(), history_id = h.id, error = $17
      FROM h
     WHERE r.id = $14 AND r.owner = $15 AND r.finished_at IS NULL
    RETURNING r.id
), told AS (
    SELECT pg_notify('rebalancerd', 'runs')
)
SELECT h.*, (SELECT id FROM closed) AS closed_run FROM h, told;

-- name: take_over_run
UPDATE rebalance_runs SET owner = $2, lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = $1 AND finished_at IS NULL AND (lease_expires_at < now() OR owner = $4)
RETURNING *;

-- name: open_runs
-- Open runs held by another owner than $1 ('' for all of them). A run awaiting approval belongs
-- to no daemon: it is approved, rejected or expired, never taken over.
SELECT * FROM rebalance_runs
 WHERE finished_at IS NULL AND status <> 'awaiting_approval' AND owner <> $1 ORDER BY id;

-- name: update_intent
UPDATE order_intents
   SET status = $2, txid = $3, volume_executed = $4, cost = $5, fee = $6, avg_price = $7,
       error = $8, updated_at = now()
 WHERE client_order_id = $1
RETURNING *;

-- name: insert_intents
-- A run's new intents ($2..$8: seq, client id, symbol, pair, side, volume, price, as arrays),
-- and in the same statement, so the same commit, what became of earlier ones ($9..$16: as
-- update_intent's arguments, as arrays): a run's sells as their replies left them go with its
-- buys' intents. One round trip however many rows, where a transaction took 3 + one per row.
WITH saved AS (
    UPDATE order_intents i
       SET status = u.status, txid = u.txid, volume_executed = u.volume_executed, cost = u.cost,
           fee = u.fee, avg_price = u.avg_price, error = u.error, updated_at = now()
      FROM unnest($9::text[], $10::text[], $11::text[], $12::numeric[], $13::numeric[],
                  $14::numeric[], $15::numeric[], $16::text[])
           AS u(client_order_id, status, txid, volume_executed, cost, fee, avg_price, error)
     WHERE i.client_order_id = u.client_order_id
)
INSERT INTO order_intents (run_id, seq, client_order_id, symbol, pair, side, volume,
                           expected_price)
SELECT $1, n.* FROM unnest($2::integer[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::numeric[], $8::numeric[]) AS n
RETURNING *;

-- name: run_intents
SELECT * FROM order_intents WHERE run_id = $1 ORDER BY seq;

-- name: unresolved_intents
-- Orders of finished runs whose outcome was never learnt: settled before the portfolio trades again.
SELECT i.* FROM order_intents i JOIN rebalance_runs r ON r.id = i.run_id
 WHERE r.portfolio_id = $1 AND r.finished_at IS NOT NULL
   AND i.status IN ('intent', 'placed', 'unknown')
 ORDER BY i.id;

-- name: insert_history
INSERT INTO rebalance_history (portfolio_id, success, dry_run, portfolio_value, orders_planned,
                               orders_executed, orders_failed, total_value_traded, orders,
                               errors, triggered_by, duration, execution_cost_bps)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: mark_rebalanced
UPDATE portfolios SET last_rebalanced_at = now(), failure_count = 0 WHERE id = $1;

-- name: mark_failed
UPDATE portfolios SET failure_count = failure_count + 1 WHERE id = $1
RETURNING failure_count;

-- name: list_history
SELECT * FROM rebalance_history
 WHERE ($1::text IS NULL OR portfolio_id = $1)
   AND ($2::boolean IS NULL OR success = $2)
   AND ($3::timestamptz IS NULL OR executed_at >= $3)
   AND ($4::timestamptz IS NULL OR executed_at <= $4)
 ORDER BY executed_at DESC, id
 LIMIT $5 OFFSET $6;

-- name: history_stats
SELECT count(*) AS count,
       coalesce(sum(total_value_traded), 0) AS total_value_traded,
       avg(portfolio_value) AS average_portfolio_value,
       count(*) FILTER (WHERE success) AS successful,
       count(*) FILTER (WHERE NOT success) AS failed
  FROM rebalance_history
 WHERE ($1::text IS NULL OR portfolio_id = $1)
   AND ($2::boolean IS NULL OR success = $2)
   AND ($3::timestamptz IS NULL OR executed_at >= $3)
   AND ($4::timestamptz IS NULL OR executed_at <= $4);

-- name: last_success_per_portfolio
SELECT portfolio_id, max(executed_at) AS last_success
  FROM rebalance_history WHERE success GROUP BY portfolio_id;

-- name: get_scheduler_state
SELECT running, enabled, check_interval, dry_run, updated_at, halted FROM scheduler_state WHERE id = 1;

-- name: set_scheduler_state
UPDATE scheduler_state
   SET running = $1, enabled = $2, check_interval = $3, dry_run = $4, updated_at = now()
 WHERE id = 1
RETURNING running, enabled, check_interval, dry_run, updated_at, halted;

-- name: notify
SELECT pg_notify('rebalancerd', $1);

-- name: paper_seed
-- Two daemons starting at once both see no rows and both insert the same seed: the second's
-- rows conflict and are dropped (it used to fail the daemon's start with a unique violation).
INSERT INTO paper_balances (account, asset, amount)
SELECT $1, asset, amount FROM unnest($2::text[], $3::numeric[]) AS s(asset, amount)
 WHERE NOT EXISTS (SELECT 1 FROM paper_balances WHERE account = $1)
ON CONFLICT DO NOTHING;

-- name: paper_balances
SELECT asset, amount FROM paper_balances WHERE account = $1;

-- name: paper_apply
-- Update first: an INSERT .. ON CONFLICT would check "amount >= 0" against the bare delta.
WITH updated AS (
    UPDATE paper_balances SET amount = amount + $3
     WHERE account = $1 AND asset = $2
    RETURNING amount
)
INSERT INTO paper_balances (account, asset, amount)
SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM updated);

-- name: paper_insert_order
INSERT INTO paper_orders (account, client_order_id, txid, pair, side, status, volume,
                          volume_executed, cost, fee, avg_price)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (account, client_order_id) DO NOTHING
RETURNING *;

-- name: paper_find
SELECT * FROM paper_orders WHERE account = $1 AND client_order_id = $2;

-- name: paper_by_txid
SELECT * FROM paper_orders WHERE account = $1 AND txid = ANY($2::text[]);

-- ===== maker execution (issue 16) =====

-- name: set_portfolio_execution
UPDATE portfolios
   SET execution_mode = $2, maker_timeout_seconds = $3, max_slippage_bps = $4
 WHERE id = $1
RETURNING *;

-- name: insert_maker_intent
INSERT INTO order_intents (run_id, seq, client_order_id, symbol, pair, side, volume,
                           expected_price, execution_mode, arrival_mid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'maker', $9)
RETURNING *;

-- name: add_child_order
-- Committed before child order $2 is sent: a restart then looks up children 0..$2.
UPDATE order_intents SET child_orders = greatest(child_orders, $2 + 1), updated_at = now()
 WHERE client_order_id = $1
RETURNING *;

-- name: save_maker_intent
UPDATE order_intents
   SET status = $2, txid = $3, volume_executed = $4, cost = $5, fee = $6, avg_price = $7,
       error = $8, placements = $9, fallback = $10, updated_at = now()
 WHERE client_order_id = $1
RETURNING *;

-- ===== notifications (transactional outbox) =====

-- name: outbox_insert
-- One statement for any number of events (executemany costs a round trip per row).
INSERT INTO notify_events (id, type, created_at, data)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[]);

-- name: outbox_dispatch
-- Fan new events out to this daemon's hooks: $1 is {hook: [event types it wants]}. SKIP LOCKED:
-- two daemons never fan out one event twice (and the primary key would refuse it anyway).
WITH ev AS (
    SELECT id, type FROM notify_events WHERE NOT dispatched
     ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED
), fanned AS (
    INSERT INTO notify_deliveries (event_id, hook)
    SELECT ev.id, h.key FROM ev CROSS JOIN jsonb_each($1::jsonb) AS h(key, types)
     WHERE h.types ? ev.type
    ON CONFLICT DO NOTHING
)
UPDATE notify_events e SET dispatched = true FROM ev WHERE e.id = ev.id
RETURNING e.id;

-- name: outbox_claim
-- Take up to $2 due deliveries of hook $1 for one attempt each, leased for $3 seconds: the
-- lease is next_attempt_at, so another daemon (or this one after a restart) retries an attempt
-- whose daemon died. SKIP LOCKED lets several daemons claim from one outbox at once.
WITH due AS (
    SELECT event_id, hook FROM notify_deliveries
     WHERE hook = $1 AND status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE notify_deliveries d
   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $3),
       updated_at = now()
  FROM due, notify_events e
 WHERE d.event_id = due.event_id AND d.hook = due.hook AND e.id = d.event_id
RETURNING d.event_id, d.hook, d.attempts, e.type, e.created_at, e.data;

-- name: outbox_delivered
-- Delivered wins over a stale lease: the receiver has it, whoever else is trying.
UPDATE notify_deliveries
   SET status = 'delivered', last_status = $3, last_error = NULL, delivered_at = now(),
       updated_at = now()
 WHERE event_id = $1 AND hook = $2 AND status = 'pending';

-- name: outbox_failed
-- One attempt failed: try again in $5 seconds, or give up ($6). Only the attempt that holds the
-- claim ($3) writes: a late answer to an attempt whose lease ran out changes nothing.
UPDATE notify_deliveries
   SET status = CASE WHEN $6 THEN 'given_up' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => $5),
       last_status = $4, last_error = $7, updated_at = now()
 WHERE event_id = $1 AND hook = $2 AND attempts = $3 AND status = 'pending';

-- name: outbox_release
-- Shutdown mid-attempt: due again at once, and the attempt does not count.
UPDATE notify_deliveries
   SET next_attempt_at = now(), attempts = attempts - 1, updated_at = now()
 WHERE event_id = $1 AND hook = $2 AND attempts = $3 AND status = 'pending';

-- name: outbox_next_due
SELECT min(next_attempt_at) FROM notify_deliveries
 WHERE status = 'pending' AND hook = ANY($1::text[]);

-- name: outbox_stats
SELECT (SELECT count(*) FROM notify_deliveries WHERE status = 'pending')
     + (SELECT count(*) FROM notify_events WHERE NOT dispatched) AS pending,
       extract(epoch FROM now() - least(
           (SELECT min(e.created_at) FROM notify_deliveries d
              JOIN notify_events e ON e.id = d.event_id WHERE d.status = 'pending'),
           (SELECT min(created_at) FROM notify_events WHERE NOT dispatched)))::float8
         AS oldest_pending_seconds;

-- name: outbox_prune
-- Events whose every delivery is over (or that had no hook) and older than the retention.
DELETE FROM notify_events e
 WHERE e.dispatched AND e.created_at < now() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT 1 FROM notify_deliveries d
                    WHERE d.event_id = e.id AND d.status = 'pending');

-- name: outbox_recent
SELECT d.event_id, d.hook, d.status, d.attempts, d.next_attempt_at, d.last_status,
       d.last_error, d.updated_at, d.delivered_at, e.type, e.created_at,
       e.data -> 'portfolio' ->> 'id' AS portfolio_id,
       (e.data -> 'run' ->> 'id')::bigint AS run_id
  FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_id
 ORDER BY e.created_at DESC, d.hook
 LIMIT $1;

-- ===== dashboard: snapshots and the overview's aggregates =====

-- name: insert_snapshots
-- Several snapshots in one statement; weights and holdings come as JSON text.
INSERT INTO portfolio_snapshots (portfolio_id, kind, value, weights, holdings, run_id, taken_at)
SELECT s.portfolio_id, s.kind, s.value, s.weights::jsonb, s.holdings::jsonb, s.run_id,
       coalesce(s.taken_at, now())
  FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::text[], $6::bigint[],
              $7::timestamptz[]) AS s(portfolio_id, kind, value, weights, holdings, run_id,
                                      taken_at);

-- name: list_snapshots
-- The newest $4 snapshots of a portfolio in [$2, $3], returned oldest first (a chart's order).
SELECT * FROM (
    SELECT * FROM portfolio_snapshots
     WHERE portfolio_id = $1
       AND ($2::timestamptz IS NULL OR taken_at >= $2)
       AND ($3::timestamptz IS NULL OR taken_at <= $3)
     ORDER BY taken_at DESC, id DESC
     LIMIT $4
) newest ORDER BY taken_at, id;

-- name: latest_snapshots
SELECT DISTINCT ON (portfolio_id) * FROM portfolio_snapshots
 ORDER BY portfolio_id, taken_at DESC, id DESC;

-- name: prune_snapshots
DELETE FROM portfolio_snapshots WHERE taken_at < now() - make_interval(days => $1);

-- name: last_runs
-- Each portfolio's newest history row: the overview's "last run" and its attention order.
SELECT DISTINCT ON (portfolio_id) * FROM rebalance_history
 ORDER BY portfolio_id, executed_at DESC, id;

-- name: runs_since
SELECT count(*) FILTER (WHERE success) AS ok, count(*) FILTER (WHERE NOT success) AS failed
  FROM rebalance_history WHERE executed_at >= $1;

-- name: daemons_since
-- Daemons that started or took over a run since $1 (owner is host:pid:nonce), besides the asker.
SELECT DISTINCT owner FROM rebalance_runs WHERE started_at >= $1 AND owner <> $2 ORDER BY owner;

-- ===== safety controls (issue 19) =====

-- name: set_portfolio_safety
UPDATE portfolios
   SET approval = $2, approval_ttl_seconds = $3, approval_tolerance_pct = $4,
       max_trade_percent = $5, sell_mode = $6, price_jump_guard_pct = $7
 WHERE id = $1
RETURNING *;

-- name: set_halted
UPDATE scheduler_state SET halted = $1, updated_at = now() WHERE id = 1
RETURNING running, enabled, check_interval, dry_run, updated_at, halted;

-- name: is_halted
SELECT halted FROM scheduler_state WHERE id = 1;

-- name: set_run_plan
UPDATE rebalance_runs SET plan = $2 WHERE id = $1;

-- name: park_run
-- The run waits for a person: it keeps the portfolio (still open) but no daemon holds it.
UPDATE rebalance_runs
   SET status = 'awaiting_approval', plan = $3, owner = '', expires_at = $4,
       lease_expires_at = $4
 WHERE id = $1 AND owner = $2 AND finished_at IS NULL
RETURNING *;

-- name: get_run
SELECT * FROM rebalance_runs WHERE id = $1;

-- name: resume_approved_run
UPDATE rebalance_runs
   SET status = 'running', owner = $2, lease_expires_at = now() + make_interval(secs => $3)
 WHERE id = $1 AND status = 'awaiting_approval' AND finished_at IS NULL
RETURNING *;

-- name: close_awaiting_run
UPDATE rebalance_runs SET status = $2, finished_at = now(), history_id = $3, error = $4
 WHERE id = $1 AND status = 'awaiting_approval' AND finished_at IS NULL
RETURNING id;

-- name: lapsed_runs
SELECT id, portfolio_id FROM rebalance_runs
 WHERE status = 'awaiting_approval' AND finished_at IS NULL AND expires_at <= $1
 ORDER BY id;

-- name: list_runs
SELECT * FROM rebalance_runs
 WHERE ($1::text IS NULL OR status = $1
        OR ($1 = 'done' AND status IN ('succeeded', 'failed')))
   AND ($2::text IS NULL OR portfolio_id = $2)
 ORDER BY id DESC
 LIMIT $3;

-- name: price_marks
SELECT symbol, price, observed_at FROM price_marks WHERE portfolio_id = $1;

-- name: save_price_marks
INSERT INTO price_marks (portfolio_id, symbol, price, observed_at)
SELECT $1, symbol, price, $4 FROM unnest($2::text[], $3::numeric[]) AS m(symbol, price)
ON CONFLICT (portfolio_id, symbol)
DO UPDATE SET price = excluded.price, observed_at = excluded.observed_at;
