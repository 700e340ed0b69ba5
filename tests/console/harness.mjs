// Starts a Coffer server with three Regions, a headless Debian chromium driven by
// playwright-core, and a minimal SigV4-signed API client to check what the console did.
//
// Server contract (as in tests/node/server.mjs): `coffer serve --listen 127.0.0.1:0
// --data-dir DIR` prints `export AWS_SHARED_CREDENTIALS_FILE=...` and `listening on URL`.

import { spawn } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const REGIONS = ['us-west-2', 'us-east-1', 'eu-west-1'];
const STARTUP_TIMEOUT_MS = 30_000;
const CHROMIUM = process.env.COFFER_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function cofferBin() {
  const bin = process.env.COFFER_BIN || join(repoRoot, 'target', 'debug', 'coffer');
  if (!existsSync(bin)) {
    throw new Error(`Coffer binary not found at ${bin}: run 'cargo build -p coffer' or set COFFER_BIN`);
  }
  return bin;
}

function parseCredentials(text) {
  const get = (key) => text.match(new RegExp(`^${key}\\s*=\\s*(\\S+)\\s*$`, 'm'))?.[1];
  const accessKeyId = get('aws_access_key_id');
  const secretAccessKey = get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) throw new Error(`no access key in credentials file:\n${text}`);
  return { accessKeyId, secretAccessKey };
}

/** Spawns `coffer serve` with `args`; resolves with the child, its endpoint and its output. */
async function launch(args) {
  const child = spawn(cofferBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    out.stderr += d;
  });
  const endpoint = await new Promise((resolvePromise, reject) => {
    const fail = (err) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      err.message += `\n--- stdout ---\n${out.stdout}\n--- stderr ---\n${out.stderr}`;
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error('server did not start in time')), STARTUP_TIMEOUT_MS);
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`server exited early (${code}, ${signal})`)));
    child.stdout.on('data', (d) => {
      out.stdout += d;
      // A server listening on every address is reached through loopback.
      const m = out.stdout.match(/^listening on http:\/\/(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)\s*$/m);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeListener('error', fail);
        resolvePromise(`http://127.0.0.1:${m[1]}`);
      }
    });
  });
  const exited = new Promise((r) => child.once('exit', r));
  return { child, endpoint, out, exited };
}

/** Stops a launched server (SIGTERM, then SIGKILL after 10 s). */
async function halt({ child, exited }) {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }
}

/**
 * Starts `coffer serve` on a free port (default on loopback) with REGIONS; `config` is the text
 * of a config file to pass with --config. `halt()` stops the server and `resume()` starts it
 * again on the same port and data directory (a restart, as a browser sees it).
 */
export async function startServer({ listen = '127.0.0.1:0', config } = {}) {
  const tmp = await mkdtemp(join(tmpdir(), 'coffer-console-'));
  const dataDir = join(tmp, 'data');
  const args = ['serve', '--listen', listen, '--data-dir', dataDir, '--regions', REGIONS.join(',')];
  if (config !== undefined) {
    const file = join(tmp, 'coffer.toml');
    await writeFile(file, config);
    args.push('--config', file);
  }
  let running = await launch(args);
  const { endpoint } = running;
  const file = running.out.stdout.match(/^export AWS_SHARED_CREDENTIALS_FILE=(\S+) /m)?.[1];
  const credentials = parseCredentials(await readFile(file, 'utf8'));
  let earlierLog = '';
  return {
    endpoint,
    credentials,
    dataDir,
    serverLog: () => earlierLog + running.out.stderr,
    api: (region, operation, body) => callApi(endpoint, credentials, region, operation, body),
    async halt() {
      await halt(running);
    },
    async resume() {
      earlierLog += running.out.stderr;
      const again = args.map((a) => (a === listen ? new URL(endpoint).host : a));
      running = await launch(again);
    },
    async stop() {
      await halt(running);
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/** One Secrets Manager call, SigV4-signed; throws an Error with `.code` on an AWS error. */
export async function callApi(endpoint, credentials, region, operation, body = {}) {
  const payload = JSON.stringify(body);
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const headers = {
    'content-type': 'application/x-amz-json-1.1',
    host: new URL(endpoint).host,
    'x-amz-date': amzDate,
    'x-amz-target': `secretsmanager.${operation}`,
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    'POST',
    '/',
    '',
    names.map((h) => `${h}:${headers[h]}\n`).join(''),
    names.join(';'),
    sha256(payload),
  ].join('\n');
  const scope = `${day}/${region}/secretsmanager/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${credentials.secretAccessKey}`, day);
  for (const part of [region, 'secretsmanager', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  delete headers.host;
  const response = await fetch(`${endpoint}/`, { method: 'POST', headers, body: payload });
  const json = await response.json();
  if (!response.ok) {
    const err = new Error(`${operation}: ${json.__type}: ${json.Message}`);
    err.code = json.__type;
    throw err;
  }
  return json;
}

/**
 * A fresh headless chromium profile: playwright-core drives Debian's chromium, with no browser
 * download. `javaScriptEnabled: false` gives a browser that shows what a user without
 * JavaScript sees.
 */
export async function startBrowser({ javaScriptEnabled = true } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package`);
  const profile = await mkdtemp(join(tmpdir(), 'coffer-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
    javaScriptEnabled,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Waits until `check()` returns a truthy value (polling); returns it. */
export async function eventually(check, { timeoutMs = 15_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const screenshotsOn = process.env.COFFER_SCREENSHOTS === '1';
const screenshotDir = join(repoRoot, 'docs', 'console');

/** With COFFER_SCREENSHOTS=1, saves a PNG of a page or an element under docs/console/. */
export async function screenshot(pageOrLocator, name, options = {}) {
  if (!screenshotsOn) return;
  await mkdir(screenshotDir, { recursive: true });
  await pageOrLocator.screenshot({
    path: join(screenshotDir, `${name}.png`),
    animations: 'disabled',
    ...options,
  });
}

export function uniqueName(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
