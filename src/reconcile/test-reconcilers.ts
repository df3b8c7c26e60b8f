// THREEPORT_TEST_RECONCILERS (tests and benchmarks only), apart from the built-in controllers so
// that an API replica can learn which kinds the test module serves without importing the
// controllers (and with them the AWS SDK and the Kubernetes client).
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Reconciler, Settlement } from './types.js';

export const TEST_RECONCILERS_ENV = 'THREEPORT_TEST_RECONCILERS';

/** The kinds the THREEPORT_TEST_RECONCILERS module reconciles (none when it is not set); the API accepts them. */
export async function testReconcilerKinds(): Promise<string[]> {
  const path = process.env[TEST_RECONCILERS_ENV];
  return path ? (await importTestReconcilers(path)).reconcilers.map((r) => r.kind) : [];
}

export async function importTestReconcilers(path: string): Promise<{ reconcilers: Reconciler[]; onSettled?: (s: Settlement) => void }> {
  const url = pathToFileURL(isAbsolute(path) ? path : resolve(path)).href;
  const mod = (await import(url)) as { reconcilers?: unknown; onSettled?: unknown };
  if (!Array.isArray(mod.reconcilers)) {
    throw new Error(`${TEST_RECONCILERS_ENV}=${path}: the module must export \`reconcilers\`, an array of reconcilers`);
  }
  return {
    reconcilers: mod.reconcilers as Reconciler[],
    ...(typeof mod.onSettled === 'function' ? { onSettled: mod.onSettled as (s: Settlement) => void } : {}),
  };
}

