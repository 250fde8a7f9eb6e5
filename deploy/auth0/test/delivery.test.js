/**
 * Delivery policy of the Actions: retries, timeouts, budget, configuration
 * errors and "never break the login". Uses a local stub receiver on
 * 127.0.0.1 where the real ingest cannot produce the answer (503, hangs,
 * 429) and a port nothing listens on.
 */
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../testlib/helpers.js');
const { onExecutePostLogin } = require('../post-login.js');
const { onExecutePostUserRegistration } = require('../post-user-registration.js');
const action = require('../signupsync-action.js');

const SECRET = h.newWebhookSecret();
const FAST = { attemptTimeoutMs: 500, budgetMs: 2000, backoffMs: 10 };

function quiet(extra) {
  return Object.assign({ log: () => {} }, FAST, extra);
}

test('unreachable receiver: 3 attempts under the budget, no throw, login not denied', { timeout: 10000 }, async () => {
  const port = await h.unusedPort();
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 'http://127.0.0.1:' + port, SIGNUPSYNC_SECRET: SECRET } });
  const api = h.fakeApi();
  const logs = h.logCollector();
  const rec = h.recordFetch();
  const started = Date.now();
  try {
    await assert.doesNotReject(onExecutePostLogin(event, api, Object.assign({}, FAST, { log: logs.log })));
  } finally {
    rec.restore();
  }
  const elapsed = Date.now() - started;
  assert.equal(rec.calls.length, 3, 'bounded retries');
  assert.ok(rec.calls.every((c) => c.error), 'every attempt failed to connect');
  assert.equal(new Set(rec.calls.map((c) => c.headers.get('webhook-id'))).size, 1, 'one webhook-id');
  assert.ok(elapsed < FAST.budgetMs, 'took ' + elapsed + 'ms');
  assert.deepEqual(api.calls, []);
  assert.equal(logs.lines.length, 1);
  assert.match(logs.lines[0], /^signupsync: post-login user_id=\S+ gave up after 3 attempts in \d+ms \(budget 2000ms\), last: network error ECONNREFUSED$/);
  assert.ok(!logs.lines[0].includes(event.user.email));
});

test('unreachable receiver with the production defaults stays inside the 5 s budget', { timeout: 15000 }, async () => {
  const port = await h.unusedPort();
  const event = h.postUserRegistrationEvent({ secrets: { SIGNUPSYNC_URL: 'http://127.0.0.1:' + port, SIGNUPSYNC_SECRET: SECRET } });
  const started = Date.now();
  const result = await action.notifySignup(event, h.fakeApi(), { trigger: 'post-user-registration', log: () => {} });
  const elapsed = Date.now() - started;
  assert.equal(result.ok, false);
  assert.equal(result.outcome, 'gave_up');
  assert.equal(result.attempts, action.SIGNUPSYNC_DEFAULTS.maxAttempts);
  assert.ok(elapsed < action.SIGNUPSYNC_DEFAULTS.budgetMs, 'took ' + elapsed + 'ms');
  // The budget bounds attempts and waits together and is a small part of
  // Auth0's 20 s limit for the whole post-login flow (shared with the
  // tenant's other Actions), even at the largest SIGNUPSYNC_BUDGET_MS.
  const d = action.SIGNUPSYNC_DEFAULTS;
  assert.equal(result.budgetMs, d.budgetMs);
  assert.ok(d.budgetMs <= 5000 && action.SIGNUPSYNC_BUDGET_LIMITS.max <= 10000);
});

test('503 twice then 202: exactly 3 attempts, same webhook-id, each validly signed', { timeout: 10000 }, async () => {
  const stub = await h.startStub((req, i) => (i < 2
    ? { status: 503, body: '{"error":"broker_unavailable","message":"retry later"}' }
    : { status: 202, body: '{"id":"su_stub","duplicate":false}' }));
  try {
    const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: stub.url, SIGNUPSYNC_SECRET: SECRET } });
    const api = h.fakeApi();
    const result = await action.notifySignup(event, api, quiet({ trigger: 'post-login' }));
    assert.equal(stub.requests.length, 3, 'exactly 3 attempts');
    assert.equal(result.ok, true);
    assert.equal(result.attempts, 3);
    assert.equal(result.status, 202);
    assert.equal(result.eventId, 'su_stub');

    const ids = stub.requests.map((r) => r.headers['webhook-id']);
    assert.equal(new Set(ids).size, 1, 'the same webhook-id on every retry');
    assert.equal(ids[0], result.webhookId);
    const traces = stub.requests.map((r) => r.headers.traceparent.match(h.TRACEPARENT));
    assert.ok(traces.every(Boolean), 'traceparent on every attempt');
    assert.equal(new Set(traces.map((m) => m[1])).size, 1, 'one trace id per notification');
    assert.equal(new Set(traces.map((m) => m[2])).size, 3, 'a span id per attempt');
    for (const r of stub.requests) {
      assert.equal(r.method, 'POST');
      assert.equal(r.url, action.SIGNUPSYNC_PATH);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.body, stub.requests[0].body, 'the same body on every retry');
      h.verifyWebhook(SECRET, r.headers, r.body, { toleranceSec: 5 }); // re-signed per attempt
    }
    assert.deepEqual(api.calls, []);
  } finally {
    await stub.close();
  }
});

test('the entry points retry 503 too, then return normally', { timeout: 10000 }, async () => {
  const stub = await h.startStub((req, i) => (i < 2 ? { status: 503 } : { status: 202 }));
  try {
    const event = h.postUserRegistrationEvent({ secrets: { SIGNUPSYNC_URL: stub.url, SIGNUPSYNC_SECRET: SECRET } });
    const logs = h.logCollector();
    assert.equal(await onExecutePostUserRegistration(event, h.fakeApi(), Object.assign({}, FAST, { log: logs.log })), undefined);
    assert.equal(stub.requests.length, 3);
    assert.match(logs.lines[0], /accepted status=202 attempts=3 in \d+ms$/);
  } finally {
    await stub.close();
  }
});

test('a receiver that never answers: per-attempt timeout, total bounded by the budget', { timeout: 10000 }, async () => {
  const stub = await h.startStub(() => null);
  try {
    const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: stub.url, SIGNUPSYNC_SECRET: SECRET } });
    const logs = h.logCollector();
    // Margins for a loaded machine: the first attempt may end up to ~280 ms
    // late and a second still fits; after the second (at >= 600 ms), a wait
    // plus a 100 ms attempt never fits in 700 ms.
    const opts = { trigger: 'post-login', log: logs.log, attemptTimeoutMs: 300, budgetMs: 700, minAttemptMs: 100, backoffMs: 10 };
    const started = Date.now();
    const result = await action.notifySignup(event, h.fakeApi(), opts);
    const elapsed = Date.now() - started;
    assert.equal(result.outcome, 'gave_up');
    assert.equal(result.reason, 'budget');
    assert.equal(result.attempts, 2, 'a third attempt does not fit the budget');
    assert.equal(stub.requests.length, 2);
    assert.ok(elapsed >= 550 && elapsed < opts.budgetMs + 250, 'took ' + elapsed + 'ms');
    const m = logs.lines[0].match(/gave up after 2 attempts in \d+ms \(budget 700ms\), last: timeout after (\d+)ms$/);
    assert.ok(m, logs.lines[0]);
    assert.ok(Number(m[1]) <= 300, 'the second attempt is cut to the remaining budget at most');
  } finally {
    await stub.close();
  }
});

test('429 is retried and a long Retry-After is cut to maxRetryAfterMs', { timeout: 10000 }, async () => {
  const stub = await h.startStub((req, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '30' } } : { status: 202 }));
  try {
    const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: stub.url, SIGNUPSYNC_SECRET: SECRET } });
    const result = await action.notifySignup(event, h.fakeApi(), quiet({ trigger: 'post-login', maxRetryAfterMs: 200 }));
    assert.equal(result.ok, true);
    assert.equal(stub.requests.length, 2);
    const gap = stub.requests[1].at - stub.requests[0].at;
    assert.ok(gap >= 180 && gap < 1000, 'waited ' + gap + 'ms (Retry-After honoured up to the cap)');
  } finally {
    await stub.close();
  }
});

test('4xx other than 429 and redirects are not retried', { timeout: 10000 }, async () => {
  for (const status of [400, 401, 403, 404, 408, 413, 415, 307]) {
    const stub = await h.startStub(() => ({
      status,
      headers: status === 307 ? { location: 'http://127.0.0.1:9/elsewhere' } : {},
      body: '{"error":"invalid_body","field":"/user/user_id","message":"x"}',
    }));
    try {
      const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: stub.url, SIGNUPSYNC_SECRET: SECRET } });
      const logs = h.logCollector();
      const result = await action.notifySignup(event, h.fakeApi(), quiet({ trigger: 'post-login', log: logs.log }));
      assert.equal(stub.requests.length, 1, status + ' is not retried');
      assert.equal(result.outcome, 'rejected');
      assert.equal(result.status, status);
      assert.equal(result.reason, status === 413 ? 'payload_too_large' : status === 307 ? 'redirect' : 'client_error');
      const reason = status === 413 ? 'payload_too_large ' : '';
      assert.match(logs.lines[0], new RegExp('rejected: ' + reason + 'HTTP ' + status + ' invalid_body at /user/user_id (body_bytes=\\d+ )?\\(not retried\\)'));
    } finally {
      await stub.close();
    }
  }
});

test('missing or malformed secrets: nothing is sent, a line is logged', { timeout: 10000 }, async () => {
  const short = 'whsec_' + Buffer.alloc(8, 7).toString('base64');
  const cases = [
    [undefined, /SIGNUPSYNC_URL is not set, SIGNUPSYNC_SECRET is not set/],
    [{}, /SIGNUPSYNC_URL is not set, SIGNUPSYNC_SECRET is not set/],
    [{ SIGNUPSYNC_SECRET: SECRET }, /not sent: SIGNUPSYNC_URL is not set$/],
    [{ SIGNUPSYNC_URL: 'http://127.0.0.1:1' }, /not sent: SIGNUPSYNC_SECRET is not set$/],
    [{ SIGNUPSYNC_URL: 'ftp://127.0.0.1/', SIGNUPSYNC_SECRET: SECRET }, /SIGNUPSYNC_URL is not an https URL$/],
    [{ SIGNUPSYNC_URL: 'not a url', SIGNUPSYNC_SECRET: SECRET }, /SIGNUPSYNC_URL is not an https URL$/],
    [{ SIGNUPSYNC_URL: 'http://ingest.example.com', SIGNUPSYNC_SECRET: SECRET }, /SIGNUPSYNC_URL must be https \(plain http only to 127\.0\.0\.1, ::1 or localhost\)$/],
    [{ SIGNUPSYNC_URL: 'http://127.0.0.1:1', SIGNUPSYNC_SECRET: 'whsec_not*base64!' }, /SIGNUPSYNC_SECRET is not a whsec_ secret/],
    [{ SIGNUPSYNC_URL: 'http://127.0.0.1:1', SIGNUPSYNC_SECRET: short }, /SIGNUPSYNC_SECRET is not a whsec_ secret of at least 16 bytes$/],
  ];
  const rec = h.recordFetch();
  try {
    for (const [secrets, want] of cases) {
      const logs = h.logCollector();
      const api = h.fakeApi();
      const event = h.postLoginEvent({ secrets });
      if (secrets === undefined) delete event.secrets;
      await assert.doesNotReject(onExecutePostLogin(event, api, { log: logs.log }));
      assert.equal(logs.lines.length, 1);
      assert.match(logs.lines[0], want);
      assert.ok(!logs.lines[0].includes('not*base64') && !logs.lines[0].includes(short.slice(6)), 'no secret in the log');
      assert.deepEqual(api.calls, []);
    }
  } finally {
    rec.restore();
  }
  assert.equal(rec.calls.length, 0, 'nothing sent');
});

test('never throws: broken events, a throwing fetch, a throwing logger', { timeout: 10000 }, async (t) => {
  const consoleLog = t.mock.method(console, 'log', () => {});
  const ok = { SIGNUPSYNC_URL: 'http://127.0.0.1:1', SIGNUPSYNC_SECRET: SECRET };
  const api = h.fakeApi();
  const throwingFetch = () => { throw new Error('boom with secret ' + SECRET); };
  const throwingLog = () => { throw new Error('log broken'); };
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const runs = [
    () => onExecutePostLogin(undefined, api),
    () => onExecutePostLogin(null, null),
    () => onExecutePostLogin({ stats: { logins_count: 1 } }, api),
    () => onExecutePostLogin({ stats: { logins_count: 1 }, user: null, secrets: ok }, api),
    () => onExecutePostLogin({ stats: { logins_count: 1 }, user: { email: 'x@example.com' }, secrets: ok }, api),
    () => onExecutePostUserRegistration(undefined, undefined),
    () => onExecutePostUserRegistration({ user: 'not an object', secrets: ok }, api),
    () => onExecutePostUserRegistration(h.postUserRegistrationEvent({ secrets: ok }), api, { fetch: throwingFetch, backoffMs: 1 }),
    () => onExecutePostUserRegistration(h.postUserRegistrationEvent({ secrets: ok }), api, { fetch: async () => { throw 'a string'; }, backoffMs: 1 }),
    () => onExecutePostUserRegistration(h.postUserRegistrationEvent({ secrets: ok }), api, { fetch: async () => null, backoffMs: 1 }),
    () => onExecutePostLogin(h.postLoginEvent({ secrets: ok }), api, { log: throwingLog, fetch: throwingFetch, backoffMs: 1 }),
    () => onExecutePostLogin(h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 42, SIGNUPSYNC_SECRET: {} } }), api),
  ];
  for (const run of runs) {
    assert.equal(await run(), undefined);
  }
  assert.deepEqual(api.calls, []);
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.equal(timersAfter, timersBefore, 'no attempt timer outlives its notification');
  for (const c of consoleLog.mock.calls) {
    const line = c.arguments.join(' ');
    assert.match(line, /^signupsync: /);
    assert.ok(!line.includes(SECRET) && !line.includes('x@example.com'), line);
  }
  const odd = await action.notifySignup(h.postLoginEvent({ secrets: ok }), api, { trigger: 'post-login', log: () => {}, backoffMs: 1, fetch: async () => ({ nope: true }) });
  assert.equal(odd.outcome, 'gave_up');
  assert.equal(odd.attempts, 3);
  const unknown = await action.notifySignup(h.postLoginEvent({ secrets: ok }), api, { trigger: 'pre-user-registration', log: () => {} });
  assert.equal(unknown.outcome, 'invalid_event');
});

test('signature: the Standard Webhooks test vector and an independent check', () => {
  const key = action.decodeSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  assert.equal(
    action.signature(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', '1614265330', '{"test": 2432232314}'),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  const body = JSON.stringify({ user: { user_id: 'auth0|1', name: 'Zoë Ünïcode' } });
  const ts = String(Math.floor(Date.now() / 1000));
  const headers = {
    'webhook-id': 'msg_x',
    'webhook-timestamp': ts,
    'webhook-signature': action.signature(action.decodeSecret(SECRET), 'msg_x', ts, body),
  };
  h.verifyWebhook(SECRET, headers, body);
  assert.equal(action.decodeSecret(SECRET.slice(6)).length, 24, 'the whsec_ prefix is optional');
  assert.equal(action.decodeSecret('  ' + SECRET + '\n').length, 24, 'surrounding space is ignored');
});

test('endpoint: a base URL or the full endpoint URL', () => {
  assert.equal(action.endpoint('https://ingest.example.com'), 'https://ingest.example.com/v1/hooks/auth0-action');
  assert.equal(action.endpoint('https://ingest.example.com/'), 'https://ingest.example.com/v1/hooks/auth0-action');
  assert.equal(action.endpoint('https://example.com/signupsync/'), 'https://example.com/signupsync/v1/hooks/auth0-action');
  assert.equal(action.endpoint('https://ingest.example.com/v1/hooks/auth0-action'), 'https://ingest.example.com/v1/hooks/auth0-action');
  assert.equal(action.endpoint('http://127.0.0.1:8080'), 'http://127.0.0.1:8080/v1/hooks/auth0-action');
  assert.equal(action.endpoint('https://user:pw@ingest.example.com'), null, 'credentials in the URL are refused');
  assert.equal(action.endpoint('http://ingest.example.com'), null, 'plain http is refused');
  assert.equal(action.endpoint('http://[::1]:8080/'), 'http://[::1]:8080/v1/hooks/auth0-action');
  assert.equal(action.endpoint('http://localhost:8080'), 'http://localhost:8080/v1/hooks/auth0-action');
  assert.equal(action.endpoint(''), null);
});

test('Retry-After parsing and retry delays', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(action.parseRetryAfter('2', now), 2000);
  assert.equal(action.parseRetryAfter(' 0 ', now), 0);
  assert.equal(action.parseRetryAfter('Wed, 01 Jan 2025 00:00:01 GMT', now), 1000);
  assert.equal(action.parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now), 0);
  assert.equal(action.parseRetryAfter('soon', now), undefined);
  assert.equal(action.parseRetryAfter(null, now), undefined);
  const o = action.SIGNUPSYNC_DEFAULTS;
  assert.equal(action.retryDelayMs(1, 1000, o), 1000, 'a small Retry-After is honoured');
  assert.equal(action.retryDelayMs(1, 5000, o), o.maxRetryAfterMs, 'a long one is cut');
  for (let i = 0; i < 50; i++) {
    const d1 = action.retryDelayMs(1, undefined, o);
    const d2 = action.retryDelayMs(2, undefined, o);
    assert.ok(d1 >= o.backoffMs && d1 <= o.backoffMs * 1.5, String(d1));
    assert.ok(d2 >= 2 * o.backoffMs && d2 <= 3 * o.backoffMs, String(d2));
  }
});
