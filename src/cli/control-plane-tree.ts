// `tptctl get control-planes`: the control planes as the tree that ParentControlPlaneInstanceID
// draws (genesis at the root, each child under its parent), one row per ControlPlaneInstance.
import type { AnyObject } from '../client/types.js';
import { age, formatTable } from './output.js';
import { cell, instanceStatus } from './render.js';

export interface ControlPlaneRow {
  instance: AnyObject;
  definition: AnyObject | undefined;
  runtimeName: string | undefined;
}

/** Depth-first order with each row's depth; rows whose parent is not listed are roots. */
export function treeOrder(rows: readonly ControlPlaneRow[]): { row: ControlPlaneRow; depth: number; last: boolean[] }[] {
  const ids = new Set(rows.map((r) => r.instance.ID));
  const children = new Map<number | undefined, ControlPlaneRow[]>();
  for (const r of rows) {
    const parent = r.instance['ParentControlPlaneInstanceID'] as number | null | undefined;
    const key = typeof parent === 'number' && ids.has(parent) && parent !== r.instance.ID ? parent : undefined;
    children.set(key, [...(children.get(key) ?? []), r]);
  }
  const out: { row: ControlPlaneRow; depth: number; last: boolean[] }[] = [];
  const seen = new Set<number>();
  const walk = (parent: number | undefined, last: boolean[]): void => {
    const list = children.get(parent) ?? [];
    list.forEach((row, i) => {
      if (seen.has(row.instance.ID)) return; // a cycle cannot loop forever
      seen.add(row.instance.ID);
      const path = [...last, i === list.length - 1];
      out.push({ row, depth: last.length, last: path });
      walk(row.instance.ID, path);
    });
  };
  walk(undefined, []);
  // Rows only reachable through a cycle: shown as roots.
  for (const r of rows) if (!seen.has(r.instance.ID)) out.push({ row: r, depth: 0, last: [true] });
  return out;
}

function treeName(name: string, last: boolean[]): string {
  if (last.length <= 1) return name;
  const lead = last.slice(1, -1).map((l) => (l ? '   ' : '│  ')).join('');
  return `${lead}${last.at(-1) ? '└─ ' : '├─ '}${name}`;
}

export function formatControlPlaneTree(rows: readonly ControlPlaneRow[], now = Date.now()): string {
  const headers = ['NAME', 'CONTROL PLANE DEFINITION', 'KUBERNETES RUNTIME INSTANCE', 'NAMESPACE', 'API SERVER', 'ROLE', 'STATUS', 'AGE'];
  const body = treeOrder(rows).map(({ row, last }) => {
    const i = row.instance;
    const role = [i['Genesis'] ? 'genesis' : '', i['IsSelf'] ? 'self' : ''].filter(Boolean).join(', ') || 'child';
    return [
      treeName(String(i['Name']), last),
      cell(row.definition?.['Name']),
      cell(row.runtimeName),
      cell(i['Namespace']),
      cell(i['ApiServerEndpoint']),
      role,
      instanceStatus(i),
      age(i.CreatedAt, now),
    ];
  });
  return formatTable(headers, body);
}
