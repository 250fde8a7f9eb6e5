/**
 * signupsync: Auth0 Action for the "Sign Up & Login / Post User Registration" trigger; reports database and passwordless signups.
 *
 * GENERATED from deploy/auth0/signupsync-action.js by deploy/auth0/build.js;
 * do not edit, edit the source and run `node build.js`.
 *
 * Paste this whole file as the Action code. No dependencies. Secrets:
 *   SIGNUPSYNC_URL        base URL of the signupsync ingest service (https;
 *                         plain http only to 127.0.0.1, ::1 or localhost)
 *   SIGNUPSYNC_SECRET     whsec_... secret, also listed in the receiver's
 *                         SIGNUPSYNC_ACTION_SECRETS
 *   SIGNUPSYNC_BUDGET_MS  optional: total time for all attempts, in ms
 *                         (default 5000, 250..10000)
 * See deploy/auth0/README.md.
 */
'use strict';

const crypto = require('crypto');

/** Path of the Action receiver on the ingest service. */
const SIGNUPSYNC_PATH = '/v1/hooks/auth0-action';

/**
 * Defaults of the delivery policy. budgetMs can be set with the Action
 * secret SIGNUPSYNC_BUDGET_MS (see SIGNUPSYNC_BUDGET_LIMITS); every value can
 * be overridden through the opts argument (the tests do), but Auth0 itself
 * passes no opts. budgetMs bounds the whole notification, attempts and waits
 * together: the Action never holds a login longer than that, whatever the
 * receiver does. Auth0's 20 s limit is for the whole post-login flow, shared
 * with the tenant's other Actions, so the budget stays a small part of it.
 */
const SIGNUPSYNC_DEFAULTS = Object.freeze({
  maxAttempts: 3, // attempts per notification, the first included
  attemptTimeoutMs: 3000, // per attempt: connect, send, status and body; cut to the remaining budget
  budgetMs: 5000, // whole notification: attempts plus waits
  minAttemptMs: 250, // a retry starts only when at least this much budget remains
  backoffMs: 250, // first retry wait; doubles, plus up to 50% jitter
  maxRetryAfterMs: 2000, // a longer Retry-After is cut to this
});

/** Accepted values of the SIGNUPSYNC_BUDGET_MS secret; others are clamped. */
const SIGNUPSYNC_BUDGET_LIMITS = Object.freeze({ min: 250, max: 10000 });

/** Hosts to which SIGNUPSYNC_URL may use plain http (local testing only). */
const SIGNUPSYNC_LOOPBACK_HOSTS = ['127.0.0.1', '[::1]', 'localhost'];

/**
 * The only user fields sent: what the receiver (services/ingest userData)
 * maps into a signup and the importer uses. Metadata, tokens, profileData
 * and the rest of event.user stay in Auth0.
 */
const SIGNUPSYNC_USER_FIELDS = ['user_id', 'email', 'email_verified', 'name', 'given_name', 'family_name', 'nickname', 'picture', 'created_at'];

/** The only fields sent of each entry of user.identities. */
const SIGNUPSYNC_IDENTITY_FIELDS = ['provider', 'connection', 'user_id', 'isSocial'];

const SIGNUPSYNC_TRIGGERS = ['post-login', 'post-user-registration'];

/**
 * notifySignup posts one signup notification for event.user and resolves to
 * a result object; it never throws and never calls the api.
 *
 * opts.trigger          "post-login" or "post-user-registration" (required)
 * opts.fetch            fetch implementation (default: the global fetch)
 * opts.log              one-line logger (default: console.log)
 * opts.maxAttempts, opts.attemptTimeoutMs, opts.budgetMs, opts.minAttemptMs,
 * opts.backoffMs, opts.maxRetryAfterMs  override SIGNUPSYNC_DEFAULTS and the
 *                       SIGNUPSYNC_BUDGET_MS secret
 *
 * The result: { ok, trigger, outcome, reason, status, attempts, webhookId,
 * eventId, duplicate, budgetMs, elapsedMs } where outcome is "accepted",
 * "rejected" (a permanent answer: any 4xx but 429, or a redirect; not
 * retried), "gave_up" (transient failures, i.e. network errors, timeouts,
 * 429 and 5xx, until attempts or budget ran out), "not_configured" (a secret
 * is missing or malformed, or SIGNUPSYNC_URL is not https), "invalid_event"
 * or "internal_error". reason details rejected ("payload_too_large" for 413,
 * "redirect", "client_error"), gave_up ("budget", "attempts") and
 * not_configured ("insecure_url" when SIGNUPSYNC_URL is plain http).
 */
async function notifySignup(event, api, opts) {
  const o = opts || {};
  const log = typeof o.log === 'function' ? o.log : signupsyncConsoleLog;
  const trigger = o.trigger;
  const started = Date.now();
  const result = {
    ok: false,
    trigger: trigger,
    outcome: 'internal_error',
    reason: undefined,
    status: undefined,
    attempts: 0,
    webhookId: undefined,
    eventId: undefined,
    duplicate: undefined,
    budgetMs: undefined,
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
    const urlProblem = signupsyncURLProblem(secrets.SIGNUPSYNC_URL);
    const url = urlProblem ? null : signupsyncEndpoint(secrets.SIGNUPSYNC_URL);
    const key = signupsyncDecodeSecret(secrets.SIGNUPSYNC_SECRET);
    if (!url || !key) {
      // A configuration error: one line, nothing sent, the login goes on.
      result.outcome = 'not_configured';
      if (urlProblem === 'insecure') result.reason = 'insecure_url';
      const what = [];
      if (!url) what.push(signupsyncURLProblemText(urlProblem || 'invalid'));
      if (!key) what.push(secrets.SIGNUPSYNC_SECRET ? 'SIGNUPSYNC_SECRET is not a whsec_ secret of at least 16 bytes' : 'SIGNUPSYNC_SECRET is not set');
      signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' not sent: ' + what.join(', '));
      return result;
    }

    // Secrets configure the budget; opts (tests only) win over them.
    const notes = [];
    const budgetFromSecret = signupsyncSecretMs(secrets, 'SIGNUPSYNC_BUDGET_MS', SIGNUPSYNC_BUDGET_LIMITS, notes);
    const policy = Object.assign({}, SIGNUPSYNC_DEFAULTS);
    if (budgetFromSecret !== undefined) policy.budgetMs = budgetFromSecret;
    Object.keys(SIGNUPSYNC_DEFAULTS).forEach(function (k) {
      if (typeof o[k] === 'number' && o[k] >= 0) policy[k] = o[k];
    });
    const note = notes.length ? ' (' + notes.join(', ') + ')' : '';
    result.budgetMs = policy.budgetMs;

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

    // The budget runs from the start of the notification. Each attempt's
    // timeout is cut to what remains of it, waits count against it, and no
    // retry starts with less than floorMs left (the first attempt always
    // runs, with whatever remains): the login is never held past the budget.
    const deadline = started + policy.budgetMs;
    const floorMs = Math.min(policy.minAttemptMs, policy.attemptTimeoutMs);
    let last = '';
    result.reason = 'attempts';
    for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 || (attempt > 1 && remaining < floorMs)) {
        result.reason = 'budget';
        break;
      }
      result.attempts = attempt;
      const r = await signupsyncAttempt(fetchFn, url, key, webhookId, traceId, body, Math.min(policy.attemptTimeoutMs, remaining));
      result.status = r.status;
      if (r.kind === 'response' && r.status >= 200 && r.status < 300) {
        const answer = signupsyncParseJSON(r.text) || {};
        result.ok = true;
        result.outcome = 'accepted';
        result.reason = undefined;
        result.eventId = typeof answer.id === 'string' ? answer.id : undefined;
        result.duplicate = typeof answer.duplicate === 'boolean' ? answer.duplicate : undefined;
        result.elapsedMs = Date.now() - started;
        signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' accepted' +
          (result.eventId ? ' event_id=' + signupsyncPrintable(result.eventId) : '') +
          (result.duplicate ? ' (duplicate)' : '') +
          ' status=' + r.status + ' attempts=' + attempt + ' in ' + result.elapsedMs + 'ms' + note);
        return result;
      }
      // Network errors, timeouts, 429 and 5xx may pass; any other answer
      // (4xx, a redirect, ...) is permanent and not retried.
      const transient = r.kind !== 'response' || r.status === 429 || r.status >= 500;
      last = signupsyncDescribe(r);
      if (!transient) {
        result.outcome = 'rejected';
        result.elapsedMs = Date.now() - started;
        let why = last;
        if (r.status === 413) {
          // The receiver's body limit: sending the same body again cannot help.
          result.reason = 'payload_too_large';
          why = 'payload_too_large ' + last + ' body_bytes=' + Buffer.byteLength(body, 'utf8');
        } else {
          result.reason = r.status >= 300 && r.status < 400 ? 'redirect' : 'client_error';
        }
        signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' rejected: ' + why +
          ' (not retried) attempts=' + attempt + ' in ' + result.elapsedMs + 'ms' + note);
        return result;
      }
      if (attempt === policy.maxAttempts) break;
      const wait = signupsyncRetryDelayMs(attempt, r.retryAfterMs, policy);
      if (Date.now() + wait + floorMs > deadline) {
        // The wait plus a useful attempt would not fit: give up now.
        result.reason = 'budget';
        break;
      }
      await new Promise(function (resolve) { setTimeout(resolve, wait); });
    }
    result.outcome = 'gave_up';
    result.elapsedMs = Date.now() - started;
    signupsyncSafeLog(log, 'signupsync: ' + trigger + ' ' + who + ' gave up after ' + result.attempts +
      ' attempt' + (result.attempts === 1 ? '' : 's') + ' in ' + result.elapsedMs + 'ms (budget ' + policy.budgetMs + 'ms), last: ' +
      (last || 'no attempt fitted the budget') + note);
    return result;
  } catch (err) {
    result.outcome = 'internal_error';
    result.elapsedMs = Date.now() - started;
    signupsyncSafeLog(log, 'signupsync: ' + signupsyncPrintable(trigger) + ' ' + who + ' internal error: ' + signupsyncErrorName(err));
    return result;
  }
}

/**
 * The JSON body: trigger, tenant, connection name and strategy, stats and an
 * allowlisted copy of the user (SIGNUPSYNC_USER_FIELDS, identities reduced to
 * SIGNUPSYNC_IDENTITY_FIELDS). Nothing else of the event is sent: no
 * app_metadata or user_metadata, no identity access tokens or profileData.
 */
function signupsyncPayload(event, trigger) {
  const payload = { trigger: trigger };
  const tenant = event.tenant && event.tenant.id;
  if (typeof tenant === 'string' && tenant !== '') payload.tenant = tenant;
  const c = event.connection;
  if (c && typeof c === 'object') {
    const connection = {};
    ['name', 'strategy'].forEach(function (k) {
      if (typeof c[k] === 'string') connection[k] = c[k];
    });
    payload.connection = connection;
  }
  const logins = event.stats && event.stats.logins_count;
  if (Number.isInteger(logins) && logins >= 0) payload.stats = { logins_count: logins };
  payload.user = signupsyncUser(event.user);
  return payload;
}

/**
 * The allowlisted copy of an Auth0 user: only scalar values of known fields
 * (a Date becomes its ISO string; a Management-API-style created_at object
 * keeps only its "$date").
 */
function signupsyncUser(user) {
  const out = signupsyncPick(user, SIGNUPSYNC_USER_FIELDS);
  const created = user.created_at;
  if (created && typeof created === 'object' && !(created instanceof Date) && typeof created.$date === 'string') {
    out.created_at = { $date: created.$date };
  }
  if (Array.isArray(user.identities)) {
    out.identities = user.identities
      .filter(function (id) { return id && typeof id === 'object'; })
      .map(function (id) { return signupsyncPick(id, SIGNUPSYNC_IDENTITY_FIELDS); });
  }
  return out;
}

function signupsyncPick(from, keys) {
  const out = {};
  keys.forEach(function (k) {
    let v = from[k];
    if (v instanceof Date) v = Number.isNaN(v.getTime()) ? undefined : v.toISOString();
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v;
  });
  return out;
}

/**
 * One signed POST with its own timeout. Resolves, never rejects, and always
 * within timeoutMs: the timer aborts the request and settles the attempt
 * even if the fetch implementation ignores the abort signal.
 */
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
  const timeout = { kind: 'timeout', timeoutMs: timeoutMs };
  let timedOut = false;
  let timer;
  const expired = new Promise(function (resolve) {
    timer = setTimeout(function () {
      timedOut = true;
      resolve(timeout);
      controller.abort();
    }, timeoutMs);
  });
  const exchange = (async function () {
    let res;
    try {
      res = await fetchFn(url, { method: 'POST', headers: headers, body: body, signal: controller.signal, redirect: 'manual' });
    } catch (err) {
      if (timedOut) return timeout;
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
  })();
  try {
    return await Promise.race([exchange, expired]);
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

/**
 * What is wrong with a SIGNUPSYNC_URL value: "unset", "invalid" (not a URL,
 * another scheme, or credentials in it), "insecure" (http to a host other
 * than 127.0.0.1, ::1 or localhost), or "" when it is usable.
 */
function signupsyncURLProblem(base) {
  if (typeof base !== 'string' || base.trim() === '') return base === undefined || base === null || base === '' ? 'unset' : 'invalid';
  let u;
  try {
    u = new URL(base.trim());
  } catch (err) {
    return 'invalid';
  }
  if (u.username || u.password) return 'invalid';
  if (u.protocol === 'https:') return '';
  if (u.protocol === 'http:') return SIGNUPSYNC_LOOPBACK_HOSTS.indexOf(u.hostname) >= 0 ? '' : 'insecure';
  return 'invalid';
}

function signupsyncURLProblemText(problem) {
  if (problem === 'unset') return 'SIGNUPSYNC_URL is not set';
  if (problem === 'insecure') return 'SIGNUPSYNC_URL must be https (plain http only to 127.0.0.1, ::1 or localhost)';
  return 'SIGNUPSYNC_URL is not an https URL';
}

/**
 * The receiver URL from SIGNUPSYNC_URL (a base URL, or the full endpoint),
 * or null when the value is unusable (see signupsyncURLProblem).
 */
function signupsyncEndpoint(base) {
  if (signupsyncURLProblem(base) !== '') return null;
  const u = new URL(base.trim());
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.slice(-SIGNUPSYNC_PATH.length) === SIGNUPSYNC_PATH ? path : path + SIGNUPSYNC_PATH;
  return u.toString();
}

/**
 * A duration setting in milliseconds from the secret `name`: undefined when
 * unset or not a whole number (a note says it was ignored), clamped to
 * limits (a note says so).
 */
function signupsyncSecretMs(secrets, name, limits, notes) {
  const raw = secrets[name];
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) return undefined;
  const s = String(raw).trim();
  if (!/^\d{1,9}$/.test(s)) {
    notes.push(name + ' ignored: not a whole number of milliseconds');
    return undefined;
  }
  const n = Number(s);
  if (n < limits.min || n > limits.max) {
    const clamped = Math.min(limits.max, Math.max(limits.min, n));
    notes.push(name + ' ' + n + ' out of range, using ' + clamped);
    return clamped;
  }
  return n;
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
