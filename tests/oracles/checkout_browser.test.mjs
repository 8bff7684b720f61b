// The browser side of a payment in Debian's Chromium, driven by playwright-core: the sandbox's
// hosted page, its buttons, the return page's polling, and `payhook demo` from its form to a
// confirmed booking. Screenshots go to target/screenshots/ (kept by CI as artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BIN, SHOTS, freePort, launchChromium } from './lib/stack.mjs';

let browser;
const running = [];
const dirs = [];

/** Starts `payhook ARGS` on a fresh SQLite store; resolves once it prints `until`. */
async function start(args, until) {
  const dir = mkdtempSync(join(tmpdir(), 'payhook-browser-'));
  dirs.push(dir);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(BIN, args, {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`,
      PAYHOOK_LISTEN: `127.0.0.1:${port}`,
      PAYHOOK_ADMIN_LISTEN: '127.0.0.1:0',
      PAYHOOK_PUBLIC_URL: base,
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.push(proc);
  for await (const line of createInterface({ input: proc.stdout })) {
    if (line.trim().startsWith(until)) break;
  }
  return base;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const proc of running) {
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A sandbox checkout session created through the service route (open: no token is set). */
async function session(base, body) {
  const response = await fetch(`${base}/api/v1/checkout/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount: 8900, currency: 'eur', description: 'Garden room, 1 night', ...body }),
  });
  assert.equal(response.status, 201);
  return response.json();
}

async function outcome(page, state) {
  await page.waitForSelector(`main[data-state="${state}"]`, { timeout: 20000 });
  return page.textContent('#title');
}

test('Pay on the hosted page lands on the return page, which shows the payment confirmed', async () => {
  const base = await start(['serve'], 'ready');
  const created = await session(base, { booking_id: 'booking-browser-pay' });
  const page = await browser.newPage();
  await page.goto(created.checkout_url);
  assert.equal(await page.textContent('#amount'), '89.00 EUR');
  assert.equal(await page.textContent('#description'), 'Garden room, 1 night');
  await page.screenshot({ path: join(SHOTS, 'sandbox-checkout.png') });
  await Promise.all([page.waitForURL(/\/checkout\/return\?session_id=cs_test_/), page.click('#pay')]);
  assert.equal(await outcome(page, 'confirmed'), 'Payment confirmed');
  assert.equal(await page.textContent('#booking'), 'booking-browser-pay');
  await page.screenshot({ path: join(SHOTS, 'return-confirmed.png') });
  await page.close();
});

test('Decline shows the payment failed', async () => {
  const base = await start(['serve'], 'ready');
  const created = await session(base, { booking_id: 'booking-browser-decline' });
  const page = await browser.newPage();
  await page.goto(created.checkout_url);
  await Promise.all([page.waitForURL(/\/checkout\/return/), page.click('#decline')]);
  assert.equal(await outcome(page, 'failed'), 'Payment failed');
  await page.screenshot({ path: join(SHOTS, 'return-failed.png') });
  // Not a dead end: the way back to the payment page, which takes the payment this time.
  await page.waitForSelector('#retry:not([hidden])');
  assert.equal(await page.textContent('#retry'), 'Try again');
  await Promise.all([page.waitForURL(created.checkout_url), page.click('#retry')]);
  await Promise.all([page.waitForURL(/\/checkout\/return/), page.click('#pay')]);
  assert.equal(await outcome(page, 'confirmed'), 'Payment confirmed');
  assert.equal(await page.isHidden('#retry'), true);
  await page.close();
});

test('A page showing a failed attempt turns confirmed when the customer pays in another tab', async () => {
  const base = await start(['serve'], 'ready');
  const created = await session(base, { booking_id: 'booking-browser-two-tabs' });
  const first = await browser.newPage();
  await first.goto(created.checkout_url);
  await Promise.all([first.waitForURL(/\/checkout\/return/), first.click('#decline')]);
  assert.equal(await outcome(first, 'failed'), 'Payment failed');
  // The session can still be paid: the customer pays in a second tab.
  const second = await browser.newPage();
  await second.goto(created.checkout_url);
  await Promise.all([second.waitForURL(/\/checkout\/return/), second.click('#pay')]);
  assert.equal(await outcome(second, 'confirmed'), 'Payment confirmed');
  // The first tab, left on the failure, follows: a failed attempt was not the session's last word.
  assert.equal(await outcome(first, 'confirmed'), 'Payment confirmed');
  assert.equal(await first.isHidden('#retry'), true);
  await first.close();
  await second.close();
});

test('An unknown session says so to the customer, without rows or the gateway\'s name', async () => {
  const base = await start(['serve'], 'ready');
  const page = await browser.newPage();
  await page.goto(`${base}/checkout/return?session_id=cs_test_nobody_knows`);
  assert.equal(await outcome(page, 'unknown'), 'Payment not found');
  assert.equal(await page.isHidden('#facts'), true);
  assert.equal(await page.isHidden('#retry'), true);
  const text = (await page.innerText('body')) + (await page.title());
  assert.ok(!/payhook/i.test(text), text);
  await page.close();
});

test('Cancel lands on the cancel URL', async () => {
  const base = await start(['serve'], 'ready');
  const created = await session(base, { booking_id: 'booking-browser-cancel' });
  const page = await browser.newPage();
  await page.goto(created.checkout_url);
  await Promise.all([page.waitForURL(/canceled=1/), page.click('#cancel')]);
  assert.equal(
    page.url(),
    `${base}/checkout/return?session_id=${created.session_id}&canceled=1`,
  );
  assert.equal(await outcome(page, 'canceled'), 'Payment canceled');
  await page.screenshot({ path: join(SHOTS, 'return-canceled.png') });
  await page.close();
});

test('The return page verifies, then says still processing while nothing settles the payment', async () => {
  const base = await start(['serve'], 'ready');
  const created = await session(base, { booking_id: 'booking-browser-wait' });
  const page = await browser.newPage();
  const polls = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/checkout/sessions/')) polls.push(Date.now());
  });
  await page.goto(`${base}/checkout/return?session_id=${created.session_id}`);
  assert.equal(await page.getAttribute('main', 'data-state'), 'verifying');
  assert.equal(await outcome(page, 'processing'), 'Still processing');
  await page.screenshot({ path: join(SHOTS, 'return-processing.png') });
  // It asked payhook with a growing interval, not in a tight loop.
  const gaps = polls.slice(1).map((t, i) => t - polls[i]);
  assert.ok(polls.length >= 4 && polls.length <= 12, `${polls.length} polls`);
  assert.ok(gaps.at(-1) > gaps[0] * 2, `gaps ${gaps}`);
  await page.close();
});

test('payhook demo: form, sandbox payment, return page with the booking confirmed', async () => {
  const bookings = await freePort();
  const base = await start(['demo', '--booking-listen', `127.0.0.1:${bookings}`], 'open ');
  const page = await browser.newPage();
  await page.goto(`${base}/demo`);
  await page.fill('#booking_id', 'booking-demo-browser');
  await page.screenshot({ path: join(SHOTS, 'demo-form.png') });
  await Promise.all([page.waitForURL(/\/sandbox\/checkout\/cs_test_/), page.click('#checkout')]);
  await Promise.all([page.waitForURL(/\/checkout\/return/), page.click('#pay')]);
  assert.equal(await outcome(page, 'confirmed'), 'Payment confirmed');
  await page.waitForFunction(
    () => document.querySelector('#booking-status')?.textContent === 'confirmed',
    null,
    { timeout: 20000 },
  );
  await page.screenshot({ path: join(SHOTS, 'demo-confirmed.png') });
  await page.close();
});
