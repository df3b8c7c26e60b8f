// Installs a peer's CustomResourceDefinitions (from the same module version as its binary) with
// server-side apply, and waits until the API server serves them.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeClusterClient, KubeObject } from '../kube/client.js';

/** The CRDs in some manifest files (other kinds in them are skipped). */
export function readCrds(files: readonly string[]): KubeObject[] {
  const out: KubeObject[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubeObject | null;
      if (obj?.kind !== 'CustomResourceDefinition') continue;
      // A conversion webhook points at a Service in the cluster; on a simulated runtime nothing
      // would answer it, and a CRD of a single stored version needs none.
      const spec = obj['spec'] as { conversion?: { strategy?: string } } | undefined;
      if (spec?.conversion?.strategy === 'Webhook') spec.conversion = { strategy: 'None' };
      out.push(obj);
    }
  }
  return out;
}

function established(obj: KubeObject | undefined): boolean {
  const conditions = (obj?.['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Established' && c.status === 'True');
}

/** Applies the CRDs and resolves with their names once every one is Established. */
export async function installCrds(client: KubeClusterClient, files: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string[]> {
  const crds = readCrds(files);
  for (const crd of crds) await client.apply(crd, { fieldManager: 'threeport-support-peers' });
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const pending = new Set(crds.map((c) => c.metadata.name));
  while (pending.size > 0) {
    for (const name of [...pending]) {
      const got = await client.get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
      if (established(got)) pending.delete(name);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) throw new Error(`CRDs not Established in time: ${[...pending].join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return crds.map((c) => c.metadata.name);
}

/** Deletes CRDs (and with them every object of their kinds). */
export async function removeCrds(client: KubeClusterClient, names: readonly string[]): Promise<void> {
  for (const name of names) await client.delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
}
