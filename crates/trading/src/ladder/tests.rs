use super::*;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn ladder() -> Ladder {
    Ladder::new(LadderConfig::default(), 100.0)
}

/// Observes `equity` at `time`, held, and returns the level entered if any.
fn step(l: &mut Ladder, time: i64, equity: f64) -> Option<Level> {
    l.observe(time, equity, false).map(|t| t.to)
}

#[test]
fn drawdown_climbs_the_ladder_one_rule_at_a_time() {
    let mut l = ladder();
    // −2 % a day stays under the daily loss limit; drawdown accumulates.
    let mut equity = 100.0;
    let mut entered = Vec::new();
    for day in 1..=9 {
        equity *= 0.98;
        if let Some(level) = step(&mut l, day * DAY, equity) {
            entered.push((day, level));
        }
    }
    // 0.98³ = 0.941 (5.9 %), 0.98⁶ = 0.886 (11.4 %), 0.98⁸ = 0.851 (14.9 %),
    // 0.98⁹ = 0.834 (16.6 %).
    assert_eq!(
        entered,
        [(3, Level::Yellow), (6, Level::Orange), (9, Level::Red)]
    );
    assert_eq!(l.level().state(), TradingState::Halted);
    assert!(l.level().flattens());
}

#[test]
fn a_level_falls_only_after_the_cooldown() {
    let mut l = ladder();
    step(&mut l, 0, 100.0);
    assert_eq!(step(&mut l, HOUR, 97.5), None);
    // The next day (daily loss measured from 97.5): 94.8 is 5.2 % down.
    assert_eq!(step(&mut l, DAY, 94.8), Some(Level::Yellow));
    assert_eq!(l.level().throttle(), 0.5);
    assert_eq!(step(&mut l, DAY + HOUR, 96.0), None);
    assert_eq!(step(&mut l, DAY + 90 * 60_000_000, 96.0), None);
    // Back above the line again resets nothing; falling back under does.
    assert_eq!(step(&mut l, DAY + 100 * 60_000_000, 94.6), None);
    assert_eq!(step(&mut l, DAY + 2 * HOUR, 96.0), None);
    assert_eq!(step(&mut l, DAY + 3 * HOUR - 1, 96.0), None);
    let t = l.observe(DAY + 3 * HOUR, 96.0, false).unwrap();
    assert_eq!(
        (t.from, t.to, t.cause.as_str()),
        (Level::Yellow, Level::Green, "conditions clear")
    );
}

#[test]
fn red_on_daily_loss_holds_for_the_rest_of_the_day() {
    let mut l = ladder();
    step(&mut l, 0, 100.0);
    let t = l.observe(HOUR, 96.9, false).unwrap();
    assert_eq!((t.to, t.cause.as_str()), (Level::Red, "daily loss limit"));
    assert!((t.measures.daily_loss - 0.031).abs() < 1e-12);
    assert_eq!(step(&mut l, 10 * HOUR, 100.0), None);
    assert_eq!(step(&mut l, DAY - 1, 100.0), None);
    assert_eq!(step(&mut l, DAY, 100.0), Some(Level::Green));
}

#[test]
fn black_holds_until_an_operator_resets_it_with_a_reason() {
    let mut l = ladder();
    step(&mut l, 0, 100.0);
    let t = l.observe(HOUR, 79.0, false).unwrap();
    assert_eq!(
        (t.to, t.cause.as_str()),
        (Level::Black, "drawdown from the all-time peak")
    );
    assert_eq!(step(&mut l, 3 * DAY, 120.0), None);
    assert_eq!(l.level(), Level::Black);
    assert!(l.reset(3 * DAY, "  ").is_none());
    let t = l.reset(3 * DAY, "post-mortem done").unwrap();
    assert_eq!(
        (t.to, t.cause.as_str()),
        (Level::Green, "operator reset: post-mortem done")
    );
    assert!(l.reset(3 * DAY, "again").is_none());
}

#[test]
fn the_kill_switch_goes_black_at_once() {
    let mut l = ladder();
    step(&mut l, 0, 100.0);
    let t = l.kill(HOUR).unwrap();
    assert_eq!((t.from, t.to), (Level::Green, Level::Black));
    assert_eq!(step(&mut l, 2 * DAY, 100.0), None);
    assert_eq!(l.reset(2 * DAY, "tested").map(|t| t.to), Some(Level::Green));
    assert_eq!(step(&mut l, 2 * DAY + HOUR, 100.0), None);
}

#[test]
fn a_volatile_day_against_the_median_turns_yellow() {
    let mut l = ladder();
    // Six calm days: ±0.1 % moves each hour.
    for day in 0..6 {
        for hour in 0..24 {
            let time = day * DAY + hour * HOUR;
            let equity = if hour % 2 == 0 { 100.0 } else { 100.1 };
            assert_eq!(step(&mut l, time, equity), None);
        }
    }
    // Day 7: ±0.5 % moves; the sum of squares passes 2× the calm median.
    let mut entered = None;
    for hour in 0..24 {
        let time = 6 * DAY + hour * HOUR;
        let equity = if hour % 2 == 0 { 100.0 } else { 100.5 };
        if let Some(t) = l.observe(time, equity, false) {
            entered.get_or_insert((hour, t.to, t.cause));
        }
    }
    let (hour, level, cause) = entered.unwrap();
    assert_eq!(
        (level, cause.as_str()),
        (Level::Yellow, "realised volatility")
    );
    // A calm day: 24 moves of ln(1.001) = √24 × 0.0009995 = 0.0048966.
    // Today: one small move, then ln(1.005) = 0.0049875 an hour; the sum of
    // squares passes (2 × 0.0048966)² at the fourth large move, hour 4.
    assert_eq!(hour, 4);
}

#[test]
fn a_flat_book_ends_the_drawdown_episode_at_the_next_day() {
    let mut l = ladder();
    step(&mut l, 0, 100.0);
    for day in 1..=6 {
        step(&mut l, day * DAY, 100.0 * 0.98f64.powi(day as i32));
    }
    assert_eq!(l.level(), Level::Orange);
    let equity = 100.0 * 0.98f64.powi(6);
    // Flat through the next day boundary: a new episode from 88.6.
    assert_eq!(l.observe(7 * DAY, equity, true), None);
    assert!(l.measures().drawdown.abs() < 1e-12);
    assert!((l.measures().max_drawdown - (1.0 - equity / 100.0)).abs() < 1e-12);
    assert_eq!(
        l.observe(7 * DAY + HOUR, equity, true).map(|t| t.to),
        Some(Level::Green)
    );
}
