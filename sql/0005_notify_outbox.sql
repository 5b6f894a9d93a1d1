-- Notifications: a transactional outbox. An event row is written in the same transaction as
-- the state change it reports (a run's history row, a scheduler change), so a crash can never
-- lose it; the sender task of any daemon fans it out to the configured webhooks and delivers.

CREATE TABLE notify_events (
    id         uuid PRIMARY KEY,               -- the webhook-id of every delivery of this event
    type       text NOT NULL,                  -- run.failed, scheduler.started, ...
    created_at timestamptz NOT NULL DEFAULT now(),
    data       jsonb NOT NULL,                 -- the body's "data": never a secret
    dispatched boolean NOT NULL DEFAULT false  -- fanned out to the hooks configured then
);
CREATE INDEX notify_events_undispatched_idx ON notify_events (created_at) WHERE NOT dispatched;

-- One row per (event, webhook): each receiver has its own attempts, backoff and fate.
CREATE TABLE notify_deliveries (
    event_id        uuid NOT NULL REFERENCES notify_events (id) ON DELETE CASCADE,
    hook            text NOT NULL,             -- host#digest of the URL: the URL may be a secret
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'given_up')),
    attempts        integer NOT NULL DEFAULT 0,
    -- When it may be tried next; while an attempt is in flight, the end of that attempt's
    -- lease (a daemon killed mid-attempt leaves it to be retried once the lease runs out).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,                   -- the receiver's last HTTP status
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (event_id, hook)
);
CREATE INDEX notify_deliveries_due_idx ON notify_deliveries (hook, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notify_deliveries_updated_idx ON notify_deliveries (updated_at DESC);
