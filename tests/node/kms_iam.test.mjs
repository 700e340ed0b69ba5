// KMS key rotation, UpdateKeyDescription, GenerateRandom, AWS's KMS error shape, and IAM user
// tags, through the AWS SDK for JavaScript v3 (issue 20).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyRotationCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  GenerateRandomCommand,
  GetKeyRotationStatusCommand,
  KMSClient,
  ListKeyRotationsCommand,
  RotateKeyOnDemandCommand,
  UpdateKeyDescriptionCommand,
} from '@aws-sdk/client-kms';
import {
  CreateUserCommand,
  GetUserCommand,
  IAMClient,
  ListUserTagsCommand,
  TagUserCommand,
  UntagUserCommand,
} from '@aws-sdk/client-iam';

import { rejectsWith, startServer, uniqueName } from './server.mjs';

let server;
let kms;
let iam;

before(async () => {
  server = await startServer();
  kms = server.serviceClient(KMSClient);
  iam = server.serviceClient(IAMClient);
});

after(async () => {
  await server?.stop();
});

const MATERIAL_ID = /^[0-9a-f]{64}$/;

describe('KMS', () => {
  test('rotation on demand changes the material; what was encrypted before still decrypts', async () => {
    const { KeyMetadata: key } = await kms.send(new CreateKeyCommand({ Description: 'js rotation' }));
    assert.match(key.CurrentKeyMaterialId, MATERIAL_ID);
    const { CiphertextBlob } = await kms.send(
      new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('before') }),
    );
    const rotated = await kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId }));
    assert.equal(rotated.KeyId, key.Arn);
    const { KeyMetadata: after } = await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }));
    assert.notEqual(after.CurrentKeyMaterialId, key.CurrentKeyMaterialId);
    const opened = await kms.send(new DecryptCommand({ CiphertextBlob }));
    assert.equal(Buffer.from(opened.Plaintext).toString(), 'before');
    assert.equal(opened.KeyMaterialId, key.CurrentKeyMaterialId);
    const { Rotations } = await kms.send(new ListKeyRotationsCommand({ KeyId: key.KeyId }));
    assert.deepEqual(
      Rotations.map((r) => [r.KeyId, r.KeyMaterialId, r.RotationType]),
      [[key.Arn, after.CurrentKeyMaterialId, 'ON_DEMAND']],
    );
    assert.ok(Rotations[0].RotationDate instanceof Date);
  });

  test('automatic rotation is enabled with a period and disabled', async () => {
    const { KeyMetadata: key } = await kms.send(new CreateKeyCommand({}));
    let status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }));
    assert.equal(status.KeyRotationEnabled, false);
    await kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId, RotationPeriodInDays: 180 }));
    status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }));
    assert.equal(status.KeyRotationEnabled, true);
    assert.equal(status.RotationPeriodInDays, 180);
    const days = (status.NextRotationDate.getTime() - Date.now()) / 86_400_000;
    assert.ok(Math.abs(days - 180) < 0.01, `${days}`);
    await kms.send(new DisableKeyRotationCommand({ KeyId: key.KeyId }));
    status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }));
    assert.equal(status.KeyRotationEnabled, false);
    assert.equal(status.NextRotationDate, undefined);
  });

  test('UpdateKeyDescription replaces the description', async () => {
    const { KeyMetadata: key } = await kms.send(new CreateKeyCommand({ Description: 'old' }));
    await kms.send(new UpdateKeyDescriptionCommand({ KeyId: key.Arn, Description: 'new' }));
    const { KeyMetadata: now } = await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }));
    assert.equal(now.Description, 'new');
  });

  test('GenerateRandom gives the bytes asked for, and AWS validation otherwise', async () => {
    const { Plaintext } = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 100 }));
    assert.equal(Plaintext.length, 100);
    const err = await rejectsWith(kms.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })), 'ValidationException');
    assert.equal(
      err.message,
      "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024",
    );
  });

  test('KMS errors carry their text where the SDK reads it', async () => {
    const { KeyMetadata: mine } = await kms.send(new CreateKeyCommand({}));
    const missing = '11111111-2222-3333-4444-555555555555';
    const err = await rejectsWith(kms.send(new DescribeKeyCommand({ KeyId: missing })), 'NotFoundException');
    assert.equal(err.message, `Key 'arn:aws:kms:us-east-1:${mine.AWSAccountId}:key/${missing}' does not exist`);
    const invalid = await rejectsWith(kms.send(new DescribeKeyCommand({ KeyId: 'fake-key-id' })), 'NotFoundException');
    assert.equal(invalid.message, "Invalid keyId 'fake-key-id'");
    const tags = await rejectsWith(
      kms.send(new CreateKeyCommand({ Tags: [{ TagKey: 'AWS:key1', TagValue: 'v' }] })),
      'TagException',
    );
    assert.equal(tags.message, 'Tags beginning with aws: are reserved');
  });
});

describe('IAM user tags', () => {
  test('CreateUser keeps its tags; TagUser, UntagUser and ListUserTags change and list them', async () => {
    const name = uniqueName('jsuser');
    const { User } = await iam.send(new CreateUserCommand({ UserName: name, Tags: [{ Key: 'team', Value: 'js' }] }));
    assert.deepEqual(User.Tags, [{ Key: 'team', Value: 'js' }]);
    await iam.send(new TagUserCommand({ UserName: name, Tags: [{ Key: 'env', Value: 'test' }] }));
    let listed = await iam.send(new ListUserTagsCommand({ UserName: name }));
    assert.deepEqual(listed.Tags, [
      { Key: 'env', Value: 'test' },
      { Key: 'team', Value: 'js' },
    ]);
    assert.equal(listed.IsTruncated, false);
    await iam.send(new UntagUserCommand({ UserName: name, TagKeys: ['team'] }));
    const got = await iam.send(new GetUserCommand({ UserName: name }));
    assert.deepEqual(got.User.Tags, [{ Key: 'env', Value: 'test' }]);
    const err = await rejectsWith(
      iam.send(new TagUserCommand({ UserName: name, Tags: [{ Key: 'k', Value: '1' }, { Key: 'K', Value: '2' }] })),
      'InvalidInputException',
    );
    assert.equal(err.message, 'Duplicate tag keys found. Please note that Tag keys are case insensitive.');
  });
});
