import { defineKind, f } from './declare.js';
import { LOCATIONS, NODE_PROFILES, NODE_SIZES } from './locations.js';

/** Where a runtime's clusters come from. `kind` and `eks` are upstream's; `kwok` and `kubeconfig` are ours. */
export const INFRA_PROVIDERS = ['kind', 'eks', 'kwok', 'kubeconfig'] as const;

export const KubernetesRuntimeDefinition = defineKind({
  name: 'KubernetesRuntimeDefinition',
  plural: 'kubernetes-runtime-definitions',
  domain: 'kubernetes-runtime',
  base: 'definition',
  reconciled: true,
  description: 'The kind of Kubernetes cluster to run workloads on.',
  fields: {
    InfraProvider: f.string({ required: true, enum: INFRA_PROVIDERS }),
    InfraProviderAccountName: f.string(),
    HighAvailability: f.boolean({ default: false }),
    NodeSize: f.string({ default: 'Medium', enum: NODE_SIZES }),
    NodeProfile: f.string({ default: 'Balanced', enum: NODE_PROFILES }),
    NodeMaximum: f.integer({ default: 250 }),
  },
});

export const KubernetesRuntimeInstance = defineKind({
  name: 'KubernetesRuntimeInstance',
  plural: 'kubernetes-runtime-instances',
  domain: 'kubernetes-runtime',
  base: 'instance',
  reconciled: true,
  description: 'One Kubernetes cluster, and how to reach it.',
  fields: {
    Location: f.string({ required: true, enum: LOCATIONS, immutable: true }),
    ThreeportControlPlaneHost: f.boolean({ default: false }),
    APIEndpoint: f.string({ observed: true }),
    CACertificate: f.string({ observed: true }),
    Certificate: f.string({ observed: true }),
    CertificateKey: f.string({ encrypted: true, observed: true }),
    ConnectionToken: f.string({ encrypted: true, observed: true }),
    ConnectionTokenExpiration: f.time({ observed: true }),
    DefaultRuntime: f.boolean({ default: false }),
    KubernetesRuntimeDefinitionID: f.id('KubernetesRuntimeDefinition', { required: true, blocksDelete: true }),
    ForceDelete: f.boolean({ default: false }),
    ThreeportAgentImage: f.string(),
    // JSON keys below keep upstream's spelling, quirks included.
    GatewayWorkloadInstanceID: f.id('WorkloadInstance', { observed: true }),
    DnsControllerInstanceId: f.id('WorkloadInstance', { observed: true }),
    SecretsControllerInstanceId: f.id('WorkloadInstance', { observed: true }),
  },
});
