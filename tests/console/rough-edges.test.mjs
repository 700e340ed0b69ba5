// The rough edges a person hits in the first hour (issue 15), each driven in a real browser:
// re-adding a promoted Region, storing without a value, the Actions menu, Post/Redirect/Get,
// delete confirmation, inline field errors, a narrow window, a lost connection and a restart,
// and the smaller ones (default Region, status polling, KMS keys page, list sorting).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { eventually, screenshot, startBrowser, startServer, uniqueName } from './harness.mjs';

const PRIMARY = 'us-west-2';
let server;
let browser;
let page;

async function signIn(p, srv = server) {
  await p.goto(`${srv.endpoint}/console/sign-in`);
  await p.fill('#access_key_id', srv.credentials.accessKeyId);
  await p.fill('#secret_access_key', srv.credentials.secretAccessKey);
  await p.click('button:has-text("Sign in")');
  await p.waitForURL('**/console/secrets?**');
}

async function openSecret(region, name, p = page) {
  await p.goto(`${server.endpoint}/console/secret?region=${region}&name=${encodeURIComponent(name)}`);
}

async function replicaStatuses(p = page) {
  return p.$$eval('#replication tbody tr', (rows) =>
    Object.fromEntries(rows.map((r) => [r.querySelector('th').textContent.trim(), r.dataset.status])),
  );
}

async function flash(p = page) {
  return (await p.textContent('.flash')).trim();
}

async function createReplicated(name, regions) {
  await server.api(PRIMARY, 'CreateSecret', {
    Name: name,
    SecretString: 'value-1',
    AddReplicaRegions: regions.map((Region) => ({ Region })),
    ClientRequestToken: crypto.randomUUID(),
  });
  await eventually(
    async () => {
      const d = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
      return d.ReplicationStatus.every((r) => r.Status === 'InSync');
    },
    { what: `${name} InSync` },
  );
}

before(async () => {
  server = await startServer();
  browser = await startBrowser();
  page = browser.page;
  page.on('pageerror', (err) => {
    throw new Error(`script error on ${page.url()}: ${err.message}`);
  });
  await signIn(page);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('1: re-adding a Region after promotion', () => {
  test('the row stays with the name-clash failure, and Add Region offers Overwrite', async () => {
    const name = uniqueName('promoted');
    await createReplicated(name, ['us-east-1']);
    await server.api('us-east-1', 'StopReplicationToReplica', { SecretId: name });
    await openSecret(PRIMARY, name);
    await eventually(async () => Object.keys(await replicaStatuses()).length === 0, {
      what: 'us-east-1 gone from the primary',
    });
    await page.click('#replicate-secret');
    await page.selectOption('#replica-region-0', 'us-east-1');
    await page.click('#replicate');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Replication to us-east-1 started/);
    await eventually(async () => (await replicaStatuses())['us-east-1'] === 'Failed', {
      what: 'us-east-1 Failed',
    });
    // It stays through several refreshes.
    await page.waitForTimeout(7000);
    assert.equal((await replicaStatuses())['us-east-1'], 'Failed');
    assert.match(await page.textContent('#replica-us-east-1 .message'), /already exists in region us-east-1/);
    await page.click('#add-region');
    await page.waitForURL('**/console/secret/replicate?**');
    await page.selectOption('#replica-region-0', 'us-east-1');
    await page.check('#overwrite');
    await page.click('#replicate');
    await page.waitForURL('**/console/secret?**');
    await eventually(async () => (await replicaStatuses())['us-east-1'] === 'InSync', {
      what: 'us-east-1 InSync after overwrite',
    });
    const replica = await server.api('us-east-1', 'DescribeSecret', { SecretId: name });
    assert.equal(replica.PrimaryRegion, PRIMARY);
  });
});

describe('2: a secret needs a value', () => {
  test('Store with the key/value row left empty is refused at the value, and nothing is stored', async () => {
    const name = uniqueName('no-value');
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    await page.fill('#name', name);
    await page.click('#store');
    await page.waitForURL('**/console/secrets/new?**');
    assert.match(await page.textContent('.value-editor .field-error'), /Enter a secret value/);
    assert.equal(await page.getAttribute('#pair-key-1', 'aria-invalid'), 'true');
    assert.equal(await page.inputValue('#name'), name, 'what was typed is kept');
    const found = await server.api(PRIMARY, 'ListSecrets', { Filters: [{ Key: 'name', Values: [name] }] });
    assert.deepEqual(found.SecretList, []);
  });

  test('a secret stored without a value (through the API) can be given one', async () => {
    const name = uniqueName('empty');
    await server.api(PRIMARY, 'CreateSecret', { Name: name, ClientRequestToken: crypto.randomUUID() });
    await openSecret(PRIMARY, name);
    assert.match(await page.textContent('#versions'), /no value yet/);
    await page.click('#set-value');
    await page.waitForURL('**/console/secret/edit-value?**');
    assert.match(await page.textContent('h1'), /Set secret value/);
    await page.fill('#pair-key-1', 'token');
    await page.fill('#pair-value-1', 'first-token-value');
    await page.click('#save-value');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Saved the new secret value/);
    const stored = await server.api(PRIMARY, 'GetSecretValue', { SecretId: name });
    assert.deepEqual(JSON.parse(stored.SecretString), { token: 'first-token-value' });
  });
});

/** Whether an element is clipped by a scrolling or clipping ancestor; the ancestor's class. */
async function clippedBy(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
      const c = a.getBoundingClientRect();
      if (r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5 || r.left < c.left - 0.5 || r.right > c.right + 0.5) {
        return a.className || a.tagName;
      }
    }
    return null;
  });
}

describe('3: the Actions menu', () => {
  test('with one replica, Retry and Remove are shown in full, not clipped by the table', async () => {
    // One replica, failed on a name clash (so the menu offers Retry as well as Remove).
    const name = uniqueName('one-replica');
    await server.api('eu-west-1', 'CreateSecret', { Name: name, SecretString: 'theirs', ClientRequestToken: crypto.randomUUID() });
    await server.api(PRIMARY, 'CreateSecret', {
      Name: name,
      SecretString: 'ours',
      AddReplicaRegions: [{ Region: 'eu-west-1' }],
      ClientRequestToken: crypto.randomUUID(),
    });
    await openSecret(PRIMARY, name);
    await eventually(async () => (await replicaStatuses())['eu-west-1'] === 'Failed', { what: 'Failed' });
    await page.click('#actions-eu-west-1');
    for (const text of ['Retry replication', 'Remove replica']) {
      const item = page.locator('#replica-eu-west-1 .menu a', { hasText: text });
      assert.ok(await item.isVisible(), text);
      assert.equal(await clippedBy(item), null, `${text} is clipped`);
    }
    await page.locator('#replica-eu-west-1 .menu a', { hasText: 'Remove replica' }).click();
    await page.waitForURL('**/console/secret/remove-replica?**');
  });
});

/** Back or Forward; fails on Chrome's "Confirm Form Resubmission" (ERR_CACHE_MISS) page. */
async function travel(p, direction) {
  const outcome = await (direction === 'back' ? p.goBack() : p.goForward()).catch((err) => err);
  assert.ok(!(outcome instanceof Error), `${direction}: ${outcome?.message}`);
  assert.ok(p.url().startsWith(server.endpoint), `${direction} landed on ${p.url()}`);
  assert.ok(!(await p.content()).includes('ERR_CACHE_MISS'), `${direction}: resubmission page`);
}

async function focusedId(p = page) {
  return p.evaluate(() => document.activeElement?.id);
}

async function inViewport(selector, p = page) {
  return p.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    // A pixel of slack: scrolling to an anchor can leave the element a subpixel above the top.
    return r.top >= -1 && r.bottom <= window.innerHeight + 1;
  });
}

describe('5: Post/Redirect/Get', () => {
  test('"Add row" and "Add tag" keep the focus and the position, and Back/Forward never resubmit', async () => {
    await page.setViewportSize({ width: 1280, height: 600 });
    try {
      const name = uniqueName('prg');
      await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
      await page.fill('#pair-key-1', 'user');
      await page.fill('#pair-value-1', 'app');
      await page.fill('#name', name);
      await page.click('#add-tag');
      await page.waitForURL('**/console/secrets/new?**draft=**');
      assert.equal(await focusedId(), 'tag-key-2');
      assert.ok(await inViewport('#tag-key-2'), 'the new tag row is in view');
      assert.ok(await page.evaluate(() => window.scrollY > 0), 'not back at the top');
      await page.click('#add-row');
      assert.equal(await focusedId(), 'pair-key-2');
      assert.ok(await inViewport('#pair-key-2'));
      await page.click('#add-more-regions');
      assert.equal(await focusedId(), 'replica-region-0');
      // Leave the form, then come back to it and go forward again.
      await page.click('main a.button:has-text("Cancel")');
      await page.waitForURL('**/console/secrets?**');
      await travel(page, 'back');
      assert.equal(await page.inputValue('#pair-key-1'), 'user', 'what was typed is shown again');
      assert.equal(await page.inputValue('#name'), name);
      await travel(page, 'back');
      await travel(page, 'forward');
      await travel(page, 'forward');
      assert.match(page.url(), /\/console\/secrets\?region=/);
      // "Edit secret value" and its "Add row" are pages one can go back to as well.
      await server.api(PRIMARY, 'CreateSecret', { Name: name, SecretString: '{"a":"1"}', ClientRequestToken: crypto.randomUUID() });
      await openSecret(PRIMARY, name);
      await page.click('#retrieve-value');
      await page.click('#edit-value');
      await page.waitForURL('**/console/secret/edit-value?**');
      await page.click('#add-row');
      assert.equal(await focusedId(), 'pair-key-2');
      await page.click('main a.button:has-text("Cancel")');
      await page.waitForURL('**/console/secret?**');
      await travel(page, 'back');
      assert.equal(await page.inputValue('#pair-key-1'), 'a');
      await travel(page, 'back');
      await travel(page, 'forward');
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  test('without JavaScript, a retrieved value and a refused sign-in are pages Back and Forward reach', async () => {
    const plain = await startBrowser({ javaScriptEnabled: false });
    try {
      const p = plain.page;
      const name = uniqueName('prg-plain');
      await server.api(PRIMARY, 'CreateSecret', { Name: name, SecretString: 'plain-value-1', ClientRequestToken: crypto.randomUUID() });
      await p.goto(`${server.endpoint}/console/sign-in`);
      await p.fill('#access_key_id', server.credentials.accessKeyId);
      await p.fill('#secret_access_key', 'wrong-secret');
      await p.click('button:has-text("Sign in")');
      assert.match(await p.textContent('#sign-in-error'), /not correct/);
      assert.equal(await p.inputValue('#access_key_id'), server.credentials.accessKeyId);
      await p.fill('#secret_access_key', server.credentials.secretAccessKey);
      await p.click('button:has-text("Sign in")');
      await p.waitForURL('**/console/secrets?**');
      await p.goto(`${server.endpoint}/console/secret?region=${PRIMARY}&name=${encodeURIComponent(name)}`);
      await p.click('#retrieve-value');
      assert.equal((await p.textContent('#secret-value-plaintext')).trim(), 'plain-value-1');
      await p.click('#hide-value');
      await p.waitForSelector('#retrieve-value');
      await travel(p, 'back');
      assert.equal((await p.textContent('#secret-value-plaintext')).trim(), 'plain-value-1');
      await travel(p, 'forward');
    } finally {
      await plain.close();
    }
  });
});

describe('7: delete asks first', () => {
  test('Delete opens a confirmation with the waiting period and the day it ends; nothing is deleted before Confirm', async () => {
    const name = uniqueName('to-delete');
    await server.api(PRIMARY, 'CreateSecret', { Name: name, SecretString: 'x', ClientRequestToken: crypto.randomUUID() });
    await openSecret(PRIMARY, name);
    await page.fill('#recovery-window', '9');
    await page.click('#delete-secret');
    await page.waitForURL('**/console/secret/delete?**');
    const expected = new Date(Date.now() + 9 * 86_400_000).toISOString().slice(0, 10);
    assert.equal(await page.inputValue('#recovery-window'), '9');
    assert.equal((await page.textContent('#deletion-date')).trim(), expected);
    await screenshot(page, 'delete-secret');
    assert.equal((await server.api(PRIMARY, 'DescribeSecret', { SecretId: name })).DeletedDate, undefined, 'not yet');
    await page.click('#confirm');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /scheduled for deletion/);
    assert.ok((await server.api(PRIMARY, 'DescribeSecret', { SecretId: name })).DeletedDate);
  });

  test('a primary with replicas gets the hint to remove them first, not the raw API error', async () => {
    const name = uniqueName('primary-delete');
    await createReplicated(name, ['eu-west-1']);
    await openSecret(PRIMARY, name);
    await page.click('#delete-secret');
    await page.waitForURL('**/console/secret/delete?**');
    assert.match(await page.textContent('#replica-hint'), /replicas in eu-west-1/);
    assert.match(await page.textContent('#replica-hint'), /Remove the replica Regions first/);
    assert.equal(await page.$('#confirm'), null);
    await page.click('#replica-hint a');
    await page.waitForURL('**/console/secret?**#replication');
  });
});

describe('8: errors at the field', () => {
  test('an invalid name is marked at the name field, which gets the focus; the hint lists "!"', async () => {
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    assert.match(await page.textContent('#name-hint'), /!/);
    await page.fill('#pair-key-1', 'k');
    await page.fill('#pair-value-1', 'v');
    await page.fill('#name', 'has a space');
    await page.click('#store');
    await page.waitForURL('**/console/secrets/new?**');
    assert.equal(await page.getAttribute('#name', 'aria-invalid'), 'true');
    assert.match(await page.textContent('#name-error'), /Invalid name/);
    assert.equal(await focusedId(), 'name');
    await screenshot(page.locator('#name').locator('xpath=ancestor::fieldset'), 'field-error');
    assert.equal(await page.$('main > .flash-error'), null, 'no banner at the top');
    // "!" is accepted, as the hint says.
    const bang = uniqueName('bang!');
    await page.fill('#name', bang);
    await page.click('#store');
    await page.waitForURL('**/console/secret?**');
    assert.match(await flash(), /Stored the secret/);
  });

  test('a key that cannot be used is marked at the encryption key field', async () => {
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    await page.fill('#pair-key-1', 'k');
    await page.fill('#pair-value-1', 'v');
    await page.fill('#kms_key', 'alias/no-such-key');
    await page.fill('#name', uniqueName('bad-key'));
    await page.click('#store');
    await page.waitForURL('**/console/secrets/new?**');
    assert.equal(await page.getAttribute('#kms_key', 'aria-invalid'), 'true');
    assert.match(await page.textContent('#kms_key-error'), /alias\/no-such-key is not found/i);
    assert.equal(await focusedId(), 'kms_key');
    assert.equal(await page.inputValue('#pair-value-1'), 'v', 'the value typed is kept');
  });

  test('an over-size key/value value says the pairs are stored as JSON, at the value', async () => {
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    await page.fill('#pair-key-1', 'blob');
    await page.fill('#pair-value-1', 'x'.repeat(65_530));
    await page.fill('#name', uniqueName('too-big'));
    await page.click('#store');
    await page.waitForURL('**/console/secrets/new?**');
    assert.equal(await page.getAttribute('#pair-value-1', 'aria-invalid'), 'true');
    const text = await page.textContent('#pair-value-1-error');
    assert.match(text, /stored as one JSON text/);
    assert.match(text, /65,5\d\d characters|6554\d characters/);
    assert.doesNotMatch(text, /secretString/);
    assert.equal(await focusedId(), 'pair-value-1');
  });
});

/** How far the page scrolls sideways (0: it fits). */
async function sidewaysOverflow(p) {
  return p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** The characters after which the text of `selector` wraps to a new line. */
async function breaksIn(p, selector) {
  return p.$eval(selector, (el) => {
    const range = document.createRange();
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const breaks = [];
    let top = null;
    let previous = null;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.textContent.length; i += 1) {
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect) continue;
        if (top !== null && rect.top > top + 2) breaks.push(previous);
        top = rect.top;
        previous = node.textContent[i];
      }
    }
    return breaks;
  });
}

describe('6: a narrow window (390 px)', () => {
  test('no page scrolls sideways, names break at "/", and the Actions are on screen', async () => {
    const name = uniqueName('prod/production/database/us-west-primary');
    await createReplicated(name, ['eu-west-1']);
    await server.api(PRIMARY, 'TagResource', { SecretId: name, Tags: [{ Key: 'team', Value: 'orders' }] });
    const narrow = await browser.context.newPage();
    await narrow.setViewportSize({ width: 390, height: 844 });
    try {
      const pages = [
        `/console/secrets?region=${PRIMARY}&field=name&q=${encodeURIComponent(name)}`,
        `/console/secret?region=${PRIMARY}&name=${encodeURIComponent(name)}`,
        `/console/secret?region=eu-west-1&name=${encodeURIComponent(name)}`,
        `/console/secrets/new?region=${PRIMARY}`,
        `/console/secret/replicate?region=${PRIMARY}&name=${encodeURIComponent(name)}`,
        `/console/secret/edit-value?region=${PRIMARY}&name=${encodeURIComponent(name)}`,
        `/console/secret/retry?region=${PRIMARY}&name=${encodeURIComponent(name)}&replica=eu-west-1`,
        `/console/secret/delete?region=${PRIMARY}&name=${encodeURIComponent(name)}`,
        `/console/keys?region=${PRIMARY}`,
      ];
      // 390 px (a phone), and 360 px, the narrowest the layout is made for.
      for (const width of [360, 390]) {
        await narrow.setViewportSize({ width, height: 844 });
        for (const path of pages) {
          await narrow.goto(`${server.endpoint}${path}`);
          assert.equal(await sidewaysOverflow(narrow), 0, `${path} scrolls sideways at ${width} px`);
        }
      }
      await narrow.goto(`${server.endpoint}${pages[0]}`);
      const breaks = await breaksIn(narrow, 'table.list tbody th a');
      assert.ok(breaks.length > 0, 'the long name wraps');
      assert.deepEqual(breaks.filter((c) => c !== '/' && c !== '-'), [], `breaks after ${breaks.join(' ')}`);
      await narrow.goto(`${server.endpoint}${pages[1]}`);
      await screenshot(narrow, 'narrow-secret-390px', { fullPage: true });
      const actions = await narrow.$eval('#actions-eu-west-1', (el) => el.getBoundingClientRect().right);
      assert.ok(actions <= 390, `Actions at x=${actions}`);
      await narrow.click('#actions-eu-west-1');
      assert.equal(await sidewaysOverflow(narrow), 0, 'the open menu fits');
      const remove = narrow.locator('#replica-eu-west-1 .menu a', { hasText: 'Remove replica' });
      assert.ok(await remove.isVisible());
      assert.equal(await clippedBy(remove), null);
    } finally {
      await narrow.close();
    }
  });
});

describe('4: a server that stops or restarts', () => {
  test('the page says the connection is lost, and after a restart the session and a filled form go on', async () => {
    const own = await startServer();
    const b = await startBrowser();
    try {
      const p = b.page;
      await signIn(p, own);
      const name = uniqueName('restart');
      await own.api(PRIMARY, 'CreateSecret', {
        Name: name,
        SecretString: 'v1',
        AddReplicaRegions: [{ Region: 'us-east-1' }],
        ClientRequestToken: crypto.randomUUID(),
      });
      await p.goto(`${own.endpoint}/console/secret?region=${PRIMARY}&name=${encodeURIComponent(name)}`);
      await eventually(async () => (await replicaStatuses(p))['us-east-1'] === 'InSync', { what: 'InSync' });
      assert.ok(await p.isVisible('#status-live'));
      await own.halt();
      await p.waitForSelector('#connection-notice.flash-error', { timeout: 10_000 });
      assert.match(await p.textContent('#connection-notice'), /Connection to the Coffer server lost/);
      assert.ok(await p.isVisible('#status-stale'), 'the status says it is not updating');
      assert.ok(!(await p.isVisible('#status-live')));
      await screenshot(p, 'connection-lost');
      // Retrieve while the server is down says so too, rather than nothing.
      await p.evaluate(() => document.getElementById('connection-notice').remove());
      await p.click('#retrieve-value');
      await p.waitForSelector('#connection-notice.flash-error', { timeout: 10_000 });

      // A form filled in while the server is down is sent after it restarts: the session lives on.
      const form = await b.context.newPage();
      await own.resume();
      await p.waitForSelector('#connection-notice.flash-ok', { timeout: 10_000 });
      assert.ok(await p.isVisible('#status-live'));
      await form.goto(`${own.endpoint}/console/secrets/new?region=${PRIMARY}`);
      assert.match(form.url(), /\/console\/secrets\/new/, 'still signed in after the restart');
      await form.fill('#pair-key-1', 'k');
      await form.fill('#pair-value-1', 'v');
      const second = uniqueName('after-restart');
      await form.fill('#name', second);
      await own.halt();
      await own.resume();
      await form.click('#store');
      await form.waitForURL('**/console/secret?**');
      assert.match((await form.textContent('.flash')).trim(), new RegExp(`Stored the secret ${second}`));
    } finally {
      await b.close();
      await own.stop();
    }
  });

  test('two tabs on the sign-in page do not break each other', async () => {
    const b = await startBrowser();
    try {
      const first = b.page;
      const second = await b.context.newPage();
      for (const p of [first, second]) {
        await p.goto(`${server.endpoint}/console/sign-in`);
        await p.fill('#access_key_id', server.credentials.accessKeyId);
        await p.fill('#secret_access_key', server.credentials.secretAccessKey);
      }
      await first.click('button:has-text("Sign in")');
      await first.waitForURL('**/console/secrets?**');
      await second.click('button:has-text("Sign in")');
      await second.waitForURL('**/console/secrets?**');
    } finally {
      await b.close();
    }
  });
});

async function auditRecords(srv = server) {
  const text = await readFile(join(srv.dataDir, 'audit.log'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

describe('9: the smaller ones', () => {
  test('sign-in opens the node\'s default Region (the first of --regions), not the first by name', async () => {
    const b = await startBrowser();
    try {
      await signIn(b.page);
      assert.match(b.page.url(), new RegExp(`/console/secrets\\?region=${PRIMARY}$`));
      assert.equal(await b.page.inputValue('#region-switch'), PRIMARY);
    } finally {
      await b.close();
    }
  });

  test('the status refresh writes no audit record per poll; the page load is recorded', async () => {
    const name = uniqueName('polled');
    await createReplicated(name, ['us-east-1']);
    await openSecret(PRIMARY, name);
    const described = async () =>
      (await auditRecords()).filter(
        (r) => r.eventName === 'DescribeSecret' && r.sessionCredentialFromConsole === 'true' && r.requestParameters?.SecretId === name,
      ).length;
    await eventually(async () => (await described()) >= 1, { what: 'the page load recorded' });
    const atLoad = await described();
    // Three or more refreshes (every 3 s) later:
    let polls = 0;
    page.on('request', (r) => {
      if (r.url().includes('/console/secret/replication?')) polls += 1;
    });
    await page.waitForTimeout(10_000);
    assert.ok(polls >= 3, `${polls} refreshes`);
    assert.equal(await described(), atLoad, 'no record per refresh');
  });

  test('Retry is offered only for a failed replica, and its dialog does not say "Choose Actions"', async () => {
    const name = uniqueName('retry-offer');
    await server.api('eu-west-1', 'CreateSecret', { Name: name, SecretString: 'theirs', ClientRequestToken: crypto.randomUUID() });
    await server.api(PRIMARY, 'CreateSecret', {
      Name: name,
      SecretString: 'ours',
      AddReplicaRegions: [{ Region: 'us-east-1' }, { Region: 'eu-west-1' }],
      ClientRequestToken: crypto.randomUUID(),
    });
    await openSecret(PRIMARY, name);
    await eventually(
      async () => {
        const s = await replicaStatuses();
        return s['us-east-1'] === 'InSync' && s['eu-west-1'] === 'Failed';
      },
      { what: 'one InSync, one Failed' },
    );
    await page.click('#actions-us-east-1');
    assert.equal(await page.locator('#replica-us-east-1 .menu a', { hasText: 'Retry replication' }).count(), 0);
    assert.equal(await page.locator('#replica-us-east-1 .menu a', { hasText: 'Remove replica' }).count(), 1);
    await page.keyboard.press('Escape');
    await page.click('#actions-eu-west-1');
    await page.locator('#replica-eu-west-1 .menu a', { hasText: 'Retry replication' }).click();
    await page.waitForURL('**/console/secret/retry?**');
    const advice = await page.textContent('.advice');
    assert.doesNotMatch(advice, /Choose Actions/);
    assert.match(advice, /Select Overwrite/);
  });
});

describe('9: a replica of a rotating secret', () => {
  test('the replica\'s page shows its primary\'s rotation, not "Not configured"', async () => {
    const name = uniqueName('rotating');
    await createReplicated(name, ['us-east-1']);
    const described = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
    const account = described.ARN.split(':')[4];
    await server.api(PRIMARY, 'RotateSecret', {
      SecretId: name,
      RotationLambdaARN: `arn:aws:lambda:${PRIMARY}:${account}:function:coffer-password`,
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
      RotateImmediately: false,
      ClientRequestToken: crypto.randomUUID(),
    });
    await openSecret('us-east-1', name);
    const rotation = await page.textContent('#rotation');
    assert.doesNotMatch(rotation, /Not configured/);
    assert.match(rotation, /Enabled/);
    assert.match(rotation, /rate\(30 days\)/);
    assert.match(await page.textContent('#rotation-managed'), new RegExp(`primary secret in ${PRIMARY}`));
  });
});

describe('9: the list', () => {
  test('sorting by a column, a page size, a count, and Region names', async () => {
    const region = 'eu-west-1';
    const prefix = uniqueName('sorted');
    for (const n of ['b', 'c', 'a']) {
      await server.api(region, 'CreateSecret', { Name: `${prefix}/${n}`, SecretString: n, ClientRequestToken: crypto.randomUUID() });
    }
    const names = () => page.$$eval('table.list tbody th a', (links) => links.map((a) => a.textContent));
    await page.goto(`${server.endpoint}/console/secrets?region=${region}&field=name&q=${prefix}`);
    assert.deepEqual(await names(), [`${prefix}/b`, `${prefix}/c`, `${prefix}/a`], 'oldest first');
    assert.equal((await page.textContent('#secret-count')).trim(), '(3)');
    await page.click('thead a.sort:has-text("Name")');
    assert.deepEqual(await names(), [`${prefix}/a`, `${prefix}/b`, `${prefix}/c`]);
    assert.equal(await page.getAttribute('th[aria-sort="ascending"] a', 'href').then((h) => h.includes('sort=name')), true);
    await page.click('thead a.sort:has-text("Name")');
    assert.deepEqual(await names(), [`${prefix}/c`, `${prefix}/b`, `${prefix}/a`]);
    // The search keeps the sort; a page size of 10 pages a longer list.
    for (let i = 0; i < 12; i += 1) {
      await server.api(region, 'CreateSecret', { Name: `${prefix}/z${String(i).padStart(2, '0')}`, SecretString: 'x', ClientRequestToken: crypto.randomUUID() });
    }
    await page.goto(`${server.endpoint}/console/secrets?region=${region}&field=name&q=${prefix}&sort=name&order=asc`);
    assert.equal((await names()).length, 15);
    await page.selectOption('#page-size', '10');
    await page.waitForURL('**size=10**');
    assert.equal((await names()).length, 10);
    assert.equal((await names())[0], `${prefix}/a`, 'still sorted by name');
    assert.match(await page.textContent('.pager'), /1–10 of 15/);
    await page.click('a[rel=next]');
    assert.equal((await names()).length, 5);
    assert.match(await page.textContent('.pager'), /11–15 of 15/);
    // Regions by their names.
    assert.match(await page.textContent(`#region-switch option[value="${PRIMARY}"]`), /US West \(Oregon\)/);
    await page.goto(`${server.endpoint}/console/secret/replicate?region=${region}&name=${encodeURIComponent(`${prefix}/a`)}`);
    assert.match(await page.textContent('#replica-region-0 option[value="us-east-1"]'), /US East \(N\. Virginia\)/);
  });
});

describe('9: KMS keys page and key picker', () => {
  test('create a key with an alias, pick it for a secret, disable and enable it, add an alias', async () => {
    const alias = `alias/${uniqueName('orders')}`;
    await page.goto(`${server.endpoint}/console/secrets?region=${PRIMARY}`);
    await page.click('#nav-keys');
    await page.waitForURL(`**/console/keys?region=${PRIMARY}`);
    await page.fill('#key-alias', alias);
    await page.fill('#key-description', 'Orders secrets');
    await page.click('#create-key-button');
    await page.waitForURL('**/console/keys?**');
    assert.match(await flash(), new RegExp(`Created the key ${alias}`));
    const row = page.locator('#keys tbody tr', { has: page.locator(`code.alias:text-is("${alias}")`) });
    assert.equal(await row.getAttribute('data-state'), 'Enabled');
    const keyId = (await row.getAttribute('id')).slice('key-'.length);

    // The picker of "Store a new secret" offers it.
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    assert.equal(await page.getAttribute('#kms_key', 'list'), `keys-${PRIMARY}`);
    const offered = () => page.$$eval(`#keys-${PRIMARY} option`, (os) => os.map((o) => o.value));
    assert.ok((await offered()).includes(alias), `${alias} offered`);
    const name = uniqueName('under-cmk');
    await page.fill('#pair-key-1', 'k');
    await page.fill('#pair-value-1', 'v');
    await page.fill('#kms_key', alias);
    await page.fill('#name', name);
    await page.click('#store');
    await page.waitForURL('**/console/secret?**');
    const described = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
    assert.ok([alias, keyId].some((k) => described.KmsKeyId.includes(k)), described.KmsKeyId);
    assert.equal((await server.api(PRIMARY, 'GetSecretValue', { SecretId: name })).SecretString, '{"k":"v"}');

    // Disable: the key is no longer offered, and the secret cannot be read; enable again.
    await page.goto(`${server.endpoint}/console/keys?region=${PRIMARY}`);
    await row.locator('button:has-text("Disable")').click();
    await page.waitForURL('**/console/keys?**');
    assert.equal(await row.getAttribute('data-state'), 'Disabled');
    await assert.rejects(server.api(PRIMARY, 'GetSecretValue', { SecretId: name }));
    await page.goto(`${server.endpoint}/console/secrets/new?region=${PRIMARY}`);
    assert.ok(!(await offered()).includes(alias), 'a disabled key is not offered');
    await page.goto(`${server.endpoint}/console/keys?region=${PRIMARY}`);
    await row.locator('button:has-text("Enable")').click();
    await page.waitForURL('**/console/keys?**');
    assert.equal(await row.getAttribute('data-state'), 'Enabled');
    assert.equal((await server.api(PRIMARY, 'GetSecretValue', { SecretId: name })).SecretString, '{"k":"v"}');

    // A second alias.
    await row.locator('summary:has-text("Add alias")').click();
    await row.locator('input[name="alias"]').fill(`${alias}-2`);
    await row.locator('button:has-text("Add")').click();
    await page.waitForURL('**/console/keys?**');
    assert.equal(await page.locator(`#key-${keyId} code.alias`).count(), 2);
    await screenshot(page, 'encryption-keys', { fullPage: true });

    // A replica row offers the keys of the Region chosen in it.
    await page.goto(`${server.endpoint}/console/secret/replicate?region=${PRIMARY}&name=${encodeURIComponent(name)}`);
    await page.selectOption('#replica-region-0', 'us-east-1');
    assert.equal(await page.getAttribute('#replica-key-0', 'list'), 'keys-us-east-1');
    assert.ok(await page.$('datalist#keys-us-east-1'));
  });
});
