//! Tests of loading and validating universe files.

use super::*;

const SMALL: &str = r#"quote = "USDT"

[[tier]]
id = 1
max_position_pct = "20"
max_kelly_fraction = "0.5"
max_notional_per_order = "50000"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
tier = 1
tick_size = "0.01"
lot_size = "0.00001"
min_quantity = "0.00001"
min_notional = "5"
"#;

fn error_of(text: &str) -> UniverseError {
    Universe::parse(text, "u.toml").unwrap_err()
}

#[test]
fn the_default_universe_has_77_symbols_in_6_tiers_with_the_spec_limits() {
    let u = Universe::default_universe().unwrap();
    assert_eq!(u.instruments.len(), 77);
    assert_eq!(u.tiers.len(), 6);
    let limits: Vec<(String, String, String)> = u
        .tiers
        .values()
        .map(|t| {
            (
                t.max_position_pct.normalize().to_string(),
                t.max_kelly_fraction.normalize().to_string(),
                t.max_notional_per_order.normalize().to_string(),
            )
        })
        .collect();
    let expected = [
        ("20", "0.5", "50000"),
        ("12", "0.4", "20000"),
        ("8", "0.3", "10000"),
        ("5", "0.25", "5000"),
        ("3", "0.2", "2000"),
        ("1.5", "0.1", "1000"),
    ];
    for (got, want) in limits.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
    }
    let tier1: Vec<&str> = u
        .instruments
        .iter()
        .filter(|i| i.tier == 1)
        .map(|i| i.symbol.as_str())
        .collect();
    assert_eq!(tier1, ["BTCUSDT", "ETHUSDT"]);
    assert!(u.instruments.iter().all(|i| i.quote == "USDT"));
    assert_eq!(u.instrument("SOLUSDT").map(|i| i.tier), Some(2));
}

#[test]
fn a_duplicate_symbol_names_its_line() {
    let text = format!("{SMALL}\n{}", &SMALL[SMALL.find("[[symbol]]").unwrap()..]);
    let e = error_of(&text);
    assert_eq!(e.key, "symbol[1].symbol");
    assert_eq!(e.line, 19);
    assert!(e.message.contains("listed twice"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("u.toml:19: `symbol[1].symbol`: {}", e.message)
    );
}

#[test]
fn out_of_range_limits_unknown_tiers_and_bad_decimals_are_named() {
    let e = error_of(&SMALL.replace("\"0.5\"", "\"1.5\""));
    assert_eq!((e.key.as_str(), e.line), ("tier[0].max_kelly_fraction", 6));
    let e = error_of(&SMALL.replace("max_position_pct = \"20\"", "max_position_pct = \"0\""));
    assert_eq!((e.key.as_str(), e.line), ("tier[0].max_position_pct", 5));
    let e = error_of(&SMALL.replace("tier = 1", "tier = 7"));
    assert_eq!((e.key.as_str(), e.line), ("symbol[0].tier", 12));
    let e = error_of(&SMALL.replace("\"0.01\"", "\"0,01\""));
    assert_eq!((e.key.as_str(), e.line), ("symbol[0].tick_size", 13));
    let e = error_of(&SMALL.replace("min_quantity = \"0.00001\"", "min_quantity = \"0.000015\""));
    assert_eq!(e.key, "symbol[0].min_quantity");
    let e = error_of(&SMALL.replace("symbol = \"BTCUSDT\"", "symbol = \"BTCUSD\""));
    assert_eq!(e.key, "symbol[0].symbol");
}

#[test]
fn syntax_errors_and_unknown_keys_carry_the_line() {
    let e = error_of(&SMALL.replace("lot_size", "lot_sizes"));
    assert_eq!(e.key, "(syntax)");
    assert_eq!(e.line, 14, "{e}");
    assert!(e.message.contains("lot_sizes"), "{e}");
    let e = error_of("quote = \"USDT\"\n[[tier]\n");
    assert_eq!((e.key.as_str(), e.line), ("(syntax)", 2));
}
