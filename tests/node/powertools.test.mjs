// Powertools for AWS Lambda (TypeScript) `parameters`, unmodified, against a real Coffer server
// (issue 18 §5): getSecret with transforms and its cache, and a provider given Coffer's client.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { SecretsProvider, getSecret } from '@aws-lambda-powertools/parameters/secrets';

import { startServer, uniqueName } from './server.mjs';

let server;
let sm;

before(async () => {
  server = await startServer();
  sm = server.client('us-east-1');
});

after(async () => {
  await server?.stop();
});

test('SecretsProvider with a Coffer client gets, transforms and caches a secret', async () => {
  const name = uniqueName('powertools');
  await sm.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ host: 'db', port: 5432 }) }));
  const provider = new SecretsProvider({ awsSdkV3Client: server.client('us-east-1') });
  assert.equal(await provider.get(name), JSON.stringify({ host: 'db', port: 5432 }));
  assert.deepEqual(await provider.get(name, { transform: 'json', forceFetch: true }), { host: 'db', port: 5432 });
  await sm.send(new PutSecretValueCommand({ SecretId: name, SecretString: JSON.stringify({ host: 'db2', port: 5432 }) }));
  // Cached for maxAge (5 s by default); fresh with forceFetch.
  assert.equal((await provider.get(name, { transform: 'json' })).host, 'db');
  assert.equal((await provider.get(name, { transform: 'json', forceFetch: true })).host, 'db2');
});

test('getSecret reaches Coffer through AWS_ENDPOINT_URL, as a Lambda function configures it', async () => {
  const name = uniqueName('powertools-env');
  await sm.send(new CreateSecretCommand({ Name: name, SecretString: 'plain value' }));
  process.env.AWS_ENDPOINT_URL = server.endpoint;
  process.env.AWS_ACCESS_KEY_ID = server.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = server.credentials.secretAccessKey;
  process.env.AWS_REGION = 'us-east-1';
  assert.equal(await getSecret(name), 'plain value');
});
