-- Safety controls (issue 19): approval before trading, caps, a no-sell mode, a price-jump guard
-- and the kill switch. Every daemon sharing the database obeys what is stored here.

ALTER TABLE portfolios
    ADD COLUMN approval               text NOT NULL DEFAULT 'auto'
                                      CHECK (approval IN ('auto', 'manual')),
    ADD COLUMN approval_ttl_seconds   integer NOT NULL DEFAULT 3600
                                      CHECK (approval_ttl_seconds BETWEEN 1 AND 604800),
    ADD COLUMN approval_tolerance_pct numeric NOT NULL DEFAULT 1
                                      CHECK (approval_tolerance_pct BETWEEN 0 AND 100),
    -- sum of a run's order values (both sides) as % of the portfolio value; NULL: no cap
    ADD COLUMN max_trade_percent      numeric CHECK (max_trade_percent > 0 AND max_trade_percent <= 200),
    ADD COLUMN sell_mode              text NOT NULL DEFAULT 'allow'
                                      CHECK (sell_mode IN ('allow', 'never')),
    -- NULL: no guard
    ADD COLUMN price_jump_guard_pct   numeric DEFAULT 15 CHECK (price_jump_guard_pct > 0);

-- A run awaiting approval stays open (finished_at NULL) so nothing else runs the portfolio, but
-- belongs to no daemon: its "lease" ends when the approval expires.
ALTER TABLE rebalance_runs DROP CONSTRAINT rebalance_runs_status_check;
ALTER TABLE rebalance_runs
    ADD CONSTRAINT rebalance_runs_status_check
        CHECK (status IN ('running', 'succeeded', 'failed', 'awaiting_approval', 'rejected',
                          'expired')),
    ADD COLUMN plan       jsonb,        -- the plan the run made (the one to approve)
    ADD COLUMN expires_at timestamptz;  -- when an awaiting approval lapses
CREATE INDEX rebalance_runs_status_idx ON rebalance_runs (status, id);

-- The kill switch, shared by every daemon and surviving restarts.
ALTER TABLE scheduler_state ADD COLUMN halted boolean NOT NULL DEFAULT false;

-- The price-jump guard's reference: each asset's mid price when a run or a drift check last
-- read it (kept apart from the dashboard's snapshots on purpose).
CREATE TABLE price_marks (
    portfolio_id text NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    symbol       text NOT NULL,
    price        numeric NOT NULL CHECK (price > 0),
    observed_at  timestamptz NOT NULL,
    PRIMARY KEY (portfolio_id, symbol)
);
