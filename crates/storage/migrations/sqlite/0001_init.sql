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
    accepted_at                TEXT    NOT NULL,
    block_index                INTEGER NOT NULL
);

CREATE INDEX runs_region_seq ON runs (region, seq);
CREATE INDEX runs_phi ON runs (phi_qevf);

-- The verification ledger (SPEC §4). Blocks are stored field by field (no
-- JSON copy), so changing any stored field changes the recomputed hash.
CREATE TABLE blocks (
    idx            INTEGER PRIMARY KEY,
    timestamp      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    phi_qevf       REAL,
    eta_ent        REAL,
    region         TEXT,
    run_id         TEXT,
    attestations   TEXT    NOT NULL,
    payload        TEXT,
    previous_hash  TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE INDEX blocks_kind_idx ON blocks (kind, idx);

-- Hashes of every perfect Merkle subtree. node = (level << 56) | idx, where
-- (level, idx) covers leaves [idx << level, (idx + 1) << level); one integer
-- key makes a proof's lookups a single rowid IN-list and a tile a key range.
CREATE TABLE merkle_nodes (
    node   INTEGER PRIMARY KEY,
    hash   BLOB    NOT NULL
);

-- Every checkpoint the node signed, newest = largest tree_size.
CREATE TABLE checkpoints (
    tree_size   INTEGER PRIMARY KEY,
    root_hash   BLOB    NOT NULL,
    note        TEXT    NOT NULL,
    signed_at   TEXT    NOT NULL
);
