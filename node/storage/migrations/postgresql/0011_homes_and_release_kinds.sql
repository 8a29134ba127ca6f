-- Declared homes, release kinds without a grant, and yearly privacy spend
-- (see ../0011_homes_and_release_kinds.sql).
CREATE TABLE homes (
    member_key BIGINT PRIMARY KEY REFERENCES members (member_key),
    household_size BIGINT CHECK (household_size BETWEEN 1 AND 12),
    heating TEXT CHECK (heating IN ('gas', 'electric', 'heat_pump', 'oil', 'district', 'other')),
    has_pv BIGINT CHECK (has_pv IN (0, 1)),
    has_battery BIGINT CHECK (has_battery IN (0, 1)),
    home_type TEXT CHECK (home_type IN ('flat', 'terraced', 'semi_detached', 'detached', 'other')),
    updated_at TEXT NOT NULL
);

ALTER TABLE access_log DROP CONSTRAINT access_log_grant_kind_check;
ALTER TABLE access_log ADD CONSTRAINT access_log_grant_kind_check
    CHECK (grant_kind IN ('governance', 'federation', 'open_data', 'benchmark'));
ALTER TABLE access_log DROP CONSTRAINT federation_entries_name_their_peer;
ALTER TABLE access_log ADD CONSTRAINT federation_entries_name_their_peer
    CHECK ((grant_kind IN ('federation', 'open_data')) = (length(recipient_id) > 0));

CREATE TABLE privacy_spend (
    member_key BIGINT NOT NULL REFERENCES members (member_key),
    year BIGINT NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL CHECK (epsilon >= 0),
    PRIMARY KEY (member_key, year)
);
