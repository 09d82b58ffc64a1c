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
  await sandbox('/sandbox/chats', { chat_id: channelId, type: 'channel', title: 'Acme news', username: `acme_news_${run}` });
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
  // Dana asked to be forgotten: the admin erases her from the desk.
  const dana = (
    await call('POST', `${base}/chats`, {
      bot_id: bot,
      telegram_chat_id: rnd(10_000_000, 900_000_000),
      title: 'Dana Weber',
      tags: ['hamburg'],
      lawful_basis: 'consent',
      source: 'spring fair',
      given_at: '2026-10-12T09:00:00Z',
    })
  ).id;
  await call('POST', `${base}/segments`, { name: 'Berlin VIPs', tags_all: ['berlin'], tags_any: ['vip'] });
  const everyone = (await call('POST', `${base}/segments`, { name: 'Everyone in Berlin', tags_all: ['berlin'] })).id;
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
  return { ws, base, bot, channel, group, contacts, dana, everyone, users, password };
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

/** A moment as an <input type="datetime-local"> value in the browser's zone (Europe/Berlin). */
function berlinInput(ms, seconds = false) {
  const x = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  })
    .formatToParts(ms)
    .reduce((o, p) => ({ ...o, [p.type]: p.value }), {});
  return `${x.year}-${x.month}-${x.day}T${x.hour}:${x.minute}${seconds ? `:${x.second}` : ''}`;
}

/** Polls `read` (an API read) until `ok` holds of its answer, or fails with `what`. */
async function until(what, read, ok, ms = 15_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`${what} (last answer: ${JSON.stringify(last).slice(0, 300)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function go(page, path, heading) {
  await page.evaluate((to) => {
    history.pushState(null, '', to);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

async function noReloadMark(page) {
  await page.evaluate(() => {
    window.__deskNoReload = true;
  });
}
async function noReloadCheck(page, what) {
  if (!(await page.evaluate(() => window.__deskNoReload === true))) throw new Error(`the page reloaded while ${what}`);
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
    await page.locator('input[name="publish_at"]').fill(berlinInput(at.getTime(), true));
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

    step('it arrives in the sandbox inbox, live, without a reload (meanwhile the admin works in a second browser)');
    await page.getByRole('link', { name: 'Sandbox inbox' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sandbox inbox' }).waitFor();
    await noReloadMark(page);
    const adminContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
    const admin = adminContext.newPage().then(async (ap) => {
      ap.setDefaultTimeout(20_000);
      ap.on('pageerror', (e) => consoleErrors.push(String(e)));
      await adminFlow(ap, data);
      await adminContext.close();
    }).then(() => null, (e) => e);
    await page.locator('.tg-bubble', { hasText: `fresh news from Herald ${run}` }).waitFor({ timeout: 120_000 });
    await noReloadCheck(page, 'waiting for the message');
    await page.locator('.tg-bubble strong', { hasText: 'Herald' }).first().waitFor();
    await view(page, 'sandbox-inbox-live');
    const adminFailed = await admin;
    if (adminFailed) throw adminFailed;
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
    await visitAll(page, ws, postId, '', data.contacts[0]);

    step('every view at phone width (390×844)');
    await page.setViewportSize({ width: 390, height: 844 });
    await visitAll(page, ws, postId, '-phone', data.contacts[0]);

    if (consoleErrors.length) throw new Error(`the page threw: ${consoleErrors.join('; ')}`);
    await context.close();
  } finally {
    await browser.close();
  }
}

// The workspace admin (Ann) in a browser of her own: the calendar's drag and keyboard moves,
// live updates from other people's actions, Settings, a contact's page and erasing a contact.
async function adminFlow(page, data) {
  const { ws, base: api, users, password, channel, contacts, dana, everyone } = data;
  const base = `/w/${ws}`;
  const day = 86_400_000;
  const getPost = (id) => call('GET', `${api}/posts/${id}`, undefined, users.ann.token);
  await signIn(page, users.ann.login, password);

  step('admin: drag a post to another day in the month view; the API says publish_at moved a day');
  const start = new Date(Date.now() + 2 * day);
  start.setUTCHours(10, 0, 0, 0);
  const drag = (
    await call('POST', `${api}/posts`, { chat_ids: [channel], text: `Drag me ${run}`, publish_at: iso(start.getTime()) }, users.ann.token)
  ).id;
  await go(page, `${base}/calendar?view=month&date=${berlinInput(start.getTime()).slice(0, 10)}`, /Calendar/);
  const chip = page.locator(`.chip[href$="/posts/${drag}"]`);
  await chip.waitFor();
  const targetDay = berlinInput(start.getTime() + day).slice(0, 10);
  await chip.dragTo(page.locator(`.cell[data-date="${targetDay}"]`));
  await until(
    'the dragged post did not move a day',
    () => getPost(drag),
    (p) => new Date(p.publish_at).getTime() === start.getTime() + day,
  );
  await page.locator(`.cell[data-date="${targetDay}"] .chip[href$="/posts/${drag}"]`).waitFor();
  log('drag and drop moved the post a day');

  step('admin: the keyboard alternative (focus the post, press M, pick a time)');
  const moved = start.getTime() + 2 * day + 3 * 3_600_000;
  await page.locator(`.chip[href$="/posts/${drag}"]`).focus();
  await page.keyboard.press('m');
  const dialog = page.getByRole('dialog', { name: 'Move the post' });
  await dialog.waitFor();
  await dialog.getByLabel(/New time/).fill(berlinInput(moved));
  await dialog.getByLabel(/New time/).press('Enter');
  await until('the keyboard move did not reach the API', () => getPost(drag), (p) => new Date(p.publish_at).getTime() === moved);
  await page.locator(`.cell[data-date="${berlinInput(moved).slice(0, 10)}"] .chip[href$="/posts/${drag}"]`).waitFor();
  log('the keyboard move moved the post');

  step('admin: the calendar updates live when others plan and approve through the API');
  await noReloadMark(page);
  const liveAt = new Date(start.getTime() - day);
  const live = (
    await call('POST', `${api}/posts`, { chat_ids: [channel], text: `Planned elsewhere ${run}`, publish_at: iso(liveAt.getTime()) }, users.ann.token)
  ).id;
  await page.locator(`.chip.s-planned[href$="/posts/${live}"]`).waitFor();
  await call('POST', `${api}/posts/${live}/approve`, undefined, users.ben.token);
  await page.locator(`.chip.s-approved[href$="/posts/${live}"]`).waitFor();
  await noReloadCheck(page, 'waiting for the calendar to update');
  log('the calendar showed the new post, then its approval, without a reload');

  step('admin: the approval queue updates live too');
  await go(page, `${base}/approvals`, 'Approvals');
  const queued = (
    await call('POST', `${api}/posts`, { chat_ids: [channel], text: `Queue me ${run}`, publish_at: iso(liveAt.getTime() + 3_600_000) }, users.ann.token)
  ).id;
  const row = page.locator(`a[href$="/posts/${queued}"]`);
  await row.first().waitFor();
  await call('POST', `${api}/posts/${queued}/reject`, { reason: 'not this week' }, users.ben.token);
  await row.first().waitFor({ state: 'detached' });
  await noReloadCheck(page, 'waiting for the queue to update');
  log('the queue showed the post, then dropped it once rejected');

  step('admin: connect a channel from Settings through the sandbox');
  await go(page, `${base}/settings`, 'Settings');
  const newChannel = -(1_000_000_000_000 + rnd(1, 999_999_999));
  const connect = page.locator('form', { has: page.getByRole('heading', { name: 'Connect a chat or contact' }) });
  await connect.getByLabel('Telegram chat id').fill(String(newChannel));
  await connect.getByLabel('Title').fill(`Acme offers ${run}`);
  await connect.getByLabel('Kind').selectOption('channel');
  await connect.getByLabel(/Public @username/).fill(`@acme_offers_${run}`);
  await connect.getByRole('button', { name: 'Connect' }).click();
  await page.locator('.toast', { hasText: `Acme offers ${run} connected` }).waitFor();
  const found = await call('GET', `${api}/chats?telegram_chat_id=${newChannel}`);
  if (found.chats.length !== 1 || found.chats[0].title !== `Acme offers ${run}` || found.chats[0].type !== 'channel' || found.chats[0].username !== `acme_offers_${run}`)
    throw new Error(`the channel connected from Settings is not in the API as expected: ${JSON.stringify(found)}`);
  log('the channel is connected');

  step('admin: risk rules and retention from Settings → Rules');
  await go(page, `${base}/settings?tab=rules`, 'Settings');
  const risk = page.locator('form', { has: page.getByRole('heading', { name: 'Risk rules for posts' }) });
  await risk.getByRole('button', { name: 'Add a word' }).click();
  const n = await risk.getByLabel(/^Word or phrase/).count();
  await risk.getByLabel(`Word or phrase ${n}`).fill('free money');
  await risk.getByLabel(`Severity ${n}`).selectOption('block');
  await risk.getByLabel(/Links allowed only to/).fill('acme.example\nt.me');
  await risk.getByRole('button', { name: 'Save the rules' }).click();
  await page.locator('.toast', { hasText: 'Rules saved' }).waitFor();
  const rules = (await call('GET', `${api}/rules`)).rules;
  if (!rules.forbidden_words.some((w) => w.word === 'free money' && w.severity === 'block') || !rules.link_domains.allow.includes('acme.example'))
    throw new Error(`the rules saved from the desk are not the API's: ${JSON.stringify(rules)}`);
  const retention = page.locator('form', { has: page.getByRole('heading', { name: 'Audit retention' }) });
  await retention.getByLabel(/Keep the audit/).fill('180');
  await retention.getByRole('button', { name: 'Save retention' }).click();
  await page.locator('.toast', { hasText: '180 days' }).waitFor();
  const wsInfo = await call('GET', api);
  if (wsInfo.retention.audit_days !== 180) throw new Error(`retention is ${JSON.stringify(wsInfo.retention)}, not 180 days`);
  const sealing = page.locator('form', { has: page.getByRole('heading', { name: 'Post texts' }) });
  await sealing.getByRole('checkbox').check();
  await sealing.getByRole('button', { name: 'Save' }).click();
  await page.locator('.toast', { hasText: 'keep their texts sealed' }).waitFor();
  if (!(await call('GET', api)).privacy?.seal_post_texts) throw new Error('sealing post texts from Settings did not reach the API');
  await view(page, 'settings-rules');

  step("admin: erase a sealed post's texts from its page");
  const sealed = (
    await call('POST', `${api}/posts`, { chat_ids: [channel], text: `A private note ${run}`, publish_at: iso(start.getTime()) }, users.ann.token)
  ).id;
  await call('POST', `${api}/posts/${sealed}/cancel`, undefined, users.ann.token);
  await go(page, `${base}/posts/${sealed}`, /Post for/);
  await page.getByRole('button', { name: /Erase this post’s texts/ }).click();
  const eraseText = page.getByRole('alertdialog', { name: /Erase this post’s texts/ });
  await eraseText.getByText('This cannot be undone.').waitFor();
  await eraseText.getByRole('button', { name: 'Erase the texts for good' }).click();
  await page.locator('.tg-bubble', { hasText: 'The text of this post was erased.' }).waitFor();
  if (!(await getPost(sealed)).texts_erased) throw new Error('the post page erased no texts in the API');

  step("admin: a contact's basis, tags and quiet hours on her page");
  const bob = contacts[1];
  await go(page, `${base}/chats/${bob}`, 'Bob Keller');
  const basis = page.locator('form', { has: page.getByRole('heading', { name: 'Lawful basis' }) });
  await basis.getByLabel('Basis').selectOption('legitimate_interest');
  await basis.getByLabel('Where it comes from').fill('customer since 2019');
  await basis.getByRole('button', { name: 'Record the basis' }).click();
  await page.locator('.toast', { hasText: 'Lawful basis recorded' }).waitFor();
  await page.getByLabel('Tags, separated by commas').fill('berlin, press');
  await page.getByRole('button', { name: 'Save tags' }).click();
  await page.locator('.toast', { hasText: 'Tags saved' }).waitFor();
  const rulesForm = page.locator('form', { has: page.getByRole('heading', { name: 'Quiet hours and caps' }) });
  await rulesForm.getByLabel(/^Time zone/).selectOption('Europe/Berlin');
  await rulesForm.getByRole('checkbox', { name: 'Quiet hours' }).check();
  await rulesForm.getByLabel('From', { exact: true }).fill('00:00');
  await rulesForm.getByLabel('Until', { exact: true }).fill('23:59');
  await rulesForm.getByRole('button', { name: 'Save rules' }).click();
  await rulesForm.getByText('Saved.').waitFor();
  const bobNow = await until(
    "Bob's page did not reach the API",
    () => call('GET', `${api}/chats/${bob}`),
    (c) => c.audience_rules?.quiet_hours?.start === '00:00' && c.tags.join() === 'berlin,press',
  );
  if (bobNow.lawful_basis?.basis !== 'legitimate_interest' || bobNow.lawful_basis.source !== 'customer since 2019')
    throw new Error(`Bob's lawful basis is ${JSON.stringify(bobNow.lawful_basis)}`);
  await page.locator('.facts', { hasText: 'quiet 00:00–23:59 (Europe/Berlin)' }).waitFor();
  await view(page, 'chat-contact');

  step("admin: the editor's dry-run finds the quiet hours, and the segment's audience is counted");
  await go(page, `${base}/posts/new`, 'New post');
  await page.getByLabel('Text', { exact: true }).fill(`A note for the press ${run}`);
  await page.getByRole('checkbox', { name: /Bob Keller/ }).check();
  await page.locator('.finding', { hasText: /quiet hours/i }).first().waitFor();
  await page.getByRole('checkbox', { name: /Everyone in Berlin/ }).check();
  await page.locator('#audience-count', { hasText: /in all/ }).waitFor();
  log(`editor: ${(await page.locator('.finding', { hasText: /quiet hours/i }).first().textContent()).trim()}`);

  step('admin: a segment lists a chat');
  await go(page, `${base}/audience?tab=segments`, 'Audience');
  await page.getByRole('button', { name: 'Edit Everyone in Berlin' }).click();
  const seg = page.locator('form', { has: page.getByRole('heading', { name: 'Edit Everyone in Berlin' }) });
  await seg.getByRole('checkbox', { name: /Chloé Dubois/ }).check();
  await seg.getByRole('button', { name: 'Save segment' }).click();
  await page.locator('.toast', { hasText: 'Segment saved' }).waitFor();
  const segment = await call('GET', `${api}/segments/${everyone}`);
  if (!segment.chat_ids.includes(contacts[2])) throw new Error(`the segment does not list Chloé: ${JSON.stringify(segment)}`);

  step('admin: erase a contact, after a confirmation that says it cannot be undone');
  await go(page, `${base}/chats/${dana}`, 'Dana Weber');
  await page.getByRole('button', { name: /^Erase Dana Weber/ }).click();
  const confirm = page.getByRole('alertdialog', { name: 'Erase Dana Weber?' });
  await confirm.getByText('This cannot be undone.').waitFor();
  await confirm.getByRole('button', { name: 'Erase for good' }).click();
  await page.getByRole('heading', { level: 1, name: 'Erased contact' }).waitFor();
  await page.locator('.page-head .badge', { hasText: 'erased' }).waitFor();
  const erased = await call('GET', `${api}/chats/${dana}`);
  if (!erased.erased || !erased.opted_out) throw new Error(`Dana is not erased in the API: ${JSON.stringify(erased)}`);
  await go(page, `${base}/audience`, 'Audience');
  await page.locator(`tbody tr:has(a[href$="/chats/${dana}"])`, { hasText: 'erased' }).waitFor();
  log('Dana shows as erased');
}

async function visitAll(page, ws, postId, suffix, contact) {
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
  await page.locator('tbody tr', { hasText: 'Acme news' }).locator(`a[href^="https://t.me/acme_news_"]`).waitFor();
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
  await page.getByRole('button', { name: 'Edit Berlin VIPs' }).click();
  await page.getByRole('heading', { name: 'Edit Berlin VIPs' }).waitFor();
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
  await go(`${base}/settings?tab=rules`, 'Settings');
  await page.getByRole('heading', { name: 'Risk rules for posts' }).waitFor();
  await view(page, `settings-rules${suffix}`);
  await go(`${base}/chats/${contact}`, /./);
  await page.getByRole('heading', { name: 'Who approves posts to it' }).waitFor();
  await view(page, `chat${suffix}`);
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
