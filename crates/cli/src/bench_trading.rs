//! `qunimbus bench candles`, `bench backtest`, `bench decisions` and `bench
//! trading` (all three): how fast candle files are read and checked, how
//! fast the backtest engine runs beside the PyPI `backtesting` package, and
//! how long Kelly sizing plus the pre-trade gate take per order.

use anyhow::{bail, Context, Result};
use qunimbus_trading::risk::{AccountView, Gate, GateLimits, OrderRequest, Purpose};
use qunimbus_trading::sizing::{entry_quantity, KellyConfig, SizeInputs, TradeWindow};
use qunimbus_trading::{backtest, strategy, Candle, CandleReader, Costs, Instrument, Side, Tier};
use rust_decimal::Decimal;
use std::io::{BufWriter, Write};
use std::time::Instant;

/// Writes `bars` one-minute Binance klines of a random walk to a temporary
/// file, reads them back through [`CandleReader`] and prints the rate.
pub fn candles(bars: u64) -> Result<()> {
    if bars == 0 {
        bail!("--bars must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("BTCUSDT-1m.csv");
    let mut out = BufWriter::new(std::fs::File::create(&path)?);
    let mut price = 60_000.0f64;
    let start_ms: u64 = 1_700_000_000_000;
    for i in 0..bars {
        // A deterministic wiggle: the bench measures parsing, not the walk.
        let step = ((i * 7919) % 201) as f64 / 100.0 - 1.0;
        let open = price;
        price = (price + step * 10.0).max(1.0);
        let (high, low) = (open.max(price) + 5.0, open.min(price) - 5.0);
        let t = start_ms + i * 60_000;
        writeln!(
            out,
            "{t},{open:.2},{high:.2},{low:.2},{price:.2},{:.5},{},{:.2},{},{:.5},{:.2},0",
            12.5 + step,
            t + 59_999,
            (12.5 + step) * price,
            100 + i % 50,
            6.0 + step,
            (6.0 + step) * price
        )?;
    }
    out.flush()?;
    drop(out);
    let size = std::fs::metadata(&path)?.len();
    let started = Instant::now();
    let mut read = 0u64;
    let mut checksum = 0.0;
    for bar in CandleReader::open(&path)? {
        let bar = bar.context("reading the generated file")?;
        checksum += bar.close;
        read += 1;
    }
    let took = started.elapsed().as_secs_f64();
    if read != bars {
        bail!("read {read} bars of {bars}");
    }
    println!(
        "candles: {read} Binance kline rows ({:.1} MB) in {took:.2} s = {:.0} MB/s, {:.0} bars/s (checksum {checksum:.0})",
        size as f64 / 1e6,
        size as f64 / 1e6 / took,
        read as f64 / took
    );
    Ok(())
}

/// A deterministic one-minute random walk (no I/O: the bench measures the
/// engine).
fn synthetic_bars(bars: u64) -> impl Iterator<Item = Candle> {
    let mut price = 60_000.0f64;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..bars).map(move |i| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let step = (state % 2001) as f64 / 1000.0 - 1.0;
        let open = price;
        price = (price * (1.0 + step * 0.001)).max(1.0);
        Candle {
            open_time_us: 1_700_000_000_000_000 + i as i64 * 60_000_000,
            open: (open * 100.0).round() / 100.0,
            high: (open.max(price) * 100.0).round() / 100.0 + 1.0,
            low: (open.min(price) * 100.0).round() / 100.0 - 1.0,
            close: (price * 100.0).round() / 100.0,
            volume: 1.0,
        }
    })
}

const PEER: &str = r##"
import sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA
df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
class SmaCross(Strategy):
    def init(self):
        self.a = self.I(SMA, self.data.Close, 10)
        self.b = self.I(SMA, self.data.Close, 30)
    def next(self):
        if crossover(self.a, self.b):
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()
bt = Backtest(df, SmaCross, cash=10_000_000_000, commission=.001, exclusive_orders=True, finalize_trades=True)
t = time.perf_counter(); s = bt.run(); took = time.perf_counter() - t
print(len(df) / took, int(s["# Trades"]))
"##;

/// Bars per second of the peer `backtesting` package on `bars` of the same
/// walk, or why it could not be measured.
fn peer_rate(bars: u64) -> Result<(f64, u64), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("bars.csv");
    let mut text = String::from("Date,Open,High,Low,Close,Volume\n");
    for c in synthetic_bars(bars) {
        let t = chrono::DateTime::from_timestamp_micros(c.open_time_us).unwrap_or_default();
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            t.format("%Y-%m-%d %H:%M:%S"),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume
        ));
    }
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("python3")
        .args(["-c", PEER])
        .arg(&path)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace();
    let rate = fields
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or("no rate")?;
    let trades = fields
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or("no trade count")?;
    Ok((rate, trades))
}

/// `sma_cross` (10/30, all-in, 0.1 % fee) on `bars` synthetic one-minute
/// bars on one core, and the peer on `peer_bars` of the same walk. The cash
/// is large so that the peer's whole-unit sizing never runs out of units
/// to buy as fees wear the equity down (else it stops trading early).
pub fn backtest(bars: u64, peer_bars: u64) -> Result<()> {
    if bars == 0 {
        bail!("--bars must be at least 1");
    }
    let universe = qunimbus_trading::Universe::default_universe()?;
    let instrument = universe
        .instrument("BTCUSDT")
        .cloned()
        .context("BTCUSDT is in the built-in universe")?;
    let tier = universe
        .tier_of(&instrument)
        .cloned()
        .context("BTCUSDT's tier is in the built-in universe")?;
    let run = |n: u64| -> Result<(f64, usize)> {
        // In memory before the clock starts, as the peer's DataFrame is.
        let bars: Vec<Candle> = synthetic_bars(n).collect();
        let params = [("fast", "10"), ("slow", "30")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let market = backtest::Market {
            instrument: instrument.clone(),
            tier: tier.clone(),
            strategy_name: "sma_cross".into(),
            bars: Box::new(bars.into_iter().map(Ok)),
            strategy: strategy::build("sma_cross", &params)?,
        };
        let started = Instant::now();
        let result = backtest::run(
            vec![market],
            Decimal::from(1_000_000),
            Costs::default(),
            backtest::Sizing::AllIn,
        )?;
        Ok((
            n as f64 / started.elapsed().as_secs_f64(),
            result.trades.len(),
        ))
    };
    let (ours, trades) = run(bars)?;
    println!("backtest: sma_cross on {bars} bars in memory: {ours:.0} bars/s on one core ({trades} trades)");
    if peer_bars == 0 {
        return Ok(());
    }
    let (ours_small, our_trades) = run(peer_bars)?;
    match peer_rate(peer_bars) {
        Ok((peer, peer_trades)) => println!(
            "peer backtesting (PyPI) on the first {peer_bars} bars: {peer:.0} bars/s ({peer_trades} trades; ours {our_trades}, {ours_small:.0} bars/s) → ours/peer = {:.0}× (target ≥ 300×)",
            ours / peer
        ),
        Err(why) => println!("peer not measured (python3 with the backtesting package: {why})"),
    }
    Ok(())
}

/// The trading benchmarks at their default sizes, in one run.
pub fn all() -> Result<()> {
    candles(2_000_000)?;
    backtest(10_000_000, 200_000)?;
    decisions(2_000_000)
}

/// One decision: the Kelly fraction of a track, the entry size, and the
/// gate's check of the order. Returns whether the gate approved.
fn decide(
    gate: &mut Gate,
    kelly: &KellyConfig,
    track: &TradeWindow,
    market: (&Instrument, &Tier, Decimal),
    i: u64,
) -> bool {
    let (instrument, tier, base_price) = market;
    let price = instrument.floor_price(base_price * Decimal::new(10_000 + (i % 977) as i64, 4));
    let equity = Decimal::from(100_000 + (i % 5_000) as i64);
    let fraction = kelly.risk_fraction(track, tier);
    let inputs = SizeInputs {
        equity,
        price,
        stop_distance: None,
        free_cash: equity,
        position_value: Decimal::ZERO,
        fee: Decimal::new(1, 3),
    };
    let quantity = instrument.floor_quantity(entry_quantity(fraction, 0.85, tier, &inputs));
    let order = OrderRequest {
        instrument,
        tier,
        side: if i.is_multiple_of(3) {
            Side::Sell
        } else {
            Side::Buy
        },
        quantity,
        price,
        priced: false,
        purpose: Purpose::Trade,
    };
    let account = AccountView {
        equity,
        free_cash: equity,
        position: if i.is_multiple_of(2) {
            quantity
        } else {
            Decimal::ZERO
        },
        gross_exposure: Decimal::from(20_000),
        day_loss: Decimal::ZERO,
    };
    gate.check(i as i64 * 250_000, &order, &account).is_ok()
}

/// `decisions` sizing + gate decisions over the universe's instruments:
/// first timed as a whole (decisions per second), then each one timed
/// (latency percentiles).
pub fn decisions(decisions: u64) -> Result<()> {
    if decisions == 0 {
        bail!("--decisions must be at least 1");
    }
    let universe = qunimbus_trading::Universe::default_universe()?;
    // Each instrument priced so that one lot is worth about 1 USDT.
    let markets: Vec<(&Instrument, &Tier, Decimal)> = universe
        .instruments
        .iter()
        .filter_map(|i| {
            universe
                .tier_of(i)
                .map(|t| (i, t, Decimal::ONE / i.lot_size))
        })
        .collect();
    let kelly = KellyConfig::default();
    // A measured track with an edge: 100 trades, 60 % winning 1.5 %, the
    // rest losing 1 %.
    let mut track = TradeWindow::new(kelly.kelly_window);
    for n in 0..100 {
        track.push(if n % 5 < 3 { 0.015 } else { -0.01 });
    }
    let mut gate = Gate::new(GateLimits::default());
    let market = |i: u64| markets[(i % markets.len() as u64) as usize];
    let started = Instant::now();
    let mut approved = 0u64;
    for i in 0..decisions {
        approved += u64::from(decide(&mut gate, &kelly, &track, market(i), i));
    }
    let rate = decisions as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(decisions as usize);
    for i in 0..decisions {
        let t = Instant::now();
        std::hint::black_box(decide(&mut gate, &kelly, &track, market(i), i));
        latencies.push(t.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    let denied: Vec<String> = gate
        .denials()
        .filter(|(_, n)| *n > 0)
        .map(|(reason, n)| format!("{} {n}", reason.code()))
        .collect();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "decisions: {decisions} Kelly sizing + pre-trade checks over {} instruments: {rate:.0} decisions/s on one core (target > 1,000,000); latency p50 {:.2} µs, p99 {:.2} µs (target < 5), p99.9 {:.2} µs, max {:.2} µs; {approved} approved, {} denied ({})",
        markets.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
        decisions - approved,
        denied.join(", ")
    );
    Ok(())
}
