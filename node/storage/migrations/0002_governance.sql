-- Governance: organisations that ask for data, their assessments, data requests with the policy's
-- and the board's decisions, grants, the hash-chained decision log, member pseudonyms and the
-- access log of every release of a member's data. Times are ISO 8601 UTC text unless named _unix.

CREATE TABLE organisations (
    org_key INTEGER PRIMARY KEY,
    organisation_id TEXT NOT NULL UNIQUE CHECK (length(organisation_id) BETWEEN 1 AND 64),
    profile_json TEXT NOT NULL CHECK (json_valid(profile_json)),
    registered_at TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    verification_note TEXT NOT NULL DEFAULT ''
) STRICT;

-- Every assessment of an organisation (stage 2); the newest is the one in force.
CREATE TABLE assessments (
    assessment_key INTEGER PRIMARY KEY,
    org_key INTEGER NOT NULL REFERENCES organisations (org_key),
    decision_id TEXT NOT NULL UNIQUE,
    revision TEXT NOT NULL,
    result_json TEXT NOT NULL CHECK (json_valid(result_json))
) STRICT;

CREATE INDEX assessments_by_org ON assessments (org_key, assessment_key);

CREATE TABLE data_requests (
    request_key INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    org_key INTEGER NOT NULL REFERENCES organisations (org_key),
    spec_json TEXT NOT NULL CHECK (json_valid(spec_json)),
    state TEXT NOT NULL CHECK (state IN ('awaiting_review', 'approved', 'rejected')),
    submitted_at TEXT NOT NULL,
    decision_id TEXT NOT NULL UNIQUE,
    revision TEXT NOT NULL,
    result_json TEXT NOT NULL CHECK (json_valid(result_json))
) STRICT;

CREATE INDEX data_requests_by_org ON data_requests (org_key, request_key);
CREATE INDEX data_requests_by_state ON data_requests (state, request_key);

-- The board's decision on a referred request: at most one per request.
CREATE TABLE reviews (
    request_key INTEGER PRIMARY KEY REFERENCES data_requests (request_key),
    decision_id TEXT NOT NULL UNIQUE,
    reviewer TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('approve', 'reject')),
    reason TEXT NOT NULL CHECK (length(reason) > 0),
    proposed TEXT NOT NULL CHECK (proposed IN ('approve', 'reject', 'refer')),
    decided_at TEXT NOT NULL
) STRICT;

CREATE TABLE grants (
    grant_id TEXT PRIMARY KEY,
    request_key INTEGER NOT NULL UNIQUE REFERENCES data_requests (request_key),
    org_key INTEGER NOT NULL REFERENCES organisations (org_key),
    token TEXT NOT NULL,
    issued_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL CHECK (expires_unix > issued_unix),
    scope_json TEXT NOT NULL CHECK (json_valid(scope_json)),
    min_group_size INTEGER NOT NULL CHECK (min_group_size >= 1),
    revoked_at TEXT,
    revocation_reason TEXT NOT NULL DEFAULT '',
    revoked_by TEXT NOT NULL DEFAULT '',
    CONSTRAINT revocations_have_reasons CHECK (revoked_at IS NULL OR length(revocation_reason) > 0)
) STRICT;

CREATE INDEX grants_by_org ON grants (org_key, issued_unix);

-- The decision log, in OPA's decision-log shape, each entry chaining the previous entry's hash.
-- Entries are stored exactly as hashed; the head row is the chain's end, kept in step.
CREATE TABLE decision_log (
    position INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    entry_json TEXT NOT NULL CHECK (json_valid(entry_json))
) STRICT;

CREATE TABLE decision_log_head (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;

CREATE TRIGGER decision_log_no_update BEFORE UPDATE ON decision_log
BEGIN
    SELECT RAISE(ABORT, 'decision_log is append-only');
END;

CREATE TRIGGER decision_log_no_delete BEFORE DELETE ON decision_log
BEGIN
    SELECT RAISE(ABORT, 'decision_log is append-only');
END;

-- A random pseudonym per member, used in the access log instead of the member id. Erasing the
-- member deletes it, so what the access log holds about them can no longer be linked to anyone.
CREATE TABLE member_pseudonyms (
    member_key INTEGER PRIMARY KEY REFERENCES members (member_key),
    pseudonym TEXT NOT NULL UNIQUE
) STRICT;

CREATE TRIGGER member_pseudonym_shredded_on_erasure AFTER UPDATE OF erased_at ON members
WHEN NEW.erased_at IS NOT NULL
BEGIN
    DELETE FROM member_pseudonyms WHERE member_key = NEW.member_key;
END;

-- Every release of a member's data: who received it, what, when, why, under which grant.
CREATE TABLE access_log (
    access_key INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL,
    at TEXT NOT NULL,
    release_id TEXT NOT NULL,
    grant_id TEXT NOT NULL REFERENCES grants (grant_id),
    dataset TEXT NOT NULL,
    granularity TEXT NOT NULL CHECK (granularity IN ('aggregate', 'individual')),
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    flow TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    consent_decision_id TEXT NOT NULL
) STRICT;

CREATE INDEX access_log_by_pseudonym ON access_log (pseudonym, access_key);
