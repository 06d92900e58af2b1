CREATE TABLE subject_keys_by_key_id (
    key_id TEXT PRIMARY KEY,
    pseudonym TEXT NOT NULL UNIQUE,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO subject_keys_by_key_id (key_id, pseudonym, wrapped, created_at)
    SELECT key_id, pseudonym, wrapped, created_at FROM subject_keys;
DROP TABLE subject_keys;
ALTER TABLE subject_keys_by_key_id RENAME TO subject_keys;
