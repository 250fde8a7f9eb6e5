/**
 * signupsync: Auth0 Action for the "Sign Up & Login / Post User Registration" trigger; reports database and passwordless signups.
 *
 * GENERATED from deploy/auth0/signupsync-action.js by deploy/auth0/build.js;
 * do not edit, edit the source and run `node build.js`.
 *
 * Paste this whole file as the Action code. No dependencies. Secrets:
 *   SIGNUPSYNC_URL     base URL of the signupsync ingest service
 *   SIGNUPSYNC_SECRET  whsec_... secret, also listed in the receiver's
 *                      SIGNUPSYNC_ACTION_SECRETS
 * See deploy/auth0/README.md.
 */
'use strict';

const crypto = require('crypto');

/** Path of the Action receiver on the ingest service. */
const SIGNUPSYNC_PATH = '/v1/hooks/auth0-action';

/**
 * Defaults of the delivery policy. Every value can be overridden through the
 * opts argument (the tests do); Auth0 itself passes no opts, so these apply.
 * The worst case (3 attempts that each time out, plus two waits) stays under
 * budgetMs, well inside Auth0's 20 s Action limit.
 */
const SIGNUPSYNC_DEFAULTS = Object.freeze({
  maxAttempts: 3, // attempts per notification, the first included
  attemptTimeoutMs: 3000, // per attempt: connect, send, status and body
  budgetMs: 10000, // whole notification: attempts plus waits
  backoffMs: 250, // first retry wait; doubles, plus up to 50% jitter
  maxRetryAfterMs: 2000, // a longer Retry-After is cut to this
});

const SIGNUPSYNC_TRIGGERS = ['post-login', 'post-user-registration'];

/**
 * notifySignup posts one signup notification for event.user and resolves to
 * a result object; it never throws and never calls the api.
 *
 * opts.trigger          "post-login" or "post-user-registration" (required)
 * opts.fetch            fetch implementation (default: the global fetch)
 * opts.log              one-line logger (default: console.log)
 * opts.maxAttempts, opts.attemptTimeoutMs, opts.budgetMs, opts.backoffMs,
 * opts.maxRetryAfterMs  override SIGNUPSYNC_DEFAULTS
 *
 * The result: { ok, trigger, outcome, status, attempts, webhookId, eventId,
 * duplicate, elapsedMs } where outcome is "accepted", "rejected" (a
 * permanent answer such as 401 or 400: not retried), "gave_up" (transient
 * failures until attempts or budget ran out), "not_configured" (a secret is
 * missing or malformed), "invalid_event" or "internal_error".
 */
async function notifySignup(event, api, opts) {
  const o = Object.assign({}, SIGNUPSYNC_DEFAULTS, opts || {});
  const log = typeof o.log === 'function' ? o.log : signupsyncConsoleLog;
  const trigger = o.trigger;
  const started = Date.now();
  const result = {
    ok: false,
    trigger: trigger,
    outcome: 'internal_error',
    status: undefined,
    attempts: 0,
    webhookId: undefined,
    eventId: undefined,
    duplicate: undefined,
    elapsedMs: 0,
  };
  let who = 'user_id=?';
  try {
    if (SIGNUPSYNC_TRIGGERS.indexOf(trigger) < 0) {
      result.outcome = 'invalid_event';
      signupsyncSafeLog(log, 'signupsync: not sent: unknown trigger ' + signupsyncPrintable(trigger));
      return result;
    }
    const user = event && event.user;
    if (!user || typeof user !== 'object' || typeof user.user_id !== 'string' || user.user_id === '') {
      result.outcome = 'invalid_event';
      signupsyncSafeLog(log, 'signupsync: ' + trigger + ' not sent: event.user.user_id is missing');
      return result;
    }
    who = 'user_id=' + signupsyncPrintable(user.user_id);

    const secrets = (event && event.secrets) || {};
    const url = signupsyncEndpoint(secrets.SIGNUPSYNC_URL);
    const key = signupsyncDecodeSecret(secrets.SIGNUPSYNC_SECRET);
    if (!url || !key) {
      result.outcome = 'not_configured';
      const what = [];
      if (!url) what.push(secrets.SIGNUPSYNC_URL ? 'SIGNUPSYNC_URL is not an http(s) URL' : 'SIGNUPSYNC_URL is not set');
      if (!key) what.push(secrets.SIGNUPSYNC_SECRET ? 'SIGNUPSYNC_SECRET is not a whsec_ secret of at least 16 bytes' : 'SIGNUPSYNC_SECRET is not set');
      signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' not sent: ' + what.join(', '));
      return result;
    }

    const fetchFn = typeof o.fetch === 'function' ? o.fetch : globalThis.fetch;
    if (typeof fetchFn !== 'function') {
      result.outcome = 'not_configured';
      signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' not sent: no fetch in this runtime');
      return result;
    }

    const body = JSON.stringify(signupsyncPayload(event, trigger));
    const webhookId = 'msg_' + crypto.randomBytes(16).toString('hex');
    const traceId = signupsyncRandomHex(16);
    result.webhookId = webhookId;

    const deadline = started + o.budgetMs;
    const floorMs = Math.min(100, o.attemptTimeoutMs);
    let last = '';
    for (let attempt = 1; attempt <= o.maxAttempts; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining < floorMs) break;
      result.attempts = attempt;
      const r = await signupsyncAttempt(fetchFn, url, key, webhookId, traceId, body, Math.min(o.attemptTimeoutMs, remaining));
      result.status = r.status;
      if (r.kind === 'response' && r.status >= 200 && r.status < 300) {
        const answer = signupsyncParseJSON(r.text) || {};
        result.ok = true;
        result.outcome = 'accepted';
        result.eventId = typeof answer.id === 'string' ? answer.id : undefined;
        result.duplicate = typeof answer.duplicate === 'boolean' ? answer.duplicate : undefined;
        result.elapsedMs = Date.now() - started;
        signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' accepted' +
          (result.eventId ? ' event_id=' + signupsyncPrintable(result.eventId) : '') +
          (result.duplicate ? ' (duplicate)' : '') +
          ' status=' + r.status + ' attempts=' + attempt + ' in ' + result.elapsedMs + 'ms');
        return result;
      }
      const transient = r.kind !== 'response' || r.status === 429 || r.status >= 500;
      last = signupsyncDescribe(r);
      if (!transient) {
        result.outcome = 'rejected';
        result.elapsedMs = Date.now() - started;
        signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' rejected: ' + last +
          ' (not retried) attempts=' + attempt + ' in ' + result.elapsedMs + 'ms');
        return result;
      }
      if (attempt === o.maxAttempts) break;
      const wait = signupsyncRetryDelayMs(attempt, r.retryAfterMs, o);
      if (Date.now() + wait + floorMs > deadline) break;
      await new Promise(function (resolve) { setTimeout(resolve, wait); });
    }
    result.outcome = 'gave_up';
    result.elapsedMs = Date.now() - started;
    signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' gave up after ' + result.attempts +
      ' attempt' + (result.attempts === 1 ? '' : 's') + ' in ' + result.elapsedMs + 'ms, last: ' + (last || 'no attempt fitted the budget'));
    return result;
  } catch (err) {
    result.outcome = 'internal_error';
    result.elapsedMs = Date.now() - started;
    signupsyncSafeLog(log, 'signupsync: ' + signupsyncPrintable(trigger) + ' ' + who + ' internal error: ' + signupsyncErrorName(err));
    return result;
  }
}

/** The JSON body: trigger, tenant, connection, stats and the user as given. */
function signupsyncPayload(event, trigger) {
  const payload = { trigger: trigger };
  const tenant = event.tenant && event.tenant.id;
  if (typeof tenant === 'string' && tenant !== '') payload.tenant = tenant;
  const c = event.connection;
  if (c && typeof c === 'object') {
    const connection = {};
    ['id', 'name', 'strategy'].forEach(function (k) {
      if (typeof c[k] === 'string') connection[k] = c[k];
    });
    payload.connection = connection;
  }
  const logins = event.stats && event.stats.logins_count;
  if (Number.isInteger(logins) && logins >= 0) payload.stats = { logins_count: logins };
  payload.user = event.user;
  return payload;
}

/** One signed POST with its own timeout. Resolves, never rejects. */
async function signupsyncAttempt(fetchFn, url, key, webhookId, traceId, body, timeoutMs) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const headers = {
    'content-type': 'application/json',
    'webhook-id': webhookId,
    'webhook-timestamp': timestamp,
    'webhook-signature': signupsyncSignature(key, webhookId, timestamp, body),
    traceparent: '00-' + traceId + '-' + signupsyncRandomHex(8) + '-01',
    'user-agent': 'signupsync-auth0-action/1',
  };
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(function () { timedOut = true; controller.abort(); }, timeoutMs);
  try {
    let res;
    try {
      res = await fetchFn(url, { method: 'POST', headers: headers, body: body, signal: controller.signal, redirect: 'manual' });
    } catch (err) {
      if (timedOut) return { kind: 'timeout', timeoutMs: timeoutMs };
      return { kind: 'network', code: signupsyncErrorName(err) };
    }
    if (!res || typeof res.status !== 'number') return { kind: 'network', code: 'no_response' };
    const out = {
      kind: 'response',
      status: res.status,
      retryAfterMs: signupsyncParseRetryAfter(res.headers && typeof res.headers.get === 'function' ? res.headers.get('retry-after') : null, Date.now()),
      text: '',
    };
    try {
      out.text = await res.text();
    } catch (err) {
      // The status already decides the outcome; a lost body only loses detail.
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** The webhook-signature value: "v1," + base64 HMAC-SHA256("id.timestamp.body"). */
function signupsyncSignature(key, id, timestamp, body) {
  return 'v1,' + crypto.createHmac('sha256', key).update(id + '.' + timestamp + '.' + body, 'utf8').digest('base64');
}

/** The key bytes of a "whsec_<base64>" secret, or null when malformed. */
function signupsyncDecodeSecret(secret) {
  if (typeof secret !== 'string') return null;
  let s = secret.trim();
  if (s.indexOf('whsec_') === 0) s = s.slice('whsec_'.length);
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return null;
  const key = Buffer.from(s, 'base64');
  return key.length >= 16 ? key : null;
}

/** The receiver URL from SIGNUPSYNC_URL (a base URL, or the full endpoint). */
function signupsyncEndpoint(base) {
  if (typeof base !== 'string' || base.trim() === '') return null;
  let u;
  try {
    u = new URL(base.trim());
  } catch (err) {
    return null;
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.password) return null;
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.slice(-SIGNUPSYNC_PATH.length) === SIGNUPSYNC_PATH ? path : path + SIGNUPSYNC_PATH;
  return u.toString();
}

/** Milliseconds asked for by a Retry-After value (seconds or HTTP date). */
function signupsyncParseRetryAfter(value, nowMs) {
  if (value === null || value === undefined) return undefined;
  const v = String(value).trim();
  if (/^\d{1,6}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * The wait before retry number `attempt` (1 = the wait after the first
 * attempt): Retry-After when the server sent one, cut to maxRetryAfterMs;
 * otherwise backoffMs doubled per attempt plus up to 50% jitter.
 */
function signupsyncRetryDelayMs(attempt, retryAfterMs, o) {
  if (typeof retryAfterMs === 'number' && retryAfterMs >= 0) return Math.min(retryAfterMs, o.maxRetryAfterMs);
  const base = o.backoffMs * Math.pow(2, attempt - 1);
  return Math.round(base + Math.random() * base * 0.5);
}

function signupsyncDescribe(r) {
  if (r.kind === 'timeout') return 'timeout after ' + r.timeoutMs + 'ms';
  if (r.kind === 'network') return 'network error ' + r.code;
  let s = 'HTTP ' + r.status;
  const problem = signupsyncParseJSON(r.text);
  if (problem && typeof problem.error === 'string') {
    s += ' ' + signupsyncPrintable(problem.error);
    if (typeof problem.field === 'string' && problem.field) s += ' at ' + signupsyncPrintable(problem.field);
  }
  return s;
}

function signupsyncParseJSON(text) {
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' ? v : null;
  } catch (err) {
    return null;
  }
}

/** A short error label (an errno code or the error's name), never its message. */
function signupsyncErrorName(err) {
  const code = err && ((err.cause && err.cause.code) || err.code);
  if (typeof code === 'string' && code) return signupsyncPrintable(code);
  return signupsyncPrintable((err && err.name) || typeof err);
}

function signupsyncRandomHex(bytes) {
  let hex;
  do {
    hex = crypto.randomBytes(bytes).toString('hex');
  } while (/^0+$/.test(hex)); // all-zero ids are invalid in W3C trace context
  return hex;
}

/** At most 128 printable ASCII characters, for log lines. */
function signupsyncPrintable(v) {
  return String(v).slice(0, 128).replace(/[^\x20-\x7e]/g, '?');
}

function signupsyncConsoleLog(line) {
  console.log(line);
}

function signupsyncSafeLog(log, line) {
  try {
    log(line);
  } catch (err) {
    // Logging must not break the login either.
  }
}

/**
 * Sign Up & Login / Post User Registration trigger: database and passwordless
 * signups. opts is for tests only; Auth0 passes (event, api).
 *
 * @param {Event} event - Details about the context and user that has registered.
 * @param {PostUserRegistrationAPI} api - Methods and utilities to help change the behavior after a signup.
 */
exports.onExecutePostUserRegistration = async (event, api, opts) => {
  try {
    await notifySignup(event, api, Object.assign({}, opts, { trigger: 'post-user-registration' }));
  } catch (err) {
    signupsyncSafeLog(signupsyncConsoleLog, 'signupsync: post-user-registration internal error: ' + signupsyncErrorName(err));
  }
};
