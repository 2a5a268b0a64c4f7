-- Accepted telemetry runs with their valuations. One row per run_id
-- (the idempotency key); seq orders rows by acceptance.
CREATE TABLE runs (
    seq                        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id                     TEXT    NOT NULL UNIQUE,
    region                     TEXT    NOT NULL,
    data_class                 TEXT    NOT NULL CHECK (data_class IN ('public', 'personal', 'itar')),
    eta_ent                    REAL    NOT NULL,
    coherence_variance         REAL    NOT NULL,
    runtime_hours              REAL    NOT NULL,
    eph_delivered              REAL    NOT NULL,
    efficiency_multiplier      REAL    NOT NULL,
    coherence_penalty          REAL    NOT NULL,
    runtime_factor             REAL    NOT NULL,
    phi_qevf                   REAL    NOT NULL,
    price_multiplier           REAL    NOT NULL,
    market_value               REAL    NOT NULL,
    eph_price                  REAL    NOT NULL,
    coherence_within_threshold INTEGER NOT NULL,
    accepted_at                TEXT    NOT NULL
);

CREATE INDEX runs_region_seq ON runs (region, seq);
CREATE INDEX runs_phi ON runs (phi_qevf);
