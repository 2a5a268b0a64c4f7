-- Trust Kernel (SPEC §6); see the SQLite migration.

-- Personal-class runs: the random salt of the run_ref on their ledger block
-- (SHA-256 of salt ‖ run_id). Kept off the ledger so an erasure can drop it.
ALTER TABLE runs ADD COLUMN erasure_salt TEXT;

-- Regions: operator-set status and trust override; tracked_since (Unix µs)
-- starts the observation window for a region without earlier events.
CREATE TABLE regions (
    name             TEXT PRIMARY KEY,
    status           TEXT    NOT NULL CHECK (status IN ('active', 'degraded', 'down', 'draining')),
    tracked_since    BIGINT  NOT NULL,
    trust_override   DOUBLE PRECISION,
    override_reason  TEXT,
    updated_at       TEXT    NOT NULL
);

-- Failure/recovery events (each also a `health` block on the ledger).
CREATE TABLE region_events (
    id           BIGSERIAL PRIMARY KEY,
    region       TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('failure', 'recovery')),
    at_us        BIGINT  NOT NULL,
    block_index  BIGINT  NOT NULL
);
CREATE INDEX region_events_region ON region_events (region, at_us);

-- Rollouts, each stored as its JSON state (phases, phase, history…).
CREATE TABLE rollouts (
    id          TEXT PRIMARY KEY,
    created_at  TEXT    NOT NULL,
    active      BIGINT  NOT NULL,
    state       TEXT    NOT NULL
);

-- Compliance evidence counts stored restricted-class runs per class and
-- region; partial, so public runs (most of them) cost no index insert.
CREATE INDEX runs_restricted_class_region ON runs (data_class, region) WHERE data_class <> 'public';
