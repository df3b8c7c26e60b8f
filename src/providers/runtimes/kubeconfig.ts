// InfraProvider `kubeconfig` (ours; upstream lacks it): an existing cluster, registered with
// the connection fields read from a kubeconfig file (connectionFieldsFromKubeconfig, which the
// CLI calls). The control plane does not own the cluster: it only checks that it answers.
import type { JsonObject } from '../../kinds/validate.js';
import { runtimeLabel } from '../kube/connection.js';
import { verifyReachable } from './reachability.js';
import { RuntimeProviderError, type RuntimeContext, type RuntimeProvider } from './types.js';

export class KubeconfigRuntimeProvider implements RuntimeProvider {
  readonly infraProvider = 'kubeconfig' as const;

  async #verify(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    if (typeof instance['APIEndpoint'] !== 'string' || instance['APIEndpoint'].length === 0) {
      throw new RuntimeProviderError(
        `${runtimeLabel(instance)} uses InfraProvider kubeconfig but has no APIEndpoint: register the cluster with its` +
          ' APIEndpoint, CACertificate and either Certificate+CertificateKey or ConnectionToken (tptctl reads them from a kubeconfig file and context)',
        { retryable: false, reason: 'KubernetesRuntimeMisconfigured' },
      );
    }
    const version = await verifyReachable(ctx, instance);
    ctx.log.info({ runtime: instance['Name'], version: version.gitVersion }, 'registered cluster answers');
  }

  instanceCreated(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    return this.#verify(ctx, instance);
  }

  instanceUpdated(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    return this.#verify(ctx, instance);
  }

  async instanceDeleted(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    // The cluster is not ours to remove; only forget how to reach it.
    ctx.kube.forget(Number(instance['ID']));
  }
}
