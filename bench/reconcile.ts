// Benchmark of the reconcile engine against a real PostgreSQL (the harness's
// throwaway PostgreSQL 15 on loopback), with controllers running as real
// `threeport server --role controllers` child processes:
//
// 1. Throughput: 10,000 queued objects of a kind whose reconciler does no I/O,
//    worked by 1 and by 2 controller processes; reconciles per second from the
//    moment the items are committed until the queue is empty.
// 2. Latency: a paced producer creates objects at a steady 100/s (one create
//    every 10 ms, open loop: it never waits for earlier creates) through the
//    store's create statement (the one the API runs); latency is from the start
//    of each create to the commit of its `Reconciled: true`, as reported by the
//    controller process.
//
// Runs are interleaved and repeated; medians are printed.
// Usage: node dist/bench/reconcile.js [--runs 3] [--objects 10000] [--rate 100] [--seconds 15] [--concurrency N]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KINDS } from '../src/kinds/index.js';
import { ControlPlaneDefinition } from '../src/kinds/control-plane.js';
import { validatePayload } from '../src/kinds/validate.js';
import { FieldCipher } from '../src/crypto/field-encryption.js';
import { Database } from '../src/store/database.js';
import { migrate } from '../src/store/migrate.js';
import { ObjectStore } from '../src/store/object-store.js';
import { NOTIFY_CHANNEL, QUEUE_TABLE, RESYNC_TABLE } from '../src/store/schema.js';
import { startTestPostgres } from '../test/harness/postgres.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const RUNS = arg('runs', 3);
const OBJECTS = arg('objects', 10_000);
const RATE = arg('rate', 100);
const SECONDS = arg('seconds', 15);
const CONCURRENCY = arg('concurrency', 0); // 0: the server's default
const here = fileURLToPath(new URL('.', import.meta.url));
const THREEPORT = join(here, '..', 'src', 'bin', 'threeport.js');
const RECONCILER = join(here, 'reconcile-noop.js');
const KEY = FieldCipher.generateKey();
const KIND = ControlPlaneDefinition;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Controller {
  child: ChildProcess;
  dir: string;
}

async function startController(url: string, report: boolean): Promise<Controller> {
  const dir = mkdtempSync(join(tmpdir(), 'threeport-bench-'));
  const args = [THREEPORT, 'server', '--role', 'controllers', '--database-url', url, '--data-dir', dir, '--no-auth'];
  args.push('--log-level', 'warn', '--resync-interval', '0');
  if (CONCURRENCY > 0) args.push('--reconcile-concurrency', String(CONCURRENCY));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, THREEPORT_TEST_RECONCILERS: RECONCILER, ENCRYPTION_KEY: KEY, BENCH_REPORT_SETTLED: report ? '1' : '0' },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('controller did not start within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`controller exited with ${code} before starting`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"controllers started"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { child, dir };
}

async function stopController(c: Controller): Promise<void> {
  if (c.child.exitCode === null) {
    const exited = new Promise((r) => c.child.once('exit', r));
    c.child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    if (c.child.exitCode === null) c.child.kill('SIGKILL');
  }
  rmSync(c.dir, { recursive: true, force: true });
}

async function reset(db: Database): Promise<void> {
  const tables = [...new Set(KINDS.map((k) => k.table))];
  await db.query(`TRUNCATE ${QUEUE_TABLE}, ${RESYNC_TABLE}, ${tables.join(', ')}`);
  await db.query('VACUUM ANALYZE');
}

async function throughput(db: Database, url: string, processes: number): Promise<number> {
  await reset(db);
  const controllers = await Promise.all(Array.from({ length: processes }, () => startController(url, false)));
  const counts = new Map<Controller, number>();
  let lastAt = 0;
  let finished: () => void = () => {};
  const done = new Promise<void>((resolve) => (finished = resolve));
  for (const c of controllers) {
    c.child.on('message', (m: { reconciled?: number }) => {
      if (typeof m.reconciled !== 'number') return;
      counts.set(c, m.reconciled);
      lastAt = performance.now();
      if ([...counts.values()].reduce((a, b) => a + b, 0) >= OBJECTS) finished();
    });
  }
  try {
    // Objects and their queue rows in one statement, as a burst of API creates would leave them.
    await db.query(
      `WITH src AS (
         INSERT INTO ${KIND.table} (data)
         SELECT jsonb_build_object('Name', 'bench-' || g, 'AuthEnabled', true, 'OnboardParent', true,
           'Reconciled', false, 'CreationFailed', false, 'InterruptReconciliation', false)
         FROM generate_series(1, $1::int) g RETURNING id)
       INSERT INTO ${QUEUE_TABLE} (kind, object_id, operation) SELECT $2, id, 'Created' FROM src`,
      [OBJECTS, KIND.name],
    );
    await db.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', $1)`, [KIND.name]);
    const committed = performance.now();
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`not all ${OBJECTS} reconciled within 300 s`)), 300_000).unref(),
    );
    await Promise.race([done, timeout]);
    // The last report can trail the last commit by up to its 20 ms interval; subtract nothing (conservative).
    const elapsed = (lastAt - committed) / 1000;
    const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${QUEUE_TABLE}`);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${KIND.table} WHERE data @> '{"Reconciled": true}'`);
    if (rows[0]!.n !== OBJECTS || left.rows[0]!.n !== 0) {
      throw new Error(`${rows[0]!.n} of ${OBJECTS} objects reconciled, ${left.rows[0]!.n} items still queued`);
    }
    return OBJECTS / elapsed;
  } finally {
    await Promise.all(controllers.map(stopController));
  }
}

async function latency(db: Database, store: ObjectStore, url: string, processes: number): Promise<number[]> {
  await reset(db);
  const controllers = await Promise.all(Array.from({ length: processes }, () => startController(url, true)));
  const started = new Map<number, number>();
  const reconciled = new Map<number, number>();
  for (const c of controllers) {
    c.child.on('message', (m: { id: number; outcome: string; at: number }) => {
      if (m.outcome === 'reconciled') reconciled.set(m.id, m.at);
    });
  }
  try {
    const total = RATE * SECONDS;
    const interval = 1000 / RATE;
    const creates: Array<Promise<void>> = [];
    const t0 = performance.now() + 50;
    for (let i = 0; i < total; i++) {
      const wait = t0 + i * interval - performance.now();
      if (wait > 1) await sleep(wait);
      const fields = validatePayload(KIND, { Name: `lat-${i}` }, 'create');
      const at = performance.timeOrigin + performance.now();
      creates.push(
        store.create(KIND, fields).then((json) => {
          started.set((JSON.parse(json) as { ID: number }).ID, at);
        }),
      );
    }
    await Promise.all(creates);
    const deadline = performance.now() + 30_000;
    while (reconciled.size < total && performance.now() < deadline) await sleep(20);
    if (reconciled.size < total) throw new Error(`only ${reconciled.size} of ${total} creates were reported reconciled`);
    return [...started].map(([id, at]) => reconciled.get(id)! - at).sort((a, b) => a - b);
  } finally {
    await Promise.all(controllers.map(stopController));
  }
}

const pg = await startTestPostgres();
const db = await Database.open({ url: pg.url, poolSize: 10 });
try {
  await migrate(db, KINDS);
  const store = new ObjectStore(db, new FieldCipher(KEY));
  const rates: Record<number, number[]> = { 1: [], 2: [] };
  const lat: number[][] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const p of [1, 2]) {
      const r = await throughput(db, pg.url, p);
      rates[p]!.push(r);
      console.error(`run ${run}: ${p} process(es): ${r.toFixed(0)} reconciles/s (load average ${loadavg()[0]!.toFixed(1)})`);
    }
    const l = await latency(db, store, pg.url, 1);
    lat.push(l);
    console.error(
      `run ${run}: latency at ${RATE}/s: p50 ${pct(l, 50).toFixed(1)} ms, p99 ${pct(l, 99).toFixed(1)} ms (load average ${loadavg()[0]!.toFixed(1)})`,
    );
  }
  const fmt = (n: number) => n.toFixed(0).padStart(7);
  console.log('');
  console.log(`Reconcile engine benchmark: PostgreSQL ${pg.version} on loopback, controllers as child processes,`);
  console.log(`no-I/O reconciler, concurrency per process ${CONCURRENCY || 'default (8)'}; ${RUNS} interleaved runs, medians.`);
  console.log(`Machine: ${cpus().length} cores, 1-minute load average at the end ${loadavg()[0]!.toFixed(1)} (other work shares the machine).`);
  console.log('');
  console.log(`Throughput, ${OBJECTS} queued objects (reconciles/s)`);
  console.log(`  processes  ${Array.from({ length: RUNS }, (_, i) => `run ${i + 1}`.padStart(7)).join('')}  median`);
  for (const p of [1, 2]) {
    console.log(`  ${String(p).padEnd(9)}  ${rates[p]!.map(fmt).join('')}  ${fmt(median(rates[p]!))}`);
  }
  console.log('');
  console.log(`Latency create → Reconciled:true committed, paced ${RATE} creates/s for ${SECONDS} s, 1 process (ms)`);
  console.log(`  run       p50     p90     p99     max`);
  const f2 = (n: number) => n.toFixed(1).padStart(8);
  lat.forEach((l, i) => console.log(`  ${String(i + 1).padEnd(6)}${f2(pct(l, 50))}${f2(pct(l, 90))}${f2(pct(l, 99))}${f2(l.at(-1)!)}`));
  const m = (p: number) => median(lat.map((l) => pct(l, p)));
  console.log(`  median${f2(m(50))}${f2(m(90))}${f2(m(99))}${f2(median(lat.map((l) => l.at(-1)!)))}`);
} finally {
  await db.close();
  await pg.stop();
}
