// An API replica loads what the API needs and no more: no AWS SDK, no Kubernetes client, no
// controllers or providers, no certificate generator when its certificates are mounted, and no
// metrics library, YAML parser or Swagger UI before they are first used.
// Checked on the module graph a real `threeport server` process loads (recorded by a preload),
// which is deterministic where start-up time is not (bench/startup measures that). A controllers
// replica in the same test does load them, so the recorder is seen to work.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { ensurePki, type Pki } from '../../src/crypto/pki.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { readModuleRecord } from '../harness/module-recorder.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { freePort } from '../../src/system.js';
import { THREEPORT_BIN } from '../harness/server-process.js';
import { until } from '../harness/until.js';

const RECORDER = fileURLToPath(new URL('../harness/module-recorder.js', import.meta.url));
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** What an API replica must not load: [description, predicate on a module path]. */
const NOT_FOR_API: [string, (path: string) => boolean][] = [
  ['the AWS SDK', (p) => p.includes('/node_modules/@aws-sdk/')],
  ['the Kubernetes client', (p) => p.includes('/node_modules/@kubernetes/client-node/')],
  ['the controllers', (p) => p.startsWith(join(SRC, 'controllers/'))],
  ['the providers', (p) => p.startsWith(join(SRC, 'providers/'))],
  ['the certificate generator', (p) => p.includes('/node_modules/@peculiar/x509/')],
  // Loaded on first use: the metrics on the first scrape, the YAML parser on the first manifest, the
  // Swagger UI on the first page (bench/startup shows what each cost at start-up).
  ['prom-client', (p) => p.includes('/node_modules/prom-client/')],
  ['the YAML parser', (p) => p.includes('/node_modules/yaml/')],
  ['the Swagger UI', (p) => p.includes('/node_modules/@fastify/swagger-ui/') || p.includes('/node_modules/@fastify/static/')],
];

let pg: TestPostgres;
let dir: string;
let pki: Pki;
before(async () => {
  pg = await startTestPostgres();
  dir = mkdtempSync(join(tmpdir(), 'threeport-lean-'));
  pki = await ensurePki(join(dir, 'tls'));
});
after(async () => {
  await pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The status of GET `path` over mutual TLS (the API port) or plain HTTP (the metrics port); 0 when nothing answers. */
function get(port: number, path: string, tls: boolean): Promise<number> {
  return new Promise((resolve) => {
    const done = (res: http.IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = tls
      ? https.get({ host: '127.0.0.1', port, path, agent: false, ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }, done)
      : http.get({ host: '127.0.0.1', port, path, agent: false }, done);
    req.on('error', () => resolve(0));
  });
}

/** Starts `--role <role>` with the recorder, waits for /readyz (API or metrics port), stops it, returns the modules. */
async function modulesOf(role: 'api' | 'controllers'): Promise<string[]> {
  const record = join(dir, `modules-${role}`);
  const apiPort = await freePort();
  const metricsPort = await freePort();
  const child = spawn(
    process.execPath,
    ['--import', RECORDER, THREEPORT_BIN, 'server', '--role', role, '--port', String(apiPort), '--metrics-port', String(metricsPort),
      '--data-dir', join(dir, `data-${role}`), '--tls-dir', join(dir, 'tls'), '--no-listen'],
    {
      env: {
        ...process.env,
        THREEPORT_MODULE_RECORD: record,
        THREEPORT_DATABASE_URL: pg.url,
        ENCRYPTION_KEY: FieldCipher.generateKey(),
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_REGION: 'us-east-1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const outcome = await until(`--role ${role} /readyz`, async () => {
      if (child.exitCode !== null) return 'exited';
      const status = role === 'api' ? await get(apiPort, '/readyz', true) : await get(metricsPort, '/readyz', false);
      return status === 200 ? 'ready' : undefined;
    }, 120_000, 50);
    assert.equal(outcome, 'ready', `--role ${role} exited before /readyz: ${stderr}`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return readModuleRecord(readFileSync(record, 'utf8'));
}

test('--role api loads neither the AWS SDK, the Kubernetes client, the controllers, the certificate generator, prom-client, yaml nor the Swagger UI', async () => {
  const modules = await modulesOf('api');
  assert.ok(modules.some((p) => p.includes('/node_modules/fastify/')), 'the recorder saw the API server load fastify');
  for (const [what, matches] of NOT_FOR_API) {
    const loaded = modules.filter(matches);
    assert.deepEqual(loaded.slice(0, 5), [], `an API replica loaded ${what} (${loaded.length} modules)`);
  }
});

test('--role controllers does load the controllers, the AWS SDK, the Kubernetes client and prom-client (the recorder sees them)', async () => {
  const modules = await modulesOf('controllers');
  for (const [what, matches] of NOT_FOR_API.slice(0, 4).concat(NOT_FOR_API.slice(5, 6))) {
    assert.ok(modules.some(matches), `a controllers replica did not load ${what}`);
  }
});
