// Drift repair: a runtime's watch saw a resource that a WorkloadInstance manages deleted or
// changed by someone else, so the instance is reconciled again and re-applies it (the reconcile
// reports what it restored). Bursts (a namespace deleted with everything in it) become one
// reconcile per instance.
import type { Logger } from 'pino';
import { WorkloadInstance } from '../../kinds/workload.js';
import { describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { requestReconcile } from '../../reconcile/choreography.js';

/** Changes seen within this long of the first are repaired by one reconcile. */
const DEBOUNCE_MS = 200;

export class DriftRepair {
  readonly #log: Logger;
  readonly #store: () => ObjectStore | undefined;
  readonly #pending = new Set<number>();
  #stopped = false;

  constructor(log: Logger, store: () => ObjectStore | undefined) {
    this.#log = log;
    this.#store = store;
  }

  stop(): void {
    this.#stopped = true;
  }

  /** A watch saw a managed resource deleted or changed by someone else: reconcile the instance. */
  report(instanceId: number, key: string, how: 'deleted' | 'modified'): void {
    this.#log.info({ instanceId, resource: key, how }, 'managed resource changed out of band; reconciling its workload instance');
    if (this.#pending.has(instanceId) || this.#stopped) return;
    this.#pending.add(instanceId);
    const timer = setTimeout(() => {
      this.#pending.delete(instanceId);
      const store = this.#store();
      if (!store || this.#stopped) return;
      void (async () => {
        const wi = await store.getObject(WorkloadInstance, instanceId).catch(ignoreNotFound);
        if (!wi || wi['DeletionScheduled']) return;
        await requestReconcile(store, WorkloadInstance, instanceId);
      })().catch((err: unknown) => this.#log.warn({ instanceId, err: describeError(err) }, 'cannot request a repair'));
    }, DEBOUNCE_MS);
    timer.unref();
  }
}
