// A create acknowledged with 201 survives kill -9 of the server (embedded
// database), and several replicas can start at once against one database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnServer } from '../harness/server-process.js';
import { startTestPostgres } from '../harness/postgres.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';

test('every create answered 201 survives kill -9 of the server and its restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-durability-'));
  try {
    const first = await spawnServer(['--data-dir', dataDir, '--port', '0', '--no-auth']);
    const acknowledged: string[] = [];
    let stop = false;
    // Four clients create as fast as they can until the server dies under them.
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop && i < 5_000; i++) {
        const name = `w${w}-${i}`;
        try {
          const res = await fetch(`${first.url}/v0/profiles`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ Name: name }),
          });
          if (res.status === 201) acknowledged.push(name);
        } catch {
          return; // the server is gone
        }
      }
    });
    await sleep(1_500);
    const pgPid = Number(readFileSync(join(dataDir, 'db', 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    first.child.kill('SIGKILL');
    await first.exited;
    stop = true;
    await Promise.all(writers);
    assert.ok(acknowledged.length > 0, 'some creates were acknowledged before the kill');

    // The embedded PostgreSQL may outlive its parent; the restart must cope with that too.
    const second = await spawnServer(['--data-dir', dataDir, '--port', '0', '--no-auth']);
    try {
      const res = await fetch(`${second.url}/v0/profiles?size=-1`);
      const body = (await res.json()) as { Data: Array<{ Name: string }> };
      const stored = new Set(body.Data.map((p) => p.Name));
      const lost = acknowledged.filter((n) => !stored.has(n));
      assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged creates were lost`);
    } finally {
      await second.kill('SIGTERM');
    }
    assert.ok(pgPid > 0);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('three replicas starting at once against one PostgreSQL all migrate and serve', async () => {
  const pg = await startTestPostgres();
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'threeport-replica-')));
  const key = FieldCipher.generateKey();
  try {
    const replicas = await Promise.all(
      dirs.map((dir) =>
        spawnServer(['--data-dir', dir, '--port', '0', '--no-auth', '--role', 'api'], {
          THREEPORT_DATABASE_URL: pg.url,
          ENCRYPTION_KEY: key,
        }),
      ),
    );
    try {
      const created = await fetch(`${replicas[0]!.url}/v0/profiles`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ Name: 'shared' }),
      });
      assert.equal(created.status, 201);
      for (const r of replicas) {
        const res = await fetch(`${r.url}/v0/profiles?name=shared`);
        const body = (await res.json()) as { Meta: { TotalCount: number } };
        assert.equal(body.Meta.TotalCount, 1);
      }
    } finally {
      await Promise.all(replicas.map((r) => r.kill('SIGTERM')));
    }
  } finally {
    await pg.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test('an external database without ENCRYPTION_KEY is refused with a clear message', async () => {
  const pg = await startTestPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'threeport-nokey-'));
  try {
    await assert.rejects(
      spawnServer(['--data-dir', dir, '--port', '0', '--no-auth'], { THREEPORT_DATABASE_URL: pg.url, ENCRYPTION_KEY: '' }),
      /ENCRYPTION_KEY is required with an external database/,
    );
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
