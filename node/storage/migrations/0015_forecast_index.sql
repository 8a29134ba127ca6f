-- The forecast folder's index, once its file names and JSON files: which signed model files are
-- held for each co-op (the artifacts stay files in the forecast folder), the training mode
-- forecasts use, and the latest forecast with its windows.
CREATE TABLE forecast_models (
    coop_id TEXT NOT NULL CHECK (length(coop_id) BETWEEN 1 AND 253),
    kind TEXT NOT NULL CHECK (kind IN ('local', 'pooled')),
    version INTEGER NOT NULL CHECK (version >= 1),
    file TEXT NOT NULL,  -- relative to the forecast folder
    saved_at INTEGER NOT NULL,
    PRIMARY KEY (coop_id, kind, version)
) STRICT;

CREATE TABLE forecast_mode (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    mode TEXT NOT NULL CHECK (mode IN ('pooled', 'federated'))
) STRICT;

-- One row: the latest forecast (JSON) and its sequence, one more than the one it replaced.
CREATE TABLE forecast_latest (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    forecast TEXT NOT NULL CHECK (json_valid(forecast))
) STRICT;
