import { yaml } from './yaml.js';
import { defineKind, f } from './declare.js';

/**
 * Why dashboards are refused (see KindInput.unavailable). Grafana cannot be had here: the Go
 * module proxy refuses github.com/grafana/grafana (AGPL) and its dependencies, and no chart
 * repository is reachable (docs/observability.md).
 */
export const DASHBOARDS_UNAVAILABLE =
  'dashboards need Grafana, which this control plane cannot install: Grafana cannot be built from the Go module proxy here and its chart cannot be fetched (see docs/observability.md); register an existing one with Reconciled: true';

/** The Helm values fields (YAML text) of these kinds. */
const VALUES_FIELDS = [
  'GrafanaHelmValuesDocument',
  'KubePrometheusStackHelmValuesDocument',
  'LokiHelmValuesDocument',
  'PromtailHelmValuesDocument',
] as const;

/**
 * Helm values must be a YAML mapping (or empty); anything else is a 400 naming the field. A
 * Grafana part (values or chart version) is refused: dashboards are unavailable.
 */
function valuesProblem(kind: string, fields: Readonly<Record<string, unknown>>): string | undefined {
  for (const name of VALUES_FIELDS) {
    const v = fields[name];
    if (v === undefined || v === null || v === '') continue;
    if (name.startsWith('Grafana')) return `field ${kind}.${name}: ${DASHBOARDS_UNAVAILABLE}`;
    let parsed: unknown;
    try {
      parsed = yaml().parse(String(v), { maxAliasCount: 100 });
    } catch (err) {
      return `field ${kind}.${name} is not valid YAML: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      return `field ${kind}.${name} must be a YAML mapping of Helm values, got ${Array.isArray(parsed) ? 'a list' : typeof parsed}`;
    }
  }
  if (fields['GrafanaHelmChartVersion'] !== undefined && fields['GrafanaHelmChartVersion'] !== null && fields['GrafanaHelmChartVersion'] !== '') {
    return `field ${kind}.GrafanaHelmChartVersion: ${DASHBOARDS_UNAVAILABLE}`;
  }
  return undefined;
}

/** Where a running stack (or part) answers; written by the observability controller. */
const endpointFields = {
  PrometheusURL: f.string({ observed: true, query: false, description: 'Prometheus (HTTP API) of this stack, when metrics run.' }),
  LogsURL: f.string({
    observed: true,
    query: false,
    description: 'The log store of this stack (VictoriaLogs: Loki push API at /insert/loki/api/v1/push, LogsQL at /select/logsql/query), when logging runs.',
  }),
};

export const ObservabilityStackDefinition = defineKind({
  name: 'ObservabilityStackDefinition',
  plural: 'observability-stack-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  check: (o) => valuesProblem('ObservabilityStackDefinition', o),
  fields: {
    ObservabilityDashboardDefinitionID: f.id('ObservabilityDashboardDefinition'),
    MetricsDefinitionID: f.id('MetricsDefinition'),
    LoggingDefinitionID: f.id('LoggingDefinition'),
    GrafanaHelmChartVersion: f.string(),
    GrafanaHelmValuesDocument: f.string(),
    KubePrometheusStackHelmChartVersion: f.string(),
    KubePrometheusStackHelmValuesDocument: f.string(),
    LokiHelmChartVersion: f.string(),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmChartVersion: f.string(),
    PromtailHelmValuesDocument: f.string(),
  },
});

export const ObservabilityStackInstance = defineKind({
  name: 'ObservabilityStackInstance',
  plural: 'observability-stack-instances',
  domain: 'observability',
  base: 'instance',
  reconciled: true,
  // One stack per runtime: a second one is a 409.
  uniqueTogether: ['KubernetesRuntimeInstanceID'],
  check: (o) => valuesProblem('ObservabilityStackInstance', o),
  fields: {
    ObservabilityStackDefinitionID: f.id('ObservabilityStackDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    MetricsEnabled: f.boolean({ default: true }),
    LoggingEnabled: f.boolean({ default: true }),
    // A part that a stack still uses cannot be deleted (409).
    ObservabilityDashboardInstanceID: f.id('ObservabilityDashboardInstance', { blocksDelete: true }),
    MetricsInstanceID: f.id('MetricsInstance', { blocksDelete: true }),
    LoggingInstanceID: f.id('LoggingInstance', { blocksDelete: true }),
    GrafanaHelmValuesDocument: f.string(),
    KubePrometheusStackHelmValuesDocument: f.string(),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmValuesDocument: f.string(),
    ...endpointFields,
  },
});

export const ObservabilityDashboardDefinition = defineKind({
  name: 'ObservabilityDashboardDefinition',
  plural: 'observability-dashboard-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  unavailable: DASHBOARDS_UNAVAILABLE,
  fields: {
    GrafanaHelmWorkloadDefinitionID: f.id('HelmWorkloadDefinition'),
    GrafanaHelmChartVersion: f.string({ default: '7.2.1' }),
    GrafanaHelmValuesDocument: f.string(),
  },
});

export const ObservabilityDashboardInstance = defineKind({
  name: 'ObservabilityDashboardInstance',
  plural: 'observability-dashboard-instances',
  domain: 'observability',
  base: 'instance',
  reconciled: true,
  unavailable: DASHBOARDS_UNAVAILABLE,
  fields: {
    ObservabilityDashboardDefinitionID: f.id('ObservabilityDashboardDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    GrafanaHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    GrafanaHelmValuesDocument: f.string(),
  },
});

export const MetricsDefinition = defineKind({
  name: 'MetricsDefinition',
  plural: 'metrics-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  check: (o) => valuesProblem('MetricsDefinition', o),
  fields: {
    KubePrometheusStackHelmWorkloadDefinitionID: f.id('HelmWorkloadDefinition'),
    KubePrometheusStackHelmChartVersion: f.string({ default: '55.8.1' }),
    KubePrometheusStackHelmValuesDocument: f.string(),
  },
});

export const MetricsInstance = defineKind({
  name: 'MetricsInstance',
  plural: 'metrics-instances',
  domain: 'observability',
  base: 'instance',
  reconciled: true,
  check: (o) => valuesProblem('MetricsInstance', o),
  fields: {
    MetricsDefinitionID: f.id('MetricsDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    KubePrometheusStackHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    KubePrometheusStackHelmValuesDocument: f.string(),
    ...endpointFields,
  },
});

export const LoggingDefinition = defineKind({
  name: 'LoggingDefinition',
  plural: 'logging-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  check: (o) => valuesProblem('LoggingDefinition', o),
  fields: {
    LokiHelmWorkloadDefinitionID: f.id('HelmWorkloadDefinition'),
    LokiHelmChartVersion: f.string({ default: '5.41.6' }),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmWorkloadDefinitionID: f.id('HelmWorkloadDefinition'),
    PromtailHelmChartVersion: f.string({ default: '6.15.3' }),
    PromtailHelmValuesDocument: f.string(),
  },
});

export const LoggingInstance = defineKind({
  name: 'LoggingInstance',
  plural: 'logging-instances',
  domain: 'observability',
  base: 'instance',
  reconciled: true,
  check: (o) => valuesProblem('LoggingInstance', o),
  fields: {
    LoggingDefinitionID: f.id('LoggingDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    LokiHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    PromtailHelmValuesDocument: f.string(),
    ...endpointFields,
  },
});
