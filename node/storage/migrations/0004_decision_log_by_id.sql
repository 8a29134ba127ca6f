-- Find a decision-log entry by its decision id (`coopfed policy explain`) without a scan.
-- Not unique: the log keeps whatever was appended, and a repeated id is for verification to report.
CREATE INDEX decision_log_by_decision_id ON decision_log (decision_id, position);
