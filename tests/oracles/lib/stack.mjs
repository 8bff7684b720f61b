// What the browser tests share: a payhook (`serve`, SQLite in a temp dir) with the example booking
// service as its target, and Debian's Chromium driven by playwright-core, each on free loopback
// ports; `trigger` sends it a realistic Stripe event signed with its secret.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
export const SHOTS = join(ROOT, 'target', 'screenshots');

export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Debian's Chromium, headless, with nothing of its own on the network. */
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function startStack({ adminToken, serviceToken, webhookSecret }) {
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'payhook-browser-'));
  const bookingsPort = await freePort();
  const bookingsBase = `http://127.0.0.1:${bookingsPort}`;
  const bookings = spawn(BIN, ['example-booking-service', '--listen', `127.0.0.1:${bookingsPort}`, '--token', serviceToken],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { RUST_LOG: 'warn' } });
  for await (const _ of createInterface({ input: bookings.stdout })) break;
  const [pub, adm] = [await freePort(), await freePort()];
  const publicBase = `http://127.0.0.1:${pub}`;
  const adminBase = `http://127.0.0.1:${adm}`;
  const payhook = spawn(BIN, ['serve'], {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`, PAYHOOK_LISTEN: `127.0.0.1:${pub}`,
      PAYHOOK_ADMIN_LISTEN: `127.0.0.1:${adm}`, PAYHOOK_ADMIN_TOKEN: adminToken,
      STRIPE_WEBHOOK_SECRET: webhookSecret, BOOKING_SERVICE_URL: bookingsBase,
      INTERNAL_SERVICE_TOKEN: serviceToken, RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: payhook.stdout })) {
    if (line.startsWith('ready')) break;
  }
  const browser = await launchChromium();
  return {
    browser, publicBase, adminBase, bookingsBase,
    // `payhook trigger` with `args`; its output names the event id.
    trigger(args) {
      const out = spawnSync(BIN, ['trigger', ...args, '--url', `${publicBase}/webhooks/stripe`, '--secret', webhookSecret],
        { encoding: 'utf8', env: { RUST_LOG: 'warn' } });
      assert.equal(out.status, 0, out.stdout + out.stderr);
      return out.stdout.split(/\s+/).find((w) => w.startsWith('evt_'));
    },
    async stop() {
      await browser.close();
      for (const proc of [payhook, bookings]) {
        const exited = new Promise((resolve) => proc.on('exit', resolve));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
