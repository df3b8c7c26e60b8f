// Watches and owners (the dependency graph) in the engine.
//
// Every object write announces itself on the store's change feed (`threeport_objects`,
// payload `<Kind>:<id>:<C|U|D>`, sent by the same statement as the write; a success that finished
// a requested change appends `:G`, see success.ts). The engine's
// LISTEN connection hears it; `WatchRouter` keeps only the kinds some registered reconciler
// watches or owns, reads the written rows in one statement per kind, and queues the objects
// that the declared mappings name (`ReconcileQueue.wake`). So a reconciler that waits for
// another Threeport object returns a long backstop requeue and is woken when that object
// changes, instead of polling it.
//
// Edges that come from `owns`:
// - parent → children: when an owner has reconciled a requested change (a changed spec or an
//   update left unreconciled, so not its resyncs), its live children are queued, parked ones too;
// - child → parent: when a child is soft-deleted, an owner that already has a queue row
//   (its `Deleted`, waiting for the children to go) is woken.
import type { Logger } from 'pino';
import { kindNamed } from '../kinds/index.js';
import type { Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import { ConflictError, NotFoundError, describeError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import type { ReconcileQueue } from '../store/reconcile-queue.js';
import type { Owns, Reconciler, Watch } from './types.js';

/** A waiting reconcile that a watch will wake still looks again this often, in case a notification was missed. */
export const WATCH_BACKSTOP_MS = 5 * 60_000;

interface Route {
  /** The kind to queue. */
  target: Kind;
  watch: Watch;
  /** Wake only objects that already have a queue row (an owner waiting for its children). */
  onlyQueued: boolean;
}

/** The field-based mapping an `owns` entry implies, in both directions. */
function ownerRoutes(owner: Kind, owns: Owns): { toChildren: Route; toOwner: Route } {
  const child = kindNamed(owns.kind);
  return {
    toChildren: {
      target: child,
      onlyQueued: false,
      watch: {
        kind: owner.name,
        via: `owned: the ${child.name}s whose ${owns.by} is the ${owner.name}, once it has reconciled a change`,
        changes: true,
        retryParked: true,
        when: (o) => o['Reconciled'] === true && !o['DeletionScheduled'] && !o['DeletedAt'],
        map: async (o, store) => (await store.find(child, { [owns.by]: Number(o['ID']) })).map((c) => Number(c['ID'])),
      },
    },
    toOwner: {
      target: owner,
      onlyQueued: true,
      watch: {
        kind: child.name,
        via: `owner: the ${owner.name} named by ${owns.by}, once the child is gone`,
        when: (o) => Boolean(o['DeletedAt']),
        map: async (o) => (typeof o[owns.by] === 'number' ? [o[owns.by] as number] : []),
      },
    },
  };
}

export class WatchRouter {
  readonly #routes = new Map<string, Route[]>();
  /** Heard and not yet routed: per kind, each id and whether a heard write finished a requested change. */
  readonly #pending = new Map<string, Map<number, boolean>>();
  #flushing: Promise<void> | undefined;
  #scheduled = false;

  constructor(
    reconcilers: readonly Reconciler[],
    private readonly store: ObjectStore,
    private readonly queue: ReconcileQueue,
    private readonly log: Logger,
  ) {
    for (const r of reconcilers) {
      const target = kindNamed(r.kind);
      for (const watch of r.watches ?? []) this.#add({ target, watch, onlyQueued: false });
      for (const owns of r.owns ?? []) {
        const { toChildren, toOwner } = ownerRoutes(target, owns);
        this.#add(toChildren);
        this.#add(toOwner);
      }
    }
  }

  #add(route: Route): void {
    const name = kindNamed(route.watch.kind).name;
    const list = this.#routes.get(name) ?? [];
    list.push(route);
    this.#routes.set(name, list);
  }

  /** Whether any registered reconciler watches or owns anything (else the change feed is not heard). */
  get active(): boolean {
    return this.#routes.size > 0;
  }

  /** A change-feed payload `<Kind>:<id>:<op>`; ignored unless its kind is watched. Never throws. */
  heard(payload: string): void {
    const colon = payload.indexOf(':');
    if (colon < 0) return;
    const kind = payload.slice(0, colon);
    if (!this.#routes.has(kind)) return;
    const id = Number.parseInt(payload.slice(colon + 1), 10);
    if (!Number.isSafeInteger(id)) return;
    const requested = payload.endsWith(':G');
    let ids = this.#pending.get(kind);
    if (!ids) this.#pending.set(kind, (ids = new Map()));
    ids.set(id, requested || ids.get(id) === true);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // Notifications arrive in bursts (one per written row): gather a burst, then read it at once.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
        if (this.#pending.size > 0) this.#schedule();
      });
    });
  }

  /** Resolves once everything heard so far has been routed (tests). */
  async settled(): Promise<void> {
    while (this.#flushing || this.#scheduled || this.#pending.size > 0) {
      await (this.#flushing ?? new Promise((r) => setImmediate(r)));
    }
  }

  async #flush(): Promise<void> {
    const batch = [...this.#pending];
    this.#pending.clear();
    for (const [kindName, ids] of batch) {
      try {
        await this.#route(kindNamed(kindName), ids);
      } catch (err) {
        // A missed wake costs one backstop interval, never an object: log and go on.
        this.log.warn({ kind: kindName, err: describeError(err) }, 'cannot route a watched change; the watchers look again at their backstop');
      }
    }
  }

  async #route(kind: Kind, heard: ReadonlyMap<number, boolean>): Promise<void> {
    // Deleted rows too: a soft-deleted child still names its owner.
    const res = await this.store.db.query<{ json: JsonObject }>(
      `SELECT t.data || jsonb_build_object('ID', t.id, 'DeletedAt', t.deleted_at) AS json FROM ${kind.table} t WHERE t.id = ANY($1::bigint[])`,
      [[...heard.keys()]],
    );
    const wake = new Map<Route, Set<number>>();
    for (const { json: changed } of res.rows) {
      if (changed['DeletedAt'] === null) delete changed['DeletedAt'];
      const requested = heard.get(Number(changed['ID'])) === true;
      for (const route of this.#routes.get(kind.name) ?? []) {
        if (route.watch.changes && !requested) continue;
        if (route.watch.when && !route.watch.when(changed)) continue;
        const mapped = await route.watch.map(changed, this.store);
        if (mapped.length === 0) continue;
        let set = wake.get(route);
        if (!set) wake.set(route, (set = new Set()));
        for (const id of mapped) set.add(id);
      }
    }
    for (const [route, targets] of wake) {
      const woken = await this.queue.wake(route.target, [...targets], { onlyQueued: route.onlyQueued, retryParked: route.watch.retryParked === true });
      if (woken > 0 && this.log.isLevelEnabled('debug')) {
        this.log.debug({ watched: kind.name, kind: route.target.name, woken }, 'watched change queued reconciles');
      }
    }
  }
}

/**
 * Before an owner's `deleted` runs: asks for the deletion of each live child it owns and
 * returns how many children are still there (0: go on with the owner).
 */
export async function deleteOwnedFirst(store: ObjectStore, owns: readonly Owns[], ownerId: number): Promise<number> {
  let remaining = 0;
  for (const o of owns) {
    const kind = kindNamed(o.kind);
    for (const child of await store.find(kind, { [o.by]: ownerId })) {
      remaining++;
      if (child['DeletionScheduled']) continue;
      try {
        await store.delete(kind, Number(child['ID']));
      } catch (err) {
        // Gone meanwhile, or already being deleted by someone else: both are what we want.
        if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
      }
    }
  }
  if (remaining === 0) return 0;
  // Non-reconciled children are gone at once; count again.
  let left = 0;
  for (const o of owns) left += (await store.find(kindNamed(o.kind), { [o.by]: ownerId })).length;
  return left;
}
