-- The forecast folder's index (see ../0015_forecast_index.sql): model files held per co-op, the
-- training mode, and the latest forecast.
CREATE TABLE forecast_models (
    coop_id TEXT NOT NULL CHECK (length(coop_id) BETWEEN 1 AND 253),
    kind TEXT NOT NULL CHECK (kind IN ('local', 'pooled')),
    version BIGINT NOT NULL CHECK (version >= 1),
    file TEXT NOT NULL,
    saved_at BIGINT NOT NULL,
    PRIMARY KEY (coop_id, kind, version)
);

CREATE TABLE forecast_mode (
    one BIGINT PRIMARY KEY CHECK (one = 1),
    mode TEXT NOT NULL CHECK (mode IN ('pooled', 'federated'))
);

CREATE TABLE forecast_latest (
    one BIGINT PRIMARY KEY CHECK (one = 1),
    sequence BIGINT NOT NULL CHECK (sequence >= 1),
    forecast TEXT NOT NULL CHECK (forecast::json IS NOT NULL)
);
