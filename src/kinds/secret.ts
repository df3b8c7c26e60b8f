import { defineKind, f } from './declare.js';

export const SecretDefinition = defineKind({
  name: 'SecretDefinition',
  plural: 'secret-definitions',
  domain: 'secret',
  base: 'definition',
  reconciled: true,
  description: 'Secret data kept in a secrets backend (AWS Secrets Manager) and delivered to workloads.',
  fields: {
    AwsAccountID: f.id('AwsAccount'),
    // Never stored on the row: each value is encrypted and travels only with the reconcile request.
    Data: f.stringMap({ required: true, transient: true, encrypted: true }),
  },
});

export const SecretInstance = defineKind({
  name: 'SecretInstance',
  plural: 'secret-instances',
  domain: 'secret',
  base: 'instance',
  reconciled: true,
  fields: {
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    SecretDefinitionID: f.id('SecretDefinition', { required: true, blocksDelete: true }),
    WorkloadInstanceID: f.id('WorkloadInstance'),
    HelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
  },
});
