// Paddle's official Node SDK as the oracle for payhook's `paddle` preset: payhook accepts what the
// SDK accepts (the SDK has no signer: signed here by hand, then checked with the SDK first), the
// SDK verifies and reads what `payhook trigger` sends, and tampered, stale or wrongly signed
// notifications are refused by both. The SDK's own test vector is pinned in the preset's unit
// tests (`providers::presets::paddle::tests::sdk_vector_and_rotation`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Paddle, Environment } from '@paddle/paddle-node-sdk';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
const SECRET = 'pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI';
const OLD_SECRET = 'pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_0ldS3cretRotatedAwayXXXXXXXXX';
const paddle = new Paddle('pdl_sdbx_apikey_unused_by_these_tests', { environment: Environment.sandbox });

let payhook;
let base;
let dir;
let config;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payhook-paddle-'));
  config = join(dir, 'payhook.toml');
  writeFileSync(config, `[[sources]]\nname = "paddle"\nkind = "paddle"\nsecrets = ["${SECRET}", "${OLD_SECRET}"]\n`);
  payhook = spawn(BIN, ['--config', config, 'serve'], {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`,
      PAYHOOK_LISTEN: '127.0.0.1:0',
      PAYHOOK_ADMIN_LISTEN: '127.0.0.1:0',
      PAYHOOK_SANDBOX: 'true',
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

const now = () => Math.floor(Date.now() / 1000);
// Paddle's documented scheme: HMAC-SHA256 of `ts:body`, hex, with the whole secret string.
const h1 = (secret, ts, body) => createHmac('sha256', secret).update(`${ts}:${body}`).digest('hex');

const completed = (id) =>
  JSON.stringify({
    event_id: `evt_${id}`,
    event_type: 'transaction.completed',
    occurred_at: '2026-01-02T10:00:00.000000Z',
    notification_id: `ntf_${id}`,
    data: {
      id: `txn_${id}`,
      status: 'completed',
      currency_code: 'EUR',
      custom_data: { booking_id: 'bk_paddle_node' },
      details: { totals: { subtotal: '11900', tax: '0', total: '11900', grand_total: '11900', currency_code: 'EUR' } },
      items: [],
      payments: [],
    },
  });

async function post(body, header) {
  const headers = { 'content-type': 'application/json' };
  if (header) headers['paddle-signature'] = header;
  const response = await fetch(`${base}/webhooks/paddle`, { method: 'POST', headers, body });
  return { status: response.status, body: await response.json() };
}

test('payhook accepts what the SDK verifies, with either secret of a rotation', async () => {
  for (const [i, header] of [
    (body, ts) => `ts=${ts};h1=${h1(SECRET, ts, body)}`,
    // The SDK keeps only the last h1: the one it knows goes last.
    (body, ts) => `ts=${ts};h1=${h1('pdl_ntfset_unknown', ts, body)};h1=${h1(OLD_SECRET, ts, body)}`,
  ].entries()) {
    const body = completed(`node_ok_${i}`);
    const ts = now();
    const signature = header(body, ts);
    const secret = i === 0 ? SECRET : OLD_SECRET;
    assert.equal(await paddle.webhooks.isSignatureValid(body, secret, signature), true);
    const answer = await post(body, signature);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.event_id, `evt_node_ok_${i}`);
  }
});

test('tampered, stale and wrongly signed notifications are refused by the SDK and by payhook', async () => {
  const body = completed('node_bad');
  const ts = now();
  const good = `ts=${ts};h1=${h1(SECRET, ts, body)}`;
  const tampered = body.replace('11900', '1');
  assert.equal(await paddle.webhooks.isSignatureValid(tampered, SECRET, good), false);
  let answer = await post(tampered, good);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);

  const wrong = `ts=${ts};h1=${h1('pdl_ntfset_someone_else', ts, body)}`;
  assert.equal(await paddle.webhooks.isSignatureValid(body, SECRET, wrong), false);
  answer = await post(body, wrong);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);

  // Stale beyond payhook's tolerance (5 minutes by default; the SDK allows 5 s).
  const old = ts - 301;
  const stale = `ts=${old};h1=${h1(SECRET, old, body)}`;
  assert.equal(await paddle.webhooks.isSignatureValid(body, SECRET, stale), false);
  answer = await post(body, stale);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'timestamp_out_of_tolerance']);

  answer = await post(body, undefined);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'missing_signature']);
});

test('the SDK verifies and reads every notification payhook trigger sends', async () => {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), header: req.headers['paddle-signature'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhooks/paddle`;
  const types = ['transaction.completed', 'transaction.payment_failed', 'transaction.canceled', 'adjustment.updated'];
  try {
    for (const type of types) {
      // Async spawn: a synchronous one would block the receiver running in this same process.
      const child = spawn(
        BIN,
        ['--config', config, 'trigger', '--source', 'paddle', type, '--booking', 'bk_node', '--payment',
          'txn_01h8dzxgkvdwemdhbpcapj2tbj', '--amount', '11900', '--url', url],
        { env: { RUST_LOG: 'warn', DATABASE_URL: `sqlite://${dir}/payhook.db` }, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      const code = await new Promise((resolve) => child.on('exit', resolve));
      assert.equal(code, 0);
    }
  } finally {
    server.close();
  }
  assert.equal(received.length, types.length);
  for (const [i, { body, header }] of received.entries()) {
    assert.equal(await paddle.webhooks.isSignatureValid(body, SECRET, header), true);
    assert.equal(await paddle.webhooks.isSignatureValid(body, OLD_SECRET, header), false);
    const event = await paddle.webhooks.unmarshal(body, SECRET, header);
    assert.equal(event.eventType, types[i]);
    if (types[i].startsWith('transaction.')) {
      assert.equal(event.data.id, 'txn_01h8dzxgkvdwemdhbpcapj2tbj');
      assert.deepEqual(event.data.customData, { booking_id: 'bk_node' });
      assert.equal(event.data.details.totals.grandTotal, '11900');
      assert.equal(event.data.currencyCode, 'EUR');
    } else {
      assert.equal(event.data.transactionId, 'txn_01h8dzxgkvdwemdhbpcapj2tbj');
      assert.equal(event.data.action, 'refund');
      assert.equal(event.data.status, 'approved');
      assert.equal(event.data.totals.total, '11900');
    }
  }
});
