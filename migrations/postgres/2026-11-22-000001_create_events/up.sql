-- The ledger: the only source of truth. seq is NOT a sequence (aborted
-- transactions would leave gaps): the writer assigns head + 1 while holding
-- a transaction-scoped advisory lock; UNIQUE(seq) and UNIQUE(prev_hash) make
-- any fork impossible even if that protocol were broken. (No UNIQUE(hash):
-- the hash covers seq, so it cannot repeat, and a random-key index costs a
-- page write per event.)
CREATE TABLE events (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    id TEXT NOT NULL UNIQUE,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    project TEXT,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    attributes TEXT NOT NULL,
    occurred_at TEXT,
    idempotency_key TEXT,
    prev_hash BYTEA NOT NULL UNIQUE CHECK (length(prev_hash) = 32),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);

CREATE UNIQUE INDEX events_idempotency ON events (actor, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_kind_seq ON events (kind, seq);
CREATE INDEX events_subject_seq ON events (subject, seq);
CREATE INDEX events_actor_seq ON events (actor, seq);

CREATE FUNCTION govledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION govledger_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION govledger_append_only();
