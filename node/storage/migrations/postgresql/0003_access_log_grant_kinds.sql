-- The access log records releases under either kind of grant (see ../0003_access_log_grant_kinds.sql):
-- a governance grant keeps its foreign key through a generated column, NULL for federation entries.
ALTER TABLE access_log DROP CONSTRAINT access_log_grant_id_fkey;
ALTER TABLE access_log ADD COLUMN grant_kind TEXT NOT NULL DEFAULT 'governance'
    CHECK (grant_kind IN ('governance', 'federation'));
ALTER TABLE access_log ALTER COLUMN grant_kind DROP DEFAULT;
ALTER TABLE access_log ADD CONSTRAINT access_log_grant_id_check CHECK (length(grant_id) > 0);
ALTER TABLE access_log ADD COLUMN governance_grant_id TEXT
    GENERATED ALWAYS AS (CASE WHEN grant_kind = 'governance' THEN grant_id END) STORED
    REFERENCES grants (grant_id);
ALTER TABLE access_log ADD COLUMN recipient_id TEXT NOT NULL DEFAULT '';
ALTER TABLE access_log ADD COLUMN recipient_name TEXT NOT NULL DEFAULT '';
ALTER TABLE access_log ADD CONSTRAINT federation_entries_name_their_peer
    CHECK ((grant_kind = 'federation') = (length(recipient_id) > 0));
