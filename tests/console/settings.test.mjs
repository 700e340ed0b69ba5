// How `coffer serve` serves the console: loopback addresses only unless console_public = true,
// and sessions that end after console_idle_timeout_secs without activity. Plain HTTP, no
// browser: these are properties of the server, not of the pages.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startServer } from './harness.mjs';

/** Signs in over plain HTTP; returns the session cookie header. */
async function signIn(server) {
  const form = await fetch(`${server.endpoint}/console/sign-in`);
  assert.equal(form.status, 200);
  const signInCookie = form.headers.getSetCookie().find((c) => c.startsWith('coffer_console_sign_in='));
  const token = signInCookie.split(';')[0].split('=')[1];
  const response = await fetch(`${server.endpoint}/console/sign-in`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      cookie: `coffer_console_sign_in=${token}`,
    },
    body: new URLSearchParams({
      token,
      access_key_id: server.credentials.accessKeyId,
      secret_access_key: server.credentials.secretAccessKey,
    }).toString(),
    redirect: 'manual',
  });
  assert.equal(response.status, 303);
  const session = response.headers.getSetCookie().find((c) => c.startsWith('coffer_console='));
  return session.split(';')[0];
}

test('a session ends after console_idle_timeout_secs without activity', async () => {
  const server = await startServer({ config: 'console_idle_timeout_secs = 1\n' });
  try {
    const cookie = await signIn(server);
    const page = () =>
      fetch(`${server.endpoint}/console/secrets?region=us-east-1`, { headers: { cookie }, redirect: 'manual' });
    assert.equal((await page()).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    const expired = await page();
    assert.equal(expired.status, 303);
    assert.match(expired.headers.get('location'), /^\/console\/sign-in\?next=/);
  } finally {
    await server.stop();
  }
});

test('on a non-loopback listening address the console is off unless console_public = true', async () => {
  const closed = await startServer({ listen: '0.0.0.0:0' });
  try {
    const response = await fetch(`${closed.endpoint}/console/sign-in`);
    assert.equal(response.status, 404);
    assert.match(await response.text(), /console_public = true/);
    // The API itself is served as always.
    const listed = await closed.api('us-east-1', 'ListSecrets', {});
    assert.deepEqual(listed.SecretList, []);
  } finally {
    await closed.stop();
  }
  const open = await startServer({ listen: '0.0.0.0:0', config: 'console_public = true\n' });
  try {
    const response = await fetch(`${open.endpoint}/console/sign-in`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /Sign in to the Coffer console/);
  } finally {
    await open.stop();
  }
});

test('console = false turns the console off', async () => {
  const server = await startServer({ config: 'console = false\n' });
  try {
    const response = await fetch(`${server.endpoint}/console`);
    assert.equal(response.status, 404);
    assert.match(await response.text(), /turned off/);
  } finally {
    await server.stop();
  }
});
