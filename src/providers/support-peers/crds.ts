// Installs a peer's CustomResourceDefinitions (from the same module version as its binary) on a
// simulated runtime with server-side apply, and waits until the API server serves them. (Real
// clusters get them from the peers' Helm charts.)
//
// The requests are plain JSON over HTTPS, not the kube provider's client: client-node serializes
// known kinds through its generated models, which drop the `x-kubernetes-*` keys of a CRD's
// schema, and the API server then rejects cert-manager's CRDs as non-structural.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../kube/client.js';
import type { KubeConnection } from '../kube/connection.js';
import { kubeRequest, type KubeCredentials } from '../runtimes/kwok/http.js';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const FIELD_MANAGER = 'threeport-support-peers';

function credentials(conn: KubeConnection): KubeCredentials {
  if (!conn.caPem || !conn.clientCertPem || !conn.clientKeyPem) {
    throw new Error(`${conn.label}: installing support-peer CRDs needs a client-certificate connection (simulated runtimes)`);
  }
  return { server: conn.server, caPem: conn.caPem, clientCertPem: conn.clientCertPem, clientKeyPem: conn.clientKeyPem };
}

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
export async function installCrds(conn: KubeConnection, files: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string[]> {
  const creds = credentials(conn);
  const crds = readCrds(files);
  for (const crd of crds) {
    const name = encodeURIComponent(crd.metadata.name);
    const res = await kubeRequest(creds, 'PATCH', `${CRD_PATH}/${name}?fieldManager=${FIELD_MANAGER}&force=true`, {
      body: crd,
      contentType: 'application/apply-patch+yaml',
      timeoutMs: 30_000,
    });
    if (res.status >= 300) {
      const message = (res.json as { message?: string } | undefined)?.message ?? res.body.slice(0, 500);
      throw new Error(`${conn.label}: applying CustomResourceDefinition ${crd.metadata.name} failed: HTTP ${res.status}: ${message}`);
    }
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const pending = new Set(crds.map((c) => c.metadata.name));
  while (pending.size > 0) {
    for (const name of [...pending]) {
      const res = await kubeRequest(creds, 'GET', `${CRD_PATH}/${encodeURIComponent(name)}`);
      if (res.status === 200 && established(res.json as KubeObject)) pending.delete(name);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) throw new Error(`${conn.label}: CRDs not Established in time: ${[...pending].join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return crds.map((c) => c.metadata.name);
}

/** Deletes CRDs (and with them every object of their kinds); a missing one is not an error. */
export async function removeCrds(conn: KubeConnection, names: readonly string[]): Promise<void> {
  const creds = credentials(conn);
  for (const name of names) {
    const res = await kubeRequest(creds, 'DELETE', `${CRD_PATH}/${encodeURIComponent(name)}`);
    if (res.status >= 300 && res.status !== 404) throw new Error(`${conn.label}: deleting CustomResourceDefinition ${name} failed: HTTP ${res.status}`);
  }
}
