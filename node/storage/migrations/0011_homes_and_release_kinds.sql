-- Members may declare their home for benchmarking (flow 2): every field optional, editable, and
-- erased with the member. NULL means "not declared".
CREATE TABLE homes (
    member_key INTEGER PRIMARY KEY REFERENCES members (member_key),
    household_size INTEGER CHECK (household_size BETWEEN 1 AND 12),
    heating TEXT CHECK (heating IN ('gas', 'electric', 'heat_pump', 'oil', 'district', 'other')),
    has_pv INTEGER CHECK (has_pv IN (0, 1)),
    has_battery INTEGER CHECK (has_battery IN (0, 1)),
    home_type TEXT CHECK (home_type IN ('flat', 'terraced', 'semi_detached', 'detached', 'other')),
    updated_at TEXT NOT NULL
) STRICT;

-- The access log also records the flows that release under no grant: an open-data publication
-- (named by its publication, received by the public) and a benchmark comparison (named by the
-- comparison; who looked is never stored). SQLite cannot change a CHECK in place: rebuild, copy.
CREATE TABLE access_log_v8 (
    access_key INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    at TEXT NOT NULL,
    release_id TEXT NOT NULL,
    grant_kind TEXT NOT NULL CHECK (grant_kind IN ('governance', 'federation', 'open_data', 'benchmark')),
    grant_id TEXT NOT NULL CHECK (length(grant_id) > 0),
    governance_grant_id TEXT
        GENERATED ALWAYS AS (CASE WHEN grant_kind = 'governance' THEN grant_id END) VIRTUAL
        REFERENCES grants (grant_id),
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
        CHECK ((grant_kind IN ('federation', 'open_data')) = (length(recipient_id) > 0))
) STRICT;

INSERT INTO access_log_v8 (access_key, pseudonym, at, release_id, grant_kind, grant_id, recipient_id,
    recipient_name, dataset, granularity, period_start, period_end, purpose, flow, decision_id,
    consent_decision_id)
SELECT access_key, pseudonym, at, release_id, grant_kind, grant_id, recipient_id, recipient_name,
    dataset, granularity, period_start, period_end, purpose, flow, decision_id, consent_decision_id
FROM access_log ORDER BY access_key;

DROP TABLE access_log;

ALTER TABLE access_log_v8 RENAME TO access_log;

CREATE INDEX access_log_by_pseudonym ON access_log (pseudonym, access_key);

-- The epsilon each member's data has been charged, per calendar year, by differentially private
-- releases; the node refuses a release that would take a member past the co-op's yearly budget.
CREATE TABLE privacy_spend (
    member_key INTEGER NOT NULL REFERENCES members (member_key),
    year INTEGER NOT NULL,
    epsilon REAL NOT NULL CHECK (epsilon >= 0),
    PRIMARY KEY (member_key, year)
) STRICT;
