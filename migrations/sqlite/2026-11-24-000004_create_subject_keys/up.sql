-- Keys of data subjects (docs/PERSONAL_DATA.md), each wrapped under the
-- master key, which never enters the database. Erasing a subject deletes
-- their row: without it the sealed fields of their events cannot be
-- opened. Not a projection: the only table rows are deleted from.
CREATE TABLE subject_keys (
    key_id TEXT PRIMARY KEY,
    pseudonym TEXT NOT NULL UNIQUE,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Projection: which events name which data subject (by pseudonym), for
-- access requests and erasure. Rebuilt from the envelopes in the events.
CREATE TABLE subject_events (
    pseudonym TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (pseudonym, seq)
) WITHOUT ROWID;
