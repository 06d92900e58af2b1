-- Signed checkpoints the server has published: a projection of the events
-- (the root is recomputable), kept so that `verify` can prove the ledger
-- still extends every statement the server ever signed.
CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY CHECK (tree_size > 0),
    root_hash BYTEA NOT NULL CHECK (length(root_hash) = 32),
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
