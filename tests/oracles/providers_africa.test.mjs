// Kkiapay's official Node SDK (@kkiapay-org/nodejs-sdk) as the oracle for how payhook confirms a
// Kkiapay notification: the SDK's verify() and payhook, pointed at the same loopback server
// standing in for Kkiapay's API, must send the same request (method, path, credentials headers,
// JSON body). Kkiapay's webhook carries its dashboard secret as is, and the SDK has no webhook
// helper: the header check is shown with payhook's answers (accepted, wrong secret, none).
// Wave, CinetPay and PayDunya publish no SDK that signs or verifies their notifications; their
// vectors are pinned in the schemes' unit tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PAYHOOK_BIN ?? join(ROOT, 'target', 'debug', 'payhook');
const HOOK_SECRET = 'kkiapay-dashboard-hash-secret';
const KEYS = { publickey: 'pk_oracle', privatekey: 'tpk_oracle', secretkey: 'tsk_oracle' };

let api; // the loopback Kkiapay API
let apiUrl;
let requests = [];
let payhook;
let base;
let dir;

before(async () => {
  api = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ method: req.method, path: req.url, headers: req.headers, body });
      const { transactionId } = JSON.parse(body || '{}');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        performed_at: '2026-11-30T10:00:00.000Z', type: 'DEBIT', status: 'SUCCESS',
        source: 'MOBILE_MONEY', amount: 10000, fees: 0, transactionId,
        state: { booking_id: 'bk_oracle' },
      }));
    });
  });
  await new Promise((resolve) => api.listen(0, '127.0.0.1', resolve));
  apiUrl = `http://127.0.0.1:${api.address().port}`;

  dir = mkdtempSync(join(tmpdir(), 'payhook-africa-'));
  writeFileSync(join(dir, 'payhook.toml'), `
[[sources]]
name = "kkiapay"
kind = "kkiapay"
secrets = ["${HOOK_SECRET}"]

[sources.api]
url = "${apiUrl}"
public_key = "${KEYS.publickey}"
private_key = "${KEYS.privatekey}"
secret_key = "${KEYS.secretkey}"
`);
  payhook = spawn(BIN, ['serve'], {
    cwd: dir,
    env: {
      DATABASE_URL: `sqlite://${dir}/payhook.db`,
      PAYHOOK_CONFIG: join(dir, 'payhook.toml'),
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
  api.close();
  rmSync(dir, { recursive: true, force: true });
});

const notification = (transactionId) => JSON.stringify({
  transactionId, event: 'transaction.success', isPaymentSucces: true, amount: 10000, fees: 0,
  method: 'MOBILE_MONEY', account: '22997000000', partnerId: '',
  performedAt: '2026-11-30T10:00:00.000Z', stateData: { booking_id: 'bk_oracle' },
});

async function post(body, headers) {
  const response = await fetch(`${base}/webhooks/kkiapay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: await response.json() };
}

async function requestFor(transactionId, from) {
  for (let i = 0; i < 500; i++) {
    const found = requests.slice(from).find((r) => JSON.parse(r.body).transactionId === transactionId);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`no request about ${transactionId} reached the loopback API`);
}

/** The request the SDK's verify() sends, to the loopback API instead of Kkiapay's host. */
async function sdkVerify(transactionId) {
  // The axios the SDK itself loads (its own copy when another package needs another version).
  const axios = createRequire(require.resolve('@kkiapay-org/nodejs-sdk'))('axios');
  const create = axios.create;
  axios.create = (config) => create.call(axios, { ...config, baseURL: apiUrl });
  try {
    const { kkiapay } = require('@kkiapay-org/nodejs-sdk');
    const from = requests.length;
    const answer = await kkiapay({ ...KEYS, sandbox: true }).verify(transactionId);
    assert.equal(answer.status, 'SUCCESS');
    return await requestFor(transactionId, from);
  } finally {
    axios.create = create;
  }
}

test('payhook asks Kkiapay about a notification exactly as the official SDK verify() does', async () => {
  const sdk = await sdkVerify('LVFNrK1nx');
  const from = requests.length;
  const answer = await post(notification('LVFNrK1nx'), { 'x-kkiapay-secret': HOOK_SECRET });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.event_id, 'LVFNrK1nx:transaction.success');
  const ours = await requestFor('LVFNrK1nx', from);

  assert.equal(ours.method, sdk.method);
  assert.equal(ours.path, sdk.path);
  assert.equal(sdk.path, '/api/v1/transactions/status');
  for (const name of ['x-api-key', 'x-private-key', 'x-secret-key']) {
    assert.equal(ours.headers[name], sdk.headers[name], name);
  }
  assert.deepEqual(
    [sdk.headers['x-api-key'], sdk.headers['x-private-key'], sdk.headers['x-secret-key']],
    [KEYS.publickey, KEYS.privatekey, KEYS.secretkey],
  );
  assert.match(ours.headers['content-type'], /^application\/json/);
  assert.match(sdk.headers['content-type'], /^application\/json/);
  assert.deepEqual(JSON.parse(ours.body), JSON.parse(sdk.body));
});

test('a notification without the dashboard secret, or with another, is refused', async () => {
  const body = notification('refused-1');
  let answer = await post(body, { 'x-kkiapay-secret': 'not-the-secret' });
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'invalid_signature']);
  answer = await post(body, {});
  assert.deepEqual([answer.status, answer.body.error.code], [400, 'missing_signature']);
});

test('payhook trigger sends what Kkiapay sends: its secret in x-kkiapay-secret, a notification the API confirms', async () => {
  const from = requests.length;
  const out = spawnSync(BIN, [
    'trigger', '--source', 'kkiapay', 'transaction.success', '--payment', 'TRIGGERtx',
    '--url', `${base}/webhooks/kkiapay`,
  ], {
    cwd: dir,
    env: { ...process.env, DATABASE_URL: `sqlite://${dir}/payhook.db`, PAYHOOK_CONFIG: join(dir, 'payhook.toml') },
    encoding: 'utf8',
  });
  assert.equal(out.status, 0, out.stdout + out.stderr);
  assert.match(out.stdout, /<- 200/);
  const asked = await requestFor('TRIGGERtx', from);
  assert.equal(asked.path, '/api/v1/transactions/status');
});
