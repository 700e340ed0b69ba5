// Error classes and messages, SigV4 rejections and Region isolation.
// Spec: /work/shared/docs/aws-api-spec.md §1.3, §1.6, §2.1, §3, §4 (common rules).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetResourcePolicyCommand,
  GetSecretValueCommand,
  InvalidRequestException,
  ListSecretsCommand,
  ListSecretVersionIdsCommand,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerServiceException,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateSecretCommand,
  UpdateSecretVersionStageCommand,
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

const NOT_FOUND = "Secrets Manager can't find the specified secret.";
const BAD_NAME =
  'Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!';
const MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion.";
const BAD_SIGNATURE =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::123456789012:root' },
      Action: 'secretsmanager:GetSecretValue',
      Resource: '*',
    },
  ],
});

// Every operation that takes a SecretId, as a function of that id.
const BY_SECRET_ID = {
  GetSecretValue: (id) => new GetSecretValueCommand({ SecretId: id }),
  DescribeSecret: (id) => new DescribeSecretCommand({ SecretId: id }),
  PutSecretValue: (id) => new PutSecretValueCommand({ SecretId: id, SecretString: 'v' }),
  UpdateSecret: (id) => new UpdateSecretCommand({ SecretId: id, Description: 'd' }),
  DeleteSecret: (id) => new DeleteSecretCommand({ SecretId: id }),
  ListSecretVersionIds: (id) => new ListSecretVersionIdsCommand({ SecretId: id }),
  TagResource: (id) => new TagResourceCommand({ SecretId: id, Tags: [{ Key: 'k', Value: 'v' }] }),
  UntagResource: (id) => new UntagResourceCommand({ SecretId: id, TagKeys: ['k'] }),
  GetResourcePolicy: (id) => new GetResourcePolicyCommand({ SecretId: id }),
  PutResourcePolicy: (id) => new PutResourcePolicyCommand({ SecretId: id, ResourcePolicy: POLICY }),
  UpdateSecretVersionStage: (id) =>
    new UpdateSecretVersionStageCommand({ SecretId: id, VersionStage: 'X', RemoveFromVersionId: 'a'.repeat(32) }),
};

describe('ResourceNotFoundException', () => {
  for (const [op, make] of Object.entries(BY_SECRET_ID)) {
    test(`${op} on a secret that does not exist says it can't find the secret`, async () => {
      const err = await rejectsWith(sm.send(make(uniqueName('missing'))), 'ResourceNotFoundException');
      assert.ok(err instanceof ResourceNotFoundException);
      assert.ok(err instanceof SecretsManagerServiceException);
      assert.equal(err.message, NOT_FOUND);
      assert.equal(err.$metadata.httpStatusCode, 400);
      assert.equal(err.$fault, 'client');
    });
  }

  test('a complete ARN with the wrong 6-character suffix is not found', async () => {
    const c = await sm.send(new CreateSecretCommand({ Name: uniqueName(), SecretString: 'x' }));
    const suffix = c.ARN.slice(-6);
    const other = suffix === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA';
    const err = await rejectsWith(
      sm.send(new GetSecretValueCommand({ SecretId: c.ARN.slice(0, -6) + other })),
      'ResourceNotFoundException',
    );
    assert.equal(err.message, NOT_FOUND);
  });
});

describe('ValidationException for invalid names', () => {
  const badNames = ['Inv Name', ' Inv*Name? ', ' Inv *?!]Name\\-'];
  const ops = {
    CreateSecret: (name) => new CreateSecretCommand({ Name: name, SecretString: 'x' }),
    DeleteSecretForce: (name) => new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }),
    DescribeSecret: BY_SECRET_ID.DescribeSecret,
    GetSecretValue: BY_SECRET_ID.GetSecretValue,
    ListSecretVersionIds: BY_SECRET_ID.ListSecretVersionIds,
    PutSecretValue: BY_SECRET_ID.PutSecretValue,
    TagResource: BY_SECRET_ID.TagResource,
    UntagResource: BY_SECRET_ID.UntagResource,
    UpdateSecret: BY_SECRET_ID.UpdateSecret,
    ValidateResourcePolicy: (name) => new ValidateResourcePolicyCommand({ SecretId: name, ResourcePolicy: POLICY }),
  };
  for (const [op, make] of Object.entries(ops)) {
    test(`${op} rejects names with spaces and wildcards with the exact AWS text`, async () => {
      for (const name of badNames) {
        const err = await rejectsWith(sm.send(make(name)), 'ValidationException');
        assert.equal(err.message, BAD_NAME, `name ${JSON.stringify(name)}`);
        assert.equal(err.$metadata.httpStatusCode, 400);
        assert.ok(err instanceof SecretsManagerServiceException);
      }
    });
  }

  test('a name longer than 512 characters violates the length constraint', async () => {
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: 'n'.repeat(513), SecretString: 'x' })),
      'ValidationException',
    );
    assert.match(err.message, /^1 validation error detected: Value '.*' at 'name' failed to satisfy constraint: Member must have length less than or equal to 512$/);
  });

  test('a ClientRequestToken shorter than 32 characters violates the length constraint', async () => {
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: uniqueName(), SecretString: 'x', ClientRequestToken: 'short' })),
      'ValidationException',
    );
    assert.match(
      err.message,
      /^1 validation error detected: Value 'short' at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32$/,
    );
  });

  test('ListSecrets MaxResults above 100 is a ValidationException naming maxResults', async () => {
    const err = await rejectsWith(sm.send(new ListSecretsCommand({ MaxResults: 101 })), 'ValidationException');
    assert.match(err.message, /^1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: /);
  });

  test('a secret value above 65536 characters is rejected without echoing the value', async () => {
    const big = 'z'.repeat(65_537);
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: uniqueName(), SecretString: big })),
      'ValidationException',
    );
    assert.ok(!err.message.includes('zzzz'), 'sensitive values are not echoed');
    assert.match(err.message, /secretString/);
  });

  test('names using every allowed punctuation character are accepted', async () => {
    const name = `${uniqueName('ok')}/_+=.@-`;
    const c = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'fine' }));
    assert.equal(c.Name, name);
    const got = await sm.send(new GetSecretValueCommand({ SecretId: name }));
    assert.equal(got.SecretString, 'fine');
  });
});

describe('ResourceExistsException', () => {
  test('creating a name that exists says the secret already exists', async () => {
    const name = uniqueName('dup');
    await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'x' }));
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: name, SecretString: 'y' })),
      'ResourceExistsException',
    );
    assert.ok(err instanceof ResourceExistsException);
    assert.equal(err.message, `The operation failed because the secret ${name} already exists.`);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });
});

describe('operations on a secret scheduled for deletion', () => {
  let arn;
  let name;
  before(async () => {
    name = uniqueName('deleted');
    const c = await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'x' }));
    arn = c.ARN;
    await sm.send(new DeleteSecretCommand({ SecretId: arn, RecoveryWindowInDays: 7 }));
  });

  for (const op of [
    'GetSecretValue',
    'PutSecretValue',
    'UpdateSecret',
    'TagResource',
    'UntagResource',
    'GetResourcePolicy',
    'PutResourcePolicy',
  ]) {
    test(`${op} is an InvalidRequestException saying it was marked for deletion`, async () => {
      const err = await rejectsWith(sm.send(BY_SECRET_ID[op](arn)), 'InvalidRequestException');
      assert.ok(err instanceof InvalidRequestException);
      assert.equal(err.message, MARKED_FOR_DELETION);
      assert.equal(err.$metadata.httpStatusCode, 400);
    });
  }

  test('DescribeSecret still works and shows DeletedDate', async () => {
    const d = await sm.send(new DescribeSecretCommand({ SecretId: name }));
    assert.ok(d.DeletedDate instanceof Date);
  });

  test('creating the same name again is refused while it is scheduled for deletion', async () => {
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: name, SecretString: 'again' })),
      'InvalidRequestException',
    );
    assert.equal(
      err.message,
      "You can't create this secret because a secret with this name is already scheduled for deletion.",
    );
  });
});

describe('SigV4 authentication', () => {
  test('the SDK signs x-amz-content-sha256 and the server accepts it', async () => {
    const client = server.client('us-east-1');
    let signed;
    client.middlewareStack.add(
      (next) => async (args) => {
        signed = { ...args.request.headers };
        return next(args);
      },
      { step: 'deserialize', priority: 'low', name: 'captureSignedRequest' },
    );
    const name = uniqueName('signed');
    await client.send(new CreateSecretCommand({ Name: name, SecretString: 'x' }));
    assert.ok(signed, 'the request was captured');
    assert.match(signed['x-amz-content-sha256'] ?? '', /^[0-9a-f]{64}$/);
    const auth = signed.authorization;
    assert.match(auth, /^AWS4-HMAC-SHA256 Credential=[A-Z0-9]+\/\d{8}\/us-east-1\/secretsmanager\/aws4_request, /);
    const signedHeaders = auth.match(/SignedHeaders=([^,]+)/)[1].split(';');
    for (const h of ['host', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-target', 'content-type']) {
      assert.ok(signedHeaders.includes(h), `${h} is signed (SignedHeaders=${signedHeaders.join(';')})`);
    }
  });

  test('a wrong secret access key is an InvalidSignatureException', async () => {
    const client = server.client('us-east-1', {
      credentials: { accessKeyId: server.credentials.accessKeyId, secretAccessKey: 'wrong' + server.credentials.secretAccessKey },
    });
    const err = await rejectsWith(client.send(new ListSecretsCommand({})), 'InvalidSignatureException');
    // AWS may append the canonical request and string to sign after the standard text.
    assert.ok(err.message.startsWith(BAD_SIGNATURE), err.message);
    assert.equal(err.$metadata.httpStatusCode, 400);
  });

  test('an unknown access key is an UnrecognizedClientException', async () => {
    const client = server.client('us-east-1', {
      credentials: { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: server.credentials.secretAccessKey },
    });
    const err = await rejectsWith(client.send(new ListSecretsCommand({})), 'UnrecognizedClientException');
    assert.equal(err.message, 'The security token included in the request is invalid.');
    assert.equal(err.$metadata.httpStatusCode, 400);
  });

  test('a Region the server does not host is an InvalidSignatureException naming the Region', async () => {
    const client = server.client('ap-south-1');
    const err = await rejectsWith(client.send(new ListSecretsCommand({})), 'InvalidSignatureException');
    assert.equal(err.message, "Credential should be scoped to a valid region, not 'ap-south-1'. ");
    assert.equal(err.$metadata.httpStatusCode, 400);
  });

  test('a clock 15 minutes slow is refused as an expired signature', async () => {
    const client = server.client('us-east-1', { systemClockOffset: -15 * 60 * 1000 });
    const err = await rejectsWith(client.send(new ListSecretsCommand({})), 'InvalidSignatureException');
    assert.match(err.message, /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/);
  });

  test('a clock 15 minutes slow is corrected from the Date header when the SDK may retry', async () => {
    const client = server.client('us-east-1', { systemClockOffset: -15 * 60 * 1000, maxAttempts: 3 });
    const out = await client.send(new ListSecretsCommand({ MaxResults: 1 }));
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.$metadata.attempts, 2, 'one refused attempt, then a corrected one');
    assert.ok(Math.abs(client.config.systemClockOffset) < 60_000, 'the SDK adopted the server clock');
  });
});

describe('Regions', () => {
  test('a secret created in us-east-1 is not visible in eu-west-1', async () => {
    const east = server.client('us-east-1');
    const west = server.client('eu-west-1');
    const name = uniqueName('regional');
    const c = await east.send(new CreateSecretCommand({ Name: name, SecretString: 'east' }));
    assert.match(c.ARN, /^arn:aws:secretsmanager:us-east-1:\d{12}:secret:/);

    const err = await rejectsWith(west.send(new GetSecretValueCommand({ SecretId: name })), 'ResourceNotFoundException');
    assert.equal(err.message, NOT_FOUND);
    await rejectsWith(west.send(new DescribeSecretCommand({ SecretId: name })), 'ResourceNotFoundException');
    const listed = await west.send(new ListSecretsCommand({ Filters: [{ Key: 'name', Values: [name] }] }));
    assert.deepEqual(listed.SecretList, []);
  });

  test('the same name can exist in two Regions with separate values and Region-specific ARNs', async () => {
    const east = server.client('us-east-1');
    const west = server.client('eu-west-1');
    const name = uniqueName('twice');
    const e = await east.send(new CreateSecretCommand({ Name: name, SecretString: 'east' }));
    const w = await west.send(new CreateSecretCommand({ Name: name, SecretString: 'west' }));
    assert.match(w.ARN, /^arn:aws:secretsmanager:eu-west-1:\d{12}:secret:/);
    assert.notEqual(w.ARN, e.ARN);
    assert.equal(e.ARN.split(':')[4], w.ARN.split(':')[4], 'same account');
    assert.equal((await east.send(new GetSecretValueCommand({ SecretId: name }))).SecretString, 'east');
    assert.equal((await west.send(new GetSecretValueCommand({ SecretId: name }))).SecretString, 'west');
    await west.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));
    assert.equal((await east.send(new GetSecretValueCommand({ SecretId: name }))).SecretString, 'east');
  });

  test('an ARN of another Region is not found', async () => {
    const east = server.client('us-east-1');
    const west = server.client('eu-west-1');
    const c = await east.send(new CreateSecretCommand({ Name: uniqueName('cross'), SecretString: 'east' }));
    await rejectsWith(west.send(new GetSecretValueCommand({ SecretId: c.ARN })), 'ResourceNotFoundException');
  });
});

describe("AWS's limits in bytes and tags", () => {
  test('a SecretString over 65,536 UTF-8 bytes is refused, though within 65,536 characters', async () => {
    const err = await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: uniqueName('bytes'), SecretString: 'é'.repeat(50_000) })),
      'ValidationException',
    );
    assert.equal(
      err.message,
      "1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536",
    );
  });

  test('a secret takes 50 tags and no more', async () => {
    const tags = (n, prefix) => Array.from({ length: n }, (_, i) => ({ Key: `${prefix}${i}`, Value: 'v' }));
    const name = uniqueName('tags');
    await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'v', Tags: tags(50, 'k') }));
    const err = await rejectsWith(
      sm.send(new TagResourceCommand({ SecretId: name, Tags: tags(1, 'more') })),
      'InvalidParameterException',
    );
    assert.equal(err.message, 'A secret can have at most 50 tags; this request would leave it with 51.');
  });
});
