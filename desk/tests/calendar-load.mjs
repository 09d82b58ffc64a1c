// The calendar under load: a month of 10,000 posts, measured in a real browser. Run by hand,
// not by `npm test`:
//
//   HERALD_URL=http://127.0.0.1:8080 HERALD_SANDBOX_URL=http://127.0.0.1:8081 \
//   HERALD_ADMIN_TOKEN=... node tests/calendar-load.mjs
//
//   HERALD_POSTS     how many posts to plan (default 10000)
//   HERALD_PARALLEL  how many POSTs in flight at once (default 16)
//   HERALD_CHROMIUM  the browser (default /usr/bin/chromium)
//   HERALD_REUSE     a workspace id an earlier run printed: measure again without planning
//
// It creates a workspace, a bot, a sandbox channel and the posts, spread over a month two months
// ahead; then signs in with the admin token and prints, for the month and the list view: the time
// to the first post on screen, the time until every post is counted, the time of a scroll
// through the whole list and of switching to the next month and back, with the long tasks
// (over 50 ms, from PerformanceObserver) seen during each.

import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`calendar load: set ${name} (see the top of desk/tests/calendar-load.mjs)`);
    process.exit(2);
  }
  return v.replace(/\/+$/, '');
};
const HERALD = env('HERALD_URL');
const SANDBOX = env('HERALD_SANDBOX_URL');
const ADMIN = env('HERALD_ADMIN_TOKEN');
const COUNT = Number(process.env.HERALD_POSTS || 10_000);
const PARALLEL = Number(process.env.HERALD_PARALLEL || 16);
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';

const started = Date.now();
const log = (...a) => console.log(`[load ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

async function call(method, path, body, base = HERALD) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

const run = Math.random().toString(36).slice(2, 8);
const rnd = (lo, span) => lo + Math.floor(Math.random() * span);
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

// ------------------------------------------------------------------------------- set-up ---

const REUSE = process.env.HERALD_REUSE || '';
const ws = REUSE || (await call('POST', '/v1/workspaces', { name: `Calendar load ${run}` })).id;
const base = `/v1/workspaces/${ws}`;
let channel;
if (!REUSE) {
  const bot = (await call('POST', `${base}/bots`, { name: 'Load bot', token: `${rnd(100_000_000, 800_000_000)}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw` })).id;
  const channelId = -(1_000_000_000_000 + rnd(1, 999_999_999));
  await call('POST', '/sandbox/chats', { chat_id: channelId, type: 'channel', title: 'Load channel' }, SANDBOX);
  channel = (await call('POST', `${base}/chats`, { bot_id: bot, telegram_chat_id: channelId, title: 'Load channel' })).id;
}

// The month two months ahead, in the browser's zone (UTC here), whole.
const now = new Date();
const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 2, 1);
const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 3, 1);
const span = monthEnd - monthStart;
log(`workspace ${ws}: ${REUSE ? 'measuring' : 'planning'} ${COUNT} posts in ${new Date(monthStart).toISOString().slice(0, 7)}, ${PARALLEL} at a time`);

let made = 0;
let next = 0;
const t0 = Date.now();
async function worker() {
  for (;;) {
    const i = next++;
    if (REUSE || i >= COUNT) return;
    // Spread evenly, a few seconds apart, never on the same second.
    const at = monthStart + Math.floor(((i + 0.5) * span) / COUNT / 1000) * 1000;
    await call('POST', `${base}/posts`, { chat_ids: [channel], text: `Load post ${i + 1} of ${COUNT} (${run})`, publish_at: iso(at) });
    made++;
    if (made % 500 === 0 || made === COUNT) {
      log(`planned ${made} of ${COUNT} (${Math.round(made / ((Date.now() - t0) / 1000))}/s)`);
    }
  }
}
await Promise.all(Array.from({ length: PARALLEL }, worker));

// Wait until the post list projection has them all.
for (;;) {
  let n = 0;
  let after;
  do {
    const q = new URLSearchParams({ from: iso(monthStart), to: iso(monthEnd), limit: '500', ...(after ? { after } : {}) });
    const page = await call('GET', `${base}/posts?${q}`);
    n += page.posts.length;
    after = page.next_after;
  } while (after);
  if (n >= COUNT) break;
  log(`the post list has ${n} of ${COUNT} so far`);
  await new Promise((r) => setTimeout(r, 1000));
}

// ---------------------------------------------------------------------------- in the browser ---

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: 'UTC', locale: 'en-GB' });
await context.addInitScript(() => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
});
const page = await context.newPage();
const signed = await context.request.post(`${HERALD}/v1/desk/session`, { data: { token: ADMIN } });
if (!signed.ok()) throw new Error(`sign-in answered ${signed.status()}: ${await signed.text()}`);

const month = new Date(monthStart).toISOString().slice(0, 10);
const status = page.locator('.cal-toolbar [role="status"]');
const all = `${COUNT.toLocaleString('en-GB')} posts`;
const done = async () => {
  await page.waitForFunction(
    (want) => {
      const s = document.querySelector('.cal-toolbar [role="status"]')?.textContent || '';
      return s.startsWith(want) && !s.includes('Loading');
    },
    all,
    { timeout: 300_000, polling: 'raf' },
  );
  return page.evaluate(() => performance.now());
};
const longTasks = (from, to) =>
  page.evaluate(
    ([a, b]) => {
      const l = window.__long.filter((e) => e.start >= a && e.start < b);
      return { count: l.length, longest: Math.round(Math.max(0, ...l.map((e) => e.duration))), total: Math.round(l.reduce((s, e) => s + e.duration, 0)) };
    },
    [from, to],
  );
const ms = (x) => `${Math.round(x)} ms`;
const results = {};

async function open(view) {
  await page.goto(`${HERALD}/w/${ws}/calendar?view=${view}&date=${month}`);
  const first = view === 'list' ? page.locator('.vlist-row[role="row"] a').first() : page.locator('.chip').first();
  await first.waitFor({ timeout: 120_000 });
  const firstAt = await page.evaluate(() => performance.now());
  const allAt = await done();
  await page.waitForFunction(() => !(document.querySelector('.cal-toolbar [role="status"]')?.textContent || '').includes('checking'), null, {
    timeout: 300_000,
    polling: 'raf',
  });
  const checkedAt = await page.evaluate(() => performance.now());
  const lt = await longTasks(0, checkedAt);
  results[view] = { first: firstAt, all: allAt, warningsChecked: checkedAt, longTasks: lt };
  log(
    `${view}: first posts on screen at ${ms(firstAt)}, all ${COUNT} at ${ms(allAt)}, warnings checked at ${ms(checkedAt)}; ` +
      `long tasks ${lt.count}, longest ${lt.longest} ms`,
  );
  const text = await status.textContent();
  if (!text.startsWith(all)) throw new Error(`${view}: the status says "${text}", not ${all}`);
}

async function switchMonths() {
  const a = await page.evaluate(() => performance.now());
  await page.getByRole('button', { name: 'Next ›' }).click();
  await page.waitForFunction(() => !(document.querySelector('.cal-toolbar [role="status"]')?.textContent || '').includes('Loading'), null, {
    timeout: 60_000,
    polling: 'raf',
  });
  const b = await page.evaluate(() => performance.now());
  await page.getByRole('button', { name: '‹ Previous' }).click();
  const c = await done();
  const lt = await longTasks(a, c);
  return { next: b - a, back: c - b, longTasks: lt };
}

await open('month');
results.monthSwitch = await switchMonths();
log(`month: to the (empty) next month ${ms(results.monthSwitch.next)}, back to the ${COUNT} ${ms(results.monthSwitch.back)}; long tasks ${results.monthSwitch.longTasks.count}, longest ${results.monthSwitch.longTasks.longest} ms`);

await open('list');
const scroll = await page.evaluate(async () => {
  const el = document.querySelector('.vlist');
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const start = performance.now();
  let frames = 0;
  let worst = 0;
  let last = start;
  // A page of rows per frame, top to bottom.
  for (let y = 0; y < el.scrollHeight; y += el.clientHeight) {
    el.scrollTop = y;
    await frame();
    const t = performance.now();
    worst = Math.max(worst, t - last);
    last = t;
    frames++;
  }
  return { start, time: performance.now() - start, frames, worst };
});
const scrollLong = await longTasks(scroll.start, scroll.start + scroll.time);
results.listScroll = { ...scroll, longTasks: scrollLong };
log(`list: scrolled through ${COUNT} rows in ${ms(scroll.time)} (${scroll.frames} frames, worst frame ${ms(scroll.worst)}); long tasks ${scrollLong.count}`);
results.listSwitch = await switchMonths();
log(`list: to the next month ${ms(results.listSwitch.next)}, back ${ms(results.listSwitch.back)}; long tasks ${results.listSwitch.longTasks.count}, longest ${results.listSwitch.longTasks.longest} ms`);

console.log(JSON.stringify({ posts: COUNT, ...results }, null, 1));
await browser.close();
