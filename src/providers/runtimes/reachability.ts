// Checks that a runtime instance's cluster answers, through the kube provider.
import type { JsonObject } from '../../kinds/validate.js';
import { KubeError } from '../kube/errors.js';
import type { RuntimeConnectionFields } from '../kube/connection.js';
import { RuntimeProviderError, type RuntimeContext } from './types.js';

/** Event reason recorded when a runtime's API server cannot be reached. */
export const UNREACHABLE_REASON = 'KubernetesRuntimeUnreachable';

/**
 * GET /version and discovery of v1 Namespace on the instance's cluster. Unreachable clusters
 * throw a retryable RuntimeProviderError (event reason KubernetesRuntimeUnreachable) naming the
 * runtime and endpoint; rejected credentials and other answers keep the kube error's retryability.
 */
export async function verifyReachable(ctx: RuntimeContext, instance: JsonObject): Promise<{ gitVersion: string }> {
  let client;
  try {
    client = ctx.kube.forRuntime(instance);
  } catch (err) {
    throw new RuntimeProviderError(err instanceof Error ? err.message : String(err), { retryable: false, reason: 'KubernetesRuntimeMisconfigured' });
  }
  try {
    const version = await client.version({ signal: ctx.signal });
    await client.discover('v1', 'Namespace', { signal: ctx.signal });
    return version;
  } catch (err) {
    if (err instanceof KubeError) {
      throw new RuntimeProviderError(err.message, {
        retryable: err.retryable,
        reason: err.unreachable ? UNREACHABLE_REASON : 'KubernetesRuntimeError',
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Writes connection fields onto the instance being reconciled, skipping the write when nothing
 * changed (the stored CertificateKey and ConnectionToken are compared decrypted). Returns the
 * instance as stored afterwards.
 */
export async function writeConnection(ctx: RuntimeContext, instance: JsonObject, fields: RuntimeConnectionFields): Promise<JsonObject> {
  const changes: JsonObject = {};
  const decrypted = (field: string): string | undefined => {
    const v = instance[field];
    if (typeof v !== 'string') return undefined;
    try {
      return ctx.store.decrypt(v);
    } catch {
      return undefined;
    }
  };
  for (const [field, value] of Object.entries(fields) as [keyof RuntimeConnectionFields, string | undefined][]) {
    if (value === undefined) continue;
    const current = field === 'CertificateKey' || field === 'ConnectionToken' ? decrypted(field) : instance[field];
    if (current !== value) changes[field] = value;
  }
  return Object.keys(changes).length > 0 ? ctx.patchSelf(changes) : instance;
}
