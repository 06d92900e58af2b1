-- New subject keys are appended here, in append order, inside the append
-- transaction, and folded into subject_keys (keyed by pseudonym) in sorted
-- rounds: inserting each at its place in subject_keys wrote a page at a
-- random place for every new data subject (docs/PERSONAL_DATA.md).
CREATE TABLE subject_key_log (
    id INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL
);
