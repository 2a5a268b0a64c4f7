// Opens a `qunimbus trade backtest --html` report in Debian's headless
// Chromium and checks that it stands alone and renders.
//
//   node tests/browser/backtest_report.mjs REPORT.html TRADES SCREENSHOT.png
//
// Fails on any console or page error and on any request that is not the
// file itself (the report must load nothing); checks that the equity and
// drawdown charts drew a line with a visible size, that the trade table has
// TRADES rows, and that clicking the pnl header sorts the rows by pnl; then
// saves a full-page screenshot. Prints a JSON summary; exit status 0 on
// success, 1 with a reason on stderr otherwise.

import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const [report, trades, screenshot] = process.argv.slice(2);
if (!report || !trades || !screenshot) {
  console.error('usage: node backtest_report.mjs REPORT.html TRADES SCREENSHOT.png');
  process.exit(2);
}
const url = pathToFileURL(report).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => r.url() !== url && problems.push(`request for ${r.url()}`));
  await page.goto(url, { waitUntil: 'load' });
  const charts = {};
  for (const id of ['equity-chart', 'drawdown-chart']) {
    const line = page.locator(`#${id} polyline`);
    const points = ((await line.getAttribute('points')) || '').trim().split(/\s+/).length;
    const box = await line.boundingBox();
    if (points < 2 || !box || box.width < 100) throw new Error(`${id}: ${points} points, box ${JSON.stringify(box)}`);
    charts[id] = { points, width: Math.round(box.width), height: Math.round(box.height) };
  }
  const rows = await page.locator('#trades tbody tr').count();
  if (rows !== Number(trades)) throw new Error(`trade table has ${rows} rows, expected ${trades}`);
  const headers = await page.locator('#trades th').allTextContents();
  const pnl = headers.indexOf('pnl');
  await page.locator('#trades th').nth(pnl).click();
  const values = (await page.locator(`#trades tbody tr td:nth-child(${pnl + 1})`).allTextContents()).map(Number);
  for (let i = 1; i < values.length; i++) {
    if (values[i - 1] > values[i]) throw new Error(`not sorted by pnl at row ${i}: ${values[i - 1]} > ${values[i]}`);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  if (problems.length) throw new Error(problems.join('; '));
  console.log(JSON.stringify({ ok: true, rows, charts, lowest_pnl: values[0], highest_pnl: values[values.length - 1] }));
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
