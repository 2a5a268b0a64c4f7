//! The QuNimbus node's HTTP API on axum: one module per area (telemetry
//! and valuations, ledger, tlog tiles, market feed adapters, Trust Kernel,
//! TSA, dashboard, operations), authentication, JSON errors, request
//! limits, the OpenAPI document and the server loop; and [`RunningNode`],
//! the start/stop life cycle shared by `serve`, `demo`, `bench` and the
//! tests. The services themselves are in `qunimbus-node`.

#![warn(missing_docs)]

pub mod a2a;
mod agent_api;
pub mod api;
mod backup_api;
mod credentials_api;
pub mod dashboard;
pub mod error;
mod ledger_api;
mod ledger_views;
pub mod limits;
mod market_api;
mod market_views;
pub mod openapi;
mod ops_api;
mod request;
pub mod serve;
pub mod state;
pub mod tickets;
mod tlog_api;
mod trust_api;
mod trust_views;
mod tsa_api;
mod valuation_views;

use qunimbus_node::config::{Config, ConfigError};
use qunimbus_node::credentials::Credentials;
use qunimbus_node::{Node, NodeError, Started};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::task::JoinHandle;

/// Why a node failed to start or stopped with an error.
#[derive(Debug, Error)]
pub enum StartError {
    /// The node's services did not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A node that is serving requests.
pub struct RunningNode {
    addr: SocketAddr,
    started: Started,
    server: JoinHandle<std::io::Result<()>>,
    operations: Vec<openapi::Operation>,
}

impl RunningNode {
    /// Starts the node's services, binds the listener and starts serving.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let requested = config.listen_addr()?;
        let mut started = Node::start(config).await?;
        let bound = async {
            let listener = tokio::net::TcpListener::bind(requested).await?;
            let addr = listener.local_addr()?;
            Ok::<_, std::io::Error>((listener, addr))
        };
        let (listener, addr) = match bound.await {
            Ok(bound) => bound,
            Err(source) => {
                started.finish().await;
                return Err(StartError::Bind {
                    addr: requested,
                    source,
                });
            }
        };
        match a2a::tasks::TaskBook::recover(&started.node).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                tasks = n,
                "A2A tasks a previous run left unfinished are marked failed"
            ),
            Err(e) => tracing::error!(error = %e, "unfinished A2A tasks could not be read"),
        }
        let state = Arc::new(AppState {
            node: started.node.clone(),
            limits: limits::Limits::new(&config.limits),
            tickets: tickets::TicketBook::default(),
            a2a: a2a::tasks::TaskBook::default(),
            public_url: config
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string())
                .or_else(|| (!addr.ip().is_unspecified()).then(|| format!("http://{addr}"))),
        });
        let (app, operations) = api::router_and_operations(state);
        let options = serve::ServeOptions {
            header_read_timeout: config.limits.header_read_timeout(),
            send_timeout: config.limits.send_timeout(),
            max_connections: config.limits.max_connections,
        };
        let server = tokio::spawn(serve::serve(listener, app, options, started.stop_signal()));
        started.connect_agent_feed(addr).await;
        tracing::info!(%addr, "QuNimbus node listening");
        Ok(Self {
            addr,
            started,
            server,
            operations,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The (method, path) of every route the router registered, as the
    /// OpenAPI document spells them.
    pub fn operations(&self) -> &[openapi::Operation] {
        &self.operations
    }

    /// The node's tokens.
    pub fn credentials(&self) -> &Credentials {
        &self.started.node.credentials
    }

    /// The node's services (for in-process tools such as the demo).
    pub fn node(&self) -> &Arc<Node> {
        &self.started.node
    }

    /// Graceful stop: stop accepting, finish in-flight requests, commit what
    /// is queued, close the database.
    /// Requests still running after [`SHUTDOWN_GRACE`] are cut off so a
    /// stuck client cannot hang the stop; the store is closed either way.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        self.started.signal_stop();
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(served) => served,
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still open after the grace period; closing them");
                self.server.abort();
                Ok(Ok(()))
            }
        };
        self.started.finish().await;
        tracing::info!("QuNimbus node stopped");
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StartError::Serve(e)),
            Err(e) => Err(StartError::Serve(std::io::Error::other(e))),
        }
    }
}
