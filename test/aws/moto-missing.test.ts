// A missing moto fails the AWS suites, naming the install command and the skip switch,
// the way missing Kubernetes binaries do; only THREEPORT_SKIP_AWS=1 turns that into a skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MotoMissingError, startMoto } from '../harness/moto.js';

test('startMoto without python3 on PATH rejects with MotoMissingError, naming the install script and THREEPORT_SKIP_AWS', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'threeport-no-python-'));
  const path = process.env['PATH'];
  process.env['PATH'] = empty;
  try {
    await assert.rejects(startMoto(), (err: unknown) => {
      assert.ok(err instanceof MotoMissingError, String(err));
      assert.match(err.message, /scripts\/install-test-deps\.sh/);
      assert.match(err.message, /THREEPORT_SKIP_AWS=1/);
      return true;
    });
  } finally {
    process.env['PATH'] = path;
    rmSync(empty, { recursive: true, force: true });
  }
});
