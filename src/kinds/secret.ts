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
  description: "Delivers its SecretDefinition's data from AWS Secrets Manager into a Kubernetes Secret in its workload's namespace, and keeps it current.",
  fields: {
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
    SecretDefinitionID: f.id('SecretDefinition', { required: true, blocksDelete: true }),
    // The workload whose namespace gets the Secret (exactly one; checked against the store below).
    WorkloadInstanceID: f.id('WorkloadInstance'),
    HelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
  },
  check: (o) => {
    const set = ['WorkloadInstanceID', 'HelmWorkloadInstanceID'].filter((k) => o[k] !== undefined && o[k] !== null);
    if (set.length !== 1) return 'SecretInstance needs exactly one of WorkloadInstanceID and HelmWorkloadInstanceID: the workload whose namespace gets the Secret';
    return undefined;
  },
  // The workload must exist and run on the SecretInstance's runtime: the Secret goes into its namespace there.
  checkStored: async (o, context) => {
    const [field, kind] = o['WorkloadInstanceID'] !== undefined && o['WorkloadInstanceID'] !== null ? ['WorkloadInstanceID', 'WorkloadInstance'] : ['HelmWorkloadInstanceID', 'HelmWorkloadInstance'];
    const id = Number(o[field]);
    const workload = await context.get(kind, id);
    if (!workload) return `SecretInstance.${field} refers to ${kind} ${id}, which does not exist`;
    const runtime = workload['KubernetesRuntimeInstanceID'];
    if (runtime === undefined || runtime === null) return `${kind} ${id} has no KubernetesRuntimeInstanceID, so its Secret has no cluster to go to`;
    if (Number(runtime) !== Number(o['KubernetesRuntimeInstanceID'])) {
      return `SecretInstance.KubernetesRuntimeInstanceID is ${String(o['KubernetesRuntimeInstanceID'])}, but ${kind} ${id} runs on KubernetesRuntimeInstance ${String(runtime)}`;
    }
    return undefined;
  },
});
