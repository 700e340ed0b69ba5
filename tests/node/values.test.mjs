// Secret values, versions and staging labels through the AWS SDK for JavaScript v3.
// Spec: /work/shared/docs/aws-api-spec.md §2, §4.1–§4.9.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  BatchGetSecretValueCommand,
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  InvalidParameterException,
  InvalidRequestException,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerServiceException,
  UpdateSecretCommand,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';

import { rejectsWith, startServer, uniqueName } from './server.mjs';

let server;
let sm;

before(async () => {
  server = await startServer();
  sm = server.client('us-east-1');
});

after(async () => {
  await server?.stop();
});

const NOT_FOUND = "Secrets Manager can't find the specified secret.";
const ARN_RE = (region, name) =>
  new RegExp(
    `^arn:aws:secretsmanager:${region}:\\d{12}:secret:${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[A-Za-z0-9]{6}$`,
  );

function assertDate(value, what) {
  assert.ok(value instanceof Date, `${what} should be a Date, got ${typeof value}: ${value}`);
  assert.ok(!Number.isNaN(value.getTime()), `${what} should be a valid Date`);
}

async function create(input) {
  return sm.send(new CreateSecretCommand({ Name: uniqueName(), ...input }));
}

async function stages(secretId) {
  const d = await sm.send(new DescribeSecretCommand({ SecretId: secretId }));
  return d.VersionIdsToStages ?? {};
}

function sorted(list) {
  return [...(list ?? [])].sort();
}

describe('CreateSecret and GetSecretValue', () => {
  test('a string secret round-trips with its version, label and creation date', async () => {
    const name = uniqueName();
    const started = Date.now();
    const created = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'hunter2 ✓ ünïcode' }));
    assert.equal(created.$metadata.httpStatusCode, 200);
    assert.equal(created.Name, name);
    assert.match(created.ARN, ARN_RE('us-east-1', name));
    assert.match(created.VersionId, /^[0-9a-f-]{36}$/, 'the SDK fills ClientRequestToken with a UUID');
    assert.ok(created.$metadata.requestId, 'x-amzn-RequestId is copied into $metadata');

    const got = await sm.send(new GetSecretValueCommand({ SecretId: name }));
    assert.equal(got.SecretString, 'hunter2 ✓ ünïcode');
    assert.equal(got.SecretBinary, undefined);
    assert.equal(got.ARN, created.ARN);
    assert.equal(got.Name, name);
    assert.equal(got.VersionId, created.VersionId);
    assert.deepEqual(got.VersionStages, ['AWSCURRENT']);
    assertDate(got.CreatedDate, 'CreatedDate');
    assert.ok(Math.abs(got.CreatedDate.getTime() - started) < 60_000, 'CreatedDate is about now');
  });

  test('the secret can be addressed by its full ARN and by a partial ARN', async () => {
    const name = uniqueName('arn');
    const created = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'by-arn' }));
    const full = await sm.send(new GetSecretValueCommand({ SecretId: created.ARN }));
    assert.equal(full.SecretString, 'by-arn');
    const partial = created.ARN.slice(0, -7);
    const byPartial = await sm.send(new GetSecretValueCommand({ SecretId: partial }));
    assert.equal(byPartial.SecretString, 'by-arn');
    assert.equal(byPartial.ARN, created.ARN);
  });

  test('partial ARNs resolve names with hyphens; a name ending in -xxxxxx needs its full ARN', async () => {
    const base = uniqueName('Valid/_+=.@-Name');
    for (const name of [`${base}-a1b2`, `${base}-a1b2c3-`, `s-${base.slice(-8)}`]) {
      const c = await sm.send(new CreateSecretCommand({ Name: name, SecretString: name }));
      const partial = c.ARN.slice(0, -7);
      assert.ok(partial.endsWith(`:secret:${name}`));
      const got = await sm.send(new GetSecretValueCommand({ SecretId: partial }));
      assert.equal(got.SecretString, name, `partial ARN of ${name}`);
    }
    const tricky = `${uniqueName('Invalid/_+=.@-Name')}-a1b2c3`;
    const c = await sm.send(new CreateSecretCommand({ Name: tricky, SecretString: 'x' }));
    const err = await rejectsWith(
      sm.send(new GetSecretValueCommand({ SecretId: c.ARN.slice(0, -7) })),
      'ResourceNotFoundException',
    );
    assert.equal(err.message, NOT_FOUND);
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }))).SecretString, 'x');
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: tricky }))).SecretString, 'x');
  });

  test('a binary secret with all 256 byte values round-trips as a Uint8Array', async () => {
    const bytes = new Uint8Array(256);
    for (let i = 0; i < 256; i++) bytes[i] = i;
    const name = uniqueName('bin');
    const created = await sm.send(new CreateSecretCommand({ Name: name, SecretBinary: bytes }));
    const got = await sm.send(new GetSecretValueCommand({ SecretId: name }));
    assert.ok(got.SecretBinary instanceof Uint8Array, 'SecretBinary is a Uint8Array');
    assert.equal(got.SecretBinary.length, 256);
    assert.deepEqual(Buffer.from(got.SecretBinary), Buffer.from(bytes));
    assert.equal(got.SecretString, undefined);
    assert.equal(got.VersionId, created.VersionId);
  });

  test('a binary secret that is not valid UTF-8 and a Buffer input both round-trip', async () => {
    const buf = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x00]);
    const name = uniqueName('bin');
    await sm.send(new CreateSecretCommand({ Name: name, SecretBinary: buf }));
    const got = await sm.send(new GetSecretValueCommand({ SecretId: name }));
    assert.deepEqual(Buffer.from(got.SecretBinary), buf);
  });

  test('an explicit ClientRequestToken becomes the VersionId', async () => {
    const token = `EXAMPLE1-90ab-cdef-fedc-${randomUUID()}`.slice(0, 64);
    const created = await create({ SecretString: 'v', ClientRequestToken: token });
    assert.equal(created.VersionId, token);
    const got = await sm.send(new GetSecretValueCommand({ SecretId: created.ARN, VersionId: token }));
    assert.equal(got.VersionId, token);
  });

  test('a secret created without a value has no version until the first PutSecretValue', async () => {
    const created = await create({ Description: 'empty at first' });
    assert.equal(created.VersionId, undefined, 'no VersionId without a value');
    const d = await sm.send(new DescribeSecretCommand({ SecretId: created.ARN }));
    assert.equal(d.VersionIdsToStages, undefined);
    const err = await rejectsWith(
      sm.send(new GetSecretValueCommand({ SecretId: created.ARN })),
      'ResourceNotFoundException',
    );
    assert.equal(err.message, "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT");
    const put = await sm.send(
      new PutSecretValueCommand({ SecretId: created.ARN, SecretString: 'first' }),
    );
    assert.deepEqual(put.VersionStages, ['AWSCURRENT']);
    const got = await sm.send(new GetSecretValueCommand({ SecretId: created.ARN }));
    assert.equal(got.SecretString, 'first');
  });

  test('GetSecretValue reports an unknown VersionId and a stage not on the version', async () => {
    const created = await create({ SecretString: 'x' });
    const missing = randomUUID();
    const e1 = await rejectsWith(
      sm.send(new GetSecretValueCommand({ SecretId: created.ARN, VersionId: missing })),
      'ResourceNotFoundException',
    );
    assert.equal(e1.message, `Secrets Manager can't find the specified secret value for VersionId: ${missing}`);
    const e2 = await rejectsWith(
      sm.send(new GetSecretValueCommand({ SecretId: created.ARN, VersionStage: 'AWSPREVIOUS' })),
      'ResourceNotFoundException',
    );
    assert.equal(e2.message, "Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS");
    const e3 = await rejectsWith(
      sm.send(
        new GetSecretValueCommand({ SecretId: created.ARN, VersionId: created.VersionId, VersionStage: 'AWSPREVIOUS' }),
      ),
      'InvalidRequestException',
    );
    assert.ok(e3 instanceof InvalidRequestException);
    assert.equal(e3.message, 'You provided a VersionStage that is not associated to the provided VersionId.');
  });

  test('supplying both SecretString and SecretBinary is an InvalidParameterException', async () => {
    const err = await rejectsWith(
      sm.send(
        new CreateSecretCommand({ Name: uniqueName(), SecretString: 's', SecretBinary: new Uint8Array([1]) }),
      ),
      'InvalidParameterException',
    );
    assert.ok(err instanceof InvalidParameterException);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });
});

describe('PutSecretValue and staging labels', () => {
  test('each put moves AWSCURRENT to the new version and AWSPREVIOUS to the old one', async () => {
    const c = await create({ SecretString: 'one' });
    const v1 = c.VersionId;
    const p2 = await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'two' }));
    assert.equal(p2.ARN, c.ARN);
    assert.equal(p2.Name, c.Name);
    assert.deepEqual(p2.VersionStages, ['AWSCURRENT']);
    const v2 = p2.VersionId;
    assert.notEqual(v2, v1);
    assert.deepEqual(await stages(c.ARN), { [v1]: ['AWSPREVIOUS'], [v2]: ['AWSCURRENT'] });

    const p3 = await sm.send(new PutSecretValueCommand({ SecretId: c.Name, SecretString: 'three' }));
    const v3 = p3.VersionId;
    assert.deepEqual(await stages(c.ARN), { [v2]: ['AWSPREVIOUS'], [v3]: ['AWSCURRENT'] }, 'v1 is deprecated');

    const cur = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    assert.equal(cur.SecretString, 'three');
    const prev = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN, VersionStage: 'AWSPREVIOUS' }));
    assert.equal(prev.SecretString, 'two');
    assert.equal(prev.VersionId, v2);
    assert.deepEqual(prev.VersionStages, ['AWSPREVIOUS']);
    const old = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN, VersionId: v1 }));
    assert.equal(old.SecretString, 'one', 'a deprecated version is still readable by VersionId');
  });

  test('a binary put replaces a string value', async () => {
    const c = await create({ SecretString: 'text' });
    await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretBinary: new Uint8Array([0, 1, 2, 255]) }));
    const got = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    assert.equal(got.SecretString, undefined);
    assert.deepEqual([...got.SecretBinary], [0, 1, 2, 255]);
  });

  test('custom labels move between versions without touching AWSCURRENT', async () => {
    const c = await create({ SecretString: 'v1' });
    const v1 = c.VersionId;
    const p2 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', VersionStages: ['one', 'two', 'three'] }),
    );
    assert.deepEqual(sorted(p2.VersionStages), ['one', 'three', 'two']);
    const v2 = p2.VersionId;
    const p3 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v3', VersionStages: ['one', 'two', 'four'] }),
    );
    const v3 = p3.VersionId;
    const s = await stages(c.ARN);
    assert.deepEqual(sorted(s[v1]), ['AWSCURRENT']);
    assert.deepEqual(sorted(s[v2]), ['three']);
    assert.deepEqual(sorted(s[v3]), ['four', 'one', 'two']);
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }))).SecretString, 'v1');
    const byLabel = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN, VersionStage: 'three' }));
    assert.equal(byLabel.SecretString, 'v2');
  });

  test('a version whose custom labels all move away is deprecated', async () => {
    const c = await create({ SecretString: 'v1' });
    const p2 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', VersionStages: ['one', 'two', 'three'] }),
    );
    const p3 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v3', VersionStages: ['four', 'one', 'three', 'two'] }),
    );
    const s = await stages(c.ARN);
    assert.equal(s[p2.VersionId], undefined, 'v2 lost every label');
    assert.deepEqual(sorted(s[p3.VersionId]), ['four', 'one', 'three', 'two']);
    const listed = await sm.send(new ListSecretVersionIdsCommand({ SecretId: c.ARN }));
    assert.ok(!listed.Versions.some((v) => v.VersionId === p2.VersionId));
  });

  test('putting AWSPENDING while it sits on the current version moves only AWSPENDING', async () => {
    const c = await create({ SecretString: 'v1' });
    await sm.send(
      new UpdateSecretVersionStageCommand({ SecretId: c.ARN, VersionStage: 'AWSPENDING', MoveToVersionId: c.VersionId }),
    );
    assert.deepEqual(sorted((await stages(c.ARN))[c.VersionId]), ['AWSCURRENT', 'AWSPENDING']);
    const p = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'pending', VersionStages: ['AWSPENDING'] }),
    );
    assert.deepEqual(p.VersionStages, ['AWSPENDING']);
    assert.deepEqual(await stages(c.ARN), { [c.VersionId]: ['AWSCURRENT'], [p.VersionId]: ['AWSPENDING'] });
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }))).SecretString, 'v1');
    const pending = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN, VersionStage: 'AWSPENDING' }));
    assert.equal(pending.SecretString, 'pending');
  });

  test('VersionStages with AWSCURRENT plus a custom label demotes the old current version', async () => {
    const c = await create({ SecretString: 'v1' });
    const p2 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', VersionStages: ['AWSCURRENT', 'PUT0'] }),
    );
    assert.deepEqual(sorted(p2.VersionStages), ['AWSCURRENT', 'PUT0']);
    const s = await stages(c.ARN);
    assert.deepEqual(s[c.VersionId], ['AWSPREVIOUS']);
    assert.deepEqual(sorted(s[p2.VersionId]), ['AWSCURRENT', 'PUT0']);
  });
});

describe('UpdateSecret', () => {
  test('changing only the description creates no version and returns no VersionId', async () => {
    const c = await create({ SecretString: 'keep', Description: 'before' });
    const before = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    const u = await sm.send(new UpdateSecretCommand({ SecretId: c.ARN, Description: 'after' }));
    assert.equal(u.ARN, c.ARN);
    assert.equal(u.Name, c.Name);
    assert.equal(u.VersionId, undefined);
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.Description, 'after');
    assert.deepEqual(d.VersionIdsToStages, before.VersionIdsToStages);
    assert.ok(d.LastChangedDate.getTime() >= before.LastChangedDate.getTime());
  });

  test('UpdateSecret with only the SecretId is a no-op that keeps the description', async () => {
    const c = await create({ SecretString: 'keep', Description: 'stays' });
    const u = await sm.send(new UpdateSecretCommand({ SecretId: c.Name }));
    assert.equal(u.ARN, c.ARN);
    assert.equal(u.VersionId, undefined);
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.Description, 'stays');
  });

  test('a new value creates a version that becomes AWSCURRENT and bumps LastChangedDate', async () => {
    const c = await create({ SecretString: 'old' });
    const before = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    await new Promise((r) => setTimeout(r, 20));
    const u = await sm.send(new UpdateSecretCommand({ SecretId: c.ARN, SecretString: 'new', Description: 'd' }));
    assert.ok(u.VersionId);
    assert.notEqual(u.VersionId, c.VersionId);
    assert.deepEqual(await stages(c.ARN), { [c.VersionId]: ['AWSPREVIOUS'], [u.VersionId]: ['AWSCURRENT'] });
    const got = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    assert.equal(got.SecretString, 'new');
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.Description, 'd');
    assert.ok(d.LastChangedDate > before.LastChangedDate, 'LastChangedDate increases');
  });

  test('the same value with a fresh token is a new write', async () => {
    const c = await create({ SecretString: 'same' });
    const u = await sm.send(new UpdateSecretCommand({ SecretId: c.ARN, SecretString: 'same' }));
    assert.ok(u.VersionId);
    assert.notEqual(u.VersionId, c.VersionId);
  });
});

describe('idempotent ClientRequestToken replay', () => {
  test('CreateSecret replayed with the same token and value returns the original result', async () => {
    const name = uniqueName('idem');
    const token = randomUUID();
    const first = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: token }));
    const again = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'v', ClientRequestToken: token }));
    assert.equal(again.ARN, first.ARN);
    assert.equal(again.Name, name);
    assert.equal(again.VersionId, token);
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: name, SecretString: 'other', ClientRequestToken: token })),
      'ResourceExistsException',
    );
    assert.ok(err instanceof ResourceExistsException);
    assert.equal(
      err.message,
      `You can't use ClientRequestToken ${token} because that value is already in use for a version of secret ${first.ARN}.`,
    );
  });

  test('PutSecretValue replayed with the same token adds no version; a different value is refused', async () => {
    const c = await create({ SecretString: 'v1' });
    const token = randomUUID();
    const p = await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', ClientRequestToken: token }));
    assert.equal(p.VersionId, token);
    const again = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', ClientRequestToken: token }),
    );
    assert.equal(again.VersionId, token);
    assert.deepEqual(again.VersionStages, ['AWSCURRENT']);
    assert.deepEqual(await stages(c.ARN), { [c.VersionId]: ['AWSPREVIOUS'], [token]: ['AWSCURRENT'] });
    const all = await sm.send(new ListSecretVersionIdsCommand({ SecretId: c.ARN, IncludeDeprecated: true }));
    assert.equal(all.Versions.length, 2, 'the replay created no version');
    const err = await rejectsWith(
      sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v3', ClientRequestToken: token })),
      'ResourceExistsException',
    );
    assert.equal(
      err.message,
      `You can't use ClientRequestToken ${token} because that value is already in use for a version of secret ${c.ARN}.`,
    );
  });

  test('a binary PutSecretValue replay compares bytes', async () => {
    const c = await create({ SecretString: 'v1' });
    const token = randomUUID();
    const bytes = new Uint8Array([9, 8, 7, 0, 255]);
    await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretBinary: bytes, ClientRequestToken: token }));
    const again = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretBinary: Uint8Array.from(bytes), ClientRequestToken: token }),
    );
    assert.equal(again.VersionId, token);
    await rejectsWith(
      sm.send(
        new PutSecretValueCommand({ SecretId: c.ARN, SecretBinary: new Uint8Array([9, 8, 7, 0, 254]), ClientRequestToken: token }),
      ),
      'ResourceExistsException',
    );
  });

  test('UpdateSecret replayed with the same token and value returns that VersionId', async () => {
    const c = await create({ SecretString: 'v1' });
    const token = randomUUID();
    const u = await sm.send(new UpdateSecretCommand({ SecretId: c.ARN, SecretString: 'v2', ClientRequestToken: token }));
    assert.equal(u.VersionId, token);
    const again = await sm.send(
      new UpdateSecretCommand({ SecretId: c.ARN, SecretString: 'v2', ClientRequestToken: token }),
    );
    assert.equal(again.VersionId, token);
    await rejectsWith(
      sm.send(new UpdateSecretCommand({ SecretId: c.ARN, SecretString: 'v3', ClientRequestToken: token })),
      'ResourceExistsException',
    );
  });
});

describe('DescribeSecret', () => {
  test('dates are Date instances and members without a value are undefined', async () => {
    const c = await create({ SecretString: 'x', Description: 'described', Tags: [{ Key: 'team', Value: 'core' }] });
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.ARN, c.ARN);
    assert.equal(d.Name, c.Name);
    assert.equal(d.Description, 'described');
    assertDate(d.CreatedDate, 'CreatedDate');
    assertDate(d.LastChangedDate, 'LastChangedDate');
    assert.deepEqual(d.Tags, [{ Key: 'team', Value: 'core' }]);
    assert.deepEqual(d.VersionIdsToStages, { [c.VersionId]: ['AWSCURRENT'] });
    for (const absent of [
      'KmsKeyId',
      'RotationEnabled',
      'RotationLambdaARN',
      'RotationRules',
      'LastRotatedDate',
      'NextRotationDate',
      'LastAccessedDate',
      'DeletedDate',
      'OwningService',
      'PrimaryRegion',
      'ReplicationStatus',
    ]) {
      assert.equal(d[absent], undefined, `${absent} should be absent`);
      assert.ok(!(absent in d) || d[absent] === undefined);
    }
  });

  test('an empty description at creation is omitted, and so are Tags when never tagged', async () => {
    const c = await create({ SecretString: 'x', Description: '' });
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.Description, undefined);
    assert.equal(d.Tags, undefined);
  });

  test('LastAccessedDate appears after a read, at midnight UTC of the access day', async () => {
    const c = await create({ SecretString: 'x' });
    await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assertDate(d.LastAccessedDate, 'LastAccessedDate');
    const midnight = new Date();
    midnight.setUTCHours(0, 0, 0, 0);
    // Tolerate a test run that crosses midnight.
    assert.ok(
      d.LastAccessedDate.getTime() === midnight.getTime() ||
        d.LastAccessedDate.getTime() === midnight.getTime() - 86_400_000,
      `LastAccessedDate ${d.LastAccessedDate.toISOString()} is midnight UTC today`,
    );
    await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    const d2 = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d2.LastAccessedDate.getTime(), d.LastAccessedDate.getTime(), 'same-day reads give the same value');
  });
});

describe('ListSecretVersionIds', () => {
  test('lists labelled versions and, with IncludeDeprecated, the label-less ones without VersionStages', async () => {
    const c = await create({ SecretString: 'v1' });
    const v2 = (await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2' }))).VersionId;
    const v3 = (await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v3' }))).VersionId;
    await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));

    const listed = await sm.send(new ListSecretVersionIdsCommand({ SecretId: c.ARN }));
    assert.equal(listed.ARN, c.ARN);
    assert.equal(listed.Name, c.Name);
    const byId = Object.fromEntries(listed.Versions.map((v) => [v.VersionId, v]));
    assert.deepEqual(Object.keys(byId).sort(), [v2, v3].sort());
    assert.deepEqual(byId[v3].VersionStages, ['AWSCURRENT']);
    assert.deepEqual(byId[v2].VersionStages, ['AWSPREVIOUS']);
    for (const v of listed.Versions) {
      assertDate(v.CreatedDate, 'CreatedDate');
      assert.deepEqual(v.KmsKeyIds, ['DefaultEncryptionKey']);
    }
    assertDate(byId[v3].LastAccessedDate, 'LastAccessedDate of the read version');
    assert.equal(byId[v2].LastAccessedDate, undefined, 'a version never read has no LastAccessedDate');

    const all = await sm.send(new ListSecretVersionIdsCommand({ SecretId: c.ARN, IncludeDeprecated: true }));
    const allById = Object.fromEntries(all.Versions.map((v) => [v.VersionId, v]));
    assert.deepEqual(Object.keys(allById).sort(), [c.VersionId, v2, v3].sort());
    assert.equal(allById[c.VersionId].VersionStages, undefined, 'a deprecated version has no VersionStages');
    assertDate(allById[c.VersionId].CreatedDate, 'CreatedDate of the deprecated version');
  });

  test('an unknown secret is a ResourceNotFoundException', async () => {
    const err = await rejectsWith(
      sm.send(new ListSecretVersionIdsCommand({ SecretId: uniqueName('missing') })),
      'ResourceNotFoundException',
    );
    assert.equal(err.message, NOT_FOUND);
  });
});

describe('UpdateSecretVersionStage', () => {
  test('moving AWSCURRENT back puts AWSPREVIOUS on the version it left', async () => {
    const c = await create({ SecretString: 'v1' });
    const v1 = c.VersionId;
    const v2 = (await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2' }))).VersionId;
    const out = await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: c.ARN,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: v1,
        RemoveFromVersionId: v2,
      }),
    );
    assert.equal(out.ARN, c.ARN);
    assert.equal(out.Name, c.Name);
    assert.deepEqual(await stages(c.ARN), { [v1]: ['AWSCURRENT'], [v2]: ['AWSPREVIOUS'] });
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }))).SecretString, 'v1');
  });

  test('the target keeps its other labels and the source keeps its custom labels', async () => {
    const c = await create({ SecretString: 'v1' });
    const v1 = c.VersionId;
    const p2 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2', VersionStages: ['AWSCURRENT', 'PUT0'] }),
    );
    const v2 = p2.VersionId;
    const p3 = await sm.send(
      new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v3', VersionStages: ['AWSPENDING'] }),
    );
    const v3 = p3.VersionId;
    await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: c.Name,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: v3,
        RemoveFromVersionId: v2,
      }),
    );
    const s = await stages(c.ARN);
    assert.deepEqual(sorted(s[v3]), ['AWSCURRENT', 'AWSPENDING']);
    assert.deepEqual(sorted(s[v2]), ['AWSPREVIOUS', 'PUT0']);
    assert.equal(s[v1], undefined, 'v1 lost AWSPREVIOUS and is deprecated');
  });

  test('a label can be attached to and removed from a version', async () => {
    const c = await create({ SecretString: 'v1' });
    await sm.send(
      new UpdateSecretVersionStageCommand({ SecretId: c.ARN, VersionStage: 'PENDING', MoveToVersionId: c.VersionId }),
    );
    assert.deepEqual(sorted((await stages(c.ARN))[c.VersionId]), ['AWSCURRENT', 'PENDING']);
    await sm.send(
      new UpdateSecretVersionStageCommand({ SecretId: c.ARN, VersionStage: 'PENDING', RemoveFromVersionId: c.VersionId }),
    );
    assert.deepEqual((await stages(c.ARN))[c.VersionId], ['AWSCURRENT']);
  });

  test('moving a label attached elsewhere without RemoveFromVersionId is an InvalidParameterException', async () => {
    const c = await create({ SecretString: 'v1' });
    const v2 = (await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'v2' }))).VersionId;
    const err = await rejectsWith(
      sm.send(new UpdateSecretVersionStageCommand({ SecretId: c.ARN, VersionStage: 'AWSCURRENT', MoveToVersionId: c.VersionId })),
      'InvalidParameterException',
    );
    assert.equal(err.$metadata.httpStatusCode, 400);
    assert.deepEqual((await stages(c.ARN))[v2], ['AWSCURRENT'], 'nothing moved');
  });
});

describe('BatchGetSecretValue', () => {
  test('returns the values it finds and an Errors entry for a missing id', async () => {
    const a = await create({ SecretString: 'alpha' });
    const b = await create({ SecretBinary: new Uint8Array([1, 2, 3]) });
    const missing = uniqueName('missing');
    const out = await sm.send(new BatchGetSecretValueCommand({ SecretIdList: [a.Name, b.ARN, missing] }));
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.SecretValues.length, 2);
    const byName = Object.fromEntries(out.SecretValues.map((v) => [v.Name, v]));
    assert.equal(byName[a.Name].SecretString, 'alpha');
    assert.equal(byName[a.Name].ARN, a.ARN);
    assert.equal(byName[a.Name].VersionId, a.VersionId);
    assert.deepEqual(byName[a.Name].VersionStages, ['AWSCURRENT']);
    assertDate(byName[a.Name].CreatedDate, 'CreatedDate');
    assert.ok(byName[b.Name].SecretBinary instanceof Uint8Array);
    assert.deepEqual([...byName[b.Name].SecretBinary], [1, 2, 3]);
    assert.deepEqual(out.Errors, [
      { SecretId: missing, ErrorCode: 'ResourceNotFoundException', Message: NOT_FOUND },
    ]);
  });

  test('Errors is an empty list when every id is found', async () => {
    const a = await create({ SecretString: 'one' });
    const out = await sm.send(new BatchGetSecretValueCommand({ SecretIdList: [a.ARN] }));
    assert.equal(out.SecretValues.length, 1);
    assert.deepEqual(out.Errors, []);
  });

  test('Filters select secrets by name prefix', async () => {
    const prefix = `batch-${randomUUID()}`;
    await create({ Name: `${prefix}-a`, SecretString: 'A' });
    await create({ Name: `${prefix}-b`, SecretString: 'B' });
    const out = await sm.send(new BatchGetSecretValueCommand({ Filters: [{ Key: 'name', Values: [prefix] }] }));
    assert.deepEqual(out.SecretValues.map((v) => v.SecretString).sort(), ['A', 'B']);
  });

  test('giving both SecretIdList and Filters is an InvalidParameterException', async () => {
    const a = await create({ SecretString: 'one' });
    const err = await rejectsWith(
      sm.send(new BatchGetSecretValueCommand({ SecretIdList: [a.ARN], Filters: [{ Key: 'name', Values: ['x'] }] })),
      'InvalidParameterException',
    );
    assert.ok(err instanceof SecretsManagerServiceException);
  });
});

test('typed exceptions are instances of the SDK classes with metadata', async () => {
  const err = await rejectsWith(
    sm.send(new GetSecretValueCommand({ SecretId: uniqueName('missing') })),
    'ResourceNotFoundException',
  );
  assert.ok(err instanceof ResourceNotFoundException);
  assert.ok(err instanceof SecretsManagerServiceException);
  assert.equal(err.message, NOT_FOUND);
  assert.equal(err.$fault, 'client');
  assert.equal(err.$metadata.httpStatusCode, 400);
  assert.ok(err.$metadata.requestId, 'x-amzn-RequestId on errors too');
});
