-- Keys not yet folded are kept: losing one would erase a person.
INSERT INTO subject_keys (pseudonym, key_id, wrapped, created_at)
    SELECT pseudonym, key_id, wrapped, created_at FROM subject_key_log;
DROP TABLE subject_key_log;
