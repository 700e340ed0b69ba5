// Wire-level behaviour as the JavaScript SDK sees it: response headers, size limits,
// concurrent requests over keep-alive connections, and the aggregated client.
// Spec: /work/shared/docs/aws-api-spec.md §1.2, §1.3, §3.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  SecretsManager,
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

/** A client that records the raw HTTP response of its last call. */
function recordingClient() {
  const client = server.client('us-east-1');
  const seen = { response: undefined };
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const result = await next(args);
        seen.response = result.response;
        return result;
      } catch (err) {
        seen.response = err.$response;
        throw err;
      }
    },
    { step: 'deserialize', priority: 'low', name: 'recordResponse' },
  );
  return { client, seen };
}

describe('response headers', () => {
  test('a success carries the JSON 1.1 content type, a request id and a Date header', async () => {
    const { client, seen } = recordingClient();
    const out = await client.send(new CreateSecretCommand({ Name: uniqueName(), SecretString: 'x' }));
    const h = seen.response.headers;
    assert.equal(seen.response.statusCode, 200);
    assert.match(h['content-type'], /^application\/x-amz-json-1\.1/);
    assert.equal(h['x-amzn-requestid'], out.$metadata.requestId);
    assert.ok(h.date, 'Date header present');
    const skew = Math.abs(new Date(h.date).getTime() - Date.now());
    assert.ok(skew < 60_000, `Date header ${h.date} is about now`);
  });

  test('an error carries x-amzn-ErrorType, the JSON content type and a request id', async () => {
    const { client, seen } = recordingClient();
    const err = await rejectsWith(
      client.send(new GetSecretValueCommand({ SecretId: uniqueName('missing') })),
      'ResourceNotFoundException',
    );
    const h = seen.response.headers;
    assert.equal(seen.response.statusCode, 400);
    assert.match(h['x-amzn-errortype'] ?? '', /^ResourceNotFoundException/);
    assert.match(h['content-type'], /^application\/x-amz-json-1\.1/);
    assert.equal(h['x-amzn-requestid'], err.$metadata.requestId);
  });
});

describe('value size limits', () => {
  test('a 65536-byte binary value is accepted and round-trips', async () => {
    const bytes = new Uint8Array(65_536);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
    const name = uniqueName('big');
    await sm.send(new CreateSecretCommand({ Name: name, SecretBinary: bytes }));
    const got = await sm.send(new GetSecretValueCommand({ SecretId: name }));
    assert.equal(got.SecretBinary.length, 65_536);
    assert.ok(Buffer.from(got.SecretBinary).equals(Buffer.from(bytes)));
  });

  test('a 65536-character string value is accepted; one more is a ValidationException', async () => {
    const name = uniqueName('big');
    await sm.send(new CreateSecretCommand({ Name: name, SecretString: 's'.repeat(65_536) }));
    assert.equal((await sm.send(new GetSecretValueCommand({ SecretId: name }))).SecretString.length, 65_536);
    await rejectsWith(
      sm.send(new PutSecretValueCommand({ SecretId: name, SecretString: 's'.repeat(65_537) })),
      'ValidationException',
    );
  });

  test('a 65537-byte binary value is a ValidationException', async () => {
    await rejectsWith(
      sm.send(new CreateSecretCommand({ Name: uniqueName('big'), SecretBinary: new Uint8Array(65_537) })),
      'ValidationException',
    );
  });
});

describe('concurrency', () => {
  test('fifty concurrent creates and reads all succeed', async () => {
    const names = Array.from({ length: 50 }, () => uniqueName('par'));
    await Promise.all(names.map((n, i) => sm.send(new CreateSecretCommand({ Name: n, SecretString: `v${i}` }))));
    const values = await Promise.all(names.map((n) => sm.send(new GetSecretValueCommand({ SecretId: n }))));
    assert.deepEqual(
      values.map((v) => v.SecretString),
      names.map((_, i) => `v${i}`),
    );
  });

  test('concurrent puts on one secret leave exactly one AWSCURRENT and one AWSPREVIOUS', async () => {
    const c = await sm.send(new CreateSecretCommand({ Name: uniqueName('race'), SecretString: 'v0' }));
    const puts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sm.send(new PutSecretValueCommand({ SecretId: c.ARN, SecretString: `v${i + 1}` })),
      ),
    );
    assert.equal(new Set(puts.map((p) => p.VersionId)).size, 20);
    const d = await sm.send(new DescribeSecretCommand({ SecretId: c.ARN }));
    const labels = Object.values(d.VersionIdsToStages).flat();
    assert.equal(labels.filter((l) => l === 'AWSCURRENT').length, 1);
    assert.equal(labels.filter((l) => l === 'AWSPREVIOUS').length, 1);
    const all = await sm.send(new ListSecretVersionIdsCommand({ SecretId: c.ARN, IncludeDeprecated: true }));
    assert.equal(all.Versions.length, 21);
    const current = await sm.send(new GetSecretValueCommand({ SecretId: c.ARN }));
    assert.deepEqual(d.VersionIdsToStages[current.VersionId], ['AWSCURRENT']);
  });
});

test('the aggregated SecretsManager client works like the command client', async () => {
  const client = new SecretsManager({
    endpoint: server.endpoint,
    region: 'eu-west-1',
    credentials: server.credentials,
  });
  try {
    const name = uniqueName('agg');
    const c = await client.createSecret({ Name: name, SecretString: 'aggregated' });
    assert.match(c.ARN, /^arn:aws:secretsmanager:eu-west-1:/);
    const got = await client.getSecretValue({ SecretId: name });
    assert.equal(got.SecretString, 'aggregated');
  } finally {
    client.destroy();
  }
});
