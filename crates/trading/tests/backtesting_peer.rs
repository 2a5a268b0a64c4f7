//! Our backtest against the PyPI `backtesting` package (an independent
//! backtester) on the GOOG data it ships: its README's `SmaCross` (SMA 10 /
//! 20, `exclusive_orders=True`, `finalize_trades=True`, commission 0.2 %)
//! and ours with `sma_cross`, all-in sizing and the same fee must enter and
//! exit on the same bars at the same prices. The peer's example also goes
//! short, which spot trading cannot: its long trades are compared, and the
//! final equity against the peer running the same strategy long-only
//! (`position.close()` instead of `sell()`), within the peer's whole-unit
//! sizing. Needs python3 with `backtesting` (scripts/test installs it);
//! fails, never skips, without it.

use qunimbus_trading::backtest::{run, Market, Sizing};
use qunimbus_trading::{strategy, CandleReader, Costs, Instrument, Tier};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const PEER: &str = r##"
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import backtesting
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA
class SmaCross(Strategy):
    def init(self):
        self.ma1 = self.I(SMA, self.data.Close, 10)
        self.ma2 = self.I(SMA, self.data.Close, 20)
    def next(self):
        if crossover(self.ma1, self.ma2):
            self.buy()
        elif crossover(self.ma2, self.ma1):
            self.sell()
class SmaCrossLong(SmaCross):
    def next(self):
        if crossover(self.ma1, self.ma2):
            self.buy()
        elif crossover(self.ma2, self.ma1):
            self.position.close()
def run(strategy):
    bt = Backtest(GOOG, strategy, cash=10000, commission=.002, exclusive_orders=True, finalize_trades=True)
    return bt.run()
both, long_only = run(SmaCross), run(SmaCrossLong)
trades = [
    [int(t.EntryBar), int(t.ExitBar), float(t.EntryPrice), float(t.ExitPrice), int(t.Size)]
    for t in both._trades.itertuples()
]
print(json.dumps({
    "file": os.path.join(os.path.dirname(backtesting.test.__file__), "GOOG.csv"),
    "trades": trades,
    "long_only_equity": float(long_only["Equity Final [$]"]),
    "long_only_trades": int(long_only["# Trades"]),
}))
"##;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn sma_cross_trades_on_the_same_bars_at_the_same_prices_as_backtesting() {
    let out = Command::new("python3")
        .args(["-c", PEER])
        .output()
        .expect("python3 must be installed (scripts/test checks it)");
    assert!(
        out.status.success(),
        "the backtesting package failed (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = PathBuf::from(peer["file"].as_str().unwrap());
    let instrument = Instrument {
        symbol: "GOOGUSD".into(),
        base: "GOOG".into(),
        quote: "USD".into(),
        tier: 1,
        tick_size: d("0.01"),
        lot_size: d("1"),
        min_quantity: d("1"),
        min_notional: d("0.01"),
    };
    let params: BTreeMap<String, String> = [("fast", "10"), ("slow", "20")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let tier = Tier {
        id: 1,
        max_position_pct: d("20"),
        max_kelly_fraction: d("0.5"),
        max_notional_per_order: d("50000"),
    };
    let market = Market {
        instrument,
        tier,
        strategy_name: "sma_cross".into(),
        bars: Box::new(CandleReader::open(&file).unwrap()),
        strategy: strategy::build("sma_cross", &params).unwrap(),
    };
    let costs = Costs {
        taker_fee: d("0.002"),
        maker_fee: d("0.002"),
        slippage_bps: Decimal::ZERO,
    };
    let result = run(vec![market], d("10000"), costs, Sizing::AllIn).unwrap();

    let long: Vec<(u64, u64, f64, f64)> = peer["trades"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t[4].as_i64().unwrap() > 0)
        .map(|t| {
            (
                t[0].as_u64().unwrap(),
                t[1].as_u64().unwrap(),
                t[2].as_f64().unwrap(),
                t[3].as_f64().unwrap(),
            )
        })
        .collect();
    let ours: Vec<(u64, u64, f64, f64)> = result
        .trades
        .iter()
        .map(|t| {
            (
                t.entry_bar,
                t.exit_bar,
                t.entry_price.to_f64().unwrap(),
                t.exit_price.to_f64().unwrap(),
            )
        })
        .collect();
    assert!(long.len() >= 10, "the peer made {} long trades", long.len());
    assert_eq!(ours, long);
    assert_eq!(
        result.trades.len() as i64,
        peer["long_only_trades"].as_i64().unwrap()
    );

    // The peer buys whole units of (1 − ε) × equity; so do we (lot 1) of all
    // the cash. A one-unit difference in a trade moves equity by at most
    // that unit's round trip.
    let peer_equity = peer["long_only_equity"].as_f64().unwrap();
    let ours_equity = result.final_equity.to_f64().unwrap();
    let one_unit: f64 = result
        .trades
        .iter()
        .map(|t| {
            ((t.exit_price - t.entry_price).abs() + (t.entry_price + t.exit_price) * d("0.002"))
                .to_f64()
                .unwrap()
        })
        .sum();
    assert!(
        (ours_equity - peer_equity).abs() <= one_unit,
        "final equity {ours_equity} vs the peer's {peer_equity} (tolerance {one_unit})"
    );
}
