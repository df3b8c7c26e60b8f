// bench/api: API throughput and latency against a live `threeport server`
// child process, on the embedded database and on PostgreSQL 15, with and
// without TLS, at concurrency 1 and 32, with 100k objects in the table.
//
//   node dist/bench/api.js [--seconds 5] [--rows 100000] [--rounds 1]
//
// Prints one line per measurement and a summary table of medians.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { spawnServer } from '../test/harness/server-process.js';
import { startTestPostgres } from '../test/harness/postgres.js';
import { FieldCipher } from '../src/crypto/field-encryption.js';
import { median, runLoad, type LoadResult, type Target } from './lib/load.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rows: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '1' },
    db: { type: 'string', default: 'embedded,postgres' },
  },
});
const SECONDS = Number(values.seconds);
const ROWS = Number(values.rows);
const ROUNDS = Number(values.rounds);
const MANIFEST = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  key: value\n';

async function seed(client: pg.Client): Promise<void> {
  // Straight into the table: the point is a realistic table size, not a create benchmark.
  await client.query(
    `INSERT INTO v0_workload_definitions (data)
     SELECT jsonb_build_object('Name', 'seed-' || g, 'YAMLDocument', $1::text, 'Reconciled', true,
                               'CreationFailed', false, 'InterruptReconciliation', false)
     FROM generate_series(1, $2::int) g`,
    [MANIFEST, ROWS],
  );
  await client.query('VACUUM ANALYZE v0_workload_definitions');
}

interface Row {
  db: string;
  tls: boolean;
  op: string;
  concurrency: number;
  result: LoadResult;
}

async function benchOne(db: 'embedded' | 'postgres', tls: boolean, rows: Row[]): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), `threeport-bench-${db}-`));
  const postgres = db === 'postgres' ? await startTestPostgres() : undefined;
  const env = postgres ? { THREEPORT_DATABASE_URL: postgres.url, ENCRYPTION_KEY: FieldCipher.generateKey() } : {};
  // API role only: controllers would reconcile every created definition in the same process and blur the API figures.
  const server = await spawnServer(['--data-dir', dataDir, '--port', '0', '--role', 'api', ...(tls ? [] : ['--no-auth'])], env);
  try {
    const client = new pg.Client(
      postgres ? { connectionString: postgres.url } : { host: join(dataDir, 'db', 'pgdata'), user: 'threeport', database: 'postgres' },
    );
    await client.connect();
    await seed(client);
    const { rows: idRows } = await client.query('SELECT min(id)::int AS lo, max(id)::int AS hi FROM v0_workload_definitions');
    const { lo, hi } = idRows[0] as { lo: number; hi: number };
    await client.end();

    const pki = join(dataDir, 'pki');
    const target: Target = {
      url: server.url,
      ...(tls
        ? {
            tls: {
              ca: readFileSync(join(pki, 'ca.crt'), 'utf8'),
              cert: readFileSync(join(pki, 'client.crt'), 'utf8'),
              key: readFileSync(join(pki, 'client.key'), 'utf8'),
            },
          }
        : {}),
    };
    const rand = (n: number) => Math.floor(Math.random() * n);
    let created = 0;
    const ops = {
      'get-by-id': () => ({ method: 'GET', path: `/v0/workload-definitions/${lo + rand(hi - lo + 1)}` }),
      'list-filter': () => ({ method: 'GET', path: `/v0/workload-definitions?name=seed-${1 + rand(ROWS)}` }),
      create: () => ({
        method: 'POST',
        path: '/v0/workload-definitions',
        body: JSON.stringify({ Name: `bench-${process.pid}-${created++}`, YAMLDocument: MANIFEST }),
      }),
    } as const;
    for (const concurrency of [1, 32]) {
      for (const [op, next] of Object.entries(ops)) {
        // A short warm-up fills the pools and prepares the statements.
        await runLoad(target, next, { concurrency, seconds: 0.5, expectStatus: op === 'create' ? 201 : 200 });
        const result = await runLoad(target, next, { concurrency, seconds: SECONDS, expectStatus: op === 'create' ? 201 : 200 });
        rows.push({ db, tls, op, concurrency, result });
        console.log(
          `${db.padEnd(8)} tls=${String(tls).padEnd(5)} ${op.padEnd(11)} c=${String(concurrency).padEnd(2)} ` +
            `${result.perSecond.toFixed(0).padStart(6)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms` +
            `  (${result.requests} requests, ${result.errors} errors)`,
        );
      }
    }
  } finally {
    await server.kill('SIGTERM');
    await postgres?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
const dbs = values.db.split(',') as Array<'embedded' | 'postgres'>;
for (let round = 0; round < ROUNDS; round++) {
  for (const db of dbs) for (const tls of [false, true]) await benchOne(db, tls, rows);
}

console.log(`\nMedians over ${ROUNDS} round(s), ${SECONDS} s each, ${ROWS} rows seeded:`);
console.log('db        tls    op           conc   req/s    p50 ms   p99 ms');
const keys = [...new Set(rows.map((r) => `${r.db}|${r.tls}|${r.op}|${r.concurrency}`))];
for (const key of keys) {
  const group = rows.filter((r) => `${r.db}|${r.tls}|${r.op}|${r.concurrency}` === key);
  const [db, tls, op, c] = key.split('|');
  console.log(
    `${db!.padEnd(9)} ${tls!.padEnd(6)} ${op!.padEnd(12)} ${c!.padStart(4)} ${median(group.map((g) => g.result.perSecond)).toFixed(0).padStart(8)} ` +
      `${median(group.map((g) => g.result.p50Ms)).toFixed(2).padStart(8)} ${median(group.map((g) => g.result.p99Ms)).toFixed(2).padStart(8)}`,
  );
}
