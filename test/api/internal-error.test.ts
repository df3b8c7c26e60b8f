// Issue 10.3: a 500 never sends the internal message (here a PostgreSQL error) to the client.
// It gets a generic message with a request ID, which the server log carries with the cause.
// A unit test of an error path: the store is a stand-in whose create fails as PostgreSQL would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildApiServer } from '../../src/api/http-server.js';
import type { ObjectStore } from '../../src/store/object-store.js';

test('a 500 carries a request ID and a generic message; the cause goes only to the log', async () => {
  const internal = 'duplicate key value violates unique constraint "v0_profiles_secret_index" DETAIL: Key (data)=(hunter2)';
  const store = {
    db: { pool: {} },
    create: async () => {
      throw Object.assign(new Error(internal), { code: '23000' });
    },
  } as unknown as ObjectStore;
  let log = '';
  const logger = pino({ level: 'error' }, new Writable({ write: (c, _e, cb) => ((log += c.toString()), cb()) }));
  const app = await buildApiServer({ store, logger });
  try {
    const res = await app.inject({ method: 'POST', url: '/v0/profiles', payload: { Name: 'x' } });
    assert.equal(res.statusCode, 500);
    const body = res.json() as { Status: { code: number; error: string } };
    assert.equal(body.Status.code, 500);
    assert.ok(!res.body.includes('hunter2') && !res.body.includes('duplicate key'), res.body);
    const id = res.headers['x-request-id'] as string;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(body.Status.error, `internal server error (request ID ${id}); the server log has the details`);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(log.includes(id) && log.includes('duplicate key'), `the log line has the request ID and the cause: ${log}`);
  } finally {
    await app.close();
  }
});
