// Conditions in the style of Kubernetes and Crossplane, written by the engine on every reconciled
// kind (the fields are declared once, as GENERATION_FIELDS in src/kinds/declare.ts):
//   Synced: did the last reconcile succeed? False carries the error's reason and message.
//   Ready:  is the object's resource in place? False while the reconciler waits (requeue) or
//           after a create failed for good.
// LastTransitionTime changes only when a condition's Status does, as in Kubernetes.
import type { JsonObject } from '../kinds/validate.js';

export type ConditionType = 'Ready' | 'Synced';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  Type: ConditionType;
  Status: ConditionStatus;
  Reason: string;
  Message: string;
  LastTransitionTime: string;
}

export type ConditionUpdate = Omit<Condition, 'LastTransitionTime'>;

const ORDER: readonly ConditionType[] = ['Ready', 'Synced'];

/** The conditions stored on an object (malformed entries ignored). */
export function conditionsOf(object: Readonly<Record<string, unknown>>): Condition[] {
  const raw = object['Conditions'];
  if (!Array.isArray(raw)) return [];
  return raw.filter(
    (c): c is Condition =>
      typeof c === 'object' && c !== null && !Array.isArray(c) && ORDER.includes((c as { Type?: unknown }).Type as ConditionType),
  ) as unknown as Condition[];
}

export function condition(object: Readonly<Record<string, unknown>>, type: ConditionType): Condition | undefined {
  return conditionsOf(object).find((c) => c.Type === type);
}

/**
 * The object's conditions with `updates` applied, or undefined when nothing changes (so the
 * engine writes nothing). A condition whose Status stays keeps its LastTransitionTime.
 */
export function applyConditions(object: JsonObject, updates: readonly ConditionUpdate[], at: Date): Condition[] | undefined {
  const current = new Map(conditionsOf(object).map((c) => [c.Type, c]));
  let changed = false;
  for (const u of updates) {
    const old = current.get(u.Type);
    if (old && old.Status === u.Status && old.Reason === u.Reason && old.Message === u.Message) continue;
    changed = true;
    current.set(u.Type, { ...u, LastTransitionTime: old && old.Status === u.Status ? old.LastTransitionTime : at.toISOString() });
  }
  if (!changed) return undefined;
  return ORDER.flatMap((t) => (current.has(t) ? [current.get(t)!] : []));
}

export const SYNCED: ConditionUpdate = { Type: 'Synced', Status: 'True', Reason: 'ReconcileSuccess', Message: '' };
export const AVAILABLE: ConditionUpdate = { Type: 'Ready', Status: 'True', Reason: 'Available', Message: '' };
export const WAITING: ConditionUpdate = {
  Type: 'Ready',
  Status: 'False',
  Reason: 'Reconciling',
  Message: 'the reconciler is waiting for the resource and runs again',
};

/** Synced False with the failure's reason and (scrubbed) message. */
export function notSynced(reason: string, message: string): ConditionUpdate {
  return { Type: 'Synced', Status: 'False', Reason: reason, Message: message };
}

/**
 * Whether the object's status is stale: a client changed a desired field after the last
 * successful reconcile (ObservedGeneration < Generation). Kinds without generations never are.
 */
export function isStale(object: Readonly<Record<string, unknown>>): boolean {
  const generation = object['Generation'];
  if (typeof generation !== 'number') return false;
  const observed = object['ObservedGeneration'];
  // Never reconciled: stale while it waits for a reconcile; a registered object (Reconciled: true) is not.
  if (typeof observed !== 'number') return object['Reconciled'] !== true;
  return observed < generation;
}
