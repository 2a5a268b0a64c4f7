use super::*;
use crate::engine::{Engine, LaneSpec};
use crate::instrument::test_btcusdt;
use crate::ladder::Level;
use crate::matching::Side;
use crate::risk::Denial;
use crate::risk::TradingState;
use crate::strategy::Signal;
use crate::universe::test_tier1;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// 2024-01-01T00:00:00Z.
const START_US: i64 = 1_704_067_200_000_000;
const MINUTE: i64 = 60_000_000;

/// One-minute bars whose closes are `closes` (each opens at the last close).
fn bars(closes: &[f64]) -> Vec<Candle> {
    let mut open = closes[0];
    closes
        .iter()
        .enumerate()
        .map(|(i, &close)| {
            let bar = Candle {
                open_time_us: START_US + i as i64 * MINUTE,
                open,
                high: open.max(close),
                low: open.min(close),
                close,
                volume: 1.0,
            };
            open = close;
            bar
        })
        .collect()
}

/// Enters on bar 10k and exits on bar 10k + 5.
struct Clock(u64);

impl Strategy for Clock {
    fn on_bar(&mut self, _: &Candle) -> Signal {
        self.0 += 1;
        match self.0 % 10 {
            0 => Signal::Enter,
            5 => Signal::Exit,
            _ => Signal::Hold,
        }
    }
}

fn market(closes: &[f64]) -> Market {
    Market {
        instrument: test_btcusdt(),
        ..offset_market(closes, 0)
    }
}

/// ETHUSDT on the same closes, its own strategy clock started `offset` bars in.
fn offset_market(closes: &[f64], offset: u64) -> Market {
    let mut instrument = test_btcusdt();
    instrument.symbol = "ETHUSDT".into();
    Market {
        instrument,
        tier: test_tier1(),
        strategy_name: format!("clock+{offset}"),
        bars: Box::new(bars(closes).into_iter().map(Ok)),
        strategy: Box::new(Clock(offset)),
    }
}

fn kelly() -> Sizing {
    Sizing::Kelly(RiskConfig::default())
}

/// Rounds to cents so every price is on the tick.
fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn rising(n: usize, from: f64) -> Vec<f64> {
    (0..n)
        .map(|i| cents(from * 1.001f64.powi(i as i32)))
        .collect()
}

#[test]
fn kelly_probes_first_then_sizes_from_the_measured_edge_within_the_tier() {
    let result = run(
        vec![market(&rising(1200, 100.0))],
        d("10000"),
        Costs::default(),
        kelly(),
    )
    .unwrap();
    let notional = |t: &Trade| t.entry_price * t.quantity;
    let first = &result.trades[0];
    // Probe 0.25 % × confidence 4's throttle 0.55 of 10,000 = 13.75.
    assert!(
        (notional(first) - d("13.75")).abs() <= first.entry_price * d("0.00001"),
        "{first:?}"
    );
    // Every trade wins, so the edge grows until the tier's 20 % caps it.
    let last = result.trades.last().unwrap();
    assert!(notional(last) > d("1000"), "{last:?}");
    for t in &result.trades {
        assert!(notional(t) <= result.final_equity * d("0.2"), "{t:?}");
    }
    let risk = result.risk.as_ref().unwrap();
    assert_eq!(risk.measured_trades, result.trades.len() as u64);
    assert!(risk.confidence.iter().all(|(_, _, c)| c.to == c.from + 1));
    // Cash reconciles exactly with the trades.
    let pnl: Decimal = result.trades.iter().map(|t| t.pnl).sum();
    assert_eq!(result.final_equity, d("10000") + pnl);
}

#[test]
fn a_crash_turns_red_flattens_halts_for_the_day_then_trading_resumes() {
    // BTCUSDT holds through a 56 % crash; ETHUSDT (same prices, its own
    // strategy track) is flat during it. The gains of the day cushion the
    // day's loss: the crash must cost more than them plus 3 % of the day's
    // starting equity.
    let mut closes = rising(1000, 100.0);
    let top = *closes.last().unwrap();
    closes.extend((1..=5).map(|i| cents(top * 0.85f64.powi(i))));
    let bottom = *closes.last().unwrap();
    closes.extend(rising(2000, bottom).into_iter().skip(1));
    let markets = vec![market(&closes), offset_market(&closes, 5)];
    let result = run(markets, d("10000"), Costs::default(), kelly()).unwrap();
    let risk = result.risk.as_ref().unwrap();
    let red = risk
        .transitions
        .iter()
        .find(|t| t.to == Level::Red)
        .unwrap_or_else(|| panic!("no RED in {:?}", risk.transitions));
    assert_eq!(red.cause, "daily loss limit");
    assert!(red.measures.daily_loss >= 0.03);
    // The position was sold at the next open by the ladder.
    let flattened = result
        .trades
        .iter()
        .find(|t| t.exit_time_us > red.time_us)
        .unwrap();
    assert_eq!(flattened.exit_time_us, red.time_us + MINUTE);
    // BTCUSDT's measured edge is gone; ETHUSDT's entries during the rest of
    // the day were denied, and it traded again the next day.
    let halted = risk
        .denials
        .iter()
        .find(|(r, _)| *r == Denial::TradingStateHalted)
        .unwrap()
        .1;
    assert!(halted > 0);
    let next_day = START_US + 86_400_000_000;
    let resumed = risk
        .transitions
        .iter()
        .find(|t| t.from == Level::Red)
        .unwrap();
    assert_eq!(resumed.time_us, next_day);
    assert!(result
        .trades
        .iter()
        .all(|t| t.entry_time_us <= red.time_us || t.entry_time_us > next_day));
    assert!(result
        .trades
        .iter()
        .any(|t| t.entry_time_us > next_day && t.symbol == "ETHUSDT"));
    assert!(risk.no_edge > 0);
    let pnl: Decimal = result.trades.iter().map(|t| t.pnl).sum();
    assert_eq!(result.final_equity, d("10000") + pnl);
}

#[test]
fn comparison_sizing_carries_no_risk_history() {
    let result = run(
        vec![market(&rising(100, 100.0))],
        d("10000"),
        Costs::default(),
        Sizing::AllIn,
    )
    .unwrap();
    assert!(result.risk.is_none());
    assert_eq!(
        result.market_change,
        [(
            "BTCUSDT".to_string(),
            100.0,
            cents(100.0 * 1.001f64.powi(99))
        )]
    );
}

/// Drives an engine over `closes` from bar `from` to `to` (exclusive).
fn drive(engine: &mut Engine, closes: &[Candle], range: std::ops::Range<usize>) {
    for bar in &closes[range] {
        engine.begin_step(bar.open_time_us).unwrap();
        engine.on_bar(0, *bar).unwrap();
        engine.mark(bar.open_time_us).unwrap();
    }
}

#[test]
fn the_operator_pauses_kills_and_resets_the_live_engine() {
    let candles = bars(&rising(1000, 100.0));
    let Market {
        instrument,
        tier,
        strategy_name,
        strategy,
        ..
    } = market(&[100.0]);
    let spec = LaneSpec {
        instrument,
        tier,
        strategy_name,
        strategy,
    };
    let mut engine = Engine::new(vec![spec], d("10000"), Costs::default(), kelly());
    drive(&mut engine, &candles, 0..400);
    let journal = engine.take_journal();
    assert!(journal.fills.len() > 20);
    assert!(journal
        .fills
        .iter()
        .filter(|f| f.fill.side == Side::Buy)
        .all(|f| f.sizing.is_some()));
    assert!(engine.take_journal().fills.is_empty());
    // Paused: reduce-only, entries denied as REDUCING, exits still pass.
    assert!(engine.set_paused(true));
    drive(&mut engine, &candles, 400..450);
    let view = engine.snapshot().unwrap().desk.unwrap();
    assert_eq!(view.state, TradingState::Reducing);
    let reducing = view
        .denials
        .iter()
        .find(|(r, _)| *r == Denial::TradingStateReducing)
        .unwrap()
        .1;
    assert!(reducing >= 4, "{reducing}");
    assert!(engine.set_paused(false));
    // Held at bar 505 (entered at 500); the kill sells it at the next open.
    drive(&mut engine, &candles, 450..503);
    assert!(engine.snapshot().unwrap().positions[0].quantity > Decimal::ZERO);
    assert!(engine.kill(candles[502].open_time_us).unwrap());
    drive(&mut engine, &candles, 503..504);
    let snapshot = engine.snapshot().unwrap();
    assert_eq!(snapshot.positions[0].quantity, Decimal::ZERO);
    let desk = snapshot.desk.unwrap();
    assert_eq!(
        (desk.level, desk.state),
        (Level::Black, TradingState::Halted)
    );
    let journal = engine.take_journal();
    assert_eq!(journal.transitions.last().unwrap().cause, "kill switch");
    assert_eq!(journal.fills.last().unwrap().fill.side, Side::Sell);
    drive(&mut engine, &candles, 504..600);
    let killed = |e: &Engine| {
        let view = e.snapshot().unwrap().desk.unwrap();
        view.denials
            .iter()
            .find(|(r, _)| *r == Denial::KillSwitch)
            .unwrap()
            .1
    };
    assert!(killed(&engine) >= 9);
    assert!(engine.take_journal().fills.is_empty());
    assert!(!engine.reset(candles[600].open_time_us, " "));
    assert!(engine.reset(candles[600].open_time_us, "drill over"));
    drive(&mut engine, &candles, 600..700);
    assert!(!engine.take_journal().fills.is_empty());
}
