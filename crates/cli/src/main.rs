//! `qunimbus`: run a node (`serve`), a self-contained demo (`demo`), check a
//! configuration file (`config check`) or measure performance (`bench`).

mod agent;
mod backup;
mod bench;
mod bench_agent;
mod bench_backup;
mod bench_feed;
mod bench_ingest;
mod bench_ledger;
mod bench_trading;
mod credentials;
mod demo;
mod demo_outages;
mod import;
mod ledger;
mod ledger_export;
mod logging;
mod partner;
mod retry;
mod trade;
mod trust;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use qunimbus_http::RunningNode;
use qunimbus_node::config::{Config, CONFIG_FILE_ENV};
use std::path::PathBuf;

/// mimalloc: the node and the ledger tools allocate many small JSON values
/// per block; glibc malloc spent a quarter of verification time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// QuNimbus: a quantum-economic network node that values quantum runs and
/// records them durably.
#[derive(Parser)]
#[command(name = "qunimbus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    #[command(
        after_help = "Example:\n  qunimbus serve --data-dir /var/lib/qunimbus --listen 127.0.0.1:8080"
    )]
    Serve(NodeArgs),
    /// Run the node on embedded storage with the built-in runtime simulator.
    #[command(
        after_help = "Example:\n  qunimbus demo            # temp data dir, http://127.0.0.1:8080\n  qunimbus demo --seed 7 --rate 50 --duration 30"
    )]
    Demo(demo::DemoArgs),
    /// Configuration utilities.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Verify, prove and export the ledger offline.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Register, list and disable market partners (through a running node).
    #[command(subcommand)]
    Partner(partner::PartnerCommand),
    /// Post telemetry from a JSON-lines file to a running node, in batches.
    #[command(
        after_help = "Example:\n  qunimbus import runs.jsonl --url http://127.0.0.1:8080 --batch 1000"
    )]
    Import(import::ImportArgs),
    /// Regions: status, trust overrides, health events (through a running node).
    #[command(subcommand)]
    Region(trust::RegionCommand),
    /// Staged rollouts: start, list, show, advance/pause/resume/rollback.
    #[command(subcommand)]
    Rollout(trust::RolloutCommand),
    /// Compliance per framework, evaluated by the node from evidence.
    #[command(after_help = "Examples:
  qunimbus compliance
  qunimbus compliance --attest   # verify the ledger and write an attestation block")]
    Compliance {
        #[command(flatten)]
        target: partner::AdminTarget,
        /// Verify the ledger now and record the result as an attestation block.
        #[arg(long)]
        attest: bool,
    },
    /// Check a compliance policy file offline, or reload a node's.
    #[command(subcommand)]
    Policy(trust::PolicyCommand),
    /// The built-in RFC 3161 time-stamping authority.
    #[command(subcommand)]
    Tsa(TsaCommand),
    /// Measure performance on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// QBTC trading: backtests.
    #[command(subcommand)]
    Trade(trade::TradeCommand),
    /// The trading agent of a running node: status, positions, fills, commands.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// A running node's tokens: list, client tokens, rotation with a grace period.
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// Back up a node's SQLite store while it runs: a consistent copy whose
    /// ledger is verified before it is reported.
    #[command(
        after_help = "Examples:\n  qunimbus backup --data-dir ./qunimbus-data --out node-2026-12-03.backup\n  qunimbus backup --data-dir ./qunimbus-data --out full.backup --include-keys"
    )]
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data dir; its ledger is verified first.
    #[command(
        after_help = "Example:\n  qunimbus restore --from node-2026-12-03.backup --data-dir ./restored --expect-key node.vkey"
    )]
    Restore(backup::RestoreArgs),
}

#[derive(Subcommand)]
enum TsaCommand {
    /// Create the built-in TSA: a root CA and a TSA certificate (ECDSA P-256,
    /// critical timeStamping EKU) with its key, in DATA_DIR/tsa/.
    #[command(
        after_help = "Example:\n  qunimbus tsa init --data-dir ./qunimbus-data\n  # give DATA_DIR/tsa/root.pem to anyone who verifies tokens (openssl ts -verify -CAfile root.pem …)"
    )]
    Init {
        /// Data directory of the node.
        #[arg(long, env = "QUNIMBUS_DATA_DIR", default_value = "./qunimbus-data")]
        data_dir: PathBuf,
        /// Name used in the certificates' common names.
        #[arg(long, default_value = "QuNimbus")]
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a TOML configuration file and print the effective settings.
    #[command(after_help = "Example:\n  qunimbus config check qunimbus.example.toml")]
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

/// Log output style on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Flags shared by commands that run a node. Flags beat `QUNIMBUS_*`
/// environment variables, which beat the config file.
#[derive(Args, Clone, Default)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = CONFIG_FILE_ENV)]
    config: Option<PathBuf>,
    /// Data directory (database, credentials). Env: QUNIMBUS_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080. Env: QUNIMBUS_LISTEN.
    #[arg(long)]
    listen: Option<String>,
    /// Database URL (default: SQLite file in the data dir). Env: QUNIMBUS_DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// NATS server for market-feed scale-out, e.g. nats://127.0.0.1:4222. Env: QUNIMBUS_NATS_URL.
    #[arg(long = "nats")]
    nats_url: Option<String>,
    /// Log format. Env: QUNIMBUS_LOG_FORMAT.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Run the trading agent on paper (`[agent] enabled = true`).
    #[arg(long)]
    agent: bool,
    /// Run the trading agent on these candle files replayed as the live
    /// market instead of the synthetic one (`agent.market_replay_dir`).
    #[arg(long, value_name = "DIR")]
    market_replay: Option<PathBuf>,
}

impl NodeArgs {
    /// Loads the layered configuration with these flags on top.
    pub fn load_config(&self) -> Result<Config> {
        let mut flags = toml::Table::new();
        if let Some(dir) = &self.data_dir {
            flags.insert("data_dir".into(), dir.display().to_string().into());
        }
        if let Some(listen) = &self.listen {
            flags.insert("listen".into(), listen.clone().into());
        }
        if let Some(url) = &self.database_url {
            flags.insert("database_url".into(), url.clone().into());
        }
        if let Some(url) = &self.nats_url {
            flags.insert("nats_url".into(), url.clone().into());
        }
        if let Some(format) = self.log_format {
            let name = match format {
                LogFormatArg::Human => "human",
                LogFormatArg::Json => "json",
            };
            flags.insert("log_format".into(), name.into());
        }
        if self.agent || self.market_replay.is_some() {
            flags.insert("agent.enabled".into(), true.into());
        }
        if let Some(dir) = &self.market_replay {
            flags.insert(
                "agent.market_replay_dir".into(),
                dir.display().to_string().into(),
            );
        }
        Config::load(self.config.as_deref(), std::env::vars(), flags)
            .context("invalid configuration")
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<trade::BadInput>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Backup(args) => backup::run_backup(args).await,
        Command::Restore(args) => backup::run_restore(args).await,
        Command::Config(ConfigCommand::Check { file }) => {
            let config = Config::check_file(&file)
                .with_context(|| format!("{} is not valid", file.display()))?;
            println!("{} is valid", file.display());
            println!("{config:#?}");
            Ok(())
        }
        Command::Bench(command) => bench::run(command).await,
        Command::Trade(command) => trade::run(command),
        Command::Agent(command) => agent::run(command).await,
        Command::Credentials(command) => credentials::run(command).await,
        Command::Ledger(command) => ledger::run(command).await,
        Command::Partner(command) => partner::run(command).await,
        Command::Import(args) => import::run(args).await,
        Command::Region(command) => trust::region(command).await,
        Command::Rollout(command) => trust::rollout(command).await,
        Command::Compliance { target, attest } => trust::compliance(target, attest).await,
        Command::Policy(command) => trust::policy(command).await,
        Command::Tsa(TsaCommand::Init { data_dir, name }) => {
            let files = qunimbus_node::tsa::init_files(&data_dir, &name)?;
            println!("TSA key:   {} (mode 0600)", files.key.display());
            println!("TSA chain: {}", files.chain.display());
            println!(
                "TSA root:  {} (the trust anchor for verifiers)",
                files.root.display()
            );
            Ok(())
        }
    }
}

async fn serve(args: NodeArgs) -> Result<()> {
    let loaded = args
        .config
        .as_ref()
        .and_then(|p| qunimbus_node::agent::modified(p));
    let config = args.load_config()?;
    logging::init(config.log_format, "info");
    let node = RunningNode::start(&config).await?;
    let watcher = match (node.node().agent.clone(), args.config.clone()) {
        (Some(agent), Some(path)) => {
            let stop = node.node().stop.clone();
            // The agent's settings as the node plans from them.
            let load = move || -> Result<qunimbus_node::config::AgentConfig> {
                let c = args.load_config()?;
                Ok(c.agent.resolved(&c.region_set()?)?)
            };
            Some(tokio::spawn(agent.watch_file(path, loaded, load, stop)))
        }
        _ => None,
    };
    shutdown_signal().await?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
    node.shutdown().await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    /// Every runnable command's `--help` shows at least one example.
    #[test]
    fn every_command_help_has_an_example() {
        fn walk(cmd: &mut clap::Command, path: String, missing: &mut Vec<String>) {
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            if names.is_empty() {
                let help = cmd.render_long_help().to_string();
                if !help.contains("Example") {
                    missing.push(path);
                }
                return;
            }
            for name in names {
                if let Some(sub) = cmd.find_subcommand_mut(&name) {
                    walk(sub, format!("{path} {name}"), missing);
                }
            }
        }
        let mut cli = super::Cli::command();
        cli.build();
        let mut missing = Vec::new();
        walk(&mut cli, "qunimbus".into(), &mut missing);
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}
