-- Accepted telemetry runs with their valuations (see the SQLite migrations
-- for the same schema; keep the two in step).
CREATE TABLE runs (
    seq                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id                     TEXT             NOT NULL UNIQUE,
    region                     TEXT             NOT NULL,
    data_class                 TEXT             NOT NULL CHECK (data_class IN ('public', 'personal', 'itar')),
    eta_ent                    DOUBLE PRECISION NOT NULL,
    coherence_variance         DOUBLE PRECISION NOT NULL,
    runtime_hours              DOUBLE PRECISION NOT NULL,
    eph_delivered              DOUBLE PRECISION NOT NULL,
    efficiency_multiplier      DOUBLE PRECISION NOT NULL,
    coherence_penalty          DOUBLE PRECISION NOT NULL,
    runtime_factor             DOUBLE PRECISION NOT NULL,
    phi_qevf                   DOUBLE PRECISION NOT NULL,
    price_multiplier           DOUBLE PRECISION NOT NULL,
    market_value               DOUBLE PRECISION NOT NULL,
    eph_price                  DOUBLE PRECISION NOT NULL,
    coherence_within_threshold BOOLEAN          NOT NULL,
    accepted_at                TEXT             NOT NULL,
    block_index                BIGINT           NOT NULL
);
CREATE INDEX runs_region_seq ON runs (region, seq);
CREATE INDEX runs_phi ON runs (phi_qevf);

CREATE TABLE blocks (
    idx            BIGINT PRIMARY KEY,
    timestamp      TEXT             NOT NULL,
    kind           TEXT             NOT NULL,
    phi_qevf       DOUBLE PRECISION,
    eta_ent        DOUBLE PRECISION,
    region         TEXT,
    run_id         TEXT,
    attestations   TEXT             NOT NULL,
    payload        TEXT,
    previous_hash  TEXT             NOT NULL,
    hash           TEXT             NOT NULL
);
CREATE INDEX blocks_kind_idx ON blocks (kind, idx);

-- node = (level << 56) | idx (see the SQLite migration).
CREATE TABLE merkle_nodes (
    node   BIGINT PRIMARY KEY,
    hash   BYTEA  NOT NULL
);

CREATE TABLE checkpoints (
    tree_size   BIGINT PRIMARY KEY,
    root_hash   BYTEA  NOT NULL,
    note        TEXT   NOT NULL,
    signed_at   TEXT   NOT NULL
);
