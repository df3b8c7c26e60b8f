// docs/dependency-graph.md is generated from the declared watches and owners
// (src/controllers/graph.ts), so it cannot drift: regenerate with `npm run docs:graph`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KIND_BY_NAME } from '../../src/kinds/index.js';
import { GRAPH } from '../../src/controllers/graph.js';
import { graphEdges, renderGraphPage } from '../../src/controllers/graph-page.js';

test('the committed dependency-graph page is the one the declarations generate', () => {
  const page = readFileSync(fileURLToPath(new URL('../../../docs/dependency-graph.md', import.meta.url)), 'utf8');
  assert.equal(page, renderGraphPage(), 'docs/dependency-graph.md is stale: run `npm run docs:graph` and commit it');
});

test('every edge names declared kinds, and every watcher is a reconciled kind', () => {
  assert.ok(graphEdges().length > 0);
  for (const [kind, edges] of Object.entries(GRAPH)) {
    assert.equal(KIND_BY_NAME.get(kind)?.reconciled, true, `${kind} declares edges but is not reconciled`);
    for (const w of edges.watches ?? []) assert.ok(KIND_BY_NAME.has(w.kind), `${kind} watches an unknown kind ${w.kind}`);
    for (const o of edges.owns ?? []) {
      const child = KIND_BY_NAME.get(o.kind);
      assert.ok(child, `${kind} owns an unknown kind ${o.kind}`);
      assert.ok(o.by in child.allFields, `${o.kind} has no field ${o.by}`);
    }
  }
});
