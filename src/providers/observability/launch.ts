// The processes of an observability stack on a simulated runtime, as PeerLaunches for a
// SupportPeerSet (src/providers/support-peers): Prometheus for metrics, VictoriaLogs as the log
// store and vlagent as the log shipper. Every one binds 127.0.0.1 only.
//
// Why loopback everywhere: a simulated (kwok) runtime's pod IPs are fake, and traffic to them
// would leave the machine. Prometheus discovers pods through the runtime's API server
// (kubernetes_sd_configs with kubeconfig_file) and its relabelling rewrites every discovered
// target's address to 127.0.0.1:<the pod's declared metrics port>, where a simulated workload's
// host process listens.
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { KubeConnection } from '../kube/connection.js';
import { findSupportPeer } from '../support-peers/binaries.js';
import type { PeerContext } from '../support-peers/launch.js';
import type { PeerLaunch } from '../support-peers/supervisor.js';
import type { PrometheusSettings } from './values.js';

/** The annotations a workload declares to be scraped (the community chart's convention). */
export const SCRAPE_ANNOTATION = 'prometheus.io/scrape';
export const PORT_ANNOTATION = 'prometheus.io/port';
export const PATH_ANNOTATION = 'prometheus.io/path';

function baseEnv(ctx: PeerContext, name: string): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: join(ctx.dir, name), KUBECONFIG: ctx.kubeconfigPath };
}

function binOf(peer: 'prometheus' | 'victoria-logs', name?: string): string {
  const files = findSupportPeer(peer);
  return name ? join(files.dir, 'bin', name) : files.bin!;
}

export interface PrometheusOptions {
  port: number;
  settings: PrometheusSettings;
  /** The control plane's own /metrics (http URL), scraped as job `threeport`. */
  selfMetricsUrl?: string;
  /** The runtime's API server, scraped as job `kubernetes-apiservers` with the runtime's credentials. */
  kube: KubeConnection;
  name?: string;
}

/** The label every series of a stack carries, naming its runtime. */
export const RUNTIME_LABEL = 'threeport_runtime';

/** prometheus.yml for one runtime. Exported for unit tests of the rendering. */
export function prometheusConfig(ctx: PeerContext, opts: PrometheusOptions, runtimeName: string): { yaml: string; files: Record<string, string> } {
  const name = opts.name ?? 'prometheus';
  const dir = join(ctx.dir, name);
  const files: Record<string, string> = {};
  const tls: Record<string, unknown> = {};
  if (opts.kube.caPem) {
    files['runtime-ca.pem'] = opts.kube.caPem;
    tls['ca_file'] = join(dir, 'runtime-ca.pem');
  }
  if (opts.kube.clientCertPem && opts.kube.clientKeyPem) {
    files['runtime-client.pem'] = opts.kube.clientCertPem;
    files['runtime-client-key.pem'] = opts.kube.clientKeyPem;
    tls['cert_file'] = join(dir, 'runtime-client.pem');
    tls['key_file'] = join(dir, 'runtime-client-key.pem');
  }
  const api = new URL(opts.kube.server);
  const apiJob: Record<string, unknown> = {
    job_name: 'kubernetes-apiservers',
    scheme: api.protocol.replace(':', ''),
    tls_config: tls,
    static_configs: [{ targets: [api.host] }],
  };
  if (opts.kube.token) {
    files['runtime-token'] = opts.kube.token;
    apiJob['authorization'] = { credentials_file: join(dir, 'runtime-token') };
  }
  const jobs: Record<string, unknown>[] = [];
  if (opts.selfMetricsUrl) {
    const self = new URL(opts.selfMetricsUrl);
    jobs.push({ job_name: 'threeport', scheme: self.protocol.replace(':', ''), metrics_path: self.pathname, static_configs: [{ targets: [self.host] }] });
  }
  jobs.push(apiJob, {
    job_name: 'kubernetes-pods',
    // Workloads that send no Content-Type are read as the text format, as Prometheus 2 did.
    fallback_scrape_protocol: 'PrometheusText0.0.4',
    kubernetes_sd_configs: [{ role: 'pod', kubeconfig_file: ctx.kubeconfigPath }],
    relabel_configs: [
      { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], regex: 'true', action: 'keep' },
      // One target per pod (discovery yields one per container port), on its declared port.
      { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_port'], regex: '\\d+', action: 'keep' },
      { source_labels: ['__meta_kubernetes_pod_container_init'], regex: 'true', action: 'drop' },
      { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_path'], regex: '(.+)', target_label: '__metrics_path__' },
      // Loopback, never the pod's (fake) IP.
      { source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_port'], regex: '(\\d+)', replacement: '127.0.0.1:$1', target_label: '__address__' },
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
    ],
  });
  const config = {
    global: {
      scrape_interval: opts.settings.scrapeInterval,
      evaluation_interval: opts.settings.evaluationInterval,
      external_labels: { [RUNTIME_LABEL]: runtimeName },
    },
    scrape_configs: [...jobs, ...opts.settings.additionalScrapeConfigs],
  };
  return { yaml: toYaml(config, { lineWidth: 0 }), files };
}

/** Prometheus (upstream's cmd/prometheus, Kubernetes discovery only) for one runtime. */
export function prometheusLaunch(ctx: PeerContext, opts: PrometheusOptions, runtimeName: string): PeerLaunch {
  const name = opts.name ?? 'prometheus';
  const dir = join(ctx.dir, name);
  const { yaml, files } = prometheusConfig(ctx, opts, runtimeName);
  return {
    name,
    bin: binOf('prometheus'),
    args: [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--storage.tsdb.retention.time=${opts.settings.retention}`,
      `--web.listen-address=127.0.0.1:${opts.port}`,
      '--web.enable-lifecycle',
      '--log.level=info',
    ],
    env: baseEnv(ctx, name),
    files: { ...files, 'prometheus.yml': yaml },
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.port}/-/ready` },
  };
}

export interface LogStoreOptions {
  port: number;
  retention: string;
  name?: string;
}

/** VictoriaLogs: the log store (accepts Loki's push API). */
export function logStoreLaunch(ctx: PeerContext, opts: LogStoreOptions): PeerLaunch {
  const name = opts.name ?? 'victoria-logs';
  return {
    name,
    bin: binOf('victoria-logs'),
    args: [
      `-httpListenAddr=127.0.0.1:${opts.port}`,
      `-storageDataPath=${join(ctx.dir, name, 'data')}`,
      `-retentionPeriod=${opts.retention}`,
      '-loggerLevel=WARN',
    ],
    env: baseEnv(ctx, name),
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.port}/health` },
  };
}

export interface LogShipperOptions {
  port: number;
  /** The log store's base URL (http://127.0.0.1:<port>). */
  storeUrl: string;
  /** Glob patterns of the log files to ship (the runtime's components, the stack's own processes). */
  globs: string[];
  /** Extra fields on every shipped line, e.g. the runtime's name. */
  fields: Record<string, string>;
  name?: string;
}

/** vlagent: tails the log files and ships every line to the log store. */
export function logShipperLaunch(ctx: PeerContext, opts: LogShipperOptions): PeerLaunch {
  const name = opts.name ?? 'vlagent';
  const dir = join(ctx.dir, name);
  return {
    name,
    bin: binOf('victoria-logs', 'vlagent'),
    args: [
      `-httpListenAddr=127.0.0.1:${opts.port}`,
      `-remoteWrite.url=${opts.storeUrl}/insert/native`,
      `-tmpDataPath=${join(dir, 'tmp')}`,
      `-fileCollector.checkpointsPath=${join(dir, 'checkpoints.json')}`,
      '-fileCollector.refreshInterval=2s',
      `-fileCollector.extraFields=${JSON.stringify(opts.fields)}`,
      ...opts.globs.map((g) => `-fileCollector.glob=${g}`),
      '-loggerLevel=WARN',
    ],
    env: baseEnv(ctx, name),
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.port}/health` },
  };
}
