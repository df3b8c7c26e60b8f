// InfraProvider `kwok`: a simulated local cluster that the control plane starts, keeps running
// and removes itself, from cached binaries (no containers, no Docker).
import type { JsonObject } from '../../../kinds/validate.js';
import { verifyReachable, writeConnection } from '../reachability.js';
import { RuntimeProviderError, type RuntimeContext, type RuntimeProvider } from '../types.js';
import { KubeBinariesMissingError } from './binaries.js';
import type { KwokRuntimes } from './runtimes.js';

/** Event reason when the provider had to restart components of a cluster that had been running. */
export const RESTARTED_REASON = 'SimulatedClusterRestarted';

export class KwokRuntimeProvider implements RuntimeProvider {
  readonly infraProvider = 'kwok' as const;

  constructor(readonly runtimes: KwokRuntimes) {}

  instanceCreated(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void> {
    return this.#ensure(ctx, instance, definition);
  }

  instanceUpdated(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void> {
    return this.#ensure(ctx, instance, definition);
  }

  async instanceDeleted(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    ctx.kube.forget(Number(instance['ID']));
    await this.runtimes.remove(String(instance['Name']));
    ctx.log.info({ runtime: instance['Name'] }, 'simulated cluster removed');
  }

  async #ensure(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void> {
    const name = String(instance['Name']);
    const before = this.runtimes.get(name)?.status().filter((c) => !c.running) ?? [];
    let result;
    try {
      result = await this.runtimes.ensure(name, {
        nodes: definition['HighAvailability'] === true ? 3 : 1,
        signal: ctx.signal,
      });
    } catch (err) {
      if (err instanceof KubeBinariesMissingError) {
        throw new RuntimeProviderError(`cannot start simulated cluster for ${name}: ${err.message}`, {
          retryable: false,
          reason: 'KubernetesBinariesMissing',
        });
      }
      if (ctx.signal.aborted) throw err;
      throw new RuntimeProviderError(
        `cannot start simulated cluster for KubernetesRuntimeInstance ${JSON.stringify(name)}: ${err instanceof Error ? err.message : String(err)}`,
        { retryable: true, reason: 'SimulatedClusterStartFailed', cause: err },
      );
    }
    if (before.length > 0 && result.started.length > 0) {
      await ctx.recordEvent({
        reason: RESTARTED_REASON,
        type: 'Warning',
        note: `restarted ${before.map((c) => `${c.component} (${c.exited ?? 'not running'})`).join(', ')} of simulated cluster ${result.cluster.name}`,
      });
    }
    ctx.log.info({ runtime: name, started: result.started, ms: result.ms, server: result.credentials.server }, 'simulated cluster running');

    // Write the connection only when it changed (a fresh cluster, or a port that was taken on restart).
    const creds = result.credentials;
    const current = await writeConnection(ctx, instance, {
      APIEndpoint: creds.server,
      CACertificate: creds.caPem,
      Certificate: creds.clientCertPem,
      CertificateKey: creds.clientKeyPem,
    });
    await verifyReachable(ctx, current);
  }
}
