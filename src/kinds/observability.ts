import { defineKind, f } from './declare.js';

/** Why these kinds are refused (see KindInput.unavailable); removed when their controller lands. */
const OBSERVABILITY_UNAVAILABLE =
  'no controller installs observability stacks (Prometheus, Loki, Grafana) on runtimes yet; register an existing one with Reconciled: true';

export const ObservabilityStackDefinition = defineKind({
  name: 'ObservabilityStackDefinition',
  plural: 'observability-stack-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  unavailable: OBSERVABILITY_UNAVAILABLE,
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
  unavailable: OBSERVABILITY_UNAVAILABLE,
  fields: {
    ObservabilityStackDefinitionID: f.id('ObservabilityStackDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    MetricsEnabled: f.boolean({ default: true }),
    LoggingEnabled: f.boolean({ default: true }),
    ObservabilityDashboardInstanceID: f.id('ObservabilityDashboardInstance'),
    MetricsInstanceID: f.id('MetricsInstance'),
    LoggingInstanceID: f.id('LoggingInstance'),
    GrafanaHelmValuesDocument: f.string(),
    KubePrometheusStackHelmValuesDocument: f.string(),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmValuesDocument: f.string(),
  },
});

export const ObservabilityDashboardDefinition = defineKind({
  name: 'ObservabilityDashboardDefinition',
  plural: 'observability-dashboard-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  unavailable: OBSERVABILITY_UNAVAILABLE,
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
  unavailable: OBSERVABILITY_UNAVAILABLE,
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
  unavailable: OBSERVABILITY_UNAVAILABLE,
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
  unavailable: OBSERVABILITY_UNAVAILABLE,
  fields: {
    MetricsDefinitionID: f.id('MetricsDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    KubePrometheusStackHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    KubePrometheusStackHelmValuesDocument: f.string(),
  },
});

export const LoggingDefinition = defineKind({
  name: 'LoggingDefinition',
  plural: 'logging-definitions',
  domain: 'observability',
  base: 'definition',
  reconciled: true,
  unavailable: OBSERVABILITY_UNAVAILABLE,
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
  unavailable: OBSERVABILITY_UNAVAILABLE,
  fields: {
    LoggingDefinitionID: f.id('LoggingDefinition', { required: true, blocksDelete: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    LokiHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    LokiHelmValuesDocument: f.string(),
    PromtailHelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
    PromtailHelmValuesDocument: f.string(),
  },
});
