/**
 * The Actions against the REAL ingest service: `signupsync dev
 * --importer=false` (embedded JetStream + ingest) started from
 * $SIGNUPSYNC_BIN or bin/signupsync. A missing binary fails the suite.
 * The Actions under test are the generated files users paste into Auth0.
 */
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');

const h = require('../testlib/helpers.js');
const { onExecutePostLogin } = require('../post-login.js');
const { onExecutePostUserRegistration } = require('../post-user-registration.js');
const { notifySignup, SIGNUPSYNC_PATH } = require('../signupsync-action.js');

const SECRET = h.newWebhookSecret();
let ingest;

before(async () => {
  ingest = await h.startIngest({ actionSecrets: SECRET });
});

after(async () => {
  if (ingest) await ingest.stop();
});

function secrets(overrides) {
  return Object.assign({ SIGNUPSYNC_URL: ingest.url, SIGNUPSYNC_SECRET: SECRET }, overrides);
}

/** Runs fn with the global fetch recorded; returns the recorded calls. */
async function withRecordedFetch(fn) {
  const rec = h.recordFetch();
  try {
    await fn();
  } finally {
    rec.restore();
  }
  return rec.calls;
}

function assertNoSecretsOrEmail(lines, event, extra) {
  for (const line of lines) {
    assert.ok(!line.includes(event.user.email), 'log line has no email: ' + line);
    assert.ok(!line.includes(SECRET) && !line.includes(SECRET.slice(6)), 'log line has no secret: ' + line);
    if (extra) assert.ok(!line.includes(extra) && !line.includes(extra.slice(6)), 'log line has no secret: ' + line);
  }
}

test('first social login: ingest answers 202 with the event id derived from user_id', { timeout: 20000 }, async () => {
  const event = h.postLoginEvent({ secrets: secrets() });
  const api = h.fakeApi();
  const logs = h.logCollector();
  let returned;
  const calls = await withRecordedFetch(async () => {
    returned = await onExecutePostLogin(event, api, { log: logs.log });
  });

  assert.equal(returned, undefined);
  assert.equal(calls.length, 1, 'one request');
  const call = calls[0];
  assert.equal(call.url, ingest.url + SIGNUPSYNC_PATH);
  assert.equal(call.method, 'POST');
  assert.equal(call.status, 202, 'ingest answered ' + call.status + ' ' + call.responseText);
  const answer = JSON.parse(call.responseText);
  assert.equal(answer.id, h.expectedEventId(event.user.user_id));
  assert.equal(answer.duplicate, false);

  // Headers: JSON, Standard Webhooks (verified independently), W3C trace context.
  assert.equal(call.headers.get('content-type'), 'application/json');
  assert.match(call.headers.get('webhook-id'), /^msg_[0-9a-f]{32}$/);
  h.verifyWebhook(SECRET, call.headers, call.body, { toleranceSec: 5 });
  assert.match(call.headers.get('traceparent'), h.TRACEPARENT);

  // Body: trigger, tenant, connection {name,strategy}, stats, and only the
  // user fields the receiver reads (see payload.test.js).
  const body = JSON.parse(call.body);
  assert.deepEqual(Object.keys(body), ['trigger', 'tenant', 'connection', 'stats', 'user']);
  assert.equal(body.trigger, 'post-login');
  assert.equal(body.tenant, event.tenant.id);
  assert.deepEqual(body.connection, { name: 'google-oauth2', strategy: 'google-oauth2' });
  assert.deepEqual(body.stats, { logins_count: 1 });
  const u = event.user;
  assert.deepEqual(body.user, {
    user_id: u.user_id, email: u.email, email_verified: u.email_verified, name: u.name, given_name: u.given_name,
    family_name: u.family_name, nickname: u.nickname, picture: u.picture, created_at: u.created_at,
    identities: u.identities.map((i) => ({ provider: i.provider, connection: i.connection, user_id: i.user_id, isSocial: i.isSocial })),
  });

  assert.deepEqual(api.calls, [], 'the api is never used (no deny)');
  assert.equal(logs.lines.length, 1);
  assert.match(logs.lines[0], /^signupsync: post-login user_id=google-oauth2\|\d+ accepted event_id=su_[0-9a-f]{32} status=202 attempts=1 in \d+ms$/);
  assertNoSecretsOrEmail(logs.lines, event);
});

test('the same signup reported again is accepted as a duplicate', { timeout: 20000 }, async () => {
  const event = h.postLoginEvent({ secrets: secrets() });
  const api = h.fakeApi();
  const first = await notifySignup(event, api, { trigger: 'post-login', log: () => {} });
  const second = await notifySignup(event, api, { trigger: 'post-login', log: () => {} });
  assert.equal(first.ok, true);
  assert.equal(first.status, 202);
  assert.equal(first.duplicate, false);
  assert.equal(second.ok, true);
  assert.equal(second.status, 202);
  assert.equal(second.eventId, first.eventId);
  assert.equal(second.duplicate, true);
  assert.notEqual(second.webhookId, first.webhookId, 'each notification has its own webhook-id');
  assert.deepEqual(api.calls, []);
});

test('a login that is not the first sends nothing', { timeout: 20000 }, async () => {
  const api = h.fakeApi();
  const logs = h.logCollector();
  const calls = await withRecordedFetch(async () => {
    for (const n of [0, 2, 3, 250]) {
      await onExecutePostLogin(h.postLoginEvent({ secrets: secrets(), loginsCount: n }), api, { log: logs.log });
    }
    // A refresh token exchange keeps logins_count at 1: not a signup either.
    await onExecutePostLogin(h.postLoginEvent({ secrets: secrets(), protocol: 'oauth2-refresh-token' }), api, { log: logs.log });
  });
  assert.equal(calls.length, 0, 'no request');
  assert.deepEqual(logs.lines, []);
  assert.deepEqual(api.calls, []);
});

test('post-user-registration of a database user: ingest answers 202', { timeout: 20000 }, async (t) => {
  const event = h.postUserRegistrationEvent({ secrets: secrets() });
  const api = h.fakeApi();
  const consoleLog = t.mock.method(console, 'log', () => {}); // the default logger
  const calls = await withRecordedFetch(async () => {
    await onExecutePostUserRegistration(event, api);
  });
  consoleLog.mock.restore();

  assert.equal(calls.length, 1);
  const call = calls[0];
  assert.equal(call.status, 202, 'ingest answered ' + call.status + ' ' + call.responseText);
  assert.equal(JSON.parse(call.responseText).id, h.expectedEventId(event.user.user_id));
  h.verifyWebhook(SECRET, call.headers, call.body, { toleranceSec: 5 });
  const body = JSON.parse(call.body);
  assert.equal(body.trigger, 'post-user-registration');
  assert.equal(body.tenant, 'signupsync-test');
  assert.deepEqual(body.connection, { name: 'Username-Password-Authentication', strategy: 'auth0' });
  assert.equal(body.stats, undefined, 'post-user-registration has no stats');
  const { app_metadata: _a, user_metadata: _u, updated_at: _t, ...sent } = event.user;
  assert.deepEqual(body.user, sent);
  assert.deepEqual(api.calls, []);

  const lines = consoleLog.mock.calls.map((c) => c.arguments.join(' '));
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^signupsync: post-user-registration user_id=auth0\|[0-9a-f]+ accepted event_id=su_/);
  assertNoSecretsOrEmail(lines, event);
});

test('wrong secret: ingest answers 401, not retried, no throw, login not denied', { timeout: 20000 }, async () => {
  const wrong = h.newWebhookSecret();
  const event = h.postLoginEvent({ secrets: secrets({ SIGNUPSYNC_SECRET: wrong }) });
  const api = h.fakeApi();
  const logs = h.logCollector();
  const calls = await withRecordedFetch(async () => {
    await assert.doesNotReject(onExecutePostLogin(event, api, { log: logs.log, backoffMs: 10 }));
  });
  assert.equal(calls.length, 1, '401 is not retried');
  assert.equal(calls[0].status, 401);
  assert.equal(JSON.parse(calls[0].responseText).error, 'unauthorized');
  assert.deepEqual(api.calls, [], 'the login is not denied');
  assert.equal(logs.lines.length, 1);
  assert.match(logs.lines[0], /^signupsync: post-login user_id=\S+ rejected: HTTP 401 unauthorized \(not retried\) attempts=1 in \d+ms$/);
  assertNoSecretsOrEmail(logs.lines, event, wrong);

  const result = await notifySignup(event, api, { trigger: 'post-login', log: () => {}, backoffMs: 10 });
  assert.equal(result.outcome, 'rejected');
  assert.equal(result.attempts, 1);
});

test('rotation: a receiver with old and new secrets accepts both Actions', { timeout: 40000 }, async () => {
  const next = h.newWebhookSecret();
  const rotating = await h.startIngest({ actionSecrets: SECRET + ',' + next });
  try {
    for (const secret of [SECRET, next]) {
      const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: rotating.url, SIGNUPSYNC_SECRET: secret } });
      const result = await notifySignup(event, h.fakeApi(), { trigger: 'post-login', log: () => {} });
      assert.equal(result.status, 202);
      assert.equal(result.eventId, h.expectedEventId(event.user.user_id));
    }
  } finally {
    await rotating.stop();
  }
});
