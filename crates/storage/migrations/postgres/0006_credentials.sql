-- Rotatable credentials (SPEC §12). Each token the node issued or retired:
-- which credential it is (`admin`, `ingest`, `client:NAME`), its scopes and
-- the SHA-256 of its secret (never the secret); `expires_at_us` is the end
-- of a rotated token's grace period (NULL: the credential's current token).
CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY,
    credential     TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    created_at     TEXT NOT NULL,
    expires_at_us  BIGINT
);
CREATE INDEX api_tokens_credential ON api_tokens (credential);

-- A partner's previous key keeps working until its grace period ends.
ALTER TABLE partners ADD COLUMN previous_key_hash TEXT;
ALTER TABLE partners ADD COLUMN previous_key_expires_at_us BIGINT;
