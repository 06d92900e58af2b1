-- How far subject_events reflects the ledger. The pseudonym index is
-- written by the ledger writer in large batches after the appends, not
-- inside each append transaction (one random index insert per event was
-- most of what personal data cost the append rate); readers add the
-- events after applied_through by scanning them (docs/PERSONAL_DATA.md).
CREATE TABLE subject_index_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    applied_through INTEGER NOT NULL
);
-- Until now the index was written with every append: it is complete.
INSERT INTO subject_index_state (id, applied_through) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
