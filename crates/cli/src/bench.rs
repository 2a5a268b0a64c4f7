//! `qunimbus bench`: throughput and latency measured on this machine.

use anyhow::{Context, Result};
use clap::Subcommand;
use qunimbus_core::RunMetrics;
use qunimbus_valuation::ValuationEngine;
use std::hint::black_box;
use std::time::Instant;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Valuation engine throughput (pure computation, one core).
    #[command(after_help = "Example:\n  cargo run --release -- bench valuation --runs 20000000")]
    Valuation {
        /// Runs to price.
        #[arg(long, default_value_t = 10_000_000)]
        runs: u64,
    },
    /// Candle parsing: a synthetic Binance kline CSV written to a temporary
    /// file, then read and checked bar by bar (MB/s and bars/s).
    #[command(after_help = "Example:\n  qunimbus bench candles --bars 2000000")]
    Candles {
        /// Bars in the file.
        #[arg(long, default_value_t = 2_000_000)]
        bars: u64,
    },
    /// Backtest throughput: `sma_cross` on synthetic one-minute bars on one
    /// core, and the PyPI `backtesting` package on a prefix of the same bars
    /// when python3 has it.
    #[command(
        after_help = "Example:\n  qunimbus bench backtest --bars 10000000 --peer-bars 200000"
    )]
    Backtest {
        /// Bars for our engine.
        #[arg(long, default_value_t = 10_000_000)]
        bars: u64,
        /// Bars for the peer (0: skip it).
        #[arg(long, default_value_t = 200_000)]
        peer_bars: u64,
    },
    /// Sizing + pre-trade gate: Kelly sizing and the gate's check for one
    /// order, over the 77 instruments of the built-in universe (latency
    /// percentiles and decisions per second on one core).
    #[command(after_help = "Example:\n  qunimbus bench decisions --decisions 2000000")]
    Decisions {
        /// Decisions to make.
        #[arg(long, default_value_t = 2_000_000)]
        decisions: u64,
    },
    /// The three trading benchmarks in one run: candles, backtest (with the
    /// peer side by side) and decisions, at their default sizes.
    #[command(after_help = "Example:\n  qunimbus bench trading")]
    Trading,
    /// The trading agent in a running node: bar-to-decision latency, bars/s
    /// and resident memory against a node without the agent, side by side;
    /// then a restart and the time the session's replay took.
    #[command(
        after_help = "Example:\n  cargo run --release -- bench agent --seconds 20 --bar-ms 1"
    )]
    Agent {
        /// How long the agent trades before it is measured.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Wall-clock milliseconds per bar time (77 bars each).
        #[arg(long, default_value_t = 1)]
        bar_ms: u64,
    },
    /// Compliance policy: loading the default Cedar policy (every decision of
    /// the six regions evaluated), the data path's table lookups, and direct
    /// Cedar evaluations (the path for regions outside the table).
    #[command(after_help = "Example:\n  cargo run --release -- bench policy --decisions 10000000")]
    Policy {
        /// Table lookups to time.
        #[arg(long, default_value_t = 10_000_000)]
        decisions: u64,
    },
    /// Durable HTTP ingest: a node on a fresh SQLite database, many concurrent
    /// clients each posting one run at a time over keep-alive connections;
    /// also the lag from each run's submission to the first signed
    /// checkpoint that covers it, under that load.
    #[command(
        after_help = "Example:\n  cargo run --release -- bench ingest --clients 64 --runs 200000"
    )]
    Ingest {
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: u32,
        /// Total runs to post.
        #[arg(long, default_value_t = 200_000)]
        runs: u64,
        /// Runs per request (above 1: `POST /v1/telemetry/batch`).
        #[arg(long, default_value_t = 1)]
        batch: u64,
        /// The node's `ledger.checkpoint_interval_ms`.
        #[arg(long, default_value_t = 1000)]
        checkpoint_interval_ms: u64,
    },
    /// Market feed: receipt-to-ack latency over loopback WebSockets (100
    /// partners at 1,000 runs/s, the same plus one stalled partner, 1,000
    /// partners at 100 runs/s, then a rate sweep until p99 passes 10 ms).
    #[command(after_help = "Example:\n  cargo run --release -- bench feed --seconds 10")]
    Feed {
        /// Length of each measured phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Highest rate the sweep tries.
        #[arg(long, default_value_t = 64_000.0)]
        max_rate: f64,
        /// Run one phase with this many partners instead of the standard set.
        #[arg(long, requires = "rate")]
        partners: Option<u32>,
        /// Runs per second of that one phase.
        #[arg(long, requires = "partners")]
        rate: Option<f64>,
        /// Add one partner that connects and never reads (that one phase).
        #[arg(long)]
        stalled: bool,
    },
    /// Back up a store of `--blocks` blocks while the node takes runs:
    /// backup time, and ingest throughput during it against just before it.
    #[command(after_help = "Example:\n  qunimbus bench backup --blocks 1000000 --clients 8")]
    Backup {
        /// Blocks in the store backed up.
        #[arg(long, default_value_t = 1_000_000)]
        blocks: u64,
        /// Concurrent ingest clients (one run per request).
        #[arg(long, default_value_t = 8)]
        clients: u32,
        /// Seconds of the same load measured before the backup.
        #[arg(long, default_value_t = 5.0)]
        baseline_secs: f64,
    },
    /// Ledger: durable appends/s with group commit (concurrent single-run
    /// appends, each run with its block), then inclusion-proof latency and
    /// offline verification rate on a ledger of `--blocks` blocks.
    #[command(
        after_help = "Examples:\n  cargo run --release -- bench ledger\n  cargo run --release -- bench ledger --database-url postgres://postgres@127.0.0.1/test"
    )]
    Ledger {
        /// Ledger size for the proof and verification measurements.
        #[arg(long, default_value_t = 1_000_000)]
        blocks: u64,
        /// Single-run appends for the throughput measurement.
        #[arg(long, default_value_t = 100_000)]
        appends: u64,
        /// Concurrent appenders.
        #[arg(long, default_value_t = 64)]
        clients: u32,
        /// Inclusion proofs to time.
        #[arg(long, default_value_t = 20_000)]
        proofs: u64,
        /// Times the whole ledger is verified (the best is reported too).
        #[arg(long, default_value_t = 3)]
        verify_runs: u32,
        /// PostgreSQL URL to benchmark instead of a temporary SQLite file.
        /// The benchmark creates and drops its own schema there.
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// Runs one benchmark and prints its numbers.
pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Valuation { runs } => {
            bench_valuation(runs);
            Ok(())
        }
        BenchCommand::Ingest {
            clients,
            runs,
            batch,
            checkpoint_interval_ms,
        } => crate::bench_ingest::run(clients, runs, batch, checkpoint_interval_ms).await,
        BenchCommand::Policy { decisions } => bench_policy(decisions),
        BenchCommand::Feed {
            seconds,
            max_rate,
            partners,
            rate,
            stalled,
        } => crate::bench_feed::run(seconds, max_rate, partners.zip(rate), stalled).await,
        BenchCommand::Candles { bars } => crate::bench_trading::candles(bars),
        BenchCommand::Decisions { decisions } => crate::bench_trading::decisions(decisions),
        BenchCommand::Trading => crate::bench_trading::all(),
        BenchCommand::Backtest { bars, peer_bars } => {
            crate::bench_trading::backtest(bars, peer_bars)
        }
        BenchCommand::Agent { seconds, bar_ms } => crate::bench_agent::run(seconds, bar_ms).await,
        BenchCommand::Backup {
            blocks,
            clients,
            baseline_secs,
        } => crate::bench_backup::run(blocks, clients, baseline_secs).await,
        BenchCommand::Ledger {
            blocks,
            appends,
            clients,
            proofs,
            verify_runs,
            database_url,
        } => {
            crate::bench_ledger::run(blocks, appends, clients, proofs, verify_runs, database_url)
                .await
        }
    }
}

fn bench_valuation(runs: u64) {
    let engine = ValuationEngine::default();
    let inputs: Vec<RunMetrics> = (0..1024u32)
        .map(|i| RunMetrics {
            eta_ent: 0.80 + f64::from(i % 200) / 1000.0,
            coherence_variance: f64::from(i % 30) / 1000.0,
            runtime_hours: f64::from(i % 150),
            eph_delivered: 1.0 + f64::from(i),
        })
        .collect();
    let started = Instant::now();
    let mut checksum = 0.0;
    for i in 0..runs {
        let v = engine.value(black_box(&inputs[(i % 1024) as usize]));
        checksum += v.market_value;
    }
    let took = started.elapsed();
    black_box(checksum);
    println!(
        "valuation: {runs} runs in {:.3} s = {:.0} runs/s ({:.1} ns/run)",
        took.as_secs_f64(),
        runs as f64 / took.as_secs_f64(),
        took.as_nanos() as f64 / runs as f64
    );
}

/// Times policy loading, table decisions and direct Cedar evaluations.
fn bench_policy(decisions: u64) -> Result<()> {
    use qunimbus_core::DataClass;
    use qunimbus_trust::policy::{PolicyEngine, DEFAULT_POLICY};
    let regions: Vec<String> = qunimbus_core::DEFAULT_REGIONS
        .iter()
        .map(|r| r.to_string())
        .collect();
    let loads = 20;
    let started = Instant::now();
    let mut engine = None;
    for _ in 0..loads {
        engine = Some(PolicyEngine::load(DEFAULT_POLICY, &regions).context("default policy")?);
    }
    let load_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(loads);
    let engine = engine.context("no load ran")?;
    let classes = [DataClass::Public, DataClass::Personal, DataClass::Itar];
    let started = Instant::now();
    let mut allowed = 0u64;
    for i in 0..decisions {
        let class = classes[(i % 3) as usize];
        let region = &regions[(i / 3 % 6) as usize];
        let partner = &regions[(i / 18 % 6) as usize];
        allowed += u64::from(engine.allows_distribution(black_box(class), region, partner));
        allowed += u64::from(engine.accept(black_box(class), region).allowed);
    }
    let table = started.elapsed();
    let direct_runs = 20_000u64;
    let started = Instant::now();
    for i in 0..direct_runs {
        let class = classes[(i % 3) as usize];
        allowed += u64::from(engine.accept(black_box(class), "Atlantis").allowed);
    }
    let direct = started.elapsed();
    black_box(allowed);
    println!(
        "policy load (parse, validate, {} table decisions): {load_ms:.2} ms",
        3 * 6 + 3 * 6 * 6
    );
    println!(
        "table decisions: {:.1} M/s ({:.1} ns per accept + distribution pair)",
        (2 * decisions) as f64 / table.as_secs_f64() / 1e6,
        table.as_nanos() as f64 / decisions as f64
    );
    println!(
        "direct Cedar evaluations (unlisted region): {:.0}/s ({:.1} µs each)",
        direct_runs as f64 / direct.as_secs_f64(),
        direct.as_micros() as f64 / direct_runs as f64
    );
    Ok(())
}
