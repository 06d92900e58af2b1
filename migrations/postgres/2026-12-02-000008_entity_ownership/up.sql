-- An entity belongs to the project of the event that created it: the
-- creating kind of its type (dataset.registered, dataset.version_created,
-- model.registered, job.registered, approval.requested), or, for other
-- types, the first event about it. owned_seq is that event; NULL while the
-- entity is only named as an input or output, when it has no project yet.
ALTER TABLE entities ADD COLUMN owned_seq BIGINT;

-- Projects used to be taken from whichever event named an entity first.
-- The projections are rebuilt from the events at the next start (under the
-- append lock), so every entity gets its owner by the rule above; no event
-- is changed.
DELETE FROM approval_decisions;
DELETE FROM approvals;
DELETE FROM lineage_edges;
DELETE FROM entities;
UPDATE projection_state SET backlog_until = (SELECT COALESCE(MAX(seq), 0) FROM events) WHERE name = 'governance';
