import { defineKind, f } from './declare.js';

export const HelmWorkloadDefinition = defineKind({
  name: 'HelmWorkloadDefinition',
  plural: 'helm-workload-definitions',
  domain: 'helm-workload',
  base: 'definition',
  reconciled: true,
  description: 'A Helm chart and default values.',
  fields: {
    Repo: f.string({ required: true, description: 'An https chart repository, an oci:// registry, or a local directory.' }),
    Chart: f.string({ required: true }),
    ChartVersion: f.string(),
    ValuesDocument: f.string(),
    AdditionalResources: f.json(),
  },
});

export const HelmWorkloadInstance = defineKind({
  name: 'HelmWorkloadInstance',
  plural: 'helm-workload-instances',
  domain: 'helm-workload',
  base: 'instance',
  reconciled: true,
  description: 'A Helm release of a HelmWorkloadDefinition on a Kubernetes runtime.',
  fields: {
    ValuesDocument: f.string(),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true, blocksDelete: true }),
    ReleaseNamespace: f.string(),
    HelmWorkloadDefinitionID: f.id('HelmWorkloadDefinition', { required: true, blocksDelete: true }),
    AdditionalResources: f.json(),
  },
});
