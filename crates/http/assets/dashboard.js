// The QuNimbus node dashboard. Reads only this node's own endpoints:
//   /v1/dashboard/stream (SSE, throttled phi points), /v1/market/status and
//   /metrics (latency, throughput, timestamps), /v1/ledger (+ /verify), and
//   /v1/regions, /v1/mesh, /v1/rollouts (Trust Kernel; "not available" on 404),
//   and the trading agent's routes (agent.js).
// Every value shown was measured by the node; nothing is invented.

import { startAgentPanel } from './agent.js';
import { compact, css, gauge, histogram, lineChart } from './charts.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const MISSING_RETRY_MS = 60_000;

/** Builds an element; children are nodes or text (never parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const fmtNumMs = (v) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '—');
const fmtMs = (v) => (Number.isFinite(v) ? `${fmtNumMs(v)} ms` : '—');
const fmtUsd = (v) => (Number.isFinite(v) ? `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}` : '—');
// Hours as h, or as min / s below an hour (the demo compresses its clock).
const fmtHours = (v) => {
  if (v >= 1) return `${v.toLocaleString('en-US', { maximumFractionDigits: 1 })} h`;
  if (v * 60 >= 1) return `${(v * 60).toLocaleString('en-US', { maximumFractionDigits: 1 })} min`;
  return `${(v * 3600).toLocaleString('en-US', { maximumFractionDigits: 0 })} s`;
};

// ---- server clock --------------------------------------------------------------------------

let clockOffset = 0;
function noteServerTime(text) {
  const t = Date.parse(text);
  if (Number.isFinite(t)) clockOffset = t - Date.now();
}
const serverNow = () => Date.now() + clockOffset;

function when(text) {
  const t = Date.parse(text);
  if (!Number.isFinite(t)) return text ?? '—';
  const ago = Math.max(0, Math.round((serverNow() - t) / 1000));
  const age = ago < 90 ? `${ago} s ago` : ago < 5400 ? `${Math.round(ago / 60)} min ago` : `${Math.round(ago / 3600)} h ago`;
  return `${new Date(t).toISOString().replace('T', ' ').slice(0, 19)} UTC (${age})`;
}

// ---- fetching ------------------------------------------------------------------------------

class Missing extends Error {}

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (response.status === 404) throw new Missing(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function getText(path) {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.text();
}

/** Calls `tick` now and every `ms`; a 404 (Missing) slows it to MISSING_RETRY_MS. */
function every(ms, tick) {
  const run = async () => {
    let wait = ms;
    try {
      await tick();
    } catch (e) {
      if (e instanceof Missing) wait = MISSING_RETRY_MS;
    }
    setTimeout(run, wait);
  };
  run();
}

function setState(panel, state) {
  $(panel).dataset.state = state;
}

// ---- Prometheus text -------------------------------------------------------------------------

/** Parses OpenMetrics / Prometheus text into [{ name, labels, value }]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

const metricValue = (samples, name) => samples.find((s) => s.name === name)?.value;

// ---- phi trend (live stream) -----------------------------------------------------------------

const trend = {
  regions: [],
  series: new Map(), // region → [{ t, v, seq }]
  windowMs: 300_000,
  active: null,
  latest: new Map(), // region → point
};

function regionIndex(region) {
  let i = trend.regions.indexOf(region);
  if (i < 0) {
    trend.regions.push(region);
    i = trend.regions.length - 1;
  }
  return i;
}

function addPoint(p) {
  regionIndex(p.region);
  const t = Date.parse(p.accepted_at);
  if (!Number.isFinite(t) || !Number.isFinite(p.phi_qevf)) return;
  const list = trend.series.get(p.region) ?? [];
  if (list.length && list[list.length - 1].seq >= p.seq) return;
  list.push({ t, v: p.phi_qevf, seq: p.seq });
  // Pruned here too: a hidden tab gets no animation frames but keeps streaming.
  const oldest = serverNow() - trend.windowMs - 10_000;
  while (list.length && list[0].t < oldest) list.shift();
  trend.series.set(p.region, list);
  trend.latest.set(p.region, p);
}

function pruneTrend() {
  const oldest = serverNow() - trend.windowMs - 10_000;
  for (const list of trend.series.values()) {
    let drop = 0;
    while (drop < list.length && list[drop].t < oldest) drop++;
    if (drop) list.splice(0, drop);
  }
}

let trendFrame = 0;
function scheduleTrend() {
  if (!trendFrame) trendFrame = requestAnimationFrame(drawTrend);
}

function drawTrend() {
  trendFrame = 0;
  pruneTrend();
  // The last `windowMs`, or less while the node has not streamed that long
  // (at least 30 s), so early points are not squeezed to the edge.
  const t1 = serverNow();
  const earliest = Math.min(...[...trend.series.values()].map((l) => l[0]?.t ?? Infinity));
  const t0 = Math.max(t1 - trend.windowMs, Math.min(earliest - 2_000, t1 - 30_000));
  const series = trend.regions.map((name, i) => ({
    name,
    color: css(`--s${(i % 8) + 1}`),
    points: trend.series.get(name) ?? [],
  }));
  const canvas = $('phi-chart');
  const drawn = lineChart(canvas, { series, t0, t1, format: (v) => compact(v, 2) });
  const withPoints = Object.values(drawn).filter((n) => n > 0).length;
  const total = Object.values(drawn).reduce((a, n) => a + n, 0);
  canvas.dataset.regionsWithPoints = String(withPoints);
  canvas.dataset.pointsTotal = String(total);
  $('phi-empty').hidden = total > 0;
  $('phi-empty').textContent = trend.active === false ? 'no data yet: the market feed is deactivated' : 'no data yet';

  const legend = $('phi-legend');
  legend.replaceChildren(
    ...trend.regions.map((name, i) => {
      const last = trend.latest.get(name);
      const item = el(
        'li',
        { 'data-region': name, 'data-points': String(drawn[name] ?? 0) },
        el('span', { class: `swatch c${(i % 8) + 1}`, 'aria-hidden': 'true' }),
        el('span', {}, name),
        el('span', { class: 'muted' }, last ? fmtUsd(last.phi_qevf) : 'no data yet'),
      );
      if (last) item.title = `block ${last.block_index}, feed seq ${last.seq}, EPH price ${last.eph_price.toPrecision(4)} USD`;
      return item;
    }),
  );
}

function setActive(active) {
  trend.active = active;
  const dd = $('market-active');
  dd.textContent = active ? 'publishing' : 'deactivated';
  dd.className = active ? 'ok' : 'warn';
  $('phi-note').textContent = active
    ? ''
    : 'The market feed is deactivated: the node publishes no live valuations until an operator activates it.';
  scheduleTrend();
}

function connectStream() {
  const source = new EventSource('/v1/dashboard/stream');
  const state = $('stream-state');
  source.onopen = () => {
    state.textContent = 'live';
    state.className = 'ok';
  };
  source.onerror = () => {
    state.textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…';
    state.className = 'warn';
  };
  source.addEventListener('hello', (e) => {
    const hello = JSON.parse(e.data);
    noteServerTime(hello.server_time);
    $('log-origin').textContent = hello.origin;
    trend.windowMs = hello.window_seconds * 1000;
    for (const r of hello.regions) regionIndex(r);
    // The last minutes from the database first (seq order), then the newest per region.
    for (const p of hello.recent ?? []) addPoint(p);
    for (const p of hello.latest) addPoint(p);
    setActive(hello.market_active);
  });
  source.addEventListener('points', (e) => {
    const message = JSON.parse(e.data);
    noteServerTime(message.server_time);
    for (const p of message.points) addPoint(p);
    scheduleTrend();
  });
  source.addEventListener('status', (e) => {
    const message = JSON.parse(e.data);
    noteServerTime(message.server_time);
    setActive(message.market_active);
  });
}

// ---- latency and throughput (status + metrics) -----------------------------------------------

let lastHistogram = null;

function latencyBins(samples, partner) {
  const cumulative = new Map(); // le → count summed over the partners shown
  for (const s of samples) {
    if (s.name !== 'qunimbus_market_latency_seconds_bucket') continue;
    if (partner && s.labels.partner !== partner) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    cumulative.set(le, (cumulative.get(le) ?? 0) + s.value);
  }
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  let previous = 0;
  const bins = bounds.map((le, i) => {
    const count = cumulative.get(le) - previous;
    previous = cumulative.get(le);
    const label = Number.isFinite(le) ? `${+(le * 1000).toPrecision(3)}` : `>${+(bounds[i - 1] * 1000).toPrecision(3)}`;
    return { label, count };
  });
  const used = bins.map((b, i) => (b.count > 0 ? i : -1)).filter((i) => i >= 0);
  if (!used.length) return [];
  return bins.slice(Math.max(0, used[0] - 1), Math.min(bins.length, used[used.length - 1] + 2));
}

function drawLatencyHistogram() {
  if (!lastHistogram) return;
  const bins = latencyBins(lastHistogram, $('lat-partner').value);
  $('lat-empty').hidden = bins.length > 0;
  $('lat-empty').textContent = 'no data yet';
  histogram($('lat-chart'), { bins, color: css('--accent') });
}

function showLatency(status) {
  const perPartner = Object.entries(status.latency.per_partner ?? {});
  const target = status.latency.p99_ms.target;
  const rows = $('lat-rows');
  if (!perPartner.length) {
    rows.replaceChildren(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'no data yet')));
  } else {
    const all = status.latency.overall ? [...perPartner, ['all partners', status.latency.overall]] : perPartner;
    rows.replaceChildren(
      ...all.map(([name, q]) =>
        el(
          'tr',
          { 'data-partner': name },
          el(name === 'all partners' ? 'th' : 'td', name === 'all partners' ? { scope: 'row' } : {}, name),
          el('td', {}, fmtNumMs(q.p50_ms)),
          el('td', { class: q.p99_ms <= target ? 'ok' : 'bad' }, fmtNumMs(q.p99_ms)),
          el('td', {}, fmtNumMs(q.max_ms)),
          el('td', {}, q.count.toLocaleString('en-US')),
        ),
      ),
    );
  }
  const p99 = status.latency.p99_ms;
  $('lat-target').textContent =
    p99.value === null
      ? `Target p99 ≤ ${target} ms. No acknowledgement measured yet.`
      : `Target p99 ≤ ${target} ms: overall p99 ${fmtMs(p99.value)} — ${p99.met ? 'met' : 'not met'}. ${status.partners_connected} partner(s) connected now.`;
  setState('latency', perPartner.length ? 'measured' : 'no-data');

  const select = $('lat-partner');
  const names = perPartner.map(([n]) => n);
  const have = [...select.options].map((o) => o.value).filter(Boolean);
  if (names.some((n) => !have.includes(n))) {
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '' }, 'all partners'), ...names.map((n) => el('option', { value: n }, n)));
    select.value = names.includes(chosen) ? chosen : '';
  }
}

let lastThroughput = null;
function drawGauge() {
  if (lastThroughput) gauge($('eph-gauge'), { value: lastThroughput.value, target: lastThroughput.target });
}

function showThroughput(status) {
  const eph = status.eph_throughput_per_hour;
  lastThroughput = eph;
  drawGauge();
  const window = Math.round(status.throughput_window_seconds);
  if (eph.value === null) {
    $('eph-value').textContent = 'no data yet';
    $('eph-value').className = 'big muted';
    $('eph-target').textContent = `No delivery in the last ${window} s. Target ${compact(eph.target, 1)} EPH/h.`;
    setState('throughput', 'no-data');
  } else {
    const share = (eph.value / eph.target) * 100;
    $('eph-value').textContent = `${compact(eph.value, 2)} EPH/h`;
    $('eph-value').className = `big ${eph.met ? 'ok' : ''}`;
    $('eph-target').textContent = `${share < 0.01 ? share.toExponential(1) : share.toFixed(share < 1 ? 3 : 1)} % of the ${compact(eph.target, 1)} EPH/h target (${eph.met ? 'met' : 'not met'}), measured over the last ${window} s.`;
    setState('throughput', 'measured');
  }
}

let lastMetrics = [];

async function pollMarket() {
  const [status, metrics] = await Promise.allSettled([getJson('/v1/market/status'), getText('/metrics')]);
  if (metrics.status === 'fulfilled') {
    lastMetrics = parseMetrics(metrics.value);
    lastHistogram = lastMetrics;
  }
  if (status.status === 'fulfilled') {
    showLatency(status.value);
    showThroughput(status.value);
    setActive(status.value.active);
  } else {
    setState('latency', 'error');
    setState('throughput', 'error');
    $('lat-target').textContent = `Status unavailable: ${status.reason.message}`;
  }
  drawLatencyHistogram();
}

// ---- ledger ----------------------------------------------------------------------------------

function describeVerification(v) {
  if (!v) return { text: 'not run since the node started', cls: 'muted' };
  const ts = v.timestamps ? `, ${v.timestamps.verified} timestamp token(s) verified, ${v.timestamps.pending} pending` : '';
  const sig = v.signature ? ', checkpoint signature checked' : '';
  if (v.ok) {
    return { text: `OK — ${v.blocks_checked.toLocaleString('en-US')} blocks${sig}${ts}, ${v.duration_ms} ms, ${when(v.checked_at)}`, cls: 'ok' };
  }
  const why = v.failure
    ? `block ${v.failure.index}: ${v.failure.reason}`
    : v.timestamps?.failure
      ? `timestamp of checkpoint ${v.timestamps.failure.tree_size}: ${v.timestamps.failure.reason}`
      : 'see the node log';
  return { text: `FAILED — ${why} (${when(v.checked_at)})`, cls: 'bad' };
}

async function pollLedger() {
  let ledger;
  try {
    ledger = await getJson('/v1/ledger');
  } catch (e) {
    setState('ledger', 'error');
    $('l-length').textContent = `unavailable: ${e.message}`;
    throw e;
  }
  $('l-length').textContent = `${ledger.chain_length.toLocaleString('en-US')} blocks`;
  const cp = ledger.checkpoint;
  if (cp) {
    const lag = ledger.chain_length - cp.tree_size;
    $('l-checkpoint').textContent = `tree size ${cp.tree_size.toLocaleString('en-US')}${lag > 0 ? ` (${lag} block(s) not yet checkpointed)` : ''}`;
    $('l-signed').textContent = when(cp.signed_at);
  } else {
    $('l-checkpoint').textContent = 'no checkpoint signed yet';
    $('l-signed').textContent = '—';
  }
  const tokens = metricValue(lastMetrics, 'qunimbus_tsa_tokens_total');
  const pending = metricValue(lastMetrics, 'qunimbus_tsa_pending');
  const failures = metricValue(lastMetrics, 'qunimbus_tsa_failures_total');
  const tsa = $('l-tsa');
  if (tokens === undefined) {
    tsa.textContent = 'no data yet';
    tsa.className = 'muted';
  } else {
    tsa.textContent = `${tokens} token(s) stored since start, ${pending ?? 0} checkpoint(s) pending, ${failures ?? 0} failure(s)`;
    tsa.className = failures > 0 ? 'warn' : pending > 0 ? '' : 'ok';
  }
  const v = describeVerification(ledger.last_verification);
  $('l-verified').textContent = v.text;
  $('l-verified').className = v.cls;
  setState('ledger', 'ok');
}

async function verifyNow() {
  const button = $('verify-btn');
  const out = $('verify-result');
  button.disabled = true;
  out.textContent = 'verifying every block…';
  out.className = 'muted';
  delete out.dataset.ok;
  try {
    const report = await getJson('/v1/ledger/verify');
    const v = describeVerification(report);
    out.textContent = v.text;
    out.className = v.cls;
    out.dataset.ok = String(report.ok);
  } catch (e) {
    out.textContent = `verification request failed: ${e.message}`;
    out.className = 'bad';
    out.dataset.ok = 'false';
  } finally {
    button.disabled = false;
  }
  pollLedger().catch(() => {});
}

// ---- Trust Kernel: regions, mesh, rollouts ---------------------------------------------------

function notAvailable(panel, container, what) {
  setState(panel, 'not-available');
  $(container).replaceChildren(el('p', { class: 'muted' }, `not available: this node does not serve ${what}`));
}

function trustClass(score) {
  return score < 0.7 ? 't-poor' : score < 0.9 ? 't-fair' : 't-good';
}

function mtbfText(r) {
  if (r.mtbf_hours !== null && r.mtbf_hours !== undefined) return `MTBF ${fmtHours(r.mtbf_hours)}`;
  if (r.failures === 0) return `no failures, ≥ ${fmtHours(r.observed_hours)}`;
  return 'MTBF —';
}

// The evidence behind a region's trust score, shown on hover: how it is
// computed, what the node measured of its telemetry, and its health events
// with their source and the block recording each.
function regionEvidence(r) {
  const lines = [`${r.name}: trust ${r.trust_score.toFixed(3)} (${r.trust_source})`];
  if (r.trust_source === 'override') lines.push(`override reason: ${r.override_reason ?? '—'}; computed ${r.computed_trust.toFixed(3)}`);
  lines.push(`computed = availability ${r.availability.toFixed(4)} − 0.25 × ${r.open_findings ?? 0} open compliance findings`);
  lines.push(`observed ${fmtHours(r.observed_hours)}, ${r.failures} failures`);
  if (r.last_report_at) {
    const every = r.report_interval_ms === null || r.report_interval_ms === undefined ? 'interval not yet learned' : `every ~${r.report_interval_ms.toFixed(0)} ms (${r.report_interval_source})`;
    lines.push(`telemetry: last report ${when(r.last_report_at)}, ${every}`);
  } else {
    lines.push('telemetry: no report since this node started');
  }
  const events = r.events ?? [];
  if (events.length) {
    lines.push('health events (as recorded):');
    for (const e of events) lines.push(`  ${e.kind} at ${when(e.at)}, ${e.source}, block ${e.block_index}`);
  } else {
    lines.push('no health events recorded');
  }
  return lines.join('\n');
}

async function pollRegions() {
  let data;
  try {
    data = await getJson('/v1/regions');
  } catch (e) {
    if (e instanceof Missing) notAvailable('regions', 'heatmap', 'GET /v1/regions');
    else setState('regions', 'error');
    throw e;
  }
  const cells = data.regions.map((r) =>
    el(
      'div',
      {
        class: `cell ${trustClass(r.trust_score)}`,
        role: 'listitem',
        'data-region': r.name,
        'data-trust': String(r.trust_score),
        'data-events': String((r.events ?? []).length),
        title: regionEvidence(r),
      },
      el('div', { class: 'name' }, r.name),
      el('div', { class: 'score' }, r.trust_score.toFixed(2), r.trust_source === 'override' ? el('span', { class: 'hint', title: 'set by an operator' }, 'override') : null),
      el('div', { class: r.status === 'active' ? '' : r.status === 'down' ? 'bad' : 'warn' }, r.status),
      el('div', { class: 'muted' }, `availability ${(r.availability * 100).toFixed(1)} %`),
      el('div', { class: 'muted' }, mtbfText(r)),
    ),
  );
  $('heatmap').replaceChildren(...cells);
  if (!cells.length) $('heatmap').append(el('p', { class: 'muted' }, 'no data yet'));
  setState('regions', 'ok');
}

async function pollMesh() {
  const summary = $('mesh-summary');
  let mesh;
  try {
    mesh = await getJson('/v1/mesh');
  } catch (e) {
    summary.textContent = e instanceof Missing ? 'mesh status not available' : `mesh status unavailable: ${e.message}`;
    throw e;
  }
  const mtbf = mesh.mtbf_hours === null ? 'no failures observed' : `MTBF ${fmtHours(mesh.mtbf_hours)}`;
  summary.replaceChildren(
    `${mesh.active_regions} of ${mesh.total_regions} regions active · average trust ${mesh.average_trust.toFixed(2)} · ${mtbf} (target ≥ ${fmtHours(mesh.mtbf_target_hours)}): `,
    mesh.mtbf_compliant === null
      ? el('span', {}, 'not yet known (too little up time observed)')
      : el('span', { class: mesh.mtbf_compliant ? 'ok' : 'bad' }, mesh.mtbf_compliant ? 'compliant' : 'not compliant'),
  );
}

// Each framework's verdict on hover: its reasons (naming the policies that
// accepted or forbid runs) and the policy in force.
async function pollCompliance() {
  const line = $('compliance-summary');
  let data;
  try {
    data = await getJson('/v1/compliance');
  } catch (e) {
    line.textContent = e instanceof Missing ? 'compliance not available' : `compliance unavailable: ${e.message}`;
    throw e;
  }
  const policy = data.policy ?? {};
  const source = `judged ${when(data.compliance.evaluated_at)} · policy in force sha256 ${(policy.sha256 ?? '').slice(0, 12)}…${policy.block_index !== null && policy.block_index !== undefined ? `, recorded in block ${policy.block_index}` : ''}`;
  const badges = Object.entries(data.compliance.frameworks).map(([name, v]) =>
    el(
      'span',
      {
        class: `badge ${v.compliant === true ? 'ok' : v.compliant === false ? 'bad' : ''}`,
        'data-framework': name,
        title: `${name}: ${v.compliant === null ? 'pending (no evidence source)' : v.compliant ? 'compliant' : 'not compliant'}\n${v.reasons.join('\n')}\n${source}`,
      },
      `${name} ${v.compliant === null ? 'pending' : v.compliant ? '✓' : '✗'}`,
    ),
  );
  line.replaceChildren('Compliance: ', ...badges);
}

const STATE_CLASS = { running: '', paused: 'warn', rolled_back: 'bad', completed: 'ok' };

function rolloutView(r) {
  const phases = r.phases.map((p, i) => {
    const done = r.state === 'completed' || i < r.phase;
    const current = !done && i === r.phase;
    return el(
      'div',
      { class: `phase${done ? ' done' : current ? ' current' : ''}`, 'aria-current': current ? 'step' : 'false' },
      el('span', { class: 'pct' }, `${p.percent} %`),
      p.regions.map((name) => `${name}${r.deployed_regions.includes(name) ? ' ✓' : ''}`).join(', '),
    );
  });
  const n = r.phases.length;
  const at = Math.min(r.phase + 1, n);
  const details =
    r.state === 'completed'
      ? [`all ${n} phases complete`]
      : r.state === 'rolled_back'
        ? [`rolled back during phase ${at} of ${n}`]
        : [`phase ${at} of ${n}`, `${r.phase} complete`];
  if (r.state === 'running' && r.phase_started_at) {
    const left = Date.parse(r.phase_started_at) + r.soak_seconds * 1000 - serverNow();
    if (Number.isFinite(left)) details.push(left > 0 ? `soak ends in ${Math.ceil(left / 1000)} s` : 'soak done, waiting for gates');
  }
  const history = (r.history ?? []).slice(-5).reverse().map((h) =>
    el('li', {}, `${when(h.at)}: ${h.from} → ${h.to}${h.reason ? ` (${h.reason})` : ''}${h.block_index !== undefined ? `, block ${h.block_index}` : ''}`),
  );
  return el(
    'article',
    { class: 'rollout', 'data-rollout': r.id, 'data-state': r.state },
    el('div', { class: 'row' },
      el('strong', {}, `version ${r.version}`),
      el('span', { class: `badge ${STATE_CLASS[r.state] ?? ''}` }, r.state.replace('_', ' ')),
      el('span', { class: 'muted' }, r.id)),
    el('div', { class: 'phases', role: 'list', 'aria-label': 'rollout phases' }, ...phases.map((p) => (p.setAttribute('role', 'listitem'), p))),
    el('p', { class: 'note' }, details.join(' · ')),
    r.reason ? el('p', { class: r.state === 'rolled_back' ? 'bad' : 'warn' }, `Reason: ${r.reason}`) : null,
    history.length ? el('ol', { class: 'history', 'aria-label': 'latest transitions' }, ...history) : null,
  );
}

async function pollRollouts() {
  let data;
  try {
    data = await getJson('/v1/rollouts');
  } catch (e) {
    if (e instanceof Missing) notAvailable('rollouts', 'rollout-body', 'GET /v1/rollouts');
    else setState('rollouts', 'error');
    throw e;
  }
  const list = data.rollouts.slice(0, 3).map(rolloutView);
  $('rollout-body').replaceChildren(...(list.length ? list : [el('p', { class: 'muted' }, 'no rollout yet')]));
  setState('rollouts', 'ok');
}

// ---- start -----------------------------------------------------------------------------------

$('node-origin').textContent = window.location.origin;
$('verify-btn').addEventListener('click', verifyNow);
$('lat-partner').addEventListener('change', drawLatencyHistogram);
connectStream();
every(POLL_MS, pollMarket);
every(3000, pollLedger);
every(5000, pollRegions);
every(5000, pollMesh);
every(5000, pollCompliance);
every(5000, pollRollouts);
setInterval(scheduleTrend, 1000);
const drawAgentCurve = startAgentPanel({ $, el, getJson, every, Missing, setState });
function redraw() {
  scheduleTrend();
  drawAgentCurve();
  drawLatencyHistogram();
  drawGauge();
}
new ResizeObserver(redraw).observe(document.body);
window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', redraw);
