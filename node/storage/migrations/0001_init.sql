-- Members, their append-only consent history, half-hourly readings and running per-profile totals.
-- Members and datasets get small integer keys: readings repeat them on every row.

CREATE TABLE datasets (
    dataset_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

INSERT INTO datasets (dataset_id, name) VALUES (1, 'demand'), (2, 'generation'), (3, 'export');

-- A consent profile: the settings the policy reads, shared by every member who chose them.
CREATE TABLE profiles (
    profile_key INTEGER PRIMARY KEY,
    profile_id TEXT NOT NULL UNIQUE CHECK (length(profile_id) BETWEEN 1 AND 64),
    settings_json TEXT NOT NULL CHECK (json_valid(settings_json))
) STRICT;

CREATE TABLE members (
    member_key INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL UNIQUE CHECK (length(member_id) BETWEEN 1 AND 128),
    display_name TEXT NOT NULL CHECK (length(display_name) <= 200),
    created_at TEXT NOT NULL,
    settings_json TEXT NOT NULL CHECK (json_valid(settings_json)),
    profile_key INTEGER REFERENCES profiles (profile_key),
    erased_at TEXT,
    -- an erased member belongs to no profile; every other member belongs to one
    CONSTRAINT erased_members_have_no_profile CHECK ((erased_at IS NULL) = (profile_key IS NOT NULL))
) STRICT;

CREATE INDEX members_by_profile ON members (profile_key) WHERE profile_key IS NOT NULL;

CREATE TABLE consent_records (
    record_id INTEGER PRIMARY KEY,
    member_key INTEGER NOT NULL REFERENCES members (member_key),
    at TEXT NOT NULL,
    settings_json TEXT NOT NULL CHECK (json_valid(settings_json)),
    profile_id TEXT NOT NULL,
    changes_json TEXT NOT NULL CHECK (json_valid(changes_json)),
    terms_version TEXT NOT NULL,
    withdrawal_reason TEXT NOT NULL
) STRICT;

CREATE INDEX consent_records_by_member ON consent_records (member_key, record_id);

CREATE TRIGGER consent_records_no_update BEFORE UPDATE ON consent_records
BEGIN
    SELECT RAISE(ABORT, 'consent_records is append-only');
END;

CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON consent_records
BEGIN
    SELECT RAISE(ABORT, 'consent_records is append-only');
END;

-- Clustered by member, dataset and time: a member's export and a time-range scan are sequential reads.
-- NaN arrives as NULL (SQLite stores no NaN), so NOT NULL refuses it; the upper bound refuses +inf.
CREATE TABLE readings (
    member_key INTEGER NOT NULL REFERENCES members (member_key),
    dataset_id INTEGER NOT NULL REFERENCES datasets (dataset_id),
    period_start INTEGER NOT NULL
        CONSTRAINT period_on_half_hour CHECK (period_start >= 0 AND period_start % 1800 = 0),
    kwh REAL NOT NULL
        CONSTRAINT kwh_finite_non_negative CHECK (kwh >= 0.0 AND kwh <= 1.7976931348623157e308),
    PRIMARY KEY (member_key, dataset_id, period_start)
) STRICT, WITHOUT ROWID;

-- Sum and count of the readings of the members currently in each profile, kept in step with
-- readings, consent changes and erasures in the same transaction. One row per UTC day holds the
-- day's 48 half-hour slots (day = period_start / 86400, slot = period_start % 86400 / 1800):
-- little-endian float64 kWh sums and int32 member counts. A day whose counts are all 0 goes.
-- Rows this wide belong in a rowid table (SQLite's advice for WITHOUT ROWID is rows < page/20).
CREATE TABLE profile_totals (
    dataset_id INTEGER NOT NULL,
    profile_key INTEGER NOT NULL,
    day INTEGER NOT NULL,
    kwh_sums BLOB NOT NULL CHECK (length(kwh_sums) = 48 * 8),
    member_counts BLOB NOT NULL CHECK (length(member_counts) = 48 * 4),
    UNIQUE (dataset_id, profile_key, day)
) STRICT;
