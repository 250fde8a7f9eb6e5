/**
 * What the Actions send and where (issue 13.10): only the fields the
 * receiver and the importer read (services/ingest normalise.go userData and
 * actionData, services/importer/mapping.go), only over https (plain http to
 * loopback for tests), and a 413 is a permanent failure with its own reason.
 * The bodies are checked by the REAL ingest service (schemas/auth0-action.json).
 */
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');

const h = require('../testlib/helpers.js');
const { onExecutePostLogin } = require('../post-login.js');
const { onExecutePostUserRegistration } = require('../post-user-registration.js');
const action = require('../signupsync-action.js');

const SECRET = h.newWebhookSecret();
let ingest;

before(async () => {
  ingest = await h.startIngest({ actionSecrets: SECRET });
});

after(async () => {
  if (ingest) await ingest.stop();
});

const USER_KEYS = ['user_id', 'email', 'email_verified', 'name', 'given_name', 'family_name', 'nickname', 'picture', 'created_at'];
const IDENTITY_KEYS = ['provider', 'connection', 'user_id', 'isSocial'];
const CANARY = 'canary-' + Date.now().toString(36);

/**
 * A first social login whose user carries everything Auth0 can put in
 * event.user: metadata, identity tokens and profileData, login stats, IPs.
 * Every value that must stay in Auth0 contains CANARY.
 */
function richPostLoginEvent() {
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: ingest.url, SIGNUPSYNC_SECRET: SECRET } });
  const u = event.user;
  u.app_metadata = { roles: ['admin'], stripe_customer: 'cus_' + CANARY };
  u.user_metadata = { plan: 'free', phone: '+31 6 ' + CANARY, address: { city: CANARY } };
  u.identities[0].access_token = 'ya29.' + CANARY;
  u.identities[0].refresh_token = '1//' + CANARY;
  u.identities[0].expires_in = 3599;
  u.identities[0].profileData = { email: 'other+' + CANARY + '@example.com', locale: 'nl' };
  u.last_ip = '203.0.113.' + 7;
  u.last_login = new Date().toISOString();
  u.logins_count = 1;
  u.phone_number = '+31600' + CANARY;
  u.username = 'ada_' + CANARY;
  u.multifactor = ['guardian-' + CANARY];
  u.enrolledFactors = [{ type: 'phone', options: { phone: CANARY } }];
  event.connection.metadata = { secret_hint: CANARY };
  return event;
}

async function withRecordedFetch(fn) {
  const rec = h.recordFetch();
  try {
    await fn();
  } finally {
    rec.restore();
  }
  return rec.calls;
}

test('post-login sends only the fields the importer reads, and ingest accepts the body', { timeout: 20000 }, async () => {
  const event = richPostLoginEvent();
  const logs = h.logCollector();
  const calls = await withRecordedFetch(() => onExecutePostLogin(event, h.fakeApi(), { log: logs.log }));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].status, 202, 'the real ingest validated the body: ' + calls[0].responseText);
  assert.equal(JSON.parse(calls[0].responseText).id, h.expectedEventId(event.user.user_id));

  const raw = calls[0].body;
  assert.ok(!raw.includes(CANARY), 'nothing of metadata, tokens, profileData, phone, username, IPs: ' + raw);
  assert.ok(!raw.includes('app_metadata') && !raw.includes('user_metadata'), 'no metadata keys');
  assert.ok(!raw.includes('203.0.113.'), 'no IP');
  const body = JSON.parse(raw);
  assert.deepEqual(Object.keys(body).sort(), ['connection', 'stats', 'tenant', 'trigger', 'user']);
  assert.deepEqual(body.connection, { name: 'google-oauth2', strategy: 'google-oauth2' });
  assert.deepEqual(body.stats, { logins_count: 1 });
  assert.equal(body.tenant, 'signupsync-test');
  assert.deepEqual(Object.keys(body.user).sort(), [...USER_KEYS, 'identities'].sort());
  for (const k of USER_KEYS) assert.deepEqual(body.user[k], event.user[k], k);
  assert.equal(body.user.identities.length, 1);
  assert.deepEqual(Object.keys(body.user.identities[0]).sort(), [...IDENTITY_KEYS].sort());
  const id = event.user.identities[0];
  assert.deepEqual(body.user.identities[0], { provider: id.provider, connection: id.connection, user_id: id.user_id, isSocial: id.isSocial });
  assert.match(logs.lines[0], /accepted event_id=su_[0-9a-f]{32} status=202 attempts=1/);
});

test('post-user-registration sends only the allowed fields (no identities, no stats), and ingest accepts it', { timeout: 20000 }, async () => {
  const event = h.postUserRegistrationEvent({ secrets: { SIGNUPSYNC_URL: ingest.url, SIGNUPSYNC_SECRET: SECRET } });
  event.user.app_metadata = { tier: CANARY };
  event.user.user_metadata = { referrer: CANARY };
  event.user.phone_number = '+3161' + CANARY;
  const calls = await withRecordedFetch(() => onExecutePostUserRegistration(event, h.fakeApi(), { log: () => {} }));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].status, 202, calls[0].responseText);
  assert.ok(!calls[0].body.includes(CANARY));
  const body = JSON.parse(calls[0].body);
  assert.deepEqual(Object.keys(body).sort(), ['connection', 'tenant', 'trigger', 'user']);
  // The registration event has no given_name or family_name: absent stays absent.
  assert.deepEqual(Object.keys(body.user).sort(), ['created_at', 'email', 'email_verified', 'name', 'nickname', 'picture', 'user_id']);
  for (const k of Object.keys(body.user)) assert.equal(body.user[k], event.user[k], k);
});

test('the allowlists are what the receiver reads', () => {
  assert.deepEqual([...action.SIGNUPSYNC_USER_FIELDS].sort(), [...USER_KEYS].sort());
  assert.deepEqual([...action.SIGNUPSYNC_IDENTITY_FIELDS].sort(), [...IDENTITY_KEYS].sort());
  // Non-scalar values of allowed fields are not copied either.
  const body = action.buildPayload({ user: { user_id: 'auth0|1', name: { nested: CANARY }, email: 'a@example.com', identities: [null, 'x', { provider: 'auth0', user_id: 1, profileData: {} }] } }, 'post-login');
  assert.deepEqual(body, { trigger: 'post-login', user: { user_id: 'auth0|1', email: 'a@example.com', identities: [{ provider: 'auth0', user_id: 1 }] } });
  const at = new Date('2026-01-02T03:04:05.678Z');
  assert.deepEqual(action.buildPayload({ user: { user_id: 'auth0|1', created_at: at } }, 'post-login').user, { user_id: 'auth0|1', created_at: at.toISOString() });
  assert.deepEqual(action.buildPayload({ user: { user_id: 'auth0|1', created_at: { $date: '2026-01-02T03:04:05Z', x: CANARY } } }, 'post-login').user,
    { user_id: 'auth0|1', created_at: { $date: '2026-01-02T03:04:05Z' } });
});

test('SIGNUPSYNC_URL over plain http is refused: nothing sent, one line, login not denied', { timeout: 10000 }, async () => {
  for (const url of [
    'http://signupsync.example.com',
    'http://signupsync.example.com/v1/hooks/auth0-action',
    'http://10.0.0.7:8080',
    'http://127.0.0.2:8080',
    'http://localhost.example.com',
    'HTTP://INGEST.EXAMPLE.COM',
  ]) {
    const sent = [];
    const fetch = async (u) => { sent.push(u); return new Response('{}', { status: 202 }); };
    const logs = h.logCollector();
    const api = h.fakeApi();
    const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: url, SIGNUPSYNC_SECRET: SECRET } });
    assert.equal(await onExecutePostLogin(event, api, { log: logs.log, fetch }), undefined);
    assert.deepEqual(sent, [], url + ': no request');
    assert.deepEqual(api.calls, [], 'the login is not denied');
    assert.equal(logs.lines.length, 1, url + ': one line');
    assert.match(logs.lines[0], /^signupsync: post-login user_id=\S+ not sent: SIGNUPSYNC_URL must be https \(plain http only to 127\.0\.0\.1, ::1 or localhost\)$/);
    assert.ok(!logs.lines[0].toLowerCase().includes('example.com') && !logs.lines[0].includes('10.0.0.7'), 'the URL is not logged');
    const result = await action.notifySignup(event, api, { trigger: 'post-login', log: () => {}, fetch });
    assert.equal(result.outcome, 'not_configured');
    assert.equal(result.reason, 'insecure_url');
    assert.deepEqual(sent, []);
  }
});

test('https and loopback http are allowed', { timeout: 10000 }, async () => {
  for (const [url, want] of [
    ['https://signupsync.example.com', 'https://signupsync.example.com/v1/hooks/auth0-action'],
    ['https://signupsync.example.com:8443/base/', 'https://signupsync.example.com:8443/base/v1/hooks/auth0-action'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080/v1/hooks/auth0-action'],
    ['http://[::1]:8080', 'http://[::1]:8080/v1/hooks/auth0-action'],
    ['http://localhost:8080', 'http://localhost:8080/v1/hooks/auth0-action'],
  ]) {
    const sent = [];
    const fetch = async (u) => { sent.push(u); return new Response('{"id":"su_x","duplicate":false}', { status: 202 }); };
    const result = await action.notifySignup(h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: url, SIGNUPSYNC_SECRET: SECRET } }), h.fakeApi(), { trigger: 'post-login', log: () => {}, fetch });
    assert.equal(result.outcome, 'accepted', url);
    assert.deepEqual(sent, [want]);
  }
  // And for real: the ingest under test listens on http://127.0.0.1.
  assert.match(ingest.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const result = await action.notifySignup(h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: ingest.url, SIGNUPSYNC_SECRET: SECRET } }), h.fakeApi(), { trigger: 'post-login', log: () => {} });
  assert.equal(result.status, 202);
});

test('413 from ingest: exactly one request, logged as a permanent payload_too_large without PII', { timeout: 20000 }, async () => {
  const event = h.postLoginEvent({ secrets: { SIGNUPSYNC_URL: ingest.url, SIGNUPSYNC_SECRET: SECRET } });
  event.user.name = 'Ada ' + 'L'.repeat(80 * 1024); // over ingest's 64 KiB body limit
  const logs = h.logCollector();
  const api = h.fakeApi();
  let result;
  const calls = await withRecordedFetch(async () => {
    result = await action.notifySignup(event, api, { trigger: 'post-login', log: logs.log });
  });
  assert.equal(calls.length, 1, '413 is not retried');
  assert.equal(calls[0].status, 413, calls[0].responseText);
  assert.equal(result.outcome, 'rejected');
  assert.equal(result.reason, 'payload_too_large');
  assert.equal(result.attempts, 1);
  assert.deepEqual(api.calls, []);
  assert.equal(logs.lines.length, 1);
  assert.match(logs.lines[0], /^signupsync: post-login user_id=\S+ rejected: payload_too_large HTTP 413 body_too_large body_bytes=\d+ \(not retried\) attempts=1 in \d+ms$/);
  const bytes = Number(logs.lines[0].match(/body_bytes=(\d+)/)[1]);
  assert.equal(bytes, Buffer.byteLength(calls[0].body));
  assert.ok(!logs.lines[0].includes(event.user.email) && !logs.lines[0].includes('Ada') && !logs.lines[0].includes(SECRET.slice(6)), 'no PII or secret');

  // The entry point behaves the same and returns normally.
  const calls2 = await withRecordedFetch(() => onExecutePostLogin(event, api, { log: () => {} }));
  assert.equal(calls2.length, 1);
  assert.deepEqual(api.calls, []);
});
