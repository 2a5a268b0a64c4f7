//! A seeded synthetic market for the demo and the node's paper agent (no
//! exchange is reachable from this build). Every instrument follows its
//! own regime-switching random walk of one-minute bars: log returns drawn
//! from a normal distribution whose drift and volatility depend on the
//! regime (calm rise, calm fall, sideways, turbulent), each bar switching
//! to a random regime with probability 1/500. The same seed and
//! instruments give the same bars, bit for bit (splitmix64 drives a
//! Box–Muller normal; no platform-dependent source).

use crate::candles::Candle;
use crate::instrument::Instrument;
use rust_decimal::prelude::ToPrimitive;

/// (drift, volatility) of a one-minute log return per regime.
const REGIMES: [(f64, f64); 4] = [
    (0.000_08, 0.000_8),
    (-0.000_08, 0.000_8),
    (0.0, 0.000_5),
    (0.0, 0.002_5),
];

/// Chance per bar that an instrument changes regime.
const SWITCH_PER_BAR: f64 = 1.0 / 500.0;

const MINUTE_US: i64 = 60_000_000;

/// splitmix64: a tiny, well-mixed, reproducible generator.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Debug, Clone)]
struct Walk {
    price: f64,
    regime: usize,
    /// 10^decimals of the tick (prices are rounded to it).
    scale: f64,
    /// The smallest price kept (one tick).
    floor: f64,
}

/// The synthetic market: the next one-minute bar of every instrument.
#[derive(Debug, Clone)]
pub struct SyntheticMarket {
    rng: SplitMix,
    walks: Vec<Walk>,
    next_time_us: i64,
}

impl SyntheticMarket {
    /// A market for `instruments` from `seed`, its first bar opening at
    /// `start_us` (rounded down to the minute). Each starts near one lot
    /// per 1–4 quote units, so every tier trades at a plausible size.
    pub fn new(seed: u64, instruments: &[Instrument], start_us: i64) -> Self {
        let mut rng = SplitMix(seed);
        let walks = instruments
            .iter()
            .map(|i| {
                let decimals = i.tick_size.normalize().scale().min(12);
                let scale = 10f64.powi(decimals as i32);
                let lot = i.lot_size.to_f64().unwrap_or(1.0).max(1e-12);
                let price = (1.0 + 3.0 * rng.uniform()) / lot;
                Walk {
                    price: (price * scale).round().max(1.0) / scale,
                    regime: (rng.next_u64() % REGIMES.len() as u64) as usize,
                    scale,
                    floor: 1.0 / scale,
                }
            })
            .collect();
        Self {
            rng,
            walks,
            next_time_us: start_us.div_euclid(MINUTE_US) * MINUTE_US,
        }
    }

    /// Open time (µs) of the next bar.
    pub fn next_time_us(&self) -> i64 {
        self.next_time_us
    }

    /// The next minute's bar of every instrument, in instrument order.
    pub fn next_bars(&mut self) -> Vec<Candle> {
        let time = self.next_time_us;
        self.next_time_us += MINUTE_US;
        let rng = &mut self.rng;
        self.walks
            .iter_mut()
            .map(|w| {
                if rng.uniform() < SWITCH_PER_BAR {
                    w.regime = (rng.next_u64() % REGIMES.len() as u64) as usize;
                }
                let (drift, vol) = REGIMES[w.regime];
                let open = w.price;
                let close = round_to(open * (drift + vol * rng.normal()).exp(), w.scale, w.floor);
                let wick = |r: f64| 1.0 + vol * r.abs() * 0.5;
                let high = round_to(open.max(close) * wick(rng.normal()), w.scale, w.floor);
                let low = round_to(open.min(close) / wick(rng.normal()), w.scale, w.floor);
                w.price = close;
                Candle {
                    open_time_us: time,
                    open,
                    high: high.max(open.max(close)),
                    low: low.min(open.min(close)),
                    close,
                    volume: (1.0 + rng.uniform()) * 1_000.0,
                }
            })
            .collect()
    }
}

/// `x` on the grid of `1 / scale`, at least `floor`.
fn round_to(x: f64, scale: f64, floor: f64) -> f64 {
    ((x * scale).round() / scale).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::exact_price;
    use crate::universe::Universe;

    #[test]
    fn the_same_seed_gives_the_same_bars_and_every_bar_is_well_formed() {
        let universe = Universe::default_universe().unwrap();
        let start = 1_704_067_230_000_000;
        let mut a = SyntheticMarket::new(42, &universe.instruments, start);
        let mut b = SyntheticMarket::new(42, &universe.instruments, start);
        let mut c = SyntheticMarket::new(43, &universe.instruments, start);
        assert_eq!(a.next_time_us(), 1_704_067_200_000_000);
        let mut differs = false;
        for minute in 0..2_000 {
            let (x, y, z) = (a.next_bars(), b.next_bars(), c.next_bars());
            assert_eq!(x, y);
            differs |= x != z;
            assert_eq!(x.len(), 77);
            for (bar, instrument) in x.iter().zip(&universe.instruments) {
                assert_eq!(
                    bar.open_time_us,
                    1_704_067_200_000_000 + minute * 60_000_000
                );
                assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close));
                assert!(bar.low > 0.0, "{bar:?}");
                let close = exact_price(bar.close, "close").unwrap();
                assert_eq!(
                    instrument.floor_price(close),
                    close,
                    "{} {bar:?}",
                    instrument.symbol
                );
            }
        }
        assert!(differs);
    }
}
