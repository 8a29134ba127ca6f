-- Admission: members join as applicants and count toward k, or appear in any release, only once
-- the co-op admits them (a board decision or a board-issued invitation). Totals hold admitted
-- members' readings only; an applicant's readings join them in the admission's transaction.
ALTER TABLE members ADD COLUMN admitted_at TEXT;
ALTER TABLE members ADD COLUMN admitted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN refused_at TEXT;
ALTER TABLE members ADD COLUMN refusal_reason TEXT NOT NULL DEFAULT '';
-- HMAC-SHA256 of the member's meter id under the node's meter key: one meter, one member at a time.
ALTER TABLE members ADD COLUMN meter_hash BLOB CHECK (meter_hash IS NULL OR length(meter_hash) = 32);

CREATE UNIQUE INDEX members_by_meter ON members (meter_hash) WHERE meter_hash IS NOT NULL;

-- Members who registered before admission existed were admitted under the old rules (joining
-- was admission, and their readings are already in the totals): they stay admitted, from when
-- they joined.
UPDATE members SET admitted_at = created_at, admitted_by = 'joined before admission was required';

-- The members who count: admitted and not erased. Every query behind a release reads this view.
CREATE VIEW admitted_members AS
SELECT * FROM members WHERE admitted_at IS NOT NULL AND erased_at IS NULL;

-- Single-use invitations the board issued. Only the code's SHA-256 is kept: the code is shown once.
CREATE TABLE invitations (
    invitation_key INTEGER PRIMARY KEY,
    invitation_id TEXT NOT NULL UNIQUE,
    code_hash BLOB NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    used_by INTEGER REFERENCES members (member_key)
) STRICT;
