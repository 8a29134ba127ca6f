-- Find a decision-log entry by its decision id without a scan (see ../0004_decision_log_by_id.sql).
CREATE INDEX decision_log_by_decision_id ON decision_log (decision_id, position);
