// The explain page in Debian's Chromium, driven by playwright-core: a booking is paid while the
// booking service does not know it yet (the `confirmed` notification is refused and given up), the
// operator finds the booking with the search box and sees what needs a person; the booking is
// created, the notification retried, a partial refund arrives; the explain page then shows the
// timeline in provider time, the fact and rule of each event, the notifications with every attempt,
// and the raw body of an event. Screenshots in target/screenshots/ (copied to docs/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, startStack } from './lib/stack.mjs';

const ADMIN_TOKEN = 'explain-admin-token';
const SERVICE_TOKEN = 'explain-service-token';
const WEBHOOK_SECRET = 'whsec_explain_test_secret';
const BOOKING = 'booking-explained';

let stack, browser, adminBase, bookingsBase;

before(async () => {
  stack = await startStack({ adminToken: ADMIN_TOKEN, serviceToken: SERVICE_TOKEN, webhookSecret: WEBHOOK_SECRET });
  ({ browser, adminBase, bookingsBase } = stack);
});

after(async () => {
  await stack?.stop();
});

async function admin(path, method = 'GET') {
  const r = await fetch(`${adminBase}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return r.json();
}

async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    assert.ok(Date.now() < deadline, `not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('the explain page shows why a booking is partially refunded and what its booking service heard', async () => {
  // Paid while the booking service does not know the booking: `confirmed` is refused (404), for good.
  const paid = stack.trigger(['payment_intent.succeeded', '--add', 'id=pi_explained', '--add', `metadata.bookingId=${BOOKING}`,
    '--add', 'amount=2000']);
  await until('the confirmed notification dead', async () =>
    (await admin('/admin/api/deliveries?status=dead')).data.find((d) => d.booking_id === BOOKING));

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.goto(`${adminBase}/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#login-form button');
  await page.waitForSelector('#cards .card');

  // The search box finds the booking and opens its explanation.
  await page.fill('#q', BOOKING);
  await page.press('#q', 'Enter');
  await page.waitForURL(new RegExp(`#explain/${BOOKING}$`));
  await page.waitForSelector('#needs-attention li[data-kind=dead_notification]');
  const attention = await page.textContent('#needs-attention');
  assert.match(attention, /`confirmed` to booking-service was given up: 404/);
  assert.match(attention, /What to do: fix what the target refused, then `payhook deliveries retry ntf_/);
  assert.match(attention, /the booking service refused to confirm the booking paid by payment/);
  await page.screenshot({ path: join(SHOTS, 'explain-attention.png'), fullPage: true });

  // The operator creates the booking, retries, and a partial refund follows.
  const created = await fetch(`${bookingsBase}/api/v1/bookings`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${SERVICE_TOKEN}` },
    body: JSON.stringify({ id: BOOKING, amount: 2000, currency: 'eur' }),
  });
  assert.ok(created.ok);
  const dead = (await admin('/admin/api/deliveries?status=dead')).data.find((d) => d.booking_id === BOOKING);
  await admin(`/admin/api/deliveries/${dead.notification_id}/retry`, 'POST');
  const refund = stack.trigger(['charge.refunded', '--add', 'payment_intent=pi_explained', '--add', 'amount=2000',
    '--add', 'amount_refunded=500']);
  await until('the booking partially refunded', async () => {
    const b = await (await fetch(`${bookingsBase}/api/v1/bookings/${BOOKING}`, {
      headers: { authorization: `Bearer ${SERVICE_TOKEN}` },
    })).json();
    return b.data.status === 'partially_refunded';
  });

  // The page refreshes itself: nothing needs a person any more, and the timeline tells the story.
  await page.locator('#needs-attention').waitFor({ state: 'detached', timeout: 20000 });
  await page.locator('#explain-told', { hasText: 'partially_refunded delivered' }).waitFor({ timeout: 20000 });
  const summary = await page.textContent('#explain-summary');
  assert.match(summary, new RegExp(`^booking ${BOOKING} is partially_refunded since charge.refunded ${refund}`));
  const steps = page.locator('#explain-timeline > li');
  assert.equal(await steps.count(), 2);
  const first = await steps.nth(0).textContent();
  assert.match(first, new RegExp(`payment_intent.succeeded ${paid}`));
  assert.match(first, /Fact: the payment succeeded \(20\.00 EUR\)/);
  assert.match(first, /Status after it: succeeded/);
  assert.match(first, /paid outranks/);
  assert.match(first, /verified: stripe signature in stripe-signature/);
  const second = await steps.nth(1).textContent();
  assert.match(second, /Fact: 5\.00 EUR refunded in all/);
  assert.match(second, /refunds add up to 5\.00 EUR of 20\.00 EUR: a partial refund outranks paid/);
  // `confirmed`: refused once (404, dead), then delivered on the retry; each attempt on its row.
  const confirmed = steps.nth(0).locator('.notification', { hasText: 'confirmed' });
  const attempts = confirmed.locator('tbody tr');
  assert.equal(await attempts.count(), 2);
  assert.match(await attempts.nth(0).textContent(), /^1.*404.*dead/);
  assert.match(await attempts.nth(1).textContent(), /^2.*200.*delivered/);
  assert.match(await steps.nth(1).locator('.notification').textContent(), /partially_refunded\s*delivered/);
  await page.screenshot({ path: join(SHOTS, 'explain-timeline.png'), fullPage: true });

  // Each event's raw body is one click away.
  await steps.nth(1).locator('a.raw').click();
  await page.waitForSelector('#raw-body');
  assert.match(await page.textContent('#raw-body'), new RegExp(refund));

  // The payment intent opens the payment's own page.
  await page.goto(`${adminBase}/#explain/pi_explained`);
  await page.locator('#explain-summary', { hasText: /^payment \d+ is partially_refunded/ }).waitFor();

  // A hand-typed address that does not decode opens the tab, with no script error.
  await page.goto(`${adminBase}/#explain/%`);
  await page.waitForTimeout(500);
  assert.equal(await page.locator('#explain').isVisible(), true);

  const html = await page.content();
  for (const secret of [ADMIN_TOKEN, SERVICE_TOKEN, WEBHOOK_SECRET]) {
    assert.ok(!html.includes(secret), 'no secret on the page');
  }
  assert.deepEqual(pageErrors, []);
  await page.close();
});
