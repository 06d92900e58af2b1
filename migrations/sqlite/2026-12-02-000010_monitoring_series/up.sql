-- Where each monitoring series stands: one per threshold rule, model
-- version, environment and segment. Written only in the append transaction
-- of the metric report that moves it (never by a later pass), so that a
-- breach is recorded exactly once; the breaches and recoveries themselves
-- are on the record as monitoring.threshold_* events.
CREATE TABLE monitoring_series (
    key TEXT PRIMARY KEY NOT NULL,
    rule TEXT NOT NULL,
    model TEXT NOT NULL,
    environment TEXT NOT NULL,
    segment TEXT NOT NULL,
    level TEXT NOT NULL,
    warning_run BIGINT NOT NULL,
    critical_run BIGINT NOT NULL,
    ok_run BIGINT NOT NULL,
    last_window_end TEXT,
    open_seq BIGINT,
    recent_seqs TEXT NOT NULL,
    rules_seq BIGINT NOT NULL
);
CREATE INDEX monitoring_series_model ON monitoring_series (model, environment);
