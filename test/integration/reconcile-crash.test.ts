// kill -9 of a real controller process (`threeport server --role controllers`)
// in the middle of reconciles, at random points, five times; then one more
// process runs to the end. Every queued object gets reconciled in its final
// state, nothing is lost and nothing stays stuck, and no two processes ever
// reconciled one object at the same time.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KINDS } from '../../src/kinds/index.js';
import { ControlPlaneDefinition } from '../../src/kinds/control-plane.js';
import { validatePayload } from '../../src/kinds/validate.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { Database } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { freePort } from '../../src/system.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const THREEPORT = join(here, '..', '..', 'src', 'bin', 'threeport.js');
const PROBE = join(here, '..', 'fixtures', 'reconcilers', 'probe.js');
const KILLS = 5;
const KEY = FieldCipher.generateKey();

let pg: TestPostgres;
let db: Database;
let store: ObjectStore;
let dir: string;
before(async () => {
  pg = await startTestPostgres();
  db = await Database.open({ url: pg.url, poolSize: 8 });
  await migrate(db, KINDS);
  store = new ObjectStore(db, new FieldCipher(KEY));
  dir = mkdtempSync(join(tmpdir(), 'threeport-crash-'));
});
after(async () => {
  await db?.close();
  await pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Controller {
  child: ChildProcess;
  metricsUrl?: string;
}

async function startController(probeFile: string, metricsPort = 0): Promise<Controller> {
  const args = [THREEPORT, 'server', '--role', 'controllers', '--database-url', pg.url, '--data-dir', join(dir, 'data')];
  args.push('--no-auth', '--log-level', 'warn', '--reconcile-lease', '1s', '--reconcile-poll-interval', '200ms');
  args.push('--retry-initial', '100ms', '--retry-max', '1s', '--metrics-port', String(metricsPort));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, THREEPORT_TEST_RECONCILERS: PROBE, PROBE_FILE: probeFile, ENCRYPTION_KEY: KEY },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let metricsUrl: string | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`controller did not start within 20 s: ${stderr}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`controller exited with ${code} before starting: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"metrics"')) metricsUrl = (JSON.parse(line) as { url: string }).url;
      if (line.includes('"controllers started"')) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve();
      }
    });
  });
  return { child, ...(metricsUrl ? { metricsUrl } : {}) };
}

function kill9(c: Controller): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => c.child.once('exit', () => r()));
  c.child.kill('SIGKILL');
  return exited;
}

interface ProbeLine {
  kind: 'start' | 'end';
  id: number;
  pid: number;
  at: number;
  name: string;
}

function readProbe(file: string): ProbeLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.split(' ').length === 6)
    .map((l) => {
      const [kind, id, pid, at, , name] = l.split(' ');
      return { kind: kind as 'start' | 'end', id: Number(id), pid: Number(pid), at: Number(at), name: name! };
    });
}

async function createObjects(from: number, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = from; i < from + count; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, from + count - i) }, (_, j) =>
        store.create(ControlPlaneDefinition, validatePayload(ControlPlaneDefinition, { Name: `crash-${i + j}` }, 'create')),
      ),
    );
    out.push(...batch.map((j) => (JSON.parse(j) as { ID: number }).ID));
  }
  return out;
}

test(`kill -9 of a controller process mid-reconcile, ${KILLS} times: after a restart everything is reconciled`, async () => {
  const probeFile = join(dir, 'probe.log');
  writeFileSync(probeFile, '');
  const ids = await createObjects(0, 300);
  const finalName = new Map<number, string>(ids.map((id, i) => [id, `crash-${i}`]));
  const killedPids = new Set<number>();

  for (let round = 0; round < KILLS; round++) {
    const before = readProbe(probeFile).filter((l) => l.kind === 'end').length;
    const controller = await startController(probeFile);
    // New work arrives while it runs: fresh objects and changes to old ones.
    const fresh = await createObjects(1_000 + round * 100, 30);
    fresh.forEach((id, i) => finalName.set(id, `crash-${1_000 + round * 100 + i}`));
    ids.push(...fresh);
    for (const id of ids.filter(() => Math.random() < 0.08)) {
      const name = `changed-${id}-${round}`;
      await store.patch(ControlPlaneDefinition, id, { Name: name, Reconciled: false });
      finalName.set(id, name);
    }
    // Kill at a random point once it has made some progress (bounded wait).
    const target = before + 10 + Math.floor(Math.random() * 60);
    const deadline = Date.now() + 10_000;
    while (readProbe(probeFile).filter((l) => l.kind === 'end').length < target && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50)));
    killedPids.add(controller.child.pid!);
    await kill9(controller);
  }

  const sofar = readProbe(probeFile);
  const interrupted = sofar.filter(
    (l) => l.kind === 'start' && killedPids.has(l.pid) && !sofar.some((e) => e.kind === 'end' && e.id === l.id && e.pid === l.pid && e.at >= l.at),
  );
  assert.ok(interrupted.length > 0, 'at least one kill landed in the middle of a reconcile');

  const last = await startController(probeFile, await freePort());
  try {
    assert.ok(last.metricsUrl, 'the controller serves /metrics');
    const metrics = await (await fetch(`${last.metricsUrl}/metrics`)).text();
    assert.match(metrics, /# TYPE threeport_reconcile_queue_depth gauge/);
    assert.match(metrics, /# TYPE threeport_reconcile_leases_held gauge/);
    assert.equal((await fetch(`${last.metricsUrl}/healthz`)).status, 200);

    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${QUEUE_TABLE}`);
      if (rows[0]!.n === 0) break;
      assert.ok(Date.now() < deadline, `${rows[0]!.n} items still queued after 60 s: stuck`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    last.child.kill('SIGTERM');
    await new Promise((r) => last.child.once('exit', r));
  }

  // Nothing lost: every object reconciled, and its last completed reconcile saw its final state.
  const lines = readProbe(probeFile);
  for (const id of ids) {
    const obj = await store.getObject(ControlPlaneDefinition, id);
    assert.equal(obj['Reconciled'], true, `object ${id} reconciled`);
    const ends = lines.filter((l) => l.kind === 'end' && l.id === id);
    assert.ok(ends.length > 0, `object ${id} was reconciled at least once`);
    assert.equal(ends.at(-1)!.name, finalName.get(id), `object ${id}'s last reconcile saw its final state`);
  }

  // Never two at once: completed reconciles of one object by different processes do not overlap in time.
  const spans = new Map<number, Array<{ pid: number; from: number; to: number }>>();
  for (const l of lines.filter((x) => x.kind === 'start')) {
    const end = lines.find((e) => e.kind === 'end' && e.id === l.id && e.pid === l.pid && e.at >= l.at);
    if (!end) continue;
    const list = spans.get(l.id) ?? [];
    list.push({ pid: l.pid, from: l.at, to: end.at });
    spans.set(l.id, list);
  }
  for (const [id, list] of spans) {
    list.sort((a, b) => a.from - b.from);
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i]!.from >= list[i - 1]!.to, `object ${id}: reconciles overlap: ${JSON.stringify(list)}`);
    }
  }
  assert.equal(killedPids.size, KILLS);
});
