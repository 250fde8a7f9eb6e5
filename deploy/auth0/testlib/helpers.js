/**
 * Shared helpers of the Action tests: the real ingest service, a stub
 * receiver, a fetch recorder, an independent Standard Webhooks verifier and
 * Auth0-shaped event and api objects. Kept outside test/ so `node --test
 * test/` does not run it as a test file.
 */
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const AUTH0_DIR = path.resolve(__dirname, '..');
const REPO_ROOT = path.resolve(AUTH0_DIR, '..', '..');

/** The signupsync binary: $SIGNUPSYNC_BIN (relative to the cwd) or bin/signupsync of the repo. */
function resolveBin() {
  const fromEnv = process.env.SIGNUPSYNC_BIN;
  return fromEnv ? path.resolve(fromEnv) : path.join(REPO_ROOT, 'bin', 'signupsync');
}

/** A fresh Standard Webhooks secret: "whsec_" + base64 of 24 random bytes. */
function newWebhookSecret() {
  return 'whsec_' + crypto.randomBytes(24).toString('base64');
}

/** The receiver's event id for an Auth0 user_id: "su_" + 32 hex of SHA-256. */
function expectedEventId(userId) {
  return 'su_' + crypto.createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 32);
}

/**
 * Starts `signupsync dev --importer=false` on free 127.0.0.1 ports with a
 * fresh data dir, waits for "ingest listening" and a 200 from /readyz.
 * /readyz is served by the admin listener (SIGNUPSYNC_METRICS_ADDR, logged
 * as "ingest admin listening") when the binary has one, else by the webhook
 * port. Resolves to { url, adminUrl, stop, stderr }.
 */
async function startIngest({ actionSecrets, startTimeoutMs = 30000 }) {
  const bin = resolveBin();
  let stat = null;
  try {
    stat = fs.statSync(bin);
  } catch (err) {
    // reported below
  }
  if (!stat || !stat.isFile()) {
    throw new Error(
      'signupsync binary not found at ' + bin + '. Build it first from the repo root with ' +
      '`make build` (or `go build -o bin/signupsync ./services/signupsync`), or point SIGNUPSYNC_BIN at an existing binary.');
  }
  // A free port of its own for the admin listener: its default is a fixed
  // port, and it must differ from the webhook address (so not 127.0.0.1:0).
  const adminPort = await unusedPort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signupsync-action-test-'));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('SIGNUPSYNC_') && !k.startsWith('OTEL_') && !k.startsWith('FIREBASE_')) env[k] = v;
  }
  Object.assign(env, {
    SIGNUPSYNC_HTTP_ADDR: '127.0.0.1:0',
    SIGNUPSYNC_METRICS_ADDR: '127.0.0.1:' + adminPort,
    SIGNUPSYNC_DEV_NATS_ADDR: '127.0.0.1:-1',
    SIGNUPSYNC_DATA_DIR: dataDir,
    SIGNUPSYNC_ACTION_SECRETS: actionSecrets,
    SIGNUPSYNC_LOG_LEVEL: 'info',
  });
  const child = spawn(bin, ['dev', '--importer=false'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = [];
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let spawnError = null;
  child.once('error', (err) => { spawnError = err; });
  const killOnExit = () => { try { child.kill('SIGKILL'); } catch (err) { /* gone */ } };
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };

  let adminAddr = null;
  try {
    const addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no "ingest listening" line within ' + startTimeoutMs + 'ms')), startTimeoutMs);
      let buf = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          stderr.push(line);
          let rec = null;
          try { rec = JSON.parse(line); } catch (err) { /* not a log record */ }
          if (rec && rec.msg === 'ingest admin listening' && typeof rec.addr === 'string') adminAddr = rec.addr;
          if (rec && rec.msg === 'ingest listening' && typeof rec.addr === 'string') {
            clearTimeout(timer);
            resolve(rec.addr);
          }
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error('signupsync exited before listening (code ' + code + ', signal ' + signal + ')' +
          (spawnError ? ': ' + spawnError.message : '')));
      });
    });
    const url = 'http://' + addr;
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      try {
        const res = await fetch((adminAddr ? 'http://' + adminAddr : url) + '/readyz', { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch (err) {
        // not yet
      }
      if (Date.now() > deadline) throw new Error('/readyz did not answer 200 within ' + startTimeoutMs + 'ms');
      await new Promise((r) => setTimeout(r, 50));
    }
    return { url, adminUrl: adminAddr ? 'http://' + adminAddr : null, stop, stderr };
  } catch (err) {
    await stop();
    err.message += '\nsignupsync stderr:\n' + stderr.slice(-20).join('\n');
    throw err;
  }
}

/**
 * Replaces the global fetch with a recorder around the real one (the Action
 * resolves globalThis.fetch at call time). Each call records the request and
 * the response status, headers and body. restore() puts the original back.
 */
function recordFetch() {
  const original = globalThis.fetch;
  const calls = [];
  globalThis.fetch = async function recordingFetch(input, init) {
    const call = {
      url: String(input),
      method: init && init.method,
      headers: new Headers(init && init.headers),
      body: init && init.body,
      at: Date.now(),
      status: undefined,
      responseText: undefined,
      error: undefined,
    };
    calls.push(call);
    try {
      const res = await original(input, init);
      call.status = res.status;
      call.responseText = await res.clone().text();
      return res;
    } catch (err) {
      call.error = err;
      throw err;
    }
  };
  return {
    calls,
    restore() { globalThis.fetch = original; },
  };
}

/**
 * Checks Standard Webhooks headers the way a receiver must, with node:crypto
 * only (independently of the module under test). Throws on mismatch.
 */
function verifyWebhook(secret, headers, body, { toleranceSec = 300 } = {}) {
  const get = (name) => (typeof headers.get === 'function' ? headers.get(name) : headers[name]);
  const id = get('webhook-id');
  const ts = get('webhook-timestamp');
  const sig = get('webhook-signature');
  assert.ok(id && ts && sig, 'webhook-id, webhook-timestamp and webhook-signature are present');
  assert.match(ts, /^\d+$/, 'webhook-timestamp is unix seconds');
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) <= toleranceSec, 'webhook-timestamp is current');
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const want = crypto.createHmac('sha256', key).update(id + '.' + ts + '.' + body).digest();
  const ok = sig.split(' ').some((entry) => {
    const [version, b64] = entry.split(',');
    if (version !== 'v1' || !b64) return false;
    const got = Buffer.from(b64, 'base64');
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  });
  assert.ok(ok, 'webhook-signature matches HMAC-SHA256(id.timestamp.body)');
  return { id, ts: Number(ts) };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/**
 * A stub receiver on 127.0.0.1: respond(req, index, body) returns
 * { status, headers, body } or null to never answer. Records every request.
 */
async function startStub(respond) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const index = requests.length;
      requests.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      const answer = respond(req, index, body);
      if (!answer) return; // hang: the client's timeout must fire
      res.writeHead(answer.status, Object.assign({ 'content-type': 'application/json' }, answer.headers || {}));
      res.end(answer.body === undefined ? '{}' : answer.body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: 'http://127.0.0.1:' + port,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * A TCP server on 127.0.0.1 that accepts every connection and never writes a
 * byte: an ingest that hangs after the TCP handshake. Records each accepted
 * connection (connections) and the bytes it received (received).
 */
async function startBlackHole() {
  const sockets = new Set();
  const state = { connections: 0, received: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('data', (chunk) => { state.received += chunk.length; });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: 'http://127.0.0.1:' + port,
    state,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A 127.0.0.1 port nothing listens on (bound, then released). */
async function unusedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Collects log lines; pass .log as opts.log. */
function logCollector() {
  const lines = [];
  return { lines, log: (line) => lines.push(String(line)) };
}

/**
 * An Auth0 Actions api double: any namespace and method (api.access.deny,
 * api.user.setAppMetadata, ...) exists and records its call in api.calls.
 */
function fakeApi() {
  const calls = [];
  return new Proxy({}, {
    get(_, ns) {
      if (ns === 'calls') return calls;
      if (typeof ns !== 'string' || ns === 'then' || ns === 'toJSON') return undefined;
      return new Proxy({}, {
        get(__, method) {
          if (typeof method !== 'string' || method === 'then') return undefined;
          return (...args) => { calls.push({ method: ns + '.' + method, args }); };
        },
      });
    },
  });
}

function randomDigits(n) {
  let s = '';
  while (s.length < n) s += crypto.randomInt(0, 1e9).toString().padStart(9, '0');
  return s.slice(0, n);
}

/**
 * A post-login event shaped like Auth0's (customize/actions/explore-triggers
 * /signup-and-login-triggers/login-trigger/post-login-event-object): a new
 * Google user by default.
 */
function postLoginEvent({ secrets, loginsCount = 1, userId, email, connection, protocol = 'oidc-basic-profile' } = {}) {
  const sub = randomDigits(21);
  const conn = connection || { id: 'con_' + crypto.randomBytes(8).toString('hex'), name: 'google-oauth2', strategy: 'google-oauth2' };
  const uid = userId || conn.strategy + '|' + sub;
  const mail = email || 'ada.' + sub + '@example.com';
  const now = new Date().toISOString();
  const isSocial = conn.strategy !== 'auth0';
  return {
    authentication: { methods: [{ name: isSocial ? 'federated' : 'pwd', timestamp: now }] },
    authorization: { roles: [] },
    client: { client_id: 'cli_' + crypto.randomBytes(8).toString('hex'), name: 'Signup Sync SPA', metadata: {} },
    connection: Object.assign({ metadata: {} }, conn),
    organization: undefined,
    request: {
      ip: '203.0.113.7',
      method: 'GET',
      hostname: 'example.eu.auth0.com',
      language: 'en',
      user_agent: 'Mozilla/5.0',
      geoip: { countryCode: 'NL', cityName: 'Amsterdam' },
      query: { scope: 'openid profile email', response_type: 'code' },
      body: {},
    },
    resource_server: { identifier: 'https://api.example.com' },
    secrets: secrets || {},
    session: { id: crypto.randomBytes(12).toString('hex') },
    stats: { logins_count: loginsCount },
    tenant: { id: 'signupsync-test' },
    transaction: { id: crypto.randomBytes(12).toString('hex'), locale: 'en', protocol, requested_scopes: ['openid', 'profile', 'email'] },
    user: {
      app_metadata: {},
      created_at: now,
      email: mail,
      email_verified: true,
      family_name: 'Lovelace',
      given_name: 'Ada',
      identities: [{
        connection: conn.name,
        isSocial,
        provider: uid.split('|')[0],
        user_id: uid.slice(uid.indexOf('|') + 1),
        userId: uid.slice(uid.indexOf('|') + 1),
      }],
      last_password_reset: undefined,
      multifactor: [],
      name: 'Ada Lovelace',
      nickname: 'ada',
      phone_number: undefined,
      phone_verified: false,
      picture: 'https://lh3.googleusercontent.com/a/ada.png',
      updated_at: now,
      user_id: uid,
      user_metadata: { plan: 'free' },
      username: undefined,
    },
  };
}

/**
 * A post-user-registration event shaped like Auth0's (post-user-registration
 * event object): a new database (strategy "auth0") user, no identities, no
 * stats.
 */
function postUserRegistrationEvent({ secrets, userId, email } = {}) {
  const id = crypto.randomBytes(12).toString('hex');
  const now = new Date().toISOString();
  return {
    connection: { id: 'con_' + crypto.randomBytes(8).toString('hex'), name: 'Username-Password-Authentication', strategy: 'auth0', metadata: {} },
    request: {
      ip: '203.0.113.8',
      method: 'POST',
      hostname: 'example.eu.auth0.com',
      language: 'en',
      user_agent: 'Mozilla/5.0',
      geoip: { countryCode: 'NL' },
    },
    secrets: secrets || {},
    tenant: { id: 'signupsync-test' },
    transaction: { id: crypto.randomBytes(12).toString('hex'), locale: 'en', protocol: 'oidc-basic-profile', requested_scopes: ['openid'] },
    user: {
      app_metadata: {},
      created_at: now,
      email: email || 'grace.' + id + '@example.com',
      email_verified: false,
      name: 'grace.' + id + '@example.com',
      nickname: 'grace',
      picture: 'https://s.gravatar.com/avatar/' + id + '.png',
      updated_at: now,
      user_id: userId || 'auth0|' + id,
      user_metadata: {},
    },
  };
}

module.exports = {
  AUTH0_DIR,
  REPO_ROOT,
  TRACEPARENT,
  expectedEventId,
  fakeApi,
  logCollector,
  newWebhookSecret,
  postLoginEvent,
  postUserRegistrationEvent,
  recordFetch,
  resolveBin,
  startBlackHole,
  startIngest,
  startStub,
  unusedPort,
  verifyWebhook,
};
