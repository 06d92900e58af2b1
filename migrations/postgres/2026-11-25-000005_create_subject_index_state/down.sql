DROP TABLE subject_index_state;
