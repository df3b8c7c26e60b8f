// `tptctl get control-planes` draws the tree that ParentControlPlaneInstanceID makes: roots first,
// each child under its parent (depth first), rows whose parent is not listed as roots, and a
// cycle (which the API does not prevent) shown once rather than followed forever.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnyObject } from '../../src/client/types.js';
import { formatControlPlaneTree, treeOrder, type ControlPlaneRow } from '../../src/cli/control-plane-tree.js';

function row(ID: number, Name: string, parent: number | null, extra: Record<string, unknown> = {}): ControlPlaneRow {
  const instance = { ID, Name, ParentControlPlaneInstanceID: parent, Namespace: `ns-${Name}`, Reconciled: true, CreatedAt: new Date(0).toISOString(), ...extra } as unknown as AnyObject;
  return { instance, definition: { ID: 100 + ID, Name: `def-${Name}` } as unknown as AnyObject, runtimeName: 'rt' };
}

test('tree order: parents before children, depth first, orphans and cycles as roots', () => {
  const rows = [row(3, 'grandchild', 2), row(1, 'genesis', null, { Genesis: true, IsSelf: true }), row(2, 'child', 1), row(4, 'sibling', 1), row(5, 'orphan', 99), row(6, 'a', 7), row(7, 'b', 6)];
  const order = treeOrder(rows).map((r) => [r.row.instance['Name'], r.depth]);
  assert.deepEqual(order, [
    ['genesis', 0],
    ['child', 1],
    ['grandchild', 2],
    ['sibling', 1],
    ['orphan', 0],
    ['a', 0],
    ['b', 0],
  ]);
});

test('the table draws the branches and names the role', () => {
  const text = formatControlPlaneTree([row(1, 'genesis', null, { Genesis: true, IsSelf: true }), row(2, 'child', 1), row(3, 'grandchild', 2), row(4, 'sibling', 1)], 0);
  const [head, ...lines] = text.trimEnd().split('\n');
  const width = head!.indexOf('CONTROL PLANE DEFINITION');
  const names = lines.map((l) => l.slice(0, width).trimEnd());
  assert.deepEqual(names, ['genesis', '├─ child', '│  └─ grandchild', '└─ sibling']);
  assert.match(text, /genesis\s+def-genesis\s+rt\s+ns-genesis\s+<none>\s+genesis, self\s+Healthy/);
  assert.match(text, /└─ sibling\s+def-sibling\s+rt\s+ns-sibling\s+<none>\s+child\s+Healthy/);
});
