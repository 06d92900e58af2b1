-- Delivery state of webhook subscriptions. The subscriptions themselves are
-- on the record (webhook.* events); this is where delivery stands, like the
-- search index's position: not a projection, and not rebuilt from events.
-- delivered_through: every event up to it was delivered to the subscription
-- or did not match it. The lease says which replica delivers (until
-- lease_until, Unix milliseconds); the retry columns say which event is
-- being retried, since when, and how often.
CREATE TABLE webhook_cursors (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    delivered_through BIGINT NOT NULL,
    applied_change_seq BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    retry_seq BIGINT,
    retry_since TEXT,
    retry_attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_delivered_at TEXT,
    updated_at TEXT NOT NULL
);
-- Recent attempts, the newest kept per subscription.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    result TEXT NOT NULL,
    status_code INTEGER,
    latency_micros BIGINT NOT NULL,
    error TEXT,
    next_attempt_at TEXT,
    replica TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
