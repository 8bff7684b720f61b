// The admin dashboard in Debian's Chromium, driven by playwright-core: it asks for the admin token,
// lists the events that were sent, shows one as received, and a notification the booking service
// refused is retried with its button and then shows delivered. Screenshots in target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, startStack } from './lib/stack.mjs';

const ADMIN_TOKEN = 'dashboard-admin-token';
const SERVICE_TOKEN = 'dashboard-service-token';
const WEBHOOK_SECRET = 'whsec_dashboard_test_secret';

let stack, browser, adminBase, bookingsBase;

before(async () => {
  stack = await startStack({ adminToken: ADMIN_TOKEN, serviceToken: SERVICE_TOKEN, webhookSecret: WEBHOOK_SECRET });
  ({ browser, adminBase, bookingsBase } = stack);
});

after(async () => {
  await stack?.stop();
});

function trigger(type, booking) {
  return stack.trigger([type, '--add', `metadata.bookingId=${booking}`]);
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
