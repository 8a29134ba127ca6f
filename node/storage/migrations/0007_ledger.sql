-- The local energy ledger: settlement runs, balanced transactions of integer pence and Wh, and
-- the accounts they post to. History is append-only: a correction is a new transaction that
-- names the one it corrects. Erasing a member detaches their accounts (they become anonymous),
-- so their postings stay and every period still balances.

-- A member's account holder: their four accounts are the columns of ledger_lines. Erasure
-- detaches it from the member (anonymous).
CREATE TABLE ledger_accounts (
    account_key INTEGER PRIMARY KEY,
    member_key INTEGER UNIQUE REFERENCES members (member_key),  -- NULL once erased
    anonymous INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1)),
    CONSTRAINT accounts_have_their_owner CHECK ((member_key IS NULL) = (anonymous = 1))
) STRICT;

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

-- One period's settlement or correction. The co-op's side of it is on the row itself: its four
-- accounts (local energy charged to buyers, paid out to generators; bought from and sold to the
-- grid), pence > 0 a debit, < 0 a credit, with the Wh each stands for.
CREATE TABLE ledger_transactions (
    txn_key INTEGER PRIMARY KEY,
    run_key INTEGER NOT NULL REFERENCES ledger_runs (run_key),
    period_start INTEGER NOT NULL CHECK (period_start >= 0 AND period_start % 1800 = 0),
    status TEXT NOT NULL CHECK (status IN ('provisional', 'final')),
    corrects INTEGER REFERENCES ledger_transactions (txn_key),
    missing INTEGER NOT NULL CHECK (missing >= 0),  -- members whose readings were missing
    local_sales INTEGER NOT NULL,
    local_payouts INTEGER NOT NULL,
    grid_purchases INTEGER NOT NULL,
    grid_sales INTEGER NOT NULL,
    local_sales_wh INTEGER NOT NULL,
    local_payouts_wh INTEGER NOT NULL,
    grid_purchases_wh INTEGER NOT NULL,
    grid_sales_wh INTEGER NOT NULL
) STRICT;

CREATE INDEX ledger_transactions_by_period ON ledger_transactions (period_start, txn_key);

-- A member's side of a transaction: one row per member it touches, their four accounts as
-- columns (pence > 0 a debit, < 0 a credit, and the Wh). A transaction balances when its lines
-- and the co-op's side sum to 0 pence; the store checks it before the run commits. No foreign
-- keys per row: a month is over a million lines, and the store writes both keys in the same
-- transaction that creates them.
CREATE TABLE ledger_lines (
    txn_key INTEGER NOT NULL,
    account_key INTEGER NOT NULL,
    local_bought INTEGER NOT NULL,
    local_credit INTEGER NOT NULL,
    grid_import INTEGER NOT NULL,
    grid_export INTEGER NOT NULL,
    local_bought_wh INTEGER NOT NULL,
    local_credit_wh INTEGER NOT NULL,
    grid_import_wh INTEGER NOT NULL,
    grid_export_wh INTEGER NOT NULL,
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

CREATE TRIGGER ledger_lines_no_update BEFORE UPDATE ON ledger_lines
BEGIN
    SELECT RAISE(ABORT, 'ledger_lines is append-only: post a correction');
END;

CREATE TRIGGER ledger_lines_no_delete BEFORE DELETE ON ledger_lines
BEGIN
    SELECT RAISE(ABORT, 'ledger_lines is append-only: post a correction');
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
