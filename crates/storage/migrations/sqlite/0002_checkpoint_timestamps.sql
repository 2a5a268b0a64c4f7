-- RFC 3161 time-stamp tokens over each checkpoint's body (SPEC §4). A
-- checkpoint without a token is pending; attempts and the last error say why.
ALTER TABLE checkpoints ADD COLUMN tsa_token BLOB;
ALTER TABLE checkpoints ADD COLUMN tsa_source TEXT;
ALTER TABLE checkpoints ADD COLUMN tsa_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN tsa_error TEXT;
CREATE INDEX checkpoints_pending_tsa ON checkpoints (tree_size) WHERE tsa_token IS NULL;
