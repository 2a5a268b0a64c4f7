// Small canvas charts for the dashboard: a time-series line chart, a bar
// histogram and a half-circle gauge. Colours come from the page's CSS
// custom properties, so light and dark themes follow the OS.

/** A CSS custom property of the document root, e.g. css('--fg'). */
export function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Sizes the canvas backing store to its CSS box and device pixel ratio. */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, canvas.clientWidth);
  const h = Math.max(1, canvas.clientHeight);
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '12px system-ui, sans-serif';
  return { ctx, w, h };
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { ticks, lo, hi };
}

/** Compact number: 1234 → "1,234", 1.2e9 → "1.2×10⁹". */
export function compact(v, digits = 2) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) {
    const e = Math.floor(Math.log10(a));
    const sup = String(e).replace(/./g, (c) => '⁰¹²³⁴⁵⁶⁷⁸⁹'['0123456789'.indexOf(c)] ?? '⁻');
    return `${(v / 10 ** e).toFixed(digits)}×10${sup}`;
  }
  return v.toLocaleString('en-US', { maximumFractionDigits: digits });
}

function clock(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(11, 19);
}

/**
 * Line chart of time series.
 * series: [{ name, color, points: [{ t (ms), v }] }] sorted by t;
 * t0, t1: the x range (ms). Returns the number of points drawn per series name.
 */
export function lineChart(canvas, { series, t0, t1, format = compact }) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 64, r: 12, t: 10, b: 24 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  const drawn = {};
  const visible = series.map((s) => s.points.filter((p) => p.t >= t0 && p.t <= t1));
  const values = visible.flat().map((p) => p.v);
  const { ticks, lo, hi } = values.length
    ? niceTicks(Math.min(...values), Math.max(...values), 5)
    : niceTicks(0, 1, 5);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * pw;
  const y = (v) => pad.t + ph - ((v - lo) / (hi - lo || 1)) * ph;

  ctx.strokeStyle = css('--grid');
  ctx.fillStyle = css('--muted');
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of ticks) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(w - pad.r, yy);
    ctx.stroke();
    ctx.fillText(format(v), pad.l - 6, yy);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const span = t1 - t0;
  // The smallest of these steps that puts at most 8 labels on the axis.
  const steps = [5, 15, 30, 60, 300, 900, 1800, 3600, 10_800, 21_600].map((s) => s * 1000);
  const step = steps.find((s) => span / s <= 8) ?? steps[steps.length - 1];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const xx = Math.round(x(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, pad.t);
    ctx.lineTo(xx, pad.t + ph);
    ctx.stroke();
    if (xx + 26 <= w) ctx.fillText(clock(t), xx, pad.t + ph + 6);
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.l, pad.t - 4, pw + 4, ph + 8);
  ctx.clip();
  series.forEach((s, i) => {
    const pts = visible[i];
    drawn[s.name] = pts.length;
    if (!pts.length) return;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    pts.forEach((p, k) => (k ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
    ctx.stroke();
    const last = pts[pts.length - 1];
    ctx.beginPath();
    ctx.arc(x(last.t), y(last.v), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.restore();
  return drawn;
}

/** Bar histogram: bins [{ label, count }]. */
export function histogram(canvas, { bins, color }) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 44, r: 8, t: 8, b: 34 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  const max = Math.max(1, ...bins.map((b) => b.count));
  const { ticks, hi } = niceTicks(0, max, 3);
  ctx.strokeStyle = css('--grid');
  ctx.fillStyle = css('--muted');
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of ticks) {
    const yy = Math.round(pad.t + ph - (v / hi) * ph) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(w - pad.r, yy);
    ctx.stroke();
    ctx.fillText(compact(v, 0), pad.l - 6, yy);
  }
  const bw = pw / Math.max(1, bins.length);
  const every = Math.ceil(bins.length / Math.max(1, Math.floor(pw / 56)));
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  bins.forEach((b, i) => {
    const bh = (b.count / hi) * ph;
    ctx.fillStyle = color;
    ctx.fillRect(pad.l + i * bw + 1, pad.t + ph - bh, Math.max(1, bw - 2), bh);
    if (i % every === 0) {
      ctx.fillStyle = css('--muted');
      ctx.fillText(b.label, pad.l + i * bw + bw / 2, pad.t + ph + 5);
    }
  });
  ctx.fillStyle = css('--muted');
  ctx.textAlign = 'right';
  ctx.fillText('upper bound, ms', w - pad.r, pad.t + ph + 19);
}

/** Half-circle gauge of value / target (value null: empty). */
export function gauge(canvas, { value, target }) {
  const { ctx, w, h } = prepare(canvas);
  const r = Math.max(10, Math.min(w / 2 - 16, h - 34));
  const cx = w / 2;
  const cy = h - 22;
  const arc = (from, to, color, width) => {
    ctx.beginPath();
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.lineCap = 'butt';
    ctx.arc(cx, cy, r, Math.PI + from * Math.PI, Math.PI + to * Math.PI);
    ctx.stroke();
  };
  arc(0, 1, css('--grid'), 18);
  if (value !== null && Number.isFinite(value) && target > 0) {
    const share = Math.min(1, Math.max(0, value / target));
    arc(0, share, value >= target ? css('--ok') : css('--accent'), 18);
  }
  ctx.fillStyle = css('--muted');
  ctx.textBaseline = 'top';
  ctx.textAlign = 'center';
  ctx.fillText('0', cx - r, cy + 6);
  ctx.fillText(`target ${compact(target, 1)}`, cx + r - 10, cy + 6);
}
