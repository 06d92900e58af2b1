-- The ledger: the only source of truth. seq is the rowid (INTEGER PRIMARY KEY)
-- and is assigned as head + 1 by the single writer under BEGIN IMMEDIATE, which
-- excludes every other writer: the primary key alone rules out a fork. Unlike
-- PostgreSQL, no UNIQUE index on prev_hash/hash: those random keys would dirty
-- one index page per event and halve group-commit throughput.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
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
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

CREATE UNIQUE INDEX events_idempotency ON events (actor, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_kind_seq ON events (kind, seq);
CREATE INDEX events_subject_seq ON events (subject, seq);
CREATE INDEX events_actor_seq ON events (actor, seq);

-- Append-only, enforced by the database too: a bug or a stray SQL statement
-- cannot rewrite history through the normal paths.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
