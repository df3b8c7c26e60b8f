// Issue 15.1: SIGKILL of the server's whole process group (the server and its embedded
// PostgreSQL together, as an OOM kill or a power loss does), then a restart on the same data
// directory. Every restart must work the first time, and every create acknowledged with a 201
// in any round must be there afterwards, and be reconciled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnServer, type ServerProcess } from '../harness/server-process.js';
import { until } from '../harness/until.js';

const ROUNDS = 6;
const MANIFEST = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;

async function killGroup(server: ServerProcess): Promise<void> {
  process.kill(-server.child.pid!, 'SIGKILL');
  await server.exited;
}

test(`${ROUNDS} rounds of SIGKILL to the process group and restart: every start succeeds first time, no acknowledged create lost`, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-crash-'));
  const args = ['--data-dir', dataDir, '--port', '0', '--no-auth'];
  const acknowledged: string[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // No retry: a start that fails here is the bug.
      const server = await spawnServer(args, {}, 60_000, { detached: true }).catch((err: unknown) => {
        const log = join(dataDir, 'db', 'postgres.log');
        throw new Error(`round ${round}: ${String(err)}\npostgres.log:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : '(none)'}`);
      });
      let stop = false;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop && i < 150; i++) {
          const name = `r${round}-w${w}-${i}`;
          try {
            const res = await fetch(`${server.url}/v0/workload-definitions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ Name: name, YAMLDocument: MANIFEST(name) }),
            });
            if (res.status === 201) acknowledged.push(name);
            else assert.fail(`create ${name}: HTTP ${res.status} ${await res.text()}`);
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            return; // the server died under this request
          }
        }
      });
      await sleep(400 + round * 150);
      await killGroup(server);
      stop = true;
      await Promise.all(writers);
    }
    assert.ok(acknowledged.length > ROUNDS, `creates were acknowledged (${acknowledged.length})`);

    const last = await spawnServer(args, {}, 60_000, { detached: true });
    try {
      const pending = await until(
        'every acknowledged WorkloadDefinition to be reconciled',
        async () => {
          const res = await fetch(`${last.url}/v0/workload-definitions?size=-1`);
          const body = (await res.json()) as { Data: Array<{ Name: string; Reconciled: boolean }> };
          const byName = new Map(body.Data.map((d) => [d.Name, d]));
          const lost = acknowledged.filter((n) => !byName.has(n));
          assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged creates were lost`);
          const unreconciled = acknowledged.filter((n) => byName.get(n)!.Reconciled !== true);
          return unreconciled.length === 0 ? unreconciled : undefined;
        },
        180_000,
        500,
      );
      assert.deepEqual(pending, []);
    } finally {
      await last.kill('SIGTERM');
    }
  } finally {
    // A PostgreSQL orphaned by a failed start may still be writing; never mask the test's own error.
    await sleep(1_000);
    try {
      rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    } catch (err) {
      console.error(`could not remove ${dataDir}: ${String(err)}`);
    }
  }
});
