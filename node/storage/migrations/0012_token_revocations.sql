-- Revoked credentials (member, organisation and board tokens): one token by its jti, or every
-- token of a subject issued before a moment ("sign out everywhere"). Append-only: a revocation
-- is never withdrawn; the node holds the whole list in memory and checks it on every call.
CREATE TABLE token_revocations (
    revocation_key INTEGER PRIMARY KEY,
    jti TEXT CHECK (jti IS NULL OR length(jti) BETWEEN 1 AND 128),
    subject TEXT CHECK (subject IS NULL OR length(subject) BETWEEN 1 AND 128),
    issued_before_unix INTEGER,
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    revoked_by TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    CHECK ((jti IS NULL) != (subject IS NULL)),
    CHECK ((subject IS NULL) = (issued_before_unix IS NULL))
) STRICT;

CREATE TRIGGER token_revocations_no_update BEFORE UPDATE ON token_revocations
BEGIN
    SELECT RAISE(ABORT, 'token_revocations is append-only');
END;

CREATE TRIGGER token_revocations_no_delete BEFORE DELETE ON token_revocations
BEGIN
    SELECT RAISE(ABORT, 'token_revocations is append-only');
END;
