-- QMP market feed (SPEC §5). feed_seq numbers accepted runs gap-free from 1
-- in acceptance order: the seq partners see and replay from.
ALTER TABLE runs ADD COLUMN feed_seq INTEGER;
UPDATE runs SET feed_seq = (SELECT COUNT(*) FROM runs AS earlier WHERE earlier.seq <= runs.seq);
CREATE UNIQUE INDEX runs_feed_seq ON runs (feed_seq);

-- Liquidity partners. Only a SHA-256 hash of each API key is kept.
CREATE TABLE partners (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    region       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    disabled_at  TEXT
);

-- Small persistent node settings (e.g. whether the market feed is active).
CREATE TABLE node_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
