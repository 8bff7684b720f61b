// The admin dashboard in Debian's Chromium, driven by playwright-core: it asks for the admin token,
// lists the events that were sent, shows one as received, and a notification the booking service
// refused is retried with its button and then shows delivered. Screenshots in target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
const SHOTS = join(ROOT, 'target', 'screenshots');
const ADMIN_TOKEN = 'dashboard-admin-token';
const SERVICE_TOKEN = 'dashboard-service-token';
const WEBHOOK_SECRET = 'whsec_dashboard_test_secret';

let browser, payhook, bookings, dir, publicBase, adminBase, bookingsBase;

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'payhook-dashboard-'));
  const bookingsPort = await freePort();
  bookingsBase = `http://127.0.0.1:${bookingsPort}`;
  bookings = spawn(BIN, ['example-booking-service', '--listen', `127.0.0.1:${bookingsPort}`, '--token', SERVICE_TOKEN],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { RUST_LOG: 'warn' } });
  for await (const _ of createInterface({ input: bookings.stdout })) break;
  const [pub, adm] = [await freePort(), await freePort()];
  publicBase = `http://127.0.0.1:${pub}`;
  adminBase = `http://127.0.0.1:${adm}`;
  payhook = spawn(BIN, ['serve'], {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`, PAYHOOK_LISTEN: `127.0.0.1:${pub}`,
      PAYHOOK_ADMIN_LISTEN: `127.0.0.1:${adm}`, PAYHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, BOOKING_SERVICE_URL: bookingsBase,
      INTERNAL_SERVICE_TOKEN: SERVICE_TOKEN, RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: payhook.stdout })) {
    if (line.startsWith('ready')) break;
  }
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const proc of [payhook, bookings]) {
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

function trigger(type, booking) {
  const out = spawnSync(BIN, ['trigger', type, '--url', `${publicBase}/webhooks/stripe`, '--secret', WEBHOOK_SECRET,
    '--add', `metadata.bookingId=${booking}`], { encoding: 'utf8', env: { RUST_LOG: 'warn' } });
  assert.equal(out.status, 0, out.stdout + out.stderr);
  return out.stdout.split(/\s+/).find((w) => w.startsWith('evt_'));
}

test('the dashboard lists sent events and retries a refused notification with its button', async () => {
  // The booking does not exist yet: the booking service answers 404, and the notification is dead.
  const eventId = trigger('payment_intent.succeeded', 'booking-dash');
  trigger('charge.dispute.created', 'other-booking');

  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.goto(`${adminBase}/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button');
  await page.waitForSelector('#cards .card');

  await page.click('nav button[data-tab=events]');
  await page.waitForSelector(`#events-table td:text-is("${eventId}")`);
  await page.click(`#events-table td:text-is("${eventId}")`);
  await page.waitForSelector('#event-body');
  assert.match(await page.textContent('#event-body'), /booking-dash/);
  await page.screenshot({ path: join(SHOTS, 'dashboard-events.png') });

  await page.click('nav button[data-tab=deliveries]');
  const row = page.locator('#deliveries-table tr', { hasText: 'booking-dash' });
  await row.locator('.status.dead').waitFor({ timeout: 20000 });
  await page.screenshot({ path: join(SHOTS, 'dashboard-dead-delivery.png') });

  // The money was taken but the booking service refused it: the payment says it needs a person.
  await page.click('nav button[data-tab=payments]');
  const payment = page.locator('#payments-table tr', { hasText: 'booking-dash' });
  await payment.locator('.status.attention:text-is("booking_refused")').waitFor({ timeout: 20000 });
  await page.click('nav button[data-tab=deliveries]');

  // The booking exists now; the operator retries.
  const created = await fetch(`${bookingsBase}/api/v1/bookings`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${SERVICE_TOKEN}` },
    body: JSON.stringify({ id: 'booking-dash', amount: 2000, currency: 'eur' }),
  });
  assert.ok(created.ok);
  await row.locator('button[data-retry]').click();
  await row.locator('.status.delivered').waitFor({ timeout: 20000 });
  await page.screenshot({ path: join(SHOTS, 'dashboard-retried.png') });

  const booking = await (await fetch(`${bookingsBase}/api/v1/bookings/booking-dash`, {
    headers: { authorization: `Bearer ${SERVICE_TOKEN}` },
  })).json();
  assert.equal(booking.data.status, 'confirmed');
  // Confirmed at last: nothing needs a person any more.
  await page.click('nav button[data-tab=payments]');
  await payment.locator('.status.attention').waitFor({ state: 'detached', timeout: 20000 });

  await page.click('nav button[data-tab=overview]');
  await page.waitForSelector('#cards .card');
  // The rate: 30 bars, this minute's (or the last one's, at the turn) holding the two events sent.
  assert.equal(await page.locator('#rate-bars div').count(), 30);
  assert.match(await page.textContent('#rate-label'), /peak 2$/);
  await page.screenshot({ path: join(SHOTS, 'dashboard-overview.png') });
  const html = await page.content();
  for (const secret of [ADMIN_TOKEN, SERVICE_TOKEN, WEBHOOK_SECRET]) {
    assert.ok(!html.includes(secret), 'no secret on the page');
  }
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('tabs are in the address, declines show on the overview, and a phone gets no sideways scroll', async () => {
  trigger('payment_intent.payment_failed', 'booking-declined-dash');
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(`${adminBase}/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button');
  await page.waitForSelector('#cards .card');
  // A declined card shows among what the operator looks at first.
  await page.waitForSelector('#declined td:text-is("booking-declined-dash")', { timeout: 20000 });
  assert.equal(await page.textContent('nav button[data-tab=deliveries]'), 'Notifications');

  await page.click('nav button[data-tab=payments]');
  await page.waitForURL(/#payments$/);
  assert.equal(await page.isVisible('#payments'), true);
  await page.click('nav button[data-tab=deliveries]');
  await page.waitForURL(/#deliveries$/);
  await page.goBack();
  await page.waitForURL(/#payments$/);
  assert.equal(await page.isVisible('#payments'), true, 'Back returns to the tab');
  // A deep link opens its tab (the token is kept for the session).
  await page.goto(`${adminBase}/#events`);
  await page.waitForSelector('#events-table table');
  assert.equal(await page.isVisible('#events'), true);

  for (const name of ['overview', 'events', 'payments', 'deliveries']) {
    await page.goto(`${adminBase}/#${name}`);
    await page.waitForTimeout(300);
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${name}: the page is ${scroll}px wide on a ${width}px phone`);
  }
  await page.screenshot({ path: join(SHOTS, 'dashboard-phone.png') });
  await page.close();
});

test('a wrong token is refused and says so', async () => {
  const page = await browser.newPage();
  await page.goto(`${adminBase}/`);
  await page.fill('#token', 'not-the-token');
  await page.click('#login-form button');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.equal(await page.isHidden('#app'), true);
  await page.close();
});
