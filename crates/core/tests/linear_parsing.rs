//! SPEC §11: parsers are linear, so no body costs more than a few ms of CPU
//! per 100 KB. Found while writing the fuzz targets (fuzz/regressions/
//! telemetry_json/many-distinct-keys.json is a small instance): a JSON
//! object with many distinct keys used to cost time quadratic in its size,
//! because duplicates were found by comparing every key with every earlier
//! one (1 MiB of 87,000 keys: about 10 s of CPU in a release build).

use qunimbus_core::{QuoteRequest, RegionSet};
use std::time::{Duration, Instant};

/// `{"k0000000":0,"k0000001":0,…}` with `n` distinct keys.
fn object_with_keys(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("\"k{i:07}\":0")).collect();
    format!("{{{}}}", fields.join(","))
}

/// The fastest of three parses, so a scheduling hiccup does not count.
fn parse_time(text: &str) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let result = QuoteRequest::parse_json(text, &RegionSet::default());
            let elapsed = started.elapsed();
            assert!(result.is_err(), "unknown fields must be refused");
            elapsed
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn many_distinct_keys_cost_linear_time() {
    let small = object_with_keys(1_000);
    let large = object_with_keys(16_000);
    let (t_small, t_large) = (parse_time(&small), parse_time(&large));
    // 16 times the keys: about 16 times the time if linear, 256 if quadratic.
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-6);
    assert!(
        ratio < 64.0,
        "{} keys took {t_small:?}, {} keys {t_large:?}: {ratio:.0}× for 16× the input",
        1_000,
        16_000
    );
}
