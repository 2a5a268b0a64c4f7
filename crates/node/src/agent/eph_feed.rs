//! The agent's partner connection to the node's own feed: a registered
//! partner (`qbtc-agent`, a fresh key on every start, only its hash
//! stored) that connects over the WebSocket path like any partner, acks
//! what it receives, and hands each valuation's EPH price to the agent.

use super::eph::EphInbox;
use super::views::EphFeedView;
use crate::config::EphPlan;
use crate::feed_client::{run_partner, PriceObserver};
use crate::tokens::secret_hash;
use crate::Node;
use qunimbus_market::PartnerRequest;
use qunimbus_storage::StorageError;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The name the agent's partner is registered under.
pub const AGENT_PARTNER: &str = "qbtc-agent";

/// The EPH lanes' feed: its prices and its partner.
pub(super) struct EphLink {
    pub(super) inbox: Arc<EphInbox>,
    regions: Vec<String>,
    partner_region: String,
    /// (partner id, why it cannot connect).
    partner: Mutex<(Option<String>, Option<String>)>,
}

impl EphLink {
    pub(super) fn new(plan: &EphPlan) -> Self {
        Self {
            inbox: Arc::new(EphInbox::new(&plan.regions)),
            regions: plan.regions.clone(),
            partner_region: plan.partner_region.clone(),
            partner: Mutex::new((None, None)),
        }
    }

    pub(super) fn view(&self) -> EphFeedView {
        let (partner_id, error) = crate::lock(&self.partner).clone();
        let stats = &self.inbox.partner;
        EphFeedView {
            partner_id,
            partner_region: self.partner_region.clone(),
            regions: self.regions.clone(),
            valuations_received: stats.valuations.load(Ordering::Relaxed),
            valuations_priced: self.inbox.accepted.load(Ordering::Relaxed),
            valuations_ignored: self.inbox.ignored.load(Ordering::Relaxed),
            withheld: stats.withheld.load(Ordering::Relaxed),
            disconnects: stats.disconnects.load(Ordering::Relaxed),
            connected: stats.connected.load(Ordering::Relaxed),
            error: error.or_else(|| crate::lock(&stats.last_error).clone()),
        }
    }
}

/// The feed's WebSocket URL on the address the node serves (a wildcard
/// address is reached on loopback).
fn feed_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("ws://{addr}/v1/market/feed")
}

impl Node {
    /// The agent's partner with a fresh key: registered on first use, its
    /// key (and region, as configured) replaced afterwards; `Ok(None)` when
    /// an operator disabled it.
    async fn agent_partner(&self, region: &str) -> Result<Option<(String, String)>, StorageError> {
        let existing = self
            .store
            .reader()
            .partners()
            .await?
            .into_iter()
            .find(|p| p.name == AGENT_PARTNER);
        let Some(partner) = existing else {
            let request = PartnerRequest {
                name: AGENT_PARTNER.into(),
                region: region.into(),
            };
            let registered = self.register_partner(request).await?;
            return Ok(Some((registered.partner.id, registered.api_key)));
        };
        if partner.disabled_at.is_some() {
            return Ok(None);
        }
        let api_key = crate::partners::new_api_key();
        if !self
            .store
            .set_partner_key(&partner.id, &secret_hash(&api_key), region)
            .await?
        {
            return Ok(None);
        }
        Ok(Some((partner.id, api_key)))
    }

    /// Connects the agent's EPH lanes to the feed the node serves on
    /// `addr`, when they trade; the connection ends when the node stops.
    pub async fn connect_agent_feed(self: &Arc<Self>, addr: SocketAddr) -> Option<JoinHandle<()>> {
        let link = self.agent.as_ref()?.eph.as_ref()?;
        let partner = match self.agent_partner(&link.partner_region).await {
            Ok(Some(partner)) => partner,
            Ok(None) => {
                let why =
                    format!("partner {AGENT_PARTNER} is disabled: the EPH lanes get no prices");
                tracing::warn!("{why}");
                crate::lock(&link.partner).1 = Some(why);
                return None;
            }
            Err(e) => {
                let why = format!("the agent's feed partner cannot be registered: {e}");
                tracing::error!("{why}");
                crate::lock(&link.partner).1 = Some(why);
                return None;
            }
        };
        let (id, api_key) = partner;
        *crate::lock(&link.partner) = (Some(id.clone()), None);
        tracing::info!(partner = %id, "the trading agent reads EPH prices from the feed");
        let (url, stats) = (feed_url(addr), link.inbox.partner.clone());
        let observer: Arc<dyn PriceObserver> = link.inbox.clone();
        let stop = self.stop.clone();
        Some(self.tasks.spawn("agent_feed", self.stop.clone(), move || {
            run_partner(
                url.clone(),
                api_key.clone(),
                stats.clone(),
                Some(observer.clone()),
                stop.clone(),
            )
        }))
    }
}
