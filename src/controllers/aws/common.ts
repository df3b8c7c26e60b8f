// Pieces the AWS reconcilers share: accounts, the runtime a workload runs on,
// workload resource instances (WRIs), attached references, and which objects use a runtime.
import { randomInt } from 'node:crypto';
import { AwsAccount, AwsEksKubernetesRuntimeInstance } from '../../kinds/aws.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { AttachedObjectReference } from '../../kinds/events.js';
import { WorkloadResourceInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { RUNTIME_USERS } from '../graph.js';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext } from '../../reconcile/types.js';
import type { AwsAccountRecord } from '../../providers/aws/credentials.js';
import { parseInventory, type ResourceInventory } from '../../providers/aws/inventory.js';
import { runtimeNetwork, type RuntimeNetwork } from '../../providers/aws/eks.js';

export function label(kind: string, o: JsonObject): string {
  return `${kind} ${JSON.stringify(o['Name'] ?? '?')} (ID ${String(o['ID'] ?? '?')})`;
}

export function idOf(o: JsonObject, field = 'ID'): number | undefined {
  const v = o[field];
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The account by ID, or the default account when `id` is empty (spec §3.2). */
export async function loadAccount(store: ObjectStore, id: number | undefined, forWhat: string): Promise<AwsAccountRecord> {
  if (id !== undefined) {
    try {
      return (await store.getObject(AwsAccount, id)) as AwsAccountRecord;
    } catch (err) {
      if (err instanceof NotFoundError) throw new TerminalError(`${forWhat}: AwsAccount ${id} does not exist`);
      throw err;
    }
  }
  const [account] = await store.find(AwsAccount, { DefaultAccount: true });
  if (!account) throw new TerminalError(`${forWhat}: no AwsAccount given and no default AwsAccount (DefaultAccount: true) exists`);
  return account as AwsAccountRecord;
}

export async function getOrUndefined(store: ObjectStore, kind: Parameters<ObjectStore['getObject']>[0], id: number | undefined): Promise<JsonObject | undefined> {
  if (id === undefined) return undefined;
  try {
    return await store.getObject(kind, id);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

// ---- lazy provisioning -------------------------------------------------------------

/** The first object that uses the runtime (a WorkloadInstance, HelmWorkloadInstance, ControlPlaneInstance, ...), if any. */
export async function runtimeUser(store: ObjectStore, kriId: number): Promise<string | undefined> {
  for (const kind of RUNTIME_USERS) {
    const page = await store.list(kind, { KubernetesRuntimeInstanceID: kriId }, 1, 1);
    const first = page.items[0];
    if (first) return label(kind.name, JSON.parse(first) as JsonObject);
  }
  return undefined;
}

// ---- the runtime a workload runs on -----------------------------------------------------

export type RuntimeReadiness =
  | { ready: true; network: RuntimeNetwork; eks: JsonObject; kri: JsonObject }
  | { ready: false; waitingFor: string };

/**
 * The network of the EKS cluster a WorkloadInstance runs on, once it is provisioned. A runtime that
 * waits for its first user was woken by this workload's creation (src/controllers/graph.ts).
 */
export async function workloadRuntime(store: ObjectStore, wi: JsonObject, forWhat: string): Promise<RuntimeReadiness> {
  const kriId = idOf(wi, 'KubernetesRuntimeInstanceID');
  const kri = await getOrUndefined(store, KubernetesRuntimeInstance, kriId);
  if (!kri || kriId === undefined) throw new TerminalError(`${forWhat}: ${label('WorkloadInstance', wi)} has no KubernetesRuntimeInstance`);
  const [eks] = await store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: kriId });
  if (!eks) {
    const def = await getOrUndefined(store, KubernetesRuntimeDefinition, idOf(kri, 'KubernetesRuntimeDefinitionID'));
    const provider = def?.['InfraProvider'];
    if (provider !== undefined && provider !== 'eks') {
      throw new TerminalError(
        `${forWhat} needs an EKS runtime for its network, but ${label('WorkloadInstance', wi)} runs on ${label('KubernetesRuntimeInstance', kri)} (InfraProvider ${String(provider)})`,
      );
    }
    return { ready: false, waitingFor: `the AwsEksKubernetesRuntimeInstance of ${label('KubernetesRuntimeInstance', kri)} to be created` };
  }
  const inv = parseInventory(eks['ResourceInventory']);
  const network = runtimeNetwork(inv);
  if (network) return { ready: true, network, eks, kri };
  const what = inv?.waitingFor ? `: ${inv.waitingFor}` : inv ? ` (${inv.phase})` : '';
  return { ready: false, waitingFor: `EKS runtime ${label('KubernetesRuntimeInstance', kri)} to be provisioned${what}` };
}

// ---- workload resource instances ---------------------------------------------------------

export const OWNER_ANNOTATION_PREFIX = 'control-plane.threeport.io/';

export interface Wri {
  id: number;
  def: JsonObject;
  reconciled: boolean;
  scheduledForDeletion: boolean;
}

export function manifestOf(wri: JsonObject): JsonObject {
  const d = wri['JSONDefinition'];
  if (typeof d === 'string') {
    try {
      return JSON.parse(d) as JsonObject;
    } catch {
      return {};
    }
  }
  return (d ?? {}) as JsonObject;
}

export async function workloadResources(store: ObjectStore, wiId: number): Promise<Wri[]> {
  const rows = await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId });
  return rows.map((r) => ({
    id: idOf(r)!,
    def: manifestOf(r),
    reconciled: r['Reconciled'] === true,
    scheduledForDeletion: Boolean(r['ScheduledForDeletion']),
  }));
}

export function metadata(def: JsonObject): JsonObject {
  return (def['metadata'] ?? {}) as JsonObject;
}

export function annotations(def: JsonObject): Record<string, string> {
  return (metadata(def)['annotations'] ?? {}) as Record<string, string>;
}

/** The WRI a controller created for its object, found by its owner annotation. */
export function ownedWri(wris: Wri[], ownerKey: string, ownerId: number, kind?: string): Wri | undefined {
  return wris.find(
    (w) => annotations(w.def)[`${OWNER_ANNOTATION_PREFIX}${ownerKey}`] === String(ownerId) && (kind === undefined || w.def['kind'] === kind),
  );
}

/** The namespace the workload's resources live in, when a Namespace WRI says so. */
export function workloadNamespace(wris: Wri[]): string | undefined {
  const ns = wris.find((w) => w.def['kind'] === 'Namespace' && !w.scheduledForDeletion);
  const name = ns ? metadata(ns.def)['name'] : undefined;
  return typeof name === 'string' ? name : undefined;
}

/** Kinds whose pod template gets the bucket env var (spec §3.3: pod abstractions). */
export const POD_ABSTRACTIONS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'];

/** The pod spec inside a pod abstraction, or undefined. */
export function podSpecOf(def: JsonObject): JsonObject | undefined {
  const spec = def['spec'] as JsonObject | undefined;
  if (!spec) return undefined;
  if (def['kind'] === 'CronJob') {
    const job = (spec['jobTemplate'] as JsonObject | undefined)?.['spec'] as JsonObject | undefined;
    return ((job?.['template'] as JsonObject | undefined)?.['spec'] as JsonObject | undefined) ?? undefined;
  }
  return ((spec['template'] as JsonObject | undefined)?.['spec'] as JsonObject | undefined) ?? undefined;
}

/**
 * Adds a resource to a workload. `heldBack` creates it as Reconciled:true, so the workload controller does
 * not apply it until a later updateWri marks it Reconciled:false.
 */
// Each write runs in a transaction of the reconcile (`ctx.transaction`): RDS and S3 declare that
// they supply their workload (src/controllers/graph.ts), so the engine leaves the WorkloadInstance
// `Reconciled: false` in the same transaction and its controller applies the change (spec §1.6).

export async function createWri(ctx: ReconcileContext, wiId: number, def: JsonObject, options: { heldBack?: boolean } = {}): Promise<number> {
  const created = await ctx.transaction((tx) =>
    tx.create(WorkloadResourceInstance, { JSONDefinition: def, WorkloadInstanceID: wiId, Reconciled: options.heldBack === true }),
  );
  return idOf(created)!;
}

export async function updateWri(ctx: ReconcileContext, wriId: number, def: JsonObject): Promise<void> {
  await ctx.transaction((tx) => tx.patch(WorkloadResourceInstance, wriId, { JSONDefinition: def, Reconciled: false }));
}

export async function scheduleWriDeletion(ctx: ReconcileContext, wriId: number, now: number): Promise<void> {
  try {
    await ctx.transaction((tx) => tx.patch(WorkloadResourceInstance, wriId, { ScheduledForDeletion: new Date(now).toISOString(), Reconciled: false }));
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
}

// ---- attached references ---------------------------------------------------------------

/** Links the dependency to its WorkloadInstance (spec §1.8), once. */
export async function ensureAttached(store: ObjectStore, wiId: number, kind: string, id: number): Promise<void> {
  const ref = { ObjectType: 'v0.WorkloadInstance', ObjectID: wiId, AttachedObjectType: `v0.${kind}`, AttachedObjectID: id };
  if ((await store.find(AttachedObjectReference, ref)).length > 0) return;
  try {
    await store.create(AttachedObjectReference, ref);
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
}

export async function removeAttached(store: ObjectStore, wiId: number | undefined, kind: string, id: number): Promise<void> {
  const filter: JsonObject = { AttachedObjectType: `v0.${kind}`, AttachedObjectID: id };
  if (wiId !== undefined) filter['ObjectID'] = wiId;
  await store.deleteWhere(AttachedObjectReference, filter);
}

// ---- credentials ------------------------------------------------------------------------

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function randomFrom(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** Upstream's generated database credentials: 12 random letters, 32 random letters and digits. */
export function generateDatabaseCredentials(): { username: string; password: string } {
  return { username: randomFrom(LETTERS, 12), password: randomFrom(ALNUM, 32) };
}

export function inventoryOf(o: JsonObject): ResourceInventory | undefined {
  return parseInventory(o['ResourceInventory']);
}

/** JSON with object keys sorted: stored JSON (jsonb) does not keep key order, so compare this way. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
