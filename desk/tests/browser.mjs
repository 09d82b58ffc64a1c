// The desk in a real browser: Debian's chromium driven by playwright-core, axe-core on every view.
//
//   HERALD_URL          the API origin that serves the desk (required), e.g. http://127.0.0.1:8080
//   HERALD_SANDBOX_URL  the sandbox Telegram emulator (required), e.g. http://127.0.0.1:8081
//   HERALD_ADMIN_TOKEN  the bootstrap administrator's token (required): sets up the data
//   HERALD_SCREENSHOTS  a directory for a PNG of each view (optional)
//   HERALD_CHROMIUM     the browser (default /usr/bin/chromium)
//
// It creates its own workspace, bot, channel, contacts and users (names made unique per run), so
// it runs against any Herald, fresh or not, on any port. Exits non-zero on the first broken step,
// or at the end when axe found serious or critical violations, with what failed.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`desk browser test: set ${name} (see the top of desk/tests/browser.mjs)`);
    process.exit(2);
  }
  return v.replace(/\/+$/, '');
};
const HERALD = env('HERALD_URL');
const SANDBOX = env('HERALD_SANDBOX_URL');
const ADMIN = env('HERALD_ADMIN_TOKEN');
const SHOTS = process.env.HERALD_SCREENSHOTS || '';
const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const log = (...a) => console.log(`[desk ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const violations = [];

// ------------------------------------------------------------------ set-up through the API ---

async function call(method, path, body, token = ADMIN, base = HERALD) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) throw new Error(`set-up: ${method} ${path} answered ${res.status}: ${text}`);
  return data;
}

async function sandbox(path, body) {
  const res = await fetch(SANDBOX + path, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  if (!res.ok) throw new Error(`set-up: sandbox ${path} answered ${res.status}: ${await res.text()}`);
}

const run = Math.random().toString(36).slice(2, 8);
const rnd = (lo, span) => lo + Math.floor(Math.random() * span);
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

async function setUp() {
  const ws = (await call('POST', '/v1/workspaces', { name: 'Acme newsroom' })).id;
  const base = `/v1/workspaces/${ws}`;
  const botNumber = rnd(100_000_000, 800_000_000);
  const bot = (await call('POST', `${base}/bots`, { name: 'Acme news bot', token: `${botNumber}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw` })).id;
  const channelId = -(1_000_000_000_000 + rnd(1, 999_999_999));
  await sandbox('/sandbox/chats', { chat_id: channelId, type: 'channel', title: 'Acme news' });
  const channel = (await call('POST', `${base}/chats`, { bot_id: bot, telegram_chat_id: channelId, title: 'Acme news' })).id;
  const groupId = -(1_000_000_000_000 + rnd(1, 999_999_999));
  await sandbox('/sandbox/chats', { chat_id: groupId, type: 'supergroup', title: 'Acme community' });
  const group = (await call('POST', `${base}/chats`, { bot_id: bot, telegram_chat_id: groupId, title: 'Acme community', tags: ['community'] })).id;
  const contacts = [];
  for (const [name, tags] of [
    ['Alice Martin', ['berlin', 'vip']],
    ['Bob Keller', ['berlin']],
    ['Chloé Dubois', ['paris']],
  ]) {
    const id = (
      await call('POST', `${base}/chats`, {
        bot_id: bot,
        telegram_chat_id: rnd(10_000_000, 900_000_000),
        title: name,
        tags,
        lawful_basis: 'consent',
        source: 'newsletter form',
        given_at: '2026-11-01T10:00:00Z',
      })
    ).id;
    contacts.push(id);
  }
  await call('POST', `${base}/segments`, { name: 'Berlin VIPs', tags_all: ['berlin'], tags_any: ['vip'] });
  await call('POST', `${base}/segments`, { name: 'Everyone in Berlin', tags_all: ['berlin'] });
  await call('PUT', `${base}/rules`, {
    forbidden_words: [
      { word: 'guaranteed', severity: 'warn' },
      { word: 'miracle', severity: 'block' },
    ],
    link_domains: { deny: ['evil.example'] },
  });
  // Chloé's quiet hours (in her zone): a post planned into them shows a warning in the calendar.
  await call('PUT', `${base}/chats/${contacts[2]}/audience-rules`, { time_zone: 'Europe/Paris', quiet_hours: { start: '22:00', end: '07:00' } });

  const password = `desk-${run}-long-password`;
  const user = async (login, name, role) => {
    const made = await call('POST', '/v1/users', { login, name, password });
    const id = made.user?.id ?? made.id;
    await call('PUT', `${base}/members/${id}`, { role });
    return id;
  };
  // Ann plans (an editor-in-chief: admin, so she may approve others' posts but never her own),
  // Ben approves, Avery audits, Vic only reads.
  const users = {
    ann: { login: `ann-${run}`, id: await user(`ann-${run}`, 'Ann Author', 'admin') },
    ben: { login: `ben-${run}`, id: await user(`ben-${run}`, 'Ben Approver', 'approver') },
    avery: { login: `avery-${run}`, id: await user(`avery-${run}`, 'Avery Auditor', 'auditor') },
    vic: { login: `vic-${run}`, id: await user(`vic-${run}`, 'Vic Viewer', 'viewer') },
  };
  for (const u of Object.values(users)) {
    u.token = (await call('POST', '/v1/sessions', { login: u.login, password }, '')).token;
  }

  // A realistic small month: posts across the coming days, some approved.
  const day = 86_400_000;
  const now = Date.now();
  const texts = [
    'Weekly digest: <b>five stories</b> you missed',
    'Webinar tomorrow at 18:00: <a href="https://acme.example/webinar">register here</a>',
    'Product update: <i>faster exports</i> and a new dashboard',
    'Community call recap and slides',
    'Holiday opening hours for our stores',
    'Guaranteed seats are gone; the waiting list is open',
    'Customer story: how Nordwind cut delivery times by 30%',
    'Reminder: survey closes on Friday',
  ];
  let n = 0;
  for (let d = 1; d <= 20; d += 2) {
    for (let k = 0; k < (d % 3) + 1; k++) {
      const at = new Date(now + d * day);
      at.setUTCHours(8 + k * 3, k * 15, 0, 0);
      const chats = k % 2 ? [group] : [channel];
      const id = (
        await call('POST', `${base}/posts`, { chat_ids: chats, text: texts[n % texts.length], parse_mode: 'HTML', publish_at: iso(at.getTime()) }, users.ann.token)
      ).id;
      if (n % 3 === 0) await call('POST', `${base}/posts/${id}/approve`, undefined, users.ben.token);
      n++;
    }
  }
  const late = new Date(now + 3 * day);
  late.setUTCHours(22, 30, 0, 0);
  await call('POST', `${base}/posts`, { chat_ids: [contacts[2]], text: 'Your order has shipped', publish_at: iso(late.getTime()) }, users.ann.token);
  return { ws, base, bot, channel, group, contacts, users, password };
}

// ------------------------------------------------------------------------ browser helpers ---

async function axe(page, view) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of bad) violations.push({ view, ...v });
  const minor = result.length - bad.length;
  log(`axe ${view}: ${bad.length} serious/critical${minor ? `, ${minor} minor` : ''}`);
  for (const v of bad) log(`  ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(' | ')}`);
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

async function view(page, name, opts = {}) {
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(opts.settle ?? 300);
  await axe(page, name);
  await shot(page, name);
}

async function signIn(page, login, password) {
  await page.goto(`${HERALD}/`);
  await page.waitForURL(/\/signin$/);
  await page.getByLabel('Login').fill(login);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(/\/w\/[^/]+\/calendar/);
  await page.getByRole('heading', { level: 1, name: /Calendar/ }).waitFor();
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/signin$/);
}

function step(name) {
  log(`— ${name}`);
}

// --------------------------------------------------------------------------------- the run ---

async function main() {
  step('setting up a workspace, a bot, chats and users through the API');
  const data = await setUp();
  const { ws, users, password } = data;
  log(`workspace ${ws}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    step('sign-in page');
    await page.goto(`${HERALD}/`);
    await page.waitForURL(/\/signin$/);
    await view(page, 'signin');

    step('a wrong password is refused in plain words');
    await page.getByLabel('Login').fill(users.ann.login);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: /do not match/ }).waitFor();

    step('the author signs in and plans a post in the editor');
    await signIn(page, users.ann.login, password);
    await view(page, 'calendar-month');
    await page.getByRole('link', { name: 'New post' }).first().click();
    await page.getByRole('heading', { level: 1, name: 'New post' }).waitFor();
    const text = `Guaranteed fresh news from <b>Herald</b> ${run}`;
    await page.getByLabel('Text', { exact: true }).fill(text);
    await page.getByRole('checkbox', { name: /Acme news/ }).check();
    const at = new Date(Date.now() + 45_000);
    const p = (n) => String(n).padStart(2, '0');
    const local = new Intl.DateTimeFormat('en-CA', {
      timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    }).formatToParts(at).reduce((o, x) => ({ ...o, [x.type]: x.value }), {});
    await page.locator('input[name="publish_at"]').fill(`${local.year}-${local.month}-${local.day}T${local.hour}:${local.minute}:${p(Number(local.second))}`);
    step('preview, counter and a finding');
    await page.locator('.tg-bubble strong', { hasText: 'Herald' }).waitFor();
    const counter = await page.locator('#counter').textContent();
    const visible = `Guaranteed fresh news from Herald ${run}`.length;
    if (!counter.includes(`${visible} / 4,096`)) throw new Error(`the counter says "${counter}", expected ${visible} / 4,096`);
    await page.locator('.finding', { hasText: /guaranteed/i }).first().waitFor();
    await view(page, 'editor-author');
    await page.getByRole('button', { name: 'Plan post' }).click();
    await page.waitForURL(/\/posts\/[0-9a-f-]{36}$/);
    const postId = page.url().split('/').pop();
    log(`post ${postId}`);

    step("the author's own approval is refused with the server's message");
    await page.getByRole('button', { name: 'Approve' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: /Not done:/ });
    await refusal.waitFor();
    log(`refusal shown: ${(await refusal.textContent()).trim()}`);
    await page.locator('.timeline li', { hasText: /planned the post/ }).waitFor();
    await view(page, 'post-own-approval-refused');
    await signOut(page);

    step('a viewer sees no planning, approving or audit actions');
    await signIn(page, users.vic.login, password);
    for (const name of ['New post', 'Audit']) {
      if (await page.getByRole('link', { name, exact: true }).count()) throw new Error(`a viewer sees the "${name}" link`);
    }
    await page.goto(`${HERALD}/w/${ws}/posts/${postId}`);
    await page.getByRole('heading', { level: 1, name: /Post for/ }).waitFor();
    if (await page.getByRole('button', { name: 'Approve' }).count()) throw new Error('a viewer sees the Approve button');
    await signOut(page);

    step('the approver approves it from the queue with a comment');
    await signIn(page, users.ben.login, password);
    await page.getByRole('link', { name: 'Approvals' }).click();
    const item = page.locator('article.queue-item', { hasText: run });
    await item.waitFor();
    await view(page, 'approval-queue');
    await item.getByLabel(/Comment/).fill('Looks good, ship it');
    await item.getByRole('button', { name: 'Approve' }).click();
    await page.locator('.toast', { hasText: 'Approved.' }).waitFor();

    step('it arrives in the sandbox inbox, live, without a reload');
    await page.getByRole('link', { name: 'Sandbox inbox' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sandbox inbox' }).waitFor();
    await page.evaluate(() => {
      window.__deskNoReload = true;
    });
    await page.locator('.tg-bubble', { hasText: `fresh news from Herald ${run}` }).waitFor({ timeout: 120_000 });
    if (!(await page.evaluate(() => window.__deskNoReload === true))) throw new Error('the page reloaded while waiting for the message');
    await page.locator('.tg-bubble strong', { hasText: 'Herald' }).first().waitFor();
    await view(page, 'sandbox-inbox-live');
    await signOut(page);

    step('the auditor finds planned, approved and delivered in the audit explorer');
    await signIn(page, users.avery.login, password);
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit' }).waitFor();
    await page.getByLabel('Post id').fill(postId);
    await page.getByLabel('Post id').press('Enter');
    await page.getByLabel('Post id').blur();
    for (const [what, re] of [
      ['planned', /^PostPlanned$/],
      ['approved', /^PostApproved$/],
      ['delivered', /Delivered$/],
    ]) {
      const row = page.locator('tbody tr').filter({ has: page.locator('code', { hasText: re }) });
      await row.first().waitFor({ timeout: 60_000 }).catch(() => {
        throw new Error(`the audit explorer shows no ${what} event for the post`);
      });
      log(`audit shows ${what}`);
    }
    const comment = page.locator('tbody tr', { hasText: 'Looks good, ship it' });
    if (!(await comment.count())) log('note: the comment is not among the filtered rows');
    await view(page, 'audit-filtered');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    if (!download.suggestedFilename().endsWith('.csv')) throw new Error('the export is not a CSV file');
    await signOut(page);

    step('every view, as the workspace admin, at 1280×800');
    await signIn(page, users.ann.login, password);
    await visitAll(page, ws, postId, '');

    step('every view at phone width (390×844)');
    await page.setViewportSize({ width: 390, height: 844 });
    await visitAll(page, ws, postId, '-phone');

    if (consoleErrors.length) throw new Error(`the page threw: ${consoleErrors.join('; ')}`);
    await context.close();
  } finally {
    await browser.close();
  }
}

async function visitAll(page, ws, postId, suffix) {
  const go = async (path, heading) => {
    await page.evaluate((to) => {
      history.pushState(null, '', to);
      dispatchEvent(new PopStateEvent('popstate'));
    }, path);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  };
  const base = `/w/${ws}`;
  await go(`${base}/calendar?view=month`, /Calendar/);
  await page.locator('.chip').first().waitFor();
  await view(page, `calendar-month${suffix}`);
  await go(`${base}/calendar?view=week`, /Calendar: Week/);
  await view(page, `calendar-week${suffix}`);
  await go(`${base}/calendar?view=day`, /Calendar/);
  await view(page, `calendar-day${suffix}`);
  await go(`${base}/calendar?view=list`, /Calendar/);
  await page.locator('.vlist-row a').first().waitFor();
  await view(page, `calendar-list${suffix}`);
  await go(`${base}/posts/new`, 'New post');
  await page.getByLabel('Text', { exact: true }).fill('Our results: <a href="https://acme.example/q3">Q3 report</a> are <b>out</b>. A miracle!');
  await page.locator('.finding-block').first().waitFor();
  await view(page, `editor${suffix}`);
  await go(`${base}/approvals`, 'Approvals');
  await view(page, `approvals${suffix}`);
  await go(`${base}/posts/${postId}`, /Post for/);
  await page.locator('.timeline li').first().waitFor();
  await view(page, `post${suffix}`);
  await go(`${base}/audience`, 'Audience');
  await page.locator('tbody tr').first().waitFor();
  await view(page, `audience${suffix}`);
  await go(`${base}/audience?tab=import`, 'Audience');
  await page.getByLabel('Rows').fill('telegram_chat_id,title,lawful_basis,source\n5550001,Dana,consent,spring fair\n5550002,Eli,,\n');
  await page.getByRole('button', { name: 'Check (dry run)' }).click();
  await page.locator('#import-result').waitFor();
  if (!(await page.locator('tbody tr', { hasText: 'rejected' }).count())) throw new Error('the import dry run shows no rejected row for a row without a lawful basis');
  await view(page, `audience-import${suffix}`);
  await go(`${base}/audience?tab=segments`, 'Audience');
  await view(page, `audience-segments${suffix}`);
  await go(`${base}/audit`, 'Audit');
  await page.locator('tbody tr').first().waitFor();
  await view(page, `audit${suffix}`);
  await go(`${base}/operations`, 'Operations');
  await page.getByRole('heading', { name: /In doubt/ }).waitFor();
  await view(page, `operations${suffix}`);
  await go(`${base}/sandbox`, 'Sandbox inbox');
  await page.locator('.tg-bubble').first().waitFor();
  await view(page, `sandbox-inbox${suffix}`);
  await go(`${base}/settings`, 'Settings');
  await view(page, `settings${suffix}`);
}

main().then(
  () => {
    if (violations.length) {
      console.error(`desk browser test: FAILED: axe found ${violations.length} serious or critical violation(s):`);
      for (const v of violations) console.error(`  ${v.view}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.join(' | ')})`);
      process.exit(1);
    }
    log('desk browser test: passed');
  },
  (e) => {
    console.error(`desk browser test: FAILED: ${e.message || e}`);
    process.exit(1);
  },
);
