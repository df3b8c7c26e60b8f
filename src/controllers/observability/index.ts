// observability controller (spec §3.8): ObservabilityStack, Metrics and Logging definitions and
// instances (docs/observability.md).
//
// An instance on a simulated (kwok) runtime runs its parts as supervised host processes pointed
// at the runtime's API server, like the support services (src/providers/support-peers):
// - metrics: Prometheus, scraping the control plane's own /metrics, the runtime's API server and
//   every pod that declares the prometheus.io/scrape annotation (on loopback, never a pod IP);
// - logging: VictoriaLogs as the log store (it takes Loki's push API) and vlagent shipping the
//   runtime's component logs and the stack's own.
// The users' Helm values (definition's, then instance's on top) are mapped where they mean
// something here (src/providers/observability/values.ts) and the rest is named in an event.
//
// Dashboards (Grafana) are refused by the kinds (DASHBOARDS_UNAVAILABLE). On real clusters the
// official charts would go through HelmWorkloads, as upstream does; those charts cannot be had
// here, so such an instance fails with an error that says so.
//
// Instance Deleted: stop the processes and remove their directory (data included).
// After a server restart every live instance is reconciled again, which starts its processes.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import {
  LoggingDefinition,
  LoggingInstance,
  MetricsDefinition,
  MetricsInstance,
  ObservabilityStackDefinition,
  ObservabilityStackInstance,
} from '../../kinds/observability.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { describeError } from '../../errors.js';
import { requestReconcile } from '../../reconcile/choreography.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { connectionFromRuntimeInstance, type KubeConnection } from '../../providers/kube/connection.js';
import { clusterNameFor } from '../../providers/runtimes/kwok/runtimes.js';
import { freePort } from '../../system.js';
import { SupportPeerMissingError } from '../../providers/support-peers/binaries.js';
import { SupportPeerSet, type PeerEvent } from '../../providers/support-peers/supervisor.js';
import { logShipperLaunch, logStoreLaunch, prometheusLaunch } from '../../providers/observability/launch.js';
import { ValuesError, leafPaths, logStoreSettings, mergeValues, parseValues, prometheusSettings } from '../../providers/observability/values.js';
import type { ObjectStore } from '../../store/object-store.js';
import { getOrUndefined, idOf, label } from '../aws/common.js';
import { edgesOf } from '../graph.js';

export const OBSERVABILITY_CONTROLLER_NAME = 'ObservabilityController';

/** Why a stack on a real cluster cannot be installed here. */
export const REAL_CLUSTER_UNAVAILABLE =
  'observability stacks on real clusters are installed from the official charts (kube-prometheus-stack, loki, promtail) through HelmWorkloads, and those charts cannot be fetched by this control plane (no chart repository is reachable); only simulated (kwok) runtimes are served (docs/observability.md)';

export interface ObservabilityControllerOptions {
  dataDir: string;
  logger: Logger;
  /** The control plane's own /metrics over plain HTTP, once the server listens (undefined: not scraped). */
  selfMetricsUrl?: () => string | undefined;
}

type Obj = JsonObject;

/** What one instance asks for; its JSON is the fingerprint that decides whether to restart. */
interface Desired {
  runtime: string;
  server: string;
  metrics?: { settings: ReturnType<typeof prometheusSettings>; selfMetricsUrl: string | undefined };
  logging?: { retention: string };
  ignored: string[];
}

/** How each instance kind finds its definition and its values fields. */
interface PartKind {
  kind: Kind;
  definition: Kind;
  definitionField: string;
  metrics: (o: Obj) => boolean;
  logging: (o: Obj) => boolean;
}

const PART_KINDS: readonly PartKind[] = [
  {
    kind: ObservabilityStackInstance,
    definition: ObservabilityStackDefinition,
    definitionField: 'ObservabilityStackDefinitionID',
    metrics: (o) => o['MetricsEnabled'] !== false,
    logging: (o) => o['LoggingEnabled'] !== false,
  },
  { kind: MetricsInstance, definition: MetricsDefinition, definitionField: 'MetricsDefinitionID', metrics: () => true, logging: () => false },
  { kind: LoggingInstance, definition: LoggingDefinition, definitionField: 'LoggingDefinitionID', metrics: () => false, logging: () => true },
];

interface Running {
  set: SupportPeerSet;
  fingerprint: string;
  urls: { PrometheusURL: string | null; LogsURL: string | null };
}

export class ObservabilityController {
  readonly reconcilers: Reconciler[];
  readonly #o: ObservabilityControllerOptions;
  readonly #running = new Map<string, Running>();
  #store: ObjectStore | undefined;
  #stopped = false;

  constructor(options: ObservabilityControllerOptions) {
    this.#o = options;
    this.reconcilers = [
      ...PART_KINDS.map((p) => this.#definitionReconciler(p)),
      ...PART_KINDS.map((p) => this.#instanceReconciler(p)),
    ];
  }

  /** The directory of one instance's processes. */
  dirOf(kind: Kind, id: number): string {
    return join(this.#o.dataDir, 'observability', `${kind.plural}-${id}`);
  }

  /** The running processes of an instance (tests, benchmarks). */
  peersOf(kind: Kind, id: number): SupportPeerSet | undefined {
    return this.#running.get(`${kind.name}:${id}`)?.set;
  }

  async start(store: ObjectStore): Promise<void> {
    this.#store = store;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#running.values()].map((r) => r.set.stopAll().catch(() => undefined)));
    this.#running.clear();
  }

  #definitionReconciler(p: PartKind): Reconciler {
    return {
      kind: p.definition.name,
      controller: OBSERVABILITY_CONTROLLER_NAME,
      // Changed values roll out to the definition's instances: it owns them (src/controllers/graph.ts),
      // so the engine reconciles them once it has reconciled the change.
      ...edgesOf(p.definition.name),
      created: async () => undefined,
      deleted: async () => undefined,
    };
  }

  #instanceReconciler(p: PartKind): Reconciler {
    return {
      kind: p.kind.name,
      controller: OBSERVABILITY_CONTROLLER_NAME,
      // The processes did not survive the restart: every live, reconciled instance reconciles again.
      resume: async (store) => (await store.find(p.kind, {})).filter((o) => !o['DeletionScheduled'] && o['Reconciled'] === true).map((o) => Number(o['ID'])),
      created: (ctx, o) => this.#ensure(ctx, p, o),
      updated: (ctx, o) => this.#ensure(ctx, p, o),
      deleted: (ctx, o) => this.#remove(ctx, p, o),
    };
  }

  async #fail(ctx: ReconcileContext, message: string): Promise<never> {
    await ctx.patchSelf({ Status: 'Error', PrometheusURL: null, LogsURL: null }).catch(() => undefined);
    throw new TerminalError(message);
  }

  /** The runtime's connection, or why there is none (yet). */
  async #runtime(ctx: ReconcileContext, what: string, o: Obj): Promise<{ runtime: Obj; conn: KubeConnection }> {
    const runtime = await getOrUndefined(ctx.store, KubernetesRuntimeInstance, idOf(o, 'KubernetesRuntimeInstanceID'));
    if (!runtime) return this.#fail(ctx, `${what}: its KubernetesRuntimeInstance ${String(o['KubernetesRuntimeInstanceID'])} does not exist`);
    const def = await getOrUndefined(ctx.store, KubernetesRuntimeDefinition, idOf(runtime, 'KubernetesRuntimeDefinitionID'));
    if (def?.['InfraProvider'] !== 'kwok') return this.#fail(ctx, `${what}: ${REAL_CLUSTER_UNAVAILABLE}`);
    if (runtime['Reconciled'] !== true || typeof runtime['APIEndpoint'] !== 'string') {
      throw new ReconcileError(`${what}: waiting for ${label(KubernetesRuntimeInstance.name, runtime)} to be ready`, {
        requeueAfterMs: 3_000,
        event: { reason: 'WaitingForRuntime', note: `${label(KubernetesRuntimeInstance.name, runtime)} is not ready yet`, type: 'Normal' },
      });
    }
    try {
      return { runtime, conn: connectionFromRuntimeInstance(runtime, (v) => ctx.store.decrypt(v)) };
    } catch (err) {
      throw new ReconcileError(`${what}: ${describeError(err)}`, { cause: err });
    }
  }

  async #desired(ctx: ReconcileContext, p: PartKind, o: Obj, runtime: Obj, conn: KubeConnection, what: string): Promise<Desired> {
    const def = (await getOrUndefined(ctx.store, p.definition, idOf(o, p.definitionField))) ?? {};
    const values = (field: string): ReturnType<typeof parseValues> => mergeValues(parseValues(def[field]), parseValues(o[field]));
    const desired: Desired = { runtime: String(runtime['Name']), server: conn.server, ignored: [] };
    try {
      if (p.metrics(o)) {
        const settings = prometheusSettings(values('KubePrometheusStackHelmValuesDocument'), `${what} KubePrometheusStackHelmValuesDocument`);
        desired.metrics = { settings, selfMetricsUrl: this.#o.selfMetricsUrl?.() };
        desired.ignored.push(...settings.ignored.map((k) => `KubePrometheusStackHelmValues ${k}`));
      }
      if (p.logging(o)) {
        const s = logStoreSettings(values('LokiHelmValuesDocument'), `${what} LokiHelmValuesDocument`);
        desired.logging = { retention: s.retention };
        desired.ignored.push(...s.ignored.map((k) => `LokiHelmValues ${k}`));
        // vlagent ships the runtime's logs itself: no promtail value applies.
        desired.ignored.push(...leafPaths(values('PromtailHelmValuesDocument')).map((k) => `PromtailHelmValues ${k}`));
      }
    } catch (err) {
      if (err instanceof ValuesError) return this.#fail(ctx, err.message);
      throw err;
    }
    return desired;
  }

  async #ensure(ctx: ReconcileContext, p: PartKind, o: Obj): Promise<ReconcileResult> {
    const what = label(p.kind.name, o);
    const id = idOf(o)!;
    const key = `${p.kind.name}:${id}`;
    const { runtime, conn } = await this.#runtime(ctx, what, o);
    const desired = await this.#desired(ctx, p, o, runtime, conn, what);
    const fingerprint = JSON.stringify(desired);
    const current = this.#running.get(key);
    if (current && current.fingerprint === fingerprint && current.set.peers.every((peer) => peer.running || !peer.failed)) {
      if (o['Status'] !== 'Healthy' || o['PrometheusURL'] !== current.urls.PrometheusURL || o['LogsURL'] !== current.urls.LogsURL) {
        await ctx.patchSelf({ Status: 'Healthy', ...current.urls });
      }
      return;
    }
    if (current) {
      await current.set.stopAll();
      this.#running.delete(key);
    }
    if (!desired.metrics && !desired.logging) {
      await ctx.patchSelf({ Status: 'Healthy', PrometheusURL: null, LogsURL: null });
      await ctx.recordEvent({ reason: 'NothingEnabled', note: 'MetricsEnabled and LoggingEnabled are both false: nothing runs' });
      return;
    }
    const started = await this.#startParts(ctx, p, id, conn, desired, what);
    this.#running.set(key, { ...started, fingerprint });
    await ctx.patchSelf({ Status: 'Healthy', ...started.urls });
    const parts = [desired.metrics ? `Prometheus at ${started.urls.PrometheusURL}` : '', desired.logging ? `logs at ${started.urls.LogsURL}` : '']
      .filter(Boolean)
      .join(', ');
    await ctx.recordEvent({ reason: 'ObservabilityStarted', note: `${parts} (host processes for simulated runtime ${desired.runtime})` });
    if (desired.metrics && !desired.metrics.selfMetricsUrl) {
      await ctx.recordEvent({
        reason: 'ControlPlaneNotScraped',
        type: 'Warning',
        note: "the control plane's /metrics is not reachable over plain HTTP (start the server with --metrics-port); it is not scraped",
      });
    }
    if (p.kind === ObservabilityStackInstance) {
      await ctx.recordEvent({ reason: 'DashboardsUnavailable', note: 'no Grafana was installed: dashboards are unavailable on this control plane (docs/observability.md)' });
    }
    if (desired.ignored.length > 0) {
      await ctx.recordEvent({ reason: 'HelmValuesIgnored', note: `values with no meaning for host processes on a simulated runtime: ${desired.ignored.slice(0, 20).join(', ')}` });
    }
    return;
  }

  async #startParts(ctx: ReconcileContext, p: PartKind, id: number, conn: KubeConnection, desired: Desired, what: string): Promise<Omit<Running, 'fingerprint'>> {
    const dir = this.dirOf(p.kind, id);
    const kind = p.kind;
    const set = new SupportPeerSet({ dir, kube: conn, onEvent: (e) => this.#peerEvent(kind, id, e) });
    const urls: Running['urls'] = { PrometheusURL: null, LogsURL: null };
    try {
      if (desired.logging) {
        const storePort = await freePort('observability');
        const store = await set.start(logStoreLaunch(set, { port: storePort, retention: desired.logging.retention }));
        urls.LogsURL = `http://127.0.0.1:${storePort}`;
        const globs = [join(this.#o.dataDir, 'runtimes', clusterNameFor(desired.runtime), 'logs', '*.log'), join(dir, 'prometheus', '*.log'), store.logPath];
        await set.start(
          logShipperLaunch(set, {
            port: await freePort('observability'),
            storeUrl: urls.LogsURL,
            globs,
            fields: { threeport_runtime: desired.runtime },
          }),
        );
      }
      if (desired.metrics) {
        const port = await freePort('observability');
        const self = desired.metrics.selfMetricsUrl;
        const launch = prometheusLaunch(set, { port, settings: desired.metrics.settings, kube: conn, ...(self ? { selfMetricsUrl: self } : {}) }, desired.runtime);
        await set.start(launch, { timeoutMs: 120_000 });
        urls.PrometheusURL = `http://127.0.0.1:${port}`;
      }
    } catch (err) {
      await set.stopAll();
      if (err instanceof SupportPeerMissingError) return this.#fail(ctx, `${what}: ${err.message}`);
      throw new ReconcileError(`${what}: ${describeError(err)}`, { cause: err });
    }
    return { set, urls };
  }

  /** A process that gave up restarting makes its instance reconcile again (which starts it anew). */
  #peerEvent(kind: Kind, id: number, e: PeerEvent): void {
    const log = this.#o.logger.child({ kind: kind.name, id, peer: e.peer });
    if (e.type === 'Warning') log.warn({ reason: e.reason }, e.message);
    else log.info({ reason: e.reason }, e.message);
    if (e.reason === 'SupportPeerFailed' && this.#store && !this.#stopped) {
      void requestReconcile(this.#store, kind, id).catch(() => undefined);
    }
  }

  async #remove(ctx: ReconcileContext, p: PartKind, o: Obj): Promise<ReconcileResult> {
    const id = idOf(o)!;
    const key = `${p.kind.name}:${id}`;
    const current = this.#running.get(key);
    if (current) await current.set.stopAll();
    this.#running.delete(key);
    rmSync(this.dirOf(p.kind, id), { recursive: true, force: true });
    ctx.log.info('observability processes stopped and their data removed');
  }
}
