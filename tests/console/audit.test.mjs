// The web console's actions in the audit log, through a real browser: a failed and a
// successful sign-in, storing a secret with a value, revealing it, editing it and deleting it
// are each recorded (CloudTrail's shape, marked sessionCredentialFromConsole), no value typed
// or shown appears anywhere in the log file, and `coffer audit verify` finds the chain intact.
// And fail closed: with a log that cannot be written, nobody signs in.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { cofferBin, startBrowser, startServer, uniqueName } from './harness.mjs';

const REGION = 'eu-west-1';
const FIRST = `first-value-${uniqueName('v')}`;
const SECOND = `second-value-${uniqueName('v')}`;
const WRONG = `wrong-secret-typed-${uniqueName('w')}`;

async function records(server) {
  const text = await readFile(join(server.dataDir, 'audit.log'), 'utf8');
  return { text, records: text.trim().split('\n').map((l) => JSON.parse(l)) };
}

describe('console actions in the audit log', () => {
  let server;
  let browser;
  let page;
  const name = uniqueName('audited/db');

  before(async () => {
    server = await startServer();
    browser = await startBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('sign in (after a failure), store, reveal, edit and delete a secret in the browser', async () => {
    await page.goto(`${server.endpoint}/console/sign-in`);
    await page.fill('#access_key_id', server.credentials.accessKeyId);
    await page.fill('#secret_access_key', WRONG);
    await page.click('button:has-text("Sign in")');
    assert.match(await page.textContent('#sign-in-error'), /not correct/);
    await page.fill('#secret_access_key', server.credentials.secretAccessKey);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL('**/console/secrets?**');

    await page.goto(`${server.endpoint}/console/secrets/new?region=${REGION}`);
    await page.check('#kind-plain');
    await page.fill('#plaintext', FIRST);
    await page.fill('#name', name);
    await page.click('button:has-text("Store")');
    await page.waitForURL('**/console/secret?**');
    assert.match((await page.textContent('.flash')).trim(), new RegExp(`Stored the secret ${name}`));

    await page.click('#retrieve-value');
    await page.waitForFunction((v) => document.querySelector('#secret-value')?.textContent.includes(v), FIRST);

    await page.click('#edit-value');
    await page.waitForURL('**/console/secret/edit-value?**');
    await page.fill('#plaintext', SECOND);
    await page.click('button:has-text("Save")');
    await page.waitForURL('**/console/secret?**');
    assert.match((await page.textContent('.flash')).trim(), /Saved the new secret value/);

    await page.fill('#recovery-window', '7');
    await page.click('#delete-secret');
    await page.waitForURL('**/console/secret/delete?**');
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    assert.match((await page.textContent('.flash')).trim(), /scheduled for deletion/);
    const stored = await server.api(REGION, 'DescribeSecret', { SecretId: name });
    assert.ok(stored.DeletedDate, 'the console really deleted it');
  });

  test('each action is one record with its operation, the session principal and the console mark', async () => {
    const { records: all } = await records(server);
    const console_ = all.filter((r) => r.sessionCredentialFromConsole === 'true');
    const logins = console_.filter((r) => r.eventName === 'ConsoleLogin');
    assert.deepEqual(
      logins.map((r) => [r.eventSource, r.eventType, r.responseElements.ConsoleLogin, r.errorMessage]),
      [
        ['signin.amazonaws.com', 'AwsConsoleSignIn', 'Failure', 'Failed authentication'],
        ['signin.amazonaws.com', 'AwsConsoleSignIn', 'Success', undefined],
      ],
    );
    for (const r of logins) assert.equal(r.userIdentity.accessKeyId, server.credentials.accessKeyId);

    const on = (op) => console_.filter((r) => r.eventName === op && r.requestParameters?.SecretId === name);
    const created = console_.filter((r) => r.eventName === 'CreateSecret' && r.requestParameters?.Name === name);
    assert.equal(created.length, 1);
    assert.equal(created[0].requestParameters.SecretString, 'HIDDEN_DUE_TO_SECURITY_REASONS');
    assert.equal(created[0].responseElements.Name, name);
    // Revealing, then opening the editor (which reads the value to fill it in).
    assert.equal(on('GetSecretValue').length, 2);
    assert.equal(on('GetSecretValue')[0].readOnly, true);
    assert.equal(on('GetSecretValue')[0].responseElements, null);
    assert.equal(on('PutSecretValue').length, 1);
    assert.equal(on('PutSecretValue')[0].requestParameters.SecretString, 'HIDDEN_DUE_TO_SECURITY_REASONS');
    assert.equal(on('DeleteSecret').length, 1);
    assert.equal(on('DeleteSecret')[0].requestParameters.RecoveryWindowInDays, 7);
    assert.ok(on('DescribeSecret').length >= 1, 'page loads are recorded too');

    for (const r of [...created, ...on('GetSecretValue'), ...on('PutSecretValue'), ...on('DeleteSecret')]) {
      assert.equal(r.eventSource, 'secretsmanager.amazonaws.com');
      assert.equal(r.awsRegion, REGION);
      assert.equal(r.sourceIPAddress, '127.0.0.1');
      assert.match(r.userAgent, /Chrome/);
      assert.equal(r.userIdentity.accessKeyId, server.credentials.accessKeyId);
      assert.match(r.userIdentity.arn, /^arn:aws:iam::\d{12}:/);
      assert.equal(r.errorCode, undefined);
      assert.match(r.requestID, /^[0-9a-f-]{36}$/);
      assert.match(r.eventID, /^[0-9a-f-]{36}$/);
    }
  });

  test('no value typed or shown in the console is anywhere in the log file', async () => {
    const { text } = await records(server);
    for (const secret of [FIRST, SECOND, WRONG, server.credentials.secretAccessKey]) {
      assert.ok(!text.includes(secret), `${secret.slice(0, 12)}... is in the audit log`);
    }
  });

  test('`coffer audit verify` finds the log intact', async () => {
    const file = join(server.dataDir, 'audit.log');
    const run = spawnSync(cofferBin(), ['audit', 'verify', file], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /intact, \d+ records/);
  });
});

test('with an audit log that cannot be written, the console signs nobody in', async () => {
  const server = await startServer({ config: 'audit_log = "/dev/full"\n' });
  const browser = await startBrowser();
  try {
    const page = browser.page;
    await page.goto(`${server.endpoint}/console/sign-in`);
    for (let i = 0; i < 2; i += 1) {
      await page.fill('#access_key_id', server.credentials.accessKeyId);
      await page.fill('#secret_access_key', server.credentials.secretAccessKey);
      await page.click('button:has-text("Sign in")');
      assert.match(await page.textContent('#sign-in-error'), /could not be recorded in the audit log/);
    }
    const cookies = await browser.context.cookies();
    assert.equal(cookies.find((c) => c.name === 'coffer_console'), undefined, 'no session');
    await page.goto(`${server.endpoint}/console/secrets?region=${REGION}`);
    assert.match(page.url(), /\/console\/sign-in/);
  } finally {
    await browser.close();
    await server.stop();
  }
});
