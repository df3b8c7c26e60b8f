import { defineKind, f } from './declare.js';
import { ManifestError, splitManifest } from './manifest.js';

export const WorkloadDefinition = defineKind({
  name: 'WorkloadDefinition',
  plural: 'workload-definitions',
  domain: 'workload',
  base: 'definition',
  reconciled: true,
  description: 'A multi-document Kubernetes manifest that instances deploy.',
  fields: {
    YAMLDocument: f.string({ required: true, description: 'Multi-document Kubernetes YAML.' }),
  },
  // Upstream accepts any text and fails later in the controller; we refuse it at the door.
  check: (def) => {
    try {
      splitManifest(String(def['YAMLDocument']));
      return undefined;
    } catch (err) {
      if (err instanceof ManifestError) return err.message;
      throw err;
    }
  },
});

export const WorkloadResourceDefinition = defineKind({
  name: 'WorkloadResourceDefinition',
  plural: 'workload-resource-definitions',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'One Kubernetes resource of a WorkloadDefinition.',
  fields: {
    JSONDefinition: f.json({ required: true }),
    WorkloadDefinitionID: f.id('WorkloadDefinition', { required: true }),
  },
});

export const WorkloadInstance = defineKind({
  name: 'WorkloadInstance',
  plural: 'workload-instances',
  domain: 'workload',
  base: 'instance',
  reconciled: true,
  description: 'A WorkloadDefinition deployed to a Kubernetes runtime.',
  fields: {
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true, blocksDelete: true }),
    WorkloadDefinitionID: f.id('WorkloadDefinition', { required: true, blocksDelete: true }),
  },
});

export const WorkloadResourceInstance = defineKind({
  name: 'WorkloadResourceInstance',
  plural: 'workload-resource-instances',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'One Kubernetes resource applied for a WorkloadInstance, with its live state.',
  fields: {
    JSONDefinition: f.json({ required: true }),
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true }),
    LastOperation: f.string(),
    Reconciled: f.boolean({ default: false }),
    RuntimeDefinition: f.json(),
    ScheduledForDeletion: f.time(),
  },
});

export const WorkloadEvent = defineKind({
  name: 'WorkloadEvent',
  plural: 'workload-events',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'A Kubernetes event about a workload resource.',
  fields: {
    RuntimeEventUID: f.string({ required: true }),
    Type: f.string(),
    Reason: f.string(),
    Message: f.string(),
    Timestamp: f.time({ required: true }),
    WorkloadInstanceID: f.id('WorkloadInstance'),
    WorkloadResourceInstanceID: f.id('WorkloadResourceInstance'),
    HelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
  },
});
