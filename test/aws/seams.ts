// Test implementations of the AWS controller's seams. moto's EKS endpoint and CA and its RDS
// endpoints are fake, so the tests point the connection resolver at a local Kubernetes test
// cluster and the database resolver at a local PostgreSQL. A stand-in workload reconciler applies
// the WRIs the AWS controllers add, the way the workload controller does (spec §3.1 WI Updated).
import pg from 'pg';
import type { ClusterConnection, ClusterConnectionResolver } from '../../src/providers/aws/connection.js';
import type { DatabaseEndpoint, DatabaseEndpointRequest, DatabaseEndpointResolver } from '../../src/providers/aws/rds.js';
import { KubernetesRuntimeInstance } from '../../src/kinds/kubernetes-runtime.js';
import { WorkloadInstance, WorkloadResourceInstance } from '../../src/kinds/workload.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { ReconcileError } from '../../src/reconcile/errors.js';
import type { Reconciler } from '../../src/reconcile/types.js';
import { connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { kubeClusterClient, type KubeClusterClient, type KubeObject } from '../../src/providers/kube/client.js';
import { KubeError } from '../../src/providers/kube/errors.js';

/** Every EKS cluster "is" this local cluster: its endpoint, CA and admin client certificate. */
export class LocalClusterResolver implements ClusterConnectionResolver {
  calls = 0;
  constructor(private readonly cluster: { server: string; caPem: string; clientCertPem: string; clientKeyPem: string }) {}
  async resolve(): Promise<ClusterConnection> {
    this.calls++;
    return {
      apiEndpoint: this.cluster.server,
      caCertificate: this.cluster.caPem,
      certificate: this.cluster.clientCertPem,
      certificateKey: this.cluster.clientKeyPem,
    };
  }
}

/**
 * Every RDS instance "is" a database on this local PostgreSQL: the resolver creates the role with
 * the generated credentials and the database, as RDS would have, and returns 127.0.0.1:<port>.
 */
export class LocalPostgresResolver implements DatabaseEndpointResolver {
  readonly requests: DatabaseEndpointRequest[] = [];
  constructor(private readonly adminUrl: string) {}
  async resolve(request: DatabaseEndpointRequest): Promise<DatabaseEndpoint> {
    this.requests.push(request);
    const client = new pg.Client({ connectionString: this.adminUrl });
    await client.connect();
    try {
      const role = client.escapeIdentifier(request.username);
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [request.username]);
      await client.query(
        `${exists.rowCount ? 'ALTER' : 'CREATE'} ROLE ${role} LOGIN PASSWORD ${client.escapeLiteral(request.password)}`,
      );
      const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [request.databaseName]);
      if (!db.rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(request.databaseName)} OWNER ${role}`);
    } finally {
      await client.end();
    }
    const url = new URL(this.adminUrl);
    return { host: url.hostname, port: Number(url.port) };
  }
}

function manifest(wri: JsonObject): KubeObject {
  const d = wri['JSONDefinition'];
  return (typeof d === 'string' ? JSON.parse(d) : d) as KubeObject;
}

/**
 * Stands in for the workload controller: applies a WorkloadInstance's unreconciled WRIs to its
 * runtime's cluster (server-side apply), deletes those scheduled for deletion, and marks them
 * reconciled. Kinds the cluster does not serve (e.g. ExternalSecret without the operator) are
 * recorded in `skipped`.
 */
export function standInWorkloadReconciler(decrypt: (c: string) => string): Reconciler & { skipped: string[]; applied: string[] } {
  const clients = new Map<string, KubeClusterClient>();
  const skipped: string[] = [];
  const applied: string[] = [];
  async function clientFor(store: import('../../src/store/object-store.js').ObjectStore, wi: JsonObject): Promise<KubeClusterClient> {
    const kri = await store.getObject(KubernetesRuntimeInstance, Number(wi['KubernetesRuntimeInstanceID']));
    if (!kri['APIEndpoint']) throw new ReconcileError(`waiting for KubernetesRuntimeInstance ${String(kri['ID'])} to have an APIEndpoint`);
    const key = `${String(kri['APIEndpoint'])}`;
    let c = clients.get(key);
    if (!c) {
      c = kubeClusterClient(connectionFromRuntimeInstance(kri, decrypt, { inCluster: false }));
      clients.set(key, c);
    }
    return c;
  }
  const sync: Reconciler['updated'] = async (ctx, wi) => {
    const client = await clientFor(ctx.store, wi);
    const wris = await ctx.store.find(WorkloadResourceInstance, { WorkloadInstanceID: Number(wi['ID']) });
    // Namespaces first, as the workload controller does.
    wris.sort((a, b) => Number(manifest(b).kind === 'Namespace') - Number(manifest(a).kind === 'Namespace'));
    for (const wri of wris) {
      if (wri['Reconciled'] === true) continue;
      const obj = manifest(wri);
      const id = Number(wri['ID']);
      if (wri['ScheduledForDeletion']) {
        await client.delete({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}) });
        await ctx.store.softDelete(WorkloadResourceInstance, id);
        continue;
      }
      try {
        await client.apply(obj);
        applied.push(`${obj.kind}/${obj.metadata.name}`);
      } catch (err) {
        if (!(err instanceof KubeError && err.failure === 'UnknownKind')) throw err;
        skipped.push(`${obj.kind}/${obj.metadata.name}`);
      }
      await ctx.store.patch(WorkloadResourceInstance, id, { Reconciled: true });
    }
  };
  return {
    kind: WorkloadInstance.name,
    controller: 'WorkloadController',
    skipped,
    applied,
    created: sync,
    updated: sync,
    async deleted(ctx, wi) {
      const client = await clientFor(ctx.store, wi).catch(() => undefined);
      for (const wri of await ctx.store.find(WorkloadResourceInstance, { WorkloadInstanceID: Number(wi['ID']) })) {
        const obj = manifest(wri);
        if (client && obj.kind !== 'Namespace') {
          await client
            .delete({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}) })
            .catch(() => undefined);
        }
        await ctx.store.softDelete(WorkloadResourceInstance, Number(wri['ID']));
      }
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}
