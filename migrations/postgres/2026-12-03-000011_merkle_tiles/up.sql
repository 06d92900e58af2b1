-- The Merkle tree over the events as C2SP tlog-tiles: every full tile of 256
-- hashes, level 0 holding leaf hashes and level L+1 the roots of level L's
-- tiles. A projection of the events (recomputable, checked by `verify`),
-- written by the writer in the append transaction that fills each tile, so
-- proofs read O(log n) tiles and start-up reads none of the events.
CREATE TABLE merkle_tiles (
    level SMALLINT NOT NULL CHECK (level >= 0),
    idx BIGINT NOT NULL CHECK (idx >= 0),
    hashes BYTEA NOT NULL CHECK (length(hashes) = 8192),
    PRIMARY KEY (level, idx)
);
