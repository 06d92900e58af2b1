-- New subject keys in append order, folded into subject_keys in sorted
-- rounds (see the SQLite migration and docs/PERSONAL_DATA.md).
CREATE TABLE subject_key_log (
    id BIGSERIAL PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL
);
