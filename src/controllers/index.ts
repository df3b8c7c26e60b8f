// The registry of reconcilers that `threeport server --role controllers|all`
// runs. Each domain's controller lives in src/controllers/<domain>/ and adds
// its reconcilers here.
//
// THREEPORT_TEST_RECONCILERS (tests and benchmarks only): the path of a compiled
// ES module that exports `reconcilers` (Reconciler[]) and optionally
// `onSettled` (called after each outcome commits). Its reconcilers replace
// built-in ones of the same kind. It lets a test run a real `threeport server`
// child process with a test reconciler, e.g. to kill it mid-reconcile. It is
// read only when set; never set it in production.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Reconciler, Settlement } from '../reconcile/types.js';

export const TEST_RECONCILERS_ENV = 'THREEPORT_TEST_RECONCILERS';

/** The controllers this build ships. None yet: they arrive domain by domain. */
export function builtInReconcilers(): Reconciler[] {
  return [];
}

export interface ReconcilerSet {
  reconcilers: Reconciler[];
  onSettled?: (settlement: Settlement) => void;
}

/** `explicit` (or the built-ins), plus the test module named by THREEPORT_TEST_RECONCILERS when it is set. */
export async function loadReconcilers(explicit?: readonly Reconciler[]): Promise<ReconcilerSet> {
  const base = [...(explicit ?? builtInReconcilers())];
  const path = process.env[TEST_RECONCILERS_ENV];
  if (!path) return { reconcilers: base };
  const url = pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  const mod = (await import(url)) as { reconcilers?: unknown; onSettled?: unknown };
  if (!Array.isArray(mod.reconcilers)) {
    throw new Error(`${TEST_RECONCILERS_ENV}=${path}: the module must export \`reconcilers\`, an array of reconcilers`);
  }
  const test = mod.reconcilers as Reconciler[];
  const replaced = new Set(test.map((r) => r.kind));
  return {
    reconcilers: [...base.filter((r) => !replaced.has(r.kind)), ...test],
    ...(typeof mod.onSettled === 'function' ? { onSettled: mod.onSettled as (s: Settlement) => void } : {}),
  };
}
