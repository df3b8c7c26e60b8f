// aws controller (spec §3.3): AwsEksKubernetesRuntimeInstance, AwsRelationalDatabaseInstance and
// AwsObjectStorageBucketInstance reconcilers over the AWS provider (src/providers/aws).
// See docs/aws.md for what is provisioned, the inventory format and the testing seams.
import type { ObjectStore } from '../../store/object-store.js';
import type { Reconciler } from '../../reconcile/types.js';
import type { AwsProvider } from '../../providers/aws/provider.js';
import { controllerDeps, type AwsControllerDeps, type AwsControllerOptions } from './deps.js';
import { eksRuntimeReconciler, refreshRuntimeConnection } from './eks-runtime.js';
import { rdsReconciler } from './rds.js';
import { s3Reconciler } from './s3.js';

export { requestRuntimeProvisioning } from './common.js';
export type { AwsControllerOptions } from './deps.js';

export const AWS_CONTROLLER_NAME = 'AwsController';

export class AwsController {
  readonly reconcilers: Reconciler[];
  readonly deps: AwsControllerDeps & { current(): AwsProvider | undefined; close(): void };

  constructor(options: AwsControllerOptions = {}) {
    this.deps = controllerDeps(options);
    this.reconcilers = [eksRuntimeReconciler(this.deps), rdsReconciler(this.deps), s3Reconciler(this.deps)];
  }

  /** The provider, once a reconcile has created it (its call counters are useful to benchmarks). */
  get provider(): AwsProvider | undefined {
    return this.deps.current();
  }

  /** Closes the connections to workload clusters (after the reconcile runtime has stopped). */
  async stop(): Promise<void> {
    this.deps.close();
  }

  /** Writes a fresh EKS token onto a KubernetesRuntimeInstance (for the kube provider, before its token expires). */
  refreshConnection(store: ObjectStore, kubernetesRuntimeInstanceId: number, now?: number): Promise<boolean> {
    return refreshRuntimeConnection(this.deps, store, kubernetesRuntimeInstanceId, now);
  }
}
