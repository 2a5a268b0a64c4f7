//! Issuing and rotating credentials without downtime (SPEC §12): a client
//! token with its scopes, a new secret for the admin, ingest or a client
//! token, a new key for a partner. The new secret is returned once; the old
//! one keeps working for a grace period, then stops; only hashes are
//! stored, and each change is a `config` block (which credential, when, by
//! whom and why, never a secret) written in the same transaction.

use crate::ledger::event_draft;
use crate::tokens::{secret_hash, Principal, Scopes};
use crate::Node;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::block::BlockKind;
use qunimbus_storage::{StateChange, StorageError, TokenRecord};
use rand::RngCore;
use serde_json::json;
use thiserror::Error;

/// The default grace period of a rotation: one hour.
pub const DEFAULT_GRACE_SECS: u64 = 3600;

/// The longest grace period: 30 days.
pub const MAX_GRACE_SECS: u64 = 30 * 86_400;

/// Why a credential change was refused (nothing changed).
#[derive(Debug, Error)]
pub enum RotationError {
    /// No such credential.
    #[error("no credential {0:?}; rotate admin, ingest or client:NAME (see GET /v1/credentials)")]
    Unknown(String),
    /// A client name already in use.
    #[error("a client token named {0:?} exists; rotate it instead")]
    Taken(String),
    /// A bad client name, scope list, grace or reason.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The partner does not exist or is disabled.
    #[error("no enabled partner {0:?}")]
    NoPartner(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A new secret, shown this once.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Issued {
    /// The credential (`admin`, `ingest`, `client:NAME`, `partner:ID`).
    pub credential: String,
    /// The new secret; only its SHA-256 is stored.
    pub secret: String,
    /// The new token's id (as the ledger names it).
    pub token_id: String,
    /// Its scopes.
    pub scopes: Vec<&'static str>,
    /// When the previous secret stops working (RFC 3339), after a rotation.
    pub previous_valid_until: Option<String>,
    /// The `config` block recording the change.
    pub block_index: u64,
}

/// A stored credential as the list shows it (no secret, no hash).
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialItem {
    /// The credential.
    pub credential: String,
    /// The token's id.
    pub token_id: String,
    /// Its scopes.
    pub scopes: String,
    /// When it was issued (RFC 3339).
    pub created_at: String,
    /// When it stops (stopped) working, after a rotation (RFC 3339).
    pub valid_until: Option<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    qunimbus_ledger::hex::encode(&buf)
}

fn check_reason(reason: &str) -> Result<&str, RotationError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(RotationError::Invalid {
            field: "reason",
            message: "a reason of 1 to 1000 characters is required: it goes on the ledger".into(),
        });
    }
    Ok(reason)
}

fn check_grace(grace_secs: u64) -> Result<i64, RotationError> {
    if grace_secs > MAX_GRACE_SECS {
        return Err(RotationError::Invalid {
            field: "grace_secs",
            message: format!("must be at most {MAX_GRACE_SECS} (30 days), got {grace_secs}"),
        });
    }
    Ok(i64::try_from(grace_secs).unwrap_or(0) * 1_000_000)
}

fn time_of(us: i64) -> String {
    rfc3339_micros(chrono::DateTime::from_timestamp_micros(us).unwrap_or_default())
}

impl Node {
    /// Every stored token, oldest first.
    pub async fn credentials_list(&self) -> Result<Vec<CredentialItem>, StorageError> {
        Ok(self
            .store
            .reader()
            .api_tokens()
            .await?
            .into_iter()
            .map(|t| CredentialItem {
                credential: t.credential,
                token_id: t.id,
                scopes: t.scopes,
                created_at: t.created_at,
                valid_until: t.expires_at_us.map(time_of),
            })
            .collect())
    }

    /// Issues a client token named `name` with `scopes`.
    pub async fn issue_client_token(
        &self,
        name: &str,
        scopes: &[String],
        reason: &str,
        by: &Principal,
    ) -> Result<Issued, RotationError> {
        let reason = check_reason(reason)?;
        let valid = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(RotationError::Invalid {
                field: "name",
                message: "1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'".into(),
            });
        }
        let scopes = Scopes::parse(scopes.iter().map(String::as_str)).map_err(|message| {
            RotationError::Invalid {
                field: "scopes",
                message,
            }
        })?;
        let credential = format!("client:{name}");
        if self.credentials.book.scopes_of(&credential).is_some() {
            return Err(RotationError::Taken(name.to_string()));
        }
        let change = json!({"change": "credential issued", "scopes": scopes.names()});
        self.issue(&credential, scopes, None, change, reason, by)
            .await
    }

    /// Rotates `credential` (`admin`, `ingest` or `client:NAME`): a new
    /// secret now, the old one valid for `grace_secs` more.
    pub async fn rotate_credential(
        &self,
        credential: &str,
        grace_secs: u64,
        reason: &str,
        by: &Principal,
    ) -> Result<Issued, RotationError> {
        let reason = check_reason(reason)?;
        let grace = check_grace(grace_secs)?;
        let scopes = match (credential, self.credentials.book.scopes_of(credential)) {
            (_, Some(scopes)) => scopes,
            ("admin", None) => Scopes::ALL,
            ("ingest", None) => Scopes::INGEST_TOKEN,
            _ => {
                return Err(RotationError::Unknown(
                    credential.chars().take(80).collect(),
                ))
            }
        };
        let until = now_micros().timestamp_micros() + grace;
        let change = json!({"change": "credential rotated", "grace_secs": grace_secs});
        self.issue(credential, scopes, Some(until), change, reason, by)
            .await
    }

    /// Stores a new token for `credential` (retiring the current ones at
    /// `retire_at_us`) with its block; the book follows.
    async fn issue(
        &self,
        credential: &str,
        scopes: Scopes,
        retire_at_us: Option<i64>,
        mut payload: serde_json::Value,
        reason: &str,
        by: &Principal,
    ) -> Result<Issued, RotationError> {
        let secret = random_hex(32);
        let now = rfc3339_micros(now_micros());
        let token = TokenRecord {
            id: format!("tok_{}", random_hex(8)),
            credential: credential.to_string(),
            scopes: scopes.text(),
            token_hash: secret_hash(&secret),
            created_at: now.clone(),
            expires_at_us: None,
        };
        let mut records = vec![token.clone()];
        let mut changes = vec![StateChange::IssueToken(token.clone())];
        if let Some(until) = retire_at_us {
            // The token the node started with is known by its hash from now
            // on, so that it stops working with the rest.
            let started = self.credentials.started_with(credential);
            if let Some(started) =
                started.filter(|_| self.credentials.book.scopes_of(credential).is_none())
            {
                let retired = TokenRecord {
                    id: format!("tok_{}", random_hex(8)),
                    token_hash: secret_hash(started),
                    expires_at_us: Some(until),
                    ..token.clone()
                };
                changes.push(StateChange::IssueToken(retired.clone()));
                records.push(retired);
            }
            changes.push(StateChange::ExpireTokens {
                credential: credential.to_string(),
                keep: token.id.clone(),
                expires_at_us: until,
            });
            payload["previous_valid_until"] = json!(time_of(until));
        }
        payload["credential"] = json!(credential);
        payload["token_id"] = json!(token.id);
        payload["by"] = json!(by.credential);
        payload["reason"] = json!(reason);
        let draft = event_draft(BlockKind::Config, &self.frameworks, payload);
        let blocks = self.store.append_blocks_with(vec![draft], changes).await?;
        self.credentials.book.add(&records);
        if let Some(until) = retire_at_us {
            self.credentials
                .book
                .expire(credential, &token.token_hash, until);
        }
        self.credentials.remember(credential, &secret);
        tracing::info!(%credential, token = %token.id, by = %by.credential, "credential issued");
        Ok(Issued {
            credential: credential.to_string(),
            secret,
            token_id: token.id,
            scopes: scopes.names(),
            previous_valid_until: retire_at_us.map(time_of),
            block_index: blocks.first().map_or(0, |b| b.index),
        })
    }

    /// Gives enabled partner `id` a new key; the old one keeps working for
    /// `grace_secs` more (connections made with it end then).
    pub async fn rotate_partner_key(
        &self,
        id: &str,
        grace_secs: u64,
        reason: &str,
        by: &Principal,
    ) -> Result<Issued, RotationError> {
        let reason = check_reason(reason)?;
        let grace = check_grace(grace_secs)?;
        let partner = self
            .store
            .reader()
            .partner(id)
            .await?
            .filter(|p| p.disabled_at.is_none())
            .ok_or_else(|| RotationError::NoPartner(id.chars().take(80).collect()))?;
        let key = crate::partners::new_api_key();
        let until = now_micros().timestamp_micros() + grace;
        let credential = format!("partner:{}", partner.id);
        let draft = event_draft(
            BlockKind::Config,
            &self.frameworks,
            json!({
                "change": "credential rotated",
                "credential": credential,
                "partner": partner.name,
                "grace_secs": grace_secs,
                "previous_valid_until": time_of(until),
                "by": by.credential,
                "reason": reason,
            }),
        );
        let new_hash = secret_hash(&key);
        let change = StateChange::RotatePartnerKey {
            id: partner.id.clone(),
            key_hash: new_hash.clone(),
            previous_expires_at_us: until,
        };
        let blocks = self
            .store
            .append_blocks_with(vec![draft], vec![change])
            .await?;
        self.market.key_rotated(&partner.id, &new_hash, until);
        tracing::info!(partner = %partner.name, by = %by.credential, "partner key rotated");
        Ok(Issued {
            credential,
            secret: key,
            token_id: partner.id,
            scopes: Vec::new(),
            previous_valid_until: Some(time_of(until)),
            block_index: blocks.first().map_or(0, |b| b.index),
        })
    }
}
