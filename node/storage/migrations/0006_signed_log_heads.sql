-- The decision log's head is signed by the node's key at every append (a compact JWS,
-- coopfed-log-head+jwt); NULL for a head written before heads were signed.
ALTER TABLE decision_log_head ADD COLUMN signed TEXT;

-- Heads of aligned peers' decision logs that this node was shown (it is their witness). Kept
-- forever, each distinct (node, seq, hash) once: two hashes for one seq are evidence of a rewrite.
CREATE TABLE witnessed_heads (
    witness_key INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    signed TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (node_id, seq, hash)
) STRICT;

CREATE TRIGGER witnessed_heads_no_update BEFORE UPDATE ON witnessed_heads
BEGIN
    SELECT RAISE(ABORT, 'witnessed_heads is append-only');
END;
