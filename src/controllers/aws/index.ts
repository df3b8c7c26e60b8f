// aws controller (spec §3.3): AwsEksKubernetesRuntimeInstance, AwsRelationalDatabaseInstance and
// AwsObjectStorageBucketInstance reconcilers over the AWS provider (src/providers/aws).
// See docs/aws.md for what is provisioned, the inventory format and the testing seams.
import type { ObjectStore } from '../../store/object-store.js';
import type { ControllerContext } from '../index.js';
import { AwsEksKubernetesRuntimeInstance } from '../../kinds/aws.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { tokenNeedsRefresh } from '../../providers/aws/connection.js';
import { describeError } from '../../errors.js';
import { getOrUndefined, idOf, inventoryOf } from './common.js';
import type { Reconciler } from '../../reconcile/types.js';
import type { AwsProvider } from '../../providers/aws/provider.js';
import { controllerDeps, type AwsControllerDeps, type AwsControllerOptions } from './deps.js';
import { eksRuntimeReconciler, refreshRuntimeConnection } from './eks-runtime.js';
import { rdsReconciler } from './rds.js';
import { s3Reconciler } from './s3.js';

export type { AwsControllerOptions } from './deps.js';

export const AWS_CONTROLLER_NAME = 'AwsController';

/** How often provisioned EKS runtimes are checked for connection tokens that expire soon. */
export const TOKEN_CHECK_INTERVAL_MS = 60_000;

/** Singleton lease of the EKS token check (src/store/leases.ts). */
export const TOKEN_REFRESH_LEASE = 'singleton:eks-token-refresh';

export class AwsController {
  readonly reconcilers: Reconciler[];
  #timer: NodeJS.Timeout | undefined;
  #options: AwsControllerOptions;
  readonly deps: AwsControllerDeps & { current(): AwsProvider | undefined; close(): void };

  constructor(options: AwsControllerOptions = {}) {
    this.#options = options;
    this.deps = controllerDeps(options);
    this.reconcilers = [eksRuntimeReconciler(this.deps), rdsReconciler(this.deps), s3Reconciler(this.deps)];
  }

  /** The provider, once a reconcile has created it (its call counters are useful to benchmarks). */
  get provider(): AwsProvider | undefined {
    return this.deps.current();
  }

  /**
   * After the reconcile runtime has started: keeps EKS connection tokens fresh. A token lasts 14
   * minutes and resyncs come every 10 (± jitter), so a timer renews tokens that would expire before
   * the next check. With several replicas, one at a time does it (lease `singleton:eks-token-refresh`).
   */
  async start(store: ObjectStore, context: ControllerContext = {}): Promise<void> {
    const leases = context.leases;
    this.#timer ??= setInterval(() => {
      // Several replicas: the holder of the singleton lease checks the tokens.
      void (async () => (!leases || (await leases.claim(TOKEN_REFRESH_LEASE)) ? this.refreshDueTokens(store) : 0))().catch((err: unknown) =>
        this.#options.logger?.warn({ err: describeError(err) }, 'checking EKS connection tokens failed; trying again at the next check'),
      );
    }, TOKEN_CHECK_INTERVAL_MS).unref();
  }

  /** Closes the connections to workload clusters (after the reconcile runtime has stopped). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.deps.close();
  }

  /** Renews the token of every provisioned EKS runtime whose token expires before the next check; returns how many. */
  async refreshDueTokens(store: ObjectStore, now = Date.now()): Promise<number> {
    let refreshed = 0;
    for (const eks of await store.find(AwsEksKubernetesRuntimeInstance, {})) {
      if (eks['DeletionScheduled'] || inventoryOf(eks)?.phase !== 'created') continue;
      const kriId = idOf(eks, 'KubernetesRuntimeInstanceID');
      const kri = await getOrUndefined(store, KubernetesRuntimeInstance, kriId);
      if (!kri?.['ConnectionToken'] || kriId === undefined) continue;
      const margin = this.deps.tokenRefreshMarginMs + TOKEN_CHECK_INTERVAL_MS;
      if (!tokenNeedsRefresh(kri['ConnectionTokenExpiration'] as string | undefined, now, margin)) continue;
      if (await refreshRuntimeConnection(this.deps, store, kriId, now)) refreshed++;
    }
    return refreshed;
  }

  /** Writes a fresh EKS token onto a KubernetesRuntimeInstance (for the kube provider, before its token expires). */
  refreshConnection(store: ObjectStore, kubernetesRuntimeInstanceId: number, now?: number): Promise<boolean> {
    return refreshRuntimeConnection(this.deps, store, kubernetesRuntimeInstanceId, now);
  }
}
