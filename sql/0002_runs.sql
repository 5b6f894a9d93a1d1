-- What makes runs safe: schedule anchors, leases, runs with a unique slot, order intents
-- committed before sending, the shared scheduler state, and the paper accounts' ledger.

ALTER TABLE portfolios
    ADD COLUMN schedule_anchor  timestamptz,          -- first slot; the lattice next slots sit on
    ADD COLUMN schedule_tz      text,                 -- IANA zone for cron intervals
    ADD COLUMN drift_band_abs   numeric CHECK (drift_band_abs >= 0),  -- percentage points
    ADD COLUMN drift_band_rel   numeric CHECK (drift_band_rel >= 0),  -- percent of target
    ADD COLUMN failure_count    integer NOT NULL DEFAULT 0;

CREATE TABLE rebalance_runs (
    id               bigserial PRIMARY KEY,
    portfolio_id     text NOT NULL,
    account          text NOT NULL,
    slot             timestamptz,        -- the scheduled slot; NULL for manual runs
    triggered_by     text NOT NULL,
    dry_run          boolean NOT NULL,
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'succeeded', 'failed')),
    owner            text NOT NULL,       -- the daemon holding the lease
    lease_expires_at timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    history_id       text,
    error            text
);

-- Each scheduled slot runs once, however many daemons share the database.
CREATE UNIQUE INDEX rebalance_runs_slot_key ON rebalance_runs (portfolio_id, slot)
    WHERE slot IS NOT NULL;
-- Never two runs of one portfolio at once (scheduled or manual).
CREATE UNIQUE INDEX rebalance_runs_one_open ON rebalance_runs (portfolio_id)
    WHERE finished_at IS NULL;
CREATE INDEX rebalance_runs_open_idx ON rebalance_runs (lease_expires_at)
    WHERE finished_at IS NULL;

CREATE TABLE order_intents (
    id               bigserial PRIMARY KEY,
    run_id           bigint NOT NULL REFERENCES rebalance_runs (id),
    seq              integer NOT NULL,
    client_order_id  text NOT NULL UNIQUE,
    symbol           text NOT NULL,
    pair             text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    volume           numeric NOT NULL CHECK (volume > 0),
    expected_price   numeric NOT NULL,
    -- intent: committed, not yet known to be sent; placed/filled/rejected/unknown: the answer
    status           text NOT NULL DEFAULT 'intent'
                     CHECK (status IN ('intent', 'placed', 'filled', 'canceled', 'rejected',
                                       'not_placed', 'unknown')),
    txid             text,
    volume_executed  numeric NOT NULL DEFAULT 0,
    cost             numeric NOT NULL DEFAULT 0,
    fee              numeric NOT NULL DEFAULT 0,
    avg_price        numeric NOT NULL DEFAULT 0,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, seq)
);

-- One row: what every daemon sharing the database obeys, surviving restarts.
CREATE TABLE scheduler_state (
    id             integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    running        boolean,             -- NULL: follow scheduler.auto_start
    enabled        boolean,             -- NULL: follow the config file / environment
    check_interval text,
    dry_run        boolean,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO scheduler_state (id) VALUES (1);

CREATE TABLE paper_balances (
    account text NOT NULL,
    asset   text NOT NULL,
    amount  numeric NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (account, asset)
);

CREATE TABLE paper_orders (
    account         text NOT NULL,
    client_order_id text NOT NULL,
    txid            text NOT NULL,
    pair            text NOT NULL,
    side            text NOT NULL,
    status          text NOT NULL,
    volume          numeric NOT NULL,
    volume_executed numeric NOT NULL,
    cost            numeric NOT NULL,
    fee             numeric NOT NULL,
    avg_price       numeric NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, client_order_id),
    UNIQUE (account, txid)
);
