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

-- Where each member holds readings, per dataset and bucket of 2^21 seconds (about 24 days): the
-- first and last period held there, kept with readings in the same transaction. A release finds
-- the members with a reading in its spans from these rows, reading `readings` only where a span
-- lies strictly between a bucket's first and last period.
CREATE TABLE reading_extents (
    member_key INTEGER NOT NULL REFERENCES members (member_key),
    dataset_id INTEGER NOT NULL REFERENCES datasets (dataset_id),
    bucket INTEGER NOT NULL,
    first_period INTEGER NOT NULL,
    last_period INTEGER NOT NULL CHECK (last_period >= first_period),
    PRIMARY KEY (member_key, dataset_id, bucket)
) STRICT, WITHOUT ROWID;

CREATE INDEX reading_extents_by_bucket ON reading_extents (dataset_id, bucket);

INSERT INTO reading_extents (member_key, dataset_id, bucket, first_period, last_period)
SELECT member_key, dataset_id, period_start / 2097152, min(period_start), max(period_start)
FROM readings GROUP BY member_key, dataset_id, period_start / 2097152;
