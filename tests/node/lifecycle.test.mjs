// Deletion and restore, tags, resource policies and GetRandomPassword.
// Spec: /work/shared/docs/aws-api-spec.md §4.10–§4.14.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  CreateSecretCommand,
  DeleteResourcePolicyCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetRandomPasswordCommand,
  GetResourcePolicyCommand,
  GetSecretValueCommand,
  InvalidParameterException,
  ListSecretsCommand,
  MalformedPolicyDocumentException,
  PublicPolicyException,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  TagResourceCommand,
  UntagResourceCommand,
  ValidateResourcePolicyCommand,
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

const DAY = 86_400_000;
const NOT_FOUND = "Secrets Manager can't find the specified secret.";

async function create(input = {}) {
  return sm.send(new CreateSecretCommand({ Name: uniqueName(), SecretString: 'value', ...input }));
}

async function listedNames(input) {
  const out = await sm.send(new ListSecretsCommand(input));
  return out.SecretList;
}

function assertNear(date, expectedMs, toleranceMs, what) {
  assert.ok(date instanceof Date, `${what} is a Date`);
  assert.ok(
    Math.abs(date.getTime() - expectedMs) <= toleranceMs,
    `${what} ${date.toISOString()} should be near ${new Date(expectedMs).toISOString()}`,
  );
}

describe('DeleteSecret and RestoreSecret', () => {
  test('a 7-day recovery window schedules deletion; RestoreSecret brings the secret back', async () => {
    const c = await create({ SecretString: 'precious' });
    const t0 = Date.now();
    const del = await sm.send(new DeleteSecretCommand({ SecretId: c.ARN, RecoveryWindowInDays: 7 }));
    assert.equal(del.ARN, c.ARN);
    assert.equal(del.Name, c.Name);
    assertNear(del.DeletionDate, t0 + 7 * DAY, 60_000, 'DeletionDate');

    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.ok(d.DeletedDate instanceof Date, 'DescribeSecret shows DeletedDate');

    const hidden = await listedNames({ Filters: [{ Key: 'name', Values: [c.Name] }] });
    assert.deepEqual(hidden, [], 'ListSecrets hides secrets scheduled for deletion');
    const shown = await listedNames({ IncludePlannedDeletion: true, Filters: [{ Key: 'name', Values: [c.Name] }] });
    assert.equal(shown.length, 1);
    assert.ok(shown[0].DeletedDate instanceof Date, 'listed with DeletedDate');

    const restored = await sm.send(new RestoreSecretCommand({ SecretId: c.Name }));
    assert.equal(restored.ARN, c.ARN);
    assert.equal(restored.Name, c.Name);
    const after = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(after.DeletedDate, undefined);
    const got = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    assert.equal(got.SecretString, 'precious');
    assert.equal((await listedNames({ Filters: [{ Key: 'name', Values: [c.Name] }] })).length, 1);
  });

  test('the default recovery window is 30 days', async () => {
    const c = await create();
    const t0 = Date.now();
    const del = await sm.send(new DeleteSecretCommand({ SecretId: c.ARN }));
    assertNear(del.DeletionDate, t0 + 30 * DAY, 60_000, 'DeletionDate');
  });

  test('ForceDeleteWithoutRecovery removes the secret at once and frees its name', async () => {
    const c = await create();
    const t0 = Date.now();
    const del = await sm.send(new DeleteSecretCommand({ SecretId: c.Name, ForceDeleteWithoutRecovery: true }));
    assert.equal(del.ARN, c.ARN);
    assert.equal(del.Name, c.Name);
    assertNear(del.DeletionDate, t0, 60_000, 'DeletionDate');
    const err = await rejectsWith(sm.send(new DescribeSecretCommand({ SecretId: c.Name })), 'ResourceNotFoundException');
    assert.equal(err.message, NOT_FOUND);
    const again = await sm.send(new CreateSecretCommand({ Name: c.Name, SecretString: 'reborn' }));
    assert.notEqual(again.ARN, c.ARN, 're-creating a name gives a new ARN suffix');
    await rejectsWith(sm.send(new GetSecretValueCommand({ SecretId: c.ARN })), 'ResourceNotFoundException');
  });

  test('force-deleting a secret already scheduled for deletion succeeds', async () => {
    const c = await create();
    await sm.send(new DeleteSecretCommand({ SecretId: c.ARN, RecoveryWindowInDays: 10 }));
    const del = await sm.send(new DeleteSecretCommand({ SecretId: c.ARN, ForceDeleteWithoutRecovery: true }));
    assert.equal(del.Name, c.Name);
    await rejectsWith(sm.send(new DescribeSecretCommand({ SecretId: c.ARN })), 'ResourceNotFoundException');
  });

  test('force-deleting a secret that does not exist succeeds and echoes the name', async () => {
    const name = uniqueName('never');
    const del = await sm.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));
    assert.equal(del.$metadata.httpStatusCode, 200);
    assert.equal(del.Name, name);
    assert.ok(del.DeletionDate instanceof Date);
  });

  test('deleting a secret that does not exist without force is a ResourceNotFoundException', async () => {
    const err = await rejectsWith(
      sm.send(new DeleteSecretCommand({ SecretId: uniqueName('never'), RecoveryWindowInDays: 7 })),
      'ResourceNotFoundException',
    );
    assert.equal(err.message, NOT_FOUND);
  });

  test('ForceDeleteWithoutRecovery=false together with a window is accepted', async () => {
    const c = await create();
    const del = await sm.send(
      new DeleteSecretCommand({ SecretId: c.ARN, RecoveryWindowInDays: 7, ForceDeleteWithoutRecovery: false }),
    );
    assert.ok(del.DeletionDate instanceof Date);
  });

  test('a recovery window outside 7–30 days or combined with force is an InvalidParameterException', async () => {
    const c = await create();
    for (const input of [
      { RecoveryWindowInDays: 6 },
      { RecoveryWindowInDays: 31 },
      { RecoveryWindowInDays: 7, ForceDeleteWithoutRecovery: true },
    ]) {
      const err = await rejectsWith(
        sm.send(new DeleteSecretCommand({ SecretId: c.ARN, ...input })),
        'InvalidParameterException',
      );
      assert.ok(err instanceof InvalidParameterException, JSON.stringify(input));
      assert.equal(err.$metadata.httpStatusCode, 400);
    }
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.equal(d.DeletedDate, undefined, 'the rejected calls deleted nothing');
  });
});

describe('TagResource and UntagResource', () => {
  test('tags merge, overwrite by key, and leave Tags: [] once all are removed', async () => {
    const c = await create({ Tags: [{ Key: 'env', Value: 'dev' }] });
    const t = await sm.send(
      new TagResourceCommand({
        SecretId: c.ARN,
        Tags: [
          { Key: 'team', Value: 'core' },
          { Key: 'env', Value: 'prod' },
          { Key: 'Env', Value: 'case-sensitive' },
        ],
      }),
    );
    assert.equal(t.$metadata.httpStatusCode, 200);
    let d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    const byKey = Object.fromEntries(d.Tags.map((x) => [x.Key, x.Value]));
    assert.deepEqual(byKey, { env: 'prod', team: 'core', Env: 'case-sensitive' });
    assert.equal(d.Tags.length, 3);

    const u = await sm.send(new UntagResourceCommand({ SecretId: c.Name, TagKeys: ['env', 'not-there'] }));
    assert.equal(u.$metadata.httpStatusCode, 200);
    d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.deepEqual(
      Object.fromEntries(d.Tags.map((x) => [x.Key, x.Value])),
      { team: 'core', Env: 'case-sensitive' },
    );

    await sm.send(new UntagResourceCommand({ SecretId: c.ARN, TagKeys: ['team', 'Env'] }));
    d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.deepEqual(d.Tags, []);
  });

  test('an empty tag value is kept', async () => {
    const c = await create();
    await sm.send(new TagResourceCommand({ SecretId: c.ARN, Tags: [{ Key: 'flag', Value: '' }] }));
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    assert.deepEqual(d.Tags, [{ Key: 'flag', Value: '' }]);
  });
});

describe('resource policies', () => {
  const accountPolicy = (account) =>
    JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${account}:root` },
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
        },
      ],
    });
  const publicPolicy = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: '*', Action: 'secretsmanager:GetSecretValue', Resource: '*' }],
  });

  test('put, get and delete a policy', async () => {
    const c = await create();
    const account = c.ARN.split(':')[4];
    const none = await sm.send(new GetResourcePolicyCommand({ SecretId: c.ARN }));
    assert.equal(none.ARN, c.ARN);
    assert.equal(none.Name, c.Name);
    assert.equal(none.ResourcePolicy, undefined, 'no policy attached yet');

    const policy = accountPolicy(account);
    const put = await sm.send(new PutResourcePolicyCommand({ SecretId: c.ARN, ResourcePolicy: policy }));
    assert.equal(put.ARN, c.ARN);
    assert.equal(put.Name, c.Name);

    const got = await sm.send(new GetResourcePolicyCommand({ SecretId: c.Name }));
    assert.equal(typeof got.ResourcePolicy, 'string');
    assert.deepEqual(JSON.parse(got.ResourcePolicy), JSON.parse(policy));

    const del = await sm.send(new DeleteResourcePolicyCommand({ SecretId: c.ARN }));
    assert.equal(del.ARN, c.ARN);
    assert.equal(del.Name, c.Name);
    const gone = await sm.send(new GetResourcePolicyCommand({ SecretId: c.ARN }));
    assert.equal(gone.ResourcePolicy, undefined);
  });

  test('ValidateResourcePolicy passes a valid policy with an empty ValidationErrors list', async () => {
    const c = await create();
    const out = await sm.send(
      new ValidateResourcePolicyCommand({ ResourcePolicy: accountPolicy(c.ARN.split(':')[4]) }),
    );
    assert.equal(out.PolicyValidationPassed, true);
    assert.deepEqual(out.ValidationErrors, []);
    const withId = await sm.send(
      new ValidateResourcePolicyCommand({ SecretId: c.ARN, ResourcePolicy: accountPolicy(c.ARN.split(':')[4]) }),
    );
    assert.equal(withId.PolicyValidationPassed, true);
  });

  test('a malformed policy document is a MalformedPolicyDocumentException', async () => {
    const c = await create();
    const err = await rejectsWith(
      sm.send(new PutResourcePolicyCommand({ SecretId: c.ARN, ResourcePolicy: '{"Version": "2012-10-17", "Statement": ' })),
      'MalformedPolicyDocumentException',
    );
    assert.ok(err instanceof MalformedPolicyDocumentException);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });

  test('BlockPublicPolicy refuses a policy open to everyone with a PublicPolicyException', async () => {
    const c = await create();
    const err = await rejectsWith(
      sm.send(new PutResourcePolicyCommand({ SecretId: c.ARN, ResourcePolicy: publicPolicy, BlockPublicPolicy: true })),
      'PublicPolicyException',
    );
    assert.ok(err instanceof PublicPolicyException);
    assert.equal(err.$metadata.httpStatusCode, 400);
    const got = await sm.send(new GetResourcePolicyCommand({ SecretId: c.ARN }));
    assert.equal(got.ResourcePolicy, undefined, 'the refused policy was not stored');
  });

  test('a public policy is accepted when BlockPublicPolicy is not set', async () => {
    const c = await create();
    await sm.send(new PutResourcePolicyCommand({ SecretId: c.ARN, ResourcePolicy: publicPolicy }));
    const got = await sm.send(new GetResourcePolicyCommand({ SecretId: c.ARN }));
    assert.deepEqual(JSON.parse(got.ResourcePolicy), JSON.parse(publicPolicy));
  });
});

describe('GetRandomPassword', () => {
  const UPPER = /[A-Z]/;
  const LOWER = /[a-z]/;
  const DIGIT = /[0-9]/;
  const PUNCT = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;
  const ALLOWED = /^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]*$/;

  test('the default is 32 characters with every character type', async () => {
    for (let i = 0; i < 5; i++) {
      const { RandomPassword: p } = await sm.send(new GetRandomPasswordCommand({}));
      assert.equal(p.length, 32);
      assert.match(p, ALLOWED);
      for (const re of [UPPER, LOWER, DIGIT, PUNCT]) assert.match(p, re);
      assert.ok(!p.includes(' '), 'no space unless IncludeSpace');
    }
  });

  test('a 120-character password never contains excluded characters', async () => {
    const excluded = 'xyzDje@?!.';
    const { RandomPassword: p } = await sm.send(
      new GetRandomPasswordCommand({ PasswordLength: 120, ExcludeCharacters: excluded }),
    );
    assert.equal(p.length, 120);
    for (const ch of excluded) assert.ok(!p.includes(ch), `contains ${ch}`);
  });

  test('excluding punctuation and numbers leaves letters only', async () => {
    const { RandomPassword: p } = await sm.send(
      new GetRandomPasswordCommand({ PasswordLength: 64, ExcludePunctuation: true, ExcludeNumbers: true }),
    );
    assert.match(p, /^[A-Za-z]{64}$/);
    assert.match(p, UPPER);
    assert.match(p, LOWER);
  });

  test('two passwords differ', async () => {
    const a = await sm.send(new GetRandomPasswordCommand({ PasswordLength: 40 }));
    const b = await sm.send(new GetRandomPasswordCommand({ PasswordLength: 40 }));
    assert.notEqual(a.RandomPassword, b.RandomPassword);
  });

  test('a length above 4096 is a ValidationException', async () => {
    const err = await rejectsWith(
      sm.send(new GetRandomPasswordCommand({ PasswordLength: 4097 })),
      'ValidationException',
    );
    assert.match(err.message, /passwordLength/);
  });

  test('a length too short for the required types is an InvalidParameterException', async () => {
    await rejectsWith(
      sm.send(new GetRandomPasswordCommand({ PasswordLength: 3 })),
      'InvalidParameterException',
    );
  });
});

test('PutSecretValue after RestoreSecret works again', async () => {
  const c = await create();
  await sm.send(new DeleteSecretCommand({ SecretId: c.ARN, RecoveryWindowInDays: 7 }));
  await rejectsWith(
    sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'blocked' })),
    'InvalidRequestException',
  );
  await sm.send(new RestoreSecretCommand({ SecretId: c.ARN }));
  const p = await sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: 'allowed' }));
  assert.deepEqual(p.VersionStages, ['AWSCURRENT']);
});
