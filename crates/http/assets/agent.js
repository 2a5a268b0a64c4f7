// The trading agent's panel of the dashboard: GET /v1/agent (state, levels,
// equity), /v1/agent/equity (the curve), /v1/agent/positions,
// /v1/agent/risk (the ladder's history) and /v1/agent/trades (recent fills,
// each with its ledger block). A node without the agent answers 404: the
// panel says so. Every figure comes from the node.

import { compact, css, lineChart } from './charts.js';

const LEVEL_CLASS = { GREEN: 'ok', YELLOW: 'warn', ORANGE: 'warn', RED: 'bad', BLACK: 'bad' };

/** Starts polling; `ui` holds the page's helpers ($, el, getJson, every, Missing, setState). */
export function startAgentPanel(ui) {
  const { $, el, getJson, every, Missing, setState } = ui;
  let curve = [];

  const money = (text) => {
    const v = Number(text);
    return Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : '—';
  };
  const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(2)} %` : '—');

  function drawCurve() {
    const points = curve.map((p) => ({ t: Date.parse(p.market_time), equity: p.equity, drawdown: p.drawdown }));
    const t0 = points.length ? points[0].t : 0;
    const t1 = points.length > 1 ? points[points.length - 1].t : t0 + 60_000;
    const equity = lineChart($('a-equity-chart'), {
      series: [{ name: 'equity', color: css('--s1'), points: points.map((p) => ({ t: p.t, v: p.equity })) }],
      t0,
      t1,
      format: (v) => compact(v, 0),
    });
    lineChart($('a-drawdown-chart'), {
      series: [{ name: 'drawdown', color: css('--s3'), points: points.map((p) => ({ t: p.t, v: -p.drawdown * 100 })) }],
      t0,
      t1,
      format: (v) => `${v.toFixed(Math.abs(v) < 1 ? 2 : 1)} %`,
    });
    $('a-equity-chart').dataset.points = String(equity.equity ?? 0);
    $('a-equity-empty').hidden = points.length > 0;
  }

  function showStatus(s) {
    $('a-mode').textContent = `${s.mode}, ${s.symbols} symbols on the ${s.market} market (seed ${s.seed})`;
    $('a-state').textContent = s.paused ? `${s.trading_state} (paused)` : s.trading_state;
    const level = $('a-level');
    level.textContent = s.emergency_level;
    level.className = LEVEL_CLASS[s.emergency_level] ?? '';
    $('a-confidence').textContent = s.confidence.map((c) => `${c.strategy}: ${c.level} of 7`).join(', ') || '—';
    $('a-equity').textContent = `${money(s.equity)} USDT`;
    $('a-drawdown').textContent = pct(s.drawdown);
    $('a-pnl').textContent = `${money(s.daily_pnl)} USDT`;
    $('a-fills').textContent = `${s.fills} (${s.trades_closed} round trips closed)`;
    $('a-market-time').textContent = s.market_time ? s.market_time.replace('T', ' ').slice(0, 19) : 'no bar yet';
  }

  function showPositions(list) {
    const rows = list.slice(0, 12).map((p) =>
      el('tr', {}, el('td', {}, p.symbol), el('td', {}, p.quantity), el('td', {}, p.entry_price ?? '—'),
        el('td', {}, compact(p.last_price, 6)), el('td', { class: (p.unrealised_pnl ?? 0) < 0 ? 'bad' : 'ok' }, compact(p.unrealised_pnl, 2))),
    );
    $('a-positions').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'no open position'))]));
  }

  function showLadder(risk) {
    const items = risk.ladder_history.slice(-6).reverse().map((t) =>
      el('li', {}, `${t.market_time.replace('T', ' ').slice(0, 19)}: ${t.from} → ${t.to} (${t.cause}, drawdown ${pct(t.drawdown)})${t.block_index !== null ? `, block ${t.block_index}` : ''}`),
    );
    $('a-ladder').replaceChildren(...(items.length ? items : [el('li', { class: 'muted' }, 'GREEN since the start: no transition yet')]));
  }

  function showFills(list) {
    const rows = list.fills.map((f) =>
      el('tr', { 'data-block': String(f.block_index ?? '') },
        el('td', {}, f.market_time.replace('T', ' ').slice(11, 19)), el('td', {}, f.symbol),
        el('td', { class: f.side === 'buy' ? 'ok' : 'warn' }, f.side), el('td', {}, f.quantity), el('td', {}, f.price),
        el('td', {}, f.block_index ?? 'pending')),
    );
    $('a-fill-rows').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '6', class: 'muted' }, 'no fill yet'))]));
  }

  async function poll() {
    let status;
    try {
      status = await getJson('/v1/agent');
    } catch (e) {
      if (e instanceof Missing) {
        setState('agent', 'not-available');
        $('agent-body').replaceChildren(el('p', { class: 'muted' }, 'not available: this node runs without the trading agent (serve --agent)'));
      } else setState('agent', 'error');
      throw e;
    }
    const [equity, positions, risk, fills] = await Promise.all([
      getJson('/v1/agent/equity'),
      getJson('/v1/agent/positions'),
      getJson('/v1/agent/risk'),
      getJson('/v1/agent/trades?limit=8'),
    ]);
    showStatus(status);
    curve = equity.points;
    drawCurve();
    showPositions(positions);
    showLadder(risk);
    showFills(fills);
    setState('agent', status.fills > 0 ? 'trading' : 'ok');
  }

  every(2000, poll);
  return drawCurve;
}
