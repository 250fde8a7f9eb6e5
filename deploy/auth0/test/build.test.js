/**
 * The pasteable Action files are generated from signupsync-action.js: they
 * must be current and self-contained (Auth0 Actions cannot import local
 * files; the only module they load is Node's crypto).
 */
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { AUTH0_DIR } = require('../testlib/helpers.js');
const { render } = require('../build.js');

test('post-login.js and post-user-registration.js are up to date (run `node build.js`)', () => {
  const outputs = render();
  assert.deepEqual(outputs.map((o) => o.file), ['post-login.js', 'post-user-registration.js']);
  for (const out of outputs) {
    const onDisk = fs.readFileSync(path.join(AUTH0_DIR, out.file), 'utf8');
    assert.ok(onDisk === out.text, out.file + ' is stale: run `node build.js` in deploy/auth0');
  }
});

test('the Action files are self-contained and export only their handler', () => {
  const want = {
    'post-login.js': 'onExecutePostLogin',
    'post-user-registration.js': 'onExecutePostUserRegistration',
  };
  for (const [file, handler] of Object.entries(want)) {
    const text = fs.readFileSync(path.join(AUTH0_DIR, file), 'utf8');
    const required = [...text.matchAll(/require\(\s*(['"`])([^'"`]+)\1\s*\)/g)].map((m) => m[2]);
    assert.deepEqual(required, ['crypto'], file + ' loads only crypto');
    assert.ok(!/\bimport\s*\(|^\s*import\s/m.test(text), file + ' has no imports');
    assert.ok(!text.includes('@@begin') && !text.includes('@@end'), file + ' has no build markers');
    const mod = require(path.join(AUTH0_DIR, file));
    assert.deepEqual(Object.keys(mod), [handler]);
    assert.equal(typeof mod[handler], 'function');
    assert.equal(mod[handler].constructor.name, 'AsyncFunction');
  }
});

test('the source module exports both handlers and notifySignup', () => {
  const mod = require('../signupsync-action.js');
  for (const name of ['onExecutePostLogin', 'onExecutePostUserRegistration', 'notifySignup']) {
    assert.equal(typeof mod[name], 'function', name);
  }
});

test('package.json: private, CommonJS, no dependencies', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(AUTH0_DIR, 'package.json'), 'utf8'));
  assert.equal(pkg.private, true);
  assert.equal(pkg.type, 'commonjs');
  assert.equal(pkg.scripts.test, 'node --test test/*.test.js');
  for (const key of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    assert.equal(pkg[key], undefined, key);
  }
});
