-- Members' ballots (see ../0016_ballots.sql). Who voted (ballot_voters) and what was chosen
-- (ballot_box) share nothing but the ballot id. A heap table keeps rows where they arrived
-- (ctid) with the transaction that wrote them (xmin), and one transaction writes a voter's two
-- rows: when a ballot closes the store rewrites both tables, every row in one transaction and in
-- key order (PostgresStore.forget_write_order), so neither pairs a voter with a choice any more.
-- Rewriting a row unchanged is therefore allowed; changing one is not.
CREATE TABLE ballots (
    ballot_id TEXT PRIMARY KEY CHECK (length(ballot_id) BETWEEN 1 AND 64),
    proposal_json TEXT NOT NULL CHECK (proposal_json::json IS NOT NULL),
    proposed_by TEXT NOT NULL,
    created_unix BIGINT NOT NULL,
    opens_unix BIGINT,  -- NULL while a petition gathers signatures
    closes_unix BIGINT CHECK (closes_unix IS NULL OR closes_unix > opens_unix),
    closed_unix BIGINT,
    tally_json TEXT CHECK (tally_json IS NULL OR tally_json::json IS NOT NULL),
    tally_digest TEXT,
    CONSTRAINT closed_ballots_have_a_tally CHECK ((closed_unix IS NULL) = (tally_json IS NULL))
);

CREATE TRIGGER ballots_fixed BEFORE UPDATE ON ballots FOR EACH ROW
WHEN (NEW.proposal_json IS DISTINCT FROM OLD.proposal_json OR NEW.proposed_by IS DISTINCT FROM OLD.proposed_by
    OR NEW.created_unix IS DISTINCT FROM OLD.created_unix
    OR (OLD.opens_unix IS NOT NULL AND (NEW.opens_unix IS DISTINCT FROM OLD.opens_unix
        OR NEW.closes_unix IS DISTINCT FROM OLD.closes_unix))
    OR OLD.closed_unix IS NOT NULL)
EXECUTE FUNCTION coopfed_refuse('a ballot''s proposal, times and tally are written once');

CREATE TRIGGER ballots_no_delete BEFORE DELETE ON ballots
FOR EACH ROW EXECUTE FUNCTION coopfed_refuse('ballots are kept');

CREATE TABLE ballot_signatures (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    member_id TEXT NOT NULL,
    PRIMARY KEY (ballot_id, member_id)
);

CREATE TABLE ballot_voters (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    member_id TEXT NOT NULL,
    PRIMARY KEY (ballot_id, member_id)
);

CREATE TABLE ballot_box (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    receipt_hash TEXT NOT NULL CHECK (length(receipt_hash) = 64),
    choice TEXT NOT NULL CHECK (length(choice) BETWEEN 1 AND 64),
    PRIMARY KEY (ballot_id, receipt_hash)
);

-- A trigger's WHEN cannot read another table: the check is a function.
CREATE FUNCTION coopfed_ballot_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ballots WHERE ballot_id = NEW.ballot_id
               AND (opens_unix IS NULL OR closed_unix IS NOT NULL)) THEN
        RAISE EXCEPTION 'the ballot is not open' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ballot_box_open_only BEFORE INSERT ON ballot_box
FOR EACH ROW EXECUTE FUNCTION coopfed_ballot_open();

CREATE TRIGGER ballot_box_no_update BEFORE UPDATE ON ballot_box FOR EACH ROW
WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION coopfed_refuse('a cast vote is final');

CREATE TRIGGER ballot_box_no_delete BEFORE DELETE ON ballot_box
FOR EACH ROW EXECUTE FUNCTION coopfed_refuse('a cast vote is final');

CREATE TRIGGER ballot_voters_no_change BEFORE UPDATE ON ballot_voters FOR EACH ROW
WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION coopfed_refuse('the register of who voted is append-only');

CREATE TRIGGER ballot_voters_no_delete BEFORE DELETE ON ballot_voters
FOR EACH ROW EXECUTE FUNCTION coopfed_refuse('the register of who voted is append-only');

CREATE TABLE ballot_applications (
    ballot_id TEXT NOT NULL REFERENCES ballots (ballot_id),
    revision TEXT NOT NULL,
    applied_unix BIGINT NOT NULL,
    PRIMARY KEY (ballot_id, revision)
);
