-- The local energy ledger: settlement runs, balanced transactions of integer pence and Wh, and
-- the accounts they post to. History is append-only: a correction is a new transaction that
-- names the one it corrects. Erasing a member detaches their accounts (they become anonymous),
-- so their postings stay and every period still balances.

CREATE TABLE ledger_accounts (
    account_key INTEGER PRIMARY KEY,
    member_key INTEGER REFERENCES members (member_key),  -- NULL: the co-op's, or an erased member's
    kind TEXT NOT NULL CHECK (kind IN (
        'local_bought', 'local_credit', 'grid_import', 'grid_export',
        'local_sales', 'local_payouts', 'grid_purchases', 'grid_sales'
    )),
    anonymous INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1)),
    -- the co-op's accounts have no member; a member's has one until erasure makes it anonymous
    CONSTRAINT accounts_have_their_owner CHECK (CASE
        WHEN kind IN ('local_sales', 'local_payouts', 'grid_purchases', 'grid_sales')
        THEN member_key IS NULL AND anonymous = 0
        ELSE (member_key IS NULL) = (anonymous = 1) END)
) STRICT;

CREATE UNIQUE INDEX ledger_accounts_by_member ON ledger_accounts (member_key, kind)
    WHERE member_key IS NOT NULL;
CREATE UNIQUE INDEX ledger_accounts_of_the_coop ON ledger_accounts (kind)
    WHERE member_key IS NULL AND anonymous = 0;

-- One run of `settle`: the span it covered, the policy decision (and revision) of its terms.
CREATE TABLE ledger_runs (
    run_key INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL CHECK (period_end > period_start),
    decision_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    terms_json TEXT NOT NULL CHECK (json_valid(terms_json))
) STRICT;

CREATE TABLE ledger_transactions (
    txn_key INTEGER PRIMARY KEY,
    run_key INTEGER NOT NULL REFERENCES ledger_runs (run_key),
    period_start INTEGER NOT NULL CHECK (period_start >= 0 AND period_start % 1800 = 0),
    status TEXT NOT NULL CHECK (status IN ('provisional', 'final')),
    corrects INTEGER REFERENCES ledger_transactions (txn_key),
    missing INTEGER NOT NULL CHECK (missing >= 0)  -- members whose readings were missing
) STRICT;

CREATE INDEX ledger_transactions_by_period ON ledger_transactions (period_start, txn_key);

-- pence > 0 is a debit, < 0 a credit; the postings of every transaction sum to 0.
CREATE TABLE ledger_postings (
    txn_key INTEGER NOT NULL REFERENCES ledger_transactions (txn_key),
    account_key INTEGER NOT NULL REFERENCES ledger_accounts (account_key),
    pence INTEGER NOT NULL,
    wh INTEGER NOT NULL,
    PRIMARY KEY (txn_key, account_key)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
BEGIN
    SELECT RAISE(ABORT, 'ledger_transactions is append-only: post a correction');
END;

CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
BEGIN
    SELECT RAISE(ABORT, 'ledger_transactions is append-only: post a correction');
END;

CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
BEGIN
    SELECT RAISE(ABORT, 'ledger_postings is append-only: post a correction');
END;

CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
BEGIN
    SELECT RAISE(ABORT, 'ledger_postings is append-only: post a correction');
END;

CREATE TRIGGER ledger_runs_no_change BEFORE UPDATE ON ledger_runs
BEGIN
    SELECT RAISE(ABORT, 'ledger_runs is append-only');
END;

-- Erasure, in the erasing transaction: the member's accounts become anonymous.
CREATE TRIGGER ledger_accounts_anonymised_on_erasure AFTER UPDATE OF erased_at ON members
    WHEN NEW.erased_at IS NOT NULL AND OLD.erased_at IS NULL
BEGIN
    UPDATE ledger_accounts SET member_key = NULL, anonymous = 1 WHERE member_key = NEW.member_key;
END;
