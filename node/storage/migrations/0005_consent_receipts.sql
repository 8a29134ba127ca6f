-- The signed consent receipt issued for a consent record, kept so the member can fetch it again.
-- Written in the same transaction as its record; append-only like the records.
CREATE TABLE consent_receipts (
    record_id INTEGER PRIMARY KEY REFERENCES consent_records (record_id),
    receipt TEXT NOT NULL CHECK (length(receipt) > 0)
) STRICT;

CREATE TRIGGER consent_receipts_no_update BEFORE UPDATE ON consent_receipts
BEGIN
    SELECT RAISE(ABORT, 'consent_receipts is append-only');
END;

CREATE TRIGGER consent_receipts_no_delete BEFORE DELETE ON consent_receipts
BEGIN
    SELECT RAISE(ABORT, 'consent_receipts is append-only');
END;
