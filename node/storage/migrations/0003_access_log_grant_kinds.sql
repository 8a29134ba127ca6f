-- The access log records releases under either kind of grant: a governance grant (a third party,
-- in the grants table) or a federation grant (a peer co-op, kept in the federation folder).
-- A governance entry still references its grant by foreign key, through a generated column that
-- is NULL for federation entries; a federation entry names the peer that received the data.
-- SQLite cannot drop a foreign key in place, so the table is rebuilt and its rows copied.
-- Nothing references access_log, so it can be dropped with foreign keys on.

CREATE TABLE access_log_v3 (
    access_key INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    at TEXT NOT NULL,
    release_id TEXT NOT NULL,
    grant_kind TEXT NOT NULL CHECK (grant_kind IN ('governance', 'federation')),
    grant_id TEXT NOT NULL CHECK (length(grant_id) > 0),
    governance_grant_id TEXT
        GENERATED ALWAYS AS (CASE WHEN grant_kind = 'governance' THEN grant_id END) VIRTUAL
        REFERENCES grants (grant_id),
    -- the peer co-op for a federation grant; empty for a governance grant, which names its organisation
    recipient_id TEXT NOT NULL DEFAULT '',
    recipient_name TEXT NOT NULL DEFAULT '',
    dataset TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('aggregate', 'individual')),
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    flow TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    consent_decision_id TEXT NOT NULL,
    CONSTRAINT federation_entries_name_their_peer
        CHECK ((grant_kind = 'federation') = (length(recipient_id) > 0))
) STRICT;

INSERT INTO access_log_v3 (access_key, pseudonym, at, release_id, grant_kind, grant_id, dataset,
    granularity, period_start, period_end, purpose, flow, decision_id, consent_decision_id)
SELECT access_key, pseudonym, at, release_id, 'governance', grant_id, dataset, granularity,
    period_start, period_end, purpose, flow, decision_id, consent_decision_id
FROM access_log ORDER BY access_key;

DROP TABLE access_log;

ALTER TABLE access_log_v3 RENAME TO access_log;

CREATE INDEX access_log_by_pseudonym ON access_log (pseudonym, access_key);
