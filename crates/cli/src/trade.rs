//! `qunimbus trade backtest`: a strategy over candle files on the paper
//! matching engine, with a JSON report. Bad input exits with status 2 and
//! one line naming the file, line and field; no report is written then.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use qunimbus_trading::backtest::{self, Market, Sizing};
use qunimbus_trading::{report, strategy, CandleReader, Costs, Universe};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Input the command refuses; `main` exits with status 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Trading commands.
#[derive(Subcommand)]
pub enum TradeCommand {
    /// Backtest a strategy on candle files (several files: several symbols
    /// sharing one portfolio).
    #[command(
        after_help = "Example:\n  qunimbus trade backtest --data BTCUSDT-1m.csv --strategy sma_cross --param fast=10 --param slow=30 --json report.json"
    )]
    Backtest(BacktestArgs),
}

/// How entries are sized.
#[derive(Clone, Copy, ValueEnum)]
pub enum SizingArg {
    /// `--fraction` of equity per entry.
    FixedFraction,
    /// All free cash (to compare with other backtesters).
    AllIn,
}

/// `qunimbus trade backtest`.
#[derive(Args)]
pub struct BacktestArgs {
    /// A candle file (Binance kline CSV, freqtrade JSON or Date/OHLCV CSV),
    /// as FILE or FILE:SYMBOL; without SYMBOL, the file name's first part
    /// (`BTCUSDT-1m.csv` → BTCUSDT).
    #[arg(long = "data", required = true)]
    data: Vec<String>,
    /// sma_cross, rsi_reversion or donchian_breakout.
    #[arg(long)]
    strategy: String,
    /// A strategy parameter, `name=value` (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Universe file (default: the built-in 77 USDT symbols).
    #[arg(long)]
    universe: Option<PathBuf>,
    /// Starting cash in the quote asset.
    #[arg(long, default_value = "10000")]
    cash: String,
    /// Fee per fill, a fraction of notional (taker and maker).
    #[arg(long, default_value = "0.001")]
    fee: String,
    /// Slippage of market fills, basis points.
    #[arg(long, default_value = "0")]
    slippage_bps: String,
    /// Entry sizing.
    #[arg(long, value_enum, default_value = "fixed-fraction")]
    sizing: SizingArg,
    /// Fraction of equity per entry with `--sizing fixed-fraction`.
    #[arg(long, default_value = "0.1")]
    fraction: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn decimal(
    flag: &str,
    text: &str,
    min: Decimal,
    max: Option<Decimal>,
) -> Result<Decimal, BadInput> {
    let value = Decimal::from_str(text.trim())
        .map_err(|_| BadInput(format!("--{flag}: {text:?} is not a decimal number")))?;
    if value < min || max.is_some_and(|m| value > m) {
        let range = max.map_or(format!("at least {min}"), |m| {
            format!("between {min} and {m}")
        });
        return Err(BadInput(format!("--{flag}: must be {range}, got {value}")));
    }
    Ok(value)
}

/// The symbol of a `--data` argument and its file.
fn data_symbol(arg: &str) -> (PathBuf, String) {
    if let Some((file, symbol)) = arg.rsplit_once(':') {
        if !symbol.is_empty() && symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
            return (PathBuf::from(file), symbol.to_ascii_uppercase());
        }
    }
    let path = PathBuf::from(arg);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let symbol = stem
        .split(['-', '_', '.'])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    (path, symbol)
}

fn markets(args: &BacktestArgs, universe: &Universe) -> Result<Vec<Market>, BadInput> {
    let mut params = BTreeMap::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| BadInput(format!("--param {p:?}: expected name=value")))?;
        params.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut markets = Vec::new();
    for arg in &args.data {
        let (file, symbol) = data_symbol(arg);
        let instrument = universe.instrument(&symbol).cloned().ok_or_else(|| {
            BadInput(format!("--data {arg}: symbol {symbol:?} is not in the universe (use FILE:SYMBOL or --universe)"))
        })?;
        let bars = CandleReader::open(&file).map_err(|e| BadInput(e.to_string()))?;
        let strategy =
            strategy::build(&args.strategy, &params).map_err(|e| BadInput(e.to_string()))?;
        markets.push(Market {
            instrument,
            bars: Box::new(bars),
            strategy,
        });
    }
    Ok(markets)
}

/// Writes `text` to `path` whole or not at all.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a trading command.
pub fn run(command: TradeCommand) -> Result<()> {
    let TradeCommand::Backtest(args) = command;
    let universe = match &args.universe {
        Some(path) => Universe::load(path),
        None => Universe::default_universe(),
    }
    .map_err(|e| BadInput(e.to_string()))?;
    let cash = decimal("cash", &args.cash, Decimal::new(1, 8), None)?;
    let fee = decimal("fee", &args.fee, Decimal::ZERO, Some(Decimal::new(1, 1)))?;
    let slippage_bps = decimal(
        "slippage-bps",
        &args.slippage_bps,
        Decimal::ZERO,
        Some(Decimal::from(1000)),
    )?;
    let sizing = match args.sizing {
        SizingArg::AllIn => Sizing::AllIn,
        SizingArg::FixedFraction => Sizing::FixedFraction(decimal(
            "fraction",
            &args.fraction,
            Decimal::new(1, 6),
            Some(Decimal::ONE),
        )?),
    };
    let costs = Costs {
        taker_fee: fee,
        maker_fee: fee,
        slippage_bps,
    };
    let markets = markets(&args, &universe)?;
    let result =
        backtest::run(markets, cash, costs, sizing).map_err(|e| BadInput(e.to_string()))?;
    let inputs = serde_json::json!({
        "data": args.data,
        "strategy": args.strategy,
        "params": args.params,
        "cash": cash.normalize().to_string(),
        "fee": fee.normalize().to_string(),
        "slippage_bps": slippage_bps.normalize().to_string(),
        "sizing": match sizing { Sizing::AllIn => "all_in".to_string(), Sizing::FixedFraction(f) => format!("fixed_fraction {}", f.normalize()) },
    });
    let report = report::to_json(&result, inputs);
    let m = &report["metrics"];
    println!(
        "{} bars, {} trades, final equity {} ({:.2} %), max drawdown {:.2} %, fees {}",
        result.bars,
        m["trades"],
        result.final_equity.round_dp(2),
        m["total_return_pct"].as_f64().unwrap_or(0.0),
        m["max_drawdown_pct"].as_f64().unwrap_or(0.0),
        result.fees_paid.round_dp(2)
    );
    if let Some(path) = &args.json {
        write_atomically(
            path,
            &format!("{}\n", serde_json::to_string_pretty(&report)?),
        )?;
        println!("report: {}", path.display());
    }
    Ok(())
}
