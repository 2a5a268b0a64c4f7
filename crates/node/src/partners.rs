//! Liquidity partners (SPEC §5, §9): registration with an API key shown
//! once and stored only as its SHA-256, authentication by key, disabling
//! (which ends the partner's sessions), and the market feed's activation.

use crate::market::ACTIVE_KEY;
use crate::tokens::secret_hash;
use crate::Node;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_market::PartnerRequest;
use qunimbus_storage::{PartnerByKey, PartnerRecord, StorageError};
use rand::RngCore;

/// A newly registered partner and its API key (shown this once).
#[derive(Debug, Clone)]
pub struct Registered {
    /// The stored partner.
    pub partner: PartnerRecord,
    /// Its API key; only its hash is stored.
    pub api_key: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    qunimbus_ledger::hex::encode(&buf)
}

/// A fresh partner API key (256 bits from the OS generator).
pub(crate) fn new_api_key() -> String {
    format!("qmp_{}", random_hex(32))
}

impl Node {
    /// Registers a partner with a fresh key; a taken name is
    /// [`StorageError::Conflict`].
    pub async fn register_partner(
        &self,
        request: PartnerRequest,
    ) -> Result<Registered, StorageError> {
        let partner = PartnerRecord {
            id: format!("p_{}", random_hex(8)),
            name: request.name,
            region: request.region,
            created_at: rfc3339_micros(now_micros()),
            disabled_at: None,
        };
        let api_key = new_api_key();
        self.store
            .add_partner(&partner, &secret_hash(&api_key))
            .await?;
        tracing::info!(partner = %partner.name, id = %partner.id, region = %partner.region, "partner registered");
        Ok(Registered { partner, api_key })
    }

    /// The partner holding `api_key` (its current key, or its previous
    /// one during the rotation's grace period), if any (disabled ones
    /// included).
    pub async fn partner_by_key(
        &self,
        api_key: &str,
    ) -> Result<Option<PartnerByKey>, StorageError> {
        let now = now_micros().timestamp_micros();
        self.store
            .reader()
            .partner_by_key(&secret_hash(api_key), now)
            .await
    }

    /// Disables partner `id`: its key stops working and its open sessions
    /// end. `None` when there is no such partner.
    pub async fn disable_partner(&self, id: &str) -> Result<Option<PartnerRecord>, StorageError> {
        let Some(partner) = self.store.reader().partner(id).await? else {
            return Ok(None);
        };
        if partner.disabled_at.is_none() {
            self.store
                .disable_partner(id, &rfc3339_micros(now_micros()))
                .await?;
        }
        self.market.revoke(id);
        tracing::info!(partner = %partner.name, %id, "partner disabled");
        Ok(Some(partner))
    }

    /// Switches publishing of the market feed on or off, persisted.
    pub async fn set_market_active(&self, active: bool) -> Result<(), StorageError> {
        self.store
            .set_state(
                ACTIVE_KEY,
                &active.to_string(),
                &rfc3339_micros(now_micros()),
            )
            .await?;
        self.market.set_active(active);
        tracing::info!(
            active,
            "market feed {}",
            if active { "activated" } else { "deactivated" }
        );
        Ok(())
    }
}
