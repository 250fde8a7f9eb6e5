#!/usr/bin/env node
/**
 * Cuts signupsync-action.js into the two self-contained Action files users
 * paste into Auth0 (Auth0 Actions cannot import local files):
 *
 *   post-login.js              core + exports.onExecutePostLogin
 *   post-user-registration.js  core + exports.onExecutePostUserRegistration
 *
 *   node build.js           write both files
 *   node build.js --check   exit 1 when a file is missing or stale
 *
 * Only needed when signupsync-action.js changes; nothing runs it at runtime.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const DIR = __dirname;
const SOURCE = path.join(DIR, 'signupsync-action.js');

const TARGETS = [
  {
    file: 'post-login.js',
    section: 'post-login',
    trigger: 'Login / Post Login',
    what: 'reports a signup on the user\'s first login (social signups included)',
  },
  {
    file: 'post-user-registration.js',
    section: 'post-user-registration',
    trigger: 'Sign Up & Login / Post User Registration',
    what: 'reports database and passwordless signups',
  },
];

/** The text between "// @@begin name" and "// @@end name" lines. */
function section(source, name) {
  const begin = '// @@begin ' + name + '\n';
  const end = '// @@end ' + name + '\n';
  const i = source.indexOf(begin);
  const j = source.indexOf(end);
  if (i < 0 || j < i || source.indexOf(begin, i + 1) >= 0) {
    throw new Error('signupsync-action.js: markers of section "' + name + '" are missing or repeated');
  }
  return source.slice(i + begin.length, j);
}

/** Renders every target: [{file, text}]. */
function render(source) {
  if (source === undefined) source = fs.readFileSync(SOURCE, 'utf8');
  source = source.replace(/\r\n/g, '\n');
  const core = section(source, 'core');
  return TARGETS.map(function (t) {
    const header = [
      '/**',
      ' * signupsync: Auth0 Action for the "' + t.trigger + '" trigger; ' + t.what + '.',
      ' *',
      ' * GENERATED from deploy/auth0/signupsync-action.js by deploy/auth0/build.js;',
      ' * do not edit, edit the source and run `node build.js`.',
      ' *',
      ' * Paste this whole file as the Action code. No dependencies. Secrets:',
      ' *   SIGNUPSYNC_URL        base URL of the signupsync ingest service (https;',
      ' *                         plain http only to 127.0.0.1, ::1 or localhost)',
      ' *   SIGNUPSYNC_SECRET     whsec_... secret, also listed in the receiver\'s',
      ' *                         SIGNUPSYNC_ACTION_SECRETS',
      ' *   SIGNUPSYNC_BUDGET_MS  optional: total time for all attempts, in ms',
      ' *                         (default 5000, 250..10000)',
      ' * See deploy/auth0/README.md.',
      ' */',
      '\'use strict\';',
      '',
    ].join('\n');
    return { file: t.file, text: header + '\n' + core + '\n' + section(source, t.section) };
  });
}

function main(argv) {
  const check = argv.indexOf('--check') >= 0;
  let stale = 0;
  for (const out of render()) {
    const target = path.join(DIR, out.file);
    const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : null;
    if (current === out.text) continue;
    if (check) {
      stale++;
      console.error(out.file + ' is ' + (current === null ? 'missing' : 'stale') + ': run `node build.js` in deploy/auth0');
    } else {
      fs.writeFileSync(target, out.text);
      console.log('wrote ' + out.file);
    }
  }
  return stale === 0 ? 0 : 1;
}

module.exports = { render, TARGETS };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
