-- One B-tree for the key store instead of three (a rowid table and unique
-- indexes on key_id and pseudonym): every new data subject inserted a row
-- at a random place in each, and on a writer bound by page writes that was
-- most of what personal data about new people cost the append rate.
-- Keys are found by pseudonym; a reader opening an event checks that the
-- key id the envelope names is the one held (an erased and re-created
-- subject has a new key, which does not open their old events).
CREATE TABLE subject_keys_by_pseudonym (
    pseudonym TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO subject_keys_by_pseudonym (pseudonym, key_id, wrapped, created_at)
    SELECT pseudonym, key_id, wrapped, created_at FROM subject_keys;
-- Every connection sets secure_delete, so the dropped table's pages are
-- zeroed (the keys live on in the new table; erased ones were zeroed when
-- they were deleted).
DROP TABLE subject_keys;
ALTER TABLE subject_keys_by_pseudonym RENAME TO subject_keys;
