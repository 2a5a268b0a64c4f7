//! Short-lived, single-use feed tickets: how a browser's `EventSource` (which
//! cannot send an `Authorization` header) opens a partner feed without the
//! partner's API key ever appearing in a URL. A partner that authenticated
//! with its key asks `POST /v1/market/ticket` for a ticket and opens
//! `/v1/market/stream?ticket=…` (or the WebSocket feed) within its lifetime.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Unused tickets one partner may hold at once.
pub const MAX_TICKETS_PER_PARTNER: usize = 16;

/// Unused tickets the node holds at once.
pub const MAX_TICKETS: usize = 4096;

/// Why a ticket was not issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRefusal {
    /// The partner already holds [`MAX_TICKETS_PER_PARTNER`] unused tickets.
    PartnerFull,
    /// The node holds [`MAX_TICKETS`] unused tickets.
    NodeFull,
}

struct Issued {
    partner_id: String,
    expires: Instant,
}

/// The unused tickets, each redeemable once before it expires.
#[derive(Default)]
pub struct TicketBook {
    issued: Mutex<HashMap<String, Issued>>,
}

impl TicketBook {
    /// Issues a ticket for `partner_id`, valid for [`TICKET_TTL`] from `now`.
    pub fn issue(&self, partner_id: &str, now: Instant) -> Result<String, TicketRefusal> {
        let mut issued = qunimbus_node::lock(&self.issued);
        issued.retain(|_, t| t.expires > now);
        if issued.len() >= MAX_TICKETS {
            return Err(TicketRefusal::NodeFull);
        }
        let held = issued
            .values()
            .filter(|t| t.partner_id == partner_id)
            .count();
        if held >= MAX_TICKETS_PER_PARTNER {
            return Err(TicketRefusal::PartnerFull);
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = format!("qmt_{}", qunimbus_ledger::hex::encode(&bytes));
        issued.insert(
            ticket.clone(),
            Issued {
                partner_id: partner_id.to_string(),
                expires: now + TICKET_TTL,
            },
        );
        Ok(ticket)
    }

    /// Takes the ticket (it cannot be used again) and returns its partner
    /// id, if it was issued and has not expired.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<String> {
        let found = qunimbus_node::lock(&self.issued).remove(ticket)?;
        (found.expires > now).then_some(found.partner_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_only_in_time() {
        let book = TicketBook::default();
        let now = Instant::now();
        let t = book.issue("p1", now).unwrap();
        assert!(t.starts_with("qmt_") && t.len() == 52);
        assert_eq!(book.redeem(&t, now), Some("p1".into()));
        assert_eq!(book.redeem(&t, now), None, "single use");
        let late = book.issue("p1", now).unwrap();
        assert_eq!(book.redeem(&late, now + TICKET_TTL), None, "expired");
        assert_eq!(book.redeem("qmt_forged", now), None);
    }

    #[test]
    fn holdings_are_capped_per_partner() {
        let book = TicketBook::default();
        let now = Instant::now();
        for _ in 0..MAX_TICKETS_PER_PARTNER {
            book.issue("p1", now).unwrap();
        }
        assert_eq!(book.issue("p1", now), Err(TicketRefusal::PartnerFull));
        assert!(book.issue("p2", now).is_ok(), "others are not affected");
        assert!(
            book.issue("p1", now + TICKET_TTL).is_ok(),
            "expired tickets free their slots"
        );
    }
}
