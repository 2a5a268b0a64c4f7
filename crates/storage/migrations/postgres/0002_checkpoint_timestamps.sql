-- RFC 3161 time-stamp tokens over each checkpoint's body (see the SQLite migration).
ALTER TABLE checkpoints ADD COLUMN tsa_token BYTEA;
ALTER TABLE checkpoints ADD COLUMN tsa_source TEXT;
ALTER TABLE checkpoints ADD COLUMN tsa_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN tsa_error TEXT;
CREATE INDEX checkpoints_pending_tsa ON checkpoints (tree_size) WHERE tsa_token IS NULL;
