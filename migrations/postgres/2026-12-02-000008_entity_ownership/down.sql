-- The projections stay as they are (their projects were derived by the
-- newer rule); only the column goes.
ALTER TABLE entities DROP COLUMN owned_seq;
