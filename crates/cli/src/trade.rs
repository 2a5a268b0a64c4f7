//! `qunimbus trade backtest`: a strategy over candle files on the paper
//! matching engine, with a JSON report. Bad input exits with status 2 and
//! one line naming the file, line and field; no report is written then.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use qunimbus_trading::backtest::{self, Market, RiskConfig, Sizing};
use qunimbus_trading::candles::symbol_of_file;
use qunimbus_trading::{report, strategy, CandleReader, Costs, Universe};
use rust_decimal::prelude::ToPrimitive;
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
        after_help = "Example:\n  qunimbus trade backtest --data BTCUSDT-1m.csv --strategy sma_cross --param fast=10 --param slow=30 --json report.json --html report.html"
    )]
    Backtest(BacktestArgs),
}

/// How entries are sized.
#[derive(Clone, Copy, ValueEnum)]
pub enum SizingArg {
    /// Fractional Kelly from the measured edge, with the pre-trade gate, the
    /// emergency ladder and the confidence levels (SPEC §8).
    Kelly,
    /// `--fraction` of equity per entry (instrument filters and cash only).
    #[value(name = "fixed_fraction", alias = "fixed-fraction")]
    FixedFraction,
    /// All free cash, to compare with other backtesters (instrument filters
    /// and cash only).
    #[value(name = "all_in", alias = "all-in")]
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
    #[arg(long, value_enum, default_value = "kelly")]
    sizing: SizingArg,
    /// Fraction of equity per entry with `--sizing fixed_fraction`.
    #[arg(long, default_value = "0.1")]
    fraction: String,
    /// The fraction of full Kelly with `--sizing kelly` (capped by the tier).
    #[arg(long, default_value = "0.25")]
    kelly_fraction: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the HTML report (one self-contained file) here.
    #[arg(long)]
    html: Option<PathBuf>,
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
    let symbol = symbol_of_file(&path);
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
        let tier = universe.tier_of(&instrument).cloned().ok_or_else(|| {
            BadInput(format!(
                "--data {arg}: symbol {symbol:?} has no tier in the universe"
            ))
        })?;
        markets.push(Market {
            instrument,
            tier,
            strategy_name: args.strategy.clone(),
            bars: Box::new(bars),
            strategy,
        });
    }
    Ok(markets)
}

/// Writes `text` to `path` whole or not at all.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The sizing `args` ask for, with its description for the report.
fn sizing(args: &BacktestArgs, costs: &Costs) -> Result<(Sizing, String), BadInput> {
    let fraction = |flag, text| decimal(flag, text, Decimal::new(1, 6), Some(Decimal::ONE));
    Ok(match args.sizing {
        SizingArg::AllIn => (Sizing::AllIn, "all_in".into()),
        SizingArg::FixedFraction => {
            let f = fraction("fraction", &args.fraction)?;
            (
                Sizing::FixedFraction(f),
                format!("fixed_fraction {}", f.normalize()),
            )
        }
        SizingArg::Kelly => {
            let c = fraction("kelly-fraction", &args.kelly_fraction)?;
            let mut risk = RiskConfig::default();
            risk.kelly.kelly_fraction = c.to_f64().unwrap_or(0.0);
            risk.gate.fee = costs.taker_fee;
            (Sizing::Kelly(risk), format!("kelly {}", c.normalize()))
        }
    })
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
    let costs = Costs {
        taker_fee: fee,
        maker_fee: fee,
        slippage_bps,
    };
    let (sizing, sizing_name) = sizing(&args, &costs)?;
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
        "sizing": sizing_name,
    });
    let report = report::to_json(&result, inputs);
    print_summary(&report);
    if let Some(path) = &args.json {
        write_atomically(
            path,
            &format!("{}\n", serde_json::to_string_pretty(&report)?),
        )?;
        println!("report: {}", path.display());
    }
    if let Some(path) = &args.html {
        write_atomically(path, &report::to_html(&report))?;
        println!("html report: {}", path.display());
    }
    Ok(())
}

fn print_summary(report: &serde_json::Value) {
    let m = &report["metrics"];
    println!(
        "{} bars, {} trades, final equity {} ({:.2} %), max drawdown {:.2} %, fees {}",
        m["bars"],
        m["trades"],
        m["final_equity"].as_str().unwrap_or("?"),
        m["total_return_pct"].as_f64().unwrap_or(0.0),
        m["max_drawdown_pct"].as_f64().unwrap_or(0.0),
        m["fees_paid"].as_str().unwrap_or("?"),
    );
    let risk = &report["risk"];
    if risk["enforced"] == true {
        println!(
            "risk: {} approved, denied {}, {} entries without edge, {} at confidence 1, {} ladder transitions",
            risk["approved"],
            risk["denied_total"],
            risk["skipped"]["no_edge"],
            risk["skipped"]["confidence_floor"],
            risk["emergency_transitions"].as_array().map_or(0, Vec::len)
        );
    }
}
