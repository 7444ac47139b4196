// End-to-end browser test of the logcast page (GET /), run by scripts/e2e.sh.
//
// Drives Debian's Chromium (/usr/bin/chromium) with playwright-core (no browser
// download) against a real logcast daemon that this script starts and stops
// itself (it must restart it on the same port mid-stream). Prints one line per
// scenario and a last line `N passed, N failed`; exits 1 on any failure.
//
// Environment (set by scripts/e2e.sh):
//   LOGCAST_BIN   the daemon binary (required)
//   E2E_TMP       a scratch directory (log dir, daemon stderr, pid file)
//   E2E_OUT       where screenshots go (default target/e2e)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//   E2E_ONLY      optional substring: run only the scenarios whose name has it
//   E2E_HEADFUL   set to 1 to watch the browser (needs a display)
//   E2E_PAGE      optional path of an index.html to serve at GET / instead of
//                 the embedded page (same headers): page work without a rebuild

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const BIN = process.env.LOGCAST_BIN;
const TMP = process.env.E2E_TMP || fs.mkdtempSync(path.join(os.tmpdir(), 'logcast-e2e-'));
const OUT = path.resolve(process.env.E2E_OUT || 'target/e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ONLY = process.env.E2E_ONLY || '';
const LOG_DIR = path.join(TMP, 'logs');
const PIDS = path.join(TMP, 'pids');
const DAEMON_ARGS = ['--log-dir', LOG_DIR, '--write-interval-ms', '200', '--poll-interval-ms', '100'];

// ------------------------------------------------------------------ helpers

class Failure extends Error {}
function check(cond, msg) { if (!cond) throw new Failure(msg); }
function eq(got, want, what) {
  if (got !== want) throw new Failure(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}
const rid = () => Math.random().toString(36).slice(2, 10);
const notePid = (pid) => { if (pid) fs.appendFileSync(PIDS, `${pid}\n`); };

let daemonSeq = 0;

/** One logcast process. */
class Daemon {
  static async start(port = 0) {
    const d = new Daemon();
    d.stderrPath = path.join(TMP, `daemon-${++daemonSeq}.stderr`);
    const errFd = fs.openSync(d.stderrPath, 'w');
    d.proc = spawn(BIN, ['--port', String(port), ...DAEMON_ARGS], {
      stdio: ['ignore', 'pipe', errFd],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
    });
    fs.closeSync(errFd);
    notePid(d.proc.pid);
    d.exited = new Promise((resolve) => d.proc.on('exit', (code, signal) => resolve({ code, signal })));
    let out = '';
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon printed no "listening on" line within 20 s (stdout: ${JSON.stringify(out)})\n${d.tail()}`)), 20000);
      d.proc.stdout.on('data', (chunk) => {
        out += chunk;
        const m = /^listening on (http:\/\/[^\s]+)\s*$/m.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
      });
      d.exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`daemon exited at start (code ${code}, signal ${signal})\n${d.tail()}`)); });
    });
    d.url = url;
    d.port = Number(new URL(url).port);
    check(d.port > 0, `daemon printed a URL without a port: ${url}`);
    d.proc.stdout.resume();
    return d;
  }

  tail(n = 25) {
    try {
      const lines = fs.readFileSync(this.stderrPath, 'utf8').trimEnd().split('\n');
      return `--- daemon stderr (${this.stderrPath}, last ${n} lines) ---\n` + lines.slice(-n).join('\n');
    } catch { return ''; }
  }

  /** SIGTERM, wait; returns the exit status. */
  async stop(timeoutMs = 10000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    const res = await Promise.race([this.exited, sleep(timeoutMs, null, { ref: false }).then(() => null)]);
    if (!res) {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new Failure(`daemon did not exit within ${timeoutMs} ms of SIGTERM`);
    }
    return res;
  }
}

/** Appends `line N` to a file every `everyMs` ms. */
class Appender {
  constructor(file, everyMs = 100) {
    this.file = file; this.n = 0;
    this.timer = setInterval(() => this.step(), everyMs);
  }
  step() { this.n += 1; fs.appendFileSync(this.file, `line ${this.n}\n`); }
  stop() { clearInterval(this.timer); return this.n; }
}

// Records every data-state the status pill takes, from the page's start.
const STATE_RECORDER = `
  window.__states = [];
  document.addEventListener('DOMContentLoaded', () => {
    const s = document.getElementById('status');
    if (!s) return;
    window.__states.push(s.dataset.state);
    new MutationObserver(() => {
      const v = s.dataset.state;
      if (window.__states[window.__states.length - 1] !== v) window.__states.push(v);
    }).observe(s, { attributes: true, attributeFilter: ['data-state'] });
  });
`;

async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  await pageFromDisk(context);
  const page = await context.newPage();
  const watch = { console: [], pageErrors: [], dialogs: [], requests: [] };
  page.on('console', (m) => { if (m.type() === 'error') watch.console.push(m.text()); });
  page.on('pageerror', (e) => watch.pageErrors.push(String(e)));
  page.on('dialog', (d) => { watch.dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('request', (r) => watch.requests.push(`${r.method()} ${new URL(r.url()).pathname}${new URL(r.url()).search}`));
  await page.addInitScript(STATE_RECORDER);
  return { context, page, watch };
}

// E2E_PAGE: answer GET / with the daemon's real response but that file's bytes.
async function pageFromDisk(context) {
  const file = process.env.E2E_PAGE;
  if (!file) return;
  await context.route((url) => url.pathname === '/', async (route) => {
    const response = await route.fetch();
    const body = fs.readFileSync(file, 'utf8');
    // The CSP allows the embedded page's inline blocks by hash: hash this file's.
    const hashes = (tag) => [...body.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      .map((m) => `'sha256-${crypto.createHash('sha256').update(m[1]).digest('base64')}'`).join(' ') || "'none'";
    const headers = { ...response.headers() };
    headers['content-security-policy'] = (headers['content-security-policy'] || '')
      .replace(/script-src [^;]*/, `script-src ${hashes('script')}`)
      .replace(/style-src [^;]*/, `style-src ${hashes('style')}`);
    await route.fulfill({ response, headers, body });
  });
}

// Lets a test hide and show a page: document.visibilityState follows window.__vis.
const VISIBILITY = `
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => window.__vis || 'visible' });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => (window.__vis || 'visible') === 'hidden' });
  window.__setVis = (v) => { window.__vis = v; document.dispatchEvent(new Event('visibilitychange')); };
`;

async function metric(name) {
  const text = await (await fetch(ctx.daemon.url + '/metrics')).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function waitFor(what, fn, timeout = 10000, every = 100) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeout) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Failure(`${what} (not within ${timeout} ms)`);
}

const state = (page) => page.$eval('#status', (e) => e.dataset.state);
const detail = (page) => page.$eval('#status-detail', (e) => e.textContent);
const count = (page) => page.$eval('#count', (e) => Number(e.textContent.replace(/[^0-9]/g, '')));
const lineTexts = (page) => page.$$eval('#lines .line', (els) => els.map((e) => e.textContent));
const states = (page) => page.evaluate(() => window.__states || []);

async function waitState(page, want, timeout = 15000) {
  try {
    await page.waitForSelector(`#status[data-state="${want}"]`, { timeout, state: 'attached' });
  } catch {
    throw new Failure(`status never became "${want}" within ${timeout} ms (now "${await state(page)}", detail "${await detail(page)}", states seen ${JSON.stringify(await states(page))})`);
  }
}

async function waitCount(page, atLeast, timeout = 15000) {
  try {
    await page.waitForFunction((n) => Number(document.getElementById('count').textContent.replace(/[^0-9]/g, '')) >= n, atLeast, { timeout });
  } catch {
    throw new Failure(`line count never reached ${atLeast} within ${timeout} ms (now ${await count(page)}, status "${await state(page)}")`);
  }
}

function noBrowserErrors(watch, what = '') {
  check(watch.pageErrors.length === 0, `${what}page errors: ${watch.pageErrors.join(' | ')}`);
  check(watch.console.length === 0, `${what}browser console errors: ${watch.console.join(' | ')}`);
  check(watch.dialogs.length === 0, `${what}dialogs were opened: ${watch.dialogs.join(' | ')}`);
}

function fileLines(file) {
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  lines.pop(); // after the last \n
  return lines;
}

function firstDiff(got, want) {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) return `first difference at row ${i + 1}: got ${JSON.stringify(got[i])}, want ${JSON.stringify(want[i])}`;
  }
  return 'no difference';
}

function writeLog(id, lines, mode) {
  const file = path.join(LOG_DIR, `${id}.log`);
  fs.writeFileSync(file, lines.map((l) => l + '\n').join(''));
  fs.chmodSync(file, mode);
  return file;
}

// A page on a finished log: `id` is written with `lines` (mode 0444), and a page
// (newPage's options, but `query`) opens /?log=<id><query> and waits until it
// says finished. Gives newPage's { page, watch, context }; the caller closes
// `context` in its finally (done here if the page never gets there).
async function finishedLogPage(id, lines, { query = '', ...opts } = {}) {
  writeLog(id, lines, 0o444);
  const p = await newPage(ctx.browser, opts);
  try {
    await p.page.goto(`${ctx.daemon.url}/?log=${id}${query}`);
    await waitState(p.page, 'finished', 10000);
  } catch (e) {
    await p.context.close();
    throw e;
  }
  return p;
}

// A page following a growing log: `id` is made as an empty log that gets a line
// every 40 ms (the Appender starts once the page exists), and a 1000x600 page
// opens /?log=<id> and waits for `atLeast` lines. Gives newPage's { page, watch,
// context } and the log's `file`, its Appender `app` and `atBottom()` (is the
// view scrolled to the newest line?); the caller stops `app` and closes
// `context` in its finally (both are done here if the page never gets there).
async function followingPage(id, atLeast) {
  const file = writeLog(id, [], 0o644);
  const p = await newPage(ctx.browser, { viewport: { width: 1000, height: 600 } });
  const app = new Appender(file, 40);
  const atBottom = () => p.page.$eval('#lines', (v) => v.scrollHeight - v.scrollTop - v.clientHeight < 8);
  try {
    await p.page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitCount(p.page, atLeast, 15000);
  } catch (e) {
    app.stop();
    await p.context.close();
    throw e;
  }
  return { ...p, file, app, atBottom };
}

// Scrolls the log view up with the mouse wheel and waits for "jump to latest"
// (the view no longer follows); `failure` is the message if it never shows.
async function scrollUpToPause(page, failure) {
  const box = await page.locator('#lines').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -600);
  await page.waitForSelector('#jump', { state: 'visible', timeout: 3000 }).catch(() => { throw new Failure(failure); });
}

// Waits for `n` more lines than the page counts now, then 300 ms for the view to settle.
async function waitMoreLines(page, n) {
  const c = await count(page);
  await waitCount(page, c + n, 10000);
  await sleep(300);
}

// ------------------------------------------------------------------ scenarios

const ctx = { daemon: null, browser: null };
const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario('create a 3 s log from the page and stream it to the end', async () => {
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    const resp = await page.goto(ctx.daemon.url + '/');
    eq(resp.status(), 200, 'GET / status');
    const h = resp.headers();
    check(/^text\/html/.test(h['content-type'] || ''), `GET / content-type is ${h['content-type']}`);
    check((h['content-security-policy'] || '').includes("default-src 'none'"), `GET / has no strict Content-Security-Policy (got ${JSON.stringify(h['content-security-policy'])})`);
    eq(await state(page), 'idle', 'initial status');

    await page.fill('#duration', '3');
    await page.click('#create');
    await page.waitForFunction(() => {
      const l = document.querySelector('#lines .line');
      return l && l.textContent.startsWith('[LOG CREATED]');
    }, null, { timeout: 10000 }).catch(async () => {
      throw new Failure(`no "[LOG CREATED]" first line (status "${await state(page)}", detail "${await detail(page)}", create message "${await page.textContent('#create-msg')}")`);
    });
    const id = await page.inputValue('#log-id');
    check(/^[0-9a-f-]{36}$/.test(id), `#log-id holds the new id (got ${JSON.stringify(id)})`);
    check(new URL(page.url()).searchParams.get('log') === id, `URL was updated to ?log=<id> (is ${page.url()})`);
    await waitCount(page, 3, 10000);
    const midState = await state(page);
    await waitState(page, 'finished', 20000);

    const seen = await states(page);
    check(seen.includes('connecting') && seen.includes('live'), `status went through connecting and live (saw ${JSON.stringify(seen)})`);
    const file = path.join(LOG_DIR, `${id}.log`);
    const want = fileLines(file);
    const got = await lineTexts(page);
    check(got[0].startsWith('[LOG CREATED] '), `first line is "[LOG CREATED] <time>" (got ${JSON.stringify(got[0])})`);
    check(got.length >= 4, `more lines followed the first (got ${got.length})`);
    check(JSON.stringify(got) === JSON.stringify(want), `page lines equal the file's ${want.length} lines (page has ${got.length}; ${firstDiff(got, want)})`);
    eq(await count(page), want.length, '#count');
    const d = await detail(page);
    check(d.includes(`${want.length} lines`), `finished detail names the line count ${want.length} (got "${d}")`);
    eq(fs.statSync(file).mode & 0o777, 0o444, 'file mode of the finished log');
    check(await page.isDisabled('#stop'), '#stop is disabled once finished');
    await sleep(500);
    noBrowserErrors(watch);
    return `${want.length} lines, mid-stream state "${midState}"`;
  } finally { await context.close(); }
});

scenario('a finished log with markup is shown as text via /?log=<id>', async () => {
  const id = `e2e-markup-${rid()}`;
  const lines = [
    'first line',
    '<img src=x onerror=alert(1)>',
    '<b>bold</b>',
    '<script>alert(2)</script>',
    'tabs\tand  double  spaces',
    'unicode: ✓ é 日本語 🚀',
    'last line',
  ];
  const { page, watch, context } = await finishedLogPage(id, lines);
  try {
    await sleep(700); // let any injected handler run
    const got = await lineTexts(page);
    check(JSON.stringify(got) === JSON.stringify(lines), `page lines equal the file (${firstDiff(got, lines)})`);
    eq(await count(page), lines.length, '#count');
    const tags = await page.$$eval('#lines *', (els) => [...new Set(els.map((e) => e.tagName))].sort().join(','));
    check(/^(DIV|SPAN)(,(DIV|SPAN))*$/.test(tags), `only DIV/SPAN elements inside #lines (found ${tags})`);
    eq(await page.locator('#lines img, #lines b, #lines script').count(), 0, 'img/b/script elements created in the view');
    eq(await page.locator('img').count(), 0, 'img elements on the page');
    eq(await page.inputValue('#log-id'), id, '#log-id filled from the link');
    noBrowserErrors(watch);
    return `${lines.length} lines as text`;
  } finally { await context.close(); }
});

scenario('a line with a bare CR is shown as two lines in one row', async () => {
  const id = `e2e-cr-${rid()}`;
  const { page, watch, context } = await finishedLogPage(id, ['before', 'left\rright', 'crlf line\r', 'after']);
  try {
    const want = ['before', 'left\nright', 'crlf line', 'after'];
    const got = await lineTexts(page);
    check(JSON.stringify(got) === JSON.stringify(want), `rows (${firstDiff(got, want)})`);
    noBrowserErrors(watch);
  } finally { await context.close(); }
});

scenario('daemon restart mid-stream: reconnect resumes without loss or duplicates', async () => {
  const id = `e2e-reconnect-${rid()}`;
  const file = writeLog(id, [], 0o644);
  const { page, context } = await newPage(ctx.browser);
  const app = new Appender(file, 100);
  try {
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitState(page, 'live', 10000);
    await waitCount(page, 15, 10000);

    const old = ctx.daemon;
    const port = old.port;
    const exit = await old.stop();
    ctx.daemon = null;
    check(exit.code === 0, `daemon exit status on SIGTERM: code ${exit.code}, signal ${exit.signal}\n${old.tail()}`);
    const modeAfterStop = fs.statSync(file).mode & 0o777;
    check(modeAfterStop === 0o644, `an external log (not written by logcast) must keep its mode when the daemon stops: 0644 before, ${modeAfterStop.toString(8)} after`);
    await waitState(page, 'reconnecting', 5000);
    const atStop = app.n;
    await sleep(1000); // lines keep coming while no daemon runs

    ctx.daemon = await Daemon.start(port);
    eq(ctx.daemon.port, port, 'restarted daemon port');
    await waitState(page, 'live', 15000);
    await waitCount(page, atStop + 20, 15000);
    const total = app.stop();
    fs.chmodSync(file, 0o444);
    await waitState(page, 'finished', 10000);

    const want = Array.from({ length: total }, (_, i) => `line ${i + 1}`);
    const got = await lineTexts(page);
    const dup = got.length - new Set(got).size;
    check(JSON.stringify(got) === JSON.stringify(want), `every line exactly once and in order: want ${total}, got ${got.length} rows, ${dup} duplicates (${firstDiff(got, want)})`);
    eq(await count(page), total, '#count');
    const seen = await states(page);
    check(seen.join(',').includes('live,reconnecting') && seen.indexOf('live', seen.indexOf('reconnecting')) > 0, `status went live -> reconnecting -> live (saw ${JSON.stringify(seen)})`);
    return `${total} lines, states ${seen.join(' > ')}`;
  } finally {
    app.stop();
    await context.close();
    if (!ctx.daemon) ctx.daemon = await Daemon.start();
  }
});

scenario('a log finished while the daemon was down: the reconnect gets 204, the page says finished', async () => {
  const id = `e2e-204-${rid()}`;
  const lines = Array.from({ length: 12 }, (_, i) => `line ${i + 1}`);
  const file = writeLog(id, lines, 0o644);
  const { page, context } = await newPage(ctx.browser);
  const streamStatuses = [];
  page.on('response', (r) => { if (r.url().includes('/stream')) streamStatuses.push(r.status()); });
  try {
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitCount(page, lines.length, 10000);
    await waitState(page, 'live', 5000);
    const old = ctx.daemon;
    const exit = await old.stop();
    ctx.daemon = null;
    check(exit.code === 0, `daemon exit status on SIGTERM: code ${exit.code}, signal ${exit.signal}`);
    await waitState(page, 'reconnecting', 5000);
    fs.chmodSync(file, 0o444); // finished while no daemon runs
    ctx.daemon = await Daemon.start(old.port);
    // EventSource reconnects with Last-Event-ID = end of file; the daemon answers
    // 204 (or sends `end`): either way the page must end in "finished".
    await waitState(page, 'finished', 15000);
    const got = await lineTexts(page);
    check(JSON.stringify(got) === JSON.stringify(lines), `lines (${firstDiff(got, lines)})`);
    check(streamStatuses.join(',') === '200,204', `stream responses: want 200 then 204 for the reconnect at the end of a finished log, got ${streamStatuses.join(',')}`);
    return `stream responses ${streamStatuses.join(', ')}; "${await detail(page)}"`;
  } finally {
    await context.close();
    if (!ctx.daemon) ctx.daemon = await Daemon.start();
  }
});

scenario('/?log=<id>&tail=3 starts with the last 3 lines', async () => {
  const id = `e2e-tail-${rid()}`;
  const lines = Array.from({ length: 10 }, (_, i) => `entry ${i + 1}`);
  const { page, watch, context } = await finishedLogPage(id, lines, { query: '&tail=3' });
  try {
    const got = await lineTexts(page);
    const want = lines.slice(-3);
    check(JSON.stringify(got) === JSON.stringify(want), `lines (${firstDiff(got, want)})`);
    eq(await page.inputValue('#tail'), '3', '#tail filled from the link');
    check(new URL(page.url()).searchParams.get('tail') === '3', `URL keeps tail=3 (${page.url()})`);
    noBrowserErrors(watch);
  } finally { await context.close(); }
});

scenario('truncation mid-stream shows a separator and goes on; deletion ends the stream', async () => {
  const id = `e2e-reset-${rid()}`;
  const file = writeLog(id, ['old 1', 'old 2', 'old 3'], 0o644);
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitCount(page, 3, 10000);
    await waitState(page, 'live', 5000);
    fs.truncateSync(file, 0);
    await sleep(400);
    fs.appendFileSync(file, 'new 1\nnew 2\n');
    await waitCount(page, 5, 10000);
    const rows = await page.$$eval('#lines > *', (els) => els.map((e) => (e.classList.contains('sep') ? 'SEP' : e.textContent)));
    const want = ['old 1', 'old 2', 'old 3', 'SEP', 'new 1', 'new 2'];
    check(JSON.stringify(rows) === JSON.stringify(want), `rows with a reset separator: want ${JSON.stringify(want)}, got ${JSON.stringify(rows)}`);
    check(/truncated/.test(await page.textContent('#lines .sep')), 'separator says the file was truncated');
    eq(await state(page), 'live', 'status after a reset');
    fs.unlinkSync(file);
    await waitState(page, 'finished', 10000);
    check(/deleted/.test(await page.textContent('#status')), `status says deleted (got "${await page.textContent('#status')}")`);
    noBrowserErrors(watch);
  } finally { await context.close(); }
});

scenario('screenshots mid-stream (desktop 1280 px and phone 375 px), then stop', async () => {
  fs.mkdirSync(OUT, { recursive: true });
  // A few finished logs so that the list has content.
  const { page, watch, context } = await newPage(ctx.browser);
  let phone;
  try {
    await page.goto(ctx.daemon.url + '/');
    await page.fill('#duration', '60');
    await page.click('#create');
    await waitState(page, 'live', 10000);
    await waitCount(page, 60, 20000);
    await page.click('#refresh');
    await page.waitForSelector('#logs-list .log-item[aria-current="true"]', { timeout: 5000 });
    await page.screenshot({ path: path.join(OUT, 'page-midstream.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(OUT, 'page-midstream-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    const id = await page.inputValue('#log-id');

    phone = await newPage(ctx.browser, { viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await phone.page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitState(phone.page, 'live', 10000);
    await waitCount(phone.page, 40, 15000);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    check(overflow <= 375, `no horizontal scrolling at 375 px (page is ${overflow} px wide)`);
    await phone.page.screenshot({ path: path.join(OUT, 'page-phone.png'), fullPage: true });

    // Stop: the stream closes, the count stays put.
    await page.click('#stop');
    eq(await state(page), 'idle', 'status after Stop');
    check(await page.isDisabled('#stop'), '#stop disabled after Stop');
    const c1 = await count(page);
    await sleep(1000);
    eq(await count(page), c1, 'line count one second after Stop');
    noBrowserErrors(watch);
    noBrowserErrors(phone.watch, 'phone: ');
    return `screenshots in ${path.relative(process.cwd(), OUT) || OUT}`;
  } finally {
    await context.close();
    if (phone) await phone.context.close();
  }
});

scenario('follow mode pauses on scroll-up, "jump to latest" resumes', async () => {
  const { page, watch, context, file, app, atBottom } = await followingPage(`e2e-follow-${rid()}`, 80);
  try {
    check(await atBottom(), 'view follows the newest line');
    check(await page.isHidden('#jump'), '"jump to latest" hidden while following');
    await scrollUpToPause(page, '"jump to latest" did not appear after scrolling up');
    const top1 = await page.$eval('#lines', (v) => v.scrollTop);
    await waitMoreLines(page, 20);
    const top2 = await page.$eval('#lines', (v) => v.scrollTop);
    check(Math.abs(top2 - top1) < 2, `view stays put while paused (scrollTop ${top1} -> ${top2})`);
    check(!(await atBottom()), 'view is not at the bottom while paused');
    await page.click('#jump');
    check(await atBottom(), 'at the bottom after "jump to latest"');
    await waitMoreLines(page, 20);
    check(await atBottom(), 'following again: new lines keep the view at the bottom');
    check(await page.isHidden('#jump'), '"jump to latest" hidden again');
    app.stop();
    fs.chmodSync(file, 0o444);
    await waitState(page, 'finished', 10000);
    noBrowserErrors(watch);
  } finally { app.stop(); await context.close(); }
});

scenario('a 6,200-line log: the view keeps 5,000 lines, says so, counts all', async () => {
  const id = `e2e-big-${rid()}`;
  const n = 6200;
  writeLog(id, Array.from({ length: n }, (_, i) => `row ${i + 1} ${'x'.repeat(i % 90)}`), 0o444);
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    const t0 = Date.now();
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitState(page, 'finished', 20000);
    const ms = Date.now() - t0;
    eq(await count(page), n, '#count');
    const rows = await page.locator('#lines .line').count();
    eq(rows, 5000, 'lines kept in the DOM');
    const last = await page.$eval('#lines .line:last-of-type', (e) => e.textContent).catch(() => null);
    const texts = await lineTexts(page);
    check(texts[texts.length - 1].startsWith(`row ${n} `), `last row is row ${n} (got ${JSON.stringify(texts[texts.length - 1])}, ${last})`);
    check(texts[0].startsWith(`row ${n - rows + 1} `), `first kept row is row ${n - rows + 1} (got ${JSON.stringify(texts[0].slice(0, 12))})`);
    check(await page.isVisible('#trimmed'), 'the page says that older lines were dropped');
    const note = await page.textContent('#trimmed');
    check(/dropped/.test(note), `trim note: ${note}`);
    noBrowserErrors(watch);
    return `${rows} lines kept, finished in ${ms} ms`;
  } finally { await context.close(); }
});

scenario('errors: unknown log, duration validation, server refusal, list pick', async () => {
  const { page, context, watch } = await newPage(ctx.browser);
  try {
    // Unknown log -> 404 -> error state.
    await page.goto(`${ctx.daemon.url}/?log=e2e-no-such-log-${rid()}`);
    await waitState(page, 'error', 10000);
    check(/not found/.test(await detail(page)), `error detail says "not found" (got "${await detail(page)}")`);

    // Page-side validation: no request is sent.
    await page.goto(ctx.daemon.url + '/');
    for (const bad of ['0', '3601', '-5', '2.5']) {
      watch.requests.length = 0;
      await page.fill('#duration', bad);
      await page.click('#create');
      eq(await page.getAttribute('#create-msg', 'data-kind'), 'error', `create message kind for duration ${bad}`);
      check(/1 to 3600/.test(await page.textContent('#create-msg')), `validation message for ${bad}`);
      await sleep(100);
      check(!watch.requests.some((r) => r.startsWith('POST')), `no POST sent for duration ${bad} (${watch.requests.join(', ')})`);
    }

    // The daemon's own refusal, straight from the server (bypassing the page's check).
    const direct = await page.evaluate(async () => {
      const r = await fetch('/api/logs?duration=0', { method: 'POST' });
      return { status: r.status, body: await r.text() };
    });
    eq(direct.status, 400, 'POST /api/logs?duration=0 status');
    check(typeof JSON.parse(direct.body).error === 'string', `400 body is {"error": ...} (got ${direct.body})`);
    // The page shows a server's error text (a refusal the page cannot predict: 503 over --max-writers).
    await page.route('**/api/logs?duration=*', (route) => route.fulfill({
      status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'too many writers (max 1000)' }),
    }));
    await page.fill('#duration', '5');
    await page.click('#create');
    await page.waitForFunction(() => /too many writers/.test(document.getElementById('create-msg').textContent), null, { timeout: 5000 })
      .catch(async () => { throw new Failure(`server error text not shown (got "${await page.textContent('#create-msg')}")`); });
    check(/503/.test(await page.textContent('#create-msg')), 'status code shown with the server error');
    await page.unroute('**/api/logs?duration=*');

    // The list: refresh, pick a finished log, it streams to finished.
    const pick = `e2e-pick-${rid()}`;
    writeLog(pick, ['one', 'two', 'three'], 0o444);
    await page.click('#refresh');
    const item = page.locator(`#logs-list .log-item[data-id="${pick}"]`);
    await item.waitFor({ timeout: 5000 });
    check(/finished/.test(await item.textContent()), `list shows the picked log as finished (${await item.textContent()})`);
    await item.click();
    await waitState(page, 'finished', 10000);
    const id = await item.getAttribute('data-id');
    eq(await page.inputValue('#log-id'), id, '#log-id after picking from the list');
    check(new URL(page.url()).searchParams.get('log') === id, 'URL updated after picking from the list');
    eq(await count(page), 3, 'lines of the picked log');
  } finally { await context.close(); }
});

scenario('the list comes a page at a time: "Load older logs" appends the next page', async () => {
  const { page, context } = await newPage(ctx.browser);
  try {
    const tag = rid();
    for (let i = 0; i < 110; i += 1) writeLog(`e2e-page-${tag}-${String(i).padStart(3, '0')}`, ['x'], 0o444);
    await page.goto(ctx.daemon.url + '/');
    const items = page.locator('#logs-list .log-item');
    await page.waitForFunction(() => document.querySelectorAll('#logs-list .log-item').length > 0, null, { timeout: 10000 });
    eq(await items.count(), 100, 'items on the first page');
    const more = page.locator('#older');
    await more.waitFor({ timeout: 5000 });
    check(/Load older logs/.test(await more.textContent()), `the button says what it does (${await more.textContent()})`);
    await more.click();
    await page.waitForFunction(() => document.querySelectorAll('#logs-list .log-item').length > 100, null, { timeout: 10000 });
    const ids = await items.evaluateAll((els) => els.map((e) => e.dataset.id));
    eq(new Set(ids).size, ids.length, 'no log listed twice across pages');
    const total = await page.evaluate(async () => Number((await fetch('/api/logs?limit=1')).headers.get('X-Total-Count')));
    check(ids.length === Math.min(total, 200), `two pages listed (${ids.length} of ${total})`);
    await page.screenshot({ path: path.join(OUT, 'page-list-older.png') });
    return `${ids.length} of ${total} logs after one "Load older"`;
  } finally { await context.close(); }
});

// ------------------------------------------------------------------ page features (issue 12)

const marksOf = (page) => page.$$eval('#lines .line', (els) => els.map((e) => [...e.querySelectorAll('mark.hl')].map((m) => m.textContent)));
const streamRequests = (watch, id) => watch.requests.filter((r) => r.startsWith(`GET /api/logs/${id}/stream`));

scenario('strict CSP: the inline script and style are allowed by hash; no inline handler or injected script runs (no eval: not in the policy)', async () => {
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    const resp = await page.goto(ctx.daemon.url + '/');
    const csp = resp.headers()['content-security-policy'] || '';
    check(!/unsafe-inline|unsafe-eval/.test(csp), `no 'unsafe-inline'/'unsafe-eval' in the CSP (${csp})`);
    check(/script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/.test(csp) && /style-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/.test(csp), `script and style allowed by one hash each (${csp})`);
    await page.waitForSelector('#logs-list li', { timeout: 10000 }); // the page's own script ran
    const bg = await page.$eval('body', (e) => getComputedStyle(e).display);
    eq(bg, 'flex', 'the page\'s own style applies');
    noBrowserErrors(watch);
    const r = await page.evaluate(async () => {
      const seen = [];
      document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
      window.__ran = [];
      const b = document.createElement('button');
      b.setAttribute('onclick', 'window.__ran.push("onclick")');
      document.body.appendChild(b);
      b.click();
      const s = document.createElement('script');
      s.textContent = 'window.__ran.push("script")';
      document.body.appendChild(s);
      await new Promise((res) => setTimeout(res, 200));
      return { ran: window.__ran, seen };
    });
    eq(JSON.stringify(r.ran), '[]', 'inline handler and injected script ran');
    check(r.seen.length >= 2, `CSP violations reported (${JSON.stringify(r.seen)})`);
  } finally { await context.close(); }
});

scenario('filter: typed grep streams only matching lines, highlighted; exclude; live lines filtered', async () => {
  const id = `e2e-filter-${rid()}`;
  const file = writeLog(id, ['alpha ERROR one', 'beta ok', 'gamma ERROR two', 'delta warn', 'ERROR and ERROR'], 0o644);
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitCount(page, 5, 10000);
    await page.click('#grep');
    await page.keyboard.type('ERROR');
    // applied after a pause in typing, without Enter
    await page.waitForFunction(() => new URL(location.href).searchParams.get('grep') === 'ERROR', null, { timeout: 5000 })
      .catch(() => { throw new Failure(`the URL never got grep=ERROR (${page.url()})`); });
    await waitState(page, 'live', 10000);
    await waitCount(page, 3, 10000);
    let got = await lineTexts(page);
    const want = ['alpha ERROR one', 'gamma ERROR two', 'ERROR and ERROR'];
    check(JSON.stringify(got) === JSON.stringify(want), `filtered lines (${firstDiff(got, want)})`);
    const marks = await marksOf(page);
    eq(JSON.stringify(marks), JSON.stringify([['ERROR'], ['ERROR'], ['ERROR', 'ERROR']]), 'highlighted matches per line');
    check(streamRequests(watch, id).some((r) => /[?&]grep=ERROR(&|$)/.test(r)), `the stream was asked for with ?grep= (${streamRequests(watch, id).join(', ')})`);
    // Live: a matching line appears, a non-matching one does not.
    fs.appendFileSync(file, 'epsilon fine\nzeta ERROR live\n');
    await waitCount(page, 4, 10000);
    await sleep(300);
    got = await lineTexts(page);
    eq(got[got.length - 1], 'zeta ERROR live', 'the live matching line');
    eq(got.length, 4, 'lines after a live append');
    await page.screenshot({ path: path.join(OUT, 'page-filter.png') });
    // Exclude, applied at once with Enter.
    await page.fill('#exclude', 'two|live');
    await page.press('#exclude', 'Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('exclude') === 'two|live', null, { timeout: 5000 });
    await waitState(page, 'live', 10000);
    await waitCount(page, 2, 10000);
    await sleep(300);
    got = await lineTexts(page);
    eq(JSON.stringify(got), JSON.stringify(['alpha ERROR one', 'ERROR and ERROR']), 'lines with grep and exclude');
    fs.chmodSync(file, 0o444);
    await waitState(page, 'finished', 10000);
    noBrowserErrors(watch);
    return 'page-filter.png';
  } finally { await context.close(); }
});

scenario('filter: a shared link with grep restores the filter and the lines; (?i) highlights any case', async () => {
  const id = `e2e-share-${rid()}`;
  const { page, watch, context } = await finishedLogPage(id, ['GET /a 200', 'GET /b 500 error', 'POST /c 500 Error', 'GET /d 200'],
    { query: `&grep=${encodeURIComponent('(?i)error')}&exclude=POST` });
  try {
    eq(await page.inputValue('#grep'), '(?i)error', '#grep restored from the link');
    eq(await page.inputValue('#exclude'), 'POST', '#exclude restored from the link');
    const got = await lineTexts(page);
    eq(JSON.stringify(got), JSON.stringify(['GET /b 500 error']), 'lines of the shared view');
    eq(JSON.stringify(await marksOf(page)), JSON.stringify([['error']]), 'case-insensitive highlight');
    const u = new URL(page.url());
    eq(u.searchParams.get('grep'), '(?i)error', 'the URL keeps grep');
    noBrowserErrors(watch);
  } finally { await context.close(); }
});

scenario('filter: a bad regex shows the server\'s 400 message', async () => {
  const id = `e2e-badre-${rid()}`;
  writeLog(id, ['one', 'two', 'three'], 0o644);
  const { page, context } = await newPage(ctx.browser);
  try {
    const direct = await fetch(`${ctx.daemon.url}/api/logs/${id}/stream?grep=${encodeURIComponent('(unclosed')}`);
    eq(direct.status, 400, 'the daemon refuses a bad regex');
    const why = (await direct.json()).error;
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await waitCount(page, 3, 10000);
    await page.fill('#grep', '(unclosed');
    await page.press('#grep', 'Enter');
    await page.waitForFunction(() => document.getElementById('filter-msg').textContent !== '', null, { timeout: 5000 })
      .catch(() => { throw new Failure('no filter message shown'); });
    eq(await page.textContent('#filter-msg'), why, 'the message is the server\'s');
    check(await page.isVisible('#filter-msg'), 'the message is visible');
    eq(await page.getAttribute('#grep', 'aria-invalid'), 'true', '#grep marked invalid');
    eq(await state(page), 'error', 'status with a bad filter');
    await page.screenshot({ path: path.join(OUT, 'page-bad-regex.png') });
    // Fixed: streams again.
    await page.fill('#grep', 't');
    await page.press('#grep', 'Enter');
    await waitState(page, 'live', 10000);
    await waitCount(page, 2, 10000);
    eq(await page.textContent('#filter-msg'), '', 'message cleared');
    eq(await page.getAttribute('#grep', 'aria-invalid'), null, '#grep valid again');
    return `"${why.slice(0, 60)}…" · page-bad-regex.png`;
  } finally { await context.close(); }
});

scenario('ANSI colours become spans with classes; other escapes stripped; markup stays text', async () => {
  const id = `e2e-ansi-${rid()}`;
  const E = '\x1b';
  const lines = [
    `${E}[31mred${E}[0m plain`,
    `${E}[1;32mbold green${E}[22m not bold${E}[39m default`,
    `${E}[44;97mwhite on blue${E}[0m`,
    `${E}[38;5;208morange${E}[48;5;21m on 256 blue${E}[0m`,
    `${E}[2K${E}[1Gcursor moved${E}]0;a title${E}\\ and ${E}]8;;http://x${E}\\link${E}]8;;${E}\\ ${E}[?25hend`,
    '<b>x</b>',
    `${E}[91m<i>bright red tag</i>${E}[0m`,
  ];
  const want = ['red plain', 'bold green not bold default', 'white on blue', 'orange on 256 blue', 'cursor moved and link end', '<b>x</b>', '<i>bright red tag</i>'];
  const { page, watch, context } = await finishedLogPage(id, lines);
  try {
    const got = await lineTexts(page);
    check(JSON.stringify(got) === JSON.stringify(want), `text without escapes (${firstDiff(got, want)})`);
    const raw = await page.$eval('#lines', (e) => e.textContent);
    check(!/[\x00-\x08\x0b-\x1f\x7f]/.test(raw), 'no control characters left in the view');
    const spans = await page.$$eval('#lines .line', (els) => els.map((l) => [...l.querySelectorAll('span')].map((s) => {
      const cs = getComputedStyle(s);
      return { text: s.textContent, cls: s.className, color: cs.color, bg: cs.backgroundColor, weight: cs.fontWeight };
    })));
    const red = spans[0].find((x) => x.text === 'red');
    check(red && red.cls === 'a-fg-1', `"red" is a span.a-fg-1 (${JSON.stringify(spans[0])})`);
    const defColor = await page.$eval('#lines', (e) => getComputedStyle(e).color);
    check(red.color !== defColor, `"red" is coloured (${red.color} vs ${defColor})`);
    const bold = spans[1].find((x) => x.text === 'bold green');
    check(bold && /a-b/.test(bold.cls) && /a-fg-2/.test(bold.cls) && Number(bold.weight) >= 700, `bold green (${JSON.stringify(spans[1])})`);
    check(spans[1].find((x) => x.text === ' not bold' && !/a-b/.test(x.cls)), 'SGR 22 ends bold');
    check(!spans[1].some((x) => x.text === ' default'), 'SGR 39 resets the colour (plain text)');
    const wob = spans[2].find((x) => x.text === 'white on blue');
    check(wob && /a-fg-15/.test(wob.cls) && /a-bg-4/.test(wob.cls) && wob.bg !== 'rgba(0, 0, 0, 0)', `bright white on blue (${JSON.stringify(spans[2])})`);
    const orange = spans[3].find((x) => x.text === 'orange');
    eq(orange && orange.color, 'rgb(255, 135, 0)', '38;5;208');
    const b256 = spans[3].find((x) => x.text === ' on 256 blue');
    eq(b256 && b256.bg, 'rgb(0, 0, 255)', '48;5;21');
    eq(spans[4].length, 0, 'no spans for stripped escapes');
    eq(await page.locator('#lines b, #lines i, #lines a, #lines script').count(), 0, 'markup in lines made no elements');
    const tagLine = spans[6].find((x) => x.text === '<i>bright red tag</i>');
    check(tagLine && tagLine.cls === 'a-fg-9', `bright red markup shown literally (${JSON.stringify(spans[6])})`);
    await page.screenshot({ path: path.join(OUT, 'page-ansi.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(OUT, 'page-ansi-dark.png') });
    noBrowserErrors(watch);
    return 'page-ansi.png, page-ansi-dark.png';
  } finally { await context.close(); }
});

scenario('live list: a new log appears, its badge turns finished, a deleted one goes, without Refresh', async () => {
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    await page.goto(ctx.daemon.url + '/');
    await page.waitForFunction(() => document.documentElement.dataset.eventsLeader === 'true', null, { timeout: 10000 })
      .catch(() => { throw new Failure('the page never subscribed to /api/events'); });
    const created = await (await fetch(`${ctx.daemon.url}/api/logs?duration=2`, { method: 'POST' })).json();
    const id = created.log_id;
    const item = page.locator(`#logs-list .log-item[data-id="${id}"]`);
    await item.waitFor({ timeout: 5000 }).catch(() => { throw new Failure('the new log did not appear in the list'); });
    check(/writing/.test(await item.locator('.badge').textContent()), `badge of a new log says writing (${await item.textContent()})`);
    const firstId = await page.$eval('#logs-list .log-item', (e) => e.dataset.id);
    eq(firstId, id, 'the new log is on top');
    await page.screenshot({ path: path.join(OUT, 'page-live-list.png') });
    await page.waitForFunction((i) => {
      const b = [...document.querySelectorAll('#logs-list .log-item')].find((e) => e.dataset.id === i);
      return b && b.querySelector('.badge.finished');
    }, id, { timeout: 10000 }).catch(() => { throw new Failure('the badge never turned "finished"'); });
    // A file another program drops into the directory.
    const dropped = `e2e-dropped-${rid()}`;
    writeLog(dropped, ['hello'], 0o644);
    await page.locator(`#logs-list .log-item[data-id="${dropped}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Failure('a file dropped into the directory did not appear'); });
    const del = await fetch(`${ctx.daemon.url}/api/logs/${id}`, { method: 'DELETE' });
    eq(del.status, 204, 'DELETE status');
    await item.waitFor({ state: 'detached', timeout: 5000 }).catch(() => { throw new Failure('the deleted log stayed in the list'); });
    fs.unlinkSync(path.join(LOG_DIR, `${dropped}.log`));
    await page.locator(`#logs-list .log-item[data-id="${dropped}"]`).waitFor({ state: 'detached', timeout: 5000 })
      .catch(() => { throw new Failure('a file removed from the directory stayed in the list'); });
    const lists = watch.requests.filter((r) => r.startsWith('GET /api/logs?'));
    eq(lists.length, 1, `lists fetched (${lists.join(', ')})`);
    noBrowserErrors(watch);
    return 'page-live-list.png';
  } finally { await context.close(); }
});

scenario('keyboard: / focuses the filter, End resumes following', async () => {
  const { page, watch, context, file, app, atBottom } = await followingPage(`e2e-keys-${rid()}`, 60);
  try {
    await page.focus('#wrap'); // a checkbox is not a text field: / still goes to the filter
    await page.keyboard.press('/');
    eq(await page.evaluate(() => document.activeElement && document.activeElement.id), 'grep', 'focused element after /');
    eq(await page.inputValue('#grep'), '', 'the / was not typed into the filter');
    await page.keyboard.press('Escape');
    await scrollUpToPause(page, 'not paused after scrolling up');
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.keyboard.press('End');
    check(await atBottom(), 'at the bottom after End');
    await waitMoreLines(page, 15);
    check(await atBottom(), 'following again after End');
    check(await page.isHidden('#jump'), '"jump to latest" hidden after End');
    // In the filter box, End is the text field's own.
    await page.click('#grep');
    await page.keyboard.type('ab');
    await page.keyboard.press('End');
    eq(await page.inputValue('#grep'), 'ab', 'typing in the filter is not disturbed');
    app.stop();
    fs.chmodSync(file, 0o444);
    noBrowserErrors(watch);
  } finally { app.stop(); await context.close(); }
});

scenario('download link and copy-link (clipboard, and the fallback without it)', async () => {
  const id = `e2e-link-${rid()}`;
  const { page, watch, context } = await finishedLogPage(id, ['a line', 'another'],
    { query: '&grep=line', permissions: ['clipboard-read', 'clipboard-write'] });
  let plain;
  const notes = [];
  try {
    const href = await page.getAttribute('#download', 'href');
    eq(href, `/api/logs/${id}/raw?download=1`, '#download href');
    check(await page.isVisible('#download'), 'the download link is visible');
    const head = await fetch(ctx.daemon.url + href, { method: 'HEAD' });
    if (head.status === 200) {
      check(/attachment/.test(head.headers.get('content-disposition') || ''), `HEAD ${href}: Content-Disposition attachment (${head.headers.get('content-disposition')})`);
      notes.push('raw: HEAD 200 checked');
    } else {
      notes.push(`raw: HEAD answered ${head.status}, download check skipped (GET /raw not on this branch)`);
    }
    const want = `${ctx.daemon.url}/?log=${id}&grep=line`;
    await page.click('#copy-link');
    await page.waitForFunction(() => /copied/i.test(document.getElementById('copy-msg').textContent), null, { timeout: 5000 })
      .catch(async () => { throw new Failure(`no "copied" message (${await page.textContent('#copy-msg')})`); });
    eq(await page.evaluate(() => navigator.clipboard.readText()), want, 'clipboard text');
    noBrowserErrors(watch);

    // Without the Clipboard API (a plain-http page off localhost): the link is shown selected.
    plain = await newPage(ctx.browser);
    await plain.context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'clipboard', { configurable: true, get: () => undefined }); });
    await plain.page.goto(`${ctx.daemon.url}/?log=${id}&grep=line`);
    await waitState(plain.page, 'finished', 10000);
    await plain.page.click('#copy-link');
    await plain.page.waitForSelector('#share-url', { state: 'visible', timeout: 3000 });
    eq(await plain.page.inputValue('#share-url'), want, 'fallback field value');
    eq(await plain.page.evaluate(() => document.activeElement.id), 'share-url', 'fallback field focused');
    const sel = await plain.page.evaluate(() => { const e = document.getElementById('share-url'); return e.value.slice(e.selectionStart, e.selectionEnd); });
    eq(sel, want, 'fallback field selected');
    return notes.join('; ');
  } finally {
    await context.close();
    if (plain) await plain.context.close();
  }
});

async function twoTabs(noLocks) {
  const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await pageFromDisk(context);
  if (noLocks) {
    await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'locks', { configurable: true, get: () => undefined }); });
  }
  const events = [];
  context.on('request', (r) => { if (new URL(r.url()).pathname === '/api/events') events.push(r.url()); });
  try {
    const t1 = await context.newPage();
    await t1.goto(ctx.daemon.url + '/');
    await t1.waitForFunction(() => document.documentElement.dataset.eventsLeader === 'true', null, { timeout: 10000 });
    eq(await t1.evaluate(() => !!navigator.locks), !noLocks, 'Web Locks present');
    const t2 = await context.newPage();
    await t2.goto(ctx.daemon.url + '/');
    await t2.waitForSelector('#logs-list li', { timeout: 10000 });
    await sleep(noLocks ? 4500 : 1500); // longer than the heartbeat's 3.5 s
    eq(events.length, 1, `/api/events requests with two tabs (${events.join(', ')})`);
    eq(await t2.evaluate(() => document.documentElement.dataset.eventsLeader || 'no'), 'no', 'tab 2 is not leading');
    const a = (await (await fetch(`${ctx.daemon.url}/api/logs?duration=1`, { method: 'POST' })).json()).log_id;
    for (const [n, t] of [[1, t1], [2, t2]]) {
      await t.locator(`#logs-list .log-item[data-id="${a}"]`).waitFor({ timeout: 5000 })
        .catch(() => { throw new Failure(`tab ${n} did not show the new log`); });
    }
    await t1.close();
    await t2.waitForFunction(() => document.documentElement.dataset.eventsLeader === 'true', null, { timeout: 10000 })
      .catch(() => { throw new Failure('tab 2 did not take over the events stream'); });
    // The page opens its EventSource as it takes the lead; the browser's
    // request event reaches this process a moment later.
    await waitFor('the new leader\'s /api/events request', () => events.length >= 2, 5000, 50);
    await sleep(300); // and no third one right behind it
    eq(events.length, 2, `/api/events requests after the leader closed (${events.join(', ')})`);
    check(/[?&]since=/.test(events[1]), `the new leader resumes with ?since= (${events[1]})`);
    const b = (await (await fetch(`${ctx.daemon.url}/api/logs?duration=1`, { method: 'POST' })).json()).log_id;
    await t2.locator(`#logs-list .log-item[data-id="${b}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Failure('tab 2 did not show a log created after the takeover'); });
    return `${events.length} subscriptions for 2 tabs over the scenario`;
  } finally { await context.close(); }
}

scenario('two tabs share one /api/events connection; the other takes over when the leader closes', () => twoTabs(false));
scenario('two tabs without Web Locks: one /api/events by a heartbeat election over BroadcastChannel', () => twoTabs(true));

scenario('a hidden, idle tab closes its streams and resumes both, with nothing lost, when shown', async () => {
  const id = `e2e-hidden-${rid()}`;
  const file = writeLog(id, [], 0o644);
  const app = new Appender(file, 100);
  const { page, watch, context } = await newPage(ctx.browser);
  try {
    await context.addInitScript(VISIBILITY);
    await context.addInitScript(() => localStorage.setItem('logcast.hiddenIdleMs', '700'));
    await sleep(300);
    const base = await metric('logcast_streams_open');
    await page.goto(`${ctx.daemon.url}/?log=${id}`);
    await page.waitForFunction(() => document.documentElement.dataset.eventsLeader === 'true', null, { timeout: 10000 });
    await waitCount(page, 5, 10000);
    await waitFor(`streams open = ${base} + 2 (events and the log)`, async () => (await metric('logcast_streams_open')) === base + 2);
    await page.evaluate(() => window.__setVis('hidden'));
    await waitState(page, 'paused', 5000);
    await waitFor(`streams open back to ${base} while hidden and idle`, async () => (await metric('logcast_streams_open')) === base);
    // Things happen while it is away.
    await sleep(1000);
    const created = (await (await fetch(`${ctx.daemon.url}/api/logs?duration=1`, { method: 'POST' })).json()).log_id;
    await sleep(500);
    eq(await metric('logcast_streams_open'), base, 'streams open while hidden');
    await page.evaluate(() => window.__setVis('visible'));
    await waitState(page, 'live', 10000);
    await page.locator(`#logs-list .log-item[data-id="${created}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Failure('a log created while the tab was idle is not in the list'); });
    const n = app.stop();
    await waitCount(page, n, 10000);
    await sleep(400);
    const got = (await lineTexts(page));
    const want = fileLines(file);
    check(JSON.stringify(got) === JSON.stringify(want), `every line exactly once across the pause (${firstDiff(got, want)})`);
    check((await page.textContent('#lines')).includes('tab shown again'), 'a separator says where it resumed');
    check(streamRequests(watch, id).some((r) => /[?&]from=\d+/.test(r)), `resumed with ?from= (${streamRequests(watch, id).join(', ')})`);
    eq(await metric('logcast_streams_open'), base + 2, 'streams open when shown again');
    fs.chmodSync(file, 0o444);
    await waitState(page, 'finished', 10000);
    noBrowserErrors(watch);
    return `${n} lines, streams open ${base + 2} → ${base} → ${base + 2}`;
  } finally { app.stop(); await context.close(); }
});

// ------------------------------------------------------------------ runner

scenario('the benchmark report (scripts/report.py on sample data) is self-contained and draws its charts', async () => {
  // Rendered from fixed sample data, opened from a file with scripts off:
  // the page must need nothing but itself.
  const file = path.join(TMP, 'sample-report.html');
  const { execFileSync } = await import('node:child_process');
  fs.writeFileSync(file, execFileSync('python3', ['scripts/report.py', 'tests/report/sample'], { encoding: 'utf8' }));
  const { context, page, watch } = await newPage(ctx.browser, { javaScriptEnabled: false, viewport: { width: 1360, height: 900 } });
  try {
    await page.goto('file://' + file);
    const outside = watch.requests.filter((r) => !r.endsWith(file));
    eq(outside.length, 0, `requests besides the file itself (${outside.join(', ')})`);
    const svgs = await page.$$eval('svg', (els) => els.map((e) => e.getBoundingClientRect().width));
    eq(svgs.length, 6, 'charts (CDF, memory, CPU for 2 stream counts)');
    check(svgs.every((w) => w > 300), `every chart is drawn: widths ${svgs}`);
    const curves = await page.$$eval('svg path', (els) => els.length);
    eq(curves, 6, 'CDF curves (3 implementations x 2 stream counts)');
    const text = await page.textContent('body');
    for (const want of ['logcast-w2', 'nchan', 'floor, reader', 'user memory B/stream']) {
      check(text.includes(want), `report mentions "${want}"`);
    }
    noBrowserErrors(watch, 'report: ');
    await page.screenshot({ path: path.join(OUT, 'report-sample.png'), fullPage: true });
  } finally {
    await context.close();
  }
  return 'screenshot report-sample.png';
});

async function main() {
  let passed = 0, failed = 0;
  fs.mkdirSync(LOG_DIR, { recursive: true });
  fs.mkdirSync(OUT, { recursive: true });
  const todo = scenarios.filter((s) => s.name.includes(ONLY));
  try {
    if (!BIN) throw new Error('LOGCAST_BIN is not set');
    ctx.daemon = await Daemon.start(0);
    console.log(`# daemon at ${ctx.daemon.url}, log dir ${LOG_DIR}`);
    ctx.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: process.env.E2E_HEADFUL !== '1',
      handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false, // see onSignal
      args: ['--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
    });
    // playwright closes Chromium itself when this process exits or gets SIGTERM.
    console.log(`# chromium ${ctx.browser.version()} via playwright-core`);
  } catch (e) {
    console.log(`not ok - setup: ${e.message}`);
    if (ctx.daemon) console.log(ctx.daemon.tail());
    await teardown();
    console.log(`0 passed, ${todo.length || 1} failed`);
    return 1;
  }
  for (const [i, s] of todo.entries()) {
    const t0 = Date.now();
    try {
      const note = await Promise.race([
        s.fn(),
        sleep(90000, null, { ref: false }).then(() => { throw new Failure('scenario timed out after 90 s'); }),
      ]);
      passed++;
      console.log(`ok ${i + 1} - ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)${note ? ` · ${note}` : ''}`);
    } catch (e) {
      if (interrupted) break;
      failed++;
      console.log(`not ok ${i + 1} - ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      console.log('    ' + String(e instanceof Failure ? e.message : e.stack || e).split('\n').join('\n    '));
      if (ctx.daemon) console.log('    ' + ctx.daemon.tail(10).split('\n').join('\n    '));
      if (!ctx.daemon) {
        try { ctx.daemon = await Daemon.start(0); } catch (e2) { console.log(`    cannot restart the daemon: ${e2.message}`); break; }
      }
    }
  }
  await teardown();
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

async function teardown() {
  if (ctx.browser) await ctx.browser.close().catch(() => {});
  if (ctx.daemon) {
    try {
      const r = await ctx.daemon.stop();
      if (r.code !== 0) console.log(`# note: daemon exited with code ${r.code} signal ${r.signal} on SIGTERM`);
    } catch (e) { console.log(`# note: ${e.message}`); }
  }
}

// Interrupted (scripts/e2e.sh's trap, Ctrl-C): stop the daemon and the browser, say so, leave.
let interrupted = false;
async function onSignal(sig) {
  interrupted = true;
  console.log(`# interrupted by ${sig}`);
  const d = ctx.daemon;
  ctx.daemon = null;
  if (d) d.proc.kill('SIGTERM');
  await Promise.race([ctx.browser ? ctx.browser.close().catch(() => {}) : null, sleep(3000)]);
  console.log('0 passed, 1 failed');
  process.exit(sig === 'SIGINT' ? 130 : 143);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => onSignal(sig));

process.exitCode = await main();
