// ListSecrets: entries, filters and pagination with the SDK paginators.
// Spec: /work/shared/docs/aws-api-spec.md §4.7, §4.4 (BatchGetSecretValue with Filters).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  CreateSecretCommand,
  InvalidNextTokenException,
  ListSecretsCommand,
  paginateBatchGetSecretValue,
  paginateListSecrets,
  paginateListSecretVersionIds,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';

import { rejectsWith, startServer } from './server.mjs';

let server;
let sm;
// A per-run prefix keeps these secrets apart from anything else in the server.
const run = `list-${randomUUID().slice(0, 8)}`;
const secrets = {};

// Each entry: key → CreateSecret input (Name is prefixed with `${run}/`).
const FIXTURES = {
  alpha: { Name: 'alpha/one', Description: 'a secret', Tags: [{ Key: 'team', Value: 'payments' }] },
  beta: { Name: 'alpha/two', Description: 'an secret', Tags: [{ Key: 'team', Value: 'platform' }] },
  gamma: { Name: 'beta/three', Description: 'asecret', Tags: [{ Key: 'owner', Value: 'alice' }] },
  delta: { Name: 'beta/four', Description: 'thesecret', Tags: [{ Key: 'Team', Value: 'Payments' }] },
  eps: { Name: 'gamma', Description: 'one then two' },
  zeta: { Name: 'SecretOne/COMPANYthings', Description: 'camel case' },
};

before(async () => {
  server = await startServer();
  sm = server.client('us-east-1');
  for (const [key, input] of Object.entries(FIXTURES)) {
    secrets[key] = await sm.send(
      new CreateSecretCommand({ ...input, Name: `${run}/${input.Name}`, SecretString: `value-of-${key}` }),
    );
    // Distinct creation times for the ordering checks.
    await new Promise((r) => setTimeout(r, 5));
  }
});

after(async () => {
  await server?.stop();
});

/** Names (without the run prefix) of every secret matching `filters`, in returned order. */
async function names(filters, extra = {}) {
  const out = [];
  for await (const page of paginateListSecrets(
    { client: sm, pageSize: 100 },
    { Filters: [{ Key: 'name', Values: [`${run}/`] }, ...filters], ...extra },
  )) {
    for (const s of page.SecretList) out.push(s.Name.slice(run.length + 1));
  }
  return out;
}

function sortedNames(list) {
  return [...list].sort();
}

describe('ListSecrets entries', () => {
  test('entries carry SecretVersionsToStages, Date fields and no absent members', async () => {
    const out = await sm.send(
      new ListSecretsCommand({ Filters: [{ Key: 'name', Values: [`${run}/alpha/one`] }] }),
    );
    assert.equal(out.SecretList.length, 1);
    assert.equal(out.NextToken, undefined);
    const e = out.SecretList[0];
    assert.equal(e.ARN, secrets.alpha.ARN);
    assert.equal(e.Name, secrets.alpha.Name);
    assert.equal(e.Description, 'a secret');
    assert.ok(e.CreatedDate instanceof Date);
    assert.ok(e.LastChangedDate instanceof Date);
    assert.deepEqual(e.SecretVersionsToStages, { [secrets.alpha.VersionId]: ['AWSCURRENT'] });
    assert.equal(e.VersionIdsToStages, undefined, 'ListSecrets uses SecretVersionsToStages');
    assert.deepEqual(e.Tags, [{ Key: 'team', Value: 'payments' }]);
    for (const absent of ['KmsKeyId', 'RotationEnabled', 'DeletedDate', 'PrimaryRegion', 'OwningService', 'LastAccessedDate']) {
      assert.equal(e[absent], undefined, `${absent} should be absent`);
    }
  });

  test('an unfiltered listing includes every secret created here', async () => {
    const all = [];
    for await (const page of paginateListSecrets({ client: sm, pageSize: 100 }, {})) {
      all.push(...page.SecretList.map((s) => s.ARN));
    }
    for (const s of Object.values(secrets)) assert.ok(all.includes(s.ARN), `${s.Name} listed`);
  });
});

describe('ListSecrets filters', () => {
  test('name is a case-sensitive prefix of the whole name', async () => {
    assert.deepEqual(sortedNames(await names([{ Key: 'name', Values: [`${run}/alpha`] }])), ['alpha/one', 'alpha/two']);
    assert.deepEqual(await names([{ Key: 'name', Values: [`${run}/ALPHA`] }]), []);
    assert.deepEqual(await names([{ Key: 'name', Values: ['one'] }]), [], 'not a substring match');
    assert.deepEqual(await names([{ Key: 'name', Values: [`${run}/alpha one`] }]), [], 'spaces are literal');
  });

  test('values within one filter are OR-ed', async () => {
    const got = await names([{ Key: 'name', Values: [`${run}/alpha/one`, `${run}/beta/four`] }]);
    assert.deepEqual(sortedNames(got), ['alpha/one', 'beta/four']);
  });

  test('a value starting with ! negates the filter', async () => {
    const got = await names([{ Key: 'name', Values: [`!${run}/beta`] }]);
    assert.deepEqual(sortedNames(got), ['SecretOne/COMPANYthings', 'alpha/one', 'alpha/two', 'gamma']);
  });

  test('description matches case-insensitive word prefixes', async () => {
    assert.deepEqual(sortedNames(await names([{ Key: 'description', Values: ['a'] }])), [
      'alpha/one',
      'alpha/two',
      'beta/three',
    ]);
    assert.deepEqual(sortedNames(await names([{ Key: 'description', Values: ['a secret'] }])), [
      'alpha/one',
      'alpha/two',
    ]);
    assert.deepEqual(sortedNames(await names([{ Key: 'description', Values: ['!a'] }])), [
      'SecretOne/COMPANYthings',
      'beta/four',
      'gamma',
    ]);
    assert.deepEqual(await names([{ Key: 'description', Values: ['O T'] }]), ['gamma']);
  });

  test('tag-key and tag-value are case-sensitive prefixes', async () => {
    assert.deepEqual(sortedNames(await names([{ Key: 'tag-key', Values: ['team'] }])), ['alpha/one', 'alpha/two']);
    assert.deepEqual(await names([{ Key: 'tag-key', Values: ['Team'] }]), ['beta/four']);
    assert.deepEqual(sortedNames(await names([{ Key: 'tag-value', Values: ['pa'] }])), ['alpha/one']);
    assert.deepEqual(sortedNames(await names([{ Key: 'tag-value', Values: ['p'] }])), ['alpha/one', 'alpha/two']);
  });

  test('several filters are AND-ed, even with the same key', async () => {
    assert.deepEqual(
      await names([
        { Key: 'tag-key', Values: ['team'] },
        { Key: 'description', Values: ['an'] },
      ]),
      ['alpha/two'],
    );
    assert.deepEqual(
      await names([
        { Key: 'name', Values: [`${run}/alpha`] },
        { Key: 'name', Values: [`${run}/alpha/t`] },
      ]),
      ['alpha/two'],
    );
  });

  test('the all filter searches names, descriptions and tags by word prefix', async () => {
    assert.deepEqual(sortedNames(await names([{ Key: 'all', Values: ['alice'] }])), ['beta/three']);
    assert.deepEqual(sortedNames(await names([{ Key: 'all', Values: ['PAYMENTS'] }])), ['alpha/one', 'beta/four']);
  });

  test('the all filter splits names on punctuation and case changes and ignores mid-word fragments', async () => {
    assert.deepEqual(await names([{ Key: 'all', Values: ['sec'] }]).then(sortedNames), [
      'SecretOne/COMPANYthings',
      'alpha/one',
      'alpha/two',
    ]);
    assert.deepEqual(await names([{ Key: 'all', Values: ['one'] }]).then(sortedNames), [
      'SecretOne/COMPANYthings',
      'alpha/one',
      'gamma',
    ]);
    assert.deepEqual(await names([{ Key: 'all', Values: ['compan'] }]), ['SecretOne/COMPANYthings']);
    assert.deepEqual(await names([{ Key: 'all', Values: ['ythings'] }]), ['SecretOne/COMPANYthings']);
    assert.deepEqual(await names([{ Key: 'all', Values: ['ret'] }]), []);
    assert.deepEqual(await names([{ Key: 'all', Values: ['pany'] }]), []);
    assert.deepEqual(await names([{ Key: 'all', Values: ['+'] }]), []);
  });

  test('an unknown filter key is a ValidationException', async () => {
    const err = await rejectsWith(
      sm.send(new ListSecretsCommand({ Filters: [{ Key: 'colour', Values: ['red'] }] })),
      'ValidationException',
    );
    assert.match(err.message, /filters\.1\.member\.key/);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });
});

describe('pagination', () => {
  test('paginateListSecrets walks more than one page with a small MaxResults', async () => {
    const pages = [];
    for await (const page of paginateListSecrets(
      { client: sm, pageSize: 2 },
      { Filters: [{ Key: 'name', Values: [`${run}/`] }] },
    )) {
      assert.ok(page.SecretList.length <= 2, 'a page holds at most MaxResults entries');
      pages.push(page);
    }
    assert.ok(pages.length >= 3, `6 secrets in pages of 2 take at least 3 pages, got ${pages.length}`);
    for (const p of pages.slice(0, -1)) assert.equal(typeof p.NextToken, 'string');
    assert.equal(pages.at(-1).NextToken, undefined, 'the last page has no NextToken');
    const arns = pages.flatMap((p) => p.SecretList.map((s) => s.ARN));
    assert.equal(new Set(arns).size, arns.length, 'no secret appears twice');
    assert.deepEqual([...arns].sort(), Object.values(secrets).map((s) => s.ARN).sort());
  });

  test('MaxResults=1 returns exactly one entry and a NextToken', async () => {
    const out = await sm.send(
      new ListSecretsCommand({ MaxResults: 1, Filters: [{ Key: 'name', Values: [`${run}/`] }] }),
    );
    assert.equal(out.SecretList.length, 1);
    assert.equal(typeof out.NextToken, 'string');
    const next = await sm.send(
      new ListSecretsCommand({
        MaxResults: 1,
        NextToken: out.NextToken,
        Filters: [{ Key: 'name', Values: [`${run}/`] }],
      }),
    );
    assert.equal(next.SecretList.length, 1);
    assert.notEqual(next.SecretList[0].ARN, out.SecretList[0].ARN);
  });

  test('SortOrder desc reverses the asc order', async () => {
    const asc = await names([], { SortOrder: 'asc' });
    const desc = await names([], { SortOrder: 'desc' });
    assert.equal(asc.length, 6);
    assert.deepEqual(desc, [...asc].reverse());
  });

  test('the default order is oldest first', async () => {
    assert.deepEqual(await names([]), [
      'alpha/one',
      'alpha/two',
      'beta/three',
      'beta/four',
      'gamma',
      'SecretOne/COMPANYthings',
    ]);
  });

  test('an invalid NextToken is an InvalidNextTokenException', async () => {
    const err = await rejectsWith(
      sm.send(new ListSecretsCommand({ NextToken: 'not-a-real-token' })),
      'InvalidNextTokenException',
    );
    assert.ok(err instanceof InvalidNextTokenException);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });

  test('paginateListSecretVersionIds walks the versions of one secret', async () => {
    const id = secrets.eps.ARN;
    for (let i = 0; i < 3; i++) {
      await sm.send(new PutSecretValueCommand({ SecretId: id, SecretString: `v${i}` }));
    }
    const seen = [];
    let pageCount = 0;
    for await (const page of paginateListSecretVersionIds(
      { client: sm, pageSize: 1 },
      { SecretId: id, IncludeDeprecated: true },
    )) {
      pageCount++;
      assert.ok(page.Versions.length <= 1);
      seen.push(...page.Versions.map((v) => v.VersionId));
    }
    assert.equal(new Set(seen).size, 4, 'the initial version plus three puts');
    assert.ok(pageCount >= 4);
  });

  test('paginateBatchGetSecretValue pages through filtered values', async () => {
    const values = [];
    let pageCount = 0;
    for await (const page of paginateBatchGetSecretValue(
      { client: sm, pageSize: 2 },
      { Filters: [{ Key: 'name', Values: [`${run}/alpha`, `${run}/beta`] }] },
    )) {
      pageCount++;
      assert.deepEqual(page.Errors ?? [], []);
      values.push(...page.SecretValues.map((v) => v.SecretString));
    }
    assert.ok(pageCount >= 2, `4 secrets in pages of 2, got ${pageCount} page(s)`);
    assert.deepEqual(values.sort(), ['value-of-alpha', 'value-of-beta', 'value-of-delta', 'value-of-gamma']);
  });
});
