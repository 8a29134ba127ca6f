-- Members' ballots on ballot-governed policy data. Secrecy: who voted (ballot_voters) and what
-- was chosen (ballot_box) are two tables that share nothing but the ballot id. The box is keyed
-- by the hash of a random receipt and both are WITHOUT ROWID tables, so neither holds a rowid,
-- a time or any other insertion order that would pair a voter with a choice.
CREATE TABLE ballots (
    ballot_id TEXT PRIMARY KEY CHECK (length(ballot_id) BETWEEN 1 AND 64),
    proposal_json TEXT NOT NULL CHECK (json_valid(proposal_json)),
    proposed_by TEXT NOT NULL,
    created_unix INTEGER NOT NULL,
    opens_unix INTEGER,  -- NULL while a petition gathers signatures
    closes_unix INTEGER CHECK (closes_unix IS NULL OR closes_unix > opens_unix),
    closed_unix INTEGER,
    tally_json TEXT CHECK (tally_json IS NULL OR json_valid(tally_json)),
    tally_digest TEXT,
    CONSTRAINT closed_ballots_have_a_tally CHECK ((closed_unix IS NULL) = (tally_json IS NULL))
) STRICT;

-- A ballot's proposal never changes; a petition opens once; a tally is written once.
CREATE TRIGGER ballots_fixed BEFORE UPDATE ON ballots
WHEN NEW.proposal_json IS NOT OLD.proposal_json OR NEW.proposed_by IS NOT OLD.proposed_by
    OR NEW.created_unix IS NOT OLD.created_unix
    OR (OLD.opens_unix IS NOT NULL AND (NEW.opens_unix IS NOT OLD.opens_unix
        OR NEW.closes_unix IS NOT OLD.closes_unix))
    OR OLD.closed_unix IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a ballot''s proposal, times and tally are written once');
END;

CREATE TRIGGER ballots_no_delete BEFORE DELETE ON ballots
BEGIN
    SELECT RAISE(ABORT, 'ballots are kept');
END;

CREATE TABLE ballot_signatures (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    member_id TEXT NOT NULL,
    PRIMARY KEY (ballot_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE ballot_voters (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    member_id TEXT NOT NULL,
    PRIMARY KEY (ballot_id, member_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE ballot_box (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    receipt_hash TEXT NOT NULL CHECK (length(receipt_hash) = 64),
    choice TEXT NOT NULL CHECK (length(choice) BETWEEN 1 AND 64),
    PRIMARY KEY (ballot_id, receipt_hash)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ballot_box_open_only BEFORE INSERT ON ballot_box
WHEN (SELECT opens_unix IS NULL OR closed_unix IS NOT NULL FROM ballots WHERE ballot_id = NEW.ballot_id)
BEGIN
    SELECT RAISE(ABORT, 'the ballot is not open');
END;

CREATE TRIGGER ballot_box_no_update BEFORE UPDATE ON ballot_box
BEGIN
    SELECT RAISE(ABORT, 'a cast vote is final');
END;

CREATE TRIGGER ballot_box_no_delete BEFORE DELETE ON ballot_box
BEGIN
    SELECT RAISE(ABORT, 'a cast vote is final');
END;

CREATE TRIGGER ballot_voters_no_change BEFORE UPDATE ON ballot_voters
BEGIN
    SELECT RAISE(ABORT, 'the register of who voted is append-only');
END;

CREATE TRIGGER ballot_voters_no_delete BEFORE DELETE ON ballot_voters
BEGIN
    SELECT RAISE(ABORT, 'the register of who voted is append-only');
END;

-- Which bundle revisions the node accepted that carried a passed ballot's change.
CREATE TABLE ballot_applications (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    revision TEXT NOT NULL,
    applied_unix INTEGER NOT NULL,
    PRIMARY KEY (ballot_id, revision)
) STRICT;
