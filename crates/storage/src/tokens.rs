//! Rotatable credentials (SPEC §12): the tokens the node issued or
//! retired, by the SHA-256 of their secret, and the partners' previous
//! keys during their grace period. Changes commit with the ledger block
//! that records them ([`crate::Store::append_blocks_with`]).

use crate::backend::dispatch;
use crate::{PartnerRecord, Reader, StorageError};

/// One stored token (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Stable identifier (names the token on the ledger).
    pub id: String,
    /// `admin`, `ingest` or `client:NAME`.
    pub credential: String,
    /// Its scopes, comma-separated.
    pub scopes: String,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
    /// When it was issued (RFC 3339).
    pub created_at: String,
    /// End of its grace period after a rotation (Unix µs); `None` while it
    /// is the credential's current token.
    pub expires_at_us: Option<i64>,
}

/// A partner found by one of its keys, and when that key stops working
/// (`None`: its current key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerByKey {
    /// The partner.
    pub partner: PartnerRecord,
    /// End of the key's grace period, when it is the previous key.
    pub key_expires_at_us: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PartnerKeyRow {
    id: String,
    name: String,
    region: String,
    created_at: String,
    disabled_at: Option<String>,
    current: bool,
    previous_key_expires_at_us: Option<i64>,
}

impl Reader {
    /// Every stored token.
    pub async fn api_tokens(&self) -> Result<Vec<TokenRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT id, credential, scopes, token_hash, created_at, expires_at_us FROM api_tokens ORDER BY created_at, id")
                .fetch_all(pool)
                .await
        })?)
    }

    /// The partner whose current key, or previous key still in its grace
    /// period at `now_us`, hashes to `key_hash`.
    pub async fn partner_by_key(
        &self,
        key_hash: &str,
        now_us: i64,
    ) -> Result<Option<PartnerByKey>, StorageError> {
        let row: Option<PartnerKeyRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT id, name, region, created_at, disabled_at, key_hash = $1 AS current, previous_key_expires_at_us \
                 FROM partners WHERE key_hash = $1 OR (previous_key_hash = $1 AND previous_key_expires_at_us > $2)",
            )
            .bind(key_hash)
            .bind(now_us)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| PartnerByKey {
            key_expires_at_us: if r.current {
                None
            } else {
                r.previous_key_expires_at_us
            },
            partner: PartnerRecord {
                id: r.id,
                name: r.name,
                region: r.region,
                created_at: r.created_at,
                disabled_at: r.disabled_at,
            },
        }))
    }
}
