-- The members' portal: sign-in accounts, passkeys and server-side sessions (see ../0008_portal.sql).
CREATE TABLE portal_accounts (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    login TEXT NOT NULL UNIQUE CHECK (length(login) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'board')),
    created_at BIGINT NOT NULL
);

CREATE TABLE portal_passkeys (
    credential_id BYTEA PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES portal_accounts (member_id) ON DELETE CASCADE,
    public_key BYTEA NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE portal_sessions (
    session_hash TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES portal_accounts (member_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX portal_sessions_by_member ON portal_sessions (member_id);
