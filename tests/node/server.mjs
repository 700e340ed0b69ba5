// Starts one Coffer server for a test file and builds SDK clients pointed at it.
//
// Contract: `coffer serve --listen 127.0.0.1:0 --data-dir DIR` prints
//   export AWS_SHARED_CREDENTIALS_FILE=DIR/aws/credentials AWS_CONFIG_FILE=DIR/aws/config
//   listening on http://127.0.0.1:PORT
// on stdout. The access key is read from the INI credentials file (profile `default`) and
// passed to the client explicitly, together with the endpoint and the Region.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const STARTUP_TIMEOUT_MS = 30_000;

export function cofferBin() {
  const bin = process.env.COFFER_BIN || join(repoRoot, 'target', 'debug', 'coffer');
  if (!existsSync(bin)) {
    throw new Error(
      `Coffer binary not found at ${bin}: build it with 'cargo build -p coffer' or set COFFER_BIN`,
    );
  }
  return bin;
}

/** Parses the `[default]` profile of an INI credentials file. */
export function parseCredentials(text, profile = 'default') {
  let current = null;
  const out = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = line.match(/^\[(.+)\]$/);
    if (section) {
      current = section[1].trim();
      continue;
    }
    const eq = line.indexOf('=');
    if (current === profile && eq > 0) {
      out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
  }
  if (!out.aws_access_key_id || !out.aws_secret_access_key) {
    throw new Error(`credentials file has no complete [${profile}] profile:\n${text}`);
  }
  return { accessKeyId: out.aws_access_key_id, secretAccessKey: out.aws_secret_access_key };
}

/**
 * Starts a server on a free port in a fresh temporary data directory (`extraArgs` are added to
 * `coffer serve`'s, e.g. `['--tls', 'auto']`).
 * Returns { endpoint, credentials, client(region, overrides), stop() }.
 */
export async function startServer(extraArgs = []) {
  const bin = cofferBin();
  const tmp = await mkdtemp(join(tmpdir(), 'coffer-node-'));
  const dataDir = join(tmp, 'data');
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdout.setEncoding('utf8');

  const endpoint = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      fail(new Error(`server did not print its address within ${STARTUP_TIMEOUT_MS} ms`));
    }, STARTUP_TIMEOUT_MS);
    function fail(err) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      err.message += `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
      reject(err);
    }
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      fail(new Error(`server exited early (code ${code}, signal ${signal})`));
    });
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/^listening on (https?:\/\/127\.0\.0\.1:\d+)\s*$/m);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeListener('error', fail);
        resolvePromise(m[1]);
      }
    });
  });

  const exportLine = stdout.match(/^export AWS_SHARED_CREDENTIALS_FILE=(\S+) AWS_CONFIG_FILE=(\S+)\s*$/m);
  if (!exportLine) {
    child.kill('SIGKILL');
    throw new Error(`server did not print the export line first; stdout:\n${stdout}`);
  }
  const credentialsFile = exportLine[1];
  const credentials = parseCredentials(await readFile(credentialsFile, 'utf8'));

  const clients = [];
  const exited = new Promise((r) => child.once('exit', r));

  return {
    endpoint,
    credentials,
    dataDir,
    serverLog: () => stderr,
    /** A client for `region` (default us-east-1); `overrides` are merged into the config. */
    client(region = 'us-east-1', overrides = {}) {
      return this.serviceClient(SecretsManagerClient, region, overrides);
    },
    /** A client of another service Coffer serves (`KMSClient`, `IAMClient`), same settings. */
    serviceClient(Client, region = 'us-east-1', overrides = {}) {
      const c = new Client({
        endpoint,
        region,
        credentials,
        maxAttempts: 1,
        ...overrides,
      });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** A fresh secret name with a readable prefix. */
export function uniqueName(prefix = 'js') {
  return `${prefix}-${randomUUID()}`;
}

/** Awaits `promise`, expecting it to reject; returns the error for further assertions. */
export async function rejectsWith(promise, name) {
  try {
    await promise;
  } catch (err) {
    if (err?.name !== name) {
      const e = new Error(
        `expected ${name}, got ${err?.name}: ${err?.message} (HTTP ${err?.$metadata?.httpStatusCode})`,
      );
      e.cause = err;
      throw e;
    }
    return err;
  }
  throw new Error(`expected the call to fail with ${name}, but it succeeded`);
}
