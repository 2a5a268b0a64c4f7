//! The running QuNimbus node's services, free of HTTP: configuration,
//! credentials, the ingest service, the ledger's signer, checkpointer and
//! verifier, the RFC 3161 timestamper, the market hub and its partner
//! sessions, the NATS relay, the Trust Kernel and its controller, metrics
//! and task supervision. `qunimbus-http` serves them; `qunimbus demo`,
//! `bench` and the tests start them through it.

#![warn(missing_docs)]

pub mod agent;
pub mod backtest;
pub mod backup;
pub mod config;
pub mod credentials;
pub mod exchange;
pub mod feed_client;
pub mod ingest;
pub mod ledger;
pub mod market;
pub mod metrics;
mod node;
pub mod partners;
pub mod relay;
pub mod rotation;
pub mod supervise;
pub mod tokens;
pub mod trust;
mod trust_views;
pub mod tsa;
pub mod verification;

pub use node::{lock, Node};

use config::{Config, ConfigError};
use credentials::{Credentials, CredentialsError};
use metrics::Metrics;
use qunimbus_storage::{StorageError, Store, StoreOptions};
use qunimbus_valuation::{PhiHistory, ValuationEngine};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the node's services failed to start.
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
}

/// The node's services, started, with their background tasks.
pub struct Started {
    /// The services.
    pub node: Arc<Node>,
    stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

impl Started {
    /// Tells every task and session to stop (the first step of a shutdown).
    pub fn signal_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Becomes true when the node stops.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Connects the trading agent's EPH lanes to the feed served on `addr`
    /// (the connection is a background task of the node).
    pub async fn connect_agent_feed(&mut self, addr: std::net::SocketAddr) {
        if let Some(task) = self.node.connect_agent_feed(addr).await {
            self.background.push(task);
        }
    }

    /// Waits for the background tasks to end (after [`Started::signal_stop`]),
    /// commits what is queued and closes the database.
    pub async fn finish(mut self) {
        self.signal_stop();
        for task in self.background.drain(..) {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
        self.node.store.close().await;
    }
}

impl Node {
    /// Validates `config`, creates the data dir, loads or generates the
    /// credentials and keys, opens the database and the Trust Kernel, and
    /// starts the supervised background tasks.
    pub async fn start(config: &Config) -> Result<Started, NodeError> {
        config.validate()?;
        create_private_dir(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let credentials = load_credentials(config)?;
        let mut registry = Metrics::new();
        let tasks = Arc::new(supervise::Supervisor::new(registry.registry_mut()));
        let metrics = Arc::new(registry);
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
        let market = Arc::new(market::MarketHub::from_config(
            &config.market,
            signer.name(),
            policy.clone(),
            metrics.clone(),
        ));
        let store = Arc::new(open_store(config, &metrics, &market).await?);
        credentials.book.add(&store.reader().api_tokens().await?);
        if let Some(active) = store.reader().state(market::ACTIVE_KEY).await? {
            market.set_active(active == "true");
        }
        let history = load_history(&store, &metrics, config.history.capacity).await?;
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
                config.recorded()?,
            )
            .await?,
        );
        let agent = start_agent(config, &store, &metrics).await?;
        let backups = backup::Backups::new(config, metrics.clone())?;
        let (stop, stop_rx) = watch::channel(false);
        let node = Arc::new(Node {
            agent,
            market,
            stop: stop_rx.clone(),
            authority,
            stamper: stamper.clone(),
            regions,
            trust,
            engine,
            store,
            verifier: signer.verifier(),
            signer: signer.clone(),
            frameworks: config.ledger.frameworks.clone(),
            last_verification: std::sync::Mutex::new(None),
            verification_turn: tokio::sync::Mutex::new(None),
            metrics,
            credentials,
            protect_reads: config.auth.protect_reads,
            ingest: config.ingest.clone(),
            tasks,
            backups,
            history: std::sync::Mutex::new(history),
        });
        let background = start_background(config, &node, signer, stamper, &stop_rx);
        Ok(Started {
            node,
            stop,
            background,
        })
    }
}

/// The configured tokens, or those generated into `credentials.toml`;
/// generated tokens may not be served on a public address unless allowed.
fn load_credentials(config: &Config) -> Result<Credentials, NodeError> {
    let addr = config.listen_addr()?;
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
    Ok(credentials)
}

/// Opens the database with the writer's limits, commit metrics and the
/// market hub as the observer of committed runs.
async fn open_store(
    config: &Config,
    metrics: &Arc<Metrics>,
    market: &Arc<market::MarketHub>,
) -> Result<Store, NodeError> {
    let (observer, hub) = (metrics.clone(), market.clone());
    let options = StoreOptions {
        queue_depth: config.ingest.queue_depth,
        max_queued_rows: config.ingest.max_queued_rows,
        max_group_rows: config.ingest.max_group_rows,
        node_cache_max_leaves: config.ledger.node_cache_max_blocks,
        on_commit: Some(Arc::new(move |rows, took| {
            observer.observe_commit(rows, took)
        })),
        on_runs: Some(Arc::new(move |runs| hub.on_committed(runs))),
        ..StoreOptions::default()
    };
    let target = config.database()?;
    let genesis = ledger::genesis_block(&config.ledger.frameworks)?;
    let store = Store::open(&target, options, genesis).await?;
    tracing::info!(db = %target.describe(), "database open");
    Ok(store)
}

/// The recent-valuation window, refilled from the newest stored runs.
async fn load_history(
    store: &Store,
    metrics: &Metrics,
    capacity: usize,
) -> Result<PhiHistory, NodeError> {
    let stored = store.reader().phi_stats().await?.count;
    metrics
        .ingest
        .stored_runs
        .set(i64::try_from(stored).unwrap_or(i64::MAX));
    let mut history = PhiHistory::new(capacity);
    let newest = u32::try_from(capacity).unwrap_or(u32::MAX);
    for phi in store.reader().recent_phi(newest).await? {
        history.record(phi);
    }
    Ok(history)
}

/// The trading agent when `[agent]` enables it: its recorded session
/// resumed, or a new one whose market starts now.
async fn start_agent(
    config: &Config,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<agent::Agent>>, NodeError> {
    if !config.agent.enabled {
        return Ok(None);
    }
    let agent_config = config.agent.resolved(&config.region_set()?)?;
    let plan = agent_config.plan()?;
    let start_us = qunimbus_core::time::now_micros().timestamp_micros();
    tracing::info!(
        symbols = plan.lanes.len(),
        mode = agent::MODE,
        "trading agent starting"
    );
    let agent = agent::Agent::start(
        &agent_config,
        plan,
        start_us,
        store.clone(),
        metrics.clone(),
        config.ledger.frameworks.clone(),
        &config.data_dir.join("agent"),
    )
    .await?;
    Ok(Some(Arc::new(agent)))
}

/// Starts the supervised background tasks: the checkpointer, the
/// timestamper, the Trust Kernel controller, the backup schedule when
/// configured and, with NATS, the relay.
fn start_background(
    config: &Config,
    node: &Arc<Node>,
    signer: Arc<qunimbus_ledger::NoteSigner>,
    stamper: Arc<tsa::Stamper>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let wake_stamper = Arc::new(tokio::sync::Notify::new());
    let (store, metrics) = (node.store.clone(), node.metrics.clone());
    let retry = (
        Duration::from_millis(config.tsa.retry_initial_ms),
        Duration::from_millis(config.tsa.retry_max_ms),
    );
    let wake = wake_stamper.clone();
    let stop_rx = stop.clone();
    let timestamper = node.tasks.spawn("timestamper", stop.clone(), move || {
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
    let (store, metrics) = (node.store.clone(), node.metrics.clone());
    let interval = Duration::from_millis(config.ledger.checkpoint_interval_ms);
    let stop_rx = stop.clone();
    let checkpointer = node.tasks.spawn("checkpointer", stop.clone(), move || {
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
    let (controller_node, stop_rx) = (node.clone(), stop.clone());
    let controller = node.tasks.spawn("trust_controller", stop.clone(), move || {
        trust::run_controller(controller_node.clone(), stop_rx.clone())
    });
    let mut background = vec![timestamper, checkpointer, controller];
    if config.backup.interval_secs > 0 {
        let (backup_node, stop_rx) = (node.clone(), stop.clone());
        background.push(node.tasks.spawn("backup_schedule", stop.clone(), move || {
            backup::run_schedule(backup_node.clone(), stop_rx.clone())
        }));
    }
    if let Some(agent) = node.agent.clone() {
        let stop_rx = stop.clone();
        background.push(node.tasks.spawn("trading_agent", stop.clone(), move || {
            agent.clone().run(stop_rx.clone())
        }));
    }
    if let Some(url) = config.nats_url.clone().filter(|u| !u.is_empty()) {
        background.extend(relay::start(node, url, config.nats.clone(), stop.clone()));
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
