// The JS SDK over HTTPS with `coffer serve --tls auto`: the one line the server prints for
// Node.js (NODE_EXTRA_CA_CERTS) is all it needs (issue 14 §2). Node reads that variable only at
// start, so each check runs the SDK in a child process.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { startServer, uniqueName } from './server.mjs';

const run = promisify(execFile);
let server;

before(async () => {
  server = await startServer(['--tls', 'auto']);
});

after(async () => {
  await server?.stop();
});

// Creates a secret and reads it back with the SDK, in a fresh Node process with `env`.
const SCRIPT = `
import { SecretsManagerClient, CreateSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
const sm = new SecretsManagerClient({
  endpoint: process.env.ENDPOINT, region: 'us-east-1', maxAttempts: 1,
  credentials: { accessKeyId: process.env.KEY_ID, secretAccessKey: process.env.SECRET },
});
await sm.send(new CreateSecretCommand({ Name: process.env.NAME, SecretString: 'over TLS from Node' }));
const got = await sm.send(new GetSecretValueCommand({ SecretId: process.env.NAME }));
console.log(got.SecretString);
`;

function sdkInChild(extraEnv) {
  const env = { ...process.env, ...extraEnv };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return run(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env: {
      ...env,
      ENDPOINT: server.endpoint,
      KEY_ID: server.credentials.accessKeyId,
      SECRET: server.credentials.secretAccessKey,
      NAME: uniqueName('tls'),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    timeout: 60_000,
  });
}

test('the server serves https', () => {
  assert.match(server.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test('the JS SDK calls over HTTPS with NODE_EXTRA_CA_CERTS set to the generated CA', async () => {
  const ca = join(server.dataDir, 'tls', 'ca.pem');
  const { stdout } = await sdkInChild({ NODE_EXTRA_CA_CERTS: ca });
  assert.equal(stdout.trim(), 'over TLS from Node');
});

test('without the CA the JS SDK refuses the certificate', async () => {
  await assert.rejects(sdkInChild({ NODE_EXTRA_CA_CERTS: undefined }), (err) => {
    assert.match(err.stderr, /self[- ]signed|unable to (get|verify)|UNABLE_TO|certificate/i);
    return true;
  });
});
