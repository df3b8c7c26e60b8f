// Runtime providers: where a KubernetesRuntimeInstance's cluster comes from
// (KubernetesRuntimeDefinition.InfraProvider). The runtime controller reads the
// objects and calls the provider of the definition; the provider makes the
// cluster exist (or hands the work to another controller, as eks does) and
// writes the instance's connection fields.
//
// Providers do not depend on the reconcile engine: they receive a narrow
// context and throw RuntimeProviderError (or any error carrying `retryable`).
import type { Logger } from 'pino';
import type { JsonObject } from '../../kinds/validate.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { KubeClients } from '../kube/clients.js';

export type InfraProvider = 'kind' | 'eks' | 'kwok' | 'kubeconfig';

export interface RuntimeContext {
  readonly store: ObjectStore;
  readonly log: Logger;
  /** Fires on shutdown or a lost lease: stop and throw. */
  readonly signal: AbortSignal;
  readonly kube: KubeClients;
  /** Writes fields onto the instance (or definition) being reconciled, without queuing another reconcile. */
  patchSelf(changes: JsonObject): Promise<JsonObject>;
  /** Records an event on the object being reconciled. */
  recordEvent(event: { reason: string; note: string; type?: 'Normal' | 'Warning' }): Promise<void>;
}

export interface RuntimeProvider {
  readonly infraProvider: InfraProvider;
  definitionCreated?(ctx: RuntimeContext, definition: JsonObject): Promise<void>;
  definitionDeleted?(ctx: RuntimeContext, definition: JsonObject): Promise<void>;
  /** Makes the instance's cluster exist and serve, and writes its connection fields onto the instance. */
  instanceCreated(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void>;
  /** Repairs drift (resync, or `Reconciled: false` set by another controller). */
  instanceUpdated(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void>;
  /** Removes the cluster (or hands its removal on). */
  instanceDeleted(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject | undefined): Promise<void>;
}

/** A provider failure; `retryable: false` stops retries until the object changes. */
export class RuntimeProviderError extends Error {
  readonly retryable: boolean;
  /** Event reason to record instead of the default Failed<Operation>. */
  readonly reason: string | undefined;

  constructor(message: string, options: { retryable: boolean; reason?: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RuntimeProviderError';
    this.retryable = options.retryable;
    this.reason = options.reason;
  }

  /** Read by the reconcile engine: the event reason to record instead of Failed<Operation>. */
  get eventReason(): string | undefined {
    return this.reason;
  }
}
