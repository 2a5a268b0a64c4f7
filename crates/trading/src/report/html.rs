//! The backtest report as one self-contained HTML page: inline CSS, inline
//! SVG charts of equity and drawdown, the metrics, the risk history and a
//! sortable trade table. It loads nothing from anywhere.

use serde_json::Value;
use std::fmt::Write;

/// Points drawn per chart at most (extremes of each bucket are kept).
const MAX_POINTS: usize = 2000;
/// Trade rows listed at most.
const MAX_ROWS: usize = 10_000;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b2330;background:#fff}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;font-size:.85rem}\
td,th{border-bottom:1px solid #dde2ea;padding:.25rem .6rem;text-align:right}th{cursor:pointer;background:#f3f5f9}\
td:first-child,th:first-child{text-align:left}svg{width:100%;max-width:1000px;height:auto;background:#fafbfd;border:1px solid #dde2ea}\
.neg{color:#b3261e}.pos{color:#1e7b34}.note{color:#5a6475;font-size:.85rem}";

const SORT_SCRIPT: &str = "document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>{const i=th.cellIndex;\
const body=th.closest('table').tBodies[0];const rows=[...body.rows];const dir=th.dataset.dir==='asc'?-1:1;th.dataset.dir=dir>0?'asc':'desc';\
const key=r=>{const t=r.cells[i].textContent;const n=parseFloat(t);return isNaN(n)?t:n};\
rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*dir});rows.forEach(r=>body.appendChild(r))}));";

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as display text.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// At most [`MAX_POINTS`] of `values`, keeping each bucket's extremes.
fn thin(values: &[f64]) -> Vec<(usize, f64)> {
    if values.len() <= MAX_POINTS {
        return values.iter().copied().enumerate().collect();
    }
    let bucket = values.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for (b, chunk) in values.chunks(bucket).enumerate() {
        let at = |i: usize| (b * bucket + i, chunk[i]);
        let (lo, hi) = chunk.iter().enumerate().fold((0, 0), |(lo, hi), (i, v)| {
            (
                if *v < chunk[lo] { i } else { lo },
                if *v > chunk[hi] { i } else { hi },
            )
        });
        let (first, second) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(at(first));
        if second != first {
            out.push(at(second));
        }
    }
    out
}

/// An SVG line chart of `values` with its range and time span labelled.
fn chart(id: &str, values: &[f64], span: (&str, &str), colour: &str) -> String {
    let (w, h, pad) = (1000.0, 260.0, 30.0);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = if hi > lo { hi - lo } else { 1.0 };
    let last = values.len().saturating_sub(1).max(1) as f64;
    let mut points = String::new();
    for (i, v) in thin(values) {
        let x = pad + (w - 2.0 * pad) * i as f64 / last;
        let y = h - pad - (h - 2.0 * pad) * (v - lo) / range;
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\
<text x=\"{pad}\" y=\"18\" font-size=\"12\">{}</text><text x=\"{pad}\" y=\"{}\" font-size=\"12\">{}</text>\
<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        points.trim_end(),
        esc(&format!("max {hi:.2}")),
        h - pad + 14.0,
        esc(&format!("min {lo:.2}")),
        h - 4.0,
        esc(span.0),
        w - pad,
        h - 4.0,
        esc(span.1),
    )
}

fn number(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

fn table(out: &mut String, id: &str, headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let _ = write!(out, "<table id=\"{id}\" class=\"sortable\"><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The HTML page of a JSON report made by [`super::to_json`].
pub fn to_html(report: &Value) -> String {
    let empty = Vec::new();
    let list = |key: &str| report[key].as_array().unwrap_or(&empty);
    let equity: Vec<f64> = list("equity")
        .iter()
        .map(|p| number(&p["equity"]))
        .collect();
    let mut peak = f64::MIN;
    let drawdown: Vec<f64> = equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            if peak > 0.0 {
                -(1.0 - e / peak) * 100.0
            } else {
                0.0
            }
        })
        .collect();
    let first = list("equity")
        .first()
        .map(|p| show(&p["time"]))
        .unwrap_or_default();
    let last = list("equity")
        .last()
        .map(|p| show(&p["time"]))
        .unwrap_or_default();
    let inputs = &report["inputs"];
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>QBTC backtest: {}</title><style>{STYLE}</style></head><body>\
<h1>QBTC backtest: {} on {}</h1><p class=\"note\">sizing {}, fee {}, cash {}; {}</p>",
        esc(&show(&inputs["strategy"])),
        esc(&show(&inputs["strategy"])),
        esc(&inputs["data"].as_array().map(|d| d.iter().map(show).collect::<Vec<_>>().join(", ")).unwrap_or_default()),
        esc(&show(&inputs["sizing"])),
        esc(&show(&inputs["fee"])),
        esc(&show(&inputs["cash"])),
        esc(&show(&report["metrics"]["annualisation"])),
    );
    out.push_str("<h2>Equity (end of each day)</h2>");
    out.push_str(&chart("equity-chart", &equity, (&first, &last), "#1f5fbf"));
    out.push_str("<h2>Drawdown of the daily equity, %</h2>");
    out.push_str(&chart(
        "drawdown-chart",
        &drawdown,
        (&first, &last),
        "#b3261e",
    ));
    out.push_str("<h2>Metrics</h2>");
    let metrics = report["metrics"].as_object().cloned().unwrap_or_default();
    table(
        &mut out,
        "metrics",
        &["metric", "value"],
        metrics
            .iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, v)| vec![k.clone(), show(v)]),
    );
    risk_section(&mut out, &report["risk"]);
    let trades = list("trades");
    let _ = write!(out, "<h2>Trades ({})</h2>", trades.len());
    if trades.len() > MAX_ROWS {
        let _ = write!(
            out,
            "<p class=\"note\">the first {MAX_ROWS} are listed; the JSON report has all</p>"
        );
    }
    let keys = [
        "symbol",
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "quantity",
        "fees",
        "pnl",
        "return_pct",
    ];
    table(
        &mut out,
        "trades",
        &keys,
        trades
            .iter()
            .take(MAX_ROWS)
            .map(|t| keys.iter().map(|k| show(&t[*k])).collect()),
    );
    let _ = writeln!(out, "<script>{SORT_SCRIPT}</script></body></html>");
    out
}

fn risk_section(out: &mut String, risk: &Value) {
    out.push_str("<h2>Risk</h2>");
    if risk["enforced"] != true {
        let _ = write!(out, "<p class=\"note\">{}</p>", esc(&show(&risk["note"])));
        return;
    }
    let denials = risk["denials"].as_object().cloned().unwrap_or_default();
    table(
        out,
        "denials",
        &["reason", "denied"],
        denials.iter().map(|(k, v)| vec![k.clone(), show(v)]),
    );
    let empty = Vec::new();
    let transitions = risk["emergency_transitions"].as_array().unwrap_or(&empty);
    let _ = write!(
        out,
        "<h2>Emergency ladder ({} transitions)</h2>",
        transitions.len()
    );
    let keys = [
        "time",
        "from",
        "to",
        "state",
        "cause",
        "drawdown_pct",
        "daily_loss_pct",
    ];
    table(
        out,
        "ladder",
        &keys,
        transitions
            .iter()
            .map(|t| keys.iter().map(|k| show(&t[*k])).collect()),
    );
    let levels = risk["confidence"].as_array().unwrap_or(&empty);
    let _ = write!(out, "<h2>Confidence levels ({} changes)</h2>", levels.len());
    let keys = [
        "time",
        "strategy",
        "from",
        "to",
        "trades",
        "profit_factor",
        "win_rate_lower_bound",
    ];
    table(
        out,
        "confidence",
        &keys,
        levels
            .iter()
            .map(|t| keys.iter().map(|k| show(&t[*k])).collect()),
    );
}
