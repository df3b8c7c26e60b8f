// kubernetes-runtime controller (spec §3.2): reconcilers for KubernetesRuntimeDefinition and
// KubernetesRuntimeInstance. Each object is handled by the runtime provider its definition names
// (InfraProvider kind | eks | kwok | kubeconfig).
//
// Differences from upstream, on purpose (docs/kubernetes-runtimes.md):
// - no threeport-agent and no support-services operator are installed into new clusters: our
//   controllers reach clusters directly through the kube provider;
// - `kwok` (a simulated local cluster the control plane runs itself) and `kubeconfig` (an
//   existing cluster) are added; a dead simulated cluster is restarted on the next reconcile,
//   which a component's unexpected exit requests at once;
// - Updated verifies that the cluster answers, and repairs what it can.
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { TerminalError } from '../../reconcile/errors.js';
import { requestReconcile } from '../../reconcile/choreography.js';
import type { ReconcileContext, Reconciler } from '../../reconcile/types.js';
import { KubeClients, type KubeClientFactory } from '../../providers/kube/clients.js';
import { EksRuntimeProvider } from '../../providers/runtimes/eks.js';
import { KindRuntimeProvider } from '../../providers/runtimes/kind.js';
import { KubeconfigRuntimeProvider } from '../../providers/runtimes/kubeconfig.js';
import { KwokRuntimeProvider } from '../../providers/runtimes/kwok/provider.js';
import { verifyReachable } from '../../providers/runtimes/reachability.js';
import { KwokRuntimes, clusterNameFor } from '../../providers/runtimes/kwok/runtimes.js';
import type { Component } from '../../providers/runtimes/kwok/cluster.js';
import {
  type InfraProvider,
  type RuntimeContext,
  type RuntimeProvider,
} from '../../providers/runtimes/types.js';
import { Backoff } from '../../system.js';

export const CONTROLLER_NAME = 'KubernetesRuntimeController';

export interface KubernetesRuntimeControllerOptions {
  /** The server's data directory: simulated clusters live under `<dataDir>/runtimes/`. */
  dataDir: string;
  logger: Logger;
  /** Replace providers (tests of error paths). */
  providers?: Partial<Record<InfraProvider, RuntimeProvider>>;
  /** The simulated clusters (default: under dataDir). */
  kwok?: KwokRuntimes;
  /** Per-request timeout of the kube provider (default 20 s). */
  kubeRequestTimeoutMs?: number;
  /** How kube clients are made (tests of error paths pass a fake). */
  kubeClientFactory?: KubeClientFactory;
  /** Before a runtime is deleted: what other controllers run for it (e.g. its gateway's traefik) goes first. */
  onInstanceDeleting?: (instanceId: number) => Promise<void>;
}

/**
 * The controller: its two reconcilers, plus lifecycle around the reconcile runtime. start()
 * brings back simulated clusters after a server restart; stop() stops them (they are children
 * of the server) and closes kube connections.
 */
export class KubernetesRuntimeController {
  readonly reconcilers: Reconciler[];
  readonly kwok: KwokRuntimes;
  readonly providers: Readonly<Record<InfraProvider, RuntimeProvider>>;
  #kube: KubeClients | undefined;
  #store: ObjectStore | undefined;
  readonly #log: Logger;
  readonly #options: KubernetesRuntimeControllerOptions;
  /** Debounce of exit-triggered reconciles per runtime: next allowed time and current delay. */
  readonly #exitBackoff = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  #stopped = false;

  constructor(options: KubernetesRuntimeControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.kwok =
      options.kwok ??
      new KwokRuntimes({
        dataDir: options.dataDir,
        log: (line) => this.#log.debug(line),
        onUnexpectedExit: (runtime, component, info) => this.#componentExited(runtime, component, info),
      });
    this.providers = {
      kwok: new KwokRuntimeProvider(this.kwok),
      kind: new KindRuntimeProvider({ dataDir: options.dataDir }),
      eks: new EksRuntimeProvider(),
      kubeconfig: new KubeconfigRuntimeProvider(),
      ...options.providers,
    };
    this.reconcilers = [this.#definitionReconciler(), this.#instanceReconciler()];
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({
      decrypt: (v) => store.decrypt(v),
      ...(this.#options.kubeClientFactory ? { factory: this.#options.kubeClientFactory } : {}),
      ...(this.#options.kubeRequestTimeoutMs ? { requestTimeoutMs: this.#options.kubeRequestTimeoutMs } : {}),
    });
    return this.#kube;
  }

  #runtimeContext(ctx: ReconcileContext): RuntimeContext {
    this.#store ??= ctx.store;
    return {
      store: ctx.store,
      log: ctx.log,
      signal: ctx.signal,
      kube: this.#kubeClients(ctx.store),
      patchSelf: (changes) => ctx.patchSelf(changes),
      recordEvent: (event) => ctx.recordEvent(event),
    };
  }

  #provider(definition: JsonObject): RuntimeProvider {
    const name = definition['InfraProvider'] as InfraProvider;
    const provider = this.providers[name];
    if (!provider) {
      throw new TerminalError(
        `KubernetesRuntimeDefinition ${JSON.stringify(definition['Name'])}: InfraProvider ${JSON.stringify(name)} is not supported`,
      );
    }
    return provider;
  }

  async #definitionOf(ctx: ReconcileContext, instance: JsonObject): Promise<JsonObject> {
    const id = Number(instance['KubernetesRuntimeDefinitionID']);
    try {
      return await ctx.store.getObject(KubernetesRuntimeDefinition, id);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new TerminalError(`KubernetesRuntimeInstance ${JSON.stringify(instance['Name'])}: its KubernetesRuntimeDefinition ${id} does not exist`);
      }
      throw err;
    }
  }

  #definitionReconciler(): Reconciler {
    const run = async (ctx: ReconcileContext, definition: JsonObject, op: 'created' | 'deleted'): Promise<void> => {
      const provider = this.#provider(definition);
      const hook = op === 'created' ? provider.definitionCreated : provider.definitionDeleted;
      if (!hook) return;
      await hook.call(provider, this.#runtimeContext(ctx), definition);
    };
    return {
      kind: KubernetesRuntimeDefinition.name,
      controller: CONTROLLER_NAME,
      created: async (ctx, definition) => {
        // Upstream: objects created as already reconciled (a bootstrap cluster's definition) are left alone.
        if (definition['Reconciled'] === true) return;
        await run(ctx, definition, 'created');
      },
      // Idempotent: makes sure what Created makes exists (e.g. the AwsEks definition after a failure).
      updated: (ctx, definition) => run(ctx, definition, 'created'),
      deleted: (ctx, definition) => run(ctx, definition, 'deleted'),
    };
  }

  #instanceReconciler(): Reconciler {
    const run = async (ctx: ReconcileContext, instance: JsonObject, op: 'created' | 'updated' | 'deleted'): Promise<void> => {
      const definition = await this.#definitionOf(ctx, instance);
      const provider = this.#provider(definition);
      const rctx = this.#runtimeContext(ctx);
      if (op === 'created') await provider.instanceCreated(rctx, instance, definition);
      else if (op === 'updated') await provider.instanceUpdated(rctx, instance, definition);
      else await provider.instanceDeleted(rctx, instance, definition);
    };
    return {
      kind: KubernetesRuntimeInstance.name,
      controller: CONTROLLER_NAME,
      resume: (store) => this.#toResume(store),
      created: async (ctx, instance) => {
        if (instance['Reconciled'] === true) return;
        await run(ctx, instance, 'created');
      },
      updated: async (ctx, instance) => {
        const definition = await this.#definitionOf(ctx, instance);
        // A kwok runtime this control plane never started (registered as already reconciled, e.g. a
        // bootstrap cluster with its connection filled in) is only checked, never started here.
        if (definition['InfraProvider'] === 'kwok' && instance['APIEndpoint'] && !this.#ownsKwokRuntime(instance)) {
          await verifyReachable(this.#runtimeContext(ctx), instance);
          return;
        }
        await run(ctx, instance, 'updated');
      },
      deleted: async (ctx, instance) => {
        await this.#options.onInstanceDeleting?.(ctx.id);
        await run(ctx, instance, 'deleted');
      },
    };
  }

  /**
   * Where a runtime's watches must run (several replicas): a simulated cluster is child processes of
   * the server that started it, so only that one watches it; any other runtime can move.
   */
  async pinning(store: ObjectStore, instance: JsonObject): Promise<'here' | 'elsewhere' | undefined> {
    const definitionId = Number(instance['KubernetesRuntimeDefinitionID']);
    const definition = await store.getObject(KubernetesRuntimeDefinition, definitionId).catch(ignoreNotFound);
    if (definition?.['InfraProvider'] !== 'kwok') return undefined;
    return this.#ownsKwokRuntime(instance) ? 'here' : 'elsewhere';
  }

  #ownsKwokRuntime(instance: JsonObject): boolean {
    return existsSync(this.kwok.dirFor(String(instance['Name'])));
  }

  /** A simulated cluster's component died: ask for a reconcile of its instance (debounced per runtime). */
  #componentExited(runtime: string, component: Component, info: string): void {
    if (this.#stopped) return;
    this.#log.warn({ runtime, component, info }, 'simulated cluster component exited; requesting a reconcile');
    // An exit a minute or more after the previous one starts again from the shortest delay.
    const b = this.#exitBackoff.get(runtime) ?? { backoff: new Backoff({ initialMs: 500, maxMs: 60_000, resetAfterMs: 60_000 }) };
    if (b.timer) return; // one pending request is enough
    b.timer = setTimeout(() => {
      b.timer = undefined;
      void this.#requestReconcileByName(runtime);
    }, b.backoff.next());
    b.timer.unref();
    this.#exitBackoff.set(runtime, b);
  }

  async #requestReconcileByName(runtime: string): Promise<void> {
    const store = this.#store;
    if (!store || this.#stopped) return;
    try {
      const [instance] = await store.find(KubernetesRuntimeInstance, { Name: runtime });
      if (instance && !instance['DeletionScheduled']) await requestReconcile(store, KubernetesRuntimeInstance, Number(instance['ID']));
    } catch (err) {
      this.#log.warn({ runtime, err: describeError(err) }, 'cannot request a reconcile of the runtime instance');
    }
  }

  async start(store: ObjectStore): Promise<void> {
    this.#store = store;
  }

  /**
   * After a restart (the instance reconciler's `resume`): every simulated cluster this control
   * plane had started before (its directory exists), so that it comes back.
   */
  async #toResume(store: ObjectStore): Promise<number[]> {
    const onDisk = new Set(this.kwok.onDisk());
    if (onDisk.size === 0) return [];
    const kwokDefinitions = new Set(
      (await store.find(KubernetesRuntimeDefinition, { InfraProvider: 'kwok' })).map((d) => Number(d['ID'])),
    );
    return (await store.find(KubernetesRuntimeInstance, {}))
      .filter(
        (i) =>
          kwokDefinitions.has(Number(i['KubernetesRuntimeDefinitionID'])) &&
          !i['DeletionScheduled'] &&
          onDisk.has(clusterNameFor(String(i['Name']))) &&
          i['Reconciled'] === true,
      )
      .map((i) => Number(i['ID']));
  }

  /** Stops simulated clusters (children of this server) and closes kube connections. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const b of this.#exitBackoff.values()) if (b.timer) clearTimeout(b.timer);
    this.#kube?.close();
    await this.kwok.stopAll();
  }
}
