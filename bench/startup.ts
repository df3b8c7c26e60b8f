// Start-up of a `threeport server` replica: process spawn to the first 200 from
// /readyz, the CPU the process spent getting there, and its idle RSS, for
// `--role api` and `--role all` on an external PostgreSQL with the schema
// present and the certificates already in the TLS dir (as a pod has them from
// its Secret). "before" is another build of the project (by default `main`,
// built into the cache), run in the same rounds, interleaved, so both see the
// same machine load. Prints medians.
//
//   node dist/bench/startup.js [--rounds 5] [--before <ref>|<built tree>|none] [--idle-ms 3000]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import https from 'node:https';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ensurePki, type Pki } from '../src/crypto/pki.js';
import { FieldCipher } from '../src/crypto/field-encryption.js';
import { startTestPostgres } from '../test/harness/postgres.js';
import { freePort } from '../src/system.js';
import { median } from './lib/load.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const ROUNDS = Number(arg('rounds', '5'));
const IDLE_MS = Number(arg('idle-ms', '3000'));
const BEFORE = arg('before', 'main');

/** A built tree of `ref` (git archive + this tree's node_modules + tsc), cached by commit. */
function buildRef(ref: string): string | undefined {
  if (existsSync(join(ref, 'dist/src/bin/threeport.js'))) return resolve(ref);
  let sha: string;
  try {
    sha = execFileSync('git', ['-C', ROOT, 'rev-parse', ref], { encoding: 'utf8' }).trim();
  } catch {
    console.log(`before: ${ref} is neither a built tree nor a git ref; skipping the comparison`);
    return undefined;
  }
  const dir = join(process.env['THREEPORT_CACHE_DIR'] ?? join(homedir(), '.cache/threeport'), 'bench-startup', sha);
  if (!existsSync(join(dir, 'dist/src/bin/threeport.js'))) {
    console.log(`before: building ${ref} (${sha.slice(0, 10)}) into ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync('sh', ['-c', `git -C "${ROOT}" archive ${sha} | tar -x -C "${dir}"`]);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { stdio: 'inherit' });
  }
  return dir;
}

interface Sample {
  readyMs: number;
  cpuMs: number;
  rssMb: number;
  controllersMs?: number;
}

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime + stime
}
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

function readyz(port: number, pki: Pki): Promise<number> {
  return new Promise((res) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: '/readyz', ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, agent: false },
      (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      },
    );
    req.on('error', () => res(0));
  });
}

async function startOnce(tree: string, role: string, env: NodeJS.ProcessEnv, tlsDir: string, pki: Pki): Promise<Sample> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-startup-'));
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [join(tree, 'dist/src/bin/threeport.js'), 'server', '--role', role, '--port', String(port), '--data-dir', dataDir, '--tls-dir', tlsDir],
    { env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let controllersMs: number | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.includes('"controllers started"')) controllersMs = performance.now() - t0;
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    let readyMs = 0;
    let cpu = 0;
    for (const deadline = t0 + 120_000; ; ) {
      if (child.exitCode !== null) throw new Error(`${tree} --role ${role} exited with ${child.exitCode}`);
      if ((await readyz(port, pki)) === 200) {
        readyMs = performance.now() - t0;
        cpu = cpuMs(child.pid!);
        break;
      }
      if (performance.now() > deadline) throw new Error(`${tree} --role ${role}: no /readyz within 120 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Role all answers /readyz once the API listens; its idle RSS is taken after the controllers started too.
    while (role === 'all' && controllersMs === undefined) {
      if (child.exitCode !== null || performance.now() > t0 + 120_000) throw new Error(`${tree} --role all: controllers did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { readyMs, cpuMs: cpu, rssMb: rssMb(child.pid!), ...(controllersMs !== undefined ? { controllersMs } : {}) };
  } finally {
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const pg = await startTestPostgres();
const tlsDir = mkdtempSync(join(tmpdir(), 'threeport-bench-pki-'));
try {
  const pki = await ensurePki(tlsDir);
  const env = {
    ...process.env,
    THREEPORT_DATABASE_URL: pg.url,
    ENCRYPTION_KEY: FieldCipher.generateKey(),
    THREEPORT_LOG_LEVEL: 'warn',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
  };
  const trees: [string, string][] = [['after', ROOT]];
  const before = BEFORE === 'none' ? undefined : buildRef(BEFORE);
  if (before) trees.unshift(['before', before]);
  // The schema is present before any measured start: one start applies it.
  await startOnce(ROOT, 'api', env, tlsDir, pki);

  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const role of ['api', 'all']) {
      for (const [name, tree] of trees) {
        const s = await startOnce(tree, role, env, tlsDir, pki);
        const key = `${name} --role ${role}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
      }
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS} done (load average ${loadavg()[0]!.toFixed(1)})\n`);
  }
  const fmt = (xs: number[]) => (xs.length ? String(Math.round(median(xs))) : '-');
  console.log(`\nthreeport server start-up, medians of ${ROUNDS} interleaved runs; PostgreSQL ${pg.version} with the schema present; mTLS with certificates present`);
  console.log(`before: ${before ?? '(none)'}   after: ${ROOT}   node ${process.version}   load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(['build and role'.padEnd(24), 'spawn→/readyz ms', 'CPU ms to ready', `idle RSS MB (+${IDLE_MS / 1000}s after started)`, 'spawn→controllers started ms'].join('\t'));
  for (const [key, xs] of samples) {
    console.log(
      [
        key.padEnd(24),
        fmt(xs.map((s) => s.readyMs)).padStart(16),
        fmt(xs.map((s) => s.cpuMs)).padStart(15),
        fmt(xs.map((s) => s.rssMb)).padStart(20),
        fmt(xs.flatMap((s) => (s.controllersMs !== undefined ? [s.controllersMs] : []))).padStart(28),
      ].join('\t'),
    );
  }
} finally {
  await pg.stop();
  rmSync(tlsDir, { recursive: true, force: true });
}
