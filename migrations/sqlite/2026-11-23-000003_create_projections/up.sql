-- Projections of the ledger: derived from the events alone, written in the
-- same transaction as the events that cause them, and rebuilt identically by
-- `govledger rebuild`. Unlike `events`, these tables are updated in place.

-- Every entity any event has named, with its current status and a summary of
-- the latest attributes of each event kind about it (JSON).
CREATE TABLE entities (
    ref TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    project TEXT,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX entities_type_name ON entities (entity_type, name);

-- Lineage: source -> target, from an event's inputs to its subject and from
-- its subject to its outputs. A deployment's edge from its live model ends
-- (ended_seq) when another model replaces it, so as-of queries see what was
-- live at the time. `kind` is the kind of the event that created the edge
-- (training inputs and evaluation datasets are told apart by it).
CREATE TABLE lineage_edges (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    ended_seq INTEGER,
    kind TEXT NOT NULL,
    PRIMARY KEY (source, target, created_seq)
);
CREATE INDEX lineage_edges_target ON lineage_edges (target, source);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    environment TEXT NOT NULL,
    project TEXT,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_seq INTEGER NOT NULL,
    requested_at TEXT NOT NULL,
    required_approvals INTEGER NOT NULL,
    valid_for_seconds INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    note TEXT NOT NULL,
    granted_at TEXT,
    expires_at TEXT,
    decided_seq INTEGER
);
CREATE INDEX approvals_model_environment ON approvals (model, environment);
CREATE INDEX approvals_state ON approvals (state, requested_seq);

CREATE TABLE approval_decisions (
    seq INTEGER PRIMARY KEY,
    approval_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX approval_decisions_approval ON approval_decisions (approval_id, seq);

-- Events recorded before these tables existed: seq 1..backlog_until are
-- applied at the next start (then 0). Every later event is projected in its
-- own append transaction, so the writer never touches this row.
CREATE TABLE projection_state (
    name TEXT PRIMARY KEY,
    backlog_until INTEGER NOT NULL
);
INSERT INTO projection_state (name, backlog_until) SELECT 'governance', COALESCE(MAX(seq), 0) FROM events;
