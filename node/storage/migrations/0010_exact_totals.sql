-- Profile totals become exact: each slot's sum is a little-endian int64 count of nanowatt-hours
-- (10^-12 kWh) instead of a float64 of kWh, so adding and later removing a reading gives back
-- exactly what was there. The float sums cannot be converted exactly (their rounding is already
-- in them), so the table starts empty and the store rebuilds it from the readings when it
-- next opens the database, in its own transaction; the marker row goes when that commits.
DROP TABLE profile_totals;

CREATE TABLE profile_totals (
    dataset_id INTEGER NOT NULL,
    profile_key INTEGER NOT NULL,
    day INTEGER NOT NULL,
    kwh_sums BLOB NOT NULL CHECK (length(kwh_sums) = 48 * 8),
    member_counts BLOB NOT NULL CHECK (length(member_counts) = 48 * 4),
    UNIQUE (dataset_id, profile_key, day)
) STRICT;

CREATE TABLE totals_to_rebuild (
    since_version INTEGER PRIMARY KEY
) STRICT;

INSERT INTO totals_to_rebuild (since_version) VALUES (8);
