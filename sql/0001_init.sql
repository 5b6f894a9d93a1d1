-- The original product's two tables, in snake_case, with money as numeric and times as timestamptz.

CREATE TABLE portfolios (
    id                       text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name                     text NOT NULL,
    user_id                  text,
    account                  text NOT NULL DEFAULT 'default',
    target_weights           jsonb NOT NULL,
    rebalance_enabled        boolean NOT NULL DEFAULT false,
    rebalance_interval       text NOT NULL DEFAULT 'weekly',
    rebalance_threshold      numeric NOT NULL DEFAULT 10 CHECK (rebalance_threshold >= 0),
    max_orders_per_rebalance integer CHECK (max_orders_per_rebalance >= 1),
    last_rebalanced_at       timestamptz,
    next_rebalance_at        timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- The due query reads only enabled rows ordered by their next slot: a partial index keeps it
-- small and lets "next_rebalance_at <= now() ORDER BY next_rebalance_at LIMIT n" stop early.
CREATE INDEX portfolios_due_idx ON portfolios (next_rebalance_at) WHERE rebalance_enabled;

-- One account's balance is one pool: at most one enabled portfolio may trade it.
CREATE UNIQUE INDEX portfolios_one_enabled_per_account ON portfolios (account)
    WHERE rebalance_enabled;

CREATE TABLE rebalance_history (
    id                 text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    portfolio_id       text NOT NULL,  -- no foreign key: the record outlives a deleted portfolio
    executed_at        timestamptz NOT NULL DEFAULT now(),
    success            boolean NOT NULL,
    dry_run            boolean NOT NULL DEFAULT false,
    portfolio_value    numeric NOT NULL DEFAULT 0,
    orders_planned     integer NOT NULL DEFAULT 0,
    orders_executed    integer NOT NULL DEFAULT 0,
    orders_failed      integer NOT NULL DEFAULT 0,
    total_value_traded numeric NOT NULL DEFAULT 0,
    orders             jsonb NOT NULL DEFAULT '[]',
    errors             jsonb,
    triggered_by       text NOT NULL DEFAULT 'scheduler',
    duration           integer
);

CREATE INDEX rebalance_history_portfolio_idx ON rebalance_history (portfolio_id, executed_at DESC);
CREATE INDEX rebalance_history_executed_idx ON rebalance_history (executed_at DESC);
