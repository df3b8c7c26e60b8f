// The rule "no hollow kinds" as a test: every kind declared `reconciled` has a reconciler in the
// built-in controllers, or is declared `unavailable` (refused by the API with its reason). The
// second half keeps the marker honest: once a controller for an unavailable kind lands, the test
// fails until the marker is removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS } from '../../src/kinds/index.js';
import { builtInReconcilers } from '../../src/controllers/index.js';
import { createLogger } from '../../src/logger.js';

test('every reconciled kind has a built-in reconciler or is declared unavailable', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-kinds-'));
  try {
    const served = new Set(builtInReconcilers({ dataDir, logger: createLogger({ level: 'silent' }) }).map((r) => r.kind));
    const hollow = KINDS.filter((k) => k.reconciled && !k.unavailable && !served.has(k.name)).map((k) => k.name);
    assert.deepEqual(hollow, [], `reconciled kinds with no reconciler and no unavailable reason: ${hollow.join(', ')}`);
    const stale = KINDS.filter((k) => k.unavailable && served.has(k.name)).map((k) => k.name);
    assert.deepEqual(stale, [], `kinds declared unavailable that a built-in controller now reconciles: ${stale.join(', ')}`);
    for (const k of KINDS.filter((k) => k.unavailable)) {
      assert.ok(k.reconciled, `${k.name}: only reconciled kinds can be unavailable`);
      assert.ok(k.unavailable!.length > 20, `${k.name}: the reason must tell the user what to do`);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
