//! `qunimbus bench candles`: how fast candle files are read and checked.

use anyhow::{bail, Context, Result};
use qunimbus_trading::CandleReader;
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
