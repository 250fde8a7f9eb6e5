/**
 * The time budget of a notification (issue 12.7): the post-login Action runs
 * inside Auth0's 20 s limit for the WHOLE post-login flow, shared with the
 * tenant's other Actions, so it must never hold a login longer than its
 * budget (default 5 s, the SIGNUPSYNC_BUDGET_MS secret), whatever ingest
 * does. Real-time tests configure a small budget to stay fast; the default
 * is checked with node:test's fake clock.
 */
'use strict';

const assert = require('node:assert/strict');
const { test, before } = require('node:test');

const h = require('../testlib/helpers.js');
const { onExecutePostLogin } = require('../post-login.js');
const action = require('../signupsync-action.js');

const SECRET = h.newWebhookSecret();
// Scheduling slack on a busy machine: the budget is a bound, not a target.
const SLACK_MS = 250;

// Node loads its fetch implementation on first use, which on a loaded
// machine can take longer than the small budgets used here; load it first so
// that the budget is spent on the request.
before(async () => {
  await (await fetch('data:text/plain,warm')).text();
});

/** A fetch that never answers; it rejects only when its signal aborts. */
function hangingFetch(calls) {
  return (url, init) => new Promise((resolve, reject) => {
    calls.push({ url, at: Date.now() });
    const signal = init && init.signal;
    if (signal) {
      signal.addEventListener('abort', () => {
        const err = new Error('This operation was aborted');
        err.name = 'AbortError';
        reject(err);
      });
    }
  });
}

/**
 * Runs promise to completion under mocked setTimeout and Date, advancing the
 * fake clock stepMs at a time. Resolves to { value, elapsedMs } where
 * elapsedMs is fake time. Gives up (value undefined, settled false) after
 * limitMs of fake time.
 */
async function runOnFakeClock(t, start, { stepMs = 5, limitMs = 60000 } = {}) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-01-01T00:00:00Z') });
  const t0 = Date.now();
  let settled = false;
  let value;
  const p = start().then((v) => { settled = true; value = v; });
  while (!settled && Date.now() - t0 < limitMs) {
    await new Promise((r) => setImmediate(r)); // drain the microtasks of the last step
    if (settled) break;
    t.mock.timers.tick(stepMs);
  }
  await new Promise((r) => setImmediate(r));
  const elapsedMs = Date.now() - t0;
  t.mock.timers.reset();
  if (settled) await p;
  return { settled, value, elapsedMs };
}

test('an ingest that accepts connections and never answers: the login is released within SIGNUPSYNC_BUDGET_MS', { timeout: 20000 }, async () => {
  const hole = await h.startBlackHole();
  try {
    const budget = 600;
    const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: hole.url, SIGNUPSYNC_SECRET: SECRET, SIGNUPSYNC_BUDGET_MS: String(budget) } });
    const api = h.fakeApi();
    const logs = h.logCollector();
    const started = Date.now();
    // The generated Action file with no test options: only the secret sets the budget.
    assert.equal(await onExecutePostLogin(event, api, { log: logs.log }), undefined);
    const elapsed = Date.now() - started;
    assert.ok(hole.state.connections >= 1, 'the Action connected');
    assert.ok(elapsed < budget + SLACK_MS, 'login held for ' + elapsed + 'ms with a ' + budget + 'ms budget');
    assert.ok(elapsed >= budget - 50, 'the attempt used the budget (' + elapsed + 'ms)');
    assert.deepEqual(api.calls, [], 'the login is not denied');
    assert.equal(logs.lines.length, 1);
    assert.match(logs.lines[0], /^signupsync: post-login user_id=\S+ gave up after 1 attempt in \d+ms \(budget 600ms\), last: timeout after \d+ms$/);
    const timeout = Number(logs.lines[0].match(/timeout after (\d+)ms$/)[1]);
    assert.ok(timeout <= budget, 'the attempt timeout was cut to the remaining budget: ' + timeout + 'ms');
  } finally {
    await hole.close();
  }
});

test('production defaults: a receiver that never answers holds the login at most 5 s (fake clock)', { timeout: 20000 }, async (t) => {
  const calls = [];
  const logs = h.logCollector();
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET } });
  const run = await runOnFakeClock(t, () => action.notifySignup(event, h.fakeApi(), { trigger: 'post-login', log: logs.log, fetch: hangingFetch(calls) }));
  assert.ok(run.settled, 'the notification returned');
  assert.ok(run.elapsedMs <= 5000, 'held the login for ' + run.elapsedMs + 'ms of fake time');
  assert.ok(action.SIGNUPSYNC_DEFAULTS.budgetMs <= 5000, 'default budget ' + action.SIGNUPSYNC_DEFAULTS.budgetMs + 'ms');
  assert.equal(run.value.outcome, 'gave_up');
  assert.equal(run.value.reason, 'budget');
  assert.ok(calls.length >= 1 && calls.length <= action.SIGNUPSYNC_DEFAULTS.maxAttempts, calls.length + ' attempts');
  // Each attempt's timeout is min(per-attempt timeout, remaining budget).
  const t0 = calls[0].at;
  for (const c of calls) assert.ok(c.at - t0 < 5000 - action.SIGNUPSYNC_DEFAULTS.minAttemptMs + 1, 'attempt started at +' + (c.at - t0) + 'ms');
  assert.match(logs.lines[0], /gave up after [12] attempts? in \d+ms \(budget 5000ms\), last: timeout after \d+ms$/);
});

test('a fetch that ignores the abort signal cannot hold the login past the budget (fake clock)', { timeout: 20000 }, async (t) => {
  let started = 0;
  const deaf = () => { started++; return new Promise(() => {}); }; // never settles, never looks at the signal
  const logs = h.logCollector();
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET, SIGNUPSYNC_BUDGET_MS: '2000' } });
  const run = await runOnFakeClock(t, () => action.notifySignup(event, h.fakeApi(), { trigger: 'post-login', log: logs.log, fetch: deaf }), { limitMs: 30000 });
  assert.ok(run.settled, 'returned although fetch never settled');
  assert.ok(run.elapsedMs <= 2000, 'held ' + run.elapsedMs + 'ms of fake time');
  assert.equal(run.value.outcome, 'gave_up');
  assert.ok(started >= 1);
  assert.match(logs.lines[0], /\(budget 2000ms\), last: timeout after \d+ms$/);
});

test('a retry wait that does not fit the budget is not slept, and no retry starts without room', { timeout: 20000 }, async (t) => {
  const calls = [];
  const fetch = async (url) => {
    calls.push({ url, at: Date.now() });
    return new Response('{"error":"broker_unavailable"}', { status: 503, headers: { 'retry-after': '1' } });
  };
  const logs = h.logCollector();
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET, SIGNUPSYNC_BUDGET_MS: '1200' } });
  const run = await runOnFakeClock(t, () => action.notifySignup(event, h.fakeApi(), { trigger: 'post-login', log: logs.log, fetch }));
  assert.ok(run.settled);
  // 503 at 0 ms with Retry-After 1 s: the wait plus the smallest useful
  // attempt (1000 + 250 ms) does not fit 1200 ms, so the Action gives up now
  // instead of sleeping into the budget.
  assert.equal(calls.length, 1, 'a 1 s wait plus a 250 ms attempt does not fit 1200 ms');
  assert.ok(run.elapsedMs < 50, 'gave up at once, not after sleeping (' + run.elapsedMs + 'ms)');
  assert.equal(run.value.budgetMs, 1200);
  assert.equal(run.value.reason, 'budget');
  assert.match(logs.lines[0], /gave up after 1 attempt in \d+ms \(budget 1200ms\), last: HTTP 503 broker_unavailable$/);

  // With room for the wait and the retry, the retry happens after the wait.
  const calls2 = [];
  const fetch2 = async () => {
    calls2.push(Date.now());
    return calls2.length === 1
      ? new Response('{}', { status: 503, headers: { 'retry-after': '1' } })
      : new Response('{"id":"su_x","duplicate":false}', { status: 202 });
  };
  const event2 = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET, SIGNUPSYNC_BUDGET_MS: '1300' } });
  const run2 = await runOnFakeClock(t, () => action.notifySignup(event2, h.fakeApi(), { trigger: 'post-login', log: () => {}, fetch: fetch2 }));
  assert.equal(run2.value.outcome, 'accepted');
  assert.equal(calls2.length, 2);
  assert.ok(calls2[1] - calls2[0] >= 1000 && run2.elapsedMs <= 1300, 'waited ' + (calls2[1] - calls2[0]) + 'ms, total ' + run2.elapsedMs + 'ms');
});

test('the smallest budget still makes its first attempt, however long the preparation took', { timeout: 10000 }, async (t) => {
  const calls = [];
  const fetch = async () => { calls.push(Date.now()); return new Response('{"id":"su_x","duplicate":false}', { status: 202 }); };
  const secrets = { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET, SIGNUPSYNC_BUDGET_MS: String(action.SIGNUPSYNC_BUDGET_LIMITS.min) };
  const event = h.postLoginEvent({ secrets });
  // Reading the configuration costs 5 ms of fake time, as encoding and
  // signing can on a busy runtime: less than minAttemptMs is left then.
  Object.defineProperty(event, 'secrets', { get() { t.mock.timers.tick(5); return secrets; } });
  const run = await runOnFakeClock(t, () => action.notifySignup(event, h.fakeApi(), { trigger: 'post-login', log: () => {}, fetch }));
  assert.equal(run.value.budgetMs, 250);
  assert.equal(calls.length, 1, 'the first attempt ran');
  assert.equal(run.value.outcome, 'accepted');
});

test('SIGNUPSYNC_BUDGET_MS: whole milliseconds, clamped to 250..10000, garbage ignored; noted in the line', { timeout: 10000 }, async () => {
  const ok = async () => new Response('{"id":"su_x","duplicate":false}', { status: 202 });
  const cases = [
    [undefined, action.SIGNUPSYNC_DEFAULTS.budgetMs, null],
    ['', action.SIGNUPSYNC_DEFAULTS.budgetMs, null],
    ['2500', 2500, null],
    [' 800 ', 800, null],
    ['60000', 10000, /\(SIGNUPSYNC_BUDGET_MS 60000 out of range, using 10000\)$/],
    ['10', 250, /\(SIGNUPSYNC_BUDGET_MS 10 out of range, using 250\)$/],
    ['5s', action.SIGNUPSYNC_DEFAULTS.budgetMs, /\(SIGNUPSYNC_BUDGET_MS ignored: not a whole number of milliseconds\)$/],
    ['-1', action.SIGNUPSYNC_DEFAULTS.budgetMs, /ignored/],
  ];
  assert.deepEqual(action.SIGNUPSYNC_BUDGET_LIMITS, { min: 250, max: 10000 });
  for (const [value, want, note] of cases) {
    const secrets = { SIGNUPSYNC_URL: 'https://ingest.example.com', SIGNUPSYNC_SECRET: SECRET };
    if (value !== undefined) secrets.SIGNUPSYNC_BUDGET_MS = value;
    const logs = h.logCollector();
    const result = await action.notifySignup(h.postLoginEvent({ secrets }), h.fakeApi(), { trigger: 'post-login', log: logs.log, fetch: ok });
    assert.equal(result.outcome, 'accepted', String(value));
    assert.equal(result.budgetMs, want, String(value));
    assert.equal(logs.lines.length, 1);
    if (note) assert.match(logs.lines[0], note);
    else assert.match(logs.lines[0], /attempts=1 in \d+ms$/);
  }
});
