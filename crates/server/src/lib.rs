//! The QuNimbus node: configuration, authentication, the axum HTTP API,
//! metrics, and the start/stop life cycle shared by `serve`, `demo`, `bench`
//! and the integration tests.

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod ledger;
mod ledger_api;
mod ledger_views;
pub mod limits;
pub mod market;
mod market_api;
mod market_views;
pub mod metrics;
pub mod openapi;
mod ops_api;
pub mod relay;
mod request;
pub mod serve;
pub mod state;
pub mod supervise;
pub mod tickets;
mod tlog_api;
pub mod trust;
mod trust_api;
mod trust_views;
pub mod tsa;
mod tsa_api;
mod valuation_views;

use auth::{Credentials, CredentialsError};
use config::{Config, ConfigError};
use metrics::Metrics;
use qunimbus_storage::{StorageError, Store, StoreOptions};
use qunimbus_valuation::{PhiHistory, ValuationEngine};
use state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a node failed to start or stopped with an error.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Credentials could not be loaded or created.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The database could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Refusing to expose generated tokens on a public address.
    #[error(
        "refusing to listen on non-loopback address {0} with generated tokens; set auth.admin_token and \
         auth.ingest_token (QUNIMBUS_ADMIN_TOKEN / QUNIMBUS_INGEST_TOKEN), or set \
         auth.allow_generated_tokens_on_public_listen = true"
    )]
    GeneratedTokensOnPublicAddress(SocketAddr),
    /// The ledger signing key could not be loaded or created.
    #[error(transparent)]
    SigningKey(#[from] ledger::KeyError),
    /// The genesis block could not be built.
    #[error("genesis block: {0}")]
    Genesis(#[from] qunimbus_ledger::LedgerError),
    /// Time-stamping could not be set up.
    #[error("time-stamping: {0}")]
    Tsa(#[from] tsa::TsaError),
    /// The Trust Kernel could not start (e.g. the policy file is refused).
    #[error("trust kernel: {0}")]
    Trust(#[from] trust::TrustError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// Starts the supervised background tasks: the checkpointer, the
/// timestamper, the Trust Kernel controller and, with NATS, the relay.
fn start_background(
    config: &Config,
    state: &Arc<AppState>,
    signer: Arc<qunimbus_ledger::NoteSigner>,
    stamper: Arc<tsa::Stamper>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let wake_stamper = Arc::new(tokio::sync::Notify::new());
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    let retry = (
        Duration::from_millis(config.tsa.retry_initial_ms),
        Duration::from_millis(config.tsa.retry_max_ms),
    );
    let wake = wake_stamper.clone();
    let stop_rx = stop.clone();
    let timestamper = state.tasks.spawn("timestamper", stop.clone(), move || {
        let (store, stamper, metrics) = (store.clone(), stamper.clone(), metrics.clone());
        tsa::run_timestamper(
            store,
            stamper,
            metrics,
            wake.clone(),
            stop_rx.clone(),
            retry.0,
            retry.1,
        )
    });
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    let interval = Duration::from_millis(config.ledger.checkpoint_interval_ms);
    let stop_rx = stop.clone();
    let checkpointer = state.tasks.spawn("checkpointer", stop.clone(), move || {
        let (metrics, wake) = (metrics.clone(), wake_stamper.clone());
        ledger::run_checkpointer(
            store.clone(),
            signer.clone(),
            interval,
            stop_rx.clone(),
            move |result| {
                metrics.observe_checkpoint(result.is_ok());
                if result.is_ok() {
                    wake.notify_one();
                }
            },
        )
    });
    let (controller_state, stop_rx) = (state.clone(), stop.clone());
    let controller = state
        .tasks
        .spawn("trust_controller", stop.clone(), move || {
            trust::run_controller(controller_state.clone(), stop_rx.clone())
        });
    let mut background = vec![timestamper, checkpointer, controller];
    if let Some(url) = config.nats_url.clone().filter(|u| !u.is_empty()) {
        background.extend(relay::start(state, url, config.nats.clone(), stop.clone()));
    }
    background
}

/// Creates `dir` (and missing parents) accessible by its owner only
/// (0700): it holds the database with the erasure salts, keys and tokens.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A node that is serving requests.
pub struct RunningNode {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    operations: Vec<openapi::Operation>,
}

impl RunningNode {
    /// Opens storage, loads credentials, binds the listener and starts serving.
    pub async fn start(config: &Config) -> Result<Self, NodeError> {
        config.validate()?;
        let addr = config.listen_addr()?;
        create_private_dir(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let credentials = Credentials::load_or_generate(&config.auth, &config.data_dir)?;
        if credentials.generated
            && !addr.ip().is_loopback()
            && !config.auth.allow_generated_tokens_on_public_listen
        {
            return Err(NodeError::GeneratedTokensOnPublicAddress(addr));
        }
        if let Some(file) = &credentials.file {
            tracing::info!(path = %file.display(), "admin and ingest tokens are in the credentials file");
        }

        let mut registry = Metrics::new();
        let tasks = Arc::new(supervise::Supervisor::new(registry.registry_mut()));
        let metrics = Arc::new(registry);
        let observer = metrics.clone();
        let mut options = StoreOptions {
            queue_depth: config.ingest.queue_depth,
            max_queued_rows: config.ingest.max_queued_rows,
            max_group_rows: config.ingest.max_group_rows,
            node_cache_max_leaves: config.ledger.node_cache_max_blocks,
            on_commit: Some(Arc::new(move |rows, took| {
                observer.observe_commit(rows, took)
            })),
            ..StoreOptions::default()
        };
        let target = config.database()?;
        let signer = Arc::new(ledger::load_or_generate_signer(
            &config.ledger,
            &config.data_dir,
        )?);
        let regions = config.region_set()?;
        let trust_settings = config.trust.settings(&config.data_dir, &regions);
        let policy = Arc::new(trust::PolicyHolder::load(
            &trust_settings,
            &regions,
            &config.ledger.frameworks,
        )?);
        let market = Arc::new(market::MarketHub::new(
            signer.name().to_string(),
            true,
            policy.clone(),
            qunimbus_market::Targets {
                latency_p99_ms: config.market.latency_target_ms,
                eph_per_hour: config.market.eph_per_hour_target,
            },
            config.market.queue_capacity,
            Duration::from_secs(config.market.throughput_window_secs),
            metrics.clone(),
        ));
        let hub = market.clone();
        options.on_runs = Some(Arc::new(move |runs| hub.on_committed(runs)));
        let genesis = ledger::genesis_block(&config.ledger.frameworks)?;
        let store = Arc::new(Store::open(&target, options, genesis).await?);
        if let Some(active) = store.reader().state(market::ACTIVE_KEY).await? {
            market.set_active(active == "true");
        }
        let stored = store.reader().phi_stats().await?.count;
        metrics
            .stored_runs
            .set(i64::try_from(stored).unwrap_or(i64::MAX));
        let mut history = PhiHistory::new(config.history.capacity);
        let capacity = u32::try_from(config.history.capacity).unwrap_or(u32::MAX);
        for phi in store.reader().recent_phi(capacity).await? {
            history.record(phi);
        }
        let engine = ValuationEngine::new(config.valuation).map_err(|e| ConfigError::Invalid {
            key: format!("valuation.{}", e.param),
            message: e.message,
        })?;
        let authority = Arc::new(tsa::load_authority(
            &config.tsa,
            &config.data_dir,
            signer.name(),
        )?);
        let stamper = Arc::new(tsa::Stamper::from_config(&config.tsa, authority.clone())?);
        let trust = Arc::new(
            trust::TrustKernel::open(
                store.clone(),
                metrics.clone(),
                regions.clone(),
                config.ledger.frameworks.clone(),
                trust_settings,
                policy,
            )
            .await?,
        );
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            market,
            stop: stop_rx.clone(),
            authority,
            stamper: stamper.clone(),
            regions,
            trust,
            engine,
            store: store.clone(),
            verifier: signer.verifier(),
            signer: signer.clone(),
            frameworks: config.ledger.frameworks.clone(),
            last_verification: std::sync::Mutex::new(None),
            verification_turn: tokio::sync::Mutex::new(None),
            metrics: metrics.clone(),
            credentials,
            protect_reads: config.auth.protect_reads,
            ingest: config.ingest.clone(),
            limits: limits::Limits::new(&config.limits),
            tickets: tickets::TicketBook::default(),
            tasks,
            history: std::sync::Mutex::new(history),
        });

        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| NodeError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| NodeError::Bind { addr, source })?;
        let background = start_background(config, &state, signer, stamper, &stop_rx);
        let (app, operations) = api::router_and_operations(state.clone());
        let options = serve::ServeOptions {
            header_read_timeout: config.limits.header_read_timeout(),
            send_timeout: config.limits.send_timeout(),
            max_connections: config.limits.max_connections,
        };
        let server = tokio::spawn(serve::serve(listener, app, options, stop_rx));
        tracing::info!(%addr, db = %target.describe(), stored_runs = stored, "QuNimbus node listening");
        Ok(Self {
            addr,
            state,
            stop,
            server,
            background,
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
        &self.state.credentials
    }

    /// Graceful stop: stop accepting, finish in-flight requests, commit what
    /// is queued, close the database.
    /// Requests still running after [`SHUTDOWN_GRACE`] are cut off so a
    /// stuck client cannot hang the stop; the store is closed either way.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.stop.send_replace(true);
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(served) => served,
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still open after the grace period; closing them");
                self.server.abort();
                Ok(Ok(()))
            }
        };
        for task in self.background.drain(..) {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
        self.state.store.close().await;
        tracing::info!("QuNimbus node stopped");
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::Serve(e)),
            Err(e) => Err(NodeError::Serve(std::io::Error::other(e))),
        }
    }
}
