-- A release of aggregates is logged once per consenting profile and dataset, with the spans of
-- half-hours it released, instead of once per member: a member's view of the log is derived
-- from their consent history and their readings (governance_rows.ACCESS). Such an entry has no
-- pseudonym and names its profile; per-member entries (individual data, and every entry written
-- before this migration) keep their pseudonym and name no profile.
ALTER TABLE access_log ADD COLUMN profile_id TEXT NOT NULL DEFAULT ''
    CHECK ((pseudonym = '') = (length(profile_id) > 0));

CREATE INDEX access_log_by_profile ON access_log (profile_id, access_key) WHERE pseudonym = '';

-- The [start, end) runs of half-hours a release-level entry released.
CREATE TABLE access_spans (
    access_key INTEGER NOT NULL REFERENCES access_log (access_key),
    span_start INTEGER NOT NULL,
    span_end INTEGER NOT NULL CHECK (span_end > span_start),
    PRIMARY KEY (access_key, span_start)
) STRICT;
