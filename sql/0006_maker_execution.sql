-- Maker execution (issue 16): a portfolio may rest post-only orders at the touch instead of
-- sending market orders. An intent of a maker order may become several exchange orders (the
-- resting one, a cancel+new where an amend is refused, the IOC fallback): each one's client
-- order id derives from the intent's (child 0 is the intent's own id), and `child_orders` is
-- raised and committed BEFORE child N is sent, so a restart finds every one of them.

ALTER TABLE portfolios
    ADD COLUMN execution_mode        text NOT NULL DEFAULT 'market'
                                     CHECK (execution_mode IN ('market', 'maker')),
    ADD COLUMN maker_timeout_seconds integer NOT NULL DEFAULT 120
                                     CHECK (maker_timeout_seconds BETWEEN 10 AND 3600),
    ADD COLUMN max_slippage_bps      numeric NOT NULL DEFAULT 50
                                     CHECK (max_slippage_bps >= 0 AND max_slippage_bps <= 1000);

ALTER TABLE order_intents
    ADD COLUMN execution_mode text NOT NULL DEFAULT 'market'
                              CHECK (execution_mode IN ('market', 'maker')),
    ADD COLUMN arrival_mid    numeric,                      -- mid when the plan was made
    ADD COLUMN child_orders   integer NOT NULL DEFAULT 0,   -- exchange orders committed so far
    ADD COLUMN placements     integer NOT NULL DEFAULT 0,   -- prices the order rested at
    ADD COLUMN fallback       boolean NOT NULL DEFAULT false;  -- the rest went as IOC

ALTER TABLE rebalance_history
    ADD COLUMN execution_cost_bps numeric;  -- value-weighted over the run's filled orders
