// The web console in a real browser: sign in, store a secret, replicate it to two Regions,
// resolve a name clash by retrying with Overwrite, promote a replica, remove a replica, reveal
// a value, sign out; and the refusals (no session, no CSRF token) with the API showing that
// nothing changed. With COFFER_SCREENSHOTS=1 the main pages are saved under docs/console/.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  eventually,
  screenshot,
  screenshotsOn,
  startBrowser,
  startServer,
  uniqueName,
} from './harness.mjs';

let server;
let browser;
let page;
const PRIMARY = 'us-west-2';
const name = uniqueName('prod/orders/db');
const clash = uniqueName('prod/billing/api-key');
const VALUE = { username: 'orders-app', password: 'correct-horse-battery-staple-42' };

/** Rows of the replication table on the current page: { region: status }. */
async function replicaStatuses() {
  return page.$$eval('#replication tbody tr', (rows) =>
    Object.fromEntries(rows.map((r) => [r.querySelector('th').textContent.trim(), r.dataset.status])),
  );
}

async function openSecret(region, secretName) {
  await page.goto(
    `${server.endpoint}/console/secret?region=${region}&name=${encodeURIComponent(secretName)}`,
  );
}

async function flash() {
  return (await page.textContent('.flash')).trim();
}

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

describe('web console', () => {
  before(async () => {
    browser = await startBrowser();
    page = browser.page;
    page.on('pageerror', (err) => {
      throw new Error(`script error on ${page.url()}: ${err.message}`);
    });
  });

  after(async () => {
    await browser?.close();
  });

  test('a page without a session leads to sign-in, and sign-in opens the secrets list', async () => {
    await page.goto(`${server.endpoint}/console/secrets?region=${PRIMARY}`);
    assert.match(page.url(), /\/console\/sign-in\?next=/);
    await screenshot(page, 'sign-in');
    await page.fill('#access_key_id', server.credentials.accessKeyId);
    await page.fill('#secret_access_key', 'not-the-secret-access-key');
    await page.click('button:has-text("Sign in")');
    assert.match(await page.textContent('#sign-in-error'), /not correct/);
    await page.fill('#secret_access_key', server.credentials.secretAccessKey);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(`**/console/secrets?region=${PRIMARY}`);
    assert.equal(await page.textContent('h1 .sub'), `in ${PRIMARY}`);
    const cookies = await browser.context.cookies();
    const session = cookies.find((c) => c.name === 'coffer_console');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/console');
    assert.equal(session.value.length, 64, '256 random bits');
  });

  test('the Region switcher changes the listed Region', async () => {
    await page.selectOption('#region-switch', 'eu-west-1');
    await page.waitForURL('**/console/secrets?region=eu-west-1');
    await page.selectOption('#region-switch', PRIMARY);
    await page.waitForURL(`**/console/secrets?region=${PRIMARY}`);
  });

  test('store a new secret as key/value pairs with a description and a tag', async () => {
    await page.click('text=Store a new secret');
    await page.fill('#pair-key-1', 'username');
    await page.fill('#pair-value-1', VALUE.username);
    await page.click('button:has-text("Add row")');
    await page.fill('#pair-key-2', 'password');
    await page.fill('#pair-value-2', VALUE.password);
    await page.fill('#name', name);
    await page.fill('#description', 'Orders database credentials');
    await page.fill('#tag-key-1', 'team');
    await page.fill('#tag-value-1', 'orders');
    await screenshot(page, 'store-a-new-secret', { fullPage: true });
    await page.click('button:has-text("Store")');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), new RegExp(`Stored the secret ${name}`));
    assert.equal((await page.textContent('h1 .badge')).trim(), 'Not replicated');
    // The value is not on the page until asked for.
    assert.ok(!(await page.content()).includes(VALUE.password));
    const described = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
    assert.equal(described.Description, 'Orders database credentials');
    assert.deepEqual(described.Tags, [{ Key: 'team', Value: 'orders' }]);
    const stored = await server.api(PRIMARY, 'GetSecretValue', { SecretId: name });
    assert.deepEqual(JSON.parse(stored.SecretString), VALUE);
  });

  test('an error of the API is shown with its message, at the field it is about', async () => {
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    await page.fill('#pair-key-1', 'k');
    await page.fill('#pair-value-1', 'v');
    await page.fill('#name', name);
    await page.click('button:has-text("Store")');
    await page.waitForURL('**/console/secrets/new?**');
    assert.match(await page.textContent('#name-error'), new RegExp(`The operation failed because the secret ${name} already exists`));
  });

  test('replicate to two Regions; the status refreshes without a reload', async () => {
    await openSecret(PRIMARY, name);
    await page.click('#replicate-secret');
    assert.equal(await page.textContent('h1'), `Add replica Regions ${name}`);
    await page.selectOption('#replica-region-0', 'us-east-1');
    await page.click('#add-more-regions');
    await page.selectOption('#replica-region-1', 'eu-west-1');
    await screenshot(page, 'add-replica-regions');
    await page.click('#replicate');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Replication to us-east-1, eu-west-1 started/);
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    const statuses = await eventually(
      async () => {
        const s = await replicaStatuses();
        return s['us-east-1'] === 'InSync' && s['eu-west-1'] === 'InSync' && s;
      },
      { what: 'both replicas InSync on the page' },
    );
    assert.deepEqual(Object.keys(statuses), ['us-east-1', 'eu-west-1']);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no full reload');
    assert.equal((await page.textContent('h1 .badge')).trim(), 'Primary');
    assert.match(await page.textContent('#replica-us-east-1 .message'), /Replication succeeded/);
    await screenshot(page, 'secret-details', { fullPage: true });
    for (const region of ['us-east-1', 'eu-west-1']) {
      const replica = await server.api(region, 'GetSecretValue', { SecretId: name });
      assert.deepEqual(JSON.parse(replica.SecretString), VALUE);
    }
  });

  test('the list shows primary and replica badges', async () => {
    await page.goto(`${server.endpoint}/console/secrets?region=${PRIMARY}`);
    const row = page.locator('tr', { has: page.getByRole('link', { name, exact: true }) });
    assert.equal((await row.locator('.badge').textContent()).trim(), 'Primary');
    await screenshot(page, 'secrets-list');
    await page.selectOption('#region-switch', 'eu-west-1');
    await page.waitForURL('**/console/secrets?region=eu-west-1');
    const replicaRow = page.locator('tr', { has: page.getByRole('link', { name, exact: true }) });
    assert.equal((await replicaRow.locator('.badge').textContent()).trim(), 'Replica');
  });

  test('a name clash fails with its reason, and Retry with Overwrite resolves it', async () => {
    // Someone already has a secret of that name in eu-west-1.
    await server.api('eu-west-1', 'CreateSecret', {
      Name: clash,
      SecretString: 'the-other-teams-value',
      ClientRequestToken: crypto.randomUUID(),
    });
    // Store the secret in the primary Region with a replica Region chosen in the same form.
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    await page.check('#kind-plain');
    await page.fill('#plaintext', 'billing-api-key-value');
    await page.fill('#name', clash);
    await page.click('#add-more-regions');
    await page.selectOption('#replica-region-0', 'eu-west-1');
    await page.click('button:has-text("Store")');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Replication to eu-west-1 started/);
    await eventually(async () => (await replicaStatuses())['eu-west-1'] === 'Failed', {
      what: 'eu-west-1 Failed',
    });
    const row = page.locator('#replica-eu-west-1');
    assert.match(await row.locator('.message').textContent(), new RegExp(`Secret name ${clash} already exists in region eu-west-1`));
    assert.match(await row.locator('.advice').textContent(), /select Overwrite/);
    // The Actions menu works from the keyboard.
    await page.focus('#actions-eu-west-1');
    await page.keyboard.press('Enter');
    await screenshot(page.locator('#replication'), 'replication-failed');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Retry replication');
    await page.keyboard.press('Enter');
    await page.waitForURL('**/console/secret/retry?**');
    assert.match(await page.textContent('.advice'), /A secret with this name already exists there/);
    await screenshot(page, 'retry-replication');
    await page.check('#overwrite');
    await page.click('#retry');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /overwriting a secret of the same name/);
    await eventually(async () => (await replicaStatuses())['eu-west-1'] === 'InSync', {
      what: 'eu-west-1 InSync after overwrite',
    });
    const replica = await server.api('eu-west-1', 'DescribeSecret', { SecretId: clash });
    assert.equal(replica.PrimaryRegion, PRIMARY);
    const value = await server.api('eu-west-1', 'GetSecretValue', { SecretId: clash });
    assert.equal(value.SecretString, 'billing-api-key-value');
  });

  test('promote a replica to a standalone secret', async () => {
    await openSecret('us-east-1', name);
    assert.equal((await page.textContent('h1 .badge')).trim(), 'Replica');
    assert.equal(await page.$('#delete-secret'), null, 'a replica offers no edits');
    await page.click('#replica-actions');
    await screenshot(page, 'replica', { fullPage: true });
    await page.click('#promote');
    await page.waitForURL('**/console/secret/promote?**');
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /is now a standalone secret/);
    assert.equal((await page.textContent('h1 .badge')).trim(), 'Not replicated');
    const promoted = await server.api('us-east-1', 'DescribeSecret', { SecretId: name });
    assert.equal(promoted.PrimaryRegion, undefined);
    // The primary drops the promoted Region once it hears of it, without a reload.
    await openSecret(PRIMARY, name);
    await eventually(async () => !('us-east-1' in (await replicaStatuses())), {
      what: 'us-east-1 gone from the primary',
    });
    assert.deepEqual(Object.keys(await replicaStatuses()), ['eu-west-1']);
  });

  test('remove a replica', async () => {
    await openSecret(PRIMARY, name);
    await page.click('#actions-eu-west-1');
    await page.click('#replica-eu-west-1 >> text=Remove replica');
    await page.waitForURL('**/console/secret/remove-replica?**');
    assert.match(await page.textContent('main p'), /deleted at once, without a recovery window/);
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Removed the replica in eu-west-1/);
    assert.match(await page.textContent('#replication'), /not replicated to other Regions/);
    assert.ok(await page.$('#replicate-secret'), '"Replicate secret" again');
    await eventually(
      async () => {
        try {
          await server.api('eu-west-1', 'DescribeSecret', { SecretId: name });
          return false;
        } catch (err) {
          return err.code === 'ResourceNotFoundException';
        }
      },
      { what: 'the replica in eu-west-1 deleted' },
    );
  });

  test('the value is revealed only on "Retrieve secret value"', async () => {
    await openSecret(PRIMARY, name);
    assert.ok(!(await page.content()).includes(VALUE.password));
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    await page.click('#retrieve-value');
    await page.waitForSelector('#secret-value-table');
    const cells = await page.$$eval('#secret-value-table tbody tr', (rows) =>
      rows.map((r) => [r.querySelector('th').textContent.trim(), r.querySelector('td').textContent.trim()]),
    );
    assert.deepEqual(cells, [
      ['username', VALUE.username],
      ['password', VALUE.password],
    ]);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'swapped in by htmx');
    assert.ok(!page.url().includes(VALUE.password));
    await screenshot(page.locator('#secret-value'), 'secret-value');
    assert.ok(!server.serverLog().includes(VALUE.password), 'never in the log');
  });

  test('edit the value as a new version', async () => {
    await page.click('#edit-value');
    await page.waitForURL('**/console/secret/edit-value?**');
    assert.equal(await page.inputValue('#pair-value-2'), VALUE.password);
    await page.fill('#pair-value-2', 'a-new-password-value');
    await page.click('button:has-text("Save")');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Saved the new secret value/);
    const labels = await page.$$eval('#versions tbody tr', (rows) => rows.map((r) => r.querySelector('td').textContent.trim()));
    assert.deepEqual(labels, ['AWSCURRENT', 'AWSPREVIOUS']);
    const stored = await server.api(PRIMARY, 'GetSecretValue', { SecretId: name });
    assert.equal(JSON.parse(stored.SecretString).password, 'a-new-password-value');
  });

  test('search by name, description and tag, and page through the list', async () => {
    const region = 'us-east-1';
    const prefix = uniqueName('bulk');
    for (let i = 0; i < 22; i += 1) {
      await server.api(region, 'CreateSecret', {
        Name: `${prefix}/s${String(i).padStart(2, '0')}`,
        Description: i === 7 ? 'the seventh one' : 'bulk secret',
        Tags: i === 3 ? [{ Key: 'owner', Value: 'payments' }] : [],
      });
    }
    const list = async (params) => {
      await page.goto(`${server.endpoint}/console/secrets?region=${region}&${params}`);
      return page.$$eval('table.list tbody th a', (links) => links.map((a) => a.textContent));
    };
    assert.deepEqual(await list(`field=tag-value&q=payments`), [`${prefix}/s03`]);
    assert.deepEqual(await list(`field=description&q=seventh`), [`${prefix}/s07`]);
    const first = await list(`field=name&q=${prefix}`);
    assert.equal(first.length, 20);
    await page.click('a[rel=next]');
    const second = await page.$$eval('table.list tbody th a', (links) => links.map((a) => a.textContent));
    assert.deepEqual(second, [`${prefix}/s20`, `${prefix}/s21`]);
    assert.match(await page.textContent('.pager'), /Page 2/);
    await page.click('a[rel=prev]');
    assert.match(await page.textContent('.pager'), /Page 1/);
    // Invalid filter text gets the API's own validation message.
    await list('field=name&q=' + encodeURIComponent('<bad>'));
    assert.match(await flash(), /validation error/);
  });

  test('requests without a session or without the CSRF token are refused', async () => {
    const before = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
    const form = (fields) => new URLSearchParams(fields).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    // No session at all: 401, whatever the form says.
    const noSession = await fetch(`${server.endpoint}/console/secret/delete`, {
      method: 'POST',
      headers,
      body: form({ region: PRIMARY, name, recovery_window: '7', csrf: 'x'.repeat(64) }),
      redirect: 'manual',
    });
    assert.equal(noSession.status, 401);
    const created = await fetch(`${server.endpoint}/console/secrets/new`, {
      method: 'POST',
      headers,
      body: form({ region: PRIMARY, name: 'made-without-a-session', value_kind: 'plaintext', plaintext: 'x' }),
      redirect: 'manual',
    });
    assert.equal(created.status, 401);
    // A signed-in browser's cookie, but no token or a wrong one: 403.
    const request = browser.context.request;
    const missing = await request.post(`${server.endpoint}/console/secret/delete`, {
      form: { region: PRIMARY, name, recovery_window: '7' },
      maxRedirects: 0,
    });
    assert.equal(missing.status(), 403);
    const wrong = await request.post(`${server.endpoint}/console/secret/remove-replica`, {
      form: { region: PRIMARY, name: clash, replica: 'eu-west-1', csrf: '0'.repeat(64) },
      maxRedirects: 0,
    });
    assert.equal(wrong.status(), 403);
    const noToken = await request.post(`${server.endpoint}/console/secrets/new`, {
      form: { region: PRIMARY, name: 'made-without-a-token', value_kind: 'plaintext', plaintext: 'x' },
      maxRedirects: 0,
    });
    assert.equal(noToken.status(), 403);
    // The API shows that nothing changed.
    const afterwards = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
    assert.equal(afterwards.DeletedDate, undefined);
    assert.equal(afterwards.LastChangedDate, before.LastChangedDate);
    const clashed = await server.api(PRIMARY, 'DescribeSecret', { SecretId: clash });
    assert.deepEqual(clashed.ReplicationStatus.map((r) => r.Region), ['eu-west-1']);
    for (const made of ['made-without-a-session', 'made-without-a-token']) {
      const found = await server.api(PRIMARY, 'ListSecrets', { Filters: [{ Key: 'name', Values: [made] }] });
      assert.deepEqual(found.SecretList, [], made);
    }
  });

  test('delete with a recovery window, then restore', async () => {
    await openSecret(PRIMARY, clash);
    await page.click('#actions-eu-west-1');
    await page.click('#replica-eu-west-1 >> text=Remove replica');
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    await page.fill('#recovery-window', '7');
    await page.click('#delete-secret');
    await page.waitForURL('**/console/secret/delete?**');
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /scheduled for deletion/);
    assert.ok(await page.$('#restore'));
    const deleted = await server.api(PRIMARY, 'DescribeSecret', { SecretId: clash });
    assert.ok(deleted.DeletedDate);
    await page.click('#restore');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Cancelled the deletion/);
    const restored = await server.api(PRIMARY, 'DescribeSecret', { SecretId: clash });
    assert.equal(restored.DeletedDate, undefined);
  });

  test('sign out ends the session', async () => {
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'coffer_console');
    await page.goto(`${server.endpoint}/console/secrets?region=${PRIMARY}`);
    await page.click('button:has-text("Sign out")');
    await page.waitForURL('**/console/sign-in?signed_out=1');
    assert.match(await flash(), /You are signed out/);
    await page.goto(`${server.endpoint}/console/secrets?region=${PRIMARY}`);
    assert.match(page.url(), /\/console\/sign-in\?next=/);
    // The old cookie is worthless now.
    const replay = await fetch(`${server.endpoint}/console/secrets?region=${PRIMARY}`, {
      headers: { cookie: `coffer_console=${cookie.value}` },
      redirect: 'manual',
    });
    assert.equal(replay.status, 303);
  });
});

describe('web console without JavaScript', () => {
  let plain;
  before(async () => {
    plain = await startBrowser({ javaScriptEnabled: false });
  });
  after(async () => {
    await plain?.close();
  });

  test('pages read and the value is retrieved with a plain form', async () => {
    const p = plain.page;
    await p.goto(`${server.endpoint}/console`);
    await p.fill('#access_key_id', server.credentials.accessKeyId);
    await p.fill('#secret_access_key', server.credentials.secretAccessKey);
    await p.click('button:has-text("Sign in")');
    await p.waitForURL('**/console/secrets?region=**');
    // The Region switcher works as a plain form.
    await p.selectOption('#region-switch', PRIMARY);
    await p.click('.region-switch button');
    await p.waitForURL(`**/console/secrets?region=${PRIMARY}`);
    // (Names carry <wbr> after each "/", which :text-is does not see through.)
    await p.getByRole('link', { name, exact: true }).click();
    await p.waitForURL('**/console/secret?**');
    assert.ok(await p.$('#replication'));
    await p.click('#retrieve-value');
    await p.waitForSelector('#secret-value-table');
    assert.equal(
      await p.$$eval('#secret-value-table tbody td', (cells) => cells[1].textContent.trim()),
      'a-new-password-value',
    );
    if (screenshotsOn) {
      await p.setViewportSize({ width: 420, height: 900 });
      await p.goto(`${server.endpoint}/console/secret?region=${PRIMARY}&name=${encodeURIComponent(name)}`);
      await screenshot(p, 'narrow-window');
    }
  });
});
