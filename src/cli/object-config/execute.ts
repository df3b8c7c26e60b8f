// Turns planned objects into API calls, as a rollback-able list of operations:
// everything that can be checked before the first write is checked first
// (names that must exist, immutable fields, fields the API cannot update), and
// if a write still fails, what this run created is deleted again and what it
// changed is changed back, so nothing is left half-written.
import { isDeepStrictEqual } from 'node:util';
import type { Kind } from '../../kinds/declare.js';
import { KIND_BY_NAME, kubernetesRuntime } from '../../kinds/index.js';
import type { ThreeportClient } from '../../client/api-client.js';
import { ApiError, ObjectConflictError, ObjectNotFoundError } from '../../client/errors.js';
import type { AnyObject } from '../../client/types.js';
import type { FieldCipher } from '../../crypto/field-encryption.js';
import { CliError } from '../errors.js';
import type { Output } from '../output.js';
import type { PlannedObject, PlannedRef } from './planned.js';

export interface ExecutionContext {
  api: ThreeportClient;
  /** For messages: "on control plane x". */
  controlPlane: string;
  /** Decrypts stored values so `apply` can compare encrypted fields. */
  cipher?: FieldCipher;
  out: Output;
}

export type Mode = 'create' | 'apply';

const key = (kind: Kind, name: string) => `${kind.name}/${name}`;
const label = (kind: Kind, name: string) => `${kind.name} ${JSON.stringify(name)}`;

interface Step {
  object: PlannedObject;
  /** The object as it exists now (apply), resolved before any write. */
  existing?: AnyObject;
  /** apply: the fields to PATCH and their current values, for rollback. */
  changes?: Record<string, unknown>;
  previous?: Record<string, unknown>;
}

function apiMessage(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (HTTP ${err.status})`;
  return err instanceof Error ? err.message : String(err);
}

class RefResolver {
  readonly #cache = new Map<string, number | undefined>();
  #defaultRuntime: AnyObject | null | undefined;

  constructor(private readonly ctx: ExecutionContext) {}

  async byName(kind: Kind, name: string): Promise<AnyObject | undefined> {
    return (await this.ctx.api.findByName(kind, name)) as AnyObject | undefined;
  }

  async defaultRuntime(): Promise<AnyObject | undefined> {
    if (this.#defaultRuntime === undefined) {
      const found = await this.ctx.api.listAll(kubernetesRuntime.KubernetesRuntimeInstance, { DefaultRuntime: true });
      this.#defaultRuntime = (found[0] as AnyObject | undefined) ?? null;
    }
    return this.#defaultRuntime ?? undefined;
  }

  /** Resolves a reference that names an existing object; throws a ConfigError naming the config path when there is none. */
  async resolve(ref: PlannedRef, obj: PlannedObject): Promise<number> {
    if (ref.defaultRuntime) {
      const rt = await this.defaultRuntime();
      if (!rt) {
        throw obj.source.error(
          ref.path,
          `not given, and control plane ${JSON.stringify(this.ctx.controlPlane)} has no default KubernetesRuntimeInstance (DefaultRuntime: true); name one with KubernetesRuntimeInstance: {Name: ...}`,
        );
      }
      return rt.ID;
    }
    const k = key(ref.kind, ref.name!);
    if (!this.#cache.has(k)) this.#cache.set(k, (await this.byName(ref.kind, ref.name!))?.ID);
    const id = this.#cache.get(k);
    if (id === undefined) {
      throw obj.source.error(ref.path, `no ${(ref.named ?? ref.kind).name} named ${JSON.stringify(ref.name)} exists on control plane ${JSON.stringify(this.ctx.controlPlane)}`);
    }
    return id;
  }
}

/** Association items as a client sends them: no model fields, no back-reference, defaults applied. */
function normalizeItems(kind: Kind, items: unknown, backRef: string): unknown[] {
  if (!Array.isArray(items)) return [];
  return items
    .map((item) => {
      const out: Record<string, unknown> = {};
      for (const [name, spec] of Object.entries(kind.allFields)) {
        if (name === backRef) continue;
        const v = (item as Record<string, unknown>)[name];
        out[name] = v ?? spec.default ?? null;
      }
      return out;
    })
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

function decryptOrUndefined(cipher: FieldCipher | undefined, value: unknown): unknown {
  if (!cipher || typeof value !== 'string') return undefined;
  try {
    return cipher.decrypt(value);
  } catch {
    return undefined;
  }
}

function kindOfRef(kind: Kind, field: string): Kind | undefined {
  const spec = kind.allFields[field];
  return spec?.ref ? KIND_BY_NAME.get(spec.ref) : undefined;
}

/**
 * Checks everything that can be checked before writing: every referenced
 * name exists (or is created earlier in this run), and for `apply`, which
 * fields of existing objects change and whether the API can change them.
 */
async function prepare(objects: PlannedObject[], mode: Mode, ctx: ExecutionContext, refs: RefResolver): Promise<Step[]> {
  const planned = new Map<string, Step>();
  const steps: Step[] = [];
  for (const object of objects) {
    const step: Step = { object };
    if (mode === 'apply') {
      const existing = await refs.byName(object.kind, object.name);
      if (existing) step.existing = existing;
    }
    for (const ref of object.refs) {
      if (!ref.defaultRuntime && planned.has(key(ref.kind, ref.name!))) continue;
      await refs.resolve(ref, object);
    }
    await object.preflight?.(ctx.api, step.existing);
    checkRules(object, step.existing);
    if (step.existing) {
      const desired: Record<string, unknown> = { ...object.fields };
      for (const ref of object.refs) {
        const earlier = ref.defaultRuntime ? undefined : planned.get(key(ref.kind, ref.name!));
        if (earlier && !earlier.existing) continue; // created in this run: it cannot be the current value
        desired[ref.field] = earlier?.existing ? earlier.existing.ID : await refs.resolve(ref, object);
      }
      const changes: Record<string, unknown> = {};
      const previous: Record<string, unknown> = {};
      for (const [field, want] of Object.entries(desired)) {
        if (field === 'Name') continue;
        const spec = object.kind.allFields[field];
        if (!spec) continue;
        let have = step.existing[field];
        if (spec.transient) {
          changes[field] = want; // never stored, so never comparable: send it again
          continue;
        }
        if (spec.encrypted) have = decryptOrUndefined(ctx.cipher, have);
        if (spec.type === 'association') {
          // A list sent replaces the stored children (gateway ports); the old ones, as sent, undo it.
          const child = kindOfRef(object.kind, field);
          const before = child ? normalizeItems(child, have, spec.backRef ?? '') : [];
          if (child && !isDeepStrictEqual(normalizeItems(child, want, spec.backRef ?? ''), before)) {
            changes[field] = want;
            previous[field] = before;
          }
          continue;
        }
        if (isDeepStrictEqual(want, have ?? undefined)) continue;
        if (spec.immutable && have !== undefined && have !== null) {
          throw object.source.error(
            `${object.path}.${field}`,
            `${label(object.kind, object.name)} has ${field} ${JSON.stringify(have)}, which cannot be changed once set (the config asks for ${JSON.stringify(want)})`,
          );
        }
        changes[field] = want;
        previous[field] = spec.encrypted && have === undefined ? undefined : (have ?? null);
      }
      step.changes = changes;
      step.previous = previous;
    }
    planned.set(key(object.kind, object.name), step);
    steps.push(step);
  }
  return steps;
}

/**
 * The kind's own cross-field rules (the API applies the same ones), checked
 * before any write. References are not resolved yet, so they count as set.
 */
function checkRules(object: PlannedObject, existing: AnyObject | undefined): void {
  const { kind } = object;
  if (!kind.check) return;
  const refs = Object.fromEntries(object.refs.map((r) => [r.field, existing?.[r.field] ?? 1]));
  const candidate = existing ? { ...existing, ...object.fields, ...refs } : { ...kind.defaults, ...object.fields, ...refs };
  const problem = kind.check(candidate);
  if (problem) throw object.source.error(object.path, `${label(kind, object.name)}: ${problem}`);
}

interface Undo {
  describe: string;
  run(): Promise<string>;
}

async function deleteForRollback(ctx: ExecutionContext, kind: Kind, id: number, name: string): Promise<string> {
  try {
    const gone = (await ctx.api.delete(kind, id)) as AnyObject;
    return gone.DeletionScheduled && !gone.DeletedAt ? `${label(kind, name)} scheduled for deletion` : `${label(kind, name)} deleted`;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return `${label(kind, name)} already gone`;
    return `could not delete ${label(kind, name)}: ${apiMessage(err)}`;
  }
}

/** Creates (or, for `apply`, creates or updates) the planned objects in order; rolls back on failure. */
export async function execute(objects: PlannedObject[], mode: Mode, ctx: ExecutionContext): Promise<AnyObject[]> {
  const refs = new RefResolver(ctx);
  const steps = await prepare(objects, mode, ctx, refs);
  const ids = new Map<string, number>();
  for (const s of steps) if (s.existing) ids.set(key(s.object.kind, s.object.name), s.existing.ID);
  const undo: Undo[] = [];
  const results: AnyObject[] = [];
  const createdKeys = new Set<string>();
  for (const step of steps) {
    const { object } = step;
    const payload: Record<string, unknown> = { ...object.fields };
    try {
      for (const ref of object.refs) {
        const local = ref.defaultRuntime ? undefined : ids.get(key(ref.kind, ref.name!));
        payload[ref.field] = local ?? (await refs.resolve(ref, object));
      }
      if (step.existing) {
        const changes = { ...(step.changes ?? {}) };
        // References to objects this run created could not be compared before: compare them now.
        for (const ref of object.refs) {
          if (ref.defaultRuntime || !createdKeys.has(key(ref.kind, ref.name!))) continue;
          if (step.existing[ref.field] !== payload[ref.field]) {
            changes[ref.field] = payload[ref.field];
            step.previous = { ...(step.previous ?? {}), [ref.field]: step.existing[ref.field] ?? null };
          }
        }
        if (Object.keys(changes).length === 0) {
          ctx.out.info(`${label(object.kind, object.name)} unchanged`);
          results.push(step.existing);
          continue;
        }
        // A change must reach the object's controller: leave it unreconciled (spec §1.6).
        const body = object.kind.reconciled ? { ...changes, Reconciled: false } : changes;
        const updated = (await ctx.api.patch(object.kind, step.existing.ID, body as never)) as AnyObject;
        const previous = Object.fromEntries(Object.entries(step.previous ?? {}).filter(([, v]) => v !== undefined));
        const id = step.existing.ID;
        undo.push({
          describe: `${label(object.kind, object.name)} updated`,
          run: async () => {
            if (Object.keys(previous).length === 0) return `${label(object.kind, object.name)} left as updated (its previous values are not readable)`;
            try {
              await ctx.api.patch(object.kind, id, previous as never);
              return `${label(object.kind, object.name)} restored`;
            } catch (err) {
              return `could not restore ${label(object.kind, object.name)}: ${apiMessage(err)}`;
            }
          },
        });
        ctx.out.done(`${label(object.kind, object.name)} updated (${Object.keys(changes).join(', ')})`);
        results.push(updated);
      } else {
        const created = (await ctx.api.create(object.kind, payload as never)) as AnyObject;
        ids.set(key(object.kind, object.name), created.ID);
        createdKeys.add(key(object.kind, object.name));
        undo.push({ describe: `${label(object.kind, object.name)} created`, run: () => deleteForRollback(ctx, object.kind, created.ID, object.name) });
        ctx.out.done(`${label(object.kind, object.name)} created`);
        results.push(created);
      }
    } catch (err) {
      if (err instanceof CliError) throw await rollback(err, undo);
      const verb = step.existing ? 'updating' : 'creating';
      // A duplicate name on the first write: nothing to roll back, and `apply` is what updates existing objects.
      const hint =
        mode === 'create' && undo.length === 0 && err instanceof ObjectConflictError && /already exists/.test(err.message)
          ? '; "tptctl apply" updates existing objects in place'
          : '';
      const failure = object.source.error(object.path, `${verb} ${label(object.kind, object.name)} failed: ${apiMessage(err)}${hint}`);
      throw await rollback(failure, undo);
    }
  }
  return results;
}

async function rollback(err: Error, undo: Undo[]): Promise<Error> {
  if (undo.length === 0) return err;
  const outcomes: string[] = [];
  for (const u of [...undo].reverse()) outcomes.push(await u.run());
  err.message = `${err.message}; rolled back: ${outcomes.join(', ')}`;
  return err;
}

export interface DeleteTarget {
  kind: Kind;
  name: string;
}

export interface DeleteOptions {
  /** Wait for objects whose deletion a controller finishes (reconciled kinds). */
  wait: boolean;
  timeoutMs: number;
}

async function waitGone(ctx: ExecutionContext, kind: Kind, id: number, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const progress = ctx.out.progress(`waiting for ${label(kind, name)} to be deleted`);
  try {
    while (Date.now() < deadline) {
      try {
        await ctx.api.get(kind, id);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) return true;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  } finally {
    progress.stop();
  }
}

/**
 * Deletes the targets in the order given (dependents first). A reconciled
 * object is only scheduled for deletion by the API; its controller finishes
 * the job, and with `wait` this waits for that before deleting what it
 * depends on.
 */
export async function deleteObjects(targets: DeleteTarget[], ctx: ExecutionContext, options: DeleteOptions): Promise<void> {
  let found = 0;
  const pending: string[] = [];
  for (const { kind, name } of targets) {
    const existing = (await ctx.api.findByName(kind, name)) as AnyObject | undefined;
    if (!existing) {
      ctx.out.warn(`${label(kind, name)} not found; skipped`);
      continue;
    }
    found++;
    let result: AnyObject | undefined;
    try {
      result = (await ctx.api.delete(kind, existing.ID)) as AnyObject;
    } catch (err) {
      if (err instanceof ObjectConflictError && /already being deleted/.test(err.message)) {
        result = existing;
      } else if (err instanceof ObjectConflictError && pending.length > 0) {
        ctx.out.warn(`${label(kind, name)} not deleted yet: ${err.message}; run the delete again once ${pending.join(', ')} ${pending.length > 1 ? 'are' : 'is'} gone`);
        continue;
      } else {
        throw new CliError(`deleting ${label(kind, name)} failed: ${apiMessage(err)}`);
      }
    }
    if (!(result.DeletionScheduled && !result.DeletedAt)) {
      ctx.out.done(`${label(kind, name)} deleted`);
      continue;
    }
    if (!options.wait) {
      ctx.out.done(`${label(kind, name)} scheduled for deletion`);
      pending.push(label(kind, name));
      continue;
    }
    if (await waitGone(ctx, kind, existing.ID, name, options.timeoutMs)) {
      ctx.out.done(`${label(kind, name)} deleted`);
    } else {
      throw new CliError(
        `${label(kind, name)} is scheduled for deletion, but its controller did not finish deleting it within ${Math.round(options.timeoutMs / 1000)}s; run the delete again later${
          targets.length > 1 ? ' to delete the rest' : ''
        }, or pass --no-wait`,
      );
    }
  }
  if (found === 0) {
    throw new CliError(`nothing to delete: ${targets.map((t) => label(t.kind, t.name)).join(', ')} ${targets.length > 1 ? 'do' : 'does'} not exist on control plane ${JSON.stringify(ctx.controlPlane)}`);
  }
}
