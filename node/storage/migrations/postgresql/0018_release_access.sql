-- Release-level access-log entries (see ../0018_release_access.sql).
ALTER TABLE access_log ADD COLUMN profile_id TEXT NOT NULL DEFAULT '';
ALTER TABLE access_log ADD CONSTRAINT release_entries_name_their_profile
    CHECK ((pseudonym = '') = (length(profile_id) > 0));

CREATE INDEX access_log_by_profile ON access_log (profile_id, access_key) WHERE pseudonym = '';

CREATE TABLE access_spans (
    access_key BIGINT NOT NULL REFERENCES access_log (access_key),
    span_start BIGINT NOT NULL,
    span_end BIGINT NOT NULL CHECK (span_end > span_start),
    PRIMARY KEY (access_key, span_start)
);

CREATE TABLE reading_extents (
    member_key BIGINT NOT NULL,
    dataset_id BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    first_period BIGINT NOT NULL,
    last_period BIGINT NOT NULL CHECK (last_period >= first_period),
    PRIMARY KEY (member_key, dataset_id, bucket)
);

CREATE INDEX reading_extents_by_bucket ON reading_extents (dataset_id, bucket);

INSERT INTO reading_extents (member_key, dataset_id, bucket, first_period, last_period)
SELECT member_key, dataset_id, period_start / 2097152, min(period_start), max(period_start)
FROM readings GROUP BY member_key, dataset_id, period_start / 2097152;
