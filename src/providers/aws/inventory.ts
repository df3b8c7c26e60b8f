// Provisioning as an ordered list of idempotent steps, driven by a resource
// inventory that is saved after every step.
//
// - Create runs the steps in order. A step whose inventory entry is ready is
//   skipped; any other step "ensures" its resource: it looks the resource up
//   by its tags (or its deterministic name) and creates it only when it is
//   missing, so a crash between a create call and the inventory write finds
//   the resource on the next run instead of making a second one.
// - A step may answer "not ready yet" (an EKS cluster still CREATING): the
//   run stops there and says what it waits for and when to look again. The
//   caller (a reconciler) requeues; nothing here sleeps.
// - Delete runs the steps in reverse. Each removes what its entry names plus
//   whatever its tags find, tolerates NotFound, and may also answer "not gone
//   yet". An entry leaves the inventory once its resource is gone.
export const INVENTORY_FORMAT = 'threeport.aws/v1';

export type InventoryPhase = 'deferred' | 'creating' | 'created' | 'deleting' | 'deleted';

/** One provisioned resource. `id` is what AWS calls it (vpc-…, a role name, a cluster name). */
export interface InventoryEntry {
  id: string;
  arn?: string;
  /** False while the resource exists but is not usable yet (CREATING). */
  ready: boolean;
  [detail: string]: unknown;
}

/** The JSON recorded in `ResourceInventory` on the instance object. */
export interface ResourceInventory {
  format: typeof INVENTORY_FORMAT;
  /** The tag value (`threeport:stack`) on every resource, and the base of every name. */
  stack: string;
  region: string;
  phase: InventoryPhase;
  /** Step key → entry. Steps define the order; JSON object order is not relied on. */
  resources: Record<string, InventoryEntry>;
  /** What the last run stopped at, for statuses. */
  waitingFor?: string;
  /**
   * The controller delivered the resource to its workload (an RDS connection Secret written, an S3
   * bucket wired into the workload's resources). Structured state, so that no controller reads its
   * own free-text Status back. Any later save of the inventory clears it, as it rewrites Status.
   */
  delivered?: boolean;
}

export function newInventory(stack: string, region: string, phase: InventoryPhase = 'creating'): ResourceInventory {
  return { format: INVENTORY_FORMAT, stack, region, phase, resources: {} };
}

/** Reads a stored inventory; anything else (null, an upstream aws-builder inventory) gives undefined. */
export function parseInventory(value: unknown): ResourceInventory | undefined {
  if (typeof value === 'string') {
    try {
      return parseInventory(JSON.parse(value));
    } catch {
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<ResourceInventory>;
  if (v.format !== INVENTORY_FORMAT || typeof v.stack !== 'string' || typeof v.resources !== 'object' || v.resources === null) {
    return undefined;
  }
  return { ...(v as ResourceInventory), resources: { ...v.resources } };
}

export type EnsureResult =
  | { entry: InventoryEntry; ready?: true }
  | { entry: InventoryEntry; ready: false; waitingFor: string; pollMs: number };

export type RemoveResult = { gone: true } | { gone: false; waitingFor: string; pollMs: number };

export interface Step<C> {
  /** Inventory key, also the `threeport:resource` tag value: `vpc`, `subnet-private-1`, `cluster`. */
  readonly key: string;
  /** For statuses and logs: "VPC", "NAT gateway". */
  readonly title: string;
  ensure(ctx: C, inventory: ResourceInventory): Promise<EnsureResult>;
  remove(ctx: C, inventory: ResourceInventory): Promise<RemoveResult>;
}

export type RunResult = { done: true } | { done: false; waitingFor: string; pollMs: number };

export interface RunOptions {
  /** Persists the inventory (the instance's ResourceInventory); called after every change. */
  save: (inventory: ResourceInventory) => Promise<void>;
  signal?: AbortSignal;
  /** Observes progress: a step ensured (created or found) or removed. */
  onStep?: (event: { key: string; action: 'ensured' | 'waiting' | 'removed'; ready?: boolean }) => void;
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof Error ? reason : new Error('provisioning was aborted');
  }
}

export async function runCreate<C>(steps: readonly Step<C>[], ctx: C, inventory: ResourceInventory, options: RunOptions): Promise<RunResult> {
  if (inventory.phase !== 'creating') {
    inventory.phase = 'creating';
    await options.save(inventory);
  }
  for (const step of steps) {
    checkAbort(options.signal);
    if (inventory.resources[step.key]?.ready) continue;
    const result = await step.ensure(ctx, inventory);
    inventory.resources[step.key] = { ...result.entry, ready: result.ready !== false };
    if (result.ready === false) {
      inventory.waitingFor = result.waitingFor;
      await options.save(inventory);
      options.onStep?.({ key: step.key, action: 'waiting', ready: false });
      return { done: false, waitingFor: result.waitingFor, pollMs: result.pollMs };
    }
    delete inventory.waitingFor;
    await options.save(inventory);
    options.onStep?.({ key: step.key, action: 'ensured', ready: true });
  }
  inventory.phase = 'created';
  delete inventory.waitingFor;
  await options.save(inventory);
  return { done: true };
}

export async function runDelete<C>(steps: readonly Step<C>[], ctx: C, inventory: ResourceInventory, options: RunOptions): Promise<RunResult> {
  if (inventory.phase !== 'deleting') {
    inventory.phase = 'deleting';
    await options.save(inventory);
  }
  for (const step of [...steps].reverse()) {
    checkAbort(options.signal);
    const result = await step.remove(ctx, inventory);
    if (!result.gone) {
      inventory.waitingFor = result.waitingFor;
      const entry = inventory.resources[step.key];
      if (entry) entry.ready = false;
      await options.save(inventory);
      options.onStep?.({ key: step.key, action: 'waiting' });
      return { done: false, waitingFor: result.waitingFor, pollMs: result.pollMs };
    }
    if (step.key in inventory.resources || inventory.waitingFor !== undefined) {
      delete inventory.resources[step.key];
      delete inventory.waitingFor;
      await options.save(inventory);
    }
    options.onStep?.({ key: step.key, action: 'removed' });
  }
  inventory.phase = 'deleted';
  delete inventory.waitingFor;
  inventory.resources = {};
  await options.save(inventory);
  return { done: true };
}
