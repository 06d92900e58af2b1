-- One index for the key store instead of two (see the SQLite migration):
-- keys are found by pseudonym, and a reader checks the key id the envelope
-- names against the one held.
ALTER TABLE subject_keys DROP CONSTRAINT subject_keys_pkey;
ALTER TABLE subject_keys DROP CONSTRAINT subject_keys_pseudonym_key;
ALTER TABLE subject_keys ADD PRIMARY KEY (pseudonym);
