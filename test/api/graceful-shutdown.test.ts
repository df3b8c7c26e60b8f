// Issue 15.2: SIGTERM in the middle of a burst of creates. Every request that reached the server
// gets its normal reply (201, stored); every other one fails to connect and was never started
// (not stored). No 503, and no reply that lies about what was written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { spawnServer } from '../harness/server-process.js';
import { startTestPostgres } from '../harness/postgres.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';

const TOTAL = 500;
const CONCURRENCY = 50;

test(`SIGTERM halfway through ${TOTAL} creates at concurrency ${CONCURRENCY}: each reply is the normal one, or the request never started`, async () => {
  const postgres = await startTestPostgres();
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-sigterm-'));
  try {
    const server = await spawnServer(['--data-dir', dataDir, '--port', '0', '--no-auth', '--role', 'api'], {
      THREEPORT_DATABASE_URL: postgres.url,
      ENCRYPTION_KEY: FieldCipher.generateKey(),
    });
    const outcomes: Array<{ name: string; status?: number; error?: string }> = [];
    let next = 0;
    let signalled = false;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        if (i === TOTAL / 2 && !signalled) {
          signalled = true;
          server.child.kill('SIGTERM');
        }
        const name = `burst-${i}`;
        try {
          const res = await fetch(`${server.url}/v0/profiles`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ Name: name }),
          });
          await res.text();
          outcomes.push({ name, status: res.status });
        } catch (err) {
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          outcomes.push({ name, error: cause?.code ?? cause?.message ?? String(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.equal(await server.exited, 0, 'the server exits cleanly after SIGTERM');

    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    const rows = await client.query(`SELECT data->>'Name' AS name FROM v0_profiles WHERE deleted_at IS NULL`);
    await client.end();
    const stored = new Set((rows.rows as Array<{ name: string }>).map((r) => r.name));

    const answered = outcomes.filter((o) => o.status !== undefined);
    const failed = outcomes.filter((o) => o.error !== undefined);
    const wrongStatus = answered.filter((o) => o.status !== 201);
    assert.deepEqual(wrongStatus, [], 'every answered request got its normal reply');
    const lost = answered.filter((o) => !stored.has(o.name));
    assert.deepEqual(lost, [], 'every 201 is stored');
    const startedButFailed = failed.filter((o) => stored.has(o.name));
    assert.deepEqual(startedButFailed, [], 'a request that failed on the wire was never started');
    assert.ok(answered.length >= TOTAL / 2, `at least the first half was answered (${answered.length})`);
    const errors = [...new Set(failed.map((f) => f.error))];
    console.log(`answered ${answered.length} (all 201), refused on the wire ${failed.length} (${errors.join(', ')}), stored ${stored.size}`);
  } finally {
    await postgres.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
