// The Regions page (docs/failover.md) in a real browser: the replication point of each link
// into a Region, and "Fail over from <Region>", which promotes every replica of that primary
// Region and shows the report; the API then sees standalone secrets.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { eventually, screenshot, startBrowser, startServer, uniqueName } from './harness.mjs';

const PRIMARY = 'us-west-2';
const REPLICA = 'us-east-1';
let server;
let browser;
let page;

before(async () => {
  server = await startServer();
  browser = await startBrowser();
  page = browser.page;
  page.on('pageerror', (err) => {
    throw new Error(`script error on ${page.url()}: ${err.message}`);
  });
  await page.goto(`${server.endpoint}/console/sign-in`);
  await page.fill('#access_key_id', server.credentials.accessKeyId);
  await page.fill('#secret_access_key', server.credentials.secretAccessKey);
  await page.click('button:has-text("Sign in")');
  await page.waitForURL('**/console/secrets?**');
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the Regions page shows each link and fails a Region over from its primary', async () => {
  const names = [uniqueName('dr/orders'), uniqueName('dr/billing')];
  for (const name of names) {
    await server.api(PRIMARY, 'CreateSecret', {
      Name: name,
      ClientRequestToken: randomUUID(),
      SecretString: `${name}-v1`,
      AddReplicaRegions: [{ Region: REPLICA }],
    });
  }
  for (const name of names) {
    await eventually(async () => {
      const d = await server.api(PRIMARY, 'DescribeSecret', { SecretId: name });
      return d.ReplicationStatus?.[0]?.Status === 'InSync';
    }, { what: `${name} InSync in ${REPLICA}` });
  }

  await page.click('#nav-regions');
  await page.waitForURL('**/console/regions?**');
  await page.goto(`${server.endpoint}/console/regions?region=${REPLICA}`);
  const row = page.locator(`#links tr[data-primary="${PRIMARY}"]`);
  assert.equal(await row.getAttribute('data-unapplied'), '0');
  assert.equal((await row.locator('td').first().textContent()).trim(), String(names.length));
  await screenshot(page, 'regions');

  await page.click(`#failover-${PRIMARY}`);
  await page.waitForURL('**/console/regions/failover?**');
  await page.click('#confirm');
  await page.waitForSelector('#failover-summary');
  assert.match(await page.textContent('#failover-summary'), new RegExp(`^Complete: ${names.length} promoted; 0 `));
  const statuses = await page.$$eval('#failover-secrets tbody tr', (rows) => rows.map((r) => r.dataset.status));
  assert.deepEqual(statuses, names.map(() => 'Promoted'));

  for (const name of names) {
    const promoted = await server.api(REPLICA, 'DescribeSecret', { SecretId: name });
    assert.equal(promoted.PrimaryRegion, undefined);
  }
  // The page now lists the failover, and no link from the old primary is left.
  await page.goto(`${server.endpoint}/console/regions?region=${REPLICA}`);
  assert.equal(await page.locator(`#links tr[data-primary="${PRIMARY}"]`).count(), 0);
  assert.match(await page.textContent('#failovers tbody tr'), new RegExp(`${PRIMARY}.*Complete`, 's'));
});
