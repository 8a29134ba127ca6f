-- The members' portal: sign-in accounts, passkeys and server-side sessions.
-- An account belongs to one member; its login is how the member names themself at sign-in.
CREATE TABLE portal_accounts (
    member_id TEXT PRIMARY KEY REFERENCES members (member_id),
    login TEXT NOT NULL UNIQUE CHECK (length(login) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL DEFAULT '',  -- Argon2id; '' for a passkey-only account
    role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'board')),
    created_at INTEGER NOT NULL
) STRICT;

-- WebAuthn credentials (passkeys): the public key and the authenticator's signature counter.
CREATE TABLE portal_passkeys (
    credential_id BLOB PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES portal_accounts (member_id) ON DELETE CASCADE,
    public_key BLOB NOT NULL,
    sign_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

-- A session is kept by the hash of its cookie, never the cookie itself.
CREATE TABLE portal_sessions (
    session_hash TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES portal_accounts (member_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX portal_sessions_by_member ON portal_sessions (member_id);
