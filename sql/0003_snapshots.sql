-- Snapshots: a portfolio's value and weights over time, for the dashboard's charts and its
-- "current allocation" (so a page load never asks the exchange). Written before and after each
-- run and at every check tick; rows older than [scheduler] snapshot_retention_days are pruned.

CREATE TABLE portfolio_snapshots (
    id            bigserial PRIMARY KEY,
    portfolio_id  text NOT NULL,               -- no foreign key: history outlives a portfolio
    taken_at      timestamptz NOT NULL DEFAULT now(),
    kind          text NOT NULL CHECK (kind IN ('before', 'after', 'tick')),
    value         numeric NOT NULL,            -- EUR
    weights       jsonb NOT NULL,              -- {"BTC": "41.2", ...} percent of value
    holdings      jsonb NOT NULL DEFAULT '{}', -- {"BTC": {"amount": "0.1", "value": "6000"}}
    run_id        bigint                       -- the run it belongs to (before/after)
);

CREATE INDEX portfolio_snapshots_by_time ON portfolio_snapshots (portfolio_id, taken_at DESC);
CREATE INDEX portfolio_snapshots_age ON portfolio_snapshots (taken_at);
