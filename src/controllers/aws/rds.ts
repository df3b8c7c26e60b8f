// AwsRelationalDatabaseInstance reconciler (spec §3.3 "RDS Created").
//
// Created/Updated:
//  1. attach the instance to its WorkloadInstance (AttachedObjectReference);
//  2. wait for the workload's EKS runtime (asking a deferred runtime to provision now);
//  3. credentials: read from the workload's connection Secret WRI once it exists; before that,
//     generated (user: 12 letters, password: 32 letters and digits) and held in this process
//     only, under a random label that the inventory records with the instance they created;
//  4. the RDS stack (security group, subnet group, instance), recorded in ResourceInventory;
//  5. if the credentials held are not the instance's (this process did not create it: a crash
//     or another replica), set them with ModifyDBInstance; then write the Secret WRI (db-endpoint,
//     db-port, db-name, db-user, db-password); its transaction leaves the WorkloadInstance
//     Reconciled: false (declared `supplies`), so its controller applies it (spec §1.6). The Secret is only ever written complete: the
//     workload controller applies every WRI another controller adds, whatever its Reconciled.
// Deleted: schedule the Secret WRI for deletion (which marks the workload), delete the stack in
// reverse, drop the attached reference.
import { AwsRelationalDatabaseDefinition, AwsRelationalDatabaseInstance } from '../../kinds/aws.js';
import { RDS_ENGINE_VERSIONS, RDS_MACHINE_SIZES } from '../../kinds/locations.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { randomUUID } from 'node:crypto';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { dbIdentifier, deleteDatabase, describeDbInstance, provisionDatabase, resetMasterPassword } from '../../providers/aws/rds.js';
import type { ResourceInventory } from '../../providers/aws/inventory.js';
import { stackName } from '../../providers/aws/tags.js';
import {
  OWNER_ANNOTATION_PREFIX,
  annotations,
  canonical,
  createWri,
  ensureAttached,
  generateDatabaseCredentials,
  getOrUndefined,
  idOf,
  inventoryOf,
  label,
  loadAccount,
  metadata,
  ownedWri,
  removeAttached,
  scheduleWriDeletion,
  updateWri,
  workloadNamespace,
  workloadResources,
  workloadRuntime,
} from './common.js';
import { edgesOf } from '../graph.js';
import type { AwsControllerDeps } from './deps.js';

const KIND = AwsRelationalDatabaseInstance.name;
export const RDS_OWNER_KEY = 'aws-relational-database-instance';

/** The keys of the workload's connection Secret (spec §3.3). */
export const DB_SECRET_KEYS = ['db-endpoint', 'db-port', 'db-name', 'db-user', 'db-password'] as const;

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

function secretManifest(input: {
  name: string;
  namespace: string | undefined;
  ownerId: number;
  endpoint: string;
  port: number;
  database: string;
  username: string;
  password: string;
}): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: input.name,
      ...(input.namespace ? { namespace: input.namespace } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'threeport' },
      annotations: { [`${OWNER_ANNOTATION_PREFIX}${RDS_OWNER_KEY}`]: String(input.ownerId) },
    },
    type: 'Opaque',
    data: {
      'db-endpoint': b64(input.endpoint),
      'db-port': b64(String(input.port)),
      'db-name': b64(input.database),
      'db-user': b64(input.username),
      'db-password': b64(input.password),
    },
  };
}

function credentialsFrom(def: JsonObject): { username: string; password: string } | undefined {
  const data = (def['data'] ?? {}) as Record<string, string>;
  const user = data['db-user'] ? Buffer.from(data['db-user'], 'base64').toString('utf8') : '';
  const password = data['db-password'] ? Buffer.from(data['db-password'], 'base64').toString('utf8') : '';
  return user && password ? { username: user, password } : undefined;
}

function checkDefinition(def: JsonObject, what: string): void {
  const engine = String(def['Engine']);
  const versions = RDS_ENGINE_VERSIONS[engine];
  if (!versions) throw new TerminalError(`${what}: Engine ${JSON.stringify(engine)} is not one of ${Object.keys(RDS_ENGINE_VERSIONS).join(', ')}`);
  const version = String(def['EngineVersion']);
  if (!versions.some((m) => version === m || version.startsWith(`${m}.`))) {
    throw new TerminalError(`${what}: EngineVersion ${JSON.stringify(def['EngineVersion'])} is not supported for ${engine}; use one of ${versions.join(', ')}`);
  }
  if (!RDS_MACHINE_SIZES[String(def['MachineSize'])]) {
    throw new TerminalError(`${what}: MachineSize ${JSON.stringify(def['MachineSize'])} is not one of ${Object.keys(RDS_MACHINE_SIZES).join(', ')}`);
  }
}

export function rdsReconciler(deps: AwsControllerDeps): Reconciler {
  /** Credentials generated for instances whose Secret is not written yet, by object ID. Never persisted. */
  const pendingCredentials = new Map<number, { username: string; password: string; label: string }>();
  const saver = (ctx: ReconcileContext) => async (inventory: ResourceInventory) => {
    const status = inventory.waitingFor ? `${inventory.phase}: waiting for ${inventory.waitingFor}` : inventory.phase;
    const { delivered: _, ...saved } = inventory;
    await ctx.patchSelf({ ResourceInventory: saved as unknown as JsonObject, Status: status });
  };

  async function reconcile(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    const id = idOf(obj)!;
    const what = label(KIND, obj);
    const def = await getOrUndefined(ctx.store, AwsRelationalDatabaseDefinition, idOf(obj, 'AwsRelationalDatabaseDefinitionID'));
    if (!def) throw new TerminalError(`${what}: its AwsRelationalDatabaseDefinition does not exist`);
    checkDefinition(def, what);
    const wiId = idOf(obj, 'WorkloadInstanceID')!;
    const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
    if (!wi) throw new TerminalError(`${what}: WorkloadInstance ${wiId} does not exist`);
    if (wi['DeletionScheduled']) return; // the workload is going away and takes its dependencies with it
    await ensureAttached(ctx.store, wiId, KIND, id);

    const runtime = await workloadRuntime(ctx.store, wi, what);
    if (!runtime.ready) {
      await ctx.patchSelf({ Status: `waiting for ${runtime.waitingFor}` });
      return { requeueAfterMs: deps.waitPollMs };
    }
    const account = await loadAccount(ctx.store, idOf(def, 'AwsAccountID'), what);
    const session = deps.provider(ctx.store).session(account, runtime.network.region);
    const stack = stackName(String(obj['Name'] ?? 'db'), id);
    if (!obj['CreationAcknowledged']) await ctx.patchSelf({ CreationAcknowledged: new Date(ctx.clock.now()).toISOString() });

    // Credentials: the Secret WRI's once it exists; before that, held in this process only.
    const wris = await workloadResources(ctx.store, wiId);
    const secret = ownedWri(wris, RDS_OWNER_KEY, id, 'Secret');
    const delivered = secret ? credentialsFrom(secret.def) : undefined;
    const inventory = inventoryOf(obj);
    const port = Number(def['DatabasePort']);
    const database = String(def['DatabaseName']);
    const base = { name: String(def['WorkloadSecretName']), namespace: workloadNamespace(wris), ownerId: id, port, database };
    let held = pendingCredentials.get(id);
    if (!delivered && !held) {
      held = { ...generateDatabaseCredentials(), label: randomUUID() };
      pendingCredentials.set(id, held);
    }
    const credentials = delivered ?? held!;
    const credentialsLabel = delivered ? 'delivered' : held!.label;
    let result;
    result = await provisionDatabase({
      session,
      stack,
      network: runtime.network,
      db: {
        engine: String(def['Engine']),
        engineVersion: String(def['EngineVersion']),
        databaseName: database,
        port,
        backupDays: Number(def['BackupDays'] ?? 0),
        instanceClass: RDS_MACHINE_SIZES[String(def['MachineSize'])]!,
        storageGb: Number(def['StorageGb']),
      },
      credentials: { username: credentials.username, password: credentials.password },
      credentialsLabel,
      inventory,
      save: saver(ctx),
      signal: ctx.signal,
      pollMs: deps.waitPollMs,
    });
    if (!result.done) return { requeueAfterMs: result.pollMs };

    const entry = result.inventory.resources['db-instance']!;
    let username = credentials.username;
    if (!delivered && entry['credentialsLabel'] !== credentialsLabel) {
      // Not created with the credentials held here (a crash, another replica, or a lost Secret): set the password.
      await resetMasterPassword(session, dbIdentifier(stack), credentials.password, ctx.signal);
      ctx.log.info({ instance: dbIdentifier(stack) }, 'set a new master password on an RDS instance whose credentials this process did not hold');
    }
    if (typeof entry['masterUsername'] === 'string' && entry['masterUsername'] !== '') username = entry['masterUsername'];
    const instance = await describeDbInstance(session, dbIdentifier(stack), ctx.signal);
    if (!instance) return { requeueAfterMs: deps.waitPollMs };
    const endpoint = await deps.databaseResolver.resolve({
      instance,
      engine: String(def['Engine']),
      databaseName: database,
      port,
      username,
      password: credentials.password,
    });
    const manifest = secretManifest({ ...base, port: endpoint.port, endpoint: endpoint.host, username, password: credentials.password });
    if (!secret) {
      // The workload, left Reconciled: false by the same transaction, applies it.
      await createWri(ctx, wiId, manifest);
    } else {
      // Compare what we own: the workload controller adds labels and the namespace to the WRI.
      const same = canonical(manifest['data']) === canonical(secret.def['data']) && metadata(secret.def)['name'] === base.name;
      if (!same) {
        const current = metadata(secret.def);
        const wanted = metadata(manifest);
        await updateWri(ctx, secret.id, {
          ...secret.def,
          ...manifest,
          metadata: {
            ...current,
            ...wanted,
            labels: { ...((current['labels'] ?? {}) as JsonObject), ...((wanted['labels'] ?? {}) as JsonObject) },
            annotations: { ...annotations(secret.def), ...annotations(manifest) },
          },
        });
      }
    }
    pendingCredentials.delete(id);
    if (!obj['CreationConfirmed'] || inventoryOf(obj)?.delivered !== true) {
      await ctx.patchSelf({
        ResourceInventory: { ...result.inventory, delivered: true } as unknown as JsonObject,
        CreationConfirmed: obj['CreationConfirmed'] ?? new Date(ctx.clock.now()).toISOString(),
        Status: `created: ${String(def['Engine'])} ${String(def['EngineVersion'])} instance ${dbIdentifier(stack)}; connection Secret ${base.name}`,
      });
    }
    return;
  }

  return {
    kind: KIND,
    // Its WRIs leave the workload Reconciled: false in their transaction (src/controllers/graph.ts).
    ...edgesOf(KIND),
    controller: 'AwsController',
    created: reconcile,
    updated: reconcile,
    async deleted(ctx, obj) {
      const id = idOf(obj)!;
      const wiId = idOf(obj, 'WorkloadInstanceID');
      const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
      if (wi && wiId !== undefined) {
        const secret = ownedWri(await workloadResources(ctx.store, wiId), RDS_OWNER_KEY, id);
        // The workload, left Reconciled: false by the same transaction, removes it from the cluster.
        if (secret && !secret.scheduledForDeletion) await scheduleWriDeletion(ctx, secret.id, ctx.clock.now());
      }
      const inventory = inventoryOf(obj);
      if (inventory && inventory.phase !== 'deleted' && inventory.phase !== 'deferred') {
        if (!obj['DeletionAcknowledged']) await ctx.patchSelf({ DeletionAcknowledged: new Date(ctx.clock.now()).toISOString() });
        const def = await getOrUndefined(ctx.store, AwsRelationalDatabaseDefinition, idOf(obj, 'AwsRelationalDatabaseDefinitionID'));
        const account = await loadAccount(ctx.store, def ? idOf(def, 'AwsAccountID') : undefined, label(KIND, obj));
        const session = deps.provider(ctx.store).session(account, inventory.region);
        let result;
        result = await deleteDatabase({ session, stack: inventory.stack, inventory, save: saver(ctx), signal: ctx.signal, pollMs: deps.waitPollMs });
        if (!result.done) return { requeueAfterMs: result.pollMs };
      }
      await removeAttached(ctx.store, wiId, KIND, id);
      return;
    },
  };
}
