ALTER TABLE subject_keys DROP CONSTRAINT subject_keys_pkey;
ALTER TABLE subject_keys ADD PRIMARY KEY (key_id);
ALTER TABLE subject_keys ADD CONSTRAINT subject_keys_pseudonym_key UNIQUE (pseudonym);
