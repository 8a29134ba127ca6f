-- What a node keeps about the federation, once JSON files in its federation folder: pinned peers,
-- its own revocation list, its decisions on peers' grant requests, the grants it holds from
-- peers and the peers' revocation lists. Records are JSON objects whose shape the federation
-- code owns; columns hold only what the store searches or changes.
CREATE TABLE federation_peers (
    peer_id TEXT PRIMARY KEY CHECK (length(peer_id) BETWEEN 1 AND 253),
    record TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

-- Bumped by every change to federation_peers, so readers re-parse peers only when they changed.
CREATE TABLE federation_peers_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO federation_peers_version VALUES (1, 0);

CREATE TABLE federation_revocations (
    jti TEXT PRIMARY KEY CHECK (length(jti) >= 1),
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

-- The sequence of this node's revocation list: every change bumps it, so peers detect rollback.
CREATE TABLE federation_revocation_sequence (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    sequence INTEGER NOT NULL CHECK (sequence >= 0)
) STRICT;
INSERT INTO federation_revocation_sequence VALUES (1, 0);

-- Append-only: every decision on a peer's grant request; `jti` is the grant issued, if any.
CREATE TABLE federation_grant_decisions (
    decision_key INTEGER PRIMARY KEY,
    jti TEXT,
    record TEXT NOT NULL CHECK (json_valid(record))
) STRICT;
CREATE INDEX federation_grant_decisions_by_jti ON federation_grant_decisions (jti) WHERE jti IS NOT NULL;

CREATE TRIGGER federation_grant_decisions_no_update BEFORE UPDATE ON federation_grant_decisions
BEGIN
    SELECT RAISE(ABORT, 'federation_grant_decisions is append-only');
END;

CREATE TRIGGER federation_grant_decisions_no_delete BEFORE DELETE ON federation_grant_decisions
BEGIN
    SELECT RAISE(ABORT, 'federation_grant_decisions is append-only');
END;

-- Grants peers issued to this node (bearer tokens: the database file is the owner's only).
CREATE TABLE federation_held_grants (
    jti TEXT PRIMARY KEY CHECK (length(jti) >= 1),
    issuer TEXT NOT NULL,
    revoked_reason TEXT,
    record TEXT NOT NULL CHECK (json_valid(record))
) STRICT;

CREATE TABLE federation_peer_revocations (
    peer_id TEXT PRIMARY KEY,
    list TEXT NOT NULL CHECK (json_valid(list)),
    fetched_at INTEGER NOT NULL
) STRICT;
