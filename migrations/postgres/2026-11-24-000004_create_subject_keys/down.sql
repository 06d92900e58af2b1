DROP TABLE subject_events; DROP TABLE subject_keys;
