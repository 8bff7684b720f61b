// Stripe's official Node SDK as the oracle for payhook's signature checks, in both directions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
const SECRETS = ['whsec_node_current_secret', 'whsec_node_previous_secret'];
const stripe = new Stripe('sk_test_unused_by_these_tests');

let payhook;
let base;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payhook-node-'));
  payhook = spawn(BIN, ['serve'], {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`,
      STRIPE_WEBHOOK_SECRET: SECRETS.join(','),
      PAYHOOK_LISTEN: '127.0.0.1:0',
      PAYHOOK_ADMIN_LISTEN: '127.0.0.1:0',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: payhook.stdout })) {
    if (line.startsWith('public listener: ')) base = line.split(': ')[1].trim();
    if (line.startsWith('ready')) break;
  }
  assert.ok(base, 'payhook did not start');
});

after(async () => {
  const exited = new Promise((resolve) => payhook.on('exit', resolve));
  payhook.kill('SIGTERM');
  assert.equal(await exited, 0);
  rmSync(dir, { recursive: true, force: true });
});

const event = (id) =>
  JSON.stringify({
    id,
    object: 'event',
    type: 'checkout.session.completed',
    created: Math.floor(Date.now() / 1000),
    data: { object: { id: 'cs_test_node', amount_total: 4200, currency: 'jpy', client_reference_id: 'booking-node' } },
  });

async function post(payload, header) {
  const response = await fetch(`${base}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': header },
    body: payload,
  });
  return { status: response.status, body: await response.json() };
}

test('headers from generateTestHeaderString are accepted for every rotated secret', async () => {
  for (const [i, secret] of SECRETS.entries()) {
    const payload = event(`evt_node_ok_${i}`);
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
    const { status, body } = await post(payload, header);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body, { received: true, event_id: `evt_node_ok_${i}`, duplicate: false });
  }
});

test('tampered bodies, other secrets and stale timestamps are refused', async () => {
  const payload = event('evt_node_bad');
  const good = stripe.webhooks.generateTestHeaderString({ payload, secret: SECRETS[0] });
  let answer = await post(payload.replace('4200', '42'), good);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);

  const other = stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_someone_else' });
  answer = await post(payload, other);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);

  const stale = stripe.webhooks.generateTestHeaderString({
    payload,
    secret: SECRETS[0],
    timestamp: Math.floor(Date.now() / 1000) - 301,
  });
  answer = await post(payload, stale);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'timestamp_out_of_tolerance']);
});

test('events signed by payhook trigger pass stripe.webhooks.constructEvent', async () => {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), header: req.headers['stripe-signature'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhooks`;
  try {
    for (const type of ['payment_intent.payment_failed', 'charge.dispute.created']) {
      // Async spawn: a synchronous one would block the receiver running in this same process.
      const child = spawn(BIN, ['trigger', type, '--url', url, '--secret', SECRETS[1]], { env: { RUST_LOG: 'warn' } });
      const code = await new Promise((resolve) => child.on('exit', resolve));
      assert.equal(code, 0);
    }
  } finally {
    server.close();
  }
  assert.equal(received.length, 2);
  for (const { body, header } of received) {
    const verified = stripe.webhooks.constructEvent(body, header, SECRETS[1]);
    assert.match(verified.id, /^evt_/);
  }
  assert.equal(spawnSync(BIN, ['trigger', 'no.such.type', '--dry-run']).status, 1);
});
