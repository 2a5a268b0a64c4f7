-- Evidence behind the Trust Kernel's figures (issue 17); see the SQLite migration.

-- Who said a region failed or recovered: `operator` (an API call, a status
-- set by PUT) or `detected` (the node saw its telemetry stop or resume).
ALTER TABLE region_events ADD COLUMN source TEXT NOT NULL DEFAULT 'operator'
    CHECK (source IN ('operator', 'detected'));
-- When the node recorded it (Unix µs; for a detected event, the detection).
ALTER TABLE region_events ADD COLUMN recorded_at_us BIGINT;

-- The SHA-256 of the compliance policy that accepted each run (NULL: the
-- run was stored before policies were recorded per run).
ALTER TABLE runs ADD COLUMN policy_sha256 TEXT;
-- Compliance evidence counts stored restricted-class runs per class, region
-- and accepting policy, with the earliest acceptance: this partial index
-- serves it (public runs, most of them, cost no index insert).
DROP INDEX runs_restricted_class_region;
CREATE INDEX runs_restricted_policy ON runs (data_class, region, policy_sha256, accepted_at) WHERE data_class <> 'public';

-- Every compliance policy that has been in force, by digest, so a run is
-- judged by the policy that accepted it.
CREATE TABLE policies (
    sha256       TEXT PRIMARY KEY,
    text         TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
