-- The signed consent receipt issued for a consent record; append-only like the records.
CREATE TABLE consent_receipts (
    record_id BIGINT PRIMARY KEY REFERENCES consent_records (record_id),
    receipt TEXT NOT NULL CHECK (length(receipt) > 0)
);

CREATE TRIGGER consent_receipts_append_only BEFORE UPDATE OR DELETE ON consent_receipts
FOR EACH ROW EXECUTE FUNCTION coopfed_refuse('consent_receipts is append-only');
