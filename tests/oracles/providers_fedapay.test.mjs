// FedaPay's official Node SDK (npm `fedapay`) as the oracle for the `fedapay` preset, both ways:
// payhook accepts what the SDK signs (`Webhook.generateTestHeaderString`), the SDK accepts what
// `payhook trigger --source fedapay` sends (`Webhook.constructEvent`), and tampered, stale and
// wrong-secret requests are refused with payhook's documented codes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import fedapay from 'fedapay';

const { Webhook } = fedapay;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
const SECRET = 'wh_sandbox_oracle_fedapay_secret';

let payhook;
let base;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'payhook-fedapay-'));
  const config = join(dir, 'payhook.toml');
  writeFileSync(config, `[[sources]]\nname = "fedapay"\nkind = "fedapay"\nsecrets = ["${SECRET}"]\n`);
  payhook = spawn(BIN, ['--config', config, 'serve'], {
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`,
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

const event = (id, amount = 10000) =>
  JSON.stringify({
    name: 'transaction.approved',
    object: 'transaction',
    entity: {
      id, amount, status: 'approved', reference: `trx_${id}`,
      custom_metadata: { booking_id: `booking-${id}` }, currency: { iso: 'XOF', name: 'FCFA' },
    },
  });

async function post(payload, header) {
  const headers = { 'content-type': 'application/json' };
  if (header) headers['x-fedapay-signature'] = header;
  const response = await fetch(`${base}/webhooks/fedapay`, { method: 'POST', headers, body: payload });
  return { status: response.status, body: await response.json() };
}

test('payhook accepts what the FedaPay SDK signs', async () => {
  const payload = event(501);
  const header = Webhook.generateTestHeaderString({ payload, secret: SECRET });
  const { status, body } = await post(payload, header);
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(body, { received: true, event_id: '501:transaction.approved', duplicate: false });
});

test('tampered, stale, wrong-secret and unsigned requests are refused', async () => {
  const payload = event(502);
  const good = Webhook.generateTestHeaderString({ payload, secret: SECRET });
  let answer = await post(payload.replace('10000', '10'), good);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);
  const other = Webhook.generateTestHeaderString({ payload, secret: 'wh_sandbox_someone_else' });
  answer = await post(payload, other);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);
  const stale = Webhook.generateTestHeaderString({
    payload, secret: SECRET, timestamp: Math.floor(Date.now() / 1000) - 600,
  });
  answer = await post(payload, stale);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'timestamp_out_of_tolerance']);
  answer = await post(payload, undefined);
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'missing_signature']);
});

test('the FedaPay SDK accepts what payhook trigger sends', async () => {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      received.push({ body, header: req.headers['x-fedapay-signature'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const config = join(dir, 'payhook.toml');
  for (const type of ['transaction.approved', 'transaction.declined', 'transaction.canceled']) {
    // Asynchronously: the capture server answers from this same event loop.
    await promisify(execFile)(BIN, ['--config', config, 'trigger', '--source', 'fedapay', type, '--url', url], {
      env: { DATABASE_URL: `sqlite://${dir}/payhook.db`, RUST_LOG: 'warn' },
    });
  }
  server.close();
  assert.equal(received.length, 3);
  for (const { body, header } of received) {
    const parsed = Webhook.constructEvent(body, header, SECRET);
    assert.equal(typeof parsed.entity.id, 'number');
    assert.equal(parsed.entity.currency.iso, 'XOF');
    assert.throws(() => Webhook.constructEvent(body.replace('"amount":', '"amount":1'), header, SECRET));
    assert.throws(() => Webhook.constructEvent(body, header, 'wh_sandbox_someone_else'));
  }
});
