//! Tests of the candle readers: each format, detection, and every rejection
//! naming its file, line and field.

use super::*;
use std::io::Cursor;

fn read(text: &str, json: bool) -> Result<Vec<Candle>, CandleError> {
    CandleReader::new(Cursor::new(text.as_bytes().to_vec()), "bars", json)?.collect()
}

fn error(text: &str, json: bool) -> (usize, String) {
    let e = read(text, json).unwrap_err();
    assert_eq!(e.file, "bars");
    (e.line, e.field)
}

const KLINE_ROW: &str = "0,100.0,110.5,95.25,105.0,12.5,59999,1300.0,42,6.0,630.0,0";

#[test]
fn binance_klines_with_and_without_header_in_ms_and_us() {
    let ms = "1700000000000,100.0,110.5,95.25,105.0,12.5,1700000059999,1300.0,42,6.0,630.0,0\n\
              1700000060000,105.0,106,104,105.5,3,1700000119999,315.0,7,1.0,105.0,0\n";
    let bars = read(ms, false).unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(
        bars[0],
        Candle {
            open_time_us: 1_700_000_000_000_000,
            open: 100.0,
            high: 110.5,
            low: 95.25,
            close: 105.0,
            volume: 12.5
        }
    );
    let header = format!("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\r\n{}", ms.replace('\n', "\r\n"));
    assert_eq!(read(&header, false).unwrap(), bars);
    // Binance writes µs open times in spot files from 2025; detected per row.
    let us = ms.replacen("1700000060000,", "1700000060000000,", 1);
    let mixed = read(&us, false).unwrap();
    assert_eq!(mixed[1].open_time_us, 1_700_000_060_000_000);
    let reader = CandleReader::new(Cursor::new(ms.as_bytes().to_vec()), "bars", false).unwrap();
    assert_eq!(reader.format(), CandleFormat::BinanceKlines);
}

#[test]
fn generic_ohlcv_as_the_backtesting_package_ships_it() {
    let text = ",Open,High,Low,Close,Volume\n\
                2004-08-19,100.0,104.06,95.96,100.34,22351900\n\
                2004-08-20,101.01,109.08,100.5,108.31,11428600\n";
    let bars = read(text, false).unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0].open_time_us, 1_092_873_600_000_000);
    assert_eq!(bars[1].close, 108.31);
    let named = "Date,Volume,Close,Low,High,Open\n2017-04-19 09:00:00,1,2,0.5,3,1.5\n";
    let bar = read(named, false).unwrap()[0];
    assert_eq!(
        (bar.open, bar.high, bar.low, bar.close, bar.volume),
        (1.5, 3.0, 0.5, 2.0, 1.0)
    );
    assert_eq!(bar.open_time_us, 1_492_592_400_000_000);
    let rfc = "time,open,high,low,close,volume\n2017-04-19T09:00:00Z,1,2,0.5,1.5,10\n";
    assert_eq!(
        read(rfc, false).unwrap()[0].open_time_us,
        1_492_592_400_000_000
    );
}

#[test]
fn freqtrade_json_over_several_lines() {
    let text = "[\n  [1700000000000, 100, 110.5, 95.25, 105, 12.5],\n  [1700000060000,105,106,104,105.5,3]\n]\n";
    let bars = read(text, true).unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0].high, 110.5);
    assert_eq!(bars[1].open_time_us, 1_700_000_060_000_000);
    assert_eq!(read("[]", true).unwrap(), vec![]);
    assert_eq!(error("[\n[1,2,3,4,5]\n]", true), (2, "volume".into()));
    assert_eq!(
        error("[\n[1,2,3,1,2,3]\n,\n[2,x,3,1,2,3]]", true),
        (4, "open".into())
    );
    assert_eq!(error("[[1,2,3,1,2,3]] [", true).1, "(json)");
    assert_eq!(error("[[1,2,3,1,2,3]", true).1, "(json)");
    assert_eq!(error("[[1.5,2,3,1,2,3]]", true).1, "open_time");
}

#[test]
fn bad_bars_name_the_line_and_field() {
    let row = |t: u64, o: &str, h: &str, l: &str| {
        format!("{t},{o},{h},{l},105.0,12.5,0,1300.0,42,6.0,630.0,0\n")
    };
    let ok = row(60_000, "100", "110", "90");
    assert_eq!(
        error(&format!("{ok}{}", row(60_000, "100", "110", "90")), false),
        (2, "open_time".into())
    );
    assert_eq!(
        error(&format!("{ok}{}", row(0, "100", "110", "90")), false),
        (2, "open_time".into())
    );
    assert_eq!(
        error(
            &format!("{ok}\n\n{}", row(120_000, "100", "80", "90")),
            false
        ),
        (4, "high".into())
    );
    assert_eq!(
        error(&row(60_000, "-1", "110", "90"), false),
        (1, "open".into())
    );
    assert_eq!(
        error(&row(60_000, "NaN", "110", "90"), false),
        (1, "open".into())
    );
    assert_eq!(
        error(&row(60_000, "inf", "110", "90"), false),
        (1, "open".into())
    );
    assert_eq!(
        error(&row(60_000, "1e", "110", "90"), false),
        (1, "open".into())
    );
    assert_eq!(error(&format!("{ok}1,2,3\n"), false), (2, "(row)".into()));
    assert_eq!(error("Date,Open,High\n", false), (1, "(header)".into()));
    assert_eq!(
        error(
            "Date,Open,High,Low,Close,Volume\n2004-13-01,1,2,0,1,1\n",
            false
        ),
        (2, "date".into())
    );
    let header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,b,q,ignore";
    let bad_time = KLINE_ROW.replacen('0', "x", 1);
    assert_eq!(
        error(&format!("{header}\n{bad_time}\n"), false),
        (2, "open_time".into())
    );
}

#[test]
fn the_reader_stops_after_the_first_error() {
    let text = "60000,1,2,3,1,1,0,0,0,0,0,0\n120000,1,2,1,1,1,0,0,0,0,0,0\n";
    let items: Vec<_> = CandleReader::new(Cursor::new(text.as_bytes().to_vec()), "bars", false)
        .unwrap()
        .collect();
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

#[test]
fn a_file_is_read_in_a_stream_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("BTCUSDT-1m.csv");
    let mut text = String::new();
    for i in 0..10_000u64 {
        text.push_str(&format!("{},1,2,0.5,1.5,10,0,0,0,0,0,0\n", i * 60_000));
    }
    std::fs::write(&path, &text).unwrap();
    let bars: Vec<Candle> = CandleReader::open(&path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bars.len(), 10_000);
    assert_eq!(bars[9_999].open_time_us, 9_999 * 60_000_000);
    let e = CandleReader::open(&dir.path().join("missing.csv"))
        .err()
        .unwrap();
    assert!(e.file.ends_with("missing.csv") && e.line == 0, "{e}");
}
