//! What the HTTP layer shares between handlers: the node's services and the
//! request limits and feed tickets that belong to the transport.

use crate::limits::Limits;
use crate::tickets::TicketBook;
use qunimbus_node::Node;
use std::sync::Arc;

/// Handler state.
pub struct AppState {
    /// The node's services.
    pub node: Arc<Node>,
    /// Request limits and their live state.
    pub limits: Limits,
    /// Unused single-use feed tickets.
    pub tickets: TicketBook,
    /// The A2A tasks running now.
    pub a2a: crate::a2a::tasks::TaskBook,
    /// The base URL the node is reached at, when known (configured, or a
    /// specific listen address); else the caller's host.
    pub public_url: Option<String>,
}
